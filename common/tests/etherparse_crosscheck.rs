//! Cross-check emitted headers and computed checksums against an independent implementation,
//! the `etherparse` crate.

use std::net::{Ipv4Addr, Ipv6Addr};

use common::checksum::{self, udp_checksum_field};
use common::flow::proto;
use common::wire::icmp_error;
use common::wire::icmpv4::{CODE_FRAG_NEEDED, DEST_UNREACH};
use common::wire::icmpv6::PACKET_TOO_BIG;
use common::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use common::wire::ipv6::Ipv6Repr;
use common::wire::tcp::TcpPacket;
use common::wire::udp::UdpPacket;
use common::wire::vlan;
use etherparse::{
    Icmpv4Type, Icmpv6Slice, Icmpv6Type, IpNumber, Ipv4Header, Ipv6Header, SlicedPacket, TcpHeader, TransportSlice,
    UdpHeader, icmpv4::DestUnreachableHeader,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ipv4_emit_matches_etherparse(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), protocol in any::<u8>(), ttl in any::<u8>(),
        dscp_ecn in any::<u8>(), ident in any::<u16>(), dont_frag in any::<bool>(), payload_len in 0..2000usize,
    ) {
        let r = Ipv4Repr {
            src: Ipv4Addr::from(src), dst: Ipv4Addr::from(dst), protocol, ttl, dscp_ecn, ident, dont_frag, payload_len,
        };
        let mut ours = [0u8; 20];
        r.emit(&mut ours);

        let (h, _) = Ipv4Header::from_slice(&ours).unwrap();
        prop_assert_eq!(h.source, src);
        prop_assert_eq!(h.destination, dst);
        prop_assert_eq!(h.protocol, IpNumber(protocol));
        prop_assert_eq!(h.time_to_live, ttl);
        prop_assert_eq!(h.identification, ident);
        prop_assert_eq!(h.dont_fragment, dont_frag);
        prop_assert_eq!(h.total_len as usize, 20 + payload_len);
        prop_assert_eq!((h.dscp.value() << 2) | h.ecn.value(), dscp_ecn);
        prop_assert_eq!(h.header_checksum, h.calc_header_checksum());

        // And the other way round: etherparse's serialisation parses to the same Repr.
        let mut theirs = Ipv4Header::new(payload_len as u16, ttl, IpNumber(protocol), src, dst).unwrap();
        theirs.identification = ident;
        theirs.dont_fragment = dont_frag;
        theirs.dscp = etherparse::Ipv4Dscp::try_new(dscp_ecn >> 2).unwrap();
        theirs.ecn = etherparse::Ipv4Ecn::try_new(dscp_ecn & 3).unwrap();
        theirs.header_checksum = theirs.calc_header_checksum();
        let bytes = theirs.to_bytes();
        prop_assert_eq!(&bytes[..], &ours[..]);
    }

    #[test]
    fn ipv6_emit_matches_etherparse(
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), next_header in any::<u8>(), hop_limit in any::<u8>(),
        traffic_class in any::<u8>(), flow_label in 0..(1u32 << 20), payload_len in 1..=65535usize,
    ) {
        let r = Ipv6Repr {
            src: Ipv6Addr::from(src), dst: Ipv6Addr::from(dst), next_header, hop_limit, traffic_class, flow_label,
            payload_len,
        };
        let mut ours = [0u8; 40];
        r.emit(&mut ours);
        let theirs = Ipv6Header {
            traffic_class,
            flow_label: etherparse::Ipv6FlowLabel::try_new(flow_label).unwrap(),
            payload_length: payload_len as u16,
            next_header: IpNumber(next_header),
            hop_limit,
            source: src,
            destination: dst,
        };
        prop_assert_eq!(theirs.to_bytes(), ours);
    }

    #[test]
    fn tcp_udp_checksums_match_etherparse(
        src4 in any::<[u8; 4]>(), dst4 in any::<[u8; 4]>(), src6 in any::<[u8; 16]>(), dst6 in any::<[u8; 16]>(),
        sport in any::<u16>(), dport in any::<u16>(), seq in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        // TCP
        let th = TcpHeader::new(sport, dport, seq, 1000);
        let mut seg = th.to_bytes().to_vec();
        seg.extend_from_slice(&payload);
        let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
        t.fill_checksum_v4(src4, dst4);
        prop_assert_eq!(t.checksum(), th.calc_checksum_ipv4_raw(src4, dst4, &payload).unwrap());
        t.fill_checksum_v6(src6, dst6);
        prop_assert_eq!(t.checksum(), th.calc_checksum_ipv6_raw(src6, dst6, &payload).unwrap());

        // UDP (etherparse also maps a computed 0 to 0xFFFF)
        let uh = UdpHeader { source_port: sport, destination_port: dport, length: (8 + payload.len()) as u16, checksum: 0 };
        let mut dg = uh.to_bytes().to_vec();
        dg.extend_from_slice(&payload);
        let mut u = UdpPacket::new_checked(&mut dg[..]).unwrap();
        u.fill_checksum_v4(src4, dst4);
        prop_assert_eq!(u.checksum(), uh.calc_checksum_ipv4_raw(src4, dst4, &payload).unwrap());
        u.fill_checksum_v6(src6, dst6);
        prop_assert_eq!(u.checksum(), uh.calc_checksum_ipv6_raw(src6, dst6, &payload).unwrap());
        prop_assert_eq!(
            u.checksum(),
            udp_checksum_field(checksum::l4_checksum_v6(src6, dst6, proto::UDP, &{
                let mut z = dg.clone();
                z[6] = 0;
                z[7] = 0;
                z
            }))
        );
    }
}

#[test]
fn icmpv4_frag_needed_matches_etherparse() {
    let mut inner = vec![0u8; 600];
    Ipv4Repr {
        src: Ipv4Addr::new(198, 51, 100, 1),
        dst: Ipv4Addr::new(192, 0, 2, 1),
        protocol: proto::TCP,
        ttl: 60,
        dscp_ecn: 0,
        ident: 99,
        dont_frag: true,
        payload_len: 580,
    }
    .emit(&mut inner);
    let q = icmp_error::max_quote_v4(inner.len());
    let mut buf = vec![0u8; 28 + q];
    buf[28..].copy_from_slice(&inner[..q]);
    let n = icmp_error::icmpv4_error_in_place(
        &mut buf,
        q,
        [192, 0, 2, 1],
        [198, 51, 100, 1],
        DEST_UNREACH,
        CODE_FRAG_NEEDED,
        [0, 0, 0x05, 0xdc],
        64,
    );
    let p = SlicedPacket::from_ip(&buf[..n]).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!("not IPv4") };
    assert_eq!(ip.header().total_len() as usize, n);
    assert_eq!(ip.header().to_header().calc_header_checksum(), ip.header().header_checksum());
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else { panic!("not ICMPv4") };
    assert_eq!(
        icmp.icmp_type(),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1500 })
    );
    let expected = etherparse::Icmpv4Header::with_checksum(icmp.icmp_type(), icmp.payload());
    assert_eq!(icmp.checksum(), expected.checksum);
    assert_eq!(icmp.payload(), &inner[..q]);
}

#[test]
fn icmpv6_packet_too_big_matches_etherparse() {
    let src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let dst = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let quote: Vec<u8> = (0..1400u32).map(|i| i as u8).collect();
    let q = icmp_error::max_quote_v6(quote.len());
    let mut buf = vec![0u8; 48 + q];
    buf[48..].copy_from_slice(&quote[..q]);
    let n = icmp_error::icmpv6_error_in_place(&mut buf, q, src, dst, PACKET_TOO_BIG, 0, 1280u32.to_be_bytes(), 255);
    assert_eq!(n, 1280);
    let (h, rest) = Ipv6Header::from_slice(&buf[..n]).unwrap();
    assert_eq!((h.next_header, h.payload_length as usize), (IpNumber::IPV6_ICMP, n - 40));
    let icmp = Icmpv6Slice::from_slice(rest).unwrap();
    assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1280 });
    assert!(icmp.is_checksum_valid(src, dst));
}

/// etherparse and our views agree on the L2 length and the 5-tuple of tagged and untagged frames.
#[test]
fn flow_fields_agree_on_constructed_frames() {
    for vlan_tags in 0..=2usize {
        let mut f = vec![0u8; 12];
        for _ in 0..vlan_tags {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let l3 = f.len();
        f.resize(l3 + 20 + 20 + 5, 0);
        Ipv4Repr {
            src: Ipv4Addr::new(10, 1, 2, 3),
            dst: Ipv4Addr::new(10, 9, 8, 7),
            protocol: proto::TCP,
            ttl: 64,
            dscp_ecn: 0,
            ident: 1,
            dont_frag: true,
            payload_len: 25,
        }
        .emit(&mut f[l3..]);
        let th = TcpHeader::new(1234, 443, 1, 100);
        f[l3 + 20..l3 + 40].copy_from_slice(&th.to_bytes());

        let theirs = SlicedPacket::from_ethernet(&f).unwrap();
        let l2 = vlan::parse_l2(&f).unwrap();
        assert_eq!((l2.len, l2.vlan_count as usize), (14 + 4 * vlan_tags, vlan_tags));
        let ip = Ipv4Packet::new_checked(&f[l2.len..]).unwrap();
        let Some(etherparse::NetSlice::Ipv4(tip)) = &theirs.net else { panic!("not IPv4") };
        assert_eq!(ip.src_bytes(), tip.header().source());
        assert_eq!(ip.dst_bytes(), tip.header().destination());
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        let Some(TransportSlice::Tcp(tt)) = &theirs.transport else { panic!("not TCP") };
        assert_eq!((t.src_port(), t.dst_port()), (tt.source_port(), tt.destination_port()));
    }
}
