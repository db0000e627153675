//! `l4lb run`: live load balancing on real ports.
//!
//! The main thread opens the port named by the config's `[io]` table (AF_XDP,
//! AF_PACKET or DPDK), starts one worker per queue (pinned to its core when
//! `io.cores` is given; busy-polling), and becomes the control thread: it reloads
//! the configuration on SIGHUP (validated whole, published as a new snapshot),
//! reclaims retired snapshots, logs counters, and on SIGINT/SIGTERM stops the
//! workers, lets them drain, prints the final counters and returns.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use common::config::{Config, Forwarding, IoDriver};
use common::snapshot::Snapshot;
use dataplane::pipeline::Pipeline;
use dataplane::port::{Port, PortStats};
use dataplane::worker::{Worker, WorkerStats, handoff_mesh, handoff_mesh_copying};

use crate::publish::Publisher;
use crate::stats::RunStats;

/// How often the control loop logs counters (milliseconds); `l4lb run --stats-interval`.
static STATS_INTERVAL_MS: AtomicU64 = AtomicU64::new(10_000);

/// Set how often `run` logs its counters and rates (at least 10 ms).
pub fn set_stats_interval(every: Duration) {
    STATS_INTERVAL_MS.store((every.as_millis() as u64).max(10), Ordering::Relaxed);
}

/// Run until SIGINT/SIGTERM. `path` is re-read on SIGHUP.
pub fn run(cfg: Config, path: &Path) -> Result<RunStats> {
    let io = cfg.io.clone().ok_or_else(|| {
        anyhow!("{}: l4lb run needs an [io] table (driver, interface, ...): see docs/CONFIG.md", path.display())
    })?;
    let workers = cfg.dataplane.workers;
    match io.driver {
        IoDriver::AfPacket => {
            let iface = io.interface.clone().ok_or_else(|| anyhow!("io.interface is required for af_packet"))?;
            let queues = dataplane::port::af_packet::AfPacketPort::open(&iface, workers, io.ring_size)
                .map_err(|e| anyhow!("{e}"))?;
            tracing::info!(interface = %iface, workers, "AF_PACKET: TPACKET_V3 rings, fanout over {workers} socket(s)");
            run_workers(cfg, path.to_path_buf(), queues, |_| Ok(()), |_| {})
        }
        IoDriver::AfXdp => run_af_xdp(cfg, path),
        IoDriver::Dpdk => run_dpdk(cfg, path),
    }
}

#[cfg(feature = "af_xdp")]
fn run_af_xdp(cfg: Config, path: &Path) -> Result<RunStats> {
    use dataplane::port::af_xdp::{AfXdpPort, XdpMode, XdpOptions, ZeroCopy};
    let io = cfg.io.clone().expect("checked by the caller");
    let iface = io.interface.clone().ok_or_else(|| anyhow!("io.interface is required for af_xdp"))?;
    let opts = XdpOptions {
        mode: match io.xdp_mode {
            common::config::XdpMode::Auto => XdpMode::Auto,
            common::config::XdpMode::Native => XdpMode::Native,
            common::config::XdpMode::Generic => XdpMode::Generic,
        },
        zero_copy: match io.zero_copy {
            common::config::ZeroCopy::Auto => ZeroCopy::Auto,
            common::config::ZeroCopy::On => ZeroCopy::On,
            common::config::ZeroCopy::Off => ZeroCopy::Off,
        },
        ring_size: io.ring_size,
    };
    let (port, queues) = AfXdpPort::open(&iface, cfg.dataplane.workers as u32, opts).map_err(|e| anyhow!("{e}"))?;
    tracing::info!(interface = %iface, mode = %port.mode(), "AF_XDP attached");
    let port = Mutex::new(port);
    let update = |snap: &Snapshot| {
        let (vips, addrs, dnat) = redirect_sets(snap);
        if let Ok(mut p) = port.lock() {
            let r = p.set_vips(&vips).and_then(|_| p.set_vip_addrs(&addrs)).and_then(|_| p.set_dnat_backends(&dnat));
            if let Err(e) = r {
                tracing::error!("updating the XDP maps: {e}");
            }
        }
    };
    let stats = run_workers(cfg, path.to_path_buf(), queues, |_| Ok(()), update)?;
    drop(port);
    Ok(stats)
}

#[cfg(not(feature = "af_xdp"))]
fn run_af_xdp(_cfg: Config, _path: &Path) -> Result<RunStats> {
    bail!("this l4lb was built without AF_XDP support (cargo feature \"af_xdp\")")
}

/// The name of the `net_tap` vdev l4lb adds for `io.dpdk.host_tap`.
#[cfg(feature = "dpdk")]
const HOST_TAP_VDEV: &str = "net_tap_l4lb";

#[cfg(feature = "dpdk")]
fn run_dpdk(cfg: Config, path: &Path) -> Result<RunStats> {
    use dataplane::port::dpdk::{DpdkPort, DpdkPortConfig, Eal};
    let io = cfg.io.clone().expect("checked by the caller");
    let d = io.dpdk.clone().ok_or_else(|| anyhow!("io.dpdk is required for the dpdk driver"))?;
    // rte_eal_init pins the calling thread to the main lcore's CPU, and threads started
    // afterwards inherit that mask: without `io.cores`, every worker would share that one
    // CPU. Workers without a configured core get the process's original CPU set back.
    let affinity = rustix::thread::sched_getaffinity(None).ok();
    let mut eal_args = d.eal_args.clone();
    if let Some(tap) = &d.host_tap {
        // The host exception path: a TAP interface with the node's MAC, so that the
        // kernel behind it answers ARP/NDP for the node's addresses as the node.
        let mac = common::config::format_mac(cfg.node.mac);
        eal_args.push(format!("--vdev={HOST_TAP_VDEV},iface={tap},mac={mac}"));
    }
    let eal = Eal::init(&eal_args).map_err(|e| anyhow!("DPDK EAL: {e}"))?;
    let pcfg = DpdkPortConfig {
        queues: cfg.dataplane.workers as u16,
        mbufs_per_queue: d.mbufs,
        ring_size: io.ring_size.min(4096) as u16,
    };
    let mut port = DpdkPort::configure(&eal, d.port, pcfg).map_err(|e| anyhow!("DPDK port {}: {e}", d.port))?;
    let mut queues = match d.tx_port {
        Some(tx) if tx != d.port => {
            let mut txp = DpdkPort::configure(&eal, tx, pcfg).map_err(|e| anyhow!("DPDK port {tx}: {e}"))?;
            port.take_queues_to(&mut txp).map_err(|e| anyhow!("{e}"))?
        }
        _ => port.take_queues().map_err(|e| anyhow!("{e}"))?,
    };
    if let Some(tap) = &d.host_tap {
        let id = eal.port_by_name(HOST_TAP_VDEV).map_err(|e| anyhow!("host TAP {tap}: {e}"))?;
        // Host traffic is light: small rings and pools.
        let hcfg = DpdkPortConfig { queues: pcfg.queues, mbufs_per_queue: 1023, ring_size: 256 };
        let mut host = DpdkPort::configure(&eal, id, hcfg).map_err(|e| anyhow!("host TAP {tap}: {e}"))?;
        host.attach_host(&mut queues).map_err(|e| anyhow!("host TAP {tap}: {e}"))?;
        tracing::info!(tap = %tap, port = id, "host exception path through a TAP interface");
    }
    tracing::info!(port = d.port, workers = cfg.dataplane.workers, "DPDK port started");
    let eal2 = eal.clone();
    let cores = io.cores.clone();
    run_workers(
        cfg,
        path.to_path_buf(),
        queues,
        move |i| {
            if cores.get(i).is_none()
                && let Some(set) = &affinity
            {
                rustix::thread::sched_setaffinity(None, set)
                    .map_err(|e| anyhow!("restoring the CPU affinity after EAL start-up: {e}"))?;
            }
            eal2.register_thread().map(|g| Box::new(g) as Box<dyn std::any::Any>).map_err(|e| anyhow!("{e}"))
        },
        |_| {},
    )
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk(_cfg: Config, _path: &Path) -> Result<RunStats> {
    bail!("this l4lb was built without DPDK support (cargo feature \"dpdk\")")
}

/// (address, port, IP protocol).
pub type Endpoint = (std::net::IpAddr, u16, u8);

/// What the XDP program must redirect: VIPs, VIP addresses (ICMP, fragments),
/// and DNAT backend endpoints (replies).
pub fn redirect_sets(snap: &Snapshot) -> (Vec<Endpoint>, Vec<std::net::IpAddr>, Vec<Endpoint>) {
    let mut vips = Vec::new();
    let mut addrs = Vec::new();
    let mut dnat = Vec::new();
    for v in snap.vips.iter().filter(|v| v.active) {
        vips.push((v.address, v.port, v.proto_num));
        if !addrs.contains(&v.address) {
            addrs.push(v.address);
        }
        if v.forwarding == Forwarding::Dnat {
            for b in &v.backends {
                dnat.push((b.address, b.port, v.proto_num));
            }
        }
    }
    (vips, addrs, dnat)
}

/// Start one pinned worker per queue and run the control loop until a signal.
/// `thread_init` runs first on each worker thread (e.g. DPDK thread registration;
/// what it returns lives as long as the thread). `on_snapshot` runs on the control
/// thread for the first snapshot and every new one.
pub fn run_workers<P, I, G, U>(
    cfg: Config,
    path: PathBuf,
    queues: Vec<P>,
    thread_init: I,
    mut on_snapshot: U,
) -> Result<RunStats>
where
    P: Port + Send + 'static,
    P::Buf: Send + 'static,
    I: Fn(usize) -> Result<G> + Send + Sync + Clone + 'static,
    G: 'static,
    U: FnMut(&Snapshot),
{
    let n = queues.len();
    if n == 0 {
        bail!("no queue to run on");
    }
    let cores = cfg.io.as_ref().map(|io| io.cores.clone()).unwrap_or_default();
    let capacity = cfg.dataplane.flow_table_capacity;
    crate::flow_memory::check(capacity, n)?;
    let mut publisher = Publisher::new(cfg, n);
    let cell = publisher.cell();
    on_snapshot(&publisher.snapshot());

    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload)).context("installing SIGHUP")?;

    // Ports whose buffers cannot leave their queue (AF_XDP) hand packets over by copy.
    let mesh = if queues.first().is_some_and(|q| !q.buffers_move_between_queues()) {
        handoff_mesh_copying::<P::Buf>(n)
    } else {
        handoff_mesh::<P::Buf>(n)
    };
    let mut handles = Vec::new();
    let mut shared: Vec<Arc<Mutex<WorkerStats>>> = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Arc<Mutex<WorkerStats>>, String>>();
    for (i, (q, h)) in queues.into_iter().zip(mesh).enumerate() {
        let snap = publisher.snapshot();
        let reader = cell.reader(i);
        let stop = Arc::clone(&stop);
        let core = cores.get(i).copied();
        let init = thread_init.clone();
        let ready = ready_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("l4lb-worker-{i}"))
            .spawn(move || {
                if let Some(c) = core
                    && !core_affinity::set_for_current(core_affinity::CoreId { id: c })
                {
                    let _ = ready.send(Err(format!("worker {i}: cannot pin to CPU {c}")));
                    return;
                }
                let _guard = match init(i) {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = ready.send(Err(format!("worker {i}: {e}")));
                        return;
                    }
                };
                let pipeline = match Pipeline::try_new(i as u16, n as u16, capacity, &snap) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = ready.send(Err(format!("worker {i}: {e}")));
                        return;
                    }
                };
                drop(snap);
                let mut w = Worker::new(q, pipeline, reader, h);
                let _ = ready.send(Ok(w.stats_handle()));
                w.run(&stop);
            })
            .context("spawning a worker thread")?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut startup_error = None;
    for _ in 0..n {
        match ready_rx.recv() {
            Ok(Ok(s)) => shared.push(s),
            Ok(Err(e)) => startup_error = Some(e),
            Err(_) => startup_error = Some("a worker exited during start-up".into()),
        }
    }
    if let Some(e) = startup_error {
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        bail!("{e}");
    }
    tracing::info!(workers = n, "forwarding; SIGHUP reloads {}, SIGINT/SIGTERM stops", path.display());

    let interval = Duration::from_millis(STATS_INTERVAL_MS.load(Ordering::Relaxed));
    let tick = interval.min(Duration::from_millis(50));
    let mut last_log = Instant::now();
    let (mut last_rx, mut last_tx) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        if reload.swap(false, Ordering::Relaxed) {
            match Config::load(&path) {
                Ok(next) => match publisher.replace(next) {
                    Ok(()) => {
                        on_snapshot(&publisher.snapshot());
                        tracing::info!(version = publisher.snapshot().version, "configuration reloaded");
                    }
                    Err(e) => tracing::error!("reload refused: {e}"),
                },
                Err(errors) => {
                    for line in errors.lines() {
                        tracing::error!("reload refused: {line}");
                    }
                }
            }
        }
        cell.reclaim();
        let since = last_log.elapsed();
        if since >= interval {
            last_log = Instant::now();
            let s = collect(&shared);
            let rx = s.counters.get(dataplane::counters::Counter::RxPackets);
            let tx = s.counters.get(dataplane::counters::Counter::TxPackets);
            let secs = since.as_secs_f64();
            let port = port_totals(&shared);
            tracing::info!(
                rx,
                tx,
                port_rx = port.rx_packets,
                port_tx = port.tx_packets,
                rx_missed = port.rx_missed,
                dropped = s.counters.get(dataplane::counters::Counter::DropPackets),
                host = s.counters.get(dataplane::counters::Counter::HostPackets),
                host_dropped = port.host_dropped,
                flows = s.flows.active,
                rx_mpps = format_args!("{:.3}", rx.saturating_sub(last_rx) as f64 / secs / 1e6),
                tx_mpps = format_args!("{:.3}", tx.saturating_sub(last_tx) as f64 / secs / 1e6),
                "counters"
            );
            (last_rx, last_tx) = (rx, tx);
        }
    }
    tracing::info!("stopping: draining workers");
    for h in handles {
        let _ = h.join();
    }
    cell.reclaim();
    let stats = collect(&shared);
    let port = port_totals(&shared);
    println!("{}", stats.summary(&publisher.snapshot()).trim_end());
    println!(
        "port: {} rx, {} tx, {} tx dropped, {} rx missed, {} to host, {} host dropped",
        port.rx_packets, port.tx_packets, port.tx_dropped, port.rx_missed, port.host_packets, port.host_dropped
    );
    Ok(stats)
}

fn collect(shared: &[Arc<Mutex<WorkerStats>>]) -> RunStats {
    let mut stats = RunStats { workers: shared.len(), ..Default::default() };
    for s in shared {
        if let Ok(s) = s.lock() {
            stats.counters.merge(&s.counters);
            stats.per_worker.push(s.counters.clone());
            stats.flows = stats.flows + s.flows;
        }
    }
    stats
}

fn port_totals(shared: &[Arc<Mutex<WorkerStats>>]) -> PortStats {
    let mut t = PortStats::default();
    for s in shared {
        if let Ok(s) = s.lock() {
            t.rx_packets += s.port.rx_packets;
            t.tx_packets += s.port.tx_packets;
            t.tx_dropped += s.port.tx_dropped;
            t.rx_missed += s.port.rx_missed;
            t.host_packets += s.port.host_packets;
            t.host_dropped += s.port.host_dropped;
        }
    }
    t
}
