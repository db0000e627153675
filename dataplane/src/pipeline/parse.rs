//! Stage 1, parse: Ethernet and VLAN tags, IPv4 or IPv6 (with extension headers),
//! and the TCP/UDP ports. Lengths are checked here once; later stages index the
//! frame at offsets this stage proved valid.
//!
//! Three outcomes (as s2n-quic puts it): malformed (drop, counted by reason), not
//! IP (to the host), or a [`Parsed`] packet.

use common::flow::{FlowKey, FlowKeyV4, FlowKeyV6, proto};
use common::wire::{
    WireError, ethernet, ipv4::Ipv4Packet, ipv6::Ipv6Packet, ipv6_ext, tcp::TcpPacket, udp::UdpPacket, vlan,
};

use crate::counters::DropReason;

/// Where a packet stands with respect to fragmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frag {
    /// Not a fragment (or an IPv6 atomic fragment).
    No,
    /// First fragment: carries the L4 header.
    First,
    /// A later fragment: no L4 header.
    Later,
}

/// What parse learned about a packet.
#[derive(Clone, Copy, Debug)]
pub struct Parsed {
    /// Length of the Ethernet header with its VLAN tags: offset of the IP header.
    pub l2_len: usize,
    /// Offset of the innermost ethertype field.
    pub ethertype_off: usize,
    /// Length of the IP packet (header + payload, per the IP header; Ethernet padding excluded).
    pub ip_len: usize,
    /// Offset of the transport header from the frame start.
    pub l4_off: usize,
    /// Upper-layer protocol.
    pub proto: u8,
    /// Addresses, ports (0 when absent) and protocol.
    pub key: FlowKey,
    /// Whether `key` carries ports (TCP/UDP, not a later fragment).
    pub has_ports: bool,
    pub frag: Frag,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// IPv4 TOS / IPv6 traffic class (DSCP and ECN).
    pub tos: u8,
    /// IPv4 don't-fragment flag (always true for IPv6, which routers never fragment).
    pub df: bool,
}

impl Parsed {
    #[inline]
    pub fn is_v4(&self) -> bool {
        matches!(self.key, FlowKey::V4(_))
    }
}

/// Result of parsing one frame.
#[derive(Clone, Copy, Debug)]
pub enum ParseOutcome {
    Ip(Parsed),
    /// Not IP (ARP, LLDP, ...): the host's business.
    Host,
    Drop(DropReason),
}

/// Parse a frame.
#[inline(always)]
pub fn parse(frame: &[u8]) -> ParseOutcome {
    let l2 = match vlan::parse_l2(frame) {
        Ok(l2) => l2,
        Err(WireError::TooManyTags) => return ParseOutcome::Drop(DropReason::TooManyVlanTags),
        Err(_) => return ParseOutcome::Drop(DropReason::L2Truncated),
    };
    match l2.ethertype {
        ethernet::ETHERTYPE_IPV4 => parse_v4(frame, l2.len, l2.ethertype_offset),
        ethernet::ETHERTYPE_IPV6 => parse_v6(frame, l2.len, l2.ethertype_offset),
        _ => ParseOutcome::Host,
    }
}

#[inline]
fn v4_error(e: WireError) -> DropReason {
    match e {
        WireError::BadVersion => DropReason::Ipv4BadVersion,
        WireError::BadHeaderLength => DropReason::Ipv4BadHeaderLength,
        WireError::BadTotalLength | WireError::BadLength => DropReason::Ipv4BadTotalLength,
        _ => DropReason::Ipv4Truncated,
    }
}

#[inline]
fn v6_error(e: WireError) -> DropReason {
    match e {
        WireError::BadVersion => DropReason::Ipv6BadVersion,
        WireError::BadPayloadLength | WireError::BadLength | WireError::BadTotalLength => {
            DropReason::Ipv6BadPayloadLength
        }
        WireError::ExtensionChain => DropReason::Ipv6BadExtensionChain,
        _ => DropReason::Ipv6Truncated,
    }
}

/// Ports and TCP flags of a transport header at `seg`.
/// A first fragment only needs its ports (its length fields describe the whole datagram).
#[inline]
fn transport(seg: &[u8], proto: u8, frag: Frag) -> Result<(u16, u16, u8), DropReason> {
    if frag == Frag::First {
        if seg.len() < 8 {
            return Err(DropReason::L4Malformed);
        }
        let flags = if proto == proto::TCP && seg.len() >= 14 { seg[13] } else { 0 };
        return Ok((u16::from_be_bytes([seg[0], seg[1]]), u16::from_be_bytes([seg[2], seg[3]]), flags));
    }
    if proto == proto::TCP {
        let t = TcpPacket::new_checked(seg).map_err(|_| DropReason::L4Malformed)?;
        Ok((t.src_port(), t.dst_port(), t.flags()))
    } else {
        let u = UdpPacket::new_checked(seg).map_err(|_| DropReason::L4Malformed)?;
        Ok((u.src_port(), u.dst_port(), 0))
    }
}

/// Ports and TCP flags of the transport header at `l4_off..end`, when the packet
/// carries one (TCP/UDP, not a later fragment), packed in one word: source port
/// (bits 32..48), destination port (16..32), flags (8..16), present (bit 0). A word
/// rather than a tuple: the tuple went through the stack in narrow pieces and was
/// read back wide, a store-forwarding stall measured at 15 % of the burst loop.
#[inline(always)]
fn ports(frame: &[u8], l4_off: usize, end: usize, proto: u8, frag: Frag) -> Result<u64, DropReason> {
    if frag == Frag::Later || (proto != proto::TCP && proto != proto::UDP) {
        return Ok(0);
    }
    let (s, d, f) = transport(frame.get(l4_off..end).unwrap_or(&[]), proto, frag)?;
    Ok((u64::from(s) << 32) | (u64::from(d) << 16) | (u64::from(f) << 8) | 1)
}

/// Unpack [`ports`]: (source, destination, flags, present).
#[inline(always)]
fn unpack_ports(w: u64) -> (u16, u16, u8, bool) {
    ((w >> 32) as u16, (w >> 16) as u16, (w >> 8) as u8, w & 1 == 1)
}

#[inline(always)]
fn parse_v4(frame: &[u8], l2_len: usize, ethertype_off: usize) -> ParseOutcome {
    let bytes = &frame[l2_len..];
    let ip = match Ipv4Packet::new_checked(bytes) {
        Ok(ip) => ip,
        Err(WireError::Truncated) if bytes.len() >= 20 => {
            // The fixed header is there: it is a length field that points past the frame.
            let hl = usize::from(bytes[0] & 0x0f) * 4;
            let r = if hl > bytes.len() { DropReason::Ipv4BadHeaderLength } else { DropReason::Ipv4BadTotalLength };
            return ParseOutcome::Drop(r);
        }
        Err(e) => return ParseOutcome::Drop(v4_error(e)),
    };
    let hl = ip.header_len();
    let ip_len = usize::from(ip.total_len());
    let proto = ip.protocol();
    let frag = if ip.frag_offset() != 0 {
        Frag::Later
    } else if ip.more_frags() {
        Frag::First
    } else {
        Frag::No
    };
    let l4_off = l2_len + hl;
    let (src_port, dst_port, tcp_flags, has_ports) = match ports(frame, l4_off, l2_len + ip_len, proto, frag) {
        Ok(w) => unpack_ports(w),
        Err(r) => return ParseOutcome::Drop(r),
    };
    let key = FlowKeyV4 { src: ip.src_bytes(), dst: ip.dst_bytes(), src_port, dst_port, proto };
    ParseOutcome::Ip(Parsed {
        l2_len,
        ethertype_off,
        ip_len,
        l4_off,
        proto,
        key: FlowKey::V4(key),
        has_ports,
        frag,
        tcp_flags,
        tos: ip.dscp_ecn(),
        df: ip.dont_frag(),
    })
}

#[inline(always)]
fn parse_v6(frame: &[u8], l2_len: usize, ethertype_off: usize) -> ParseOutcome {
    let bytes = &frame[l2_len..];
    let ip = match Ipv6Packet::new_checked(bytes) {
        Ok(ip) => ip,
        // The fixed header is there: the payload length points past the frame.
        Err(WireError::Truncated) if bytes.len() >= 40 => return ParseOutcome::Drop(DropReason::Ipv6BadPayloadLength),
        Err(e) => return ParseOutcome::Drop(v6_error(e)),
    };
    let ip_len = 40 + usize::from(ip.payload_len());
    let upper = match ipv6_ext::walk(&frame[l2_len..l2_len + ip_len]) {
        Ok(u) => u,
        Err(e) => return ParseOutcome::Drop(v6_error(e)),
    };
    let frag = match upper.fragment {
        Some(f) if f.offset != 0 => Frag::Later,
        Some(f) if f.more => Frag::First,
        _ => Frag::No,
    };
    let proto = upper.protocol;
    let l4_off = l2_len + upper.offset;
    let (src_port, dst_port, tcp_flags, has_ports) = match ports(frame, l4_off, l2_len + ip_len, proto, frag) {
        Ok(w) => unpack_ports(w),
        Err(r) => return ParseOutcome::Drop(r),
    };
    let key = FlowKeyV6 { src: ip.src_bytes(), dst: ip.dst_bytes(), src_port, dst_port, proto };
    ParseOutcome::Ip(Parsed {
        l2_len,
        ethertype_off,
        ip_len,
        l4_off,
        proto,
        key: FlowKey::V6(key),
        has_ports,
        frag,
        tcp_flags,
        tos: ip.traffic_class(),
        df: true,
    })
}
