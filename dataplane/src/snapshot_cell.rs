//! RCU-style publication of forwarding snapshots.
//!
//! The control plane builds a new immutable [`Snapshot`] and [`SnapshotCell::publish`]es
//! it: one atomic pointer swap. Each worker's [`SnapshotReader`] checks the published
//! version once per burst (one relaxed-then-acquire load) and, when it changed, takes
//! the new snapshot and records in its acknowledgement slot which version it now uses.
//! The cell keeps every replaced snapshot in a retired list until all workers have
//! acknowledged a newer one; [`SnapshotCell::reclaim`] (control thread) then drops
//! them. A worker therefore never drops the last reference: snapshots are freed off
//! the packet path (quiescent-state-based reclamation with the burst boundary as the
//! quiescent state).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use common::snapshot::Snapshot;

/// Pads a value to its own cache line so workers' acknowledgements do not false-share.
#[derive(Default, Debug)]
#[repr(align(64))]
struct Padded(AtomicU64);

/// Where the control plane publishes snapshots and workers pick them up.
#[derive(Debug)]
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    version: AtomicU64,
    acks: Box<[Padded]>,
    retired: Mutex<Vec<Arc<Snapshot>>>,
}

impl SnapshotCell {
    /// A cell for `workers` readers, holding `initial`.
    pub fn new(initial: Arc<Snapshot>, workers: usize) -> Arc<Self> {
        let version = initial.version;
        let acks: Box<[Padded]> = (0..workers).map(|_| Padded(AtomicU64::new(version))).collect();
        Arc::new(SnapshotCell {
            current: ArcSwap::new(initial),
            version: AtomicU64::new(version),
            acks,
            retired: Mutex::new(Vec::new()),
        })
    }

    /// Publish `next` (control thread). Its version must be newer than the current one.
    pub fn publish(&self, next: Arc<Snapshot>) {
        let v = next.version;
        let old = self.current.swap(next);
        self.version.store(v, Ordering::Release);
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).push(old);
        self.reclaim();
    }

    /// The snapshot currently published.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Version currently published.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Oldest version some worker may still be using.
    pub fn oldest_in_use(&self) -> u64 {
        self.acks.iter().map(|a| a.0.load(Ordering::Acquire)).min().unwrap_or(u64::MAX)
    }

    /// Free retired snapshots no worker can still hold (control thread). Returns how many remain.
    pub fn reclaim(&self) -> usize {
        let oldest = self.oldest_in_use();
        let mut r = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|s| s.version >= oldest);
        r.len()
    }

    /// A reader for worker `id`.
    pub fn reader(self: &Arc<Self>, id: usize) -> SnapshotReader {
        let snap = self.load();
        self.acks[id].0.store(snap.version, Ordering::Release);
        SnapshotReader { cell: Arc::clone(self), id, snap }
    }
}

/// A worker's view: the snapshot it uses for the current burst.
#[derive(Debug)]
pub struct SnapshotReader {
    cell: Arc<SnapshotCell>,
    id: usize,
    snap: Arc<Snapshot>,
}

impl SnapshotReader {
    /// At a burst boundary: take the newest snapshot if one was published.
    /// Returns true when the snapshot changed.
    #[inline]
    pub fn refresh(&mut self) -> bool {
        if self.cell.version.load(Ordering::Acquire) == self.snap.version {
            return false;
        }
        // The retired list still holds the old snapshot: this drop never frees it.
        self.snap = self.cell.load();
        self.cell.acks[self.id].0.store(self.snap.version, Ordering::Release);
        true
    }

    /// The snapshot in use.
    #[inline]
    pub fn get(&self) -> &Arc<Snapshot> {
        &self.snap
    }
}
