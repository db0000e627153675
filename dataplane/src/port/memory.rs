//! The in-memory port: heap buffers from a fixed pool, for tests, benches and replay.

use std::collections::VecDeque;

use super::{HEADROOM, PacketBuf, Port, PortStats};

/// Room for a frame: a jumbo-free Ethernet frame plus encapsulation headroom.
pub const BUF_SIZE: usize = HEADROOM + 9216 + 64;

/// A heap packet buffer with headroom, allocated once and reused.
#[derive(Clone)]
pub struct HeapBuf {
    buf: Box<[u8]>,
    start: usize,
    len: usize,
    /// Position of the input packet that produced this buffer (replay keeps order by it).
    pub seq: u64,
    /// Capture timestamp in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
}

impl std::fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapBuf").field("seq", &self.seq).field("len", &self.len).finish()
    }
}

impl Default for HeapBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl HeapBuf {
    /// An empty buffer with [`HEADROOM`] bytes of headroom.
    pub fn new() -> Self {
        HeapBuf { buf: vec![0u8; BUF_SIZE].into_boxed_slice(), start: HEADROOM, len: 0, seq: 0, ts_ns: 0 }
    }

    /// A buffer holding a copy of `frame`.
    pub fn from_frame(frame: &[u8]) -> Self {
        let mut b = Self::new();
        b.set_frame(frame);
        b
    }

    /// Reset to hold a copy of `frame`, with full headroom. A frame longer than the
    /// buffer's room (more than 9280 bytes: a capture may hold anything up to its
    /// snaplen) gets a buffer of its own size, the only time a buffer reallocates.
    pub fn set_frame(&mut self, frame: &[u8]) {
        if frame.len() > self.buf.len() - HEADROOM {
            self.buf = vec![0u8; HEADROOM + frame.len() + 64].into_boxed_slice();
        }
        let n = frame.len();
        self.start = HEADROOM;
        self.len = n;
        self.buf[HEADROOM..HEADROOM + n].copy_from_slice(&frame[..n]);
    }
}

impl PacketBuf for HeapBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.buf.len() - self.start - self.len
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        self.len += n;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.start += n;
        self.len -= n;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.len += n;
        true
    }
    #[inline]
    fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
        }
    }
    /// The stored length: no slice (and no bounds check) needed.
    #[inline]
    fn len(&self) -> usize {
        self.len
    }
}

/// An in-memory port: frames queued for receive, and what the worker sent,
/// handed to the host, or freed, kept for inspection.
#[derive(Default)]
pub struct MemoryPort {
    pub rx: VecDeque<HeapBuf>,
    pub tx: Vec<HeapBuf>,
    pub host: Vec<HeapBuf>,
    /// Buffers freed by the worker (dropped packets), reusable by the feeder.
    pub pool: Vec<HeapBuf>,
    /// When false, `tx_burst` recycles buffers into `pool` instead of keeping them
    /// (benchmarks: nothing accumulates).
    pub keep_tx: bool,
    /// Behave like a port whose buffers cannot move between queues (AF_XDP), so
    /// that workers hand packets over by copy (tests of that path).
    pub fixed_buffers: bool,
    stats: PortStats,
}

impl MemoryPort {
    pub fn new() -> Self {
        MemoryPort { keep_tx: true, ..Default::default() }
    }

    /// Queue a frame for receive.
    pub fn push_rx(&mut self, buf: HeapBuf) {
        self.rx.push_back(buf);
    }
}

impl Port for MemoryPort {
    type Buf = HeapBuf;

    fn rx_burst(&mut self, out: &mut Vec<HeapBuf>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        for _ in 0..n {
            if let Some(b) = self.rx.pop_front() {
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += b.len() as u64;
                out.push(b);
            }
        }
        n
    }

    fn tx_burst(&mut self, pkts: &mut Vec<HeapBuf>) {
        for b in pkts.drain(..) {
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += b.len() as u64;
            if self.keep_tx { self.tx.push(b) } else { self.pool.push(b) }
        }
    }

    fn to_host(&mut self, pkts: &mut Vec<HeapBuf>) {
        for b in pkts.drain(..) {
            self.stats.host_packets += 1;
            if self.keep_tx { self.host.push(b) } else { self.pool.push(b) }
        }
    }

    fn free(&mut self, pkts: &mut Vec<HeapBuf>) {
        self.pool.append(pkts);
    }

    fn stats(&self) -> PortStats {
        self.stats
    }

    fn buffers_move_between_queues(&self) -> bool {
        !self.fixed_buffers
    }

    /// A buffer from the pool (or a new one) holding a copy of `frame`.
    fn alloc_copy(&mut self, frame: &[u8]) -> Option<HeapBuf> {
        if frame.len() > BUF_SIZE - HEADROOM {
            return None;
        }
        let mut b = self.pool.pop().unwrap_or_default();
        b.set_frame(frame);
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_adj_stay_in_bounds() {
        let mut b = HeapBuf::from_frame(&[1, 2, 3, 4]);
        assert_eq!(b.headroom(), HEADROOM);
        assert!(b.prepend(10));
        assert_eq!(b.len(), 14);
        assert_eq!(&b.data()[10..], &[1, 2, 3, 4]);
        assert!(!b.prepend(HEADROOM));
        assert!(b.adj(10));
        assert_eq!(b.data(), &[1, 2, 3, 4]);
        assert!(!b.adj(5));
        b.truncate(2);
        assert_eq!(b.data(), &[1, 2]);
        b.truncate(10);
        assert_eq!(b.len(), 2);
        assert!(b.append(3));
        assert_eq!(b.len(), 5);
        assert!(!b.append(BUF_SIZE));
    }

    #[test]
    fn frames_longer_than_the_buffer_are_kept_whole() {
        let big: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let mut b = HeapBuf::from_frame(&[7; 60]);
        b.set_frame(&big);
        assert_eq!(b.data(), &big[..]);
        assert_eq!(b.headroom(), HEADROOM);
        assert!(b.prepend(44), "headroom kept for encapsulation");
        b.set_frame(&[1, 2, 3]);
        assert_eq!(b.data(), &[1, 2, 3]);
    }

    #[test]
    fn memory_port_moves_buffers() {
        let mut p = MemoryPort::new();
        for i in 0..40u8 {
            p.push_rx(HeapBuf::from_frame(&[i; 60]));
        }
        let mut v = Vec::with_capacity(32);
        assert_eq!(p.rx_burst(&mut v, 32), 32);
        p.tx_burst(&mut v);
        assert!(v.is_empty());
        assert_eq!(p.tx.len(), 32);
        assert_eq!(p.rx_burst(&mut v, 32), 8);
        assert_eq!(p.stats().rx_packets, 40);
    }
}
