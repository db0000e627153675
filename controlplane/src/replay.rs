//! `l4lb replay`: the live pipeline fed from a capture.
//!
//! The driver plays the NIC: it reads the capture in order, spreads packets over
//! the workers with the NIC's RSS hash ([`dataplane::rss`]), lets the receiving
//! worker's steer stage hand a packet to the worker that owns its flow (what the
//! live handoff rings do), and runs each worker's pipeline on its share, one batch
//! at a time. Every packet is processed with the capture's own clock, so timeouts
//! are reproducible; outputs are written in input order, so OUT.pcap is
//! byte-identical for any number of workers. Events are applied between batches
//! through the publisher and the workers' snapshot readers: exactly the live
//! control plane's path, with batches cut at each event's time.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::config::Config;
use dataplane::counters::Counter;
use dataplane::pipeline::{Pipeline, Verdict, steer};
use dataplane::port::PacketBuf;
use dataplane::port::memory::HeapBuf;
use dataplane::port::pcap::{PcapReader, PcapWriter};
use dataplane::snapshot_cell::SnapshotReader;

use crate::events::{self, Event};
use crate::publish::{Publisher, apply_change};
use crate::stats::RunStats;

/// What `replay` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub host_output: Option<PathBuf>,
    pub workers: usize,
    pub stats_json: Option<PathBuf>,
    pub events: Option<PathBuf>,
    /// Show a progress line on a terminal.
    pub progress: bool,
}

/// Packets read per batch (spread over the workers, processed, written in order).
const BATCH: usize = 1024;

/// Load and check an events file against the configuration: every event must
/// apply cleanly, in order, to a valid configuration.
pub fn load_events(path: &std::path::Path, cfg: &Config) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read events file {}", path.display()))?;
    let evs = events::parse(&text).map_err(|errs| anyhow::anyhow!("{}: {}", path.display(), errs.join("; ")))?;
    let mut sim = cfg.clone();
    let mut errors = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        let mut next = sim.clone();
        match apply_change(&mut next, &e.change).and_then(|_| next.validate().map_err(|e| e.to_string())) {
            Ok(()) => sim = next,
            Err(msg) => errors.push(format!("event at {:?} (#{i} by time): {}", e.at, msg.replace('\n', "; "))),
        }
    }
    if !errors.is_empty() {
        bail!("{}: {}", path.display(), errors.join("; "));
    }
    Ok(evs)
}

/// Run a replay. Returns the run's statistics (also written to `--stats-json`).
pub fn run(cfg: Config, opts: &ReplayOptions) -> Result<(RunStats, std::sync::Arc<common::snapshot::Snapshot>)> {
    let n = opts.workers.max(1);
    if n > 64 {
        bail!("--workers {n}: at most 64 workers");
    }
    let events = match &opts.events {
        Some(p) => load_events(p, &cfg)?,
        None => Vec::new(),
    };
    let mut reader = PcapReader::open(&opts.input).map_err(|e| anyhow::anyhow!("{}: {e}", opts.input.display()))?;
    let res = reader.resolution();
    let out_file = File::create(&opts.output).with_context(|| format!("cannot create {}", opts.output.display()))?;
    let mut out = PcapWriter::new(BufWriter::new(out_file), res)
        .map_err(|e| anyhow::anyhow!("{}: {e}", opts.output.display()))?;
    let mut host = match &opts.host_output {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            Some(PcapWriter::new(BufWriter::new(f), res).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)
        }
        None => None,
    };

    let capacity = cfg.dataplane.flow_table_capacity;
    let mut publisher = Publisher::new(cfg, n);
    let cell = publisher.cell();
    let snap0 = publisher.snapshot();
    crate::flow_memory::check(capacity, n)?;
    let mut pipes = Vec::with_capacity(n);
    for i in 0..n {
        pipes.push(Pipeline::try_new(i as u16, n as u16, capacity, &snap0).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let mut readers: Vec<SnapshotReader> = (0..n).map(|i| cell.reader(i)).collect();
    drop(snap0);

    let mut pool: Vec<HeapBuf> = (0..BATCH + 1).map(|_| HeapBuf::new()).collect();
    let mut queues: Vec<Vec<HeapBuf>> = (0..n).map(|_| Vec::with_capacity(BATCH)).collect();
    let mut times: Vec<Vec<u64>> = (0..n).map(|_| Vec::with_capacity(BATCH)).collect();
    let mut verdicts: Vec<Vec<Verdict>> = (0..n).map(|_| vec![Verdict::Drop; BATCH]).collect();
    let mut results: Vec<Option<(Verdict, HeapBuf)>> = (0..BATCH).map(|_| None).collect();
    let mut ts_of: Vec<u64> = vec![0; BATCH];

    let mut next_event = 0usize;
    let mut first_ts: Option<u64> = None;
    let mut clock: u64 = 0; // pipeline time: max capture time seen, relative to the first packet
    let mut seq: u64 = 0;
    let mut pending: Option<HeapBuf> = None;
    let mut eof = false;

    let progress = opts.progress && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_progress = Instant::now();

    while !eof || pending.is_some() {
        let base = seq;
        let mut batch_len = 0usize;
        // Fill a batch, cut at the next event's time.
        loop {
            if batch_len == BATCH {
                break;
            }
            let mut buf = match pending.take() {
                Some(b) => b,
                None => {
                    if eof {
                        break;
                    }
                    let mut b = pool.pop().unwrap_or_default();
                    match reader.next_into(&mut b).map_err(|e| anyhow::anyhow!("{}: {e}", opts.input.display()))? {
                        Some(()) => b,
                        None => {
                            pool.push(b);
                            eof = true;
                            break;
                        }
                    }
                }
            };
            let first = *first_ts.get_or_insert(buf.ts_ns);
            let rel = buf.ts_ns.saturating_sub(first);
            if next_event < events.len() && rel >= events[next_event].at.as_nanos() as u64 {
                if batch_len > 0 {
                    pending = Some(buf);
                    break;
                }
                let mut due = Vec::new();
                while next_event < events.len() && rel >= events[next_event].at.as_nanos() as u64 {
                    due.push(events[next_event].change.clone());
                    next_event += 1;
                }
                for change in &due {
                    publisher.apply(std::slice::from_ref(change)).map_err(|e| anyhow::anyhow!("event: {e}"))?;
                }
                for (r, p) in readers.iter_mut().zip(pipes.iter_mut()) {
                    if r.refresh() {
                        p.on_snapshot(r.get());
                    }
                }
            }
            clock = clock.max(rel);
            buf.seq = seq;
            seq += 1;
            ts_of[batch_len] = buf.ts_ns;
            // The NIC: RSS picks the receiving worker; its steer stage may hand over.
            let rx = steer::rss_queue_of_frame(buf.data(), n as u16) as usize;
            let owner = match pipes[rx].steer(buf.data(), readers[rx].get()) {
                Some(o) if (o as usize) < n && o as usize != rx => {
                    pipes[rx].counters.inc(Counter::HandoffOut);
                    pipes[o as usize].counters.inc(Counter::HandoffIn);
                    o as usize
                }
                _ => rx,
            };
            queues[owner].push(buf);
            times[owner].push(clock);
            batch_len += 1;
        }
        if batch_len == 0 {
            continue;
        }
        // Run every worker's pipeline on its share.
        for w in 0..n {
            if readers[w].refresh() {
                pipes[w].on_snapshot(readers[w].get());
            }
            let k = queues[w].len();
            if k == 0 {
                continue;
            }
            pipes[w].process_timed(readers[w].get(), &times[w], &mut queues[w], &mut verdicts[w][..k]);
            for (b, v) in queues[w].drain(..).zip(verdicts[w].iter()) {
                let i = (b.seq - base) as usize;
                results[i] = Some((*v, b));
            }
            times[w].clear();
        }
        // Write in input order.
        for (i, r) in results.iter_mut().take(batch_len).enumerate() {
            if let Some((v, b)) = r.take() {
                match v {
                    Verdict::Tx => out.write(ts_of[i], b.data()).context("writing output")?,
                    Verdict::Host => {
                        if let Some(h) = host.as_mut() {
                            h.write(ts_of[i], b.data()).context("writing host output")?;
                        }
                    }
                    _ => {}
                }
                pool.push(b);
            }
        }
        if progress && last_progress.elapsed() > Duration::from_millis(200) {
            last_progress = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprint!("\rreplay: {seq} packets, {:.2} Mpps   ", seq as f64 / secs / 1e6);
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    if reader.truncated_tail() {
        eprintln!(
            "warning: {}: the capture ends in a truncated record; replayed what was complete",
            opts.input.display()
        );
    }
    out.flush().context("writing output")?;
    if let Some(h) = host.as_mut() {
        h.flush().context("writing host output")?;
    }

    // Flows that timed out by the end of the capture count as expired.
    let end_ms = (clock / 1_000_000) as u32;
    let mut stats = RunStats { workers: n, ..Default::default() };
    for p in pipes.iter_mut() {
        p.flows_mut().expire_all(end_ms);
        stats.flows = stats.flows + p.flows().stats();
        stats.counters.merge(&p.counters);
        stats.per_worker.push(p.counters.clone());
    }
    let snap = publisher.snapshot();
    if let Some(path) = &opts.stats_json {
        let doc = stats.to_json(&snap);
        let text = serde_json::to_string_pretty(&doc).context("encoding stats")?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok((stats, snap))
}
