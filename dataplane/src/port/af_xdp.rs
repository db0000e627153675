//! The AF_XDP port: an XDP program steers l4lb's traffic into one XSK socket per
//! RX queue; everything else goes on to the kernel. Frames are handed to the
//! pipeline in place, in their UMEM chunk, with [`HEADROOM`] bytes in front.
//!
//! - [`AfXdpPort::open`] loads and attaches `bpf/xdp_redirect.bpf.c` (native XDP,
//!   else generic), creates the sockets (zero copy, else copy mode) and returns
//!   one [`XskQueue`] per queue, each a [`Port`] for one worker.
//! - [`AfXdpPort::set_vips`], [`AfXdpPort::set_vip_addrs`] and
//!   [`AfXdpPort::set_dnat_backends`] refresh the program's maps (control thread,
//!   on each snapshot).
//! - [`DecapProgram`] attaches the backend-side decapsulation companion.
//!
//! Layout and decisions (UMEM, headroom, `to_host`) are in `docs/AF_XDP.md`.
//! Per packet: no allocation, no lock, no syscall; at most one syscall per
//! burst (a TX kick, or an RX wake-up when the driver asks for one).
#![allow(unsafe_code)]

mod program;
mod ring;
mod socket;

use std::fmt;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

pub use program::{DecapProgram, DecapStats};
use program::{RedirectProgram, addr16, app_key};
use socket::{Umem, XskSocket};

use super::{BURST, HEADROOM, PacketBuf, Port, PortStats};

/// UMEM chunk size: one frame per 4 KiB page.
pub const FRAME_SIZE: usize = 4096;
/// Headroom asked of the kernel in front of every received frame (UMEM
/// `headroom`): the kernel adds its own XDP headroom on top, so a received
/// frame has at least [`HEADROOM`] bytes free in front of it.
const UMEM_HEADROOM: usize = HEADROOM;
/// Bounded retries when the TX ring is full (kick, reap completions, retry).
const TX_RETRIES: u32 = 4;

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode where the driver has it, generic (skb) mode otherwise.
    #[default]
    Auto,
    Native,
    Generic,
}

/// Whether to use zero-copy AF_XDP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero copy where the driver supports it, copy mode otherwise.
    #[default]
    Auto,
    /// Zero copy or fail.
    On,
    /// Copy mode.
    Off,
}

/// Start-up options (from the config's `[io]` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpOptions {
    pub mode: XdpMode,
    pub zero_copy: ZeroCopy,
    /// Descriptors per ring (power of two, 64..=32768); the UMEM has twice as many frames.
    pub ring_size: u32,
}

impl Default for XdpOptions {
    fn default() -> Self {
        XdpOptions { mode: XdpMode::Auto, zero_copy: ZeroCopy::Auto, ring_size: 2048 }
    }
}

/// How the XDP program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Native,
    Generic,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        })
    }
}

/// The mode chosen at start (the caller logs it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChosenMode {
    pub attach: AttachMode,
    pub zero_copy: bool,
}

impl fmt::Display for ChosenMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} XDP, {} AF_XDP", self.attach, if self.zero_copy { "zero-copy" } else { "copy-mode" })
    }
}

/// Start-up and control errors, one line each.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    #[error("permission denied {0}: AF_XDP needs root (or CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF)")]
    Permission(&'static str),
    #[error("bad queue count {queues} for {interface}: it has {available} RX queue(s)")]
    BadQueueCount { interface: String, queues: u32, available: u32 },
    #[error("bad ring size {0}: must be a power of two from 64 to 32768")]
    BadRingSize(u32),
    #[error("XDP program: {0}")]
    Program(String),
    #[error("cannot attach the XDP program to {interface}: {reason}")]
    Attach { interface: String, reason: String },
    #[error(
        "{interface} queue {queue} has no zero-copy AF_XDP support ({call}: {source}); use zero_copy = \"auto\" or \"off\""
    )]
    ZeroCopyUnsupported { interface: String, queue: u32, call: &'static str, source: std::io::Error },
    #[error("AF_XDP socket on {interface} queue {queue}: {call}: {source}")]
    Socket { interface: String, queue: u32, call: &'static str, source: std::io::Error },
    #[error("BPF map {map}: {reason}")]
    Map { map: &'static str, reason: String },
}

/// The XDP program's verdict counters (summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpVerdicts {
    pub pass_not_ip: u64,
    pub pass_no_match: u64,
    pub pass_malformed: u64,
    pub pass_no_socket: u64,
    pub redirect_vip: u64,
    pub redirect_vip_addr: u64,
    pub redirect_dnat: u64,
    pub redirect_failed: u64,
}

/// The attached program and its maps; owned by the control thread. Dropping it
/// detaches the program (the queues' sockets then receive nothing more).
pub struct AfXdpPort {
    program: RedirectProgram,
    interface: String,
    mode: ChosenMode,
}

fn rx_queue_count(interface: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{interface}/queues")).ok()?;
    let n = dir.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count();
    (n > 0).then_some(n as u32)
}

fn if_index(interface: &str) -> Result<u32, AfXdpError> {
    let c = std::ffi::CString::new(interface).map_err(|_| AfXdpError::NoSuchInterface(interface.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 { Err(AfXdpError::NoSuchInterface(interface.to_string())) } else { Ok(idx) }
}

impl AfXdpPort {
    /// Attach to `interface` and open one socket on each of its RX queues `0..queues`.
    pub fn open(interface: &str, queues: u32, opts: XdpOptions) -> Result<(AfXdpPort, Vec<XskQueue>), AfXdpError> {
        if !opts.ring_size.is_power_of_two() || !(64..=32768).contains(&opts.ring_size) {
            return Err(AfXdpError::BadRingSize(opts.ring_size));
        }
        let ifindex = if_index(interface)?;
        let available = rx_queue_count(interface);
        if queues == 0 || available.is_some_and(|a| queues > a) {
            return Err(AfXdpError::BadQueueCount {
                interface: interface.to_string(),
                queues,
                available: available.unwrap_or(0),
            });
        }
        let mut program = RedirectProgram::attach(interface, opts.mode)?;
        let mut out = Vec::with_capacity(queues as usize);
        let mut zero_copy = false;
        for q in 0..queues {
            let xq = XskQueue::open(interface, ifindex, q, opts)?;
            program.set_socket(q, xq.sock.fd.as_raw_fd())?;
            zero_copy = xq.zero_copy;
            out.push(xq);
        }
        let mode = ChosenMode { attach: program.mode, zero_copy };
        Ok((AfXdpPort { program, interface: interface.to_string(), mode }, out))
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The attach and socket modes chosen at start.
    pub fn mode(&self) -> ChosenMode {
        self.mode
    }

    /// Replace the VIP map: (address, port, IP protocol); port 0 = every port of that address.
    pub fn set_vips(&mut self, vips: &[(IpAddr, u16, u8)]) -> Result<(), AfXdpError> {
        let keys: Vec<_> = vips.iter().map(|&(a, p, pr)| app_key(a, p, pr)).collect();
        self.program.set_vips(&keys)
    }

    /// Replace the VIP-address map (ICMP and fragments to these addresses go to l4lb).
    pub fn set_vip_addrs(&mut self, addrs: &[IpAddr]) -> Result<(), AfXdpError> {
        let keys: Vec<_> = addrs.iter().map(|&a| addr16(a)).collect();
        self.program.set_vip_addrs(&keys)
    }

    /// Replace the DNAT-backend map: (backend address, backend port, IP protocol)
    /// of every backend of an active DNAT VIP (their replies go to l4lb).
    pub fn set_dnat_backends(&mut self, backends: &[(IpAddr, u16, u8)]) -> Result<(), AfXdpError> {
        let keys: Vec<_> = backends.iter().map(|&(a, p, pr)| app_key(a, p, pr)).collect();
        self.program.set_dnat_backends(&keys)
    }

    /// The program's verdict counters.
    pub fn verdicts(&self) -> Result<XdpVerdicts, AfXdpError> {
        let v = self.program.verdicts()?;
        Ok(XdpVerdicts {
            pass_not_ip: v[0],
            pass_no_match: v[1],
            pass_malformed: v[2],
            pass_no_socket: v[3],
            redirect_vip: v[4],
            redirect_vip_addr: v[5],
            redirect_dnat: v[6],
            redirect_failed: v[7],
        })
    }
}

/// A received frame, in place in its UMEM chunk.
///
/// Holds the chunk's address and the frame's offset and length in it. Give it
/// back to the queue that lent it (`tx_burst`, `to_host` or `free`); a buffer
/// given to another queue is counted as dropped and its frame is lost to its
/// own queue (the port never double-frees it).
pub struct XskBuf {
    /// Start of the chunk in this process's mapping of the UMEM.
    chunk: NonNull<u8>,
    /// The chunk's offset in the UMEM (what the rings carry).
    addr: u64,
    start: u16,
    len: u16,
}

// SAFETY: an XskBuf is the only handle to its chunk while it exists (the frame is
// on no ring and in no free list), so sending it to another thread moves
// exclusive access with it; the UMEM mapping is never unmapped while frames are
// lent out (see `Drop for XskQueue`).
unsafe impl Send for XskBuf {}

impl fmt::Debug for XskBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskBuf").field("addr", &self.addr).field("start", &self.start).field("len", &self.len).finish()
    }
}

impl XskBuf {
    /// The frame's offset in the UMEM (for TX descriptors).
    #[inline]
    fn desc_addr(&self) -> u64 {
        self.addr + self.start as u64
    }
}

impl PacketBuf for XskBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: start + len <= FRAME_SIZE (kept by every method below and by
        // rx_burst), the chunk is FRAME_SIZE bytes of the live UMEM mapping, and
        // this buffer has exclusive access to it (see `Send`).
        unsafe { std::slice::from_raw_parts(self.chunk.as_ptr().add(self.start as usize), self.len as usize) }
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.chunk.as_ptr().add(self.start as usize), self.len as usize) }
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start as usize
    }
    #[inline]
    fn tailroom(&self) -> usize {
        FRAME_SIZE - self.start as usize - self.len as usize
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start as usize {
            return false;
        }
        self.start -= n as u16;
        self.len += n as u16;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.start += n as u16;
        self.len -= n as u16;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.len += n as u16;
        true
    }
    #[inline]
    fn truncate(&mut self, len: usize) {
        if len < self.len as usize {
            self.len = len as u16;
        }
    }
}

/// One RX/TX queue: its UMEM, socket and rings. Owned by one worker.
pub struct XskQueue {
    sock: XskSocket,
    /// `None` only after drop decided to leak it.
    umem: Option<Umem>,
    /// Chunk addresses that are on no ring and lent to nobody.
    free_frames: Vec<u64>,
    /// Frames handed to the pipeline and not yet given back.
    lent: u32,
    queue: u32,
    zero_copy: bool,
    stats: PortStats,
    /// TX descriptors submitted and not yet completed.
    tx_in_flight: u32,
    /// Free frames kept out of the fill ring for `alloc` (a quarter of the UMEM).
    reserve: usize,
}

impl XskQueue {
    fn open(interface: &str, ifindex: u32, queue: u32, opts: XdpOptions) -> Result<Self, AfXdpError> {
        let frames = opts.ring_size * 2;
        let fill_size = frames;
        let sock_err = |(call, source)| AfXdpError::Socket { interface: interface.to_string(), queue, call, source };
        let umem = Umem::new(frames).map_err(sock_err)?;
        let copy = libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP;
        let zc = libc::XDP_ZEROCOPY | libc::XDP_USE_NEED_WAKEUP;
        let create = |flags| XskSocket::create(&umem, ifindex, queue, fill_size, opts.ring_size, flags);
        let sock = match opts.zero_copy {
            ZeroCopy::Off => create(copy),
            ZeroCopy::On => create(zc),
            ZeroCopy::Auto => create(zc).or_else(|_| create(copy)),
        }
        .map_err(|(call, source)| match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => AfXdpError::Permission("creating the AF_XDP socket"),
            _ if opts.zero_copy == ZeroCopy::On && call == "bind(AF_XDP)" => {
                AfXdpError::ZeroCopyUnsupported { interface: interface.to_string(), queue, call, source }
            }
            _ => AfXdpError::Socket { interface: interface.to_string(), queue, call, source },
        })?;
        let zero_copy = sock.is_zero_copy();
        let mut q = XskQueue {
            sock,
            free_frames: Vec::with_capacity(frames as usize),
            umem: Some(umem),
            lent: 0,
            queue,
            zero_copy,
            stats: PortStats::default(),
            tx_in_flight: 0,
            reserve: frames as usize / 4,
        };
        for i in 0..frames {
            q.free_frames.push(i as u64 * FRAME_SIZE as u64);
        }
        q.refill();
        Ok(q)
    }

    /// The RX queue this socket is bound to.
    pub fn queue_id(&self) -> u32 {
        self.queue
    }

    /// Whether this socket runs in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Frames on the TX ring or being sent, not yet completed (a clean shutdown
    /// can wait for this to reach 0 before dropping the queue).
    pub fn tx_in_flight(&mut self) -> u32 {
        self.reap_completions();
        self.tx_in_flight
    }

    /// The kernel's own counters for this socket (a syscall: not for the per-packet path).
    pub fn kernel_stats(&self) -> std::io::Result<libc::xdp_statistics> {
        self.sock.kernel_stats()
    }

    /// An empty frame to build a packet in (length 0, [`HEADROOM`] bytes of
    /// headroom), for traffic the caller originates (`l4lb gen`, a sink's
    /// replies); `None` when every frame is on a ring or lent out. Give it back
    /// like a received frame (`tx_burst` or `free`).
    pub fn alloc(&mut self) -> Option<XskBuf> {
        if self.free_frames.is_empty() {
            self.reap_completions();
        }
        let addr = self.free_frames.pop()?;
        // SAFETY: `addr` is a chunk offset from our free list, below the UMEM length.
        let chunk = unsafe { NonNull::new_unchecked(self.umem_base().as_ptr().add(addr as usize)) };
        self.lent += 1;
        Some(XskBuf { chunk, addr, start: HEADROOM as u16, len: 0 })
    }

    fn umem_base(&self) -> NonNull<u8> {
        // `umem` is Some for the whole life of the queue (taken only in Drop).
        self.umem.as_ref().map_or(NonNull::dangling(), |u| u.base)
    }

    /// Whether `b` was lent by this queue (its chunk lies in our UMEM).
    #[inline]
    fn owns(&self, b: &XskBuf) -> bool {
        let base = self.umem_base().as_ptr() as usize;
        let len = self.umem.as_ref().map_or(0, |u| u.len);
        let p = b.chunk.as_ptr() as usize;
        p >= base && p < base + len && p - base == b.addr as usize
    }

    /// Completed TX frames back to the free list.
    #[inline]
    fn reap_completions(&mut self) {
        let mut n = 0;
        while let Some(addr) = self.sock.comp.pop() {
            self.free_frames.push(addr & !(FRAME_SIZE as u64 - 1));
            n += 1;
        }
        if n > 0 {
            self.sock.comp.release();
            self.tx_in_flight -= n;
        }
    }

    /// Free frames to the fill ring, keeping `reserve` frames back for `alloc`.
    ///
    /// The fill ring has a slot for every frame of the UMEM: the kernel publishes
    /// its fill-ring consumer index only when it has used up every entry it saw
    /// at its last look, so a ring sized for fewer frames looks full to us while
    /// the kernel drains its batch, and then runs dry (measured: half the frames
    /// dropped with `rx_fill_ring_empty_descs` when the ring had ring_size slots).
    #[inline]
    fn refill(&mut self) {
        let spare = self.free_frames.len().saturating_sub(self.reserve);
        if spare == 0 {
            return;
        }
        let room = self.sock.fill.free_slots(spare as u32);
        let n = (room as usize).min(spare);
        if n == 0 {
            return;
        }
        for _ in 0..n {
            if let Some(a) = self.free_frames.pop() {
                self.sock.fill.push(a);
            }
        }
        self.sock.fill.commit();
    }

    /// Take back a lent frame (false when it is not ours: it is then left alone).
    #[inline]
    fn give_back(&mut self, b: &XskBuf) -> bool {
        if !self.owns(b) {
            return false;
        }
        self.lent -= 1;
        true
    }
}

impl Port for XskQueue {
    type Buf = XskBuf;

    fn rx_burst(&mut self, out: &mut Vec<XskBuf>, max: usize) -> usize {
        self.reap_completions();
        self.refill();
        let base = self.umem_base();
        let umem_len = self.umem.as_ref().map_or(0, |u| u.len);
        let max = max.min(BURST);
        let mut n = 0;
        while n < max {
            let Some(d) = self.sock.rx.pop() else { break };
            let addr = d.addr & !(FRAME_SIZE as u64 - 1);
            let start = (d.addr - addr) as usize;
            if addr as usize + FRAME_SIZE > umem_len || start + d.len as usize > FRAME_SIZE {
                // Cannot happen with an aligned UMEM; never hand out an out-of-bounds view.
                if (addr as usize) < umem_len {
                    self.free_frames.push(addr);
                }
                self.stats.rx_missed += 1;
                continue;
            }
            // SAFETY: `addr + FRAME_SIZE <= umem_len` (checked above), so the chunk
            // lies inside the live UMEM mapping.
            let chunk = unsafe { NonNull::new_unchecked(base.as_ptr().add(addr as usize)) };
            out.push(XskBuf { chunk, addr, start: start as u16, len: d.len as u16 });
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += d.len as u64;
            n += 1;
        }
        if n > 0 {
            self.sock.rx.release();
            self.lent += n as u32;
        } else if self.sock.fill.needs_wakeup() {
            self.sock.kick_rx();
        }
        n
    }

    fn tx_burst(&mut self, pkts: &mut Vec<XskBuf>) {
        if pkts.is_empty() {
            return;
        }
        self.reap_completions();
        for b in pkts.drain(..) {
            if !self.give_back(&b) {
                self.stats.tx_dropped += 1;
                continue;
            }
            let desc = libc::xdp_desc { addr: b.desc_addr(), len: b.len as u32, options: 0 };
            let mut sent = self.sock.tx.push(desc);
            let mut tries = 0;
            while !sent && tries < TX_RETRIES {
                self.sock.tx.commit();
                self.sock.kick_tx();
                self.reap_completions();
                sent = self.sock.tx.push(desc);
                tries += 1;
            }
            if sent {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += b.len as u64;
                self.tx_in_flight += 1;
            } else {
                self.free_frames.push(b.addr);
                self.stats.tx_dropped += 1;
            }
        }
        self.sock.tx.commit();
        if self.sock.tx.needs_wakeup() || !self.zero_copy {
            self.sock.kick_tx();
        }
    }

    /// Frames the XDP program redirected but the pipeline gives to the host are
    /// counted (`host_packets`) and recycled: the program only redirects VIP and
    /// DNAT-reply traffic, so these are rare races with a map refresh. See
    /// docs/AF_XDP.md.
    fn to_host(&mut self, pkts: &mut Vec<XskBuf>) {
        for b in pkts.drain(..) {
            if self.give_back(&b) {
                self.free_frames.push(b.addr);
            }
            self.stats.host_packets += 1;
        }
    }

    fn free(&mut self, pkts: &mut Vec<XskBuf>) {
        for b in pkts.drain(..) {
            if self.give_back(&b) {
                self.free_frames.push(b.addr);
            }
        }
    }

    /// The port's counters, with the kernel's drops for this socket (frames the
    /// redirect could not place because the RX or fill ring was full) as `rx_missed`.
    /// One `getsockopt`: the worker calls this every few milliseconds, never per packet.
    fn buffers_move_between_queues(&self) -> bool {
        false
    }

    /// A frame of this queue's UMEM holding a copy of `frame`: how workers hand
    /// packets to one another here (see `dataplane::worker::handoff_mesh_copying`).
    fn alloc_copy(&mut self, frame: &[u8]) -> Option<XskBuf> {
        let mut b = self.alloc()?;
        if !b.append(frame.len()) {
            if self.give_back(&b) {
                self.free_frames.push(b.addr);
            }
            return None;
        }
        b.data_mut().copy_from_slice(frame);
        Some(b)
    }

    fn stats(&self) -> PortStats {
        let mut s = self.stats;
        if let Ok(k) = self.kernel_stats() {
            s.rx_missed += k.rx_dropped + k.rx_ring_full + k.rx_fill_ring_empty_descs;
        }
        s
    }
}

impl Drop for XskQueue {
    fn drop(&mut self) {
        // Frames still lent out would dangle if the UMEM were unmapped: keep the
        // mapping (leak it) in that case. The socket and rings are closed either way.
        if self.lent > 0 {
            std::mem::forget(self.umem.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf_in(umem: &Umem, frame: u64, start: u16, len: u16) -> XskBuf {
        let addr = frame * FRAME_SIZE as u64;
        // SAFETY: test helper: frame < umem.frames, so the chunk lies in the mapping.
        let chunk = unsafe { NonNull::new_unchecked(umem.base.as_ptr().add(addr as usize)) };
        XskBuf { chunk, addr, start, len }
    }

    #[test]
    fn xsk_buf_stays_inside_its_frame() {
        let umem = Umem::new(4).expect("anonymous mmap");
        let mut b = buf_in(&umem, 1, HEADROOM as u16 + 256, 60);
        b.data_mut().copy_from_slice(&[7u8; 60]);
        assert_eq!(b.headroom(), HEADROOM + 256);
        assert_eq!(b.tailroom(), FRAME_SIZE - HEADROOM - 256 - 60);
        assert_eq!(b.desc_addr(), FRAME_SIZE as u64 + HEADROOM as u64 + 256);
        assert!(b.prepend(44));
        assert_eq!(b.len(), 104);
        assert_eq!(&b.data()[44..], &[7u8; 60]);
        assert!(!b.prepend(b.headroom() + 1));
        assert!(b.prepend(b.headroom()));
        assert_eq!(b.headroom(), 0);
        assert_eq!(b.desc_addr(), FRAME_SIZE as u64);
        assert!(b.adj(b.len() - 60));
        assert_eq!(b.data(), &[7u8; 60]);
        assert!(!b.adj(61));
        assert!(!b.append(b.tailroom() + 1));
        assert!(b.append(b.tailroom()));
        assert_eq!(b.headroom() + b.len(), FRAME_SIZE);
        b.truncate(10);
        assert_eq!(b.len(), 10);
        b.truncate(100);
        assert_eq!(b.len(), 10);
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Prepend(usize),
        Adj(usize),
        Append(usize),
        Truncate(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..600usize).prop_map(Op::Prepend),
            (0..600usize).prop_map(Op::Adj),
            (0..5000usize).prop_map(Op::Append),
            (0..5000usize).prop_map(Op::Truncate),
        ]
    }

    proptest::proptest! {
        /// Any sequence of operations keeps the view inside its chunk, agrees
        /// with a (start, len) model, and never touches the neighbouring chunks.
        #[test]
        fn xsk_buf_matches_a_model(start in 0..FRAME_SIZE as u16, len in 0..2000u16, ops in proptest::collection::vec(op(), 0..40)) {
            let len = len.min(FRAME_SIZE as u16 - start);
            let umem = Umem::new(3).expect("anonymous mmap");
            let mut b = buf_in(&umem, 1, start, len);
            let (mut m_start, mut m_len) = (start as usize, len as usize);
            for op in ops {
                let ok = match op {
                    Op::Prepend(n) => b.prepend(n),
                    Op::Adj(n) => b.adj(n),
                    Op::Append(n) => b.append(n),
                    Op::Truncate(n) => { b.truncate(n); true }
                };
                let m_ok = match op {
                    Op::Prepend(n) if n <= m_start => { m_start -= n; m_len += n; true }
                    Op::Adj(n) if n <= m_len => { m_start += n; m_len -= n; true }
                    Op::Append(n) if m_start + m_len + n <= FRAME_SIZE => { m_len += n; true }
                    Op::Truncate(n) => { m_len = m_len.min(n); true }
                    _ => false,
                };
                proptest::prop_assert_eq!(ok, m_ok);
                proptest::prop_assert_eq!((b.headroom(), b.len()), (m_start, m_len));
                proptest::prop_assert_eq!(b.headroom() + b.len() + b.tailroom(), FRAME_SIZE);
                b.data_mut().fill(0xab);
            }
            // SAFETY: test: the mapping holds 3 chunks; read the first and the last.
            let (first, last) = unsafe {
                (
                    std::slice::from_raw_parts(umem.base.as_ptr(), FRAME_SIZE),
                    std::slice::from_raw_parts(umem.base.as_ptr().add(2 * FRAME_SIZE), FRAME_SIZE),
                )
            };
            proptest::prop_assert!(first.iter().chain(last).all(|&x| x == 0), "wrote outside its chunk");
        }
    }

    #[test]
    fn xsk_buf_is_send() {
        fn is_send<T: Send>() {}
        is_send::<XskBuf>();
        is_send::<XskQueue>();
        is_send::<AfXdpPort>();
        is_send::<DecapProgram>();
    }

    #[test]
    fn bad_options_are_one_line_errors() {
        let e = AfXdpPort::open("lo", 1, XdpOptions { ring_size: 1000, ..Default::default() }).err().unwrap();
        assert!(matches!(e, AfXdpError::BadRingSize(1000)), "{e}");
        let e = AfXdpPort::open("l4lb-no-such-if", 1, XdpOptions::default()).err().unwrap();
        assert!(matches!(e, AfXdpError::NoSuchInterface(_)), "{e}");
        assert_eq!(e.to_string(), "interface \"l4lb-no-such-if\" does not exist");
        let e = AfXdpPort::open("lo", 0, XdpOptions::default()).err().unwrap();
        assert!(matches!(e, AfXdpError::BadQueueCount { queues: 0, .. }), "{e}");
        assert!(!e.to_string().contains('\n'));
    }
}
