//! Command-line interface (clap).

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "l4lb", version, about = "Kernel-bypass layer-4 load balancer (Maglev, GRE/IPIP/DNAT)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a configuration file.
    Check {
        #[arg(long)]
        config: std::path::PathBuf,
    },
}

/// Entry point; returns the process exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { .. } => 0,
    }
}
