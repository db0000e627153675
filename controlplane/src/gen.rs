//! `l4lb gen`: deterministic synthetic client traffic toward a list of targets
//! (the config's VIPs), pktgen-style, written as a pcap.
//!
//! What comes out, for a seed:
//! - `flows` flows (fewer if `packets < flows`), each toward one target picked at
//!   random, from a client address drawn in the client prefix of the target's
//!   family and a client port in 1024..=65535; every 5-tuple is distinct.
//! - Flow popularity follows Zipf(`zipf_s`): flow of rank `r` (1-based) gets a share
//!   of the packets proportional to `r^-s`, and at least one packet. The packet
//!   count is exact.
//! - Packets of all flows are interleaved by a seeded shuffle, so every flow's
//!   packets spread over the capture; a flow's own packets stay in order.
//! - TCP: SYN, then PSH|ACK data segments, then FIN|ACK (90% of flows) or RST|ACK
//!   (10%); sequence numbers advance with the data. `established_only` emits only
//!   PSH|ACK data (no SYN, FIN or RST) for throughput benches. A segment with no room
//!   for data (a 64-byte IPv6 frame) is a plain ACK. UDP: datagrams.
//! - Frame sizes (Ethernet header included, no FCS): IMIX 7:4:1 of 64/594/1518
//!   bytes capped at `mtu + 14`, or a fixed size; never below the headers' size.
//!   SYN/FIN/RST carry no payload.
//! - Timestamps `start_ns + k * 1e9 / rate_pps` for the k-th packet.
//! - Every packet is valid: IPv4 header checksum, TCP/UDP checksums, IPv6 payload
//!   length. IPv4 has DF set, TTL 64; IPv6 hop limit 64 and a per-flow flow label.
//!
//! Determinism: the output is a pure function of (targets, options). The PRNG
//! (SplitMix64) and the Zipf arithmetic (`ln`/`exp` from basic IEEE operations
//! only, no libm) are in this file, so a seed gives the same bytes on every
//! platform and with any dependency versions.

use std::collections::HashSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::port::pcap::{PcapError, PcapWriter};

/// One destination of generated traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenTarget {
    pub address: IpAddr,
    /// Destination port; 0 = any: each flow picks a port in 1..=65535.
    pub port: u16,
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u8,
}

/// Frame-size distribution (sizes include the Ethernet header, not the FCS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SizeMix {
    /// Simple IMIX: 64, 594 and 1518 bytes in proportion 7:4:1, capped at `mtu + 14`.
    #[default]
    Imix,
    /// Every data frame this size (capped at `mtu + 14`, at least the headers).
    Fixed(u16),
}

impl std::str::FromStr for SizeMix {
    type Err = String;

    /// `"imix"` or a frame size in bytes (60..=9216).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(SizeMix::Imix);
        }
        match s.parse::<u16>() {
            Ok(n) if (60..=9216).contains(&n) => Ok(SizeMix::Fixed(n)),
            _ => Err(format!("size must be \"imix\" or a frame size in bytes (60..=9216), not {s:?}")),
        }
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    /// Flows to spread the packets over.
    pub flows: u64,
    /// Packets to write, exactly.
    pub packets: u64,
    pub seed: u64,
    /// Packets per second: spacing of the timestamps.
    pub rate_pps: u64,
    /// Timestamp of the first packet, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    pub size: SizeMix,
    /// Largest IP packet (the config's `node.mtu`).
    pub mtu: u16,
    /// Zipf exponent of flow popularity (0 = uniform).
    pub zipf_s: f64,
    /// Only ACK/data packets: no SYN, FIN or RST.
    pub established_only: bool,
    /// Ethernet source (the router in front of the load balancer).
    pub src_mac: [u8; 6],
    /// Ethernet destination (the load balancer: the config's `node.mac`).
    pub dst_mac: [u8; 6],
    /// Clients of IPv4 targets come from this prefix.
    pub client_prefix_v4: (Ipv4Addr, u8),
    /// Clients of IPv6 targets come from this prefix.
    pub client_prefix_v6: (Ipv6Addr, u8),
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            flows: 1000,
            packets: 100_000,
            seed: 1,
            rate_pps: 1_000_000,
            start_ns: 1_700_000_000_000_000_000,
            size: SizeMix::Imix,
            mtu: 1500,
            zipf_s: 1.1,
            established_only: false,
            src_mac: [0x02, 0, 0, 0, 0, 0xfe],
            dst_mac: [0x02, 0, 0, 0, 0, 0x01],
            client_prefix_v4: (Ipv4Addr::new(172, 16, 0, 0), 12),
            client_prefix_v6: (Ipv6Addr::new(0xfd10, 0, 0, 0, 0, 0, 0, 0), 32),
        }
    }
}

/// What was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenSummary {
    pub packets: u64,
    /// Frame bytes.
    pub bytes: u64,
    /// Flows that got at least one packet.
    pub flows: u64,
    pub tcp_flows: u64,
    pub udp_flows: u64,
    pub ipv4_packets: u64,
    pub ipv6_packets: u64,
    pub syn: u64,
    pub fin: u64,
    pub rst: u64,
    /// Packets of the most popular flow.
    pub max_flow_packets: u64,
    /// Packets per target, in the order given.
    pub per_target_packets: Vec<u64>,
    /// Flows per target, in the order given.
    pub per_target_flows: Vec<u64>,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
}

impl std::fmt::Display for GenSummary {
    /// A readable multi-line summary for the terminal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.last_ts_ns.saturating_sub(self.first_ts_ns) as f64 / 1e9;
        writeln!(
            f,
            "{} packets, {} bytes, {} flows ({} tcp, {} udp) over {secs:.3} s",
            self.packets, self.bytes, self.flows, self.tcp_flows, self.udp_flows
        )?;
        writeln!(
            f,
            "ipv4 {} / ipv6 {} packets; syn {}, fin {}, rst {}; top flow {} packets",
            self.ipv4_packets, self.ipv6_packets, self.syn, self.fin, self.rst, self.max_flow_packets
        )?;
        for (i, (p, n)) in self.per_target_packets.iter().zip(&self.per_target_flows).enumerate() {
            writeln!(f, "  target {i}: {p} packets, {n} flows")?;
        }
        Ok(())
    }
}

/// Why generation could not run.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("gen: no targets (the config has no VIP)")]
    NoTargets,
    #[error("gen: target {index} has protocol {protocol}; only 6 (tcp) and 17 (udp) can be generated")]
    Protocol { index: usize, protocol: u8 },
    #[error("gen: {0}")]
    Option(&'static str),
    #[error("gen: client prefix too small for {flows} distinct flows")]
    ClientSpace { flows: u64 },
    #[error(transparent)]
    Pcap(#[from] PcapError),
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, passes BigCrush; fixed here
/// so a seed means the same stream everywhere.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift (bias below 2^-40 for our n).
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Natural logarithm of `x >= 1` from basic IEEE operations only (bit-exact on
/// every platform): x = m * 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh t.
fn det_ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let mut term = t;
    let mut sum = 0.0;
    let mut k = 1.0;
    for _ in 0..12 {
        sum += term / k;
        term *= t2;
        k += 2.0;
    }
    e as f64 * std::f64::consts::LN_2 + 2.0 * sum
}

/// e^y for `y <= 0` from basic IEEE operations only: y = k ln2 + r, Taylor on r.
fn det_exp(y: f64) -> f64 {
    // Cody-Waite split of ln 2 (fdlibm's): k * LN2_HI is exact for |k| < 2^11.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let k = (y / std::f64::consts::LN_2).round();
    if k < -1000.0 {
        return 0.0;
    }
    let r = (y - k * LN2_HI) - k * LN2_LO;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=20 {
        term = term * r / f64::from(i);
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// Per-flow state while generating.
#[derive(Clone, Debug)]
struct Flow {
    client: [u8; 16],
    server: [u8; 16],
    v6: bool,
    proto: u8,
    sport: u16,
    dport: u16,
    target: u32,
    total: u32,
    sent: u32,
    seq: u32,
    ack: u32,
    ident: u16,
    flow_label: u32,
    end_rst: bool,
}

const ETH: usize = 14;
const TCP_HDR: usize = 20;
const UDP_HDR: usize = 8;
const IMIX: [usize; 3] = [64, 594, 1518];
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Generate `opts.packets` packets toward `targets` into `out`.
pub fn generate<W: Write>(
    targets: &[GenTarget],
    opts: &GenOptions,
    out: &mut PcapWriter<W>,
) -> Result<GenSummary, GenError> {
    validate(targets, opts)?;
    let mut rng = SplitMix64(opts.seed);
    let n_flows = opts.flows.min(opts.packets);
    let mut flows = make_flows(targets, opts, n_flows, &mut rng)?;
    let counts = zipf_counts(n_flows, opts.packets, opts.zipf_s);
    for (f, c) in flows.iter_mut().zip(&counts) {
        f.total = *c;
    }

    // The packet schedule: flow index per packet, shuffled (Fisher-Yates).
    let mut slots: Vec<u32> = Vec::with_capacity(opts.packets as usize);
    for (i, c) in counts.iter().enumerate() {
        slots.extend(std::iter::repeat_n(i as u32, *c as usize));
    }
    for i in (1..slots.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        slots.swap(i, j);
    }

    let mut summary = GenSummary {
        flows: n_flows,
        per_target_packets: vec![0; targets.len()],
        per_target_flows: vec![0; targets.len()],
        max_flow_packets: counts.first().map_or(0, |c| u64::from(*c)),
        ..Default::default()
    };
    for f in &flows {
        summary.per_target_flows[f.target as usize] += 1;
        if f.proto == 6 {
            summary.tcp_flows += 1;
        } else {
            summary.udp_flows += 1;
        }
    }

    // Payload bytes: a fixed pseudo-random pattern, copied from an offset.
    let mut pattern = vec![0u8; 16 * 1024];
    for c in pattern.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
    let max_frame = usize::from(opts.mtu) + ETH;
    let mut frame = vec![0u8; max_frame.max(128)];
    frame[0..6].copy_from_slice(&opts.dst_mac);
    frame[6..12].copy_from_slice(&opts.src_mac);

    for (k, &fi) in slots.iter().enumerate() {
        let f = &mut flows[fi as usize];
        let ts = opts.start_ns + (u128::from(k as u64) * 1_000_000_000 / u128::from(opts.rate_pps)) as u64;
        let l3 = if f.v6 { 40 } else { 20 };
        let l4 = if f.proto == 6 { TCP_HDR } else { UDP_HDR };
        let hdrs = ETH + l3 + l4;
        let flags = if f.proto != 6 {
            0
        } else if opts.established_only {
            PSH | ACK
        } else if f.sent == 0 {
            SYN
        } else if f.sent + 1 == f.total {
            if f.end_rst { RST | ACK } else { FIN | ACK }
        } else {
            PSH | ACK
        };
        let payload = if flags & (SYN | FIN | RST) != 0 {
            0
        } else {
            let want = match opts.size {
                SizeMix::Imix => IMIX[imix_pick(rng.below(12))],
                SizeMix::Fixed(n) => usize::from(n),
            };
            want.min(max_frame).saturating_sub(hdrs)
        };
        // A segment the frame size leaves no room for data in (a 64-byte IPv6 TCP
        // frame) is a plain ACK: PSH without data reads as a duplicate ACK.
        let flags = if flags == PSH | ACK && payload == 0 { ACK } else { flags };
        let len = hdrs + payload;
        let poff = (f.seq as usize) % 4096;
        frame[hdrs..len].copy_from_slice(&pattern[poff..poff + payload]);
        let l4_len = l4 + payload;
        frame[12..14].copy_from_slice(if f.v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        write_ip(&mut frame[ETH..], f, l4_len);
        let l4buf = &mut frame[ETH + l3..len];
        if f.proto == 6 {
            write_tcp(l4buf, f, flags);
        } else {
            write_udp(l4buf, f);
        }
        let sum = pseudo_sum(f, l4_len) + sum32(&frame[ETH + l3..len]);
        let mut c = fold(sum);
        if f.proto == 17 && c == 0 {
            c = 0xffff; // RFC 768: a computed 0 is sent as all ones
        }
        let off = ETH + l3 + if f.proto == 6 { 16 } else { 6 };
        frame[off..off + 2].copy_from_slice(&c.to_be_bytes());

        out.write(ts, &frame[..len])?;

        // Advance the flow.
        f.sent += 1;
        f.ident = f.ident.wrapping_add(1);
        if flags & (SYN | FIN) != 0 {
            f.seq = f.seq.wrapping_add(1);
        }
        f.seq = f.seq.wrapping_add(payload as u32);
        summary.packets += 1;
        summary.bytes += len as u64;
        summary.per_target_packets[f.target as usize] += 1;
        if f.v6 {
            summary.ipv6_packets += 1;
        } else {
            summary.ipv4_packets += 1;
        }
        summary.syn += u64::from(flags & SYN != 0);
        summary.fin += u64::from(flags & FIN != 0);
        summary.rst += u64::from(flags & RST != 0);
        if k == 0 {
            summary.first_ts_ns = ts;
        }
        summary.last_ts_ns = ts;
    }
    out.flush()?;
    Ok(summary)
}

fn validate(targets: &[GenTarget], opts: &GenOptions) -> Result<(), GenError> {
    if targets.is_empty() {
        return Err(GenError::NoTargets);
    }
    if let Some((index, t)) = targets.iter().enumerate().find(|(_, t)| t.protocol != 6 && t.protocol != 17) {
        return Err(GenError::Protocol { index, protocol: t.protocol });
    }
    if opts.flows == 0 && opts.packets > 0 {
        return Err(GenError::Option("--flows must be at least 1"));
    }
    if opts.packets > u64::from(u32::MAX) {
        return Err(GenError::Option("--packets must be at most 4294967295"));
    }
    if opts.rate_pps == 0 {
        return Err(GenError::Option("--rate must be at least 1 packet per second"));
    }
    if !(opts.zipf_s.is_finite() && (0.0..=10.0).contains(&opts.zipf_s)) {
        return Err(GenError::Option("--zipf must be between 0 and 10"));
    }
    if !(68..=9200).contains(&opts.mtu) {
        return Err(GenError::Option("mtu must be between 68 and 9200"));
    }
    if opts.client_prefix_v4.1 > 32 || opts.client_prefix_v6.1 > 128 {
        return Err(GenError::Option("client prefix length out of range"));
    }
    // The last timestamp must fit a pcap record (seconds < 2^32).
    let span = u128::from(opts.packets) * 1_000_000_000 / u128::from(opts.rate_pps);
    if u128::from(opts.start_ns) + span >= (1u128 << 32) * 1_000_000_000 {
        return Err(GenError::Option("timestamps would pass the year 2106"));
    }
    Ok(())
}

/// 7:4:1 over 12 outcomes.
#[inline]
fn imix_pick(r: u64) -> usize {
    match r {
        0..=6 => 0,
        7..=10 => 1,
        _ => 2,
    }
}

/// Draw `n` flows with distinct 5-tuples.
fn make_flows(targets: &[GenTarget], opts: &GenOptions, n: u64, rng: &mut SplitMix64) -> Result<Vec<Flow>, GenError> {
    let mut flows = Vec::with_capacity(n as usize);
    let mut seen: HashSet<([u8; 16], u16, u32, u16)> = HashSet::with_capacity(n as usize);
    let (p4, l4) = opts.client_prefix_v4;
    let (p6, l6) = opts.client_prefix_v6;
    let mask4: u32 = if l4 == 0 { u32::MAX } else { (1u32 << (32 - u32::from(l4))).wrapping_sub(1) };
    let mask6: u128 = if l6 == 0 { u128::MAX } else { (1u128 << (128 - u32::from(l6))).wrapping_sub(1) };
    let base4 = u32::from(p4) & !mask4;
    let base6 = u128::from(p6) & !mask6;
    for _ in 0..n {
        let ti = rng.below(targets.len() as u64) as u32;
        let t = targets[ti as usize];
        let mut attempt = 0;
        let flow = loop {
            let (client, server, v6) = match t.address {
                IpAddr::V4(a) => {
                    let mut host = (rng.next_u64() as u32) & mask4;
                    if mask4 >= 3 && (host == 0 || host == mask4) {
                        host = 1; // neither the network nor the broadcast address
                    }
                    let mut c = [0u8; 16];
                    c[..4].copy_from_slice(&(base4 | host).to_be_bytes());
                    let mut s = [0u8; 16];
                    s[..4].copy_from_slice(&a.octets());
                    (c, s, false)
                }
                IpAddr::V6(a) => {
                    let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                    let mut host = r & mask6;
                    if mask6 >= 3 && host == 0 {
                        host = 1;
                    }
                    ((base6 | host).to_be_bytes(), a.octets(), true)
                }
            };
            let sport = 1024 + rng.below(65536 - 1024) as u16;
            let dport = if t.port == 0 { 1 + rng.below(65535) as u16 } else { t.port };
            if seen.insert((client, sport, ti, dport)) {
                break Flow {
                    client,
                    server,
                    v6,
                    proto: t.protocol,
                    sport,
                    dport,
                    target: ti,
                    total: 0,
                    sent: 0,
                    seq: rng.next_u64() as u32,
                    ack: (rng.next_u64() as u32).wrapping_add(1),
                    ident: rng.next_u64() as u16,
                    flow_label: (rng.next_u64() as u32) & 0xf_ffff,
                    end_rst: rng.below(10) == 0,
                };
            }
            attempt += 1;
            if attempt > 64 {
                return Err(GenError::ClientSpace { flows: n });
            }
        };
        flows.push(flow);
    }
    Ok(flows)
}

/// Packets per flow: each of `n` flows gets 1, the rest split by Zipf weights
/// (floor), and what floors leave goes one each to the most popular flows.
fn zipf_counts(n: u64, packets: u64, s: f64) -> Vec<u32> {
    if n == 0 {
        return Vec::new();
    }
    let weights: Vec<f64> = (1..=n).map(|r| det_exp(-s * det_ln(r as f64))).collect();
    let total: f64 = weights.iter().sum();
    let rest = packets - n;
    let mut counts: Vec<u32> = weights.iter().map(|w| 1 + (rest as f64 * w / total) as u32).collect();
    let given: u64 = counts.iter().map(|c| u64::from(*c)).sum();
    let mut left = packets.saturating_sub(given);
    let (mut i, len) = (0, counts.len());
    while left > 0 {
        counts[i % len] += 1;
        left -= 1;
        i += 1;
    }
    counts
}

/// IPv4 or IPv6 header at the start of `b`.
fn write_ip(b: &mut [u8], f: &Flow, l4_len: usize) {
    if f.v6 {
        let vtf: u32 = (6 << 28) | f.flow_label;
        b[0..4].copy_from_slice(&vtf.to_be_bytes());
        b[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        b[6] = f.proto;
        b[7] = 64;
        b[8..24].copy_from_slice(&f.client);
        b[24..40].copy_from_slice(&f.server);
    } else {
        b[0] = 0x45;
        b[1] = 0;
        b[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        b[4..6].copy_from_slice(&f.ident.to_be_bytes());
        b[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
        b[8] = 64;
        b[9] = f.proto;
        b[10..12].copy_from_slice(&[0, 0]);
        b[12..16].copy_from_slice(&f.client[..4]);
        b[16..20].copy_from_slice(&f.server[..4]);
        let c = fold(sum32(&b[..20]));
        b[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// TCP header (checksum zero; filled by the caller).
fn write_tcp(b: &mut [u8], f: &Flow, flags: u8) {
    b[0..2].copy_from_slice(&f.sport.to_be_bytes());
    b[2..4].copy_from_slice(&f.dport.to_be_bytes());
    b[4..8].copy_from_slice(&f.seq.to_be_bytes());
    let ack = if flags & ACK != 0 { f.ack } else { 0 };
    b[8..12].copy_from_slice(&ack.to_be_bytes());
    b[12] = 5 << 4;
    b[13] = flags;
    b[14..16].copy_from_slice(&64240u16.to_be_bytes());
    b[16..20].copy_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
}

/// UDP header (checksum zero; filled by the caller).
fn write_udp(b: &mut [u8], f: &Flow) {
    b[0..2].copy_from_slice(&f.sport.to_be_bytes());
    b[2..4].copy_from_slice(&f.dport.to_be_bytes());
    let len = b.len() as u16;
    b[4..6].copy_from_slice(&len.to_be_bytes());
    b[6..8].copy_from_slice(&[0, 0]);
}

/// Pseudo-header sum (RFC 793 / RFC 8200 section 8.1).
fn pseudo_sum(f: &Flow, l4_len: usize) -> u64 {
    let addrs = if f.v6 { 16 } else { 4 };
    sum32(&f.client[..addrs]) + sum32(&f.server[..addrs]) + u64::from(f.proto) + l4_len as u64
}

/// One's-complement sum of big-endian 32-bit words (odd tail zero-padded); folding
/// it to 16 bits gives the Internet checksum sum (RFC 1071).
#[inline]
fn sum32(data: &[u8]) -> u64 {
    let mut s = 0u64;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        s += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let r = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..r.len()].copy_from_slice(r);
    s + u64::from(u32::from_be_bytes(tail))
}

/// Fold to 16 bits and complement.
#[inline]
fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::port::pcap::{PcapReader, TsResolution};
    use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
    use std::collections::HashMap;

    type Key = (IpAddr, u16, IpAddr, u16, u8);

    /// One decoded frame.
    #[derive(Debug)]
    struct Pkt {
        ts: u64,
        len: usize,
        key: Key,
        tcp_flags: Option<(bool, bool, bool, bool, bool)>, // syn, ack, fin, rst, psh
    }

    fn gen_bytes(targets: &[GenTarget], opts: &GenOptions) -> (Vec<u8>, GenSummary) {
        let mut w = PcapWriter::new(Vec::new(), TsResolution::Nano).unwrap();
        let s = generate(targets, opts, &mut w).unwrap();
        (w.into_inner().unwrap(), s)
    }

    /// Decode with etherparse and verify every checksum and length independently.
    fn decode(bytes: &[u8]) -> Vec<Pkt> {
        let mut r = PcapReader::new(bytes).unwrap();
        let mut out = Vec::new();
        while let Some(frame) = r.next_frame().unwrap() {
            let len = frame.len();
            let h = PacketHeaders::from_ethernet_slice(frame).expect("frame parses");
            let payload = h.payload.slice();
            let (src, dst, proto): (IpAddr, IpAddr, u8) = match h.net.as_ref().expect("ip header") {
                NetHeaders::Ipv4(ip, _) => {
                    assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "ipv4 header checksum");
                    assert_eq!(usize::from(ip.total_len) + 14, len, "ipv4 total length");
                    assert!(ip.dont_fragment);
                    (ip.source.into(), ip.destination.into(), ip.protocol.0)
                }
                NetHeaders::Ipv6(ip, _) => {
                    assert_eq!(usize::from(ip.payload_length) + 54, len, "ipv6 payload length");
                    (ip.source.into(), ip.destination.into(), ip.next_header.0)
                }
            };
            let net = h.net.as_ref().unwrap();
            let (sport, dport, flags) = match h.transport.as_ref().expect("transport header") {
                TransportHeader::Tcp(t) => {
                    let c = match net {
                        NetHeaders::Ipv4(ip, _) => t.calc_checksum_ipv4(ip, payload).unwrap(),
                        NetHeaders::Ipv6(ip, _) => t.calc_checksum_ipv6(ip, payload).unwrap(),
                    };
                    assert_eq!(t.checksum, c, "tcp checksum");
                    (t.source_port, t.destination_port, Some((t.syn, t.ack, t.fin, t.rst, t.psh)))
                }
                TransportHeader::Udp(u) => {
                    let c = match net {
                        NetHeaders::Ipv4(ip, _) => u.calc_checksum_ipv4(ip, payload).unwrap(),
                        NetHeaders::Ipv6(ip, _) => u.calc_checksum_ipv6(ip, payload).unwrap(),
                    };
                    assert_eq!(u.checksum, c, "udp checksum");
                    assert_eq!(usize::from(u.length), 8 + payload.len());
                    (u.source_port, u.destination_port, None)
                }
                other => panic!("unexpected transport {other:?}"),
            };
            out.push(Pkt { ts: r.ts_ns(), len, key: (src, sport, dst, dport, proto), tcp_flags: flags });
        }
        out
    }

    fn targets() -> Vec<GenTarget> {
        vec![
            GenTarget { address: "198.51.100.10".parse().unwrap(), port: 80, protocol: 6 },
            GenTarget { address: "198.51.100.11".parse().unwrap(), port: 53, protocol: 17 },
            GenTarget { address: "2001:db8::10".parse().unwrap(), port: 443, protocol: 6 },
            GenTarget { address: "2001:db8::11".parse().unwrap(), port: 0, protocol: 17 },
        ]
    }

    fn opts(flows: u64, packets: u64, seed: u64) -> GenOptions {
        GenOptions { flows, packets, seed, ..Default::default() }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let t = targets();
        let (a, sa) = gen_bytes(&t, &opts(200, 5000, 7));
        let (b, sb) = gen_bytes(&t, &opts(200, 5000, 7));
        let (c, _) = gen_bytes(&t, &opts(200, 5000, 8));
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_ne!(a, c);
    }

    /// Pins the output for one seed: a change here means captures made with an
    /// older l4lb no longer match (update the docs' determinism note if intended).
    #[test]
    fn output_is_pinned_for_a_seed() {
        let (bytes, s) = gen_bytes(&targets(), &opts(50, 1000, 42));
        // FNV-1a 64 of the whole capture.
        let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
        assert_eq!((s.packets, s.bytes), (1000, PINNED_BYTES));
        assert_eq!(h, PINNED_FNV, "{h:#x}");
    }
    const PINNED_BYTES: u64 = 350_000;
    const PINNED_FNV: u64 = 0x736b_56b9_5138_7958;

    #[test]
    fn every_frame_is_valid_and_count_is_exact() {
        for (flows, packets) in [(1, 1), (10, 10), (100, 3000), (500, 200), (3, 0)] {
            let (bytes, s) = gen_bytes(&targets(), &opts(flows, packets, 3));
            let pkts = decode(&bytes);
            assert_eq!(pkts.len() as u64, packets);
            assert_eq!(s.packets, packets);
            assert_eq!(s.flows, flows.min(packets));
            assert_eq!(s.bytes, pkts.iter().map(|p| p.len as u64).sum::<u64>());
            assert_eq!(s.per_target_packets.iter().sum::<u64>(), packets);
            let distinct: HashSet<Key> = pkts.iter().map(|p| p.key).collect();
            assert_eq!(distinct.len() as u64, s.flows, "every flow has its own 5-tuple");
        }
    }

    #[test]
    fn tcp_flows_open_with_syn_and_close_with_fin_or_rst() {
        let t = vec![GenTarget { address: "198.51.100.10".parse().unwrap(), port: 80, protocol: 6 }];
        let (bytes, s) = gen_bytes(&t, &opts(300, 6000, 11));
        let pkts = decode(&bytes);
        let mut by_flow: HashMap<Key, Vec<&Pkt>> = HashMap::new();
        for p in &pkts {
            by_flow.entry(p.key).or_default().push(p);
        }
        let (mut fins, mut rsts) = (0, 0);
        for (k, ps) in &by_flow {
            let f: Vec<_> = ps.iter().map(|p| p.tcp_flags.unwrap()).collect();
            assert!(f[0].0 && !f[0].1, "{k:?} starts with a bare SYN");
            assert!(f[1..].iter().all(|x| !x.0 && x.1), "{k:?}: later packets ACK, no SYN");
            if f.len() >= 2 {
                let last = f[f.len() - 1];
                assert!(last.2 ^ last.3, "{k:?} ends with FIN or RST");
                if last.2 {
                    fins += 1
                } else {
                    rsts += 1
                }
                assert!(f[1..f.len() - 1].iter().all(|x| x.4 && !x.2 && !x.3), "{k:?}: data in between");
            }
        }
        assert!(fins > 5 * rsts && rsts > 0, "fins {fins} rsts {rsts}");
        assert_eq!((s.syn, s.fin, s.rst), (300, fins, rsts));
    }

    #[test]
    fn established_only_has_no_handshake() {
        let mut o = opts(100, 2000, 5);
        o.established_only = true;
        let (bytes, s) = gen_bytes(&targets(), &o);
        let pkts = decode(&bytes);
        assert_eq!((s.syn, s.fin, s.rst), (0, 0, 0));
        for p in &pkts {
            let Some(f) = p.tcp_flags else { continue };
            assert!(!f.0 && !f.2 && !f.3 && f.1);
            // PSH exactly when the segment carries data (a 64-byte IPv6 frame has no room).
            let hdrs = if p.key.0.is_ipv6() { 74 } else { 54 };
            assert_eq!(f.4, p.len > hdrs, "{p:?}");
        }
        assert!(pkts.iter().any(|p| p.tcp_flags.is_some_and(|f| !f.4)), "some IPv6 64-byte frames");
    }

    #[test]
    fn zipf_skew_is_visible() {
        let (bytes, s) = gen_bytes(&targets(), &opts(1000, 50_000, 9));
        let mut per: HashMap<Key, u64> = HashMap::new();
        for p in decode(&bytes) {
            *per.entry(p.key).or_default() += 1;
        }
        let mut counts: Vec<u64> = per.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let (top, median) = (counts[0], counts[counts.len() / 2]);
        assert_eq!(top, s.max_flow_packets);
        assert!(top > 100 * median, "top {top} median {median}");
        // Uniform popularity: no such skew.
        let mut o = opts(100, 10_000, 9);
        o.zipf_s = 0.0;
        let (_, s) = gen_bytes(&targets(), &o);
        assert_eq!(s.max_flow_packets, 100);
    }

    #[test]
    fn zipf_counts_follow_the_law() {
        let c = zipf_counts(1000, 1_000_000, 1.0);
        assert_eq!(c.iter().map(|x| u64::from(*x)).sum::<u64>(), 1_000_000);
        // r^-1: rank 1 has twice rank 2 and ten times rank 10 (within rounding).
        let r = |a: usize, b: usize| f64::from(c[a]) / f64::from(c[b]);
        assert!((r(0, 1) - 2.0).abs() < 0.01 && (r(0, 9) - 10.0).abs() < 0.05, "{:?}", &c[..10]);
        assert!(c.iter().all(|x| *x >= 1));
    }

    #[test]
    fn det_math_matches_std() {
        for x in [1.0, 2.0, 3.0, 10.0, 1234.5, 1e6, 4e9] {
            assert!((det_ln(x) - f64::ln(x)).abs() < 1e-13 * f64::ln(x).max(1.0), "ln {x}");
        }
        for y in [0.0, -0.1, -1.0, -7.5, -30.0, -300.0] {
            let e = f64::exp(y);
            assert!((det_exp(y) - e).abs() <= 1e-14 * e, "exp {y}");
        }
    }

    #[test]
    fn clients_follow_the_target_family_and_prefix() {
        let (bytes, _) = gen_bytes(&targets(), &opts(400, 4000, 13));
        let (mut v4, mut v6) = (0, 0);
        for p in decode(&bytes) {
            match (p.key.0, p.key.2) {
                (IpAddr::V4(c), IpAddr::V4(_)) => {
                    assert_eq!(c.octets()[0], 172);
                    assert_eq!(c.octets()[1] & 0xf0, 16);
                    v4 += 1;
                }
                (IpAddr::V6(c), IpAddr::V6(_)) => {
                    assert_eq!(&c.segments()[..2], &[0xfd10, 0]);
                    v6 += 1;
                }
                other => panic!("family mix {other:?}"),
            }
            assert!(p.key.1 >= 1024);
        }
        assert!(v4 > 0 && v6 > 0);
    }

    #[test]
    fn port_zero_targets_get_many_ports() {
        let t = vec![GenTarget { address: "2001:db8::11".parse().unwrap(), port: 0, protocol: 17 }];
        let (bytes, _) = gen_bytes(&t, &opts(100, 500, 1));
        let ports: HashSet<u16> = decode(&bytes).iter().map(|p| p.key.3).collect();
        assert!(ports.len() > 90, "{}", ports.len());
    }

    #[test]
    fn sizes_and_timestamps() {
        let (bytes, s) = gen_bytes(&targets(), &opts(50, 6000, 21));
        let pkts = decode(&bytes);
        for (k, p) in pkts.iter().enumerate() {
            assert_eq!(p.ts, 1_700_000_000_000_000_000 + k as u64 * 1000);
            assert!(p.len <= 1514);
        }
        assert_eq!(s.last_ts_ns, 1_700_000_000_000_000_000 + 5999 * 1000);
        // IMIX: 7:4:1 of small/medium/large among data frames.
        let data: Vec<usize> =
            pkts.iter().filter(|p| p.tcp_flags.is_none_or(|f| !f.0 && !f.2 && !f.3)).map(|p| p.len).collect();
        let small = data.iter().filter(|l| **l <= 94).count() as f64 / data.len() as f64;
        let large = data.iter().filter(|l| **l == 1514).count() as f64 / data.len() as f64;
        assert!((small - 7.0 / 12.0).abs() < 0.03, "small {small}");
        assert!((large - 1.0 / 12.0).abs() < 0.02, "large {large}");

        let mut o = opts(10, 100, 1);
        o.size = SizeMix::Fixed(1000);
        o.established_only = true;
        o.rate_pps = 10;
        let (bytes, _) = gen_bytes(&targets(), &o);
        let pkts = decode(&bytes);
        assert!(pkts.iter().all(|p| p.len == 1000));
        assert_eq!(pkts[1].ts - pkts[0].ts, 100_000_000);
        o.size = SizeMix::Fixed(9000);
        o.mtu = 1280;
        let (bytes, _) = gen_bytes(&targets(), &o);
        assert!(decode(&bytes).iter().all(|p| p.len == 1294));
    }

    /// Independent check with tshark (checksum validation on), when installed.
    #[test]
    fn tshark_finds_nothing_wrong() {
        if std::process::Command::new("tshark").arg("-v").output().is_err() {
            println!("skipped: tshark not installed");
            return;
        }
        struct Tmp(std::path::PathBuf);
        impl Drop for Tmp {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let tmp = Tmp(std::env::temp_dir().join(format!("l4lb-gen-test-{}.pcap", std::process::id())));
        // The payload is random bytes: keep application dissectors (which would call it
        // malformed DNS, HTTP or TLS) out of the way; the check is about L2-L4.
        let mut t = targets();
        t[3].port = 7777;
        let (bytes, _) = gen_bytes(&t, &opts(300, 3000, 77));
        std::fs::write(&tmp.0, bytes).unwrap();
        let run = |filter: &str| {
            let out = std::process::Command::new("tshark")
                .args(["-r", tmp.0.to_str().unwrap(), "-n"])
                .args(["--disable-protocol", "dns", "--disable-protocol", "http", "--disable-protocol", "tls"])
                .args(["--disable-protocol", "rtcp", "--disable-protocol", "rtp"])
                .args(["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"])
                .args(["-o", "udp.check_checksum:TRUE", "-Y", filter])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        assert_eq!(run("frame"), 3000);
        assert_eq!(run("ip.checksum.status == \"Good\" || ipv6"), 3000);
        let bad = "ip.checksum.status != \"Good\" || tcp.checksum.status != \"Good\" \
                   || udp.checksum.status != \"Good\" || _ws.malformed || _ws.expert.severity == \"error\"";
        assert_eq!(run(bad), 0);
    }

    /// Release builds only (debug is ~20x slower): `cargo test --release -p controlplane million`.
    #[cfg(not(debug_assertions))]
    #[test]
    fn million_packets_in_a_few_seconds() {
        let mut w = PcapWriter::new(std::io::sink(), TsResolution::Micro).unwrap();
        let t0 = std::time::Instant::now();
        let s = generate(&targets(), &opts(100_000, 1_000_000, 1), &mut w).unwrap();
        let dt = t0.elapsed();
        println!("1M packets, 100k flows: {dt:?} ({:.1} Mpps, {} MB)", 1.0 / dt.as_secs_f64(), s.bytes >> 20);
        assert_eq!(s.packets, 1_000_000);
        assert!(dt.as_secs_f64() < 5.0, "{dt:?}");
    }

    #[test]
    fn size_mix_parses_and_summary_prints() {
        assert_eq!("IMIX".parse::<SizeMix>(), Ok(SizeMix::Imix));
        assert_eq!("128".parse::<SizeMix>(), Ok(SizeMix::Fixed(128)));
        assert!("12".parse::<SizeMix>().is_err() && "big".parse::<SizeMix>().is_err());
        let (_, s) = gen_bytes(&targets(), &opts(10, 100, 1));
        let text = s.to_string();
        assert!(text.starts_with("100 packets, "), "{text}");
        assert_eq!(text.lines().count(), 2 + 4);
    }

    #[test]
    fn bad_input_is_refused() {
        let mut w = PcapWriter::new(Vec::new(), TsResolution::Micro).unwrap();
        assert!(matches!(generate(&[], &opts(1, 1, 1), &mut w), Err(GenError::NoTargets)));
        let t = [GenTarget { address: "10.0.0.1".parse().unwrap(), port: 1, protocol: 1 }];
        assert!(matches!(generate(&t, &opts(1, 1, 1), &mut w), Err(GenError::Protocol { index: 0, protocol: 1 })));
        let mut o = opts(0, 10, 1);
        assert!(matches!(generate(&targets(), &o, &mut w), Err(GenError::Option(_))));
        o.flows = 1;
        o.rate_pps = 0;
        assert!(matches!(generate(&targets(), &o, &mut w), Err(GenError::Option(_))));
        // A /31 of clients toward one port cannot hold a million distinct flows.
        let mut o = opts(1_000_000, 1_000_000, 1);
        o.client_prefix_v4 = (Ipv4Addr::new(10, 0, 0, 0), 31);
        let t = [GenTarget { address: "10.0.0.1".parse().unwrap(), port: 80, protocol: 6 }];
        assert!(matches!(generate(&t, &o, &mut w), Err(GenError::ClientSpace { .. })));
        assert_eq!(w.packets(), 0);
    }
}
