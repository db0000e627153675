//! `dataplane`: the per-packet path of l4lb.
//!
//! - [`port`]: burst I/O (`rx_burst`/`tx_burst`) over packet buffers worked on in place;
//!   one file per backend (memory, pcap, AF_PACKET, AF_XDP, DPDK).
//! - [`flow_table`]: the per-worker connection table (no locks: one per worker).
//! - [`pipeline`]: the run-to-completion stages, one file per stage in packet order.
//! - [`worker`]: the poll loop tying a port, a pipeline and the snapshot together.
//! - [`snapshot_cell`]: RCU-style publication of forwarding snapshots.
//!
//! Unsafe code is allowed only in the I/O backends under `port/`.

pub mod counters;
pub mod flow_table;
pub mod pipeline;
pub mod port;
pub mod rss;
pub mod snapshot_cell;
pub mod worker;
