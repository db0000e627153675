//! IPv4 (RFC 791), options included.
//!
//! `new_checked` checks, in this order:
//! 1. the buffer holds 20 bytes (`Truncated`);
//! 2. version is 4 (`BadVersion`);
//! 3. IHL >= 5 (`BadHeaderLength`), and the IHL*4-byte header fits the buffer (`Truncated`);
//! 4. total length >= IHL*4 (`BadTotalLength`), and total length <= buffer length (`Truncated`).
//!
//! The buffer may be longer than the total length (Ethernet pads frames to 60 bytes):
//! [`Ipv4Packet::payload`] stops at the total length.

use std::net::Ipv4Addr;

use super::{Result, WireError, clamped, clamped_mut, read_array, read_u16, write_u16};
use crate::checksum;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const OPTIONS: usize = 20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Offset of the header checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view over an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap without checking; accessors may panic on a short or inconsistent buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wrap after the checks listed in the module documentation.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_quoted(buffer)?;
        if usize::from(p.total_len()) > p.buffer.as_ref().len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// Wrap a packet that may be cut short after its header, such as the packet quoted in an
    /// ICMP error (RFC 792: "Internet Header + 64 bits of Original Data Datagram").
    ///
    /// Makes checks 1 to 3 and the first half of 4 (total length >= header length), not
    /// "total length <= buffer". [`payload`](Self::payload) then stops at the end of the buffer.
    #[inline]
    pub fn new_quoted(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::BadVersion);
        }
        // RFC 791: "Internet Header Length is the length of the internet header in 32 bit words
        // [...]. Note that the minimum value for a correct header is 5."
        let header_len = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if header_len < HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        if header_len > b.len() {
            return Err(WireError::Truncated);
        }
        // RFC 791: "Total Length is the length of the datagram, measured in octets, including
        // internet header and data."
        if usize::from(read_u16(b, field::LENGTH)) < header_len {
            return Err(WireError::BadTotalLength);
        }
        Ok(Ipv4Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole TOS byte: DSCP (6 bits) and ECN (2 bits).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK
    }

    /// Is this a fragment (MF set or a non-zero offset)? Only the first fragment
    /// (`frag_offset() == 0`) carries the L4 header.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_bytes())
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_bytes())
    }

    #[inline]
    pub fn src_bytes(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn dst_bytes(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::DST)
    }

    /// The options (bytes 20..header_len), possibly empty.
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::OPTIONS, self.header_len())
    }

    /// The payload: header_len..total_len (or ..buffer end for a view made by `new_quoted`).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), self.header_len(), usize::from(self.total_len()))
    }

    /// The header (options included) checksums to zero.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(clamped(self.buffer.as_ref(), 0, self.header_len())) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    #[inline]
    pub fn set_dscp_ecn(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }

    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Set DF, MF and the fragment offset (8-byte units, 13 bits).
    #[inline]
    pub fn set_flags_and_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = offset & FRAG_OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        write_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, csum);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 4]) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&addr);
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 4]) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&addr);
    }

    /// Set TTL and update the header checksum incrementally (RFC 1624 eq. 3).
    #[inline]
    pub fn set_ttl_update_checksum(&mut self, ttl: u8) {
        let proto = self.protocol();
        let old = u16::from_be_bytes([self.ttl(), proto]);
        let csum = checksum::update_u16(self.checksum(), old, u16::from_be_bytes([ttl, proto]));
        self.set_ttl(ttl);
        self.set_checksum(csum);
    }

    /// Set the source address and update the header checksum incrementally.
    #[inline]
    pub fn set_src_addr_update_checksum(&mut self, addr: [u8; 4]) {
        let csum = checksum::update_bytes(self.checksum(), &self.src_bytes(), &addr);
        self.set_src_addr(addr);
        self.set_checksum(csum);
    }

    /// Set the destination address and update the header checksum incrementally.
    #[inline]
    pub fn set_dst_addr_update_checksum(&mut self, addr: [u8; 4]) {
        let csum = checksum::update_bytes(self.checksum(), &self.dst_bytes(), &addr);
        self.set_dst_addr(addr);
        self.set_checksum(csum);
    }

    /// Compute the header checksum (options included) and store it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(clamped(self.buffer.as_ref(), 0, hl));
        self.set_checksum(c);
    }

    /// The payload (header_len..total_len, or ..buffer end), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let total = usize::from(self.total_len());
        clamped_mut(self.buffer.as_mut(), hl, total)
    }
}

/// The fields of an option-less IPv4 header l4lb builds (outer header of IPIP/GRE, ICMP errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    /// The whole TOS byte.
    pub dscp_ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
    /// Bytes after the header; `HEADER_LEN + payload_len` must fit in 16 bits.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Read the fields of a checked packet. Options are skipped (`payload_len` counts from the
    /// end of the options); MF and the fragment offset are not represented.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Ipv4Repr {
        Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            payload_len: usize::from(packet.total_len()).saturating_sub(packet.header_len()),
        }
    }

    /// Length of the header `emit` writes.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write a 20-byte header (no options, not a fragment) with its checksum into `buf[..20]`.
    ///
    /// # Panics
    /// If `buf` is shorter than 20 bytes (the caller sizes its own buffer).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        // The header is assembled in registers and its checksum computed from the
        // field values: reading back freshly written bytes would stall on
        // store-to-load forwarding (measured: a quarter of the encapsulation time).
        let total = (HEADER_LEN + self.payload_len) as u16;
        let flags: u16 = if self.dont_frag { 0x4000 } else { 0 };
        let (s, d) = (self.src.octets(), self.dst.octets());
        let words: [u16; 10] = [
            0x4500 | u16::from(self.dscp_ecn),
            total,
            self.ident,
            flags,
            (u16::from(self.ttl) << 8) | u16::from(self.protocol),
            0,
            u16::from_be_bytes([s[0], s[1]]),
            u16::from_be_bytes([s[2], s[3]]),
            u16::from_be_bytes([d[0], d[1]]),
            u16::from_be_bytes([d[2], d[3]]),
        ];
        let sum: u32 = words.iter().map(|w| u32::from(*w)).sum();
        let csum = !crate::checksum::fold(u64::from(sum));
        let mut h = [0u8; HEADER_LEN];
        for (i, w) in words.iter().enumerate() {
            h[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
        }
        h[10..12].copy_from_slice(&csum.to_be_bytes());
        buf[..HEADER_LEN].copy_from_slice(&h);
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer (see [`payload`](Self::payload)).
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        clamped(self.buffer, self.header_len(), usize::from(self.total_len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20-byte header + 4-byte option (NOP x4) + 4 payload bytes + 2 bytes Ethernet padding.
    fn sample() -> Vec<u8> {
        let mut b = vec![
            0x46, 0xb8, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1,
            1, 0xde, 0xad, 0xbe, 0xef, 0, 0,
        ];
        let c = checksum::checksum(&b[..24]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn parse_valid() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.dscp_ecn(), 0xb8);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!((p.ttl(), p.protocol()), (64, 6));
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_bytes(), [10, 0, 0, 2]);
        assert_eq!(p.options(), &[1, 1, 1, 1]);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef], "padding excluded");
        assert!(p.verify_checksum());
    }

    #[test]
    fn truncated_at_every_length() {
        let b = sample();
        for n in 0..28 {
            assert_eq!(Ipv4Packet::new_checked(&b[..n]), Err(WireError::Truncated), "length {n}");
        }
        // The quoted form accepts anything from the end of the header on.
        for n in 0..24 {
            assert!(Ipv4Packet::new_quoted(&b[..n]).is_err());
        }
        for n in 24..28 {
            let q = Ipv4Packet::new_quoted(&b[..n]).unwrap();
            assert_eq!(q.payload().len(), n - 24);
        }
    }

    #[test]
    fn malformed() {
        let mut b = sample();
        b[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(WireError::BadVersion));
        b[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(WireError::BadHeaderLength));
        b[0] = 0x40;
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(WireError::BadHeaderLength));
        b[0] = 0x4f; // 60-byte header in a 30-byte buffer
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(WireError::Truncated));
        b[0] = 0x46;
        b[3] = 23; // total length below the header length
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(WireError::BadTotalLength));
        b[3] = 31; // total length past the frame
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(WireError::Truncated));
        assert!(Ipv4Packet::new_quoted(&b[..]).is_ok());
    }

    #[test]
    fn fragments() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_flags_and_frag(false, true, 0);
        assert!(p.is_fragment() && p.more_frags() && !p.dont_frag() && p.frag_offset() == 0);
        p.set_flags_and_frag(false, false, 0x1fff);
        assert!(p.is_fragment() && !p.more_frags() && p.frag_offset() == 0x1fff);
        p.set_flags_and_frag(true, false, 0);
        assert!(!p.is_fragment() && p.dont_frag());
    }

    #[test]
    fn incremental_setters_match_full() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_ttl_update_checksum(1);
        p.set_src_addr_update_checksum([192, 168, 255, 1]);
        p.set_dst_addr_update_checksum([172, 16, 0, 9]);
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), c);
    }

    #[test]
    fn repr_round_trip() {
        let r = Ipv4Repr {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            protocol: 47,
            ttl: 64,
            dscp_ecn: 0x2e << 2,
            ident: 7,
            dont_frag: true,
            payload_len: 100,
        };
        let mut buf = vec![0u8; 120];
        r.emit(&mut buf);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), r);
        assert_eq!(p.payload().len(), 100);
    }
}
