//! One address family's table: a fixed array of 4-way buckets, addressed by a key's
//! two hashes ([`super::FlowHash`]). All the policy (expiry, eviction, counting) is here.

use super::bucket::{Bucket, WAYS};
use super::storage::BucketMem;
use super::{FlowClass, FlowTableStats, FlowTimeouts, FlowValue};

/// Idle time of an entry last seen at `seen` (u32 milliseconds that may wrap).
///
/// A `seen` up to 2^31 ms *ahead* of `now` (a clock that stepped back, packets of a
/// capture slightly out of order) counts as idle 0, not as idle for 49 days.
#[inline(always)]
pub(super) fn idle_ms(now_ms: u32, seen_ms: u32) -> u32 {
    let d = now_ms.wrapping_sub(seen_ms);
    if d > i32::MAX as u32 { 0 } else { d }
}

/// Eviction rank: lower goes first.
#[inline(always)]
fn rank(class: FlowClass) -> u8 {
    match class {
        FlowClass::Transitory | FlowClass::Closing => 0,
        FlowClass::Established | FlowClass::Udp => 1,
    }
}

pub(super) struct SubTable {
    buckets: BucketMem<Bucket>,
    /// Number of buckets (`buckets.buckets().len()`).
    n: usize,
    capacity: usize,
    stats: FlowTableStats,
    /// Next bucket for [`SubTable::expire_some`].
    sweep_cursor: usize,
}

impl SubTable {
    /// A table for `capacity` flows with `budget_per_flow / 256` bytes per flow:
    /// `ceil(capacity * budget / 256 / size_of::<Bucket>())` buckets, at least one.
    pub(super) fn new(capacity: usize, budget_x256: usize) -> Result<Self, String> {
        let n = Self::buckets_for(capacity, budget_x256);
        // The only allocation: zeroed (empty) buckets, on huge pages if big enough,
        // every page written now so that none is first touched on the packet path.
        let buckets = BucketMem::new(n)?;
        Ok(SubTable { buckets, n, capacity, stats: FlowTableStats::default(), sweep_cursor: 0 })
    }

    /// Buckets a table for `capacity` flows gets.
    pub(super) fn buckets_for(capacity: usize, budget_x256: usize) -> usize {
        let bucket_bytes = std::mem::size_of::<Bucket>();
        capacity.saturating_mul(budget_x256).div_ceil(256 * bucket_bytes).max(1)
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn buckets(&self) -> usize {
        self.n
    }

    pub(super) fn slots(&self) -> usize {
        self.n * WAYS
    }

    /// Bytes held for the buckets (rounded up to whole 4 KiB pages).
    pub(super) fn memory_bytes(&self) -> usize {
        self.buckets.memory_bytes()
    }

    pub(super) fn huge_pages(&self) -> bool {
        self.buckets.huge_pages()
    }

    pub(super) fn huge_range(&self) -> std::ops::Range<usize> {
        self.buckets.huge_range()
    }

    pub(super) fn stats(&self) -> FlowTableStats {
        self.stats
    }

    pub(super) fn len(&self) -> usize {
        self.stats.active as usize
    }

    /// fastrange (Lemire): `hash * n / 2^64`, an index in `0..n` for any `n`.
    #[inline(always)]
    fn index(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.n as u128) >> 64) as usize
    }

    #[inline(always)]
    pub(super) fn prefetch(&self, hash: u64) {
        let i = self.index(hash);
        if let Some(b) = self.buckets.bucket(i) {
            b.prefetch();
        }
    }

    #[inline]
    pub(super) fn lookup(
        &mut self,
        index: u64,
        fp: u64,
        now_ms: u32,
        timeouts: &FlowTimeouts,
    ) -> Option<&mut FlowValue> {
        let i = self.index(index);
        let bucket = self.buckets.bucket_mut(i)?;
        let way = bucket.find(fp)?;
        if idle_ms(now_ms, bucket.seen(way)) > timeouts.timeout(bucket.class(way)) {
            bucket.clear(way);
            self.stats.expired += 1;
            self.stats.active -= 1;
            return None;
        }
        bucket.set_seen(way, now_ms);
        bucket.value_mut(way)
    }

    #[inline]
    pub(super) fn insert(&mut self, index: u64, fp: u64, value: FlowValue, now_ms: u32, timeouts: &FlowTimeouts) {
        let i = self.index(index);
        let Some(bucket) = self.buckets.bucket_mut(i) else { return };
        if let Some(way) = bucket.find(fp) {
            let expired = idle_ms(now_ms, bucket.seen(way)) > timeouts.timeout(bucket.class(way));
            bucket.set_value(way, value);
            bucket.set_seen(way, now_ms);
            if expired {
                // The old flow ended; this is a new one that reuses its slot.
                self.stats.expired += 1;
                self.stats.created += 1;
            }
            return;
        }
        let occ = bucket.occupied();
        let all = ((1u16 << WAYS) - 1) as u8;
        let way = if occ != all {
            // A free way: the lowest. Expired entries elsewhere in the bucket stay
            // until it fills up, a lookup meets them, or a sweep passes.
            self.stats.active += 1;
            (!occ & all).trailing_zeros() as usize
        } else {
            // Full. One branch-free pass: which ways expired, and the victim if none
            // did (transitory before established/UDP, the longest idle among equals).
            let mut expired = 0u8;
            let mut victim = 0;
            let mut best = u64::MAX;
            for way in 0..WAYS {
                let class = bucket.class(way);
                let idle = idle_ms(now_ms, bucket.seen(way));
                expired |= u8::from(idle > timeouts.timeout(class)) << way;
                let score = (u64::from(rank(class)) << 32) | u64::from(u32::MAX - idle);
                if score < best {
                    best = score;
                    victim = way;
                }
            }
            if expired != 0 {
                let n = u64::from(expired.count_ones());
                self.stats.expired += n;
                // The reclaimed ways leave, the new entry comes in.
                self.stats.active = self.stats.active + 1 - n;
                for w in 0..WAYS {
                    if expired & (1 << w) != 0 {
                        bucket.clear(w);
                    }
                }
                expired.trailing_zeros() as usize
            } else {
                self.stats.evicted += 1;
                victim
            }
        };
        bucket.set(way, fp, value, now_ms);
        self.stats.created += 1;
    }

    #[inline]
    pub(super) fn remove(&mut self, index: u64, fp: u64) -> bool {
        let i = self.index(index);
        let Some(bucket) = self.buckets.bucket_mut(i) else { return false };
        match bucket.find(fp) {
            Some(way) => {
                bucket.clear(way);
                self.stats.active -= 1;
                true
            }
            None => false,
        }
    }

    /// Reclaim the expired entries of one bucket; returns how many.
    fn sweep_bucket(bucket: &mut Bucket, now_ms: u32, timeouts: &FlowTimeouts) -> u64 {
        let occ = bucket.occupied();
        let mut n = 0;
        for way in 0..WAYS {
            if occ & (1 << way) != 0 && idle_ms(now_ms, bucket.seen(way)) > timeouts.timeout(bucket.class(way)) {
                bucket.clear(way);
                n += 1;
            }
        }
        n
    }

    pub(super) fn expire_all(&mut self, now_ms: u32, timeouts: &FlowTimeouts) -> u64 {
        let n: u64 = self.buckets.buckets_mut().iter_mut().map(|b| Self::sweep_bucket(b, now_ms, timeouts)).sum();
        self.stats.expired += n;
        self.stats.active -= n;
        n
    }

    pub(super) fn expire_some(&mut self, now_ms: u32, timeouts: &FlowTimeouts, buckets: usize) -> u64 {
        let len = self.n;
        let all = self.buckets.buckets_mut();
        let mut n = 0;
        for _ in 0..buckets.min(len) {
            n += Self::sweep_bucket(&mut all[self.sweep_cursor], now_ms, timeouts);
            self.sweep_cursor += 1;
            if self.sweep_cursor == len {
                self.sweep_cursor = 0;
            }
        }
        self.stats.expired += n;
        self.stats.active -= n;
        n
    }

    /// The live entry with these hashes, without touching it (tests, diagnostics).
    pub(super) fn peek(&self, index: u64, fp: u64, now_ms: u32, timeouts: &FlowTimeouts) -> Option<FlowValue> {
        let bucket = self.buckets.bucket(self.index(index))?;
        let way = bucket.find(fp)?;
        (idle_ms(now_ms, bucket.seen(way)) <= timeouts.timeout(bucket.class(way))).then(|| bucket.value(way))
    }

    /// The live (not expired at `now_ms`) entries' values. Not for the packet path.
    pub(super) fn live_values<'a>(
        &'a self,
        now_ms: u32,
        timeouts: &'a FlowTimeouts,
    ) -> impl Iterator<Item = FlowValue> + 'a {
        self.buckets.buckets().iter().flat_map(move |b| {
            let occ = b.occupied();
            (0..WAYS).filter_map(move |way| {
                let live = occ & (1 << way) != 0 && idle_ms(now_ms, b.seen(way)) <= timeouts.timeout(b.class(way));
                live.then(|| b.value(way))
            })
        })
    }

    pub(super) fn clear(&mut self) {
        for b in self.buckets.buckets_mut() {
            for way in 0..WAYS {
                b.clear(way);
            }
        }
        self.stats.active = 0;
    }

    /// The bucket of a key's index hash (tests).
    #[cfg(test)]
    pub(super) fn bucket_of(&self, index: u64) -> usize {
        self.index(index)
    }
}
