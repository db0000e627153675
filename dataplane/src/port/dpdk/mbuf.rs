//! [`Mbuf`]: one owned, single-segment `rte_mbuf`, worked on in place.
//!
//! The frame is `buf_addr + data_off .. + data_len`. Reads (`data`, `headroom`,
//! `tailroom`) come straight from the mbuf header's fields, inlined; so do the
//! changes (`prepend`, `adj`, `append`, `truncate`): what DPDK's `rte_pktmbuf_*`
//! inline functions do for a single-segment mbuf, written here so that they inline
//! into the burst loop instead of costing a call into the C shim per packet
//! (`data_len` and `pkt_len` kept in step).
//!
//! Invariants that make the safe API sound, established where an `Mbuf` is made
//! ([`DpdkQueue::rx_burst`](super::DpdkQueue), [`DpdkQueue::alloc`](super::DpdkQueue::alloc)):
//! the mbuf is direct (not attached to another mbuf's data), has one segment and a
//! reference count of 1, so its data bytes belong to this `Mbuf` alone; and its pool
//! outlives it (pools are freed only when no mbuf of theirs is in use, see `ethdev`).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::port::PacketBuf;

use super::sys;

/// An owned `rte_mbuf` holding one frame. Freed back to its pool on drop.
///
/// `#[repr(transparent)]` over the pointer: a `Vec<Mbuf>` is an array of
/// `struct rte_mbuf *`, handed to `rte_eth_rx_burst`/`rte_eth_tx_burst` as is.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an `Mbuf` is the only owner of its mbuf and its data (see the module invariants), and nothing in
// an mbuf is tied to the thread that received it: DPDK mempools are multi-producer/multi-consumer, so the
// mbuf may be freed or transmitted from any thread.
unsafe impl Send for Mbuf {}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf").field("len", &self.len()).field("headroom", &self.headroom()).finish()
    }
}

impl Mbuf {
    /// Takes ownership of `m` if it satisfies the `Mbuf` invariants; otherwise
    /// returns it untouched.
    ///
    /// # Safety
    /// `m` must point to a valid mbuf the caller owns (one reference), from a pool
    /// that stays alive while the returned `Mbuf` lives.
    #[inline]
    pub(super) unsafe fn from_raw_checked(m: *mut sys::rte_mbuf) -> Result<Mbuf, *mut sys::rte_mbuf> {
        let Some(nn) = NonNull::new(m) else { return Err(m) };
        // SAFETY: the caller guarantees `m` is a valid mbuf; `refcnt` is a u16 DPDK only changes with atomic
        // operations, so reading it through an AtomicU16 is sound even if another owner exists.
        let refcnt = unsafe { AtomicU16::from_ptr(&raw mut (*m).refcnt).load(Ordering::Relaxed) };
        // SAFETY: valid mbuf (caller); these plain fields are only written by its owner, which is us.
        let (segs, flags) = unsafe { ((*m).nb_segs, (*m).ol_flags) };
        if refcnt == 1 && segs == 1 && flags & sys::RTE_MBUF_F_INDIRECT == 0 { Ok(Mbuf(nn)) } else { Err(m) }
    }

    /// The raw mbuf, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    /// Gives up ownership: the caller must free or transmit the mbuf.
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let m = self.0.as_ptr();
        std::mem::forget(self);
        m
    }

    /// The ethdev port the frame was received on (as the driver recorded it).
    #[inline]
    pub fn port(&self) -> u16 {
        // SAFETY: `self.0` is a valid mbuf owned by us (type invariant).
        unsafe { (*self.0.as_ptr()).port }
    }

    /// Replaces the frame with a copy of `frame`, keeping the default headroom.
    /// Returns `false` (and leaves the mbuf empty) if the frame does not fit.
    pub fn set_frame(&mut self, frame: &[u8]) -> bool {
        // SAFETY: valid, exclusively owned, single-segment mbuf (type invariant); `rte_pktmbuf_reset`-like
        // bookkeeping done by hand on the fields DPDK defines for it.
        unsafe {
            let m = self.0.as_ptr();
            (*m).data_off = (sys::RTE_PKTMBUF_HEADROOM as u16).min((*m).buf_len);
            (*m).data_len = 0;
            (*m).pkt_len = 0;
        }
        if !self.append(frame.len()) {
            return false;
        }
        self.data_mut().copy_from_slice(frame);
        true
    }

    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: valid mbuf (type invariant): `buf_addr` points to a buffer of `buf_len` bytes and
        // `data_off <= buf_len`, so the offset stays inside that buffer.
        unsafe {
            let m = self.0.as_ptr();
            (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off))
        }
    }

    #[inline]
    fn data_len(&self) -> usize {
        // SAFETY: valid mbuf owned by us (type invariant).
        usize::from(unsafe { (*self.0.as_ptr()).data_len })
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: single-segment mbuf: `data_off + data_len <= buf_len`, so the range lies in the mbuf's data
        // buffer; the bytes are ours alone (refcnt 1, direct) and live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.data_len()) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes this the only live view of the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.data_len()) }
    }

    #[inline]
    fn headroom(&self) -> usize {
        // SAFETY: valid mbuf owned by us (type invariant).
        usize::from(unsafe { (*self.0.as_ptr()).data_off })
    }

    #[inline]
    fn tailroom(&self) -> usize {
        // SAFETY: valid mbuf owned by us (type invariant).
        let (buf_len, off, len) = unsafe {
            let m = self.0.as_ptr();
            ((*m).buf_len, (*m).data_off, (*m).data_len)
        };
        usize::from(buf_len).saturating_sub(usize::from(off) + usize::from(len))
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else { return false };
        // SAFETY: valid mbuf we own exclusively, one segment (type invariant). What `rte_pktmbuf_prepend`
        // does, inlined: the checked `n <= data_off` keeps `data_off` in the buffer, and `data_len + n`
        // cannot exceed `buf_len` (a u16) because the grown frame still ends where it did.
        unsafe {
            let m = self.0.as_ptr();
            if n > (*m).data_off {
                return false;
            }
            (*m).data_off -= n;
            (*m).data_len += n;
            (*m).pkt_len += u32::from(n);
        }
        true
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else { return false };
        // SAFETY: valid mbuf we own exclusively, one segment (type invariant); `rte_pktmbuf_adj` inlined:
        // `n <= data_len` is checked, so the frame start stays inside the old frame.
        unsafe {
            let m = self.0.as_ptr();
            if n > (*m).data_len {
                return false;
            }
            (*m).data_off += n;
            (*m).data_len -= n;
            (*m).pkt_len -= u32::from(n);
        }
        true
    }

    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        // `n` <= tailroom <= buf_len <= u16::MAX.
        let n = n as u16;
        // SAFETY: valid mbuf we own exclusively, one segment (type invariant); `rte_pktmbuf_append`
        // inlined: `n` is within the tailroom, so the frame stays inside the buffer.
        unsafe {
            let m = self.0.as_ptr();
            (*m).data_len += n;
            (*m).pkt_len += u32::from(n);
        }
        true
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        let cur = self.data_len();
        if len < cur {
            // `len < cur <= u16::MAX`.
            let len = len as u16;
            // SAFETY: valid mbuf we own exclusively, one segment (type invariant); `rte_pktmbuf_trim`
            // inlined: the frame only shrinks, and `pkt_len == data_len` for one segment.
            unsafe {
                let m = self.0.as_ptr();
                (*m).data_len = len;
                (*m).pkt_len = u32::from(len);
            }
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (one reference) and its pool is alive (type invariant); freeing returns it.
        unsafe { sys::l4lb_pktmbuf_free(self.0.as_ptr()) }
    }
}
