//! `l4lb run --config FILE`: live load balancing (see `crate::run`).

use std::path::PathBuf;

use crate::commands::replay::{fail, load_config};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (TOML) with an `[io]` table; re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// How often to log counters and rates (packets/s in and out since the last log).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_interval)]
    pub stats_interval: std::time::Duration,
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = common::config::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_millis(10) {
        return Err("the stats interval must be at least 10ms".into());
    }
    Ok(d)
}

pub fn run(args: &Args) -> i32 {
    let cfg = match load_config(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    crate::run::set_stats_interval(args.stats_interval);
    match crate::run::run(cfg, &args.config) {
        Ok(_) => 0,
        Err(e) => fail(format!("{e:#}")),
    }
}
