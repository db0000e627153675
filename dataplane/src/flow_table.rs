//! The per-worker flow (connection) table.
//!
//! One table per worker, so no locks and no atomics. Memory is allocated once, in
//! [`FlowTable::new`]; nothing on the packet path allocates. Each address family
//! has its own sub-table of 4-way buckets, one 64-byte cache line each (see
//! `docs/FLOW_TABLE.md`). An entry is 16 bytes: the key's 64-bit fingerprint, a
//! last-seen time and the [`FlowValue`]; keys themselves are not stored, so both
//! families cost the same and a lookup reads one line.
//!
//! | family | bucket | ways | bytes per entry | budget per flow at capacity |
//! |--------|--------|------|-----------------|-----------------------------|
//! | IPv4   | 64 B (one line) | 4 | 16 | 31.5 B (1.97 slots per flow) |
//! | IPv6   | 64 B (one line) | 4 | 16 | 31.5 B (1.97 slots per flow) |
//!
//! A key is hashed twice, with independent seeds ([`FlowHash`]): one hash picks the
//! bucket with fastrange (`hash * n >> 64`, so the bucket count need not be a power
//! of two and memory tracks the capacity), the other is the fingerprint compared in
//! the bucket. [`FlowTable::prefetch`] starts loading the bucket.
//!
//! Entries expire by class ([`FlowClass`]) after [`FlowTimeouts`] of idleness; time
//! is u32 milliseconds that may wrap. An expired entry is a miss, reclaimed when
//! touched (or by [`FlowTable::expire_all`] / [`FlowTable::expire_some`]). A new key
//! whose bucket is full takes an expired way if any, else evicts a transitory flow
//! before an established or UDP one, and the longest idle among equals.

mod bucket;
mod storage;
mod sub_table;
#[cfg(test)]
mod tests;

use common::flow::FlowKey;
use zerocopy::{Immutable, IntoBytes, KnownLayout, TryFromBytes};

use bucket::{Seeds, hash_v4, hash_v4_words, hash_v6};
use sub_table::SubTable;

/// Bytes per flow, times 256, that each family's main buckets are sized with: 30.5
/// (1.91 slots per flow). The overflow area (1/32 of that) and its flags bring the
/// whole to about 31.5.
const BUDGET_X256: usize = 61 * 128;

/// Default hash seed: fixed, so that replays are reproducible.
const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// What kind of flow an entry is, which sets its idle timeout and its eviction rank.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, TryFromBytes, IntoBytes, KnownLayout, Immutable)]
pub enum FlowClass {
    /// A TCP flow that has only shown a SYN, or has shown a FIN or RST: short
    /// timeout, evicted first.
    Transitory = 0,
    /// A TCP flow past its handshake.
    Established = 1,
    /// A UDP flow.
    Udp = 2,
    /// A TCP flow that has shown a FIN or RST: transitory timeout, evicted first, and
    /// it stays so (the last ACKs of a close do not re-establish it).
    Closing = 3,
}

impl FlowClass {
    /// The class stored as byte `b` (`b as u8` of a class; other bytes, which the
    /// table never writes, read as `Closing`).
    #[inline(always)]
    const fn from_raw(b: u8) -> FlowClass {
        match b {
            0 => FlowClass::Transitory,
            1 => FlowClass::Established,
            2 => FlowClass::Udp,
            _ => FlowClass::Closing,
        }
    }

    /// The class a TCP segment with these flags (`common::wire::tcp::flags` bits)
    /// gives a new flow: FIN or RST is closing, SYN without ACK transitory, anything
    /// else (a flow picked up mid-stream) established.
    #[inline]
    pub const fn from_tcp_flags(flags: u8) -> FlowClass {
        const FIN: u8 = 0x01;
        const SYN: u8 = 0x02;
        const RST: u8 = 0x04;
        const ACK: u8 = 0x10;
        if flags & (FIN | RST) != 0 {
            FlowClass::Closing
        } else if flags & (SYN | ACK) == SYN {
            FlowClass::Transitory
        } else {
            FlowClass::Established
        }
    }

    /// The class of an existing flow after a segment with these flags: a FIN or RST
    /// closes it for good; a new SYN reopens a closed flow (port reuse); a transitory
    /// flow that sees an ordinary segment becomes established.
    #[inline]
    pub const fn after_tcp_flags(self, flags: u8) -> FlowClass {
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        match (FlowClass::from_tcp_flags(flags), self) {
            (FlowClass::Closing, _) => FlowClass::Closing,
            (FlowClass::Transitory, FlowClass::Closing) => FlowClass::Transitory,
            (FlowClass::Transitory, cur) => cur,
            (_, FlowClass::Closing) if flags & (SYN | ACK) != SYN => FlowClass::Closing,
            (new, _) => new,
        }
    }
}

/// TCP flag bits the class transitions look at (FIN, SYN, RST, ACK): the low 5 bits.
const CLASS_FLAGS: u8 = 0x1f;

/// [`FlowClass::after_tcp_flags`] for every (stored class byte, flags & 0x1f), and
/// `Udp` for UDP: index `udp << 7 | class << 5 | flags & 0x1f`. One load instead of
/// a dozen compares on the fast lane; built from the functions it replaces.
static NEXT_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let class = FlowClass::from_raw((i >> 5) as u8 & 3);
        t[i] = if i >= 128 { FlowClass::Udp as u8 } else { class.after_tcp_flags(i as u8 & CLASS_FLAGS) as u8 };
        i += 1;
    }
    t
};

/// A live entry found by [`FlowTable::lookup_v4_entry`]: its value's fields read
/// and written in place (no `&mut FlowValue` cast to validate).
pub struct EntryMut<'a> {
    bucket: &'a mut bucket::Bucket,
    way: usize,
}

impl EntryMut<'_> {
    /// Backend slot (or VIP id of a reverse entry).
    #[inline(always)]
    pub fn target(&self) -> u16 {
        self.bucket.target(self.way)
    }

    #[inline(always)]
    pub fn set_target(&mut self, target: u16) {
        self.bucket.set_target(self.way, target)
    }

    #[inline(always)]
    pub fn class(&self) -> FlowClass {
        self.bucket.class(self.way)
    }

    /// The class after a packet of this flow: `Udp` for UDP, else
    /// [`FlowClass::after_tcp_flags`] of the segment's flags (by table).
    #[inline(always)]
    pub fn on_packet(&mut self, udp: bool, tcp_flags: u8) {
        let i = (usize::from(udp) << 7)
            | (usize::from(self.bucket.class_byte(self.way) & 3) << 5)
            | usize::from(tcp_flags & CLASS_FLAGS);
        self.bucket.set_class(self.way, FlowClass::from_raw(NEXT_CLASS[i]));
    }
}

/// What the table remembers about a flow (4 bytes, no padding: the table stores
/// its bytes, see `bucket.rs`).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, TryFromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct FlowValue {
    /// Backend slot, or VIP id for a reverse (DNAT reply) entry.
    pub target: u16,
    pub class: FlowClass,
    /// A reverse entry: the key is a backend's reply toward a client.
    pub reverse: bool,
}

/// Idle timeouts per class, in milliseconds. An entry idle for longer than its
/// class's timeout is expired.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowTimeouts {
    pub established_ms: u32,
    pub transitory_ms: u32,
    pub udp_ms: u32,
}

impl FlowTimeouts {
    /// The timeout of `class`.
    #[inline(always)]
    pub fn timeout(&self, class: FlowClass) -> u32 {
        match class {
            FlowClass::Transitory | FlowClass::Closing => self.transitory_ms,
            FlowClass::Established => self.established_ms,
            FlowClass::Udp => self.udp_ms,
        }
    }
}

/// A key's hashes in one table ([`FlowTable::hash`]): valid only for that key and
/// that table (its seed). `index` picks the bucket, `fp` (never 0 for a real key)
/// is the fingerprint stored and compared in it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FlowHash {
    index: u64,
    fp: u64,
}

impl FlowHash {
    /// A hash that is no key's (fingerprints are never 0): placeholders.
    pub const ZERO: FlowHash = FlowHash { index: 0, fp: 0 };
}

/// Counters of a table (or of one family's sub-table).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct FlowTableStats {
    /// Entries inserted for keys that were not in the table (or only expired).
    pub created: u64,
    /// Entries found idle past their timeout and reclaimed.
    pub expired: u64,
    /// Live entries pushed out by a new key in a full bucket.
    pub evicted: u64,
    /// Live entries now (expired ones not yet reclaimed still count).
    pub active: u64,
}

impl std::ops::Add for FlowTableStats {
    type Output = FlowTableStats;
    fn add(self, o: FlowTableStats) -> FlowTableStats {
        FlowTableStats {
            created: self.created + o.created,
            expired: self.expired + o.expired,
            evicted: self.evicted + o.evicted,
            active: self.active + o.active,
        }
    }
}

/// A per-worker flow table: an IPv4 and an IPv6 sub-table of fixed size.
pub struct FlowTable {
    v4: SubTable,
    v6: SubTable,
    timeouts: FlowTimeouts,
    seeds: Seeds,
}

impl FlowTable {
    /// A table sized for `capacity` IPv4 flows *and* `capacity` IPv6 flows (each
    /// family has its own sub-table, so any mix of families fits). Allocates and
    /// writes all its memory now: about 31.5 bytes per flow of each family.
    ///
    /// # Panics
    /// If the memory cannot be mapped (like a `Vec` that cannot allocate); see
    /// [`FlowTable::try_new`].
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> FlowTable {
        FlowTable::try_new(capacity, timeouts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`FlowTable::new`], with an error (naming the size) when the memory cannot be mapped.
    pub fn try_new(capacity: usize, timeouts: FlowTimeouts) -> Result<FlowTable, String> {
        FlowTable::try_with_capacities(capacity, capacity, timeouts)
    }

    /// A table with its own capacity per family (a family given 0 still gets one
    /// bucket).
    ///
    /// # Panics
    /// If the memory cannot be mapped.
    pub fn with_capacities(v4_capacity: usize, v6_capacity: usize, timeouts: FlowTimeouts) -> FlowTable {
        FlowTable::try_with_capacities(v4_capacity, v6_capacity, timeouts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`FlowTable::with_capacities`], with an error when the memory cannot be mapped.
    pub fn try_with_capacities(
        v4_capacity: usize,
        v6_capacity: usize,
        timeouts: FlowTimeouts,
    ) -> Result<FlowTable, String> {
        let err = |e: String| format!("flow table for {v4_capacity} flows: {e}");
        Ok(FlowTable {
            v4: SubTable::new(v4_capacity, BUDGET_X256).map_err(err)?,
            v6: SubTable::new(v6_capacity, BUDGET_X256).map_err(err)?,
            timeouts,
            seeds: Seeds::new(DEFAULT_SEED),
        })
    }

    /// The bytes of buckets a table of `capacity` flows per family maps (both
    /// families), before making one: for a memory check up front.
    pub fn bytes_for(capacity: usize) -> usize {
        SubTable::bytes_for_buckets(SubTable::buckets_for(capacity, BUDGET_X256)).saturating_mul(2)
    }

    /// Use another hash seed (e.g. a random one, so that an outsider cannot aim
    /// many flows at one bucket). Empties the table: entries placed with the old
    /// seed could no longer be found. Counters other than `active` are kept.
    pub fn with_seed(mut self, seed: u64) -> FlowTable {
        self.seeds = Seeds::new(seed);
        self.v4.clear();
        self.v6.clear();
        self
    }

    /// Change the timeouts (applies to existing entries at their next check).
    pub fn set_timeouts(&mut self, timeouts: FlowTimeouts) {
        self.timeouts = timeouts;
    }

    pub fn timeouts(&self) -> FlowTimeouts {
        self.timeouts
    }

    /// The live entry for `key`, its last-seen time set to `now_ms`. An entry
    /// idle past its timeout is a miss; it is reclaimed and counted as expired.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, now_ms: u32) -> Option<&mut FlowValue> {
        self.lookup_hashed(key, self.hash(key), now_ms)
    }

    /// Insert or replace the entry for `key`, seen at `now_ms`. A new key in a full
    /// bucket takes an expired way, else evicts (transitory first, then the longest
    /// idle).
    #[inline]
    pub fn insert(&mut self, key: &FlowKey, value: FlowValue, now_ms: u32) {
        self.insert_hashed(key, self.hash(key), value, now_ms)
    }

    /// Delete the entry for `key`; `true` if there was one (live or not yet reclaimed).
    #[inline]
    pub fn remove(&mut self, key: &FlowKey) -> bool {
        let h = self.hash(key);
        match key {
            FlowKey::V4(_) => self.v4.remove(h.index, h.fp),
            FlowKey::V6(_) => self.v6.remove(h.index, h.fp),
        }
    }

    /// Start loading the bucket of `key` into the cache (no-op off x86-64). Call it
    /// for a whole burst before looking the keys up.
    #[inline]
    pub fn prefetch(&self, key: &FlowKey) {
        self.prefetch_hashed(key, self.hash(key))
    }

    /// The table's hash of `key`, for the `_hashed` variants: a packet's key is
    /// then hashed once for its prefetch, lookup and (on a miss) insert.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> FlowHash {
        let (index, fp) = match key {
            FlowKey::V4(k) => hash_v4(k, self.seeds),
            FlowKey::V6(k) => hash_v6(k, self.seeds),
        };
        FlowHash { index, fp }
    }

    /// [`FlowTable::hash`] of an IPv4 key given as two words: `addrs` (source address
    /// in the low 32 bits, destination in the high, each `u32::from_ne_bytes` of its
    /// bytes) and `rest` (source port, destination port << 16, protocol << 32).
    #[inline(always)]
    pub fn hash_v4_words(&self, addrs: u64, rest: u64) -> FlowHash {
        let (index, fp) = hash_v4_words(addrs, rest, self.seeds);
        FlowHash { index, fp }
    }

    /// [`FlowTable::prefetch_hashed`] for an IPv4 key's hash.
    #[inline(always)]
    pub fn prefetch_v4(&self, hash: FlowHash) {
        self.v4.prefetch(hash.index)
    }

    /// [`FlowTable::lookup_hashed`] for an IPv4 key's hash, inlined into the caller,
    /// as an [`EntryMut`] (the fast lane).
    #[inline(always)]
    pub fn lookup_v4_entry(&mut self, hash: FlowHash, now_ms: u32) -> Option<EntryMut<'_>> {
        let (bucket, way) = self.v4.lookup_way(hash.index, hash.fp, now_ms, &self.timeouts)?;
        Some(EntryMut { bucket, way })
    }

    /// [`FlowTable::insert_absent_hashed`] for an IPv4 key's hash.
    #[inline]
    pub fn insert_absent_v4(&mut self, hash: FlowHash, value: FlowValue, now_ms: u32) {
        self.v4.insert_absent(hash.index, hash.fp, value, now_ms, &self.timeouts)
    }

    /// [`FlowTable::insert_hashed`] of a key that is not in the table: its lookup
    /// (`lookup_hashed`, `lookup_v4_entry`) has just missed and nothing has changed
    /// the table since. It skips looking for the key again; for a key that *is* in
    /// the table it would add a second entry (use [`FlowTable::insert_hashed`]).
    #[inline]
    pub fn insert_absent_hashed(&mut self, key: &FlowKey, hash: FlowHash, value: FlowValue, now_ms: u32) {
        debug_assert_eq!(hash, self.hash(key));
        match key {
            FlowKey::V4(_) => self.v4.insert_absent(hash.index, hash.fp, value, now_ms, &self.timeouts),
            FlowKey::V6(_) => self.v6.insert_absent(hash.index, hash.fp, value, now_ms, &self.timeouts),
        }
    }

    /// [`FlowTable::prefetch`] with `hash == self.hash(key)`.
    #[inline]
    pub fn prefetch_hashed(&self, key: &FlowKey, hash: FlowHash) {
        match key {
            FlowKey::V4(_) => self.v4.prefetch(hash.index),
            FlowKey::V6(_) => self.v6.prefetch(hash.index),
        }
    }

    /// [`FlowTable::lookup`] with `hash == self.hash(key)` (a hash of another key
    /// or table looks in the wrong bucket: a miss).
    #[inline]
    pub fn lookup_hashed(&mut self, key: &FlowKey, hash: FlowHash, now_ms: u32) -> Option<&mut FlowValue> {
        debug_assert_eq!(hash, self.hash(key));
        match key {
            FlowKey::V4(_) => self.v4.lookup(hash.index, hash.fp, now_ms, &self.timeouts),
            FlowKey::V6(_) => self.v6.lookup(hash.index, hash.fp, now_ms, &self.timeouts),
        }
    }

    /// [`FlowTable::insert`] with `hash == self.hash(key)` (a hash of another key
    /// would file the entry where lookups of `key` do not look).
    #[inline]
    pub fn insert_hashed(&mut self, key: &FlowKey, hash: FlowHash, value: FlowValue, now_ms: u32) {
        debug_assert_eq!(hash, self.hash(key));
        match key {
            FlowKey::V4(_) => self.v4.insert(hash.index, hash.fp, value, now_ms, &self.timeouts),
            FlowKey::V6(_) => self.v6.insert(hash.index, hash.fp, value, now_ms, &self.timeouts),
        }
    }

    /// Reclaim every expired entry; returns how many (also counted in `expired`).
    pub fn expire_all(&mut self, now_ms: u32) -> u64 {
        self.v4.expire_all(now_ms, &self.timeouts) + self.v6.expire_all(now_ms, &self.timeouts)
    }

    /// Empty the table, counting every entry as expired: for a clock that moved past
    /// every timeout at once (see [`FlowTable::max_timeout_ms`]), where the u32
    /// millisecond ages could wrap. Returns how many.
    pub fn expire_everything(&mut self) -> u64 {
        self.v4.expire_everything() + self.v6.expire_everything()
    }

    /// The longest of the timeouts: an entry not seen for longer has expired, whatever
    /// its class.
    pub fn max_timeout_ms(&self) -> u32 {
        let t = self.timeouts;
        t.established_ms.max(t.transitory_ms).max(t.udp_ms)
    }

    /// Reclaim the expired entries of the next `buckets` buckets of each family
    /// (a cursor goes round), for a worker to call when idle; returns how many.
    pub fn expire_some(&mut self, now_ms: u32, buckets: usize) -> u64 {
        self.v4.expire_some(now_ms, &self.timeouts, buckets) + self.v6.expire_some(now_ms, &self.timeouts, buckets)
    }

    /// The live entry for `key` at `now_ms`, without refreshing or reclaiming it
    /// (diagnostics and tests; the packet path uses [`FlowTable::lookup`]).
    pub fn peek(&self, key: &FlowKey, now_ms: u32) -> Option<FlowValue> {
        let h = self.hash(key);
        match key {
            FlowKey::V4(_) => self.v4.peek(h.index, h.fp, now_ms, &self.timeouts),
            FlowKey::V6(_) => self.v6.peek(h.index, h.fp, now_ms, &self.timeouts),
        }
    }

    /// The values of the live (not expired at `now_ms`) entries, IPv4 first. Keys
    /// are not stored, so there are none to list. Not for the packet path.
    pub fn live_values(&self, now_ms: u32) -> impl Iterator<Item = FlowValue> + '_ {
        self.v4.live_values(now_ms, &self.timeouts).chain(self.v6.live_values(now_ms, &self.timeouts))
    }

    /// Entries held (both families), including expired ones not yet reclaimed.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity given to [`FlowTable::new`]: flows of each family (with
    /// [`FlowTable::with_capacities`], the larger of the two).
    pub fn capacity(&self) -> usize {
        self.v4.capacity().max(self.v6.capacity())
    }

    pub fn capacity_v4(&self) -> usize {
        self.v4.capacity()
    }

    pub fn capacity_v6(&self) -> usize {
        self.v6.capacity()
    }

    /// Entry slots of the IPv4 and IPv6 sub-tables (buckets times ways).
    pub fn slots(&self) -> (usize, usize) {
        (self.v4.slots(), self.v6.slots())
    }

    /// Entries a full bucket moved to its family's overflow area so far (IPv4,
    /// IPv6): each one a flow that a plain 4-way table would have evicted.
    pub fn spills(&self) -> (u64, u64) {
        (self.v4.spills(), self.v6.spills())
    }

    /// Buckets of the IPv4 and IPv6 sub-tables.
    pub fn buckets(&self) -> (usize, usize) {
        (self.v4.buckets(), self.v6.buckets())
    }

    /// All the memory the table holds: the buckets of both families and the struct.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.v4.memory_bytes() + self.v6.memory_bytes()
    }

    /// Bytes of the IPv4 buckets.
    pub fn memory_bytes_v4(&self) -> usize {
        self.v4.memory_bytes()
    }

    /// Bytes of the IPv6 buckets.
    pub fn memory_bytes_v6(&self) -> usize {
        self.v6.memory_bytes()
    }

    /// Transparent huge pages were asked for (`madvise(MADV_HUGEPAGE)`) and the
    /// kernel took the advice, for at least one family's buckets. Only sub-tables of
    /// 2 MiB or more ask; see [`FlowTable::huge_page_bytes`] for what the kernel
    /// actually gave.
    pub fn huge_pages(&self) -> bool {
        self.v4.huge_pages() || self.v6.huge_pages()
    }

    /// Bytes of the buckets on transparent huge pages now, from `/proc/self/smaps`
    /// (Linux). A diagnostic that reads a file: not for the packet path.
    pub fn huge_page_bytes(&self) -> std::io::Result<u64> {
        storage::anon_huge_bytes(&[self.v4.huge_range(), self.v6.huge_range()])
    }

    /// Counters of both families together.
    pub fn stats(&self) -> FlowTableStats {
        self.v4.stats() + self.v6.stats()
    }

    pub fn stats_v4(&self) -> FlowTableStats {
        self.v4.stats()
    }

    pub fn stats_v6(&self) -> FlowTableStats {
        self.v6.stats()
    }
}

impl std::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("capacity_v4", &self.v4.capacity())
            .field("capacity_v6", &self.v6.capacity())
            .field("timeouts", &self.timeouts)
            .field("stats_v4", &self.v4.stats())
            .field("stats_v6", &self.v6.stats())
            .finish()
    }
}
