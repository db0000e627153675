//! The DPDK port on live kernel interfaces (root only; feature `dpdk`): the kernel
//! pings an address that only a DPDK program answers.
//!
//! The test makes a network namespace with a veth pair `l4a`/`l4b` (both ends inside
//! it; `l4b` has 10.99.0.2/24), then runs itself again inside the namespace. That
//! inner run opens `l4a` with DPDK's `net_af_packet` vdev and, through the `Port`
//! trait, answers ARP for 10.99.0.1 and ICMP echo requests to it, rewriting each
//! request in place into its reply. The outer run pings 10.99.0.1 from `l4b` and
//! must get every reply. The namespace is deleted on drop, even on failure.
//!
//! Then RSS with two queues: the same inner run opens a `net_tap` vdev (`l4t`, a
//! multi-queue TAP the driver creates in the namespace) with two queue pairs; the
//! kernel sends UDP datagrams of many flows into it, and the tun driver spreads them
//! over its queues by flow hash. Both of our queues must receive some, and no flow may
//! show up on two queues.

#![cfg(feature = "dpdk")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dataplane::port::dpdk::{DpdkPort, DpdkPortConfig, Eal};
use dataplane::port::{BURST, PacketBuf, Port};

const TEST_NAME: &str = "dpdk_live_af_packet_ping_and_tap_rss";
const INNER_ENV: &str = "L4LB_DPDK_LIVE_INNER";
const OUR_MAC: [u8; 6] = [0x02, 0x4c, 0x34, 0x00, 0x99, 0x01];
const OUR_IP: [u8; 4] = [10, 99, 0, 1];
const PINGS: u32 = 3;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A network namespace of ours, deleted (with its veth pair) on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

#[test]
fn dpdk_live_af_packet_ping_and_tap_rss() {
    if std::env::var_os(INNER_ENV).is_some() {
        responder();
        return;
    }
    if !is_root() {
        eprintln!("skipped: DPDK and network namespaces need root");
        return;
    }
    if run("ip", &["-V"]).is_err() || run("ping", &["-V"]).is_err() {
        eprintln!("skipped: `ip` (iproute2) or `ping` not installed");
        return;
    }
    let ns = Netns(format!("l4lb-dpdk-{}", std::process::id()));
    run("ip", &["netns", "add", &ns.0]).expect("create netns");
    let nsx = |args: &[&str]| {
        let mut all = vec!["netns", "exec", &ns.0];
        all.extend_from_slice(args);
        run("ip", &all)
    };
    nsx(&["ip", "link", "add", "l4a", "type", "veth", "peer", "name", "l4b"]).expect("veth pair");
    nsx(&["ip", "link", "set", "l4a", "up"]).expect("l4a up");
    nsx(&["ip", "addr", "add", "10.99.0.2/24", "dev", "l4b"]).expect("address");
    nsx(&["ip", "link", "set", "l4b", "up"]).expect("l4b up");

    // The DPDK responder: this test binary again, inside the namespace.
    let exe = std::env::current_exe().expect("test binary path");
    let exe = exe.to_str().expect("UTF-8 path");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0, exe, "--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn responder");
    let stdout = child.stdout.take().expect("responder stdout");
    let (ready_tx, ready_rx) = mpsc::channel();
    let (tap_tx, tap_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("RESPONDER READY") {
                let _ = ready_tx.send(());
            }
            if line.contains("TAP READY") {
                let _ = tap_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the DPDK responder did not start: {:?}", reader.join());
    }

    let count = PINGS.to_string();
    let ping = Command::new("ip")
        .args(["netns", "exec", &ns.0, "ping", "-c", &count, "-i", "0.2", "-W", "2", "10.99.0.1"])
        .output()
        .expect("run ping");

    // RSS phase: the responder has configured l4t (2 queues) and waits for UDP.
    if tap_rx.recv_timeout(Duration::from_secs(30)).is_ok() {
        nsx(&["ip", "addr", "add", "10.98.0.2/24", "dev", "l4t"]).expect("tap address");
        nsx(&["ip", "link", "set", "l4t", "up"]).expect("tap up");
        nsx(&["ip", "neigh", "replace", "10.98.0.1", "lladdr", "02:4c:34:00:98:01", "dev", "l4t"]).expect("neigh");
        let script = format!(
            "for p in $(seq {UDP_PORT0} $(({UDP_PORT0} + {UDP_FLOWS} - 1))); do echo x > /dev/udp/10.98.0.1/$p; done"
        );
        nsx(&["bash", "-c", &script]).expect("send UDP flows");
    }
    let status = child.wait().expect("responder exit");
    let lines = reader.join().expect("reader thread");
    let ping_out = String::from_utf8_lossy(&ping.stdout);
    assert!(ping.status.success(), "ping failed:\n{ping_out}\nresponder:\n{}", lines.join("\n"));
    assert!(ping_out.contains(&format!("{PINGS} received")), "{ping_out}");
    assert!(status.success(), "responder failed:\n{}", lines.join("\n"));
    let done = lines.iter().find(|l| l.starts_with("RESPONDER DONE")).expect("responder summary");
    let rss = lines.iter().find(|l| l.starts_with("RSS DONE")).expect("RSS summary");
    eprintln!("{done}\n{}\n{rss}", ping_out.lines().last().unwrap_or_default());
}

/// Inside the namespace: answer ARP and ping for 10.99.0.1 on `l4a` through DPDK.
fn responder() {
    let prefix = format!("l4lb-afp-{}", std::process::id());
    let args: Vec<String> = ["--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry", "-l", "0"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("--file-prefix={prefix}"),
            "--log-level=lib.eal:warning".into(),
            "--vdev=net_af_packet0,iface=l4a".into(),
            "--vdev=net_tap0,iface=l4t".into(),
        ])
        .collect();
    let eal = Eal::init(&args).expect("EAL init");
    let port_id = eal.port_by_name("net_af_packet0").expect("net_af_packet0");
    let cfg = DpdkPortConfig { queues: 1, mbufs_per_queue: 2047, ring_size: 256 };
    let mut port = DpdkPort::configure(&eal, port_id, cfg).expect("configure net_af_packet0");
    let mut q = port.take_queues().expect("queues").pop().expect("queue 0");
    println!("RESPONDER READY");

    let (mut arp, mut echo) = (0u32, 0u32);
    let (mut burst, mut replies, mut other) = (Vec::with_capacity(BURST), Vec::with_capacity(BURST), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    while echo < PINGS && Instant::now() < deadline {
        if q.rx_burst(&mut burst, BURST) == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for mut m in burst.drain(..) {
            match answer(m.data_mut()) {
                Some(Answer::Arp) => {
                    arp += 1;
                    replies.push(m);
                }
                Some(Answer::Echo) => {
                    echo += 1;
                    replies.push(m);
                }
                None => other.push(m),
            }
        }
        q.tx_burst(&mut replies);
        q.free(&mut other);
    }
    let s = q.stats();
    println!(
        "RESPONDER DONE arp={arp} echo={echo} rx={} tx={} tx_dropped={}",
        s.rx_packets, s.tx_packets, s.tx_dropped
    );
    assert!(arp >= 1, "no ARP request seen");
    assert_eq!(echo, PINGS);
    assert_eq!(s.tx_packets, u64::from(arp + echo));
    assert_eq!(s.tx_dropped, 0);
    drop(q);
    drop(port);

    tap_rss(&eal);
    drop(eal);
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
}

const UDP_PORT0: u16 = 20000;
const UDP_FLOWS: u16 = 64;

/// Inside the namespace: two queue pairs with RSS on the TAP; count our UDP flows per queue.
fn tap_rss(eal: &Eal) {
    let port_id = eal.port_by_name("net_tap0").expect("net_tap0");
    let cfg = DpdkPortConfig { queues: 2, mbufs_per_queue: 1023, ring_size: 256 };
    let mut port = DpdkPort::configure(eal, port_id, cfg).expect("configure net_tap0 with 2 queues");
    assert_ne!(port.rss_hf(), 0, "net_tap hashes IP/TCP/UDP: RSS must be on");
    let mut queues = port.take_queues().expect("queues");
    println!("TAP READY");

    // The UDP destination port of each flow seen, per queue.
    let mut seen: [Vec<u16>; 2] = [Vec::new(), Vec::new()];
    let mut burst = Vec::with_capacity(BURST);
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen[0].len() + seen[1].len() < usize::from(UDP_FLOWS) && Instant::now() < deadline {
        let mut idle = true;
        for (q, flows) in queues.iter_mut().zip(seen.iter_mut()) {
            if q.rx_burst(&mut burst, BURST) > 0 {
                idle = false;
            }
            for m in &burst {
                let f = m.data();
                // IPv4 (no options) / UDP to 10.98.0.1, our port range.
                if f.len() >= 42 && f[12..14] == [8, 0] && f[14] == 0x45 && f[23] == 17 && f[30..34] == [10, 98, 0, 1] {
                    let dport = u16::from_be_bytes([f[36], f[37]]);
                    if (UDP_PORT0..UDP_PORT0 + UDP_FLOWS).contains(&dport) {
                        flows.push(dport);
                    }
                }
            }
            q.free(&mut burst);
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    println!("RSS DONE rss_hf={:#x} queue0={} queue1={}", port.rss_hf(), seen[0].len(), seen[1].len());
    assert_eq!(seen[0].len() + seen[1].len(), usize::from(UDP_FLOWS), "every datagram arrives once");
    assert!(!seen[0].is_empty() && !seen[1].is_empty(), "both queues receive flows: {seen:?}");
    assert!(seen[0].iter().all(|p| !seen[1].contains(p)), "a flow stays on one queue");
}

enum Answer {
    Arp,
    Echo,
}

/// Rewrites an ARP request or ICMP echo request for [`OUR_IP`] into its reply, in place.
fn answer(f: &mut [u8]) -> Option<Answer> {
    if f.len() < 42 {
        return None;
    }
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    if ethertype == 0x0806 && f[20..22] == [0, 1] && f[38..42] == OUR_IP {
        // ARP request -> reply: target <- sender, sender <- us.
        let (sha, spa): ([u8; 6], [u8; 4]) = (f[22..28].try_into().ok()?, f[28..32].try_into().ok()?);
        f[0..6].copy_from_slice(&sha);
        f[6..12].copy_from_slice(&OUR_MAC);
        f[21] = 2;
        f[22..28].copy_from_slice(&OUR_MAC);
        f[28..32].copy_from_slice(&OUR_IP);
        f[32..38].copy_from_slice(&sha);
        f[38..42].copy_from_slice(&spa);
        return Some(Answer::Arp);
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    if ethertype != 0x0800 || f[14] >> 4 != 4 || f[23] != 1 || f[30..34] != OUR_IP || f.len() < 14 + ihl + 8 {
        return None;
    }
    let icmp = 14 + ihl;
    if f[icmp] != 8 {
        return None;
    }
    // Echo request -> reply: swap MACs and addresses (IP checksum unchanged), type 8 -> 0
    // (RFC 1624: the ICMP checksum grows by 0x0800).
    let src_mac: [u8; 6] = f[6..12].try_into().ok()?;
    f[0..6].copy_from_slice(&src_mac);
    f[6..12].copy_from_slice(&OUR_MAC);
    let src_ip: [u8; 4] = f[26..30].try_into().ok()?;
    f[26..30].copy_from_slice(&OUR_IP);
    f[30..34].copy_from_slice(&src_ip);
    f[icmp] = 0;
    let sum = u32::from(u16::from_be_bytes([f[icmp + 2], f[icmp + 3]])) + 0x0800;
    let sum = ((sum & 0xffff) + (sum >> 16)) as u16;
    f[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
    Some(Answer::Echo)
}
