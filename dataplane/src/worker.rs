//! The worker: a poll-mode loop over one port queue, run to completion.
//!
//! Each iteration: take the newest snapshot if one was published (burst boundary),
//! receive a burst, hand packets whose flow another worker owns to that worker
//! (single-producer single-consumer rings, one per ordered pair of workers), add the
//! packets other workers handed to us, run the pipeline, and move each buffer where
//! its verdict says: transmit, host, or free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::counters::{Counter, Counters, DropReason};
use crate::flow_table::FlowTableStats;
use crate::pipeline::{Pipeline, Verdict};
use crate::port::{BURST, PacketBuf, Port, PortStats};
use crate::snapshot_cell::SnapshotReader;
use common::snapshot::Snapshot;

/// Packets a handoff ring holds: room for several bursts while the owner is busy or
/// descheduled (DPDK measurements overflowed 4 bursts on a shared machine).
pub const HANDOFF_RING: usize = 32 * BURST;

/// Copy slots per ordered pair of workers, for ports whose buffers cannot move
/// between queues (see [`handoff_mesh_copying`]).
pub const HANDOFF_COPY_SLOTS: usize = 8 * BURST;

/// Longest frame a copied handoff carries (AF_XDP frames hold at most 4096 − 384
/// bytes); longer ones are dropped and counted as `handoff_full`.
pub const HANDOFF_COPY_MAX: usize = 4096;

/// A frame copied out of a buffer that cannot leave its queue, on its way to the
/// owning worker. Allocated once, at start; slots shuttle between the two workers.
pub struct FrameCopy {
    len: usize,
    bytes: [u8; HANDOFF_COPY_MAX],
}

impl FrameCopy {
    fn new() -> Box<FrameCopy> {
        Box::new(FrameCopy { len: 0, bytes: [0; HANDOFF_COPY_MAX] })
    }

    /// The copied frame.
    pub fn frame(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The sender's end of a copying link: full slots go out on `full`, empty ones come
/// back on `empty` (the receiver returns every slot it takes).
struct CopyOut {
    full: rtrb::Producer<Box<FrameCopy>>,
    empty: rtrb::Consumer<Box<FrameCopy>>,
}

/// The receiver's end of a copying link.
struct CopyIn {
    full: rtrb::Consumer<Box<FrameCopy>>,
    empty: rtrb::Producer<Box<FrameCopy>>,
}

/// One worker's ends of the handoff mesh.
pub struct Handoff<B> {
    /// `to[w]`: ring towards worker `w` (`None` for ourselves).
    to: Vec<Option<rtrb::Producer<B>>>,
    /// Rings from every other worker.
    from: Vec<rtrb::Consumer<B>>,
    /// Copying links (empty unless built by [`handoff_mesh_copying`]): `copy_to[w]`
    /// towards worker `w` (`None` for ourselves), `copy_from` from every other one.
    copy_to: Vec<Option<CopyOut>>,
    copy_from: Vec<CopyIn>,
}

/// Build the rings between `workers` workers: element `i` belongs to worker `i`.
/// Buffers themselves travel: for ports whose buffers may move between queues.
pub fn handoff_mesh<B>(workers: usize) -> Vec<Handoff<B>> {
    mesh(workers, false)
}

/// As [`handoff_mesh`], for ports whose buffers cannot leave their queue (AF_XDP:
/// each queue has its own UMEM). A packet another worker owns is copied into one of
/// [`HANDOFF_COPY_SLOTS`] preallocated slots of the link, its buffer freed where it
/// arrived; the owner copies it into a buffer of its own queue
/// ([`Port::alloc_copy`]) and returns the slot. No allocation after start-up.
pub fn handoff_mesh_copying<B>(workers: usize) -> Vec<Handoff<B>> {
    mesh(workers, true)
}

/// One link per ordered pair of workers: buffer rings, or copying links.
fn mesh<B>(workers: usize, copying: bool) -> Vec<Handoff<B>> {
    fn slots<T>(workers: usize, used: bool) -> Vec<Option<T>> {
        if used { (0..workers).map(|_| None).collect() } else { Vec::new() }
    }
    let mut mesh: Vec<Handoff<B>> = (0..workers)
        .map(|_| Handoff {
            to: slots(workers, !copying),
            from: Vec::new(),
            copy_to: slots(workers, copying),
            copy_from: Vec::new(),
        })
        .collect();
    for src in 0..workers {
        for dst in (0..workers).filter(|&d| d != src) {
            if copying {
                let (full_p, full_c) = rtrb::RingBuffer::new(HANDOFF_COPY_SLOTS);
                let (mut empty_p, empty_c) = rtrb::RingBuffer::new(HANDOFF_COPY_SLOTS);
                for _ in 0..HANDOFF_COPY_SLOTS {
                    // Cannot fail: the ring has exactly this many places.
                    let _ = empty_p.push(FrameCopy::new());
                }
                mesh[src].copy_to[dst] = Some(CopyOut { full: full_p, empty: empty_c });
                mesh[dst].copy_from.push(CopyIn { full: full_c, empty: empty_p });
            } else {
                let (p, c) = rtrb::RingBuffer::new(HANDOFF_RING);
                mesh[src].to[dst] = Some(p);
                mesh[dst].from.push(c);
            }
        }
    }
    mesh
}

/// What a worker shares with the control plane: a copy of its counters and its
/// port's, refreshed every few milliseconds (not per packet).
#[derive(Default, Debug, Clone)]
pub struct WorkerStats {
    pub counters: Counters,
    pub port: PortStats,
    pub flows: FlowTableStats,
}

/// A poll-mode worker.
pub struct Worker<P: Port> {
    pub port: P,
    pub pipeline: Pipeline,
    snap: SnapshotReader,
    handoff: Handoff<P::Buf>,
    rx: Vec<P::Buf>,
    work: Vec<P::Buf>,
    tx: Vec<P::Buf>,
    host: Vec<P::Buf>,
    free: Vec<P::Buf>,
    verdicts: Vec<Verdict>,
    shared: Arc<Mutex<WorkerStats>>,
}

impl<P: Port> Worker<P> {
    pub fn new(port: P, pipeline: Pipeline, snap: SnapshotReader, handoff: Handoff<P::Buf>) -> Self {
        let cap = BURST * 8;
        Worker {
            port,
            pipeline,
            snap,
            handoff,
            rx: Vec::with_capacity(cap),
            work: Vec::with_capacity(cap),
            tx: Vec::with_capacity(cap),
            host: Vec::with_capacity(cap),
            free: Vec::with_capacity(cap),
            verdicts: vec![Verdict::Drop; cap],
            shared: Arc::new(Mutex::new(WorkerStats::default())),
        }
    }

    /// Where this worker publishes its statistics.
    pub fn stats_handle(&self) -> Arc<Mutex<WorkerStats>> {
        Arc::clone(&self.shared)
    }

    /// One iteration of the loop. Returns the number of packets processed.
    #[inline]
    pub fn poll(&mut self, now_ns: u64) -> usize {
        if self.snap.refresh() {
            self.pipeline.on_snapshot(self.snap.get());
        }
        let snap = self.snap.get();
        self.port.rx_burst(&mut self.rx, BURST);
        // Steer: hand packets whose flow another worker owns to that worker: the
        // buffer itself when the port's buffers can move between queues, else a copy
        // (when the mesh has copying links; without them the receiving worker keeps
        // the packet: ICMP errors then fall back to the Maglev choice of the quoted flow).
        if self.pipeline.workers > 1 && self.port.buffers_move_between_queues() {
            let me = self.pipeline.worker;
            for b in self.rx.drain(..) {
                match self.pipeline.steer(b.data(), snap) {
                    Some(owner) if owner != me => {
                        if let Some(Some(ring)) = self.handoff.to.get_mut(usize::from(owner)) {
                            match ring.push(b) {
                                Ok(()) => self.pipeline.counters.inc(Counter::HandoffOut),
                                Err(rtrb::PushError::Full(b)) => {
                                    self.pipeline.counters.drop(DropReason::HandoffFull);
                                    self.free.push(b);
                                }
                            }
                        } else {
                            self.work.push(b);
                        }
                    }
                    _ => self.work.push(b),
                }
            }
            for ring in self.handoff.from.iter_mut() {
                while self.work.len() < self.work.capacity() {
                    match ring.pop() {
                        Ok(b) => {
                            self.pipeline.counters.inc(Counter::HandoffIn);
                            self.work.push(b);
                        }
                        Err(_) => break,
                    }
                }
            }
        } else if self.pipeline.workers > 1 && !self.handoff.copy_to.is_empty() {
            steer_by_copy(
                &mut self.pipeline,
                &mut self.handoff,
                &mut self.port,
                (&mut self.rx, &mut self.work, &mut self.free),
                snap,
            );
        } else {
            std::mem::swap(&mut self.rx, &mut self.work);
        }
        let n = self.work.len();
        if n == 0 {
            if !self.free.is_empty() {
                self.port.free(&mut self.free);
            }
            return 0;
        }
        if self.verdicts.len() < n {
            self.verdicts.resize(n, Verdict::Drop);
        }
        let sent = self.pipeline.process(snap, now_ns, &mut self.work, &mut self.verdicts[..n]);
        if sent == n && self.tx.is_empty() {
            // All to the network (the common burst): send it as it is.
            std::mem::swap(&mut self.work, &mut self.tx);
        } else {
            for (b, v) in self.work.drain(..).zip(self.verdicts.iter()) {
                match v {
                    Verdict::Tx => self.tx.push(b),
                    Verdict::Host => self.host.push(b),
                    Verdict::Drop | Verdict::Handoff(_) => self.free.push(b),
                }
            }
        }
        if !self.tx.is_empty() {
            self.port.tx_burst(&mut self.tx);
        }
        if !self.host.is_empty() {
            self.port.to_host(&mut self.host);
        }
        if !self.free.is_empty() {
            self.port.free(&mut self.free);
        }
        n
    }

    /// Copy counters out for the control plane (every few milliseconds, off the packet path).
    pub fn publish_stats(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.counters.clone_from(&self.pipeline.counters);
            s.port = self.port.stats();
            s.flows = self.pipeline.flows().stats();
        }
    }

    /// Reclaim the expired entries of the next `buckets` buckets of the flow table.
    pub fn sweep(&mut self, now_ns: u64, buckets: usize) -> u64 {
        self.pipeline.flows_mut().expire_some((now_ns / 1_000_000) as u32, buckets)
    }

    /// Busy-poll until `stop` is set, publishing stats every ~10 ms; then drain
    /// (a few empty polls so in-flight handoffs are processed) and publish a last time.
    pub fn run(&mut self, stop: &AtomicBool) {
        let start = Instant::now();
        let mut last_pub = 0u64;
        let mut iter: u32 = 0;
        while !stop.load(Ordering::Relaxed) {
            let now = start.elapsed().as_nanos() as u64;
            let n = self.poll(now);
            iter = iter.wrapping_add(1);
            // Expired flows are reclaimed a few buckets at a time: on every idle poll,
            // and on every 256th busy one (a bucket or two per 8192 packets), so that
            // every entry is looked at far more often than every 24 days: an entry
            // older than 2^31 ms would look fresh again (docs/FLOW_TABLE.md).
            if n == 0 {
                self.sweep(now, IDLE_SWEEP_BUCKETS);
            } else if iter.is_multiple_of(256) {
                self.sweep(now, 1);
            }
            if iter.is_multiple_of(1024) || n == 0 {
                if now.saturating_sub(last_pub) > 10_000_000 {
                    self.publish_stats();
                    last_pub = now;
                }
                if n == 0 {
                    std::hint::spin_loop();
                }
            }
        }
        for _ in 0..64 {
            let now = start.elapsed().as_nanos() as u64;
            self.poll(now);
        }
        self.publish_stats();
    }
}

/// Flow-table buckets swept per idle poll ([`Worker::run`]).
pub const IDLE_SWEEP_BUCKETS: usize = 16;

/// A worker's received, work and free lists.
type BufLists<'a, B> = (&'a mut Vec<B>, &'a mut Vec<B>, &'a mut Vec<B>);

/// The copying half of a worker's steer step (see [`handoff_mesh_copying`]): packets
/// another worker owns go out as copies (their buffers are freed here), copies other
/// workers sent come in as buffers of our own port. `bufs`: the worker's received,
/// work and free lists.
#[cold]
fn steer_by_copy<P: Port>(
    pipeline: &mut Pipeline,
    handoff: &mut Handoff<P::Buf>,
    port: &mut P,
    bufs: BufLists<'_, P::Buf>,
    snap: &Snapshot,
) {
    let (rx, work, free) = bufs;
    let me = pipeline.worker;
    for b in rx.drain(..) {
        let owner = match pipeline.steer(b.data(), snap) {
            Some(owner) if owner != me => owner,
            _ => {
                work.push(b);
                continue;
            }
        };
        let Some(Some(link)) = handoff.copy_to.get_mut(usize::from(owner)) else {
            work.push(b);
            continue;
        };
        let frame = b.data();
        if frame.len() > HANDOFF_COPY_MAX {
            pipeline.counters.drop(DropReason::HandoffFull);
        } else if let Ok(mut slot) = link.empty.pop() {
            slot.bytes[..frame.len()].copy_from_slice(frame);
            slot.len = frame.len();
            // Cannot fail: the link has as many places as slots.
            let _ = link.full.push(slot);
            pipeline.counters.inc(Counter::HandoffOut);
        } else {
            pipeline.counters.drop(DropReason::HandoffFull);
        }
        free.push(b);
    }
    for link in handoff.copy_from.iter_mut() {
        while work.len() < work.capacity() {
            let Ok(slot) = link.full.pop() else { break };
            match port.alloc_copy(slot.frame()) {
                Some(b) => {
                    pipeline.counters.inc(Counter::HandoffIn);
                    work.push(b);
                }
                // No free buffer on our queue: dropped like a full ring.
                None => pipeline.counters.drop(DropReason::HandoffFull),
            }
            // Cannot fail: the link has as many places as slots.
            let _ = link.empty.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use common::config::Config;
    use l4lb_tests::builder::{IpOpts, mac, tcp_frame};

    use super::*;
    use crate::port::memory::{HeapBuf, MemoryPort};
    use crate::rss;
    use crate::snapshot_cell::SnapshotCell;

    const CONFIG: &str = r#"
        [node]
        mac = "02:00:00:00:00:01"
        gateway_mac = "02:00:00:00:00:fe"
        ipv4 = "10.0.0.2"
        [[vip]]
        name = "api"
        address = "203.0.113.5"
        port = 80
        protocol = "tcp"
        forwarding = "dnat"
          [[vip.backend]]
          address = "10.3.0.11"
          port = 8080
    "#;

    fn frame(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
        let (lb, gw) = (mac("02:00:00:00:00:01"), mac("02:00:00:00:00:fe"));
        tcp_frame(lb, gw, src, dst, sport, dport, 0x10, b"x", IpOpts::default())
    }

    /// Two workers over ports whose buffers cannot move between queues (AF_XDP's
    /// case), worker 1 owning the flow. The DNAT request arrives on worker `req_at`,
    /// its reply on worker 0.
    fn run(copying: bool, req_at: usize) -> (Worker<MemoryPort>, Worker<MemoryPort>) {
        let cfg = Config::from_toml_str(CONFIG).expect("config");
        let snap = Arc::new(Snapshot::build(&cfg, None));
        let cell = SnapshotCell::new(snap.clone(), 2);
        let mut mesh = if copying { handoff_mesh_copying::<HeapBuf>(2) } else { handoff_mesh::<HeapBuf>(2) };
        let h1 = mesh.pop().unwrap();
        let h0 = mesh.pop().unwrap();
        let mk = |i: u16, h| {
            let mut port = MemoryPort::new();
            port.fixed_buffers = true;
            Worker::new(port, Pipeline::new(i, 2, 1024, &snap), cell.reader(usize::from(i)), h)
        };
        let (mut w0, mut w1) = (mk(0, h0), mk(1, h1));
        // A client port whose flow worker 1 owns.
        let sport = (1024u16..).find(|&p| rss::client_owner(&[172, 16, 0, 2], p, 6, 2) == 1).unwrap();
        let req = HeapBuf::from_frame(&frame("172.16.0.2", "203.0.113.5", sport, 80));
        if req_at == 0 {
            w0.port.push_rx(req)
        } else {
            w1.port.push_rx(req)
        }
        w0.poll(1_000_000);
        w1.poll(1_000_000);
        w0.port.push_rx(HeapBuf::from_frame(&frame("10.3.0.11", "172.16.0.2", 8080, sport)));
        w0.poll(2_000_000);
        w1.poll(2_000_000);
        (w0, w1)
    }

    /// Both on worker 0: worker 1 forwards the request and rewrites the reply back
    /// to the VIP; worker 0 frees both original buffers.
    #[test]
    fn copying_handoff_moves_dnat_flows_to_their_owner() {
        let (w0, w1) = run(true, 0);
        assert!(w0.port.tx.is_empty() && w0.port.host.is_empty(), "worker 0 sends nothing itself");
        assert_eq!(w0.port.pool.len(), 2, "worker 0 freed both received buffers");
        assert_eq!(w0.pipeline.counters.get(Counter::HandoffOut), 2);
        assert_eq!(w1.pipeline.counters.get(Counter::HandoffIn), 2);
        assert_eq!(w1.port.tx.len(), 2, "worker 1 forwards the request and the reply");
        let req = w1.port.tx[0].data();
        assert_eq!(&req[30..34], &[10, 3, 0, 11], "request to the backend");
        assert_eq!(u16::from_be_bytes([req[36], req[37]]), 8080);
        let rep = w1.port.tx[1].data();
        assert_eq!(&rep[26..30], &[203, 0, 113, 5], "reply from the VIP");
        assert_eq!(u16::from_be_bytes([rep[34], rep[35]]), 80);
        assert_eq!(w1.pipeline.counters.get(Counter::DnatReply), 1);
    }

    /// The request on its owner, the reply on the other queue (what RSS does to DNAT
    /// replies): with copying links the reply reaches the owner and is rewritten;
    /// without them it stays on worker 0, which never saw the flow and gives it to
    /// the host (the failure the copying mesh exists for).
    #[test]
    fn a_reply_on_the_wrong_queue_needs_the_copying_links() {
        let (w0, w1) = run(true, 1);
        assert!(w0.port.host.is_empty());
        assert_eq!(w1.port.tx.len(), 2);
        assert_eq!(w1.pipeline.counters.get(Counter::DnatReply), 1);

        let (w0, w1) = run(false, 1);
        assert_eq!(w0.port.host.len(), 1, "an unknown flow's reply goes to the host");
        assert_eq!(w1.port.tx.len(), 1, "only the request");
        assert_eq!(w1.pipeline.counters.get(Counter::DnatReply), 0);
    }

    /// One worker, GRE: a burst of which every packet is sent goes out whole and in
    /// order; a mixed burst is sorted into sent, host and freed, each in order.
    #[test]
    fn bursts_are_sorted_by_verdict_unless_all_are_sent() {
        const GRE: &str = r#"
            [node]
            mac = "02:00:00:00:00:01"
            gateway_mac = "02:00:00:00:00:fe"
            ipv4 = "10.0.0.2"
            [[vip]]
            name = "web"
            address = "203.0.113.5"
            port = 80
            protocol = "tcp"
            forwarding = "gre"
              [[vip.backend]]
              address = "10.3.0.11"
        "#;
        let cfg = Config::from_toml_str(GRE).expect("config");
        let snap = Arc::new(Snapshot::build(&cfg, None));
        let cell = SnapshotCell::new(snap.clone(), 1);
        let h = handoff_mesh::<HeapBuf>(1).pop().unwrap();
        let mut w = Worker::new(MemoryPort::new(), Pipeline::new(0, 1, 1024, &snap), cell.reader(0), h);
        // The source port tells the packets apart after encapsulation (inner TCP at 38).
        let sport = |b: &HeapBuf| u16::from_be_bytes([b.data()[58], b.data()[59]]);
        for p in 0..5u16 {
            w.port.push_rx(HeapBuf::from_frame(&frame("172.16.0.2", "203.0.113.5", 1000 + p, 80)));
        }
        assert_eq!(w.poll(1_000_000), 5);
        assert_eq!(w.port.tx.iter().map(sport).collect::<Vec<_>>(), [1000, 1001, 1002, 1003, 1004]);
        assert!(w.port.host.is_empty() && w.port.pool.is_empty());

        w.port.tx.clear();
        let mut truncated = frame("172.16.0.2", "203.0.113.5", 2001, 80);
        truncated.truncate(20);
        let burst = [
            frame("172.16.0.2", "203.0.113.5", 2000, 80),
            frame("172.16.0.2", "192.0.2.1", 2000, 80),
            truncated,
            frame("172.16.0.2", "203.0.113.5", 2002, 80),
            frame("172.16.0.2", "192.0.2.1", 2003, 80),
        ];
        for f in &burst {
            w.port.push_rx(HeapBuf::from_frame(f));
        }
        assert_eq!(w.poll(2_000_000), 5);
        assert_eq!(w.port.tx.iter().map(sport).collect::<Vec<_>>(), [2000, 2002], "sent, in order");
        let host_sports: Vec<u16> =
            w.port.host.iter().map(|b| u16::from_be_bytes([b.data()[34], b.data()[35]])).collect();
        assert_eq!(host_sports, [2000, 2003], "not for a VIP: to the host, in order");
        assert_eq!(w.port.pool.len(), 1, "the malformed frame is freed");
    }

    /// The sweep a running worker does reclaims expired flows, and only those.
    #[test]
    fn sweeps_reclaim_expired_flows() {
        let (mut w, _) = run(false, 0);
        let active = w.pipeline.flows().stats().active;
        assert!(active > 0);
        // Not yet expired (established TCP: 300 s).
        for _ in 0..2048 {
            w.sweep(3_000_000_000, IDLE_SWEEP_BUCKETS);
        }
        assert_eq!(w.pipeline.flows().stats().active, active);
        for _ in 0..2048 {
            w.sweep(400_000_000_000, IDLE_SWEEP_BUCKETS);
        }
        let s = w.pipeline.flows().stats();
        assert_eq!((s.active, s.expired), (0, active));
    }

    #[test]
    fn copying_handoff_counts_what_it_cannot_carry() {
        let cfg = Config::from_toml_str(CONFIG).expect("config");
        let snap = Arc::new(Snapshot::build(&cfg, None));
        let cell = SnapshotCell::new(snap.clone(), 2);
        let mut mesh = handoff_mesh_copying::<HeapBuf>(2);
        let h1 = mesh.pop().unwrap();
        let h0 = mesh.pop().unwrap();
        let mut port = MemoryPort::new();
        port.fixed_buffers = true;
        let mut w0 = Worker::new(port, Pipeline::new(0, 2, 1024, &snap), cell.reader(0), h0);
        drop(h1);
        let sport = (1024u16..).find(|&p| rss::client_owner(&[172, 16, 0, 2], p, 6, 2) == 1).unwrap();
        // More packets than the link has slots, worker 1 never polling: the rest are
        // dropped and counted, never blocking worker 0.
        let n = HANDOFF_COPY_SLOTS + 10;
        for _ in 0..n {
            w0.port.push_rx(HeapBuf::from_frame(&frame("172.16.0.2", "203.0.113.5", sport, 80)));
        }
        while !w0.port.rx.is_empty() {
            w0.poll(1_000_000);
        }
        assert_eq!(w0.pipeline.counters.get(Counter::HandoffOut), HANDOFF_COPY_SLOTS as u64);
        assert_eq!(w0.pipeline.counters.dropped(DropReason::HandoffFull), 10);
        assert_eq!(w0.port.pool.len(), n, "every buffer freed");
    }
}
