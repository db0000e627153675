//! The DPDK port: l4lb on DPDK-bound NICs and DPDK virtual devices.
//!
//! - [`eal`]: [`Eal`], the once-per-process Environment Abstraction Layer, and
//!   [`LcoreThread`], the registration that gives a worker thread an lcore id.
//! - [`ethdev`]: [`DpdkPort`], an ethdev configured with one RX/TX queue pair per
//!   worker, RSS over IP/TCP/UDP and one mbuf pool per queue.
//! - [`queue`]: [`DpdkQueue`], one queue pair owned by one worker: the [`Port`](super::Port).
//! - [`mbuf`]: [`Mbuf`], an owned `rte_mbuf` worked on in place: the [`PacketBuf`](super::PacketBuf).
//!
//! The raw bindings and the C shim for DPDK's inline functions are in the `dpdk-sys`
//! crate; this module is their only user and the only place (with `dpdk-sys`) where
//! DPDK is touched with `unsafe`. Design, lcore model and measurements: `docs/DPDK.md`.

#![allow(unsafe_code)]

pub mod eal;
pub mod ethdev;
pub mod mbuf;
pub mod queue;

use std::ffi::CStr;
use std::fmt;

pub use eal::{Eal, LcoreThread};
pub use ethdev::{DeviceStats, DpdkPort, DpdkPortConfig};
pub use mbuf::Mbuf;
pub use queue::{DpdkQueue, HostStats};

use dpdk_sys as sys;

// Every received mbuf must leave the pipeline the headroom it was promised.
const _: () = assert!(sys::RTE_PKTMBUF_HEADROOM as usize >= super::HEADROOM);

/// A DPDK error number (`rte_errno` or a negative return value), shown with `rte_strerror`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The current thread's `rte_errno`.
    pub fn last() -> Errno {
        // SAFETY: `l4lb_errno` reads the calling thread's `rte_errno` (a thread-local int); no preconditions.
        Errno(unsafe { sys::l4lb_errno() })
    }

    /// From a DPDK return value: negative values carry `-errno`.
    pub fn from_ret(ret: i32) -> Errno {
        Errno(ret.saturating_abs())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: `rte_strerror` accepts any value and returns a pointer to a NUL-terminated string,
        // either static or in a per-thread buffer that stays valid until this thread's next call; we copy
        // it out before returning.
        let msg = unsafe { CStr::from_ptr(sys::rte_strerror(self.0)) };
        write!(f, "{} (errno {})", msg.to_string_lossy(), self.0)
    }
}

/// Errors of the DPDK port (all on the control path: set-up, teardown, statistics).
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("dpdk: the EAL was already initialised in this process (rte_eal_init runs once per process)")]
    AlreadyInitialized,
    #[error("dpdk: EAL argument {0:?} contains a NUL byte")]
    BadArgument(String),
    #[error("dpdk: rte_eal_init failed: {0}")]
    EalInit(Errno),
    #[error("dpdk: no ethdev named {0:?} (is the --vdev/-a argument right?)")]
    NoSuchDevice(String),
    #[error("dpdk: port {0} does not exist")]
    InvalidPort(u16),
    #[error("dpdk: port {port}: {requested} queue pairs requested, the device has at most {max_rx} RX / {max_tx} TX")]
    TooManyQueues { port: u16, requested: u16, max_rx: u16, max_tx: u16 },
    #[error("dpdk: port {port}: {what}")]
    Config { port: u16, what: &'static str },
    #[error("dpdk: port {port}: {call} failed: {errno}")]
    Call { port: u16, call: &'static str, errno: Errno },
    #[error("dpdk: mempool {name}: rte_pktmbuf_pool_create failed: {errno}")]
    Mempool { name: String, errno: Errno },
    #[error("dpdk: port {0}: its queues were already handed out")]
    QueuesTaken(u16),
    #[error("dpdk: thread registration failed: {0}")]
    ThreadRegister(Errno),
}

/// Maps a DPDK return value (0 = success, negative = -errno) to a [`DpdkError::Call`].
fn check(port: u16, call: &'static str, ret: i32) -> Result<(), DpdkError> {
    if ret < 0 { Err(DpdkError::Call { port, call, errno: Errno::from_ret(ret) }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_reads_like_dpdk() {
        assert_eq!(Errno::from_ret(-22), Errno(22));
        assert!(Errno(22).to_string().contains("Invalid argument"), "{}", Errno(22));
        assert!(check(3, "rte_x", -95).is_err_and(|e| e.to_string().contains("port 3: rte_x failed")));
        assert!(check(3, "rte_x", 0).is_ok());
    }
}
