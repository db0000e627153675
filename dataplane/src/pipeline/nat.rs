//! Stage 5b, DNAT: rewrite addresses and ports in place, with RFC 1624 incremental
//! checksum updates.
//!
//! Client to VIP: the destination becomes the backend's address and port.
//! Backend to client: the source becomes the VIP's address and port.
//! Both decrement the TTL / hop limit (a packet that would leave with 0 is dropped).
//! An IPv4 UDP checksum of 0 ("no checksum") stays 0.

use std::net::IpAddr;

use common::checksum;
use common::flow::proto;
use common::snapshot::NodeInfo;
use common::wire::{tcp, udp};

use super::encap::set_l2;
use super::parse::{Frag, Parsed};
use crate::counters::DropReason;
use crate::port::PacketBuf;

/// Which end of the packet is rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The destination (client to VIP becomes client to backend).
    Destination,
    /// The source (backend to client becomes VIP to client).
    Source,
}

/// Offsets of the address fields inside the IP header.
const V4_SRC: usize = 12;
const V4_DST: usize = 16;
const V4_TTL: usize = 8;
const V4_CSUM: usize = 10;
const V6_SRC: usize = 8;
const V6_DST: usize = 24;
const V6_HOP: usize = 7;

/// Decrement the TTL / hop limit of the IP header at `l3`, keeping the IPv4
/// header checksum valid.
#[inline]
pub fn decrement_ttl(data: &mut [u8], l3: usize, v4: bool) -> Result<(), DropReason> {
    if v4 {
        let ttl = data[l3 + V4_TTL];
        if ttl <= 1 {
            return Err(DropReason::TtlExpired);
        }
        let proto = data[l3 + V4_TTL + 1];
        let old = u16::from_be_bytes([ttl, proto]);
        let new = u16::from_be_bytes([ttl - 1, proto]);
        data[l3 + V4_TTL] = ttl - 1;
        let c = u16::from_be_bytes([data[l3 + V4_CSUM], data[l3 + V4_CSUM + 1]]);
        let c = checksum::update_u16(c, old, new);
        data[l3 + V4_CSUM..l3 + V4_CSUM + 2].copy_from_slice(&c.to_be_bytes());
    } else {
        let hop = data[l3 + V6_HOP];
        if hop <= 1 {
            return Err(DropReason::TtlExpired);
        }
        data[l3 + V6_HOP] = hop - 1;
    }
    Ok(())
}

/// Replace an address in an IP header at `l3` (IPv4 header checksum kept valid).
/// Returns the old address bytes' checksum contribution as (old, new) for the
/// caller's transport-checksum update.
#[inline]
fn set_addr(data: &mut [u8], l3: usize, v4: bool, end: End, addr: &IpAddr) {
    match (v4, addr) {
        (true, IpAddr::V4(a)) => {
            let off = l3 + if end == End::Source { V4_SRC } else { V4_DST };
            let new = a.octets();
            let mut old = [0u8; 4];
            old.copy_from_slice(&data[off..off + 4]);
            data[off..off + 4].copy_from_slice(&new);
            let c = u16::from_be_bytes([data[l3 + V4_CSUM], data[l3 + V4_CSUM + 1]]);
            let c = checksum::update_bytes(c, &old, &new);
            data[l3 + V4_CSUM..l3 + V4_CSUM + 2].copy_from_slice(&c.to_be_bytes());
        }
        (false, IpAddr::V6(a)) => {
            let off = l3 + if end == End::Source { V6_SRC } else { V6_DST };
            data[off..off + 16].copy_from_slice(&a.octets());
        }
        _ => {}
    }
}

/// Rewrite one end of a packet: address, and port when the packet carries one.
/// `data` is the frame, `p` what parse found. The transport checksum is updated
/// for the pseudo-header address change and the port change.
#[inline]
pub fn rewrite(
    data: &mut [u8],
    p: &Parsed,
    node: &NodeInfo,
    end: End,
    addr: &IpAddr,
    port: Option<u16>,
) -> Result<(), DropReason> {
    let l3 = p.l2_len;
    let v4 = p.is_v4();
    decrement_ttl(data, l3, v4)?;
    let addr_off = match (v4, end) {
        (true, End::Source) => l3 + V4_SRC,
        (true, End::Destination) => l3 + V4_DST,
        (false, End::Source) => l3 + V6_SRC,
        (false, End::Destination) => l3 + V6_DST,
    };
    let alen = if v4 { 4 } else { 16 };
    let mut old_addr = [0u8; 16];
    old_addr[..alen].copy_from_slice(&data[addr_off..addr_off + alen]);
    set_addr(data, l3, v4, end, addr);
    // Transport header: only TCP/UDP that carries its header here (not a later fragment).
    if p.frag != Frag::Later && (p.proto == proto::TCP || p.proto == proto::UDP) {
        let l4 = p.l4_off;
        let end_of_ip = p.l2_len + p.ip_len;
        let csum_off = l4 + if p.proto == proto::TCP { tcp::CHECKSUM_OFFSET } else { udp::CHECKSUM_OFFSET };
        let port_off = l4 + if end == End::Source { 0 } else { 2 };
        let old_port = u16::from_be_bytes([data[port_off], data[port_off + 1]]);
        let new_port = port.unwrap_or(old_port);
        data[port_off..port_off + 2].copy_from_slice(&new_port.to_be_bytes());
        if csum_off + 2 <= end_of_ip {
            let old_c = u16::from_be_bytes([data[csum_off], data[csum_off + 1]]);
            // RFC 768: an IPv4 UDP checksum of zero means "none": leave it so.
            let skip = p.proto == proto::UDP && v4 && old_c == 0;
            if !skip {
                let new_addr = &data[addr_off..addr_off + alen];
                let mut na = [0u8; 16];
                na[..alen].copy_from_slice(new_addr);
                let mut c = checksum::update_bytes(old_c, &old_addr[..alen], &na[..alen]);
                c = checksum::update_u16(c, old_port, new_port);
                if p.proto == proto::UDP {
                    c = checksum::udp_checksum_field(c);
                }
                data[csum_off..csum_off + 2].copy_from_slice(&c.to_be_bytes());
            }
        }
    }
    set_l2(data, node);
    Ok(())
}

/// Apply [`rewrite`] to a buffer.
#[inline]
pub fn rewrite_buf<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed,
    node: &NodeInfo,
    end: End,
    addr: &IpAddr,
    port: Option<u16>,
) -> Result<(), DropReason> {
    rewrite(buf.data_mut(), p, node, end, addr, port)
}
