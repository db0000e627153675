//! Stage 4, select: a new flow's backend from the VIP's Maglev table.
//!
//! The table is indexed by the stable hash (`common::hash`) of the 5-tuple, or of
//! the source address for `hash = "source-ip"` VIPs, or of addresses and protocol
//! for fragments, modulo the table size. Every l4lb instance computes the same
//! table and the same hash, so they all pick the same backend for a new flow.

use common::config::HashMode;
use common::flow::FlowKey;
use common::hash;
use common::snapshot::VipEntry;

/// The Maglev entry for a flow.
#[inline]
pub fn pick(vip: &VipEntry, key: &FlowKey) -> u16 {
    let h = match (vip.hash, key) {
        (HashMode::FiveTuple, FlowKey::V4(k)) => hash::hash_5tuple_v4(k),
        (HashMode::FiveTuple, FlowKey::V6(k)) => hash::hash_5tuple_v6(k),
        (HashMode::SourceIp, FlowKey::V4(k)) => hash::hash_src_v4(k.src),
        (HashMode::SourceIp, FlowKey::V6(k)) => hash::hash_src_v6(k.src),
    };
    entry(vip, h)
}

/// The Maglev entry for a fragment: addresses and protocol only, since only the
/// first fragment carries ports (source address alone for source-ip VIPs).
#[inline]
pub fn pick_fragment(vip: &VipEntry, key: &FlowKey) -> u16 {
    let h = match (vip.hash, key) {
        (HashMode::FiveTuple, FlowKey::V4(k)) => hash::hash_3tuple_v4(k.src, k.dst, k.proto),
        (HashMode::FiveTuple, FlowKey::V6(k)) => hash::hash_3tuple_v6(k.src, k.dst, k.proto),
        (HashMode::SourceIp, FlowKey::V4(k)) => hash::hash_src_v4(k.src),
        (HashMode::SourceIp, FlowKey::V6(k)) => hash::hash_src_v6(k.src),
    };
    entry(vip, h)
}

/// `maglev::index(hash, table_size)` (documented in docs/MAGLEV.md), via the snapshot.
#[inline]
fn entry(vip: &VipEntry, h: u64) -> u16 {
    vip.select(h)
}

/// Whether an existing flow may stay on backend `slot` (`BackendEntry::keeps_flows`:
/// `up` and `drain` keep their flows whatever the weight; `down` and removed lose them).
#[inline]
pub fn keeps_flows(vip: &VipEntry, slot: u16) -> bool {
    vip.backend(slot).is_some_and(|b| b.keeps_flows())
}
