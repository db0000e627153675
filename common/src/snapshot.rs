//! The forwarding snapshot: an immutable value the data plane reads, built from a
//! validated [`Config`] by a pure function and shared through `Arc` (the control plane
//! swaps in a new one; workers pick it up between bursts).
//!
//! Identities are stable across rebuilds, because flows remember them:
//! - a VIP keeps its id (index into [`Snapshot::vips`]) by **name**; a VIP that
//!   disappears stays as a tombstone (`active = false`, empty table, backends
//!   `Removed`), and gets its id back if it reappears;
//! - a backend keeps its slot (index into [`VipEntry::backends`]) by **address**; a
//!   backend that disappears stays as a tombstone ([`BackendState::Removed`]), and gets
//!   its slot back if it reappears.
//!
//! Each VIP's Maglev table maps entries to backend slots and holds only `up` backends
//! with weight > 0. Hot-path lookups ([`Snapshot::lookup_vip_v4`] etc.) are hash-map
//! probes of small open-addressing tables (`flat.rs`): no allocation, no locks.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{Config, duration_ms_ceil};
use crate::maglev::{self, MaglevBackend};
use crate::tunnel::OuterHeader;
use flat::FlatMap;

pub use crate::config::{BackendState, Forwarding, HashMode, Protocol};

/// Table entry (and flow target) meaning "no backend".
pub const NO_BACKEND: u16 = u16::MAX;
/// VIP ids are `u16`; at most this many VIPs (tombstones included) exist at once.
pub const MAX_VIPS: usize = u16::MAX as usize;

/// This load balancer on its network (from `[node]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub mac: [u8; 6],
    pub gateway_mac: [u8; 6],
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub mtu: u16,
}

/// Flow timeouts in milliseconds (rounded up from the configured durations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established_ms: u32,
    pub tcp_transitory_ms: u32,
    pub udp_ms: u32,
}

/// One backend slot of a VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendEntry {
    pub address: IpAddr,
    /// Destination port after DNAT; the VIP's port for GRE/IPIP.
    pub port: u16,
    pub weight: u32,
    pub state: BackendState,
}

impl BackendEntry {
    /// Takes new flows (and so appears in the table): `up` with weight > 0.
    #[inline]
    pub fn is_eligible(&self) -> bool {
        self.state == BackendState::Up && self.weight > 0
    }

    /// Keeps its existing flows: `up` (any weight) or `drain`. Flows of a `down` or
    /// removed backend are moved by the table.
    #[inline]
    pub fn keeps_flows(&self) -> bool {
        matches!(self.state, BackendState::Up | BackendState::Drain)
    }
}

/// One VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipEntry {
    pub name: String,
    /// False for a tombstone (the VIP was removed from the configuration).
    pub active: bool,
    pub address: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    /// IP protocol number of `protocol` (6 or 17).
    pub proto_num: u8,
    pub forwarding: Forwarding,
    pub hash: HashMode,
    pub table_size: u32,
    /// Maglev entry -> backend slot, or [`NO_BACKEND`]. Empty for a tombstone.
    pub table: Box<[u16]>,
    pub backends: Vec<BackendEntry>,
    /// GRE/IPIP VIPs: the outer headers towards each backend slot (same indices as
    /// `backends`), built from the node's addresses. Empty for DNAT VIPs.
    pub tunnels: Box<[OuterHeader]>,
}

impl VipEntry {
    /// The backend slot for a flow hash (`maglev::index` into the table), or
    /// [`NO_BACKEND`] when the VIP has no eligible backend.
    #[inline]
    pub fn select(&self, hash: u64) -> u16 {
        match self.table.len() {
            0 => NO_BACKEND,
            n => self.table[maglev::index(hash, n as u32)],
        }
    }

    #[inline]
    pub fn backend(&self, slot: u16) -> Option<&BackendEntry> {
        self.backends.get(usize::from(slot))
    }

    #[inline]
    pub fn is_dnat(&self) -> bool {
        self.forwarding == Forwarding::Dnat
    }

    fn maglev_input(&self) -> Vec<MaglevBackend> {
        self.backends
            .iter()
            .map(|b| MaglevBackend::new(b.address, if b.state == BackendState::Up { b.weight } else { 0 }))
            .collect()
    }
}

/// Keys of the lookup maps: IPv4 (address, port, protocol) packed into a `u64`;
/// IPv6 as (address, port << 8 | protocol).
type KeyV4 = u64;
type KeyV6 = (u128, u32);

#[inline(always)]
fn key_v4(addr: [u8; 4], port: u16, proto: u8) -> KeyV4 {
    (u64::from(u32::from_be_bytes(addr)) << 24) | (u64::from(port) << 8) | u64::from(proto)
}

#[inline(always)]
fn key_v6(addr: [u8; 16], port: u16, proto: u8) -> KeyV6 {
    (u128::from_be_bytes(addr), (u32::from(port) << 8) | u32::from(proto))
}

#[derive(Debug, Clone, Default)]
struct Lookup {
    vip_v4: FlatMap<KeyV4, u16>,
    vip_v6: FlatMap<KeyV6, u16>,
    addr_v4: FlatMap<u32, ()>,
    addr_v6: FlatMap<u128, ()>,
    dnat_v4: FlatMap<KeyV4, u16>,
    dnat_v6: FlatMap<KeyV6, u16>,
    /// Some active VIP forwards by DNAT.
    dnat: bool,
}

/// The immutable forwarding state. `Send + Sync`; share it as `Arc<Snapshot>`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// 1 for the first snapshot, previous + 1 after.
    pub version: u64,
    pub node: NodeInfo,
    pub timeouts: Timeouts,
    /// Indexed by VIP id.
    pub vips: Vec<VipEntry>,
    lookup: Lookup,
}

impl Snapshot {
    /// Build the snapshot of a validated configuration, keeping the VIP ids and backend
    /// slots of `prev`. Pure: the same inputs give the same snapshot. A configuration
    /// that breaks Maglev's preconditions (not validated) gives empty tables, not a panic.
    pub fn build(cfg: &Config, prev: Option<&Snapshot>) -> Snapshot {
        let version = prev.map_or(1, |p| p.version.wrapping_add(1));
        let prev_vips: &[VipEntry] = prev.map_or(&[], |p| &p.vips);
        let mut vips: Vec<VipEntry> = prev_vips.iter().map(tombstone).collect();
        let mut by_name: HashMap<&str, usize> =
            prev_vips.iter().enumerate().map(|(i, v)| (v.name.as_str(), i)).collect();
        for vc in &cfg.vips {
            let prev_entry = by_name.get(vc.name.as_str()).map(|&i| (i, &prev_vips[i]));
            let entry = build_vip(vc, prev_entry.map(|(_, v)| v));
            match prev_entry {
                Some((i, _)) => vips[i] = entry,
                None if vips.len() < MAX_VIPS => vips.push(entry),
                None => {
                    // Every id is taken: reuse a tombstone's (never an active VIP's).
                    if let Some(i) = vips.iter().position(|v| !v.active) {
                        vips[i] = entry;
                    }
                }
            }
            by_name.remove(vc.name.as_str());
        }
        let d = &cfg.dataplane;
        let n = &cfg.node;
        let node = NodeInfo { mac: n.mac, gateway_mac: n.gateway_mac, ipv4: n.ipv4, ipv6: n.ipv6, mtu: n.mtu };
        for v in &mut vips {
            v.tunnels = match v.forwarding {
                Forwarding::Dnat => Box::new([]),
                f => v.backends.iter().map(|b| OuterHeader::new(&node, b.address, f == Forwarding::Gre)).collect(),
            };
        }
        let lookup = build_lookup(&vips);
        Snapshot {
            version,
            node,
            timeouts: Timeouts {
                tcp_established_ms: duration_ms_ceil(d.tcp_established_timeout),
                tcp_transitory_ms: duration_ms_ceil(d.tcp_transitory_timeout),
                udp_ms: duration_ms_ceil(d.udp_timeout),
            },
            vips,
            lookup,
        }
    }

    #[inline]
    pub fn vip(&self, id: u16) -> Option<&VipEntry> {
        self.vips.get(usize::from(id))
    }

    /// The id and entry of an active VIP by name (control plane; not for the hot path).
    pub fn vip_by_name(&self, name: &str) -> Option<(u16, &VipEntry)> {
        self.vips.iter().enumerate().find(|(_, v)| v.active && v.name == name).map(|(i, v)| (i as u16, v))
    }

    /// The id of the active VIP for a packet to `dst:dst_port` with IP protocol `proto`:
    /// the VIP with exactly this port first, then a port-0 (every port) VIP.
    #[inline]
    pub fn lookup_vip_v4(&self, dst: [u8; 4], dst_port: u16, proto: u8) -> Option<u16> {
        let m = &self.lookup.vip_v4;
        m.get(&key_v4(dst, dst_port, proto)).or_else(|| m.get(&key_v4(dst, 0, proto))).copied()
    }

    /// The value [`Snapshot::lookup_vip_v4`]'s answer depends on, as one word: two
    /// packets with the same key go to the same VIP (or to none). The burst loop
    /// compares it with the previous packet's to skip the lookup.
    #[inline(always)]
    pub fn vip_key_v4(dst: [u8; 4], dst_port: u16, proto: u8) -> u64 {
        key_v4(dst, dst_port, proto)
    }

    /// IPv6 version of [`Self::lookup_vip_v4`].
    #[inline]
    pub fn lookup_vip_v6(&self, dst: [u8; 16], dst_port: u16, proto: u8) -> Option<u16> {
        let m = &self.lookup.vip_v6;
        m.get(&key_v6(dst, dst_port, proto)).or_else(|| m.get(&key_v6(dst, 0, proto))).copied()
    }

    /// Is this the address of any active VIP (any port, any protocol)? For ICMP echo
    /// and ICMP errors addressed to a VIP.
    #[inline]
    pub fn is_vip_addr_v4(&self, addr: [u8; 4]) -> bool {
        self.lookup.addr_v4.contains_key(&u32::from_be_bytes(addr))
    }

    #[inline]
    pub fn is_vip_addr_v6(&self, addr: [u8; 16]) -> bool {
        self.lookup.addr_v6.contains_key(&u128::from_be_bytes(addr))
    }

    /// Whether some active VIP forwards by DNAT (without one, no TCP/UDP packet
    /// needs another worker than the one RSS gave it: see the data plane's `steer`).
    #[inline]
    pub fn has_dnat(&self) -> bool {
        self.lookup.dnat
    }

    /// Is `src:src_port` (protocol `proto`) a backend (in any state but removed) of an
    /// active DNAT VIP? Then the packet may be a reply to translate back.
    #[inline]
    pub fn dnat_backend_v4(&self, src: [u8; 4], src_port: u16, proto: u8) -> bool {
        self.dnat_vip_v4(src, src_port, proto).is_some()
    }

    #[inline]
    pub fn dnat_backend_v6(&self, src: [u8; 16], src_port: u16, proto: u8) -> bool {
        self.dnat_vip_v6(src, src_port, proto).is_some()
    }

    /// The id of the DNAT VIP whose backend `src:src_port` is (validation makes it unique).
    #[inline]
    pub fn dnat_vip_v4(&self, src: [u8; 4], src_port: u16, proto: u8) -> Option<u16> {
        // Exact endpoint first, then a backend of a port-0 VIP (port 0: any port).
        let m = &self.lookup.dnat_v4;
        m.get(&key_v4(src, src_port, proto)).or_else(|| m.get(&key_v4(src, 0, proto))).copied()
    }

    #[inline]
    pub fn dnat_vip_v6(&self, src: [u8; 16], src_port: u16, proto: u8) -> Option<u16> {
        let m = &self.lookup.dnat_v6;
        m.get(&key_v6(src, src_port, proto)).or_else(|| m.get(&key_v6(src, 0, proto))).copied()
    }
}

fn tombstone(v: &VipEntry) -> VipEntry {
    VipEntry {
        active: false,
        table: Box::new([]),
        backends: v.backends.iter().map(|b| BackendEntry { state: BackendState::Removed, ..*b }).collect(),
        ..v.clone_header()
    }
}

impl VipEntry {
    /// A copy without the table and backends (cheap).
    fn clone_header(&self) -> VipEntry {
        VipEntry {
            name: self.name.clone(),
            active: self.active,
            address: self.address,
            port: self.port,
            protocol: self.protocol,
            proto_num: self.proto_num,
            forwarding: self.forwarding,
            hash: self.hash,
            table_size: self.table_size,
            table: Box::new([]),
            backends: Vec::new(),
            tunnels: Box::new([]),
        }
    }
}

fn build_vip(vc: &crate::config::VipConfig, prev: Option<&VipEntry>) -> VipEntry {
    // Start from the previous slots, all marked removed; configured backends revive
    // their slot by address or take a new one.
    let mut backends: Vec<BackendEntry> = prev
        .map(|p| p.backends.iter().map(|b| BackendEntry { state: BackendState::Removed, ..*b }).collect())
        .unwrap_or_default();
    let mut slot_of: HashMap<IpAddr, usize> = backends.iter().enumerate().map(|(i, b)| (b.address, i)).collect();
    let mut assigned = vec![false; backends.len()];
    for bc in &vc.backends {
        let entry = BackendEntry { address: bc.address, port: bc.port, weight: bc.weight, state: bc.state };
        let slot = match slot_of.get(&bc.address) {
            Some(&i) => Some(i),
            None if backends.len() < maglev::MAX_BACKENDS => {
                backends.push(entry);
                assigned.push(false);
                Some(backends.len() - 1)
            }
            // All slots taken: reuse a tombstone not revived by this configuration.
            None => (0..backends.len()).find(|&i| !assigned[i] && backends[i].state == BackendState::Removed),
        };
        if let Some(i) = slot {
            slot_of.remove(&backends[i].address);
            backends[i] = entry;
            assigned[i] = true;
            slot_of.insert(bc.address, i);
        }
    }
    let mut v = VipEntry {
        name: vc.name.clone(),
        active: true,
        address: vc.address,
        port: vc.port,
        protocol: vc.protocol,
        proto_num: vc.protocol.number(),
        forwarding: vc.forwarding,
        hash: vc.hash,
        table_size: vc.table_size,
        table: Box::new([]),
        backends,
        tunnels: Box::new([]),
    };
    let input = v.maglev_input();
    v.table = match prev {
        // Same table size and Maglev input: the table is the same; skip the rebuild.
        Some(p) if p.active && p.table_size == v.table_size && p.maglev_input() == input => p.table.clone(),
        _ => maglev::build(v.table_size, &input).into_boxed_slice(),
    };
    v
}

fn build_lookup(vips: &[VipEntry]) -> Lookup {
    let mut l = Lookup::default();
    for (i, v) in vips.iter().enumerate().filter(|(_, v)| v.active) {
        let id = i as u16;
        match v.address {
            IpAddr::V4(a) => {
                l.vip_v4.insert(key_v4(a.octets(), v.port, v.proto_num), id);
                l.addr_v4.insert(a.to_bits(), ());
            }
            IpAddr::V6(a) => {
                l.vip_v6.insert(key_v6(a.octets(), v.port, v.proto_num), id);
                l.addr_v6.insert(a.to_bits(), ());
            }
        }
        if v.is_dnat() {
            l.dnat = true;
            for b in v.backends.iter().filter(|b| b.state != BackendState::Removed) {
                match b.address {
                    IpAddr::V4(a) => l.dnat_v4.insert(key_v4(a.octets(), b.port, v.proto_num), id),
                    IpAddr::V6(a) => l.dnat_v6.insert(key_v6(a.octets(), b.port, v.proto_num), id),
                };
            }
        }
    }
    l
}

mod flat;
#[cfg(test)]
mod tests;
