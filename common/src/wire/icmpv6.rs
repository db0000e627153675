//! ICMPv6 (RFC 4443), the 8-byte header: type, code, checksum, and 4 bytes whose meaning
//! depends on the type (echo identifier/sequence, MTU of "packet too big", pointer of
//! "parameter problem"). Errors quote the offending packet in the payload.
//!
//! `new_checked` checks: the buffer holds 8 bytes (`Truncated`). The checksum covers an IPv6
//! pseudo-header and the whole buffer (RFC 4443 section 2.3): give the view exactly the
//! ICMPv6 message.

use super::{Result, WireError, read_u16, read_u32, write_u16, write_u32};
use crate::checksum;
use crate::flow::proto;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const MTU: usize = 4;
    pub const PAYLOAD: usize = 8;
}

pub const HEADER_LEN: usize = field::PAYLOAD;

pub const DEST_UNREACH: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAM_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;
pub const REDIRECT: u8 = 137;

/// Is `msg_type` an ICMPv6 error message?
///
/// RFC 4443 section 2.1: "Error messages are identified as such by a zero in the high-order
/// bit of their message Type field values."
#[inline]
pub fn is_error(msg_type: u8) -> bool {
    msg_type & 0x80 == 0
}

/// A view over an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wrap without checking; accessors panic if the buffer is shorter than 8 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wrap after checking that the 8-byte header fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Icmpv6Packet { buffer })
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

    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    #[inline]
    pub fn echo_seq(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQ)
    }

    /// MTU of a "packet too big" message (bytes 4..8).
    #[inline]
    pub fn mtu(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::MTU)
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

    /// The checksum over the pseudo-header and the whole buffer is right.
    #[inline]
    pub fn verify_checksum(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        checksum::l4_checksum_v6(src, dst, proto::ICMPV6, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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

    #[inline]
    pub fn set_mtu(&mut self, mtu: u32) {
        write_u32(self.buffer.as_mut(), field::MTU, mtu);
    }

    #[inline]
    pub fn set_rest_of_header(&mut self, rest: [u8; 4]) {
        self.buffer.as_mut()[field::REST..field::PAYLOAD].copy_from_slice(&rest);
    }

    /// Compute the checksum over the IPv6 pseudo-header (`src`, `dst`, next header 58, the
    /// buffer length) and the whole buffer, and store it.
    #[inline]
    pub fn fill_checksum(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v6(src, dst, proto::ICMPV6, self.buffer.as_ref());
        self.set_checksum(c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<'a> Icmpv6Packet<&'a [u8]> {
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
    fn packet_too_big_and_checksum() {
        let mut b = [0u8; 16];
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(PACKET_TOO_BIG);
        p.set_code(0);
        p.set_mtu(1280);
        p.payload_mut().copy_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        p.fill_checksum([1; 16], [2; 16]);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.mtu()), (PACKET_TOO_BIG, 0, 1280));
        assert_eq!(p.rest_of_header(), [0, 0, 5, 0]);
        assert_eq!(p.payload()[0], 0x60);
        assert!(p.verify_checksum([1; 16], [2; 16]));
        assert!(!p.verify_checksum([1; 16], [3; 16]));
        assert!(is_error(p.msg_type()));
    }

    #[test]
    fn echo() {
        let mut b = [0u8; 8];
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(ECHO_REQUEST);
        p.set_echo_ident(9);
        p.set_echo_seq(10);
        assert_eq!((p.echo_ident(), p.echo_seq()), (9, 10));
        assert!(!is_error(ECHO_REQUEST) && !is_error(NEIGHBOR_SOLICIT) && is_error(PARAM_PROBLEM));
    }

    #[test]
    fn truncated_at_every_length() {
        let b = [0u8; 8];
        for n in 0..8 {
            assert_eq!(Icmpv6Packet::new_checked(&b[..n]), Err(WireError::Truncated));
        }
    }
}
