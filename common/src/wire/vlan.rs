//! IEEE 802.1Q (C-tag, TPID 0x8100) and 802.1ad (S-tag, TPID 0x88a8) VLAN tags, at most two.
//!
//! A tag sits where the EtherType would be: TPID (2 bytes), then TCI (PCP 3 bits, DEI 1 bit,
//! VID 12 bits), then the next EtherType. [`parse_l2`] skips up to two tags and reports the
//! innermost EtherType; a third tag is [`WireError::TooManyTags`].

use super::ethernet::{ETHERTYPE_QINQ, ETHERTYPE_VLAN, HEADER_LEN};
use super::{Result, WireError, read_u16, write_u16};

mod field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
}

/// Length of one tag after the TPID: TCI + inner EtherType.
pub const TAG_LEN: usize = 4;
/// Most tags l4lb accepts (802.1ad S-tag + 802.1Q C-tag).
pub const MAX_TAGS: u8 = 2;

/// Where the L3 header starts and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Header {
    /// Length of the L2 header including tags: 14, 18 or 22.
    pub len: usize,
    /// The innermost EtherType (the L3 protocol).
    pub ethertype: u16,
    /// Offset of the innermost EtherType field in the frame (`len - 2`).
    pub ethertype_offset: usize,
    /// Number of tags skipped: 0, 1 or 2.
    pub vlan_count: u8,
}

/// Is `ethertype` a VLAN tag protocol identifier l4lb understands?
#[inline]
pub fn is_tag(ethertype: u16) -> bool {
    ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ
}

/// Parse the Ethernet header and up to two VLAN tags.
///
/// Checks: the frame holds the 14-byte header and every tag announced; at most two tags.
#[inline]
pub fn parse_l2(frame: &[u8]) -> Result<L2Header> {
    if frame.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let mut ethertype_offset = HEADER_LEN - 2;
    let mut ethertype = read_u16(frame, ethertype_offset);
    let mut vlan_count = 0u8;
    while is_tag(ethertype) {
        if vlan_count == MAX_TAGS {
            return Err(WireError::TooManyTags);
        }
        ethertype_offset += TAG_LEN;
        if frame.len() < ethertype_offset + 2 {
            return Err(WireError::Truncated);
        }
        ethertype = read_u16(frame, ethertype_offset);
        vlan_count += 1;
    }
    Ok(L2Header { len: ethertype_offset + 2, ethertype, ethertype_offset, vlan_count })
}

/// A view over one tag's TCI and inner EtherType (the 4 bytes after a TPID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wrap without checking; accessors panic if the buffer is shorter than 4 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wrap after checking that the 4 bytes fit.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < TAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(VlanTag { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        self.buffer.as_ref()[field::TCI] >> 5
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.buffer.as_ref()[field::TCI] & 0x10 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI) & 0x0fff
    }

    /// The EtherType after this tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[TAG_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    #[inline]
    pub fn set_tci(&mut self, pcp: u8, dei: bool, vid: u16) {
        let tci = (u16::from(pcp & 7) << 13) | (u16::from(dei) << 12) | (vid & 0x0fff);
        write_u16(self.buffer.as_mut(), field::TCI, tci);
    }

    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::super::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
    use super::*;

    fn frame(types: &[u16]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for (i, t) in types.iter().enumerate() {
            f.extend_from_slice(&t.to_be_bytes());
            if i + 1 < types.len() {
                f.extend_from_slice(&(0xa000u16 | (100 + i as u16)).to_be_bytes());
            }
        }
        f.extend_from_slice(&[0x45, 0, 0, 20]);
        f
    }

    #[test]
    fn untagged_single_double() {
        let h = parse_l2(&frame(&[ETHERTYPE_IPV4])).unwrap();
        assert_eq!(h, L2Header { len: 14, ethertype: ETHERTYPE_IPV4, ethertype_offset: 12, vlan_count: 0 });
        let h = parse_l2(&frame(&[ETHERTYPE_VLAN, ETHERTYPE_IPV6])).unwrap();
        assert_eq!(h, L2Header { len: 18, ethertype: ETHERTYPE_IPV6, ethertype_offset: 16, vlan_count: 1 });
        let f = frame(&[ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_ARP]);
        let h = parse_l2(&f).unwrap();
        assert_eq!(h, L2Header { len: 22, ethertype: ETHERTYPE_ARP, ethertype_offset: 20, vlan_count: 2 });
        let outer = VlanTag::new_checked(&f[14..]).unwrap();
        assert_eq!((outer.pcp(), outer.dei(), outer.vid(), outer.ethertype()), (5, false, 100, ETHERTYPE_VLAN));
        let inner = VlanTag::new_checked(&f[18..]).unwrap();
        assert_eq!((inner.vid(), inner.ethertype()), (101, ETHERTYPE_ARP));
    }

    #[test]
    fn three_tags_rejected() {
        let f = frame(&[ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_VLAN, ETHERTYPE_IPV4]);
        assert_eq!(parse_l2(&f), Err(WireError::TooManyTags));
    }

    #[test]
    fn truncated_at_every_length() {
        let f = frame(&[ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_IPV4]);
        for n in 0..22 {
            assert_eq!(parse_l2(&f[..n]), Err(WireError::Truncated), "length {n}");
        }
        assert!(parse_l2(&f[..22]).is_ok());
        for n in 0..TAG_LEN {
            assert!(VlanTag::new_checked(&f[14..14 + n]).is_err());
        }
    }

    #[test]
    fn tci_setter() {
        let mut b = [0u8; 4];
        let mut t = VlanTag::new_checked(&mut b[..]).unwrap();
        t.set_tci(7, true, 0xfff);
        t.set_ethertype(ETHERTYPE_IPV4);
        assert_eq!((t.pcp(), t.dei(), t.vid(), t.ethertype()), (7, true, 0xfff, ETHERTYPE_IPV4));
        assert!(t.payload().is_empty());
    }
}
