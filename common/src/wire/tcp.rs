//! TCP header (RFC 9293 section 3.1).
//!
//! `new_checked` checks: the buffer holds 20 bytes (`Truncated`); data offset >= 5
//! (`BadDataOffset`); the data-offset*4-byte header fits the buffer (`Truncated`).
//! The view's buffer is the whole segment (the IP payload): checksums cover all of it.

use super::{Result, WireError, clamped, clamped_mut, read_u16, read_u32, write_u16, write_u32};
use crate::checksum;
use crate::flow::proto;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DOFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Offset of the checksum field in the TCP header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// Bits of the flags byte (byte 13).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// A view over a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap without checking; accessors may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wrap after the checks listed in the module documentation.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        // RFC 9293 3.1: "Data Offset (DOffset): 4 bits. The number of 32-bit words in the TCP
        // header. This indicates where the data begins." A header has at least 5 words.
        let hl = usize::from(b[field::DOFF] >> 4) * 4;
        if hl < HEADER_LEN {
            return Err(WireError::BadDataOffset);
        }
        if hl > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(TcpPacket { buffer })
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DOFF] >> 4) * 4
    }

    /// The flags byte; test with [`flags`].
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::OPTIONS, self.header_len())
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), self.header_len(), usize::MAX)
    }

    /// The checksum over the IPv4 pseudo-header and the whole buffer is right.
    #[inline]
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        checksum::l4_checksum_v4(src, dst, proto::TCP, self.buffer.as_ref()) == 0
    }

    /// The checksum over the IPv6 pseudo-header and the whole buffer is right.
    #[inline]
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        checksum::l4_checksum_v6(src, dst, proto::TCP, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ, v);
    }

    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK, v);
    }

    /// Set the header length in bytes (multiple of 4, 20..=60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = self.buffer.as_mut();
        b[field::DOFF] = (b[field::DOFF] & 0x0f) | (((len / 4) as u8) << 4);
    }

    #[inline]
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f;
    }

    #[inline]
    pub fn set_window(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, v);
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Compute and store the checksum over the IPv4 pseudo-header and the whole buffer.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v4(src, dst, proto::TCP, self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Compute and store the checksum over the IPv6 pseudo-header and the whole buffer.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v6(src, dst, proto::TCP, self.buffer.as_ref());
        self.set_checksum(c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        clamped_mut(self.buffer.as_mut(), hl, usize::MAX)
    }
}

impl<'a> TcpPacket<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        clamped(self.buffer, self.header_len(), usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 28]; // 24-byte header (one 4-byte option) + 4 data bytes
        let mut t = TcpPacket::new_unchecked(&mut b[..]);
        t.set_src_port(40000);
        t.set_dst_port(80);
        t.set_seq_number(0x01020304);
        t.set_ack_number(0x0a0b0c0d);
        t.set_header_len(24);
        t.set_flags(flags::SYN | flags::ACK);
        t.set_window(65535);
        t.set_urgent(0);
        t.payload_mut().copy_from_slice(b"data");
        t.fill_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]);
        b
    }

    #[test]
    fn parse_valid() {
        let b = sample();
        let t = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (40000, 80));
        assert_eq!((t.seq_number(), t.ack_number()), (0x01020304, 0x0a0b0c0d));
        assert_eq!(t.header_len(), 24);
        assert!(t.syn() && t.ack() && !t.fin() && !t.rst());
        assert_eq!(t.flags(), 0x12);
        assert_eq!((t.window(), t.urgent()), (65535, 0));
        assert_eq!(t.options().len(), 4);
        assert_eq!(t.payload(), b"data");
        assert!(t.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]));
        assert!(!t.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 3]));
    }

    #[test]
    fn truncated_at_every_length() {
        let b = sample();
        for n in 0..24 {
            assert_eq!(TcpPacket::new_checked(&b[..n]), Err(WireError::Truncated), "length {n}");
        }
        assert!(TcpPacket::new_checked(&b[..24]).is_ok());
    }

    #[test]
    fn bad_data_offset() {
        let mut b = sample();
        for doff in 0..5u8 {
            b[12] = doff << 4;
            assert_eq!(TcpPacket::new_checked(&b[..]), Err(WireError::BadDataOffset));
        }
        b[12] = 0xf0; // 60 bytes in a 28-byte buffer
        assert_eq!(TcpPacket::new_checked(&b[..]), Err(WireError::Truncated));
    }

    #[test]
    fn v6_checksum() {
        let mut b = sample();
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        t.fill_checksum_v6([1; 16], [2; 16]);
        assert!(t.verify_checksum_v6([1; 16], [2; 16]));
    }
}
