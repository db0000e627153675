//! IPv6 fixed header (RFC 8200 section 3). Extension headers: [`super::ipv6_ext`].
//!
//! `new_checked` checks: the buffer holds 40 bytes (`Truncated`); version is 6 (`BadVersion`);
//! payload length is not 0 (`BadPayloadLength`: a zero payload length announces a jumbogram,
//! RFC 2675, which l4lb does not forward); 40 + payload length <= buffer length (`Truncated`).
//! The buffer may be longer (Ethernet padding): [`Ipv6Packet::payload`] stops at the payload length.

use std::net::Ipv6Addr;

use super::{Result, WireError, clamped, clamped_mut, read_array, read_u16, read_u32, write_u16, write_u32};

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
    pub const PAYLOAD: usize = 40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view over an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap without checking; accessors panic if the buffer is shorter than 40 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wrap after the checks listed in the module documentation.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_quoted(buffer)?;
        let plen = p.payload_len();
        // RFC 2675 section 3: "the Payload Length field in the IPv6 header must be set to zero in
        // every packet that carries the Jumbo Payload option". l4lb forwards no jumbograms.
        if plen == 0 {
            return Err(WireError::BadPayloadLength);
        }
        if HEADER_LEN + usize::from(plen) > p.buffer.as_ref().len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// Wrap a packet that may be cut short after its fixed header, such as the packet quoted
    /// in an ICMPv6 error. Checks only the length (40) and the version;
    /// [`payload`](Self::payload) stops at the end of the buffer.
    #[inline]
    pub fn new_quoted(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_TC_FLOW] >> 4 != 6 {
            return Err(WireError::BadVersion);
        }
        Ok(Ipv6Packet { buffer })
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
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class (DSCP + ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (read_u16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src_bytes())
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst_bytes())
    }

    #[inline]
    pub fn src_bytes(&self) -> [u8; 16] {
        read_array(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn dst_bytes(&self) -> [u8; 16] {
        read_array(self.buffer.as_ref(), field::DST)
    }

    /// Everything after the fixed header up to the payload length (extension headers included),
    /// or up to the buffer end for a view made by `new_quoted`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, HEADER_LEN + usize::from(self.payload_len()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Write version 6, traffic class and flow label (the first 4 bytes).
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, v);
    }

    #[inline]
    pub fn set_traffic_class(&mut self, traffic_class: u8) {
        let fl = self.flow_label();
        let version = u32::from(self.version());
        let v = (version << 28) | (u32::from(traffic_class) << 20) | fl;
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, v);
    }

    #[inline]
    pub fn set_flow_label(&mut self, flow_label: u32) {
        let head = read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0xfff0_0000;
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, head | (flow_label & 0x000f_ffff));
    }

    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline]
    pub fn set_next_header(&mut self, next: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&addr);
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&addr);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let plen = usize::from(self.payload_len());
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, HEADER_LEN + plen)
    }
}

/// The fields of an IPv6 header l4lb builds (outer header of IP-in-IP/GRE, ICMPv6 errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits; higher bits are dropped by `emit`.
    pub flow_label: u32,
    /// Bytes after the fixed header; must fit in 16 bits.
    pub payload_len: usize,
}

impl Ipv6Repr {
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header: packet.next_header(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
            payload_len: usize::from(packet.payload_len()),
        }
    }

    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the 40-byte header into `buf[..40]`.
    ///
    /// # Panics
    /// If `buf` is shorter than 40 bytes (the caller sizes its own buffer).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src.octets());
        p.set_dst_addr(self.dst.octets());
    }
}

impl<'a> Ipv6Packet<&'a [u8]> {
    /// The payload with the lifetime of the underlying buffer (see [`payload`](Self::payload)).
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        clamped(self.buffer, HEADER_LEN, HEADER_LEN + usize::from(self.payload_len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let r = Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: 17,
            hop_limit: 63,
            traffic_class: 0xb8,
            flow_label: 0xabcde,
            payload_len: 8,
        };
        let mut b = vec![0u8; 50]; // 40 + 8 + 2 bytes padding
        r.emit(&mut b);
        b
    }

    #[test]
    fn parse_valid() {
        let b = sample();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0xabcde);
        assert_eq!((p.payload_len(), p.next_header(), p.hop_limit()), (8, 17, 63));
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_bytes()[15], 2);
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn truncated_at_every_length() {
        let b = sample();
        for n in 0..48 {
            assert_eq!(Ipv6Packet::new_checked(&b[..n]), Err(WireError::Truncated), "length {n}");
        }
        for n in 0..40 {
            assert!(Ipv6Packet::new_quoted(&b[..n]).is_err());
        }
        assert_eq!(Ipv6Packet::new_quoted(&b[..44]).unwrap().payload().len(), 4);
    }

    #[test]
    fn malformed() {
        let mut b = sample();
        b[0] = 0x40;
        assert_eq!(Ipv6Packet::new_checked(&b[..]), Err(WireError::BadVersion));
        b[0] = 0x6b;
        b[4] = 0;
        b[5] = 0;
        assert_eq!(Ipv6Packet::new_checked(&b[..]), Err(WireError::BadPayloadLength));
        b[5] = 11; // past the frame
        assert_eq!(Ipv6Packet::new_checked(&b[..]), Err(WireError::Truncated));
    }

    #[test]
    fn setters() {
        let mut b = sample();
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_traffic_class(0x01);
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0x01, 0xabcde));
        p.set_flow_label(0x12345);
        assert_eq!((p.traffic_class(), p.flow_label()), (0x01, 0x12345));
        p.set_hop_limit(1);
        p.set_next_header(6);
        p.set_src_addr([0xfe; 16]);
        p.set_dst_addr([0xfd; 16]);
        p.set_payload_len(4);
        assert_eq!(p.payload_mut().len(), 4);
        let r = Ipv6Repr::parse(&p);
        assert_eq!((r.hop_limit, r.next_header, r.payload_len), (1, 6, 4));
        assert_eq!(r.src.octets(), [0xfe; 16]);
    }
}
