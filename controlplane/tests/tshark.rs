//! tshark, with checksum validation on, decodes every frame l4lb emits in a replay of
//! generated traffic (GRE, IPIP and DNAT VIPs, IPv4 and IPv6, ICMP answers) and finds
//! nothing malformed and no bad checksum.

use std::path::PathBuf;
use std::process::Command;

use l4lb_tests::builder::*;
use l4lb_tests::captures::write_pcap;

const CONFIG: &str = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
ipv6 = "fd00::2"
mtu = 1500

[[vip]]
name = "gre4"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
  [[vip.backend]]
  address = "10.1.0.11"
  [[vip.backend]]
  address = "fd00:2::12"

[[vip]]
name = "ipip6"
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

[[vip]]
name = "web6"
address = "2001:db8::20"
port = 443
protocol = "tcp"
forwarding = "dnat"
  [[vip.backend]]
  address = "fd00:3::11"
  port = 8443
"#;

fn tshark_ok() -> bool {
    Command::new("tshark").arg("-v").output().map(|o| o.status.success()).unwrap_or(false)
}

#[test]
fn tshark_finds_nothing_wrong_in_replay_output() {
    if !tshark_ok() {
        eprintln!("skipping: tshark is not installed (scripts/test.sh installs it)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("l4lb-tshark-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let lb = mac("02:00:00:00:00:01");
    let peer = mac("02:00:00:00:00:fe");
    let o = IpOpts::default();
    let mut frames = Vec::new();
    for i in 0..40u16 {
        let c4 = format!("172.16.0.{}", i + 1);
        let c6 = format!("fd00:1::{:x}", i + 1);
        frames.push(tcp_frame(lb, peer, &c4, "198.51.100.10", 10000 + i, 80, SYN, b"", IpOpts { tos: 0x2e, ..o }));
        frames.push(tcp_frame(lb, peer, &c6, "2001:db8::10", 10000 + i, 80, ACK | PSH, b"GET / HTTP/1.1\r\n\r\n", o));
        frames.push(udp_frame(
            lb,
            peer,
            &c4,
            "198.51.100.53",
            20000 + i,
            53,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01",
            o,
        ));
        frames.push(udp_frame(
            lb,
            peer,
            "10.2.0.11",
            &c4,
            53,
            20000 + i,
            b"\x12\x34\x81\x80\x00\x00\x00\x00\x00\x00\x00\x00",
            o,
        ));
        frames.push(tcp_frame(lb, peer, &c6, "2001:db8::20", 30000 + i, 443, SYN, b"", o));
        frames.push(tcp_frame(lb, peer, "fd00:3::11", &c6, 8443, 30000 + i, SYN | ACK, b"", o));
    }
    // Too big once encapsulated: answered with ICMP / ICMPv6.
    frames.push(tcp_frame(lb, peer, "172.16.0.99", "198.51.100.10", 999, 80, ACK, &[0u8; 1460], o));
    frames.push(tcp_frame(lb, peer, "fd00:1::99", "2001:db8::10", 999, 80, ACK, &[0u8; 1440], o));
    // Echo requests to VIPs.
    let req = icmp4(8, 0, [0, 1, 0, 1], b"abcdefgh");
    frames.push(eth(lb, peer, 0x0800, &ip_packet(ip("172.16.0.5"), ip("198.51.100.10"), ICMP, &req, o)));
    let s6: std::net::Ipv6Addr = "fd00:1::5".parse().unwrap();
    let d6: std::net::Ipv6Addr = "2001:db8::10".parse().unwrap();
    let req6 = icmp6(s6, d6, 128, 0, [0, 1, 0, 1], b"abcdefgh");
    frames.push(eth(lb, peer, 0x86dd, &ip_packet(s6.into(), d6.into(), ICMPV6, &req6, o)));

    let input = dir.join("in.pcap");
    write_pcap(&input, &frames, 1_700_000_000_000_000, 100);
    let out: PathBuf = dir.join("out.pcap");
    let r = Command::new(env!("CARGO_BIN_EXE_l4lb"))
        .args(["replay", "--quiet", "--workers", "2", "--config"])
        .arg(&cfg)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let prefs = ["ip.check_checksum:TRUE", "tcp.check_checksum:TRUE", "udp.check_checksum:TRUE"];
    let mut count = Command::new("tshark");
    count.arg("-n").arg("-r").arg(&out);
    for p in prefs {
        count.args(["-o", p]);
    }
    let all = count.output().unwrap();
    assert!(all.status.success(), "tshark: {}", String::from_utf8_lossy(&all.stderr));
    let lines = String::from_utf8_lossy(&all.stdout).lines().count();
    assert_eq!(lines, frames.len(), "every frame is emitted (the stray DNS answer included: it is rewritten)");

    // ICMP errors quote a packet cut short (RFC 1812: 576 bytes in all), whose
    // transport checksum tshark cannot verify: only their own headers count there.
    let bad = "_ws.malformed || ip.checksum.status == \"Bad\" || icmp.checksum.status == \"Bad\" || \
               icmpv6.checksum.status == \"Bad\" || (!(icmp.type == 3 || icmpv6.type == 2) && \
               (_ws.expert.severity >= 0x00600000 || tcp.checksum.status == \"Bad\" || \
               udp.checksum.status == \"Bad\"))";
    let mut check = Command::new("tshark");
    check.arg("-n").arg("-r").arg(&out);
    for p in prefs {
        check.args(["-o", p]);
    }
    check.args(["-Y", bad, "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"]);
    let res = check.output().unwrap();
    assert!(res.status.success(), "tshark: {}", String::from_utf8_lossy(&res.stderr));
    let flagged = String::from_utf8_lossy(&res.stdout);
    assert!(flagged.trim().is_empty(), "tshark flags frames:\n{flagged}");

    // The protocols we expect are all there.
    let mut proto = Command::new("tshark");
    proto.arg("-n").arg("-r").arg(&out).args(["-T", "fields", "-e", "frame.protocols"]);
    let p = String::from_utf8_lossy(&proto.output().unwrap().stdout).to_string();
    for needle in [
        "ip:gre:ip:tcp",
        "ipv6:gre:ip:tcp",
        "ipv6:ipv6:tcp",
        "ip:ipv6:tcp",
        "ip:udp:dns",
        "ipv6:tcp",
        "ip:icmp",
        "ipv6:icmpv6",
    ] {
        assert!(p.contains(needle), "no {needle} frame in the output:\n{p}");
    }
}
