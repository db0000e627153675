//! `l4lb gen`: deterministic synthetic traffic towards the config's VIPs (see `crate::gen`),
//! written to a capture and/or transmitted live on an interface (see `crate::live_gen`).
//!
//! Offline (`--output` without `--interface`) it behaves exactly as it always did. With
//! `--interface IF` the frames (generated, or read from `--input FILE.pcap`) are sent on
//! IF over an AF_PACKET TX ring at `--rate` packets per second (0 or absent: as fast as
//! the ring drains), once, or `--count N` frames, or for `--duration`, or `--loop`ed
//! until one of those limits; the achieved rate and the drops are printed.

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Duration;

use crate::commands::replay::{fail, load_config};
use crate::r#gen::{GenOptions, GenTarget, SizeMix, generate};
use dataplane::port::pcap::{PcapReader, PcapWriter, TsResolution};

/// Offline timestamp spacing when `--rate` is not given.
pub const DEFAULT_RATE: u64 = 1_000_000;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (TOML): traffic goes to its VIPs (not needed with --input).
    #[arg(long, value_name = "FILE", required_unless_present = "input")]
    pub config: Option<PathBuf>,
    /// Capture to write (pcap, Ethernet, nanosecond timestamps). Needed unless --interface.
    #[arg(long, value_name = "OUT.pcap", required_unless_present = "interface")]
    pub output: Option<PathBuf>,
    /// Number of flows.
    #[arg(long, value_name = "N", required_unless_present = "input")]
    pub flows: Option<u64>,
    /// Number of packets (exact).
    #[arg(long, value_name = "M", required_unless_present = "input")]
    pub packets: Option<u64>,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Packets per second: the spacing of the timestamps (default 1000000); live, the
    /// target rate (0 or absent = as fast as possible).
    #[arg(long, value_name = "PPS")]
    pub rate: Option<u64>,
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
    /// Ethernet source of generated frames (default: the config's node.gateway_mac).
    #[arg(long, value_name = "MAC", value_parser = parse_mac)]
    pub src_mac: Option<[u8; 6]>,
    /// Ethernet destination of generated frames (default: the config's node.mac); live,
    /// the next hop's MAC (e.g. the router in front of the load balancer).
    #[arg(long, value_name = "MAC", value_parser = parse_mac)]
    pub dst_mac: Option<[u8; 6]>,
    /// Transmit on this interface (AF_PACKET TX ring) instead of, or as well as, --output.
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// Send the frames of this capture (pcap/pcapng, Ethernet) instead of generating.
    #[arg(long, value_name = "FILE.pcap", requires = "interface", conflicts_with_all = ["config", "output"])]
    pub input: Option<PathBuf>,
    /// Live: stop after N frames (with --loop, the frames are repeated up to N).
    #[arg(long, value_name = "N", requires = "interface")]
    pub count: Option<u64>,
    /// Live: stop after this long ("5s", "500ms").
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "interface")]
    pub duration: Option<Duration>,
    /// Live: start over at the first frame after the last (needs --count or --duration).
    #[arg(long = "loop", requires = "interface")]
    pub looped: bool,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    common::config::parse_mac(s).ok_or_else(|| format!("bad MAC address {s:?} (expected 02:00:00:00:00:01)"))
}

pub(crate) fn parse_time(s: &str) -> Result<Duration, String> {
    common::config::parse_duration(s).map_err(|e| e.to_string())
}

pub fn run(args: &Args) -> i32 {
    let frames = match &args.input {
        Some(input) => match crate::live_gen::read_frames(input) {
            Ok(f) => Some(f),
            Err(e) => return fail(e),
        },
        None => match generate_capture(args) {
            Ok(f) => f,
            Err(code) => return code,
        },
    };
    let Some(interface) = &args.interface else { return 0 };
    let frames = frames.expect("frames are kept when transmitting");
    let opts = crate::live_gen::TxOptions {
        rate_pps: args.rate.filter(|r| *r > 0),
        count: args.count,
        duration: args.duration,
        looped: args.looped,
    };
    match crate::live_gen::transmit(interface, &frames, &opts) {
        Ok(report) => {
            super::outln!("{interface}: {report}");
            0
        }
        Err(e) => fail(format!("{interface}: {e}")),
    }
}

/// Generate into memory; write `--output` if given; return the frames when they are to
/// be transmitted. `Err` carries the exit status (the message is printed).
fn generate_capture(args: &Args) -> Result<Option<Vec<Vec<u8>>>, i32> {
    let config = args.config.as_ref().expect("clap: --config required without --input");
    let cfg = load_config(config).map_err(fail)?;
    let targets: Vec<GenTarget> = cfg
        .vips
        .iter()
        .filter(|v| args.vip.as_deref().is_none_or(|n| n == v.name))
        .map(|v| GenTarget { address: v.address, port: v.port, protocol: v.protocol.number() })
        .collect();
    if targets.is_empty() {
        return Err(fail(format!(
            "--vip {:?}: no such VIP in {}",
            args.vip.as_deref().unwrap_or(""),
            config.display()
        )));
    }
    let opts = GenOptions {
        flows: args.flows.expect("clap: --flows required without --input"),
        packets: args.packets.expect("clap: --packets required without --input"),
        seed: args.seed,
        rate_pps: args.rate.filter(|r| *r > 0 || args.interface.is_none()).unwrap_or(DEFAULT_RATE),
        size: args.size,
        mtu: cfg.node.mtu,
        zipf_s: args.zipf,
        established_only: args.established_only,
        src_mac: args.src_mac.unwrap_or(cfg.node.gateway_mac),
        dst_mac: args.dst_mac.unwrap_or(cfg.node.mac),
        ..GenOptions::default()
    };
    if args.interface.is_none() {
        // Offline: stream to the file, as `gen` always did.
        let path = args.output.as_ref().expect("clap: --output required without --interface");
        let mut out =
            PcapWriter::create(path, TsResolution::Nano).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let summary = generate(&targets, &opts, &mut out)
            .and_then(|s| out.flush().map(|_| s).map_err(Into::into))
            .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        super::outln!("{}: {summary}", path.display());
        return Ok(None);
    }
    let name = args.output.as_ref().map_or_else(|| "generated".to_owned(), |p| p.display().to_string());
    let mut out = PcapWriter::new(Vec::new(), TsResolution::Nano).map_err(|e| fail(format!("{name}: {e}")))?;
    let summary = generate(&targets, &opts, &mut out).map_err(|e| fail(format!("{name}: {e}")))?;
    let bytes = out.into_inner().map_err(|e| fail(format!("{name}: {e}")))?;
    if let Some(path) = &args.output {
        std::fs::write(path, &bytes).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    }
    super::outln!("{name}: {summary}");
    let mut r = PcapReader::new(Cursor::new(bytes)).map_err(|e| fail(format!("{name}: {e}")))?;
    let mut frames = Vec::with_capacity(summary.packets as usize);
    while let Some(f) = r.next_frame().map_err(|e| fail(format!("{name}: {e}")))? {
        frames.push(f.to_vec());
    }
    Ok(Some(frames))
}
