//! Stand-alone driver for `controlplane::live_gen` until `l4lb gen` grows live
//! options: used by `lab/bench-nft.sh`.
//!
//! ```text
//! live_gen transmit --interface IF --input FILE.pcap [--rate PPS] [--count N] [--duration SECS] [--loop]
//! live_gen sink --interface IF --duration SECS
//! live_gen synth --output FILE.pcap --src-mac MAC --dst-mac MAC --src-base 172.16.0.100 --sources 100 \
//!                --dst 198.51.100.10 --dport 80 --flows 1000 [--size 60]
//! live_gen forward --interface IF --vip 198.51.100.10 --backends 10.1.0.11,10.1.0.12 \
//!                  --src-mac MAC --dst-mac MAC --duration SECS
//! ```
//! `forward` is a minimal AF_PACKET forwarder (not l4lb's pipeline): TCP to the VIP has
//! its destination rewritten to a backend (by source address and port), checksums
//! updated incrementally, MACs set, and is sent back out; everything else is freed.
//! It measures what the AF_PACKET port itself costs in the lab's path.
//! `transmit`, `sink` and `forward` print the report and a last line `RESULT key=value ...`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use controlplane::live_gen::{self, TxOptions};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send the frames of a capture on an interface.
    Transmit {
        #[arg(long)]
        interface: String,
        #[arg(long)]
        input: PathBuf,
        /// Packets per second (default: as fast as possible).
        #[arg(long)]
        rate: Option<u64>,
        #[arg(long)]
        count: Option<u64>,
        /// Seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Start over after the last frame.
        #[arg(long = "loop")]
        looped: bool,
    },
    /// Count frames arriving on an interface.
    Sink {
        #[arg(long)]
        interface: String,
        /// Seconds.
        #[arg(long)]
        duration: f64,
    },
    /// Forward TCP to a VIP to backends by rewriting the destination (see above).
    Forward {
        #[arg(long)]
        interface: String,
        #[arg(long)]
        vip: Ipv4Addr,
        #[arg(long, value_delimiter = ',')]
        backends: Vec<Ipv4Addr>,
        #[arg(long)]
        src_mac: String,
        #[arg(long)]
        dst_mac: String,
        /// Seconds.
        #[arg(long)]
        duration: f64,
        /// Sleep in poll(2) after 200 empty polls instead of busy-polling.
        #[arg(long)]
        sleep_when_idle: bool,
    },
    /// Write a capture of 64-byte TCP ACK frames (many flows) toward one address.
    Synth {
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        src_mac: String,
        #[arg(long)]
        dst_mac: String,
        #[arg(long)]
        src_base: Ipv4Addr,
        #[arg(long, default_value_t = 100)]
        sources: u32,
        #[arg(long)]
        dst: Ipv4Addr,
        #[arg(long, default_value_t = 80)]
        dport: u16,
        #[arg(long, default_value_t = 1000)]
        flows: u32,
        /// Frame size without FCS (at least 54).
        #[arg(long, default_value_t = 60)]
        size: usize,
    },
}

fn main() {
    let args = Args::parse();
    let res = match args.cmd {
        Cmd::Transmit { interface, input, rate, count, duration, looped } => (|| {
            let frames = live_gen::read_frames(&input)?;
            let opts = TxOptions { rate_pps: rate, count, duration: duration.map(Duration::from_secs_f64), looped };
            let r = live_gen::transmit(&interface, &frames, &opts)?;
            println!("{r}");
            println!(
                "RESULT sent={} bytes={} elapsed={:.6} pps={:.0} dropped={}",
                r.sent,
                r.bytes,
                r.elapsed.as_secs_f64(),
                r.achieved_pps,
                r.dropped
            );
            Ok::<(), live_gen::LiveGenError>(())
        })()
        .map_err(|e| e.to_string()),
        Cmd::Sink { interface, duration } => live_gen::sink(&interface, Duration::from_secs_f64(duration))
            .map(|r| {
                println!("{r}");
                println!(
                    "RESULT packets={} bytes={} active={:.6} pps={:.0} missed={}",
                    r.packets,
                    r.bytes,
                    r.active.as_secs_f64(),
                    r.pps,
                    r.missed
                );
            })
            .map_err(|e| e.to_string()),
        Cmd::Forward { interface, vip, backends, src_mac, dst_mac, duration, sleep_when_idle } => {
            forward(&interface, vip, &backends, &src_mac, &dst_mac, Duration::from_secs_f64(duration), sleep_when_idle)
        }
        Cmd::Synth { output, src_mac, dst_mac, src_base, sources, dst, dport, flows, size } => {
            synth(&output, &src_mac, &dst_mac, src_base, sources, dst, dport, flows, size)
        }
    };
    if let Err(e) = res {
        eprintln!("live_gen: {e}");
        std::process::exit(1);
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC address {s:?}"));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC address {s:?}"))?;
    }
    Ok(mac)
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

#[allow(clippy::too_many_arguments)]
fn synth(
    output: &PathBuf,
    src_mac: &str,
    dst_mac: &str,
    src_base: Ipv4Addr,
    sources: u32,
    dst: Ipv4Addr,
    dport: u16,
    flows: u32,
    size: usize,
) -> Result<(), String> {
    let (smac, dmac) = (parse_mac(src_mac)?, parse_mac(dst_mac)?);
    let size = size.max(54);
    let file = std::fs::File::create(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let mut w = pcap_file::pcap::PcapWriter::new(file).map_err(|e| e.to_string())?;
    for i in 0..flows {
        let src = Ipv4Addr::from(u32::from(src_base) + i % sources.max(1));
        let sport = 1024 + (i.wrapping_mul(7919) % 60_000) as u16;
        let mut f = Vec::with_capacity(size);
        f.extend_from_slice(&dmac);
        f.extend_from_slice(&smac);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (size - 14) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&(i as u16).to_be_bytes());
        ip.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let c = fold(sum16(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&sport.to_be_bytes());
        tcp.extend_from_slice(&dport.to_be_bytes());
        tcp.extend_from_slice(&(0x1000_0000u32 + i).to_be_bytes()); // seq
        tcp.extend_from_slice(&1u32.to_be_bytes()); // ack
        tcp.extend_from_slice(&[0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]); // doff 5, ACK, window
        tcp.resize(size - 34, 0x61);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&dst.octets());
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        let c = fold(sum16(&pseudo) + sum16(&tcp));
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&tcp);
        let p = pcap_file::pcap::PcapPacket::new(Duration::ZERO, f.len() as u32, &f);
        w.write_packet(&p).map_err(|e| e.to_string())?;
    }
    println!("wrote {flows} frames of {size} bytes to {}", output.display());
    Ok(())
}

/// RFC 1624 eq. 3: update checksum `hc` for a 16-bit word changing from `m` to `m2`.
fn csum_update(hc: u16, m: u16, m2: u16) -> u16 {
    fold(u32::from(!hc) + u32::from(!m) + u32::from(m2))
}

fn forward(
    interface: &str,
    vip: Ipv4Addr,
    backends: &[Ipv4Addr],
    src_mac: &str,
    dst_mac: &str,
    duration: Duration,
    sleep_when_idle: bool,
) -> Result<(), String> {
    use dataplane::port::af_packet::AfPacketPort;
    use dataplane::port::{BURST, PacketBuf, Port};
    if backends.is_empty() {
        return Err("no backends".into());
    }
    let (smac, dmac) = (parse_mac(src_mac)?, parse_mac(dst_mac)?);
    let mut q = AfPacketPort::open(interface, 1, 4096).map_err(|e| e.to_string())?.remove(0);
    let vip = vip.octets();
    let mut rx = Vec::with_capacity(BURST);
    let mut tx = Vec::with_capacity(BURST);
    let mut other = Vec::with_capacity(BURST);
    let start = std::time::Instant::now();
    let (mut first, mut last) = (None, start);
    // Time spent on non-empty bursts (receive, rewrite, transmit): the forwarder's
    // capacity is about packets / busy time.
    let mut busy = Duration::ZERO;
    let mut idle = 0u32;
    while start.elapsed() < duration {
        if q.rx_burst(&mut rx, BURST) == 0 {
            // Busy-poll (as l4lb's workers do), or with --sleep-when-idle spin a
            // little, then sleep in poll(2).
            idle += 1;
            if sleep_when_idle && idle > 200 {
                q.wait_readable(Duration::from_millis(1));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        idle = 0;
        let now = std::time::Instant::now();
        first.get_or_insert(now);
        last = now;
        for mut b in rx.drain(..) {
            let d = b.data_mut();
            let ours =
                d.len() >= 54 && d[12..14] == [8, 0] && d[14] == 0x45 && d[23] == 6 && d[30..34] == vip && d[22] > 1;
            if !ours {
                other.push(b);
                continue;
            }
            let sport = u16::from_be_bytes([d[34], d[35]]);
            let h = u32::from_be_bytes([d[26], d[27], d[28], d[29]]).wrapping_mul(0x9e37_79b1) ^ u32::from(sport);
            let be = backends[(h.wrapping_mul(0x85eb_ca6b) >> 16) as usize % backends.len()].octets();
            let mut ipc = u16::from_be_bytes([d[24], d[25]]);
            let mut tcpc = u16::from_be_bytes([d[50], d[51]]);
            for k in 0..2 {
                let old = u16::from_be_bytes([d[30 + 2 * k], d[31 + 2 * k]]);
                let new = u16::from_be_bytes([be[2 * k], be[2 * k + 1]]);
                ipc = csum_update(ipc, old, new);
                tcpc = csum_update(tcpc, old, new);
            }
            let old_ttl = u16::from_be_bytes([d[22], d[23]]);
            d[22] -= 1;
            ipc = csum_update(ipc, old_ttl, u16::from_be_bytes([d[22], d[23]]));
            d[30..34].copy_from_slice(&be);
            d[24..26].copy_from_slice(&ipc.to_be_bytes());
            d[50..52].copy_from_slice(&tcpc.to_be_bytes());
            d[0..6].copy_from_slice(&dmac);
            d[6..12].copy_from_slice(&smac);
            tx.push(b);
        }
        q.tx_burst(&mut tx);
        q.to_host(&mut other);
        busy += now.elapsed();
    }
    let st = q.stats();
    let active = first.map_or(Duration::ZERO, |f| last - f).as_secs_f64().max(1e-9);
    println!(
        "forwarded {} of {} packets over {:.3} s: {:.0} pps, to host {}, tx dropped {}, rx missed {}",
        st.tx_packets,
        st.rx_packets,
        active,
        st.tx_packets as f64 / active,
        st.host_packets,
        st.tx_dropped,
        st.rx_missed
    );
    let busy_s = busy.as_secs_f64().max(1e-9);
    println!(
        "busy {:.3} s ({:.0}% of the active time): {:.0} ns per packet, capacity about {:.0} pps",
        busy_s,
        100.0 * busy_s / active,
        busy_s * 1e9 / st.rx_packets.max(1) as f64,
        st.rx_packets as f64 / busy_s
    );
    println!(
        "RESULT rx={} tx={} active={active:.6} pps={:.0} tx_dropped={} rx_missed={} busy={busy_s:.6}",
        st.rx_packets,
        st.tx_packets,
        st.tx_packets as f64 / active,
        st.tx_dropped,
        st.rx_missed
    );
    Ok(())
}
