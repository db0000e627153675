//! `l4lb gen`: deterministic synthetic traffic towards the config's VIPs (see `crate::gen`).

use std::path::PathBuf;

use crate::commands::replay::{fail, load_config};
use crate::r#gen::{GenOptions, GenTarget, SizeMix, generate};
use dataplane::port::pcap::{PcapWriter, TsResolution};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (TOML): traffic goes to its VIPs.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Capture to write (pcap, Ethernet, nanosecond timestamps).
    #[arg(long, value_name = "OUT.pcap")]
    pub output: PathBuf,
    /// Number of flows.
    #[arg(long, value_name = "N")]
    pub flows: u64,
    /// Number of packets (exact).
    #[arg(long, value_name = "M")]
    pub packets: u64,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Packets per second (spacing of the timestamps).
    #[arg(long, value_name = "PPS", default_value_t = 1_000_000)]
    pub rate: u64,
    /// Frame sizes: "imix" (7:4:1 of 64/594/1518 bytes) or a fixed frame size in bytes.
    #[arg(long, value_name = "imix|BYTES", default_value = "imix")]
    pub size: SizeMix,
    /// Zipf exponent of flow popularity (0 = uniform).
    #[arg(long, value_name = "S", default_value_t = 1.1)]
    pub zipf: f64,
    /// Only established-flow packets (ACK/data; no SYN, FIN, RST): for throughput runs.
    #[arg(long)]
    pub established_only: bool,
    /// Only this VIP (default: all of them).
    #[arg(long, value_name = "NAME")]
    pub vip: Option<String>,
}

pub fn run(args: &Args) -> i32 {
    let cfg = match load_config(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let targets: Vec<GenTarget> = cfg
        .vips
        .iter()
        .filter(|v| args.vip.as_deref().is_none_or(|n| n == v.name))
        .map(|v| GenTarget { address: v.address, port: v.port, protocol: v.protocol.number() })
        .collect();
    if targets.is_empty() {
        return fail(format!(
            "--vip {:?}: no such VIP in {}",
            args.vip.as_deref().unwrap_or(""),
            args.config.display()
        ));
    }
    let opts = GenOptions {
        flows: args.flows,
        packets: args.packets,
        seed: args.seed,
        rate_pps: args.rate,
        size: args.size,
        mtu: cfg.node.mtu,
        zipf_s: args.zipf,
        established_only: args.established_only,
        src_mac: cfg.node.gateway_mac,
        dst_mac: cfg.node.mac,
        ..GenOptions::default()
    };
    let mut out = match PcapWriter::create(&args.output, TsResolution::Nano) {
        Ok(w) => w,
        Err(e) => return fail(format!("{}: {e}", args.output.display())),
    };
    match generate(&targets, &opts, &mut out).and_then(|s| out.flush().map(|_| s).map_err(Into::into)) {
        Ok(summary) => {
            super::outln!("{}: {summary}", args.output.display());
            0
        }
        Err(e) => fail(format!("{}: {e}", args.output.display())),
    }
}
