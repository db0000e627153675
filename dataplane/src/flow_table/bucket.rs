//! The bucket: four entries in one 64-byte cache line, for both address families.
//!
//! An entry is 16 bytes: the key's 64-bit fingerprint, its "last seen" time (u32
//! milliseconds) and the caller's [`FlowValue`]. The key itself is not stored (VPP's
//! lb plugin keeps hash-only entries the same way): a key is its bucket index (one
//! 64-bit hash) and its fingerprint (a second, independent 64-bit hash), so a lookup
//! reads one line whatever the family, where storing IPv4 keys took two lines and
//! IPv6 keys three. Two different keys are confused only if both hashes agree (see
//! `docs/FLOW_TABLE.md`, "Fingerprints", for the odds: about once in 10^10 years of
//! lookups at 20 Mpps).
//!
//! Laid out structure-of-arrays: the four fingerprints first (compared together),
//! then the times, then the values. A fingerprint of 0 marks an empty way, so all
//! zeros is an empty bucket; [`fingerprint`]s are never 0.
//!
//! Buckets are plain old data (any bytes are a bucket), so that they can live in a
//! huge-page mapping seen through a checked cast (see `storage.rs`). The values are
//! kept as their 4 raw bytes; [`Bucket::value_mut`] hands out a `&mut FlowValue`
//! through zerocopy's validity-checked cast (the class byte is a `FlowClass` and the
//! reverse byte a `bool`, which only ever written values can be, so the check
//! always passes).

use common::flow::{FlowKeyV4, FlowKeyV6};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, TryFromBytes};

use super::{FlowClass, FlowValue};

/// Entries per bucket.
pub(super) const WAYS: usize = 4;
/// The occupancy mask of a full bucket.
pub(super) const ALL_WAYS: u8 = ((1u16 << WAYS) - 1) as u8;

/// A [`FlowValue`] as stored.
pub(super) type RawValue = [u8; 4];

/// One cache line: 4 entries.
#[repr(C, align(64))]
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub(super) struct Bucket {
    /// Fingerprint per way; 0: the way is empty.
    fp: [u64; WAYS],
    seen: [u32; WAYS],
    values: [RawValue; WAYS],
}

const _: () = {
    assert!(size_of::<FlowValue>() == size_of::<RawValue>());
    assert!(size_of::<Bucket>() == 64);
    assert!(align_of::<Bucket>() == 64);
};

/// A value for empty ways: what zeroed bytes read as.
const EMPTY_VALUE: FlowValue = FlowValue { target: 0, class: FlowClass::Transitory, reverse: false };
/// Offset of `FlowValue::class` in its raw bytes.
const CLASS_BYTE: usize = std::mem::offset_of!(FlowValue, class);
/// Offset of `FlowValue::target` (native-endian u16) in its raw bytes.
const TARGET_BYTES: usize = std::mem::offset_of!(FlowValue, target);

impl Bucket {
    /// Bit `i` set where way `i` holds an entry.
    #[inline(always)]
    pub(super) fn occupied(&self) -> u8 {
        self.matching(0) ^ ALL_WAYS
    }

    /// Bit `i` set where way `i`'s fingerprint is `fp` (branch-free: the compiler
    /// turns the four compares into two SSE2/AVX compares or four `sete`s).
    #[inline(always)]
    fn matching(&self, fp: u64) -> u8 {
        let mut m = 0u8;
        for (i, f) in self.fp.iter().enumerate() {
            m |= u8::from(*f == fp) << i;
        }
        m
    }

    /// The way holding fingerprint `fp` (never 0), if any.
    #[inline(always)]
    pub(super) fn find(&self, fp: u64) -> Option<usize> {
        let m = self.matching(fp);
        (m != 0).then(|| m.trailing_zeros() as usize)
    }

    /// The fingerprint in `way` (0: empty).
    #[inline(always)]
    pub(super) fn fp(&self, way: usize) -> u64 {
        self.fp[way]
    }

    /// Empty way `way`.
    #[inline(always)]
    pub(super) fn clear(&mut self, way: usize) {
        self.fp[way] = 0;
    }

    /// Fill way `way`.
    #[inline(always)]
    pub(super) fn set(&mut self, way: usize, fp: u64, value: FlowValue, now_ms: u32) {
        self.fp[way] = fp;
        self.seen[way] = now_ms;
        self.set_value(way, value);
    }

    #[inline(always)]
    pub(super) fn seen(&self, way: usize) -> u32 {
        self.seen[way]
    }

    #[inline(always)]
    pub(super) fn set_seen(&mut self, way: usize, now_ms: u32) {
        self.seen[way] = now_ms;
    }

    /// The class of the entry in `way` (what expiry and eviction look at).
    #[inline(always)]
    pub(super) fn class(&self, way: usize) -> FlowClass {
        FlowClass::from_raw(self.values[way][CLASS_BYTE])
    }

    /// The value in `way` (an empty way reads as some value; not a miss).
    #[inline(always)]
    pub(super) fn value(&self, way: usize) -> FlowValue {
        FlowValue::try_read_from_bytes(&self.values[way]).unwrap_or(EMPTY_VALUE)
    }

    /// The value in `way`, to change in place; `None` only for bytes that no
    /// `FlowValue` wrote (never: the table writes only whole values).
    #[inline(always)]
    pub(super) fn value_mut(&mut self, way: usize) -> Option<&mut FlowValue> {
        FlowValue::try_mut_from_bytes(&mut self.values[way]).ok()
    }

    /// The target of the value in `way`, read from its bytes.
    #[inline(always)]
    pub(super) fn target(&self, way: usize) -> u16 {
        let v = &self.values[way];
        u16::from_ne_bytes([v[TARGET_BYTES], v[TARGET_BYTES + 1]])
    }

    #[inline(always)]
    pub(super) fn set_target(&mut self, way: usize, target: u16) {
        self.values[way][TARGET_BYTES..TARGET_BYTES + 2].copy_from_slice(&target.to_ne_bytes());
    }

    #[inline(always)]
    pub(super) fn set_class(&mut self, way: usize, class: FlowClass) {
        self.values[way][CLASS_BYTE] = class as u8;
    }

    /// The class byte of `way` as stored (a `FlowClass as u8`).
    #[inline(always)]
    pub(super) fn class_byte(&self, way: usize) -> u8 {
        self.values[way][CLASS_BYTE]
    }

    #[inline(always)]
    pub(super) fn set_value(&mut self, way: usize, value: FlowValue) {
        self.values[way] = zerocopy::transmute!(value);
    }

    /// Ask the CPU to start loading the bucket's line into all cache levels
    /// (`prefetcht0` on x86; a no-op where the target has no prefetch instruction).
    #[inline(always)]
    pub(super) fn prefetch(&self) {
        mem_prefetch::prefetch_read_data::<Bucket, 3>(self);
    }
}

/// foldhash / wyhash style folded multiply: the two halves of the 128-bit product
/// xor-ed together. Two of these mix every input bit into every output bit.
#[inline(always)]
fn folded_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

// Constants for the multiplies: the first hex digits of pi (the fold of the
// high half keeps an even multiplier from losing the low bits).
const P0: u64 = 0x243f_6a88_85a3_08d3;
const P1: u64 = 0x1319_8a2e_0370_7344;
const P2: u64 = 0xa409_3822_299f_31d0;
const P3: u64 = 0x082e_fa98_ec4e_6c89;
const P4: u64 = 0x4528_21e6_38d0_1377;
const P5: u64 = 0xbe54_66cf_34e9_0c6c;

/// The two seeds of a table: one for the bucket index, one for the fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Seeds {
    index: u64,
    fp: u64,
}

impl Seeds {
    pub(super) fn new(seed: u64) -> Seeds {
        Seeds { index: seed, fp: folded_mul(seed ^ P3, P4) }
    }
}

/// A key's two hashes: `index` picks the bucket, `fp` (never 0) tells the key from
/// the others there. Computed by two independently seeded chains.
#[inline(always)]
fn finish(index: u64, fp: u64) -> (u64, u64) {
    (index, fp | 1)
}

/// The hashes of an IPv4 key (13 bytes: addresses, ports, protocol).
#[inline(always)]
pub(super) fn hash_v4(k: &FlowKeyV4, s: Seeds) -> (u64, u64) {
    let addrs = u64::from(u32::from_ne_bytes(k.src)) | (u64::from(u32::from_ne_bytes(k.dst)) << 32);
    let rest = u64::from(k.src_port) | (u64::from(k.dst_port) << 16) | (u64::from(k.proto) << 32);
    hash_v4_words(addrs, rest, s)
}

/// [`hash_v4`] of a key given as its two words: the addresses (source in the low 32
/// bits, each `u32::from_ne_bytes`) and the rest (source port, destination port <<
/// 16, protocol << 32).
#[inline(always)]
pub(super) fn hash_v4_words(addrs: u64, rest: u64, s: Seeds) -> (u64, u64) {
    let a = folded_mul(addrs ^ s.index, P0);
    let b = folded_mul(addrs ^ s.fp, P5);
    finish(folded_mul(a ^ rest ^ P2, P1), folded_mul(b ^ rest ^ P1, P2))
}

/// The hashes of an IPv6 key (37 bytes).
#[inline(always)]
pub(super) fn hash_v6(k: &FlowKeyV6, s: Seeds) -> (u64, u64) {
    let src = u128::from_ne_bytes(k.src);
    let dst = u128::from_ne_bytes(k.dst);
    let rest = u64::from(k.src_port) | (u64::from(k.dst_port) << 16) | (u64::from(k.proto) << 32);
    let chain = |seed: u64, c0: u64, c1: u64, c2: u64| {
        let h = folded_mul((src as u64) ^ seed, ((src >> 64) as u64) ^ c0);
        let h = folded_mul(h ^ (dst as u64), ((dst >> 64) as u64) ^ c1);
        folded_mul(h ^ rest ^ c2, c1)
    };
    finish(chain(s.index, P0, P1, P2), chain(s.fp, P3, P4, P5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn empty_bucket_and_ways() {
        let mut b = <Bucket as FromZeros>::new_zeroed();
        assert_eq!(b.occupied(), 0);
        assert_eq!(b.find(5), None);
        let v = FlowValue { target: 3, class: FlowClass::Udp, reverse: true };
        b.set(2, 5, v, 77);
        assert_eq!(b.occupied(), 0b0100);
        assert_eq!(b.find(5), Some(2));
        assert_eq!(b.value(2), v);
        assert_eq!(b.class(2), FlowClass::Udp);
        assert_eq!(b.seen(2), 77);
        b.value_mut(2).unwrap().target = 4;
        assert_eq!(b.value(2).target, 4);
        b.clear(2);
        assert_eq!(b.occupied(), 0);
        assert_eq!(b.find(5), None);
    }

    #[test]
    fn fingerprints_are_never_zero_and_chains_differ() {
        let s = Seeds::new(1);
        let k = FlowKeyV4 { src: [0; 4], dst: [0; 4], src_port: 0, dst_port: 0, proto: 0 };
        let (i, f) = hash_v4(&k, s);
        assert_ne!(f, 0);
        assert_ne!(i | 1, f);
        let k6 = FlowKeyV6 { src: [0; 16], dst: [0; 16], src_port: 0, dst_port: 0, proto: 0 };
        let (i, f) = hash_v6(&k6, s);
        assert_ne!(f, 0);
        assert_ne!(i | 1, f);
    }
}
