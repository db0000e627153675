//! [`DpdkQueue`]: one RX/TX queue pair of a [`DpdkPort`](super::DpdkPort), owned by one worker.
//!
//! Per burst: one `rte_eth_rx_burst` straight into the caller's `Vec<Mbuf>` (no
//! copy, no allocation once the vector has room for a burst), one
//! `rte_eth_tx_burst` from it plus at most [`TX_RETRIES`] more for what the ring
//! did not take; the rest is freed with one `rte_pktmbuf_free_bulk` and counted.

use std::sync::Arc;

use super::ethdev::{Pool, PortShared, device_stats};
use super::{Mbuf, sys};
use crate::port::{BURST, PacketBuf, Port, PortStats};

/// Extra `rte_eth_tx_burst` calls for frames the TX ring did not take at first.
pub const TX_RETRIES: u32 = 4;

/// One queue pair, the [`Port`] a worker polls.
pub struct DpdkQueue {
    rx: Arc<PortShared>,
    tx: Arc<PortShared>,
    queue: u16,
    pool: Pool,
    stats: PortStats,
    rx_rejected: u64,
    /// The host exception path: a TAP device's port whose queue `queue` this queue
    /// uses (see [`DpdkPort::attach_host`](super::DpdkPort::attach_host)).
    host: Option<Arc<PortShared>>,
    /// `rx_burst` calls since the TAP was last polled.
    host_polls: u32,
    host_stats: HostStats,
}

/// Counters of the host exception path of one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Frames the TAP did not take (freed), of those the pipeline gave the host.
    pub to_host_dropped: u64,
    /// Frames the kernel sent through the TAP and this queue put on the wire.
    pub from_host: u64,
    /// Of those, frames the wire's TX ring did not take (freed).
    pub from_host_dropped: u64,
}

/// `rx_burst` calls between two polls of the host TAP (reading an empty TAP costs a
/// system call): at a few hundred thousand polls a second when idle, the kernel's
/// frames wait a few hundred microseconds at most.
pub const HOST_POLL_INTERVAL: u32 = 64;

impl std::fmt::Debug for DpdkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkQueue")
            .field("rx_port", &self.rx.port_id)
            .field("tx_port", &self.tx.port_id)
            .field("queue", &self.queue)
            .finish()
    }
}

impl DpdkQueue {
    pub(super) fn new(rx: Arc<PortShared>, tx: Arc<PortShared>, queue: u16) -> DpdkQueue {
        let pool = rx.pools[usize::from(queue)];
        DpdkQueue {
            rx,
            tx,
            queue,
            pool,
            stats: PortStats::default(),
            rx_rejected: 0,
            host: None,
            host_polls: 0,
            host_stats: HostStats::default(),
        }
    }

    /// Use queue `self.queue_id()` of `host` (a TAP device) as the host exception path.
    pub(super) fn set_host(&mut self, host: Arc<PortShared>) {
        self.host = Some(host);
    }

    /// Counters of the host exception path (all 0 without one).
    pub fn host_stats(&self) -> HostStats {
        self.host_stats
    }

    /// Send `arr[..total]` on queue `self.queue` of `port_id` with at most
    /// [`TX_RETRIES`] retries; frees what the ring did not take. Returns how many were
    /// sent and the bytes of those freed.
    ///
    /// # Safety
    /// `arr[..total]` are valid mbufs the caller owns, and `port_id` is a started port
    /// with a TX queue `self.queue` used by this queue only. Ownership of all of them
    /// passes here: the caller must not use or free them afterwards.
    #[inline]
    unsafe fn send(&mut self, port_id: u16, arr: *mut *mut sys::rte_mbuf, total: usize) -> (usize, u64) {
        let mut sent = 0usize;
        for _ in 0..=TX_RETRIES {
            let want = (total - sent).min(usize::from(u16::MAX)) as u16;
            // SAFETY: (contract) arr[sent..sent+want] are valid mbufs we own; the driver takes ownership of the
            // first k it returns.
            let k = unsafe { sys::l4lb_tx_burst(port_id, self.queue, arr.add(sent), want) };
            sent += usize::from(k);
            if sent == total {
                break;
            }
        }
        let mut dropped_bytes = 0u64;
        if sent < total {
            for i in sent..total {
                // SAFETY: (contract) arr[i] is an mbuf we still own, valid to read.
                dropped_bytes += u64::from(unsafe { (**arr.add(i)).pkt_len });
            }
            // SAFETY: arr[sent..total] are mbufs still owned by us; freed once here.
            unsafe { sys::rte_pktmbuf_free_bulk(arr.add(sent), (total - sent) as u32) };
        }
        (sent, dropped_bytes)
    }

    /// Put what the kernel sent through the TAP on the wire (queue `self.queue` of the
    /// TX port), a burst at a time.
    #[cold]
    fn forward_from_host(&mut self) {
        let Some(host) = self.host.as_ref().map(|h| h.port_id) else { return };
        let mut slots = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        // SAFETY: `slots` has room for BURST mbuf pointers; the TAP port is started while `self.host` lives
        // and its queue `self.queue` is polled by this queue's owner only.
        let n = usize::from(unsafe { sys::l4lb_rx_burst(host, self.queue, slots.as_mut_ptr(), BURST as u16) });
        if n == 0 {
            return;
        }
        let mut bytes = 0u64;
        for m in &slots[..n] {
            // SAFETY: the driver wrote n valid mbuf pointers that we now own.
            bytes += u64::from(unsafe { (**m).pkt_len });
        }
        // SAFETY: slots[..n] are the mbufs just received, ours; the TX port is started while `self.tx` lives
        // and its queue `self.queue` is this queue's.
        let (sent, dropped_bytes) = unsafe { self.send(self.tx.port_id, slots.as_mut_ptr(), n) };
        self.host_stats.from_host += sent as u64;
        self.host_stats.from_host_dropped += (n - sent) as u64;
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += bytes - dropped_bytes;
    }

    /// The queue index (same on the RX and the TX port).
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// The port this queue receives on.
    pub fn rx_port_id(&self) -> u16 {
        self.rx.port_id
    }

    /// The port this queue transmits on.
    pub fn tx_port_id(&self) -> u16 {
        self.tx.port_id
    }

    /// Frames received but not handed to the pipeline because l4lb cannot work on
    /// them in place: chained (multi-segment: larger than the 2048-byte data room),
    /// indirect, or shared mbufs. Freed; also included in `stats().rx_missed`.
    pub fn rx_rejected(&self) -> u64 {
        self.rx_rejected
    }

    /// An empty mbuf from this queue's pool (default headroom), or `None` if the
    /// pool is exhausted.
    pub fn alloc(&mut self) -> Option<Mbuf> {
        // SAFETY: the pool is alive (our `rx` handle keeps it); a freshly allocated mbuf is direct, has one
        // segment and one reference, and we own it.
        let m = unsafe { sys::l4lb_pktmbuf_alloc(self.pool.0.as_ptr()) };
        // SAFETY: `m` is NULL or a valid mbuf we own, from a pool that outlives every Mbuf (see ethdev).
        match unsafe { Mbuf::from_raw_checked(m) } {
            Ok(mbuf) => Some(mbuf),
            Err(raw) => {
                if !raw.is_null() {
                    // SAFETY: an mbuf we own that does not qualify as an `Mbuf` (cannot happen for a fresh
                    // one): give it back rather than leak it.
                    unsafe { sys::l4lb_pktmbuf_free(raw) };
                }
                None
            }
        }
    }

    /// An mbuf from this queue's pool holding a copy of `frame` (tests, tools).
    pub fn alloc_frame(&mut self, frame: &[u8]) -> Option<Mbuf> {
        let mut m = self.alloc()?;
        m.set_frame(frame).then_some(m)
    }
}

impl Port for DpdkQueue {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        if self.host.is_some() {
            self.host_polls += 1;
            if self.host_polls >= HOST_POLL_INTERVAL {
                self.host_polls = 0;
                self.forward_from_host();
            }
        }
        let max = max.min(BURST);
        out.reserve(max);
        let base = out.len();
        let slots = out.spare_capacity_mut().as_mut_ptr().cast::<*mut sys::rte_mbuf>();
        // SAFETY: `slots` points to at least `max` writable, uninitialised `Mbuf` slots (reserved above);
        // `Mbuf` is a transparent pointer, so they are `struct rte_mbuf *` slots. This queue is polled by its
        // owner only (`&mut self`), and the port stays started while `self.rx` lives.
        let n = usize::from(unsafe { sys::l4lb_rx_burst(self.rx.port_id, self.queue, slots, max as u16) });
        let mut kept = 0;
        let mut bytes = 0u64;
        for i in 0..n {
            // SAFETY: the driver wrote `n` mbuf pointers to slots[0..n]; i < n.
            let m = unsafe { *slots.add(i) };
            // SAFETY: the driver hands us ownership of each received mbuf; its pool is one of ours (RX pools
            // belong to this port) and outlives every Mbuf.
            match unsafe { Mbuf::from_raw_checked(m) } {
                Ok(mbuf) => {
                    bytes += mbuf.len() as u64;
                    // SAFETY: kept <= i < max: the slot is inside the reserved spare capacity; slot `kept`
                    // was already read (kept <= i), so overwriting it loses nothing.
                    unsafe { slots.add(kept).cast::<Mbuf>().write(mbuf) };
                    kept += 1;
                }
                Err(raw) => {
                    self.rx_rejected += 1;
                    if !raw.is_null() {
                        // SAFETY: we own this mbuf (see above) and will not use it again.
                        unsafe { sys::l4lb_pktmbuf_free(raw) };
                    }
                }
            }
        }
        // SAFETY: slots base..base+kept were initialised with valid `Mbuf`s above.
        unsafe { out.set_len(base + kept) };
        self.stats.rx_packets += kept as u64;
        self.stats.rx_bytes += bytes;
        kept
    }

    #[inline]
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) {
        let total = pkts.len();
        if total == 0 {
            return;
        }
        let bytes: u64 = pkts.iter().map(|m| m.len() as u64).sum();
        let arr = pkts.as_mut_ptr().cast::<*mut sys::rte_mbuf>();
        // SAFETY: the Vec holds `total` owned mbufs (transparent `Mbuf`s); `set_len(0)` below forgets them;
        // the TX port is started while `self.tx` lives and its queue `self.queue` is this queue's.
        let (sent, dropped_bytes) = unsafe { self.send(self.tx.port_id, arr, total) };
        // SAFETY: every element was either handed to the driver or freed by `send`: none may be dropped again.
        unsafe { pkts.set_len(0) };
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += bytes - dropped_bytes;
        self.stats.tx_dropped += (total - sent) as u64;
    }

    /// There is no kernel behind a DPDK port. With a host TAP attached
    /// ([`DpdkPort::attach_host`](super::DpdkPort::attach_host)) the frames go to the
    /// kernel through it (what the TAP does not take is freed and counted in
    /// [`HostStats::to_host_dropped`]); without one they are freed. Either way they are
    /// counted in `host_packets`.
    #[inline]
    fn to_host(&mut self, pkts: &mut Vec<Mbuf>) {
        self.stats.host_packets += pkts.len() as u64;
        let Some(host) = self.host.as_ref().map(|h| h.port_id) else {
            self.free(pkts);
            return;
        };
        let total = pkts.len();
        if total == 0 {
            return;
        }
        let arr = pkts.as_mut_ptr().cast::<*mut sys::rte_mbuf>();
        // SAFETY: as in `tx_burst`; the TAP port is started while `self.host` lives and its queue
        // `self.queue` is this queue's (`attach_host` gives queue i to queue i only).
        let (sent, _) = unsafe { self.send(host, arr, total) };
        // SAFETY: every element was either handed to the TAP or freed by `send`: none may be dropped again.
        unsafe { pkts.set_len(0) };
        self.host_stats.to_host_dropped += (total - sent) as u64;
    }

    #[inline]
    fn free(&mut self, pkts: &mut Vec<Mbuf>) {
        let n = pkts.len();
        if n == 0 {
            return;
        }
        // SAFETY: the Vec holds `n` owned mbufs (transparent `Mbuf`s); they are freed once here and
        // `set_len(0)` keeps the Vec from dropping them again.
        unsafe {
            sys::rte_pktmbuf_free_bulk(pkts.as_mut_ptr().cast::<*mut sys::rte_mbuf>(), n as u32);
            pkts.set_len(0);
        }
    }

    /// This queue's own counts (exact, kept in software), plus, on queue 0 only, the
    /// device's port-wide drops (`imissed` + `rx_nombuf`), so that summing the
    /// queues gives the port's total. `rx_missed` also counts [`rx_rejected`](Self::rx_rejected).
    fn stats(&self) -> PortStats {
        let mut s = self.stats;
        s.rx_missed += self.rx_rejected;
        s.host_dropped = self.host_stats.to_host_dropped;
        // The kernel's frames the wire did not take are TX drops like any other.
        s.tx_dropped += self.host_stats.from_host_dropped;
        if self.queue == 0
            && let Ok(dev) = device_stats(self.rx.port_id, 1)
        {
            s.rx_missed += dev.total.rx_missed;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, Ordering};

    use super::*;
    use crate::port::dpdk::eal::memory_leaked;
    use crate::port::dpdk::{DpdkPort, DpdkPortConfig, Eal};

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
            .unwrap_or(false)
    }

    /// The only EAL of this test binary. Chained and shared mbufs cannot be worked
    /// on in place: `rx_burst` must free them and count them, and pass the rest.
    #[test]
    fn rx_rejects_chained_and_shared_mbufs() {
        if !is_root() {
            eprintln!("skipped: DPDK tests need root");
            return;
        }
        let prefix = format!("l4lb-unit-{}", std::process::id());
        let args: Vec<String> =
            ["--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry", "--vdev=net_ring0"]
                .iter()
                .map(|s| s.to_string())
                .chain([format!("--file-prefix={prefix}"), "--log-level=lib.eal:warning".into()])
                .collect();
        let eal = Eal::init(&args).expect("EAL init");
        let cfg = DpdkPortConfig { queues: 1, mbufs_per_queue: 1023, ring_size: 256 };
        let mut port = DpdkPort::configure(&eal, eal.port_by_name("net_ring0").unwrap(), cfg).unwrap();
        let mut q = port.take_queues().unwrap().pop().unwrap();

        let chained = q.alloc_frame(&[1; 60]).unwrap().into_raw();
        let tail = q.alloc_frame(&[2; 40]).unwrap().into_raw();
        let shared = q.alloc_frame(&[3; 60]).unwrap().into_raw();
        let plain = q.alloc_frame(&[4; 60]).unwrap().into_raw();
        // SAFETY: all four are valid mbufs we own; we build the chain by hand the way rte_pktmbuf_chain does, and
        // take a second reference on `shared` (released below) as rte_mbuf_refcnt_update would.
        unsafe {
            (*chained).next = tail;
            (*chained).nb_segs = 2;
            (*chained).pkt_len += u32::from((*tail).data_len);
            AtomicU16::from_ptr(&raw mut (*shared).refcnt).store(2, Ordering::Relaxed);
        }
        let mut arr = [chained, shared, plain];
        // SAFETY: three owned mbufs; net_ring's TX queue 0 takes them (its ring is empty).
        let n = unsafe { sys::l4lb_tx_burst(port.port_id(), 0, arr.as_mut_ptr(), 3) };
        assert_eq!(n, 3);

        let mut v = Vec::with_capacity(BURST);
        assert_eq!(q.rx_burst(&mut v, BURST), 1);
        assert_eq!(v[0].data(), &[4; 60]);
        assert_eq!(q.rx_rejected(), 2);
        let s = q.stats();
        assert_eq!((s.rx_packets, s.rx_bytes, s.rx_missed), (1, 60, 2));
        // SAFETY: rx_burst dropped its reference to `shared`; ours is the last one.
        unsafe { sys::l4lb_pktmbuf_free(shared) };
        drop(v);
        drop(q);
        drop(port);
        assert!(!memory_leaked(), "every mbuf went back and the pool was freed");
        drop(eal);
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    }
}
