//! Command-line interface (clap derive).
//!
//! One enum variant and one module under `commands/` per subcommand: each module has
//! an `Args` struct (`clap::Args`) and `run(&Args) -> i32` returning the exit status.

use clap::{Parser, Subcommand};

use crate::commands;

#[derive(Parser, Debug)]
#[command(name = "l4lb", version, about = "Kernel-bypass layer-4 load balancer (Maglev, GRE/IPIP/DNAT)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a configuration: print every error with its place; exit 0 only if valid.
    Check(commands::check::Args),
    /// Show each VIP's Maglev table: entries per backend, share against the ideal share.
    Table(commands::table::Args),
    /// Live load balancing on the ports of the config's [io] table, until SIGINT/SIGTERM.
    Run(commands::run::Args),
    /// Offline: run the data plane on a capture; write what it sends (and gives the host).
    Replay(commands::replay::Args),
    /// Write deterministic synthetic traffic towards the config's VIPs (pktgen-style).
    Gen(commands::r#gen::Args),
}

/// Entry point; returns the process exit status.
pub fn main() -> i32 {
    match Cli::try_parse() {
        Ok(cli) => run(cli),
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand { 2 } else { 0 }
                }
                // A usage error is one clear line (the contract), not clap's paragraph.
                _ => {
                    let text = e.to_string();
                    let line: Vec<&str> = text
                        .lines()
                        .map(str::trim)
                        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                        .collect();
                    eprintln!("{} (see l4lb --help)", line.join(" "));
                    2
                }
            }
        }
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Check(args) => commands::check::run(&args),
        Command::Table(args) => commands::table::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Replay(args) => commands::replay::run(&args),
        Command::Gen(args) => commands::r#gen::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_subcommands() {
        let c = Cli::try_parse_from(["l4lb", "table", "--config", "x.toml", "--vip", "web", "--json"]).unwrap();
        match c.command {
            Command::Table(a) => {
                assert_eq!(a.config.to_str(), Some("x.toml"));
                assert_eq!(a.vip.as_deref(), Some("web"));
                assert!(a.json);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["l4lb", "check"]).is_err());
    }
}
