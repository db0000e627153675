//! IPv6 extension headers (RFC 8200 section 4): hop-by-hop options, routing, fragment,
//! destination options, and the authentication header (RFC 4302), walked to the upper layer.
//!
//! RFC 8200 section 4.1: "The Hop-by-Hop Options header, when present, must immediately follow
//! the IPv6 header." [`walk`] treats a hop-by-hop header anywhere else as a broken chain.

use super::ipv6::HEADER_LEN;
use super::{Result, WireError, clamped, read_u16, read_u32};
use crate::flow::proto;

mod field {
    pub const NEXT_HEADER: usize = 0;
    pub const HDR_EXT_LEN: usize = 1;
    // Routing header (RFC 8200 section 4.4).
    pub const ROUTING_TYPE: usize = 2;
    pub const SEGMENTS_LEFT: usize = 3;
    // Fragment header (RFC 8200 section 4.5).
    pub const FRAG_OFF_M: usize = 2;
    pub const FRAG_IDENT: usize = 4;
}

/// Length of the fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// What a fragment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Fragment offset in 8-byte units.
    pub offset: u16,
    /// M flag: more fragments follow.
    pub more: bool,
    pub ident: u32,
    /// Offset of the fragment header from the start of the IPv6 header.
    pub header_offset: usize,
}

impl FragmentInfo {
    /// An atomic fragment: offset 0 and no more fragments, i.e. the whole packet.
    ///
    /// RFC 6946 section 4: "A host that receives an IPv6 packet that includes a Fragment Header
    /// with the "Fragment Offset" equal to 0 and the "M" flag equal to 0 MUST process that packet
    /// in isolation from any other packets/fragments".
    #[inline]
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// Where the upper-layer header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Upper {
    /// The upper-layer protocol (TCP, UDP, ICMPv6, ... or ESP / no-next-header).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header. For a non-first
    /// fragment (`fragment.offset != 0`) this is where the fragment's data starts, not a header.
    pub offset: usize,
    pub fragment: Option<FragmentInfo>,
}

/// Is `next` an extension header [`walk`] steps over?
#[inline]
pub fn is_extension(next: u8) -> bool {
    matches!(next, proto::HOPOPT | proto::ROUTING | proto::FRAGMENT | proto::DSTOPTS | proto::AH)
}

/// Walk the extension-header chain of the IPv6 packet starting at `ipv6[0]`.
///
/// The chain must end within the payload, `40..40 + payload_len` capped at the buffer end (so a
/// packet quoted in an ICMPv6 error, cut short, can be walked as far as it goes).
/// Errors: `Truncated` / `BadVersion` if there is no IPv6 header; `ExtensionChain` if a
/// header runs past the end or a hop-by-hop header is not first. The walk stops after a
/// fragment header with a non-zero offset: the rest is data, not headers.
#[inline]
pub fn walk(ipv6: &[u8]) -> Result<Ipv6Upper> {
    if ipv6.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if ipv6[0] >> 4 != 6 {
        return Err(WireError::BadVersion);
    }
    let end = (HEADER_LEN + usize::from(read_u16(ipv6, 4))).min(ipv6.len());
    let mut next = ipv6[6];
    let mut offset = HEADER_LEN;
    let mut fragment = None;
    loop {
        let len = match next {
            proto::HOPOPT if offset != HEADER_LEN => return Err(WireError::ExtensionChain),
            proto::HOPOPT | proto::ROUTING | proto::DSTOPTS => {
                if offset + 2 > end {
                    return Err(WireError::ExtensionChain);
                }
                // "Length of the ... header in 8-octet units, not including the first 8 octets."
                (usize::from(ipv6[offset + field::HDR_EXT_LEN]) + 1) * 8
            }
            proto::AH => {
                if offset + 2 > end {
                    return Err(WireError::ExtensionChain);
                }
                // RFC 4302 2.2: "the length of AH in 32-bit words (4-byte units), minus 2".
                (usize::from(ipv6[offset + field::HDR_EXT_LEN]) + 2) * 4
            }
            proto::FRAGMENT => FRAGMENT_HEADER_LEN,
            _ => return Ok(Ipv6Upper { protocol: next, offset, fragment }),
        };
        if offset + len > end {
            return Err(WireError::ExtensionChain);
        }
        let this = next;
        next = ipv6[offset + field::NEXT_HEADER];
        if this == proto::FRAGMENT {
            let fh = FragmentHeader::new_unchecked(&ipv6[offset..offset + len]);
            let info = FragmentInfo {
                offset: fh.frag_offset(),
                more: fh.more_frags(),
                ident: fh.ident(),
                header_offset: offset,
            };
            fragment = Some(info);
            if info.offset != 0 {
                return Ok(Ipv6Upper { protocol: next, offset: offset + len, fragment });
            }
        }
        offset += len;
    }
}

/// A view over a generic extension header (hop-by-hop, routing, destination options):
/// next header, length, and the rest.
///
/// `new_checked` checks: 2 bytes, then the whole `(hdr_ext_len + 1) * 8` bytes (`Truncated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ExtHeader { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < 2 || b.len() < (usize::from(b[field::HDR_EXT_LEN]) + 1) * 8 {
            return Err(WireError::Truncated);
        }
        Ok(ExtHeader { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Header length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[field::HDR_EXT_LEN]) + 1) * 8
    }

    /// Options (hop-by-hop, destination) or type-specific data (routing), after the first 2 bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), 2, self.header_len())
    }

    /// Routing header only: the routing type (byte 2).
    #[inline]
    pub fn routing_type(&self) -> u8 {
        self.buffer.as_ref()[field::ROUTING_TYPE]
    }

    /// Routing header only: segments left (byte 3).
    #[inline]
    pub fn segments_left(&self) -> u8 {
        self.buffer.as_ref()[field::SEGMENTS_LEFT]
    }
}

/// A view over a fragment header. `new_checked` checks: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        FragmentHeader { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(FragmentHeader { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Fragment offset in 8-byte units (13 bits).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FRAG_OFF_M) >> 3
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FRAG_OFF_M) & 1 != 0
    }

    #[inline]
    pub fn ident(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::FRAG_IDENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv6 header + the given extension headers (each: (type of this header, bytes)) + `tail`.
    fn packet(first: u8, exts: &[Vec<u8>], tail: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 40];
        b[0] = 0x60;
        b[6] = first;
        for e in exts {
            b.extend_from_slice(e);
        }
        b.extend_from_slice(tail);
        let plen = (b.len() - 40) as u16;
        b[4..6].copy_from_slice(&plen.to_be_bytes());
        b
    }

    fn opts(next: u8, units: u8) -> Vec<u8> {
        let mut v = vec![0u8; (usize::from(units) + 1) * 8];
        v[0] = next;
        v[1] = units;
        v
    }

    fn frag(next: u8, offset: u16, more: bool, ident: u32) -> Vec<u8> {
        let mut v = vec![next, 0];
        v.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
        v.extend_from_slice(&ident.to_be_bytes());
        v
    }

    #[test]
    fn no_extensions() {
        let b = packet(proto::TCP, &[], &[0; 20]);
        assert_eq!(walk(&b).unwrap(), Ipv6Upper { protocol: proto::TCP, offset: 40, fragment: None });
    }

    #[test]
    fn full_chain() {
        let mut ah = vec![0u8; 16];
        ah[0] = proto::FRAGMENT;
        ah[1] = 2; // (2 + 2) * 4 = 16
        let exts = vec![
            opts(proto::ROUTING, 0),
            opts(proto::DSTOPTS, 1),
            opts(proto::AH, 0),
            ah,
            frag(proto::UDP, 0, true, 0xdeadbeef),
        ];
        let b = packet(proto::HOPOPT, &exts, &[0; 8]);
        let u = walk(&b).unwrap();
        assert_eq!(u.protocol, proto::UDP);
        assert_eq!(u.offset, 40 + 8 + 16 + 8 + 16 + 8);
        let f = u.fragment.unwrap();
        assert_eq!(f, FragmentInfo { offset: 0, more: true, ident: 0xdeadbeef, header_offset: 40 + 48 });
        assert!(!f.is_atomic());
        assert!(FragmentInfo { more: false, ..f }.is_atomic());
        let e = ExtHeader::new_checked(&b[48..]).unwrap();
        assert_eq!((e.next_header(), e.header_len(), e.data().len()), (proto::DSTOPTS, 16, 14));
        assert_eq!((e.routing_type(), e.segments_left()), (0, 0));
    }

    #[test]
    fn non_first_fragment_stops() {
        let b = packet(proto::FRAGMENT, &[frag(proto::TCP, 185, false, 1)], &[0xff; 16]);
        let u = walk(&b).unwrap();
        assert_eq!((u.protocol, u.offset), (proto::TCP, 48));
        assert_eq!(u.fragment.unwrap().offset, 185);
        let fh = FragmentHeader::new_checked(&b[40..]).unwrap();
        assert_eq!((fh.next_header(), fh.frag_offset(), fh.more_frags(), fh.ident()), (proto::TCP, 185, false, 1));
    }

    #[test]
    fn chain_past_the_end() {
        // Destination options claiming 16 bytes with only 8 present.
        let mut d = opts(proto::TCP, 0);
        d[1] = 1;
        let b = packet(proto::DSTOPTS, &[d], &[]);
        assert_eq!(walk(&b), Err(WireError::ExtensionChain));
        // A fragment header cut short.
        let b = packet(proto::FRAGMENT, &[vec![proto::UDP, 0, 0, 0]], &[]);
        assert_eq!(walk(&b), Err(WireError::ExtensionChain));
        // Routing header with no bytes at all.
        let b = packet(proto::ROUTING, &[], &[]);
        assert_eq!(walk(&b), Err(WireError::ExtensionChain));
        // Payload length shorter than the chain that follows in the buffer.
        let mut b = packet(proto::HOPOPT, &[opts(proto::UDP, 0)], &[0; 8]);
        b[5] = 4;
        assert_eq!(walk(&b), Err(WireError::ExtensionChain));
        // Hop-by-hop not first.
        let b = packet(proto::DSTOPTS, &[opts(proto::HOPOPT, 0), opts(proto::UDP, 0)], &[0; 8]);
        assert_eq!(walk(&b), Err(WireError::ExtensionChain));
    }

    #[test]
    fn truncated_at_every_length() {
        let b = packet(proto::HOPOPT, &[opts(proto::FRAGMENT, 0), frag(proto::UDP, 0, false, 9)], &[]);
        assert!(walk(&b).is_ok());
        for n in 0..b.len() {
            assert!(walk(&b[..n]).is_err(), "length {n}");
        }
        for n in 0..8 {
            assert!(ExtHeader::new_checked(&b[40..40 + n]).is_err());
            assert!(FragmentHeader::new_checked(&b[48..48 + n]).is_err());
        }
    }

    #[test]
    fn not_ipv6() {
        let mut b = packet(proto::TCP, &[], &[0; 20]);
        b[0] = 0x45;
        assert_eq!(walk(&b), Err(WireError::BadVersion));
    }
}
