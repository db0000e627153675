//! `common`: everything l4lb knows about packets and forwarding that needs no I/O.
//!
//! - [`wire`]: zero-copy views over headers (one file per header) and builders for
//!   the headers l4lb writes.
//! - [`checksum`]: the internet checksum and RFC 1624 incremental updates.
//! - [`flow`]: flow keys (5-tuples).
//! - [`hash`]: the stable, documented hash every instance agrees on, and a fast local hash.
//! - [`maglev`]: weighted Maglev lookup tables.
//! - [`config`]: the TOML configuration, validated whole, every error with its place.
//! - [`snapshot`]: the immutable forwarding snapshot the data plane reads.
//! - [`tunnel`]: prebuilt GRE/IPIP outer headers, one per backend, patched per packet.
//!
//! Invariants: no I/O, no unsafe code, no global state.
#![forbid(unsafe_code)]

pub mod checksum;
pub mod config;
pub mod flow;
pub mod hash;
pub mod maglev;
pub mod snapshot;
pub mod tunnel;
pub mod wire;
