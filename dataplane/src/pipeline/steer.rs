//! Stage 3, steer: which worker owns a packet's flow state.
//!
//! With RSS, a NIC delivers every packet of a client-to-VIP flow to the same queue,
//! so the receiving worker owns GRE/IPIP flows and nothing moves. Two cases break
//! that, and are handed to the owning worker through single-producer rings:
//! - DNAT: the backend's reply (backend to client) hashes to another queue than the
//!   request (client to VIP). Both directions carry the client's address and port,
//!   so the owner of a DNAT connection is a hash of (client address, client port,
//!   protocol) — [`crate::rss::client_owner`] — in both directions.
//! - ICMP errors about a VIP flow come from a router, not the client: their owner is
//!   the worker the quoted flow's own packets reach (RSS of the quoted flow, or the
//!   client hash for DNAT VIPs).

use common::config::Forwarding;
use common::flow::FlowKey;
use common::snapshot::Snapshot;

use super::classify::{Class, classify};
use super::icmp::{IcmpKind, inspect};
use super::parse::{ParseOutcome, fast_v4, parse};
use crate::rss;

/// The worker owning this frame's flow, or `None` when the receiving worker does.
#[inline]
pub fn owner(frame: &[u8], snap: &Snapshot, workers: u16) -> Option<u16> {
    // Without DNAT VIPs, a TCP/UDP packet (one parse's fast path takes: untagged
    // IPv4, not a fragment) is a GRE/IPIP VIP's or the host's: it stays. Only ICMP
    // and the rest need the full answer. (What the worker asks of every packet of
    // every burst when it has company: a few compares instead of parse and classify.)
    if !snap.has_dnat() && fast_v4(frame).is_some() {
        return None;
    }
    owner_general(frame, snap, workers)
}

/// [`owner`] without the shortcut: parse, classify, and the owner by class.
#[inline]
pub(super) fn owner_general(frame: &[u8], snap: &Snapshot, workers: u16) -> Option<u16> {
    let ParseOutcome::Ip(p) = parse(frame) else { return None };
    match classify(&p, snap) {
        Class::Vip(v) if snap.vips[usize::from(v)].forwarding == Forwarding::Dnat => {
            Some(client_end_owner(&p.key, true, workers))
        }
        Class::DnatReply => Some(client_end_owner(&p.key, false, workers)),
        Class::IcmpToVip => match inspect(frame, &p) {
            Ok(IcmpKind::Error { flow, .. }) => {
                let vip = match &flow {
                    FlowKey::V4(k) => snap.lookup_vip_v4(k.dst, k.dst_port, k.proto),
                    FlowKey::V6(k) => snap.lookup_vip_v6(k.dst, k.dst_port, k.proto),
                }?;
                if snap.vips[usize::from(vip)].forwarding == Forwarding::Dnat {
                    Some(client_end_owner(&flow, true, workers))
                } else {
                    Some(rss_queue(&flow, workers))
                }
            }
            _ => None,
        },
        // An ICMP error about a packet sent to a DNAT backend: the worker holding
        // that flow's reply entry (the client's end decides).
        Class::IcmpToOther => match inspect(frame, &p) {
            Ok(IcmpKind::Error { flow, .. }) if is_dnat_backend_end(&flow, snap) => {
                Some(client_end_owner(&flow, false, workers))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Whether `flow`'s source is the endpoint of a DNAT backend (its reply direction).
#[inline]
pub fn is_dnat_backend_end(flow: &FlowKey, snap: &Snapshot) -> bool {
    match flow {
        FlowKey::V4(k) => snap.dnat_backend_v4(k.src, k.src_port, k.proto),
        FlowKey::V6(k) => snap.dnat_backend_v6(k.src, k.src_port, k.proto),
    }
}

/// Owner by the client's end: the source of a request, the destination of a reply.
#[inline]
pub fn client_end_owner(key: &FlowKey, client_is_src: bool, workers: u16) -> u16 {
    match key {
        FlowKey::V4(k) => {
            let (a, p) = if client_is_src { (k.src, k.src_port) } else { (k.dst, k.dst_port) };
            rss::client_owner(&a, p, k.proto, workers)
        }
        FlowKey::V6(k) => {
            let (a, p) = if client_is_src { (k.src, k.src_port) } else { (k.dst, k.dst_port) };
            rss::client_owner(&a, p, k.proto, workers)
        }
    }
}

/// The queue RSS gives a flow's packets.
#[inline]
pub fn rss_queue(key: &FlowKey, workers: u16) -> u16 {
    let h = match key {
        FlowKey::V4(k) => rss::hash_v4(k.src, k.dst, Some((k.src_port, k.dst_port))),
        FlowKey::V6(k) => rss::hash_v6(k.src, k.dst, Some((k.src_port, k.dst_port))),
    };
    rss::queue_of(h, workers)
}

/// The queue RSS gives a frame (what a NIC would do): addresses and ports for
/// TCP/UDP that is not a fragment, addresses only otherwise; non-IP frames to queue 0.
#[inline]
pub fn rss_queue_of_frame(frame: &[u8], workers: u16) -> u16 {
    if workers <= 1 {
        return 0;
    }
    match parse(frame) {
        ParseOutcome::Ip(p) => {
            let h = match &p.key {
                FlowKey::V4(k) => rss::hash_v4(
                    k.src,
                    k.dst,
                    if p.has_ports && p.frag == super::parse::Frag::No { Some((k.src_port, k.dst_port)) } else { None },
                ),
                FlowKey::V6(k) => rss::hash_v6(
                    k.src,
                    k.dst,
                    if p.has_ports && p.frag == super::parse::Frag::No { Some((k.src_port, k.dst_port)) } else { None },
                ),
            };
            rss::queue_of(h, workers)
        }
        _ => 0,
    }
}
