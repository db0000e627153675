//! `l4lb replay` end to end: the binary on real and generated captures.

use std::path::{Path, PathBuf};
use std::process::Command;

use l4lb_tests::builder::*;
use l4lb_tests::captures::{all_captures, read_pcap, testdata, tmpdir, write_pcap, write_pcap_at};

fn l4lb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_l4lb"))
}

const CONFIG: &str = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
ipv6 = "fd00::2"

[dataplane]
flow_table_capacity = 65536

[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
  [[vip.backend]]
  address = "10.1.0.11"
  [[vip.backend]]
  address = "10.1.0.12"
  [[vip.backend]]
  address = "10.1.0.13"

[[vip]]
name = "web6"
address = "2001:db8::10"
port = 80
protocol = "tcp"
forwarding = "ipip"
  [[vip.backend]]
  address = "fd00:2::11"
  [[vip.backend]]
  address = "10.1.0.12"

[[vip]]
name = "dns"
address = "198.51.100.53"
port = 53
protocol = "udp"
forwarding = "dnat"
  [[vip.backend]]
  address = "10.2.0.11"
  [[vip.backend]]
  address = "10.2.0.12"

[[vip]]
name = "api"
address = "198.51.100.20"
port = 443
protocol = "tcp"
forwarding = "dnat"
  [[vip.backend]]
  address = "10.2.0.21"
  port = 8443
  [[vip.backend]]
  address = "10.2.0.22"
  port = 8443
"#;

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("l4lb.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn replay(cfg: &Path, input: &Path, out: &Path, workers: usize, extra: &[&str]) -> std::process::Output {
    l4lb()
        .args(["replay", "--config"])
        .arg(cfg)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .args(["--workers", &workers.to_string()])
        .args(extra)
        .output()
        .unwrap()
}

fn is_ethernet_capture(p: &Path) -> bool {
    let b = std::fs::read(p).unwrap_or_default();
    if b.len() < 24 {
        return false;
    }
    match &b[0..4] {
        // The low 16 bits are the link type (the upper ones may carry FCS information).
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => {
            u32::from_le_bytes(b[20..24].try_into().unwrap()) & 0xffff == 1
        }
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => {
            u32::from_be_bytes(b[20..24].try_into().unwrap()) & 0xffff == 1
        }
        // pcapng: look at the first interface description block's link type.
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            let le = b[8..12] == [0x4d, 0x3c, 0x2b, 0x1a];
            let rd32 = |o: usize| {
                let s: [u8; 4] = b[o..o + 4].try_into().unwrap();
                if le { u32::from_le_bytes(s) } else { u32::from_be_bytes(s) }
            };
            let shb_len = rd32(4) as usize;
            if b.len() < shb_len + 12 {
                return true; // no interface: nothing to reject
            }
            let lt = &b[shb_len + 8..shb_len + 10];
            let lt = if le { u16::from_le_bytes([lt[0], lt[1]]) } else { u16::from_be_bytes([lt[0], lt[1]]) };
            lt == 1
        }
        _ => false,
    }
}

#[test]
fn every_shared_capture_replays_identically_with_1_and_4_workers() {
    let Some(td) = testdata() else {
        eprintln!("skipping: ../shared/testdata not present");
        return;
    };
    let dir = tmpdir("test", "captures");
    let cfg = write_config(&dir, CONFIG);
    let mut ethernet = 0;
    for cap in all_captures(&td) {
        let o1 = dir.join("o1.pcap");
        let o4 = dir.join("o4.pcap");
        let h1 = dir.join("h1.pcap");
        let h4 = dir.join("h4.pcap");
        let r1 = replay(&cfg, &cap, &o1, 1, &["--host-output", h1.to_str().unwrap()]);
        if !is_ethernet_capture(&cap) {
            assert!(!r1.status.success(), "{}: a non-Ethernet capture must be refused", cap.display());
            let err = String::from_utf8_lossy(&r1.stderr);
            assert_eq!(err.trim().lines().count(), 1, "{}: one-line error, got {err}", cap.display());
            continue;
        }
        ethernet += 1;
        assert!(r1.status.success(), "{}: {}", cap.display(), String::from_utf8_lossy(&r1.stderr));
        let r4 = replay(&cfg, &cap, &o4, 4, &["--host-output", h4.to_str().unwrap()]);
        assert!(r4.status.success(), "{}: {}", cap.display(), String::from_utf8_lossy(&r4.stderr));
        assert_eq!(std::fs::read(&o1).unwrap(), std::fs::read(&o4).unwrap(), "{}: output differs", cap.display());
        assert_eq!(std::fs::read(&h1).unwrap(), std::fs::read(&h4).unwrap(), "{}: host output differs", cap.display());
    }
    assert!(ethernet > 40, "expected most shared captures to be Ethernet, got {ethernet}");
}

/// Interleaved traffic for every VIP: TCP handshakes and data to the GRE/IPIP VIPs,
/// DNS queries and answers through the DNAT VIP, TCP both ways through the DNAT
/// API VIP (replies from whichever backend the forward packet reached).
fn mixed_traffic() -> Vec<Vec<u8>> {
    let lb = mac("02:00:00:00:00:01");
    let peer = mac("02:00:00:00:00:fe");
    let o = IpOpts::default();
    let mut frames = Vec::new();
    for i in 0..60u16 {
        let c4 = format!("172.16.{}.{}", i / 200, 1 + i % 200);
        let c6 = format!("fd00:1::{:x}", i + 1);
        frames.push(tcp_frame(lb, peer, &c4, "198.51.100.10", 10000 + i, 80, SYN, b"", o));
        frames.push(tcp_frame(lb, peer, &c6, "2001:db8::10", 20000 + i, 80, SYN, b"", o));
        frames.push(udp_frame(lb, peer, &c4, "198.51.100.53", 30000 + i, 53, b"query", o));
        frames.push(tcp_frame(lb, peer, &c4, "198.51.100.20", 40000 + i, 443, SYN, b"", o));
        frames.push(tcp_frame(lb, peer, &c4, "198.51.100.10", 10000 + i, 80, ACK | PSH, b"GET / HTTP/1.1\r\n\r\n", o));
        // Replies from both DNAT backends: only the one the flow went to is rewritten.
        for b in ["10.2.0.11", "10.2.0.12"] {
            frames.push(udp_frame(lb, peer, b, &c4, 53, 30000 + i, b"answer", o));
        }
        for b in ["10.2.0.21", "10.2.0.22"] {
            frames.push(tcp_frame(lb, peer, b, &c4, 8443, 40000 + i, SYN | ACK, b"", o));
        }
        frames.push(tcp_frame(lb, peer, &c4, "198.51.100.20", 40000 + i, 443, ACK, b"", o));
        frames.push(tcp_frame(lb, peer, &c6, "2001:db8::10", 20000 + i, 80, FIN | ACK, b"", o));
    }
    frames
}

#[test]
fn dnat_and_tunnels_interleaved_identical_for_1_2_4_workers() {
    let dir = tmpdir("test", "mixed");
    let cfg = write_config(&dir, CONFIG);
    let input = dir.join("in.pcap");
    let frames = mixed_traffic();
    write_pcap(&input, &frames, 1_700_000_000_000_000, 1000);
    let mut outputs = Vec::new();
    for w in [1, 2, 4] {
        let out = dir.join(format!("out{w}.pcap"));
        let stats = dir.join(format!("stats{w}.json"));
        let r = replay(&cfg, &input, &out, w, &["--stats-json", stats.to_str().unwrap()]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        outputs.push(std::fs::read(&out).unwrap());
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        // Every forward packet sent, each DNAT reply exactly once (the other backend's goes to the host).
        assert_eq!(s["totals"]["rx_packets"], frames.len() as u64);
        assert_eq!(s["counters"]["dnat_reply"], 120, "workers {w}");
        assert_eq!(s["totals"]["host_packets"], 120, "workers {w}");
        assert_eq!(s["totals"]["tx_packets"], (frames.len() - 120) as u64, "workers {w}");
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
    // Timestamps and order: each output carries its input's timestamp, in input order.
    let out = read_pcap(&dir.join("out4.pcap"));
    assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
}

/// The backend (outer destination for tunnels, destination for DNAT) of each output frame.
fn backend_of(frame: &[u8]) -> String {
    let et = u16::from_be_bytes([frame[12], frame[13]]);
    if et == 0x0800 {
        format!("{}.{}.{}.{}", frame[30], frame[31], frame[32], frame[33])
    } else {
        let mut a = [0u8; 16];
        a.copy_from_slice(&frame[38..54]);
        std::net::Ipv6Addr::from(a).to_string()
    }
}

/// The client (inner source) of an encapsulated IPv4-in-GRE frame.
fn inner_client(frame: &[u8]) -> String {
    let i = 14 + 20 + 4;
    format!(
        "{}.{}.{}.{}:{}",
        frame[i + 12],
        frame[i + 13],
        frame[i + 14],
        frame[i + 15],
        u16::from_be_bytes([frame[i + 20], frame[i + 21]])
    )
}

#[test]
fn a_backend_going_down_moves_only_its_flows_and_an_added_one_takes_only_new_flows() {
    let dir = tmpdir("test", "events");
    let cfg = write_config(&dir, CONFIG);
    let lb = mac("02:00:00:00:00:01");
    let peer = mac("02:00:00:00:00:fe");
    let o = IpOpts::default();
    // 300 flows: packet 1 at 0 s, packet 2 at 2 s (after "down" at 1 s), packet 3 at 4 s (after "add" at 3 s);
    // then 300 new flows at 6 s.
    let mut frames = Vec::new();
    let flows = 300u16;
    for round in 0..3 {
        for i in 0..flows {
            let c = format!("172.16.{}.{}", i / 250, 1 + i % 250);
            let flags = if round == 0 { SYN } else { ACK };
            frames.push(tcp_frame(lb, peer, &c, "198.51.100.10", 1024 + i, 80, flags, b"", o));
        }
    }
    for i in 0..flows {
        let c = format!("172.17.{}.{}", i / 250, 1 + i % 250);
        frames.push(tcp_frame(lb, peer, &c, "198.51.100.10", 1024 + i, 80, SYN, b"", o));
    }
    // Round r at 2r seconds (the down event is at 1 s, the add at 3 s), 1 us apart inside a round.
    let input = dir.join("in.pcap");
    let timed: Vec<(u64, Vec<u8>)> = frames
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let round = (k / flows as usize) as u64;
            (1_700_000_000_000_000 + round * 2_000_000 + (k % flows as usize) as u64, f.clone())
        })
        .collect();
    write_pcap_at(&input, &timed);
    let events = dir.join("events.toml");
    std::fs::write(
        &events,
        "[[event]]\nat = \"1s\"\nvip = \"web\"\nbackend = \"10.1.0.11\"\nset = \"down\"\n\n\
         [[event]]\nat = \"3s\"\nvip = \"web\"\nadd = { address = \"10.1.0.14\", weight = 1 }\n",
    )
    .unwrap();
    for w in [1, 3] {
        let out = dir.join(format!("out{w}.pcap"));
        let r = replay(&cfg, &input, &out, w, &["--events", events.to_str().unwrap()]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let pkts = read_pcap(&out);
        assert_eq!(pkts.len(), frames.len());
        let n = flows as usize;
        let mut moved = 0;
        let mut kept = 0;
        for i in 0..n {
            let before = backend_of(&pkts[i].1);
            let after_down = backend_of(&pkts[n + i].1);
            let after_add = backend_of(&pkts[2 * n + i].1);
            assert_eq!(inner_client(&pkts[i].1), inner_client(&pkts[n + i].1));
            if before == "10.1.0.11" {
                assert_ne!(after_down, "10.1.0.11", "flow {i} must leave the down backend");
                moved += 1;
            } else {
                assert_eq!(before, after_down, "flow {i} on a healthy backend must stay");
                kept += 1;
            }
            assert_eq!(after_down, after_add, "flow {i}: an added backend takes no existing flow");
        }
        assert!(moved > 50 && kept > 150, "moved {moved}, kept {kept}");
        let new_on_added = (3 * n..4 * n).filter(|&k| backend_of(&pkts[k].1) == "10.1.0.14").count();
        assert!(new_on_added > 30, "the added backend takes new flows ({new_on_added})");
        eprintln!(
            "workers {w}: {moved} flows moved off the down backend, {kept} kept, {new_on_added}/{n} new flows on the added one"
        );
    }
}

#[test]
fn bad_options_and_inputs_fail_with_one_line() {
    let dir = tmpdir("test", "bad");
    let cfg = write_config(&dir, CONFIG);
    let out = dir.join("o.pcap");
    let missing = replay(&cfg, &dir.join("nope.pcap"), &out, 1, &[]);
    assert!(!missing.status.success());
    assert_eq!(String::from_utf8_lossy(&missing.stderr).trim().lines().count(), 1);
    let garbage = dir.join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture at all").unwrap();
    let r = replay(&cfg, &garbage, &out, 1, &[]);
    assert!(!r.status.success());
    assert_eq!(String::from_utf8_lossy(&r.stderr).trim().lines().count(), 1);
    let bad_cfg = dir.join("bad.toml");
    std::fs::write(&bad_cfg, "[node]\nmac = 1\n").unwrap();
    let input = dir.join("in.pcap");
    write_pcap(&input, &[], 0, 1);
    let r = replay(&bad_cfg, &input, &out, 1, &[]);
    assert!(!r.status.success());
    assert_eq!(String::from_utf8_lossy(&r.stderr).trim().lines().count(), 1);
    let ev = dir.join("ev.toml");
    std::fs::write(&ev, "[[event]]\nat = \"1s\"\nvip = \"nope\"\nremove = \"10.1.0.11\"\n").unwrap();
    let r = replay(&cfg, &input, &out, 1, &["--events", ev.to_str().unwrap()]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("nope"));
    // A flow table the machine cannot hold (2^30 flows per worker, about 63 GiB each,
    // times 4 workers): refused up front in one line, never a panic or the OOM killer.
    let huge = write_config(&dir, &CONFIG.replace("flow_table_capacity = 65536", "flow_table_capacity = 1073741824"));
    let r = replay(&huge, &input, &out, 4, &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("flow_table_capacity"), "{err}");

    // An output on an input (directly or through a symbolic link), or two outputs on one
    // file: refused before anything is written, and the input is left as it was.
    let before = std::fs::read(&input).unwrap();
    let link = dir.join("link.pcap");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let host = ["--host-output", out.to_str().unwrap()];
    let stats_on_cfg = ["--stats-json", cfg.to_str().unwrap()];
    for (o, extra, what) in [
        (&input, &[][..], "--output"),
        (&link, &[][..], "--output"),
        (&out, &host[..], "--host-output"),
        (&out, &stats_on_cfg[..], "--stats-json"),
    ] {
        let r = replay(&cfg, &input, o, 1, extra);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(what) && err.contains("the same file as"), "{err}");
    }
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input is untouched");
}

/// "Any size": a capture's frames longer than a jumbo Ethernet frame are replayed
/// whole. One to a non-VIP address goes to the host unchanged; one to a GRE VIP
/// (DF set) is too big for the MTU and answered with ICMP "fragmentation needed".
#[test]
fn frames_longer_than_jumbo_are_replayed_whole() {
    let dir = tmpdir("test", "huge-frames");
    let cfg = write_config(&dir, CONFIG);
    let (lb, client) = (mac("02:00:00:00:00:01"), mac("02:00:00:00:00:aa"));
    let payload = vec![0x5a; 12_000];
    let to_host = tcp_frame(lb, client, "172.16.0.5", "192.0.2.99", 40000, 80, 0x10, &payload, IpOpts::default());
    let to_vip = tcp_frame(lb, client, "172.16.0.5", "198.51.100.10", 40000, 80, 0x10, &payload, IpOpts::default());
    let input = dir.join("in.pcap");
    write_pcap(&input, &[to_host.clone(), to_vip], 1_700_000_000_000_000, 1000);
    let (out, host) = (dir.join("out.pcap"), dir.join("host.pcap"));
    let r = replay(&cfg, &input, &out, 1, &["--host-output", host.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let host_frames = read_pcap(&host);
    assert_eq!(host_frames.len(), 1);
    assert_eq!(host_frames[0].1, to_host, "the host gets the whole frame");
    let sent = read_pcap(&out);
    assert_eq!(sent.len(), 1, "one ICMP answer");
    let icmp = &sent[0].1;
    assert_eq!((icmp[23], icmp[34], icmp[35]), (1, 3, 4), "ICMP type 3 code 4");
}

/// Byte-identical for any `--workers N` also when one worker's flow table is well
/// filled: 200 000 flows in one table of the default 1 048 576 (a plain 4-way
/// table evicts some 30 of them there and about 2 in each of 4 tables), with events
/// that change the Maglev table mid-capture, so that an evicted flow would come back
/// on another backend. The overflow area keeps every flow (docs/FLOW_TABLE.md).
#[test]
fn a_well_filled_flow_table_keeps_outputs_identical_across_worker_counts() {
    let dir = tmpdir("test", "fill");
    let cfg = write_config(&dir, &CONFIG.replace("flow_table_capacity = 65536", "flow_table_capacity = 1048576"));
    let input = dir.join("in.pcap");
    let g = l4lb()
        .args(["gen", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(&input)
        .args(["--flows", "200000", "--packets", "600000", "--seed", "3", "--size", "64"])
        .output()
        .unwrap();
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    let ev = dir.join("ev.toml");
    std::fs::write(
        &ev,
        "[[event]]\nat = \"0.2s\"\nvip = \"web\"\nadd = { address = \"10.1.0.99\" }\n\n\
         [[event]]\nat = \"0.4s\"\nvip = \"web\"\nbackend = \"10.1.0.12\"\nweight = 5\n",
    )
    .unwrap();
    let mut outs = Vec::new();
    for workers in [1, 4] {
        let (out, stats) = (dir.join(format!("out{workers}.pcap")), dir.join(format!("s{workers}.json")));
        let r = replay(
            &cfg,
            &input,
            &out,
            workers,
            &["--events", ev.to_str().unwrap(), "--stats-json", stats.to_str().unwrap()],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        assert_eq!(s["flows"]["evicted"], 0, "--workers {workers}: {}", s["flows"]);
        outs.push(std::fs::read(&out).unwrap());
    }
    assert!(outs[0] == outs[1], "--workers 1 and 4 wrote different captures");
}

/// An ICMP error from the backend side of a DNAT flow goes back to the client with
/// the VIP quoted, whichever worker the client's flow belongs to: the same output for
/// 1, 2 and 4 workers.
#[test]
fn dnat_icmp_errors_to_the_client_identical_for_any_worker_count() {
    let dir = tmpdir("test", "icmp-client");
    let cfg = write_config(&dir, CONFIG);
    let (lb, client_mac) = (mac("02:00:00:00:00:01"), mac("02:00:00:00:00:aa"));
    // Requests from several clients, as the load balancer receives them.
    let syns: Vec<Vec<u8>> = (0..8u16)
        .map(|i| {
            tcp_frame(
                lb,
                client_mac,
                &format!("172.16.0.{}", 5 + i),
                "198.51.100.20",
                40000 + i,
                443,
                0x02,
                b"",
                IpOpts::default(),
            )
        })
        .collect();
    let first = dir.join("syns.pcap");
    write_pcap(&first, &syns, 1_700_000_000_000_000, 1000);
    let sent = dir.join("sent.pcap");
    let r = replay(&cfg, &first, &sent, 1, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // A router on the backends' side answers each translated request.
    let mut frames = syns.clone();
    for (_, out) in read_pcap(&sent) {
        let (client, backend) = (
            format!("{}.{}.{}.{}", out[26], out[27], out[28], out[29]),
            format!("{}.{}.{}.{}", out[30], out[31], out[32], out[33]),
        );
        assert!(backend.starts_with("10.2.0."), "{backend}");
        let err = icmp4(3, 4, [0, 0, 5, 0], &out[14..]);
        frames.push(eth(lb, client_mac, 0x0800, &ip_packet(ip("10.2.0.1"), ip(&client), 1, &err, IpOpts::default())));
    }
    let input = dir.join("in.pcap");
    write_pcap(&input, &frames, 1_700_000_000_000_000, 1000);
    let mut outs = Vec::new();
    for workers in [1, 2, 4] {
        let out = dir.join(format!("out{workers}.pcap"));
        let r = replay(&cfg, &input, &out, workers, &[]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let pkts = read_pcap(&out);
        assert_eq!(pkts.len(), 16, "8 requests and 8 translated errors ({workers} workers)");
        for (_, f) in &pkts[8..] {
            // Quoted destination: the VIP and its port.
            assert_eq!(&f[14 + 28 + 16..14 + 28 + 20], &[198, 51, 100, 20]);
            assert_eq!(&f[14 + 28 + 22..14 + 28 + 24], &443u16.to_be_bytes());
        }
        outs.push(std::fs::read(&out).unwrap());
    }
    assert!(outs[0] == outs[1] && outs[1] == outs[2]);
}
