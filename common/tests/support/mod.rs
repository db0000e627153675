//! Shared by the integration tests: run a byte buffer through every view and every getter.

#![allow(dead_code)]

use common::flow::proto;
use common::wire::arp::ArpPacket;
use common::wire::ethernet::{self, EthernetFrame};
use common::wire::gre::{self, GrePacket};
use common::wire::icmp_error;
use common::wire::icmpv4::{self, Icmpv4Packet};
use common::wire::icmpv6::{self, Icmpv6Packet};
use common::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use common::wire::ipv6::{Ipv6Packet, Ipv6Repr};
use common::wire::ipv6_ext::{self, ExtHeader, FragmentHeader};
use common::wire::tcp::TcpPacket;
use common::wire::udp::UdpPacket;
use common::wire::vlan::{self, VlanTag};

/// What was recognised while walking a packet.
#[derive(Debug, Default, Clone, Copy)]
pub struct Features {
    pub frames: u64,
    pub l2_errors: u64,
    pub vlan_tagged: u64,
    pub qinq: u64,
    pub arp: u64,
    pub ipv4: u64,
    pub ipv4_errors: u64,
    pub ipv4_options: u64,
    pub ipv4_fragments: u64,
    pub ipv4_bad_checksum: u64,
    pub ipv6: u64,
    pub ipv6_errors: u64,
    pub ipv6_ext_headers: u64,
    pub ipv6_fragment_headers: u64,
    pub ipv6_chain_errors: u64,
    pub tcp: u64,
    pub udp: u64,
    pub l4_errors: u64,
    pub l4_checksum_ok: u64,
    pub icmpv4: u64,
    pub icmpv6: u64,
    pub icmp_errors: u64,
    pub icmp_quotes_parsed: u64,
    pub gre: u64,
    pub gre_inner_ip: u64,
    pub tunnels: u64,
    /// Frames whose TCP/UDP 5-tuple etherparse and our views both found (and agree on).
    pub etherparse_agree: u64,
    /// Frames where only one of the two found a 5-tuple.
    pub etherparse_differ: u64,
}

impl Features {
    pub fn add(&mut self, o: &Features) {
        macro_rules! sum { ($($f:ident),*) => { $( self.$f += o.$f; )* } }
        sum!(
            frames,
            l2_errors,
            vlan_tagged,
            qinq,
            arp,
            ipv4,
            ipv4_errors,
            ipv4_options,
            ipv4_fragments,
            ipv4_bad_checksum,
            ipv6,
            ipv6_errors,
            ipv6_ext_headers,
            ipv6_fragment_headers,
            ipv6_chain_errors,
            tcp,
            udp,
            l4_errors,
            l4_checksum_ok,
            icmpv4,
            icmpv6,
            icmp_errors,
            icmp_quotes_parsed,
            gre,
            gre_inner_ip,
            tunnels,
            etherparse_agree,
            etherparse_differ
        );
    }
}

/// Read every getter of every view that accepts `b` (no L2/L3 interpretation): the
/// "arbitrary bytes never panic" body.
pub fn every_view(b: &[u8]) {
    if let Ok(f) = EthernetFrame::new_checked(b) {
        std::hint::black_box((f.dst_addr(), f.src_addr(), f.ethertype(), f.payload().len()));
    }
    let _ = std::hint::black_box(vlan::parse_l2(b));
    if let Ok(t) = VlanTag::new_checked(b) {
        std::hint::black_box((t.pcp(), t.dei(), t.vid(), t.ethertype(), t.payload().len()));
    }
    arp_getters(b);
    for p in [Ipv4Packet::new_checked(b), Ipv4Packet::new_quoted(b)].into_iter().flatten() {
        ipv4_getters(&p);
    }
    for p in [Ipv6Packet::new_checked(b), Ipv6Packet::new_quoted(b)].into_iter().flatten() {
        ipv6_getters(&p);
    }
    let _ = std::hint::black_box(ipv6_ext::walk(b));
    if let Ok(e) = ExtHeader::new_checked(b) {
        std::hint::black_box((e.next_header(), e.header_len(), e.data().len(), e.routing_type(), e.segments_left()));
    }
    if let Ok(f) = FragmentHeader::new_checked(b) {
        std::hint::black_box((f.next_header(), f.frag_offset(), f.more_frags(), f.ident()));
    }
    tcp_getters(b);
    udp_getters(b);
    icmpv4_getters(b);
    icmpv6_getters(b);
    gre_getters(b);
    let _ = std::hint::black_box(icmp_error::parse_quoted_v4(b));
    let _ = std::hint::black_box(icmp_error::parse_quoted_v6(b));
}

/// Mutate through every setter, then read everything again: setters on a checked view must not
/// make a later accessor panic.
pub fn every_setter(b: &[u8], v: u16) {
    let mut buf = b.to_vec();
    if let Ok(mut p) = Ipv4Packet::new_checked(&mut buf[..]) {
        p.set_total_len(v);
        p.set_version_and_header_len(usize::from(v & 0x3f));
        p.set_ttl(v as u8);
        p.set_src_addr_update_checksum([1, 2, 3, 4]);
        p.set_flags_and_frag(v & 1 != 0, v & 2 != 0, v);
        p.fill_checksum();
        ipv4_getters(&p);
        p.payload_mut().fill(0);
    }
    let mut buf = b.to_vec();
    if let Ok(mut p) = Ipv6Packet::new_checked(&mut buf[..]) {
        p.set_payload_len(v);
        p.set_traffic_class(v as u8);
        p.set_flow_label(u32::from(v) << 8);
        ipv6_getters(&p);
        p.payload_mut().fill(0);
    }
    let mut buf = b.to_vec();
    if let Ok(mut t) = TcpPacket::new_checked(&mut buf[..]) {
        t.set_header_len(usize::from(v & 0x3f));
        t.fill_checksum_v4([1; 4], [2; 4]);
        std::hint::black_box((t.options().len(), t.payload().len()));
        t.payload_mut().fill(0);
    }
    let mut buf = b.to_vec();
    if let Ok(mut u) = UdpPacket::new_checked(&mut buf[..]) {
        u.set_len(v);
        u.fill_checksum_v6([1; 16], [2; 16]);
        std::hint::black_box((u.payload().len(), u.datagram().len(), u.verify_checksum_v4([0; 4], [0; 4])));
        u.payload_mut().fill(0);
    }
}

fn arp_getters(b: &[u8]) -> bool {
    match ArpPacket::new_checked(b) {
        Ok(a) => {
            std::hint::black_box((
                a.hardware_type(),
                a.protocol_type(),
                a.operation(),
                a.is_ethernet_ipv4(),
                a.sender_hardware_addr().len(),
                a.sender_protocol_addr().len(),
                a.target_hardware_addr().len(),
                a.target_protocol_addr().len(),
            ));
            true
        }
        Err(_) => false,
    }
}

fn ipv4_getters<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
    std::hint::black_box((
        p.version(),
        p.header_len(),
        p.dscp_ecn(),
        p.total_len(),
        p.ident(),
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.is_fragment(),
        p.ttl(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
    ));
    std::hint::black_box((p.options().len(), p.payload().len(), p.verify_checksum(), Ipv4Repr::parse(p)));
}

fn ipv6_getters<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) {
    std::hint::black_box((
        p.version(),
        p.traffic_class(),
        p.flow_label(),
        p.payload_len(),
        p.next_header(),
        p.hop_limit(),
        p.src_addr(),
        p.dst_addr(),
        p.payload().len(),
        Ipv6Repr::parse(p),
    ));
}

fn tcp_getters(b: &[u8]) -> bool {
    match TcpPacket::new_checked(b) {
        Ok(t) => {
            std::hint::black_box((
                t.src_port(),
                t.dst_port(),
                t.seq_number(),
                t.ack_number(),
                t.header_len(),
                t.flags(),
                t.syn() | t.ack() | t.fin() | t.rst(),
                t.window(),
                t.checksum(),
                t.urgent(),
                t.options().len(),
                t.payload().len(),
            ));
            true
        }
        Err(_) => false,
    }
}

fn udp_getters(b: &[u8]) -> bool {
    match UdpPacket::new_checked(b) {
        Ok(u) => {
            std::hint::black_box((u.src_port(), u.dst_port(), u.len(), u.checksum(), u.payload().len()));
            true
        }
        Err(_) => false,
    }
}

fn icmpv4_getters(b: &[u8]) -> Option<Icmpv4Packet<&[u8]>> {
    let p = Icmpv4Packet::new_checked(b).ok()?;
    std::hint::black_box((
        p.msg_type(),
        p.code(),
        p.checksum(),
        p.echo_ident(),
        p.echo_seq(),
        p.next_hop_mtu(),
        p.rest_of_header(),
        p.payload().len(),
        p.verify_checksum(),
    ));
    Some(p)
}

fn icmpv6_getters(b: &[u8]) -> Option<Icmpv6Packet<&[u8]>> {
    let p = Icmpv6Packet::new_checked(b).ok()?;
    std::hint::black_box((
        p.msg_type(),
        p.code(),
        p.checksum(),
        p.echo_ident(),
        p.echo_seq(),
        p.mtu(),
        p.rest_of_header(),
        p.payload().len(),
        p.verify_checksum([0; 16], [0; 16]),
    ));
    Some(p)
}

fn gre_getters(b: &[u8]) -> Option<GrePacket<&[u8]>> {
    let g = GrePacket::new_checked(b).ok()?;
    std::hint::black_box((
        g.version(),
        g.checksum_present(),
        g.key_present(),
        g.seq_present(),
        g.protocol_type(),
        g.header_len(),
        g.checksum(),
        g.key(),
        g.sequence(),
        g.payload().len(),
        g.verify_checksum(),
    ));
    Some(g)
}

/// Walk an Ethernet frame through L2, L3, L4, ICMP quotes and GRE, counting what was recognised.
pub fn walk_ethernet(frame: &[u8], f: &mut Features) {
    every_view(frame);
    let l2 = match vlan::parse_l2(frame) {
        Ok(l2) => l2,
        Err(_) => {
            f.l2_errors += 1;
            return;
        }
    };
    if l2.vlan_count > 0 {
        f.vlan_tagged += 1;
    }
    if l2.vlan_count == 2 {
        f.qinq += 1;
    }
    for i in 0..usize::from(l2.vlan_count) {
        let tag = VlanTag::new_checked(&frame[14 + 4 * i..]).expect("parse_l2 checked the tags");
        std::hint::black_box(tag.vid());
    }
    walk_l3(l2.ethertype, &frame[l2.len..], f, 0);
}

/// Walk an L3 packet of the given EtherType. `depth` bounds tunnel recursion.
pub fn walk_l3(ethertype: u16, l3: &[u8], f: &mut Features, depth: u8) {
    match ethertype {
        ethernet::ETHERTYPE_IPV4 => walk_ipv4(l3, f, depth),
        ethernet::ETHERTYPE_IPV6 => walk_ipv6(l3, f, depth),
        ethernet::ETHERTYPE_ARP => {
            if arp_getters(l3) {
                f.arp += 1;
            }
        }
        _ => every_view(l3),
    }
}

pub fn walk_ipv4(l3: &[u8], f: &mut Features, depth: u8) {
    every_view(l3);
    let ip = match Ipv4Packet::new_checked(l3) {
        Ok(ip) => ip,
        Err(_) => {
            f.ipv4_errors += 1;
            return;
        }
    };
    f.ipv4 += 1;
    ipv4_getters(&ip);
    if !ip.options().is_empty() {
        f.ipv4_options += 1;
    }
    if !ip.verify_checksum() {
        f.ipv4_bad_checksum += 1;
    }
    if ip.is_fragment() {
        f.ipv4_fragments += 1;
        if ip.frag_offset() != 0 {
            return;
        }
    }
    let (src, dst) = (ip.src_bytes(), ip.dst_bytes());
    let payload = ip.payload();
    match ip.protocol() {
        proto::TCP => match TcpPacket::new_checked(payload) {
            Ok(t) => {
                f.tcp += 1;
                tcp_getters(payload);
                if !ip.more_frags() && t.verify_checksum_v4(src, dst) {
                    f.l4_checksum_ok += 1;
                }
            }
            Err(_) => f.l4_errors += 1,
        },
        proto::UDP => match UdpPacket::new_checked(payload) {
            Ok(u) => {
                f.udp += 1;
                udp_getters(payload);
                if !ip.more_frags() && u.checksum() != 0 && u.verify_checksum_v4(src, dst) {
                    f.l4_checksum_ok += 1;
                }
            }
            Err(_) => f.l4_errors += 1,
        },
        proto::ICMP => {
            if let Some(icmp) = icmpv4_getters(payload) {
                f.icmpv4 += 1;
                if icmpv4::is_error(icmp.msg_type()) {
                    f.icmp_errors += 1;
                    if let Ok(q) = icmp_error::parse_quoted_v4(icmp.payload()) {
                        f.icmp_quotes_parsed += 1;
                        std::hint::black_box(q);
                        // Walk the quoted packet's header as far as it goes.
                        if let Ok(inner) = Ipv4Packet::new_quoted(icmp.payload()) {
                            ipv4_getters(&inner);
                            every_view(inner.payload());
                        }
                    }
                }
            } else {
                f.l4_errors += 1;
            }
        }
        proto::GRE => walk_gre(payload, f, depth),
        proto::IPIP if depth < 4 => {
            f.tunnels += 1;
            walk_ipv4(payload, f, depth + 1);
        }
        proto::IPV6 if depth < 4 => {
            f.tunnels += 1;
            walk_ipv6(payload, f, depth + 1);
        }
        _ => every_view(payload),
    }
}

pub fn walk_ipv6(l3: &[u8], f: &mut Features, depth: u8) {
    every_view(l3);
    let ip = match Ipv6Packet::new_checked(l3) {
        Ok(ip) => ip,
        Err(_) => {
            f.ipv6_errors += 1;
            return;
        }
    };
    f.ipv6 += 1;
    ipv6_getters(&ip);
    let upper = match ipv6_ext::walk(l3) {
        Ok(u) => u,
        Err(_) => {
            f.ipv6_chain_errors += 1;
            return;
        }
    };
    if upper.offset > 40 {
        f.ipv6_ext_headers += 1;
    }
    if let Some(frag) = upper.fragment {
        f.ipv6_fragment_headers += 1;
        let fh = FragmentHeader::new_checked(&l3[frag.header_offset..]).expect("walk checked the fragment header");
        assert_eq!(fh.frag_offset(), frag.offset);
        if frag.offset != 0 {
            return;
        }
    }
    let end = 40 + usize::from(ip.payload_len());
    let l4 = &l3[upper.offset..end];
    let (src, dst) = (ip.src_bytes(), ip.dst_bytes());
    let whole = upper.fragment.is_none_or(|fr| fr.is_atomic());
    match upper.protocol {
        proto::TCP => match TcpPacket::new_checked(l4) {
            Ok(t) => {
                f.tcp += 1;
                if whole && t.verify_checksum_v6(src, dst) {
                    f.l4_checksum_ok += 1;
                }
            }
            Err(_) => f.l4_errors += 1,
        },
        proto::UDP => match UdpPacket::new_checked(l4) {
            Ok(u) => {
                f.udp += 1;
                if whole && u.verify_checksum_v6(src, dst) {
                    f.l4_checksum_ok += 1;
                }
            }
            Err(_) => f.l4_errors += 1,
        },
        proto::ICMPV6 => {
            if let Some(icmp) = icmpv6_getters(l4) {
                f.icmpv6 += 1;
                if icmpv6::is_error(icmp.msg_type()) {
                    f.icmp_errors += 1;
                    if let Ok(q) = icmp_error::parse_quoted_v6(icmp.payload()) {
                        f.icmp_quotes_parsed += 1;
                        std::hint::black_box(q);
                        if let Ok(inner) = Ipv6Packet::new_quoted(icmp.payload()) {
                            ipv6_getters(&inner);
                            every_view(inner.payload());
                        }
                    }
                }
            } else {
                f.l4_errors += 1;
            }
        }
        proto::GRE => walk_gre(l4, f, depth),
        proto::IPIP if depth < 4 => {
            f.tunnels += 1;
            walk_ipv4(l4, f, depth + 1);
        }
        proto::IPV6 if depth < 4 => {
            f.tunnels += 1;
            walk_ipv6(l4, f, depth + 1);
        }
        _ => every_view(l4),
    }
}

fn walk_gre(b: &[u8], f: &mut Features, depth: u8) {
    let Some(g) = gre_getters(b) else {
        f.l4_errors += 1;
        return;
    };
    f.gre += 1;
    let inner = g.payload();
    match g.protocol_type() {
        gre::PROTO_IPV4 | gre::PROTO_IPV6 if depth < 4 => {
            f.gre_inner_ip += 1;
            walk_l3(g.protocol_type(), inner, f, depth + 1);
        }
        gre::PROTO_TEB if depth < 4 => walk_ethernet(inner, f),
        _ => every_view(inner),
    }
}
