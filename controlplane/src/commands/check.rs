//! `l4lb check --config FILE`: validate a configuration.
//!
//! Valid: one summary line on stdout, exit 0. Invalid (or unreadable): every error on
//! stderr, one per line as `FILE: place: message`, exit 1.

use std::path::PathBuf;

use common::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

pub fn run(args: &Args) -> i32 {
    match Config::load(&args.config) {
        Ok(cfg) => {
            super::outln!("{}: ok: {}", args.config.display(), summary(&cfg));
            0
        }
        Err(errors) => {
            for line in errors.lines() {
                eprintln!("{line}");
            }
            1
        }
    }
}

/// `2 VIPs, 5 backends (4 up with weight > 0), 1 worker, io af_xdp`.
pub fn summary(cfg: &Config) -> String {
    let backends: usize = cfg.vips.iter().map(|v| v.backends.len()).sum();
    let eligible: usize = cfg.vips.iter().map(|v| v.eligible_count()).sum();
    let plural = |n: usize, word: &str| if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") };
    let io = match &cfg.io {
        Some(io) => format!(", io {}", io.driver),
        None => String::new(),
    };
    format!(
        "{}, {} ({eligible} up with weight > 0), {}{io}",
        plural(cfg.vips.len(), "VIP"),
        plural(backends, "backend"),
        plural(cfg.dataplane.workers, "worker")
    )
}
