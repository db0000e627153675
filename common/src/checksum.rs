//! The internet checksum (RFC 1071) with IPv4/IPv6 pseudo-headers, and RFC 1624 incremental
//! updates for the rewrites l4lb makes (addresses, ports, TTL / hop limit).
//!
//! Vocabulary used below:
//! - a *sum* is a one's-complement sum that has not been folded to 16 bits yet: any value
//!   congruent to the sum of the big-endian 16-bit words modulo `0xFFFF` works, so partial sums
//!   can be added together (as `u64`) and folded once;
//! - [`fold`] folds the carries back in and returns the 16-bit one's-complement sum, **not**
//!   complemented;
//! - a *checksum* is the complement of the folded sum, the value that goes into a header
//!   ([`checksum`], [`l4_checksum_v4`], [`l4_checksum_v6`], [`finish`]).
//!
//! # The two zeros
//! One's-complement arithmetic has two zeros, `0x0000` and `0xFFFF`. A full computation over
//! data that is not all zeros never yields the checksum `0xFFFF` (the folded sum of non-zero data
//! is never `0x0000`), but it can yield `0x0000`. RFC 1624 equation 3 ([`update_u16`],
//! [`update_bytes`]) has the same property, which is why l4lb uses it and not equation 2:
//! it yields `0xFFFF` only when the old checksum was `0xFFFF` and the data summed to zero
//! (impossible for IP headers, whose version nibble is non-zero). So an incremental update equals
//! a full recomputation, bit for bit.
//!
//! UDP is the exception on the wire: a transmitted checksum of 0 means "no checksum"
//! (RFC 768), so a computed 0 is sent as `0xFFFF` ([`udp_checksum_field`]); and a UDP datagram
//! received with checksum 0 must be left at 0 by rewrites (the caller checks that).

/// One's-complement sum of `data` as big-endian 16-bit words (RFC 1071), not folded to 16 bits.
///
/// An odd trailing byte counts as the high byte of a word padded with zero. The result is
/// congruent modulo `0xFFFF` to the plain sum of the words, so results of several calls may be
/// added as `u64` and passed to [`fold`] — but only if every part but the last has even length.
///
/// Works 8 bytes at a time: each chunk is read as a big-endian `u64` and added with end-around
/// carry, which preserves the sum modulo `2^64 - 1`, a multiple of `2^16 - 1`.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let (chunks, rest) = data.as_chunks::<8>();
    let mut acc: u64 = 0;
    for c in chunks {
        let (s, carry) = acc.overflowing_add(u64::from_be_bytes(*c));
        // No overflow here: if `carry`, `s < u64::MAX`.
        acc = s + u64::from(carry);
    }
    let (words, tail) = rest.as_chunks::<2>();
    let mut small: u64 = 0;
    for w in words {
        small += u64::from(u16::from_be_bytes(*w));
    }
    if let [last] = tail {
        small += u64::from(*last) << 8;
    }
    let (s, carry) = acc.overflowing_add(small);
    // fold32 leaves at most 17 bits, so adding the carry cannot overflow.
    fold32(s) + u32::from(carry)
}

/// Reduce a 64-bit sum with end-around carries to at most 17 bits (congruent modulo `0xFFFF`).
#[inline(always)]
fn fold32(x: u64) -> u32 {
    // x <= 2 * 0xFFFF_FFFF after the first step, <= 0xFFFF_FFFF after the second,
    // <= 0x1_FFFE after the third.
    let x = (x >> 32) + (x & 0xFFFF_FFFF);
    let x = (x >> 32) + (x & 0xFFFF_FFFF);
    // Reduce to at most 17 bits so callers can add small carries without overflowing u32.
    let x = (x >> 16) + (x & 0xFFFF);
    x as u32
}

/// Fold a sum to 16 bits (end-around carry). Returns the one's-complement sum, **not**
/// complemented; the checksum field value is `!fold(s)` (see [`finish`]).
///
/// `fold(0) == 0`; any other value whose sum is a multiple of `0xFFFF` folds to `0xFFFF`.
#[inline]
pub fn fold(mut s: u64) -> u16 {
    s = (s >> 32) + (s & 0xFFFF_FFFF);
    s = (s >> 32) + (s & 0xFFFF_FFFF);
    s = (s >> 16) + (s & 0xFFFF);
    s = (s >> 16) + (s & 0xFFFF);
    s as u16
}

/// The checksum field value for a sum: `!fold(s)`.
#[inline]
pub fn finish(s: u64) -> u16 {
    !fold(s)
}

/// The internet checksum of `data` (RFC 1071): the complement of the folded sum. Over a header
/// whose checksum field is zero this is the value to store; over a header with its checksum in
/// place it is 0 when the checksum is right.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(u64::from(sum(data)))
}

/// Sum of the IPv4 pseudo-header (RFC 793 section 3.1, RFC 768): source, destination, zero,
/// protocol, TCP/UDP length.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    u32::from(u16::from_be_bytes([src[0], src[1]]))
        + u32::from(u16::from_be_bytes([src[2], src[3]]))
        + u32::from(u16::from_be_bytes([dst[0], dst[1]]))
        + u32::from(u16::from_be_bytes([dst[2], dst[3]]))
        + u32::from(proto)
        + u32::from(len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source, destination, upper-layer
/// packet length (32 bits), three zero bytes, next header.
#[inline]
pub fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], next: u8, len: u32) -> u32 {
    let mut s: u32 = 0;
    for i in 0..8 {
        s += u32::from(u16::from_be_bytes([src[2 * i], src[2 * i + 1]]));
        s += u32::from(u16::from_be_bytes([dst[2 * i], dst[2 * i + 1]]));
    }
    s + (len >> 16) + (len & 0xFFFF) + u32::from(next)
}

/// TCP/UDP/... checksum over an IPv4 pseudo-header and `segment` (header and payload).
///
/// Zero the segment's checksum field first to compute the value to store; leave it in place to
/// verify (then the result is 0 when the checksum is right). For UDP, store
/// [`udp_checksum_field`] of the result. `segment.len()` must fit the 16-bit pseudo-header length
/// (it always does for a valid IPv4 packet).
#[inline]
pub fn l4_checksum_v4(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    let ph = pseudo_header_v4(src, dst, proto, segment.len() as u16);
    finish(u64::from(ph) + u64::from(sum(segment)))
}

/// TCP/UDP/ICMPv6 checksum over an IPv6 pseudo-header and `segment`; same rules as
/// [`l4_checksum_v4`]. ICMPv6 uses it too (RFC 4443 section 2.3).
#[inline]
pub fn l4_checksum_v6(src: [u8; 16], dst: [u8; 16], next: u8, segment: &[u8]) -> u16 {
    let ph = pseudo_header_v6(src, dst, next, segment.len() as u32);
    finish(u64::from(ph) + u64::from(sum(segment)))
}

/// The value to put in a UDP checksum field for a computed checksum `v`.
///
/// RFC 768: "If the computed checksum is zero, it is transmitted as all ones (the equivalent in
/// one's complement arithmetic). An all zero transmitted checksum value means that the
/// transmitter generated no checksum."
#[inline]
pub fn udp_checksum_field(v: u16) -> u16 {
    if v == 0 { 0xFFFF } else { v }
}

/// RFC 1624 equation 3: the new checksum after one 16-bit word of the covered data changes
/// from `old` to `new`.
///
/// "HC' = ~(~HC + ~m + m')" — RFC 1624 section 3. Unlike equation 2 it never turns a
/// checksum into `0xFFFF` (-0) unless the old one was `0xFFFF`, so the result equals a full
/// recomputation (see the module docs).
///
/// To change a single byte, pass the whole 16-bit word that contains it, e.g. the TTL with the
/// protocol byte: `update_u16(c, u16::from_be_bytes([old_ttl, proto]), u16::from_be_bytes([new_ttl, proto]))`.
#[inline]
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u64::from(!csum) + u64::from(!old) + u64::from(new);
    !fold(s)
}

/// RFC 1624 equation 3 for a field of several words (an IPv4 address: 4 bytes; an IPv6
/// address: 16 bytes; address and port together: any even length).
///
/// `old` and `new` must have the same, even length, and the field must start at an even
/// offset in the checksummed data (all IP, TCP and UDP address and port fields do).
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    // ~m for several words is the complement of their one's-complement sum.
    let s = u64::from(!csum) + u64::from(!fold(u64::from(sum(old)))) + u64::from(sum(new));
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain RFC 1071 reference: 16 bits at a time, carries folded at the end.
    fn reference_sum(data: &[u8]) -> u64 {
        let mut s: u64 = 0;
        for pair in data.chunks(2) {
            let w = if pair.len() == 2 { u16::from_be_bytes([pair[0], pair[1]]) } else { u16::from(pair[0]) << 8 };
            s += u64::from(w);
        }
        s
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(u64::from(sum(&data))), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header (Wikipedia "IPv4 header checksum"): checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn sum_matches_reference_for_all_small_lengths() {
        let data: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(37) ^ 0xa5) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(fold(u64::from(sum(&data[..n]))), fold(reference_sum(&data[..n])), "length {n}");
        }
        let ones = vec![0xffu8; 4096];
        assert_eq!(fold(u64::from(sum(&ones))), fold(reference_sum(&ones)));
    }

    #[test]
    fn zero_cases() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xFFFF), 0xFFFF);
        assert_eq!(fold(0x1_FFFE), 0xFFFF);
        assert_eq!(checksum(&[]), 0xFFFF);
        assert_eq!(checksum(&[0, 0, 0, 0]), 0xFFFF);
        // Non-zero data that sums to -0 gives checksum 0x0000.
        assert_eq!(checksum(&[0xff, 0xff]), 0);
        assert_eq!(checksum(&[0x12, 0x34, 0xed, 0xcb]), 0);
        assert_eq!(udp_checksum_field(0), 0xFFFF);
        assert_eq!(udp_checksum_field(0x1234), 0x1234);
        assert_eq!(udp_checksum_field(0xFFFF), 0xFFFF);
    }

    #[test]
    fn incremental_reaching_zero_matches_full() {
        // Data whose new checksum is 0x0000: eq. 3 must give 0x0000, not 0xFFFF.
        let old = [0x12, 0x34, 0x00, 0x01];
        let new = [0x12, 0x34, 0xed, 0xcb];
        let c_old = checksum(&old);
        let c_new = update_u16(c_old, 0x0001, 0xedcb);
        assert_eq!(c_new, checksum(&new));
        assert_eq!(c_new, 0);
        assert_eq!(update_bytes(c_old, &old[2..], &new[2..]), 0);
    }

    #[test]
    fn pseudo_headers() {
        let v4 = pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 40);
        assert_eq!(v4, 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 40);
        let mut src = [0u8; 16];
        src[15] = 1;
        let v6 = pseudo_header_v6(src, src, 17, 0x0001_0002);
        assert_eq!(v6, 1 + 1 + 1 + 2 + 17);
    }
}
