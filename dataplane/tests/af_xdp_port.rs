//! AF_XDP port and decapsulation companion, over veth pairs in network
//! namespaces this test creates (and deletes, even on failure).
//!
//! Root only: without root (or without `ip`, or scapy for /usr/bin/python3) each
//! test prints why it skips and passes. Work that must run inside a namespace
//! (the AF_XDP socket, the Rust loader) runs in a child: this test binary again,
//! under `ip netns exec`, selecting an `inner_*` test through an environment
//! variable. Run directly, an `inner_*` test has nothing to do and says so.
#![cfg(feature = "af_xdp")]

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dataplane::port::af_xdp::{
    AfXdpError, AfXdpPort, AttachMode, DecapProgram, XdpMode, XdpOptions, XskBuf, XskQueue, ZeroCopy,
};
use dataplane::port::{HEADROOM, PacketBuf, Port};

const PY: &str = "/usr/bin/python3";
const INNER_ENV: &str = "L4LB_AFXDP_INNER";
const PEER_ENV: &str = "L4LB_AFXDP_PEER";

// ---------------------------------------------------------------- helpers

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Why this machine cannot run the namespace tests, if it cannot.
fn skip_reason() -> Option<String> {
    if !is_root() {
        return Some("not root (network namespaces and XDP need root)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("iproute2 `ip` not found".into());
    }
    match Command::new(PY).args(["-c", "import scapy.all"]).output() {
        Ok(o) if o.status.success() => None,
        _ => Some(format!("scapy is not importable by {PY} (apt-get install python3-scapy)")),
    }
}

fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ns_sh(ns: &str, args: &[&str]) -> Output {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    sh(&v)
}

/// Network namespaces deleted on drop (their veths and processes' sockets go with them).
struct Netns(Vec<String>);

impl Netns {
    fn create(names: &[&str]) -> Netns {
        let guard = Netns(Vec::new());
        let mut guard = guard;
        for n in names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            sh(&["ip", "netns", "add", n]);
            guard.0.push(n.to_string());
            ns_sh(n, &["ip", "link", "set", "lo", "up"]);
        }
        guard
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// A child process killed on drop.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run `inner` (an `inner_*` test of this binary) inside namespace `ns`.
fn run_inner(ns: &str, inner: &str, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(exe).args(["--exact", inner, "--nocapture", "--test-threads=1"]);
    cmd.env(INNER_ENV, inner);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("re-run the test binary in the namespace");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("---- {inner} (in netns {ns}) ----\n{text}---- end {inner} ----");
    assert!(out.status.success(), "{inner} failed inside {ns}");
    assert!(text.contains("1 passed"), "{inner} did not run inside {ns}");
    text
}

/// Whether this process is the child run for `inner`.
fn is_inner(inner: &str) -> bool {
    if std::env::var(INNER_ENV).as_deref() == Ok(inner) {
        return true;
    }
    println!("{inner}: nothing to do when run directly (the outer test runs it inside its namespace)");
    false
}

fn mac_of(iface: &str) -> [u8; 6] {
    parse_mac(&std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).expect("interface MAC"))
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, p) in s.trim().split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(p, 16).expect("hex MAC");
    }
    m
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

// ---------------------------------------------------------------- (a) AF_XDP port

const LB_NS: &str = "l4lbx-lb";
const PEER_NS: &str = "l4lbx-peer";

/// Sends one frame per case from the peer; prints "label hex" for each.
const SEND_CASES: &str = r#"
import sys
from scapy.all import *
conf.verb = 0
iface, dmac = sys.argv[1], sys.argv[2]
E = Ether(src=get_if_hwaddr(iface), dst=dmac)
cases = [
  ("vip4", E/IP(src="10.77.0.2", dst="10.77.0.100")/TCP(sport=1001, dport=80, flags="S")),
  ("vip6", E/IPv6(src="fd77::2", dst="fd77::100")/TCP(sport=1002, dport=443, flags="S")),
  ("vip4_vlan", E/Dot1Q(vlan=7)/IP(src="10.77.0.2", dst="10.77.0.100")/TCP(sport=1003, dport=80, flags="S")),
  ("vip4_anyport_udp", E/IP(src="10.77.0.2", dst="10.77.0.101")/UDP(sport=1004, dport=5353)/Raw(b"q")),
  ("icmp4_vip", E/IP(src="10.77.0.2", dst="10.77.0.100")/ICMP(id=1005)),
  ("icmp6_vip", E/IPv6(src="fd77::2", dst="fd77::100")/ICMPv6EchoRequest(id=1006)),
  ("frag4_vip", E/IP(src="10.77.0.2", dst="10.77.0.100", flags="MF", id=1007, proto=17)/Raw(b"f"*16)),
  ("frag6_vip", E/IPv6(src="fd77::2", dst="fd77::100")/IPv6ExtHdrFragment(id=1008, m=1, nh=17)/Raw(b"g"*16)),
  ("dnat_reply", E/IP(src="10.77.0.50", dst="10.77.0.2")/TCP(sport=8080, dport=1009, flags="SA")),
  ("pass_port", E/IP(src="10.77.0.2", dst="10.77.0.100")/TCP(sport=1010, dport=81, flags="S")),
  ("pass_host", E/IP(src="10.77.0.2", dst="10.77.0.1")/UDP(sport=1011, dport=9)),
  ("pass_ndp", E/IPv6(src="fd77::2", dst="fd77::100")/ICMPv6ND_NS(tgt="fd77::100")),
  ("pass_arp", Ether(src=get_if_hwaddr(iface), dst="ff:ff:ff:ff:ff:ff")/ARP(pdst="10.77.0.100", psrc="10.77.0.2")),
]
for label, p in cases:
    print(label, bytes(p).hex())
sendp([p for _, p in cases], iface=iface)
"#;

/// Captures one IPIP frame on the peer; prints "ready" once capturing, then its hex.
const SNIFF_IPIP: &str = r#"
import sys
from scapy.all import *
conf.verb = 0
r = sniff(iface=sys.argv[1], filter="ip proto 4", count=1, timeout=10,
          started_callback=lambda: print("ready", flush=True))
for p in r:
    print(bytes(p).hex(), flush=True)
"#;

#[test]
fn af_xdp_port_over_veth() {
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let _ns = Netns::create(&[LB_NS, PEER_NS]);
    ns_sh(LB_NS, &["ip", "link", "add", "xl", "type", "veth", "peer", "name", "xp", "netns", PEER_NS]);
    for (ns, dev, v4, v6) in
        [(LB_NS, "xl", "10.77.0.1/24", "fd77::1/64"), (PEER_NS, "xp", "10.77.0.2/24", "fd77::2/64")]
    {
        ns_sh(ns, &["ip", "addr", "add", v4, "dev", dev]);
        ns_sh(ns, &["ip", "addr", "add", v6, "dev", dev, "nodad"]);
        ns_sh(ns, &["ip", "link", "set", dev, "up"]);
    }
    // A second pair with two queues, both ends in the l4lb namespace (multi-queue check).
    ns_sh(
        LB_NS,
        &[
            "ip",
            "link",
            "add",
            "xm",
            "numrxqueues",
            "2",
            "numtxqueues",
            "2",
            "type",
            "veth",
            "peer",
            "name",
            "xn",
            "numrxqueues",
            "2",
            "numtxqueues",
            "2",
        ],
    );
    ns_sh(LB_NS, &["ip", "link", "set", "xm", "up"]);
    ns_sh(LB_NS, &["ip", "link", "set", "xn", "up"]);
    let out = run_inner(LB_NS, "inner_af_xdp_port", &[(PEER_ENV, PEER_NS)]);
    assert!(out.contains("mode: native XDP, copy-mode AF_XDP"), "veth: native XDP and copy mode expected");
    // The program was detached when the port was dropped.
    let link = ns_sh(LB_NS, &["ip", "link", "show", "xl"]);
    assert!(!String::from_utf8_lossy(&link.stdout).contains("prog/xdp"), "XDP program still attached after drop");
}

fn rx_until(q: &mut XskQueue, want: usize, within: Duration) -> Vec<XskBuf> {
    let mut got = Vec::with_capacity(64);
    let t0 = Instant::now();
    while t0.elapsed() < within {
        let mut burst = Vec::with_capacity(32);
        q.rx_burst(&mut burst, 32);
        got.append(&mut burst);
        if got.len() > want {
            break;
        }
        if got.len() == want {
            // Linger a little: anything more is a frame that should have been passed.
            let settle = Instant::now();
            while settle.elapsed() < Duration::from_millis(300) {
                q.rx_burst(&mut got, 32);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    got
}

#[test]
fn inner_af_xdp_port() {
    if !is_inner("inner_af_xdp_port") {
        return;
    }
    let peer = std::env::var(PEER_ENV).expect("peer namespace");

    // Start-up errors: zero copy forced on veth (no driver support), too many queues.
    let zc = AfXdpPort::open("xl", 1, XdpOptions { zero_copy: ZeroCopy::On, ..Default::default() });
    match zc {
        Err(e @ AfXdpError::ZeroCopyUnsupported { .. }) => println!("zero_copy=on: {e}"),
        Err(e) => panic!("zero_copy=on on veth: unexpected error {e}"),
        Ok((p, _)) => panic!("veth accepted zero copy ({})", p.mode()),
    }
    let e = AfXdpPort::open("xl", 2, XdpOptions::default()).err().expect("veth has one RX queue");
    assert!(matches!(e, AfXdpError::BadQueueCount { queues: 2, available: 1, .. }), "{e}");
    println!("queues=2: {e}");

    // Another XDP program already on the interface: a one-line attach error.
    sh(&["ip", "link", "set", "dev", "xl", "xdp", "obj", DECAP_OBJ, "sec", "xdp"]);
    let e = AfXdpPort::open("xl", 1, XdpOptions::default()).err().expect("interface busy");
    println!("busy: {e}");
    assert!(matches!(e, AfXdpError::Attach { .. }), "{e}");
    assert!(!e.to_string().contains('\n'));
    sh(&["ip", "link", "set", "dev", "xl", "xdp", "off"]);

    let (mut port, mut queues) = AfXdpPort::open("xl", 1, XdpOptions::default()).expect("open AF_XDP on xl");
    println!("mode: {}", port.mode());
    assert_eq!(port.mode().attach, AttachMode::Native);
    assert!(!port.mode().zero_copy);
    let v4: IpAddr = "10.77.0.100".parse().unwrap();
    let v4any: IpAddr = "10.77.0.101".parse().unwrap();
    let v6: IpAddr = "fd77::100".parse().unwrap();
    port.set_vips(&[(v4, 80, 6), (v6, 443, 6), (v4any, 0, 17), ("10.77.0.102".parse().unwrap(), 80, 6)]).unwrap();
    // A refresh drops what is gone (10.77.0.102) and keeps the rest.
    port.set_vips(&[(v4, 80, 6), (v6, 443, 6), (v4any, 0, 17)]).unwrap();
    port.set_vip_addrs(&[v4, v4any, v6]).unwrap();
    port.set_dnat_backends(&[("10.77.0.50".parse().unwrap(), 8080, 6)]).unwrap();
    let q = &mut queues[0];

    // Host traffic still reaches the kernel while the program is attached.
    ns_sh(&peer, &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.77.0.1"]);
    ns_sh(&peer, &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd77::1"]);
    let mut stray = Vec::new();
    q.rx_burst(&mut stray, 32);
    assert!(stray.is_empty(), "host traffic (ping, ARP, NDP) reached the AF_XDP socket");

    let mac = mac_of("xl");
    let mac_s = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let sent = ns_sh(&peer, &[PY, "-c", SEND_CASES, "xp", &mac_s]);
    let cases: Vec<(String, Vec<u8>)> = String::from_utf8_lossy(&sent.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), unhex(b))))
        .collect();
    assert_eq!(cases.len(), 13, "sender printed every case");
    let expect: Vec<&(String, Vec<u8>)> = cases.iter().filter(|(l, _)| !l.starts_with("pass_")).collect();

    let mut got = rx_until(q, expect.len(), Duration::from_secs(5));
    let mut labels: Vec<&str> = Vec::new();
    for b in &got {
        let hit = cases.iter().find(|(_, f)| f.as_slice() == b.data());
        let label = hit.map_or("unknown", |(l, _)| l.as_str());
        assert!(b.headroom() >= HEADROOM, "{label}: headroom {} < {HEADROOM}", b.headroom());
        labels.push(label);
    }
    println!("received {labels:?}; headroom of the first frame: {}", got.first().map_or(0, |b| b.headroom()));
    let mut want: Vec<&str> = expect.iter().map(|(l, _)| l.as_str()).collect();
    labels.sort_unstable();
    want.sort_unstable();
    assert_eq!(labels, want, "exactly the VIP, VIP-address and DNAT-reply frames are redirected");

    let v = port.verdicts().unwrap();
    println!("verdicts: {v:?}");
    assert_eq!(v.redirect_vip, 4);
    assert_eq!(v.redirect_vip_addr, 4);
    assert_eq!(v.redirect_dnat, 1);
    assert!(v.pass_not_ip >= 1 && v.pass_no_match >= 3, "ARP and non-VIP traffic passed");
    assert_eq!(v.pass_no_socket + v.redirect_failed, 0);

    // Transmit the IPv4 VIP SYN back, IPIP-encapsulated in place (prepend, no copy).
    let idx = got.iter().position(|b| cases.iter().any(|(l, f)| l == "vip4" && f.as_slice() == b.data())).unwrap();
    let mut b = got.swap_remove(idx);
    let addr_before = b.data().as_ptr() as usize;
    let inner_len = b.len() - 14;
    assert!(b.adj(14), "strip the Ethernet header");
    assert!(b.prepend(14 + 20), "prepend Ethernet + outer IPv4 into the headroom");
    assert_eq!(b.data().as_ptr() as usize, addr_before - 20, "frame grew in place");
    let peer_mac = parse_mac(&String::from_utf8_lossy(&ns_sh(&peer, &["cat", "/sys/class/net/xp/address"]).stdout));
    let d = b.data_mut();
    d[0..6].copy_from_slice(&peer_mac);
    d[6..12].copy_from_slice(&mac);
    d[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut d[14..34];
    ip.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 4, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2]);
    ip[2..4].copy_from_slice(&((20 + inner_len) as u16).to_be_bytes());
    let c = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let frame = b.data().to_vec();

    let mut sniffer = Reaper(Some(
        Command::new("ip")
            .args(["netns", "exec", &peer, PY, "-c", SNIFF_IPIP, "xp"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the sniffer"),
    ));
    let stdout = sniffer.0.as_mut().unwrap().stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"), "sniffer started");
    let mut tx = vec![b];
    q.tx_burst(&mut tx);
    assert!(tx.is_empty());
    let captured = lines.next().and_then(Result::ok).expect("the peer captured the transmitted frame");
    assert_eq!(unhex(captured.trim()), frame, "the peer received exactly the frame sent with tx_burst");
    println!("tx_burst: peer captured the {}-byte IPIP frame", frame.len());
    let t0 = Instant::now();
    while q.tx_in_flight() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(2), "TX completion never came back");
        std::thread::sleep(Duration::from_millis(1));
    }

    // to_host: counted and recycled (docs/AF_XDP.md).
    let mut host = vec![got.pop().expect("frames left")];
    q.to_host(&mut host);
    assert!(host.is_empty());

    let s = q.stats();
    println!("port stats: {s:?}");
    assert_eq!(s.host_packets, 1);
    assert_eq!(s.tx_packets, 1);
    assert_eq!(s.rx_packets, expect.len() as u64);
    q.free(&mut got);
    drop(queues);
    drop(port);

    multi_queue();

    // Generic (skb) mode, forced: the same program and sockets work there too.
    let opts = XdpOptions { mode: XdpMode::Generic, ring_size: 256, ..Default::default() };
    let (mut port, mut queues) = AfXdpPort::open("xl", 1, opts).expect("open in generic mode");
    println!("forced generic: {}", port.mode());
    assert_eq!(port.mode().attach, AttachMode::Generic);
    port.set_vips(&[(v4, 80, 6)]).unwrap();
    ns_sh(&peer, &[PY, "-c", SEND_CASES, "xp", &mac_s]);
    let mut got = rx_until(&mut queues[0], 2, Duration::from_secs(5));
    let vip4 = cases.iter().filter(|(l, _)| l == "vip4" || l == "vip4_vlan").count();
    assert_eq!(got.len(), vip4, "generic mode redirects the VIP frames only");
    assert!(got.iter().all(|b| cases.iter().any(|(l, f)| l.starts_with("vip4") && f.as_slice() == b.data())));
    queues[0].free(&mut got);
}

/// 64 flows to a VIP over a two-queue veth: one socket per queue, every flow
/// received once, and (RSS-like spreading by the sender's flow hash) both queues used.
fn multi_queue() {
    const SEND_FLOWS: &str = r#"
import sys
from scapy.all import *
conf.verb = 0
E = Ether(src=get_if_hwaddr(sys.argv[1]), dst=sys.argv[2])
sendp([E/IP(src="10.77.1.2", dst="10.77.0.100")/UDP(sport=3000 + i, dport=53)/Raw(b"m") for i in range(64)], iface=sys.argv[1])
"#;
    let (mut port, mut queues) =
        AfXdpPort::open("xm", 2, XdpOptions { ring_size: 512, ..Default::default() }).expect("open two queues on xm");
    assert_eq!(queues.iter().map(|q| q.queue_id()).collect::<Vec<_>>(), vec![0, 1]);
    port.set_vips(&[("10.77.0.100".parse().unwrap(), 53, 17)]).unwrap();
    let xm_mac = std::fs::read_to_string("/sys/class/net/xm/address").unwrap();
    sh(&[PY, "-c", SEND_FLOWS, "xn", xm_mac.trim()]);
    let mut ports = Vec::new();
    let mut per_queue = [0usize; 2];
    let t0 = Instant::now();
    while ports.len() < 64 && t0.elapsed() < Duration::from_secs(5) {
        for (i, q) in queues.iter_mut().enumerate() {
            let mut got = Vec::with_capacity(32);
            per_queue[i] += q.rx_burst(&mut got, 32);
            ports.extend(got.iter().map(|b| u16::from_be_bytes([b.data()[34], b.data()[35]])));
            q.free(&mut got);
        }
    }
    ports.sort_unstable();
    println!("multi-queue: per queue {per_queue:?}");
    assert_eq!(ports, (3000..3064).collect::<Vec<u16>>(), "every flow received exactly once");
    assert!(per_queue.iter().all(|&n| n > 0), "both queues received flows: {per_queue:?}");
}

// ---------------------------------------------------------------- (b) decap companion

const CLIENT_NS: &str = "l4lbx-client";
const BACKEND_NS: &str = "l4lbx-backend";
const DECAP_OBJ: &str = concat!(env!("OUT_DIR"), "/decap.bpf.o");

/// From the client: for each tunnel case send an encapsulated SYN to the VIP and
/// wait for the SYN-ACK from the VIP (direct server return). Prints "case ok|FAIL".
const SEND_TUNNELED_SYN: &str = r#"
import sys, time
from scapy.all import *
conf.verb = 0
iface, dmac, attempts = sys.argv[1], sys.argv[2], int(sys.argv[3])
only = sys.argv[4].split(",") if len(sys.argv) > 4 else None
E = Ether(src=get_if_hwaddr(iface), dst=dmac)
O4 = IP(src="10.78.0.1", dst="10.78.0.2")
O6 = IPv6(src="fd78::1", dst="fd78::2")
def syn4(sport): return IP(src="10.78.0.1", dst="10.78.9.9")/TCP(sport=sport, dport=80, flags="S", seq=1000)
def syn6(sport): return IPv6(src="fd78::1", dst="fd78:9::9")/TCP(sport=sport, dport=80, flags="S", seq=1000)
cases = [
  ("gre_v4_in_v4", E/O4/GRE(proto=0x0800)/syn4(2001), "10.78.9.9", 2001),
  ("gre_v6_in_v4", E/O4/GRE(proto=0x86dd)/syn6(2002), "fd78:9::9", 2002),
  ("gre_v4_in_v6", E/O6/GRE(proto=0x0800)/syn4(2003), "10.78.9.9", 2003),
  ("gre_v6_in_v6", E/O6/GRE(proto=0x86dd)/syn6(2004), "fd78:9::9", 2004),
  ("gre_key_v4_in_v4", E/O4/GRE(proto=0x0800, key_present=1, key=7)/syn4(2005), "10.78.9.9", 2005),
  ("ipip_v4_in_v4", E/IP(src="10.78.0.1", dst="10.78.0.2", proto=4)/syn4(2006), "10.78.9.9", 2006),
  ("ipip_v6_in_v4", E/IP(src="10.78.0.1", dst="10.78.0.2", proto=41)/syn6(2007), "fd78:9::9", 2007),
  ("ipip_v4_in_v6", E/IPv6(src="fd78::1", dst="fd78::2", nh=4)/syn4(2008), "10.78.9.9", 2008),
  ("ipip_v6_in_v6", E/IPv6(src="fd78::1", dst="fd78::2", nh=41)/syn6(2009), "fd78:9::9", 2009),
]
for label, pkt, vip, sport in cases:
    if only and label not in only:
        continue
    ok = False
    for attempt in range(attempts):
        s = AsyncSniffer(iface=iface, filter="tcp and src port 80 and dst port %d" % sport, count=1, timeout=2)
        s.start()
        time.sleep(0.3)
        sendp(pkt, iface=iface)
        s.join()
        for r in s.results:
            l3 = r[IP] if IP in r else r[IPv6]
            if l3.src == vip and r[TCP].flags == "SA" and r[TCP].ack == 1001:
                ok = True
        if ok:
            break
    print(label, "ok" if ok else "FAIL", flush=True)
"#;

fn decap_topology() -> Netns {
    let ns = Netns::create(&[CLIENT_NS, BACKEND_NS]);
    ns_sh(CLIENT_NS, &["ip", "link", "add", "c0", "type", "veth", "peer", "name", "b0", "netns", BACKEND_NS]);
    for (n, dev, v4, v6) in
        [(CLIENT_NS, "c0", "10.78.0.1/24", "fd78::1/64"), (BACKEND_NS, "b0", "10.78.0.2/24", "fd78::2/64")]
    {
        ns_sh(n, &["ip", "addr", "add", v4, "dev", dev]);
        ns_sh(n, &["ip", "addr", "add", v6, "dev", dev, "nodad"]);
        ns_sh(n, &["ip", "link", "set", dev, "up"]);
    }
    // The VIPs live on the backend's loopback; the client reaches the backend directly.
    ns_sh(BACKEND_NS, &["ip", "addr", "add", "10.78.9.9/32", "dev", "lo"]);
    ns_sh(BACKEND_NS, &["ip", "addr", "add", "fd78:9::9/128", "dev", "lo", "nodad"]);
    ns_sh(BACKEND_NS, &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    ns_sh(BACKEND_NS, &["sysctl", "-qw", "net.ipv4.conf.b0.rp_filter=0"]);
    ns
}

/// Run the tunnel cases (`only`: a comma-separated subset, or "" for all) with up
/// to `attempts` tries each.
fn run_tunnel_cases(attempts: u32, only: &str) -> Vec<(String, bool)> {
    let b_mac =
        String::from_utf8_lossy(&ns_sh(BACKEND_NS, &["cat", "/sys/class/net/b0/address"]).stdout).trim().to_string();
    let attempts = attempts.to_string();
    let mut args = vec![PY, "-c", SEND_TUNNELED_SYN, "c0", &b_mac, &attempts];
    if !only.is_empty() {
        args.push(only);
    }
    let out = ns_sh(CLIENT_NS, &args);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b == "ok")))
        .collect()
}

#[test]
fn decap_companion_gre_and_ipip() {
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let _ns = decap_topology();
    // A real TCP listener on VIP:80 (both families).
    let server = Command::new("ip")
        .args(["netns", "exec", BACKEND_NS, PY, "-m", "http.server", "80", "--bind", "::"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the HTTP server");
    let _server = Reaper(Some(server));
    let t0 = Instant::now();
    while !String::from_utf8_lossy(&ns_sh(BACKEND_NS, &["ss", "-Hltn", "sport = :80"]).stdout).contains(":80") {
        assert!(t0.elapsed() < Duration::from_secs(10), "HTTP server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Without the companion nothing answers (this kernel has no tunnel devices).
    let baseline = run_tunnel_cases(1, "");
    assert_eq!(baseline.len(), 9);
    assert!(baseline.iter().all(|(_, ok)| !ok), "a tunnelled SYN was answered without decapsulation: {baseline:?}");

    // 1. Loaded with plain iproute2, as docs/DECAP.md shows.
    ns_sh(BACKEND_NS, &["ip", "link", "set", "dev", "b0", "xdpgeneric", "obj", DECAP_OBJ, "sec", "xdp"]);
    let results = run_tunnel_cases(3, "");
    println!("iproute2 (xdpgeneric): {results:?}");
    assert_eq!(results.len(), 9);
    for (case, ok) in &results {
        assert!(ok, "{case}: no SYN-ACK from the VIP with decap.bpf.o loaded by iproute2");
    }
    ns_sh(BACKEND_NS, &["ip", "link", "set", "dev", "b0", "xdpgeneric", "off"]);

    // 2. Loaded by the Rust loader (native mode on veth), with its counters.
    let out = run_inner(BACKEND_NS, "inner_decap_rust_loader", &[]);
    assert!(out.contains("decap attached: native"), "Rust loader attached natively on veth");
}

#[test]
fn inner_decap_rust_loader() {
    if !is_inner("inner_decap_rust_loader") {
        return;
    }
    let decap = DecapProgram::attach("b0", XdpMode::Auto).expect("attach the decap companion");
    println!("decap attached: {}", decap.mode());
    let results = run_tunnel_cases(3, "");
    println!("rust loader: {results:?}");
    assert_eq!(results.len(), 9);
    for (case, ok) in &results {
        assert!(ok, "{case}: no SYN-ACK from the VIP with the Rust-loaded companion");
    }
    // Plain traffic passes untouched (and is counted as passed).
    ns_sh(CLIENT_NS, &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.78.0.2"]);
    ns_sh(CLIENT_NS, &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd78::2"]);
    let s = decap.stats().unwrap();
    println!("decap stats: {s:?}");
    assert!(s.gre >= 5 && s.ipip >= 2 && s.ip6ip >= 2, "every tunnel kind was decapsulated: {s:?}");
    assert!(s.passed >= 1, "plain traffic (ping) passed untouched");
    assert_eq!(s.failed, 0);
    assert_eq!(s.filtered, 0);

    // Filters: outer destination must be ours, outer source must be a load balancer.
    let two = "gre_v4_in_v4,ipip_v6_in_v6";
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut decap = decap;
    decap.set_local_addrs(&[ip("10.78.0.99"), ip("fd78::99")]).unwrap();
    let r = run_tunnel_cases(1, two);
    assert!(r.len() == 2 && r.iter().all(|(_, ok)| !ok), "decapsulated for a foreign endpoint: {r:?}");
    decap.set_local_addrs(&[ip("10.78.0.2"), ip("fd78::2")]).unwrap();
    decap.set_allowed_sources(&[ip("10.78.0.77")]).unwrap();
    let r = run_tunnel_cases(1, two);
    assert!(r.len() == 2 && r.iter().all(|(_, ok)| !ok), "decapsulated from a foreign source: {r:?}");
    decap.set_allowed_sources(&[ip("10.78.0.1"), ip("fd78::1")]).unwrap();
    let r = run_tunnel_cases(3, two);
    assert!(r.len() == 2 && r.iter().all(|(_, ok)| *ok), "filters let the right endpoints through: {r:?}");
    decap.set_local_addrs(&[]).unwrap();
    decap.set_allowed_sources(&[]).unwrap();
    let r = run_tunnel_cases(3, two);
    assert!(r.iter().all(|(_, ok)| *ok), "filters off again: {r:?}");
    let s = decap.stats().unwrap();
    println!("decap stats after the filter checks: {s:?}");
    assert!(s.filtered >= 4, "filtered packets are counted: {s:?}");
}

// ---------------------------------------------------------------- forwarding rate

const FA_NS: &str = "l4lbx-fwd-a";
const FB_NS: &str = "l4lbx-fwd-b";
const RUN_ENV: &str = "L4LB_AFXDP_SECS";
const MAC_ENV: &str = "L4LB_AFXDP_DST_MAC";

/// A 60-byte UDP frame 10.77.0.2:1234 -> 10.77.0.100:9 (the VIP).
fn udp_frame(dst: [u8; 6], src: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..34].copy_from_slice(&[0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 2, 10, 77, 0, 100]);
    let c = ipv4_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..42].copy_from_slice(&[0x04, 0xd2, 0, 9, 0, 26, 0, 0]);
    f
}

fn vip_port(iface: &str) -> (AfXdpPort, XskQueue) {
    let (mut port, mut queues) = AfXdpPort::open(iface, 1, XdpOptions::default()).expect("open AF_XDP");
    port.set_vips(&[("10.77.0.100".parse().unwrap(), 9, 17)]).unwrap();
    let q = queues.pop().unwrap();
    (port, q)
}

/// Reflector (one worker, run to completion): receive, swap MACs, transmit.
#[test]
fn inner_reflector() {
    if !is_inner("inner_reflector") {
        return;
    }
    let secs: u64 = std::env::var(RUN_ENV).unwrap().parse().unwrap();
    let (port, mut q) = vip_port("xl");
    println!("ready {}", port.mode());
    let mut burst = Vec::with_capacity(32);
    let t0 = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = t0;
    while t0.elapsed() < Duration::from_secs(secs) {
        if q.rx_burst(&mut burst, 32) == 0 {
            continue;
        }
        first.get_or_insert_with(Instant::now);
        last = Instant::now();
        for b in burst.iter_mut() {
            let d = b.data_mut();
            let (dst, src) = d.split_at_mut(6);
            dst.swap_with_slice(&mut src[..6]);
        }
        q.tx_burst(&mut burst);
    }
    let s = q.stats();
    let span = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    println!(
        "reflector: rx {} tx {} tx_dropped {} over {span:.2}s = {:.0} pps",
        s.rx_packets,
        s.tx_packets,
        s.tx_dropped,
        s.tx_packets as f64 / span.max(1e-9)
    );
    if let Ok(k) = q.kernel_stats() {
        println!(
            "reflector kernel: rx_dropped {} rx_ring_full {} fill_ring_empty {}",
            k.rx_dropped, k.rx_ring_full, k.rx_fill_ring_empty_descs
        );
    }
    assert!(s.tx_packets > 0, "reflector forwarded nothing");
}

/// Generator: transmit 60-byte UDP frames to the VIP as fast as it can, count reflections.
#[test]
fn inner_generator() {
    if !is_inner("inner_generator") {
        return;
    }
    let secs: u64 = std::env::var(RUN_ENV).unwrap().parse().unwrap();
    let frame = udp_frame(parse_mac(&std::env::var(MAC_ENV).unwrap()), mac_of("xp"));
    let (_port, mut q) = vip_port("xp");
    let mut tx = Vec::with_capacity(32);
    let mut rx = Vec::with_capacity(32);
    let t0 = Instant::now();
    let run = Duration::from_secs(secs);
    let mut received = 0u64;
    while t0.elapsed() < run {
        while tx.len() < 32 {
            let Some(mut b) = q.alloc() else { break };
            assert!(b.append(frame.len()));
            b.data_mut().copy_from_slice(&frame);
            tx.push(b);
        }
        q.tx_burst(&mut tx);
        received += q.rx_burst(&mut rx, 32) as u64;
        q.free(&mut rx);
    }
    // Drain reflections still in flight.
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_millis(500) {
        received += q.rx_burst(&mut rx, 32) as u64;
        q.free(&mut rx);
    }
    let s = q.stats();
    let secs = secs as f64;
    println!(
        "generator: sent {} ({:.0} pps), tx_dropped {}, reflected back {} ({:.0} pps, {:.1}%)",
        s.tx_packets,
        s.tx_packets as f64 / secs,
        s.tx_dropped,
        received,
        received as f64 / secs,
        100.0 * received as f64 / s.tx_packets.max(1) as f64
    );
    assert!(s.tx_packets > 0 && received > 0 && received <= s.tx_packets);
}

#[test]
fn af_xdp_forwarding_rate_between_namespaces() {
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let secs = std::env::var(RUN_ENV).unwrap_or_else(|_| "2".into());
    let _ns = Netns::create(&[FA_NS, FB_NS]);
    ns_sh(FA_NS, &["ip", "link", "add", "xl", "type", "veth", "peer", "name", "xp", "netns", FB_NS]);
    ns_sh(FA_NS, &["ip", "link", "set", "xl", "up"]);
    ns_sh(FB_NS, &["ip", "link", "set", "xp", "up"]);
    let xl_mac =
        String::from_utf8_lossy(&ns_sh(FA_NS, &["cat", "/sys/class/net/xl/address"]).stdout).trim().to_string();

    let exe = std::env::current_exe().expect("test binary path");
    let mut reflector = Reaper(Some(
        Command::new("ip")
            .args(["netns", "exec", FA_NS])
            .arg(&exe)
            .args(["--exact", "inner_reflector", "--nocapture", "--test-threads=1"])
            .env(INNER_ENV, "inner_reflector")
            .env(RUN_ENV, (secs.parse::<u64>().unwrap() + 2).to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the reflector"),
    ));
    let stdout = reflector.0.as_mut().unwrap().stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    assert!(lines.by_ref().any(|l| l.contains("ready")), "reflector started");
    let gen_out = run_inner(FB_NS, "inner_generator", &[(RUN_ENV, &secs), (MAC_ENV, &xl_mac)]);
    let rest: Vec<String> = lines.collect();
    let status = reflector.0.take().unwrap().wait().expect("reflector exit");
    println!("---- inner_reflector ----\n{}\n----", rest.join("\n"));
    assert!(status.success(), "reflector failed");
    assert!(gen_out.contains("generator: sent"));
    assert!(rest.iter().any(|l| l.starts_with("reflector: rx")), "reflector reported its rate");
}

/// Without privileges, opening the port fails with the one-line permission error.
#[test]
fn open_without_root_is_a_permission_error() {
    if is_root() {
        println!("skipped: running as root (run the test binary as an ordinary user to check this)");
        return;
    }
    let e = AfXdpPort::open("lo", 1, XdpOptions::default()).err().expect("no AF_XDP without privileges");
    println!("{e}");
    assert!(matches!(e, AfXdpError::Permission(_)), "{e}");
    assert!(e.to_string().starts_with("permission denied"));
}
