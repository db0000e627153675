//! Pipeline benchmarks on the in-memory port, one core, 64-byte TCP packets.
//!
//! - `established/gre/{1k,1m}`: packets of flows already in the flow table.
//! - `new_flow/gre`: every packet a flow never seen (Maglev pick + insert, evicting once full).
//! - `parse/ipv4_tcp_64b`: parse a 64-byte Ethernet/IPv4/TCP frame to a flow key.
//! - `dnat/handoff_2_workers`: DNAT requests and replies through two workers' poll
//!   loops, with the handoff rings between them.
//!
//! Each iteration resets 32 buffers from a template (what the NIC's DMA would do)
//! and runs them through the pipeline; criterion's throughput is packets/s.
//! Times are thread CPU time (see support/cpu.rs): the machine these run on is shared.

use std::hint::black_box;

use common::snapshot::Snapshot;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/cpu.rs"]
mod cpu;
use cpu::ThreadCpu;
#[path = "support/workload.rs"]
mod workload;
use workload::{Walk, config, create_flows, refill, set_flow, template};

type C = Criterion<ThreadCpu>;
use dataplane::pipeline::parse::{ParseOutcome, parse};
use dataplane::pipeline::{Pipeline, Verdict};
use dataplane::port::memory::{HeapBuf, MemoryPort};
use dataplane::port::{BURST, PacketBuf};
use dataplane::snapshot_cell::SnapshotCell;
use dataplane::worker::{Worker, handoff_mesh};

fn established(c: &mut C) {
    let cfg = config("gre", 10);
    let snap = Snapshot::build(&cfg, None);
    let tpl = template();
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(BURST as u64));
    // (name, live flows, flow-table capacity): the small table shows the cost of a
    // big table's TLB misses (4 KiB pages) on the same work.
    for (name, flows, capacity) in [
        ("gre/1k", 1_000u32, cfg.dataplane.flow_table_capacity),
        ("gre/1k_small_table", 1_000, 16_384),
        ("gre/1m", 1_000_000, cfg.dataplane.flow_table_capacity),
    ] {
        let mut pipe = Pipeline::new(0, 1, capacity, &snap);
        let mut bufs: Vec<HeapBuf> = (0..BURST).map(|_| HeapBuf::from_frame(&tpl)).collect();
        let mut verdicts = [Verdict::Drop; BURST];
        create_flows(&mut pipe, &snap, &mut bufs, &tpl, flows);
        let mut walk = Walk { x: 7, n: flows };
        if name == "gre/1k" {
            // The harness alone (buffer resets and the flow walk), to subtract.
            let mut w = Walk { x: 7, n: flows };
            g.bench_function("harness_only", |b| {
                b.iter(|| {
                    refill(&mut bufs, &tpl, || w.next());
                    black_box(&mut bufs);
                })
            });
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                refill(&mut bufs, &tpl, || walk.next());
                pipe.process(&snap, 2_000_000, &mut bufs, &mut verdicts);
                black_box(&verdicts);
            })
        });
        let st = pipe.flows().stats();
        eprintln!(
            "{name}: {} flows created, {} evicted (capacity {})",
            st.created,
            st.evicted,
            pipe.flows().capacity()
        );
    }
    g.finish();
}

fn new_flow(c: &mut C) {
    let cfg = config("gre", 10);
    let snap = Snapshot::build(&cfg, None);
    let tpl = template();
    let mut pipe = Pipeline::new(0, 1, 1_000_000, &snap);
    let mut bufs: Vec<HeapBuf> = (0..BURST).map(|_| HeapBuf::from_frame(&tpl)).collect();
    let mut verdicts = [Verdict::Drop; BURST];
    let mut id: u32 = 0;
    let mut g = c.benchmark_group("new_flow");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("gre", |b| {
        b.iter(|| {
            refill(&mut bufs, &tpl, || {
                let f = id;
                id = id.wrapping_add(1);
                f
            });
            pipe.process(&snap, 1_000_000, &mut bufs, &mut verdicts);
            black_box(&verdicts);
        })
    });
    g.finish();
}

fn parse_bench(c: &mut C) {
    // A burst of 32 frames of different flows per iteration (criterion's own
    // per-iteration cost, a few ns, would otherwise dominate a 5 ns routine).
    let tpl = template();
    let frames: Vec<Vec<u8>> = (0..BURST as u32)
        .map(|id| {
            let mut f = tpl.clone();
            set_flow(&mut f, id * 7919);
            f
        })
        .collect();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("ipv4_tcp_64b", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for f in &frames {
                match parse(black_box(f)) {
                    ParseOutcome::Ip(p) => acc = acc.wrapping_add(u32::from(p.key.src_port()) ^ p.ip_len as u32),
                    _ => unreachable!(),
                }
            }
            black_box(acc)
        })
    });
    g.finish();
}

fn dnat_handoff(c: &mut C) {
    let cfg = config("dnat", 10);
    let snap = std::sync::Arc::new(Snapshot::build(&cfg, None));
    let cell = SnapshotCell::new(snap.clone(), 2);
    let mut mesh = handoff_mesh::<HeapBuf>(2);
    let h1 = mesh.pop().unwrap();
    let h0 = mesh.pop().unwrap();
    let mk = |i: u16, h| {
        let mut port = MemoryPort::new();
        port.keep_tx = false;
        Worker::new(port, Pipeline::new(i, 2, 100_000, &snap), cell.reader(usize::from(i)), h)
    };
    let mut w0 = mk(0, h0);
    let mut w1 = mk(1, h1);
    let tpl = template();
    // Requests from 4096 clients, then each flow's reply (backend -> client): the
    // reply's backend is found by sending the request once through a scratch pipeline.
    let flows = 4096u32;
    let mut scratch = Pipeline::new(0, 1, 100_000, &snap);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for id in 0..flows {
        let mut f = tpl.clone();
        set_flow(&mut f, id);
        let mut b = [HeapBuf::from_frame(&f)];
        let mut v = [Verdict::Drop];
        scratch.process(&snap, 1, &mut b, &mut v);
        let out = b[0].data().to_vec();
        let mut reply = out.clone();
        // Swap addresses and ports: backend -> client.
        reply.copy_within(26..30, 60);
        reply.copy_within(30..34, 26);
        reply.copy_within(60..64, 30);
        let (sp, dp) = ([reply[34], reply[35]], [reply[36], reply[37]]);
        reply[34..36].copy_from_slice(&dp);
        reply[36..38].copy_from_slice(&sp);
        frames.push(f);
        frames.push(reply);
    }
    let mut k = 0usize;
    let mut g = c.benchmark_group("dnat");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("handoff_2_workers", |b| {
        b.iter(|| {
            // Half the burst arrives on each worker, as RSS would spread it.
            for i in 0..BURST {
                let mut buf = w0.port.pool.pop().or_else(|| w1.port.pool.pop()).unwrap_or_default();
                buf.set_frame(&frames[k % frames.len()]);
                k += 1;
                if i % 2 == 0 { w0.port.push_rx(buf) } else { w1.port.push_rx(buf) }
            }
            w0.poll(1_000_000);
            w1.poll(1_000_000);
            w0.poll(1_000_000);
            w1.poll(1_000_000);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = parse_bench, established, new_flow, dnat_handoff
}
criterion_main!(benches);
