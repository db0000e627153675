//! The four AF_XDP rings (fill, completion, RX, TX) as single-producer /
//! single-consumer queues shared with the kernel through `mmap`.
//!
//! Each ring is a power-of-two array of descriptors plus a producer and a
//! consumer index (free-running `u32`s) and a flags word. We keep cached copies
//! of both indices so that a burst touches the shared cache lines once: the
//! other side's index is reloaded (Acquire) only when the cached view says the
//! ring is full (producer side) or empty (consumer side), and our own index is
//! published (Release) once per burst.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// A ring mapping: where it is, how long, and the offsets the kernel reported.
pub(super) struct RingMap {
    pub base: NonNull<u8>,
    pub len: usize,
    pub producer: usize,
    pub consumer: usize,
    pub flags: usize,
    pub desc: usize,
}

/// One ring, as producer (fill, TX) or consumer (RX, completion).
pub(super) struct Ring<T: Copy> {
    map: RingMap,
    mask: u32,
    size: u32,
    /// Our view of the producer index (ours to advance on a producer ring).
    cached_prod: u32,
    /// Our view of the consumer index (ours to advance on a consumer ring).
    cached_cons: u32,
    _desc: std::marker::PhantomData<T>,
}

// SAFETY: the ring's memory is a private mapping owned by this value; the only
// other party is the kernel, synchronised through the atomic indices. Moving the
// ring to another thread (the worker) moves that ownership with it.
unsafe impl<T: Copy> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// Wrap a mapping of `size` descriptors. `size` is a power of two (checked
    /// when the options are validated).
    pub(super) fn new(map: RingMap, size: u32) -> Self {
        debug_assert!(size.is_power_of_two());
        let mut r = Ring { map, mask: size - 1, size, cached_prod: 0, cached_cons: 0, _desc: std::marker::PhantomData };
        r.cached_prod = r.producer().load(Ordering::Relaxed);
        r.cached_cons = r.consumer().load(Ordering::Relaxed);
        r
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is an offset the kernel reported for this mapping
        // (XDP_MMAP_OFFSETS), 4-byte aligned and inside `len`; the mapping lives
        // as long as `self`. The word is shared with the kernel, hence atomic.
        unsafe { &*(self.map.base.as_ptr().add(off) as *const AtomicU32) }
    }

    fn producer(&self) -> &AtomicU32 {
        self.word(self.map.producer)
    }

    fn consumer(&self) -> &AtomicU32 {
        self.word(self.map.consumer)
    }

    fn slot(&self, idx: u32) -> *mut T {
        let i = (idx & self.mask) as usize;
        // SAFETY: `i < size` and the mapping holds `size` descriptors of `T`
        // from offset `desc` (its length was computed that way).
        unsafe { (self.map.base.as_ptr().add(self.map.desc) as *mut T).add(i) }
    }

    /// The kernel asks to be woken up (XDP_RING_NEED_WAKEUP in the flags word).
    #[inline]
    pub(super) fn needs_wakeup(&self) -> bool {
        self.word(self.map.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // ----- producer side (fill, TX) -----

    /// Free slots, reloading the kernel's consumer index when the cached view is short of `want`.
    #[inline]
    pub(super) fn free_slots(&mut self, want: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Write one descriptor; false when the ring is full. Visible to the
    /// kernel only after [`Ring::commit`].
    #[inline]
    pub(super) fn push(&mut self, v: T) -> bool {
        if self.free_slots(1) == 0 {
            return false;
        }
        // SAFETY: the slot is between the consumer and producer+size, so the
        // kernel does not read it until we publish the producer index.
        unsafe { self.slot(self.cached_prod).write(v) };
        self.cached_prod = self.cached_prod.wrapping_add(1);
        true
    }

    /// Publish the descriptors written by [`Ring::push`].
    #[inline]
    pub(super) fn commit(&mut self) {
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    // ----- consumer side (RX, completion) -----

    /// Take one descriptor, or None when the ring is empty. The slot is given
    /// back to the kernel by [`Ring::release`].
    #[inline]
    pub(super) fn pop(&mut self) -> Option<T> {
        if self.cached_prod == self.cached_cons {
            self.cached_prod = self.producer().load(Ordering::Acquire);
            if self.cached_prod == self.cached_cons {
                return None;
            }
        }
        // SAFETY: the slot is between our consumer index and the producer index
        // the kernel published (Acquire above), so it holds a written descriptor.
        let v = unsafe { self.slot(self.cached_cons).read() };
        self.cached_cons = self.cached_cons.wrapping_add(1);
        Some(v)
    }

    /// Give the slots read by [`Ring::pop`] back to the kernel.
    #[inline]
    pub(super) fn release(&mut self) {
        self.consumer().store(self.cached_cons, Ordering::Release);
    }
}

impl<T: Copy> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` describe a mapping made by `mmap` for this ring
        // and nothing else refers to it once the ring is dropped.
        unsafe { libc::munmap(self.map.base.as_ptr().cast(), self.map.len) };
    }
}
