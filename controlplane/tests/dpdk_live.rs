//! `l4lb run` on DPDK with live TCP through a DNAT VIP (root only, feature `dpdk`).
//!
//! Five network namespaces: a router `rt` joined by veth pairs to the client `cl`,
//! two backends `b1`, `b2`, and the load balancer `lb`. l4lb runs inside `lb` on DPDK's
//! `net_af_packet` vdev bound to its veth end (one-armed: everything enters and leaves
//! on that port). `node.mac` is that veth's MAC, `node.gateway_mac` the router's side.
//!
//! ```text
//!   cl 10.77.1.2 ── 10.77.1.1 ┐
//!   b1 10.77.2.2 ── 10.77.2.1 ┤ rt ── 10.77.0.1 ═══ lb (l4lb on net_af_packet, no IP)
//!   b2 10.77.3.2 ── 10.77.3.1 ┘
//! ```
//!
//! The router sends VIP 10.77.100.1 to the load balancer (a static neighbour entry
//! for 10.77.0.2 with node.mac: nothing answers ARP behind DPDK) and, by policy
//! routing on the backends' interfaces, sends the backends' replies back through it
//! too. l4lb rewrites client → VIP:80 to backend:8080 and the replies back to the
//! VIP. A TCP server per backend (a listener opened inside its namespace) answers
//! HTTP/1.0 requests with its name; the client makes real TCP connections to the
//! VIP (curl when installed, else a std `TcpStream`). Every request must succeed and
//! both backends must serve some. Run with one worker, then two (two af_packet queue
//! pairs in a fanout group: replies may reach the other worker and are handed to the
//! connection's owner). Namespaces and processes are removed on drop, also on failure.
//!
//! The host exception path (`io.dpdk.host_tap`): l4lb adds a TAP interface `l4lbh0`
//! with `node.mac` in `lb`, which the test gives the node's address 10.77.0.2/24. The
//! kernel is kept off the veth itself (nftables drops IP and ARP arriving on it; the
//! af_packet socket sees frames before that), so the only way to the kernel is
//! through l4lb: the router forgets its static neighbour entry and pings 10.77.0.2
//! and fd77::2, which needs ARP, NDP and ICMP to go to the host through the TAP and
//! the kernel's answers to come back out through the DPDK port.

#![cfg(feature = "dpdk")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use l4lb_tests::netns::{self, Netns};

const REQUESTS: usize = 24;
const VIP: &str = "10.77.100.1";

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Removes DPDK's runtime directory of a `--file-prefix` on drop (the EAL leaves
/// `/var/run/dpdk/PREFIX` behind even with `--no-shconf`).
struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.0));
    }
}

/// Kills the process on drop.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Stops a server thread on drop.
struct StopOnDrop(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

fn mac_of(ns: &Netns, dev: &str) -> String {
    let out = ns.ip(&["-o", "link", "show", "dev", dev]).unwrap();
    let mut words = out.split_whitespace();
    words.find(|w| *w == "link/ether").expect("an Ethernet device");
    words.next().expect("a MAC").to_string()
}

/// A minimal HTTP/1.0 server on `listener`: answers every request with `name`.
fn serve(listener: TcpListener, name: &'static str) -> StopOnDrop {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    listener.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = format!("served by {name}\n");
                    let _ = write!(c, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    StopOnDrop(stop, Some(h))
}

/// One HTTP GET to the VIP from the client namespace; the response body.
fn get(cl: &Netns, curl: bool) -> Result<String, String> {
    if curl {
        let out = cl
            .exec(&["curl", "-sS", "--max-time", "5", "--retry", "0", &format!("http://{VIP}/")])
            .map_err(|e| e.to_string())?;
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    cl.enter(|| -> Result<String, String> {
        let addr: SocketAddr = format!("{VIP}:80").parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n").map_err(|e| e.to_string())?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
        if !resp.starts_with("HTTP/1.0 200 OK") {
            return Err(format!("bad response {resp:?}"));
        }
        Ok(resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
    })
    .map_err(|e| e.to_string())?
}

/// Field `i` of the final summary's `packets: N in, N sent, N to host, ...` line,
/// whose text after the number is `suffix`.
fn summary_count(summary: &str, i: usize, suffix: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.strip_prefix("packets: "))
        .and_then(|l| l.split(", ").nth(i))
        .and_then(|s| s.strip_suffix(suffix))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {suffix:?} count in the packets line: {summary}"))
}

fn wait_for(log: &Path, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("l4lb run exited ({st}) before {what:?}: {text}");
        }
        assert!(Instant::now() < deadline, "no {what:?} within 30 s: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dpdk_dnat_live_tcp_through_vip() {
    if let Some(why) = netns::skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = TempDir(std::env::temp_dir().join(format!("l4lb-test-{}-dpdk-live", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();

    let rt = Netns::new("rt").unwrap();
    let lb = Netns::new("lb").unwrap();
    let cl = Netns::new("cl").unwrap();
    let b1 = Netns::new("b1").unwrap();
    let b2 = Netns::new("b2").unwrap();
    let (lb_if, rt_lb) = netns::veth_between(&lb, &rt, false).unwrap();
    let (cl_if, rt_cl) = netns::veth_between(&cl, &rt, false).unwrap();
    let (b1_if, rt_b1) = netns::veth_between(&b1, &rt, false).unwrap();
    let (b2_if, rt_b2) = netns::veth_between(&b2, &rt, false).unwrap();
    // Frames with real checksums (veths otherwise leave them to an "offload" that
    // never happens, which l4lb's incremental checksum updates would carry along).
    for (ns, dev) in [(&lb, &lb_if), (&rt, &rt_lb), (&cl, &cl_if), (&rt, &rt_cl), (&b1, &b1_if)] {
        ns.disable_offloads(dev).unwrap();
    }
    for (ns, dev) in [(&rt, &rt_b1), (&b2, &b2_if), (&rt, &rt_b2)] {
        ns.disable_offloads(dev).unwrap();
    }
    let lb_mac = mac_of(&lb, &lb_if);
    let gw_mac = mac_of(&rt, &rt_lb);

    for (ns, dev, addr, gw) in [
        (&cl, &cl_if, "10.77.1.2/24", "10.77.1.1"),
        (&b1, &b1_if, "10.77.2.2/24", "10.77.2.1"),
        (&b2, &b2_if, "10.77.3.2/24", "10.77.3.1"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", dev]).unwrap();
        ns.ip(&["route", "add", "default", "via", gw]).unwrap();
    }
    rt.ip(&["addr", "add", "10.77.0.1/24", "dev", &rt_lb]).unwrap();
    // IPv6 on the router's side only (the veth end DPDK uses stays without it).
    rt.exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{rt_lb}.disable_ipv6=0")]).unwrap();
    rt.ip(&["addr", "add", "fd77::1/64", "dev", &rt_lb, "nodad"]).unwrap();
    rt.ip(&["addr", "add", "10.77.1.1/24", "dev", &rt_cl]).unwrap();
    rt.ip(&["addr", "add", "10.77.2.1/24", "dev", &rt_b1]).unwrap();
    rt.ip(&["addr", "add", "10.77.3.1/24", "dev", &rt_b2]).unwrap();
    rt.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]).unwrap();
    for dev in ["all", "default", &rt_lb, &rt_cl, &rt_b1, &rt_b2] {
        rt.exec(&["sysctl", "-qw", &format!("net.ipv4.conf.{dev}.rp_filter=0")]).unwrap();
    }
    rt.ip(&["neigh", "replace", "10.77.0.2", "lladdr", &lb_mac, "dev", &rt_lb, "nud", "permanent"]).unwrap();
    rt.ip(&["route", "add", &format!("{VIP}/32"), "via", "10.77.0.2", "dev", &rt_lb]).unwrap();

    let l1 = b1.enter(|| TcpListener::bind("10.77.2.2:8080")).unwrap().unwrap();
    let l2 = b2.enter(|| TcpListener::bind("10.77.3.2:8080")).unwrap().unwrap();
    let _s1 = serve(l1, "b1");
    let _s2 = serve(l2, "b2");
    // The backends answer directly (replies not yet routed through the load
    // balancer): the server side works.
    let direct =
        cl.enter(|| TcpStream::connect_timeout(&"10.77.2.2:8080".parse().unwrap(), Duration::from_secs(5))).unwrap();
    assert!(direct.is_ok(), "direct connection to b1 failed: {direct:?}");
    drop(direct);
    // From now on the backends' replies go back through the load balancer.
    rt.ip(&["route", "add", "default", "via", "10.77.0.2", "dev", &rt_lb, "table", "100"]).unwrap();
    for dev in [&rt_b1, &rt_b2] {
        rt.ip(&["rule", "add", "iif", dev, "lookup", "100"]).unwrap();
    }

    // The load balancer's kernel may talk only through l4lb's host TAP, not on the
    // veth DPDK uses.
    let rules = ["inet", "arp"]
        .map(|family| {
            format!(
                "table {family} l4lbtest {{\n  chain in {{\n    type filter hook input priority 0;\n    \
                 iifname \"{lb_if}\" drop\n  }}\n}}\n"
            )
        })
        .concat();
    let rules_path = dir.0.join("lb.nft");
    std::fs::write(&rules_path, rules).unwrap();
    lb.exec(&["nft", "-f", rules_path.to_str().unwrap()]).unwrap();

    let curl = Command::new("curl").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    for workers in [1usize, 2] {
        let prefix = format!("l4lb-live-{}-{workers}", std::process::id());
        let _runtime_dir = RuntimeDir(prefix.clone());
        let cfg = format!(
            r#"
[node]
mac = "{lb_mac}"
gateway_mac = "{gw_mac}"
ipv4 = "10.77.0.2"
ipv6 = "fd77::2"

[dataplane]
workers = {workers}
flow_table_capacity = 4096

[[vip]]
name = "web"
address = "{VIP}"
port = 80
protocol = "tcp"
forwarding = "dnat"
  [[vip.backend]]
  address = "10.77.2.2"
  port = 8080
  [[vip.backend]]
  address = "10.77.3.2"
  port = 8080

[io]
driver = "dpdk"
ring_size = 512

[io.dpdk]
eal_args = ["-l", "0", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--file-prefix={prefix}",
            "--log-level=lib.eal:warning", "--vdev=net_af_packet0,iface={lb_if},qpairs={workers}"]
port = 0
mbufs = 2047
host_tap = "l4lbh0"
"#
        );
        let cfg_path = dir.0.join(format!("lb{workers}.toml"));
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = dir.0.join(format!("run{workers}.log"));
        let out = dir.0.join(format!("run{workers}.out"));
        let child = Command::new("ip")
            .args(["netns", "exec", lb.name(), env!("CARGO_BIN_EXE_l4lb"), "run", "--stats-interval", "1s"])
            .arg("--config")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut running = Running(Some(child));
        wait_for(&log, "forwarding;", running.0.as_mut().unwrap());

        let mut served = [0usize; 2];
        for i in 0..REQUESTS {
            let body = get(&cl, curl).unwrap_or_else(|e| {
                panic!(
                    "{workers} worker(s), request {i} through the VIP failed: {e}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
            match body.trim() {
                "served by b1" => served[0] += 1,
                "served by b2" => served[1] += 1,
                other => panic!("unexpected response body {other:?}"),
            }
        }
        eprintln!("{workers} worker(s): {REQUESTS} requests through the VIP, b1 {} / b2 {}", served[0], served[1]);
        assert!(served[0] > 0 && served[1] > 0, "requests not spread over the backends: {served:?}");

        // The host exception path: ARP/NDP and ICMP for the node's own addresses reach
        // the kernel behind the TAP, and its answers reach the router.
        lb.ip(&["addr", "add", "10.77.0.2/24", "dev", "l4lbh0"]).unwrap();
        lb.ip(&["addr", "add", "fd77::2/64", "dev", "l4lbh0", "nodad"]).unwrap();
        lb.ip(&["link", "set", "l4lbh0", "up"]).unwrap();
        rt.ip(&["neigh", "del", "10.77.0.2", "dev", &rt_lb]).unwrap();
        for node in ["10.77.0.2", "fd77::2"] {
            let ping = rt.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", node]);
            let neigh = rt.ip(&["neigh", "show", node, "dev", &rt_lb]).unwrap_or_default();
            assert!(
                ping.is_ok(),
                "{workers} worker(s): ping of the node address {node} through the host TAP failed: {ping:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(neigh.contains(&lb_mac), "the router learnt {neigh:?} for {node}, not {lb_mac}");
            eprintln!("{workers} worker(s): ping through the host TAP answered; router learnt {}", neigh.trim());
        }
        rt.ip(&["neigh", "replace", "10.77.0.2", "lladdr", &lb_mac, "dev", &rt_lb, "nud", "permanent"]).unwrap();
        rt.ip(&["neigh", "del", "fd77::2", "dev", &rt_lb]).unwrap();

        let mut child = running.0.take().unwrap();
        let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                running.0 = Some(child);
                panic!("l4lb run did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let summary = std::fs::read_to_string(&out).unwrap();
        assert!(status.success(), "l4lb run exited with {status}: {}", std::fs::read_to_string(&log).unwrap());
        // Each connection: at least SYN, ACK+request, FIN/ACK from the client and as
        // many replies; both directions were rewritten by l4lb.
        let sent = summary_count(&summary, 1, " sent");
        assert!(sent >= 6 * REQUESTS as u64, "only {sent} packets sent for {REQUESTS} connections: {summary}");
        assert!(summary.contains(&format!("({workers} workers)")), "{summary}");
        // At least an ARP request, an NDP solicitation and six echo requests went to the host.
        let to_host = summary_count(&summary, 2, " to host");
        assert!(to_host >= 8, "only {to_host} frames to the host: {summary}");
    }
}
