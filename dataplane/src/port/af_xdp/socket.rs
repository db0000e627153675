//! Raw AF_XDP: the UMEM area and one XSK socket with its four rings, through
//! `libc` system calls (socket, setsockopt, getsockopt, mmap, bind).
//!
//! Only start-up code lives here; the per-packet path uses the rings from
//! [`super::ring`] and the kick helpers at the bottom (one syscall per burst at
//! most, and only when the kernel asks for it).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use super::ring::{Ring, RingMap};
use super::{FRAME_SIZE, UMEM_HEADROOM};

/// A failed system call: which one, and the OS error.
pub(super) type SysResult<T> = Result<T, (&'static str, io::Error)>;

fn last(call: &'static str) -> (&'static str, io::Error) {
    (call, io::Error::last_os_error())
}

/// The packet memory shared with the kernel: `frames` chunks of [`FRAME_SIZE`] bytes.
pub(super) struct Umem {
    pub base: NonNull<u8>,
    pub len: usize,
}

// SAFETY: the mapping is owned by this value; moving it between threads moves
// ownership (the worker that owns the queue is the only user).
unsafe impl Send for Umem {}

impl Umem {
    pub(super) fn new(frames: u32) -> SysResult<Umem> {
        let len = frames as usize * FRAME_SIZE;
        // SAFETY: an anonymous private mapping with no address hint; the result
        // is checked against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last("mmap(umem)"));
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or(("mmap(umem)", io::Error::other("null mapping")))?;
        Ok(Umem { base, len })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are the mapping made in `Umem::new`; the owner
        // only drops (rather than leaks) the UMEM when no frame is lent out.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// One bound XSK socket and its rings.
pub(super) struct XskSocket {
    pub fd: OwnedFd,
    pub fill: Ring<u64>,
    pub comp: Ring<u64>,
    pub rx: Ring<libc::xdp_desc>,
    pub tx: Ring<libc::xdp_desc>,
}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, val: &T, call: &'static str) -> SysResult<()> {
    // SAFETY: `val` points to a live `T` of `size_of::<T>()` bytes, which is the
    // layout the kernel expects for `opt` (types from linux/if_xdp.h via libc).
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_XDP, opt, (val as *const T).cast(), size_of::<T>() as libc::socklen_t)
    };
    if rc != 0 { Err(last(call)) } else { Ok(()) }
}

fn map_ring<T: Copy>(
    fd: RawFd,
    off: &libc::xdp_ring_offset,
    size: u32,
    pgoff: i64,
    call: &'static str,
) -> SysResult<Ring<T>> {
    let len = off.desc as usize + size as usize * size_of::<T>();
    // SAFETY: maps the ring the kernel created for this socket (`pgoff` selects
    // which); the result is checked against MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            pgoff as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(last(call));
    }
    let base = NonNull::new(p.cast::<u8>()).ok_or((call, io::Error::other("null mapping")))?;
    let map = RingMap {
        base,
        len,
        producer: off.producer as usize,
        consumer: off.consumer as usize,
        flags: off.flags as usize,
        desc: off.desc as usize,
    };
    Ok(Ring::new(map, size))
}

impl XskSocket {
    /// Create a socket on `umem`, bind it to (`ifindex`, `queue`) with
    /// `bind_flags` (XDP_ZEROCOPY or XDP_COPY, plus XDP_USE_NEED_WAKEUP). The
    /// fill ring has `fill_size` slots, the other three `ring_size`.
    pub(super) fn create(
        umem: &Umem,
        ifindex: u32,
        queue: u32,
        fill_size: u32,
        ring_size: u32,
        bind_flags: u16,
    ) -> SysResult<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(last("socket(AF_XDP)"));
        }
        // SAFETY: `raw` is a fresh descriptor we own and nothing else closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let r = fd.as_raw_fd();

        let reg = libc::xdp_umem_reg {
            addr: umem.base.as_ptr() as u64,
            len: umem.len as u64,
            chunk_size: super::FRAME_SIZE as u32,
            headroom: UMEM_HEADROOM as u32,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(r, libc::XDP_UMEM_REG, &reg, "setsockopt(XDP_UMEM_REG)")?;
        setsockopt(r, libc::XDP_UMEM_FILL_RING, &fill_size, "setsockopt(XDP_UMEM_FILL_RING)")?;
        setsockopt(r, libc::XDP_UMEM_COMPLETION_RING, &ring_size, "setsockopt(XDP_UMEM_COMPLETION_RING)")?;
        setsockopt(r, libc::XDP_RX_RING, &ring_size, "setsockopt(XDP_RX_RING)")?;
        setsockopt(r, libc::XDP_TX_RING, &ring_size, "setsockopt(XDP_TX_RING)")?;

        // SAFETY: an all-zero `xdp_mmap_offsets` is a valid value (plain integers).
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut optlen = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` and `optlen` are live and sized for XDP_MMAP_OFFSETS.
        let rc = unsafe {
            libc::getsockopt(
                r,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut optlen,
            )
        };
        if rc != 0 {
            return Err(last("getsockopt(XDP_MMAP_OFFSETS)"));
        }
        if optlen as usize != size_of::<libc::xdp_mmap_offsets>() {
            return Err(("getsockopt(XDP_MMAP_OFFSETS)", io::Error::other("kernel without ring flags (< 5.4)")));
        }

        let fill = map_ring::<u64>(r, &off.fr, fill_size, libc::XDP_UMEM_PGOFF_FILL_RING as i64, "mmap(fill ring)")?;
        let comp = map_ring::<u64>(
            r,
            &off.cr,
            ring_size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING as i64,
            "mmap(completion ring)",
        )?;
        let rx = map_ring::<libc::xdp_desc>(r, &off.rx, ring_size, libc::XDP_PGOFF_RX_RING, "mmap(rx ring)")?;
        let tx = map_ring::<libc::xdp_desc>(r, &off.tx, ring_size, libc::XDP_PGOFF_TX_RING, "mmap(tx ring)")?;

        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: bind_flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a live sockaddr_xdp and its size is passed with it.
        let rc = unsafe {
            libc::bind(r, (&sa as *const libc::sockaddr_xdp).cast(), size_of::<libc::sockaddr_xdp>() as libc::socklen_t)
        };
        if rc != 0 {
            return Err(last("bind(AF_XDP)"));
        }
        Ok(XskSocket { fd, fill, comp, rx, tx })
    }

    /// Whether the bound socket runs in zero-copy mode (XDP_OPTIONS).
    pub(super) fn is_zero_copy(&self) -> bool {
        let mut o = libc::xdp_options { flags: 0 };
        let mut optlen = size_of::<libc::xdp_options>() as libc::socklen_t;
        // SAFETY: `o` and `optlen` are live and sized for XDP_OPTIONS.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                (&mut o as *mut libc::xdp_options).cast(),
                &mut optlen,
            )
        };
        rc == 0 && o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0
    }

    /// Kernel-side counters (XDP_STATISTICS): drops the kernel saw before us.
    pub(super) fn kernel_stats(&self) -> io::Result<libc::xdp_statistics> {
        // SAFETY: an all-zero `xdp_statistics` is a valid value (plain integers).
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut optlen = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `s` and `optlen` are live and sized for XDP_STATISTICS.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut s as *mut libc::xdp_statistics).cast(),
                &mut optlen,
            )
        };
        if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(s) }
    }

    /// Ask the kernel to send what the TX ring holds (copy mode and drivers
    /// that set XDP_RING_NEED_WAKEUP). Transient errors are the kernel saying
    /// "busy, try later": the descriptors stay on the ring for the next kick.
    #[inline]
    pub(super) fn kick_tx(&self) {
        // SAFETY: sendto with no buffer and no address is the documented AF_XDP
        // TX kick; MSG_DONTWAIT keeps it from blocking.
        unsafe { libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    }

    /// Wake the driver to take fill-ring buffers (when it set XDP_RING_NEED_WAKEUP).
    #[inline]
    pub(super) fn kick_rx(&self) {
        // SAFETY: recvfrom with no buffer and no address is the documented AF_XDP
        // RX wake-up; MSG_DONTWAIT keeps it from blocking.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }
}
