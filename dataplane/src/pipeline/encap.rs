//! Stage 5a, encapsulate: GRE or IPIP towards the backend (direct server return).
//!
//! The frame grows at the front by the tunnel overhead (into the buffer's
//! headroom, no copy of the payload): the Ethernet header (and VLAN tags) moves
//! forward, the outer IP header (backend's family) and the GRE header are written
//! between it and the untouched inner packet. Contract: outer source the node's
//! address, TTL/hop limit 64, DSCP/ECN copied from the inner header, DF set; GRE
//! is the plain 4-byte header; Ethernet padding after the inner packet is removed.

use std::net::IpAddr;

use common::flow::{FlowKey, proto};
use common::hash;
use common::snapshot::NodeInfo;
use common::wire::{ethernet, gre::GreRepr, ipv4, ipv4::Ipv4Repr, ipv6, ipv6::Ipv6Repr};

use super::parse::Parsed;
use crate::port::PacketBuf;

/// Tunnel kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tunnel {
    Gre,
    Ipip,
}

/// Why a packet could not be encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// The result would exceed the MTU; `mtu` is what the inner packet may be.
    TooBig {
        inner_mtu: u16,
    },
    NoHeadroom,
    NoSource,
}

/// Bytes a tunnel adds for a backend of this family.
#[inline]
pub fn overhead(backend: &IpAddr, tunnel: Tunnel) -> usize {
    let outer = if backend.is_ipv4() { ipv4::HEADER_LEN } else { ipv6::HEADER_LEN };
    outer + if tunnel == Tunnel::Gre { 4 } else { 0 }
}

/// Move the L2 header (`l2` bytes at `from`) to the front of the frame. The common
/// untagged case is a fixed 14-byte copy the compiler does in two moves, instead of
/// a `memmove` call.
#[inline(always)]
pub fn move_l2_forward(data: &mut [u8], from: usize, l2: usize) {
    if l2 == 14 && data.len() >= from + 14 {
        let mut h = [0u8; 14];
        h.copy_from_slice(&data[from..from + 14]);
        data[..14].copy_from_slice(&h);
    } else {
        data.copy_within(from..from + l2, 0);
    }
}

/// Rewrite the Ethernet addresses of an outgoing frame: to the gateway, from us.
#[inline]
pub fn set_l2(frame: &mut [u8], node: &NodeInfo) {
    let mut eth = ethernet::EthernetFrame::new_unchecked(frame);
    eth.set_dst_addr(node.gateway_mac);
    eth.set_src_addr(node.mac);
}

/// Encapsulate the packet in place.
#[inline]
pub fn encapsulate<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed,
    node: &NodeInfo,
    backend: &IpAddr,
    tunnel: Tunnel,
) -> Result<(), EncapError> {
    let inner_len = p.ip_len;
    let l2 = p.l2_len;
    let overhead = overhead(backend, tunnel);
    let mtu = usize::from(node.mtu);
    if inner_len + overhead > mtu {
        return Err(EncapError::TooBig { inner_mtu: (mtu.saturating_sub(overhead)) as u16 });
    }
    let gre_len = if tunnel == Tunnel::Gre { 4 } else { 0 };
    let inner_ethertype = if p.is_v4() { ethernet::ETHERTYPE_IPV4 } else { ethernet::ETHERTYPE_IPV6 };
    let (outer_ethertype, outer_len) = match backend {
        IpAddr::V4(_) => (ethernet::ETHERTYPE_IPV4, ipv4::HEADER_LEN),
        IpAddr::V6(_) => (ethernet::ETHERTYPE_IPV6, ipv6::HEADER_LEN),
    };
    let outer_proto = match (tunnel, p.is_v4()) {
        (Tunnel::Gre, _) => proto::GRE,
        (Tunnel::Ipip, true) => proto::IPIP,
        (Tunnel::Ipip, false) => proto::IPV6,
    };
    // Validate the source before touching the buffer.
    match backend {
        IpAddr::V4(_) if node.ipv4.is_none() => return Err(EncapError::NoSource),
        IpAddr::V6(_) if node.ipv6.is_none() => return Err(EncapError::NoSource),
        _ => {}
    }
    buf.truncate(l2 + inner_len);
    if !buf.prepend(overhead) {
        return Err(EncapError::NoHeadroom);
    }
    let data = buf.data_mut();
    move_l2_forward(data, overhead, l2);
    data[p.ethertype_off..p.ethertype_off + 2].copy_from_slice(&outer_ethertype.to_be_bytes());
    set_l2(data, node);
    let payload_len = gre_len + inner_len;
    match (backend, node.ipv4, node.ipv6) {
        (IpAddr::V4(dst), Some(src), _) => {
            Ipv4Repr {
                src,
                dst: *dst,
                protocol: outer_proto,
                ttl: 64,
                dscp_ecn: p.tos,
                ident: 0,
                dont_frag: true,
                payload_len,
            }
            .emit(&mut data[l2..l2 + outer_len]);
        }
        (IpAddr::V6(dst), _, Some(src)) => {
            Ipv6Repr {
                src,
                dst: *dst,
                next_header: outer_proto,
                hop_limit: 64,
                traffic_class: p.tos,
                flow_label: flow_label(&p.key),
                payload_len,
            }
            .emit(&mut data[l2..l2 + outer_len]);
        }
        _ => return Err(EncapError::NoSource),
    }
    if tunnel == Tunnel::Gre {
        GreRepr { protocol: inner_ethertype }.emit(&mut data[l2 + outer_len..l2 + outer_len + 4]);
    }
    Ok(())
}

/// RFC 6438: the outer flow label is a hash of the inner flow, so that ECMP on the
/// way to the backend keeps a flow on one path.
#[inline]
fn flow_label(key: &FlowKey) -> u32 {
    let h = match key {
        FlowKey::V4(k) => hash::hash_5tuple_v4(k),
        FlowKey::V6(k) => hash::hash_5tuple_v6(k),
    };
    (h as u32) & 0x000f_ffff
}
