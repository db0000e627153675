//! Loading, attaching and feeding the XDP programs, with `aya`.
//!
//! The objects are compiled from `bpf/*.bpf.c` by the crate's build script and
//! embedded here, so a binary built with the `af_xdp` feature needs no file on
//! disk. Attach is by BPF link (kernel >= 5.9): the program is detached when the
//! owning [`aya::Ebpf`] is dropped, even if the process forgets to.

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::RawFd;

use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpFlags};
use aya::{Ebpf, include_bytes_aligned};

use super::{AfXdpError, AttachMode, XdpMode};

/// `bpf/xdp_redirect.bpf.c`, compiled by build.rs.
static REDIRECT_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_redirect.bpf.o"));
/// `bpf/decap.bpf.c`, compiled by build.rs.
static DECAP_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/decap.bpf.o"));

/// Map key {addr[16], port (network order), proto, pad}, as in the C program.
pub(super) type AppKey = [u8; 20];
/// Map key {addr[16]}.
pub(super) type AddrKey = [u8; 16];

/// IPv6 as is, IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
pub(super) fn addr16(ip: IpAddr) -> AddrKey {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

pub(super) fn app_key(ip: IpAddr, port: u16, proto: u8) -> AppKey {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(&addr16(ip));
    k[16..18].copy_from_slice(&port.to_be_bytes());
    k[18] = proto;
    k
}

/// An error and its sources on one line ("a: b: c").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn is_permission(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

fn not_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() != 0 }
}

/// Load `obj`, load program `name` into the kernel and attach it to `interface`.
fn load_and_attach(obj: &[u8], name: &str, interface: &str, mode: XdpMode) -> Result<(Ebpf, AttachMode), AfXdpError> {
    let mut ebpf = Ebpf::load(obj).map_err(|e| {
        if not_root() {
            AfXdpError::Permission("loading the XDP program")
        } else {
            AfXdpError::Program(format!("loading {name}: {}", error_chain(&e)))
        }
    })?;
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| AfXdpError::Program(format!("object has no program {name}")))?
        .try_into()
        .map_err(|e| AfXdpError::Program(format!("{name}: {e}")))?;
    prog.load().map_err(|e| {
        if not_root() {
            AfXdpError::Permission("loading the XDP program")
        } else {
            AfXdpError::Program(format!("verifier rejected {name}: {}", error_chain(&e)))
        }
    })?;
    let tries: &[(AttachMode, XdpFlags)] = match mode {
        XdpMode::Auto => &[(AttachMode::Native, XdpFlags::DRV_MODE), (AttachMode::Generic, XdpFlags::SKB_MODE)],
        XdpMode::Native => &[(AttachMode::Native, XdpFlags::DRV_MODE)],
        XdpMode::Generic => &[(AttachMode::Generic, XdpFlags::SKB_MODE)],
    };
    let mut reasons: Vec<String> = Vec::new();
    for &(chosen, flags) in tries {
        match prog.attach(interface, flags) {
            Ok(_link) => return Ok((ebpf, chosen)),
            Err(aya::programs::ProgramError::UnknownInterface { name }) => {
                return Err(AfXdpError::NoSuchInterface(name));
            }
            Err(aya::programs::ProgramError::SyscallError(s)) if is_permission(&s.io_error) => {
                return Err(AfXdpError::Permission("attaching the XDP program"));
            }
            Err(e) => reasons.push(format!("{chosen} mode: {}", error_chain(&e))),
        }
    }
    Err(AfXdpError::Attach { interface: interface.to_string(), reason: reasons.join("; ") })
}

/// The l4lb redirect program, attached, with its maps.
pub(super) struct RedirectProgram {
    /// Owns the program and its link: dropping it detaches.
    _ebpf: Ebpf,
    xsks: XskMap<MapData>,
    vips: BpfHashMap<MapData, AppKey, u32>,
    vip_addrs: BpfHashMap<MapData, AddrKey, u32>,
    dnat_backends: BpfHashMap<MapData, AppKey, u32>,
    verdicts: PerCpuArray<MapData, u64>,
    pub mode: AttachMode,
}

fn take<T: TryFrom<aya::maps::Map>>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, AfXdpError>
where
    T::Error: std::fmt::Display,
{
    let m = ebpf.take_map(name).ok_or(AfXdpError::Map { map: name, reason: "missing from the object".into() })?;
    T::try_from(m).map_err(|e| AfXdpError::Map { map: name, reason: e.to_string() })
}

/// Make `map` hold exactly `want` (value 1): insert first, then remove stale
/// keys, so a key present before and after is never missing in between.
fn sync<K>(map: &mut BpfHashMap<MapData, K, u32>, name: &'static str, want: &[K]) -> Result<(), AfXdpError>
where
    K: aya::Pod + Eq + std::hash::Hash,
{
    let err = |e: aya::maps::MapError| AfXdpError::Map { map: name, reason: e.to_string() };
    for k in want {
        map.insert(k, 1, 0).map_err(err)?;
    }
    let keep: HashSet<&K> = want.iter().collect();
    let stale: Vec<K> = map.keys().filter_map(Result::ok).filter(|k| !keep.contains(k)).collect();
    for k in &stale {
        map.remove(k).map_err(err)?;
    }
    Ok(())
}

impl RedirectProgram {
    pub(super) fn attach(interface: &str, mode: XdpMode) -> Result<Self, AfXdpError> {
        let (mut ebpf, mode) = load_and_attach(REDIRECT_OBJ, "l4lb_redirect", interface, mode)?;
        Ok(RedirectProgram {
            xsks: take(&mut ebpf, "xsks")?,
            vips: take(&mut ebpf, "vips")?,
            vip_addrs: take(&mut ebpf, "vip_addrs")?,
            dnat_backends: take(&mut ebpf, "dnat_backends")?,
            verdicts: take(&mut ebpf, "verdicts")?,
            _ebpf: ebpf,
            mode,
        })
    }

    pub(super) fn set_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), AfXdpError> {
        self.xsks.set(queue, fd, 0).map_err(|e| AfXdpError::Map { map: "xsks", reason: e.to_string() })
    }

    pub(super) fn set_vips(&mut self, keys: &[AppKey]) -> Result<(), AfXdpError> {
        sync(&mut self.vips, "vips", keys)
    }

    pub(super) fn set_vip_addrs(&mut self, keys: &[AddrKey]) -> Result<(), AfXdpError> {
        sync(&mut self.vip_addrs, "vip_addrs", keys)
    }

    pub(super) fn set_dnat_backends(&mut self, keys: &[AppKey]) -> Result<(), AfXdpError> {
        sync(&mut self.dnat_backends, "dnat_backends", keys)
    }

    /// Sum of the per-CPU verdict counters, in the C enum's order.
    pub(super) fn verdicts(&self) -> Result<[u64; 8], AfXdpError> {
        per_cpu_sums(&self.verdicts, "verdicts")
    }
}

fn per_cpu_sums<const N: usize>(map: &PerCpuArray<MapData, u64>, name: &'static str) -> Result<[u64; N], AfXdpError> {
    let mut out = [0u64; N];
    for (i, slot) in out.iter_mut().enumerate() {
        let v = map.get(&(i as u32), 0).map_err(|e| AfXdpError::Map { map: name, reason: e.to_string() })?;
        *slot = v.iter().sum();
    }
    Ok(out)
}

/// The decapsulation companion (`bpf/decap.bpf.c`) attached to one interface.
pub struct DecapProgram {
    _ebpf: Ebpf,
    stats: PerCpuArray<MapData, u64>,
    config: Array<MapData, u32>,
    dsts: BpfHashMap<MapData, AddrKey, u32>,
    srcs: BpfHashMap<MapData, AddrKey, u32>,
    mode: AttachMode,
}

/// `decap_config[0]` bits, as in the C program.
const CHECK_DST: u32 = 1;
const CHECK_SRC: u32 = 2;

/// What the decapsulation companion did, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecapStats {
    /// Not a tunnel packet it handles: passed untouched.
    pub passed: u64,
    pub gre: u64,
    pub ipip: u64,
    pub ip6ip: u64,
    /// `bpf_xdp_adjust_head` refused (passed as is).
    pub failed: u64,
    /// Tunnel packets the address filters turned away (passed as is).
    pub filtered: u64,
}

impl DecapProgram {
    /// Load the companion and attach it to `interface` (detached on drop).
    pub fn attach(interface: &str, mode: XdpMode) -> Result<Self, AfXdpError> {
        let (mut ebpf, mode) = load_and_attach(DECAP_OBJ, "l4lb_decap", interface, mode)?;
        Ok(DecapProgram {
            stats: take(&mut ebpf, "decap_stats")?,
            config: take(&mut ebpf, "decap_config")?,
            dsts: take(&mut ebpf, "decap_dsts")?,
            srcs: take(&mut ebpf, "decap_srcs")?,
            _ebpf: ebpf,
            mode,
        })
    }

    /// Decapsulate only tunnel packets whose outer destination is one of
    /// `addrs` (this host's tunnel endpoints); empty = any destination (the default).
    pub fn set_local_addrs(&mut self, addrs: &[IpAddr]) -> Result<(), AfXdpError> {
        let keys: Vec<AddrKey> = addrs.iter().map(|&a| addr16(a)).collect();
        self.set_filter(CHECK_DST, &keys, true)
    }

    /// Decapsulate only tunnel packets whose outer source is one of `addrs`
    /// (the load balancers); empty = any source (the default).
    pub fn set_allowed_sources(&mut self, addrs: &[IpAddr]) -> Result<(), AfXdpError> {
        let keys: Vec<AddrKey> = addrs.iter().map(|&a| addr16(a)).collect();
        self.set_filter(CHECK_SRC, &keys, false)
    }

    /// Fill the map before turning its check on; turn the check off before emptying it.
    fn set_filter(&mut self, bit: u32, keys: &[AddrKey], dst: bool) -> Result<(), AfXdpError> {
        let cfg_err = |e: aya::maps::MapError| AfXdpError::Map { map: "decap_config", reason: e.to_string() };
        let flags = self.config.get(&0, 0).map_err(cfg_err)?;
        let (map, name) = if dst { (&mut self.dsts, "decap_dsts") } else { (&mut self.srcs, "decap_srcs") };
        if keys.is_empty() {
            self.config.set(0, flags & !bit, 0).map_err(cfg_err)?;
            sync(map, name, keys)
        } else {
            sync(map, name, keys)?;
            self.config.set(0, flags | bit, 0).map_err(cfg_err)
        }
    }

    /// The attach mode that was chosen.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    pub fn stats(&self) -> Result<DecapStats, AfXdpError> {
        let [passed, gre, ipip, ip6ip, failed, filtered] = per_cpu_sums::<6>(&self.stats, "decap_stats")?;
        Ok(DecapStats { passed, gre, ipip, ip6ip, failed, filtered })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_c_layout() {
        let k = app_key("10.0.0.1".parse().unwrap(), 80, 6);
        assert_eq!(&k[..16], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
        assert_eq!(&k[16..], &[0, 80, 6, 0]);
        let k6 = app_key("2001:db8::1".parse().unwrap(), 0x1234, 17);
        assert_eq!(k6[0..2], [0x20, 0x01]);
        assert_eq!(k6[15], 1);
        assert_eq!(&k6[16..], &[0x12, 0x34, 17, 0]);
    }

    #[test]
    fn embedded_objects_are_bpf_elf() {
        for obj in [REDIRECT_OBJ, DECAP_OBJ] {
            assert_eq!(&obj[..4], b"\x7fELF");
            // e_machine (offset 18, little endian on this host) = EM_BPF (247).
            assert_eq!(u16::from_le_bytes([obj[18], obj[19]]), 247);
        }
    }
}
