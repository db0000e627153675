//! Zero-copy views over the headers l4lb reads and writes, one file per header.
//!
//! Every view is `XxxPacket<T: AsRef<[u8]>>` in the style of smoltcp's `wire` module:
//!
//! - `new_checked(buf)` validates, once, every length the accessors rely on and returns a
//!   [`WireError`] otherwise. After that **no accessor can panic**, not even after a setter
//!   changed a length field: variable-length parts (options, payloads) are clamped to the buffer.
//! - `new_unchecked(buf)` skips the checks; accessors on a buffer that is too short panic
//!   (the name says so). Use it only on a buffer you just wrote or already checked.
//! - getters need `T: AsRef<[u8]>`, setters need `T: AsMut<[u8]>`; `into_inner` gives the buffer back.
//! - field offsets live in a private `mod field` in each file.
//!
//! Error convention: [`WireError::Truncated`] means the buffer is shorter than the header (or than
//! what a length field claims); the `Bad*` variants mean the header contradicts itself or the
//! protocol (bad version, header length below its minimum, ...). See `docs/WIRE.md`.
//!
//! `Repr` types (`Ipv4Repr`, `Ipv6Repr`, `GreRepr`) are plain values with `parse`/`emit` for
//! the headers l4lb builds; [`icmp_error`] builds ICMP errors in place around a quoted packet.

pub mod arp;
pub mod ethernet;
pub mod gre;
pub mod icmp_error;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ipv6_ext;
pub mod tcp;
pub mod udp;
pub mod vlan;

/// Why a buffer is not a valid header. Small and `Copy` so the data path can count drop
/// reasons without allocating or formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header, or than a length field says it should be.
    #[error("buffer truncated")]
    Truncated,
    /// The version field is not the one this view parses (IPv4 4, IPv6 6, GRE 0/1).
    #[error("bad version field")]
    BadVersion,
    /// An IPv4 IHL below 5 (20 bytes).
    #[error("bad header length")]
    BadHeaderLength,
    /// An IPv4 total length below the header length.
    #[error("bad total length")]
    BadTotalLength,
    /// An IPv6 payload length of 0 (jumbogram, RFC 2675, not supported).
    #[error("bad payload length")]
    BadPayloadLength,
    /// A TCP data offset below 5 (20 bytes).
    #[error("bad TCP data offset")]
    BadDataOffset,
    /// A UDP length below 8, or an ARP header with impossible address lengths.
    #[error("bad length field")]
    BadLength,
    /// An IPv6 extension-header chain that runs past the payload, or a hop-by-hop header that
    /// is not first.
    #[error("bad IPv6 extension header chain")]
    ExtensionChain,
    /// More than two 802.1Q / 802.1ad tags.
    #[error("too many VLAN tags")]
    TooManyTags,
    /// A valid header using a feature l4lb does not parse (GRE routing, RFC 1701).
    #[error("unsupported header feature")]
    Unsupported,
}

/// Result of parsing a header.
pub type Result<T> = core::result::Result<T, WireError>;

/// Big-endian `u16` at `at`. Panics only if `at + 2 > b.len()`, which `new_checked` rules out.
#[inline(always)]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Big-endian `u32` at `at`.
#[inline(always)]
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `N` bytes starting at `at`, as an array.
#[inline(always)]
pub(crate) fn read_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// `b[start..end]`, with `end` capped at the buffer end and `start` at `end`: never panics.
/// Variable-length parts (options, payloads) use it so that no accessor can panic even after
/// a setter changed a length field.
#[inline(always)]
pub(crate) fn clamped(b: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(b.len());
    &b[start.min(end)..end]
}

/// Mutable [`clamped`].
#[inline(always)]
pub(crate) fn clamped_mut(b: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(b.len());
    &mut b[start.min(end)..end]
}

#[inline(always)]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
