//! Katran's base fixtures (facebookincubator/katran, set "base": the default IPIP
//! build of the balancer XDP program) replayed through `l4lb replay` with an
//! equivalent IPIP configuration, and compared case by case with Katran's
//! expectations. docs/KATRAN.md explains what is compared, what is not and why.
//!
//! Per case: Katran's verdict (XDP_TX / XDP_PASS / XDP_DROP) against l4lb's
//! (OUT.pcap / HOST.pcap / dropped); for tunnelled packets the outer family and
//! protocol, the outer TOS / traffic class and the inner packet byte for byte; for
//! echo answers the whole IP packet; for packets of one flow (an ICMP error
//! counts as a packet of the flow it quotes) that Katran sends to one real, that
//! l4lb also sends them to one backend. The chosen real and the outer source
//! address are not compared: both are different by design (hashing, addressing).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use l4lb_tests::captures::{base64, read_pcap, testdata, tmpdir};
use serde_json::Value;

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    v.try_into().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// XDP_TX / written to OUT.pcap.
    Tx,
    /// XDP_PASS / written to HOST.pcap.
    Host,
    /// XDP_DROP / neither.
    Drop,
}

/// How each base case is treated, by its fixture description.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// l4lb must agree with Katran on everything compared.
    Compare,
    /// Compared, but l4lb differs from Katran by design: this is what l4lb must do
    /// instead (and the reason, printed in the table and in docs/KATRAN.md).
    Differs(Verdict, &'static str),
    /// Not compared: Katran's expectation rests on a feature out of scope.
    Skip(&'static str),
}

const QUIC_CID: &str =
    "QUIC connection-ID routing: Katran picks the real (and with it the outer family) from the server id";
const QUIC_LRU: &str = "QUIC: Katran's LRU entry for this flow was set by connection-ID routing in an earlier case";

/// Every case of the "base" set, by description (in fixture order).
const PLAN: &[(&str, Plan)] = &[
    ("packet to UDP based v4 VIP (and v4 real)", Plan::Compare),
    ("packet to TCP based v4 VIP (and v4 real)", Plan::Compare),
    ("packet to TCP based v4 VIP (and v4 real) + ToS in IPV4", Plan::Compare),
    ("packet to TCP based v4 VIP (and v4 real; any dst ports).", Plan::Compare),
    ("packet to TCP based v4 VIP (and v6 real)", Plan::Compare),
    ("packet to TCP based v6 VIP (and v6 real)", Plan::Compare),
    ("packet to TCP based v6 VIP (and v6 real) with ToS / tc set", Plan::Compare),
    ("v4 ICMP echo-request", Plan::Compare),
    ("v6 ICMP echo-request", Plan::Compare),
    ("v4 ICMP dest-unreachabe fragmentation-needed", Plan::Compare),
    ("v6 ICMP packet-too-big", Plan::Compare),
    (
        "drop of IPv4 packet w/ options",
        Plan::Differs(Verdict::Tx, "l4lb forwards IPv4 with options (inner packet, options included, untouched)"),
    ),
    (
        "drop of IPv4 fragmented packet",
        Plan::Differs(Verdict::Tx, "l4lb forwards fragments to a VIP (hashed on addresses and protocol)"),
    ),
    (
        "drop of IPv6 fragmented packet",
        Plan::Differs(
            Verdict::Host,
            "l4lb does not drop fragments; this one (offset 80) says next header 122, no VIP's protocol: host",
        ),
    ),
    ("pass of v4 packet with dst not equal to any configured VIP", Plan::Compare),
    ("pass of v6 packet with dst not equal to any configured VIP", Plan::Compare),
    ("pass of arp packet", Plan::Compare),
    ("LRU hit", Plan::Compare),
    ("packet #1 dst port hashing only", Plan::Compare),
    ("packet #2 dst port hashing only", Plan::Compare),
    ("ipinip packet", Plan::Compare),
    ("ipv6inipv6 packet", Plan::Compare),
    ("ipv4inipv6 packet", Plan::Compare),
    ("QUIC: long header. Client Initial type. LRU miss", Plan::Compare),
    ("QUIC: long header. 0-RTT Protected. CH. LRU hit.", Plan::Compare),
    (
        "QUIC: long header. Handshake. v4 vip v6 real. Conn Id V1 based. server id is 1024 mapped to fc00::1.",
        Plan::Skip(QUIC_CID),
    ),
    (
        "QUIC: long header. Retry. v4 vip v6 real. Conn Id V1 based. server id is 1024 mapped to fc00::1.",
        Plan::Skip(QUIC_CID),
    ),
    ("QUIC: long header. client initial. v6 vip v6 real. LRU miss", Plan::Compare),
    ("QUIC: short header. No connection id. LRU hit", Plan::Skip(QUIC_LRU)),
    ("QUIC: short header w/ connection id", Plan::Skip(QUIC_CID)),
    ("QUIC: short header w/ connection id 1092 but non-existing mapping. LRU hit", Plan::Skip(QUIC_LRU)),
    ("QUIC: short header w/ conn id. host id = 0. LRU hit", Plan::Skip(QUIC_LRU)),
    ("UDP: big packet of length 1515. trigger PACKET TOOBIG", Plan::Compare),
    ("QUIC: short header w/ connection id. CIDv2", Plan::Skip(QUIC_CID)),
    ("QUIC: short header w/ connection id 197700 but non-existing mapping. CIDv2. LRU hit.", Plan::Skip(QUIC_LRU)),
    ("Packet to udp vip with udp flow migration enabled", Plan::Compare),
];

/// A Katran VIP, from `katran_test_config.json`.
struct KatranVip {
    address: IpAddr,
    port: u16,
    proto: String,
    reals: Vec<IpAddr>,
}

/// The l4lb configuration equivalent to Katran's `prepareLbData` (IPIP build), and
/// Katran's VIPs. Katran VIP flags: F_QUIC_VIP is a plain UDP VIP here (connection-ID
/// routing is out of scope); F_HASH_DPORT_ONLY has no l4lb equivalent (5-tuple
/// hashing; only the chosen real differs); F_UDP_FLOW_MIGRATION's down real is a
/// `down` backend. Any other flag fails the test, to be looked at.
fn l4lb_config(kcfg: &Value) -> (String, Vec<KatranVip>) {
    let node = &kcfg["katran_config"];
    let s = |v: &Value| v.as_str().unwrap().to_string();
    let mut toml = format!(
        "[node]\nmac = \"{}\"\ngateway_mac = \"{}\"\nipv4 = \"{}\"\nipv6 = \"{}\"\n\n\
         [dataplane]\nflow_table_capacity = 65536\n",
        s(&node["local_mac"]),
        s(&node["default_gateway_mac"]),
        s(&node["katran_src_v4"]),
        s(&node["katran_src_v6"]),
    );
    let ring = node["ch_ring_size"].as_u64().unwrap();
    let mut vips = Vec::new();
    for v in kcfg["setups"]["prepareLbData"]["vips"].as_array().unwrap() {
        let address: IpAddr = v["address"].as_str().unwrap().parse().unwrap();
        let port = v["port"].as_u64().unwrap() as u16;
        let proto = s(&v["proto"]);
        let reals: Vec<IpAddr> =
            v["reals"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().parse().unwrap()).collect();
        let flags: Vec<String> = v["flags"].as_array().map(|f| f.iter().map(s).collect()).unwrap_or_default();
        let mut down = None;
        for f in &flags {
            match f.as_str() {
                "F_QUIC_VIP" | "F_HASH_DPORT_ONLY" => {}
                "F_UDP_FLOW_MIGRATION" => down = v["down_real_index"].as_u64().map(|i| i as usize),
                other => panic!("Katran VIP flag {other} has no mapping to l4lb: decide one"),
            }
        }
        let name = match address {
            IpAddr::V4(a) => format!("{a}:{port}/{proto}"),
            IpAddr::V6(a) => format!("[{a}]:{port}/{proto}"),
        };
        toml.push_str(&format!(
            "\n[[vip]]\nname = \"{name}\"\naddress = \"{address}\"\nport = {port}\nprotocol = \"{proto}\"\n\
             forwarding = \"ipip\"\ntable_size = {ring}\n"
        ));
        for (i, r) in reals.iter().enumerate() {
            toml.push_str(&format!("  [[vip.backend]]\n  address = \"{r}\"\n"));
            if down == Some(i) {
                toml.push_str("  state = \"down\"\n");
            }
        }
        vips.push(KatranVip { address, port, proto, reals });
    }
    (toml, vips)
}

/// An IP packet's header facts.
struct Ip<'a> {
    family: u8,
    proto: u8,
    tos: u8,
    src: IpAddr,
    dst: IpAddr,
    header_len: usize,
    /// The whole IP packet (Ethernet padding excluded).
    packet: &'a [u8],
}

/// The IP packet of an Ethernet frame (no VLAN tags in these fixtures).
fn ip_of(frame: &[u8]) -> Option<Ip<'_>> {
    let et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    ip_at(frame.get(14..)?, et)
}

fn ip_at(b: &[u8], ethertype: u16) -> Option<Ip<'_>> {
    match ethertype {
        0x0800 if b.len() >= 20 && b[0] >> 4 == 4 => {
            let hl = usize::from(b[0] & 0x0f) * 4;
            let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
            let src: [u8; 4] = b[12..16].try_into().unwrap();
            let dst: [u8; 4] = b[16..20].try_into().unwrap();
            Some(Ip {
                family: 4,
                proto: b[9],
                tos: b[1],
                src: src.into(),
                dst: dst.into(),
                header_len: hl,
                packet: b.get(..len)?,
            })
        }
        0x86dd if b.len() >= 40 && b[0] >> 4 == 6 => {
            let len = 40 + usize::from(u16::from_be_bytes([b[4], b[5]]));
            let src: [u8; 16] = b[8..24].try_into().unwrap();
            let dst: [u8; 16] = b[24..40].try_into().unwrap();
            Some(Ip {
                family: 6,
                proto: b[6],
                tos: (b[0] << 4) | (b[1] >> 4),
                src: src.into(),
                dst: dst.into(),
                header_len: 40,
                packet: b.get(..len)?,
            })
        }
        _ => None,
    }
}

/// A tunnelled frame: outer family, protocol, TOS, destination, and the inner packet.
struct Tunnel<'a> {
    family: u8,
    proto: u8,
    tos: u8,
    dst: IpAddr,
    inner: &'a [u8],
}

fn tunnel_of(frame: &[u8]) -> Option<Tunnel<'_>> {
    let outer = ip_of(frame)?;
    if outer.proto != 4 && outer.proto != 41 {
        return None;
    }
    Some(Tunnel {
        family: outer.family,
        proto: outer.proto,
        tos: outer.tos,
        dst: outer.dst,
        inner: &outer.packet[outer.header_len..],
    })
}

/// A flow in the client-to-VIP direction: (client, VIP, protocol, client port, VIP port).
type Flow = (IpAddr, IpAddr, u8, u16, u16);

/// The flow an IP packet belongs to: its own for TCP/UDP, the quoted packet's
/// (reversed: the quote is the VIP's packet to the client) for ICMP errors.
fn flow_of(ip: &[u8]) -> Option<Flow> {
    let et = if ip.first()? >> 4 == 4 { 0x0800 } else { 0x86dd };
    let p = ip_at(ip, et)?;
    let l4 = p.packet.get(p.header_len..)?;
    let ports = |l4: &[u8]| Some((u16::from_be_bytes([*l4.first()?, l4[1]]), u16::from_be_bytes([*l4.get(2)?, l4[3]])));
    match (p.family, p.proto) {
        (_, 6 | 17) => {
            let (sp, dp) = ports(l4)?;
            Some((p.src, p.dst, p.proto, sp, dp))
        }
        (4, 1) if matches!(l4.first(), Some(3 | 11)) => {
            let q = ip_at(l4.get(8..)?, 0x0800)?;
            let (sp, dp) = ports(q.packet.get(q.header_len..)?)?;
            Some((q.dst, q.src, q.proto, dp, sp))
        }
        (6, 58) if matches!(l4.first(), Some(1..=3)) => {
            let q = ip_at(l4.get(8..)?, 0x86dd)?;
            let (sp, dp) = ports(q.packet.get(q.header_len..)?)?;
            Some((q.dst, q.src, q.proto, dp, sp))
        }
        _ => None,
    }
}

/// Where two byte strings differ: "frame byte N: Katran xx, l4lb yy", and lengths.
fn diff(katran: &[u8], l4lb: &[u8]) -> String {
    let mut d: Vec<String> = katran
        .iter()
        .zip(l4lb)
        .enumerate()
        .filter(|(_, (k, l))| k != l)
        .map(|(i, (k, l))| format!("byte {i}: Katran {k:#04x}, l4lb {l:#04x}"))
        .collect();
    if katran.len() != l4lb.len() {
        d.push(format!("length: Katran {}, l4lb {}", katran.len(), l4lb.len()));
    }
    d.join(", ")
}

/// Run `l4lb replay`; returns (OUT, HOST, stats).
fn replay(cfg: &Path, input: &Path, dir: &Path, workers: usize) -> (PathBuf, PathBuf, Value) {
    let out = dir.join(format!("out{workers}.pcap"));
    let host = dir.join(format!("host{workers}.pcap"));
    let stats = dir.join(format!("stats{workers}.json"));
    let r = Command::new(env!("CARGO_BIN_EXE_l4lb"))
        .args(["replay", "--config"])
        .arg(cfg)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(&out)
        .arg("--host-output")
        .arg(&host)
        .arg("--stats-json")
        .arg(&stats)
        .args(["--workers", &workers.to_string()])
        .output()
        .unwrap();
    assert!(r.status.success(), "l4lb replay failed: {}", String::from_utf8_lossy(&r.stderr));
    let s = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    (out, host, s)
}

/// What l4lb did with each input: its verdict and, for Tx/Host, the frame.
/// Outputs carry their input's timestamp; each input yields at most one output,
/// in input order.
fn outcomes(inputs: &[(u64, Vec<u8>)], out: &Path, host: &Path) -> Vec<(Verdict, Option<Vec<u8>>)> {
    let index: BTreeMap<u64, usize> = inputs.iter().enumerate().map(|(i, (t, _))| (*t, i)).collect();
    assert_eq!(index.len(), inputs.len(), "input timestamps must be distinct to match outputs to inputs");
    let mut res: Vec<(Verdict, Option<Vec<u8>>)> = vec![(Verdict::Drop, None); inputs.len()];
    for (path, verdict) in [(out, Verdict::Tx), (host, Verdict::Host)] {
        let mut last = None;
        for (t, f) in read_pcap(path) {
            let i = *index.get(&t).unwrap_or_else(|| panic!("{}: output at {t} matches no input", path.display()));
            assert!(last < Some(i), "{}: outputs out of input order at input {i}", path.display());
            last = Some(i);
            assert_eq!(res[i].0, Verdict::Drop, "input {i} has two outputs");
            res[i] = (verdict, Some(f));
        }
    }
    res
}

/// Check an l4lb tunnelled frame against l4lb's contract: Ethernet to the gateway
/// from the node, outer family = the real's, protocol 4/41 by the inner family, outer
/// TOS = inner TOS, destination one of the VIP's reals, inner packet = the input's.
fn check_l4lb_tunnel(
    frame: &[u8],
    input: &Ip<'_>,
    reals: &[IpAddr],
    node_mac: [u8; 6],
    gw: [u8; 6],
) -> Result<IpAddr, String> {
    let mut errs = Vec::new();
    if frame[0..6] != gw || frame[6..12] != node_mac {
        errs.push("Ethernet not gateway_mac <- node.mac".to_string());
    }
    let Some(t) = tunnel_of(frame) else { return Err("not an IPIP / IPv6 tunnel frame".into()) };
    if !reals.contains(&t.dst) {
        errs.push(format!("outer destination {} is not one of the VIP's reals {reals:?}", t.dst));
    }
    let family = if t.dst.is_ipv4() { 4 } else { 6 };
    if t.family != family {
        errs.push(format!("outer family IPv{} for real {}", t.family, t.dst));
    }
    let want_proto = if input.family == 4 { 4 } else { 41 };
    if t.proto != want_proto {
        errs.push(format!("outer protocol {} for an IPv{} inner packet", t.proto, input.family));
    }
    if t.tos != input.tos {
        errs.push(format!("outer TOS {:#x}, inner {:#x}", t.tos, input.tos));
    }
    if t.inner != input.packet {
        errs.push("inner packet differs from the input".into());
    }
    if errs.is_empty() { Ok(t.dst) } else { Err(errs.join("; ")) }
}

#[test]
fn katran_base_fixtures_agree_case_by_case() {
    let Some(td) = testdata().filter(|p| p.join("katran").is_dir()) else {
        println!("skipping: shared test data not found (set L4LB_TESTDATA=/work/shared/testdata)");
        return;
    };
    let kdir = td.join("katran");
    let fixtures: Value = serde_json::from_slice(&std::fs::read(kdir.join("katran_fixtures.json")).unwrap()).unwrap();
    let kcfg: Value = serde_json::from_slice(&std::fs::read(kdir.join("katran_test_config.json")).unwrap()).unwrap();
    let base = fixtures["sets"].as_array().unwrap().iter().find(|s| s["name"] == "base").expect("set base");
    let cases = base["cases"].as_array().unwrap();

    // The plan covers every case exactly once, by description.
    let descs: Vec<&str> = cases.iter().map(|c| c["description"].as_str().unwrap()).collect();
    let plan_descs: Vec<&str> = PLAN.iter().map(|(d, _)| *d).collect();
    assert_eq!(descs, plan_descs, "the plan must list every base case, in fixture order");

    // The pcaps are the fixtures' frames, in fixture order.
    let input_pcap = kdir.join("pcap/base.input.pcap");
    let inputs = read_pcap(&input_pcap);
    let expected = read_pcap(&kdir.join("pcap/base.expected.pcap"));
    assert_eq!(inputs.len(), cases.len());
    assert_eq!(expected.len(), cases.len());
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(inputs[i].1, base64(c["input_b64"].as_str().unwrap()), "input frame {i}");
        assert_eq!(expected[i].1, base64(c["expected_output_b64"].as_str().unwrap()), "expected frame {i}");
    }

    let (toml, vips) = l4lb_config(&kcfg);
    let node_mac = mac(kcfg["katran_config"]["local_mac"].as_str().unwrap());
    let gw = mac(kcfg["katran_config"]["default_gateway_mac"].as_str().unwrap());
    // Katran's VIPs without reals (prepareVipUninitializedLbData) cannot be l4lb VIPs;
    // no base case is addressed to them.
    for v in kcfg["setups"]["prepareVipUninitializedLbData"]["vips"].as_array().unwrap() {
        let a: IpAddr = v["address"].as_str().unwrap().parse().unwrap();
        assert!(inputs.iter().all(|(_, f)| ip_of(f).is_none_or(|ip| ip.dst != a)), "a base case targets {a}");
    }
    let dir = tmpdir("katran", "base");
    let cfg = dir.join("l4lb.toml");
    std::fs::write(&cfg, &toml).unwrap();

    let (out1, host1, stats) = replay(&cfg, &input_pcap, &dir, 1);
    let got = outcomes(&inputs, &out1, &host1);
    // The same with two workers (RSS spread, ICMP errors steered to their flow's owner).
    let (out2, host2, _) = replay(&cfg, &input_pcap, &dir, 2);
    assert_eq!(std::fs::read(&out1).unwrap(), std::fs::read(&out2).unwrap(), "OUT differs with 2 workers");
    assert_eq!(std::fs::read(&host1).unwrap(), std::fs::read(&host2).unwrap(), "HOST differs with 2 workers");

    // Stats agree with the outputs.
    let count = |v: Verdict| got.iter().filter(|(g, _)| *g == v).count() as u64;
    assert_eq!(stats["totals"]["rx_packets"], cases.len() as u64);
    assert_eq!(stats["totals"]["tx_packets"], count(Verdict::Tx));
    assert_eq!(stats["totals"]["host_packets"], count(Verdict::Host));
    assert_eq!(stats["totals"]["dropped_packets"], count(Verdict::Drop));

    // The reals of the Katran VIP a packet belongs to: by its flow (address, protocol,
    // port, else the port-0 VIP), or for a later fragment by address and protocol.
    let reals_of = |ip: &Ip<'_>| -> Vec<IpAddr> {
        let proto_num = |v: &KatranVip| if v.proto == "tcp" { 6 } else { 17 };
        let on = |v: &&KatranVip, addr: IpAddr, proto: u8| v.address == addr && proto_num(v) == proto;
        let found = match flow_of(ip.packet) {
            Some((_, addr, proto, _, port)) => vips
                .iter()
                .find(|v| on(v, addr, proto) && v.port == port)
                .or_else(|| vips.iter().find(|v| on(v, addr, proto) && v.port == 0)),
            None => vips.iter().find(|v| on(v, ip.dst, ip.proto)),
        };
        found.map(|v| v.reals.clone()).unwrap_or_default()
    };

    let mut failures: Vec<String> = Vec::new();
    let mut rows: Vec<(usize, Verdict, Verdict, String, &str, String)> = Vec::new();
    // Same-flow bookkeeping for compared tunnelled cases: flow -> [(case, Katran real, l4lb real)].
    let mut by_flow: BTreeMap<Flow, Vec<(usize, IpAddr, IpAddr)>> = BTreeMap::new();
    let (mut compared, mut differs, mut skipped) = (0usize, 0usize, 0usize);

    for (i, c) in cases.iter().enumerate() {
        let desc = descs[i];
        let kverdict = match c["expected_return"].as_str().unwrap() {
            "XDP_TX" => Verdict::Tx,
            "XDP_PASS" => Verdict::Host,
            "XDP_DROP" => Verdict::Drop,
            other => panic!("case {i}: unexpected return {other}"),
        };
        let (lverdict, lframe) = (got[i].0, got[i].1.as_deref());
        let input = &inputs[i].1;
        let kframe = &expected[i].1;
        let mut errs: Vec<String> = Vec::new();
        let mut note = String::new();
        let status = match PLAN[i].1 {
            Plan::Skip(why) => {
                skipped += 1;
                format!("skipped: {why}")
            }
            Plan::Differs(want, why) => {
                compared += 1;
                differs += 1;
                if lverdict != want {
                    errs.push(format!("l4lb verdict {lverdict:?}, design says {want:?}"));
                }
                match (lverdict, lframe) {
                    (Verdict::Tx, Some(f)) => {
                        let ip = ip_of(input).unwrap();
                        if let Err(e) = check_l4lb_tunnel(f, &ip, &reals_of(&ip), node_mac, gw) {
                            errs.push(e);
                        }
                    }
                    (Verdict::Host, Some(f)) if f != input.as_slice() => errs.push("host frame changed".into()),
                    _ => {}
                }
                format!("design difference: {why}")
            }
            Plan::Compare => {
                compared += 1;
                if lverdict != kverdict {
                    errs.push(format!("verdict: Katran {kverdict:?}, l4lb {lverdict:?}"));
                }
                match (kverdict, lverdict, lframe) {
                    (Verdict::Tx, Verdict::Tx, Some(f)) => {
                        if let Some(kt) = tunnel_of(kframe).filter(|_| kframe[0..6] == gw) {
                            // Encapsulated towards a real.
                            note = "tunnel".into();
                            let ip = ip_of(input).unwrap();
                            let flow = flow_of(ip.packet);
                            match check_l4lb_tunnel(f, &ip, &reals_of(&ip), node_mac, gw) {
                                Ok(lreal) => {
                                    let lt = tunnel_of(f).unwrap();
                                    if (lt.family, lt.proto) != (kt.family, kt.proto) {
                                        errs.push(format!(
                                            "outer: Katran IPv{} proto {}, l4lb IPv{} proto {}",
                                            kt.family, kt.proto, lt.family, lt.proto
                                        ));
                                    }
                                    if lt.tos != kt.tos {
                                        errs.push(format!("outer TOS: Katran {:#x}, l4lb {:#x}", kt.tos, lt.tos));
                                    }
                                    if lt.inner != kt.inner {
                                        errs.push(format!(
                                            "inner packet differs (offsets from its IP header): {}",
                                            diff(kt.inner, lt.inner)
                                        ));
                                    }
                                    if let Some(fl) = flow {
                                        by_flow.entry(fl).or_default().push((i, kt.dst, lreal));
                                    }
                                }
                                Err(e) => errs.push(e),
                            }
                        } else {
                            // Answered by the balancer itself (echo reply): Katran swaps the
                            // MACs, l4lb sends to gateway_mac from node.mac; the IP packet must
                            // be identical.
                            note = "answer".into();
                            assert_eq!((&kframe[0..6], &kframe[6..12]), (&input[6..12], &input[0..6]));
                            if f[0..6] != gw || f[6..12] != node_mac {
                                errs.push("answer not sent to gateway_mac from node.mac".into());
                            }
                            if f[12..] != kframe[12..] {
                                errs.push(format!(
                                    "answer's IP packet differs from Katran's (offsets from the IP header): {}",
                                    diff(&kframe[14..], &f[14..])
                                ));
                            }
                        }
                    }
                    (Verdict::Host, Verdict::Host, Some(f)) if f != kframe.as_slice() => {
                        errs.push("host frame differs from the input".into());
                    }
                    _ => {}
                }
                "compared".into()
            }
        };
        for e in &errs {
            failures.push(format!("case {i} \"{desc}\": {e}"));
        }
        rows.push((i, kverdict, lverdict, status, desc, note));
    }

    // One flow, one real: wherever Katran keeps a flow's packets (and the ICMP errors
    // quoting it) on one real, l4lb keeps them on one backend.
    for (flow, v) in &by_flow {
        if v.len() < 2 {
            continue;
        }
        let cases: Vec<usize> = v.iter().map(|x| x.0).collect();
        assert!(v.iter().all(|x| x.1 == v[0].1), "Katran fixtures: flow {flow:?} on several reals");
        if !v.iter().all(|x| x.2 == v[0].2) {
            failures.push(format!("cases {cases:?}: one flow {flow:?}, several l4lb backends {v:?}"));
        }
        for &(i, _, _) in &v[1..] {
            let r = &mut rows[i].5;
            r.push_str(&format!(", same real as case {}", v[0].0));
        }
    }
    println!("Katran base fixtures vs l4lb replay (IPIP), {} cases:", cases.len());
    println!("{:>3}  {:<6} {:<6} {:<40} description / status", "#", "Katran", "l4lb", "checks");
    for (i, k, l, status, desc, note) in &rows {
        println!("{i:>3}  {:<6} {:<6} {:<40} {desc}", format!("{k:?}"), format!("{l:?}"), note);
        println!("{:>60}{status}", "");
    }
    println!("compared {compared} (of which {differs} design differences asserted), skipped {skipped}");
    assert!(failures.is_empty(), "divergences from Katran:\n{}", failures.join("\n"));

    // ICMP routing is really checked: every compared ICMP error shares its flow with
    // an earlier compared packet.
    for (i, c) in cases.iter().enumerate() {
        let ip = ip_of(&inputs[i].1);
        let is_error = ip.as_ref().is_some_and(|ip| matches!(ip.proto, 1 | 58)) && matches!(PLAN[i].1, Plan::Compare);
        if is_error && let Some(fl) = ip.and_then(|ip| flow_of(ip.packet)) {
            assert!(
                by_flow.get(&fl).is_some_and(|v| v.len() >= 2 && v[0].0 < i),
                "case {i} {:?}: no earlier packet of the quoted flow",
                c["description"]
            );
        }
    }
    assert_eq!(compared + skipped, cases.len());
    assert!(compared * 4 >= cases.len() * 3, "only {compared} of {} cases compared", cases.len());
    // Katran's DROP of the 1515-byte UDP packet: l4lb drops it as too big (no DF, no answer due).
    assert_eq!(stats["drops"]["too_big"], 1);
    // Kept on failure for inspection.
    let _ = std::fs::remove_dir_all(&dir);
}
