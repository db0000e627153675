//! io forwarding through l4lb's `Port` trait on DPDK: the same job as
//! `dpdk-testpmd --forward-mode=io`, to compare the port layer's cost with DPDK's own.
//!
//! ```text
//! dpdk_fwd [--rx NAME] [--tx NAME] [--seconds S] [--warmup S] [--cores 1,2] [--mbufs N] [--no-register] \
//!     -- EAL ARGS...
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

use dataplane::port::dpdk::{DpdkPort, DpdkPortConfig, Eal};
use dataplane::port::{BURST, Port};

struct Args {
    rx: String,
    tx: String,
    seconds: f64,
    warmup: f64,
    cores: Vec<usize>,
    mbufs: u32,
    register: bool,
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
        let (stop, forwarded, eal, register) = (stop.clone(), forwarded.clone(), eal.clone(), a.register);
        // Named so that scripts/bench-dpdk.sh can read the thread's CPU time from /proc.
        let builder = std::thread::Builder::new().name(format!("l4lb-fwd-{i}"));
        handles.push(builder.spawn(move || -> Result<(u64, u64), String> {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                return Err(format!("cannot pin worker {i} to core {core}"));
            }
            let _lcore = if register { Some(eal.register_thread().map_err(|e| e.to_string())?) } else { None };
            let mut burst = Vec::with_capacity(BURST);
            let (mut spins, mut sent) = (0u32, 0u64);
            loop {
                let n = q.rx_burst(&mut burst, BURST);
                if n > 0 {
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
        "RESULT dpdk_fwd workers={} register={} packets={pkts} seconds={secs:.3} mpps={:.3} tx_dropped={dropped} \
         rx_missed={}",
        a.cores.len(),
        a.register,
        pkts as f64 / secs / 1e6,
        dev.total.rx_missed
    );
    Ok(())
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
