//! Thin wrappers over the system calls the AF_PACKET port needs.
//!
//! Every `unsafe` block of the port that talks to the kernel is here, each with its
//! reason; the ring walkers (`rx.rs`, `tx.rs`) only read and write mapped memory.

use std::ffi::CString;
use std::io;
use std::mem::{MaybeUninit, size_of};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `sockaddr_ll` want it.
pub(super) const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// `socket(AF_PACKET, SOCK_RAW, 0)`: protocol 0 so that nothing is queued before the
/// rings exist; `bind` sets the real protocol.
pub(super) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with constant arguments; the returned descriptor is
    // checked before it is wrapped, and wrapped exactly once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, SOL_PACKET, name, &value)`.
pub(super) fn set_packet_opt<T: Copy>(fd: &OwnedFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of exactly `size_of::<T>()` bytes, which
    // is what the kernel reads; the descriptor is open for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `getsockopt(fd, SOL_PACKET, name)` for a plain-data `T` (all-zero is a valid `T`).
pub(super) fn get_packet_opt<T: Copy>(fd: &OwnedFd, name: libc::c_int) -> io::Result<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `value`, which has room for
    // them; `len` is a valid in/out pointer.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_PACKET, name, value.as_mut_ptr().cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the buffer started zeroed and the callers only use integer structs, for
    // which any byte pattern (including a partial kernel write) is a valid value.
    Ok(unsafe { value.assume_init() })
}

/// The interface index of `name` in the calling thread's network namespace.
pub(super) fn if_index(name: &str) -> Option<u32> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// `bind` the socket to `ifindex` for every protocol (`ETH_P_ALL`), or for none
/// (`protocol = 0`: a transmit-only socket that receives nothing).
pub(super) fn bind(fd: &OwnedFd, ifindex: u32, protocol_be: u16) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is plain data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol_be;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid `sockaddr_ll` and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The interface's MTU (`SIOCGIFMTU`), asked through `fd` (so in its namespace).
pub(super) fn mtu(fd: &OwnedFd, name: &str) -> io::Result<u32> {
    // SAFETY: `ifreq` is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads the NUL-terminated name and writes `ifru_mtu` inside
    // `ifr`, which lives across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr as *mut libc::ifreq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the `ifru_mtu` member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_mtu }.max(0) as u32)
}

/// Ask the kernel to transmit every frame marked `TP_STATUS_SEND_REQUEST` in the TX
/// ring; does not wait for completion.
#[inline]
pub(super) fn kick_tx(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: a zero-length send with null buffer and address is how the TX ring is
    // flushed (packet_mmap.txt); the kernel reads nothing through the null pointers.
    let rc = unsafe { libc::sendto(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Wait until the socket is readable (a filled RX block) or `timeout_ms` passes.
pub(super) fn poll_readable(fd: &OwnedFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, count 1, alive across the call.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
    }
    Ok(rc > 0 && p.revents & libc::POLLIN != 0)
}

/// A shared mapping of a packet socket's rings, unmapped on drop.
pub(super) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mmap {
    /// Map `len` bytes of the socket's rings (RX ring first, then TX ring).
    pub(super) fn rings(fd: &OwnedFd, len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh shared mapping of the socket's ring memory; the kernel
        // checks `len` against the configured rings.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mmap { ptr, len })
    }

    #[inline]
    pub(super) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; nothing refers to the
        // mapping any more (the queue leaks the mapping instead of dropping it while
        // buffers are outstanding).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Interface counters, as the kernel keeps them (`ip -s link`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// The head of `struct rtnl_link_stats` (linux/if_link.h), which glibc's
/// `getifaddrs` puts behind `ifa_data` for `AF_PACKET` entries.
#[repr(C)]
#[derive(Clone, Copy)]
struct RtnlLinkStatsHead {
    rx_packets: u32,
    tx_packets: u32,
    rx_bytes: u32,
    tx_bytes: u32,
    rx_errors: u32,
    tx_errors: u32,
    rx_dropped: u32,
    tx_dropped: u32,
}

/// Counters of `interface` in the calling thread's network namespace (`getifaddrs`,
/// which asks over netlink). 32-bit counters: compare with `wrapping_sub`.
pub(super) fn link_stats(interface: &str) -> io::Result<Option<LinkStats>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out pointer; on success the list is freed below.
    if unsafe { libc::getifaddrs(&mut head) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() || ifa.ifa_data.is_null() {
            continue;
        }
        // SAFETY: non-null `ifa_addr` points to a sockaddr of at least its family field.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if i32::from(family) != libc::AF_PACKET {
            continue;
        }
        // SAFETY: `ifa_name` is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != interface.as_bytes() {
            continue;
        }
        // SAFETY: for AF_PACKET entries glibc points `ifa_data` at a `struct
        // rtnl_link_stats`, whose first eight fields are `RtnlLinkStatsHead`;
        // read_unaligned avoids any alignment assumption.
        let s = unsafe { std::ptr::read_unaligned(ifa.ifa_data.cast::<RtnlLinkStatsHead>()) };
        found = Some(LinkStats {
            rx_packets: u64::from(s.rx_packets),
            tx_packets: u64::from(s.tx_packets),
            rx_bytes: u64::from(s.rx_bytes),
            tx_bytes: u64::from(s.tx_bytes),
            rx_dropped: u64::from(s.rx_dropped),
            tx_dropped: u64::from(s.tx_dropped),
        });
        let _ = (s.rx_errors, s.tx_errors);
        break;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}
