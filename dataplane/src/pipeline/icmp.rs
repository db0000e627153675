//! ICMP and ICMPv6 at a VIP: echo answers, errors routed to the backend of the
//! flow they quote, and "fragmentation needed" / "packet too big" answers for
//! packets that would not fit the MTU once encapsulated.

use std::net::IpAddr;

use common::checksum;
use common::flow::{FlowKey, FlowKeyV4, FlowKeyV6, proto};
use common::snapshot::NodeInfo;
use common::wire::{icmp_error, icmpv4, icmpv6, ipv4, tcp, udp};

use super::encap::set_l2;
use super::nat::decrement_ttl;
use super::parse::Parsed;
use crate::counters::DropReason;
use crate::port::PacketBuf;

/// RFC 1812 4.3.2.3: an ICMPv4 error quotes as much as fits in 576 bytes.
pub const ICMPV4_ERROR_MAX: usize = 576;
/// RFC 4443 2.4(c): an ICMPv6 error fits in the minimum IPv6 MTU, 1280 bytes.
pub const ICMPV6_ERROR_MAX: usize = 1280;

/// What an ICMP message to a VIP address is.
#[derive(Clone, Copy, Debug)]
pub enum IcmpKind {
    EchoRequest,
    /// An error quoting a packet of the flow `flow` (client to VIP direction);
    /// the quoted IP header starts at `quote_off` (from the frame start).
    Error {
        flow: FlowKey,
        quote_off: usize,
        quote_l4_off: usize,
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
/// belongs to is the reverse, client to VIP.
fn quoted_v4(q: &[u8], quote_off: usize) -> Result<IcmpKind, DropReason> {
    if q.len() < 20 || q[0] >> 4 != 4 {
        return Err(DropReason::IcmpMalformed);
    }
    let hl = usize::from(q[0] & 0x0f) * 4;
    let proto = q[9];
    if hl < 20 || (proto != proto::TCP && proto != proto::UDP) {
        return Ok(IcmpKind::Other);
    }
    if q.len() < hl + 4 {
        return Err(DropReason::IcmpMalformed);
    }
    let mut src = [0u8; 4];
    let mut dst = [0u8; 4];
    src.copy_from_slice(&q[12..16]);
    dst.copy_from_slice(&q[16..20]);
    let sport = u16::from_be_bytes([q[hl], q[hl + 1]]);
    let dport = u16::from_be_bytes([q[hl + 2], q[hl + 3]]);
    let flow = FlowKey::V4(FlowKeyV4 { src: dst, dst: src, src_port: dport, dst_port: sport, proto });
    Ok(IcmpKind::Error { flow, quote_off, quote_l4_off: quote_off + hl })
}

fn quoted_v6(q: &[u8], quote_off: usize) -> Result<IcmpKind, DropReason> {
    if q.len() < 40 || q[0] >> 4 != 6 {
        return Err(DropReason::IcmpMalformed);
    }
    let proto = q[6];
    if proto != proto::TCP && proto != proto::UDP {
        return Ok(IcmpKind::Other);
    }
    if q.len() < 44 {
        return Err(DropReason::IcmpMalformed);
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&q[8..24]);
    dst.copy_from_slice(&q[24..40]);
    let sport = u16::from_be_bytes([q[40], q[41]]);
    let dport = u16::from_be_bytes([q[42], q[43]]);
    let flow = FlowKey::V6(FlowKeyV6 { src: dst, dst: src, src_port: dport, dst_port: sport, proto });
    Ok(IcmpKind::Error { flow, quote_off, quote_l4_off: quote_off + 40 })
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
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&data[l3 + 8..l3 + 24]);
        d.copy_from_slice(&data[l3 + 24..l3 + 40]);
        let c = checksum::l4_checksum_v6(s, d, proto::ICMPV6, &data[l4..end]);
        data[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    }
    set_l2(data, node);
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
    quote_off: usize,
    quote_l4_off: usize,
    backend: &IpAddr,
    backend_port: Option<u16>,
) -> Result<(), DropReason> {
    let l3 = p.l2_len;
    let v4 = p.is_v4();
    let end = l3 + p.ip_len;
    decrement_ttl(data, l3, v4)?;
    match backend {
        IpAddr::V4(b) if v4 => {
            let new = b.octets();
            // Outer destination.
            let mut old = [0u8; 4];
            old.copy_from_slice(&data[l3 + 16..l3 + 20]);
            data[l3 + 16..l3 + 20].copy_from_slice(&new);
            let c = u16::from_be_bytes([data[l3 + 10], data[l3 + 11]]);
            let c = checksum::update_bytes(c, &old, &new);
            data[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            // Quoted source address and its header checksum.
            let q = quote_off;
            let mut qold = [0u8; 4];
            qold.copy_from_slice(&data[q + 12..q + 16]);
            data[q + 12..q + 16].copy_from_slice(&new);
            let qc = u16::from_be_bytes([data[q + 10], data[q + 11]]);
            let qc = checksum::update_bytes(qc, &qold, &new);
            data[q + 10..q + 12].copy_from_slice(&qc.to_be_bytes());
            quoted_l4(data, quote_l4_off, end, data[q + 9], &qold, &new, backend_port, true);
        }
        IpAddr::V6(b) if !v4 => {
            let new = b.octets();
            data[l3 + 24..l3 + 40].copy_from_slice(&new);
            let q = quote_off;
            let mut qold = [0u8; 16];
            qold.copy_from_slice(&data[q + 8..q + 24]);
            data[q + 8..q + 24].copy_from_slice(&new);
            quoted_l4(data, quote_l4_off, end, data[q + 6], &qold, &new, backend_port, false);
        }
        _ => return Err(DropReason::NoBackend),
    }
    // Recompute the ICMP checksum over the whole message.
    let l4 = p.l4_off;
    data[l4 + 2] = 0;
    data[l4 + 3] = 0;
    let c = if v4 {
        checksum::checksum(&data[l4..end])
    } else {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&data[l3 + 8..l3 + 24]);
        d.copy_from_slice(&data[l3 + 24..l3 + 40]);
        checksum::l4_checksum_v6(s, d, proto::ICMPV6, &data[l4..end])
    };
    data[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    set_l2(data, node);
    Ok(())
}

/// Rewrite the quoted transport header's source port and, when the quote holds
/// it, its checksum.
#[allow(clippy::too_many_arguments)]
fn quoted_l4(
    data: &mut [u8],
    l4: usize,
    end: usize,
    proto: u8,
    old_addr: &[u8],
    new_addr: &[u8],
    port: Option<u16>,
    v4: bool,
) {
    if l4 + 2 > end {
        return;
    }
    let old_port = u16::from_be_bytes([data[l4], data[l4 + 1]]);
    let new_port = port.unwrap_or(old_port);
    data[l4..l4 + 2].copy_from_slice(&new_port.to_be_bytes());
    let csum_off = l4 + if proto == proto::TCP { tcp::CHECKSUM_OFFSET } else { udp::CHECKSUM_OFFSET };
    if csum_off + 2 > end {
        return;
    }
    let old_c = u16::from_be_bytes([data[csum_off], data[csum_off + 1]]);
    if proto == proto::UDP && v4 && old_c == 0 {
        return;
    }
    let mut c = checksum::update_bytes(old_c, old_addr, new_addr);
    c = checksum::update_u16(c, old_port, new_port);
    if proto == proto::UDP {
        c = checksum::udp_checksum_field(c);
    }
    data[csum_off..csum_off + 2].copy_from_slice(&c.to_be_bytes());
}
