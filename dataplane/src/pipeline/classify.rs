//! Stage 2, classify: is the packet for a VIP, a DNAT reply, ICMP to a VIP, or the host's?

use std::net::IpAddr;

use common::config::Forwarding;
use common::flow::{FlowKey, FlowKeyV4, proto};
use common::snapshot::{BackendState, Snapshot};

use super::parse::{Frag, Parsed};
use crate::counters::DropReason;

/// What the packet is, for the rest of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// TCP/UDP to a VIP, not fragmented: the flow-table path.
    Vip(u16),
    /// A fragment to a VIP address: steered on addresses and protocol.
    VipFragment(u16),
    /// ICMP or ICMPv6 to a VIP address (echo, or an error quoting a VIP flow).
    IcmpToVip,
    /// ICMP or ICMPv6 to another address: the host's, unless it is an error about a
    /// packet sent to a DNAT backend (translated back to the VIP for the client).
    IcmpToOther,
    /// TCP/UDP from a DNAT backend endpoint: maybe a reply to rewrite back.
    DnatReply,
    /// A fragment from a DNAT backend address: rewritten back statelessly.
    DnatReplyFragment(u16),
    /// TCP/UDP to a GRE or IPIP VIP in the burst loop's fast lane (set by the
    /// loop, never by [`classify`]): a `Vip` whose parse result is a compact
    /// [`super::parse::FastV4`] rather than a [`Parsed`].
    TunnelV4(u16),
    /// Everything else: the host's.
    Host,
    /// Malformed (set by the burst loop from parse, never by [`classify`]): dropped
    /// for this reason.
    Malformed(DropReason),
}

/// Classify a parsed packet against the snapshot.
#[inline(always)]
pub fn classify(p: &Parsed, snap: &Snapshot) -> Class {
    let icmp = p.proto == proto::ICMP || p.proto == proto::ICMPV6;
    match &p.key {
        FlowKey::V4(k) => {
            if p.frag == Frag::No {
                if p.has_ports {
                    return classify_ports_v4(k, snap);
                }
                if p.proto == proto::ICMP {
                    return if snap.is_vip_addr_v4(k.dst) { Class::IcmpToVip } else { Class::IcmpToOther };
                }
                return Class::Host;
            }
            if icmp {
                return Class::Host;
            }
            fragment_class(snap, IpAddr::from(k.dst), IpAddr::from(k.src), k.proto)
        }
        FlowKey::V6(k) => {
            if p.frag == Frag::No {
                if p.has_ports {
                    if let Some(v) = snap.lookup_vip_v6(k.dst, k.dst_port, k.proto) {
                        return Class::Vip(v);
                    }
                    if snap.dnat_backend_v6(k.src, k.src_port, k.proto) {
                        return Class::DnatReply;
                    }
                    return Class::Host;
                }
                if p.proto == proto::ICMPV6 {
                    return if snap.is_vip_addr_v6(k.dst) { Class::IcmpToVip } else { Class::IcmpToOther };
                }
                return Class::Host;
            }
            if icmp {
                return Class::Host;
            }
            fragment_class(snap, IpAddr::from(k.dst), IpAddr::from(k.src), k.proto)
        }
    }
}

/// [`classify`] of an IPv4 TCP/UDP packet that is not a fragment (what the parse
/// fast path yields): VIP, DNAT reply or host, from the 5-tuple alone.
#[inline(always)]
pub fn classify_ports_v4(k: &FlowKeyV4, snap: &Snapshot) -> Class {
    if let Some(v) = snap.lookup_vip_v4(k.dst, k.dst_port, k.proto) {
        return Class::Vip(v);
    }
    if snap.dnat_backend_v4(k.src, k.src_port, k.proto) {
        return Class::DnatReply;
    }
    Class::Host
}

/// Fragments are rare: a linear scan of the VIPs, off the fast path.
/// The VIP of a fragment is the first active VIP (lowest index) on the destination
/// address with the packet's protocol, so that every fragment of a datagram,
/// with or without ports, resolves to the same VIP.
#[cold]
fn fragment_class(snap: &Snapshot, dst: IpAddr, src: IpAddr, proto: u8) -> Class {
    if let Some(v) = fragment_vip(snap, dst, proto) {
        return Class::VipFragment(v);
    }
    if let Some(v) = dnat_vip_of_backend(snap, src, proto) {
        return Class::DnatReplyFragment(v);
    }
    Class::Host
}

/// The VIP fragments to `dst` with protocol `proto` belong to.
pub fn fragment_vip(snap: &Snapshot, dst: IpAddr, proto: u8) -> Option<u16> {
    snap.vips.iter().position(|v| v.active && v.address == dst && v.proto_num == proto).map(|i| i as u16)
}

/// The first active DNAT VIP with a (non-removed) backend at `addr` for `proto`.
pub fn dnat_vip_of_backend(snap: &Snapshot, addr: IpAddr, proto: u8) -> Option<u16> {
    snap.vips
        .iter()
        .position(|v| {
            v.active
                && v.forwarding == Forwarding::Dnat
                && v.proto_num == proto
                && v.backends.iter().any(|b| b.address == addr && b.state != BackendState::Removed)
        })
        .map(|i| i as u16)
}
