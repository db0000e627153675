//! GRE (RFC 2784, key and sequence number from RFC 2890; version 1 is PPTP's enhanced GRE,
//! RFC 2637).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (Optional)    |
//! |                         Key (optional)                        |
//! |                 Sequence Number (optional)                    |
//! |            Acknowledgment Number (optional, version 1)        |
//! ```
//!
//! `new_checked` checks: 4 bytes (`Truncated`); version 0 or 1 (`BadVersion`); no routing
//! (R bit, RFC 1701 source routing, `Unsupported`: RFC 2784 "A receiver MUST discard a packet
//! where any of bits 1-5 are non-zero, unless that receiver implements RFC 1701"); the optional
//! fields announced by C, K, S (and A for version 1) fit the buffer (`Truncated`).

use super::{Result, WireError, clamped, clamped_mut, read_u16, read_u32, write_u16};
use crate::checksum;

mod field {
    pub const FLAGS_VER: usize = 0;
    pub const PROTOCOL: usize = 2;
    pub const OPTIONAL: usize = 4;
}

/// Length of the GRE header l4lb emits (no optional fields).
pub const HEADER_LEN: usize = 4;
pub const PROTO_IPV4: u16 = 0x0800;
pub const PROTO_IPV6: u16 = 0x86dd;
/// Transparent Ethernet bridging.
pub const PROTO_TEB: u16 = 0x6558;

const FLAG_C: u16 = 0x8000;
const FLAG_R: u16 = 0x4000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
const FLAG_A: u16 = 0x0080;
const VERSION_MASK: u16 = 0x0007;

/// A view over a GRE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

#[inline]
fn header_len_of(flags: u16) -> usize {
    let mut len = HEADER_LEN;
    if flags & FLAG_C != 0 {
        len += 4;
    }
    if flags & FLAG_K != 0 {
        len += 4;
    }
    if flags & FLAG_S != 0 {
        len += 4;
    }
    if flags & VERSION_MASK == 1 && flags & FLAG_A != 0 {
        len += 4;
    }
    len
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Wrap without checking; accessors may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        GrePacket { buffer }
    }

    /// Wrap after the checks listed in the module documentation.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let flags = read_u16(b, field::FLAGS_VER);
        if flags & VERSION_MASK > 1 {
            return Err(WireError::BadVersion);
        }
        if flags & FLAG_R != 0 {
            return Err(WireError::Unsupported);
        }
        if header_len_of(flags) > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(GrePacket { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS_VER)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        (self.flags() & VERSION_MASK) as u8
    }

    #[inline]
    pub fn checksum_present(&self) -> bool {
        self.flags() & FLAG_C != 0
    }

    #[inline]
    pub fn key_present(&self) -> bool {
        self.flags() & FLAG_K != 0
    }

    #[inline]
    pub fn seq_present(&self) -> bool {
        self.flags() & FLAG_S != 0
    }

    /// The EtherType of the payload.
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Header length from the C, K, S (and, version 1, A) bits: 4 to 16 bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        header_len_of(self.flags())
    }

    /// The checksum field, if present.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present().then(|| read_u16(self.buffer.as_ref(), field::OPTIONAL))
    }

    /// The key (RFC 2890), if present.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        let at = field::OPTIONAL + if self.checksum_present() { 4 } else { 0 };
        self.key_present().then(|| read_u32(self.buffer.as_ref(), at))
    }

    /// The sequence number (RFC 2890), if present.
    #[inline]
    pub fn sequence(&self) -> Option<u32> {
        let at = field::OPTIONAL + if self.checksum_present() { 4 } else { 0 } + if self.key_present() { 4 } else { 0 };
        self.seq_present().then(|| read_u32(self.buffer.as_ref(), at))
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), self.header_len(), usize::MAX)
    }

    /// No checksum, or "the 16 bit one's complement of the one's complement sum of all 16 bit
    /// words in the GRE header and the payload packet" (RFC 2784) is right.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    #[inline]
    pub fn set_protocol_type(&mut self, protocol: u16) {
        write_u16(self.buffer.as_mut(), field::PROTOCOL, protocol);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        clamped_mut(self.buffer.as_mut(), hl, usize::MAX)
    }
}

/// The GRE header l4lb emits: no checksum, key or sequence number, version 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreRepr {
    /// EtherType of the payload ([`PROTO_IPV4`], [`PROTO_IPV6`]).
    pub protocol: u16,
}

impl GreRepr {
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &GrePacket<T>) -> GreRepr {
        GreRepr { protocol: packet.protocol_type() }
    }

    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the 4-byte header into `buf[..4]`.
    ///
    /// # Panics
    /// If `buf` is shorter than 4 bytes (the caller sizes its own buffer).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        write_u16(buf, field::FLAGS_VER, 0);
        write_u16(buf, field::PROTOCOL, self.protocol);
    }
}

impl<'a> GrePacket<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        clamped(self.buffer, self.header_len(), usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let mut b = [0u8; 6];
        GreRepr { protocol: PROTO_IPV4 }.emit(&mut b);
        assert_eq!(&b[..4], &[0, 0, 0x08, 0x00]);
        let g = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!((g.version(), g.header_len(), g.protocol_type()), (0, 4, PROTO_IPV4));
        assert_eq!((g.checksum(), g.key(), g.sequence()), (None, None, None));
        assert_eq!(g.payload().len(), 2);
        assert!(g.verify_checksum());
        assert_eq!(GreRepr::parse(&g), GreRepr { protocol: PROTO_IPV4 });
    }

    #[test]
    fn all_optional_fields() {
        // C, K, S set; checksum filled below; key 0x01020304; seq 9; payload 2 bytes.
        let mut b = vec![0xb0, 0x00, 0x86, 0xdd, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 9, 0x60, 0x00];
        let c = checksum::checksum(&b);
        b[4..6].copy_from_slice(&c.to_be_bytes());
        let g = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!(g.header_len(), 16);
        assert_eq!((g.checksum(), g.key(), g.sequence()), (Some(c), Some(0x01020304), Some(9)));
        assert!(g.verify_checksum());
        assert_eq!(g.payload(), &[0x60, 0]);
        for n in 0..16 {
            assert_eq!(GrePacket::new_checked(&b[..n]), Err(WireError::Truncated), "length {n}");
        }
    }

    #[test]
    fn key_only_and_pptp() {
        let b = [0x20, 0x00, 0x65, 0x58, 0, 0, 0, 7];
        let g = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!((g.key(), g.sequence(), g.header_len()), (Some(7), None, 8));
        // Version 1 (PPTP): K, S, A set: 4 + 4 + 4 + 4.
        let b = [0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        let g = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!((g.version(), g.header_len(), g.sequence()), (1, 16, Some(2)));
        assert_eq!(GrePacket::new_checked(&b[..15]), Err(WireError::Truncated));
    }

    #[test]
    fn malformed() {
        assert_eq!(GrePacket::new_checked(&[0, 2, 8, 0][..]), Err(WireError::BadVersion));
        assert_eq!(GrePacket::new_checked(&[0x40, 0, 8, 0][..]), Err(WireError::Unsupported));
        for n in 0..4 {
            assert_eq!(GrePacket::new_checked(&[0u8; 4][..n]), Err(WireError::Truncated));
        }
    }
}
