//! The DPDK port against real DPDK virtual devices (root only; feature `dpdk`).
//!
//! The EAL initialises once per process, so every DPDK check runs inside one
//! `#[test]`, in sequence, on one EAL with two vdevs:
//! - `net_ring0`: each queue's TX ring is its RX ring (loopback), 16 queue pairs;
//! - `net_pcap0,rx_pcap=IN,tx_pcap=OUT`: reads a capture we write, writes one we read back.

#![cfg(feature = "dpdk")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dataplane::port::dpdk::{DpdkError, DpdkPort, DpdkPortConfig, DpdkQueue, Eal, Mbuf};
use dataplane::port::{BURST, HEADROOM, PacketBuf, Port};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// A scratch directory removed on drop, even when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("l4lb-dpdk-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // The EAL's runtime directory for our --file-prefix.
        let _ = std::fs::remove_dir_all(runtime_dir());
    }
}

fn file_prefix() -> String {
    format!("l4lb-test-{}", std::process::id())
}

fn runtime_dir() -> PathBuf {
    Path::new("/var/run/dpdk").join(file_prefix())
}

/// A deterministic Ethernet frame of `len` bytes, distinct per `seq`.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]); // dst
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]); // src
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    let mut x = seq.wrapping_mul(2_654_435_761) | 1;
    while f.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f.truncate(len);
    f
}

/// Frame sizes for the capture: minimum, typical and full-size frames, and one
/// larger than a standard MTU that still fits the 2048-byte mbuf data room.
fn sizes() -> impl Iterator<Item = usize> {
    [60usize, 64, 65, 128, 333, 590, 1000, 1500, 1514, 2000].into_iter().cycle().take(97)
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).expect("create pcap")).expect("pcap header");
    for (i, f) in frames.iter().enumerate() {
        let pkt = PcapPacket::new(Duration::from_millis(i as u64), f.len() as u32, f);
        w.write_packet(&pkt).expect("write packet");
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(std::fs::File::open(path).expect("open pcap")).expect("pcap header");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("pcap record").data.into_owned());
    }
    out
}

/// Polls `q` until `n` frames arrived or 5 s passed.
fn receive(q: &mut DpdkQueue, n: usize) -> Vec<Mbuf> {
    let mut got = Vec::with_capacity(n + BURST);
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < n && Instant::now() < deadline {
        if q.rx_burst(&mut got, BURST) == 0 {
            std::thread::yield_now();
        }
    }
    got
}

#[test]
fn dpdk_port_on_vdevs() {
    if !is_root() {
        eprintln!("skipped: DPDK tests need root");
        return;
    }
    let dir = TempDir::new();
    let (input, output) = (dir.0.join("in.pcap"), dir.0.join("out.pcap"));
    let frames: Vec<Vec<u8>> = sizes().enumerate().map(|(i, len)| frame(i as u32, len)).collect();
    write_pcap(&input, &frames);

    let args: Vec<String> = [
        "--no-pci",
        "--no-huge",
        "-m",
        "512",
        "--no-shconf",
        &format!("--file-prefix={}", file_prefix()),
        "--no-telemetry",
        "--log-level=lib.eal:warning",
        "--vdev=net_ring0",
        &format!("--vdev=net_pcap0,rx_pcap={},tx_pcap={}", input.display(), output.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&args).expect("EAL init");
    assert!(matches!(Eal::init(&args), Err(DpdkError::AlreadyInitialized)));
    assert_eq!(eal.port_count(), 2);
    assert!(matches!(eal.port_by_name("net_nosuch0"), Err(DpdkError::NoSuchDevice(_))));

    ring_loopback(&eal);
    pcap_rewrite(&eal, &frames);
    // Both ports are closed and every mbuf was returned: their pools were freed.
    assert!(!dataplane::port::dpdk::eal::memory_leaked());

    // The port is closed: the pcap driver closed its dumper. Every frame came out
    // in order, source MAC rewritten in place and 4 bytes prepended in the headroom.
    let written = read_pcap(&output);
    assert_eq!(written.len(), frames.len());
    for (i, (got, f)) in written.iter().zip(&frames).enumerate() {
        let mut want = vec![0xde, 0xad, 0xbe, 0xef];
        want.extend_from_slice(&f[..6]);
        want.extend_from_slice(&NEW_SRC);
        want.extend_from_slice(&f[12..]);
        assert_eq!(got, &want, "frame {i} ({} bytes)", f.len());
    }
}

const NEW_SRC: [u8; 6] = [0x02, 0x4c, 0x34, 0x4c, 0x42, 0x01];

/// net_ring: two queue pairs, each looping back to itself; buffer operations on
/// real mbufs; a second queue driven from a registered worker thread; bounded TX
/// with drops counted when the ring is full.
fn ring_loopback(eal: &Eal) {
    let ring = eal.port_by_name("net_ring0").expect("net_ring0");
    let cfg = DpdkPortConfig { queues: 2, mbufs_per_queue: 4095, ring_size: 512 };
    assert!(matches!(
        DpdkPort::configure(eal, ring, DpdkPortConfig { queues: 64, ..cfg }),
        Err(DpdkError::TooManyQueues { requested: 64, .. })
    ));
    let mut port = DpdkPort::configure(eal, ring, cfg).expect("configure net_ring0");
    assert_eq!(port.queue_count(), 2);
    let mut queues = port.take_queues().expect("queues");
    assert!(matches!(port.take_queues(), Err(DpdkError::QueuesTaken(_))));
    let mut q1 = queues.pop().expect("queue 1");
    let mut q0 = queues.pop().expect("queue 0");
    assert_eq!((q0.queue_id(), q1.queue_id()), (0, 1));

    // Mbuf in place: headroom, prepend/adj/append/truncate, bounds refused.
    let mut m = q0.alloc_frame(&frame(7, 100)).expect("alloc");
    assert_eq!(m.data(), &frame(7, 100)[..]);
    assert_eq!(m.headroom(), HEADROOM);
    assert_eq!(m.tailroom(), 2048 - 100);
    assert!(m.prepend(44));
    assert_eq!(m.len(), 144);
    assert_eq!(&m.data()[44..], &frame(7, 100)[..]);
    m.data_mut()[..44].fill(0x5a);
    assert!(!m.prepend(HEADROOM - 43));
    assert!(!m.prepend(1 << 20));
    assert!(m.adj(44));
    assert_eq!(m.data(), &frame(7, 100)[..]);
    assert!(!m.adj(101));
    assert!(m.append(8));
    assert_eq!(m.len(), 108);
    assert!(!m.append(2048));
    m.truncate(60);
    assert_eq!(m.data(), &frame(7, 100)[..60]);
    m.truncate(200);
    assert_eq!(m.len(), 60);
    drop(m);

    // Burst out and back on queue 0.
    let mut burst: Vec<Mbuf> = (0..BURST as u32).map(|i| q0.alloc_frame(&frame(i, 64 + i as usize)).unwrap()).collect();
    q0.tx_burst(&mut burst);
    assert!(burst.is_empty());
    let got = receive(&mut q0, BURST);
    assert_eq!(got.len(), BURST);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.data(), &frame(i as u32, 64 + i)[..]);
    }
    let mut got = got;
    q0.free(&mut got);
    assert!(got.is_empty());

    // Queue 1, moved to a worker thread that registers as an lcore, as l4lb's workers do.
    let eal2 = eal.clone();
    let q1_stats = std::thread::spawn(move || {
        let lcore = eal2.register_thread().expect("register thread");
        assert!(dataplane::port::dpdk::eal::current_lcore().is_some());
        assert!(lcore.lcore_id() > 0);
        let mut b: Vec<Mbuf> = (0..5u32).map(|i| q1.alloc_frame(&frame(1000 + i, 80)).unwrap()).collect();
        q1.tx_burst(&mut b);
        let mut back = receive(&mut q1, 5);
        assert_eq!(back.len(), 5);
        assert_eq!(back[4].data(), &frame(1004, 80)[..]);
        q1.to_host(&mut back);
        q1.stats()
    })
    .join()
    .expect("worker thread");
    assert_eq!((q1_stats.tx_packets, q1_stats.rx_packets, q1_stats.host_packets), (5, 5, 5));
    assert_eq!(q1_stats.tx_bytes, 5 * 80);

    // Fill the loopback ring without receiving: the ring holds 1023 frames, the
    // rest are freed after bounded retries and counted.
    let sent_before = q0.stats().tx_packets;
    let mut offered = 0u64;
    for round in 0..40u32 {
        let mut b: Vec<Mbuf> = (0..BURST as u32).map(|i| q0.alloc_frame(&frame(round * 64 + i, 60)).unwrap()).collect();
        offered += b.len() as u64;
        q0.tx_burst(&mut b);
        assert!(b.is_empty());
    }
    let s = q0.stats();
    assert_eq!(s.tx_packets - sent_before + s.tx_dropped, offered);
    assert_eq!(s.tx_packets - sent_before, 1023);
    assert_eq!(s.tx_dropped, offered - 1023);
    let mut drained = receive(&mut q0, 1023);
    assert_eq!(drained.len(), 1023);
    q0.free(&mut drained);
    let s = q0.stats();
    assert_eq!(s.rx_packets, BURST as u64 + 1023);
    assert_eq!(s.rx_bytes, (64..64 + BURST as u64).sum::<u64>() + 1023 * 60);
    assert_eq!(s.rx_missed, 0);
    let dev = port.device_stats().expect("device stats");
    assert_eq!(dev.queues.len(), 2);
    assert_eq!(dev.queues[1].rx_packets, 5);
    assert_eq!(dev.total.rx_packets, s.rx_packets + 5);
}

/// net_pcap: read every frame through the Port trait, rewrite the source MAC in
/// place, prepend 4 bytes into the headroom, transmit into the output capture.
fn pcap_rewrite(eal: &Eal, frames: &[Vec<u8>]) {
    let pcap = eal.port_by_name("net_pcap0").expect("net_pcap0");
    let cfg = DpdkPortConfig { queues: 1, mbufs_per_queue: 2047, ring_size: 512 };
    let mut port = DpdkPort::configure(eal, pcap, cfg).expect("configure net_pcap0");
    let mut q = port.take_queues().expect("queues").pop().expect("queue 0");
    let mut burst = Vec::with_capacity(BURST);
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen < frames.len() && Instant::now() < deadline {
        if q.rx_burst(&mut burst, BURST) == 0 {
            continue;
        }
        for m in burst.iter_mut() {
            assert_eq!(m.data(), &frames[seen][..], "received frame {seen}");
            assert_eq!(m.headroom(), HEADROOM);
            m.data_mut()[6..12].copy_from_slice(&NEW_SRC);
            assert!(m.prepend(4));
            m.data_mut()[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
            seen += 1;
        }
        q.tx_burst(&mut burst);
    }
    assert_eq!(seen, frames.len());
    let s = q.stats();
    let in_bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    assert_eq!((s.rx_packets, s.rx_bytes), (frames.len() as u64, in_bytes));
    assert_eq!((s.tx_packets, s.tx_bytes, s.tx_dropped), (frames.len() as u64, in_bytes + 4 * frames.len() as u64, 0));
    // Nothing more: the capture is exhausted.
    assert_eq!(q.rx_burst(&mut burst, BURST), 0);
}
