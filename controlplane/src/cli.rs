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
    /// Synthetic traffic towards the config's VIPs (pktgen-style): write a capture and/or
    /// transmit it (or a given capture) on an interface at a target rate.
    Gen(commands::r#gen::Args),
    /// Count the frames arriving on an interface for a while (packets, bytes, pps).
    Sink(commands::sink::Args),
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
        Command::Sink(args) => commands::sink::run(&args),
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

    #[test]
    fn gen_offline_options_unchanged_and_live_options_parse() {
        let c = Cli::try_parse_from([
            "l4lb",
            "gen",
            "--config",
            "c.toml",
            "--output",
            "o.pcap",
            "--flows",
            "3",
            "--packets",
            "9",
        ])
        .unwrap();
        let Command::Gen(a) = c.command else { panic!() };
        assert_eq!((a.flows, a.packets, a.rate, a.interface), (Some(3), Some(9), None, None));
        // Offline needs --output, --flows and --packets as before.
        assert!(Cli::try_parse_from(["l4lb", "gen", "--config", "c.toml", "--flows", "3", "--packets", "9"]).is_err());
        assert!(
            Cli::try_parse_from(["l4lb", "gen", "--config", "c.toml", "--output", "o.pcap", "--flows", "3"]).is_err()
        );
        // Live: a given capture, no config; a generated one with limits.
        let c = Cli::try_parse_from([
            "l4lb",
            "gen",
            "--interface",
            "eth0",
            "--input",
            "i.pcap",
            "--rate",
            "0",
            "--loop",
            "--duration",
            "5s",
        ])
        .unwrap();
        let Command::Gen(a) = c.command else { panic!() };
        assert_eq!(a.duration, Some(std::time::Duration::from_secs(5)));
        assert!(a.looped && a.config.is_none() && a.rate == Some(0));
        let c = Cli::try_parse_from([
            "l4lb",
            "gen",
            "--config",
            "c.toml",
            "--flows",
            "3",
            "--packets",
            "9",
            "--interface",
            "eth0",
            "--count",
            "100",
            "--dst-mac",
            "02:00:00:00:00:fe",
        ])
        .unwrap();
        let Command::Gen(a) = c.command else { panic!() };
        assert_eq!((a.count, a.dst_mac), (Some(100), Some([2, 0, 0, 0, 0, 0xfe])));
        // Live-only options need --interface; --input excludes --config.
        assert!(
            Cli::try_parse_from([
                "l4lb",
                "gen",
                "--config",
                "c",
                "--output",
                "o",
                "--flows",
                "1",
                "--packets",
                "1",
                "--loop"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["l4lb", "gen", "--interface", "e", "--input", "i", "--config", "c"]).is_err());
        assert!(
            Cli::try_parse_from(["l4lb", "gen", "--interface", "e", "--input", "i", "--duration", "5 parsecs"])
                .is_err()
        );
        let c = Cli::try_parse_from(["l4lb", "sink", "--interface", "eth0", "--duration", "2s", "--json"]).unwrap();
        let Command::Sink(a) = c.command else { panic!() };
        assert_eq!((a.interface.as_str(), a.duration, a.json), ("eth0", std::time::Duration::from_secs(2), true));
        assert!(Cli::try_parse_from(["l4lb", "sink", "--interface", "eth0"]).is_err());
    }
}
