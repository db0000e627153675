//! Live forwarding end to end, in network namespaces (root only; skipped with a
//! printed reason otherwise).
//!
//! The lab tests drive `lab/lab.sh` (client, router, l4lb, three HTTP backends; see
//! docs/LAB.md) with this test build of `l4lb` as the balancer: real HTTP over TCP
//! from the client through the VIPs (IPv4 and IPv6) in DNAT mode over AF_XDP and
//! AF_PACKET, and in GRE and IPIP mode with the backends' decapsulation companion;
//! every backend gets at least 15% of 90 requests per VIP (ideal: 33%); a backend set
//! down with `lab.sh backend beN down` (config rewrite + SIGHUP) takes no new
//! connections while a TCP connection held open to another backend across the change
//! still completes its request afterwards; ping and ARP/NDP to the l4lb host still
//! reach its kernel. The lab's namespace names are fixed, so lab tests run one at a
//! time (a lock), and a guard tears the lab down even when a test fails.
//!
//! The other tests start `l4lb run` directly: start-up errors are one line each, and
//! SIGTERM makes it exit 0 after printing its final counters.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use l4lb_tests::netns::{self, Netns};

const L4LB: &str = env!("CARGO_BIN_EXE_l4lb");
const BACKENDS: [&str; 3] = ["be1", "be2", "be3"];
const REQUESTS: u32 = 90;
/// Each backend's least share of REQUESTS requests (ideal 1/3).
const MIN_SHARE: f64 = 0.15;

static LAB_LOCK: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why the lab cannot run here, or `None`.
fn lab_skip_reason() -> Option<String> {
    if let Some(why) = netns::skip_reason() {
        return Some(why);
    }
    for tool in ["nft", "ethtool", "curl", "python3", "ss", "ping"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map_or(true, |o| !o.status.success())
        {
            return Some(format!("{tool} is not installed (scripts/test.sh installs it)"));
        }
    }
    None
}

fn run_cmd(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn lab(args: &[&str]) -> Output {
    run_cmd(Command::new(repo().join("lab/lab.sh")).args(args).env("L4LB", L4LB))
}

fn nsx(ns: &str, argv: &[&str]) -> Output {
    run_cmd(Command::new("ip").args(["netns", "exec", ns]).args(argv))
}

/// The lab, up for one test; down (and the lock released) on drop.
struct Lab {
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Lab {
    fn up(mode: &str, driver: &str) -> Option<Lab> {
        Lab::up_with(mode, driver, 1)
    }

    /// The lab with `workers` l4lb workers (the LB's veth then has as many queues).
    fn up_with(mode: &str, driver: &str, workers: u32) -> Option<Lab> {
        if let Some(why) = lab_skip_reason() {
            eprintln!("skipped: {why}");
            return None;
        }
        if driver == "af_xdp" && !cfg!(feature = "af_xdp") {
            eprintln!("skipped: this test build has no af_xdp feature (cargo test --features af_xdp)");
            return None;
        }
        let has_clang = Command::new("clang").arg("--version").output().is_ok_and(|o| o.status.success());
        if mode != "dnat" && !has_clang && !repo().join("bpf/decap.bpf.o").exists() {
            eprintln!("skipped: no clang to build the decapsulation companion (bpf/decap.bpf.c)");
            return None;
        }
        let lock = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let lab_guard = Lab { _lock: lock };
        let workers = workers.to_string();
        let out = lab(&["up", mode, "--driver", driver, "--balancer", "l4lb", "--workers", &workers]);
        let log = std::fs::read_to_string(repo().join("lab/run/l4lb.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "lab up {mode} --driver {driver}: {}{}\nl4lb log:\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if mode != "dnat" {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("XDP generic) on the backends"),
                "the decapsulation companion was not loaded: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Some(lab_guard)
    }

    /// `lab.sh curl N`: per VIP URL, requests answered by each backend and failures.
    fn curl(&self, n: u32) -> Vec<(String, [u32; 3], u32)> {
        let out = lab(&["curl", &n.to_string()]);
        assert!(out.status.success(), "lab curl: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rows = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let Some(url) = words.next() else { continue };
            let mut per = [0u32; 3];
            let mut failed = None;
            for w in words {
                let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("lab curl line {line:?}"));
                let v: u32 = v.parse().unwrap_or_else(|_| panic!("lab curl line {line:?}"));
                match k {
                    "failed" => failed = Some(v),
                    b => per[BACKENDS.iter().position(|x| *x == b).unwrap_or_else(|| panic!("{line:?}"))] = v,
                }
            }
            rows.push((url.to_owned(), per, failed.unwrap_or_else(|| panic!("lab curl line {line:?}"))));
        }
        assert_eq!(rows.len(), 2, "one line per VIP (IPv4, IPv6): {text}");
        rows
    }

    fn backend(&self, name: &str, state: &str) {
        let out = lab(&["backend", name, state]);
        assert!(out.status.success(), "lab backend {name} {state}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = lab(&["down"]);
    }
}

/// HTTP through both VIPs: all answered, every backend at least MIN_SHARE.
fn assert_spread(lab: &Lab, what: &str) {
    for (url, per, failed) in lab.curl(REQUESTS) {
        eprintln!("{what}: {url} be1={} be2={} be3={} failed={failed}", per[0], per[1], per[2]);
        assert_eq!(failed, 0, "{what}: {url}: {failed} of {REQUESTS} requests failed ({per:?})");
        assert_eq!(per.iter().sum::<u32>(), REQUESTS, "{what}: {url}: {per:?}");
        let min = (f64::from(REQUESTS) * MIN_SHARE).ceil() as u32;
        assert!(per.iter().all(|&n| n >= min), "{what}: {url}: a backend got less than {min} of {REQUESTS}: {per:?}");
    }
}

/// Ping (IPv4, IPv6) to the l4lb host, and ARP/NDP resolution of its addresses by the
/// router after flushing the router's neighbour cache: non-VIP traffic reaches the
/// l4lb host's kernel.
fn assert_host_traffic(what: &str) {
    for (fam, addr) in [("-4", "10.0.0.2"), ("-6", "fd00::2")] {
        let out = nsx("l4lb-client", &["ping", fam, "-c", "1", "-W", "2", addr]);
        assert!(out.status.success(), "{what}: ping {addr} from the client: {}", String::from_utf8_lossy(&out.stdout));
        nsx("l4lb-router", &["ip", fam, "neigh", "flush", "dev", "to-lb"]);
        let out = nsx("l4lb-router", &["ping", fam, "-c", "1", "-W", "2", addr]);
        assert!(out.status.success(), "{what}: ping {addr} from the router: {}", String::from_utf8_lossy(&out.stdout));
        let neigh = nsx("l4lb-router", &["ip", fam, "neigh", "show", addr, "dev", "to-lb"]);
        let neigh = String::from_utf8_lossy(&neigh.stdout).to_lowercase();
        assert!(
            neigh.contains("lladdr 02:00:00:00:00:01") && !neigh.contains("failed"),
            "{what}: the router did not resolve {addr} to the l4lb host's MAC: {neigh:?}"
        );
    }
}

/// A TCP connection to the IPv4 VIP from the client, held open half-way through an
/// HTTP request (a Python helper in the client namespace).
struct HeldConnection {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    local_port: u16,
}

const HOLD_PY: &str = r#"
import socket, sys
s = socket.create_connection(("198.51.100.10", 80), timeout=10)
s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n")
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
s.sendall(b"\r\n")
data = b""
while True:
    c = s.recv(4096)
    if not c:
        break
    data += c
print(data.split(b"\r\n\r\n", 1)[-1].decode().strip(), flush=True)
"#;

impl HeldConnection {
    fn open() -> HeldConnection {
        let mut child = Command::new("ip")
            .args(["netns", "exec", "l4lb-client", "timeout", "60", "python3", "-c", HOLD_PY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 in the client namespace");
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line).expect("held connection: local port");
        let local_port = line.trim().parse().unwrap_or_else(|_| {
            let mut err = String::new();
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("held connection did not connect: {line:?} {err}")
        });
        HeldConnection { child, out, local_port }
    }

    /// The backend whose HTTP server holds this connection (bounded wait).
    fn backend(&self) -> usize {
        // The backends' servers are dual-stack: the peer shows as [::ffff:172.16.0.2]:port.
        let (peer, mapped) = (format!("172.16.0.2:{}", self.local_port), format!("172.16.0.2]:{}", self.local_port));
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            for (i, b) in BACKENDS.iter().enumerate() {
                let out = nsx(&format!("l4lb-{b}"), &["ss", "-Htn", "state", "established", "( sport = :80 )"]);
                let text = String::from_utf8_lossy(&out.stdout);
                if text.contains(&peer) || text.contains(&mapped) {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no backend has an established connection from {peer}");
    }

    /// Finish the request; the body names the backend that answered.
    fn finish(mut self) -> String {
        let mut stdin = self.child.stdin.take().expect("piped");
        stdin.write_all(b"go\n").expect("held connection: stdin");
        drop(stdin);
        let mut body = String::new();
        let _ = self.out.read_to_string(&mut body);
        let status = self.child.wait().expect("held connection: wait");
        assert!(status.success(), "held connection failed after the change: {status} {body:?}");
        body.trim().to_owned()
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hold a connection to one backend, set another one down through the control path,
/// check the down one takes no new connections, then complete the held request.
fn assert_down_keeps_established(lab: &Lab, what: &str) {
    let held = HeldConnection::open();
    let held_be = held.backend();
    let down = (held_be + 1) % 3;
    lab.backend(BACKENDS[down], "down");
    let rows = lab.curl(30);
    let (url, per, failed) = &rows[0];
    eprintln!("{what}: {} down: {url} {per:?} failed={failed}", BACKENDS[down]);
    assert_eq!(*failed, 0, "{what}: requests failed after {} went down: {per:?}", BACKENDS[down]);
    assert_eq!(per[down], 0, "{what}: {} is down but took new connections: {per:?}", BACKENDS[down]);
    let body = held.finish();
    assert!(
        body.starts_with(&format!("backend {} ", BACKENDS[held_be])),
        "{what}: the connection held to {} across the change got {body:?}",
        BACKENDS[held_be]
    );
    lab.backend(BACKENDS[down], "up");
}

#[test]
fn dnat_over_af_xdp() {
    let Some(lab) = Lab::up("dnat", "af_xdp") else { return };
    assert_spread(&lab, "dnat/af_xdp");
    assert_host_traffic("dnat/af_xdp");
    assert_down_keeps_established(&lab, "dnat/af_xdp");
}

/// Two AF_XDP queues, a worker each. The router's transmit hash spreads flows over
/// the LB's two RX queues, so DNAT replies often arrive on the other queue than their
/// request; AF_XDP frames cannot move between queues (one UMEM each), so the workers
/// hand such packets over by copy. Every request must succeed, and the final counters
/// must show handoffs and no drops.
#[test]
fn dnat_over_af_xdp_with_two_workers() {
    let Some(up) = Lab::up_with("dnat", "af_xdp", 2) else { return };
    for (url, per, failed) in up.curl(20) {
        assert_eq!(failed, 0, "{url}: {per:?}");
        assert_eq!(per.iter().sum::<u32>(), 20, "{url}: {per:?}");
    }
    let out = lab(&["down"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let handoffs: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("handoff: "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no handoff line in l4lb's final counters:\n{text}"));
    assert!(handoffs > 0, "{text}");
    assert!(text.contains(" 0 dropped (2 workers)"), "{text}");
    drop(up);
}

#[test]
fn dnat_over_af_packet() {
    let Some(lab) = Lab::up("dnat", "af_packet") else { return };
    assert_spread(&lab, "dnat/af_packet");
    assert_host_traffic("dnat/af_packet");
    assert_down_keeps_established(&lab, "dnat/af_packet");
}

#[test]
fn gre_with_the_decap_companion() {
    // AF_XDP when built with it, else AF_PACKET: GRE is covered either way.
    let driver = if cfg!(feature = "af_xdp") { "af_xdp" } else { "af_packet" };
    let Some(lab) = Lab::up("gre", driver) else { return };
    let what = format!("gre/{driver}");
    assert_spread(&lab, &what);
    assert_host_traffic(&what);
    assert_down_keeps_established(&lab, &what);
}

#[test]
fn ipip_with_the_decap_companion() {
    let Some(lab) = Lab::up("ipip", "af_packet") else { return };
    assert_spread(&lab, "ipip/af_packet");
    assert_host_traffic("ipip/af_packet");
}

// ---- l4lb run started directly ----

const NODE: &str = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"

[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
  [[vip.backend]]
  address = "10.1.0.11"
"#;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("l4lb-live-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write config");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A namespace with one veth end `dev` (the peer in a second namespace), up.
fn veth_ns() -> Option<(Netns, Netns, String)> {
    if let Some(why) = netns::skip_reason() {
        eprintln!("skipped: {why}");
        return None;
    }
    let a = Netns::new("run").expect("netns");
    let b = Netns::new("peer").expect("netns");
    let (dev, _) = netns::veth_between(&a, &b, false).expect("veth");
    Some((a, b, dev))
}

/// `l4lb run` in `ns` with `config`, bounded to 20 s.
fn run_in(ns: &Netns, config: &Path) -> Output {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "timeout", "20", L4LB, "run", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("l4lb run");
    let end = Instant::now() + Duration::from_secs(25);
    while Instant::now() < end {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("l4lb run {} did not exit", config.display());
}

fn assert_one_line_error(out: &Output, what: &str, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: exit status {} (stderr {err:?})", out.status);
    assert_ne!(out.status.code(), Some(124), "{what}: l4lb run kept running instead of failing");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line on stderr, got {err:?}");
    assert!(lines[0].starts_with("error: "), "{what}: {:?}", lines[0]);
    assert!(lines[0].contains(needle), "{what}: {:?} does not mention {needle:?}", lines[0]);
}

#[test]
fn start_up_errors_are_one_line_each() {
    let Some((ns, _peer, dev)) = veth_ns() else { return };
    let tmp = TempDir::new("errors");

    let no_io = tmp.config("no-io.toml", NODE);
    assert_one_line_error(&run_in(&ns, &no_io), "no [io] table", "[io]");

    let missing =
        tmp.config("missing.toml", &format!("{NODE}\n[io]\ndriver = \"af_packet\"\ninterface = \"l4lb-nosuch0\"\n"));
    assert_one_line_error(&run_in(&ns, &missing), "missing interface (af_packet)", "l4lb-nosuch0");
    let missing_xdp =
        tmp.config("missing-xdp.toml", &format!("{NODE}\n[io]\ndriver = \"af_xdp\"\ninterface = \"l4lb-nosuch0\"\n"));
    let out = run_in(&ns, &missing_xdp);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if err.contains("without AF_XDP support") {
        eprintln!("AF_XDP part skipped: this test build has no af_xdp feature");
    } else {
        assert_one_line_error(&out, "missing interface (af_xdp)", "l4lb-nosuch0");
        // A veth has one RX queue: four workers cannot each get a queue.
        let queues = tmp.config(
            "queues.toml",
            &format!(
                "[dataplane]\nworkers = 4\n{NODE}\n[io]\ndriver = \"af_xdp\"\ninterface = \"{dev}\"\nxdp_mode = \"generic\"\n"
            ),
        );
        assert_one_line_error(&run_in(&ns, &queues), "bad queue count", "queue");
    }
}

#[test]
fn sigterm_exits_zero_with_final_counters() {
    let Some((ns, _peer, dev)) = veth_ns() else { return };
    let tmp = TempDir::new("sigterm");
    let cfg = tmp.config("run.toml", &format!("{NODE}\n[io]\ndriver = \"af_packet\"\ninterface = \"{dev}\"\n"));
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "timeout", "30", L4LB, "run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("l4lb run");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut err = BufReader::new(child.stderr.take().expect("piped"));
    let mut stdout = child.stdout.take().expect("piped");
    let guard = Kill(&mut child);
    // Wait for "forwarding" (bounded: the timeout(1) above ends l4lb after 30 s).
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).expect("stderr") == 0 {
            panic!("l4lb run exited before forwarding: {log}");
        }
        log.push_str(&line);
        if line.contains("forwarding") {
            break;
        }
    }
    // timeout(1) is the direct child and passes TERM on to l4lb.
    let pid = guard.0.id().to_string();
    run_cmd(Command::new("kill").args(["-TERM", &pid]));
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = guard.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < end, "l4lb run did not exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    stdout.read_to_string(&mut out).expect("stdout");
    let _ = err.read_to_string(&mut log);
    assert!(status.success(), "exit status after SIGTERM: {status}\nstdout: {out}\nstderr: {log}");
    assert!(out.contains("packets") && out.lines().count() >= 2, "final counters missing from stdout: {out:?}");
}

#[test]
fn gen_transmits_and_sink_counts_over_a_veth() {
    let Some((a, b, dev_a)) = veth_ns() else { return };
    let dev_b = b.exec(&["ls", "/sys/class/net"]).expect("ls");
    let dev_b = String::from_utf8_lossy(&dev_b.stdout)
        .split_whitespace()
        .find(|d| *d != "lo")
        .expect("the veth peer")
        .to_owned();
    let tmp = TempDir::new("gen");
    let cfg = tmp.config("gen.toml", NODE);
    let pcap = tmp.0.join("gen.pcap");
    let sink = Command::new("ip")
        .args(["netns", "exec", b.name(), "timeout", "20", L4LB, "sink", "--interface", &dev_b, "--duration", "3s"])
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("l4lb sink");
    std::thread::sleep(Duration::from_millis(300));
    // 100 generated 100-byte frames, looped to 5000 at 5000 pps (about a second), also written to a file.
    let out = run_cmd(
        Command::new("ip")
            .args(["netns", "exec", a.name(), "timeout", "20", L4LB, "gen", "--config"])
            .arg(&cfg)
            .args(["--flows", "10", "--packets", "100", "--size", "100", "--established-only", "--interface", &dev_a])
            .args(["--rate", "5000", "--count", "5000", "--loop", "--output"])
            .arg(&pcap),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "gen --interface: {text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("{dev_a}: sent 5000 packets (500000 bytes)")), "{text}");
    let words: Vec<&str> = text.split_whitespace().collect();
    let pps: f64 = words
        .windows(2)
        .find(|w| w[1] == "pps,")
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no rate in {text:?}"));
    assert!((4000.0..5500.0).contains(&pps), "achieved {pps} pps for a 5000 pps target: {text}");
    assert!(std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0) > 100 * 100, "--output not written");
    let out = sink.wait_with_output().expect("sink");
    assert!(out.status.success(), "sink: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sink --json");
    let packets = v["packets"].as_u64().expect("packets");
    assert!((4950..=5000).contains(&packets), "sink counted {packets} of 5000: {v}");
    assert_eq!(v["bytes"].as_u64(), Some(packets * 100), "{v}");
    assert!((4000.0..6000.0).contains(&v["pps"].as_f64().expect("pps")), "{v}");

    // A given capture, sent once as fast as possible.
    let out = run_cmd(
        Command::new("ip")
            .args(["netns", "exec", a.name(), "timeout", "20", L4LB, "gen", "--interface", &dev_a, "--input"])
            .arg(&pcap),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("sent 100 packets"), "gen --input: {text}");
    // Unusable options: one line.
    let out = run_cmd(Command::new(L4LB).args(["gen", "--interface", "l4lb-nosuch0", "--input"]).arg(&pcap));
    assert_one_line_error(&out, "gen on a missing interface", "l4lb-nosuch0");
}
