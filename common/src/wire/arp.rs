//! ARP (RFC 826), recognised only: l4lb does not answer ARP (the host does), but it must
//! tell ARP from IP and pass it on.
//!
//! `new_checked` checks: the 8-byte fixed part fits (`Truncated`), then the four addresses
//! whose lengths it announces (`Truncated`).

use super::{Result, WireError, read_u16};

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const ADDRS: usize = 8;
}

/// Length of the fixed part.
pub const FIXED_LEN: usize = field::ADDRS;
/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = FIXED_LEN + 2 * (6 + 4);
pub const HTYPE_ETHERNET: u16 = 1;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// A view over an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wrap without checking; accessors may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wrap after the checks listed in the module documentation.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < FIXED_LEN {
            return Err(WireError::Truncated);
        }
        let addrs = 2 * (usize::from(b[field::HLEN]) + usize::from(b[field::PLEN]));
        if b.len() < FIXED_LEN + addrs {
            return Err(WireError::Truncated);
        }
        Ok(ArpPacket { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    #[inline]
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    #[inline]
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER)
    }

    /// Ethernet hardware addresses and 4-byte IPv4 protocol addresses.
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == super::ethernet::ETHERTYPE_IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }

    #[inline]
    fn addr(&self, index: usize) -> &[u8] {
        let h = usize::from(self.hardware_len());
        let p = usize::from(self.protocol_len());
        // Layout: sender hw, sender proto, target hw, target proto.
        let (start, len) = match index {
            0 => (0, h),
            1 => (h, p),
            2 => (h + p, h),
            _ => (2 * h + p, p),
        };
        &self.buffer.as_ref()[field::ADDRS + start..field::ADDRS + start + len]
    }

    #[inline]
    pub fn sender_hardware_addr(&self) -> &[u8] {
        self.addr(0)
    }

    #[inline]
    pub fn sender_protocol_addr(&self) -> &[u8] {
        self.addr(1)
    }

    #[inline]
    pub fn target_hardware_addr(&self) -> &[u8] {
        self.addr(2)
    }

    #[inline]
    pub fn target_protocol_addr(&self) -> &[u8] {
        self.addr(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 28] = [0, 1, 8, 0, 6, 4, 0, 1, 2, 2, 2, 2, 2, 2, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2];

    #[test]
    fn parse_valid() {
        let a = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert!(a.is_ethernet_ipv4());
        assert_eq!(a.operation(), OP_REQUEST);
        assert_eq!(a.sender_hardware_addr(), &[2; 6]);
        assert_eq!(a.sender_protocol_addr(), &[10, 0, 0, 1]);
        assert_eq!(a.target_hardware_addr(), &[0; 6]);
        assert_eq!(a.target_protocol_addr(), &[10, 0, 0, 2]);
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..ETHERNET_IPV4_LEN {
            assert_eq!(ArpPacket::new_checked(&REQUEST[..n]), Err(WireError::Truncated), "length {n}");
        }
    }

    #[test]
    fn huge_address_lengths() {
        let mut b = REQUEST;
        b[4] = 255;
        assert_eq!(ArpPacket::new_checked(&b[..]), Err(WireError::Truncated));
        b[4] = 0;
        b[5] = 0;
        let a = ArpPacket::new_checked(&b[..]).unwrap();
        assert!(!a.is_ethernet_ipv4() && a.target_protocol_addr().is_empty());
    }
}
