//! ICMP and ICMPv6 at a VIP: echo answers, errors routed to the backend of the
//! flow they quote, and "fragmentation needed" / "packet too big" answers for
//! packets that would not fit the MTU once encapsulated.

use std::net::IpAddr;

use common::checksum;
use common::flow::{FlowKey, FlowKeyV4, FlowKeyV6, proto};
use common::snapshot::NodeInfo;
use common::wire::{icmp_error, icmpv4, icmpv6, ipv4};

use super::encap::set_l2;
use super::nat::{decrement_ttl, rewrite_transport, swap_addr};
use super::parse::Parsed;
use crate::counters::DropReason;
use crate::port::PacketBuf;

/// RFC 1812 4.3.2.3: an ICMPv4 error quotes as much as fits in 576 bytes.
pub const ICMPV4_ERROR_MAX: usize = 576;
/// RFC 4443 2.4(c): an ICMPv6 error fits in the minimum IPv6 MTU, 1280 bytes.
pub const ICMPV6_ERROR_MAX: usize = 1280;

/// Where the packet quoted by an ICMP error lies in the frame.
#[derive(Clone, Copy, Debug)]
pub struct Quote {
    /// Offset of the quoted IP header from the frame start.
    pub ip: usize,
    /// Offset of the quoted transport header from the frame start.
    pub l4: usize,
    /// Transport protocol of the quoted packet (TCP or UDP).
    pub proto: u8,
}

/// What an ICMP message to a VIP address is.
#[derive(Clone, Copy, Debug)]
pub enum IcmpKind {
    EchoRequest,
    /// An error quoting a packet of the flow `flow` (client to VIP direction).
    Error {
        flow: FlowKey,
        quote: Quote,
    },
    /// Anything else (echo replies, NDP, ...): the host's.
    Other,
}

/// Read the ICMP header at `p.l4_off` and, for errors, the flow they quote.
#[inline]
pub fn inspect(frame: &[u8], p: &Parsed) -> Result<IcmpKind, DropReason> {
    let end = p.l2_len + p.ip_len;
    let icmp = frame.get(p.l4_off..end).ok_or(DropReason::IcmpMalformed)?;
    if icmp.len() < 8 {
        return Err(DropReason::IcmpMalformed);
    }
    let (ty, code) = (icmp[0], icmp[1]);
    let quote_off = p.l4_off + 8;
    if p.is_v4() {
        match ty {
            icmpv4::ECHO_REQUEST if code == 0 => Ok(IcmpKind::EchoRequest),
            icmpv4::DEST_UNREACH | icmpv4::TIME_EXCEEDED | icmpv4::PARAM_PROBLEM => quoted_v4(&icmp[8..], quote_off),
            _ => Ok(IcmpKind::Other),
        }
    } else {
        match ty {
            icmpv6::ECHO_REQUEST if code == 0 => Ok(IcmpKind::EchoRequest),
            icmpv6::DEST_UNREACH | icmpv6::PACKET_TOO_BIG | icmpv6::TIME_EXCEEDED | icmpv6::PARAM_PROBLEM => {
                quoted_v6(&icmp[8..], quote_off)
            }
            _ => Ok(IcmpKind::Other),
        }
    }
}

/// The quoted packet was sent by the VIP (a reply, VIP to client); the flow it
/// belongs to is the reverse, client to VIP. Only TCP/UDP quotes with their ports
/// identify a flow; other quotes are the host's business.
fn quoted_v4(q: &[u8], quote_off: usize) -> Result<IcmpKind, DropReason> {
    let quoted = icmp_error::parse_quoted_v4(q).map_err(|_| DropReason::IcmpMalformed)?;
    let (src, dst, proto, l4) = (quoted.src, quoted.dst, quoted.protocol, quoted.l4_offset);
    quoted_flow(quoted.ports, proto, quote_off, l4, |sport, dport| {
        FlowKey::V4(FlowKeyV4 { src: dst, dst: src, src_port: dport, dst_port: sport, proto })
    })
}

fn quoted_v6(q: &[u8], quote_off: usize) -> Result<IcmpKind, DropReason> {
    let quoted = icmp_error::parse_quoted_v6(q).map_err(|_| DropReason::IcmpMalformed)?;
    let (src, dst, proto, l4) = (quoted.src, quoted.dst, quoted.protocol, quoted.l4_offset);
    quoted_flow(quoted.ports, proto, quote_off, l4, |sport, dport| {
        FlowKey::V6(FlowKeyV6 { src: dst, dst: src, src_port: dport, dst_port: sport, proto })
    })
}

#[inline]
fn quoted_flow(
    ports: Option<(u16, u16)>,
    proto: u8,
    quote_off: usize,
    l4_offset: usize,
    key: impl Fn(u16, u16) -> FlowKey,
) -> Result<IcmpKind, DropReason> {
    if proto != proto::TCP && proto != proto::UDP {
        return Ok(IcmpKind::Other);
    }
    let (sport, dport) = ports.ok_or(DropReason::IcmpMalformed)?;
    Ok(IcmpKind::Error { flow: key(sport, dport), quote: Quote { ip: quote_off, l4: quote_off + l4_offset, proto } })
}

/// Whether an echo request can be answered: its IPv4 header checksum (IPv6 has none)
/// and its ICMP checksum are right. The answer's checksums are computed afresh, so
/// a corrupted request would otherwise get a well-formed reply.
pub fn echo_request_ok(frame: &[u8], p: &Parsed) -> Result<(), DropReason> {
    let (l3, l4, end) = (p.l2_len, p.l4_off, p.l2_len + p.ip_len);
    let Some(msg) = frame.get(l4..end) else { return Err(DropReason::IcmpMalformed) };
    let ok = if p.is_v4() {
        if !super::nat::ipv4_checksum_ok(frame, l3) {
            return Err(DropReason::Ipv4BadChecksum);
        }
        checksum::checksum(msg) == 0
    } else {
        // Parse checked the 40-byte IPv6 header at `l3` and `l4..end` (`msg`) in the frame.
        icmpv6_checksum(frame, l3, l4, end) == 0
    };
    if ok { Ok(()) } else { Err(DropReason::IcmpBadChecksum) }
}

/// Answer an echo request in place: swap addresses, echo reply type, TTL 64.
#[inline]
pub fn echo_reply<B: PacketBuf>(buf: &mut B, p: &Parsed, node: &NodeInfo) {
    let l3 = p.l2_len;
    let l4 = p.l4_off;
    let data = buf.data_mut();
    if p.is_v4() {
        let mut a = [0u8; 4];
        a.copy_from_slice(&data[l3 + 12..l3 + 16]);
        data.copy_within(l3 + 16..l3 + 20, l3 + 12);
        data[l3 + 16..l3 + 20].copy_from_slice(&a);
        data[l3 + 8] = 64;
        let mut ip = ipv4::Ipv4Packet::new_unchecked(&mut data[l3..]);
        ip.fill_checksum();
        // Recomputed rather than updated: an incremental update cannot produce 0xffff,
        // which an all-zero echo message needs (found by Katran's fixtures).
        data[l4] = icmpv4::ECHO_REPLY;
        data[l4 + 2] = 0;
        data[l4 + 3] = 0;
        let end = l3 + p.ip_len;
        let c = checksum::checksum(&data[l4..end]);
        data[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    } else {
        let mut a = [0u8; 16];
        a.copy_from_slice(&data[l3 + 8..l3 + 24]);
        data.copy_within(l3 + 24..l3 + 40, l3 + 8);
        data[l3 + 24..l3 + 40].copy_from_slice(&a);
        data[l3 + 7] = 64;
        data[l4] = icmpv6::ECHO_REPLY;
        data[l4 + 2] = 0;
        data[l4 + 3] = 0;
        let end = l3 + p.ip_len;
        let c = icmpv6_checksum(data, l3, l4, end);
        data[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    }
    set_l2(data, node);
}

/// The ICMPv6 checksum of the message at `l4..end` under the IPv6 header at `l3`:
/// the value to store when the checksum field is zero, 0 when the field is right.
#[inline]
fn icmpv6_checksum(data: &[u8], l3: usize, l4: usize, end: usize) -> u16 {
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    s.copy_from_slice(&data[l3 + 8..l3 + 24]);
    d.copy_from_slice(&data[l3 + 24..l3 + 40]);
    checksum::l4_checksum_v6(s, d, proto::ICMPV6, &data[l4..end])
}

/// Turn the packet in place into an ICMP "fragmentation needed" (IPv4) or ICMPv6
/// "packet too big" sent from the VIP back to the client, quoting the packet.
/// `mtu` is the largest packet the client may send.
#[inline]
pub fn too_big<B: PacketBuf>(buf: &mut B, p: &Parsed, node: &NodeInfo, mtu: u16) -> Result<(), DropReason> {
    let l2 = p.l2_len;
    let (hdr, max) = if p.is_v4() { (28, ICMPV4_ERROR_MAX) } else { (48, ICMPV6_ERROR_MAX) };
    let quote_len = p.ip_len.min(max - hdr);
    buf.truncate(l2 + p.ip_len);
    if !buf.prepend(hdr) {
        return Err(DropReason::NoHeadroom);
    }
    buf.truncate(l2 + hdr + quote_len);
    let data = buf.data_mut();
    super::encap::move_l2_forward(data, hdr, l2);
    set_l2(data, node);
    match p.key {
        FlowKey::V4(k) => {
            let m = mtu.to_be_bytes();
            icmp_error::icmpv4_error_in_place(
                &mut data[l2..],
                quote_len,
                k.dst,
                k.src,
                icmpv4::DEST_UNREACH,
                icmpv4::CODE_FRAG_NEEDED,
                [0, 0, m[0], m[1]],
                64,
            );
        }
        FlowKey::V6(k) => {
            icmp_error::icmpv6_error_in_place(
                &mut data[l2..],
                quote_len,
                k.dst,
                k.src,
                icmpv6::PACKET_TOO_BIG,
                0,
                u32::from(mtu).to_be_bytes(),
                64,
            );
        }
    }
    Ok(())
}

/// DNAT: send an ICMP error about a VIP flow to its backend. The outer destination
/// (the VIP) becomes the backend; inside the quote, the VIP's address and port
/// (the quoted packet's source) become the backend's, with the quoted IPv4 header
/// checksum and transport checksum (when quoted) updated; the ICMP checksum is
/// recomputed.
pub fn dnat_error(
    data: &mut [u8],
    p: &Parsed,
    node: &NodeInfo,
    quote: Quote,
    backend: &IpAddr,
    backend_port: Option<u16>,
) -> Result<(), DropReason> {
    let l3 = p.l2_len;
    let v4 = p.is_v4();
    let end = l3 + p.ip_len;
    decrement_ttl(data, l3, v4)?;
    // Outer destination (the VIP) becomes the backend; inside the quote, the source
    // (the VIP, with its port) becomes the backend's.
    let q = quote.ip;
    let (bytes, n) = addr_bytes(backend, v4).ok_or(DropReason::NoBackend)?;
    let new = &bytes[..n];
    let (dst_off, src_off) = if v4 { (l3 + 16, q + 12) } else { (l3 + 24, q + 8) };
    swap_addr(data, dst_off, new, v4.then_some(l3));
    let old = swap_addr(data, src_off, new, v4.then_some(q));
    rewrite_transport(data, quote.l4, end, quote.proto, v4, 0, &old[..n], new, backend_port);
    finish_error(data, p, node);
    Ok(())
}

/// `addr`'s bytes (in the first 4 or 16) and their count, if it is of the packet's
/// family (`v4`).
#[inline]
fn addr_bytes(addr: &IpAddr, v4: bool) -> Option<([u8; 16], usize)> {
    let mut b = [0u8; 16];
    match addr {
        IpAddr::V4(a) if v4 => {
            b[..4].copy_from_slice(&a.octets());
            Some((b, 4))
        }
        IpAddr::V6(a) if !v4 => Some((a.octets(), 16)),
        _ => None,
    }
}

/// After rewriting a forwarded ICMP error in place: its checksum recomputed over
/// the whole message, and the Ethernet addresses set (to the gateway, from us).
fn finish_error(data: &mut [u8], p: &Parsed, node: &NodeInfo) {
    let (l3, l4, end) = (p.l2_len, p.l4_off, p.l2_len + p.ip_len);
    data[l4 + 2] = 0;
    data[l4 + 3] = 0;
    let c = if p.is_v4() { checksum::checksum(&data[l4..end]) } else { icmpv6_checksum(data, l3, l4, end) };
    data[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    set_l2(data, node);
}

/// An ICMP error on its way to a client about a packet the load balancer sent to a
/// DNAT backend (a router between them answered, e.g. "fragmentation needed"): the
/// quote shows the client's packet as translated (client to backend); put the VIP
/// and its port back, as Linux NAT and DPVS do, so that the client's stack matches
/// it to its connection. The outer header stays as it is (from the router, to the
/// client) but for its TTL; the ICMP checksum is recomputed.
pub fn dnat_error_to_client(
    data: &mut [u8],
    p: &Parsed,
    node: &NodeInfo,
    quote: Quote,
    vip: &IpAddr,
    vip_port: Option<u16>,
) -> Result<(), DropReason> {
    let l3 = p.l2_len;
    let v4 = p.is_v4();
    let end = l3 + p.ip_len;
    let (bytes, n) = addr_bytes(vip, v4).ok_or(DropReason::IcmpMalformed)?;
    let new = &bytes[..n];
    // The quoted destination (the backend) becomes the VIP, its port the VIP's.
    let q = quote.ip;
    let dst_off = if v4 { q + 16 } else { q + 24 };
    if dst_off + n > end {
        return Err(DropReason::IcmpMalformed);
    }
    decrement_ttl(data, l3, v4)?;
    let old = swap_addr(data, dst_off, new, v4.then_some(q));
    rewrite_transport(data, quote.l4, end, quote.proto, v4, 2, &old[..n], new, vip_port);
    finish_error(data, p, node);
    Ok(())
}
