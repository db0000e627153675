//! Prebuilt outer headers for GRE and IPIP encapsulation.
//!
//! Everything in the headers l4lb puts in front of a packet sent to a GRE/IPIP
//! backend is fixed per (node, backend, tunnel kind) except the lengths, the
//! DSCP/ECN byte, the inner protocol and (IPv6) the flow label. The snapshot
//! builds one [`OuterHeader`] per backend; encapsulation copies it in one fixed-size
//! move and patches those few fields, with the IPv4 header checksum finished from a
//! precomputed partial sum (the way VPP's and Katran's encap paths do it).
//!
//! Layout of [`OuterHeader::bytes`]: Ethernet (14: gateway MAC, node MAC, outer
//! ethertype), the outer IP header (20 or 40), then the GRE header (4) for GRE.

use std::net::IpAddr;

use crate::checksum;
use crate::flow::proto;
use crate::snapshot::NodeInfo;
use crate::wire::{ethernet, gre::GreRepr, ipv4, ipv4::Ipv4Repr, ipv6, ipv6::Ipv6Repr};

/// Hop limit / TTL of the outer header (contract: 64).
pub const OUTER_TTL: u8 = 64;
/// Longest header: Ethernet + IPv6 + GRE.
pub const MAX_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + 4;

/// Which family and tunnel an [`OuterHeader`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// IPv4 outer header, GRE (38 bytes with Ethernet).
    V4Gre,
    /// IPv4 outer header, IPIP (34 bytes).
    V4Ipip,
    /// IPv6 outer header, GRE (58 bytes).
    V6Gre,
    /// IPv6 outer header, IPIP / IPv6-in-IPv6 (54 bytes).
    V6Ipip,
    /// The node has no source address of the backend's family: cannot encapsulate.
    NoSource,
}

impl Shape {
    /// Bytes the tunnel adds in front of the inner IP packet (outer IP + GRE).
    #[inline]
    pub fn overhead(self) -> usize {
        match self {
            Shape::V4Gre => ipv4::HEADER_LEN + 4,
            Shape::V4Ipip => ipv4::HEADER_LEN,
            Shape::V6Gre => ipv6::HEADER_LEN + 4,
            Shape::V6Ipip => ipv6::HEADER_LEN,
            Shape::NoSource => 0,
        }
    }
}

/// The headers in front of every packet encapsulated to one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterHeader {
    /// Ethernet + outer IP (+ GRE), with the per-packet fields zero.
    pub bytes: [u8; MAX_LEN],
    pub shape: Shape,
    /// IPv4: one's-complement sum (unfolded) of the outer header's 16-bit words that
    /// do not change per packet (identification, flags, addresses).
    pub sum: u32,
}

impl OuterHeader {
    /// The header for `backend` from `node`, GRE or IPIP.
    pub fn new(node: &NodeInfo, backend: IpAddr, gre: bool) -> OuterHeader {
        let mut bytes = [0u8; MAX_LEN];
        let eth = ethernet::HEADER_LEN;
        bytes[0..6].copy_from_slice(&node.gateway_mac);
        bytes[6..12].copy_from_slice(&node.mac);
        let gre_len = if gre { 4 } else { 0 };
        let (shape, sum) = match (backend, node.ipv4, node.ipv6) {
            (IpAddr::V4(dst), Some(src), _) => {
                bytes[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
                let repr =
                    Ipv4Repr { src, dst, protocol: 0, ttl: 0, dscp_ecn: 0, ident: 0, dont_frag: true, payload_len: 0 };
                repr.emit(&mut bytes[eth..eth + ipv4::HEADER_LEN]);
                // Per packet: version/IHL/TOS, total length, TTL/protocol and the checksum.
                for i in [0, 2, 8, 10] {
                    bytes[eth + i] = 0;
                    bytes[eth + i + 1] = 0;
                }
                let sum = u32::from(0x4000u16) + words_sum(&src.octets()) + words_sum(&dst.octets());
                (if gre { Shape::V4Gre } else { Shape::V4Ipip }, sum)
            }
            (IpAddr::V6(dst), _, Some(src)) => {
                bytes[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
                let repr = Ipv6Repr {
                    src,
                    dst,
                    next_header: 0,
                    hop_limit: OUTER_TTL,
                    traffic_class: 0,
                    flow_label: 0,
                    payload_len: 0,
                };
                repr.emit(&mut bytes[eth..eth + ipv6::HEADER_LEN]);
                (if gre { Shape::V6Gre } else { Shape::V6Ipip }, 0)
            }
            _ => (Shape::NoSource, 0),
        };
        if gre && shape != Shape::NoSource {
            // The inner ethertype is patched per packet.
            let at = eth + shape.overhead() - gre_len;
            GreRepr { protocol: 0 }.emit(&mut bytes[at..at + 4]);
        }
        OuterHeader { bytes, shape, sum }
    }

    /// Bytes added in front of the inner IP packet (see [`Shape::overhead`]).
    #[inline]
    pub fn overhead(&self) -> usize {
        self.shape.overhead()
    }

    /// Write the headers for an inner IP packet of `inner_len` bytes (`inner_v4`:
    /// its family; `tos`: its DSCP/ECN byte; `flow_label`: the outer IPv6 flow label)
    /// to `out[..14 + overhead]`: Ethernet, outer IP, GRE. The template is copied
    /// with fixed-size moves and the varying fields are stored over it (never read
    /// back, so no store-to-load forwarding stall). Returns the bytes written (0
    /// for [`Shape::NoSource`]).
    ///
    /// # Panics
    /// If `out` is shorter than `14 + overhead` (the caller sized it).
    #[inline(always)]
    pub fn write(&self, out: &mut [u8], inner_v4: bool, tos: u8, inner_len: usize, flow_label: u32) -> usize {
        fn head<const H: usize>(out: &mut [u8]) -> &mut [u8; H] {
            out.first_chunk_mut().expect("the caller sized the frame for the outer header")
        }
        match self.shape {
            Shape::V4Gre => self.write_to::<V4_GRE>(head(out), inner_v4, tos, inner_len, flow_label),
            Shape::V4Ipip => self.write_to::<V4_IPIP>(head(out), inner_v4, tos, inner_len, flow_label),
            Shape::V6Gre => self.write_to::<V6_GRE>(head(out), inner_v4, tos, inner_len, flow_label),
            Shape::V6Ipip => self.write_to::<V6_IPIP>(head(out), inner_v4, tos, inner_len, flow_label),
            Shape::NoSource => 0,
        }
    }

    /// [`OuterHeader::write`] for a caller that has matched on the shape already:
    /// `H` is `14 + overhead` of this header's shape ([`V4_GRE`], [`V4_IPIP`],
    /// [`V6_GRE`] or [`V6_IPIP`]), so that every length, offset and family test is a
    /// constant. Returns `H`.
    #[inline(always)]
    pub fn write_to<const H: usize>(
        &self,
        out: &mut [u8; H],
        inner_v4: bool,
        tos: u8,
        inner_len: usize,
        flow_label: u32,
    ) -> usize {
        const E: usize = ethernet::HEADER_LEN;
        debug_assert_eq!(H, E + self.shape.overhead());
        let outer_v4 = H == V4_GRE || H == V4_IPIP;
        let gre = H == V4_GRE || H == V6_GRE;
        let inner_ethertype = if inner_v4 { ethernet::ETHERTYPE_IPV4 } else { ethernet::ETHERTYPE_IPV6 };
        let ipip_proto = if inner_v4 { proto::IPIP } else { proto::IPV6 };
        let protocol = if gre { proto::GRE } else { ipip_proto };
        // H <= MAX_LEN for the four shapes: the template always has H bytes.
        if let Some(t) = self.bytes.first_chunk::<H>() {
            out.copy_from_slice(t);
        }
        if gre {
            out[H - 2..].copy_from_slice(&inner_ethertype.to_be_bytes());
        }
        if outer_v4 {
            let total = (H - E + inner_len) as u16;
            let w0 = 0x4500 | u16::from(tos);
            let w4 = (u16::from(OUTER_TTL) << 8) | u16::from(protocol);
            let sum = self.sum + u32::from(w0) + u32::from(total) + u32::from(w4);
            let csum = !checksum::fold(u64::from(sum));
            out[E..E + 4].copy_from_slice(&((u32::from(w0) << 16) | u32::from(total)).to_be_bytes());
            out[E + 8..E + 12].copy_from_slice(&((u32::from(w4) << 16) | u32::from(csum)).to_be_bytes());
        } else {
            let payload = (H - E - ipv6::HEADER_LEN + inner_len) as u16;
            let w0 = (6u32 << 28) | (u32::from(tos) << 20) | (flow_label & 0x000f_ffff);
            out[E..E + 4].copy_from_slice(&w0.to_be_bytes());
            out[E + 4..E + 6].copy_from_slice(&payload.to_be_bytes());
            out[E + 6] = protocol;
        }
        H
    }
}

/// Header lengths (Ethernet included) of the four shapes, for [`OuterHeader::write_to`].
pub const V4_GRE: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + 4;
pub const V4_IPIP: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
pub const V6_GRE: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + 4;
pub const V6_IPIP: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN;

/// Sum of the 16-bit big-endian words of 4 bytes.
fn words_sum(b: &[u8; 4]) -> u32 {
    u32::from(u16::from_be_bytes([b[0], b[1]])) + u32::from(u16::from_be_bytes([b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::gre::GrePacket;
    use crate::wire::ipv4::Ipv4Packet;
    use crate::wire::ipv6::Ipv6Packet;
    use proptest::prelude::*;

    fn node() -> NodeInfo {
        NodeInfo {
            mac: [2, 0, 0, 0, 0, 1],
            gateway_mac: [2, 0, 0, 0, 0, 0xfe],
            ipv4: Some("10.0.0.2".parse().unwrap()),
            ipv6: Some("fd00::2".parse().unwrap()),
            mtu: 1500,
        }
    }

    /// The same headers written field by field with the wire builders.
    fn reference(node: &NodeInfo, backend: IpAddr, gre: bool, inner_v4: bool, tos: u8, len: usize, fl: u32) -> Vec<u8> {
        let mut out = vec![0u8; MAX_LEN];
        out[0..6].copy_from_slice(&node.gateway_mac);
        out[6..12].copy_from_slice(&node.mac);
        let inner_type = if inner_v4 { ethernet::ETHERTYPE_IPV4 } else { ethernet::ETHERTYPE_IPV6 };
        let gre_len = if gre { 4 } else { 0 };
        let protocol = match (gre, inner_v4) {
            (true, _) => proto::GRE,
            (false, true) => proto::IPIP,
            (false, false) => proto::IPV6,
        };
        let ip_len = match backend {
            IpAddr::V4(dst) => {
                out[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
                Ipv4Repr {
                    src: node.ipv4.unwrap(),
                    dst,
                    protocol,
                    ttl: 64,
                    dscp_ecn: tos,
                    ident: 0,
                    dont_frag: true,
                    payload_len: gre_len + len,
                }
                .emit(&mut out[14..34]);
                20
            }
            IpAddr::V6(dst) => {
                out[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
                Ipv6Repr {
                    src: node.ipv6.unwrap(),
                    dst,
                    next_header: protocol,
                    hop_limit: 64,
                    traffic_class: tos,
                    flow_label: fl & 0xfffff,
                    payload_len: gre_len + len,
                }
                .emit(&mut out[14..54]);
                40
            }
        };
        if gre {
            GreRepr { protocol: inner_type }.emit(&mut out[14 + ip_len..18 + ip_len]);
        }
        out.truncate(14 + ip_len + gre_len);
        out
    }

    proptest! {
        #[test]
        fn template_equals_field_by_field_headers(
            v4_backend: bool, gre: bool, inner_v4: bool, tos: u8, len in 20usize..9000, fl: u32,
            b4: [u8; 4], b6: [u8; 16],
        ) {
            let n = node();
            let backend = if v4_backend { IpAddr::from(b4) } else { IpAddr::from(b6) };
            let h = OuterHeader::new(&n, backend, gre);
            let mut out = [0xaau8; MAX_LEN];
            let written = h.write(&mut out, inner_v4, tos, len, fl);
            let want = reference(&n, backend, gre, inner_v4, tos, len, fl);
            prop_assert_eq!(written, want.len());
            prop_assert_eq!(&out[..written], &want[..]);
            prop_assert_eq!(written, 14 + h.overhead());
            if v4_backend {
                let ip = Ipv4Packet::new_unchecked(&out[14..34]);
                prop_assert!(ip.verify_checksum());
            }
        }
    }

    #[test]
    fn no_source_address_of_the_backend_family() {
        let mut n = node();
        n.ipv6 = None;
        let h = OuterHeader::new(&n, "2001:db8::1".parse().unwrap(), true);
        assert_eq!(h.shape, Shape::NoSource);
        assert_eq!(h.write(&mut [0u8; MAX_LEN], true, 0, 100, 0), 0);
        let h4 = OuterHeader::new(&n, "10.1.0.1".parse().unwrap(), true);
        assert_eq!(h4.shape, Shape::V4Gre);
        assert_eq!(h4.overhead(), 24);
    }

    #[test]
    fn gre_header_carries_the_inner_ethertype() {
        let h = OuterHeader::new(&node(), "2001:db8::7".parse().unwrap(), true);
        let mut out = [0u8; MAX_LEN];
        let n = h.write(&mut out, false, 0, 60, 0x12345);
        assert_eq!(n, 58);
        let ip = Ipv6Packet::new_unchecked(&out[14..54]);
        assert_eq!(ip.next_header(), proto::GRE);
        assert_eq!(ip.payload_len(), 64);
        assert_eq!(ip.flow_label(), 0x12345);
        let g = GrePacket::new_unchecked(&out[54..58]);
        assert_eq!(g.protocol_type(), ethernet::ETHERTYPE_IPV6);
    }
}
