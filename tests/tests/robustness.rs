//! The pipeline never panics, whatever the bytes: random frames, and valid frames of
//! every kind with random bytes flipped and random truncations, through GRE, IPIP and
//! DNAT VIPs of both families, with two workers steering. Every frame gets exactly
//! one verdict and the counters add up.

use common::config::Config;
use common::snapshot::Snapshot;
use dataplane::counters::Counter;
use dataplane::pipeline::{Pipeline, Verdict};
use dataplane::port::PacketBuf;
use dataplane::port::memory::HeapBuf;
use l4lb_tests::builder::*;
use proptest::prelude::*;

const CONFIG: &str = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
ipv6 = "fd00::2"
mtu = 1400
[dataplane]
flow_table_capacity = 1024
[[vip]]
name = "gre"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
table_size = 251
  [[vip.backend]]
  address = "10.1.0.11"
  [[vip.backend]]
  address = "fd00:2::11"
[[vip]]
name = "ipip6"
address = "2001:db8::10"
port = 0
protocol = "udp"
forwarding = "ipip"
table_size = 251
  [[vip.backend]]
  address = "fd00:2::12"
[[vip]]
name = "dnat"
address = "198.51.100.20"
port = 443
protocol = "tcp"
forwarding = "dnat"
table_size = 251
  [[vip.backend]]
  address = "10.2.0.11"
  port = 8443
[[vip]]
name = "dnat6"
address = "2001:db8::20"
port = 53
protocol = "udp"
forwarding = "dnat"
table_size = 251
  [[vip.backend]]
  address = "fd00:3::11"
"#;

fn seeds() -> Vec<Vec<u8>> {
    let lb = mac("02:00:00:00:00:01");
    let peer = mac("02:00:00:00:00:fe");
    let o = IpOpts::default();
    let v4 = |s: &str| -> std::net::Ipv4Addr { s.parse().unwrap() };
    let v6 = |s: &str| -> std::net::Ipv6Addr { s.parse().unwrap() };
    let quoted = ip_packet(
        ip("198.51.100.10"),
        ip("172.16.0.5"),
        TCP,
        &tcp_segment(ip("198.51.100.10"), ip("172.16.0.5"), 80, 1234, ACK, b""),
        o,
    );
    let quoted6 = ip_packet(
        ip("2001:db8::20"),
        ip("fd00:1::5"),
        UDP,
        &udp_datagram(ip("2001:db8::20"), ip("fd00:1::5"), 53, 1234, b"x", false),
        o,
    );
    vec![
        tcp_frame(lb, peer, "172.16.0.5", "198.51.100.10", 1234, 80, SYN, b"hello", o),
        tcp_frame(lb, peer, "172.16.0.5", "198.51.100.20", 1234, 443, ACK, &[9; 1300], o),
        tcp_frame(lb, peer, "10.2.0.11", "172.16.0.5", 8443, 1234, SYN | ACK, b"", o),
        udp_frame(lb, peer, "fd00:1::5", "2001:db8::10", 1234, 9999, &[1; 1350], o),
        udp_frame(lb, peer, "fd00:1::5", "2001:db8::20", 1234, 53, b"q", o),
        udp_frame(lb, peer, "fd00:3::11", "fd00:1::5", 53, 1234, b"a", o),
        eth(
            lb,
            peer,
            0x0800,
            &ip_packet(ip("192.0.2.1"), ip("198.51.100.10"), ICMP, &icmp4(3, 4, [0, 0, 5, 0], &quoted), o),
        ),
        eth(
            lb,
            peer,
            0x0800,
            &ip_packet(ip("172.16.0.5"), ip("198.51.100.20"), ICMP, &icmp4(8, 0, [0, 1, 0, 1], b"p"), o),
        ),
        eth(
            lb,
            peer,
            0x86dd,
            &ip_packet(
                ip("2001:db8:1::1"),
                ip("2001:db8::20"),
                ICMPV6,
                &icmp6(v6("2001:db8:1::1"), v6("2001:db8::20"), 2, 0, 1280u32.to_be_bytes(), &quoted6),
                o,
            ),
        ),
        eth_vlan(
            lb,
            peer,
            7,
            0x0800,
            &ip_packet(
                v4("172.16.0.5").into(),
                v4("198.51.100.10").into(),
                TCP,
                &tcp_segment(ip("172.16.0.5"), ip("198.51.100.10"), 5, 80, ACK, b""),
                o,
            ),
        ),
    ]
}

fn run(frames: Vec<Vec<u8>>) {
    let cfg = Config::from_toml_str(CONFIG).unwrap();
    let snap = Snapshot::build(&cfg, None);
    let mut pipes: Vec<Pipeline> = (0..2).map(|i| Pipeline::new(i, 2, 1024, &snap)).collect();
    let n = frames.len();
    let mut bufs: Vec<HeapBuf> = frames.iter().map(|f| HeapBuf::from_frame(f)).collect();
    let mut verdicts = vec![Verdict::Drop; n];
    let times: Vec<u64> = (0..n as u64).map(|i| i * 1_000_000).collect();
    // Steering must not panic either; then each frame goes through its owner.
    for (i, b) in bufs.iter_mut().enumerate() {
        let w = pipes[0].steer(b.data(), &snap).map_or(0, usize::from).min(1);
        pipes[w].process_timed(&snap, &times[i..i + 1], std::slice::from_mut(b), &mut verdicts[i..i + 1]);
        assert!(b.len() <= 9280);
    }
    let mut rx = 0;
    let mut sum = 0;
    for p in &pipes {
        let c = &p.counters;
        rx += c.get(Counter::RxPackets);
        sum += c.get(Counter::TxPackets) + c.get(Counter::HostPackets) + c.get(Counter::DropPackets);
    }
    assert_eq!(rx, n as u64);
    assert_eq!(sum, n as u64, "every frame gets exactly one verdict");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..16)) {
        run(frames);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        picks in prop::collection::vec((0usize..10, prop::collection::vec((any::<u16>(), any::<u8>()), 0..6), any::<u16>()), 1..16)
    ) {
        let seeds = seeds();
        let frames = picks
            .into_iter()
            .map(|(k, flips, cut)| {
                let mut f = seeds[k].clone();
                for (pos, val) in flips {
                    let i = usize::from(pos) % f.len();
                    f[i] = val;
                }
                let keep = usize::from(cut) % (f.len() + 1);
                if cut % 3 == 0 { f.truncate(keep) }
                f
            })
            .collect();
        run(frames);
    }
}

#[test]
fn every_seed_frame_is_handled_as_intended() {
    // Without mutation, none of the seeds is malformed.
    let cfg = Config::from_toml_str(CONFIG).unwrap();
    let snap = Snapshot::build(&cfg, None);
    let mut p = Pipeline::new(0, 1, 1024, &snap);
    let seeds = seeds();
    let mut bufs: Vec<HeapBuf> = seeds.iter().map(|f| HeapBuf::from_frame(f)).collect();
    let mut v = vec![Verdict::Drop; bufs.len()];
    p.process(&snap, 1, &mut bufs, &mut v);
    assert_eq!(p.counters.get(Counter::DropPackets), 0, "{v:?}");
}
