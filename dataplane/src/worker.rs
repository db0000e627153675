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

/// Packets a handoff ring holds: room for several bursts while the owner is busy or
/// descheduled (DPDK measurements overflowed 4 bursts on a shared machine).
pub const HANDOFF_RING: usize = 32 * BURST;

/// One worker's ends of the handoff mesh.
pub struct Handoff<B> {
    /// `to[w]`: ring towards worker `w` (`None` for ourselves).
    to: Vec<Option<rtrb::Producer<B>>>,
    /// Rings from every other worker.
    from: Vec<rtrb::Consumer<B>>,
}

/// Build the rings between `workers` workers: element `i` belongs to worker `i`.
pub fn handoff_mesh<B>(workers: usize) -> Vec<Handoff<B>> {
    let mut mesh: Vec<Handoff<B>> =
        (0..workers).map(|_| Handoff { to: (0..workers).map(|_| None).collect(), from: Vec::new() }).collect();
    for src in 0..workers {
        for dst in 0..workers {
            if src != dst {
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
        // Steer: hand packets whose flow another worker owns to that worker (when the
        // port's buffers can move between queues; otherwise the receiving worker keeps
        // them: ICMP errors then fall back to the Maglev choice of the quoted flow).
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
        self.pipeline.process(snap, now_ns, &mut self.work, &mut self.verdicts[..n]);
        for (b, v) in self.work.drain(..).zip(self.verdicts.iter()) {
            match v {
                Verdict::Tx => self.tx.push(b),
                Verdict::Host => self.host.push(b),
                Verdict::Drop | Verdict::Handoff(_) => self.free.push(b),
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
