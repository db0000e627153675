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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// A placeholder (burst arrays are filled with it before parsing).
    pub const EMPTY: Parsed = Parsed {
        l2_len: 0,
        ethertype_off: 0,
        ip_len: 0,
        l4_off: 0,
        proto: 0,
        key: FlowKey::V4(FlowKeyV4 { src: [0; 4], dst: [0; 4], src_port: 0, dst_port: 0, proto: 0 }),
        has_ports: false,
        frag: Frag::No,
        tcp_flags: 0,
        tos: 0,
        df: false,
    };

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
    if let Some(p) = fast_v4(frame) {
        return ParseOutcome::Ip(p.parsed());
    }
    parse_general(frame)
}

/// `parse_general` into the burst loop's slot for this frame, for the frames
/// [`fast_v4`] declined (the loop classifies and stores those itself): writes the
/// parse result, or [`Parsed::EMPTY`] when there is none, and returns `Ok(true)`
/// for an IP packet, `Ok(false)` for the host's (not IP), `Err` for a drop. Results
/// go straight into the slot rather than into a burst array of outcomes that is
/// then copied (measured: 65 instructions a packet).
#[inline]
pub fn parse_general_into(frame: &[u8], out: &mut Parsed) -> Result<bool, DropReason> {
    match parse_general(frame) {
        ParseOutcome::Ip(p) => {
            *out = p;
            Ok(true)
        }
        ParseOutcome::Host => {
            *out = Parsed::EMPTY;
            Ok(false)
        }
        ParseOutcome::Drop(r) => {
            *out = Parsed::EMPTY;
            Err(r)
        }
    }
}

/// What [`fast_v4`] learns about the common case (untagged IPv4 TCP/UDP, no
/// options, not a fragment), in 18 bytes instead of [`Parsed`]'s 80 and packed the
/// way the flow table hashes an IPv4 key ([`crate::flow_table::FlowTable::hash_v4_words`]):
/// the fast lane's per-packet record (docs/ARCHITECTURE.md, "The fast lane"), three
/// stores to keep and three loads to read back. Everything else a [`Parsed`] holds
/// is fixed for such a packet ([`FastV4::parsed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastV4 {
    /// Source address in the low 32 bits, destination in the high 32, each as
    /// `u32::from_ne_bytes` of its header bytes (as [`FlowKeyV4`]'s arrays hash).
    pub addrs: u64,
    /// Source port (bits 0..16), destination port (16..32), protocol (32..40): the
    /// rest of the flow key; then TCP flags (40..48, 0 for UDP), TOS (48..56) and the
    /// don't-fragment flag (bit 56).
    pub words: u64,
    /// IPv4 total length.
    pub ip_len: u16,
}

/// The bits of [`FastV4::words`] that belong to the flow key.
const FAST_KEY_BITS: u64 = (1 << 40) - 1;

impl FastV4 {
    /// A placeholder (the burst loop's slots start with it).
    pub const EMPTY: FastV4 = FastV4 { addrs: 0, words: 0, ip_len: 0 };

    /// The flow key.
    #[inline(always)]
    pub fn key(&self) -> FlowKeyV4 {
        let w = self.words;
        FlowKeyV4 {
            src: (self.addrs as u32).to_ne_bytes(),
            dst: ((self.addrs >> 32) as u32).to_ne_bytes(),
            src_port: w as u16,
            dst_port: (w >> 16) as u16,
            proto: (w >> 32) as u8,
        }
    }

    /// The flow key as the two words the flow table hashes
    /// ([`crate::flow_table::FlowTable::hash_v4_words`]).
    #[inline(always)]
    pub fn key_words(&self) -> (u64, u64) {
        (self.addrs, self.words & FAST_KEY_BITS)
    }

    #[inline(always)]
    pub fn proto(&self) -> u8 {
        (self.words >> 32) as u8
    }

    #[inline(always)]
    pub fn tcp_flags(&self) -> u8 {
        (self.words >> 40) as u8
    }

    #[inline(always)]
    pub fn tos(&self) -> u8 {
        (self.words >> 48) as u8
    }

    #[inline(always)]
    pub fn df(&self) -> bool {
        self.words & (1 << 56) != 0
    }

    /// The full parse result: what `parse_general` gives for the same frame.
    #[inline(always)]
    pub fn parsed(&self) -> Parsed {
        const L2: usize = ethernet::HEADER_LEN;
        Parsed {
            l2_len: L2,
            ethertype_off: 12,
            ip_len: usize::from(self.ip_len),
            l4_off: L2 + 20,
            proto: self.proto(),
            key: FlowKey::V4(self.key()),
            has_ports: true,
            frag: Frag::No,
            tcp_flags: self.tcp_flags(),
            tos: self.tos(),
            df: self.df(),
        }
    }
}

/// The common case in a few loads and compares: untagged Ethernet, IPv4 without
/// options, not a fragment, TCP with a sane data offset or UDP with a sane length,
/// all inside the frame. Anything else (`None`) goes through `parse_general`,
/// which decides between host, drop (and why) and IP. Where it answers, it answers
/// exactly what `parse_general` would (property-tested below).
#[inline(always)]
pub fn fast_v4(frame: &[u8]) -> Option<FastV4> {
    const L2: usize = ethernet::HEADER_LEN;
    const L4: usize = L2 + 20;
    // Ethernet + IPv4 + the first 8 bytes of TCP/UDP, in one bounds check.
    let h: &[u8; L4 + 8] = frame.first_chunk()?;
    if h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45 {
        return None;
    }
    let total = u16::from_be_bytes([h[16], h[17]]);
    let flags_frag = u16::from_be_bytes([h[20], h[21]]);
    // MF or a fragment offset: a fragment, the general path's business.
    if flags_frag & 0x3fff != 0 || usize::from(total) > frame.len() - L2 {
        return None;
    }
    let proto = h[23];
    let tcp_flags = match proto {
        proto::TCP => {
            let t: &[u8; L4 + 20] = frame.first_chunk()?;
            let doff = u16::from(t[L4 + 12] >> 4) * 4;
            if doff < 20 || 20 + doff > total {
                return None;
            }
            t[L4 + 13]
        }
        proto::UDP => {
            let ulen = u16::from_be_bytes([h[L4 + 4], h[L4 + 5]]);
            if ulen < 8 || u32::from(ulen) + 20 > u32::from(total) {
                return None;
            }
            0
        }
        _ => return None,
    };
    // Whole-word loads (byte by byte, LLVM assembles the words from single loads).
    // One 8-byte load; `from_ne_bytes` puts the first 4 bytes (the source) low on a
    // little-endian machine and high on a big-endian one: source low either way.
    let w = u64::from_ne_bytes(*h[26..].first_chunk().unwrap_or(&[0; 8]));
    let addrs = if cfg!(target_endian = "little") { w } else { w.rotate_left(32) };
    // [sport, dport] on the wire, as sport | dport << 16.
    let ports = u32::from_be_bytes(*h[L4..].first_chunk().unwrap_or(&[0; 4])).rotate_left(16);
    let words = u64::from(ports)
        | (u64::from(proto) << 32)
        | (u64::from(tcp_flags) << 40)
        | (u64::from(h[15]) << 48)
        | (u64::from(flags_frag & 0x4000 != 0) << 56);
    Some(FastV4 { addrs, words, ip_len: total })
}

/// Every frame: VLAN tags, IPv4 options, fragments, IPv6 and its extension
/// headers, and the reason for each drop.
#[inline(always)]
fn parse_general(frame: &[u8]) -> ParseOutcome {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet/IPv4/TCP-or-UDP frame with the fields a fast path looks at free.
    fn frame(ihl_ver: u8, flags_frag: u16, proto: u8, total: u16, doff_or_ulen: u16, extra: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + extra];
        f[12] = 0x08;
        f[14] = ihl_ver;
        f[15] = 0x2e;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[20..22].copy_from_slice(&flags_frag.to_be_bytes());
        f[22] = 64;
        f[23] = proto;
        f[26..34].copy_from_slice(&[10, 0, 0, 1, 192, 0, 2, 7]);
        f[34..38].copy_from_slice(&[0x30, 0x39, 0, 80]);
        if proto == proto::TCP {
            f[46] = (doff_or_ulen as u8) << 4;
            f[47] = 0x12;
        } else {
            f[38..40].copy_from_slice(&doff_or_ulen.to_be_bytes());
        }
        f
    }

    #[test]
    fn fast_path_takes_the_common_case() {
        let f = frame(0x45, 0x4000, proto::TCP, 40, 5, 0);
        let p = fast_v4(&f).expect("plain IPv4/TCP is the fast path's");
        assert_eq!(ParseOutcome::Ip(p.parsed()), parse_general(&f));
        assert_eq!((p.tcp_flags(), p.tos(), p.df(), p.ip_len), (0x12, 0x2e, true, 40));
        let u = frame(0x45, 0, proto::UDP, 28, 8, 0);
        assert!(fast_v4(&u).is_some());
        // Fragments, options, short or odd transport headers: the general path.
        assert!(fast_v4(&frame(0x45, 0x2000, proto::TCP, 40, 5, 0)).is_none());
        assert!(fast_v4(&frame(0x46, 0, proto::TCP, 40, 5, 0)).is_none());
        assert!(fast_v4(&frame(0x45, 0, proto::TCP, 40, 4, 0)).is_none());
        assert!(fast_v4(&frame(0x45, 0, proto::TCP, 41, 5, 0)).is_none());
        assert!(fast_v4(&frame(0x45, 0, proto::UDP, 28, 7, 0)).is_none());
        assert!(fast_v4(&frame(0x45, 0, proto::ICMP, 28, 8, 0)).is_none());
    }

    impl PartialEq for ParseOutcome {
        fn eq(&self, o: &Self) -> bool {
            match (self, o) {
                (ParseOutcome::Ip(a), ParseOutcome::Ip(b)) => a == b,
                (ParseOutcome::Host, ParseOutcome::Host) => true,
                (ParseOutcome::Drop(a), ParseOutcome::Drop(b)) => a == b,
                _ => false,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Near-valid frames (every field the fast path reads drawn from values at and
        /// around its limits): wherever the fast path answers, the general one agrees.
        #[test]
        fn fast_path_agrees_with_the_general_parse(
            ihl_ver in prop::sample::select(vec![0x45u8, 0x46, 0x44, 0x55, 0x4f]),
            flags_frag in prop::sample::select(vec![0u16, 0x4000, 0x2000, 0x6000, 0x0001, 0x8000, 0x4001]),
            proto in prop::sample::select(vec![proto::TCP, proto::UDP, proto::ICMP, 0]),
            total in 0u16..120,
            doff_or_ulen in 0u16..70,
            extra in 0usize..40,
            cut in 0usize..80,
        ) {
            let mut f = frame(ihl_ver, flags_frag, proto, total, doff_or_ulen, extra);
            f.truncate(f.len().saturating_sub(cut));
            if let Some(p) = fast_v4(&f) {
                prop_assert_eq!(ParseOutcome::Ip(p.parsed()), parse_general(&f));
            }
        }

        /// Arbitrary bytes: the fast path never panics and never disagrees.
        #[test]
        fn fast_path_on_random_bytes(mut f in prop::collection::vec(any::<u8>(), 0..100)) {
            if f.len() > 15 {
                f[12] = 0x08;
                f[13] = 0x00;
                f[14] = 0x45;
            }
            if let Some(p) = fast_v4(&f) {
                prop_assert_eq!(ParseOutcome::Ip(p.parsed()), parse_general(&f));
            }
        }
    }
}
