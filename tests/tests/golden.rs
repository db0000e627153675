//! Golden packet tests: input frame -> expected output frame, both built with the
//! independent builder in `l4lb_tests::builder`, run through the real pipeline.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::config::Config;
use common::snapshot::Snapshot;
use dataplane::counters::{Counter, DropReason};
use dataplane::pipeline::{Pipeline, Verdict};
use dataplane::port::PacketBuf;
use dataplane::port::memory::HeapBuf;
use l4lb_tests::builder::*;

const NODE_MAC: &str = "02:00:00:00:00:01";
const GW_MAC: &str = "02:00:00:00:00:fe";
const CLIENT_MAC: &str = "02:00:00:00:00:aa";

fn node(mtu: u16) -> String {
    format!(
        "[node]\nmac = \"{NODE_MAC}\"\ngateway_mac = \"{GW_MAC}\"\nipv4 = \"10.0.0.2\"\nipv6 = \"fd00::2\"\nmtu = {mtu}\n\
         [dataplane]\nflow_table_capacity = 4096\n"
    )
}

fn vip(name: &str, addr: &str, port: u16, proto: &str, fwd: &str, backends: &[&str]) -> String {
    let mut s = format!(
        "[[vip]]\nname = \"{name}\"\naddress = \"{addr}\"\nport = {port}\nprotocol = \"{proto}\"\nforwarding = \"{fwd}\"\ntable_size = 251\n"
    );
    for b in backends {
        s.push_str(&format!("[[vip.backend]]\n{b}\n"));
    }
    s
}

struct Lb {
    snap: Snapshot,
    pipe: Pipeline,
    t: u64,
}

impl Lb {
    fn new(text: &str) -> Lb {
        let cfg = Config::from_toml_str(text).unwrap_or_else(|e| panic!("config: {e}"));
        let snap = Snapshot::build(&cfg, None);
        let pipe = Pipeline::new(0, 1, cfg.dataplane.flow_table_capacity, &snap);
        Lb { snap, pipe, t: 1_000_000_000 }
    }

    fn one(&mut self, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let mut bufs = vec![HeapBuf::from_frame(frame)];
        let mut v = [Verdict::Drop];
        self.t += 1_000_000;
        self.pipe.process_timed(&self.snap, &[self.t], &mut bufs, &mut v);
        (v[0], bufs[0].data().to_vec())
    }

    /// [`Lb::one`] at capture time `ms` (milliseconds after the start).
    fn at(&mut self, ms: u64, frame: &[u8]) -> (Verdict, Vec<u8>) {
        self.t = 1_000_000_000 + ms * 1_000_000 - 1_000_000;
        self.one(frame)
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.pipe.counters.dropped(r)
    }
}

fn m(s: &str) -> [u8; 6] {
    mac(s)
}

fn opts() -> IpOpts {
    IpOpts::default()
}

/// The IP packet inside a frame without VLAN tags.
fn ip_of(frame: &[u8]) -> Vec<u8> {
    frame[14..].to_vec()
}

#[test]
fn gre_and_ipip_for_every_family_mix() {
    let cases = [
        ("198.51.100.10", "172.16.0.5", "10.1.0.11"),
        ("198.51.100.10", "172.16.0.5", "fd00:2::11"),
        ("2001:db8::10", "fd00:1::5", "10.1.0.11"),
        ("2001:db8::10", "fd00:1::5", "fd00:2::11"),
    ];
    for (vip_addr, client, backend) in cases {
        for (fwd, gre) in [("gre", true), ("ipip", false)] {
            let text = node(1500) + &vip("web", vip_addr, 80, "tcp", fwd, &[&format!("address = \"{backend}\"")]);
            let mut lb = Lb::new(&text);
            let o = IpOpts { tos: 0xb9, ..opts() };
            let input = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), client, vip_addr, 40000, 80, SYN, b"", o);
            let (v, out) = lb.one(&input);
            assert_eq!(v, Verdict::Tx, "{fwd} {vip_addr} -> {backend}");
            let b = ip(backend);
            let src = if b.is_ipv4() { ip("10.0.0.2") } else { ip("fd00::2") };
            let mut expected = expected_tunnel(m(NODE_MAC), m(GW_MAC), src, b, &ip_of(&input), gre);
            if !b.is_ipv4() {
                // The outer flow label is l4lb's hash of the inner flow: copy it, check its range.
                expected[14 + 1..14 + 4].copy_from_slice(&out[14 + 1..14 + 4]);
                assert_eq!(out[15] >> 4, 0xb9 & 0x0f, "traffic class low nibble");
            }
            assert_eq!(out, expected, "{fwd} {vip_addr} -> {backend}");
            assert_eq!(lb.pipe.counters.get(Counter::Encapsulated), 1);
        }
    }
}

#[test]
fn ethernet_padding_is_not_part_of_the_inner_packet() {
    let text = node(1500) + &vip("web", "198.51.100.10", 80, "tcp", "gre", &["address = \"10.1.0.11\""]);
    let mut lb = Lb::new(&text);
    let input = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 80, ACK, b"", opts());
    let inner = ip_of(&input);
    let mut padded = input.clone();
    padded.resize(60, 0);
    let (v, out) = lb.one(&padded);
    assert_eq!(v, Verdict::Tx);
    assert_eq!(out, expected_tunnel(m(NODE_MAC), m(GW_MAC), ip("10.0.0.2"), ip("10.1.0.11"), &inner, true));
}

#[test]
fn vlan_tag_is_kept_on_the_encapsulated_frame() {
    let text = node(1500) + &vip("web", "198.51.100.10", 80, "tcp", "ipip", &["address = \"10.1.0.11\""]);
    let mut lb = Lb::new(&text);
    let plain = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 80, SYN, b"", opts());
    let inner = ip_of(&plain);
    let input = eth_vlan(m(NODE_MAC), m(CLIENT_MAC), 42, 0x0800, &inner);
    let (v, out) = lb.one(&input);
    assert_eq!(v, Verdict::Tx);
    let untagged = expected_tunnel(m(NODE_MAC), m(GW_MAC), ip("10.0.0.2"), ip("10.1.0.11"), &inner, false);
    let expected = eth_vlan(m(GW_MAC), m(NODE_MAC), 42, 0x0800, &untagged[14..]);
    assert_eq!(out, expected);
}

#[test]
fn host_traffic_is_untouched() {
    let text = node(1500) + &vip("web", "198.51.100.10", 80, "tcp", "gre", &["address = \"10.1.0.11\""]);
    let mut lb = Lb::new(&text);
    let mut arp = eth([0xff; 6], m(CLIENT_MAC), 0x0806, &[0u8; 28]);
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    let other_dst = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "10.0.0.2", 40000, 22, SYN, b"", opts());
    let other_port = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 443, SYN, b"", opts());
    let udp_same_port = udp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 80, b"x", opts());
    let v6_ns = {
        let s: Ipv6Addr = "fe80::1".parse().unwrap();
        let d: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
        let msg = icmp6(s, d, 135, 0, [0; 4], &[0u8; 16]);
        eth(m(NODE_MAC), m(CLIENT_MAC), 0x86dd, &ip_packet(IpAddr::V6(s), IpAddr::V6(d), ICMPV6, &msg, opts()))
    };
    for f in [arp, other_dst, other_port, udp_same_port, v6_ns] {
        let (v, out) = lb.one(&f);
        assert_eq!(v, Verdict::Host);
        assert_eq!(out, f);
    }
    assert_eq!(lb.pipe.counters.get(Counter::HostPackets), 5);
}

#[test]
fn every_malformation_is_dropped_with_its_reason() {
    let text = node(1500)
        + &vip("web", "198.51.100.10", 80, "tcp", "dnat", &["address = \"10.1.0.11\"\nport = 8080"])
        + &vip("none", "198.51.100.11", 80, "tcp", "gre", &["address = \"10.1.0.12\"\nstate = \"down\""]);
    let mut lb = Lb::new(&text);
    let good = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 80, SYN, b"", opts());
    let good6 = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "fd00:1::5", "2001:db8::10", 40000, 80, SYN, b"", opts());
    let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
    cases.push((good[..10].to_vec(), DropReason::L2Truncated));
    {
        let mut f = good[..12].to_vec();
        for _ in 0..3 {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        f.extend_from_slice(&good[12..]);
        cases.push((f, DropReason::TooManyVlanTags));
    }
    cases.push((good[..14 + 10].to_vec(), DropReason::Ipv4Truncated));
    {
        let mut f = good.clone();
        f[14] = 0x55;
        cases.push((f, DropReason::Ipv4BadVersion));
    }
    {
        let mut f = good.clone();
        f[14] = 0x44;
        cases.push((f, DropReason::Ipv4BadHeaderLength));
    }
    {
        let mut f = good.clone();
        f[16..18].copy_from_slice(&2000u16.to_be_bytes());
        cases.push((f, DropReason::Ipv4BadTotalLength));
    }
    cases.push((good6[..14 + 30].to_vec(), DropReason::Ipv6Truncated));
    {
        let mut f = good6.clone();
        f[14] = 0x70;
        cases.push((f, DropReason::Ipv6BadVersion));
    }
    {
        let mut f = good6.clone();
        f[18..20].copy_from_slice(&500u16.to_be_bytes());
        cases.push((f, DropReason::Ipv6BadPayloadLength));
    }
    {
        // Hop-by-hop header claiming 255*8+8 bytes in a 28-byte payload.
        let mut f = good6.clone();
        f[14 + 6] = 0; // next header: hop-by-hop
        f[14 + 40] = 6;
        f[14 + 41] = 255;
        cases.push((f, DropReason::Ipv6BadExtensionChain));
    }
    {
        let mut f = good.clone();
        f[14 + 20 + 12] = 3 << 4; // TCP data offset 3
        cases.push((f, DropReason::L4Malformed));
    }
    {
        let s: Ipv4Addr = "172.16.0.5".parse().unwrap();
        let d: Ipv4Addr = "198.51.100.10".parse().unwrap();
        let f = eth(m(NODE_MAC), m(CLIENT_MAC), 0x0800, &ip_packet(s.into(), d.into(), ICMP, &[8, 0, 0, 0], opts()));
        cases.push((f, DropReason::IcmpMalformed));
    }
    cases.push((
        tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.11", 40000, 80, SYN, b"", opts()),
        DropReason::NoBackend,
    ));
    cases.push((
        tcp_frame(
            m(NODE_MAC),
            m(CLIENT_MAC),
            "172.16.0.5",
            "198.51.100.10",
            40001,
            80,
            SYN,
            b"",
            IpOpts { ttl: 1, ..opts() },
        ),
        DropReason::TtlExpired,
    ));
    {
        // A DNAT request whose IPv4 header checksum is wrong: a rewrite would carry the
        // error into a header sent as l4lb's own.
        let mut f = good.clone();
        f[14 + 10] ^= 0x01;
        cases.push((f, DropReason::Ipv4BadChecksum));
    }
    {
        let s: Ipv4Addr = "172.16.0.5".parse().unwrap();
        let d: Ipv4Addr = "198.51.100.10".parse().unwrap();
        let mut req = icmp4(8, 0, [0x12, 0x34, 0, 1], b"ping");
        req[2] ^= 0x01;
        let f = eth(m(NODE_MAC), m(CLIENT_MAC), 0x0800, &ip_packet(s.into(), d.into(), ICMP, &req, opts()));
        cases.push((f, DropReason::IcmpBadChecksum));
    }
    for (i, (f, reason)) in cases.iter().enumerate() {
        let before = lb.drops(*reason);
        let (v, _) = lb.one(f);
        assert_eq!(v, Verdict::Drop, "case {i} ({reason:?})");
        assert_eq!(lb.drops(*reason), before + 1, "case {i} ({reason:?})");
    }
    assert_eq!(lb.pipe.counters.get(Counter::DropPackets), cases.len() as u64);
    // Dropped packets (the DNAT TTL case included) were sent to no backend.
    let sent: u64 = lb.pipe.counters.vips.iter().flat_map(|v| &v.backends).map(|b| b.packets).sum();
    assert_eq!(sent, 0, "backend counters count only packets sent to the backend");
}

#[test]
fn too_big_without_df_is_dropped_and_with_df_answered() {
    let text = node(1500) + &vip("web", "198.51.100.10", 80, "tcp", "gre", &["address = \"10.1.0.11\""]);
    let mut lb = Lb::new(&text);
    let payload = vec![0x5a; 1460];
    let no_df = tcp_frame(
        m(NODE_MAC),
        m(CLIENT_MAC),
        "172.16.0.5",
        "198.51.100.10",
        40000,
        80,
        ACK,
        &payload,
        IpOpts { df: false, ..opts() },
    );
    let (v, _) = lb.one(&no_df);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(lb.drops(DropReason::TooBig), 1);

    let df = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 80, ACK, &payload, opts());
    let (v, out) = lb.one(&df);
    assert_eq!(v, Verdict::Tx);
    // ICMP type 3 code 4 from the VIP to the client, next-hop MTU 1500 - 24, quoting 548 bytes.
    let quote = &ip_of(&df)[..548];
    let msg = icmp4(3, 4, [0, 0, (1476u16 >> 8) as u8, (1476 & 0xff) as u8], quote);
    let s: Ipv4Addr = "198.51.100.10".parse().unwrap();
    let d: Ipv4Addr = "172.16.0.5".parse().unwrap();
    let o = IpOpts { ttl: 64, tos: 0, df: false, ident: 0, flow_label: 0 };
    let expected = eth(m(GW_MAC), m(NODE_MAC), 0x0800, &ip_packet(s.into(), d.into(), ICMP, &msg, o));
    assert_eq!(out.len(), expected.len());
    assert_eq!(&out[..14], &expected[..14]);
    assert_eq!(&out[14 + 20..], &expected[14 + 20..], "ICMP message");
    assert_eq!(out[14 + 9], ICMP);
    assert_eq!(&out[14 + 12..14 + 20], &expected[14 + 12..14 + 20], "addresses");
    assert_eq!(csum(&[&out[14..34]]), 0, "IPv4 header checksum");
    assert_eq!(lb.pipe.counters.get(Counter::IcmpTooBigSent), 1);
    // Both packets count for the VIP; neither went to the backend.
    let vc = &lb.pipe.counters.vips[0];
    assert_eq!(vc.total().packets, 2);
    assert_eq!(vc.backends.iter().map(|b| b.packets).sum::<u64>(), 0, "nothing was sent to a backend");
    assert_eq!(vc.backends.iter().map(|b| b.bytes).sum::<u64>(), 0);
}

/// DNAT sends packets as long as they came: one larger than `node.mtu` is answered
/// (IPv4 with DF: "fragmentation needed" with the MTU itself; IPv6: "packet too big")
/// or dropped (IPv4 without DF), both ways; an echo request too big is not answered.
#[test]
fn dnat_packets_larger_than_the_mtu_are_not_sent() {
    let text = node(1500)
        + &vip("api", "198.51.100.10", 80, "tcp", "dnat", &["address = \"10.1.0.11\"\nport = 8080"])
        + &vip("api6", "2001:db8::10", 80, "tcp", "dnat", &["address = \"fd00:2::11\"\nport = 8080"]);
    let mut lb = Lb::new(&text);
    let fits = vec![0x5a; 1460];
    let big = vec![0x5a; 1461];
    let (c, vip4) = ("172.16.0.5", "198.51.100.10");
    let req = |payload: &[u8], o: IpOpts| tcp_frame(m(NODE_MAC), m(CLIENT_MAC), c, vip4, 40000, 80, ACK, payload, o);
    assert_eq!(lb.one(&req(&fits, opts())).0, Verdict::Tx, "1500 bytes fit");
    assert_eq!(lb.pipe.counters.get(Counter::DnatForward), 1);

    let (v, _) = lb.one(&req(&big, IpOpts { df: false, ..opts() }));
    assert_eq!(v, Verdict::Drop);
    assert_eq!(lb.drops(DropReason::TooBig), 1);
    // A TTL that runs out is what a router drops it for first.
    let (v, _) = lb.one(&req(&big, IpOpts { ttl: 1, ..opts() }));
    assert_eq!(v, Verdict::Drop);
    assert_eq!(lb.drops(DropReason::TtlExpired), 1);

    let input = req(&big, opts());
    let (v, out) = lb.one(&input);
    assert_eq!(v, Verdict::Tx);
    let quote = &ip_of(&input)[..548];
    let msg = icmp4(3, 4, [0, 0, (1500u16 >> 8) as u8, (1500 & 0xff) as u8], quote);
    assert_eq!(&out[14 + 20..], &msg[..], "fragmentation needed, MTU 1500, to the client");
    assert_eq!(&out[14 + 12..14 + 20], &[198, 51, 100, 10, 172, 16, 0, 5], "from the VIP");
    assert_eq!(csum(&[&out[14..34]]), 0, "IPv4 header checksum");
    assert_eq!(lb.pipe.counters.get(Counter::DnatForward), 1, "not forwarded");

    // The reply direction: to the backend that sent it.
    let reply = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "10.1.0.11", c, 8080, 40000, ACK, &big, opts());
    let (v, out) = lb.one(&reply);
    assert_eq!(v, Verdict::Tx);
    assert_eq!((out[14 + 20], out[14 + 21]), (3, 4));
    assert_eq!(&out[14 + 16..14 + 20], &[10, 1, 0, 11], "to the backend");
    assert_eq!(lb.pipe.counters.get(Counter::DnatReply), 0);

    let input6 =
        tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "fd00:1::5", "2001:db8::10", 40000, 80, ACK, &[0x5a; 1441], opts());
    let (v, out) = lb.one(&input6);
    assert_eq!(v, Verdict::Tx);
    let s6: Ipv6Addr = "2001:db8::10".parse().unwrap();
    let d6: Ipv6Addr = "fd00:1::5".parse().unwrap();
    let msg6 = icmp6(s6, d6, 2, 0, 1500u32.to_be_bytes(), &ip_of(&input6)[..1280 - 48]);
    assert_eq!(&out[14 + 40..], &msg6[..], "packet too big, MTU 1500");
    assert_eq!(lb.pipe.counters.get(Counter::IcmpTooBigSent), 3);

    // Nothing reached a backend but the first packet.
    let sent: u64 = lb.pipe.counters.vips.iter().flat_map(|v| &v.backends).map(|b| b.packets).sum();
    assert_eq!(sent, 1);

    let s: Ipv4Addr = c.parse().unwrap();
    let d: Ipv4Addr = vip4.parse().unwrap();
    let ping = eth(
        m(NODE_MAC),
        m(CLIENT_MAC),
        0x0800,
        &ip_packet(s.into(), d.into(), ICMP, &icmp4(8, 0, [0, 1, 0, 1], &[0x5a; 1473]), opts()),
    );
    let (v, _) = lb.one(&ping);
    assert_eq!(v, Verdict::Drop, "an echo reply would be too big");
    assert_eq!(lb.drops(DropReason::TooBig), 2);
}

#[test]
fn ipv6_too_big_is_answered_with_packet_too_big() {
    let text = node(1500) + &vip("web", "2001:db8::10", 80, "tcp", "gre", &["address = \"fd00:2::11\""]);
    let mut lb = Lb::new(&text);
    let payload = vec![0x5a; 1440];
    let input = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "fd00:1::5", "2001:db8::10", 40000, 80, ACK, &payload, opts());
    let (v, out) = lb.one(&input);
    assert_eq!(v, Verdict::Tx);
    let quote = &ip_of(&input)[..1280 - 48];
    let s: Ipv6Addr = "2001:db8::10".parse().unwrap();
    let d: Ipv6Addr = "fd00:1::5".parse().unwrap();
    let msg = icmp6(s, d, 2, 0, 1456u32.to_be_bytes(), quote);
    let o = IpOpts { ttl: 64, tos: 0, df: false, ident: 0, flow_label: 0 };
    let expected = eth(m(GW_MAC), m(NODE_MAC), 0x86dd, &ip_packet(s.into(), d.into(), ICMPV6, &msg, o));
    assert_eq!(out, expected);
}

#[test]
fn dnat_rewrites_both_directions() {
    for (vip_addr, client, backend) in
        [("198.51.100.10", "172.16.0.5", "10.1.0.11"), ("2001:db8::10", "fd00:1::5", "fd00:2::11")]
    {
        let text = node(1500)
            + &vip("web", vip_addr, 80, "tcp", "dnat", &[&format!("address = \"{backend}\"\nport = 8080")])
            + &vip("dns", vip_addr, 53, "udp", "dnat", &[&format!("address = \"{backend}\"")]);
        let mut lb = Lb::new(&text);
        let o = IpOpts { ttl: 40, ..opts() };
        let fwd = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), client, vip_addr, 40000, 80, SYN, b"hello", o);
        let (v, out) = lb.one(&fwd);
        assert_eq!(v, Verdict::Tx);
        let expected =
            tcp_frame(m(GW_MAC), m(NODE_MAC), client, backend, 40000, 8080, SYN, b"hello", IpOpts { ttl: 39, ..o });
        assert_eq!(out, expected, "forward {vip_addr}");

        let reply = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), backend, client, 8080, 40000, SYN | ACK, b"", o);
        let (v, out) = lb.one(&reply);
        assert_eq!(v, Verdict::Tx);
        let expected =
            tcp_frame(m(GW_MAC), m(NODE_MAC), vip_addr, client, 80, 40000, SYN | ACK, b"", IpOpts { ttl: 39, ..o });
        assert_eq!(out, expected, "reply {vip_addr}");

        // A reply for a flow nobody opened goes to the host.
        let stray = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), backend, client, 8080, 40999, ACK, b"", o);
        assert_eq!(lb.one(&stray).0, Verdict::Host);

        // UDP: an IPv4 checksum of 0 stays 0; the backend port defaults to the VIP's.
        let (s, d) = (ip(client), ip(vip_addr));
        let zero = s.is_ipv4();
        let dg = udp_datagram(s, d, 5353, 53, b"query", zero);
        let f = eth(m(NODE_MAC), m(CLIENT_MAC), ethertype_of(&s), &ip_packet(s, d, UDP, &dg, o));
        let (v, out) = lb.one(&f);
        assert_eq!(v, Verdict::Tx);
        let b = ip(backend);
        let dg2 = udp_datagram(s, b, 5353, 53, b"query", zero);
        let expected =
            eth(m(GW_MAC), m(NODE_MAC), ethertype_of(&s), &ip_packet(s, b, UDP, &dg2, IpOpts { ttl: 39, ..o }));
        assert_eq!(out, expected, "udp {vip_addr}");
        assert_eq!(lb.pipe.counters.get(Counter::DnatForward), 2);
        assert_eq!(lb.pipe.counters.get(Counter::DnatReply), 1);
    }
}

#[test]
fn echo_requests_to_a_vip_are_answered() {
    let text = node(1500)
        + &vip("web", "198.51.100.10", 80, "tcp", "gre", &["address = \"10.1.0.11\""])
        + &vip("web6", "2001:db8::10", 80, "tcp", "gre", &["address = \"10.1.0.11\""]);
    let mut lb = Lb::new(&text);
    let s: Ipv4Addr = "172.16.0.5".parse().unwrap();
    let d: Ipv4Addr = "198.51.100.10".parse().unwrap();
    let req = icmp4(8, 0, [0x12, 0x34, 0, 1], b"ping-payload");
    let f = eth(
        m(NODE_MAC),
        m(CLIENT_MAC),
        0x0800,
        &ip_packet(s.into(), d.into(), ICMP, &req, IpOpts { ttl: 50, ..opts() }),
    );
    let (v, out) = lb.one(&f);
    assert_eq!(v, Verdict::Tx);
    let rep = icmp4(0, 0, [0x12, 0x34, 0, 1], b"ping-payload");
    let expected =
        eth(m(GW_MAC), m(NODE_MAC), 0x0800, &ip_packet(d.into(), s.into(), ICMP, &rep, IpOpts { ttl: 64, ..opts() }));
    assert_eq!(out, expected);

    let s6: Ipv6Addr = "fd00:1::5".parse().unwrap();
    let d6: Ipv6Addr = "2001:db8::10".parse().unwrap();
    let req6 = icmp6(s6, d6, 128, 0, [0, 7, 0, 1], b"ping6");
    let f6 = eth(m(NODE_MAC), m(CLIENT_MAC), 0x86dd, &ip_packet(s6.into(), d6.into(), ICMPV6, &req6, opts()));
    let (v, out) = lb.one(&f6);
    assert_eq!(v, Verdict::Tx);
    let rep6 = icmp6(d6, s6, 129, 0, [0, 7, 0, 1], b"ping6");
    let expected6 = eth(m(GW_MAC), m(NODE_MAC), 0x86dd, &ip_packet(d6.into(), s6.into(), ICMPV6, &rep6, opts()));
    assert_eq!(out, expected6);
    assert_eq!(lb.pipe.counters.get(Counter::IcmpEchoAnswered), 2);

    // A request whose checksum is wrong is not answered (the answer's checksums are
    // computed afresh and would look right): IPv4 header, ICMP, ICMPv6.
    let mut bad_ip = f.clone();
    bad_ip[14 + 11] ^= 0x40;
    let mut bad_icmp = f.clone();
    bad_icmp[14 + 20 + 3] ^= 0x40;
    let mut bad_icmp6 = f6.clone();
    bad_icmp6[14 + 40 + 3] ^= 0x40;
    let cases = [
        (bad_ip, DropReason::Ipv4BadChecksum),
        (bad_icmp, DropReason::IcmpBadChecksum),
        (bad_icmp6, DropReason::IcmpBadChecksum),
    ];
    for (i, (frame, reason)) in cases.iter().enumerate() {
        let before = lb.drops(*reason);
        let (v, _) = lb.one(frame);
        assert_eq!(v, Verdict::Drop, "case {i}");
        assert_eq!(lb.drops(*reason), before + 1, "case {i}");
    }
    assert_eq!(lb.pipe.counters.get(Counter::IcmpEchoAnswered), 2);
}

/// A DNAT connection is one flow both ways: the backend's replies keep the client's
/// entry (its backend) alive, so a quiet client keeps its backend past the timeout.
#[test]
fn dnat_replies_keep_the_connection_alive() {
    let text = node(1500).replace("flow_table_capacity = 4096\n", "flow_table_capacity = 4096\nudp_timeout = \"2s\"\n")
        + &vip(
            "api",
            "198.51.100.10",
            53,
            "udp",
            "dnat",
            &["address = \"10.1.0.11\"", "address = \"10.1.0.12\"", "address = \"10.1.0.13\""],
        );
    let mut lb = Lb::new(&text);
    let req = udp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 53, b"q", opts());
    let (v, out) = lb.at(0, &req);
    assert_eq!(v, Verdict::Tx);
    let backend = format!("{}.{}.{}.{}", out[30], out[31], out[32], out[33]);
    let created = lb.pipe.flows().stats().created;
    let reply = udp_frame(m(NODE_MAC), m(CLIENT_MAC), &backend, "172.16.0.5", 53, 40000, b"r", opts());
    for s in 1..=4 {
        assert_eq!(lb.at(s * 1000, &reply).0, Verdict::Tx, "reply at {s} s translated");
    }
    // 4.5 s after the client's only packet, 0.5 s after the last reply.
    let (v, out) = lb.at(4500, &req);
    assert_eq!(v, Verdict::Tx);
    assert_eq!(format!("{}.{}.{}.{}", out[30], out[31], out[32], out[33]), backend);
    assert_eq!(lb.pipe.flows().stats().created, created, "the same flow, not a new one");
    // Quiet both ways for longer than the timeout: the flow is gone (a new one, with its
    // reply entry, is made).
    lb.at(7000, &req);
    assert_eq!(lb.pipe.flows().stats().created, created + 2);
}

/// Flow ages are u32 milliseconds in the table; a capture that spans more than 2^31 ms
/// (24.8 days) must still expire what is idle longer than its timeout.
#[test]
fn flows_idle_for_weeks_have_expired() {
    const DAY: u64 = 24 * 3600 * 1000;
    let text = node(1500) + &vip("dns", "198.51.100.10", 53, "udp", "gre", &["address = \"10.1.0.11\""]);
    let mut lb = Lb::new(&text);
    let a = udp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 53, b"a", opts());
    let b = udp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.6", "198.51.100.10", 40000, 53, b"b", opts());
    let created = |lb: &Lb| lb.pipe.flows().stats().created;
    // A quiet capture: gaps of 25 days and of 49.7 days + 1 s (the u32 clock's wrap).
    lb.at(0, &a);
    for (i, t) in [25 * DAY, 25 * DAY + (1 << 32) + 1000].into_iter().enumerate() {
        lb.at(t, &a);
        assert_eq!(created(&lb), 2 + i as u64, "after a gap of {t} ms the flow is new");
    }
    let expired = lb.pipe.flows().stats().expired;
    assert_eq!(expired, 2);
    // A busy one, with a 24-day timeout in the config so that no gap empties the table:
    // flow b every 6 hours for 26 days, then a again, 26 days (more than 2^31 ms) after
    // its last packet.
    let long = text
        .replace("flow_table_capacity = 4096\n", "flow_table_capacity = 4096\ntcp_established_timeout = \"576h\"\n");
    let mut lb = Lb::new(&long);
    lb.at(0, &a);
    for q in 1..=(26 * 4) {
        lb.at(q * DAY / 4, &b);
    }
    let before = created(&lb);
    lb.at(26 * DAY + 1, &a);
    assert_eq!(created(&lb), before + 1, "a, idle for 26 days, is a new flow");
}

/// DNAT checks the IPv4 header checksum both ways (a reply of a known flow too); GRE
/// carries the packet unchanged, as it arrived, checksum and all.
#[test]
fn dnat_drops_a_bad_ipv4_header_checksum_and_gre_carries_it() {
    let text = node(1500)
        + &vip("api", "198.51.100.10", 80, "tcp", "dnat", &["address = \"10.1.0.11\"\nport = 8080"])
        + &vip("web", "198.51.100.20", 80, "tcp", "gre", &["address = \"10.1.0.12\""]);
    let mut lb = Lb::new(&text);
    let req = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 80, SYN, b"", opts());
    assert_eq!(lb.one(&req).0, Verdict::Tx, "the flow is known");
    let mut reply = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "10.1.0.11", "172.16.0.5", 8080, 40000, ACK, b"", opts());
    assert_eq!(lb.one(&reply).0, Verdict::Tx, "a good reply is translated");
    reply[14 + 10] ^= 0x80;
    assert_eq!(lb.one(&reply).0, Verdict::Drop);
    assert_eq!(lb.drops(DropReason::Ipv4BadChecksum), 1);

    let mut to_gre = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.20", 40000, 80, SYN, b"", opts());
    to_gre[14 + 10] ^= 0x80;
    let (v, out) = lb.one(&to_gre);
    assert_eq!(v, Verdict::Tx);
    assert_eq!(&out[14 + 24..], &to_gre[14..], "the inner packet as it arrived");
}

fn three_backends(fwd: &str, vip_addr: &str) -> String {
    let bs: Vec<String> = if vip_addr.contains(':') {
        (11..14).map(|i| format!("address = \"fd00:2::{i}\"")).collect()
    } else {
        (11..14).map(|i| format!("address = \"10.1.0.{i}\"")).collect()
    };
    let refs: Vec<&str> = bs.iter().map(String::as_str).collect();
    node(1500) + &vip("web", vip_addr, 80, "tcp", fwd, &refs)
}

/// The backend an encapsulated frame goes to (outer destination).
fn outer_dst(frame: &[u8]) -> IpAddr {
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => IpAddr::V4(Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33])),
        _ => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&frame[14 + 24..14 + 40]);
            IpAddr::V6(a.into())
        }
    }
}

#[test]
fn icmp_errors_follow_the_flow_they_quote() {
    let mut lb = Lb::new(&three_backends("gre", "198.51.100.10"));
    for port in 40000..40020u16 {
        let syn = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", port, 80, SYN, b"", opts());
        let (v, out) = lb.one(&syn);
        assert_eq!(v, Verdict::Tx);
        let flow_backend = outer_dst(&out);
        // A router tells the VIP that its reply (VIP:80 -> client:port) was too big.
        let reply = ip_packet(
            ip("198.51.100.10"),
            ip("172.16.0.5"),
            TCP,
            &tcp_segment(ip("198.51.100.10"), ip("172.16.0.5"), 80, port, ACK, b""),
            opts(),
        );
        let err = icmp4(3, 4, [0, 0, 0x05, 0x00], &reply[..28]);
        let f = eth(
            m(NODE_MAC),
            m(CLIENT_MAC),
            0x0800,
            &ip_packet(ip("192.0.2.1"), ip("198.51.100.10"), ICMP, &err, opts()),
        );
        let (v, out) = lb.one(&f);
        assert_eq!(v, Verdict::Tx);
        assert_eq!(outer_dst(&out), flow_backend, "port {port}");
        assert_eq!(&out[14 + 24..], &ip_of(&f)[..], "the ICMP packet travels unchanged inside GRE");
    }
    assert_eq!(lb.pipe.counters.get(Counter::IcmpErrorsForwarded), 20);
}

#[test]
fn fragments_of_a_datagram_go_to_one_backend() {
    for vip_addr in ["198.51.100.10", "2001:db8::10"] {
        let mut lb = Lb::new(&three_backends("ipip", vip_addr));
        let mut seen = std::collections::HashSet::new();
        for i in 0..30u8 {
            let client =
                if vip_addr.contains(':') { format!("fd00:1::{}", i + 1) } else { format!("172.16.0.{}", i + 1) };
            let (first, later) = fragments(&client, vip_addr, 40000 + u16::from(i));
            let (v1, o1) = lb.one(&first);
            let (v2, o2) = lb.one(&later);
            assert_eq!((v1, v2), (Verdict::Tx, Verdict::Tx));
            assert_eq!(outer_dst(&o1), outer_dst(&o2), "{vip_addr} datagram {i}");
            seen.insert(outer_dst(&o1));
        }
        assert!(seen.len() >= 2, "fragments of different clients spread over backends");
        assert_eq!(lb.pipe.counters.get(Counter::Fragments), 60);
    }
}

/// A TCP segment to port 80 split into two fragments (the first carries the TCP header).
fn fragments(client: &str, vip_addr: &str, sport: u16) -> (Vec<u8>, Vec<u8>) {
    let (s, d) = (ip(client), ip(vip_addr));
    let dg = tcp_segment(s, d, sport, 80, ACK, &[7u8; 40]);
    let (a, b) = dg.split_at(24);
    match (s, d) {
        (IpAddr::V4(s4), IpAddr::V4(d4)) => {
            let mut h1 = ipv4_header(s4, d4, TCP, a.len(), IpOpts { df: false, ..opts() });
            h1[6] |= 0x20; // MF
            h1[10] = 0;
            h1[11] = 0;
            let c = csum(&[&h1]);
            h1[10..12].copy_from_slice(&c.to_be_bytes());
            let mut h2 = ipv4_header(s4, d4, TCP, b.len(), IpOpts { df: false, ..opts() });
            h2[6] = 0;
            h2[7] = 3; // offset 24 bytes
            h2[10] = 0;
            h2[11] = 0;
            let c = csum(&[&h2]);
            h2[10..12].copy_from_slice(&c.to_be_bytes());
            (
                eth(m(NODE_MAC), m(CLIENT_MAC), 0x0800, &[&h1[..], a].concat()),
                eth(m(NODE_MAC), m(CLIENT_MAC), 0x0800, &[&h2[..], b].concat()),
            )
        }
        (IpAddr::V6(s6), IpAddr::V6(d6)) => {
            let frag = |off: u16, more: bool, body: &[u8]| {
                let mut fh = vec![TCP, 0];
                fh.extend_from_slice(&((off << 3) | u16::from(more)).to_be_bytes());
                fh.extend_from_slice(&0xabcdu32.to_be_bytes());
                fh.extend_from_slice(body);
                let h = ipv6_header(s6, d6, 44, fh.len(), opts());
                eth(m(NODE_MAC), m(CLIENT_MAC), 0x86dd, &[&h[..], &fh].concat())
            };
            (frag(0, true, a), frag(3, false, b))
        }
        _ => unreachable!(),
    }
}

#[test]
fn dnat_icmp_errors_reach_the_backend_with_the_quote_rewritten() {
    let text = node(1500) + &vip("web", "198.51.100.10", 80, "tcp", "dnat", &["address = \"10.1.0.11\"\nport = 8080"]);
    let mut lb = Lb::new(&text);
    let syn = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 80, SYN, b"", opts());
    assert_eq!(lb.one(&syn).0, Verdict::Tx);
    // A router tells the VIP its reply (VIP:80 -> client:40000) needs fragmenting.
    let (vip_a, client, router) = (ip("198.51.100.10"), ip("172.16.0.5"), ip("192.0.2.1"));
    let reply_seg = tcp_segment(vip_a, client, 80, 40000, SYN | ACK, b"");
    let reply = ip_packet(vip_a, client, TCP, &reply_seg, opts());
    let err = icmp4(3, 4, [0, 0, 0x05, 0x00], &reply);
    let f = eth(m(NODE_MAC), m(CLIENT_MAC), 0x0800, &ip_packet(router, vip_a, ICMP, &err, opts()));
    let (v, out) = lb.one(&f);
    assert_eq!(v, Verdict::Tx);
    // Expected: outer to the backend (TTL - 1), quoted packet as the backend sent it.
    let backend = ip("10.1.0.11");
    let bseg = tcp_segment(backend, client, 8080, 40000, SYN | ACK, b"");
    let breply = ip_packet(backend, client, TCP, &bseg, opts());
    let berr = icmp4(3, 4, [0, 0, 0x05, 0x00], &breply);
    let expected =
        eth(m(GW_MAC), m(NODE_MAC), 0x0800, &ip_packet(router, backend, ICMP, &berr, IpOpts { ttl: 63, ..opts() }));
    assert_eq!(out, expected);
    assert_eq!(lb.pipe.counters.get(Counter::IcmpErrorsForwarded), 1);

    // IPv6: packet too big about the reply, to the backend with the quote rewritten.
    let text6 =
        node(1500) + &vip("web6", "2001:db8::10", 80, "tcp", "dnat", &["address = \"fd00:2::11\"\nport = 8080"]);
    let mut lb6 = Lb::new(&text6);
    let syn6 = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "fd00:1::5", "2001:db8::10", 40000, 80, SYN, b"", opts());
    assert_eq!(lb6.one(&syn6).0, Verdict::Tx);
    let (v6, c6, r6, b6): (Ipv6Addr, Ipv6Addr, Ipv6Addr, Ipv6Addr) = (
        "2001:db8::10".parse().unwrap(),
        "fd00:1::5".parse().unwrap(),
        "2001:db8:ffff::1".parse().unwrap(),
        "fd00:2::11".parse().unwrap(),
    );
    let q = ip_packet(v6.into(), c6.into(), TCP, &tcp_segment(v6.into(), c6.into(), 80, 40000, ACK, &[1; 20]), opts());
    let e6 = icmp6(r6, v6, 2, 0, 1400u32.to_be_bytes(), &q);
    let f6 = eth(m(NODE_MAC), m(CLIENT_MAC), 0x86dd, &ip_packet(r6.into(), v6.into(), ICMPV6, &e6, opts()));
    let (v, out) = lb6.one(&f6);
    assert_eq!(v, Verdict::Tx);
    let bq =
        ip_packet(b6.into(), c6.into(), TCP, &tcp_segment(b6.into(), c6.into(), 8080, 40000, ACK, &[1; 20]), opts());
    let be6 = icmp6(r6, b6, 2, 0, 1400u32.to_be_bytes(), &bq);
    let expected6 = eth(
        m(GW_MAC),
        m(NODE_MAC),
        0x86dd,
        &ip_packet(r6.into(), b6.into(), ICMPV6, &be6, IpOpts { ttl: 63, ..opts() }),
    );
    assert_eq!(out, expected6);
}

#[test]
fn dnat_fragments_go_to_one_backend_and_port_zero_vips_keep_ports() {
    let bs =
        "address = \"10.1.0.11\"\n[[vip.backend]]\naddress = \"10.1.0.12\"\n[[vip.backend]]\naddress = \"10.1.0.13\"";
    let text = node(1500) + &vip("any", "198.51.100.10", 0, "tcp", "dnat", &[bs]);
    let mut lb = Lb::new(&text);
    // Port 0: the destination port is kept, only the address changes.
    let f = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 8443, SYN, b"", opts());
    let (v, out) = lb.one(&f);
    assert_eq!(v, Verdict::Tx);
    let b = outer_dst_dnat(&out);
    let expected =
        tcp_frame(m(GW_MAC), m(NODE_MAC), "172.16.0.5", &b, 40000, 8443, SYN, b"", IpOpts { ttl: 63, ..opts() });
    assert_eq!(out, expected);
    let reply = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), &b, "172.16.0.5", 8443, 40000, SYN | ACK, b"", opts());
    let (v, out) = lb.one(&reply);
    assert_eq!(v, Verdict::Tx);
    let expected = tcp_frame(
        m(GW_MAC),
        m(NODE_MAC),
        "198.51.100.10",
        "172.16.0.5",
        8443,
        40000,
        SYN | ACK,
        b"",
        IpOpts { ttl: 63, ..opts() },
    );
    assert_eq!(out, expected);
    // Fragments: both pieces of each datagram to one backend, destination rewritten.
    for i in 0..20u8 {
        let (first, later) = fragments(&format!("172.16.1.{}", i + 1), "198.51.100.10", 30000 + u16::from(i));
        let (v1, o1) = lb.one(&first);
        let (v2, o2) = lb.one(&later);
        assert_eq!((v1, v2), (Verdict::Tx, Verdict::Tx));
        assert_eq!(outer_dst_dnat(&o1), outer_dst_dnat(&o2));
        assert_eq!(csum(&[&o1[14..34]]), 0);
        assert_eq!(csum(&[&o2[14..34]]), 0);
    }
}

/// The destination address of a (DNAT-rewritten) IPv4 frame.
fn outer_dst_dnat(frame: &[u8]) -> String {
    format!("{}.{}.{}.{}", frame[30], frame[31], frame[32], frame[33])
}

/// The other side of DNAT: a router between the load balancer and a backend answers
/// the client's translated packet ("fragmentation needed" quoting client -> backend:8080).
/// The load balancer puts the VIP and its port back into the quote and forwards the
/// error to the client (TTL - 1), as Linux NAT and DPVS do; an error quoting a flow
/// it does not hold, or not a DNAT backend at all, goes to the host unchanged.
#[test]
fn dnat_icmp_errors_from_the_backend_side_reach_the_client_with_the_vip_quoted() {
    let text = node(1500) + &vip("web", "198.51.100.10", 80, "tcp", "dnat", &["address = \"10.1.0.11\"\nport = 8080"]);
    let (vip_a, client, router) = (ip("198.51.100.10"), ip("172.16.0.5"), ip("10.1.0.1"));
    let o40 = IpOpts { ttl: 40, ..opts() };
    let mut lb = Lb::new(&text);
    let syn = tcp_frame(m(NODE_MAC), m(CLIENT_MAC), "172.16.0.5", "198.51.100.10", 40000, 80, SYN, b"hello", o40);
    let (v, sent) = lb.one(&syn);
    assert_eq!(v, Verdict::Tx);
    // The router quotes the packet as the load balancer sent it.
    let err = icmp4(3, 4, [0, 0, 0x05, 0x00], &ip_of(&sent));
    let f = eth(m(NODE_MAC), m(CLIENT_MAC), 0x0800, &ip_packet(router, client, ICMP, &err, opts()));
    let (v, out) = lb.one(&f);
    assert_eq!(v, Verdict::Tx);
    // Expected: the same error from the router to the client, TTL - 1, quoting the
    // client's packet as the client knows it (to the VIP, port 80; TTL as the router saw it).
    let quoted =
        ip_packet(client, vip_a, TCP, &tcp_segment(client, vip_a, 40000, 80, SYN, b"hello"), IpOpts { ttl: 39, ..o40 });
    let cerr = icmp4(3, 4, [0, 0, 0x05, 0x00], &quoted);
    let expected =
        eth(m(GW_MAC), m(NODE_MAC), 0x0800, &ip_packet(router, client, ICMP, &cerr, IpOpts { ttl: 63, ..opts() }));
    assert_eq!(out, expected);
    assert_eq!(lb.pipe.counters.get(Counter::IcmpErrorsToClient), 1);

    // A quote of a flow the table does not hold (another client port): the host's.
    let other = tcp_frame(m(GW_MAC), m(NODE_MAC), "172.16.0.5", "10.1.0.11", 40001, 8080, SYN, b"", o40);
    let e2 = icmp4(3, 4, [0, 0, 0x05, 0x00], &ip_of(&other));
    let f2 = eth(m(NODE_MAC), m(CLIENT_MAC), 0x0800, &ip_packet(router, client, ICMP, &e2, opts()));
    assert_eq!(lb.one(&f2), (Verdict::Host, f2.clone()));
    // Not about a DNAT backend at all: the host's.
    let unrelated = tcp_frame(m(GW_MAC), m(NODE_MAC), "172.16.0.5", "192.0.2.7", 40000, 80, SYN, b"", o40);
    let e3 = icmp4(3, 1, [0; 4], &ip_of(&unrelated));
    let f3 = eth(m(NODE_MAC), m(CLIENT_MAC), 0x0800, &ip_packet(router, client, ICMP, &e3, opts()));
    assert_eq!(lb.one(&f3), (Verdict::Host, f3.clone()));
    // A malformed ICMP message to another address stays the host's (as before).
    let bad = eth(m(NODE_MAC), m(CLIENT_MAC), 0x0800, &ip_packet(router, client, ICMP, &[3, 4, 0], opts()));
    assert_eq!(lb.one(&bad).0, Verdict::Host);
}
