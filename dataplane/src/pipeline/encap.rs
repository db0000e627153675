//! Stage 5a, encapsulate: GRE or IPIP towards the backend (direct server return).
//!
//! The frame grows at the front by the tunnel overhead (into the buffer's
//! headroom, no copy of the payload): the Ethernet header (and VLAN tags) moves
//! forward, the outer IP header (backend's family) and the GRE header are written
//! between it and the untouched inner packet. Contract: outer source the node's
//! address, TTL/hop limit 64, DSCP/ECN copied from the inner header, DF set; GRE
//! is the plain 4-byte header; Ethernet padding after the inner packet is removed.

use common::flow::FlowKey;
use common::hash;
use common::snapshot::NodeInfo;
use common::tunnel::{self, OuterHeader, Shape};
use common::wire::ethernet;

use super::parse::{FastV4, Parsed};
use crate::port::PacketBuf;

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

/// Encapsulate the packet in place with the backend's prebuilt outer header
/// (`common::tunnel`): the frame grows at the front by the tunnel overhead, the
/// headers are copied from the template and the lengths, DSCP/ECN, inner protocol,
/// checksum and flow label patched. VLAN tags are kept (moved forward).
#[inline(always)]
pub fn encapsulate<B: PacketBuf>(buf: &mut B, p: &Parsed, mtu: u16, outer: &OuterHeader) -> Result<(), EncapError> {
    let inner_len = p.ip_len;
    let l2 = p.l2_len;
    let overhead = outer.overhead();
    if outer.shape == Shape::NoSource {
        return Err(EncapError::NoSource);
    }
    make_room(buf, l2, inner_len, overhead, mtu)?;
    let label = if matches!(outer.shape, Shape::V6Gre | Shape::V6Ipip) { flow_label(&p.key) } else { 0 };
    let data = buf.data_mut();
    if l2 == ethernet::HEADER_LEN {
        // Untagged: the template's Ethernet header replaces the old one whole.
        outer.write(data, p.is_v4(), p.tos, inner_len, label);
    } else {
        // Tagged: keep the tags, set the addresses and the innermost ethertype, and
        // write the outer IP (+ GRE) after them.
        move_l2_forward(data, overhead, l2);
        data[..12].copy_from_slice(&outer.bytes[..12]);
        let ethertype = [outer.bytes[12], outer.bytes[13]];
        data[p.ethertype_off..p.ethertype_off + 2].copy_from_slice(&ethertype);
        let mut hdr = [0u8; tunnel::MAX_LEN];
        let n = outer.write(&mut hdr, p.is_v4(), p.tos, inner_len, label);
        data[l2..l2 + n - ethernet::HEADER_LEN].copy_from_slice(&hdr[ethernet::HEADER_LEN..n]);
    }
    Ok(())
}

/// [`encapsulate`] for the fast lane's packets (untagged Ethernet, IPv4 without
/// options, described by a [`FastV4`]): the same bytes, from one match on the
/// tunnel's shape, each arm with its lengths and offsets constant.
#[inline(always)]
pub fn encapsulate_v4_untagged<B: PacketBuf>(
    buf: &mut B,
    f: &FastV4,
    mtu: u16,
    outer: &OuterHeader,
) -> Result<(), EncapError> {
    match outer.shape {
        Shape::V4Gre => encap_v4_as::<B, { tunnel::V4_GRE }>(buf, f, mtu, outer),
        Shape::V4Ipip => encap_v4_as::<B, { tunnel::V4_IPIP }>(buf, f, mtu, outer),
        Shape::V6Gre => encap_v4_as::<B, { tunnel::V6_GRE }>(buf, f, mtu, outer),
        Shape::V6Ipip => encap_v4_as::<B, { tunnel::V6_IPIP }>(buf, f, mtu, outer),
        Shape::NoSource => Err(EncapError::NoSource),
    }
}

/// One arm of [`encapsulate_v4_untagged`]: `H` is the outer header's length with
/// Ethernet.
#[inline(always)]
fn encap_v4_as<B: PacketBuf, const H: usize>(
    buf: &mut B,
    f: &FastV4,
    mtu: u16,
    outer: &OuterHeader,
) -> Result<(), EncapError> {
    const E: usize = ethernet::HEADER_LEN;
    let inner_len = usize::from(f.ip_len);
    make_room(buf, E, inner_len, H - E, mtu)?;
    let label = if H == tunnel::V6_GRE || H == tunnel::V6_IPIP { flow_label(&FlowKey::V4(f.key())) } else { 0 };
    // The frame now holds at least E + 28 bytes of inner packet (`fast_v4`'s
    // minimum) behind the `overhead` just prepended: never `None`.
    let Some(h) = buf.data_mut().first_chunk_mut::<H>() else { return Err(EncapError::NoHeadroom) };
    outer.write_to::<H>(h, true, f.tos(), inner_len, label);
    Ok(())
}

/// The MTU check and the frame's growth that every encapsulation does: the result
/// (`overhead` + the inner packet of `inner_len` bytes) must fit `mtu`; the frame is
/// cut to its `l2` header and inner packet (Ethernet padding removed) and grown by
/// `overhead` at the front.
#[inline(always)]
fn make_room<B: PacketBuf>(
    buf: &mut B,
    l2: usize,
    inner_len: usize,
    overhead: usize,
    mtu: u16,
) -> Result<(), EncapError> {
    let mtu = usize::from(mtu);
    if inner_len + overhead > mtu {
        return Err(EncapError::TooBig { inner_mtu: (mtu.saturating_sub(overhead)) as u16 });
    }
    buf.truncate(l2 + inner_len);
    if !buf.prepend(overhead) {
        return Err(EncapError::NoHeadroom);
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
