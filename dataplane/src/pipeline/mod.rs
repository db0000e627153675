//! The run-to-completion pipeline, one file per stage in packet order:
//!
//! 1. [`parse`]: Ethernet/VLAN, IPv4/IPv6 (+ extension headers), ports.
//! 2. [`classify`]: VIP, DNAT reply, ICMP to a VIP, or host.
//! 3. [`steer`]: which worker owns the packet's flow (multi-worker DNAT and ICMP).
//! 4. flow lookup (the per-worker [`crate::flow_table`]) and [`select`] (Maglev) on a miss.
//! 5. [`encap`] (GRE/IPIP) or [`nat`] (DNAT), or [`icmp`] answers.
//!
//! The pipeline is sans-IO: it takes the time and a burst of buffers and returns a
//! verdict per buffer; the worker (or the replay driver) moves the buffers. Per
//! packet it takes no lock, allocates nothing, makes no system call and logs nothing.

pub mod classify;
pub mod encap;
pub mod icmp;
pub mod nat;
pub mod parse;
pub mod select;
pub mod steer;

#[cfg(test)]
mod fast_lane_tests;

use common::config::Forwarding;
use common::flow::{FlowKey, proto};
use common::snapshot::{NO_BACKEND, Snapshot, VipEntry};

use crate::counters::{Counter, Counters, DropReason};
use crate::flow_table::{FlowClass, FlowHash, FlowTable, FlowTimeouts, FlowValue};
use crate::port::{BURST, PacketBuf};
use classify::Class;
use encap::EncapError;
use nat::End;
use parse::{FastV4, Frag, Parsed};

/// What to do with a packet after the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit to the network (rewritten in place).
    Tx,
    /// Give to the host's stack, unchanged.
    Host,
    /// Drop (the reason was counted).
    Drop,
    /// Hand to the worker that owns the flow.
    Handoff(u16),
}

/// Flow-table timeouts from a snapshot.
pub fn flow_timeouts(snap: &Snapshot) -> FlowTimeouts {
    FlowTimeouts {
        established_ms: snap.timeouts.tcp_established_ms,
        transitory_ms: snap.timeouts.tcp_transitory_ms,
        udp_ms: snap.timeouts.udp_ms,
    }
}

/// One worker's pipeline state: its flow table and counters.
pub struct Pipeline {
    /// This worker's index.
    pub worker: u16,
    /// Number of workers.
    pub workers: u16,
    flows: FlowTable,
    pub counters: Counters,
    snap_version: u64,
    /// The burst loop's per-packet parse results: [`BURST`] slots kept between
    /// bursts, so that no burst re-initialises them; slot `i` is packet `i`'s.
    parsed: Vec<Parsed>,
    /// The burst loop's other per-packet results, kept the same way: the class, the
    /// flow hash (for the classes that use the flow table) and, in the fast lane
    /// ([`Class::TunnelV4`]), the compact parse result.
    slots: Vec<Slot>,
    /// Tests switch the fast path off to compare it with the general path.
    #[cfg(test)]
    fast_lane: bool,
    /// Packets that took the fast lane (tests).
    #[cfg(test)]
    lane_packets: u64,
    /// [`Pipeline::process_timed`]'s capture clock (none before its first packet).
    clock: Option<CaptureClock>,
}

/// The latest packet time [`Pipeline::process_timed`] saw, and the time of its last
/// full sweep of the flow table.
#[derive(Clone, Copy, Debug)]
struct CaptureClock {
    last_ns: u64,
    swept_ns: u64,
}

/// How often (capture time) [`Pipeline::process_timed`] reclaims every expired entry:
/// 12 hours, half the margin between the longest timeout (24 days) and the flow
/// table's 2^31 ms horizon.
pub const FULL_SWEEP_NS: u64 = 12 * 3600 * 1_000_000_000;

/// What pass 1 of the burst loop leaves for pass 2 about one packet (with its
/// [`Parsed`] slot when it is not in the fast lane): one 48-byte record, so that
/// both passes walk one array instead of three.
#[derive(Clone, Copy, Debug)]
struct Slot {
    hash: FlowHash,
    fast: FastV4,
    class: Class,
}

impl Slot {
    const EMPTY: Slot = Slot { hash: FlowHash::ZERO, fast: FastV4::EMPTY, class: Class::Host };
}

/// Flow class for a new flow's first packet: UDP flows have their own timeout; a
/// TCP SYN without ACK is transitory, a FIN or RST closing; any other TCP packet
/// (a flow picked up mid-stream) is established.
#[inline]
fn class_of(p: &Parsed) -> FlowClass {
    new_flow_class(p.proto, p.tcp_flags)
}

/// [`class_of`] from the packet's protocol and TCP flags.
#[inline(always)]
fn new_flow_class(proto: u8, tcp_flags: u8) -> FlowClass {
    if proto != proto::TCP {
        return FlowClass::Udp;
    }
    FlowClass::from_tcp_flags(tcp_flags)
}

/// A new backend for a flow whose backend went down or was removed: Maglev's
/// choice, counted as a rescheduled flow when there is one.
#[inline]
fn repick(counters: &mut Counters, vip: &VipEntry, key: &FlowKey) -> u16 {
    let slot = select::pick(vip, key);
    if slot != NO_BACKEND {
        counters.inc(Counter::FlowsRescheduled);
    }
    slot
}

/// Class of an existing flow after a packet (see [`FlowClass::after_tcp_flags`]).
#[inline]
fn next_class(cur: FlowClass, p: &Parsed) -> FlowClass {
    if p.proto != proto::TCP {
        return FlowClass::Udp;
    }
    cur.after_tcp_flags(p.tcp_flags)
}

impl Pipeline {
    /// A pipeline for worker `worker` of `workers`, with a flow table of `capacity`.
    ///
    /// # Panics
    /// If the flow table's memory cannot be mapped; see [`Pipeline::try_new`].
    pub fn new(worker: u16, workers: u16, capacity: usize, snap: &Snapshot) -> Self {
        Self::try_new(worker, workers, capacity, snap).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Pipeline::new`], with an error when the flow table's memory cannot be mapped.
    pub fn try_new(worker: u16, workers: u16, capacity: usize, snap: &Snapshot) -> Result<Self, String> {
        let mut p = Pipeline {
            worker,
            workers: workers.max(1),
            flows: FlowTable::try_new(capacity, flow_timeouts(snap))?,
            counters: Counters::default(),
            snap_version: 0,
            parsed: vec![Parsed::EMPTY; BURST],
            slots: vec![Slot::EMPTY; BURST],
            #[cfg(test)]
            fast_lane: true,
            #[cfg(test)]
            lane_packets: 0,
            clock: None,
        };
        p.on_snapshot(snap);
        Ok(p)
    }

    /// Take a new snapshot into account (burst boundary, off the packet path).
    pub fn on_snapshot(&mut self, snap: &Snapshot) {
        if self.snap_version == snap.version {
            return;
        }
        if self.snap_version != 0 {
            self.counters.inc(Counter::SnapshotSwitches);
        }
        self.snap_version = snap.version;
        self.flows.set_timeouts(flow_timeouts(snap));
        self.counters.resize(snap.vips.iter().map(|v| v.backends.len()));
    }

    /// The flow table (for stats).
    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// The flow table, mutable (end-of-run sweeps).
    pub fn flows_mut(&mut self) -> &mut FlowTable {
        &mut self.flows
    }

    /// Owner worker of a frame's flow, when it is not simply the receiving worker.
    #[inline]
    pub fn steer(&self, frame: &[u8], snap: &Snapshot) -> Option<u16> {
        if self.workers <= 1 {
            return None;
        }
        steer::owner(frame, snap, self.workers)
    }

    /// Run a burst through the pipeline. `verdicts[i]` receives the verdict for `pkts[i]`.
    /// `now_ns` is the pipeline's clock (monotonic time live), one reading per burst.
    /// Returns how many verdicts are [`Verdict::Tx`] (when that is all of them, the
    /// worker sends the burst as it is, without sorting it by verdict).
    pub fn process<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        now_ns: u64,
        pkts: &mut [B],
        verdicts: &mut [Verdict],
    ) -> usize {
        let now_ms = (now_ns / 1_000_000) as u32;
        let mut tx = 0;
        for (chunk, vchunk) in pkts.chunks_mut(BURST).zip(verdicts.chunks_mut(BURST)) {
            tx += self.process_burst(snap, |_| now_ms, chunk, vchunk);
        }
        tx
    }

    /// As [`Pipeline::process`], with each packet's own time (`times_ns[i]`, e.g. its
    /// capture timestamp): replay uses it so timeouts do not depend on how packets
    /// were grouped into bursts.
    ///
    /// The flow table keeps u32 millisecond times, whose differences are only read
    /// right up to 2^31 ms (24.8 days). A capture may span more than that, so the
    /// capture clock is watched here, where it is known in full:
    ///
    /// - a gap longer than every timeout empties the table (every flow has expired);
    /// - every [`FULL_SWEEP_NS`] of capture time, the expired entries are reclaimed.
    ///   An entry then never reaches 2^31 ms of age unseen, except with a timeout
    ///   near the 24-day maximum and gaps of hours between packets.
    ///
    /// Neither changes what a lookup answers for a flow that has not expired.
    pub fn process_timed<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        times_ns: &[u64],
        pkts: &mut [B],
        verdicts: &mut [Verdict],
    ) {
        let n = pkts.len().min(times_ns.len()).min(verdicts.len());
        let mut start = 0;
        while start < n {
            self.capture_clock(times_ns[start]);
            // A burst ends at BURST packets or before a packet that jumps the clock.
            let mut end = start + 1;
            while end < n && end - start < BURST && !self.clock_jumps(times_ns[end]) {
                if let Some(c) = self.clock.as_mut() {
                    c.last_ns = c.last_ns.max(times_ns[end]);
                }
                end += 1;
            }
            let times = &times_ns[start..end];
            self.process_burst(
                snap,
                |i| (times[i] / 1_000_000) as u32,
                &mut pkts[start..end],
                &mut verdicts[start..end],
            );
            start = end;
        }
    }

    /// Whether a packet at `t_ns` comes after a gap longer than every timeout.
    #[inline]
    fn clock_jumps(&self, t_ns: u64) -> bool {
        self.clock.is_some_and(|c| t_ns.saturating_sub(c.last_ns) > u64::from(self.flows.max_timeout_ms()) * 1_000_000)
    }

    /// The capture clock moves to `t_ns` (see [`Pipeline::process_timed`]).
    fn capture_clock(&mut self, t_ns: u64) {
        let jumps = self.clock_jumps(t_ns);
        let c = self.clock.get_or_insert(CaptureClock { last_ns: t_ns, swept_ns: t_ns });
        if jumps {
            self.flows.expire_everything();
            c.swept_ns = t_ns;
        } else if t_ns.saturating_sub(c.swept_ns) > FULL_SWEEP_NS {
            self.flows.expire_all((t_ns / 1_000_000) as u32);
            c.swept_ns = t_ns;
        }
        c.last_ns = c.last_ns.max(t_ns);
    }

    /// One burst of at most [`BURST`] packets; returns how many verdicts are `Tx`.
    fn process_burst<B: PacketBuf, T: Fn(usize) -> u32>(
        &mut self,
        snap: &Snapshot,
        now_ms: T,
        pkts: &mut [B],
        verdicts: &mut [Verdict],
    ) -> usize {
        // `process`/`process_timed` cut bursts of at most BURST: the arrays below and
        // the kept list's capacity (no allocation) depend on it.
        debug_assert!(pkts.len() <= BURST && verdicts.len() >= pkts.len());
        // Per packet: what parse found (meaningful for the classes that act on an
        // IP packet), the class, and the flow hash for the flow-table paths.
        // Slot `i` is written for every packet `i` of the burst before pass 2 reads it
        // (no push: no capacity check, no length update per packet).
        let mut parsed = std::mem::take(&mut self.parsed);
        let mut slots = std::mem::take(&mut self.slots);
        // Pass 1: parse, classify, and prefetch the flow-table buckets. (Zipped
        // iterators rather than indices: no bounds checks in the loops.)
        let mut rx_bytes = 0u64;
        // The previous fast-path packet's VIP (most of a burst goes to few VIPs): its
        // `Snapshot::vip_key_v4`, its class and whether the VIP takes the fast lane.
        // Only VIP hits are kept (a miss's class also depends on the source).
        let mut last: Option<(u64, Class, bool)> = None;
        for ((b, out), p_out) in pkts.iter().zip(slots.iter_mut()).zip(parsed.iter_mut()) {
            let data = b.data();
            rx_bytes += data.len() as u64;
            // The common case (untagged IPv4 TCP/UDP, not a fragment) classified and
            // hashed from the parse result while it is still in registers.
            if self.fast_path_enabled()
                && let Some(f) = parse::fast_v4(data)
            {
                let k = f.key();
                let vip_key = Snapshot::vip_key_v4(k.dst, k.dst_port, k.proto);
                let (class, lane) = match last {
                    Some((key, class, lane)) if key == vip_key => (class, lane),
                    _ => {
                        let class = classify::classify_ports_v4(&k, snap);
                        let lane = match class {
                            Class::Vip(v) => {
                                let lane = snap.vips.get(usize::from(v)).is_some_and(|vip| !vip.is_dnat());
                                last = Some((vip_key, class, lane));
                                lane
                            }
                            _ => false,
                        };
                        (class, lane)
                    }
                };
                // The fast lane: to a GRE/IPIP VIP, kept as the compact record.
                if lane && let Class::Vip(v) = class {
                    #[cfg(test)]
                    {
                        self.lane_packets += 1;
                    }
                    let (addrs, rest) = f.key_words();
                    let h = self.flows.hash_v4_words(addrs, rest);
                    self.flows.prefetch_v4(h);
                    *out = Slot { hash: h, fast: f, class: Class::TunnelV4(v) };
                    continue;
                }
                let p = f.parsed();
                out.hash = self.prefetch_flow(class, &p.key);
                out.class = class;
                *p_out = p;
                continue;
            }
            out.class = match parse::parse_general_into(data, p_out) {
                Ok(true) => {
                    let p = &*p_out;
                    let class = classify::classify(p, snap);
                    out.hash = self.prefetch_flow(class, &p.key);
                    class
                }
                Ok(false) => Class::Host,
                Err(r) => Class::Malformed(r),
            };
        }
        self.counters.add(Counter::RxPackets, pkts.len() as u64);
        self.counters.add(Counter::RxBytes, rx_bytes);
        // Pass 2: act. Totals are summed in registers and added once per burst.
        let (mut tx, mut tx_bytes, mut host, mut host_bytes) = (0u64, 0u64, 0u64, 0u64);
        let per_packet = slots.iter().zip(parsed.iter()).zip(verdicts.iter_mut());
        for (i, (b, ((slot, p), verdict))) in pkts.iter_mut().zip(per_packet).enumerate() {
            let len = b.len();
            let v = match slot.class {
                Class::TunnelV4(vip) => self.tunnel_v4(snap, now_ms(i), b, &slot.fast, vip, slot.hash),
                class => self.act(snap, now_ms(i), b, p, class, slot.hash),
            };
            *verdict = match v {
                Ok(Verdict::Tx) => {
                    tx += 1;
                    tx_bytes += b.len() as u64;
                    Verdict::Tx
                }
                Ok(Verdict::Host) => {
                    host += 1;
                    host_bytes += len as u64;
                    Verdict::Host
                }
                Ok(other) => other,
                Err(r) => {
                    self.counters.drop(r);
                    Verdict::Drop
                }
            };
        }
        self.counters.add(Counter::TxPackets, tx);
        self.counters.add(Counter::TxBytes, tx_bytes);
        self.counters.add(Counter::HostPackets, host);
        self.counters.add(Counter::HostBytes, host_bytes);
        self.parsed = parsed;
        self.slots = slots;
        tx as usize
    }

    /// Whether the burst loop takes its fast path (parse's `fast_v4`, the VIP cache,
    /// the fast lane): always, but in tests that compare it with the general path.
    #[inline(always)]
    fn fast_path_enabled(&self) -> bool {
        #[cfg(test)]
        return self.fast_lane;
        #[cfg(not(test))]
        true
    }

    /// For the classes that look up the flow table: `key`'s hash, its bucket
    /// prefetched (the lookup comes in pass 2). Other classes: a hash never used.
    #[inline(always)]
    fn prefetch_flow(&self, class: Class, key: &FlowKey) -> FlowHash {
        if !matches!(class, Class::Vip(_) | Class::DnatReply) {
            return FlowHash::default();
        }
        let h = self.flows.hash(key);
        self.flows.prefetch_hashed(key, h);
        h
    }

    // Always inlined into the burst loop: left to itself, LLVM's choice flips with
    // small changes elsewhere (measured: +40 instructions a packet when it did not).
    #[inline(always)]
    fn act<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        now_ms: u32,
        b: &mut B,
        p: &Parsed,
        class: Class,
        hash: FlowHash,
    ) -> Result<Verdict, DropReason> {
        match class {
            Class::Vip(vip) | Class::TunnelV4(vip) => self.forward_to_vip(snap, now_ms, b, p, vip, hash),
            Class::DnatReply => self.dnat_reply(snap, now_ms, b, p, hash),
            Class::IcmpToVip => self.icmp_to_vip(snap, now_ms, b, p),
            Class::IcmpToOther => self.icmp_to_other(snap, now_ms, b, p),
            Class::VipFragment(vip) => self.fragment_to_vip(snap, b, p, vip),
            Class::DnatReplyFragment(vip) => self.dnat_reply_fragment(snap, b, p, vip),
            Class::Host => Ok(Verdict::Host),
            Class::Malformed(r) => Err(r),
        }
    }

    /// TCP/UDP to a VIP: flow lookup, Maglev on a miss, then forward.
    #[inline]
    fn forward_to_vip<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        now_ms: u32,
        b: &mut B,
        p: &Parsed,
        vip_id: u16,
        hash: FlowHash,
    ) -> Result<Verdict, DropReason> {
        let vip = &snap.vips[usize::from(vip_id)];
        let len = b.len();
        let slot = self.backend_for(vip, p, hash, now_ms);
        if slot == NO_BACKEND {
            self.counters.vip_only(vip_id, len);
            return Err(DropReason::NoBackend);
        }
        // Counted for the backend up front (the common case); the rare outcomes that
        // do not reach it take it back (`backend_unsent`).
        self.counters.vip_backend(vip_id, slot, len);
        match vip.forwarding {
            Forwarding::Gre | Forwarding::Ipip => self.encap(snap, b, p, vip, slot),
            Forwarding::Dnat => {
                if let Some(r) = self.dnat_over_mtu(snap, b, p, Some((vip_id, slot, len))) {
                    return r;
                }
                let backend = &vip.backends[usize::from(slot)];
                let port = nat::backend_port(vip, backend);
                let r = nat::rewrite_buf(b, p, &snap.node, End::Destination, &backend.address, port);
                self.unsent_on_error(r, (vip_id, slot, len))?;
                // The reply's key, so that the backend's answers find their VIP.
                let port_out = port.unwrap_or(p.key.dst_port());
                if let Some(rk) = FlowKey::new(backend.address, p.key.src_addr(), port_out, p.key.src_port(), p.proto) {
                    self.touch_reverse(&rk, vip_id, p, now_ms);
                }
                self.counters.inc(Counter::DnatForward);
                Ok(Verdict::Tx)
            }
        }
    }

    /// The fast lane's act: [`Pipeline::forward_to_vip`] for TCP/UDP over IPv4
    /// to a GRE/IPIP VIP, on the compact [`FastV4`] record (same outcomes, same
    /// counters; property-tested against the general path in `fast_lane_tests.rs`).
    #[inline(always)]
    fn tunnel_v4<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        now_ms: u32,
        b: &mut B,
        f: &FastV4,
        vip_id: u16,
        hash: FlowHash,
    ) -> Result<Verdict, DropReason> {
        let Some(vip) = snap.vips.get(usize::from(vip_id)) else { return Err(DropReason::NoBackend) };
        let len = b.len();
        let slot = match self.flows.lookup_v4_entry(hash, now_ms) {
            Some(mut e) => {
                e.on_packet(f.proto() != proto::TCP, f.tcp_flags());
                let target = e.target();
                if select::keeps_flows(vip, target) {
                    target
                } else {
                    let slot = repick(&mut self.counters, vip, &FlowKey::V4(f.key()));
                    if slot != NO_BACKEND {
                        e.set_target(slot);
                    }
                    slot
                }
            }
            None => self.new_flow_v4(vip, f, hash, now_ms),
        };
        if slot == NO_BACKEND {
            self.counters.vip_only(vip_id, len);
            return Err(DropReason::NoBackend);
        }
        self.counters.vip_backend(vip_id, slot, len);
        let r = match vip.tunnels.get(usize::from(slot)) {
            Some(outer) => encap::encapsulate_v4_untagged(b, f, snap.node.mtu, outer),
            None => Err(EncapError::NoSource),
        };
        match r {
            Ok(()) => {
                self.counters.inc(Counter::Encapsulated);
                Ok(Verdict::Tx)
            }
            Err(e) => self.encap_failed(snap, b, &f.parsed(), e, (vip, slot)),
        }
    }

    /// A fast-lane flow the table does not hold: Maglev's choice, remembered.
    #[inline]
    fn new_flow_v4(&mut self, vip: &VipEntry, f: &FastV4, hash: FlowHash, now_ms: u32) -> u16 {
        let slot = select::pick(vip, &FlowKey::V4(f.key()));
        if slot != NO_BACKEND {
            let class = new_flow_class(f.proto(), f.tcp_flags());
            // The lookup just missed: the key is absent.
            self.flows.insert_absent_v4(hash, FlowValue { target: slot, class, reverse: false }, now_ms);
        }
        slot
    }

    /// The backend slot of a flow: the flow table's, unless that backend went
    /// down or was removed; otherwise Maglev's choice, remembered.
    #[inline(always)]
    fn backend_for(&mut self, vip: &VipEntry, p: &Parsed, hash: FlowHash, now_ms: u32) -> u16 {
        let key = &p.key;
        if let Some(v) = self.flows.lookup_hashed(key, hash, now_ms) {
            v.class = next_class(v.class, p);
            if select::keeps_flows(vip, v.target) {
                return v.target;
            }
            let slot = repick(&mut self.counters, vip, key);
            if slot != NO_BACKEND {
                v.target = slot;
            }
            return slot;
        }
        let slot = select::pick(vip, key);
        if slot != NO_BACKEND {
            // The lookup just missed: the key is absent.
            let value = FlowValue { target: slot, class: class_of(p), reverse: false };
            self.flows.insert_absent_hashed(key, hash, value, now_ms);
        }
        slot
    }

    /// Keep the reverse (reply) entry of a DNAT flow alive, creating it if needed.
    #[inline]
    fn touch_reverse(&mut self, rk: &FlowKey, vip_id: u16, p: &Parsed, now_ms: u32) {
        match self.flows.lookup(rk, now_ms) {
            Some(v) if v.reverse && v.target == vip_id => {
                v.class = next_class(v.class, p);
            }
            _ => {
                self.flows.insert(rk, FlowValue { target: vip_id, class: class_of(p), reverse: true }, now_ms);
            }
        }
    }

    /// `r`, a DNAT rewrite of a packet already counted for backend `slot` of VIP
    /// `vip_id` (`len` bytes): when it failed, the backend's count is taken back.
    #[inline(always)]
    fn unsent_on_error(&mut self, r: Result<(), DropReason>, counted: (u16, u16, usize)) -> Result<(), DropReason> {
        if r.is_err() {
            let (vip_id, slot, len) = counted;
            self.counters.backend_unsent(vip_id, slot, len);
        }
        r
    }

    /// Encapsulate towards backend `slot` of `vip`, answering with ICMP when too big.
    /// The packet was counted for the backend: when it does not go there, the count
    /// is taken back (in the cold path, so that the common one keeps no extra values).
    #[inline(always)]
    fn encap<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        b: &mut B,
        p: &Parsed,
        vip: &VipEntry,
        slot: u16,
    ) -> Result<Verdict, DropReason> {
        let Some(outer) = vip.tunnels.get(usize::from(slot)) else {
            return self.encap_failed(snap, b, p, EncapError::NoSource, (vip, slot));
        };
        match encap::encapsulate(b, p, snap.node.mtu, outer) {
            Ok(()) => {
                self.counters.inc(Counter::Encapsulated);
                Ok(Verdict::Tx)
            }
            Err(e) => self.encap_failed(snap, b, p, e, (vip, slot)),
        }
    }

    /// The rare outcomes of [`Pipeline::encap`], out of the hot loop's way.
    #[cold]
    #[inline(never)]
    fn encap_failed<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        b: &mut B,
        p: &Parsed,
        e: EncapError,
        counted: (&VipEntry, u16),
    ) -> Result<Verdict, DropReason> {
        // Not sent to the backend after all. The VIP's index from its place in the
        // snapshot's list; the length as received (encapsulate fails before it
        // changes the frame, except for headroom, which DPDK, AF_XDP and the heap
        // buffers always have).
        let (vip, slot) = counted;
        let vip_id = (vip as *const VipEntry as usize).wrapping_sub(snap.vips.as_ptr() as usize)
            / std::mem::size_of::<VipEntry>().max(1);
        if let Ok(vip_id) = u16::try_from(vip_id) {
            self.counters.backend_unsent(vip_id, slot, b.len());
        }
        match e {
            EncapError::TooBig { inner_mtu } => {
                // IPv4 with DF: "fragmentation needed"; IPv6: "packet too big";
                // IPv4 without DF, or ICMP itself: no answer is due.
                if (p.is_v4() && !p.df) || p.proto == proto::ICMP || p.proto == proto::ICMPV6 {
                    return Err(DropReason::TooBig);
                }
                icmp::too_big(b, p, &snap.node, inner_mtu)?;
                self.counters.inc(Counter::IcmpTooBigSent);
                Ok(Verdict::Tx)
            }
            EncapError::NoHeadroom => Err(DropReason::NoHeadroom),
            EncapError::NoSource => Err(DropReason::NoTunnelSource),
        }
    }

    /// DNAT sends a packet as long as it came in: `None` when that fits `node.mtu`,
    /// else the packet's answer instead of the rewrite ([`Pipeline::dnat_too_big`]).
    /// `counted`: the backend count to take back (requests, counted for their backend).
    #[inline(always)]
    fn dnat_over_mtu<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        b: &mut B,
        p: &Parsed,
        counted: Option<(u16, u16, usize)>,
    ) -> Option<Result<Verdict, DropReason>> {
        if p.ip_len <= usize::from(snap.node.mtu) {
            return None;
        }
        if let Some((vip_id, slot, len)) = counted {
            self.counters.backend_unsent(vip_id, slot, len);
        }
        Some(self.dnat_too_big(snap, b, p))
    }

    /// What an encapsulation too big gets: an ICMP "fragmentation needed" (IPv4 with
    /// DF) or "packet too big" (IPv6) goes back to its sender, as DPVS answers; an IPv4
    /// packet without DF, or ICMP itself, is dropped and counted (l4lb does not fragment).
    #[cold]
    #[inline(never)]
    fn dnat_too_big<B: PacketBuf>(&mut self, snap: &Snapshot, b: &mut B, p: &Parsed) -> Result<Verdict, DropReason> {
        // As a router: a packet whose TTL / hop limit runs out is dropped for that first.
        if nat::ttl_runs_out(b.data(), p.l2_len, p.is_v4()) {
            return Err(DropReason::TtlExpired);
        }
        if (p.is_v4() && !p.df) || p.proto == proto::ICMP || p.proto == proto::ICMPV6 {
            return Err(DropReason::TooBig);
        }
        icmp::too_big(b, p, &snap.node, snap.node.mtu)?;
        self.counters.inc(Counter::IcmpTooBigSent);
        Ok(Verdict::Tx)
    }

    /// A reply from a DNAT backend: rewrite back to the VIP if we know its flow.
    #[inline]
    fn dnat_reply<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        now_ms: u32,
        b: &mut B,
        p: &Parsed,
        hash: FlowHash,
    ) -> Result<Verdict, DropReason> {
        let vip_id = match self.flows.lookup_hashed(&p.key, hash, now_ms) {
            Some(v) if v.reverse => {
                v.class = next_class(v.class, p);
                v.target
            }
            _ => return Ok(Verdict::Host),
        };
        let Some(vip) = snap.vips.get(usize::from(vip_id)) else { return Ok(Verdict::Host) };
        if let Some(r) = self.dnat_over_mtu(snap, b, p, None) {
            return r;
        }
        let vip_port = nat::vip_port(vip);
        nat::rewrite_buf(b, p, &snap.node, End::Source, &vip.address, vip_port)?;
        // A reply is a packet of the connection too: it keeps the client's entry alive
        // (the backend choice) as it keeps its own, so that a connection whose client is
        // quiet (a download, server push) does not lose its backend after a timeout.
        let port = vip_port.unwrap_or(p.key.src_port());
        if let Some(fk) = FlowKey::new(p.key.dst_addr(), vip.address, p.key.dst_port(), port, p.proto)
            && let Some(v) = self.flows.lookup(&fk, now_ms)
            && !v.reverse
        {
            v.class = next_class(v.class, p);
        }
        self.counters.inc(Counter::DnatReply);
        Ok(Verdict::Tx)
    }

    /// ICMP to a VIP address: answer echoes; route errors to the quoted flow's backend.
    fn icmp_to_vip<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        now_ms: u32,
        b: &mut B,
        p: &Parsed,
    ) -> Result<Verdict, DropReason> {
        match icmp::inspect(b.data(), p)? {
            icmp::IcmpKind::EchoRequest => {
                icmp::echo_request_ok(b.data(), p)?;
                // The answer is as long as the request: no more than `node.mtu` is sent.
                if p.ip_len > usize::from(snap.node.mtu) {
                    return Err(DropReason::TooBig);
                }
                icmp::echo_reply(b, p, &snap.node);
                self.counters.inc(Counter::IcmpEchoAnswered);
                Ok(Verdict::Tx)
            }
            icmp::IcmpKind::Other => Ok(Verdict::Host),
            icmp::IcmpKind::Error { flow, quote } => {
                let vip_id = match &flow {
                    FlowKey::V4(k) => snap.lookup_vip_v4(k.dst, k.dst_port, k.proto),
                    FlowKey::V6(k) => snap.lookup_vip_v6(k.dst, k.dst_port, k.proto),
                };
                let Some(vip_id) = vip_id else { return Ok(Verdict::Host) };
                let vip = &snap.vips[usize::from(vip_id)];
                // The flow's backend: the table's if this worker holds the flow, else Maglev's.
                let slot = match self.flows.lookup(&flow, now_ms) {
                    Some(v) if !v.reverse && select::keeps_flows(vip, v.target) => v.target,
                    _ => select::pick(vip, &flow),
                };
                if slot == NO_BACKEND {
                    return Err(DropReason::NoBackend);
                }
                let len = b.len();
                self.counters.vip_backend(vip_id, slot, len);
                self.counters.inc(Counter::IcmpErrorsForwarded);
                match vip.forwarding {
                    Forwarding::Gre | Forwarding::Ipip => self.encap(snap, b, p, vip, slot),
                    Forwarding::Dnat => {
                        let backend = &vip.backends[usize::from(slot)];
                        let port = nat::backend_port(vip, backend);
                        let r = icmp::dnat_error(b.data_mut(), p, &snap.node, quote, &backend.address, port);
                        self.unsent_on_error(r, (vip_id, slot, len))?;
                        Ok(Verdict::Tx)
                    }
                }
            }
        }
    }

    /// ICMP to an address that is not a VIP: the host's, unless it is an error about
    /// a packet this load balancer sent to a DNAT backend (a router on the way to the
    /// backend answered the client). Then the quote is translated back to the VIP and
    /// the error goes on to the client, so that its stack matches it (PMTU discovery
    /// through DNAT). Anything this does not recognise, malformed included, is the
    /// host's, as before.
    #[cold]
    fn icmp_to_other<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        now_ms: u32,
        b: &mut B,
        p: &Parsed,
    ) -> Result<Verdict, DropReason> {
        let Ok(icmp::IcmpKind::Error { flow, quote }) = icmp::inspect(b.data(), p) else { return Ok(Verdict::Host) };
        // `flow` is the quote reversed: backend to client for a translated request,
        // the key of the DNAT flow's reply entry.
        if !steer::is_dnat_backend_end(&flow, snap) {
            return Ok(Verdict::Host);
        }
        let vip_id = match self.flows.peek(&flow, now_ms) {
            Some(v) if v.reverse => v.target,
            _ => return Ok(Verdict::Host),
        };
        let Some(vip) = snap.vips.get(usize::from(vip_id)) else { return Ok(Verdict::Host) };
        icmp::dnat_error_to_client(b.data_mut(), p, &snap.node, quote, &vip.address, nat::vip_port(vip))?;
        self.counters.inc(Counter::IcmpErrorsToClient);
        Ok(Verdict::Tx)
    }

    /// A fragment to a VIP: backend by addresses and protocol, so every fragment
    /// of a datagram goes to the same one.
    fn fragment_to_vip<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        b: &mut B,
        p: &Parsed,
        vip_id: u16,
    ) -> Result<Verdict, DropReason> {
        self.counters.inc(Counter::Fragments);
        let vip = &snap.vips[usize::from(vip_id)];
        let slot = select::pick_fragment(vip, &p.key);
        if slot == NO_BACKEND {
            self.counters.vip_only(vip_id, b.len());
            return Err(DropReason::NoBackend);
        }
        let len = b.len();
        self.counters.vip_backend(vip_id, slot, len);
        match vip.forwarding {
            Forwarding::Gre | Forwarding::Ipip => self.encap(snap, b, p, vip, slot),
            Forwarding::Dnat => {
                if let Some(r) = self.dnat_over_mtu(snap, b, p, Some((vip_id, slot, len))) {
                    return r;
                }
                let backend = &vip.backends[usize::from(slot)];
                // Only the first fragment carries the port.
                let port = if p.frag == Frag::First { nat::backend_port(vip, backend) } else { None };
                let r = nat::rewrite_buf(b, p, &snap.node, End::Destination, &backend.address, port);
                self.unsent_on_error(r, (vip_id, slot, len))?;
                self.counters.inc(Counter::DnatForward);
                Ok(Verdict::Tx)
            }
        }
    }

    /// A fragment from a DNAT backend: source rewritten back to the VIP statelessly.
    fn dnat_reply_fragment<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        b: &mut B,
        p: &Parsed,
        vip_id: u16,
    ) -> Result<Verdict, DropReason> {
        self.counters.inc(Counter::Fragments);
        let vip = &snap.vips[usize::from(vip_id)];
        if let Some(r) = self.dnat_over_mtu(snap, b, p, None) {
            return r;
        }
        let port = if p.frag == Frag::First { nat::vip_port(vip) } else { None };
        nat::rewrite_buf(b, p, &snap.node, End::Source, &vip.address, port)?;
        self.counters.inc(Counter::DnatReply);
        Ok(Verdict::Tx)
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;
    use common::flow::{FlowKey, FlowKeyV4};
    use common::wire::tcp::flags as tcpf;

    fn tcp(flags: u8) -> Parsed {
        Parsed {
            l2_len: 14,
            ethertype_off: 12,
            ip_len: 40,
            l4_off: 34,
            proto: proto::TCP,
            key: FlowKey::V4(FlowKeyV4::default()),
            has_ports: true,
            frag: Frag::No,
            tcp_flags: flags,
            tos: 0,
            df: true,
        }
    }

    #[test]
    fn tcp_life_cycle() {
        use tcpf::{ACK, FIN, RST, SYN};
        let mut c = class_of(&tcp(SYN));
        assert_eq!(c, FlowClass::Transitory);
        c = next_class(c, &tcp(SYN));
        assert_eq!(c, FlowClass::Transitory, "a retransmitted SYN stays transitory");
        c = next_class(c, &tcp(ACK));
        assert_eq!(c, FlowClass::Established);
        c = next_class(c, &tcp(FIN | ACK));
        assert_eq!(c, FlowClass::Closing);
        c = next_class(c, &tcp(ACK));
        assert_eq!(c, FlowClass::Closing, "the last ACK of a close does not re-establish");
        c = next_class(c, &tcp(SYN));
        assert_eq!(c, FlowClass::Transitory, "port reuse reopens");
        assert_eq!(next_class(FlowClass::Established, &tcp(RST)), FlowClass::Closing);
        assert_eq!(class_of(&tcp(ACK)), FlowClass::Established);
        assert_eq!(class_of(&tcp(RST)), FlowClass::Closing);
        let mut udp = tcp(0);
        udp.proto = proto::UDP;
        assert_eq!(class_of(&udp), FlowClass::Udp);
    }
}
