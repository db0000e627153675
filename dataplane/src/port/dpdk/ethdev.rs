//! [`DpdkPort`]: an ethdev set up for l4lb and started.
//!
//! One RX/TX queue pair per worker; RSS over IPv4/IPv6 TCP/UDP (masked by what the
//! device can hash) when there is more than one queue; one mbuf pool per queue, so
//! a worker's receive path only touches its own pool. The port is stopped and closed,
//! and its pools freed, when the [`DpdkPort`] and all its [`DpdkQueue`]s are dropped.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::eal::MEMORY_LEAKED;
use super::{DpdkError, DpdkQueue, Eal, Errno, check, sys};
use crate::port::PortStats;

/// Per-port settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DpdkPortConfig {
    /// RX/TX queue pairs: one per worker.
    pub queues: u16,
    /// Mbufs in each queue's pool (DPDK suggests 2^n - 1, e.g. 8191). Must exceed
    /// the RX ring size, which the driver keeps filled.
    pub mbufs_per_queue: u32,
    /// Descriptors per RX and per TX ring (the driver may round it).
    pub ring_size: u16,
}

impl Default for DpdkPortConfig {
    fn default() -> Self {
        DpdkPortConfig { queues: 1, mbufs_per_queue: 8191, ring_size: 1024 }
    }
}

/// A mempool pointer. Mempools are thread-safe (multi-producer/multi-consumer rings).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pool(pub(super) NonNull<sys::rte_mempool>);

// SAFETY: DPDK mempool get/put operations are safe from any thread (the default ring ops are MP/MC), and
// the pointer is only freed by `PortShared::drop`, after every user of it is gone.
unsafe impl Send for Pool {}
// SAFETY: as above; shared references only ever pass the pointer to thread-safe DPDK functions.
unsafe impl Sync for Pool {}

/// What the port and its queues share; its drop tears the port down.
pub(super) struct PortShared {
    pub(super) port_id: u16,
    pub(super) pools: Vec<Pool>,
    /// Keeps the EAL alive until the port is closed.
    _eal: Eal,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        // SAFETY: the last handle to this port is gone, so no thread polls its queues any more. Stopping and
        // closing a started port we configured is valid; errors (e.g. a vdev that cannot stop) are harmless here.
        unsafe {
            sys::rte_eth_dev_stop(self.port_id);
            sys::rte_eth_dev_close(self.port_id);
        }
        for pool in &self.pools {
            // SAFETY: the pool pointer came from rte_pktmbuf_pool_create and has not been freed.
            let in_use = unsafe { sys::rte_mempool_in_use_count(pool.0.as_ptr()) };
            if in_use == 0 {
                // SAFETY: the port is closed (its driver released its mbufs) and no mbuf of this pool is
                // allocated, so no `Mbuf` can refer to it and no queue can allocate from it any more.
                unsafe { sys::rte_mempool_free(pool.0.as_ptr()) };
            } else {
                // Some `Mbuf` (or a driver that did not release its ring) still holds buffers from this
                // pool: keep the pool, and the EAL's memory, for the rest of the process.
                MEMORY_LEAKED.store(true, Ordering::Release);
            }
        }
    }
}

/// A configured and started ethdev.
pub struct DpdkPort {
    shared: Arc<PortShared>,
    queues: u16,
    rss_hf: u64,
    taken: bool,
}

impl std::fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkPort")
            .field("port", &self.shared.port_id)
            .field("queues", &self.queues)
            .field("rss_hf", &format_args!("{:#x}", self.rss_hf))
            .finish()
    }
}

/// Pool cache: DPDK requires `cache <= RTE_MEMPOOL_CACHE_MAX_SIZE` and `cache * 1.5 <= n`.
fn pool_cache_size(n: u32) -> u32 {
    (n / 4).min(256).min(sys::RTE_MEMPOOL_CACHE_MAX_SIZE)
}

impl DpdkPort {
    /// Configures port `port_id` with `cfg.queues` RX/TX queue pairs, one mbuf pool
    /// per queue, and starts it.
    ///
    /// RSS hashes IPv4/IPv6 and their TCP/UDP ports (`RTE_ETH_RSS_IP | TCP | UDP`,
    /// masked by the device's `flow_type_rss_offloads`); with one queue, or a device
    /// that cannot hash, RSS stays off. Promiscuous mode is turned on where supported
    /// (VIP traffic may be addressed to a MAC other than the NIC's).
    pub fn configure(eal: &Eal, port_id: u16, cfg: DpdkPortConfig) -> Result<DpdkPort, DpdkError> {
        // SAFETY: the EAL is initialised (we hold a handle); the call only reads ethdev's port table.
        if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(DpdkError::InvalidPort(port_id));
        }
        if cfg.queues == 0 {
            return Err(DpdkError::Config { port: port_id, what: "at least one queue is needed" });
        }
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port; `info` is a writable, correctly laid-out rte_eth_dev_info.
        check(port_id, "rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) })?;
        if cfg.queues > info.max_rx_queues || cfg.queues > info.max_tx_queues {
            return Err(DpdkError::TooManyQueues {
                port: port_id,
                requested: cfg.queues,
                max_rx: info.max_rx_queues,
                max_tx: info.max_tx_queues,
            });
        }

        let mut conf = sys::rte_eth_conf::default();
        // SAFETY: a pure function of compile-time constants.
        let rss_hf = unsafe { sys::l4lb_rss_hf_ip_tcp_udp() } & info.flow_type_rss_offloads;
        let rss_hf = if cfg.queues > 1 { rss_hf } else { 0 };
        if rss_hf != 0 {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            // rss_key NULL: the driver's default key.
        }
        // SAFETY: valid, stopped port; `conf` is fully initialised (zeroed defaults plus the RSS fields).
        check(port_id, "rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(port_id, cfg.queues, cfg.queues, &conf)
        })?;

        let (mut nb_rxd, mut nb_txd) = (cfg.ring_size, cfg.ring_size);
        // SAFETY: configured port; both pointers are valid u16 out-parameters.
        check(port_id, "rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut nb_rxd, &mut nb_txd)
        })?;
        if cfg.mbufs_per_queue <= u32::from(nb_rxd) {
            return Err(DpdkError::Config { port: port_id, what: "mbufs per queue must exceed the RX ring size" });
        }

        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let socket = if socket < 0 { sys::SOCKET_ID_ANY } else { socket };

        // From here on, PortShared's drop stops and closes the port and frees the pools made so far.
        let mut shared = PortShared { port_id, pools: Vec::with_capacity(usize::from(cfg.queues)), _eal: eal.clone() };
        for q in 0..cfg.queues {
            let name = format!("l4lb_p{port_id}_q{q}");
            let cname = CString::new(name.as_str()).map_err(|_| DpdkError::BadArgument(name.clone()))?;
            let data_room = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
            // SAFETY: EAL initialised; `cname` is NUL-terminated (DPDK copies it); the sizes respect the pool
            // constraints (cache <= max and <= n / 1.5; data room includes RTE_PKTMBUF_HEADROOM).
            let mp = unsafe {
                sys::rte_pktmbuf_pool_create(
                    cname.as_ptr(),
                    cfg.mbufs_per_queue,
                    pool_cache_size(cfg.mbufs_per_queue),
                    0,
                    data_room,
                    socket,
                )
            };
            let pool = NonNull::new(mp).ok_or_else(|| DpdkError::Mempool { name, errno: Errno::last() })?;
            shared.pools.push(Pool(pool));
            // SAFETY: configured port, q < configured queue count; NULL conf = the driver's defaults; the pool
            // outlives the queue (it is freed only after the port is closed).
            check(port_id, "rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(port_id, q, nb_rxd, socket as u32, std::ptr::null(), pool.as_ptr())
            })?;
            // SAFETY: as above, for the TX queue.
            check(port_id, "rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(port_id, q, nb_txd, socket as u32, std::ptr::null())
            })?;
        }
        // SAFETY: configured port. Not every device has a promiscuous mode (vdevs often do not): the result
        // is ignored on purpose.
        unsafe { sys::rte_eth_promiscuous_enable(port_id) };
        // SAFETY: configured port with all queues set up.
        check(port_id, "rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(port_id) })?;

        Ok(DpdkPort { shared: Arc::new(shared), queues: cfg.queues, rss_hf, taken: false })
    }

    /// The ethdev port id.
    pub fn port_id(&self) -> u16 {
        self.shared.port_id
    }

    /// Number of RX/TX queue pairs.
    pub fn queue_count(&self) -> u16 {
        self.queues
    }

    /// The RSS hash functions in use (`RTE_ETH_RSS_*` bits), 0 when RSS is off.
    pub fn rss_hf(&self) -> u64 {
        self.rss_hf
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port; `addr` is a writable rte_ether_addr.
        check(self.port_id(), "rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(self.port_id(), &mut addr) })?;
        Ok(addr.addr_bytes)
    }

    /// One [`DpdkQueue`] per queue pair, each receiving and transmitting on this
    /// port. Once per port: the queues are the workers' to own.
    pub fn take_queues(&mut self) -> Result<Vec<DpdkQueue>, DpdkError> {
        if std::mem::replace(&mut self.taken, true) {
            return Err(DpdkError::QueuesTaken(self.port_id()));
        }
        Ok((0..self.queues).map(|q| DpdkQueue::new(self.shared.clone(), self.shared.clone(), q)).collect())
    }

    /// Like [`take_queues`](Self::take_queues), but queue `i` transmits on queue `i`
    /// of `tx` (e.g. receive from a `net_pcap` device, send to a `net_null` one). Both
    /// ports must have the same number of queues; both ports' queues are taken.
    pub fn take_queues_to(&mut self, tx: &mut DpdkPort) -> Result<Vec<DpdkQueue>, DpdkError> {
        if self.queues != tx.queues {
            return Err(DpdkError::Config { port: tx.port_id(), what: "RX and TX ports need the same queue count" });
        }
        if self.taken {
            return Err(DpdkError::QueuesTaken(self.port_id()));
        }
        if std::mem::replace(&mut tx.taken, true) {
            return Err(DpdkError::QueuesTaken(tx.port_id()));
        }
        self.taken = true;
        Ok((0..self.queues).map(|q| DpdkQueue::new(self.shared.clone(), tx.shared.clone(), q)).collect())
    }

    /// Make this port (a TAP device, `net_tap`) the host exception path of `queues`:
    /// queue `i` sends the frames its pipeline gives the host to this port's queue
    /// `i` (into the kernel) and puts what the kernel sends on that queue on the wire.
    /// This port needs as many queues as `queues`; its queues are taken.
    pub fn attach_host(&mut self, queues: &mut [DpdkQueue]) -> Result<(), DpdkError> {
        if usize::from(self.queues) != queues.len() {
            return Err(DpdkError::Config { port: self.port_id(), what: "the host port needs one queue per worker" });
        }
        if std::mem::replace(&mut self.taken, true) {
            return Err(DpdkError::QueuesTaken(self.port_id()));
        }
        for q in queues {
            q.set_host(self.shared.clone());
        }
        Ok(())
    }

    /// The device's own counters (`rte_eth_stats_get`): port totals, and per queue
    /// where the driver keeps them (the first `RTE_ETHDEV_QUEUE_STAT_CNTRS` queues).
    pub fn device_stats(&self) -> Result<DeviceStats, DpdkError> {
        device_stats(self.port_id(), self.queues)
    }
}

/// Counters read from the device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Port totals. `rx_missed` = `imissed` (ring full) + `rx_nombuf` (pool empty);
    /// `tx_dropped` = `oerrors`.
    pub total: PortStats,
    /// Per queue: packets and bytes (`q_ipackets`, `q_ibytes`, `q_opackets`,
    /// `q_obytes`); `rx_missed` = `q_errors`.
    pub queues: Vec<PortStats>,
    /// Frames with receive errors (`ierrors`).
    pub rx_errors: u64,
}

pub(super) fn device_stats(port_id: u16, queues: u16) -> Result<DeviceStats, DpdkError> {
    let mut s = sys::rte_eth_stats::default();
    // SAFETY: valid port (held open by the caller's PortShared); `s` is a writable rte_eth_stats.
    check(port_id, "rte_eth_stats_get", unsafe { sys::rte_eth_stats_get(port_id, &mut s) })?;
    let total = PortStats {
        rx_packets: s.ipackets,
        rx_bytes: s.ibytes,
        tx_packets: s.opackets,
        tx_bytes: s.obytes,
        tx_dropped: s.oerrors,
        host_packets: 0,
        host_dropped: 0,
        rx_missed: s.imissed + s.rx_nombuf,
    };
    let n = usize::from(queues).min(sys::RTE_ETHDEV_QUEUE_STAT_CNTRS as usize);
    let queues = (0..n)
        .map(|q| PortStats {
            rx_packets: s.q_ipackets[q],
            rx_bytes: s.q_ibytes[q],
            tx_packets: s.q_opackets[q],
            tx_bytes: s.q_obytes[q],
            tx_dropped: 0,
            host_packets: 0,
            host_dropped: 0,
            rx_missed: s.q_errors[q],
        })
        .collect();
    Ok(DeviceStats { total, queues, rx_errors: s.ierrors })
}

// The port's shared state moves into worker threads with their queues.
const _: fn() = || {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<PortShared>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_cache_respects_dpdk_limits() {
        for n in [1u32, 63, 255, 1023, 2047, 8191, 65535] {
            let c = pool_cache_size(n);
            assert!(c <= sys::RTE_MEMPOOL_CACHE_MAX_SIZE);
            assert!(f64::from(c) * 1.5 <= f64::from(n), "n {n} cache {c}");
        }
        assert_eq!(pool_cache_size(8191), 256);
    }
}
