//! Weighted Maglev lookup tables (Eisenbud et al., "Maglev: A Fast and Reliable
//! Software Network Load Balancer", NSDI 2016, section 3.4).
//!
//! Each backend has a permutation of the table's `M` entries, `offset, offset + skip,
//! offset + 2*skip, ... (mod M)`, where
//!
//! ```text
//! offset = stable_hash_with(MAGLEV_OFFSET_KEY, address bytes) mod M
//! skip   = stable_hash_with(MAGLEV_SKIP_KEY,   address bytes) mod (M - 1) + 1
//! ```
//!
//! (address bytes: 4 for IPv4, 16 for IPv6, network order). `M` is prime, so every
//! skip in `1..M` is coprime with `M` and each permutation visits every entry once.
//! Backends take turns claiming the next free entry of their own permutation until the
//! table is full. A backend's permutation depends only on its address, never on its
//! position in a list, and the turn order is the backends sorted by address, so the
//! table is a pure function of the *set* of (address, weight) pairs.
//!
//! Weights use the population scheme of Envoy's and Cilium's Maglev: in round `t`
//! (1, 2, ...) a backend claims an entry only while `t * weight >= credit`, and each
//! claim raises its credit by the largest weight. A backend with the largest weight
//! claims once per round; one with a third of it, every third round. Shares follow the
//! weights; with equal weights this is exactly the paper's algorithm.
//!
//! Entries map to indices into the caller's `backends` slice; backends with weight 0
//! are not eligible and get no entries (the snapshot passes every slot, giving weight 0
//! to slots that are not `up`). [`EMPTY`] marks entries of a table without any eligible
//! backend.

use std::net::IpAddr;

use thiserror::Error;

use crate::hash::{MAGLEV_OFFSET_KEY, MAGLEV_SKIP_KEY, stable_hash_with};

/// Table entry of a table with no eligible backend.
pub const EMPTY: u16 = u16::MAX;
/// The largest allowed table size: the largest prime below 2^24.
pub const MAX_TABLE_SIZE: u32 = 16_777_213;
/// The largest number of backends one table can index (`EMPTY` is reserved).
pub const MAX_BACKENDS: usize = u16::MAX as usize;

/// One backend as Maglev sees it: its identity (address) and weight (0 = not eligible).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaglevBackend {
    pub address: IpAddr,
    pub weight: u32,
}

impl MaglevBackend {
    pub fn new(address: IpAddr, weight: u32) -> Self {
        MaglevBackend { address, weight }
    }
}

/// Why a table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MaglevError {
    #[error("table size {0} is not a prime number (e.g. 65537, 131071, 1000003)")]
    NotPrime(u32),
    #[error("table size {0} is larger than the maximum {MAX_TABLE_SIZE}")]
    TooLarge(u32),
    #[error("table size {table_size} is smaller than the number of eligible backends ({eligible})")]
    TooSmall { table_size: u32, eligible: usize },
    #[error("{0} backends is more than the maximum {MAX_BACKENDS}")]
    TooManyBackends(usize),
    #[error("backend address {0} appears more than once")]
    DuplicateAddress(IpAddr),
}

/// Deterministic primality test (trial division by 6k +/- 1; at most ~700 steps for
/// sizes up to [`MAX_TABLE_SIZE`]).
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let n = u64::from(n);
    let mut d = 5u64;
    while d * d <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// The canonical bytes of an address: 4 (IPv4) or 16 (IPv6), network order.
fn with_address_bytes<R>(address: IpAddr, f: impl FnOnce(&[u8]) -> R) -> R {
    match address {
        IpAddr::V4(a) => f(&a.octets()),
        IpAddr::V6(a) => f(&a.octets()),
    }
}

/// A backend's permutation `(offset, skip)` in a table of prime size `table_size`.
pub fn permutation(address: IpAddr, table_size: u32) -> (u32, u32) {
    let m = u64::from(table_size.max(2));
    with_address_bytes(address, |b| {
        let offset = stable_hash_with(&MAGLEV_OFFSET_KEY, b) % m;
        let skip = stable_hash_with(&MAGLEV_SKIP_KEY, b) % (m - 1) + 1;
        (offset as u32, skip as u32)
    })
}

/// The table entry for a flow hash: `(hash * table_size) >> 64`, a multiply instead
/// of a division, uniform over `0..table_size` for a uniform 64-bit hash. Part of the
/// stable contract, like the hash itself.
#[inline(always)]
pub fn index(hash: u64, table_size: u32) -> usize {
    ((u128::from(hash) * u128::from(table_size)) >> 64) as usize
}

/// Check `table_size` and `backends` without building.
pub fn validate(table_size: u32, backends: &[MaglevBackend]) -> Result<(), MaglevError> {
    if table_size > MAX_TABLE_SIZE {
        return Err(MaglevError::TooLarge(table_size));
    }
    if !is_prime(table_size) {
        return Err(MaglevError::NotPrime(table_size));
    }
    if backends.len() > MAX_BACKENDS {
        return Err(MaglevError::TooManyBackends(backends.len()));
    }
    let eligible = backends.iter().filter(|b| b.weight > 0).count();
    if (table_size as usize) < eligible {
        return Err(MaglevError::TooSmall { table_size, eligible });
    }
    let mut addrs: Vec<IpAddr> = backends.iter().map(|b| b.address).collect();
    addrs.sort_unstable();
    if let Some(w) = addrs.windows(2).find(|w| w[0] == w[1]) {
        return Err(MaglevError::DuplicateAddress(w[0]));
    }
    Ok(())
}

/// Build the table: entry -> index into `backends` (or [`EMPTY`] when no backend has a
/// weight above 0). Fails on a table size that is not prime, too large, or smaller than
/// the number of eligible backends, and on duplicate addresses.
pub fn try_build(table_size: u32, backends: &[MaglevBackend]) -> Result<Vec<u16>, MaglevError> {
    validate(table_size, backends)?;
    Ok(fill(table_size, backends))
}

/// Build the table, as [`try_build`]. A validated configuration never violates its
/// preconditions; if they are violated anyway, the result is `table_size` entries of
/// [`EMPTY`] (every new flow to the VIP is dropped) rather than a panic.
pub fn build(table_size: u32, backends: &[MaglevBackend]) -> Vec<u16> {
    try_build(table_size, backends).unwrap_or_else(|_| vec![EMPTY; table_size.min(MAX_TABLE_SIZE) as usize])
}

struct Candidate {
    index: u16,
    /// Next position of this backend's permutation to try.
    pos: u32,
    skip: u32,
    /// `skip^-1 mod M`, computed when the tail phase starts.
    inv_skip: u32,
    weight: u64,
    /// Claims are allowed while `round * weight >= credit`.
    credit: u64,
}

/// `x mod m` for `x < 2^48`, `m < 2^24`, by Barrett reduction (`r = floor(2^64 / m)`):
/// a multiply instead of a division.
#[inline(always)]
fn barrett(x: u64, m: u64, r: u64) -> u64 {
    let q = ((u128::from(x) * u128::from(r)) >> 64) as u64;
    let rem = x - q * m;
    if rem >= m { rem - m } else { rem }
}

/// `b^e mod m` (for the inverse of a skip: `skip^(m-2)`, m prime).
fn pow_mod(mut b: u64, mut e: u64, m: u64) -> u64 {
    let mut acc = 1u64;
    b %= m;
    while e > 0 {
        if e & 1 == 1 {
            acc = acc * b % m;
        }
        b = b * b % m;
        e >>= 1;
    }
    acc
}

/// Walk a permutation from `pos` by `skip` (mod `m`) to the first entry not yet
/// taken, and take it. The step is written so that the loop-carried dependency is one
/// compare and one conditional move (`pos >= m - skip` is known as soon as `pos` is).
#[inline(never)]
fn claim_next_free(taken: &mut [u64], mut pos: u32, skip: u32, m: u32) -> u32 {
    let back = m - skip;
    loop {
        let word = (pos >> 6) as usize;
        let bit = 1u64 << (pos & 63);
        // `pos < m` always, so the word exists; `get_mut` only avoids a panic path.
        let Some(w) = taken.get_mut(word) else { return pos };
        if *w & bit == 0 {
            *w |= bit;
            return pos;
        }
        pos = if pos >= back { pos - back } else { pos + skip };
    }
}

/// The paper's population loop. Most of its cost is the coupon-collector tail: when
/// few entries are free, a backend probes about `M / free` filled entries per claim.
/// So once at most `sqrt(M)` entries are free, the next free entry of a backend's
/// permutation is found by scanning the free list instead: entry `e` comes
/// `((e - pos) * skip^-1) mod M` steps after `pos`, and the nearest one wins. Both
/// phases pick exactly the entry the paper's loop picks (tests compare against it).
fn fill(m: u32, backends: &[MaglevBackend]) -> Vec<u16> {
    let size = m as usize;
    let mut table = vec![EMPTY; size];
    let mut order: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].weight > 0).collect();
    if order.is_empty() {
        return table;
    }
    order.sort_unstable_by_key(|&i| backends[i].address);
    let mut cands: Vec<Candidate> = order
        .iter()
        .map(|&i| {
            let (offset, skip) = permutation(backends[i].address, m);
            let weight = u64::from(backends[i].weight);
            Candidate { index: i as u16, pos: offset, skip, inv_skip: 0, weight, credit: 0 }
        })
        .collect();
    let max_weight = cands.iter().map(|c| c.weight).max().unwrap_or(1);
    let mut taken = vec![0u64; size.div_ceil(64)];
    let mut filled = 0usize;
    let tail_at = size.isqrt().max(1);
    let mut free: Vec<u32> = Vec::new();
    let mut tail = false;
    let (m64, r) = (u64::from(m), u64::MAX / u64::from(m));
    let mut round = 1u64;
    'rounds: loop {
        for c in cands.iter_mut() {
            if round * c.weight < c.credit {
                continue;
            }
            c.credit += max_weight;
            let pos = if tail {
                if c.inv_skip == 0 {
                    c.inv_skip = pow_mod(u64::from(c.skip), m64 - 2, m64) as u32;
                }
                let (mut best, mut best_dist) = (0usize, u64::MAX);
                for (k, &e) in free.iter().enumerate() {
                    let d = if e >= c.pos { e - c.pos } else { e + m - c.pos };
                    let dist = barrett(u64::from(d) * u64::from(c.inv_skip), m64, r);
                    if dist < best_dist {
                        best_dist = dist;
                        best = k;
                    }
                }
                free.swap_remove(best)
            } else {
                claim_next_free(&mut taken, c.pos, c.skip, m)
            };
            table[pos as usize] = c.index;
            c.pos = if pos + c.skip >= m { pos + c.skip - m } else { pos + c.skip };
            filled += 1;
            if filled == size {
                break 'rounds;
            }
            if !tail && size - filled <= tail_at {
                tail = true;
                free = (0..m).filter(|&e| taken[(e >> 6) as usize] & (1u64 << (e & 63)) == 0).collect();
            }
        }
        round += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const M: u32 = 65537;

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a01_0000u32 + i))
    }

    fn equal(n: u32) -> Vec<MaglevBackend> {
        (0..n).map(|i| MaglevBackend::new(v4(i + 1), 1)).collect()
    }

    fn counts(table: &[u16], n: usize) -> Vec<usize> {
        let mut c = vec![0usize; n];
        for &e in table {
            c[e as usize] += 1;
        }
        c
    }

    /// The straightforward algorithm (`%`, a bool per entry, permutation index per
    /// backend), as a reference for the optimised one.
    fn reference(m: u32, backends: &[MaglevBackend]) -> Vec<u16> {
        let mut idx: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].weight > 0).collect();
        let mut table = vec![EMPTY; m as usize];
        if idx.is_empty() {
            return table;
        }
        idx.sort_by_key(|&i| backends[i].address);
        let perms: Vec<(u64, u64)> = idx
            .iter()
            .map(|&i| {
                let (o, s) = permutation(backends[i].address, m);
                (u64::from(o), u64::from(s))
            })
            .collect();
        let maxw = idx.iter().map(|&i| u64::from(backends[i].weight)).max().unwrap();
        let mut next = vec![0u64; idx.len()];
        let mut credit = vec![0u64; idx.len()];
        let mut full = vec![false; m as usize];
        let mut n = 0;
        let mut round = 1u64;
        loop {
            for (k, &i) in idx.iter().enumerate() {
                if round * u64::from(backends[i].weight) < credit[k] {
                    continue;
                }
                credit[k] += maxw;
                let mut c = (perms[k].0 + next[k] * perms[k].1) % u64::from(m);
                while full[c as usize] {
                    next[k] += 1;
                    c = (perms[k].0 + next[k] * perms[k].1) % u64::from(m);
                }
                full[c as usize] = true;
                table[c as usize] = i as u16;
                next[k] += 1;
                n += 1;
                if n == m as usize {
                    return table;
                }
            }
            round += 1;
        }
    }

    #[test]
    fn modular_helpers() {
        for m in [2u64, 13, 251, 65537, u64::from(MAX_TABLE_SIZE)] {
            let r = u64::MAX / m;
            for x in [0u64, 1, m - 1, m, m + 1, (m - 1) * (m - 1), 12345 * m + 7] {
                assert_eq!(barrett(x, m, r), x % m, "{x} mod {m}");
            }
            for s in [1u64, 2, m - 1, m / 3 + 1] {
                if s < m {
                    assert_eq!(s * pow_mod(s, m - 2, m) % m, 1 % m, "inverse of {s} mod {m}");
                }
            }
        }
    }

    #[test]
    fn primes() {
        let small: Vec<u32> = (0..50).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]);
        for p in [251, 65537, 131071, 1_000_003, MAX_TABLE_SIZE] {
            assert!(is_prime(p), "{p}");
        }
        for c in [65535, 65539 * 3, 16_777_215, 16_777_214, 25, 49, 4_294_967_295] {
            assert!(!is_prime(c), "{c}");
        }
        assert!(is_prime(4_294_967_291)); // largest 32-bit prime: no overflow in the loop
    }

    #[test]
    fn rejects_bad_sizes() {
        let b = equal(3);
        assert_eq!(try_build(65536, &b), Err(MaglevError::NotPrime(65536)));
        assert_eq!(try_build(1, &b), Err(MaglevError::NotPrime(1)));
        assert_eq!(try_build(0, &b), Err(MaglevError::NotPrime(0)));
        assert_eq!(try_build(16_777_259, &b), Err(MaglevError::TooLarge(16_777_259)));
        assert_eq!(try_build(2, &b), Err(MaglevError::TooSmall { table_size: 2, eligible: 3 }));
        let dup = [MaglevBackend::new(v4(1), 1), MaglevBackend::new(v4(1), 2)];
        assert_eq!(try_build(7, &dup), Err(MaglevError::DuplicateAddress(v4(1))));
        // build() never panics: it falls back to an all-EMPTY table.
        assert!(build(65536, &b).iter().all(|&e| e == EMPTY));
        assert_eq!(build(65536, &b).len(), 65536);
        // Weight-0 backends do not count against the size.
        let mut b5 = equal(5);
        b5[0].weight = 0;
        b5[1].weight = 0;
        assert!(try_build(3, &b5).is_ok());
    }

    #[test]
    fn no_eligible_backend_gives_empty_table() {
        assert_eq!(build(13, &[]), vec![EMPTY; 13]);
        let b = [MaglevBackend::new(v4(1), 0)];
        assert_eq!(build(13, &b), vec![EMPTY; 13]);
    }

    #[test]
    fn every_entry_is_filled_by_an_eligible_backend() {
        let mut b = equal(7);
        b[2].weight = 0;
        b[5].weight = 4;
        let t = build(101, &b);
        assert!(t.iter().all(|&e| e != EMPTY && e != 2 && (e as usize) < 7));
        // Two backends, table of 2: each gets one entry.
        let t2 = build(2, &equal(2));
        assert_eq!(counts(&t2, 2), [1, 1]);
    }

    /// Known answer: frozen output for a fixed set (four IPv4, one IPv6, mixed weights).
    /// A change here changes which backend every live flow maps to: it must never
    /// happen by accident.
    #[test]
    fn known_answer() {
        let b = [
            MaglevBackend::new("10.1.0.11".parse().unwrap(), 1),
            MaglevBackend::new("10.1.0.12".parse().unwrap(), 1),
            MaglevBackend::new("10.1.0.13".parse().unwrap(), 2),
            MaglevBackend::new("2001:db8::21".parse().unwrap(), 1),
            MaglevBackend::new("192.0.2.7".parse().unwrap(), 3),
        ];
        let t = build(M, &b);
        assert_eq!(&t[..32], &KAT_FIRST_32);
        assert_eq!(counts(&t, 5), KAT_COUNTS);
        assert_eq!(permutation(b[0].address, M), KAT_PERM_0);
        let small = build(13, &b[..3]);
        assert_eq!(small, KAT_SMALL);
    }

    const KAT_FIRST_32: [u16; 32] =
        [2, 1, 2, 2, 1, 2, 4, 1, 3, 2, 0, 4, 2, 3, 1, 2, 3, 4, 3, 4, 1, 4, 0, 4, 2, 0, 3, 0, 2, 4, 4, 2];
    /// Weights 1, 1, 2, 1, 3 of 8: ideal 8192.125 entries per unit of weight.
    const KAT_COUNTS: [usize; 5] = [8193, 8193, 16384, 8192, 24575];
    const KAT_PERM_0: (u32, u32) = (36707, 4048);
    const KAT_SMALL: [u16; 13] = [1, 2, 2, 0, 2, 2, 1, 0, 2, 1, 0, 1, 0];

    #[test]
    fn matches_reference_implementation() {
        for (m, n) in [(13u32, 3u32), (251, 10), (65537, 7), (1009, 100)] {
            let mut b = equal(n);
            for (i, x) in b.iter_mut().enumerate() {
                x.weight = (i as u32 % 4) + 1;
            }
            assert_eq!(build(m, &b), reference(m, &b), "m={m} n={n}");
        }
    }

    fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
        let mut out = v.to_vec();
        let mut s = seed | 1;
        for i in (1..out.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            out.swap(i, (s % (i as u64 + 1)) as usize);
        }
        out
    }

    fn by_address(table: &[u16], b: &[MaglevBackend]) -> Vec<Option<IpAddr>> {
        table.iter().map(|&e| (e != EMPTY).then(|| b[e as usize].address)).collect()
    }

    #[test]
    fn independent_of_input_order() {
        let mut b = equal(50);
        b.push(MaglevBackend::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 3));
        b[7].weight = 0;
        b[9].weight = 5;
        let base = by_address(&build(M, &b), &b);
        for seed in 1..6 {
            let s = shuffled(&b, seed);
            assert_ne!(s, b);
            assert_eq!(by_address(&build(M, &s), &s), base, "seed {seed}");
        }
    }

    fn assert_balanced(b: &[MaglevBackend], tolerance: f64) -> f64 {
        let t = build(M, b);
        let c = counts(&t, b.len());
        let total: u64 = b.iter().map(|x| u64::from(x.weight)).sum();
        let mut worst = 0f64;
        for (i, x) in b.iter().enumerate() {
            let ideal = f64::from(x.weight) / total as f64;
            let share = c[i] as f64 / f64::from(M);
            let dev = (share / ideal - 1.0).abs();
            worst = worst.max(dev);
            assert!(dev <= tolerance, "backend {i}: share {share} ideal {ideal} ({} entries)", c[i]);
        }
        worst
    }

    #[test]
    fn balance_equal_weights() {
        for n in [3, 10, 100, 1000] {
            let worst = assert_balanced(&equal(n), 0.01);
            println!("balance N={n}: worst relative deviation {:.4}%", worst * 100.0);
        }
    }

    #[test]
    fn balance_weights_1_2_3() {
        let b: Vec<_> = (1..=3).map(|w| MaglevBackend::new(v4(w), w)).collect();
        let worst = assert_balanced(&b, 0.01);
        println!("balance 1:2:3: worst relative deviation {:.4}%", worst * 100.0);
        // Also with many backends of mixed weight.
        let b: Vec<_> = (1..=30).map(|i| MaglevBackend::new(v4(i), i % 3 + 1)).collect();
        assert_balanced(&b, 0.03);
    }

    /// Fraction of entries whose backend (by address) differs.
    fn moved(a: &[Option<IpAddr>], b: &[Option<IpAddr>]) -> f64 {
        a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64
    }

    #[test]
    fn disruption_remove_and_add_one() {
        for n in [10u32, 100] {
            let all = equal(n + 1);
            let before = by_address(&build(M, &all[..n as usize]), &all[..n as usize]);
            // Remove each of a few backends in turn.
            let mut worst_remove = 0f64;
            for victim in [0, n as usize / 2, n as usize - 1] {
                let mut fewer = all[..n as usize].to_vec();
                fewer.remove(victim);
                let after = by_address(&build(M, &fewer), &fewer);
                let f = moved(&before, &after);
                worst_remove = worst_remove.max(f);
                assert!(f <= 1.0 / f64::from(n) + 0.03, "remove N={n}: {f}");
                assert!(f >= 1.0 / f64::from(n) * 0.9, "remove N={n}: {f}");
            }
            let after_add = by_address(&build(M, &all), &all);
            let add = moved(&before, &after_add);
            let ideal_add = 1.0 / f64::from(n + 1);
            assert!(add <= ideal_add + 0.03, "add N={n}: {add}");
            println!(
                "disruption N={n}: remove one moves {:.2}% (ideal {:.2}%), add one moves {:.2}% (ideal {:.2}%)",
                worst_remove * 100.0,
                100.0 / f64::from(n),
                add * 100.0,
                ideal_add * 100.0
            );
        }
    }

    #[test]
    fn weight_change_only_moves_a_little() {
        let mut b = equal(10);
        let before = by_address(&build(M, &b), &b);
        b[3].weight = 2;
        let after = by_address(&build(M, &b), &b);
        let f = moved(&before, &after);
        // Ideal: backend 3 goes from 1/10 to 2/11 of the table: ~8.2% of entries.
        assert!(f < 0.082 + 0.05, "{f}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn prop_matches_reference(weights in proptest::collection::vec(0u32..5, 1..20), seed in any::<u64>()) {
            let b: Vec<_> = weights.iter().enumerate()
                .map(|(i, &w)| MaglevBackend::new(v4((i as u32).wrapping_mul(2654435761) ^ (seed as u32 & 0xffff)), w))
                .collect();
            prop_assume!(validate(251, &b).is_ok());
            prop_assert_eq!(build(251, &b), reference(251, &b));
        }
    }
}
