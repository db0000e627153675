//! The EAL: initialised once per process, cleaned up when the last handle goes.
//!
//! Workers are Rust threads, not EAL lcores launched with `rte_eal_remote_launch`.
//! DPDK 22.11 allows that: any thread may poll an ethdev queue as long as no two
//! threads poll the same queue at once (each [`DpdkQueue`](super::DpdkQueue) is owned
//! by one worker), and mempools are thread-safe. What a non-EAL thread lacks is an
//! lcore id, and without one the mempool's per-lcore cache is bypassed (every mbuf
//! alloc and free goes to the pool's shared ring). [`Eal::register_thread`] gives the
//! calling thread a free lcore id (`rte_thread_register`) so that it gets its own
//! cache; unregistered threads are still correct, only slower. See `docs/DPDK.md`.

use std::ffi::{CString, c_char, c_int};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{DpdkError, Errno, sys};

/// Set once `rte_eal_init` has been called: DPDK cannot initialise twice in a process.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Set when some DPDK memory had to be left allocated at teardown (an [`Mbuf`](super::Mbuf)
/// was still alive when its pool's port went away). Then `rte_eal_cleanup`, which
/// unmaps DPDK's memory, is skipped so that the survivors stay valid until exit.
pub(super) static MEMORY_LEAKED: AtomicBool = AtomicBool::new(false);

struct EalInner {
    /// The argument strings given to `rte_eal_init`, kept for the life of the EAL.
    _args: Vec<CString>,
}

impl Drop for EalInner {
    fn drop(&mut self) {
        if MEMORY_LEAKED.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: this is the last handle to the EAL: every `DpdkPort`, `DpdkQueue` and `LcoreThread`
        // holds an `Eal` clone, so all ports are closed and their pools freed; no mbuf survives (otherwise
        // MEMORY_LEAKED would be set). Nothing in this process uses DPDK memory any more.
        unsafe {
            sys::rte_eal_cleanup();
        }
    }
}

/// A handle to the initialised EAL. Clones share it; the EAL is cleaned up
/// (`rte_eal_cleanup`) when the last clone, port, queue and registered thread are gone.
#[derive(Clone)]
pub struct Eal {
    _inner: Arc<EalInner>,
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eal").finish_non_exhaustive()
    }
}

impl Eal {
    /// Initialises DPDK's EAL with `args` (without a program name: `["--no-pci",
    /// "--no-huge", "--vdev=net_null0"]`), as `[io.dpdk] eal_args` gives them.
    ///
    /// Once per process: a second call fails with [`DpdkError::AlreadyInitialized`],
    /// even after the first EAL was cleaned up or failed to start. Note that the EAL
    /// pins the calling thread to the main lcore's CPU (`-l`/`--main-lcore`).
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        let mut cargs = Vec::with_capacity(args.len() + 1);
        cargs.push(CString::from(c"l4lb"));
        for a in args {
            cargs.push(CString::new(a.as_str()).map_err(|_| DpdkError::BadArgument(a.clone()))?);
        }
        if INITIALIZED.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::AlreadyInitialized);
        }
        // rte_eal_init may permute argv: give it a scratch array of pointers into `cargs`.
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr().cast_mut()).collect();
        let argc = c_int::try_from(argv.len()).map_err(|_| DpdkError::BadArgument("too many arguments".into()))?;
        // SAFETY: argv holds argc pointers to NUL-terminated strings that live in `cargs`, which we keep
        // for the EAL's lifetime (the EAL may keep pointers to some of them). INITIALIZED guarantees this is
        // the only call in the process. rte_eal_init only reorders the pointer array, never writes the strings.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::EalInit(Errno::last()));
        }
        Ok(Eal { _inner: Arc::new(EalInner { _args: cargs }) })
    }

    /// Number of ethdev ports the EAL found (probed PCI devices and `--vdev`s).
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised (we hold a handle); the call only reads ethdev's port table.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// The port id of the ethdev named `name` (e.g. `net_pcap0`, or a PCI address).
    pub fn port_by_name(&self, name: &str) -> Result<u16, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_owned()))?;
        let mut port = 0u16;
        // SAFETY: the EAL is initialised; `cname` is NUL-terminated and `port` is a valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut port) };
        if ret < 0 { Err(DpdkError::NoSuchDevice(name.to_owned())) } else { Ok(port) }
    }

    /// Gives the calling thread an lcore id (`rte_thread_register`) so that mempool
    /// operations use a per-lcore cache; released when the returned guard drops.
    /// Pin the thread to its CPU before calling: DPDK records the affinity it finds.
    /// A thread that already is an EAL lcore (the thread that called [`Eal::init`])
    /// gets a guard that changes nothing.
    pub fn register_thread(&self) -> Result<LcoreThread, DpdkError> {
        if let Some(lcore) = current_lcore() {
            return Ok(LcoreThread { _eal: self.clone(), lcore, registered: false, _not_send: PhantomData });
        }
        // SAFETY: the EAL is initialised (we hold a handle) and this thread has no lcore id yet.
        let ret = unsafe { sys::rte_thread_register() };
        if ret < 0 {
            return Err(DpdkError::ThreadRegister(Errno::last()));
        }
        let lcore = current_lcore().ok_or(DpdkError::ThreadRegister(Errno(0)))?;
        Ok(LcoreThread { _eal: self.clone(), lcore, registered: true, _not_send: PhantomData })
    }
}

/// Whether a port's teardown found mbufs still in use and had to keep their pool
/// (and so skip `rte_eal_cleanup`). `false` after a clean shutdown.
pub fn memory_leaked() -> bool {
    MEMORY_LEAKED.load(Ordering::Acquire)
}

/// The calling thread's lcore id, if it has one (EAL lcore or registered thread).
pub fn current_lcore() -> Option<u32> {
    // SAFETY: `l4lb_lcore_id` reads a thread-local variable; valid in any thread, before or after init.
    let id = unsafe { sys::l4lb_lcore_id() };
    (id < sys::RTE_MAX_LCORE).then_some(id)
}

/// A thread's lcore registration: unregisters on drop. Bound to its thread (`!Send`).
#[derive(Debug)]
pub struct LcoreThread {
    _eal: Eal,
    lcore: u32,
    registered: bool,
    _not_send: PhantomData<*const ()>,
}

impl LcoreThread {
    /// The lcore id this thread now runs as.
    pub fn lcore_id(&self) -> u32 {
        self.lcore
    }
}

impl Drop for LcoreThread {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: this guard is !Send, so we are on the thread that registered; it unregisters exactly once.
            // Mbufs this thread left in its per-lcore caches stay in the pool (the caches belong to the pool).
            unsafe { sys::rte_thread_unregister() };
        }
    }
}
