//! Per-worker counters, indexed by enums: no formatting, no atomics on the packet path.
//!
//! Each worker owns its [`Counters`]; the control plane reads copies (`snapshot()`)
//! between bursts (live) or at the end (replay) and adds them up.

/// Why a packet was dropped. Every variant is counted; names are stable (stats JSON keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Frame shorter than an Ethernet header, or VLAN tags cut short.
    L2Truncated,
    /// More than two VLAN tags.
    TooManyVlanTags,
    Ipv4Truncated,
    Ipv4BadVersion,
    /// IHL < 5 or past the frame.
    Ipv4BadHeaderLength,
    /// Total length shorter than the header or past the frame.
    Ipv4BadTotalLength,
    Ipv6Truncated,
    Ipv6BadVersion,
    /// Payload length past the frame (or a jumbogram).
    Ipv6BadPayloadLength,
    /// Extension-header chain that runs off the end or is too long.
    Ipv6BadExtensionChain,
    /// TCP/UDP header cut short or inconsistent (data offset, UDP length).
    L4Malformed,
    /// ICMP header or the packet it quotes cut short.
    IcmpMalformed,
    /// The VIP has no usable backend.
    NoBackend,
    /// DNAT: TTL / hop limit would reach 0.
    TtlExpired,
    /// An IPv4 header whose checksum is wrong, where l4lb would rewrite the header
    /// (DNAT both ways, ICMP answers): forwarding it would hide the corruption.
    Ipv4BadChecksum,
    /// An ICMP echo request to a VIP whose ICMP checksum is wrong (not answered).
    IcmpBadChecksum,
    /// Encapsulated packet larger than the MTU and no ICMP answer is due.
    TooBig,
    /// Not enough headroom in the buffer to encapsulate (should never happen).
    NoHeadroom,
    /// The node has no address of the backend's family (config prevents it).
    NoTunnelSource,
    /// The ring towards the owning worker was full.
    HandoffFull,
}

impl DropReason {
    pub const ALL: [DropReason; 20] = [
        DropReason::L2Truncated,
        DropReason::TooManyVlanTags,
        DropReason::Ipv4Truncated,
        DropReason::Ipv4BadVersion,
        DropReason::Ipv4BadHeaderLength,
        DropReason::Ipv4BadTotalLength,
        DropReason::Ipv6Truncated,
        DropReason::Ipv6BadVersion,
        DropReason::Ipv6BadPayloadLength,
        DropReason::Ipv6BadExtensionChain,
        DropReason::L4Malformed,
        DropReason::IcmpMalformed,
        DropReason::NoBackend,
        DropReason::TtlExpired,
        DropReason::Ipv4BadChecksum,
        DropReason::IcmpBadChecksum,
        DropReason::TooBig,
        DropReason::NoHeadroom,
        DropReason::NoTunnelSource,
        DropReason::HandoffFull,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Stable snake_case name (stats JSON key).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::L2Truncated => "l2_truncated",
            DropReason::TooManyVlanTags => "too_many_vlan_tags",
            DropReason::Ipv4Truncated => "ipv4_truncated",
            DropReason::Ipv4BadVersion => "ipv4_bad_version",
            DropReason::Ipv4BadHeaderLength => "ipv4_bad_header_length",
            DropReason::Ipv4BadTotalLength => "ipv4_bad_total_length",
            DropReason::Ipv6Truncated => "ipv6_truncated",
            DropReason::Ipv6BadVersion => "ipv6_bad_version",
            DropReason::Ipv6BadPayloadLength => "ipv6_bad_payload_length",
            DropReason::Ipv6BadExtensionChain => "ipv6_bad_extension_chain",
            DropReason::L4Malformed => "l4_malformed",
            DropReason::IcmpMalformed => "icmp_malformed",
            DropReason::NoBackend => "no_backend",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::Ipv4BadChecksum => "ipv4_bad_checksum",
            DropReason::IcmpBadChecksum => "icmp_bad_checksum",
            DropReason::TooBig => "too_big",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::NoTunnelSource => "no_tunnel_source",
            DropReason::HandoffFull => "handoff_full",
        }
    }
}

/// Plain event counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Counter {
    RxPackets,
    RxBytes,
    TxPackets,
    TxBytes,
    HostPackets,
    HostBytes,
    DropPackets,
    /// Packets to a VIP forwarded encapsulated (GRE or IPIP).
    Encapsulated,
    /// Client-to-VIP packets rewritten to a backend (DNAT).
    DnatForward,
    /// Backend-to-client packets rewritten back to the VIP (DNAT).
    DnatReply,
    /// ICMP errors about a VIP's flow sent to that flow's backend.
    IcmpErrorsForwarded,
    /// ICMP/ICMPv6 echo requests to a VIP answered.
    IcmpEchoAnswered,
    /// ICMP errors to a client about a packet sent to a DNAT backend, translated back
    /// to the VIP and forwarded.
    IcmpErrorsToClient,
    /// ICMP fragmentation-needed / packet-too-big answers sent to clients.
    IcmpTooBigSent,
    /// Fragments to a VIP, steered on addresses and protocol.
    Fragments,
    /// Flows whose backend went down or was removed, moved to a new backend.
    FlowsRescheduled,
    /// Packets handed to another worker (DNAT replies, ICMP errors).
    HandoffOut,
    /// Packets received from another worker.
    HandoffIn,
    /// Snapshot switches taken at burst boundaries.
    SnapshotSwitches,
}

impl Counter {
    pub const ALL: [Counter; 19] = [
        Counter::RxPackets,
        Counter::RxBytes,
        Counter::TxPackets,
        Counter::TxBytes,
        Counter::HostPackets,
        Counter::HostBytes,
        Counter::DropPackets,
        Counter::Encapsulated,
        Counter::DnatForward,
        Counter::DnatReply,
        Counter::IcmpErrorsForwarded,
        Counter::IcmpEchoAnswered,
        Counter::IcmpErrorsToClient,
        Counter::IcmpTooBigSent,
        Counter::Fragments,
        Counter::FlowsRescheduled,
        Counter::HandoffOut,
        Counter::HandoffIn,
        Counter::SnapshotSwitches,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Stable snake_case name (stats JSON key).
    pub fn name(self) -> &'static str {
        match self {
            Counter::RxPackets => "rx_packets",
            Counter::RxBytes => "rx_bytes",
            Counter::TxPackets => "tx_packets",
            Counter::TxBytes => "tx_bytes",
            Counter::HostPackets => "host_packets",
            Counter::HostBytes => "host_bytes",
            Counter::DropPackets => "drop_packets",
            Counter::Encapsulated => "encapsulated",
            Counter::DnatForward => "dnat_forward",
            Counter::DnatReply => "dnat_reply",
            Counter::IcmpErrorsForwarded => "icmp_errors_forwarded",
            Counter::IcmpEchoAnswered => "icmp_echo_answered",
            Counter::IcmpErrorsToClient => "icmp_errors_to_client",
            Counter::IcmpTooBigSent => "icmp_too_big_sent",
            Counter::Fragments => "fragments",
            Counter::FlowsRescheduled => "flows_rescheduled",
            Counter::HandoffOut => "handoff_out",
            Counter::HandoffIn => "handoff_in",
            Counter::SnapshotSwitches => "snapshot_switches",
        }
    }
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketBytes {
    pub packets: u64,
    pub bytes: u64,
}

impl PacketBytes {
    #[inline]
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }
    pub fn merge(&mut self, o: &PacketBytes) {
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

/// One worker's counters. VIP and backend counters are indexed by the snapshot's
/// stable VIP index and backend slot; they grow (off the packet path, at a
/// snapshot switch) when a snapshot brings new VIPs or backends.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub counters: [u64; Counter::COUNT],
    pub drops: [u64; DropReason::COUNT],
    /// Per VIP: packets and bytes received for it, and per backend slot what was sent to each.
    pub vips: Vec<VipCounters>,
}

/// Counters of one VIP: what went to each backend slot, and what was received for
/// the VIP but went to none (no backend, or answered or dropped after the choice).
/// The VIP's total is their sum ([`VipCounters::total`]), so that the packet path
/// counts a forwarded packet once, for its backend.
#[derive(Clone, Debug, Default)]
pub struct VipCounters {
    pub backends: Vec<PacketBytes>,
    pub unsent: PacketBytes,
}

impl VipCounters {
    /// Packets and bytes received for the VIP.
    pub fn total(&self) -> PacketBytes {
        let mut t = self.unsent;
        for b in &self.backends {
            t.merge(b);
        }
        t
    }
}

impl Counters {
    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.counters[c as usize] += 1;
    }
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.counters[c as usize] += n;
    }
    #[inline]
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize]
    }
    #[inline]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
        self.counters[Counter::DropPackets as usize] += 1;
    }
    #[inline]
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    /// Count a packet for a VIP and the backend slot it went to.
    #[inline]
    pub fn vip_backend(&mut self, vip: u16, slot: u16, bytes: usize) {
        if let Some(v) = self.vips.get_mut(usize::from(vip)) {
            match v.backends.get_mut(usize::from(slot)) {
                Some(b) => b.add(bytes),
                None => v.unsent.add(bytes),
            }
        }
    }

    /// Take back the backend's part of a [`Counters::vip_backend`] for a packet that
    /// did not go to the backend after all (ICMP "too big" answered instead, or
    /// dropped); the VIP keeps it. Off the common path.
    #[cold]
    pub fn backend_unsent(&mut self, vip: u16, slot: u16, bytes: usize) {
        let Some(v) = self.vips.get_mut(usize::from(vip)) else { return };
        if let Some(b) = v.backends.get_mut(usize::from(slot))
            && b.packets > 0
        {
            b.packets -= 1;
            b.bytes = b.bytes.saturating_sub(bytes as u64);
            v.unsent.add(bytes);
        }
    }

    /// Count a packet for a VIP without a backend (e.g. echo answered, dropped for no backend).
    #[inline]
    pub fn vip_only(&mut self, vip: u16, bytes: usize) {
        if let Some(v) = self.vips.get_mut(usize::from(vip)) {
            v.unsent.add(bytes);
        }
    }

    /// Make room for `vips` VIPs with the given backend slot counts (called at snapshot switch).
    pub fn resize(&mut self, shape: impl Iterator<Item = usize>) {
        for (i, n) in shape.enumerate() {
            if self.vips.len() <= i {
                self.vips.push(VipCounters::default());
            }
            let v = &mut self.vips[i];
            if v.backends.len() < n {
                v.backends.resize(n, PacketBytes::default());
            }
        }
    }

    /// Add another worker's counters into these.
    pub fn merge(&mut self, o: &Counters) {
        for (a, b) in self.counters.iter_mut().zip(o.counters.iter()) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
        self.resize(o.vips.iter().map(|v| v.backends.len()));
        for (a, b) in self.vips.iter_mut().zip(o.vips.iter()) {
            a.unsent.merge(&b.unsent);
            for (x, y) in a.backends.iter_mut().zip(b.backends.iter()) {
                x.merge(y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indices_dense() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(seen.insert(r.name()));
        }
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            assert!(seen.insert(c.name()));
        }
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Counters::default();
        a.resize([2usize].into_iter());
        a.vip_backend(0, 1, 100);
        a.drop(DropReason::NoBackend);
        let mut b = Counters::default();
        b.resize([3usize, 1].into_iter());
        b.vip_backend(0, 2, 50);
        b.vip_backend(1, 0, 10);
        b.inc(Counter::RxPackets);
        a.merge(&b);
        assert_eq!(a.vips[0].total(), PacketBytes { packets: 2, bytes: 150 });
        assert_eq!(a.vips[0].backends[2].packets, 1);
        assert_eq!(a.vips[1].backends[0].bytes, 10);
        assert_eq!(a.get(Counter::DropPackets), 1);
        assert_eq!(a.dropped(DropReason::NoBackend), 1);
        assert_eq!(a.get(Counter::RxPackets), 1);
        a.vip_only(1, 7);
        a.backend_unsent(1, 0, 10);
        assert_eq!(a.vips[1].total(), PacketBytes { packets: 2, bytes: 17 }, "unsent and taken back stay the VIP's");
        assert_eq!(a.vips[1].backends[0], PacketBytes::default());
    }
}
