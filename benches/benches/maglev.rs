//! Maglev table build (M = 65537, N = 10, 100, 1000), plus the per-packet pieces that
//! use it: the stable 5-tuple hash, table selection and the snapshot's VIP lookup.
//!
//! Run: `cargo bench -p l4lb-benches --bench maglev`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::config::Config;
use common::flow::FlowKeyV4;
use common::hash::hash_5tuple_v4;
use common::maglev::{MaglevBackend, build};
use common::snapshot::Snapshot;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

#[path = "support/cpu.rs"]
mod cpu;
use cpu::ThreadCpu;

const M: u32 = 65537;

fn backends(n: u32) -> Vec<MaglevBackend> {
    (0..n).map(|i| MaglevBackend::new(IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i)), 1)).collect()
}

fn maglev_build(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("maglev_build");
    g.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1)).sample_size(50);
    for n in [10u32, 100, 1000] {
        let b = backends(n);
        g.bench_with_input(BenchmarkId::new("M=65537", n), &b, |bench, b| bench.iter(|| build(black_box(M), b)));
    }
    // Weighted (1..=4) with 1000 backends.
    let mut b = backends(1000);
    for (i, x) in b.iter_mut().enumerate() {
        x.weight = (i % 4) as u32 + 1;
    }
    g.bench_function("M=65537/1000-weighted-1..4", |bench| bench.iter(|| build(black_box(M), &b)));
    g.finish();
}

const CFG: &str = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
  [[vip.backend]]
  address = "10.1.0.11"
  [[vip.backend]]
  address = "10.1.0.12"
  [[vip.backend]]
  address = "10.1.0.13"
[[vip]]
name = "any"
address = "198.51.100.11"
port = 0
protocol = "udp"
forwarding = "ipip"
  [[vip.backend]]
  address = "10.1.0.21"
"#;

fn per_packet(c: &mut Criterion<ThreadCpu>) {
    let snap = Snapshot::build(&Config::from_toml_str(CFG).expect("bench config"), None);
    let key = FlowKeyV4 { src: [192, 0, 2, 1], dst: [198, 51, 100, 10], src_port: 40000, dst_port: 80, proto: 6 };
    let mut g = c.benchmark_group("per_packet");
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    g.bench_function("hash_5tuple_v4", |b| b.iter(|| hash_5tuple_v4(black_box(&key))));
    g.bench_function("lookup_vip_v4_exact", |b| {
        b.iter(|| snap.lookup_vip_v4(black_box([198, 51, 100, 10]), black_box(80), 6))
    });
    g.bench_function("lookup_vip_v4_wildcard", |b| {
        b.iter(|| snap.lookup_vip_v4(black_box([198, 51, 100, 11]), black_box(5353), 17))
    });
    g.bench_function("lookup_vip_v4_miss", |b| {
        b.iter(|| snap.lookup_vip_v4(black_box([10, 9, 9, 9]), black_box(80), 6))
    });
    g.bench_function("hash_and_select", |b| {
        b.iter(|| {
            let vip = &snap.vips[0];
            vip.select(hash_5tuple_v4(black_box(&key)))
        })
    });
    g.finish();
}

fn snapshot_build(c: &mut Criterion<ThreadCpu>) {
    let cfg = Config::from_toml_str(CFG).expect("bench config");
    let first = Snapshot::build(&cfg, None);
    let mut g = c.benchmark_group("snapshot_build");
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    g.bench_function("2 VIPs, from scratch", |b| b.iter(|| Snapshot::build(black_box(&cfg), None)));
    g.bench_function("2 VIPs, unchanged (tables reused)", |b| {
        b.iter(|| Snapshot::build(black_box(&cfg), Some(&first)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = maglev_build, per_packet, snapshot_build
}
criterion_main!(benches);
