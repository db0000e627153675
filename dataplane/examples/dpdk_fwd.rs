//! io forwarding through l4lb's `Port` trait on DPDK: the same job as
//! `dpdk-testpmd --forward-mode=io`, to compare the port layer's cost with DPDK's own.
//!
//! `--work` adds, per packet, a growing part of the pipeline's own work, so that
//! the cost of each part can be read on the real port (docs/PERFORMANCE.md, "The
//! work ladder"):
//!
//! - `io` (default): nothing; the packets go out as they came in.
//! - `parse`: the fast lane's parse (`parse::fast_v4`) of each packet.
//! - `encap`: that, then the GRE encapsulation to one fixed backend (the fast
//!   lane's `encapsulate_v4_untagged`, with its MTU check).
//! - `table`: that, with the flow-table lookup in between, as the burst loop does it:
//!   hash and prefetch for the whole burst, then per packet the lookup, the TCP
//!   class update and, on a miss, the insert. No VIP lookup, Maglev, backend
//!   state or counters: the whole pipeline (`l4lb run`) adds those.
//!
//! ```text
//! dpdk_fwd [--rx NAME] [--tx NAME] [--seconds S] [--warmup S] [--cores 1,2] [--mbufs N] [--no-register] \
//!     [--work io|parse|encap|table] -- EAL ARGS...
//! dpdk_fwd --rx net_pcap0 --tx net_null0 --seconds 10 --cores 1 -- -l 0 --no-pci --no-huge -m 1024 \
//!     --vdev=net_pcap0,rx_pcap=flows.pcap,infinite_rx=1 --vdev=net_null0,no-rx=1
//! ```
//! Each worker (one per core in `--cores`, one queue each) is a Rust thread pinned
//! to its core and registered as an lcore (unless `--no-register`), as l4lb's
//! workers are. Prints one `RESULT` line: packets forwarded and Mpps over the
//! measured window (after the warm-up).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::net::{IpAddr, Ipv4Addr};

use common::snapshot::NodeInfo;
use common::tunnel::OuterHeader;
use dataplane::flow_table::{FlowClass, FlowHash, FlowTable, FlowTimeouts, FlowValue};
use dataplane::pipeline::encap::encapsulate_v4_untagged;
use dataplane::pipeline::parse::{FastV4, fast_v4};
use dataplane::port::dpdk::{DpdkPort, DpdkPortConfig, Eal, Mbuf};
use dataplane::port::{BURST, PacketBuf, Port};

/// How much of the pipeline's work each packet gets (see the module's doc).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Work {
    Io,
    Parse,
    Encap,
    Table,
}

struct Args {
    rx: String,
    tx: String,
    seconds: f64,
    warmup: f64,
    cores: Vec<usize>,
    mbufs: u32,
    register: bool,
    work: Work,
    eal: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        rx: "net_pcap0".into(),
        tx: "net_null0".into(),
        seconds: 10.0,
        warmup: 1.0,
        cores: vec![1],
        mbufs: 8191,
        register: true,
        work: Work::Io,
        eal: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--rx" => a.rx = val("--rx")?,
            "--tx" => a.tx = val("--tx")?,
            "--seconds" => a.seconds = val("--seconds")?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--warmup" => a.warmup = val("--warmup")?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--cores" => {
                a.cores = val("--cores")?
                    .split(',')
                    .map(|c| c.parse().map_err(|e| format!("--cores: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--mbufs" => a.mbufs = val("--mbufs")?.parse().map_err(|e| format!("--mbufs: {e}"))?,
            "--no-register" => a.register = false,
            "--work" => {
                a.work = match val("--work")?.as_str() {
                    "io" => Work::Io,
                    "parse" => Work::Parse,
                    "encap" => Work::Encap,
                    "table" => Work::Table,
                    other => return Err(format!("--work: {other:?} is not io, parse, encap or table")),
                }
            }
            "--" => {
                a.eal = it.by_ref().collect();
                break;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.cores.is_empty() {
        return Err("--cores needs at least one core".into());
    }
    Ok(a)
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let eal = Eal::init(&a.eal)?;
    let queues = u16::try_from(a.cores.len())?;
    let cfg = DpdkPortConfig { queues, mbufs_per_queue: a.mbufs, ring_size: 1024 };
    let mut rx = DpdkPort::configure(&eal, eal.port_by_name(&a.rx)?, cfg)?;
    let mut workers = if a.tx == a.rx {
        rx.take_queues()?
    } else {
        let mut tx = DpdkPort::configure(&eal, eal.port_by_name(&a.tx)?, cfg)?;
        rx.take_queues_to(&mut tx)?
    };

    let stop = Arc::new(AtomicBool::new(false));
    let forwarded: Arc<Vec<AtomicU64>> = Arc::new(a.cores.iter().map(|_| AtomicU64::new(0)).collect());
    let mut handles = Vec::new();
    for (i, (mut q, &core)) in workers.drain(..).zip(&a.cores).enumerate() {
        let (stop, forwarded, eal, register, work) = (stop.clone(), forwarded.clone(), eal.clone(), a.register, a.work);
        // Named so that scripts/bench-dpdk.sh can read the thread's CPU time from /proc.
        let builder = std::thread::Builder::new().name(format!("l4lb-fwd-{i}"));
        handles.push(builder.spawn(move || -> Result<(u64, u64), String> {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                return Err(format!("cannot pin worker {i} to core {core}"));
            }
            let _lcore = if register { Some(eal.register_thread().map_err(|e| e.to_string())?) } else { None };
            let mut burst = Vec::with_capacity(BURST);
            let mut state = WorkState::new(work)?;
            let (mut spins, mut sent) = (0u32, 0u64);
            loop {
                let n = q.rx_burst(&mut burst, BURST);
                if n > 0 {
                    state.run(&mut burst);
                    q.tx_burst(&mut burst);
                    sent += n as u64; // includes TX drops, reported apart at the end
                }
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(1024) {
                    forwarded[i].store(sent, Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
            let s = q.stats();
            Ok((s.tx_packets, s.tx_dropped))
        })?);
    }

    let total = |f: &[AtomicU64]| f.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
    std::thread::sleep(Duration::from_secs_f64(a.warmup));
    let (t0, p0) = (Instant::now(), total(&forwarded));
    std::thread::sleep(Duration::from_secs_f64(a.seconds));
    let (secs, p1) = (t0.elapsed().as_secs_f64(), total(&forwarded));
    stop.store(true, Ordering::Relaxed);
    let mut dropped = 0;
    for h in handles {
        let (_, d) = h.join().map_err(|_| "worker panicked")??;
        dropped += d;
    }
    let pkts = p1 - p0;
    let dev = rx.device_stats()?;
    println!(
        "RESULT dpdk_fwd workers={} register={} work={:?} packets={pkts} seconds={secs:.3} mpps={:.3} \
         tx_dropped={dropped} rx_missed={}",
        a.cores.len(),
        a.register,
        a.work,
        pkts as f64 / secs / 1e6,
        dev.total.rx_missed
    );
    Ok(())
}

/// A worker's state for its `--work`: the outer header of the one backend and,
/// for `table`, a flow table (64 K flows, as `scripts/bench-dpdk.sh` gives l4lb).
struct WorkState {
    work: Work,
    outer: OuterHeader,
    table: Option<FlowTable>,
    /// Per packet of the burst: the fast parse and the flow hash (pass 1 to pass 2).
    slots: Vec<Option<(FastV4, FlowHash)>>,
    /// What `parse` computes, kept so that the compiler cannot drop the parse.
    sink: u64,
    start: Instant,
}

impl WorkState {
    fn new(work: Work) -> Result<WorkState, String> {
        let node = NodeInfo {
            mac: [2, 0, 0, 0, 0, 1],
            gateway_mac: [2, 0, 0, 0, 0, 0xfe],
            ipv4: Some(Ipv4Addr::new(10, 0, 0, 2)),
            ipv6: None,
            mtu: 1500,
        };
        let outer = OuterHeader::new(&node, IpAddr::V4(Ipv4Addr::new(10, 1, 0, 11)), true);
        let timeouts = FlowTimeouts { established_ms: 300_000, transitory_ms: 30_000, udp_ms: 30_000 };
        let table = if work == Work::Table { Some(FlowTable::try_new(65536, timeouts)?) } else { None };
        Ok(WorkState { work, outer, table, slots: vec![None; BURST], sink: 0, start: Instant::now() })
    }

    /// Apply the work to a burst (packets the fast parse does not take go out as they are).
    fn run(&mut self, burst: &mut [Mbuf]) {
        match self.work {
            Work::Io => {}
            Work::Parse => {
                for b in burst.iter() {
                    if let Some(f) = fast_v4(b.data()) {
                        self.sink ^= f.addrs ^ f.words;
                    }
                }
                std::hint::black_box(self.sink);
            }
            Work::Encap => {
                for b in burst.iter_mut() {
                    if let Some(f) = fast_v4(b.data()) {
                        let _ = encapsulate_v4_untagged(b, &f, 1500, &self.outer);
                    }
                }
            }
            Work::Table => {
                let Some(table) = self.table.as_mut() else { return };
                let now_ms = self.start.elapsed().as_millis() as u32;
                for (b, slot) in burst.iter().zip(self.slots.iter_mut()) {
                    *slot = fast_v4(b.data()).map(|f| {
                        let (addrs, rest) = f.key_words();
                        let h = table.hash_v4_words(addrs, rest);
                        table.prefetch_v4(h);
                        (f, h)
                    });
                }
                for (b, slot) in burst.iter_mut().zip(self.slots.iter()) {
                    let Some((f, h)) = slot else { continue };
                    match table.lookup_v4_entry(*h, now_ms) {
                        Some(mut e) => e.on_packet(f.proto() != 6, f.tcp_flags()),
                        None => {
                            let value = FlowValue { target: 0, class: FlowClass::Established, reverse: false };
                            table.insert_absent_v4(*h, value, now_ms);
                        }
                    }
                    let _ = encapsulate_v4_untagged(b, f, 1500, &self.outer);
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dpdk_fwd: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpdk_fwd: {e}");
            ExitCode::FAILURE
        }
    }
}
