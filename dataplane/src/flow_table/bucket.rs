//! Bucket layouts: one set-associative bucket per hash index, laid out
//! structure-of-arrays inside whole cache lines so that a lookup compares every
//! way of one bucket without leaving it.
//!
//! - [`Bucket4`]: 128 bytes (one aligned pair of 64-byte lines), 6 IPv4 entries:
//!   21.3 bytes per entry.
//! - [`Bucket6`]: 192 bytes (three adjacent lines), 4 IPv6 entries: 48 bytes per
//!   entry. Line 0 holds everything but the addresses, so a miss usually reads only
//!   that line; the addresses of a candidate whose ports and protocol match are in
//!   lines 1 (sources) and 2 (destinations).
//!
//! Each bucket also carries a per-way "last seen" time (u32 milliseconds) and the
//! caller's [`FlowValue`]; an occupancy bitmap says which ways hold an entry.
//!
//! Buckets are plain old data (any bytes are a bucket, all zeros an empty one), so
//! that they can live in a huge-page mapping seen through a checked cast (see
//! `storage.rs`). The values are kept as their 4 raw bytes; [`Bucket::value_mut`]
//! hands out a `&mut FlowValue` through zerocopy's validity-checked cast (the class
//! byte is a `FlowClass` and the reverse byte a `bool`, which only ever written
//! values can be, so the check always passes).

use std::mem::size_of;

use common::flow::{FlowKeyV4, FlowKeyV6};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, TryFromBytes};

use super::{FlowClass, FlowValue};

/// A [`FlowValue`] as stored.
pub(super) type RawValue = [u8; 4];

/// What the generic sub-table needs from a bucket layout. All zeros is an empty
/// bucket.
pub(super) trait Bucket: FromBytes + IntoBytes + KnownLayout + Immutable {
    /// Entries per bucket.
    const WAYS: usize;
    /// The key as stored (packed words).
    type Key: Copy + Eq;
    /// The public key this packs.
    type FlowKey: Copy;

    fn pack(key: &Self::FlowKey) -> Self::Key;
    fn unpack(key: &Self::Key) -> Self::FlowKey;
    /// Fast local hash of a packed key (not stable across versions or machines).
    fn hash(key: &Self::Key, seed: u64) -> u64;

    /// The way holding `key`, if any.
    fn find(&self, key: &Self::Key) -> Option<usize>;
    fn key(&self, way: usize) -> Self::Key;
    fn set_key(&mut self, way: usize, key: &Self::Key);
    fn occupied(&self) -> u8;
    fn set_occupied(&mut self, bits: u8);
    fn seen(&self, way: usize) -> u32;
    fn set_seen(&mut self, way: usize, now_ms: u32);
    fn raw_value(&self, way: usize) -> &RawValue;
    fn raw_value_mut(&mut self, way: usize) -> &mut RawValue;

    /// The class of the entry in `way` (what expiry and eviction look at).
    #[inline(always)]
    fn class(&self, way: usize) -> FlowClass {
        FlowClass::from_raw(self.raw_value(way)[CLASS_BYTE])
    }
    /// The value in `way` (an unoccupied way reads as some value; not a miss).
    #[inline(always)]
    fn value(&self, way: usize) -> FlowValue {
        FlowValue::try_read_from_bytes(self.raw_value(way)).unwrap_or(EMPTY_VALUE)
    }
    /// The value in `way`, to change in place; `None` only for bytes that no
    /// `FlowValue` wrote (never: the table writes only whole values).
    #[inline(always)]
    fn value_mut(&mut self, way: usize) -> Option<&mut FlowValue> {
        FlowValue::try_mut_from_bytes(self.raw_value_mut(way)).ok()
    }
    #[inline(always)]
    fn set_value(&mut self, way: usize, value: FlowValue) {
        *self.raw_value_mut(way) = zerocopy::transmute!(value);
    }
    /// Start loading every cache line of the bucket.
    fn prefetch(&self);
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

/// Packed IPv4 key: 13 bytes of key in three u32 words and a byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Key4 {
    src: u32,
    dst: u32,
    /// `src_port << 16 | dst_port`.
    ports: u32,
    proto: u8,
}

/// Packed IPv6 key: 37 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Key6 {
    src: u128,
    dst: u128,
    ports: u32,
    proto: u8,
}

#[inline(always)]
fn pack_ports(src_port: u16, dst_port: u16) -> u32 {
    (u32::from(src_port) << 16) | u32::from(dst_port)
}

/// Bit `i` set where `ports[i] == want`.
#[inline(always)]
fn port_mask<const N: usize>(ports: &[u32; N], want: u32) -> u8 {
    #[cfg(target_arch = "x86_64")]
    if N <= 8 {
        return port_mask_sse2(ports, want);
    }
    port_mask_scalar(ports, want)
}

#[inline(always)]
fn port_mask_scalar<const N: usize>(ports: &[u32; N], want: u32) -> u8 {
    let mut m = 0u8;
    for (i, p) in ports.iter().enumerate() {
        m |= u8::from(*p == want) << i;
    }
    m
}

/// [`port_mask_scalar`] with two SSE2 compares (4 ways each) and their sign
/// masks: the compiler does not vectorise the scalar loop for 6 ways. SSE2 is part
/// of x86-64; `safe_arch` wraps the intrinsics in safe functions.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn port_mask_sse2<const N: usize>(ports: &[u32; N], want: u32) -> u8 {
    use safe_arch::{cast_to_m128_from_m128i, cmp_eq_mask_i32_m128i, m128i, move_mask_m128, set_splat_i32_m128i};
    // Lanes past N hold a value that cannot match.
    let lane = |i: usize| ports.get(i).map_or(!want, |p| *p) as i32;
    let w = set_splat_i32_m128i(want as i32);
    let lo = m128i::from([lane(0), lane(1), lane(2), lane(3)]);
    let hi = m128i::from([lane(4), lane(5), lane(6), lane(7)]);
    let lo = move_mask_m128(cast_to_m128_from_m128i(cmp_eq_mask_i32_m128i(lo, w)));
    let hi = move_mask_m128(cast_to_m128_from_m128i(cmp_eq_mask_i32_m128i(hi, w)));
    (lo | (hi << 4)) as u8
}

/// 6 IPv4 entries in one 128-byte aligned pair of cache lines.
#[repr(C, align(128))]
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub(super) struct Bucket4 {
    /// Bit `i` set: way `i` holds an entry.
    occ: u8,
    proto: [u8; 6],
    _pad: u8,
    ports: [u32; 6],
    src: [u32; 6],
    dst: [u32; 6],
    seen: [u32; 6],
    values: [RawValue; 6],
}

/// 4 IPv6 entries in three adjacent 64-byte cache lines.
#[repr(C, align(64))]
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub(super) struct Bucket6 {
    // Line 0: occupancy, protocol, ports, times and values.
    occ: u8,
    proto: [u8; 4],
    _pad: [u8; 3],
    ports: [u32; 4],
    seen: [u32; 4],
    values: [RawValue; 4],
    _pad2: [u8; 8],
    // Line 1: source addresses.
    src: [u128; 4],
    // Line 2: destination addresses.
    dst: [u128; 4],
}

/// A value for unoccupied ways: what zeroed bytes read as.
const EMPTY_VALUE: FlowValue = FlowValue { target: 0, class: FlowClass::Transitory, reverse: false };
/// Offset of `FlowValue::class` in its raw bytes.
const CLASS_BYTE: usize = std::mem::offset_of!(FlowValue, class);

const _: () = {
    assert!(size_of::<FlowValue>() == size_of::<RawValue>());
    assert!(size_of::<Bucket4>() == 128);
    assert!(std::mem::align_of::<Bucket4>() == 128);
    assert!(std::mem::offset_of!(Bucket4, seen) == 80); // prefetched as line 1
    assert!(std::mem::offset_of!(Bucket4, values) == 104);
    assert!(size_of::<Bucket6>() == 192);
    assert!(std::mem::offset_of!(Bucket6, src) == 64);
    assert!(std::mem::offset_of!(Bucket6, dst) == 128);
};

/// What both layouts implement alike (the same field names): key packing, the
/// key, occupancy, time and value of a way.
macro_rules! common_accessors {
    ($key:ident, $flow_key:ident, $addr:ty) => {
        #[inline(always)]
        fn pack(k: &$flow_key) -> $key {
            $key {
                src: <$addr>::from_ne_bytes(k.src),
                dst: <$addr>::from_ne_bytes(k.dst),
                ports: pack_ports(k.src_port, k.dst_port),
                proto: k.proto,
            }
        }
        fn unpack(k: &$key) -> $flow_key {
            $flow_key {
                src: k.src.to_ne_bytes(),
                dst: k.dst.to_ne_bytes(),
                src_port: (k.ports >> 16) as u16,
                dst_port: k.ports as u16,
                proto: k.proto,
            }
        }
        #[inline(always)]
        fn key(&self, i: usize) -> $key {
            $key { src: self.src[i], dst: self.dst[i], ports: self.ports[i], proto: self.proto[i] }
        }
        #[inline(always)]
        fn set_key(&mut self, i: usize, k: &$key) {
            self.src[i] = k.src;
            self.dst[i] = k.dst;
            self.ports[i] = k.ports;
            self.proto[i] = k.proto;
        }
        #[inline(always)]
        fn occupied(&self) -> u8 {
            self.occ
        }
        #[inline(always)]
        fn set_occupied(&mut self, bits: u8) {
            self.occ = bits;
        }
        #[inline(always)]
        fn seen(&self, way: usize) -> u32 {
            self.seen[way]
        }
        #[inline(always)]
        fn set_seen(&mut self, way: usize, now_ms: u32) {
            self.seen[way] = now_ms;
        }
        #[inline(always)]
        fn raw_value(&self, way: usize) -> &RawValue {
            &self.values[way]
        }
        #[inline(always)]
        fn raw_value_mut(&mut self, way: usize) -> &mut RawValue {
            &mut self.values[way]
        }
    };
}

impl Bucket for Bucket4 {
    const WAYS: usize = 6;
    type Key = Key4;
    type FlowKey = FlowKeyV4;

    #[inline(always)]
    fn hash(k: &Key4, seed: u64) -> u64 {
        let addrs = u64::from(k.src) | (u64::from(k.dst) << 32);
        let rest = u64::from(k.ports) | (u64::from(k.proto) << 32);
        let x = folded_mul(addrs ^ seed, P0);
        folded_mul(x ^ rest ^ P2, P1)
    }

    #[inline(always)]
    fn find(&self, k: &Key4) -> Option<usize> {
        // Branch-free first pass over the ports of every way, then the rest of
        // the key for the (usually one) candidate: no mispredicted loop exit.
        let mut m = self.occ & port_mask(&self.ports, k.ports);
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            if self.src[i] == k.src && self.dst[i] == k.dst && self.proto[i] == k.proto {
                return Some(i);
            }
            m &= m - 1;
        }
        None
    }

    #[inline(always)]
    fn prefetch(&self) {
        prefetch_line(&self.occ); // line 0
        prefetch_line(&self.seen); // line 1 (offset 80)
    }

    common_accessors!(Key4, FlowKeyV4, u32);
}

impl Bucket for Bucket6 {
    const WAYS: usize = 4;
    type Key = Key6;
    type FlowKey = FlowKeyV6;

    #[inline(always)]
    fn hash(k: &Key6, seed: u64) -> u64 {
        let rest = u64::from(k.ports) | (u64::from(k.proto) << 32);
        let mut h = folded_mul((k.src as u64) ^ seed, ((k.src >> 64) as u64) ^ P0);
        h = folded_mul(h ^ (k.dst as u64), ((k.dst >> 64) as u64) ^ P1);
        folded_mul(h ^ rest ^ P2, P1)
    }

    #[inline(always)]
    fn find(&self, k: &Key6) -> Option<usize> {
        // Ports, protocol and occupancy are in line 0; the address lines are read
        // only for a candidate.
        let mut m = self.occ & port_mask(&self.ports, k.ports);
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            if self.proto[i] == k.proto && self.src[i] == k.src && self.dst[i] == k.dst {
                return Some(i);
            }
            m &= m - 1;
        }
        None
    }

    #[inline(always)]
    fn prefetch(&self) {
        prefetch_line(&self.occ); // line 0
        prefetch_line(&self.src); // line 1
        prefetch_line(&self.dst); // line 2
    }

    common_accessors!(Key6, FlowKeyV6, u128);
}

/// Ask the CPU to start loading the cache line holding `x` into all cache levels
/// (`prefetcht0` on x86; a no-op where the target has no prefetch instruction).
#[inline(always)]
fn prefetch_line<T>(x: &T) {
    mem_prefetch::prefetch_read_data::<T, 3>(x);
}

#[cfg(test)]
mod port_mask_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn simd_port_mask_equals_scalar(ports in prop::array::uniform6(0u32..4), want in 0u32..4, big: u32) {
            prop_assert_eq!(port_mask(&ports, want), port_mask_scalar(&ports, want));
            let p4 = [ports[0], ports[1], big, ports[3]];
            prop_assert_eq!(port_mask(&p4, big), port_mask_scalar(&p4, big));
        }
    }
}
