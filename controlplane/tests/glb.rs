//! GLB Director's encapsulation vectors (github/glb-director) replayed through
//! `l4lb replay`. GLB tunnels with GUE, l4lb with GRE or IPIP, so only verdicts and
//! structure are compared (docs/KATRAN.md, "GLB vectors"): every TCP packet to a VIP
//! and every ICMP error about a VIP flow is transmitted encapsulated to one of the
//! VIP's backends with the inner packet intact; an ICMP error goes where the flow
//! it quotes goes; with GLB's default source-address hashing, one client's packets
//! to one VIP go to one backend. GLB tunnels echo requests to a backend; l4lb
//! answers them itself (its contract): asserted as a design difference.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use l4lb_tests::captures::{base64, read_pcap, testdata, tmpdir};
use serde_json::Value;

/// GLB's director NIC MAC is a placeholder in the vectors; l4lb's node.mac.
const NODE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    v.try_into().unwrap()
}

/// The l4lb config equivalent to the vectors' GLB tables: one GRE VIP per bind,
/// the table's backends, source-address hashing (GLB's default hash fields).
/// Returns the TOML and, per VIP address, the backends.
fn l4lb_config(cfg: &Value) -> (String, BTreeMap<IpAddr, Vec<IpAddr>>) {
    let mut toml = format!(
        "[node]\nmac = \"02:00:00:00:00:01\"\ngateway_mac = \"{}\"\nipv4 = \"{}\"\n\n\
         [dataplane]\nflow_table_capacity = 65536\n",
        cfg["outbound_gateway_mac"].as_str().unwrap(),
        cfg["outbound_src_ip"].as_str().unwrap()
    );
    let mut backends = BTreeMap::new();
    for t in cfg["tables"].as_array().unwrap() {
        let bs: Vec<IpAddr> =
            t["backends"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().parse().unwrap()).collect();
        for b in t["binds"].as_array().unwrap() {
            let addr: IpAddr = b["ip"].as_str().unwrap().parse().unwrap();
            let port = b["port"].as_u64().unwrap();
            let proto = b["proto"].as_str().unwrap();
            toml.push_str(&format!(
                "\n[[vip]]\nname = \"{addr}:{port}/{proto}\"\naddress = \"{addr}\"\nport = {port}\n\
                 protocol = \"{proto}\"\nforwarding = \"gre\"\nhash = \"source-ip\"\n"
            ));
            for a in &bs {
                toml.push_str(&format!("  [[vip.backend]]\n  address = \"{a}\"\n"));
            }
            backends.insert(addr, bs.clone());
        }
    }
    (toml, backends)
}

fn replay(cfg: &Path, input: &Path, dir: &Path, tag: &str) -> (PathBuf, PathBuf, Value) {
    let out = dir.join(format!("{tag}.out.pcap"));
    let host = dir.join(format!("{tag}.host.pcap"));
    let stats = dir.join(format!("{tag}.stats.json"));
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
        .output()
        .unwrap();
    assert!(r.status.success(), "l4lb replay failed: {}", String::from_utf8_lossy(&r.stderr));
    let s = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    (out, host, s)
}

/// The IP packet of an Ethernet frame: (family, protocol, src, dst, header length, packet).
fn ip_of(frame: &[u8]) -> (u8, u8, IpAddr, IpAddr, usize, &[u8]) {
    let b = &frame[14..];
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => {
            let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
            let src: [u8; 4] = b[12..16].try_into().unwrap();
            let dst: [u8; 4] = b[16..20].try_into().unwrap();
            (4, b[9], src.into(), dst.into(), usize::from(b[0] & 0x0f) * 4, &b[..len])
        }
        0x86dd => {
            let len = 40 + usize::from(u16::from_be_bytes([b[4], b[5]]));
            let src: [u8; 16] = b[8..24].try_into().unwrap();
            let dst: [u8; 16] = b[24..40].try_into().unwrap();
            (6, b[6], src.into(), dst.into(), 40, &b[..len])
        }
        et => panic!("not IP: ethertype {et:#x}"),
    }
}

/// One's-complement checksum over `data` (with the pseudo-header sum `init`) is valid.
fn checksum_ok(init: u32, data: &[u8]) -> bool {
    let mut s = u64::from(init);
    for c in data.chunks(2) {
        s += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

/// A vector l4lb tunnelled: (vector index, backend, is an ICMP error).
type Routed = (usize, IpAddr, bool);

#[test]
fn glb_vectors_are_encapsulated_to_a_backend_with_the_inner_packet_intact() {
    let Some(td) = testdata().filter(|p| p.join("glb").is_dir()) else {
        println!("skipping: shared test data not found (set L4LB_TESTDATA=/work/shared/testdata)");
        return;
    };
    let gdir = td.join("glb");
    let doc: Value = serde_json::from_slice(&std::fs::read(gdir.join("glb_director_vectors.json")).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    let input_pcap = gdir.join("glb_vectors.input.pcap");
    let inputs = read_pcap(&input_pcap);
    assert_eq!(inputs.len(), cases.len());
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(inputs[i].1, base64(c["input_b64"].as_str().unwrap()), "input frame {i}");
    }
    let (toml, backends) = l4lb_config(&doc["config"]);
    let gw = mac(doc["config"]["outbound_gateway_mac"].as_str().unwrap());
    let dir = tmpdir("glb", "vectors");
    let cfg = dir.join("l4lb.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let (out, host, stats) = replay(&cfg, &input_pcap, &dir, "vectors");

    // Outputs carry their input's timestamp: match them to the vectors.
    let index: BTreeMap<u64, usize> = inputs.iter().enumerate().map(|(i, (t, _))| (*t, i)).collect();
    assert_eq!(index.len(), inputs.len());
    let mut sent: Vec<Option<Vec<u8>>> = vec![None; inputs.len()];
    for (t, f) in read_pcap(&out) {
        let i = index[&t];
        assert!(sent[i].is_none(), "vector {i}: two outputs");
        sent[i] = Some(f);
    }
    assert!(read_pcap(&host).is_empty(), "no GLB vector is the host's");
    assert_eq!(stats["totals"]["dropped_packets"], 0);

    let mut failures = Vec::new();
    // (client, VIP) -> l4lb backends; for ICMP errors, the quoted flow's.
    let mut by_client: BTreeMap<(IpAddr, IpAddr), Vec<Routed>> = BTreeMap::new();
    let (mut tunnelled, mut answered) = (0, 0);
    for (i, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let expected = &c["expected"];
        assert_eq!(expected["action"], "encapsulate (TX)", "{name}: GLB encapsulates every vector");
        let input = &inputs[i].1;
        let (family, proto, src, dst, hl, packet) = ip_of(input);
        // GLB's own output carries the input IP packet unchanged after its GUE header.
        let glb = base64(c["expected_output_b64_dpdk"].as_str().unwrap());
        assert!(glb.ends_with(packet), "{name}: GLB's inner packet is the input");
        let Some(f) = sent[i].as_deref() else {
            failures.push(format!("{name}: not transmitted"));
            continue;
        };
        if f[0..6] != gw || f[6..12] != NODE_MAC {
            failures.push(format!("{name}: Ethernet not gateway <- node"));
        }
        let icmp_type = packet.get(hl).copied();
        let echo = matches!((proto, icmp_type), (1, Some(8)) | (58, Some(128)));
        if echo {
            // Design difference: l4lb answers echo requests to a VIP itself.
            answered += 1;
            let (rf, rp, rsrc, rdst, rhl, reply) = ip_of(f);
            let want_type = if family == 4 { 0 } else { 129 };
            if (rf, rp, rsrc, rdst) != (family, proto, dst, src) || reply.get(rhl) != Some(&want_type) {
                failures.push(format!("{name}: not an echo reply from the VIP to the client"));
            }
            if reply.len() != packet.len() || reply[rhl + 4..] != packet[hl + 4..] {
                failures.push(format!("{name}: echo reply does not echo the request"));
            }
            let init = match (rsrc, rdst) {
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    let words =
                        |a: [u8; 16]| a.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
                    words(s.octets()) + words(d.octets()) + 58 + (reply.len() - rhl) as u32
                }
                _ => 0,
            };
            if !checksum_ok(init, &reply[rhl..]) {
                failures.push(format!("{name}: echo reply checksum invalid: {:02x?}", &reply[rhl..]));
            }
            continue;
        }
        tunnelled += 1;
        // GRE over IPv4 (the backends are IPv4) to one of the VIP's backends.
        let (of, oproto, osrc, odst, ohl, outer) = ip_of(f);
        assert_eq!(expected["gue_proto"], if family == 4 { 4 } else { 41 }, "{name}: GUE protocol = inner family");
        let gre_proto: u16 = if family == 4 { 0x0800 } else { 0x86dd };
        let quoted = match (proto, icmp_type) {
            (6, _) => None,
            (1, Some(3)) | (58, Some(2)) => {
                let q = &packet[hl + 8..];
                Some(if family == 4 {
                    let a: [u8; 4] = q[16..20].try_into().unwrap();
                    IpAddr::from(a)
                } else {
                    let a: [u8; 16] = q[24..40].try_into().unwrap();
                    IpAddr::from(a)
                })
            }
            _ => panic!("{name}: unexpected vector kind"),
        };
        let vip_backends = &backends[&dst];
        if of != 4 || oproto != 47 || osrc != IpAddr::V4(Ipv4Addr::new(65, 65, 65, 65)) {
            failures.push(format!("{name}: outer not IPv4 GRE from 65.65.65.65"));
        } else if !vip_backends.contains(&odst) {
            failures.push(format!("{name}: outer destination {odst} not a backend of {dst}"));
        } else if u16::from_be_bytes([outer[ohl + 2], outer[ohl + 3]]) != gre_proto || outer[ohl..ohl + 2] != [0, 0] {
            failures.push(format!("{name}: GRE header is not the plain 4-byte one for the inner family"));
        } else if &outer[ohl + 4..] != packet {
            failures.push(format!("{name}: inner packet not intact"));
        } else {
            // The client of the flow: the sender, or for an ICMP error the quoted packet's destination.
            by_client.entry((quoted.unwrap_or(src), dst)).or_default().push((i, odst, quoted.is_some()));
        }
    }
    for ((client, vip), v) in &by_client {
        if !v.iter().all(|x| x.1 == v[0].1) {
            failures.push(format!("client {client} to {vip}: several backends {v:?} with source-ip hashing"));
        }
    }
    println!("GLB vectors: {tunnelled} encapsulated to a backend, {answered} echo requests answered by l4lb");
    assert!(failures.is_empty(), "GLB vectors:\n{}", failures.join("\n"));
    assert_eq!(tunnelled + answered, cases.len());
    assert_eq!(answered, 2);
    // Each ICMP error went to the backend of a TCP flow it quotes: routing really checked.
    let errors: Vec<_> = by_client.values().flatten().filter(|x| x.2).collect();
    assert_eq!(errors.len(), 2);
    for v in by_client.values().filter(|v| v.iter().any(|x| x.2)) {
        assert!(v.iter().any(|x| !x.2), "an ICMP error without a TCP packet of its flow: {v:?}");
    }
    // Kept on failure for inspection.
    let _ = std::fs::remove_dir_all(&dir);
}

/// GLB's own pcap test: 1000 identical SYNs to 1.1.1.1:80; upstream expects 1000
/// packets out to one backend. Here: 1000 GRE packets to one backend of the VIP.
#[test]
fn glb_1k_identical_syns_all_go_to_one_backend() {
    let Some(td) = testdata().filter(|p| p.join("glb").is_dir()) else {
        println!("skipping: shared test data not found (set L4LB_TESTDATA=/work/shared/testdata)");
        return;
    };
    let gdir = td.join("glb");
    let doc: Value = serde_json::from_slice(&std::fs::read(gdir.join("glb_director_vectors.json")).unwrap()).unwrap();
    let (toml, backends) = l4lb_config(&doc["config"]);
    let dir = tmpdir("glb", "1k");
    let cfg = dir.join("l4lb.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let input = gdir.join("glb_1k_pkts.pcap");
    let inputs = read_pcap(&input);
    assert_eq!(inputs.len(), 1000);
    let (out, _, _) = replay(&cfg, &input, &dir, "1k");
    let sent = read_pcap(&out);
    assert_eq!(sent.len(), 1000);
    let first = ip_of(&sent[0].1).3;
    let vip: IpAddr = "1.1.1.1".parse().unwrap();
    assert!(backends[&vip].contains(&first));
    for ((_, f), (_, i)) in sent.iter().zip(&inputs) {
        let (_, proto, _, dst, hl, outer) = ip_of(f);
        assert_eq!((proto, dst), (47, first));
        assert_eq!(&outer[hl + 4..], ip_of(i).5);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
