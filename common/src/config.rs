//! The TOML configuration (see `docs/CONFIG.md` for every key, default and rule).
//!
//! Loading has two steps. Serde reads the text into the [`raw`] structs, which accept
//! any value of the right TOML type (unknown keys and TOML syntax errors stop here, with
//! line and column). Then one validation pass converts every field and checks every
//! rule, collecting *all* problems, each with its place:
//!
//! ```text
//! vip[1] "api": backend[2] (10.1.0.12): weight: -1 is out of range 0..=4294967295
//! ```
//!
//! Indices are 0-based positions in the file (`vip[0]` is the first `[[vip]]`).
//! The validated types below are what the rest of l4lb uses; [`Config::validate`]
//! re-checks the rules after programmatic edits (control-plane events).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod convert;
mod duration;
mod error;
pub mod raw;
mod shape;
mod validate;

pub use duration::{DurationError, MAX_TIMEOUT, duration_ms_ceil, parse_duration};
pub use error::{ConfigError, ConfigErrors};

use error::Errors;

/// Contract defaults.
pub mod defaults {
    use std::time::Duration;
    pub const MTU: u16 = 1500;
    pub const WORKERS: usize = 1;
    pub const FLOW_TABLE_CAPACITY: usize = 1_048_576;
    pub const TCP_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(300);
    pub const TCP_TRANSITORY_TIMEOUT: Duration = Duration::from_secs(10);
    pub const UDP_TIMEOUT: Duration = Duration::from_secs(30);
    pub const TABLE_SIZE: u32 = 65537;
    pub const WEIGHT: u32 = 1;
    pub const RING_SIZE: u32 = 2048;
    pub const DPDK_MBUFS: u32 = 8191;
}

/// Validation limits.
pub mod limits {
    pub const MTU_MIN: u16 = 576;
    /// IPv6 requires every link to carry 1280-byte packets (RFC 8200 section 5).
    pub const MTU_MIN_IPV6: u16 = 1280;
    pub const MTU_MAX: u16 = 9216;
    pub const WORKERS_MAX: usize = 64;
    /// Flows per worker: 2^30 (about 63 GiB of table per worker). What the machine
    /// can actually hold is checked when the tables are made (`l4lb run`/`replay`).
    pub const FLOW_TABLE_CAPACITY_MAX: usize = 1 << 30;
    pub const TABLE_SIZE_MAX: u32 = crate::maglev::MAX_TABLE_SIZE;
    pub const BACKENDS_MAX: usize = crate::maglev::MAX_BACKENDS;
    pub const RING_SIZE_MIN: u32 = 64;
    pub const RING_SIZE_MAX: u32 = 32768;
    pub const CORE_MAX: usize = 1023;
    /// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
    pub const INTERFACE_NAME_MAX: usize = 15;
}

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node: NodeConfig,
    pub dataplane: DataplaneConfig,
    pub vips: Vec<VipConfig>,
    pub io: Option<IoConfig>,
}

/// `[node]`: this load balancer on its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub mac: [u8; 6],
    pub gateway_mac: [u8; 6],
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub mtu: u16,
}

/// `[dataplane]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    pub workers: usize,
    pub flow_table_capacity: usize,
    pub tcp_established_timeout: Duration,
    pub tcp_transitory_timeout: Duration,
    pub udp_timeout: Duration,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            workers: defaults::WORKERS,
            flow_table_capacity: defaults::FLOW_TABLE_CAPACITY,
            tcp_established_timeout: defaults::TCP_ESTABLISHED_TIMEOUT,
            tcp_transitory_timeout: defaults::TCP_TRANSITORY_TIMEOUT,
            udp_timeout: defaults::UDP_TIMEOUT,
        }
    }
}

/// One `[[vip]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipConfig {
    /// Given, or `address:port/protocol` (e.g. `198.51.100.10:80/tcp`) when left out.
    pub name: String,
    pub address: IpAddr,
    /// 0 = every port.
    pub port: u16,
    pub protocol: Protocol,
    pub forwarding: Forwarding,
    pub hash: HashMode,
    pub table_size: u32,
    pub backends: Vec<BackendConfig>,
}

/// One `[[vip.backend]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub address: IpAddr,
    /// Resolved: the configured port (dnat only) or the VIP's port.
    pub port: u16,
    pub weight: u32,
    pub state: BackendState,
}

/// `[io]`: the live I/O driver (optional; `l4lb run` needs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoConfig {
    pub driver: IoDriver,
    pub interface: Option<String>,
    /// CPU per worker; empty = not pinned.
    pub cores: Vec<usize>,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
    pub ring_size: u32,
    pub dpdk: Option<DpdkConfig>,
}

/// `[io.dpdk]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    pub eal_args: Vec<String>,
    pub port: u16,
    /// Port to transmit on, when it is not `port` (e.g. read a `net_pcap` vdev, send to `net_null`).
    pub tx_port: Option<u16>,
    pub mbufs: u32,
    /// The host exception path: a TAP interface of this name (a `net_tap` vdev that
    /// l4lb adds, with `node.mac`) through which frames for the host reach the kernel
    /// and the kernel's frames reach the wire. None: such frames are counted and freed.
    pub host_tap: Option<String>,
}

macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? } $(hidden { $($hv:ident = $ht:literal),+ })?) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)+
            $($(#[serde(rename = $ht, skip_deserializing)] $hv,)+)?
        }
        impl $name {
            /// The values accepted in a configuration file.
            pub const KEYWORDS: &'static [&'static str] = &[$($text),+];
            /// The keyword as written in a configuration file.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ $($($name::$hv => $ht,)+)? }
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("{s:?} is not one of {}", keyword_list(Self::KEYWORDS))),
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) fn keyword_list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
    quoted.join(", ")
}

keyword_enum!(
    /// Transport protocol of a VIP.
    Protocol { Tcp = "tcp", Udp = "udp" }
);
keyword_enum!(
    /// How packets reach a VIP's backends.
    Forwarding { Gre = "gre", Ipip = "ipip", Dnat = "dnat" }
);
keyword_enum!(
    /// What the backend choice hashes.
    HashMode { FiveTuple = "5-tuple", SourceIp = "source-ip" }
);
keyword_enum!(
    /// A backend's administrative state. `Removed` never appears in a configuration: it
    /// marks tombstone slots in a [`crate::snapshot::Snapshot`].
    BackendState { Up = "up", Drain = "drain", Down = "down" } hidden { Removed = "removed" }
);
keyword_enum!(
    /// Live I/O driver.
    IoDriver { AfXdp = "af_xdp", AfPacket = "af_packet", Dpdk = "dpdk" }
);
keyword_enum!(
    /// AF_XDP attach mode.
    XdpMode { Auto = "auto", Native = "native", Generic = "generic" }
);
keyword_enum!(
    /// AF_XDP zero-copy.
    ZeroCopy { Auto = "auto", On = "on", Off = "off" }
);

impl Protocol {
    /// The IP protocol number (6 or 17).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => crate::flow::proto::TCP,
            Protocol::Udp => crate::flow::proto::UDP,
        }
    }
}

impl Forwarding {
    /// GRE and IPIP: the packet is tunnelled to the backend (direct server return).
    pub fn is_tunnel(self) -> bool {
        matches!(self, Forwarding::Gre | Forwarding::Ipip)
    }
}

impl BackendConfig {
    /// Takes new flows: `up` with weight > 0.
    pub fn is_eligible(&self) -> bool {
        self.state == BackendState::Up && self.weight > 0
    }
}

impl VipConfig {
    pub fn backend(&self, address: IpAddr) -> Option<&BackendConfig> {
        self.backends.iter().find(|b| b.address == address)
    }

    /// The backend with this address, to change its state or weight (then call
    /// [`Config::validate`]).
    pub fn backend_mut(&mut self, address: IpAddr) -> Option<&mut BackendConfig> {
        self.backends.iter_mut().find(|b| b.address == address)
    }

    /// Number of backends that take new flows.
    pub fn eligible_count(&self) -> usize {
        self.backends.iter().filter(|b| b.is_eligible()).count()
    }

    /// Resolve a `[[vip.backend]]`-shaped table (e.g. a replay event's `add = {...}`)
    /// against this VIP: defaults applied, values checked (not the VIP-wide rules such
    /// as duplicates; call [`Config::validate`] after adding it).
    pub fn resolve_backend(&self, raw: &raw::RawBackend) -> Result<BackendConfig, ConfigErrors> {
        let mut e = Errors::default();
        let place = match raw.address.as_deref() {
            Some(a) => format!("vip {:?}: backend ({a})", self.name),
            None => format!("vip {:?}: backend", self.name),
        };
        let b = convert::backend(raw, Some(self.port), Some(self.forwarding), &place, &mut e);
        e.into_result()?;
        b.ok_or_else(|| ConfigErrors::single(place, "invalid backend"))
    }

    /// Default name of a VIP without one: `198.51.100.10:80/tcp`, `[2001:db8::10]:443/udp`.
    pub fn default_name(address: IpAddr, port: u16, protocol: Protocol) -> String {
        format!("{}/{protocol}", std::net::SocketAddr::new(address, port))
    }
}

impl Config {
    /// Parse and validate TOML text: every problem is reported, each with its place
    /// (a TOML syntax error, which leaves nothing to read past it, alone).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        // A TOML error as one line, with its line and column when it has a place.
        let toml_error = |err: toml::de::Error| {
            let place = err.span().map_or_else(String::new, |span| line_column(text, span.start));
            ConfigErrors::single(place, err.message().trim().replace('\n', " "))
        };
        let mut table: toml::Table = text.parse().map_err(toml_error)?;
        // Unknown keys and wrong types, all of them; what is left is read and validated.
        let mut shape_errors = Errors::default();
        let removed = shape::check(&mut table, &mut shape_errors);
        let raw = raw::RawConfig::deserialize(toml::Value::Table(table)).map_err(toml_error)?;
        let mut errors = shape_errors.list;
        match Self::from_raw(&raw) {
            Ok(cfg) if errors.is_empty() => return Ok(cfg),
            Ok(_) => {}
            Err(later) => errors.extend(later.errors.into_iter().filter(|e| !shape::is_removed(&e.place, &removed))),
        }
        Err(ConfigErrors { file: None, errors })
    }

    /// Validate an already deserialized configuration.
    pub fn from_raw(raw: &raw::RawConfig) -> Result<Config, ConfigErrors> {
        let mut e = Errors::default();
        let (cfg, labels) = convert::config(raw, &mut e);
        validate::check(&cfg, &labels, &mut e);
        e.into_result()?;
        Ok(cfg)
    }

    /// Read, parse and validate a file. Errors carry the file name.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigErrors::single("", format!("cannot read the configuration: {err}")).with_file(path))?;
        Self::from_toml_str(&text).map_err(|e| e.with_file(path))
    }

    /// Check every rule again, e.g. after control-plane edits.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut e = Errors::default();
        validate::check(self, &validate::Labels::identity(self), &mut e);
        e.into_result()
    }

    pub fn vip(&self, name: &str) -> Option<&VipConfig> {
        self.vips.iter().find(|v| v.name == name)
    }

    pub fn vip_mut(&mut self, name: &str) -> Option<&mut VipConfig> {
        self.vips.iter_mut().find(|v| v.name == name)
    }
}

/// `line L, column C` (both 1-based) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// Parse a colon-separated MAC address, `02:00:00:00:00:01`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Format a MAC address as `02:00:00:00:00:01`.
pub fn format_mac(mac: [u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

#[cfg(test)]
mod tests;
