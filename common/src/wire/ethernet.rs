//! Ethernet II frames (IEEE 802.3 with an EtherType, no FCS).
//!
//! `new_checked` checks: the buffer holds the 14-byte header. VLAN tags are handled by
//! [`super::vlan::parse_l2`].

use super::{Result, WireError, read_array, read_u16, write_u16};

mod field {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of the untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IEEE 802.1Q customer tag (C-tag).
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IEEE 802.1ad service tag (S-tag, "QinQ").
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// A view over an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wrap without checking; accessors panic if the buffer is shorter than 14 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wrap after checking that the header fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), field::DST)
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), field::SRC)
    }

    /// The outer EtherType (a tag type if the frame is VLAN-tagged).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header (tags included, if any).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::DST..field::DST + 6].copy_from_slice(&addr);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::SRC..field::SRC + 6].copy_from_slice(&addr);
    }

    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// Write a 14-byte Ethernet II header at the start of `buf`.
///
/// # Panics
/// If `buf` is shorter than [`HEADER_LEN`] (a caller bug: the caller sizes its own buffer).
#[inline]
pub fn emit_header(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    let mut f = EthernetFrame::new_unchecked(buf);
    f.set_dst_addr(dst);
    f.set_src_addr(src);
    f.set_ethertype(ethertype);
}

impl<'a> EthernetFrame<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        &self.buffer[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 16] = [1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x08, 0x00, 0x45, 0x00];

    #[test]
    fn parse_valid() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src_addr(), [0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(f.payload(), &[0x45, 0x00]);
        assert!(EthernetFrame::new_checked(&FRAME[..14]).unwrap().payload().is_empty());
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..HEADER_LEN {
            assert_eq!(EthernetFrame::new_checked(&FRAME[..n]), Err(WireError::Truncated));
        }
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 20];
        emit_header(&mut buf, [9; 6], [8; 6], ETHERTYPE_IPV6);
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        assert_eq!((f.dst_addr(), f.src_addr(), f.ethertype()), ([9; 6], [8; 6], ETHERTYPE_IPV6));
        f.payload_mut()[0] = 0x60;
        assert_eq!(buf[14], 0x60);
    }
}
