//! Every capture under `shared/testdata` goes through every view without a panic, and the
//! features we know are in there (VLAN tags, IPv6 fragment headers, ICMP errors, GRE) are
//! recognised.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};

use common::flow::proto;
use common::wire::ethernet;
use common::wire::ipv4::Ipv4Packet;
use common::wire::ipv6::Ipv6Packet;
use common::wire::ipv6_ext;
use common::wire::tcp::TcpPacket;
use common::wire::udp::UdpPacket;
use common::wire::vlan;
use pcap_file::pcap::{PcapHeader, PcapReader};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, Endianness};
use support::Features;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata");

/// The test data directory: `shared/testdata` beside the repository, or `$L4LB_TESTDATA` (for a
/// checkout that does not sit beside `shared/`, e.g. a git worktree).
fn testdata() -> PathBuf {
    std::env::var_os("L4LB_TESTDATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(TESTDATA))
}

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            captures(&p, out);
        } else if matches!(p.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng")) {
            out.push(p);
        }
    }
}

/// Feed one frame of the given link type; returns false if the link type is not walked.
fn frame(link: DataLink, data: &[u8], f: &mut Features) -> bool {
    support::every_view(data);
    match link {
        DataLink::ETHERNET => {
            support::walk_ethernet(data, f);
            match (our_tuple(data), their_tuple(data)) {
                (Some(a), Some(b)) => {
                    assert_eq!(a, b, "5-tuple differs from etherparse on frame {data:02x?}");
                    f.etherparse_agree += 1;
                }
                (a, b) if a.is_some() != b.is_some() => {
                    println!("5-tuple: ours {:?}, etherparse {:?}, frame {:02x?}", a, b, &data[..data.len().min(64)]);
                    f.etherparse_differ += 1
                }
                _ => {}
            }
            true
        }
        DataLink::IPV4 => {
            support::walk_ipv4(data, f, 0);
            true
        }
        DataLink::IPV6 => {
            support::walk_ipv6(data, f, 0);
            true
        }
        DataLink::RAW => {
            match data.first().map(|b| b >> 4) {
                Some(6) => support::walk_ipv6(data, f, 0),
                _ => support::walk_ipv4(data, f, 0),
            }
            true
        }
        _ => false,
    }
}

/// (source, destination, protocol, source port, destination port).
type Tuple = (Vec<u8>, Vec<u8>, u8, u16, u16);

/// Our 5-tuple of an Ethernet frame (addresses as bytes, whole IPv4/IPv6, TCP/UDP only, not a
/// fragment), or None.
fn our_tuple(data: &[u8]) -> Option<Tuple> {
    let l2 = vlan::parse_l2(data).ok()?;
    let l3 = &data[l2.len..];
    let (src, dst, protocol, l4): (Vec<u8>, Vec<u8>, u8, &[u8]) = match l2.ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked(l3).ok()?;
            if ip.is_fragment() {
                return None;
            }
            (ip.src_bytes().to_vec(), ip.dst_bytes().to_vec(), ip.protocol(), ip.into_payload())
        }
        ethernet::ETHERTYPE_IPV6 => {
            let ip = Ipv6Packet::new_checked(l3).ok()?;
            let up = ipv6_ext::walk(l3).ok()?;
            if up.fragment.is_some_and(|f| !f.is_atomic()) {
                return None;
            }
            let end = 40 + usize::from(ip.payload_len());
            (ip.src_bytes().to_vec(), ip.dst_bytes().to_vec(), up.protocol, &l3[up.offset..end])
        }
        _ => return None,
    };
    let (sp, dp) = match protocol {
        proto::TCP => {
            let t = TcpPacket::new_checked(l4).ok()?;
            (t.src_port(), t.dst_port())
        }
        proto::UDP => {
            let u = UdpPacket::new_checked(l4).ok()?;
            (u.src_port(), u.dst_port())
        }
        _ => return None,
    };
    Some((src, dst, protocol, sp, dp))
}

/// etherparse's 5-tuple of the same frame.
fn their_tuple(data: &[u8]) -> Option<Tuple> {
    let p = etherparse::SlicedPacket::from_ethernet(data).ok()?;
    let (src, dst): (Vec<u8>, Vec<u8>) = match &p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => {
            if ip.header().is_fragmenting_payload() {
                return None;
            }
            (ip.header().source().to_vec(), ip.header().destination().to_vec())
        }
        Some(etherparse::NetSlice::Ipv6(ip)) => {
            if ip.is_payload_fragmented() {
                return None;
            }
            (ip.header().source().to_vec(), ip.header().destination().to_vec())
        }
        _ => return None,
    };
    match &p.transport {
        Some(etherparse::TransportSlice::Tcp(t)) => Some((src, dst, proto::TCP, t.source_port(), t.destination_port())),
        Some(etherparse::TransportSlice::Udp(u)) => Some((src, dst, proto::UDP, u.source_port(), u.destination_port())),
        _ => None,
    }
}

struct FileResult {
    frames: u64,
    strict_rejects: u64,
    walked: u64,
    features: Features,
}

/// Classic pcap. The file header is parsed by `pcap-file`; records are walked here, leniently
/// (pcap-file rejects records whose lengths exceed the snap length, and the fuzzing captures
/// are full of those: exactly the frames we want to see). Also counts the frames
/// `pcap-file` itself does not deliver.
fn read_pcap(path: &Path) -> Result<FileResult, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (mut rest, header) = PcapHeader::from_slice(&bytes).map_err(|e| e.to_string())?;
    let u32_at = |b: &[u8], at: usize| {
        let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match header.endianness {
            Endianness::Big => u32::from_be_bytes(a),
            Endianness::Little => u32::from_le_bytes(a),
        }
    };
    // LINKTYPE_ values live in the low bits; the top bits may carry FCS information
    // (pcap-savefile: "LinkType and additional information"), as tcpdump's LT_LINKTYPE() masks.
    let link = match header.datalink {
        DataLink::Unknown(v) => DataLink::from(v & 0x03ff_ffff),
        l => l,
    };
    let mut r = FileResult { frames: 0, walked: 0, strict_rejects: 0, features: Features::default() };
    while rest.len() >= 16 {
        let incl = u32_at(rest, 8) as usize;
        let data = &rest[16..(16 + incl).min(rest.len())];
        rest = &rest[(16 + incl).min(rest.len())..];
        r.frames += 1;
        if frame(link, data, &mut r.features) {
            r.walked += 1;
        }
    }
    // Cross-check the frame count with pcap-file, which stops at the first record it finds invalid.
    let mut reader = PcapReader::new(File::open(path).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let mut strict = 0;
    let mut stopped = false;
    while let Some(p) = reader.next_packet() {
        if p.is_err() {
            stopped = true;
            break;
        }
        strict += 1;
    }
    if stopped {
        assert!(strict < r.frames, "{}: pcap-file stopped early yet read more", path.display());
    } else {
        assert_eq!(strict, r.frames, "{}: frame count differs from pcap-file", path.display());
    }
    r.strict_rejects = r.frames - strict;
    Ok(r)
}

fn read_pcapng(path: &Path) -> Result<FileResult, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut reader = PcapNgReader::new(file).map_err(|e| e.to_string())?;
    let mut links: Vec<DataLink> = Vec::new();
    let mut r = FileResult { frames: 0, walked: 0, strict_rejects: 0, features: Features::default() };
    while let Some(block) = reader.next_block() {
        let Ok(block) = block else { break };
        let (link, data) = match block {
            Block::InterfaceDescription(idb) => {
                links.push(idb.linktype);
                continue;
            }
            Block::EnhancedPacket(epb) => {
                (links.get(epb.interface_id as usize).copied().unwrap_or(DataLink::ETHERNET), epb.data.into_owned())
            }
            Block::SimplePacket(spb) => (links.first().copied().unwrap_or(DataLink::ETHERNET), spb.data.into_owned()),
            Block::Packet(pb) => {
                (links.get(usize::from(pb.interface_id)).copied().unwrap_or(DataLink::ETHERNET), pb.data.into_owned())
            }
            _ => continue,
        };
        r.frames += 1;
        if frame(link, &data, &mut r.features) {
            r.walked += 1;
        }
    }
    Ok(r)
}

#[test]
fn every_capture_parses_without_panic() {
    let dir = testdata();
    let dir = dir.as_path();
    if !dir.is_dir() {
        println!("skipping: test data not found at {}", dir.display());
        return;
    }
    let mut files = Vec::new();
    captures(dir, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no captures under {}", dir.display());

    let mut total = Features::default();
    let (mut frames, mut walked, mut opened, mut lenient) = (0u64, 0u64, 0usize, 0u64);
    for path in &files {
        let is_ng = path.extension().is_some_and(|x| x == "pcapng");
        let res = if is_ng { read_pcapng(path) } else { read_pcap(path) };
        match res {
            Ok(r) => {
                opened += 1;
                frames += r.frames;
                walked += r.walked;
                lenient += r.strict_rejects;
                total.add(&r.features);
            }
            Err(e) => println!("{}: not a readable capture ({e})", path.display()),
        }
    }
    total.frames = walked;
    println!(
        "{opened}/{} captures opened, {frames} frames ({lenient} past a record pcap-file rejects), \
         {walked} walked (Ethernet or raw IP)",
        files.len()
    );
    println!("{total:#?}");

    assert!(opened > 100, "expected the >100 captures of shared/testdata, opened {opened}");
    assert!(frames > 0 && walked > 0);
    assert!(total.vlan_tagged > 0, "no VLAN-tagged frame recognised");
    assert!(total.qinq > 0, "no QinQ frame recognised");
    assert!(total.arp > 0, "no ARP recognised");
    assert!(total.ipv4 > 0 && total.ipv6 > 0);
    assert!(total.ipv4_options > 0, "no IPv4 options recognised");
    assert!(total.ipv4_fragments > 0, "no IPv4 fragment recognised");
    assert!(total.ipv6_ext_headers > 0, "no IPv6 extension header recognised");
    assert!(total.ipv6_fragment_headers > 0, "no IPv6 fragment header recognised");
    assert!(total.tcp > 0 && total.udp > 0);
    assert!(total.l4_checksum_ok > 0, "no TCP/UDP checksum verified");
    assert!(total.icmp_errors > 0 && total.icmp_quotes_parsed > 0, "no ICMP error with a quote recognised");
    assert!(total.gre > 0 && total.gre_inner_ip > 0, "no GRE packet carrying IP recognised");
    assert!(total.tunnels > 0, "no IP-in-IP tunnel recognised");
    // Where both parsers find a TCP/UDP 5-tuple they agree (asserted per frame above); where only
    // one does, the other rejected the frame (stricter length checks, three VLAN tags, ...).
    assert!(total.etherparse_agree > 1000, "etherparse cross-check covered only {} frames", total.etherparse_agree);
    assert_eq!(total.etherparse_differ, 0, "frames only one of the two parsers accepts (printed above)");
    // The malformed captures must be caught, not accepted.
    assert!(total.ipv4_errors > 0, "no malformed IPv4 rejected");
    assert!(total.ipv6_errors + total.ipv6_chain_errors > 0, "no malformed IPv6 rejected");
    assert!(total.l4_errors > 0, "no malformed L4 header rejected");
}

/// Known single files: the checks each `new_checked` makes catch what the capture is about.
#[test]
fn known_malformed_captures_are_rejected() {
    let dir = testdata().join("tcpdump");
    if !dir.is_dir() {
        println!("skipping: test data not found at {}", dir.display());
        return;
    }
    let walk = |name: &str| -> Option<Features> {
        let p = dir.join(name);
        if !p.exists() {
            println!("skipping {name}: absent");
            return None;
        }
        Some(read_pcap(&p).expect("readable").features)
    };
    if let Some(f) = walk("ipv4_invalid_hdr_length.pcap") {
        assert_eq!((f.ipv4, f.ipv4_errors), (0, 1));
    }
    if let Some(f) = walk("ipv4_invalid_total_length.pcap") {
        assert_eq!((f.ipv4, f.ipv4_errors), (0, 1));
    }
    if let Some(f) = walk("udp-length-heapoverflow.pcap") {
        assert_eq!(f.udp, 0);
        assert!(f.l4_errors + f.ipv4_errors > 0);
    }
    if let Some(f) = walk("tcp_header_heapoverflow.pcap") {
        assert_eq!(f.tcp, 0);
    }
    if let Some(f) = walk("802.1ad_QinQ.pcap") {
        assert_eq!((f.qinq, f.arp), (2, 2));
    }
    if let Some(f) = walk("ipv6-bad-version.pcap") {
        assert!(f.ipv6_errors >= 1);
    }
}
