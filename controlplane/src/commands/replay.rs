//! `l4lb replay`: the data plane fed from a capture (see `crate::replay`).

use std::path::{Path, PathBuf};

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

/// The file a path names, for comparing paths: the canonical path of an existing file
/// (symbolic links followed), else its canonical directory joined with its name.
fn file_identity(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (dir.canonicalize(), path.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => path.to_path_buf(),
    }
}

/// Every file replay writes must be its own, and none of the files it reads: an
/// output on an input would destroy it, two outputs on one file would interleave.
fn check_paths(args: &Args) -> Result<(), String> {
    let mut files: Vec<(&str, PathBuf)> =
        vec![("--config", file_identity(&args.config)), ("--input", file_identity(&args.input))];
    if let Some(e) = &args.events {
        files.push(("--events", file_identity(e)));
    }
    let outputs = [
        ("--output", Some(&args.output)),
        ("--host-output", args.host_output.as_ref()),
        ("--stats-json", args.stats_json.as_ref()),
    ];
    for (name, path) in outputs {
        let Some(path) = path else { continue };
        let id = file_identity(path);
        if let Some((other, _)) = files.iter().find(|(_, f)| *f == id) {
            return Err(format!(
                "{name} {}: the same file as {other}: each output needs a file of its own",
                path.display()
            ));
        }
        files.push((name, id));
    }
    Ok(())
}

pub fn run(args: &Args) -> i32 {
    if let Err(e) = check_paths(args) {
        return fail(e);
    }
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
