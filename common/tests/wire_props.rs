//! Property tests for `common::wire` and `common::checksum`:
//! - an RFC 1624 incremental update equals a full recomputation, for random packets and random
//!   address / port / TTL rewrites (IPv4 header, TCP and UDP over IPv4 and IPv6);
//! - parse(emit(x)) == x for the headers l4lb builds;
//! - arbitrary bytes through every `new_checked` and every getter (and setter) never panic.

mod support;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::checksum::{self, udp_checksum_field, update_bytes, update_u16};
use common::flow::proto;
use common::wire::gre::{GrePacket, GreRepr};
use common::wire::icmp_error::{self, ICMPV4_ERROR_HEADERS, ICMPV6_ERROR_HEADERS};
use common::wire::icmpv4::Icmpv4Packet;
use common::wire::icmpv6::Icmpv6Packet;
use common::wire::ipv4::{self, Ipv4Packet, Ipv4Repr};
use common::wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use common::wire::tcp::{self, TcpPacket};
use common::wire::udp::{self, UdpPacket};
use proptest::prelude::*;

fn ipv4_repr() -> impl Strategy<Value = Ipv4Repr> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<bool>(),
        0..=65515usize,
    )
        .prop_map(|(s, d, protocol, ttl, dscp_ecn, ident, dont_frag, payload_len)| Ipv4Repr {
            src: Ipv4Addr::from(s),
            dst: Ipv4Addr::from(d),
            protocol,
            ttl,
            dscp_ecn,
            ident,
            dont_frag,
            payload_len,
        })
}

fn ipv6_repr() -> impl Strategy<Value = Ipv6Repr> {
    (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<u8>(), any::<u8>(), any::<u8>(), 0..(1u32 << 20), 1..=65535usize)
        .prop_map(|(s, d, next_header, hop_limit, traffic_class, flow_label, payload_len)| Ipv6Repr {
            src: Ipv6Addr::from(s),
            dst: Ipv6Addr::from(d),
            next_header,
            hop_limit,
            traffic_class,
            flow_label,
            payload_len,
        })
}

/// A random IPv4 header: random bytes with version 4, a random IHL (options are random bytes
/// too) and the checksum filled by a full computation.
fn ipv4_header() -> impl Strategy<Value = Vec<u8>> {
    (5u8..=15).prop_flat_map(|ihl| {
        proptest::collection::vec(any::<u8>(), usize::from(ihl) * 4).prop_map(move |mut h| {
            h[0] = 0x40 | ihl;
            let len = h.len() as u16;
            h[2..4].copy_from_slice(&len.to_be_bytes());
            let mut p = Ipv4Packet::new_checked(&mut h[..]).unwrap();
            p.fill_checksum();
            h
        })
    })
}

/// Full checksum of an L4 segment with its checksum field zeroed.
fn full_v4(src: [u8; 4], dst: [u8; 4], proto: u8, seg: &[u8], at: usize) -> u16 {
    let mut s = seg.to_vec();
    s[at..at + 2].copy_from_slice(&[0, 0]);
    checksum::l4_checksum_v4(src, dst, proto, &s)
}

fn full_v6(src: [u8; 16], dst: [u8; 16], proto: u8, seg: &[u8], at: usize) -> u16 {
    let mut s = seg.to_vec();
    s[at..at + 2].copy_from_slice(&[0, 0]);
    checksum::l4_checksum_v6(src, dst, proto, &s)
}

/// A TCP or UDP segment: header with random ports, payload of random (odd or even) length.
fn segment(is_tcp: bool) -> impl Strategy<Value = Vec<u8>> {
    let hl = if is_tcp { 20 } else { 8 };
    (proptest::collection::vec(any::<u8>(), hl..hl + 300)).prop_map(move |mut s| {
        if is_tcp {
            s[12] = 0x50;
        } else {
            let len = s.len() as u16;
            s[4..6].copy_from_slice(&len.to_be_bytes());
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn checksum_sum_matches_rfc1071(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let mut reference: u64 = 0;
        for pair in data.chunks(2) {
            let w = if pair.len() == 2 { u16::from_be_bytes([pair[0], pair[1]]) } else { u16::from(pair[0]) << 8 };
            reference += u64::from(w);
        }
        prop_assert_eq!(checksum::fold(u64::from(checksum::sum(&data))), checksum::fold(reference));
        // Split sums add up when every part but the last has even length.
        let cut = (data.len() / 2) & !1;
        let split = u64::from(checksum::sum(&data[..cut])) + u64::from(checksum::sum(&data[cut..]));
        prop_assert_eq!(checksum::fold(split), checksum::fold(reference));
    }

    #[test]
    fn ipv4_header_incremental_equals_full(
        mut h in ipv4_header(),
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        ttl in any::<u8>(),
        which in 0u8..8,
    ) {
        let mut p = Ipv4Packet::new_checked(&mut h[..]).unwrap();
        prop_assert!(p.verify_checksum());
        // Through the raw RFC 1624 functions.
        let mut c = p.checksum();
        if which & 1 != 0 {
            c = update_bytes(c, &p.src_bytes(), &src);
            p.set_src_addr(src);
        }
        if which & 2 != 0 {
            c = update_bytes(c, &p.dst_bytes(), &dst);
            p.set_dst_addr(dst);
        }
        if which & 4 != 0 {
            let proto = p.protocol();
            c = update_u16(c, u16::from_be_bytes([p.ttl(), proto]), u16::from_be_bytes([ttl, proto]));
            p.set_ttl(ttl);
        }
        p.set_checksum(c);
        let mut q = p;
        q.fill_checksum();
        prop_assert_eq!(c, q.checksum(), "incremental {:04x} full {:04x}", c, q.checksum());
        prop_assert!(q.verify_checksum());
        // Through the view's convenience setters.
        let mut h2 = h.clone();
        let mut p2 = Ipv4Packet::new_checked(&mut h2[..]).unwrap();
        p2.set_ttl_update_checksum(ttl.wrapping_sub(1));
        p2.set_src_addr_update_checksum(dst);
        p2.set_dst_addr_update_checksum(src);
        let inc = p2.checksum();
        p2.fill_checksum();
        prop_assert_eq!(inc, p2.checksum());
    }

    #[test]
    fn l4_v4_incremental_equals_full(
        is_tcp in any::<bool>(),
        seed in any::<u64>(),
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        new_addr in any::<[u8; 4]>(),
        new_port in any::<u16>(),
        rewrite_src in any::<bool>(),
    ) {
        // The segment is derived from the seed to keep the strategy simple.
        let mut rng = seed;
        let mut next = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        let hl = if is_tcp { 20 } else { 8 };
        let len = hl + (next() % 301) as usize;
        let mut seg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let (proto, at) = if is_tcp { (proto::TCP, tcp::CHECKSUM_OFFSET) } else { (proto::UDP, udp::CHECKSUM_OFFSET) };
        if is_tcp { seg[12] = 0x50 } else { seg[4..6].copy_from_slice(&(len as u16).to_be_bytes()) }
        let store = |c: u16| if is_tcp { c } else { udp_checksum_field(c) };
        let c0 = store(full_v4(src, dst, proto, &seg, at));
        seg[at..at + 2].copy_from_slice(&c0.to_be_bytes());

        // DNAT (rewrite dst address + dst port) or SNAT (src address + src port).
        let (port_at, (s2, d2)) = if rewrite_src { (0, (new_addr, dst)) } else { (2, (src, new_addr)) };
        let old_addr = if rewrite_src { src } else { dst };
        let old_port = u16::from_be_bytes([seg[port_at], seg[port_at + 1]]);
        let mut c = update_bytes(c0, &old_addr, &new_addr);
        c = update_u16(c, old_port, new_port);
        seg[port_at..port_at + 2].copy_from_slice(&new_port.to_be_bytes());
        let full = store(full_v4(s2, d2, proto, &seg, at));
        prop_assert_eq!(store(c), full);
        seg[at..at + 2].copy_from_slice(&store(c).to_be_bytes());
        if is_tcp {
            prop_assert!(TcpPacket::new_checked(&seg[..]).unwrap().verify_checksum_v4(s2, d2));
        } else {
            prop_assert!(UdpPacket::new_checked(&seg[..]).unwrap().verify_checksum_v4(s2, d2));
        }
    }

    #[test]
    fn l4_v6_incremental_equals_full(
        is_tcp in any::<bool>(),
        seg in prop_oneof![segment(true), segment(false)],
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        new_addr in any::<[u8; 16]>(),
        new_port in any::<u16>(),
        rewrite_src in any::<bool>(),
    ) {
        let mut seg = seg;
        let is_tcp = is_tcp && seg.len() >= 20;
        let (proto, at) = if is_tcp { (proto::TCP, tcp::CHECKSUM_OFFSET) } else { (proto::UDP, udp::CHECKSUM_OFFSET) };
        if is_tcp { seg[12] = 0x50 } else { let l = seg.len() as u16; seg[4..6].copy_from_slice(&l.to_be_bytes()) }
        let store = |c: u16| if is_tcp { c } else { udp_checksum_field(c) };
        let c0 = store(full_v6(src, dst, proto, &seg, at));
        seg[at..at + 2].copy_from_slice(&c0.to_be_bytes());
        let (port_at, (s2, d2)) = if rewrite_src { (0, (new_addr, dst)) } else { (2, (src, new_addr)) };
        let old_addr = if rewrite_src { src } else { dst };
        let old_port = u16::from_be_bytes([seg[port_at], seg[port_at + 1]]);
        let c = update_u16(update_bytes(c0, &old_addr, &new_addr), old_port, new_port);
        seg[port_at..port_at + 2].copy_from_slice(&new_port.to_be_bytes());
        prop_assert_eq!(store(c), store(full_v6(s2, d2, proto, &seg, at)));
    }

    #[test]
    fn ipv4_repr_round_trip(r in ipv4_repr()) {
        let mut buf = vec![0u8; ipv4::HEADER_LEN + r.payload_len];
        r.emit(&mut buf);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert!(!p.is_fragment());
        prop_assert_eq!(Ipv4Repr::parse(&p), r);
    }

    #[test]
    fn ipv6_repr_round_trip(r in ipv6_repr()) {
        let mut buf = vec![0u8; ipv6::HEADER_LEN + r.payload_len];
        r.emit(&mut buf);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&p), r);
    }

    #[test]
    fn gre_repr_round_trip(protocol in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let r = GreRepr { protocol };
        let mut buf = vec![0u8; r.header_len()];
        r.emit(&mut buf);
        buf.extend_from_slice(&payload);
        let g = GrePacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(GreRepr::parse(&g), r);
        prop_assert_eq!(g.payload(), &payload[..]);
    }

    #[test]
    fn icmpv4_error_round_trip(
        quote in proptest::collection::vec(any::<u8>(), 0..700),
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        msg_type in any::<u8>(),
        code in any::<u8>(),
        rest in any::<[u8; 4]>(),
        ttl in any::<u8>(),
    ) {
        let q = icmp_error::max_quote_v4(quote.len());
        let mut buf = vec![0u8; ICMPV4_ERROR_HEADERS + q];
        buf[ICMPV4_ERROR_HEADERS..].copy_from_slice(&quote[..q]);
        let n = icmp_error::icmpv4_error_in_place(&mut buf, q, src, dst, msg_type, code, rest, ttl);
        prop_assert_eq!(n, ICMPV4_ERROR_HEADERS + q);
        prop_assert!(n <= icmp_error::ICMPV4_ERROR_MAX_LEN);
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        prop_assert!(ip.verify_checksum());
        prop_assert_eq!(
            Ipv4Repr::parse(&ip),
            Ipv4Repr {
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
                protocol: proto::ICMP,
                ttl,
                dscp_ecn: icmp_error::ICMPV4_ERROR_TOS,
                ident: 0,
                dont_frag: false,
                payload_len: 8 + q,
            }
        );
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        prop_assert!(icmp.verify_checksum());
        prop_assert_eq!((icmp.msg_type(), icmp.code(), icmp.rest_of_header()), (msg_type, code, rest));
        prop_assert_eq!(icmp.payload(), &quote[..q]);
    }

    #[test]
    fn icmpv6_error_round_trip(
        quote in proptest::collection::vec(any::<u8>(), 0..1400),
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        msg_type in any::<u8>(),
        code in any::<u8>(),
        rest in any::<[u8; 4]>(),
        hop_limit in any::<u8>(),
    ) {
        let q = icmp_error::max_quote_v6(quote.len());
        let mut buf = vec![0u8; ICMPV6_ERROR_HEADERS + q];
        buf[ICMPV6_ERROR_HEADERS..].copy_from_slice(&quote[..q]);
        let n = icmp_error::icmpv6_error_in_place(&mut buf, q, src, dst, msg_type, code, rest, hop_limit);
        prop_assert_eq!(n, ICMPV6_ERROR_HEADERS + q);
        prop_assert!(n <= icmp_error::ICMPV6_ERROR_MAX_LEN);
        let ip = Ipv6Packet::new_checked(&buf[..n]).unwrap();
        prop_assert_eq!(
            Ipv6Repr::parse(&ip),
            Ipv6Repr {
                src: Ipv6Addr::from(src),
                dst: Ipv6Addr::from(dst),
                next_header: proto::ICMPV6,
                hop_limit,
                traffic_class: 0,
                flow_label: 0,
                payload_len: 8 + q,
            }
        );
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        prop_assert!(icmp.verify_checksum(src, dst));
        prop_assert_eq!((icmp.msg_type(), icmp.code(), icmp.rest_of_header()), (msg_type, code, rest));
        prop_assert_eq!(icmp.payload(), &quote[..q]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Arbitrary bytes into every `new_checked` and every getter: no panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), v in any::<u16>()) {
        support::every_view(&bytes);
        support::every_setter(&bytes, v);
        let mut f = support::Features::default();
        support::walk_ethernet(&bytes, &mut f);
        support::walk_ipv4(&bytes, &mut f, 0);
        support::walk_ipv6(&bytes, &mut f, 0);
    }

    /// Structured-ish bytes (valid version nibbles and plausible lengths) reach deeper paths.
    #[test]
    fn plausible_headers_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 40..300),
        v6 in any::<bool>(),
        v in any::<u16>(),
    ) {
        let len = bytes.len();
        if v6 {
            bytes[0] = 0x60 | (bytes[0] & 0x0f);
            let plen = ((len - 40) as u16).saturating_sub(bytes[1] as u16 % 4);
            bytes[4..6].copy_from_slice(&plen.to_be_bytes());
        } else {
            bytes[0] = 0x45;
            bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            bytes[6] &= 0x3f;
            bytes[7] = 0;
        }
        support::every_view(&bytes);
        support::every_setter(&bytes, v);
        let mut f = support::Features::default();
        if v6 { support::walk_ipv6(&bytes, &mut f, 0) } else { support::walk_ipv4(&bytes, &mut f, 0) }
    }
}

#[test]
fn truncated_prefixes_of_a_full_frame_never_panic() {
    // Ethernet + VLAN + IPv6 + hop-by-hop + fragment + UDP, truncated at every length.
    let mut f = vec![2u8, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x81, 0x00, 0x00, 0x05, 0x86, 0xdd];
    let mut ip = vec![0u8; 40];
    Ipv6Repr {
        src: "2001:db8::1".parse().unwrap(),
        dst: "2001:db8::2".parse().unwrap(),
        next_header: proto::HOPOPT,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
        payload_len: 8 + 8 + 12,
    }
    .emit(&mut ip);
    ip.extend_from_slice(&[proto::FRAGMENT, 0, 1, 4, 0, 0, 0, 0]);
    ip.extend_from_slice(&[proto::UDP, 0, 0, 1, 0, 0, 0, 42]);
    ip.extend_from_slice(&[0, 53, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
    f.extend_from_slice(&ip);
    let mut full = support::Features::default();
    support::walk_ethernet(&f, &mut full);
    assert_eq!((full.vlan_tagged, full.ipv6, full.ipv6_fragment_headers, full.udp), (1, 1, 1, 1));
    for n in 0..f.len() {
        let mut part = support::Features::default();
        support::walk_ethernet(&f[..n], &mut part);
        assert_eq!(part.udp, 0, "a frame truncated to {n} bytes must not yield a UDP header");
    }
}

/// A UDP datagram whose computed checksum is 0 carries 0xFFFF (RFC 768); an incremental update
/// from that -0 must still equal a full recomputation, and a result of 0 must go out as 0xFFFF.
#[test]
fn udp_negative_zero_incremental() {
    let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut dg = vec![0x30, 0x39, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
    // Choose the last payload word so that the computed checksum is 0.
    let c = checksum::l4_checksum_v4(src, dst, proto::UDP, &dg);
    dg[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(checksum::l4_checksum_v4(src, dst, proto::UDP, &dg), 0);
    let mut u = UdpPacket::new_checked(&mut dg[..]).unwrap();
    u.fill_checksum_v4(src, dst);
    assert_eq!(u.checksum(), 0xFFFF);

    // Rewrite the destination address and port from the -0 checksum.
    for (new_dst, new_port) in [([192, 168, 1, 1], 8053u16), ([10, 0, 0, 2], 53), ([0, 0, 0, 0], 0)] {
        let mut d = dg.clone();
        let c = update_u16(update_bytes(0xFFFF, &dst, &new_dst), 53, new_port);
        d[2..4].copy_from_slice(&new_port.to_be_bytes());
        let full = udp_checksum_field(full_v4(src, new_dst, proto::UDP, &d, udp::CHECKSUM_OFFSET));
        assert_eq!(udp_checksum_field(c), full, "rewrite to {new_dst:?}:{new_port}");
    }
    // A rewrite back to the same values yields a checksum that verifies.
    let c = update_u16(0xFFFF, 53, 53);
    assert_eq!(udp_checksum_field(c), 0xFFFF);
}
