//! `l4lb sink --interface IF --duration 5s [--json]`: count what arrives on an
//! interface (an AF_PACKET RX ring, frames counted in place and freed), pktgen-style.

use std::time::Duration;

use crate::commands::replay::fail;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface to count on.
    #[arg(long, value_name = "IF")]
    pub interface: String,
    /// How long to count ("5s", "500ms").
    #[arg(long, value_name = "TIME", value_parser = crate::commands::r#gen::parse_time)]
    pub duration: Duration,
    /// Print `{"interface", "packets", "bytes", "pps", "active_s", "missed"}` instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> i32 {
    match crate::live_gen::sink(&args.interface, args.duration) {
        Ok(r) => {
            if args.json {
                let v = serde_json::json!({
                    "interface": args.interface,
                    "packets": r.packets,
                    "bytes": r.bytes,
                    "pps": r.pps,
                    "active_s": r.active.as_secs_f64(),
                    "missed": r.missed,
                });
                super::outln!("{v}");
            } else {
                super::outln!("{}: {r}", args.interface);
            }
            0
        }
        Err(e) => fail(format!("{}: {e}", args.interface)),
    }
}
