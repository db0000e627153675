//! Burst I/O.
//!
//! A [`Port`] hands the worker bursts of up to [`BURST`] packet buffers and takes
//! them back to transmit, to give to the host's stack, or to free. Buffers are
//! worked on in place: the pipeline rewrites headers where they are and grows the
//! packet at the front (into the buffer's headroom) to encapsulate it, the way
//! `rte_pktmbuf_prepend` does for a DPDK mbuf or an offset does for an AF_XDP frame.
//! No per-packet allocation: buffers come from pools sized at start.

#[cfg(target_os = "linux")]
pub mod af_packet;
#[cfg(feature = "af_xdp")]
pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memory;
pub mod pcap;

/// Packets per burst, as in DPDK's l3fwd and VPP's frame size for small vectors.
pub const BURST: usize = 32;

/// Headroom every port guarantees in front of a received packet: room for the
/// largest encapsulation l4lb adds (IPv6 outer header + GRE = 44 bytes) or an ICMP
/// error header (IPv6 + ICMPv6 = 48 bytes), with margin. DPDK's default is 128 too.
pub const HEADROOM: usize = 128;

/// A packet buffer the pipeline works on in place.
///
/// `data()` is the frame, starting at its Ethernet header. Implementations never
/// panic on out-of-range requests: they return `false` and change nothing.
pub trait PacketBuf {
    /// The frame's bytes.
    fn data(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes in front of the frame.
    fn headroom(&self) -> usize;
    /// Free bytes after the frame.
    fn tailroom(&self) -> usize;
    /// Grow the frame by `n` bytes at the front (contents unspecified).
    fn prepend(&mut self, n: usize) -> bool;
    /// Remove `n` bytes from the front.
    fn adj(&mut self, n: usize) -> bool;
    /// Grow the frame by `n` bytes at the end (contents unspecified).
    fn append(&mut self, n: usize) -> bool;
    /// Shorten the frame to `len` bytes (no-op if it is already shorter).
    fn truncate(&mut self, len: usize);
    /// The frame's length.
    #[inline]
    fn len(&self) -> usize {
        self.data().len()
    }
    #[inline]
    fn is_empty(&self) -> bool {
        self.data().is_empty()
    }
}

/// Counters a port keeps about itself (not per packet path: read by the control plane).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames the device could not take (ring full after bounded retries).
    pub tx_dropped: u64,
    pub host_packets: u64,
    /// Of `host_packets`, frames the host path could not take (DPDK's host TAP full);
    /// 0 where the host gets frames some other way.
    pub host_dropped: u64,
    /// Frames the device dropped before l4lb saw them (no buffer, ring full).
    pub rx_missed: u64,
}

/// One queue of a network port, owned by one worker.
pub trait Port {
    /// The buffer type this port lends out.
    type Buf: PacketBuf;

    /// Receive up to `max` (at most [`BURST`]) frames, appending them to `out`.
    /// Returns how many were appended. Never blocks.
    fn rx_burst(&mut self, out: &mut Vec<Self::Buf>, max: usize) -> usize;

    /// Transmit every buffer in `pkts` (drained). Frames the device cannot take
    /// after bounded retries are freed and counted in `tx_dropped`.
    fn tx_burst(&mut self, pkts: &mut Vec<Self::Buf>);

    /// Hand frames to the host's own network stack (drained).
    fn to_host(&mut self, pkts: &mut Vec<Self::Buf>);

    /// Return frames to the port's pool (drained).
    fn free(&mut self, pkts: &mut Vec<Self::Buf>);

    /// The port's own counters.
    fn stats(&self) -> PortStats;

    /// Whether a buffer received on this queue may be transmitted or freed by
    /// another queue of the same port (DPDK mbufs, AF_PACKET frames, heap buffers:
    /// yes; AF_XDP frames live in their queue's own UMEM: no). Workers hand packets
    /// to the owning worker only when this holds.
    fn buffers_move_between_queues(&self) -> bool {
        true
    }

    /// A buffer of this port holding a copy of `frame` (with the usual headroom), or
    /// `None` when the port has no free buffer or cannot make one. Ports whose buffers
    /// cannot move between queues implement it: workers then hand packets over by copy.
    fn alloc_copy(&mut self, frame: &[u8]) -> Option<Self::Buf> {
        let _ = frame;
        None
    }
}
