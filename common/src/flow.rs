//! Flow keys: the 5-tuple of a packet as the load balancer sees it.
//!
//! Addresses are kept as network-order byte arrays so that hashing and comparison
//! work on the bytes as they appear on the wire, identically on every platform.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol numbers l4lb cares about.
pub mod proto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DSTOPTS: u8 = 60;
}

/// An IPv4 5-tuple.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct FlowKeyV4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
}

/// An IPv6 5-tuple.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct FlowKeyV6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
}

/// A 5-tuple of either family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FlowKey {
    V4(FlowKeyV4),
    V6(FlowKeyV6),
}

impl FlowKeyV4 {
    /// The key of the packets flowing the other way.
    #[inline]
    pub fn reversed(&self) -> Self {
        FlowKeyV4 { src: self.dst, dst: self.src, src_port: self.dst_port, dst_port: self.src_port, proto: self.proto }
    }
}

impl FlowKeyV6 {
    /// The key of the packets flowing the other way.
    #[inline]
    pub fn reversed(&self) -> Self {
        FlowKeyV6 { src: self.dst, dst: self.src, src_port: self.dst_port, dst_port: self.src_port, proto: self.proto }
    }
}

impl FlowKey {
    /// The key of the packets flowing the other way.
    #[inline]
    pub fn reversed(&self) -> Self {
        match self {
            FlowKey::V4(k) => FlowKey::V4(k.reversed()),
            FlowKey::V6(k) => FlowKey::V6(k.reversed()),
        }
    }

    #[inline]
    pub fn proto(&self) -> u8 {
        match self {
            FlowKey::V4(k) => k.proto,
            FlowKey::V6(k) => k.proto,
        }
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        match self {
            FlowKey::V4(k) => k.src_port,
            FlowKey::V6(k) => k.src_port,
        }
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        match self {
            FlowKey::V4(k) => k.dst_port,
            FlowKey::V6(k) => k.dst_port,
        }
    }

    pub fn src_addr(&self) -> IpAddr {
        match self {
            FlowKey::V4(k) => IpAddr::V4(Ipv4Addr::from(k.src)),
            FlowKey::V6(k) => IpAddr::V6(Ipv6Addr::from(k.src)),
        }
    }

    pub fn dst_addr(&self) -> IpAddr {
        match self {
            FlowKey::V4(k) => IpAddr::V4(Ipv4Addr::from(k.dst)),
            FlowKey::V6(k) => IpAddr::V6(Ipv6Addr::from(k.dst)),
        }
    }

    /// Build a key from addresses; `None` if the families differ.
    pub fn new(src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16, proto: u8) -> Option<Self> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                Some(FlowKey::V4(FlowKeyV4 { src: s.octets(), dst: d.octets(), src_port, dst_port, proto }))
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                Some(FlowKey::V6(FlowKeyV6 { src: s.octets(), dst: d.octets(), src_port, dst_port, proto }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_swaps_both_ends() {
        let k = FlowKey::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 1000, 80, proto::TCP).unwrap();
        let r = k.reversed();
        assert_eq!(r.src_addr(), k.dst_addr());
        assert_eq!(r.dst_port(), 1000);
        assert_eq!(r.reversed(), k);
        assert!(FlowKey::new("10.0.0.1".parse().unwrap(), "::1".parse().unwrap(), 1, 2, 6).is_none());
    }
}
