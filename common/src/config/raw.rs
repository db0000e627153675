//! The configuration as written: serde structs that accept any value of the right TOML
//! type, so that the validation pass can report every bad value with its place.
//! Unknown keys are rejected here (`deny_unknown_fields`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub node: Option<RawNode>,
    pub dataplane: Option<RawDataplane>,
    #[serde(default, rename = "vip")]
    pub vips: Vec<RawVip>,
    pub io: Option<RawIo>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub mac: Option<String>,
    pub gateway_mac: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub mtu: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataplane {
    pub workers: Option<i64>,
    pub flow_table_capacity: Option<i64>,
    pub tcp_established_timeout: Option<String>,
    pub tcp_transitory_timeout: Option<String>,
    pub udp_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVip {
    pub name: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub protocol: Option<String>,
    pub forwarding: Option<String>,
    pub hash: Option<String>,
    pub table_size: Option<i64>,
    #[serde(default, rename = "backend")]
    pub backends: Vec<RawBackend>,
}

/// A `[[vip.backend]]` table; also the `add = { ... }` of a replay event.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub address: Option<String>,
    pub port: Option<i64>,
    pub weight: Option<i64>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawIo {
    pub driver: Option<String>,
    pub interface: Option<String>,
    pub cores: Option<Vec<i64>>,
    pub xdp_mode: Option<String>,
    pub zero_copy: Option<String>,
    pub ring_size: Option<i64>,
    pub dpdk: Option<RawDpdk>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDpdk {
    pub eal_args: Option<Vec<String>>,
    pub port: Option<i64>,
    pub tx_port: Option<i64>,
    pub mbufs: Option<i64>,
    pub host_tap: Option<String>,
}
