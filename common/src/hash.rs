//! Hashing.
//!
//! Two kinds of hash live here:
//!
//! - The **stable hash**: SipHash-1-3 (Aumasson & Bernstein; the 1-3 variant is the
//!   one Rust's standard library uses for `HashMap`), implemented in this file so that
//!   it can never drift with a dependency or compiler upgrade. Every l4lb instance on
//!   every machine computes the same value for the same bytes. Maglev permutations and
//!   the per-packet backend choice depend on it, which is what makes two load balancers
//!   behind one ECMP group send a flow to the same backend. Its keys are fixed
//!   constants, documented below and in `docs/MAGLEV.md`; changing one is a breaking
//!   change of the product.
//! - The **fast hash** ([`FastHasher`], [`BuildFastHasher`]): an FxHash-style
//!   multiply-rotate hasher for process-local hash maps keyed by addresses (VIP lookup
//!   in the snapshot). Its values never leave the process.
//!
//! Canonical byte layouts of the flow hashes (addresses in network order as on the
//! wire, ports big-endian, then the protocol number byte):
//!
//! | function | bytes hashed | length |
//! |---|---|---|
//! | [`hash_5tuple_v4`] | src(4) dst(4) src_port(2) dst_port(2) proto(1) | 13 |
//! | [`hash_5tuple_v6`] | src(16) dst(16) src_port(2) dst_port(2) proto(1) | 37 |
//! | [`hash_3tuple_v4`] | src(4) dst(4) proto(1) | 9 |
//! | [`hash_3tuple_v6`] | src(16) dst(16) proto(1) | 33 |
//! | [`hash_src_v4`] | src(4) | 4 |
//! | [`hash_src_v6`] | src(16) | 16 |
//!
//! All six use [`FLOW_KEY`]. The lengths differ, so the layouts cannot collide by
//! construction.

use std::hash::{BuildHasherDefault, Hasher};

use crate::flow::{FlowKeyV4, FlowKeyV6};

/// A 128-bit SipHash key as 16 bytes; `k0` is bytes 0..8 and `k1` bytes 8..16, each
/// read little-endian (the convention of the SipHash reference implementation).
pub type SipKey = [u8; 16];

/// Key of [`stable_hash`]: the ASCII bytes `l4lb-stable-hash`.
pub const STABLE_KEY: SipKey = *b"l4lb-stable-hash";
/// Key of the per-packet flow hashes ([`hash_5tuple_v4`] etc.): ASCII `l4lb-flow-hash-1`.
pub const FLOW_KEY: SipKey = *b"l4lb-flow-hash-1";
/// Key of a Maglev backend's permutation offset: ASCII `l4lb-maglev-offs`.
pub const MAGLEV_OFFSET_KEY: SipKey = *b"l4lb-maglev-offs";
/// Key of a Maglev backend's permutation skip: ASCII `l4lb-maglev-skip`.
pub const MAGLEV_SKIP_KEY: SipKey = *b"l4lb-maglev-skip";

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn read_u64_le(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// SipHash-c-d with a 64-bit output, straight from the paper's description.
#[inline(always)]
fn siphash<const C: usize, const D: usize>(key: &SipKey, data: &[u8]) -> u64 {
    let k0 = read_u64_le(&key[..8]);
    let k1 = read_u64_le(&key[8..]);
    let mut v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573];
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let m = read_u64_le(chunk);
        v[3] ^= m;
        for _ in 0..C {
            sip_round(&mut v);
        }
        v[0] ^= m;
    }
    // Last block: the remaining 0..=7 bytes little-endian, length mod 256 in the top byte.
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    let b = u64::from_le_bytes(last) | ((data.len() as u64) << 56);
    v[3] ^= b;
    for _ in 0..C {
        sip_round(&mut v);
    }
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// SipHash-1-3 of `data` under `key` (64-bit output).
#[inline]
pub fn siphash13(key: &SipKey, data: &[u8]) -> u64 {
    siphash::<1, 3>(key, data)
}

/// The stable hash: SipHash-1-3 under [`STABLE_KEY`].
#[inline]
pub fn stable_hash(data: &[u8]) -> u64 {
    siphash13(&STABLE_KEY, data)
}

/// SipHash-1-3 of `data` under another fixed key (e.g. [`MAGLEV_OFFSET_KEY`]).
#[inline]
pub fn stable_hash_with(key: &SipKey, data: &[u8]) -> u64 {
    siphash13(key, data)
}

/// Hash of an IPv4 5-tuple; layout `src dst src_port dst_port proto` (13 bytes).
#[inline]
pub fn hash_5tuple_v4(k: &FlowKeyV4) -> u64 {
    let mut b = [0u8; 13];
    b[0..4].copy_from_slice(&k.src);
    b[4..8].copy_from_slice(&k.dst);
    b[8..10].copy_from_slice(&k.src_port.to_be_bytes());
    b[10..12].copy_from_slice(&k.dst_port.to_be_bytes());
    b[12] = k.proto;
    siphash13(&FLOW_KEY, &b)
}

/// Hash of an IPv6 5-tuple; layout `src dst src_port dst_port proto` (37 bytes).
#[inline]
pub fn hash_5tuple_v6(k: &FlowKeyV6) -> u64 {
    let mut b = [0u8; 37];
    b[0..16].copy_from_slice(&k.src);
    b[16..32].copy_from_slice(&k.dst);
    b[32..34].copy_from_slice(&k.src_port.to_be_bytes());
    b[34..36].copy_from_slice(&k.dst_port.to_be_bytes());
    b[36] = k.proto;
    siphash13(&FLOW_KEY, &b)
}

/// Hash of an IPv4 source address alone (`hash = "source-ip"`).
#[inline]
pub fn hash_src_v4(src: [u8; 4]) -> u64 {
    siphash13(&FLOW_KEY, &src)
}

/// Hash of an IPv6 source address alone (`hash = "source-ip"`).
#[inline]
pub fn hash_src_v6(src: [u8; 16]) -> u64 {
    siphash13(&FLOW_KEY, &src)
}

/// Hash of IPv4 addresses and protocol (fragments: only the first carries ports);
/// layout `src dst proto` (9 bytes).
#[inline]
pub fn hash_3tuple_v4(src: [u8; 4], dst: [u8; 4], proto: u8) -> u64 {
    let mut b = [0u8; 9];
    b[0..4].copy_from_slice(&src);
    b[4..8].copy_from_slice(&dst);
    b[8] = proto;
    siphash13(&FLOW_KEY, &b)
}

/// Hash of IPv6 addresses and protocol; layout `src dst proto` (33 bytes).
#[inline]
pub fn hash_3tuple_v6(src: [u8; 16], dst: [u8; 16], proto: u8) -> u64 {
    let mut b = [0u8; 33];
    b[0..16].copy_from_slice(&src);
    b[16..32].copy_from_slice(&dst);
    b[32] = proto;
    siphash13(&FLOW_KEY, &b)
}

/// A fast, process-local hasher (FxHash-style: rotate, xor, multiply per word).
/// Deterministic but NOT part of the product's stable contract; never use it for
/// anything that must agree between machines.
#[derive(Default, Clone, Copy, Debug)]
pub struct FastHasher {
    state: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline(always)]
    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(read_u64_le(c));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // A final avalanche so that the low bits hashbrown uses depend on every input bit.
        let mut x = self.state;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

/// `BuildHasher` for [`FastHasher`], for `HashMap<K, V, BuildFastHasher>`.
pub type BuildFastHasher = BuildHasherDefault<FastHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Key 00 01 .. 0f, the key of every published SipHash test vector.
    const TEST_KEY: SipKey = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    /// SipHash-2-4, 64-bit output, for messages 00, 00 01, ..., 00..3e: the reference
    /// implementation's `vectors_sip64` (github.com/veorq/SipHash). It checks the round
    /// function, key loading and padding shared with SipHash-1-3.
    const SIPHASH24_VECTORS: [u64; 64] = [
        0x726fdb47dd0e0e31,
        0x74f839c593dc67fd,
        0x0d6c8009d9a94f5a,
        0x85676696d7fb7e2d,
        0xcf2794e0277187b7,
        0x18765564cd99a68d,
        0xcbc9466e58fee3ce,
        0xab0200f58b01d137,
        0x93f5f5799a932462,
        0x9e0082df0ba9e4b0,
        0x7a5dbbc594ddb9f3,
        0xf4b32f46226bada7,
        0x751e8fbc860ee5fb,
        0x14ea5627c0843d90,
        0xf723ca908e7af2ee,
        0xa129ca6149be45e5,
        0x3f2acc7f57c29bdb,
        0x699ae9f52cbe4794,
        0x4bc1b3f0968dd39c,
        0xbb6dc91da77961bd,
        0xbed65cf21aa2ee98,
        0xd0f2cbb02e3b67c7,
        0x93536795e3a33e88,
        0xa80c038ccd5ccec8,
        0xb8ad50c6f649af94,
        0xbce192de8a85b8ea,
        0x17d835b85bbb15f3,
        0x2f2e6163076bcfad,
        0xde4daaaca71dc9a5,
        0xa6a2506687956571,
        0xad87a3535c49ef28,
        0x32d892fad841c342,
        0x7127512f72f27cce,
        0xa7f32346f95978e3,
        0x12e0b01abb051238,
        0x15e034d40fa197ae,
        0x314dffbe0815a3b4,
        0x027990f029623981,
        0xcadcd4e59ef40c4d,
        0x9abfd8766a33735c,
        0x0e3ea96b5304a7d0,
        0xad0c42d6fc585992,
        0x187306c89bc215a9,
        0xd4a60abcf3792b95,
        0xf935451de4f21df2,
        0xa9538f0419755787,
        0xdb9acddff56ca510,
        0xd06c98cd5c0975eb,
        0xe612a3cb9ecba951,
        0xc766e62cfcadaf96,
        0xee64435a9752fe72,
        0xa192d576b245165a,
        0x0a8787bf8ecb74b2,
        0x81b3e73d20b49b6f,
        0x7fa8220ba3b2ecea,
        0x245731c13ca42499,
        0xb78dbfaf3a8d83bd,
        0xea1ad565322a1a0b,
        0x60e61c23a3795013,
        0x6606d7e446282b93,
        0x6ca4ecb15c5f91e1,
        0x9f626da15c9625f3,
        0xe51b38608ef25f57,
        0x958a324ceb064572,
    ];

    /// SipHash-1-3 truncated to its low 32 bits, same key and messages: Linux's
    /// `test_vectors_hsiphash` for 64-bit builds (lib/siphash_kunit.c), where
    /// `hsiphash` is SipHash-1-3 returning `(u32)(v0 ^ v1 ^ v2 ^ v3)`.
    const SIPHASH13_LOW32_VECTORS: [u32; 64] = [
        0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7, 0x9bb11140, 0x8d299a8e,
        0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7, 0xc0f95d34, 0x2a519956, 0x7d908b66, 0x63dbd80c,
        0xb473e63e, 0x8d297d1c, 0xa6cce040, 0x2b45f844, 0xa320872e, 0xdae6c123, 0x67349c8c, 0x705b0979, 0xca9913a5,
        0x4ade3b35, 0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc, 0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e, 0xbf186b91,
        0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392, 0x99e41531, 0x3f1ad944, 0xc8138825, 0xc28949a6, 0xfaf8876b,
        0x9f042196, 0x68b1d623, 0x8b5114fd, 0xdf074c46, 0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0,
        0x73f0bce6, 0x70a7e980, 0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0,
        0xb7bbb3a8,
    ];

    fn message(n: usize) -> Vec<u8> {
        (0..n as u8).collect()
    }

    #[test]
    fn siphash24_matches_reference_vectors() {
        for (n, want) in SIPHASH24_VECTORS.iter().enumerate() {
            assert_eq!(siphash::<2, 4>(&TEST_KEY, &message(n)), *want, "length {n}");
        }
    }

    #[test]
    fn siphash13_matches_published_vectors() {
        for (n, want) in SIPHASH13_LOW32_VECTORS.iter().enumerate() {
            assert_eq!(siphash13(&TEST_KEY, &message(n)) as u32, *want, "length {n}");
        }
    }

    /// Our own fixed vectors: full 64-bit SipHash-1-3 outputs under our keys. These
    /// values are part of the product (Maglev tables and backend choice depend on them).
    #[test]
    fn fixed_vectors_under_l4lb_keys() {
        assert_eq!(siphash13(&TEST_KEY, &message(15)), FIXED[0]);
        assert_eq!(stable_hash(b""), FIXED[1]);
        assert_eq!(stable_hash(&[10, 1, 0, 11]), FIXED[2]);
        assert_eq!(stable_hash_with(&MAGLEV_OFFSET_KEY, &[10, 1, 0, 11]), FIXED[3]);
        assert_eq!(stable_hash_with(&MAGLEV_SKIP_KEY, &[10, 1, 0, 11]), FIXED[4]);
        let k = FlowKeyV4 { src: [192, 0, 2, 1], dst: [198, 51, 100, 10], src_port: 40000, dst_port: 80, proto: 6 };
        assert_eq!(hash_5tuple_v4(&k), FIXED[5]);
        let mut src6 = [0u8; 16];
        src6[0] = 0x20;
        src6[1] = 0x01;
        src6[2] = 0x0d;
        src6[3] = 0xb8;
        src6[15] = 1;
        let mut dst6 = src6;
        dst6[15] = 0x10;
        let k6 = FlowKeyV6 { src: src6, dst: dst6, src_port: 40000, dst_port: 443, proto: 17 };
        assert_eq!(hash_5tuple_v6(&k6), FIXED[6]);
        assert_eq!(hash_src_v4([192, 0, 2, 1]), FIXED[7]);
        assert_eq!(hash_src_v6(src6), FIXED[8]);
        assert_eq!(hash_3tuple_v4([192, 0, 2, 1], [198, 51, 100, 10], 6), FIXED[9]);
        assert_eq!(hash_3tuple_v6(src6, dst6, 17), FIXED[10]);
    }

    /// FIXED[0]'s low 32 bits equal the published vector for length 15 (0x2a519956).
    const FIXED: [u64; 11] = [
        0xd320d86d2a519956,
        0x50a3afa19b1b5fe6,
        0xae8751e4f4be83c8,
        0xca5d0e0310e05c9c,
        0xdd1fc6d1f52f0fcf,
        0x01df9c56e93f04f0,
        0xd51810b299f555c5,
        0x160aaadcc91e2960,
        0x00b3b7d5139186db,
        0x3bde363298708b91,
        0x63fb09bfed112a9e,
    ];

    #[test]
    fn flow_hashes_use_documented_layouts() {
        let k = FlowKeyV4 { src: [1, 2, 3, 4], dst: [5, 6, 7, 8], src_port: 0x1234, dst_port: 0x5678, proto: 17 };
        let bytes = [1, 2, 3, 4, 5, 6, 7, 8, 0x12, 0x34, 0x56, 0x78, 17];
        assert_eq!(hash_5tuple_v4(&k), siphash13(&FLOW_KEY, &bytes));
        assert_eq!(hash_3tuple_v4(k.src, k.dst, 17), siphash13(&FLOW_KEY, &[1, 2, 3, 4, 5, 6, 7, 8, 17]));
        assert_eq!(hash_src_v4(k.src), siphash13(&FLOW_KEY, &[1, 2, 3, 4]));
        let k6 = FlowKeyV6 { src: [1; 16], dst: [2; 16], src_port: 0x1234, dst_port: 0x5678, proto: 6 };
        let mut b6 = vec![1u8; 16];
        b6.extend_from_slice(&[2; 16]);
        b6.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 6]);
        assert_eq!(hash_5tuple_v6(&k6), siphash13(&FLOW_KEY, &b6));
        let mut b3 = vec![1u8; 16];
        b3.extend_from_slice(&[2; 16]);
        b3.push(6);
        assert_eq!(hash_3tuple_v6(k6.src, k6.dst, 6), siphash13(&FLOW_KEY, &b3));
        // Every input field matters.
        let mut k2 = k;
        k2.src_port ^= 1;
        assert_ne!(hash_5tuple_v4(&k), hash_5tuple_v4(&k2));
        k2 = k;
        k2.proto = 6;
        assert_ne!(hash_5tuple_v4(&k), hash_5tuple_v4(&k2));
    }

    #[test]
    fn keys_are_distinct() {
        let keys = [STABLE_KEY, FLOW_KEY, MAGLEV_OFFSET_KEY, MAGLEV_SKIP_KEY];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
                assert_ne!(siphash13(a, b"x"), siphash13(b, b"x"));
            }
        }
    }

    #[test]
    fn fast_hasher_is_deterministic_and_spreads() {
        use std::hash::BuildHasher;
        let b = BuildFastHasher::default();
        let h = |v: &([u8; 4], u16, u8)| b.hash_one(v);
        assert_eq!(h(&([10, 0, 0, 1], 80, 6)), h(&([10, 0, 0, 1], 80, 6)));
        let mut seen = std::collections::HashSet::new();
        for i in 0..=255u8 {
            for p in [80u16, 443] {
                assert!(seen.insert(h(&([10, 0, 0, i], p, 6))));
            }
        }
        // Low 7 bits (hashbrown's control byte uses the top 7; its bucket the low bits) vary.
        let lows: std::collections::HashSet<u64> = (0..=255u8).map(|i| h(&([10, 0, 0, i], 80, 6)) & 0x7f).collect();
        assert!(lows.len() > 64, "{}", lows.len());
    }
}
