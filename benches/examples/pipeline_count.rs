//! Run one pipeline scenario for a fixed number of packets, for `perf stat`
//! (instructions and cycles per packet do not depend on what else the machine runs,
//! unlike wall or even thread-CPU time on a shared 2-vCPU VM):
//!
//! ```sh
//! cargo build --release -p l4lb-benches --example pipeline_count
//! perf stat -e instructions:u,cycles:u target/release/examples/pipeline_count established 1000 20000000
//! ```
//!
//! Scenarios: `established FLOWS PACKETS` (GRE, flows created first, then a
//! pseudo-random walk over them), `new PACKETS` (every packet a new flow). The
//! `harness FLOWS PACKETS` does only the buffer resets and the walk. The
//! setup's packets are counted separately and printed, so that per-packet figures
//! can be computed from the totals.

use std::hint::black_box;
use std::time::Instant;

use common::snapshot::Snapshot;
use dataplane::pipeline::{Pipeline, Verdict};
use dataplane::port::BURST;
use dataplane::port::memory::HeapBuf;

#[path = "../benches/support/workload.rs"]
mod workload;
use workload::{Walk, config, create_flows, refill, template};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: pipeline_count established|harness FLOWS PACKETS | new PACKETS | parse FRAMES";
    let scenario = args.get(1).expect(usage).as_str();
    if scenario == "parse" {
        // Parse only: the template frame, PACKETS times.
        let n: u64 = args[2].parse().expect(usage);
        let tpl = template();
        let t = Instant::now();
        let mut acc = 0u64;
        for _ in 0..n {
            if let dataplane::pipeline::parse::ParseOutcome::Ip(p) = dataplane::pipeline::parse::parse(black_box(&tpl))
            {
                acc = acc.wrapping_add(u64::from(p.key.src_port()));
            }
        }
        black_box(acc);
        let el = t.elapsed();
        println!("parse: {n} frames in {el:.2?} = {:.2} ns/frame (wall)", el.as_nanos() as f64 / n as f64);
        return;
    }
    let cfg = config("gre", 10);
    let snap = Snapshot::build(&cfg, None);
    let tpl = template();
    let mut bufs: Vec<HeapBuf> = (0..BURST).map(|_| HeapBuf::from_frame(&tpl)).collect();
    let mut verdicts = [Verdict::Drop; BURST];
    // CAPACITY=N overrides the flow table's capacity (default 4M, as in the benches).
    let capacity = std::env::var("CAPACITY").ok().and_then(|c| c.parse().ok());
    let mut pipe = Pipeline::new(0, 1, capacity.unwrap_or(cfg.dataplane.flow_table_capacity), &snap);
    let (flows, packets) = match scenario {
        "established" => (args[2].parse::<u32>().expect(usage), args[3].parse::<u64>().expect(usage)),
        "new" => (0, args[2].parse::<u64>().expect(usage)),
        "harness" => (args[2].parse::<u32>().expect(usage), args[3].parse::<u64>().expect(usage)),
        _ => panic!("{usage}"),
    };
    let setup = Instant::now();
    create_flows(&mut pipe, &snap, &mut bufs, &tpl, flows);
    let setup = setup.elapsed();
    let mut walk = Walk { x: 7, n: flows.max(1) };
    let mut id = 0u32;
    let bursts = packets / BURST as u64;
    let t = Instant::now();
    for _ in 0..bursts {
        refill(&mut bufs, &tpl, || {
            if flows > 0 {
                walk.next()
            } else {
                id = id.wrapping_add(1);
                id
            }
        });
        if scenario != "harness" {
            pipe.process(&snap, 2_000_000, &mut bufs, &mut verdicts);
        }
        black_box(&mut bufs);
        black_box(&verdicts);
    }
    let el = t.elapsed();
    let n = bursts * BURST as u64;
    println!(
        "{scenario}: setup {} packets in {:.2?}; measured {n} packets in {:.2?} = {:.1} ns/packet (wall)",
        flows,
        setup,
        el,
        el.as_nanos() as f64 / n as f64
    );
}
