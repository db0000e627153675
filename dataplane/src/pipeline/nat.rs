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
use common::snapshot::{BackendEntry, NodeInfo, VipEntry};
use common::wire::{ipv4, tcp, udp};

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

/// Whether the IPv4 header at `l3` (its length from its IHL) has a right checksum.
#[inline]
pub fn ipv4_checksum_ok(data: &[u8], l3: usize) -> bool {
    data.get(l3..).is_some_and(|h| ipv4::Ipv4Packet::new_quoted(h).is_ok_and(|ip| ip.verify_checksum()))
}

/// Whether the TTL / hop limit of the IP header at `l3` would leave as 0: what a
/// router drops a packet for before anything else.
#[inline]
pub fn ttl_runs_out(data: &[u8], l3: usize, v4: bool) -> bool {
    data.get(l3 + if v4 { V4_TTL } else { V6_HOP }).is_none_or(|&t| t <= 1)
}

/// Decrement the TTL / hop limit of the IP header at `l3`, keeping the IPv4
/// header checksum valid. As a router does before it forwards, an IPv4 header with a
/// wrong checksum is dropped: the incremental updates of a rewrite would carry the
/// error into a header that l4lb sends as its own.
#[inline]
pub fn decrement_ttl(data: &mut [u8], l3: usize, v4: bool) -> Result<(), DropReason> {
    if v4 {
        if !ipv4_checksum_ok(data, l3) {
            return Err(DropReason::Ipv4BadChecksum);
        }
        if ttl_runs_out(data, l3, true) {
            return Err(DropReason::TtlExpired);
        }
        let ttl = data[l3 + V4_TTL];
        let proto = data[l3 + V4_TTL + 1];
        let old = u16::from_be_bytes([ttl, proto]);
        let new = u16::from_be_bytes([ttl - 1, proto]);
        data[l3 + V4_TTL] = ttl - 1;
        let c = u16::from_be_bytes([data[l3 + V4_CSUM], data[l3 + V4_CSUM + 1]]);
        let c = checksum::update_u16(c, old, new);
        data[l3 + V4_CSUM..l3 + V4_CSUM + 2].copy_from_slice(&c.to_be_bytes());
    } else {
        if ttl_runs_out(data, l3, false) {
            return Err(DropReason::TtlExpired);
        }
        data[l3 + V6_HOP] -= 1;
    }
    Ok(())
}

/// Replace the address at `off` (4 or 16 bytes, the length of `new`), returning the
/// old one. In an IPv4 header at `l3`, pass `Some(l3)` to keep its checksum valid.
#[inline]
pub fn swap_addr(data: &mut [u8], off: usize, new: &[u8], ipv4_header: Option<usize>) -> [u8; 16] {
    let n = new.len();
    let mut old = [0u8; 16];
    old[..n].copy_from_slice(&data[off..off + n]);
    data[off..off + n].copy_from_slice(new);
    if let Some(l3) = ipv4_header {
        let c = u16::from_be_bytes([data[l3 + V4_CSUM], data[l3 + V4_CSUM + 1]]);
        let c = checksum::update_bytes(c, &old[..n], new);
        data[l3 + V4_CSUM..l3 + V4_CSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
    old
}

/// After an address change in the pseudo-header (`old_addr` to `new_addr`), set the
/// port at `l4 + port_at` (0: source, 2: destination) to `port` (`None`: keep it) and
/// update the TCP/UDP checksum, when it lies before `end` (a quote may stop short).
/// RFC 768: an IPv4 UDP checksum of zero means "none" and stays so.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn rewrite_transport(
    data: &mut [u8],
    l4: usize,
    end: usize,
    proto: u8,
    v4: bool,
    port_at: usize,
    old_addr: &[u8],
    new_addr: &[u8],
    port: Option<u16>,
) {
    let port_off = l4 + port_at;
    if port_off + 2 > end {
        return;
    }
    let old_port = u16::from_be_bytes([data[port_off], data[port_off + 1]]);
    let new_port = port.unwrap_or(old_port);
    data[port_off..port_off + 2].copy_from_slice(&new_port.to_be_bytes());
    let csum_off = l4 + if proto == proto::TCP { tcp::CHECKSUM_OFFSET } else { udp::CHECKSUM_OFFSET };
    if csum_off + 2 > end {
        return;
    }
    let old_c = u16::from_be_bytes([data[csum_off], data[csum_off + 1]]);
    if proto == proto::UDP && v4 && old_c == 0 {
        return;
    }
    let mut c = checksum::update_bytes(old_c, old_addr, new_addr);
    c = checksum::update_u16(c, old_port, new_port);
    if proto == proto::UDP {
        c = checksum::udp_checksum_field(c);
    }
    data[csum_off..csum_off + 2].copy_from_slice(&c.to_be_bytes());
}

/// The port a DNAT request is rewritten to: the backend's, except for a port-0 VIP
/// whose backend has no port of its own (the packet keeps its port).
#[inline]
pub fn backend_port(vip: &VipEntry, backend: &BackendEntry) -> Option<u16> {
    if vip.port == 0 && backend.port == 0 { None } else { Some(backend.port) }
}

/// The port a DNAT reply is rewritten to: the VIP's, or kept for a port-0 VIP.
#[inline]
pub fn vip_port(vip: &VipEntry) -> Option<u16> {
    if vip.port == 0 { None } else { Some(vip.port) }
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
    let (v4b, v6b);
    let (new, off, ipv4_header): (&[u8], usize, Option<usize>) = match (addr, end) {
        (IpAddr::V4(a), End::Source) if v4 => {
            v4b = a.octets();
            (&v4b, l3 + V4_SRC, Some(l3))
        }
        (IpAddr::V4(a), End::Destination) if v4 => {
            v4b = a.octets();
            (&v4b, l3 + V4_DST, Some(l3))
        }
        (IpAddr::V6(a), End::Source) if !v4 => {
            v6b = a.octets();
            (&v6b, l3 + V6_SRC, None)
        }
        (IpAddr::V6(a), End::Destination) if !v4 => {
            v6b = a.octets();
            (&v6b, l3 + V6_DST, None)
        }
        // Families differ: the configuration check forbids it.
        _ => return Err(DropReason::NoBackend),
    };
    let old = swap_addr(data, off, new, ipv4_header);
    // Transport header: only TCP/UDP that carries its header here (not a later fragment).
    if p.frag != Frag::Later && (p.proto == proto::TCP || p.proto == proto::UDP) {
        let port_at = if end == End::Source { 0 } else { 2 };
        rewrite_transport(data, p.l4_off, l3 + p.ip_len, p.proto, v4, port_at, &old[..new.len()], new, port);
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
