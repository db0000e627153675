//! The transmit ring: fixed-size slots, filled in order, flushed with one `sendto`.
//!
//! TPACKET_V3 TX rings use fixed frames like V2 (packet_mmap.txt): each slot starts
//! with a `tpacket3_hdr` whose `tp_next_offset` must be 0; the frame's bytes follow
//! at `TPACKET_ALIGN(sizeof(tpacket3_hdr))` = 48. A slot is ours while its status is
//! `TP_STATUS_AVAILABLE`; we copy a frame in, set `tp_len`, and publish it with
//! `TP_STATUS_SEND_REQUEST`. The kernel walks the slots in the same order from its
//! own head, sends every requested one on `sendto`, and sets them back to available
//! when the device has taken the skb (for veth: at once).

use std::sync::atomic::{AtomicU32, Ordering};

use super::sys::Mmap;

/// Where the frame starts inside a TX slot (`tp_hdrlen - sizeof(sockaddr_ll)`).
pub(super) const TX_DATA_OFF: usize = (std::mem::size_of::<libc::tpacket3_hdr>() + 15) & !15;
/// Offset of `tp_status` in `tpacket3_hdr`.
const OFF_STATUS: usize = 20;

/// Why a frame did not go into the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Push {
    Queued,
    /// The next slot is still owned by the kernel.
    Full,
    /// Larger than a slot.
    TooBig,
}

pub(super) struct TxRing {
    base: *mut u8,
    frame_size: usize,
    frame_nr: usize,
    head: usize,
    /// Slots published since the last flush.
    pub(super) pending: u32,
}

impl TxRing {
    /// A writer over the TX ring at `map.base() + offset`.
    pub(super) fn new(map: &Mmap, offset: usize, frame_size: usize, frame_nr: usize) -> TxRing {
        TxRing { base: map.base().wrapping_add(offset), frame_size, frame_nr, head: 0, pending: 0 }
    }

    /// Largest frame a slot holds.
    pub(super) fn max_frame(&self) -> usize {
        self.frame_size - TX_DATA_OFF
    }

    #[inline]
    fn slot(&self, i: usize) -> *mut u8 {
        // In bounds: i < frame_nr and the TX ring is frame_size * frame_nr bytes
        // (block sizes are multiples of the frame size, so slots are contiguous).
        self.base.wrapping_add(i * self.frame_size)
    }

    #[inline]
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: `tp_status` is a 4-byte-aligned u32 at a fixed offset of slot `i`
        // (slots are 16-byte aligned) inside the live mapping; the kernel and we only
        // access it as a whole word. The reference does not outlive `self`.
        unsafe { &*self.slot(i).add(OFF_STATUS).cast::<AtomicU32>() }
    }

    /// Copy `frame` into the next slot and mark it for sending (no system call).
    #[inline]
    pub(super) fn push(&mut self, frame: &[u8]) -> Push {
        if frame.len() > self.max_frame() {
            return Push::TooBig;
        }
        let i = self.head;
        let st = self.status(i).load(Ordering::Acquire);
        if st != libc::TP_STATUS_AVAILABLE && st != libc::TP_STATUS_WRONG_FORMAT {
            return Push::Full;
        }
        let slot = self.slot(i);
        // SAFETY: slot `i` is ours (status AVAILABLE, read with acquire); the frame
        // fits after the header (checked above); the header fields are written
        // before the status store that hands the slot to the kernel.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), slot.add(TX_DATA_OFF), frame.len());
            let h = slot.cast::<libc::tpacket3_hdr>();
            (*h).tp_next_offset = 0;
            (*h).tp_len = frame.len() as u32;
            (*h).tp_snaplen = frame.len() as u32;
        }
        self.status(i).store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.head = if i + 1 == self.frame_nr { 0 } else { i + 1 };
        self.pending += 1;
        Push::Queued
    }

    /// Slots the kernel has not finished with (requested or being sent).
    pub(super) fn in_flight(&self) -> usize {
        (0..self.frame_nr)
            .filter(|&i| {
                let s = self.status(i).load(Ordering::Acquire);
                s & (libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING) != 0
            })
            .count()
    }
}
