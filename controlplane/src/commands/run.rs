//! `l4lb run --config FILE`: live load balancing (see `crate::run`).

use std::path::PathBuf;

use crate::commands::replay::{fail, load_config};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (TOML) with an `[io]` table; re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
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
        .try_init();
    match crate::run::run(cfg, &args.config) {
        Ok(_) => 0,
        Err(e) => fail(format!("{e:#}")),
    }
}
