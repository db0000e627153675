//! Receive-side scaling, as a NIC does it, and the owner-worker rule.
//!
//! NICs spread packets over queues with the Toeplitz hash (Microsoft RSS) of the
//! addresses and ports, looked up in a 128-entry redirection table (RETA) filled
//! round-robin. `replay` uses exactly this to spread a capture over `--workers N`,
//! and the DPDK port programs the same key into the NIC, so that software and
//! hardware agree on which worker sees which flow.

/// The de-facto standard 40-byte RSS key (Microsoft's, DPDK's and most drivers' default).
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// Entries in the redirection table, as on Intel NICs.
pub const RETA_SIZE: u32 = 128;

/// Toeplitz hash of `input` under [`RSS_KEY`] (input at most 36 bytes: IPv6 addresses and ports).
#[inline]
pub fn toeplitz(input: &[u8]) -> u32 {
    let key = &RSS_KEY;
    let mut result: u32 = 0;
    // The 32-bit window of the key starting at the current input bit.
    let mut window: u32 = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, &byte) in input.iter().enumerate().take(36) {
        let next = key[i + 4];
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    result
}

/// Queue for a Toeplitz hash with a round-robin redirection table of `queues` queues.
#[inline]
pub fn queue_of(hash: u32, queues: u16) -> u16 {
    if queues <= 1 {
        return 0;
    }
    ((hash % RETA_SIZE) % u32::from(queues)) as u16
}

/// RSS input for IPv4: addresses, then ports when the packet carries them
/// (TCP/UDP, not a fragment), as NICs do for `RSS_IP | RSS_TCP | RSS_UDP`.
#[inline]
pub fn hash_v4(src: [u8; 4], dst: [u8; 4], ports: Option<(u16, u16)>) -> u32 {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&src);
    b[4..8].copy_from_slice(&dst);
    match ports {
        Some((s, d)) => {
            b[8..10].copy_from_slice(&s.to_be_bytes());
            b[10..12].copy_from_slice(&d.to_be_bytes());
            toeplitz(&b)
        }
        None => toeplitz(&b[..8]),
    }
}

/// RSS input for IPv6, as [`hash_v4`].
#[inline]
pub fn hash_v6(src: [u8; 16], dst: [u8; 16], ports: Option<(u16, u16)>) -> u32 {
    let mut b = [0u8; 36];
    b[0..16].copy_from_slice(&src);
    b[16..32].copy_from_slice(&dst);
    match ports {
        Some((s, d)) => {
            b[32..34].copy_from_slice(&s.to_be_bytes());
            b[34..36].copy_from_slice(&d.to_be_bytes());
            toeplitz(&b)
        }
        None => toeplitz(&b[..32]),
    }
}

/// Worker owning a DNAT connection: a function of the client's end alone
/// (address, port, protocol), which both directions carry. See ARCHITECTURE.md,
/// "Steering".
#[inline]
pub fn client_owner(client: &[u8], client_port: u16, proto: u8, workers: u16) -> u16 {
    if workers <= 1 {
        return 0;
    }
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(proto) ^ (u64::from(client_port) << 8);
    for chunk in client.chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from(u32::from_be_bytes(w))).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 29;
    }
    ((h >> 32) % u64::from(workers)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    // Verification suite from Microsoft's RSS specification ("Verifying the RSS hash calculation").
    #[test]
    fn toeplitz_matches_the_microsoft_test_vectors() {
        type Case = ([u8; 4], u16, [u8; 4], u16, u32, u32);
        let cases: [Case; 3] = [
            ([66, 9, 149, 187], 2794, [161, 142, 100, 80], 1766, 0x323e_8fc2, 0x51cc_c178),
            ([199, 92, 111, 2], 14230, [65, 69, 140, 83], 4739, 0xd718_262a, 0xc626_b0ea),
            ([24, 19, 198, 95], 12898, [12, 22, 207, 184], 38024, 0xd2d0_a5de, 0x5c2b_394a),
        ];
        for (src, sport, dst, dport, ip_only, with_ports) in cases {
            assert_eq!(hash_v4(src, dst, None), ip_only);
            assert_eq!(hash_v4(src, dst, Some((sport, dport))), with_ports);
        }
    }

    #[test]
    fn toeplitz_ipv6_vector() {
        // 3ffe:2501:200:1fff::7 port 2794 -> 3ffe:2501:200:3::1 port 1766
        let src: std::net::Ipv6Addr = "3ffe:2501:200:1fff::7".parse().unwrap();
        let dst: std::net::Ipv6Addr = "3ffe:2501:200:3::1".parse().unwrap();
        assert_eq!(hash_v6(src.octets(), dst.octets(), None), 0x2cc1_8cd5);
        assert_eq!(hash_v6(src.octets(), dst.octets(), Some((2794, 1766))), 0x4020_7d3d);
    }

    #[test]
    fn queues_and_owners_are_in_range() {
        for h in [0u32, 1, 127, 128, 0xffff_ffff] {
            assert!(queue_of(h, 3) < 3);
            assert_eq!(queue_of(h, 1), 0);
        }
        for p in 0..1000u16 {
            assert!(client_owner(&[10, 0, 0, 1], p, 6, 4) < 4);
        }
        let spread: std::collections::HashSet<u16> =
            (0..200u16).map(|p| client_owner(&[10, 0, 0, 1], 1000 + p, 6, 4)).collect();
        assert_eq!(spread.len(), 4);
    }
}
