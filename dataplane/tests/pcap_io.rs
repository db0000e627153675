//! Reads every capture in the shared test data with `dataplane::port::pcap` and
//! checks packet counts (as tshark/capinfos report them) and link-type rejection.

use std::path::{Path, PathBuf};

use dataplane::port::PacketBuf;
use dataplane::port::memory::HeapBuf;
use dataplane::port::pcap::{PcapError, PcapReader, PcapWriter, TsResolution};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata");

/// Every capture with what capinfos 4.x reports: `Ok(packets)` for Ethernet,
/// `Err(linktype)` for other link types (which the reader must reject).
const EXPECTED: &[(&str, Result<u64, u32>)] = &[
    ("glb/glb_1k_pkts.pcap", Ok(1000)),
    ("glb/glb_vectors.expected_dpdk.pcap", Ok(15)),
    ("glb/glb_vectors.input.pcap", Ok(15)),
    ("katran/pcap/base.expected.pcap", Ok(36)),
    ("katran/pcap/base.input.pcap", Ok(36)),
    ("katran/pcap/cidr_vip.expected.pcap", Ok(9)),
    ("katran/pcap/cidr_vip.input.pcap", Ok(9)),
    ("katran/pcap/decap_stats.expected.pcap", Ok(3)),
    ("katran/pcap/decap_stats.input.pcap", Ok(3)),
    ("katran/pcap/decap_tc_srcmatch.expected.pcap", Ok(5)),
    ("katran/pcap/decap_tc_srcmatch.input.pcap", Ok(5)),
    ("katran/pcap/decap_xdp.expected.pcap", Ok(10)),
    ("katran/pcap/decap_xdp.input.pcap", Ok(10)),
    ("katran/pcap/decap_xdp_gue.expected.pcap", Ok(17)),
    ("katran/pcap/decap_xdp_gue.input.pcap", Ok(17)),
    ("katran/pcap/egress_decap.expected.pcap", Ok(3)),
    ("katran/pcap/egress_decap.input.pcap", Ok(3)),
    ("katran/pcap/gue.expected.pcap", Ok(36)),
    ("katran/pcap/gue.input.pcap", Ok(36)),
    ("katran/pcap/hc.expected.pcap", Ok(4)),
    ("katran/pcap/hc.input.pcap", Ok(4)),
    ("katran/pcap/hc_gue.expected.pcap", Ok(4)),
    ("katran/pcap/hc_gue.input.pcap", Ok(4)),
    ("katran/pcap/icmp_too_big.expected.pcap", Ok(2)),
    ("katran/pcap/icmp_too_big.input.pcap", Ok(2)),
    ("katran/pcap/icmp_too_big_origin_gue.expected.pcap", Ok(2)),
    ("katran/pcap/icmp_too_big_origin_gue.input.pcap", Ok(2)),
    ("katran/pcap/lpm_src_lookup.expected.pcap", Ok(8)),
    ("katran/pcap/lpm_src_lookup.input.pcap", Ok(8)),
    ("katran/pcap/tpr.expected.pcap", Ok(17)),
    ("katran/pcap/tpr.input.pcap", Ok(17)),
    ("katran/pcap/tpr_gue.expected.pcap", Ok(17)),
    ("katran/pcap/tpr_gue.input.pcap", Ok(17)),
    ("katran/pcap/udp_flow_migration_1.expected.pcap", Ok(4)),
    ("katran/pcap/udp_flow_migration_1.input.pcap", Ok(4)),
    ("katran/pcap/udp_flow_migration_2.expected.pcap", Ok(4)),
    ("katran/pcap/udp_flow_migration_2.input.pcap", Ok(4)),
    ("katran/pcap/udp_stable_rt.expected.pcap", Ok(5)),
    ("katran/pcap/udp_stable_rt.input.pcap", Ok(5)),
    ("katran/pcap/xpop_decap.expected.pcap", Ok(7)),
    ("katran/pcap/xpop_decap.input.pcap", Ok(7)),
    ("other/tcpreplay/expected.rewrite_1ttl.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_2ttl.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_3ttl.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_config.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_endpoint.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_enet_subsmac.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_fixcsum.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_mtutrunc.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_pnat.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_portmap.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_range_portmap.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_tos.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_vlan802.1ad.pcap", Ok(179)),
    ("other/tcpreplay/expected.rewrite_vlandel.pcap", Ok(179)),
    ("other/tcpreplay/tcpreplay_test.pcap", Ok(179)),
    ("other/zeek/chksums_ip4-bad-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip4-icmp-bad-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip4-icmp-good-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip4-tcp-bad-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip4-tcp-good-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip4-udp-bad-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip4-udp-good-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip6-icmp6-bad-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip6-icmp6-good-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip6-route0-tcp-bad-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip6-route0-tcp-good-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip6-tcp-bad-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip6-tcp-good-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip6-udp-bad-chksum.pcap", Ok(1)),
    ("other/zeek/chksums_ip6-udp-good-chksum.pcap", Ok(1)),
    ("other/zeek/http-qinq-0.pcap", Ok(14)),
    ("other/zeek/http_bro.org.pcap", Ok(751)),
    ("other/zeek/icmp_dot1q.pcap", Ok(15)),
    ("other/zeek/icmp_icmp-destunreach-ip.pcap", Ok(1)),
    ("other/zeek/icmp_icmp-destunreach-no-context.pcap", Ok(1)),
    ("other/zeek/icmp_icmp-destunreach-udp.pcap", Ok(1)),
    ("other/zeek/icmp_icmp-timeexceeded.pcap", Ok(1)),
    ("other/zeek/icmp_icmp6-destunreach-ip6ext-trunc.pcap", Ok(1)),
    ("other/zeek/icmp_icmp6-paramprob.pcap", Ok(1)),
    ("other/zeek/icmp_icmp6-timeexceeded.pcap", Ok(1)),
    ("other/zeek/icmp_icmp6-toobig.pcap", Ok(1)),
    ("other/zeek/ip-bogus-header-len.pcap", Ok(1)),
    ("other/zeek/ipv4_fragmented-1.pcap", Ok(3)),
    ("other/zeek/ipv4_fragmented-2.pcap", Ok(3)),
    ("other/zeek/ipv4_fragmented-4.pcap", Ok(6)),
    ("other/zeek/ipv4_fragmented-syn.pcap", Ok(2)),
    ("other/zeek/ipv6-fragmented-dns.pcap", Ok(8)),
    ("other/zeek/ipv6-hbh-routing0.pcap", Ok(1)),
    ("other/zeek/ipv6-http-atomic-frag.pcap", Ok(38)),
    ("other/zeek/linux_dlt_sll2.pcap", Err(276)),
    ("other/zeek/tcp_options.pcap", Ok(4)),
    ("other/zeek/tcp_syn-bad.pcap", Ok(1)),
    ("other/zeek/tcp_truncated-header.pcap", Ok(24)),
    ("other/zeek/trunc_icmp-header-trunc.pcap", Ok(2)),
    ("other/zeek/trunc_ip4-trunc.pcap", Ok(1)),
    ("other/zeek/trunc_ip6-ext-trunc.pcap", Ok(1)),
    ("other/zeek/trunc_ip6-trunc.pcap", Ok(1)),
    ("other/zeek/trunc_ipv4-internally-truncated-header.pcap", Ok(1)),
    ("other/zeek/trunc_ipv4-truncated-broken-header.pcap", Ok(1)),
    ("other/zeek/trunc_trunc-hdr.pcap", Ok(1)),
    ("other/zeek/tunnels_4in4.pcap", Ok(1)),
    ("other/zeek/tunnels_4in6.pcap", Ok(1)),
    ("other/zeek/tunnels_6in4.pcap", Ok(1)),
    ("other/zeek/tunnels_6in6.pcap", Ok(1)),
    ("other/zeek/tunnels_6in6in6.pcap", Ok(1)),
    ("other/zeek/tunnels_gre-sample.pcap", Ok(40)),
    ("other/zeek/tunnels_ping6-in-ipv4.pcap", Ok(10)),
    ("other/zeek/udp-contents-truncated-oob.pcap", Ok(1)),
    ("tcpdump/802.1ad_QinQ.pcap", Ok(2)),
    ("tcpdump/LINKTYPE_IPV4.pcap", Err(228)),
    ("tcpdump/LINKTYPE_IPV4_invalid.pcap", Err(228)),
    ("tcpdump/LINKTYPE_IPV6.pcap", Err(229)),
    ("tcpdump/LINKTYPE_RAW_ipv4.pcap", Err(101)),
    ("tcpdump/LINKTYPE_RAW_ipv6.pcap", Err(101)),
    ("tcpdump/accecn_handshake.pcap", Ok(6)),
    ("tcpdump/bad-ipv4-version-pgm-heapoverflow.pcap", Ok(1)),
    ("tcpdump/dns_udp.pcap", Ok(2)),
    ("tcpdump/empty.pcap", Ok(0)),
    ("tcpdump/erspan-type-i-1.pcap", Ok(2)),
    ("tcpdump/gre-heapoverflow-1.pcap", Ok(2)),
    ("tcpdump/gre-heapoverflow-2.pcap", Ok(2)),
    ("tcpdump/heapoverflow-tcp_print.pcap", Ok(1)),
    ("tcpdump/icmpv6-length-zero.pcapng", Ok(1)),
    ("tcpdump/icmpv6-rfc7112.pcap", Ok(1)),
    ("tcpdump/icmpv6.pcap", Ok(5)),
    ("tcpdump/igmpv3-queries.pcap", Ok(6)),
    ("tcpdump/ip6_frag_asan.pcap", Ok(1)),
    ("tcpdump/ip_printroute_asan.pcap", Ok(1)),
    ("tcpdump/ip_ts_opts_asan.pcap", Ok(1)),
    ("tcpdump/ipv4_invalid_hdr_length.pcap", Ok(1)),
    ("tcpdump/ipv4_invalid_length.pcap", Ok(1)),
    ("tcpdump/ipv4_invalid_total_length.pcap", Ok(1)),
    ("tcpdump/ipv4_tcp_http_xml.pcap", Ok(1)),
    ("tcpdump/ipv6-bad-version.pcap", Ok(4)),
    ("tcpdump/ipv6-next-header-oobr-1.pcap", Err(229)),
    ("tcpdump/ipv6-routing-header.pcap", Ok(4)),
    ("tcpdump/ipv6-srh-ext-header.pcap", Ok(1)),
    ("tcpdump/ipv6-too-long-jumbo.pcap", Ok(1)),
    ("tcpdump/ipv6_39_byte_header.pcap", Ok(1)),
    ("tcpdump/ipv6_frag6_negative_len.pcap", Ok(1)),
    ("tcpdump/ipv6_invalid_length.pcap", Ok(1)),
    ("tcpdump/ipv6_jumbogram_1.pcap", Ok(1)),
    ("tcpdump/ipv6_missing_jumbo_payload_option.pcap", Ok(1)),
    ("tcpdump/radius_rfc5447.pcap", Err(113)),
    ("tcpdump/syslog_udp.pcap", Ok(4)),
    ("tcpdump/tcp-handshake-nano.pcap", Err(113)),
    ("tcpdump/tcp_eight_lowest_weight_flags_set.pcap", Ok(1)),
    ("tcpdump/tcp_header_heapoverflow.pcap", Ok(1)),
    ("tcpdump/tcp_rst_data-trunc.pcap", Ok(1)),
    ("tcpdump/tcp_rst_data.pcap", Ok(1)),
    ("tcpdump/tcp_rst_diag_payload.pcap", Err(0)),
    ("tcpdump/tfo-5c1fa7f9ae91.pcap", Ok(14)),
    ("tcpdump/timestamp_invalid_micro.pcap", Err(113)),
    ("tcpdump/udp-length-heapoverflow.pcap", Ok(1)),
    ("tcpdump/various_gre.pcap", Ok(100)),
    ("tcpdump/wccp_redirect_gre.pcap", Ok(1)),
];

/// The shared test data (`l4lb_tests::captures::testdata`), or a printed reason to skip.
fn testdata() -> Option<PathBuf> {
    let found = l4lb_tests::captures::testdata();
    if found.is_none() {
        println!("skipped: shared test data not found at {TESTDATA} (nor $L4LB_TESTDATA)");
    }
    found
}

/// Read a whole capture: (packets, frame bytes, first timestamp).
fn read(path: &Path) -> Result<(u64, u64, Option<u64>), PcapError> {
    let mut r = PcapReader::open(path)?;
    let (mut n, mut bytes, mut first) = (0u64, 0u64, None);
    while let Some(f) = r.next_frame()? {
        n += 1;
        bytes += f.len() as u64;
        first.get_or_insert(r.ts_ns());
    }
    assert!(!r.truncated_tail(), "{}: unexpected truncation", path.display());
    // The same through heap buffers: every frame whole, whatever its length.
    let mut r = PcapReader::open(path)?;
    let mut b = HeapBuf::new();
    let mut n2 = 0;
    while r.next_into(&mut b)?.is_some() {
        n2 += 1;
        assert_eq!(b.len(), r.frame_len(), "{}", path.display());
    }
    assert_eq!(n, n2);
    Ok((n, bytes, first))
}

#[test]
fn every_shared_capture_reads_with_tshark_counts() {
    let Some(dir) = testdata() else { return };
    let found = l4lb_tests::captures::all_captures(&dir);
    assert!(found.len() >= EXPECTED.len(), "found {} captures, expected {}", found.len(), EXPECTED.len());
    let (mut ok, mut rejected) = (0, 0);
    for path in &found {
        let rel = path.strip_prefix(&dir).unwrap().to_string_lossy().replace('\\', "/");
        let got = read(path);
        match EXPECTED.iter().find(|(p, _)| *p == rel).map(|e| e.1) {
            Some(Ok(n)) => {
                let (pk, _, _) = got.unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert_eq!(pk, n, "{rel}: packet count");
                ok += 1;
            }
            Some(Err(lt)) => {
                match got {
                    Err(PcapError::NotEthernet(x)) => assert_eq!(x, lt, "{rel}"),
                    other => panic!("{rel}: expected NotEthernet({lt}), got {other:?}"),
                }
                rejected += 1;
            }
            // A capture added later: it must at least read or be rejected cleanly.
            None => println!("{rel}: not in the table: {:?}", got.map(|g| g.0)),
        }
    }
    assert_eq!(ok + rejected, EXPECTED.len());
    println!("{ok} Ethernet captures read, {rejected} non-Ethernet rejected");
}

#[test]
fn known_timestamps_and_sizes() {
    let Some(dir) = testdata() else { return };
    // tshark -T fields -e frame.time_epoch
    let (n, bytes, first) = read(&dir.join("glb/glb_1k_pkts.pcap")).unwrap();
    assert_eq!((n, bytes, first), (1000, 54_000, Some(1_502_486_962_001_443_000)));
    let (n, bytes, first) = read(&dir.join("tcpdump/icmpv6-length-zero.pcapng")).unwrap();
    assert_eq!((n, bytes, first), (1, 86, Some(1_274_329_489_656_077_000)));
    let (n, _, first) = read(&dir.join("other/zeek/http_bro.org.pcap")).unwrap();
    assert_eq!((n, first), (751, Some(1_389_719_041_819_644_000)));
}

#[test]
fn copying_a_capture_is_lossless() {
    let Some(dir) = testdata() else { return };
    let path = dir.join("other/zeek/http_bro.org.pcap");
    let mut r = PcapReader::open(&path).unwrap();
    let mut w = PcapWriter::new(Vec::new(), r.resolution()).unwrap();
    let mut orig = Vec::new();
    let mut b = HeapBuf::new();
    while r.next_into(&mut b).unwrap().is_some() {
        w.write(b.ts_ns, b.data()).unwrap();
        orig.push((b.ts_ns, b.data().to_vec()));
    }
    let out = w.into_inner().unwrap();
    let mut r2 = PcapReader::new(&out[..]).unwrap();
    assert_eq!(r2.resolution(), TsResolution::Micro);
    let mut copy = Vec::new();
    while r2.next_into(&mut b).unwrap().is_some() {
        copy.push((b.ts_ns, b.data().to_vec()));
    }
    assert_eq!(copy.len(), 751);
    assert_eq!(copy, orig);
}

/// Release builds only: `cargo test --release -p dataplane --test pcap_io -- --nocapture`.
#[cfg(not(debug_assertions))]
#[test]
fn million_frames_write_and_read_speed() {
    let frame = [0x5au8; 64];
    let t0 = std::time::Instant::now();
    let mut w = PcapWriter::new(Vec::with_capacity(81 << 20), TsResolution::Nano).unwrap();
    for i in 0..1_000_000u64 {
        w.write(1_700_000_000_000_000_000 + i * 1000, &frame).unwrap();
    }
    let bytes = w.into_inner().unwrap();
    let t1 = std::time::Instant::now();
    let mut r = PcapReader::new(&bytes[..]).unwrap();
    let mut b = HeapBuf::new();
    let mut n = 0u64;
    while r.next_into(&mut b).unwrap().is_some() {
        n += 1;
    }
    let t2 = std::time::Instant::now();
    println!("1M 64-byte frames: write {:?}, read into HeapBuf {:?}", t1 - t0, t2 - t1);
    assert_eq!(n, 1_000_000);
    assert!((t2 - t1).as_secs_f64() < 2.0);
}
