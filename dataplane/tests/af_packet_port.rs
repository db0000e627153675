//! The AF_PACKET port on a veth pair between two network namespaces created for the
//! test: `lb` (the port under test) and `peer` (the other end of the wire).
//! Root only: skips with a printed reason otherwise.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dataplane::port::af_packet::{AfPacketError, AfPacketOptions, AfPacketPort, AfPacketQueue, Direction};
use dataplane::port::{BURST, HEADROOM, PacketBuf, Port};
use l4lb_tests::netns::{self, Netns};

/// Two namespaces joined by a veth: `lb_if` in `lb`, `peer_if` in `peer`.
struct Wire {
    lb: Netns,
    peer: Netns,
    lb_if: String,
    peer_if: String,
}

fn wire() -> Option<Wire> {
    if let Some(why) = netns::skip_reason() {
        eprintln!("skipped: {why}");
        return None;
    }
    let lb = Netns::new("afp").expect("create lb namespace");
    let peer = Netns::new("afpp").expect("create peer namespace");
    let (lb_if, peer_if) = netns::veth_between(&lb, &peer, false).expect("create veth pair");
    Some(Wire { lb, peer, lb_if, peer_if })
}

impl Wire {
    fn open_lb(&self, queues: usize, opts: AfPacketOptions) -> Vec<AfPacketQueue> {
        let ifname = self.lb_if.clone();
        self.lb.enter(move || AfPacketPort::open_with(&ifname, queues, &opts)).expect("enter lb").expect("open lb port")
    }

    fn open_peer(&self, direction: Direction) -> AfPacketQueue {
        let ifname = self.peer_if.clone();
        let opts = AfPacketOptions { direction, ..AfPacketOptions::default() };
        self.peer
            .enter(move || AfPacketPort::open_with(&ifname, 1, &opts))
            .expect("enter peer")
            .expect("open peer port")
            .remove(0)
    }

    fn mac(ns: &Netns, dev: &str) -> [u8; 6] {
        let out = ns.ip(&["-br", "link", "show", dev]).expect("ip link show");
        let field = out.split_whitespace().nth(2).expect("mac field");
        let mut mac = [0u8; 6];
        for (m, h) in mac.iter_mut().zip(field.split(':')) {
            *m = u8::from_str_radix(h, 16).expect("hex");
        }
        mac
    }
}

/// Send frames from a TX queue: queue them all, flush once.
fn send(q: &mut AfPacketQueue, frames: &[Vec<u8>]) {
    for chunk in frames.chunks(64) {
        for f in chunk {
            let mut tries = 0;
            while !q.send_copy(f) {
                q.flush();
                tries += 1;
                assert!(tries < 10_000, "TX ring stayed full");
                std::thread::yield_now();
            }
        }
        q.flush();
    }
}

/// Receive until `want` frames matching `keep` arrived on `q` or `timeout` passed;
/// returns copies of their bytes (buffers are released at once).
fn collect(q: &mut AfPacketQueue, want: usize, timeout: Duration, keep: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut bufs = Vec::with_capacity(BURST);
    let end = Instant::now() + timeout;
    while got.len() < want && Instant::now() < end {
        if q.rx_burst(&mut bufs, BURST) == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for b in &bufs {
            assert!(b.headroom() >= HEADROOM, "headroom {} < {HEADROOM}", b.headroom());
            if keep(b.data()) {
                got.push(b.data().to_vec());
            }
        }
        q.free(&mut bufs);
    }
    got
}

const TEST_ETHERTYPE: u16 = 0x88b5; // IEEE local experimental

fn test_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u32 ^ seq) as u8);
    }
    f
}

fn is_test(f: &[u8]) -> bool {
    f.len() >= 18 && f[12..14] == TEST_ETHERTYPE.to_be_bytes()
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 frame; `frag` is the flags/fragment-offset field.
#[allow(clippy::too_many_arguments)]
fn ipv4_frame(
    dst: [u8; 6],
    src: [u8; 6],
    s: [u8; 4],
    d: [u8; 4],
    proto: u8,
    ident: u16,
    frag: u16,
    l4: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + l4.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&ident.to_be_bytes());
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0]);
    ip.extend_from_slice(&s);
    ip.extend_from_slice(&d);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]); // IPv4: checksum 0 = none
    u.extend_from_slice(payload);
    u
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x01];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0xbb, 0x02];

#[test]
fn start_up_errors_are_one_clear_line() {
    let e = AfPacketPort::open("l4lb-nosuch0", 1, 2048).err().expect("missing interface must fail");
    assert!(matches!(e, AfPacketError::NoSuchInterface(ref n) if n == "l4lb-nosuch0"), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("no such network interface") && !msg.contains('\n'), "{msg}");
    assert!(matches!(AfPacketPort::open("lo", 0, 2048), Err(AfPacketError::BadQueueCount(0))));
    assert!(matches!(AfPacketPort::open("lo", 1, 1), Err(AfPacketError::BadRingSize(1))));
    let long = "x".repeat(40);
    assert!(matches!(AfPacketPort::open(&long, 1, 2048), Err(AfPacketError::NoSuchInterface(_))));
    if !netns::is_root() {
        let e = AfPacketPort::open("lo", 1, 2048).err().expect("packet sockets need CAP_NET_RAW");
        assert!(matches!(e, AfPacketError::PermissionDenied(_)), "{e:?}");
        assert!(e.to_string().contains("run as root or with CAP_NET_RAW"), "{e}");
    }
}

#[test]
fn frames_sent_by_the_peer_arrive_through_rx_burst() {
    let Some(w) = wire() else { return };
    let mut lb = w.open_lb(1, AfPacketOptions::default()).remove(0);
    let mut peer = w.open_peer(Direction::Tx);
    let frames: Vec<Vec<u8>> = (0..300).map(|i| test_frame(MAC_A, MAC_B, i, 60 + (i as usize * 7) % 1400)).collect();
    send(&mut peer, &frames);
    let got = collect(&mut lb, frames.len(), Duration::from_secs(3), is_test);
    assert_eq!(got.len(), frames.len(), "every frame arrives");
    assert_eq!(got, frames, "bytes and order as sent");
    let st = lb.stats();
    assert!(st.rx_packets >= 300, "{st:?}");
    assert_eq!(st.rx_missed, 0, "{st:?}");
}

#[test]
fn prepended_and_rewritten_frame_is_seen_on_the_peer() {
    let Some(w) = wire() else { return };
    let mut lb = w.open_lb(1, AfPacketOptions::default()).remove(0);
    let mut peer_tx = w.open_peer(Direction::Tx);
    let mut peer_rx = w.open_peer(Direction::Rx);
    let original = test_frame(MAC_A, MAC_B, 7, 200);
    send(&mut peer_tx, std::slice::from_ref(&original));

    let mut bufs = Vec::with_capacity(BURST);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        lb.rx_burst(&mut bufs, BURST);
        bufs.retain(|b| is_test(b.data()));
        if !bufs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(bufs.len(), 1, "the frame arrives");
    // Encapsulate in place: a new 14-byte Ethernet header + a 4-byte marker in front.
    let b = &mut bufs[0];
    let head_before = b.headroom();
    assert!(b.prepend(18));
    assert_eq!(b.headroom(), head_before - 18);
    let d = b.data_mut();
    d[..6].copy_from_slice(&MAC_B);
    d[6..12].copy_from_slice(&MAC_A);
    d[12..14].copy_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    d[14..18].copy_from_slice(b"ENCA");
    d[18 + 100] ^= 0xff; // and rewrite a byte of the original in place
    let mut expected = Vec::new();
    expected.extend_from_slice(&MAC_B);
    expected.extend_from_slice(&MAC_A);
    expected.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    expected.extend_from_slice(b"ENCA");
    expected.extend_from_slice(&original);
    expected[18 + 100] ^= 0xff;
    lb.tx_burst(&mut bufs);
    assert!(bufs.is_empty());
    let got = collect(&mut peer_rx, 1, Duration::from_secs(3), |f| is_test(f) && &f[14..18] == b"ENCA");
    assert_eq!(got, vec![expected]);
    assert_eq!(lb.stats().tx_packets, 1);
    assert_eq!(lb.stats().tx_dropped, 0);
}

#[test]
fn transmitted_echo_request_is_answered_by_the_peer_kernel() {
    let Some(w) = wire() else { return };
    let lb_mac = Wire::mac(&w.lb, &w.lb_if);
    let peer_mac = Wire::mac(&w.peer, &w.peer_if);
    w.peer.ip(&["addr", "add", "10.77.0.2/24", "dev", &w.peer_if]).unwrap();
    let lladdr = lb_mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    w.peer.ip(&["neigh", "add", "10.77.0.1", "lladdr", &lladdr, "dev", &w.peer_if]).unwrap();
    let mut lb = w.open_lb(1, AfPacketOptions::default()).remove(0);
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(b"l4lb af_packet echo");
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let req = ipv4_frame(peer_mac, lb_mac, [10, 77, 0, 1], [10, 77, 0, 2], 1, 1, 0x4000, &icmp);
    assert!(lb.send_copy(&req));
    lb.flush();
    let reply = collect(&mut lb, 1, Duration::from_secs(3), |f| f.len() >= 34 && f[12..14] == [8, 0] && f[23] == 1);
    assert_eq!(reply.len(), 1, "the peer's kernel answers our frame");
    let r = &reply[0];
    assert_eq!(&r[26..30], &[10, 77, 0, 2]);
    assert_eq!(&r[30..34], &[10, 77, 0, 1]);
    assert_eq!(r[34], 0, "echo reply");
    assert_eq!(&r[42..], b"l4lb af_packet echo");
}

#[test]
fn fanout_spreads_flows_over_two_queues_and_keeps_each_flow_on_one() {
    let Some(w) = wire() else { return };
    let mut queues = w.open_lb(2, AfPacketOptions::default());
    let mut peer = w.open_peer(Direction::Tx);
    let flows = 64u16;
    let per_flow = 4;
    let mut frames = Vec::new();
    for round in 0..per_flow {
        for f in 0..flows {
            let payload = [round as u8; 18];
            frames.push(ipv4_frame(
                MAC_A,
                MAC_B,
                [10, 0, 0, 9],
                [10, 0, 0, 1],
                17,
                1,
                0,
                &udp(10_000 + f, 80, &payload),
            ));
        }
    }
    send(&mut peer, &frames);
    let is_ours = |f: &[u8]| f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 17 && f[36..38] == 80u16.to_be_bytes();
    let mut where_: HashMap<u16, Vec<usize>> = HashMap::new();
    let end = Instant::now() + Duration::from_secs(3);
    let mut total = 0;
    while total < frames.len() && Instant::now() < end {
        for (qi, q) in queues.iter_mut().enumerate() {
            for f in collect(q, usize::MAX, Duration::from_millis(5), is_ours) {
                where_.entry(u16::from_be_bytes([f[34], f[35]])).or_default().push(qi);
                total += 1;
            }
        }
    }
    assert_eq!(total, frames.len(), "every packet arrives once");
    assert_eq!(where_.len(), flows as usize);
    for (port, qs) in &where_ {
        assert!(qs.iter().all(|&q| q == qs[0]), "flow {port} split over queues {qs:?}");
    }
    let on_q0 = where_.values().filter(|qs| qs[0] == 0).count();
    assert!((8..=56).contains(&on_q0), "64 flows should spread over both queues, queue 0 got {on_q0}");
}

#[test]
fn fragments_stay_together_and_are_not_reassembled() {
    let Some(w) = wire() else { return };
    let mut queues = w.open_lb(2, AfPacketOptions::default());
    let mut peer = w.open_peer(Direction::Tx);
    let mut frames = Vec::new();
    for id in 0..32u16 {
        let src = [10, 1, (id >> 8) as u8, id as u8];
        let body = udp(20_000 + id, 53, &[0x5a; 40]); // 48 bytes: fragments of 24 + 24
        frames.push(ipv4_frame(MAC_A, MAC_B, src, [10, 0, 0, 1], 17, id, 0x2000, &body[..24]));
        frames.push(ipv4_frame(MAC_A, MAC_B, src, [10, 0, 0, 1], 17, id, 3, &body[24..]));
    }
    send(&mut peer, &frames);
    let is_frag = |f: &[u8]| f.len() >= 34 && f[12..14] == [8, 0] && f[26] == 10 && f[27] == 1;
    let mut seen: HashMap<u16, Vec<(usize, u16)>> = HashMap::new();
    let end = Instant::now() + Duration::from_secs(3);
    let mut total = 0;
    while total < frames.len() && Instant::now() < end {
        for (qi, q) in queues.iter_mut().enumerate() {
            for f in collect(q, usize::MAX, Duration::from_millis(5), is_frag) {
                let ident = u16::from_be_bytes([f[18], f[19]]);
                seen.entry(ident).or_default().push((qi, u16::from_be_bytes([f[20], f[21]])));
                total += 1;
            }
        }
    }
    assert_eq!(total, frames.len(), "both fragments of every datagram arrive, as fragments");
    for (id, parts) in &seen {
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, parts[1].0, "datagram {id}: fragments on different queues");
        let mut offs: Vec<u16> = parts.iter().map(|p| p.1).collect();
        offs.sort_unstable();
        assert_eq!(offs, vec![3, 0x2000], "datagram {id} arrives as two fragments");
    }
}

#[test]
fn vlan_tag_is_put_back_into_the_frame() {
    let Some(w) = wire() else { return };
    let mut lb = w.open_lb(1, AfPacketOptions::default()).remove(0);
    let mut peer = w.open_peer(Direction::Tx);
    let inner = test_frame(MAC_A, MAC_B, 42, 100);
    let mut tagged = inner[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x64]); // PCP 1, VID 100
    tagged.extend_from_slice(&inner[12..]);
    send(&mut peer, std::slice::from_ref(&tagged));
    let got =
        collect(&mut lb, 1, Duration::from_secs(3), |f| f.len() > 18 && f[16..18] == TEST_ETHERTYPE.to_be_bytes());
    assert_eq!(got, vec![tagged]);
}

#[test]
fn rx_burst_does_not_block_when_idle() {
    let Some(w) = wire() else { return };
    let mut lb = w.open_lb(1, AfPacketOptions::default()).remove(0);
    let mut bufs = Vec::with_capacity(BURST);
    // Drain whatever the link-up produced.
    let _ = collect(&mut lb, usize::MAX, Duration::from_millis(50), |_| true);
    let start = Instant::now();
    let mut got = 0;
    for _ in 0..10_000 {
        got += lb.rx_burst(&mut bufs, BURST);
        lb.free(&mut bufs);
    }
    let el = start.elapsed();
    eprintln!("10k idle rx_burst calls: {el:?}");
    assert_eq!(got, 0, "nothing was sent");
    assert!(el < Duration::from_millis(200), "10k idle polls took {el:?}");
}

#[test]
fn a_held_buffer_pins_its_block_and_traffic_resumes_when_it_is_released() {
    let Some(w) = wire() else { return };
    let opts = AfPacketOptions { ring_size: 128, ..AfPacketOptions::default() }; // 4 blocks of 64 KiB
    let mut lb = w.open_lb(1, opts).remove(0);
    let mut peer = w.open_peer(Direction::Tx);
    send(&mut peer, &[test_frame(MAC_A, MAC_B, 0, 1000)]);
    let mut held = Vec::with_capacity(BURST);
    let end = Instant::now() + Duration::from_secs(3);
    while held.is_empty() && Instant::now() < end {
        lb.rx_burst(&mut held, BURST);
        held.retain(|b| is_test(b.data()));
    }
    assert_eq!(held.len(), 1);
    let kept = held[0].data().to_vec();
    // Push ~4 MB through a 256 KiB ring while the first buffer is held.
    let mut received = 0;
    for round in 1..=40u32 {
        let frames: Vec<Vec<u8>> = (0..100).map(|i| test_frame(MAC_A, MAC_B, round * 1000 + i, 1000)).collect();
        send(&mut peer, &frames);
        received += collect(&mut lb, 100, Duration::from_millis(20), is_test).len();
        assert_eq!(held[0].data(), &kept[..], "a held buffer's bytes never change");
    }
    assert!(received < 4000, "the pinned block must stall the ring (got {received})");
    assert!(lb.stats().rx_missed > 0, "the kernel counts what it dropped");
    lb.free(&mut held);
    let _ = collect(&mut lb, usize::MAX, Duration::from_millis(50), |_| true);
    let frames: Vec<Vec<u8>> = (0..100).map(|i| test_frame(MAC_A, MAC_B, 900_000 + i, 500)).collect();
    send(&mut peer, &frames);
    let after = collect(&mut lb, 100, Duration::from_secs(3), is_test);
    assert_eq!(after, frames, "traffic flows again once the block is released");
}

#[test]
fn buffers_outliving_their_queue_stay_readable() {
    let Some(w) = wire() else { return };
    let mut lb = w.open_lb(1, AfPacketOptions::default()).remove(0);
    let mut peer = w.open_peer(Direction::Tx);
    let frame = test_frame(MAC_A, MAC_B, 5, 300);
    send(&mut peer, std::slice::from_ref(&frame));
    let mut held = Vec::with_capacity(BURST);
    let end = Instant::now() + Duration::from_secs(3);
    while held.is_empty() && Instant::now() < end {
        lb.rx_burst(&mut held, BURST);
        held.retain(|b| is_test(b.data()));
    }
    assert_eq!(held.len(), 1);
    drop(lb);
    // The mapping is leaked, not unmapped: the buffer (Send) is still valid anywhere.
    let h = std::thread::spawn(move || held[0].data().to_vec()).join().unwrap();
    assert_eq!(h, frame);
}

#[test]
fn with_the_defrag_flag_the_kernel_hands_over_whole_datagrams_instead() {
    let Some(w) = wire() else { return };
    let opts = AfPacketOptions { fanout_defrag: true, ..AfPacketOptions::default() };
    let mut queues = w.open_lb(2, opts);
    let mut peer = w.open_peer(Direction::Tx);
    let body = udp(20_000, 53, &[0x5a; 40]);
    let frames = vec![
        ipv4_frame(MAC_A, MAC_B, [10, 1, 0, 7], [10, 0, 0, 1], 17, 77, 0x2000, &body[..24]),
        ipv4_frame(MAC_A, MAC_B, [10, 1, 0, 7], [10, 0, 0, 1], 17, 77, 3, &body[24..]),
    ];
    send(&mut peer, &frames);
    let is_ours = |f: &[u8]| f.len() >= 34 && f[12..14] == [8, 0] && f[26..30] == [10, 1, 0, 7];
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        for q in queues.iter_mut() {
            got.extend(collect(q, usize::MAX, Duration::from_millis(5), is_ours));
        }
    }
    assert_eq!(got.len(), 1, "one reassembled datagram, not two fragments");
    let d = &got[0];
    assert_eq!(u16::from_be_bytes([d[20], d[21]]) & 0x3fff, 0, "no longer a fragment");
    assert_eq!(u16::from_be_bytes([d[16], d[17]]) as usize, 20 + body.len());
    assert_eq!(&d[34..34 + body.len()], &body[..]);
}

#[test]
fn wait_readable_sleeps_on_an_idle_link_and_wakes_for_traffic() {
    let Some(w) = wire() else { return };
    let mut lb = w.open_lb(1, AfPacketOptions::default()).remove(0);
    let _ = collect(&mut lb, usize::MAX, Duration::from_millis(50), |_| true);
    let t = Instant::now();
    assert!(!lb.wait_readable(Duration::from_millis(100)), "idle link");
    assert!(t.elapsed() >= Duration::from_millis(90), "it slept: {:?}", t.elapsed());
    let mut peer = w.open_peer(Direction::Tx);
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        send(&mut peer, &[test_frame(MAC_A, MAC_B, 1, 100)]);
        peer
    });
    let t = Instant::now();
    assert!(lb.wait_readable(Duration::from_secs(3)), "woken by the frame");
    assert!(t.elapsed() < Duration::from_secs(1), "woken late: {:?}", t.elapsed());
    let _peer = sender.join().unwrap();
    assert_eq!(collect(&mut lb, 1, Duration::from_secs(1), is_test).len(), 1);
}
