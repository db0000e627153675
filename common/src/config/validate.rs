//! Rules over validated types: ranges, families, uniqueness, table sizes. Run after
//! conversion, and again by [`super::Config::validate`] after programmatic edits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::convert::{backend_place, vip_place};
use super::error::Errors;
use super::{BackendConfig, Config, Forwarding, IoDriver, MAX_TIMEOUT, VipConfig, format_mac, limits};
use crate::maglev::is_prime;

/// Where the validated items came from in the file, so that errors name the right
/// place even when items that failed conversion were left out.
pub(crate) struct Labels {
    /// `node.ipv4` / `node.ipv6` converted (absent counts as converted).
    pub(crate) node_v4_ok: bool,
    pub(crate) node_v6_ok: bool,
    /// Parallel to `Config::vips`.
    pub(crate) vips: Vec<VipLabel>,
}

pub(crate) struct VipLabel {
    /// Position among the `[[vip]]` tables of the file.
    pub(crate) index: usize,
    /// Whether the name was written (else it is derived and left out of places).
    pub(crate) named: bool,
    /// Position of each validated backend among the VIP's `[[vip.backend]]` tables.
    pub(crate) backends: Vec<usize>,
    /// Every backend converted: rules about the whole set (count, table size) apply.
    pub(crate) complete: bool,
    /// Which of the VIP's own fields converted (the others hold placeholders, and
    /// the rules that need them are skipped; every other rule still runs).
    pub(crate) ok: VipFieldsOk,
}

/// Per field of a `[[vip]]`: whether its value converted.
#[derive(Clone, Copy)]
pub(crate) struct VipFieldsOk {
    pub(crate) address: bool,
    pub(crate) port: bool,
    pub(crate) protocol: bool,
    pub(crate) forwarding: bool,
    pub(crate) table_size: bool,
}

impl VipFieldsOk {
    pub(crate) const ALL: VipFieldsOk =
        VipFieldsOk { address: true, port: true, protocol: true, forwarding: true, table_size: true };
}

impl Labels {
    pub(crate) fn identity(cfg: &Config) -> Labels {
        Labels {
            node_v4_ok: true,
            node_v6_ok: true,
            vips: cfg
                .vips
                .iter()
                .enumerate()
                .map(|(i, v)| VipLabel {
                    index: i,
                    named: true,
                    backends: (0..v.backends.len()).collect(),
                    complete: true,
                    ok: VipFieldsOk::ALL,
                })
                .collect(),
        }
    }
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn bad_unicast(a: IpAddr) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("the unspecified address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else if a == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        Some("the broadcast address")
    } else {
        None
    }
}

pub(crate) fn check(cfg: &Config, labels: &Labels, e: &mut Errors) {
    node(cfg, labels, e);
    dataplane(cfg, e);
    vips(cfg, labels, e);
    if let Some(io) = &cfg.io {
        self::io(cfg, io, e);
    }
}

fn node(cfg: &Config, labels: &Labels, e: &mut Errors) {
    let n = &cfg.node;
    let p = "node";
    for (field, mac) in [("mac", n.mac), ("gateway_mac", n.gateway_mac)] {
        if mac == [0; 6] {
            e.push(p, field, "00:00:00:00:00:00 is not a usable MAC address");
        } else if mac[0] & 1 == 1 {
            e.push(p, field, format!("{} is a multicast MAC address; it must be unicast", format_mac(mac)));
        }
    }
    if n.ipv4.is_none() && n.ipv6.is_none() && labels.node_v4_ok && labels.node_v6_ok {
        e.push(p, "", "needs ipv4 and/or ipv6: the source address of tunnel headers in each backend's family");
    }
    if let Some(a) = n.ipv4
        && let Some(why) = bad_unicast(IpAddr::V4(a))
    {
        e.push(p, "ipv4", format!("{a} is {why}"));
    }
    if let Some(a) = n.ipv6
        && let Some(why) = bad_unicast(IpAddr::V6(a))
    {
        e.push(p, "ipv6", format!("{a} is {why}"));
    }
    if !(limits::MTU_MIN..=limits::MTU_MAX).contains(&n.mtu) {
        e.push(p, "mtu", format!("{} is out of range {}..={}", n.mtu, limits::MTU_MIN, limits::MTU_MAX));
    } else if n.mtu < limits::MTU_MIN_IPV6 && uses_ipv6(cfg) {
        e.push(
            p,
            "mtu",
            format!(
                "{} is below {}, the minimum MTU of IPv6, which this configuration uses",
                n.mtu,
                limits::MTU_MIN_IPV6
            ),
        );
    }
}

fn uses_ipv6(cfg: &Config) -> bool {
    cfg.node.ipv6.is_some()
        || cfg.vips.iter().any(|v| v.address.is_ipv6() || v.backends.iter().any(|b| b.address.is_ipv6()))
}

fn dataplane(cfg: &Config, e: &mut Errors) {
    let d = &cfg.dataplane;
    let p = "dataplane";
    if !(1..=limits::WORKERS_MAX).contains(&d.workers) {
        e.push(p, "workers", format!("{} is out of range 1..={}", d.workers, limits::WORKERS_MAX));
    }
    if d.flow_table_capacity == 0 {
        e.push(p, "flow_table_capacity", "must be at least 1");
    } else if d.flow_table_capacity > limits::FLOW_TABLE_CAPACITY_MAX {
        e.push(
            p,
            "flow_table_capacity",
            format!("{} is out of range 1..={}", d.flow_table_capacity, limits::FLOW_TABLE_CAPACITY_MAX),
        );
    }
    let timeouts: [(&str, Duration); 3] = [
        ("tcp_established_timeout", d.tcp_established_timeout),
        ("tcp_transitory_timeout", d.tcp_transitory_timeout),
        ("udp_timeout", d.udp_timeout),
    ];
    for (field, t) in timeouts {
        if t.is_zero() {
            e.push(
                p,
                field,
                "must be positive (durations are counted in whole nanoseconds: finer fractions read as 0)",
            );
        } else if t > MAX_TIMEOUT {
            e.push(p, field, format!("{t:?} is longer than the maximum, 24 days (\"576h\")"));
        }
    }
}

fn vips(cfg: &Config, labels: &Labels, e: &mut Errors) {
    // name -> place of its first VIP
    let mut names: HashMap<&str, String> = HashMap::new();
    // (address, port, protocol) -> place
    let mut listeners: HashMap<(IpAddr, u16, u8), String> = HashMap::new();
    // DNAT (backend address, backend port, protocol) -> place of its VIP
    let mut dnat_backends: HashMap<(IpAddr, u16, u8), String> = HashMap::new();
    for (v, label) in cfg.vips.iter().zip(&labels.vips) {
        let p = vip_place(label.index, label.named.then_some(v.name.as_str()));
        let ok = label.ok;
        let listener_ok = ok.address && ok.port && ok.protocol;
        // A derived name is only meaningful when the fields it comes from converted.
        if label.named || listener_ok {
            if v.name.is_empty() {
                e.push(&p, "name", "must not be empty");
            } else if let Some(first) = names.get(v.name.as_str()) {
                e.push(&p, "name", format!("{:?} is already the name of {first}", v.name));
            } else {
                names.insert(&v.name, p.clone());
            }
        }
        if ok.address
            && let Some(why) = bad_unicast(v.address)
        {
            e.push(&p, "address", format!("{} is {why}", v.address));
        }
        let key = (v.address, v.port, v.protocol.number());
        if !listener_ok {
        } else if let Some(first) = listeners.get(&key) {
            e.push(
                &p,
                "",
                format!("{} is already served by {first}", VipConfig::default_name(v.address, v.port, v.protocol)),
            );
        } else {
            listeners.insert(key, p.clone());
        }
        if ok.table_size {
            table_size(v, label, &p, e);
        }
        backends(cfg, (labels.node_v4_ok, labels.node_v6_ok), v, label, &p, &mut dnat_backends, e);
    }
}

fn table_size(v: &VipConfig, label: &VipLabel, p: &str, e: &mut Errors) {
    if v.table_size > limits::TABLE_SIZE_MAX || v.table_size < 2 {
        e.push(p, "table_size", format!("{} is out of range 2..={}", v.table_size, limits::TABLE_SIZE_MAX));
    } else if !is_prime(v.table_size) {
        e.push(
            p,
            "table_size",
            format!("{} is not a prime number (Maglev needs a prime; e.g. 65537, 131071, 1000003)", v.table_size),
        );
    } else if label.complete && (v.table_size as usize) < v.eligible_count() {
        e.push(
            p,
            "table_size",
            format!(
                "{} is smaller than the number of up backends with weight > 0 ({}); Maglev recommends at least 100 times as many entries",
                v.table_size,
                v.eligible_count()
            ),
        );
    }
}

fn backends(
    cfg: &Config,
    node_ok: (bool, bool),
    v: &VipConfig,
    label: &VipLabel,
    p: &str,
    dnat_backends: &mut HashMap<(IpAddr, u16, u8), String>,
    e: &mut Errors,
) {
    if label.complete && v.backends.is_empty() {
        e.push(p, "", "has no backend: add at least one [[vip.backend]]");
    }
    if v.backends.len() > limits::BACKENDS_MAX {
        e.push(p, "", format!("has {} backends, more than the maximum {}", v.backends.len(), limits::BACKENDS_MAX));
    }
    let mut seen: HashMap<IpAddr, usize> = HashMap::new();
    for (b, &j) in v.backends.iter().zip(&label.backends) {
        let bp = backend_place(p, j, Some(&b.address.to_string()));
        if let Some(first) = seen.get(&b.address) {
            e.push(&bp, "address", format!("{} is already backend[{first}] of this VIP", b.address));
        } else {
            seen.insert(b.address, j);
        }
        if let Some(why) = bad_unicast(b.address) {
            e.push(&bp, "address", format!("{} is {why}", b.address));
        }
        let ok = label.ok;
        if !ok.forwarding {
            continue;
        }
        if v.forwarding != Forwarding::Dnat || ok.address {
            backend_family(cfg, node_ok, v, b, &bp, e);
        }
        if !ok.port {
            continue;
        }
        if v.forwarding == Forwarding::Dnat {
            if b.port == 0 && v.port != 0 {
                e.push(&bp, "port", "0 is not a usable port for dnat");
            }
            // Several DNAT VIPs may share a backend endpoint: replies are matched by the
            // flow table's reverse entries (the whole reply 5-tuple), not by the endpoint.
            dnat_backends.entry((b.address, b.port, v.protocol.number())).or_insert_with(|| p.to_string());
        } else if b.port != v.port {
            // What `check` says of a port on a tunnel VIP's backend (`convert.rs`), for the
            // configurations edited in place (replay events' `add`).
            e.push(
                &bp,
                "port",
                format!(
                    "only allowed for dnat VIPs: {} delivers the packet unchanged, to the VIP's port ({}, not {})",
                    v.forwarding, v.port, b.port
                ),
            );
        }
    }
}

fn backend_family(cfg: &Config, node_ok: (bool, bool), v: &VipConfig, b: &BackendConfig, bp: &str, e: &mut Errors) {
    match v.forwarding {
        Forwarding::Gre | Forwarding::Ipip => {
            let (has, known, key) = match b.address {
                IpAddr::V4(_) => (cfg.node.ipv4.is_some(), node_ok.0, "node.ipv4"),
                IpAddr::V6(_) => (cfg.node.ipv6.is_some(), node_ok.1, "node.ipv6"),
            };
            if !has && known {
                e.push(
                    bp,
                    "address",
                    format!(
                        "{} is {}: {} forwarding needs {key} as the source of the outer header",
                        b.address,
                        family(b.address),
                        v.forwarding
                    ),
                );
            }
        }
        Forwarding::Dnat => {
            if b.address.is_ipv4() != v.address.is_ipv4() {
                e.push(
                    bp,
                    "address",
                    format!(
                        "{} is {} but the VIP is {}: dnat rewrites addresses in place, so both must be the same family",
                        b.address,
                        family(b.address),
                        family(v.address)
                    ),
                );
            }
        }
    }
}

/// Why `name` cannot be a Linux interface name, if it cannot.
fn bad_interface_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    (name.len() > limits::INTERFACE_NAME_MAX || name.contains(['/', ' ']))
        .then(|| format!("{name:?} is not a valid Linux interface name"))
}

fn io(cfg: &Config, io: &super::IoConfig, e: &mut Errors) {
    let p = "io";
    match io.driver {
        IoDriver::AfXdp | IoDriver::AfPacket => match io.interface.as_deref() {
            None => e.push(p, "interface", format!("missing: driver \"{}\" needs the interface to use", io.driver)),
            Some(i) => {
                if let Some(why) = bad_interface_name(i) {
                    e.push(p, "interface", why);
                }
            }
        },
        IoDriver::Dpdk => {}
    }
    if let Some(d) = &io.dpdk
        && let Some(tap) = &d.host_tap
    {
        if let Some(why) = bad_interface_name(tap) {
            e.push("io.dpdk", "host_tap", why);
        } else if tap.contains([',', '=']) {
            // It goes into a DPDK device argument string.
            e.push("io.dpdk", "host_tap", format!("{tap:?}: ',' and '=' are not allowed here"));
        }
    }
    if !io.cores.is_empty() && io.cores.len() != cfg.dataplane.workers {
        e.push(
            p,
            "cores",
            format!(
                "lists {} CPUs but dataplane.workers is {}: give one CPU per worker (or leave cores out)",
                io.cores.len(),
                cfg.dataplane.workers
            ),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for c in &io.cores {
        if !seen.insert(c) {
            e.push(p, "cores", format!("CPU {c} is listed twice: each worker needs its own CPU"));
        }
    }
    if !io.ring_size.is_power_of_two() || !(limits::RING_SIZE_MIN..=limits::RING_SIZE_MAX).contains(&io.ring_size) {
        e.push(
            p,
            "ring_size",
            format!(
                "{} must be a power of two in {}..={} (e.g. 2048)",
                io.ring_size,
                limits::RING_SIZE_MIN,
                limits::RING_SIZE_MAX
            ),
        );
    }
    match (io.driver, &io.dpdk) {
        (IoDriver::Dpdk, None) => e.push("io.dpdk", "", "missing table [io.dpdk]: driver \"dpdk\" needs it"),
        (IoDriver::Dpdk, Some(d)) if d.mbufs == 0 => e.push("io.dpdk", "mbufs", "must be at least 1"),
        (d, Some(_)) if d != IoDriver::Dpdk => {
            e.push("io.dpdk", "", format!("only used with driver = \"dpdk\" (driver is \"{d}\")"))
        }
        _ => {}
    }
}
