//! The burst loop's fast path (parse's `fast_v4`, the per-burst VIP cache, and the
//! fast lane for untagged IPv4 TCP/UDP to a GRE/IPIP VIP, `Class::TunnelV4`) must be
//! invisible: for any sequence of packets, a pipeline with it and one without it
//! (every packet through `parse_general`, `classify` and the `Parsed` path) emit the
//! same bytes, give the same verdicts, and end with the same counters and flow table. Random traffic
//! below covers every outcome the lane has: established and new flows, TCP state
//! changes, backends down and draining, too big for the MTU (ICMP answered or
//! dropped), IPv6 outer headers, no backend at all, and the packets that leave the
//! lane (DNAT VIPs, host traffic, fragments, options, VLAN tags).

use common::config::Config;
use common::snapshot::Snapshot;
use l4lb_tests::builder::{IpOpts, eth_vlan, mac, tcp_frame, udp_frame};
use proptest::prelude::*;

use super::{Pipeline, Verdict};
use crate::port::memory::HeapBuf;
use crate::port::{BURST, PacketBuf};

const CONFIG: &str = r#"
    [node]
    mac = "02:00:00:00:00:01"
    gateway_mac = "02:00:00:00:00:fe"
    ipv4 = "10.0.0.2"
    ipv6 = "fd00::2"
    mtu = 1400
    [[vip]]
    name = "gre"
    address = "203.0.113.5"
    port = 80
    protocol = "tcp"
    forwarding = "gre"
    table_size = 251
      [[vip.backend]]
      address = "10.1.0.1"
      [[vip.backend]]
      address = "10.1.0.2"
      state = "drain"
      [[vip.backend]]
      address = "fd00::b"
      [[vip.backend]]
      address = "10.1.0.4"
    [[vip]]
    name = "ipip-udp"
    address = "203.0.113.5"
    port = 53
    protocol = "udp"
    forwarding = "ipip"
    table_size = 251
      [[vip.backend]]
      address = "10.2.0.1"
      [[vip.backend]]
      address = "fd00::c"
    [[vip]]
    name = "any-port"
    address = "203.0.113.6"
    port = 0
    protocol = "tcp"
    forwarding = "ipip"
    table_size = 251
      [[vip.backend]]
      address = "10.4.0.1"
    [[vip]]
    name = "all-down"
    address = "203.0.113.7"
    port = 80
    protocol = "tcp"
    forwarding = "gre"
    table_size = 251
      [[vip.backend]]
      address = "10.5.0.1"
      state = "down"
    [[vip]]
    name = "dnat"
    address = "203.0.113.8"
    port = 80
    protocol = "tcp"
    forwarding = "dnat"
    table_size = 251
      [[vip.backend]]
      address = "10.3.0.1"
      port = 8080
"#;

/// The same config with backend 10.1.0.1 down and 10.1.0.4 removed: the second
/// snapshot of a run, so that flows move.
fn second_config() -> String {
    CONFIG
        .replace("address = \"10.1.0.1\"\n", "address = \"10.1.0.1\"\n      state = \"down\"\n")
        .replace("      [[vip.backend]]\n      address = \"10.1.0.4\"\n", "")
}

#[derive(Clone, Debug)]
struct Pkt {
    udp: bool,
    dst: u8,
    dport: u16,
    client: u8,
    sport: u16,
    flags: u8,
    tos: u8,
    df: bool,
    len: usize,
    vlan: bool,
    frag: bool,
    /// 0..=7: client to VIP; 8: from the DNAT backend to the client (a reply);
    /// 9: from another host to the client, with the same destination as a reply
    /// (the host's: same destination key, another class).
    from: u8,
    /// Milliseconds since the previous packet (timeouts: 10 s transitory default).
    gap_ms: u32,
}

/// An ACK of 10 bytes from client 198.51.100.1:1000 to the GRE VIP 203.0.113.5:80.
fn plain() -> Pkt {
    Pkt {
        udp: false,
        dst: 5,
        dport: 80,
        client: 1,
        sport: 1000,
        flags: 0x10,
        tos: 0,
        df: true,
        len: 10,
        vlan: false,
        frag: false,
        from: 0,
        gap_ms: 1,
    }
}

fn pkt() -> impl Strategy<Value = Pkt> {
    (
        (any::<bool>(), 5u8..=9, prop::sample::select(vec![80u16, 53, 443, 8080]), 0u8..6, 1000u16..1006),
        (prop::sample::select(vec![0x02u8, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01]), any::<u8>(), any::<bool>()),
        (
            prop::sample::select(vec![0usize, 10, 1300, 1370, 1400]),
            prop::bool::weighted(0.05),
            prop::bool::weighted(0.05),
        ),
        (prop::sample::select(vec![0u32, 1, 500, 15_000]), 0u8..10),
    )
        .prop_map(|((udp, dst, dport, client, sport), (flags, tos, df), (len, vlan, frag), (gap_ms, from))| Pkt {
            udp,
            dst,
            dport,
            client,
            sport,
            flags,
            tos,
            df,
            len,
            vlan,
            frag,
            from,
            gap_ms,
        })
}

fn frame(p: &Pkt) -> Vec<u8> {
    let (lb, gw) = (mac("02:00:00:00:00:01"), mac("02:00:00:00:00:fe"));
    let (mut src, mut dst) = (format!("198.51.100.{}", p.client), format!("203.0.113.{}", p.dst));
    let (mut sport, mut dport) = (p.sport, p.dport);
    if p.from >= 8 {
        let from = if p.from == 8 { "10.3.0.1" } else { "10.9.9.9" };
        (src, dst) = (from.to_string(), format!("198.51.100.{}", p.client));
        (sport, dport) = (8080, p.sport);
    }
    let o = IpOpts { ttl: 64, tos: p.tos, df: p.df, ident: 7, flow_label: 0 };
    let payload = vec![0xab; p.len];
    let mut f = if p.udp {
        udp_frame(lb, gw, &src, &dst, sport, dport, &payload, o)
    } else {
        tcp_frame(lb, gw, &src, &dst, sport, dport, p.flags, &payload, o)
    };
    if p.frag {
        // More fragments: the general path's (steered on addresses). The IPv4
        // checksum is not checked by the data plane, so it is left as is.
        f[20] |= 0x20;
    }
    if p.vlan {
        let mut t = eth_vlan(gw, lb, 42, 0x0800, &f[14..]);
        t[..12].copy_from_slice(&f[..12]);
        f = t;
    }
    f
}

/// Run `pkts` through a pipeline (fast lane on or off) in bursts, with a snapshot
/// switch half way; everything observable, as a comparable value.
fn run(pkts: &[Pkt], lane: bool) -> (Vec<(Verdict, Vec<u8>)>, String) {
    let s1 = Snapshot::build(&Config::from_toml_str(CONFIG).expect("config"), None);
    let s2 = Snapshot::build(&Config::from_toml_str(&second_config()).expect("config 2"), Some(&s1));
    let mut pipe = Pipeline::new(0, 1, 64, &s1);
    pipe.fast_lane = lane;
    let mut out = Vec::new();
    let mut now_ns = 1_000_000_000u64;
    for (n, chunk) in pkts.chunks(BURST / 2).enumerate() {
        let snap = if n * 2 >= pkts.len().div_ceil(BURST / 2) { &s2 } else { &s1 };
        pipe.on_snapshot(snap);
        let mut bufs: Vec<HeapBuf> = chunk.iter().map(|p| HeapBuf::from_frame(&frame(p))).collect();
        let times: Vec<u64> = chunk
            .iter()
            .map(|p| {
                now_ns += u64::from(p.gap_ms) * 1_000_000;
                now_ns
            })
            .collect();
        let mut verdicts = vec![Verdict::Drop; bufs.len()];
        pipe.process_timed(snap, &times, &mut bufs, &mut verdicts);
        out.extend(verdicts.into_iter().zip(bufs.iter().map(|b| b.data().to_vec())));
    }
    let state = format!("{:?}\n{:?}\n{:?}", pipe.counters, pipe.flows().stats(), pipe.flows().spills());
    (out, state)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn the_fast_lane_is_invisible(pkts in prop::collection::vec(pkt(), 1..200)) {
        let (with, with_state) = run(&pkts, true);
        let (without, without_state) = run(&pkts, false);
        prop_assert_eq!(with.len(), without.len());
        for (i, (a, b)) in with.iter().zip(without.iter()).enumerate() {
            prop_assert_eq!(a, b, "packet {}: {:?}", i, pkts[i]);
        }
        prop_assert_eq!(with_state, without_state);
    }
}

/// The lane is taken at all (otherwise the test above compares the general path
/// with itself), and the random traffic reaches its outcomes.
#[test]
fn the_lane_is_taken_and_reaches_every_outcome() {
    use crate::counters::{Counter, DropReason};
    let base = Pkt { flags: 0x02, ..plain() };
    let s = Snapshot::build(&Config::from_toml_str(CONFIG).expect("config"), None);
    let mut pipe = Pipeline::new(0, 1, 64, &s);
    let cases = [
        base.clone(),
        Pkt { sport: 1001, ..base.clone() },
        Pkt { len: 1400, ..base.clone() },            // too big, DF: ICMP answer
        Pkt { len: 1400, df: false, ..base.clone() }, // too big, no DF: dropped
        Pkt { dst: 7, ..base.clone() },               // no backend up
        Pkt { udp: true, dport: 53, ..base.clone() }, // IPIP over UDP
    ];
    let mut bufs: Vec<HeapBuf> = cases.iter().map(|p| HeapBuf::from_frame(&frame(p))).collect();
    let mut v = vec![Verdict::Drop; bufs.len()];
    pipe.process(&s, 1_000_000_000, &mut bufs, &mut v);
    assert_eq!(v[0], Verdict::Tx);
    assert_eq!(v[2], Verdict::Tx, "an ICMP answer");
    assert_eq!(v[3], Verdict::Drop);
    assert_eq!(v[4], Verdict::Drop);
    assert_eq!(pipe.counters.get(Counter::IcmpTooBigSent), 1);
    assert_eq!(pipe.counters.dropped(DropReason::TooBig), 1);
    assert_eq!(pipe.counters.dropped(DropReason::NoBackend), 1);
    assert_eq!(pipe.counters.get(Counter::Encapsulated), 3);
    assert_eq!(pipe.lane_packets, 6, "all six took the fast lane");
}

/// The burst loop remembers the last packet's VIP lookup, but only a hit: a packet
/// to the same destination key that is not for a VIP depends on its source too. A
/// stranger's packet to a client, then the DNAT backend's reply to the same client
/// port, in one burst: the reply is still translated.
#[test]
fn the_vip_cache_keeps_only_vip_hits() {
    use crate::counters::Counter;
    let base = Pkt { dst: 8, ..plain() };
    let s = Snapshot::build(&Config::from_toml_str(CONFIG).expect("config"), None);
    let mut pipe = Pipeline::new(0, 1, 64, &s);
    let burst = [base.clone(), Pkt { from: 9, ..base.clone() }, Pkt { from: 8, ..base.clone() }];
    let mut bufs: Vec<HeapBuf> = burst.iter().map(|p| HeapBuf::from_frame(&frame(p))).collect();
    let mut v = vec![Verdict::Drop; bufs.len()];
    pipe.process(&s, 1_000_000_000, &mut bufs, &mut v);
    assert_eq!(v, [Verdict::Tx, Verdict::Host, Verdict::Tx]);
    assert_eq!(pipe.counters.get(Counter::DnatReply), 1);
}

proptest! {
    /// The fast lane's record gives back the packet's key, and the flow table's hash
    /// of its words is the hash of that key (the general path finds the lane's
    /// entries: a VLAN-tagged or option-carrying packet of the same flow).
    #[test]
    fn the_lane_record_hashes_as_its_key(p in pkt()) {
        use common::flow::{FlowKey, FlowKeyV4};
        let p = Pkt { vlan: false, frag: false, ..p };
        let f = frame(&p);
        let r = super::parse::fast_v4(&f).expect("the fast path's frame");
        let t = crate::flow_table::FlowTable::new(64, super::flow_timeouts(
            &Snapshot::build(&Config::from_toml_str(CONFIG).expect("config"), None),
        ));
        let key = FlowKeyV4 {
            src: f[26..30].try_into().unwrap(),
            dst: f[30..34].try_into().unwrap(),
            src_port: u16::from_be_bytes([f[34], f[35]]),
            dst_port: u16::from_be_bytes([f[36], f[37]]),
            proto: f[23],
        };
        prop_assert_eq!(r.key(), key);
        let (addrs, rest) = r.key_words();
        prop_assert_eq!(t.hash_v4_words(addrs, rest), t.hash(&FlowKey::V4(key)));
    }
}

proptest! {
    /// The workers' steering shortcut (no DNAT VIP, a TCP/UDP packet the fast
    /// parse takes: stay) answers what the full steering does, with and without
    /// DNAT VIPs in the configuration.
    #[test]
    fn the_steering_shortcut_agrees_with_the_full_answer(p in pkt(), dnat in any::<bool>(), workers in 2u16..5) {
        let text = if dnat { CONFIG } else { CONFIG.split("    [[vip]]\n    name = \"dnat\"").next().unwrap_or(CONFIG) };
        let snap = Snapshot::build(&Config::from_toml_str(text).expect("config"), None);
        prop_assert_eq!(snap.has_dnat(), dnat);
        let f = frame(&p);
        prop_assert_eq!(
            super::steer::owner(&f, &snap, workers),
            super::steer::owner_general(&f, &snap, workers)
        );
    }
}
