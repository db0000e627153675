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

use common::config::Config;
use common::snapshot::Snapshot;
use dataplane::pipeline::{Pipeline, Verdict};
use dataplane::port::memory::HeapBuf;
use dataplane::port::{BURST, PacketBuf};

fn config(backends: usize) -> Config {
    let mut s = String::from(
        "[node]\nmac = \"02:00:00:00:00:01\"\ngateway_mac = \"02:00:00:00:00:fe\"\nipv4 = \"10.0.0.2\"\n\
         [dataplane]\nflow_table_capacity = 4000000\n[[vip]]\nname = \"web\"\naddress = \"198.51.100.10\"\n\
         port = 80\nprotocol = \"tcp\"\nforwarding = \"gre\"\n",
    );
    for i in 0..backends {
        s.push_str(&format!("[[vip.backend]]\naddress = \"10.1.{}.{}\"\n", i / 250, 1 + i % 250));
    }
    Config::from_toml_str(&s).unwrap()
}

fn template() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[172, 16, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 51, 100, 10]);
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&1024u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x10;
    f
}

fn set_flow(frame: &mut [u8], id: u32) {
    let a = 0xac10_0000u32 | (id >> 6);
    frame[26..30].copy_from_slice(&a.to_be_bytes());
    frame[34..36].copy_from_slice(&(1024 + (id & 63) as u16).to_be_bytes());
}

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
    let cfg = config(10);
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
    for chunk in (0..flows).collect::<Vec<_>>().chunks(BURST) {
        for (b, id) in bufs.iter_mut().zip(chunk) {
            b.set_frame(&tpl);
            set_flow(b.data_mut(), *id);
        }
        let n = chunk.len();
        pipe.process(&snap, 1, &mut bufs[..n], &mut verdicts[..n]);
    }
    let setup = setup.elapsed();
    let mut x = 7u64;
    let mut id = 0u32;
    let bursts = packets / BURST as u64;
    let t = Instant::now();
    for _ in 0..bursts {
        for buf in bufs.iter_mut() {
            buf.set_frame(&tpl);
            let f = if flows > 0 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) % u64::from(flows)) as u32
            } else {
                id = id.wrapping_add(1);
                id
            };
            set_flow(buf.data_mut(), f);
        }
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
