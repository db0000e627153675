#![cfg(target_os = "linux")]
//! Live traffic, pktgen-style: transmit frames on an interface at a target rate (or
//! as fast as the TX ring drains), and a sink that counts what arrives.
//!
//! Both run over the AF_PACKET port ([`dataplane::port::af_packet`]): the
//! generator copies each frame into the TX ring and flushes a batch with one
//! `sendto`; the sink walks the RX ring in place and only counts. Reports are
//! returned; the caller prints them (`Display`).
//!
//! Pacing is by timestamps: the n-th frame is due at `start + n / rate`. The loop
//! sends every frame that is due (in batches of at most [`TX_BATCH`]), then waits for
//! the next one: sleeping when it is more than [`SPIN_BELOW`] away, spinning
//! otherwise (sleep alone overshoots by ~60 µs per wake-up; spinning alone burns a
//! core at low rates). A generator that falls behind (a slow ring) catches up by
//! sending the overdue frames in batches, so the average rate holds.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use dataplane::port::af_packet::{self, AfPacketError, AfPacketOptions, AfPacketPort, AfPacketQueue, Direction};
use dataplane::port::{BURST, Port};

/// Most frames queued per `sendto`.
pub const TX_BATCH: usize = 256;
/// Waits shorter than this are spun, longer ones slept (minus this margin).
pub const SPIN_BELOW: Duration = Duration::from_micros(200);
/// Frames per TX ring of the generator.
const GEN_RING: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LiveGenError {
    #[error(transparent)]
    Port(#[from] AfPacketError),
    #[error("cannot read capture {path}: {reason}")]
    Capture { path: String, reason: String },
    #[error("capture {path} is not Ethernet (link type {linktype})")]
    NotEthernet { path: String, linktype: String },
    #[error("nothing to send: no frames")]
    NoFrames,
    #[error("frame {index} is {len} bytes, larger than a TX slot of {interface} ({max} bytes)")]
    FrameTooLarge { index: usize, len: usize, max: usize, interface: String },
    #[error("looping needs a packet count or a duration, or it never ends")]
    Unbounded,
    #[error("rate must be at least 1 packet per second")]
    ZeroRate,
}

/// When to stop transmitting (whichever comes first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxOptions {
    /// Packets per second; `None` = as fast as the TX ring drains.
    pub rate_pps: Option<u64>,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Start over at the first frame after the last one (otherwise send them once).
    pub looped: bool,
}

/// What a transmission did.
#[derive(Clone, Debug, PartialEq)]
pub struct TxReport {
    /// Frames handed to the device.
    pub sent: u64,
    pub bytes: u64,
    /// From the first frame queued to the last flush.
    pub elapsed: Duration,
    pub achieved_pps: f64,
    /// Frames lost on the way out: the interface's `tx_dropped` counter grew by
    /// this much during the run (e.g. a veth whose peer's backlog was full), plus
    /// failed flushes.
    pub dropped: u64,
}

impl fmt::Display for TxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {} packets ({} bytes) in {:.3} s: {:.0} pps, {:.1} Mbit/s, dropped {}",
            self.sent,
            self.bytes,
            self.elapsed.as_secs_f64(),
            self.achieved_pps,
            self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e6,
            self.dropped
        )
    }
}

/// What a sink saw.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkReport {
    pub packets: u64,
    pub bytes: u64,
    /// Packets per second between the first and the last packet (0 with fewer than 2).
    pub pps: f64,
    /// First to last packet.
    pub active: Duration,
    /// Frames the kernel could not put in the ring (the sink was too slow).
    pub missed: u64,
}

impl fmt::Display for SinkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {} packets ({} bytes) over {:.3} s: {:.0} pps, missed {}",
            self.packets,
            self.bytes,
            self.active.as_secs_f64(),
            self.pps,
            self.missed
        )
    }
}

/// Read every frame of a pcap or pcapng capture with Ethernet link type (with
/// `dataplane::port::pcap`, the reader replay uses).
pub fn read_frames(path: &Path) -> Result<Vec<Vec<u8>>, LiveGenError> {
    use dataplane::port::pcap::{PcapError, PcapReader};
    let name = path.display().to_string();
    let conv = |e: PcapError| match e {
        PcapError::NotEthernet(lt) => LiveGenError::NotEthernet { path: name.clone(), linktype: lt.to_string() },
        other => LiveGenError::Capture { path: name.clone(), reason: other.to_string() },
    };
    let mut r = PcapReader::open(path).map_err(conv)?;
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().map_err(conv)? {
        frames.push(f.to_vec());
    }
    Ok(frames)
}

/// Transmit `frames` on `interface` as `opts` says. Blocks until done.
pub fn transmit(interface: &str, frames: &[Vec<u8>], opts: &TxOptions) -> Result<TxReport, LiveGenError> {
    if frames.is_empty() {
        return Err(LiveGenError::NoFrames);
    }
    if opts.looped && opts.count.is_none() && opts.duration.is_none() {
        return Err(LiveGenError::Unbounded);
    }
    if opts.rate_pps == Some(0) {
        return Err(LiveGenError::ZeroRate);
    }
    let popts = AfPacketOptions { ring_size: GEN_RING, direction: Direction::Tx, ..AfPacketOptions::default() };
    let mut q = AfPacketPort::open_with(interface, 1, &popts)?.remove(0);
    let max = q.max_tx_frame();
    if let Some((index, f)) = frames.iter().enumerate().find(|(_, f)| f.len() > max) {
        return Err(LiveGenError::FrameTooLarge { index, len: f.len(), max, interface: interface.to_owned() });
    }
    let limit = match (opts.count, opts.looped) {
        (Some(c), true) => c,
        (Some(c), false) => c.min(frames.len() as u64),
        (None, true) => u64::MAX,
        (None, false) => frames.len() as u64,
    };
    let before = af_packet::link_stats(interface).ok();
    let (sent, bytes, elapsed) = run_paced(&mut q, frames, limit, opts.rate_pps, opts.duration);
    // Let the ring drain so the device counters are final.
    let end = Instant::now() + Duration::from_secs(1);
    while q.tx_in_flight() > 0 && Instant::now() < end {
        q.flush();
        std::thread::sleep(Duration::from_micros(100));
    }
    let after = af_packet::link_stats(interface).ok();
    let dev_dropped = match (before, after) {
        (Some(b), Some(a)) => (a.tx_dropped.wrapping_sub(b.tx_dropped)) & 0xffff_ffff,
        _ => 0,
    };
    Ok(TxReport {
        sent,
        bytes,
        elapsed,
        achieved_pps: sent as f64 / elapsed.as_secs_f64().max(1e-9),
        dropped: dev_dropped + q.tx_errors(),
    })
}

/// The pacing loop: returns (frames sent, bytes, elapsed).
fn run_paced(
    q: &mut AfPacketQueue,
    frames: &[Vec<u8>],
    limit: u64,
    rate: Option<u64>,
    duration: Option<Duration>,
) -> (u64, u64, Duration) {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut bytes = 0u64;
    let mut idx = 0usize;
    while sent < limit {
        let el = start.elapsed();
        if duration.is_some_and(|d| el >= d) {
            break;
        }
        let due = match rate {
            Some(r) => ((el.as_nanos() * u128::from(r) / 1_000_000_000) as u64 + 1).min(limit),
            None => limit,
        };
        if due <= sent {
            // Next frame not due yet: sleep or spin until it is.
            let r = rate.unwrap_or(1) as u128;
            let next = Duration::from_nanos(((u128::from(sent) * 1_000_000_000) / r) as u64);
            let wait = next.saturating_sub(start.elapsed());
            if wait > SPIN_BELOW {
                std::thread::sleep(wait - SPIN_BELOW / 2);
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        let n = ((due - sent) as usize).min(TX_BATCH);
        let mut queued = 0;
        while queued < n {
            let f = &frames[idx];
            if !q.send_copy(f) {
                break; // ring full: flush, then continue (back-pressure, not loss)
            }
            bytes += f.len() as u64;
            idx += 1;
            if idx == frames.len() {
                idx = 0;
            }
            queued += 1;
        }
        q.flush();
        sent += queued as u64;
        if queued < n {
            std::thread::yield_now();
        }
    }
    (sent, bytes, start.elapsed())
}

/// Count every frame arriving on `interface` for `duration`.
pub fn sink(interface: &str, duration: Duration) -> Result<SinkReport, LiveGenError> {
    let popts = AfPacketOptions { ring_size: 8192, direction: Direction::Rx, ..AfPacketOptions::default() };
    let mut q = AfPacketPort::open_with(interface, 1, &popts)?.remove(0);
    Ok(count_for(&mut q, duration))
}

/// Count what `q` receives for `duration`.
pub fn count_for(q: &mut AfPacketQueue, duration: Duration) -> SinkReport {
    let start = Instant::now();
    let mut bufs = Vec::with_capacity(BURST);
    let (mut packets, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None, start);
    let mut idle = 0u32;
    while start.elapsed() < duration {
        let n = q.rx_burst(&mut bufs, BURST);
        if n == 0 {
            // Busy-poll while traffic flows; sleep in poll(2) when it does not.
            idle = idle.saturating_add(1);
            if idle > 1000 {
                q.wait_readable(Duration::from_millis(1));
            }
            continue;
        }
        idle = 0;
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        packets += n as u64;
        bytes += bufs.iter().map(|b| dataplane::port::PacketBuf::len(b) as u64).sum::<u64>();
        q.free(&mut bufs);
    }
    let active = first.map_or(Duration::ZERO, |f| last - f);
    let pps = if packets > 1 && !active.is_zero() { (packets - 1) as f64 / active.as_secs_f64() } else { 0.0 };
    SinkReport { packets, bytes, pps, active, missed: q.stats().rx_missed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l4lb_tests::netns::{self, Netns};

    fn udp_frame(i: u32) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
        let mut ip = vec![0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let mut sum: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&(1000 + (i % 100) as u16).to_be_bytes());
        f.extend_from_slice(&9u16.to_be_bytes());
        f.extend_from_slice(&[0, 26, 0, 0]);
        f.extend_from_slice(&[i as u8; 18]);
        f
    }

    #[test]
    fn bad_arguments_are_refused_before_opening_anything() {
        let f = vec![udp_frame(0)];
        assert!(matches!(transmit("lo", &[], &TxOptions::default()), Err(LiveGenError::NoFrames)));
        let unbounded = TxOptions { looped: true, ..TxOptions::default() };
        assert!(matches!(transmit("lo", &f, &unbounded), Err(LiveGenError::Unbounded)));
        let zero = TxOptions { rate_pps: Some(0), ..TxOptions::default() };
        assert!(matches!(transmit("lo", &f, &zero), Err(LiveGenError::ZeroRate)));
        let e = transmit("l4lb-nosuch0", &f, &TxOptions::default()).unwrap_err();
        assert!(e.to_string().contains("no such network interface"), "{e}");
    }

    #[test]
    fn captures_are_read_and_non_ethernet_refused() {
        let dir = std::env::temp_dir().join(format!("l4lb-livegen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("eth.pcap");
        let frames: Vec<Vec<u8>> = (0..5).map(udp_frame).collect();
        {
            let file = std::fs::File::create(&p).unwrap();
            let mut w = pcap_file::pcap::PcapWriter::new(file).unwrap();
            for f in &frames {
                w.write_packet(&pcap_file::pcap::PcapPacket::new(Duration::ZERO, f.len() as u32, f)).unwrap();
            }
        }
        assert_eq!(read_frames(&p).unwrap(), frames);
        let raw = dir.join("raw.pcap");
        {
            let file = std::fs::File::create(&raw).unwrap();
            let hdr = pcap_file::pcap::PcapHeader { datalink: pcap_file::DataLink::RAW, ..Default::default() };
            pcap_file::pcap::PcapWriter::with_header(file, hdr).unwrap();
        }
        assert!(matches!(read_frames(&raw), Err(LiveGenError::NotEthernet { .. })));
        assert!(matches!(read_frames(&dir.join("missing.pcap")), Err(LiveGenError::Capture { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two namespaces joined by a veth; the sink runs in one, the generator in the other.
    fn pair() -> Option<(Netns, Netns, String, String)> {
        if let Some(why) = netns::skip_reason() {
            eprintln!("skipped: {why}");
            return None;
        }
        let a = Netns::new("gen").unwrap();
        let b = Netns::new("sink").unwrap();
        let (ia, ib) = netns::veth_between(&a, &b, false).unwrap();
        Some((a, b, ia, ib))
    }

    #[test]
    fn paced_transmission_arrives_at_the_sink_at_the_asked_rate() {
        let Some((a, b, ia, ib)) = pair() else { return };
        let frames: Vec<Vec<u8>> = (0..100).map(udp_frame).collect();
        let popts = AfPacketOptions { ring_size: 8192, direction: Direction::Rx, ..AfPacketOptions::default() };
        let mut sinkq = b.enter(|| AfPacketPort::open_with(&ib, 1, &popts)).unwrap().unwrap().remove(0);
        let counter = std::thread::spawn(move || count_for(&mut sinkq, Duration::from_millis(2500)));
        std::thread::sleep(Duration::from_millis(100));
        let opts = TxOptions { rate_pps: Some(20_000), count: Some(20_000), looped: true, duration: None };
        let tx = a.enter(|| transmit(&ia, &frames, &opts)).unwrap().unwrap();
        let rx = counter.join().unwrap();
        assert_eq!(tx.sent, 20_000, "{tx}");
        let secs = tx.elapsed.as_secs_f64();
        assert!((0.9..1.2).contains(&secs), "20k packets at 20k pps took {secs} s");
        assert!((18_000.0..21_000.0).contains(&tx.achieved_pps), "{tx}");
        assert!(rx.packets >= 19_800 && rx.packets <= 20_000, "sink saw {} of 20000 ({rx})", rx.packets);
        assert_eq!(rx.bytes / rx.packets, 60, "{rx}");
        assert!((17_000.0..23_000.0).contains(&rx.pps), "sink rate {rx}");
    }

    #[test]
    fn unpaced_transmission_of_a_capture_once_sends_every_frame() {
        let Some((a, b, ia, ib)) = pair() else { return };
        let frames: Vec<Vec<u8>> = (0..5000).map(udp_frame).collect();
        let popts = AfPacketOptions { ring_size: 16384, direction: Direction::Rx, ..AfPacketOptions::default() };
        let mut sinkq = b.enter(|| AfPacketPort::open_with(&ib, 1, &popts)).unwrap().unwrap().remove(0);
        let counter = std::thread::spawn(move || count_for(&mut sinkq, Duration::from_millis(1500)));
        std::thread::sleep(Duration::from_millis(100));
        let tx = a.enter(|| transmit(&ia, &frames, &TxOptions::default())).unwrap().unwrap();
        let rx = counter.join().unwrap();
        assert_eq!(tx.sent, 5000, "{tx}");
        assert!(rx.packets + tx.dropped >= 5000 * 99 / 100, "sink {rx}, tx {tx}");
        assert!(rx.packets <= 5000);
    }
}
