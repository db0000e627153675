//! The TPACKET_V3 receive ring: blocks of variable-size frames, walked in place.
//!
//! Layout of one block (packet_mmap.txt, "TPACKET_V3"):
//!
//! ```text
//! block: | tpacket_block_desc | pad | frame | frame | ... |        (blk_len used)
//! frame: | tpacket3_hdr (48) | sockaddr_ll (20) | free (>= 14 + PACKET_RESERVE) | Ethernet frame ... |
//!                                                ^ lo                             ^ tp_mac
//! ```
//!
//! The bytes between the end of `sockaddr_ll` and `tp_mac` are the buffer's
//! headroom (`PACKET_RESERVE` = [`HEADROOM`](crate::port::HEADROOM) guarantees at
//! least that much); the bytes from the end of the frame to the next frame header
//! (or the block's end) are its tailroom.
//!
//! Ownership: the kernel hands a whole block over by setting `TP_STATUS_USER` in its
//! descriptor. We count its frames into a per-block reference count when we open it;
//! every [`AfPacketBuf`](super::AfPacketBuf) decrements it when dropped (freed, sent
//! or handed to the host), and every frame we skip decrements it at once. A block
//! goes back to the kernel (`TP_STATUS_KERNEL`) only when its count is zero, and
//! blocks go back in ring order, which is the order the kernel refills them in.

use std::sync::atomic::{AtomicU32, Ordering};

use super::sys::Mmap;

/// `TPACKET_ALIGN(sizeof(tpacket3_hdr)) + sizeof(sockaddr_ll)`: frame header bytes
/// we must not overwrite (the rest up to `tp_mac` is headroom).
pub(super) const FRAME_HDR_LEN: usize = libc::TPACKET3_HDRLEN;
/// Offset of `block_status` in `tpacket_block_desc` (after `version`, `offset_to_priv`).
const OFF_BLOCK_STATUS: usize = 8;

/// One received frame, located inside a block.
pub(super) struct RxFrame {
    /// Start of the region the buffer may use (end of the frame's `sockaddr_ll`).
    pub lo: *mut u8,
    /// Offset of the Ethernet header from `lo`.
    pub start: u32,
    /// Frame length.
    pub len: u32,
    /// Size of the whole usable region from `lo`.
    pub cap: u32,
    /// `tp_status` of the frame (VLAN bits, checksum bits).
    pub status: u32,
    pub vlan_tci: u16,
    pub vlan_tpid: u16,
    /// The block's reference count.
    pub refs: *const AtomicU32,
    /// False when the frame was cut (`tp_snaplen < tp_len`: it did not fit a block)
    /// or its header is inconsistent: such frames are discarded and counted.
    pub usable: bool,
}

impl RxFrame {
    /// Release a frame that will not become a buffer.
    #[inline]
    pub(super) fn discard(self) {
        // SAFETY: `refs` points into the ring's boxed count array, which outlives
        // every frame (the queue leaks it rather than free it while counts are held).
        unsafe { &*self.refs }.fetch_sub(1, Ordering::Release);
    }
}

/// The block being walked.
struct Cursor {
    block: usize,
    remaining: u32,
    next: usize,
}

pub(super) struct RxRing {
    base: *mut u8,
    block_size: usize,
    block_nr: usize,
    /// Next block to open (ring order).
    next_block: usize,
    /// Oldest block we still hold.
    release_head: usize,
    /// Blocks held (opened, not yet given back): `release_head .. next_block`.
    held: usize,
    cursor: Option<Cursor>,
    /// Frames in flight per block. Boxed: buffers point into it, so it never moves.
    refs: Box<[AtomicU32]>,
}

impl RxRing {
    /// A walker over the RX ring at `map.base() + 0`.
    pub(super) fn new(map: &Mmap, block_size: usize, block_nr: usize) -> RxRing {
        RxRing {
            base: map.base(),
            block_size,
            block_nr,
            next_block: 0,
            release_head: 0,
            held: 0,
            cursor: None,
            refs: (0..block_nr).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    #[inline]
    fn block_ptr(&self, i: usize) -> *mut u8 {
        // In bounds: i < block_nr and the mapping is block_size * block_nr bytes.
        self.base.wrapping_add(i * self.block_size)
    }

    #[inline]
    fn block_status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the block descriptor starts every block, which lies inside the live
        // mapping; `block_status` is a 4-byte-aligned u32 (blocks are page aligned)
        // that the kernel and we access only as a whole word, so an atomic view is
        // sound. The reference does not outlive `self`, which keeps the mapping alive.
        unsafe { &*self.block_ptr(i).add(OFF_BLOCK_STATUS).cast::<AtomicU32>() }
    }

    /// Give back, in ring order, every held block whose frames were all released.
    pub(super) fn release_done(&mut self) {
        while self.held > 0 {
            let b = self.release_head;
            if self.cursor.as_ref().is_some_and(|c| c.block == b) {
                break;
            }
            if self.refs[b].load(Ordering::Acquire) != 0 {
                break;
            }
            // Release: our writes into the block (rewrites, prepends) happen before
            // the kernel may reuse it.
            self.block_status(b).store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.release_head = (b + 1) % self.block_nr;
            self.held -= 1;
        }
    }

    /// The next received frame, or `None` when the kernel has nothing ready. Never
    /// blocks, no system call. The caller either wraps the frame in a buffer (whose
    /// drop releases it) or calls [`RxFrame::discard`].
    #[inline]
    pub(super) fn next_frame(&mut self) -> Option<RxFrame> {
        if self.cursor.is_none() && !self.open_next() {
            return None;
        }
        let (base, block_size) = (self.base, self.block_size);
        let cur = self.cursor.as_mut()?;
        let block = base.wrapping_add(cur.block * block_size);
        // SAFETY: `cur.next` is an offset the kernel wrote (offset_to_first_pkt or a
        // tp_next_offset) inside a block it handed to us (TP_STATUS_USER seen with
        // acquire ordering); it stays below block_size (checked when it was set), and
        // the kernel does not write the block until we give it back.
        let h = unsafe { std::ptr::read_unaligned(block.add(cur.next).cast::<libc::tpacket3_hdr>()) };
        let refs: *const AtomicU32 = &self.refs[cur.block];
        let this = cur.next;
        cur.remaining -= 1;
        let next = this + h.tp_next_offset as usize;
        let last = cur.remaining == 0 || h.tp_next_offset == 0 || next + FRAME_HDR_LEN > block_size;
        let limit = if last { block_size } else { next };
        if last {
            // Frames the header chain cannot reach any more are skipped: the block's
            // count drops by them now.
            if cur.remaining > 0 {
                self.refs[cur.block].fetch_sub(cur.remaining, Ordering::Release);
            }
            self.cursor = None;
        } else {
            cur.next = next;
        }
        let lo_off = this + FRAME_HDR_LEN;
        let mac_off = this + usize::from(h.tp_mac);
        let ok = mac_off >= lo_off && mac_off + h.tp_snaplen as usize <= limit && lo_off <= limit;
        Some(RxFrame {
            lo: block.wrapping_add(lo_off),
            start: if ok { (mac_off - lo_off) as u32 } else { 0 },
            len: if ok { h.tp_snaplen } else { 0 },
            cap: if ok { (limit - lo_off) as u32 } else { 0 },
            status: h.tp_status,
            vlan_tci: h.hv1.tp_vlan_tci as u16,
            vlan_tpid: h.hv1.tp_vlan_tpid,
            refs,
            usable: ok && h.tp_snaplen == h.tp_len,
        })
    }

    /// Open the next block if the kernel has filled it.
    fn open_next(&mut self) -> bool {
        loop {
            if self.held == self.block_nr {
                // Every block is ours: the one at `next_block` still holds buffers.
                return false;
            }
            let b = self.next_block;
            if self.block_status(b).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                return false;
            }
            // SAFETY: block `b` belongs to us now (TP_STATUS_USER, acquire); its
            // descriptor is at the block's start, 8-byte aligned.
            let desc = unsafe { std::ptr::read(self.block_ptr(b).cast::<libc::tpacket_block_desc>()) };
            // SAFETY: TPACKET_V3 rings use the `bh1` variant of the header union.
            let bh1 = unsafe { desc.hdr.bh1 };
            self.next_block = (b + 1) % self.block_nr;
            self.held += 1;
            let num = bh1.num_pkts;
            let first = bh1.offset_to_first_pkt as usize;
            if num == 0 || first + FRAME_HDR_LEN > self.block_size {
                // An empty block (retired by timeout with nothing in it): give it back.
                self.refs[b].store(0, Ordering::Relaxed);
                self.release_done();
                continue;
            }
            self.refs[b].store(num, Ordering::Relaxed);
            self.cursor = Some(Cursor { block: b, remaining: num, next: first });
            return true;
        }
    }

    /// True when no frame handed out is still alive (frames of the block being
    /// walked that were not handed out yet do not count).
    pub(super) fn all_released(&self) -> bool {
        (0..self.held).all(|k| {
            let b = (self.release_head + k) % self.block_nr;
            let unhanded = match &self.cursor {
                Some(c) if c.block == b => c.remaining,
                _ => 0,
            };
            self.refs[b].load(Ordering::Acquire) == unhanded
        })
    }
}
