//! ICMPv4 (RFC 792), the 8-byte header: type, code, checksum, and 4 bytes whose meaning
//! depends on the type (echo identifier/sequence, next-hop MTU for "fragmentation needed"
//! (RFC 1191), pointer for parameter problems). Errors quote the offending packet in the payload.
//!
//! `new_checked` checks: the buffer holds 8 bytes (`Truncated`). The checksum covers the
//! whole buffer: give the view exactly the ICMP message (the IPv4 payload).

use super::{Result, WireError, read_u16, write_u16};
use crate::checksum;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const PAYLOAD: usize = 8;
}

pub const HEADER_LEN: usize = field::PAYLOAD;

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACH: u8 = 3;
pub const SOURCE_QUENCH: u8 = 4;
pub const REDIRECT: u8 = 5;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAM_PROBLEM: u8 = 12;
/// Destination unreachable code 4: "fragmentation needed and DF set".
pub const CODE_FRAG_NEEDED: u8 = 4;

/// Is `msg_type` an ICMP error (one that quotes an offending packet)?
///
/// RFC 1812 section 4.3.2.2 names the error messages: Destination Unreachable, Redirect,
/// Source Quench, Time Exceeded, Parameter Problem.
#[inline]
pub fn is_error(msg_type: u8) -> bool {
    matches!(msg_type, DEST_UNREACH | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAM_PROBLEM)
}

/// A view over an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wrap without checking; accessors panic if the buffer is shorter than 8 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wrap after checking that the 8-byte header fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Icmpv4Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo request/reply identifier (bytes 4..6).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo request/reply sequence number (bytes 6..8).
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQ)
    }

    /// Next-hop MTU of a "fragmentation needed" message (bytes 6..8, RFC 1191 section 4).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Bytes 4..8, whatever they mean for this type.
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        super::read_array(self.buffer.as_ref(), field::REST)
    }

    /// Bytes 8.. (for errors: the quoted packet).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    /// The checksum over the whole buffer is right.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    #[inline]
    pub fn set_echo_seq(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQ, v);
    }

    /// Set bytes 6..8 (and zero the unused bytes 4..6), RFC 1191 section 4.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        write_u16(self.buffer.as_mut(), field::REST, 0);
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, mtu);
    }

    #[inline]
    pub fn set_rest_of_header(&mut self, rest: [u8; 4]) {
        self.buffer.as_mut()[field::REST..field::PAYLOAD].copy_from_slice(&rest);
    }

    /// Compute the checksum over the whole buffer and store it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<'a> Icmpv4Packet<&'a [u8]> {
    /// The payload (quoted packet) with the lifetime of the underlying buffer.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        &self.buffer[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_and_checksum() {
        let mut b = [0u8; 12];
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(ECHO_REQUEST);
        p.set_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq(7);
        p.payload_mut().copy_from_slice(b"ping");
        p.fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.echo_ident(), p.echo_seq()), (ECHO_REQUEST, 0, 0x1234, 7));
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum());
        assert!(!is_error(p.msg_type()));
    }

    #[test]
    fn frag_needed() {
        let mut b = [0xffu8; 8];
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(DEST_UNREACH);
        p.set_code(CODE_FRAG_NEEDED);
        p.set_next_hop_mtu(1400);
        assert_eq!(p.rest_of_header(), [0, 0, 0x05, 0x78]);
        assert_eq!(p.next_hop_mtu(), 1400);
        assert!(is_error(p.msg_type()));
        assert!(p.payload().is_empty());
    }

    #[test]
    fn truncated_at_every_length() {
        let b = [0u8; 8];
        for n in 0..8 {
            assert_eq!(Icmpv4Packet::new_checked(&b[..n]), Err(WireError::Truncated));
        }
    }

    #[test]
    fn error_types() {
        for t in 0..=255u8 {
            assert_eq!(is_error(t), [3, 4, 5, 11, 12].contains(&t), "type {t}");
        }
    }
}
