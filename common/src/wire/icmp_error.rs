//! ICMP errors built in place around the offending packet, and the packet quoted inside a
//! received ICMP error.
//!
//! # Building
//! The caller lays out the buffer: `buf[HEADERS..HEADERS + quote_len]` already holds the start
//! of the offending packet (from its IP header on), typically by stepping the frame start back
//! into the headroom so no byte moves. The builders write the IP and ICMP headers in front,
//! fill lengths and checksums, and return the length of the IP packet.
//!
//! How much to quote is the caller's decision; [`max_quote_v4`] / [`max_quote_v6`] give the
//! RFC limits:
//! - RFC 1812 section 4.3.2.3: "The ICMP datagram SHOULD contain as much of the original datagram
//!   as possible without the length of the ICMP datagram exceeding 576 bytes."
//! - RFC 4443 section 2.4 (c): "Every ICMPv6 error message (type < 128) MUST include as much of
//!   the IPv6 offending (invoking) packet [...] as possible without making the error message
//!   packet exceed the minimum IPv6 MTU" (1280 bytes).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::icmpv4::Icmpv4Packet;
use super::icmpv6::Icmpv6Packet;
use super::ipv4::{Ipv4Packet, Ipv4Repr};
use super::ipv6::{Ipv6Packet, Ipv6Repr};
use super::{Result, ipv6_ext, read_u16};
use crate::flow::proto;

/// IPv4 header (20) + ICMP header (8) in front of the quote.
pub const ICMPV4_ERROR_HEADERS: usize = 28;
/// IPv6 header (40) + ICMPv6 header (8) in front of the quote.
pub const ICMPV6_ERROR_HEADERS: usize = 48;
/// Largest ICMPv4 error (RFC 1812 section 4.3.2.3).
pub const ICMPV4_ERROR_MAX_LEN: usize = 576;
/// Largest ICMPv6 error: the IPv6 minimum MTU (RFC 4443 section 2.4 (c)).
pub const ICMPV6_ERROR_MAX_LEN: usize = 1280;

/// RFC 1812 section 4.3.2.5: "All other ICMP error messages (Destination Unreachable, Redirect,
/// Time Exceeded, and Parameter Problem) SHOULD have their precedence value set to 6
/// (INTERNETWORK CONTROL) or 7 (NETWORK CONTROL)." Precedence 6 = TOS 0xC0.
pub const ICMPV4_ERROR_TOS: u8 = 0xC0;

/// How many bytes of an `offending_len`-byte IPv4 packet an ICMPv4 error may quote.
#[inline]
pub fn max_quote_v4(offending_len: usize) -> usize {
    offending_len.min(ICMPV4_ERROR_MAX_LEN - ICMPV4_ERROR_HEADERS)
}

/// How many bytes of an `offending_len`-byte IPv6 packet an ICMPv6 error may quote.
#[inline]
pub fn max_quote_v6(offending_len: usize) -> usize {
    offending_len.min(ICMPV6_ERROR_MAX_LEN - ICMPV6_ERROR_HEADERS)
}

/// Build an ICMPv4 error in place: `buf[..28]` receives the IPv4 header (20 bytes, TOS 0xC0,
/// not a fragment, DF clear) and the ICMP header (`msg_type`, `code`, `rest` = bytes 4..8, e.g.
/// `[0, 0, mtu_hi, mtu_lo]` for "fragmentation needed"); `buf[28..28 + quote_len]` must already
/// hold the quote. Lengths and both checksums are filled. Returns the IPv4 packet length.
///
/// `quote_len` is clamped to what the buffer holds and to the 16-bit total length; a buffer
/// shorter than 28 bytes builds nothing and returns 0.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn icmpv4_error_in_place(
    buf: &mut [u8],
    quote_len: usize,
    src: [u8; 4],
    dst: [u8; 4],
    msg_type: u8,
    code: u8,
    rest: [u8; 4],
    ttl: u8,
) -> usize {
    let Some(room) = buf.len().checked_sub(ICMPV4_ERROR_HEADERS) else {
        return 0;
    };
    let quote_len = quote_len.min(room).min(usize::from(u16::MAX) - ICMPV4_ERROR_HEADERS);
    let total = ICMPV4_ERROR_HEADERS + quote_len;
    let repr = Ipv4Repr {
        src: Ipv4Addr::from(src),
        dst: Ipv4Addr::from(dst),
        protocol: proto::ICMP,
        ttl,
        dscp_ecn: ICMPV4_ERROR_TOS,
        ident: 0,
        dont_frag: false,
        payload_len: total - super::ipv4::HEADER_LEN,
    };
    repr.emit(buf);
    let mut icmp = Icmpv4Packet::new_unchecked(&mut buf[super::ipv4::HEADER_LEN..total]);
    icmp.set_msg_type(msg_type);
    icmp.set_code(code);
    icmp.set_rest_of_header(rest);
    icmp.fill_checksum();
    total
}

/// Build an ICMPv6 error in place: `buf[..48]` receives the IPv6 header (traffic class and
/// flow label 0, next header 58) and the ICMPv6 header (`rest` = bytes 4..8, e.g. the MTU of
/// "packet too big" as big-endian bytes); `buf[48..48 + quote_len]` must already hold the quote.
/// Payload length and checksum are filled. Returns the IPv6 packet length.
///
/// `quote_len` is clamped to what the buffer holds and to the 16-bit payload length; a buffer
/// shorter than 48 bytes builds nothing and returns 0.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn icmpv6_error_in_place(
    buf: &mut [u8],
    quote_len: usize,
    src: [u8; 16],
    dst: [u8; 16],
    msg_type: u8,
    code: u8,
    rest: [u8; 4],
    hop_limit: u8,
) -> usize {
    let Some(room) = buf.len().checked_sub(ICMPV6_ERROR_HEADERS) else {
        return 0;
    };
    let quote_len = quote_len.min(room).min(usize::from(u16::MAX) - super::icmpv6::HEADER_LEN);
    let total = ICMPV6_ERROR_HEADERS + quote_len;
    let repr = Ipv6Repr {
        src: Ipv6Addr::from(src),
        dst: Ipv6Addr::from(dst),
        next_header: proto::ICMPV6,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
        payload_len: total - super::ipv6::HEADER_LEN,
    };
    repr.emit(buf);
    let mut icmp = Icmpv6Packet::new_unchecked(&mut buf[super::ipv6::HEADER_LEN..total]);
    icmp.set_msg_type(msg_type);
    icmp.set_code(code);
    icmp.set_rest_of_header(rest);
    icmp.fill_checksum(src, dst);
    total
}

/// What l4lb needs from the IPv4 packet quoted in an ICMP error: enough to find the flow the
/// error belongs to (the quoted packet went *from* us, so its source is our side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedV4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    /// Offset of the L4 header in the quote (the quoted IPv4 header length).
    pub l4_offset: usize,
    /// A fragment with a non-zero offset: no L4 header is quoted.
    pub non_first_fragment: bool,
    /// Source and destination ports (TCP, UDP, SCTP), if quoted and present.
    pub ports: Option<(u16, u16)>,
}

/// What l4lb needs from the IPv6 packet quoted in an ICMPv6 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedV6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Upper-layer protocol after the extension headers that fit in the quote.
    pub protocol: u8,
    pub l4_offset: usize,
    pub non_first_fragment: bool,
    pub ports: Option<(u16, u16)>,
}

const SCTP: u8 = 132;

#[inline]
fn ports_at(quote: &[u8], protocol: u8, at: usize) -> Option<(u16, u16)> {
    if !matches!(protocol, proto::TCP | proto::UDP | SCTP) || quote.len() < at + 4 {
        return None;
    }
    Some((read_u16(quote, at), read_u16(quote, at + 2)))
}

/// Parse the IPv4 packet quoted in an ICMPv4 error (the ICMP payload). The quote may stop
/// anywhere after the IPv4 header ([`Ipv4Packet::new_quoted`] checks).
#[inline]
pub fn parse_quoted_v4(quote: &[u8]) -> Result<QuotedV4> {
    let ip = Ipv4Packet::new_quoted(quote)?;
    let l4_offset = ip.header_len();
    let non_first_fragment = ip.frag_offset() != 0;
    let ports = if non_first_fragment { None } else { ports_at(quote, ip.protocol(), l4_offset) };
    Ok(QuotedV4 {
        src: ip.src_bytes(),
        dst: ip.dst_bytes(),
        protocol: ip.protocol(),
        l4_offset,
        non_first_fragment,
        ports,
    })
}

/// Parse the IPv6 packet quoted in an ICMPv6 error (the ICMPv6 payload). Extension headers are
/// walked as far as the quote goes; a chain cut by the quote is `ExtensionChain`.
#[inline]
pub fn parse_quoted_v6(quote: &[u8]) -> Result<QuotedV6> {
    let ip = Ipv6Packet::new_quoted(quote)?;
    let upper = ipv6_ext::walk(quote)?;
    let non_first_fragment = upper.fragment.is_some_and(|f| f.offset != 0);
    let ports = if non_first_fragment { None } else { ports_at(quote, upper.protocol, upper.offset) };
    Ok(QuotedV6 {
        src: ip.src_bytes(),
        dst: ip.dst_bytes(),
        protocol: upper.protocol,
        l4_offset: upper.offset,
        non_first_fragment,
        ports,
    })
}

#[cfg(test)]
mod tests {
    use super::super::icmpv4::{CODE_FRAG_NEEDED, DEST_UNREACH};
    use super::super::icmpv6::PACKET_TOO_BIG;
    use super::*;

    fn offending_v4() -> Vec<u8> {
        let mut p = vec![0u8; 1500];
        Ipv4Repr {
            src: Ipv4Addr::new(198, 51, 100, 9),
            dst: Ipv4Addr::new(192, 0, 2, 10),
            protocol: proto::TCP,
            ttl: 63,
            dscp_ecn: 0,
            ident: 1,
            dont_frag: true,
            payload_len: 1480,
        }
        .emit(&mut p);
        p[20..24].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50]); // ports 40000 -> 80
        p
    }

    #[test]
    fn frag_needed_quotes_548_bytes() {
        let offending = offending_v4();
        let q = max_quote_v4(offending.len());
        assert_eq!(q, 548);
        let mut buf = vec![0u8; ICMPV4_ERROR_HEADERS + q];
        buf[ICMPV4_ERROR_HEADERS..].copy_from_slice(&offending[..q]);
        let n = icmpv4_error_in_place(
            &mut buf,
            q,
            [192, 0, 2, 10],
            [198, 51, 100, 9],
            DEST_UNREACH,
            CODE_FRAG_NEEDED,
            [0, 0, 0x05, 0xb4],
            64,
        );
        assert_eq!(n, 576);
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.total_len(), ip.protocol(), ip.ttl(), ip.dscp_ecn()), (576, proto::ICMP, 64, 0xC0));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!((icmp.msg_type(), icmp.code(), icmp.next_hop_mtu()), (3, 4, 1460));
        let quoted = parse_quoted_v4(icmp.payload()).unwrap();
        assert_eq!(quoted.src, [198, 51, 100, 9]);
        assert_eq!(quoted.ports, Some((40000, 80)));
        assert!(!quoted.non_first_fragment);
    }

    #[test]
    fn short_buffers_build_nothing_or_clamp() {
        let mut tiny = [0u8; 27];
        assert_eq!(icmpv4_error_in_place(&mut tiny, 10, [0; 4], [0; 4], 3, 4, [0; 4], 64), 0);
        let mut tiny6 = [0u8; 47];
        assert_eq!(icmpv6_error_in_place(&mut tiny6, 10, [0; 16], [0; 16], 2, 0, [0; 4], 64), 0);
        let mut buf = [0u8; 40];
        assert_eq!(icmpv4_error_in_place(&mut buf, 100, [1; 4], [2; 4], 3, 4, [0; 4], 64), 40);
        assert!(Ipv4Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    #[test]
    fn packet_too_big_v6() {
        let mut offending = vec![0u8; 1500];
        Ipv6Repr {
            src: "2001:db8::9".parse().unwrap(),
            dst: "2001:db8::10".parse().unwrap(),
            next_header: proto::UDP,
            hop_limit: 60,
            traffic_class: 0,
            flow_label: 0,
            payload_len: 1460,
        }
        .emit(&mut offending);
        offending[40..44].copy_from_slice(&[0x30, 0x39, 0x00, 0x35]);
        let q = max_quote_v6(offending.len());
        assert_eq!(q, 1232);
        let mut buf = vec![0u8; ICMPV6_ERROR_HEADERS + q];
        buf[ICMPV6_ERROR_HEADERS..].copy_from_slice(&offending[..q]);
        let src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
        let dst = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x9];
        let n = icmpv6_error_in_place(&mut buf, q, src, dst, PACKET_TOO_BIG, 0, 1400u32.to_be_bytes(), 255);
        assert_eq!(n, 1280);
        let ip = Ipv6Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!((ip.payload_len(), ip.next_header(), ip.hop_limit()), (1240, proto::ICMPV6, 255));
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(src, dst));
        assert_eq!((icmp.msg_type(), icmp.mtu()), (PACKET_TOO_BIG, 1400));
        let quoted = parse_quoted_v6(icmp.payload()).unwrap();
        assert_eq!((quoted.protocol, quoted.l4_offset, quoted.ports), (proto::UDP, 40, Some((12345, 53))));
    }

    #[test]
    fn quotes_cut_short() {
        let offending = offending_v4();
        for n in 0..20 {
            assert!(parse_quoted_v4(&offending[..n]).is_err());
        }
        for n in 20..24 {
            assert_eq!(parse_quoted_v4(&offending[..n]).unwrap().ports, None);
        }
        assert_eq!(parse_quoted_v4(&offending[..24]).unwrap().ports, Some((40000, 80)));
    }
}
