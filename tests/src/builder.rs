//! A small, independent packet builder for golden tests.
//!
//! It shares no code with l4lb: it assembles headers byte by byte and computes
//! checksums with its own naive routine, so a bug in `common::wire` or
//! `common::checksum` cannot hide itself in the expected output.

#![allow(clippy::too_many_arguments)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;
pub const GRE: u8 = 47;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// Naive RFC 1071 checksum of the concatenation of `parts`.
pub fn csum(parts: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(p);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    v.try_into().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// IP-level options of a built packet.
#[derive(Clone, Copy, Debug)]
pub struct IpOpts {
    pub ttl: u8,
    pub tos: u8,
    pub df: bool,
    pub ident: u16,
    pub flow_label: u32,
}

impl Default for IpOpts {
    fn default() -> Self {
        IpOpts { ttl: 64, tos: 0, df: true, ident: 0x1234, flow_label: 0 }
    }
}

/// Ethernet header (no VLAN) + payload.
pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Ethernet with one 802.1Q tag.
pub fn eth_vlan(dst: [u8; 6], src: [u8; 6], vid: u16, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header (no options) for a payload.
pub fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize, o: IpOpts) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[1] = o.tos;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&o.ident.to_be_bytes());
    if o.df {
        h[6] = 0x40;
    }
    h[8] = o.ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = csum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

pub fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload_len: usize, o: IpOpts) -> [u8; 40] {
    let mut h = [0u8; 40];
    let vtf: u32 = (6 << 28) | (u32::from(o.tos) << 20) | (o.flow_label & 0xfffff);
    h[0..4].copy_from_slice(&vtf.to_be_bytes());
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = o.ttl;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h
}

fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.push(0);
            p.push(proto);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => panic!("mixed families"),
    }
    p
}

/// A TCP segment with a valid checksum for (src, dst).
pub fn tcp_segment(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    if flags & ACK != 0 {
        t[8..12].copy_from_slice(&2000u32.to_be_bytes());
    }
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t.extend_from_slice(payload);
    let c = csum(&[&pseudo(src, dst, TCP, t.len()), &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP datagram with a valid checksum (or 0 when `zero_checksum`).
pub fn udp_datagram(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8], zero_checksum: bool) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    if !zero_checksum {
        let mut c = csum(&[&pseudo(src, dst, UDP, u.len()), &u]);
        if c == 0 {
            c = 0xffff;
        }
        u[6..8].copy_from_slice(&c.to_be_bytes());
    }
    u
}

/// An ICMPv4 message (type, code, 4 rest bytes, body) with a valid checksum.
pub fn icmp4(ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = csum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An ICMPv6 message with a valid checksum for (src, dst).
pub fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = csum(&[&pseudo(IpAddr::V6(src), IpAddr::V6(dst), ICMPV6, m.len()), &m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An IP packet (header + L4 bytes) of either family.
pub fn ip_packet(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8], o: IpOpts) -> Vec<u8> {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => p.extend_from_slice(&ipv4_header(s, d, proto, l4.len(), o)),
        (IpAddr::V6(s), IpAddr::V6(d)) => p.extend_from_slice(&ipv6_header(s, d, proto, l4.len(), o)),
        _ => panic!("mixed families"),
    }
    p.extend_from_slice(l4);
    p
}

pub fn ethertype_of(a: &IpAddr) -> u16 {
    if a.is_ipv4() { 0x0800 } else { 0x86dd }
}

/// A whole frame: Ethernet + IP + TCP.
pub fn tcp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
    o: IpOpts,
) -> Vec<u8> {
    let (s, d) = (ip(src), ip(dst));
    let seg = tcp_segment(s, d, sport, dport, flags, payload);
    eth(dst_mac, src_mac, ethertype_of(&s), &ip_packet(s, d, TCP, &seg, o))
}

/// A whole frame: Ethernet + IP + UDP.
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    payload: &[u8],
    o: IpOpts,
) -> Vec<u8> {
    let (s, d) = (ip(src), ip(dst));
    let seg = udp_datagram(s, d, sport, dport, payload, false);
    eth(dst_mac, src_mac, ethertype_of(&s), &ip_packet(s, d, UDP, &seg, o))
}

/// What l4lb must send for `inner` (an IP packet) tunnelled to `backend`:
/// Ethernet to the gateway, outer header from the node, TTL 64, TOS copied, DF set,
/// identification 0, GRE (4 bytes) when `gre`.
pub fn expected_tunnel(
    node_mac: [u8; 6],
    gw_mac: [u8; 6],
    outer_src: IpAddr,
    backend: IpAddr,
    inner: &[u8],
    gre: bool,
) -> Vec<u8> {
    let inner_v4 = inner[0] >> 4 == 4;
    let tos = if inner_v4 { inner[1] } else { ((u16::from_be_bytes([inner[0], inner[1]]) >> 4) & 0xff) as u8 };
    let mut payload = Vec::new();
    let proto = if gre {
        payload.extend_from_slice(&[0, 0]);
        payload.extend_from_slice(&(if inner_v4 { 0x0800u16 } else { 0x86dd }).to_be_bytes());
        GRE
    } else if inner_v4 {
        4
    } else {
        41
    };
    payload.extend_from_slice(inner);
    let o = IpOpts { ttl: 64, tos, df: true, ident: 0, flow_label: 0 };
    let outer = ip_packet(outer_src, backend, proto, &payload, o);
    eth(gw_mac, node_mac, ethertype_of(&backend), &outer)
}
