//! `l4lb replay`: the data plane fed from a capture (see `crate::replay`).

use std::path::PathBuf;

use common::config::Config;

use crate::replay::{ReplayOptions, run as replay};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Capture to replay (pcap or pcapng, Ethernet link type).
    #[arg(long, value_name = "IN.pcap")]
    pub input: PathBuf,
    /// Where the packets l4lb transmits are written (pcap, Ethernet).
    #[arg(long, value_name = "OUT.pcap")]
    pub output: PathBuf,
    /// Workers to spread the capture over, as RSS would (default 1).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Where packets handed to the host's stack are written.
    #[arg(long, value_name = "HOST.pcap")]
    pub host_output: Option<PathBuf>,
    /// Write counters as JSON (schema: docs/STATS.md).
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Control-plane changes at capture times (TOML `[[event]]` list).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// No summary on stdout.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Print a one-line error and return the failure status.
pub fn fail(msg: impl std::fmt::Display) -> i32 {
    let line = msg.to_string().replace('\n', "; ");
    eprintln!("error: {line}");
    1
}

/// Load a configuration, or a one-line message naming every error.
pub fn load_config(path: &std::path::Path) -> Result<Config, String> {
    Config::load(path).map_err(|e| e.lines().join("; "))
}

pub fn run(args: &Args) -> i32 {
    let cfg = match load_config(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let opts = ReplayOptions {
        input: args.input.clone(),
        output: args.output.clone(),
        host_output: args.host_output.clone(),
        workers: usize::from(args.workers),
        stats_json: args.stats_json.clone(),
        events: args.events.clone(),
        progress: !args.quiet,
    };
    match replay(cfg, &opts) {
        Ok((stats, snap)) => {
            if !args.quiet {
                super::out!("{}", stats.summary(&snap));
            }
            0
        }
        Err(e) => fail(format!("{e:#}")),
    }
}
