//! UDP header (RFC 768).
//!
//! `new_checked` checks: the buffer holds 8 bytes (`Truncated`); the length field is >= 8
//! (`BadLength`) and <= the buffer length (`Truncated`). [`UdpPacket::payload`] stops at the
//! length field (the buffer may be longer, e.g. Ethernet padding passed through).
//!
//! Checksums: a transmitted 0 means "no checksum" (IPv4 only; RFC 8200 section 8.1 makes it
//! mandatory over IPv6). The `fill_checksum_*` methods store a computed 0 as `0xFFFF`.

use super::{Result, WireError, clamped, clamped_mut, read_u16, write_u16};
use crate::checksum;
use crate::flow::proto;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

pub const HEADER_LEN: usize = field::PAYLOAD;
/// Offset of the checksum field in the UDP header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view over a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap without checking; accessors may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wrap after the checks listed in the module documentation.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        // RFC 768: "Length is the length in octets of this user datagram including this header
        // and the data. (This means the minimum value of the length is eight.)"
        let len = usize::from(read_u16(b, field::LENGTH));
        if len < HEADER_LEN {
            return Err(WireError::BadLength);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(UdpPacket { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header + payload, in bytes.
    #[allow(clippy::len_without_is_empty)]
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Bytes 8..length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, usize::from(self.len()))
    }

    /// The datagram (header + payload) as the length field delimits it.
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), 0, usize::from(self.len()))
    }

    /// The checksum over the IPv4 pseudo-header and the datagram is right, or absent (0).
    #[inline]
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        self.checksum() == 0 || checksum::l4_checksum_v4(src, dst, proto::UDP, self.datagram()) == 0
    }

    /// The checksum over the IPv6 pseudo-header and the datagram is right (0 is not allowed).
    #[inline]
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        self.checksum() != 0 && checksum::l4_checksum_v6(src, dst, proto::UDP, self.datagram()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    #[inline]
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Compute and store the checksum (IPv4 pseudo-header); a computed 0 is stored as `0xFFFF`.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v4(src, dst, proto::UDP, self.datagram());
        self.set_checksum(checksum::udp_checksum_field(c));
    }

    /// Compute and store the checksum (IPv6 pseudo-header); a computed 0 is stored as `0xFFFF`.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v6(src, dst, proto::UDP, self.datagram());
        self.set_checksum(checksum::udp_checksum_field(c));
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, len)
    }
}

impl<'a> UdpPacket<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        clamped(self.buffer, HEADER_LEN, usize::from(self.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 14]; // 8 + 4 payload + 2 padding
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_src_port(5353);
        u.set_dst_port(53);
        u.set_len(12);
        u.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        u.fill_checksum_v4([192, 0, 2, 1], [192, 0, 2, 2]);
        b
    }

    #[test]
    fn parse_valid() {
        let b = sample();
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (5353, 53, 12));
        assert_eq!(u.payload(), &[1, 2, 3, 4]);
        assert_ne!(u.checksum(), 0);
        assert!(u.verify_checksum_v4([192, 0, 2, 1], [192, 0, 2, 2]));
        assert!(!u.verify_checksum_v4([192, 0, 2, 1], [192, 0, 2, 3]));
    }

    #[test]
    fn truncated_at_every_length() {
        let b = sample();
        for n in 0..12 {
            assert_eq!(UdpPacket::new_checked(&b[..n]), Err(WireError::Truncated), "length {n}");
        }
        assert!(UdpPacket::new_checked(&b[..12]).is_ok());
    }

    #[test]
    fn bad_length() {
        let mut b = sample();
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]), Err(WireError::BadLength));
        b[5] = 15; // past the buffer
        assert_eq!(UdpPacket::new_checked(&b[..]), Err(WireError::Truncated));
    }

    #[test]
    fn zero_checksum_rules() {
        let mut b = sample();
        let mut u = UdpPacket::new_checked(&mut b[..]).unwrap();
        u.set_checksum(0);
        assert!(u.verify_checksum_v4([1, 1, 1, 1], [2, 2, 2, 2]), "0 = no checksum over IPv4");
        assert!(!u.verify_checksum_v6([1; 16], [2; 16]), "0 is invalid over IPv6");
        u.fill_checksum_v6([1; 16], [2; 16]);
        assert!(u.verify_checksum_v6([1; 16], [2; 16]));
    }

    #[test]
    fn computed_zero_sent_as_ffff() {
        // Find a payload word that makes the computed checksum 0: fill, then adjust the payload so
        // the sum becomes -0.
        let mut b = [0u8; 10];
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_src_port(1);
        u.set_dst_port(2);
        u.set_len(10);
        let c = checksum::l4_checksum_v4([0; 4], [0; 4], proto::UDP, u.datagram());
        // Adding the current checksum as a payload word makes the total sum 0xFFFF: computed 0.
        u.payload_mut().copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum::l4_checksum_v4([0; 4], [0; 4], proto::UDP, u.datagram()), 0);
        u.fill_checksum_v4([0; 4], [0; 4]);
        assert_eq!(u.checksum(), 0xFFFF);
        assert!(u.verify_checksum_v4([0; 4], [0; 4]));
    }
}
