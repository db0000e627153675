//! Flow table: lookup hits with 1 thousand and 1 million live flows, and inserts of
//! new flows into a full table, the way the pipeline uses it: a burst of 32 keys is
//! prefetched, then looked up (or inserted). One iteration = one burst of 32; divide
//! the time by 32 for ns per operation.
//!
//! `cargo bench -p l4lb-benches --bench flow_table`
//!
//! On a shared machine the wall-clock mean includes the time the bench was not
//! running; each bench therefore also prints the best ns/op over groups of 16
//! bursts (512 operations, tens of microseconds: short enough to run undisturbed).

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::flow::{FlowKey, FlowKeyV4, FlowKeyV6, proto};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/cpu.rs"]
mod cpu;
use cpu::ThreadCpu;
use dataplane::flow_table::{FlowClass, FlowTable, FlowTimeouts, FlowValue};

const BURST: usize = 32;
const LONG: FlowTimeouts = FlowTimeouts { established_ms: 1 << 30, transitory_ms: 1 << 30, udp_ms: 1 << 30 };
const VALUE: FlowValue = FlowValue { target: 3, class: FlowClass::Established, reverse: false };

/// splitmix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A client of one of 4 VIPs.
    fn key_v4(&mut self) -> FlowKey {
        let a = self.next();
        FlowKey::V4(FlowKeyV4 {
            src: (a as u32).to_be_bytes(),
            dst: [10, 0, 0, (a >> 62) as u8 + 1],
            src_port: (a >> 32) as u16,
            dst_port: 443,
            proto: proto::TCP,
        })
    }
    fn key_v6(&mut self) -> FlowKey {
        let a = self.next();
        let mut src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        src[8..].copy_from_slice(&a.to_be_bytes());
        let mut dst = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        dst[15] = (a >> 62) as u8 + 1;
        FlowKey::V6(FlowKeyV6 { src, dst, src_port: (a >> 40) as u16, dst_port: 443, proto: proto::TCP })
    }
}

/// A table sized for `n` flows holding `n` live flows of one family, and those
/// keys in random order.
fn full_table(n: usize, v6: bool) -> (FlowTable, Vec<FlowKey>) {
    let mut t = if v6 { FlowTable::with_capacities(0, n, LONG) } else { FlowTable::with_capacities(n, 0, LONG) };
    let mut rng = Rng(n as u64);
    let mut inserted = Vec::with_capacity(n);
    while t.len() < n {
        let k = if v6 { rng.key_v6() } else { rng.key_v4() };
        t.insert(&k, VALUE, 0);
        inserted.push(k);
    }
    // The keys still there (the table stores fingerprints, not keys: ask it).
    let mut keys: Vec<FlowKey> = inserted.into_iter().filter(|k| t.peek(k, 0).is_some()).collect();
    assert_eq!(keys.len(), n);
    for i in (1..keys.len()).rev() {
        keys.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    (t, keys)
}

/// Bursts per timed group for the best-group figure.
const GROUP: u64 = 16;

/// Run `iters` bursts of `burst()`, timing groups of [`GROUP`]; keeps the best
/// ns per operation seen in `best`.
fn timed(iters: u64, best: &mut f64, mut burst: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(GROUP);
        let t0 = Instant::now();
        for _ in 0..n {
            burst();
        }
        let dt = t0.elapsed();
        total += dt;
        if n == GROUP {
            *best = best.min(dt.as_nanos() as f64 / (GROUP as usize * BURST) as f64);
        }
        left -= n;
    }
    total
}

fn lookup_burst(t: &mut FlowTable, keys: &[FlowKey], prefetch: bool) -> u32 {
    if prefetch {
        for k in keys {
            t.prefetch(k);
        }
    }
    let mut sum = 0u32;
    for k in keys {
        if let Some(v) = t.lookup(k, 1) {
            sum += u32::from(v.target);
        }
    }
    sum
}

/// As the pipeline can do it: hash each key once, for its prefetch and its lookup.
fn lookup_burst_hashed(t: &mut FlowTable, keys: &[FlowKey]) -> u32 {
    let mut hashes = [t.hash(&keys[0]); BURST];
    for (k, h) in keys.iter().zip(hashes.iter_mut()) {
        *h = t.hash(k);
        t.prefetch_hashed(k, *h);
    }
    let mut sum = 0u32;
    for (k, h) in keys.iter().zip(hashes) {
        if let Some(v) = t.lookup_hashed(k, h, 1) {
            sum += u32::from(v.target);
        }
    }
    sum
}

#[derive(Clone, Copy)]
enum Mode {
    Prefetch,
    NoPrefetch,
    HashOnce,
}

fn bench_lookup(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("flow_table");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, n, v6, mode) in [
        ("lookup_hit_v4", 1_000, false, Mode::Prefetch),
        ("lookup_hit_v4", 1_000_000, false, Mode::Prefetch),
        ("lookup_hit_v4_no_prefetch", 1_000_000, false, Mode::NoPrefetch),
        ("lookup_hit_v4_hash_once", 1_000, false, Mode::HashOnce),
        ("lookup_hit_v4_hash_once", 1_000_000, false, Mode::HashOnce),
        ("lookup_hit_v6", 1_000_000, true, Mode::Prefetch),
    ] {
        let (mut t, keys) = full_table(n, v6);
        let mut at = 0;
        let mut best = f64::MAX;
        g.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter_custom(|iters| {
                timed(iters, &mut best, || {
                    if at + BURST > keys.len() {
                        at = 0;
                    }
                    let burst = &keys[at..at + BURST];
                    at += BURST;
                    black_box(match mode {
                        Mode::Prefetch => lookup_burst(&mut t, burst, true),
                        Mode::NoPrefetch => lookup_burst(&mut t, burst, false),
                        Mode::HashOnce => lookup_burst_hashed(&mut t, burst),
                    });
                })
            })
        });
        eprintln!("flow_table/{name}/{n}: best group {best:.1} ns/op");
        assert_eq!(t.stats().evicted + t.stats().expired, t.stats().created - n as u64);
    }
    g.finish();
}

fn bench_insert(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("flow_table");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, n, v6) in [("insert_new_v4", 1_000_000, false), ("insert_new_v6", 1_000_000, true)] {
        // Full: every insert of a new key lands in a bucket that is often full and
        // evicts (the steady state of a table at capacity).
        let (mut t, _) = full_table(n, v6);
        let mut rng = Rng(7);
        let mut burst = [FlowKey::V4(FlowKeyV4::default()); BURST];
        let mut best = f64::MAX;
        g.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter_custom(|iters| {
                timed(iters, &mut best, || {
                    for k in burst.iter_mut() {
                        *k = if v6 { rng.key_v6() } else { rng.key_v4() };
                        t.prefetch(k);
                    }
                    for k in &burst {
                        t.insert(k, VALUE, 2);
                    }
                })
            })
        });
        eprintln!("flow_table/{name}/{n}: best group {best:.1} ns/op");
    }
    g.finish();
}

fn config() -> Criterion<ThreadCpu> {
    Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = bench_lookup, bench_insert }
criterion_main!(benches);
