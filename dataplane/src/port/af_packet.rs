//! The AF_PACKET port: TPACKET_V3 mmap rings, fanout across workers.
//!
//! The fallback live backend for machines without AF_XDP. One packet socket per
//! worker queue, all bound to the interface with `ETH_P_ALL` and joined in one
//! `PACKET_FANOUT_HASH` group, so the kernel spreads flows over the workers by a
//! symmetric flow hash (both directions of a 5-tuple land on the same queue; all
//! fragments of a datagram too, since the kernel hashes them on addresses only).
//!
//! - **Receive**: a TPACKET_V3 ring of blocks. Frames are handed to the pipeline
//!   *in place* as [`AfPacketBuf`]s pointing into the ring; `PACKET_RESERVE` =
//!   [`HEADROOM`] leaves room in front of every frame so that encapsulation is a
//!   pointer move, not a copy. A block goes back to the kernel only when every frame
//!   taken from it has been released (a per-block reference count; see `rx.rs`).
//!   So a worker must release (send, free or hand to the host) every buffer of a
//!   burst before it polls again for long: a buffer kept around pins its whole block,
//!   and when the kernel reaches a pinned block it drops packets (counted in
//!   `rx_missed`).
//! - **Transmit**: a TX ring of fixed slots. `tx_burst` copies each frame into the
//!   next slot (the one copy on this path: AF_PACKET cannot send from the RX ring)
//!   and flushes the burst with one `sendto`. `PACKET_QDISC_BYPASS` sends straight to
//!   the driver, as pktgen and DPDK's af_packet PMD do.
//! - **To the host**: a no-op. A packet socket receives a *copy* of every frame: the
//!   kernel's own stack has already received the original, so there is nothing to
//!   inject. The operator consequence: the host must not also answer VIP traffic —
//!   do not configure VIPs on the host's interfaces (no local route for them), and
//!   keep `net.ipv4.ip_forward` off on the l4lb host or the kernel will forward the
//!   client's packet as well (see docs/AF_PACKET.md).
//! - VLAN tags the kernel stripped into metadata (`TP_STATUS_VLAN_VALID`) are put
//!   back into the frame, so the pipeline sees the frame as it was on the wire.
//!
//! Unsafe code lives in this module only (`sys.rs` for system calls, `rx.rs`/`tx.rs`
//! for the shared rings, the buffer accessors below); every block says why it is sound.

#![allow(unsafe_code)]

mod rx;
mod sys;
mod tx;

use std::cell::Cell;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{BURST, HEADROOM, PacketBuf, Port, PortStats};
use rx::RxRing;
pub use sys::LinkStats;
use sys::Mmap;
use tx::{Push, TxRing};

/// Bytes per RX block. 64 KiB holds ~200 small frames with their headers and
/// headroom, and any frame up to a 9 KiB jumbo.
const RX_BLOCK_SIZE: usize = 1 << 16;
/// Nominal frame size the kernel uses to count `tp_frame_nr` (V3 packs frames
/// by their real size; this only sizes the ring: `ring_size` frames of 2 KiB).
const RX_FRAME_NOMINAL: usize = 2048;
/// Bytes per TX block.
const TX_BLOCK_SIZE: usize = 1 << 16;
/// Flushes `tx_burst` tries when the TX ring is full before it drops the frame.
const TX_RETRIES: u32 = 4;
/// Most sockets one fanout group takes (`PACKET_FANOUT_MAX`).
pub const MAX_QUEUES: usize = 256;
/// Smallest and largest `ring_size` (frames per ring).
pub const MIN_RING_SIZE: u32 = 64;
pub const MAX_RING_SIZE: u32 = 1 << 20;

/// Start-up errors. Each displays as one line naming the interface and the step.
#[derive(Debug, thiserror::Error)]
pub enum AfPacketError {
    #[error("af_packet: no such network interface: {0:?}")]
    NoSuchInterface(String),
    #[error("af_packet: permission denied opening a packet socket on {0:?} (run as root or with CAP_NET_RAW)")]
    PermissionDenied(String),
    #[error("af_packet: queue count must be between 1 and {MAX_QUEUES}, got {0}")]
    BadQueueCount(usize),
    #[error("af_packet: ring size must be between {MIN_RING_SIZE} and {MAX_RING_SIZE} frames, got {0}")]
    BadRingSize(u32),
    #[error("af_packet: {step} on {interface:?} failed: {source}")]
    Setup {
        step: &'static str,
        interface: String,
        #[source]
        source: io::Error,
    },
}

/// Which rings a queue has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    /// Receive and transmit (a forwarding worker).
    #[default]
    RxTx,
    /// Receive only (a sink, a capture).
    Rx,
    /// Transmit only (a traffic generator): the socket is bound with protocol 0 and
    /// receives nothing.
    Tx,
}

/// Settings beyond [`AfPacketPort::open`]'s arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Frames per ring (RX: in 2 KiB units of ring memory; TX: slots).
    pub ring_size: u32,
    pub direction: Direction,
    /// Add `PACKET_FANOUT_FLAG_DEFRAG` to the fanout group: the kernel then
    /// reassembles IPv4 fragments and delivers the whole datagram. Off by default:
    /// l4lb forwards fragments as fragments (the contract: all fragments of a packet
    /// to one backend, hashed on addresses), and the fanout hash already keeps a
    /// datagram's fragments on one queue; a reassembled datagram would be larger
    /// than the MTU and could not be forwarded.
    pub fanout_defrag: bool,
    /// `PACKET_QDISC_BYPASS` on transmit (default on).
    pub qdisc_bypass: bool,
    /// How long the kernel keeps a partly filled RX block before handing it over
    /// (`tp_retire_blk_tov`, milliseconds): the latency bound at low packet rates.
    pub block_timeout_ms: u32,
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        AfPacketOptions {
            ring_size: 2048,
            direction: Direction::RxTx,
            fanout_defrag: false,
            qdisc_bypass: true,
            block_timeout_ms: 1,
        }
    }
}

/// Opens the queues of an interface.
pub struct AfPacketPort;

impl AfPacketPort {
    /// Open `queues` receive/transmit queues on `interface` with `ring_size` frames
    /// per ring, joined in one fanout group (when `queues > 1`).
    pub fn open(interface: &str, queues: usize, ring_size: u32) -> Result<Vec<AfPacketQueue>, AfPacketError> {
        Self::open_with(interface, queues, &AfPacketOptions { ring_size, ..AfPacketOptions::default() })
    }

    /// [`open`](Self::open) with every setting.
    pub fn open_with(
        interface: &str,
        queues: usize,
        opts: &AfPacketOptions,
    ) -> Result<Vec<AfPacketQueue>, AfPacketError> {
        if queues == 0 || queues > MAX_QUEUES {
            return Err(AfPacketError::BadQueueCount(queues));
        }
        if !(MIN_RING_SIZE..=MAX_RING_SIZE).contains(&opts.ring_size) {
            return Err(AfPacketError::BadRingSize(opts.ring_size));
        }
        let ifindex = sys::if_index(interface).ok_or_else(|| AfPacketError::NoSuchInterface(interface.to_owned()))?;
        let mut out = Vec::with_capacity(queues);
        let mut fanout_id = None;
        for q in 0..queues {
            let mut queue = AfPacketQueue::open_one(interface, ifindex, q, opts)?;
            if queues > 1 && opts.direction != Direction::Tx {
                fanout_id = Some(queue.join_fanout(fanout_id, opts.fanout_defrag)?);
            }
            queue.queue = q;
            out.push(queue);
        }
        Ok(out)
    }
}

/// Counters of an interface in the calling thread's network namespace.
pub fn link_stats(interface: &str) -> Result<LinkStats, AfPacketError> {
    match sys::link_stats(interface) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(AfPacketError::NoSuchInterface(interface.to_owned())),
        Err(source) => Err(AfPacketError::Setup { step: "getifaddrs", interface: interface.to_owned(), source }),
    }
}

/// One queue: a packet socket with its rings, owned by one worker.
pub struct AfPacketQueue {
    // Drop order matters: see `Drop`.
    rx: Option<RxRing>,
    tx: Option<TxRing>,
    map: ManuallyDrop<Mmap>,
    fd: OwnedFd,
    interface: String,
    queue: usize,
    stats: PortStats,
    /// Frames dropped by the kernel (ring full), accumulated from PACKET_STATISTICS.
    kernel_drops: Cell<u64>,
    /// Frames received cut short or with a bad header.
    rx_bad: u64,
    /// `sendto` failures other than "try again".
    tx_errors: u64,
}

// SAFETY: the queue owns its socket, mapping and ring cursors; the raw pointers in
// the ring walkers point into the mapping it owns, which moves with it. Nothing is
// shared with other threads except through AfPacketBuf, whose only shared state is
// the atomic block count.
unsafe impl Send for AfPacketQueue {}

impl AfPacketQueue {
    fn open_one(
        interface: &str,
        ifindex: u32,
        queue: usize,
        opts: &AfPacketOptions,
    ) -> Result<AfPacketQueue, AfPacketError> {
        let setup = |step: &'static str| {
            let interface = interface.to_owned();
            move |source: io::Error| AfPacketError::Setup { step, interface, source }
        };
        let fd = sys::packet_socket().map_err(|e| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                AfPacketError::PermissionDenied(interface.to_owned())
            } else {
                setup("socket")(e)
            }
        })?;
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        sys::set_packet_opt(&fd, libc::PACKET_VERSION, &version).map_err(setup("PACKET_VERSION"))?;
        let want_rx = opts.direction != Direction::Tx;
        let want_tx = opts.direction != Direction::Rx;
        let ring = opts.ring_size as usize;
        if want_tx {
            // Skip (rather than stall on) a slot the kernel rejects as malformed. Like
            // PACKET_RESERVE, only settable before the rings exist.
            let loss: libc::c_int = 1;
            sys::set_packet_opt(&fd, libc::PACKET_LOSS, &loss).map_err(setup("PACKET_LOSS"))?;
        }

        let (rx_block_nr, rx_len) = if want_rx {
            let reserve = HEADROOM as libc::c_uint;
            sys::set_packet_opt(&fd, libc::PACKET_RESERVE, &reserve).map_err(setup("PACKET_RESERVE"))?;
            let one: libc::c_int = 1;
            sys::set_packet_opt(&fd, libc::PACKET_IGNORE_OUTGOING, &one).map_err(setup("PACKET_IGNORE_OUTGOING"))?;
            let per_block = RX_BLOCK_SIZE / RX_FRAME_NOMINAL;
            let block_nr = ring.div_ceil(per_block).max(4);
            let req = libc::tpacket_req3 {
                tp_block_size: RX_BLOCK_SIZE as u32,
                tp_block_nr: block_nr as u32,
                tp_frame_size: RX_FRAME_NOMINAL as u32,
                tp_frame_nr: (block_nr * per_block) as u32,
                tp_retire_blk_tov: opts.block_timeout_ms.max(1),
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            sys::set_packet_opt(&fd, libc::PACKET_RX_RING, &req).map_err(setup("PACKET_RX_RING"))?;
            (block_nr, block_nr * RX_BLOCK_SIZE)
        } else {
            (0, 0)
        };

        let (tx_frame_size, tx_frame_nr, tx_len) = if want_tx {
            if opts.qdisc_bypass {
                let one: libc::c_int = 1;
                sys::set_packet_opt(&fd, libc::PACKET_QDISC_BYPASS, &one).map_err(setup("PACKET_QDISC_BYPASS"))?;
            }
            let mtu = sys::mtu(&fd, interface).map_err(setup("SIOCGIFMTU"))? as usize;
            // Room for the MTU-sized packet, its Ethernet header and two VLAN tags.
            let frame_size = (tx::TX_DATA_OFF + mtu + 14 + 8).next_power_of_two().max(2048);
            let block_size = TX_BLOCK_SIZE.max(frame_size);
            let per_block = block_size / frame_size;
            let block_nr = ring.div_ceil(per_block).max(1);
            let req = libc::tpacket_req3 {
                tp_block_size: block_size as u32,
                tp_block_nr: block_nr as u32,
                tp_frame_size: frame_size as u32,
                tp_frame_nr: (block_nr * per_block) as u32,
                tp_retire_blk_tov: 0,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            sys::set_packet_opt(&fd, libc::PACKET_TX_RING, &req).map_err(setup("PACKET_TX_RING"))?;
            (frame_size, block_nr * per_block, block_nr * block_size)
        } else {
            (0, 0, 0)
        };

        let map = Mmap::rings(&fd, rx_len + tx_len).map_err(setup("mmap of the rings"))?;
        let rx = want_rx.then(|| RxRing::new(&map, RX_BLOCK_SIZE, rx_block_nr));
        let tx = want_tx.then(|| TxRing::new(&map, rx_len, tx_frame_size, tx_frame_nr));
        let proto = if want_rx { sys::ETH_P_ALL_BE } else { 0 };
        sys::bind(&fd, ifindex, proto).map_err(setup("bind"))?;
        Ok(AfPacketQueue {
            rx,
            tx,
            map: ManuallyDrop::new(map),
            fd,
            interface: interface.to_owned(),
            queue,
            stats: PortStats::default(),
            kernel_drops: Cell::new(0),
            rx_bad: 0,
            tx_errors: 0,
        })
    }

    /// Join (or, with `id = None`, create) the fanout group; returns its id.
    fn join_fanout(&mut self, id: Option<u16>, defrag: bool) -> Result<u16, AfPacketError> {
        let mut flags = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        if defrag {
            flags |= libc::PACKET_FANOUT_FLAG_DEFRAG;
        }
        let err = |source| AfPacketError::Setup { step: "PACKET_FANOUT", interface: self.interface.clone(), source };
        match id {
            Some(id) => {
                let arg: libc::c_int = (u32::from(id) | (flags << 16)) as libc::c_int;
                sys::set_packet_opt(&self.fd, libc::PACKET_FANOUT, &arg).map_err(err)?;
                Ok(id)
            }
            None => {
                // The kernel picks an id no other group in this namespace uses.
                let arg: libc::c_int = ((flags | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16) as libc::c_int;
                sys::set_packet_opt(&self.fd, libc::PACKET_FANOUT, &arg).map_err(err)?;
                let got: libc::c_int = sys::get_packet_opt(&self.fd, libc::PACKET_FANOUT).map_err(err)?;
                Ok((got as u32 & 0xffff) as u16)
            }
        }
    }

    /// The interface this queue is bound to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// This queue's index among the interface's queues (its fanout member).
    pub fn queue_index(&self) -> usize {
        self.queue
    }

    /// Largest frame the TX ring takes (0 without a TX ring).
    pub fn max_tx_frame(&self) -> usize {
        self.tx.as_ref().map_or(0, TxRing::max_frame)
    }

    /// Copy `frame` into the TX ring without sending it yet (see [`flush`](Self::flush)).
    /// False when the ring is full, the frame is larger than a slot, or there is no
    /// TX ring. For generators: the pipeline uses [`Port::tx_burst`].
    #[inline]
    pub fn send_copy(&mut self, frame: &[u8]) -> bool {
        let Some(tx) = self.tx.as_mut() else { return false };
        if tx.push(frame) == Push::Queued {
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += frame.len() as u64;
            true
        } else {
            false
        }
    }

    /// Send every frame queued in the TX ring (one `sendto`, not waiting for the
    /// device). "Try again" and "no buffer space" are not errors: the frames stay
    /// queued and go out with the next flush.
    #[inline]
    pub fn flush(&mut self) {
        let Some(tx) = self.tx.as_mut() else { return };
        if tx.pending == 0 {
            return;
        }
        tx.pending = 0;
        if let Err(e) = sys::kick_tx(&self.fd) {
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR) => tx.pending = 1,
                _ => self.tx_errors += 1,
            }
        }
    }

    /// Sleep until the kernel has a filled RX block for this queue or `timeout`
    /// passes (`poll(2)`); true when there may be frames. For workers that should not
    /// busy-poll an idle link (a shared machine, a lab): call it after an empty
    /// `rx_burst`, never per packet. A block the worker still holds can make it
    /// return true early; `rx_burst` is the authority.
    pub fn wait_readable(&self, timeout: std::time::Duration) -> bool {
        if self.rx.is_none() {
            std::thread::sleep(timeout);
            return false;
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        sys::poll_readable(&self.fd, ms).unwrap_or(false)
    }

    /// TX slots the kernel has not sent yet.
    pub fn tx_in_flight(&self) -> usize {
        self.tx.as_ref().map_or(0, TxRing::in_flight)
    }

    /// `sendto` failures other than "try again" (interface down, ...).
    pub fn tx_errors(&self) -> u64 {
        self.tx_errors
    }

    /// Queue one frame, flushing and retrying a bounded number of times when the
    /// ring is full. False when the frame was dropped.
    #[inline]
    fn tx_one(&mut self, frame: &[u8]) -> bool {
        let mut tries = 0;
        loop {
            let Some(tx) = self.tx.as_mut() else { return false };
            match tx.push(frame) {
                Push::Queued => {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += frame.len() as u64;
                    return true;
                }
                Push::TooBig => return false,
                Push::Full if tries < TX_RETRIES => {
                    tries += 1;
                    tx.pending = tx.pending.max(1);
                    self.flush();
                    std::hint::spin_loop();
                }
                Push::Full => return false,
            }
        }
    }

    fn release_rx(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            rx.release_done();
        }
    }

    /// Read (and reset) the kernel's PACKET_STATISTICS into `kernel_drops`.
    fn poll_kernel_stats(&self) {
        if self.rx.is_none() {
            return;
        }
        if let Ok(s) = sys::get_packet_opt::<libc::tpacket_stats_v3>(&self.fd, libc::PACKET_STATISTICS) {
            self.kernel_drops.set(self.kernel_drops.get() + u64::from(s.tp_drops));
        }
    }
}

impl Port for AfPacketQueue {
    type Buf = AfPacketBuf;

    fn rx_burst(&mut self, out: &mut Vec<AfPacketBuf>, max: usize) -> usize {
        let Some(rx) = self.rx.as_mut() else { return 0 };
        rx.release_done();
        let max = max.min(BURST);
        let mut n = 0;
        while n < max {
            let Some(f) = rx.next_frame() else { break };
            if !f.usable {
                self.rx_bad += 1;
                f.discard();
                continue;
            }
            let mut b = AfPacketBuf { lo: f.lo, start: f.start, len: f.len, cap: f.cap, refs: f.refs };
            if f.status & libc::TP_STATUS_VLAN_VALID != 0 {
                let tpid = if f.status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { f.vlan_tpid } else { 0x8100 };
                if !b.insert_vlan(tpid, f.vlan_tci) {
                    self.rx_bad += 1;
                    continue; // `b` dropped: released
                }
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += u64::from(b.len);
            out.push(b);
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, pkts: &mut Vec<AfPacketBuf>) {
        for b in pkts.drain(..) {
            if !self.tx_one(b.data()) {
                self.stats.tx_dropped += 1;
            }
            // `b` dropped here: its RX block count goes down.
        }
        self.flush();
        self.release_rx();
    }

    fn to_host(&mut self, pkts: &mut Vec<AfPacketBuf>) {
        // The kernel already has its own copy of every frame a packet socket sees.
        self.stats.host_packets += pkts.len() as u64;
        pkts.clear();
        self.release_rx();
    }

    fn free(&mut self, pkts: &mut Vec<AfPacketBuf>) {
        pkts.clear();
        self.release_rx();
    }

    fn stats(&self) -> PortStats {
        self.poll_kernel_stats();
        PortStats { rx_missed: self.kernel_drops.get() + self.rx_bad, ..self.stats }
    }
}

impl Drop for AfPacketQueue {
    fn drop(&mut self) {
        self.flush();
        let released = self.rx.as_mut().is_none_or(|rx| {
            rx.release_done();
            rx.all_released()
        });
        if released {
            // SAFETY: no buffer points into the mapping any more (all block counts
            // are zero) and the ring walkers are not used after this point.
            unsafe { ManuallyDrop::drop(&mut self.map) };
        } else {
            // Buffers outlive their queue: keep the mapping and their counts alive
            // for good rather than unmap memory they still point to.
            std::mem::forget(self.rx.take());
        }
    }
}

/// A received frame, worked on in place inside the RX ring.
///
/// `Send`: a raw pointer and lengths. Lifetime rule: the memory stays valid until
/// the buffer is dropped, because the block it lives in goes back to the kernel
/// only after every frame from it has been released (per-block count); if the
/// queue is dropped first, the mapping is leaked rather than unmapped. Dropping the
/// buffer (which `tx_burst`, `to_host` and `free` do) releases it.
pub struct AfPacketBuf {
    /// Start of the region this buffer may use (headroom + frame + tailroom).
    lo: *mut u8,
    start: u32,
    len: u32,
    cap: u32,
    refs: *const AtomicU32,
}

// SAFETY: the buffer has exclusive use of its region of the ring (regions of
// different frames do not overlap and the kernel does not touch a block we hold);
// the only state shared with the queue is the block count, an atomic.
unsafe impl Send for AfPacketBuf {}

impl std::fmt::Debug for AfPacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketBuf").field("len", &self.len).field("headroom", &self.start).finish()
    }
}

impl AfPacketBuf {
    /// Put back a VLAN tag the kernel moved into metadata: move the MAC addresses 4
    /// bytes to the front and write TPID and TCI after them.
    fn insert_vlan(&mut self, tpid: u16, tci: u16) -> bool {
        if self.len < 12 || !self.prepend(4) {
            return false;
        }
        let d = self.data_mut();
        d.copy_within(4..16, 0);
        d[12..14].copy_from_slice(&tpid.to_be_bytes());
        d[14..16].copy_from_slice(&tci.to_be_bytes());
        true
    }
}

impl Drop for AfPacketBuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `refs` points into the queue's boxed count array, which is never
        // freed while a count is non-zero (see AfPacketQueue's Drop).
        unsafe { &*self.refs }.fetch_sub(1, Ordering::Release);
    }
}

impl PacketBuf for AfPacketBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: `lo + start .. + len` lies inside this buffer's region of the live
        // mapping (start + len <= cap, kept by every method), which no one else
        // touches while the buffer lives.
        unsafe { std::slice::from_raw_parts(self.lo.add(self.start as usize), self.len as usize) }
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.lo.add(self.start as usize), self.len as usize) }
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start as usize
    }
    #[inline]
    fn tailroom(&self) -> usize {
        (self.cap - self.start - self.len) as usize
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start as usize {
            return false;
        }
        self.start -= n as u32;
        self.len += n as u32;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.start += n as u32;
        self.len -= n as u32;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.len += n as u32;
        true
    }
    #[inline]
    fn truncate(&mut self, len: usize) {
        if len < self.len as usize {
            self.len = len as u32;
        }
    }
}
