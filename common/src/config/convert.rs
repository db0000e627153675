//! Raw values to validated types: every field converted, every bad value reported.
//! Rules that relate several fields live in `validate.rs`.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use super::error::Errors;
use super::raw::{RawBackend, RawConfig, RawDataplane, RawDpdk, RawIo, RawNode, RawVip};
use super::validate::{Labels, VipFieldsOk, VipLabel};
use super::{
    BackendConfig, BackendState, Config, DataplaneConfig, DpdkConfig, Forwarding, HashMode, IoConfig, IoDriver,
    NodeConfig, Protocol, VipConfig, XdpMode, ZeroCopy, defaults, limits, parse_duration, parse_mac,
};

/// `vip[1] "api"` (or `vip[1]` without a name).
pub(crate) fn vip_place(index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("vip[{index}] {n:?}"),
        None => format!("vip[{index}]"),
    }
}

/// `vip[1] "api": backend[2] (10.1.0.12)` (the address as written, if any).
pub(crate) fn backend_place(vip: &str, index: usize, address: Option<&str>) -> String {
    match address {
        Some(a) => format!("{vip}: backend[{index}] ({a})"),
        None => format!("{vip}: backend[{index}]"),
    }
}

/// An integer in `min..=max`; `None` (with an error) when out of range.
fn int<T: TryFrom<i64>>(e: &mut Errors, place: &str, field: &str, v: i64, min: i64, max: i64) -> Option<T> {
    if v < min || v > max {
        e.push(place, field, format!("{v} is out of range {min}..={max}"));
        return None;
    }
    T::try_from(v).ok()
}

fn opt_int<T: TryFrom<i64>>(
    e: &mut Errors,
    place: &str,
    field: &str,
    v: Option<i64>,
    default: T,
    min: i64,
    max: i64,
) -> Option<T> {
    match v {
        None => Some(default),
        Some(v) => int(e, place, field, v, min, max),
    }
}

fn keyword<T: FromStr<Err = String>>(
    e: &mut Errors,
    place: &str,
    field: &str,
    v: Option<&str>,
    default: T,
) -> Option<T> {
    match v {
        None => Some(default),
        Some(s) => s.parse().map_err(|m: String| e.push(place, field, m)).ok(),
    }
}

fn required<'a>(e: &mut Errors, place: &str, field: &str, v: Option<&'a str>, what: &str) -> Option<&'a str> {
    if v.is_none() {
        e.push(place, field, format!("missing: {what}"));
    }
    v
}

fn ip(e: &mut Errors, place: &str, field: &str, s: &str) -> Option<IpAddr> {
    s.parse().map_err(|_| e.push(place, field, format!("{s:?} is not an IPv4 or IPv6 address"))).ok()
}

fn mac(e: &mut Errors, place: &str, field: &str, v: Option<&str>, what: &str) -> Option<[u8; 6]> {
    let s = required(e, place, field, v, what)?;
    let m = parse_mac(s);
    if m.is_none() {
        e.push(
            place,
            field,
            format!("{s:?} is not a MAC address: write six two-digit hex bytes separated by colons, e.g. \"02:00:00:00:00:01\""),
        );
    }
    m
}

fn duration(e: &mut Errors, place: &str, field: &str, v: Option<&str>, default: Duration) -> Option<Duration> {
    match v {
        None => Some(default),
        Some(s) => parse_duration(s).map_err(|err| e.push(place, field, err.to_string())).ok(),
    }
}

pub(crate) fn config(raw: &RawConfig, e: &mut Errors) -> (Config, Labels) {
    let (node, node_v4_ok, node_v6_ok) = node(raw.node.as_ref(), e);
    let dataplane = dataplane(raw.dataplane.as_ref(), e);
    let mut vips = Vec::new();
    let mut vip_labels = Vec::new();
    if raw.vips.is_empty() {
        e.push("vip", "", "no [[vip]] defined: a configuration needs at least one VIP");
    }
    for (i, rv) in raw.vips.iter().enumerate() {
        if let Some((v, label)) = vip(i, rv, e) {
            vips.push(v);
            vip_labels.push(label);
        }
    }
    let io = raw.io.as_ref().and_then(|r| io(r, e));
    (Config { node, dataplane, vips, io }, Labels { node_v4_ok, node_v6_ok, vips: vip_labels })
}

fn node(raw: Option<&RawNode>, e: &mut Errors) -> (NodeConfig, bool, bool) {
    let p = "node";
    let default = RawNode::default();
    let r = match raw {
        Some(r) => r,
        None => {
            e.push(p, "", "missing table [node]: it needs mac, gateway_mac and ipv4 and/or ipv6");
            &default
        }
    };
    let mac_addr = if raw.is_some() {
        mac(e, p, "mac", r.mac.as_deref(), "the source MAC of every frame sent, e.g. \"02:00:00:00:00:01\"")
    } else {
        None
    };
    let gw = if raw.is_some() {
        mac(e, p, "gateway_mac", r.gateway_mac.as_deref(), "the next-hop router's MAC, destination of every frame sent")
    } else {
        None
    };
    let mut v4_ok = true;
    let ipv4 = r.ipv4.as_deref().and_then(|s| match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some(a),
        Ok(IpAddr::V6(_)) => {
            v4_ok = false;
            e.push(p, "ipv4", format!("{s:?} is an IPv6 address; put it in node.ipv6"));
            None
        }
        Err(_) => {
            v4_ok = false;
            e.push(p, "ipv4", format!("{s:?} is not an IPv4 address"));
            None
        }
    });
    let mut v6_ok = true;
    let ipv6 = r.ipv6.as_deref().and_then(|s| match s.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => Some(a),
        Ok(IpAddr::V4(_)) => {
            v6_ok = false;
            e.push(p, "ipv6", format!("{s:?} is an IPv4 address; put it in node.ipv4"));
            None
        }
        Err(_) => {
            v6_ok = false;
            e.push(p, "ipv6", format!("{s:?} is not an IPv6 address"));
            None
        }
    });
    let mtu = opt_int(e, p, "mtu", r.mtu, defaults::MTU, limits::MTU_MIN.into(), limits::MTU_MAX.into());
    let node = NodeConfig {
        mac: mac_addr.unwrap_or([2, 0, 0, 0, 0, 1]),
        gateway_mac: gw.unwrap_or([2, 0, 0, 0, 0, 2]),
        ipv4,
        ipv6,
        mtu: mtu.unwrap_or(defaults::MTU),
    };
    // Without [node] at all, the "needs ipv4 and/or ipv6" rule would repeat the error above.
    (node, v4_ok && raw.is_some(), v6_ok && raw.is_some())
}

fn dataplane(raw: Option<&RawDataplane>, e: &mut Errors) -> DataplaneConfig {
    let d = DataplaneConfig::default();
    let Some(r) = raw else { return d };
    let p = "dataplane";
    DataplaneConfig {
        workers: opt_int(e, p, "workers", r.workers, d.workers, 1, limits::WORKERS_MAX as i64).unwrap_or(d.workers),
        flow_table_capacity: opt_int(
            e,
            p,
            "flow_table_capacity",
            r.flow_table_capacity,
            d.flow_table_capacity,
            1,
            limits::FLOW_TABLE_CAPACITY_MAX as i64,
        )
        .unwrap_or(d.flow_table_capacity),
        tcp_established_timeout: duration(
            e,
            p,
            "tcp_established_timeout",
            r.tcp_established_timeout.as_deref(),
            d.tcp_established_timeout,
        )
        .unwrap_or(d.tcp_established_timeout),
        tcp_transitory_timeout: duration(
            e,
            p,
            "tcp_transitory_timeout",
            r.tcp_transitory_timeout.as_deref(),
            d.tcp_transitory_timeout,
        )
        .unwrap_or(d.tcp_transitory_timeout),
        udp_timeout: duration(e, p, "udp_timeout", r.udp_timeout.as_deref(), d.udp_timeout).unwrap_or(d.udp_timeout),
    }
}

fn vip(index: usize, r: &RawVip, e: &mut Errors) -> Option<(VipConfig, VipLabel)> {
    let p = vip_place(index, r.name.as_deref());
    let address = required(e, &p, "address", r.address.as_deref(), "the VIP's IPv4 or IPv6 address")
        .and_then(|s| ip(e, &p, "address", s));
    let port = match r.port {
        None => {
            e.push(&p, "port", "missing: the VIP's port (0 = every port)");
            None
        }
        Some(v) => int::<u16>(e, &p, "port", v, 0, 65535),
    };
    let protocol = match r.protocol.as_deref() {
        None => {
            e.push(&p, "protocol", "missing: \"tcp\" or \"udp\"");
            None
        }
        Some(s) => keyword::<Protocol>(e, &p, "protocol", Some(s), Protocol::Tcp),
    };
    let forwarding = match r.forwarding.as_deref() {
        None => {
            e.push(&p, "forwarding", "missing: \"gre\", \"ipip\" or \"dnat\"");
            None
        }
        Some(s) => keyword::<Forwarding>(e, &p, "forwarding", Some(s), Forwarding::Gre),
    };
    let hash = keyword(e, &p, "hash", r.hash.as_deref(), HashMode::FiveTuple);
    let table_size =
        opt_int(e, &p, "table_size", r.table_size, defaults::TABLE_SIZE, 2, i64::from(limits::TABLE_SIZE_MAX));
    let mut backends = Vec::new();
    let mut backend_index = Vec::new();
    let mut complete = true;
    for (j, rb) in r.backends.iter().enumerate() {
        let bp = backend_place(&p, j, rb.address.as_deref());
        match backend(rb, port, forwarding, &bp, e) {
            Some(b) => {
                backends.push(b);
                backend_index.push(j);
            }
            None => complete = false,
        }
    }
    // Fields that did not convert get placeholders, so that the rules that do not
    // need them still run (every error is reported, not just the first per VIP);
    // `ok` tells validation which ones to trust.
    let ok = VipFieldsOk {
        address: address.is_some(),
        port: port.is_some(),
        protocol: protocol.is_some(),
        forwarding: forwarding.is_some(),
        table_size: table_size.is_some(),
    };
    let address = address.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let (port, protocol) = (port.unwrap_or(0), protocol.unwrap_or(Protocol::Tcp));
    let forwarding = forwarding.unwrap_or(Forwarding::Gre);
    let hash = hash.unwrap_or(HashMode::FiveTuple);
    let table_size = table_size.unwrap_or(defaults::TABLE_SIZE);
    let name = r.name.clone().unwrap_or_else(|| VipConfig::default_name(address, port, protocol));
    let v = VipConfig { name, address, port, protocol, forwarding, hash, table_size, backends };
    Some((v, VipLabel { index, named: r.name.is_some(), backends: backend_index, complete, ok }))
}

/// Convert one backend; `vip_port`/`forwarding` are `None` when the VIP's own values
/// were invalid (the checks that need them are then skipped).
pub(crate) fn backend(
    r: &RawBackend,
    vip_port: Option<u16>,
    forwarding: Option<Forwarding>,
    p: &str,
    e: &mut Errors,
) -> Option<BackendConfig> {
    let address = required(e, p, "address", r.address.as_deref(), "the backend's IPv4 or IPv6 address")
        .and_then(|s| ip(e, p, "address", s));
    let port = match (r.port, forwarding) {
        // The VIP's port did not convert: a placeholder (the port rules are skipped).
        (None, _) => Some(vip_port.unwrap_or(0)),
        (Some(_), Some(f)) if f.is_tunnel() => {
            e.push(
                p,
                "port",
                format!("only allowed for dnat VIPs: {f} delivers the packet unchanged, to the VIP's port"),
            );
            None
        }
        (Some(v), _) => int::<u16>(e, p, "port", v, 1, 65535),
    };
    let weight = opt_int(e, p, "weight", r.weight, defaults::WEIGHT, 0, i64::from(u32::MAX));
    let state = keyword(e, p, "state", r.state.as_deref(), BackendState::Up);
    Some(BackendConfig { address: address?, port: port?, weight: weight?, state: state? })
}

fn io(r: &RawIo, e: &mut Errors) -> Option<IoConfig> {
    let p = "io";
    let driver = match r.driver.as_deref() {
        None => {
            e.push(p, "driver", "missing: \"af_xdp\", \"af_packet\" or \"dpdk\"");
            None
        }
        Some(s) => keyword::<IoDriver>(e, p, "driver", Some(s), IoDriver::AfPacket),
    };
    let mut cores = Vec::new();
    let mut cores_ok = true;
    for (i, &c) in r.cores.iter().flatten().enumerate() {
        match int::<usize>(e, p, &format!("cores[{i}]"), c, 0, limits::CORE_MAX as i64) {
            Some(c) => cores.push(c),
            None => cores_ok = false,
        }
    }
    if let Some(d) = driver
        && d != IoDriver::AfXdp
    {
        if r.xdp_mode.is_some() {
            e.push(p, "xdp_mode", format!("only used with driver = \"af_xdp\" (driver is \"{d}\")"));
        }
        if r.zero_copy.is_some() {
            e.push(p, "zero_copy", format!("only used with driver = \"af_xdp\" (driver is \"{d}\")"));
        }
    }
    let xdp_mode = keyword(e, p, "xdp_mode", r.xdp_mode.as_deref(), XdpMode::Auto);
    let zero_copy = keyword(e, p, "zero_copy", r.zero_copy.as_deref(), ZeroCopy::Auto);
    let ring_size = opt_int(
        e,
        p,
        "ring_size",
        r.ring_size,
        defaults::RING_SIZE,
        limits::RING_SIZE_MIN.into(),
        limits::RING_SIZE_MAX.into(),
    );
    let dpdk = match &r.dpdk {
        None => Some(None),
        Some(d) => dpdk(d, e).map(Some),
    };
    Some(IoConfig {
        driver: driver?,
        interface: r.interface.clone(),
        cores: if cores_ok { cores } else { return None },
        xdp_mode: xdp_mode?,
        zero_copy: zero_copy?,
        ring_size: ring_size?,
        dpdk: dpdk?,
    })
}

fn dpdk(r: &RawDpdk, e: &mut Errors) -> Option<DpdkConfig> {
    let p = "io.dpdk";
    let port = opt_int(e, p, "port", r.port, 0u16, 0, 65535);
    let mbufs = opt_int(e, p, "mbufs", r.mbufs, defaults::DPDK_MBUFS, 1, i64::from(u32::MAX));
    let tx_port = match r.tx_port {
        Some(t) => Some(opt_int(e, p, "tx_port", Some(t), 0u16, 0, 65535)?),
        None => None,
    };
    Some(DpdkConfig {
        eal_args: r.eal_args.clone().unwrap_or_default(),
        port: port?,
        tx_port,
        mbufs: mbufs?,
        host_tap: r.host_tap.clone(),
    })
}
