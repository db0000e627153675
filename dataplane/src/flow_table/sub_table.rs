//! One address family's table: a fixed array of 4-way buckets, addressed by a key's
//! two hashes ([`super::FlowHash`]), plus a small overflow area that takes the entry
//! a full bucket would otherwise evict. All the policy (expiry, eviction, counting)
//! is here.
//!
//! **Overflow.** Tables of 64 buckets or more have one overflow bucket per
//! [`OVERFLOW_RATIO`] main buckets (main bucket `i` overflows into bucket
//! `min(i / 32, n_ovf - 1)`) and one flag bit per main bucket, set when a victim of that
//! bucket moved to the overflow area. A hit never looks there unless it missed in
//! its own bucket *and* that bucket's flag is set, so established flows and the
//! misses of buckets that never overflowed cost what they did. Main buckets
//! `32k..32k+31` share overflow bucket `k` (the last one also takes the tail). An entry is evicted
//! only when its overflow bucket is full too. Flags are cleared when a sweep finds
//! an overflow bucket empty.

use super::bucket::{ALL_WAYS, Bucket, WAYS};
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

/// Which entries a sweep reclaims.
#[derive(Clone, Copy)]
enum Sweep<'a> {
    /// Those idle longer than their class's timeout at `now_ms`.
    Expired { now_ms: u32, timeouts: &'a FlowTimeouts },
    /// All of them (the clock moved past every timeout).
    All,
}

impl Sweep<'_> {
    #[inline]
    fn takes(self, bucket: &Bucket, way: usize) -> bool {
        match self {
            Sweep::Expired { now_ms, timeouts } => {
                idle_ms(now_ms, bucket.seen(way)) > timeouts.timeout(bucket.class(way))
            }
            Sweep::All => true,
        }
    }
}

/// Main buckets per overflow bucket.
pub(super) const OVERFLOW_RATIO: usize = 32;

/// The overflow bucket of main bucket `i` among `n_ovf` (> 0): `i / 32`, the last
/// one also taking the tail.
#[inline(always)]
fn ovf_index(i: usize, n_ovf: usize) -> usize {
    (i / OVERFLOW_RATIO).min(n_ovf.saturating_sub(1))
}

/// Flag bit `i` (false past the end, e.g. for tables without an overflow area).
#[inline(always)]
fn flag_bit(flags: &[u64], i: usize) -> bool {
    flags.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

pub(super) struct SubTable {
    buckets: BucketMem<Bucket>,
    /// Number of buckets (`buckets.buckets().len()`).
    n: usize,
    /// The overflow buckets (one unused bucket when `n_ovf` is 0).
    overflow: BucketMem<Bucket>,
    /// Number of overflow buckets in use: `n / OVERFLOW_RATIO`, 0 for tables under
    /// 64 buckets (they evict straight away).
    n_ovf: usize,
    /// Bit `i`: main bucket `i` has (or had) entries in the overflow area.
    flags: Vec<u64>,
    /// Next overflow bucket for [`SubTable::expire_some`].
    ovf_cursor: usize,
    /// Entries moved to the overflow area so far (diagnostics, tests).
    spills: u64,
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
        let n_ovf = Self::overflow_for(n);
        let overflow = BucketMem::new(n_ovf)?;
        let flags = if n_ovf > 0 { vec![0u64; n.div_ceil(64)] } else { Vec::new() };
        Ok(SubTable {
            buckets,
            n,
            overflow,
            n_ovf,
            flags,
            ovf_cursor: 0,
            spills: 0,
            capacity,
            stats: FlowTableStats::default(),
            sweep_cursor: 0,
        })
    }

    /// Main buckets a table for `capacity` flows gets.
    pub(super) fn buckets_for(capacity: usize, budget_x256: usize) -> usize {
        let bucket_bytes = std::mem::size_of::<Bucket>();
        capacity.saturating_mul(budget_x256).div_ceil(256 * bucket_bytes).max(1)
    }

    /// Overflow buckets for `n` main buckets.
    pub(super) fn overflow_for(n: usize) -> usize {
        if n >= 64 { n / OVERFLOW_RATIO } else { 0 }
    }

    /// Bytes a table of `n` main buckets maps (buckets, overflow, flags).
    pub(super) fn bytes_for_buckets(n: usize) -> usize {
        let b = std::mem::size_of::<Bucket>();
        let ovf = Self::overflow_for(n);
        n.saturating_add(ovf.max(1)).saturating_mul(b).saturating_add(if ovf > 0 { n.div_ceil(64) * 8 } else { 0 })
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn buckets(&self) -> usize {
        self.n
    }

    pub(super) fn slots(&self) -> usize {
        (self.n + self.n_ovf) * WAYS
    }

    /// Bytes held for the buckets, the overflow buckets (each rounded up to whole
    /// 4 KiB pages) and the overflow flags.
    pub(super) fn memory_bytes(&self) -> usize {
        self.buckets.memory_bytes() + self.overflow.memory_bytes() + self.flags.len() * 8
    }

    pub(super) fn huge_pages(&self) -> bool {
        self.buckets.huge_pages()
    }

    pub(super) fn huge_range(&self) -> std::ops::Range<usize> {
        self.buckets.huge_range()
    }

    /// Entries moved to the overflow area since the table was made.
    pub(super) fn spills(&self) -> u64 {
        self.spills
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
        let (bucket, way) = self.lookup_way(index, fp, now_ms, timeouts)?;
        bucket.value_mut(way)
    }

    /// [`SubTable::lookup`] as the live entry's bucket and way, always inlined (the
    /// fast lane reads and writes the value's bytes in place through a
    /// [`super::EntryMut`]).
    #[inline(always)]
    pub(super) fn lookup_way(
        &mut self,
        index: u64,
        fp: u64,
        now_ms: u32,
        timeouts: &FlowTimeouts,
    ) -> Option<(&mut Bucket, usize)> {
        let i = self.index(index);
        let bucket = self.buckets.bucket_mut(i)?;
        // Field by field (not `&self` helpers): the main bucket's borrow may be
        // returned, so the miss path can only touch the other fields.
        let (bucket, way) = match bucket.find(fp) {
            Some(way) => (bucket, way),
            None => {
                if !flag_bit(&self.flags, i) {
                    return None;
                }
                let b = self.overflow.bucket_mut(ovf_index(i, self.n_ovf))?;
                let way = b.find(fp)?;
                (b, way)
            }
        };
        if idle_ms(now_ms, bucket.seen(way)) > timeouts.timeout(bucket.class(way)) {
            bucket.clear(way);
            self.stats.expired += 1;
            self.stats.active -= 1;
            return None;
        }
        bucket.set_seen(way, now_ms);
        Some((bucket, way))
    }

    /// Where a new entry goes in `bucket`: the lowest free way; else, with the
    /// expired ways cleared, the lowest of them; else the victim (transitory before
    /// established/UDP, the longest idle among equals). Returns the way, how many
    /// expired entries were cleared, and whether a live entry is being replaced.
    #[inline(always)]
    fn place(bucket: &mut Bucket, now_ms: u32, timeouts: &FlowTimeouts) -> (usize, u64, bool) {
        let occ = bucket.occupied();
        if occ != ALL_WAYS {
            return ((!occ & ALL_WAYS).trailing_zeros() as usize, 0, false);
        }
        // One branch-free pass: which ways expired, and the victim if none did.
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
            for w in 0..WAYS {
                if expired & (1 << w) != 0 {
                    bucket.clear(w);
                }
            }
            return (expired.trailing_zeros() as usize, u64::from(expired.count_ones()), false);
        }
        (victim, 0, true)
    }

    #[inline]
    pub(super) fn insert(&mut self, index: u64, fp: u64, value: FlowValue, now_ms: u32, timeouts: &FlowTimeouts) {
        let i = self.index(index);
        let Some(bucket) = self.buckets.bucket_mut(i) else { return };
        // The key is here (update it), or in the overflow area if this bucket ever
        // overflowed (update it there); else it is absent.
        if let Some(way) = bucket.find(fp) {
            Self::update(bucket, way, value, now_ms, timeouts, &mut self.stats);
            return;
        }
        if flag_bit(&self.flags, i) && self.update_in_overflow(i, fp, value, now_ms, timeouts) {
            return;
        }
        self.insert_absent_at(i, fp, value, now_ms, timeouts);
    }

    /// Insert of a key already in `bucket`'s `way`: new value, seen now. If its entry
    /// had expired, the old flow ended and this is a new one reusing the slot.
    #[inline(always)]
    fn update(
        bucket: &mut Bucket,
        way: usize,
        value: FlowValue,
        now_ms: u32,
        timeouts: &FlowTimeouts,
        stats: &mut FlowTableStats,
    ) {
        let expired = idle_ms(now_ms, bucket.seen(way)) > timeouts.timeout(bucket.class(way));
        bucket.set_value(way, value);
        bucket.set_seen(way, now_ms);
        if expired {
            stats.expired += 1;
            stats.created += 1;
        }
    }

    /// Update the key's entry in main bucket `i`'s overflow bucket, if it is there.
    #[cold]
    #[inline(never)]
    fn update_in_overflow(
        &mut self,
        i: usize,
        fp: u64,
        value: FlowValue,
        now_ms: u32,
        timeouts: &FlowTimeouts,
    ) -> bool {
        let o = ovf_index(i, self.n_ovf);
        if let Some(bucket) = self.overflow.bucket_mut(o)
            && let Some(way) = bucket.find(fp)
        {
            Self::update(bucket, way, value, now_ms, timeouts, &mut self.stats);
            return true;
        }
        false
    }

    /// Insert of a key known to be absent (a lookup of it just missed, and nothing
    /// changed the table since): [`SubTable::insert`] without looking for the key
    /// in its bucket and the overflow area again.
    #[inline]
    pub(super) fn insert_absent(
        &mut self,
        index: u64,
        fp: u64,
        value: FlowValue,
        now_ms: u32,
        timeouts: &FlowTimeouts,
    ) {
        let i = self.index(index);
        self.insert_absent_at(i, fp, value, now_ms, timeouts);
    }

    /// An absent key into main bucket `i`: its lowest free way, else (the bucket is
    /// full) [`SubTable::place_new`].
    #[inline(always)]
    fn insert_absent_at(&mut self, i: usize, fp: u64, value: FlowValue, now_ms: u32, timeouts: &FlowTimeouts) {
        let Some(bucket) = self.buckets.bucket_mut(i) else { return };
        let occ = bucket.occupied();
        if occ != ALL_WAYS {
            bucket.set((!occ & ALL_WAYS).trailing_zeros() as usize, fp, value, now_ms);
            self.stats.active += 1;
            self.stats.created += 1;
            return;
        }
        self.place_new(i, fp, value, now_ms, timeouts);
    }

    /// A key absent from the table into full main bucket `i`: it takes an expired
    /// way, or a victim's, and a live victim moves to the overflow bucket if that has
    /// a free way, or is evicted (a saturated table then costs what it did without
    /// the overflow area).
    #[cold]
    #[inline(never)]
    fn place_new(&mut self, i: usize, fp: u64, value: FlowValue, now_ms: u32, timeouts: &FlowTimeouts) {
        let o = ovf_index(i, self.n_ovf);
        let Some(bucket) = self.buckets.bucket_mut(i) else { return };
        let (way, reclaimed, replaces) = Self::place(bucket, now_ms, timeouts);
        let displaced = replaces.then(|| (bucket.fp(way), bucket.value(way), bucket.seen(way)));
        bucket.set(way, fp, value, now_ms);
        self.stats.created += 1;
        self.stats.expired += reclaimed;
        // The new entry comes in, the reclaimed ones leave.
        self.stats.active = self.stats.active + 1 - reclaimed;
        let Some((dfp, dvalue, dseen)) = displaced else { return };
        let room = self.n_ovf > 0 && self.overflow.bucket(o).is_some_and(|b| b.occupied() != ALL_WAYS);
        if room {
            self.spills += 1;
            if let Some(w) = self.flags.get_mut(i / 64) {
                *w |= 1 << (i % 64);
            }
            if let Some(b) = self.overflow.bucket_mut(o) {
                let free = (!b.occupied()).trailing_zeros() as usize;
                b.set(free, dfp, dvalue, dseen);
            }
        } else {
            self.stats.evicted += 1;
            self.stats.active -= 1;
        }
    }

    #[inline]
    pub(super) fn remove(&mut self, index: u64, fp: u64) -> bool {
        let i = self.index(index);
        let o = if flag_bit(&self.flags, i) { Some(ovf_index(i, self.n_ovf)) } else { None };
        let Some(bucket) = self.buckets.bucket_mut(i) else { return false };
        let bucket = match (bucket.find(fp), o) {
            (Some(_), _) => bucket,
            (None, Some(o)) => match self.overflow.bucket_mut(o) {
                Some(b) => b,
                None => return false,
            },
            (None, None) => return false,
        };
        match bucket.find(fp) {
            Some(way) => {
                bucket.clear(way);
                self.stats.active -= 1;
                true
            }
            None => false,
        }
    }

    /// Reclaim the entries of one bucket that `sweep` takes; returns how many.
    fn sweep_bucket(bucket: &mut Bucket, sweep: Sweep<'_>) -> u64 {
        let occ = bucket.occupied();
        let mut n = 0;
        for way in 0..WAYS {
            if occ & (1 << way) != 0 && sweep.takes(bucket, way) {
                bucket.clear(way);
                n += 1;
            }
        }
        n
    }

    /// Empty the table, counting every entry as expired (the clock moved past every
    /// timeout); returns how many.
    pub(super) fn expire_everything(&mut self) -> u64 {
        self.sweep_all(Sweep::All)
    }

    pub(super) fn expire_all(&mut self, now_ms: u32, timeouts: &FlowTimeouts) -> u64 {
        self.sweep_all(Sweep::Expired { now_ms, timeouts })
    }

    /// Every main and overflow bucket swept, counted as expired.
    fn sweep_all(&mut self, sweep: Sweep<'_>) -> u64 {
        let mut n: u64 = self.buckets.buckets_mut().iter_mut().map(|b| Self::sweep_bucket(b, sweep)).sum();
        for o in 0..self.n_ovf {
            n += self.sweep_overflow(o, sweep);
        }
        self.stats.expired += n;
        self.stats.active -= n;
        n
    }

    pub(super) fn expire_some(&mut self, now_ms: u32, timeouts: &FlowTimeouts, buckets: usize) -> u64 {
        let len = self.n;
        let all = self.buckets.buckets_mut();
        let mut n = 0;
        for _ in 0..buckets.min(len) {
            n += Self::sweep_bucket(&mut all[self.sweep_cursor], Sweep::Expired { now_ms, timeouts });
            self.sweep_cursor += 1;
            if self.sweep_cursor == len {
                self.sweep_cursor = 0;
            }
        }
        // The overflow area at the same pace (one of its buckets per OVERFLOW_RATIO).
        if self.n_ovf > 0 {
            for _ in 0..buckets.min(len).div_ceil(OVERFLOW_RATIO).min(self.n_ovf) {
                n += self.sweep_overflow(self.ovf_cursor, Sweep::Expired { now_ms, timeouts });
                self.ovf_cursor = (self.ovf_cursor + 1) % self.n_ovf;
            }
        }
        self.stats.expired += n;
        self.stats.active -= n;
        n
    }

    /// Reclaim the expired entries of overflow bucket `o`; when it is left empty,
    /// clear the flags of the main buckets that overflow into it.
    fn sweep_overflow(&mut self, o: usize, sweep: Sweep<'_>) -> u64 {
        let Some(bucket) = self.overflow.bucket_mut(o) else { return 0 };
        let n = Self::sweep_bucket(bucket, sweep);
        if bucket.occupied() == 0 {
            // The main buckets that overflow into `o` (see `ovf_of`).
            let first = o * OVERFLOW_RATIO;
            let end = if o + 1 == self.n_ovf { self.n } else { (o + 1) * OVERFLOW_RATIO };
            for i in first..end {
                if let Some(w) = self.flags.get_mut(i / 64) {
                    *w &= !(1 << (i % 64));
                }
            }
        }
        n
    }

    /// The live entry with these hashes, without touching it (tests, diagnostics).
    pub(super) fn peek(&self, index: u64, fp: u64, now_ms: u32, timeouts: &FlowTimeouts) -> Option<FlowValue> {
        let i = self.index(index);
        let mut bucket = self.buckets.bucket(i)?;
        if bucket.find(fp).is_none() && self.n_ovf > 0 && flag_bit(&self.flags, i) {
            bucket = self.overflow.bucket(ovf_index(i, self.n_ovf))?;
        }
        let way = bucket.find(fp)?;
        (idle_ms(now_ms, bucket.seen(way)) <= timeouts.timeout(bucket.class(way))).then(|| bucket.value(way))
    }

    /// The live (not expired at `now_ms`) entries' values. Not for the packet path.
    pub(super) fn live_values<'a>(
        &'a self,
        now_ms: u32,
        timeouts: &'a FlowTimeouts,
    ) -> impl Iterator<Item = FlowValue> + 'a {
        let ovf = &self.overflow.buckets()[..self.n_ovf.min(self.overflow.buckets().len())];
        self.buckets.buckets().iter().chain(ovf).flat_map(move |b| {
            let occ = b.occupied();
            (0..WAYS).filter_map(move |way| {
                let live = occ & (1 << way) != 0 && idle_ms(now_ms, b.seen(way)) <= timeouts.timeout(b.class(way));
                live.then(|| b.value(way))
            })
        })
    }

    pub(super) fn clear(&mut self) {
        for b in self.buckets.buckets_mut().iter_mut().chain(self.overflow.buckets_mut().iter_mut()) {
            for way in 0..WAYS {
                b.clear(way);
            }
        }
        self.flags.fill(0);
        self.stats.active = 0;
    }

    /// Whether any main bucket is flagged as having overflowed (tests).
    #[cfg(test)]
    pub(super) fn any_flag(&self) -> bool {
        self.flags.iter().any(|w| *w != 0)
    }

    /// The bucket of a key's index hash (tests).
    #[cfg(test)]
    pub(super) fn bucket_of(&self, index: u64) -> usize {
        self.index(index)
    }
}
