use super::*;

const NODE: &str = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
ipv6 = "fd00::2"
"#;

fn with_node(rest: &str) -> String {
    format!("{NODE}\n{rest}")
}

const WEB: &str = r#"
[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
  [[vip.backend]]
  address = "10.1.0.11"
"#;

/// The error lines of a configuration that must fail.
fn errors(text: &str) -> Vec<String> {
    match Config::from_toml_str(text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => {
            assert!(!e.is_empty());
            e.lines()
        }
    }
}

fn assert_error(text: &str, want: &str) {
    let errs = errors(text);
    assert!(errs.iter().any(|l| l.contains(want)), "no error containing {want:?} in {errs:#?}");
}

#[test]
fn contract_example_parses_with_every_value() {
    let text = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
ipv6 = "fd00::2"
mtu = 1500

[dataplane]
workers = 1
flow_table_capacity = 1048576
tcp_established_timeout = "300s"
tcp_transitory_timeout = "10s"
udp_timeout = "30s"

[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
hash = "5-tuple"
table_size = 65537

  [[vip.backend]]
  address = "10.1.0.11"
  weight = 1
  state = "up"
"#;
    let c = Config::from_toml_str(text).unwrap();
    assert_eq!(c.node.mac, [2, 0, 0, 0, 0, 1]);
    assert_eq!(c.node.gateway_mac, [2, 0, 0, 0, 0, 0xfe]);
    assert_eq!(c.node.ipv4, Some("10.0.0.2".parse().unwrap()));
    assert_eq!(c.node.ipv6, Some("fd00::2".parse().unwrap()));
    let v = &c.vips[0];
    assert_eq!(v.name, "web");
    assert_eq!(
        (v.port, v.protocol, v.forwarding, v.hash, v.table_size),
        (80, Protocol::Tcp, Forwarding::Gre, HashMode::FiveTuple, 65537)
    );
    assert_eq!(
        v.backends[0],
        BackendConfig { address: "10.1.0.11".parse().unwrap(), port: 80, weight: 1, state: BackendState::Up }
    );
    assert!(c.io.is_none());
    c.validate().unwrap();
}

#[test]
fn defaults_follow_the_contract() {
    let c = Config::from_toml_str(&with_node(WEB)).unwrap();
    assert_eq!(c.node.mtu, 1500);
    assert_eq!(c.dataplane.workers, 1);
    assert_eq!(c.dataplane.flow_table_capacity, 1_048_576);
    assert_eq!(c.dataplane.tcp_established_timeout, Duration::from_secs(300));
    assert_eq!(c.dataplane.tcp_transitory_timeout, Duration::from_secs(10));
    assert_eq!(c.dataplane.udp_timeout, Duration::from_secs(30));
    let v = &c.vips[0];
    assert_eq!(v.hash, HashMode::FiveTuple);
    assert_eq!(v.table_size, 65537);
    assert_eq!(v.backends[0].weight, 1);
    assert_eq!(v.backends[0].state, BackendState::Up);
    assert_eq!(v.backends[0].port, 80);
}

#[test]
fn dnat_backend_port_and_default_name() {
    let text = with_node(
        r#"
[[vip]]
address = "2001:db8::10"
port = 443
protocol = "udp"
forwarding = "dnat"
hash = "source-ip"
  [[vip.backend]]
  address = "2001:db8:1::11"
  port = 8443
  [[vip.backend]]
  address = "2001:db8:1::12"
  state = "drain"
  weight = 0
"#,
    );
    let c = Config::from_toml_str(&text).unwrap();
    let v = &c.vips[0];
    assert_eq!(v.name, "[2001:db8::10]:443/udp");
    assert_eq!(v.backends[0].port, 8443);
    assert_eq!(v.backends[1].port, 443);
    assert_eq!(v.backends[1].state, BackendState::Drain);
    assert_eq!(v.hash, HashMode::SourceIp);
    assert_eq!(v.eligible_count(), 1);
}

#[test]
fn unknown_keys_are_errors_with_their_place() {
    let text = with_node(&WEB.replace("port = 80", "port = 80\nwieght = 2"));
    let errs = errors(&text);
    assert_eq!(
        errs,
        [
            r#"vip[0] "web": wieght: unknown key; expected one of name, address, port, protocol, forwarding, hash, table_size, backend"#
        ]
    );
    let errs = errors("[node]\nmac = \"02:00:00:00:00:01\"\n[bogus]\n");
    assert!(errs[0].starts_with("bogus: unknown key; expected one of node, dataplane, vip, io"), "{errs:?}");
    assert_error(&with_node("[io]\ndriver = \"dpdk\"\n[io.dpdk]\nportt = 1\n"), "io.dpdk: portt: unknown key");
}

#[test]
fn syntax_errors_name_line_and_column() {
    let errs = errors("[node]\nmac = \"02:00:00:00:00:01\nx = 1\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("line 2, column "), "{errs:?}");
    assert!(!errs[0].contains('\n'));
}

/// Unknown keys, wrong types and the rules are all checked in one run, each error
/// with its place; a required key with the wrong type is not also called missing.
#[test]
fn unknown_keys_wrong_types_and_rules_are_reported_together() {
    let text = with_node(
        r#"
[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
table_size = 250
  [[vip.backend]]
  address = "10.1.0.11"
  colour = "red"

[[vip]]
name = "api"
address = 5
port = "80"
protocol = "tcp"
forwarding = "gre"
wieght = 2
  [[vip.backend]]
  address = "10.1.0.12"
  weight = 1.5
"#,
    );
    let errs = errors(&text);
    let want = [
        r#"vip[0] "web": backend[0] (10.1.0.11): colour: unknown key; expected one of address, port, weight, state"#,
        r#"vip[1] "api": address: an integer (5) where a string is expected"#,
        r#"vip[1] "api": port: a string ("80") where an integer is expected"#,
        r#"vip[1] "api": wieght: unknown key"#,
        r#"vip[1] "api": backend[0] (10.1.0.12): weight: a float (1.5) where an integer is expected"#,
        r#"vip[0] "web": table_size: 250 is not a prime number"#,
    ];
    for w in want {
        assert!(errs.iter().any(|l| l.starts_with(w)), "no error starting {w:?} in {errs:#?}");
    }
    assert_eq!(errs.len(), want.len(), "nothing else, no \"missing\" for the wrong types: {errs:#?}");
}

#[test]
fn tables_and_arrays_of_the_wrong_shape_are_reported() {
    // A single table where an array of tables belongs: reported, and its contents still
    // checked (no follow-on "no VIP" or "no backend").
    let errs =
        errors(&with_node(&WEB.replace("[[vip]]", "[vip]").replace("[[vip.backend]]", "[vip.backend]\nwieght = 1")));
    assert_eq!(
        errs,
        [
            "vip: a table where an array of tables is expected: write it as [[vip]]",
            r#"vip[0] "web": backend: a table where an array of tables is expected: write it as [[vip.backend]]"#,
            r#"vip[0] "web": backend[0] (10.1.0.11): wieght: unknown key; expected one of address, port, weight, state"#,
        ]
    );
    assert_error(&format!("vip = [1]\n{NODE}"), "vip: element 0 is an integer (1): expected a table [[vip]]");
    assert_error(
        &with_node("[io]\ncores = [1, \"2\"]\n"),
        "io: cores: element 1 is a string (\"2\"): expected an integer",
    );
    assert_error(&with_node("[io]\ncores = 1\n"), "io: cores: an integer (1) where an array of integers is expected");
    assert_error("node = 1\n", "node: an integer (1) where a table [node] is expected");
    // The whole `vip` went with its wrong shape: no second complaint that none is defined.
    let errs = errors(&format!("vip = 3\n{NODE}"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

/// The other way round: every field of the raw structs (listed in full, so that a new
/// field does not compile here until it is added) is a key the shape pass knows.
#[test]
fn every_raw_field_is_a_key_the_shape_pass_knows() {
    use raw::*;
    let s = || Some("x".to_string());
    let backend = RawBackend { address: s(), port: Some(1), weight: Some(1), state: s() };
    let raw = RawConfig {
        node: Some(RawNode { mac: s(), gateway_mac: s(), ipv4: s(), ipv6: s(), mtu: Some(1) }),
        dataplane: Some(RawDataplane {
            workers: Some(1),
            flow_table_capacity: Some(1),
            tcp_established_timeout: s(),
            tcp_transitory_timeout: s(),
            udp_timeout: s(),
        }),
        vips: vec![RawVip {
            name: s(),
            address: s(),
            port: Some(1),
            protocol: s(),
            forwarding: s(),
            hash: s(),
            table_size: Some(1),
            backends: vec![backend],
        }],
        io: Some(RawIo {
            driver: s(),
            interface: s(),
            cores: Some(vec![1]),
            xdp_mode: s(),
            zero_copy: s(),
            ring_size: Some(1),
            dpdk: Some(RawDpdk {
                eal_args: Some(vec!["x".into()]),
                port: Some(1),
                tx_port: Some(1),
                mbufs: Some(1),
                host_tap: s(),
            }),
        }),
    };
    let text = toml::to_string(&raw).expect("serialize");
    let mut table: toml::Table = text.parse().expect("TOML");
    let mut e = super::error::Errors::default();
    super::shape::check(&mut table, &mut e);
    assert!(e.list.is_empty(), "{:?}\n{text}", e.list);
}

/// The key lists of the shape pass and the raw structs agree: a tree with every key
/// of every table the shape pass knows (generated from its lists) is read (an unknown
/// key would fail here), and the shape pass finds nothing wrong with it either.
#[test]
fn every_key_the_shape_pass_knows_is_read() {
    let table = super::shape::sample("");
    assert!(table.contains_key("io") && table.contains_key("vip"), "{table:?}");
    let raw: Result<raw::RawConfig, _> = toml::Value::Table(table.clone()).try_into();
    let raw = raw.unwrap_or_else(|e| panic!("{e}"));
    let dpdk = raw.io.and_then(|io| io.dpdk).expect("io.dpdk read");
    assert!(dpdk.host_tap.is_some() && raw.vips[0].backends[0].state.is_some());
    let mut e = super::error::Errors::default();
    let mut t = table;
    assert!(super::shape::check(&mut t, &mut e).is_empty());
    assert!(e.list.is_empty(), "{:?}", e.list);
}

#[test]
fn every_error_is_collected_with_its_place() {
    let text = r#"
[node]
mac = "02:00:00:00:00"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
mtu = 100

[dataplane]
workers = 0
tcp_established_timeout = "5 minutes"
udp_timeout = "0s"

[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
table_size = 65536
  [[vip.backend]]
  address = "10.1.0.11"
  [[vip.backend]]
  address = "10.1.0.11"
  [[vip.backend]]
  address = "10.1.0.12"
  weight = -1

[[vip]]
name = "api"
address = "198.51.100.10"
port = 80
protocol = "sctp"
forwarding = "dnat"
  [[vip.backend]]
  address = "2001:db8::1"

[[vip]]
name = "web"
address = "198.51.100.11"
port = 53
protocol = "udp"
forwarding = "ipip"
  [[vip.backend]]
  address = "2001:db8::1"
  port = 5353
  [[vip.backend]]
  address = "10.1.0.300"
"#;
    let errs = errors(text);
    let want = [
        r#"node: mac: "02:00:00:00:00" is not a MAC address"#,
        "node: mtu: 100 is out of range 576..=9216",
        "dataplane: workers: 0 is out of range 1..=64",
        r#"dataplane: tcp_established_timeout: "5 minutes" is not a duration"#,
        "dataplane: udp_timeout: must be positive",
        r#"vip[0] "web": table_size: 65536 is not a prime number"#,
        r#"vip[0] "web": backend[1] (10.1.0.11): address: 10.1.0.11 is already backend[0] of this VIP"#,
        r#"vip[0] "web": backend[2] (10.1.0.12): weight: -1 is out of range 0..=4294967295"#,
        r#"vip[1] "api": protocol: "sctp" is not one of "tcp", "udp""#,
        // Still checked although the protocol did not convert (it does not need it).
        r#"vip[1] "api": backend[0] (2001:db8::1): address: 2001:db8::1 is IPv6 but the VIP is IPv4"#,
        r#"vip[2] "web": name: "web" is already the name of vip[0] "web""#,
        r#"vip[2] "web": backend[0] (2001:db8::1): port: only allowed for dnat VIPs"#,
        r#"vip[2] "web": backend[1] (10.1.0.300): address: "10.1.0.300" is not an IPv4 or IPv6 address"#,
    ];
    for w in want {
        assert!(errs.iter().any(|l| l.starts_with(w)), "missing {w:?} in\n{}", errs.join("\n"));
    }
    assert_eq!(errs.len(), want.len(), "{}", errs.join("\n"));
}

#[test]
fn node_rules() {
    assert_error(
        &WEB.replace("[[vip]]", "[node]\nmac = \"02:00:00:00:00:01\"\ngateway_mac = \"02:00:00:00:00:02\"\n[[vip]]"),
        "node: needs ipv4 and/or ipv6",
    );
    assert_error(WEB, "node: missing table [node]");
    assert_error(&with_node(WEB).replace("mac = \"02:00:00:00:00:01\"", ""), "node: mac: missing");
    assert_error(
        &with_node(WEB).replace("02:00:00:00:00:01", "01:00:5e:00:00:01"),
        "node: mac: 01:00:5e:00:00:01 is a multicast MAC",
    );
    assert_error(
        &with_node(WEB).replace("ipv4 = \"10.0.0.2\"", "ipv4 = \"fd00::3\""),
        "node: ipv4: \"fd00::3\" is an IPv6 address",
    );
    assert_error(&with_node(WEB).replace("fd00::2", "10.0.0.3"), "node: ipv6: \"10.0.0.3\" is an IPv4 address");
    assert_error(&with_node(WEB).replace("[node]", "[node]\nmtu = 1000"), "node: mtu: 1000 is below 1280");
    assert_error(&with_node(WEB).replace("[node]", "[node]\nmtu = 9217"), "node: mtu: 9217 is out of range");
    assert_error(
        &(with_node(WEB) + "\n[dataplane]\nflow_table_capacity = 1000000000000\n"),
        "dataplane: flow_table_capacity: 1000000000000 is out of range 1..=1073741824",
    );
    // No IPv6 anywhere: 1000 is fine.
    let v4only = with_node(WEB).replace("ipv6 = \"fd00::2\"", "").replace("[node]", "[node]\nmtu = 1000");
    assert_eq!(Config::from_toml_str(&v4only).unwrap().node.mtu, 1000);
}

#[test]
fn family_rules() {
    let gre6 = WEB.replace("10.1.0.11", "2001:db8::11");
    let no_v6 = with_node(&gre6).replace("ipv6 = \"fd00::2\"", "");
    assert_error(&no_v6, "backend[0] (2001:db8::11): address: 2001:db8::11 is IPv6: gre forwarding needs node.ipv6");
    let no_v4 = with_node(WEB).replace("ipv4 = \"10.0.0.2\"", "");
    assert_error(&no_v4, "backend[0] (10.1.0.11): address: 10.1.0.11 is IPv4: gre forwarding needs node.ipv4");
    let dnat = with_node(&gre6.replace("\"gre\"", "\"dnat\""));
    assert_error(&dnat, "2001:db8::11 is IPv6 but the VIP is IPv4: dnat rewrites addresses");
    // A bad node.ipv6 does not also cause "needs node.ipv6" errors.
    let bad = with_node(&gre6).replace("fd00::2", "fd00::zz");
    assert_eq!(errors(&bad).len(), 1, "{:?}", errors(&bad));
}

#[test]
fn vip_rules() {
    assert_error(&with_node(""), "vip: no [[vip]] defined");
    let no_backend = with_node(&WEB[..WEB.find("  [[vip.backend]]").unwrap()]);
    assert_error(&no_backend, "vip[0] \"web\": has no backend");
    assert_error(&with_node(&WEB.replace("port = 80\n", "")), "vip[0] \"web\": port: missing");
    assert_error(&with_node(&WEB.replace("forwarding = \"gre\"\n", "")), "vip[0] \"web\": forwarding: missing");
    assert_error(
        &with_node(&WEB.replace("gre", "vxlan")),
        "forwarding: \"vxlan\" is not one of \"gre\", \"ipip\", \"dnat\"",
    );
    assert_error(
        &with_node(&WEB.replace("port = 80", "port = 70000")),
        "vip[0] \"web\": port: 70000 is out of range 0..=65535",
    );
    // A port-0 DNAT VIP keeps each packet's port (the backend port defaults to 0 = unchanged).
    Config::from_toml_str(&with_node(&WEB.replace("port = 80", "port = 0").replace("gre", "dnat"))).unwrap();
    let two = format!("{WEB}{}", WEB.replace("\"web\"", "\"web2\""));
    assert_error(&with_node(&two), "vip[1] \"web2\": 198.51.100.10:80/tcp is already served by vip[0] \"web\"");
    let udp = format!("{WEB}{}", WEB.replace("\"web\"", "\"dns\"").replace("tcp", "udp"));
    Config::from_toml_str(&with_node(&udp)).unwrap();
    let big = WEB.replace("port = 80", "port = 80\ntable_size = 16777259");
    assert_error(&with_node(&big), "table_size: 16777259 is out of range 2..=16777213");
    let small = WEB.replace("port = 80", "port = 80\ntable_size = 2")
        + "  [[vip.backend]]\n  address = \"10.1.0.12\"\n  [[vip.backend]]\n  address = \"10.1.0.13\"\n";
    assert_error(&with_node(&small), "table_size: 2 is smaller than the number of up backends with weight > 0 (3)");
    // Down backends do not count.
    let ok = small.replace("address = \"10.1.0.13\"", "address = \"10.1.0.13\"\n  state = \"down\"");
    Config::from_toml_str(&with_node(&ok)).unwrap();
    assert_error(&with_node(&WEB.replace("198.51.100.10", "224.0.0.1")), "address: 224.0.0.1 is a multicast address");
}

#[test]
fn backend_rules() {
    assert_error(&with_node(&WEB.replace("  address = \"10.1.0.11\"", "  weight = 3")), "backend[0]: address: missing");
    assert_error(
        &with_node(&WEB.replace("10.1.0.11\"", "10.1.0.11\"\n  state = \"removed\"")),
        "state: \"removed\" is not one of \"up\", \"drain\", \"down\"",
    );
    assert_error(
        &with_node(&WEB.replace("10.1.0.11\"", "10.1.0.11\"\n  weight = 4294967296")),
        "weight: 4294967296 is out of range",
    );
    let dnat = WEB.replace("gre", "dnat").replace("10.1.0.11\"", "10.1.0.11\"\n  port = 0");
    assert_error(&with_node(&dnat), "port: 0 is out of range 1..=65535");
    // The same backend address:port in two dnat VIPs is allowed (replies are matched per flow).
    let a = WEB.replace("gre", "dnat");
    let b = a.replace("\"web\"", "\"web2\"").replace("198.51.100.10", "198.51.100.11");
    Config::from_toml_str(&with_node(&format!("{a}{b}"))).unwrap();
}

#[test]
fn io_rules() {
    let base = with_node(WEB);
    let ok = format!(
        "{base}\n[io]\ndriver = \"af_xdp\"\ninterface = \"eth0\"\ncores = [2]\nxdp_mode = \"native\"\nzero_copy = \"off\"\nring_size = 4096\n"
    );
    let c = Config::from_toml_str(&ok).unwrap();
    let io = c.io.unwrap();
    assert_eq!(
        io,
        IoConfig {
            driver: IoDriver::AfXdp,
            interface: Some("eth0".into()),
            cores: vec![2],
            xdp_mode: XdpMode::Native,
            zero_copy: ZeroCopy::Off,
            ring_size: 4096,
            dpdk: None
        }
    );
    let dpdk = format!("{base}\n[io]\ndriver = \"dpdk\"\n[io.dpdk]\neal_args = [\"--no-pci\"]\n");
    let d = Config::from_toml_str(&dpdk).unwrap().io.unwrap();
    assert_eq!(d.ring_size, 2048);
    assert_eq!(
        d.dpdk,
        Some(DpdkConfig { eal_args: vec!["--no-pci".into()], port: 0, tx_port: None, mbufs: 8191, host_tap: None })
    );
    let tap = Config::from_toml_str(&format!("{dpdk}host_tap = \"l4lb0\"\n")).unwrap().io.unwrap();
    assert_eq!(tap.dpdk.unwrap().host_tap.as_deref(), Some("l4lb0"));
    assert_error(&format!("{dpdk}host_tap = \"\"\n"), "io.dpdk: host_tap: must not be empty");
    assert_error(
        &format!("{dpdk}host_tap = \"a-very-long-interface\"\n"),
        "io.dpdk: host_tap: \"a-very-long-interface\" is not a valid Linux interface name",
    );
    assert_error(
        &format!("{dpdk}host_tap = \"tap,x=1\"\n"),
        "io.dpdk: host_tap: \"tap,x=1\": ',' and '=' are not allowed here",
    );
    assert_error(&format!("{base}\n[io]\ninterface = \"eth0\"\n"), "io: driver: missing");
    assert_error(&format!("{base}\n[io]\ndriver = \"af_packet\"\n"), "io: interface: missing");
    assert_error(&format!("{base}\n[io]\ndriver = \"dpdk\"\n"), "io.dpdk: missing table [io.dpdk]");
    assert_error(
        &format!("{base}\n[io]\ndriver = \"af_packet\"\ninterface = \"eth0\"\n[io.dpdk]\n"),
        "io.dpdk: only used with driver = \"dpdk\"",
    );
    assert_error(
        &format!("{base}\n[io]\ndriver = \"af_packet\"\ninterface = \"eth0\"\nxdp_mode = \"native\"\n"),
        "io: xdp_mode: only used with driver = \"af_xdp\"",
    );
    assert_error(
        &format!("{base}\n[io]\ndriver = \"af_xdp\"\ninterface = \"eth0\"\ncores = [1, 2]\n"),
        "io: cores: lists 2 CPUs but dataplane.workers is 1",
    );
    assert_error(
        &format!("{base}\n[dataplane]\nworkers = 2\n[io]\ndriver = \"af_xdp\"\ninterface = \"eth0\"\ncores = [1, 1]\n"),
        "io: cores: CPU 1 is listed twice",
    );
    assert_error(
        &format!("{base}\n[io]\ndriver = \"af_xdp\"\ninterface = \"eth0\"\nring_size = 3000\n"),
        "io: ring_size: 3000 must be a power of two",
    );
    assert_error(
        &format!("{base}\n[io]\ndriver = \"af_xdp\"\ninterface = \"eth0\"\nzero_copy = \"maybe\"\n"),
        "io: zero_copy: \"maybe\" is not one of",
    );
    assert_error(
        &format!("{base}\n[io]\ndriver = \"netmap\"\n"),
        "io: driver: \"netmap\" is not one of \"af_xdp\", \"af_packet\", \"dpdk\"",
    );
    assert_error(
        &format!("{base}\n[io]\ndriver = \"dpdk\"\n[io.dpdk]\nmbufs = 0\n"),
        "io.dpdk: mbufs: 0 is out of range",
    );
}

#[test]
fn durations_are_bounded() {
    let t = |v: &str| with_node(&format!("[dataplane]\nudp_timeout = \"{v}\"\n{WEB}"));
    assert_eq!(Config::from_toml_str(&t("1.5s")).unwrap().dataplane.udp_timeout, Duration::from_millis(1500));
    assert_eq!(Config::from_toml_str(&t("576h")).unwrap().dataplane.udp_timeout, MAX_TIMEOUT);
    assert_error(&t("577h"), "dataplane: udp_timeout: 2077200s is longer than the maximum, 24 days");
    assert_error(&t("0ms"), "dataplane: udp_timeout: must be positive");
}

#[test]
fn load_reports_unreadable_files() {
    let err = Config::load("/nonexistent/l4lb.toml").unwrap_err();
    let lines = err.lines();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("/nonexistent/l4lb.toml: cannot read the configuration: "), "{lines:?}");
}

#[test]
fn programmatic_edits_are_revalidated() {
    let mut c = Config::from_toml_str(&with_node(WEB)).unwrap();
    let addr: IpAddr = "10.1.0.11".parse().unwrap();
    c.vip_mut("web").unwrap().backend_mut(addr).unwrap().state = BackendState::Drain;
    c.validate().unwrap();
    assert_eq!(c.vip("web").unwrap().backend(addr).unwrap().state, BackendState::Drain);
    let raw = raw::RawBackend { address: Some("10.1.0.11".into()), weight: Some(2), ..Default::default() };
    let b = c.vips[0].resolve_backend(&raw).unwrap();
    assert_eq!(b.port, 80);
    c.vips[0].backends.push(b);
    let errs = c.validate().unwrap_err();
    assert_eq!(
        errs.lines(),
        ["vip[0] \"web\": backend[1] (10.1.0.11): address: 10.1.0.11 is already backend[0] of this VIP"]
    );
    let bad = raw::RawBackend { address: Some("10.1.0.12".into()), port: Some(81), ..Default::default() };
    let e = c.vips[0].resolve_backend(&bad).unwrap_err();
    assert!(e.lines()[0].starts_with("vip \"web\": backend (10.1.0.12): port: only allowed for dnat VIPs"), "{e}");
    c.vips[0].backends.pop();
    // A port edited in on a GRE VIP's backend: the words `check` uses for it.
    c.vips[0].backends[0].port = 8080;
    assert_eq!(
        c.validate().unwrap_err().lines(),
        ["vip[0] \"web\": backend[0] (10.1.0.11): port: only allowed for dnat VIPs: gre delivers the packet \
          unchanged, to the VIP's port (80, not 8080)"]
    );
    c.vips[0].backends[0].port = 80;
    c.vips[0].table_size = 65535;
    assert!(c.validate().unwrap_err().lines()[0].contains("65535 is not a prime"));
}

#[test]
fn mac_parsing() {
    assert_eq!(parse_mac("02:00:00:00:00:fE"), Some([2, 0, 0, 0, 0, 0xfe]));
    for bad in [
        "",
        "02:00:00:00:00",
        "02:00:00:00:00:01:02",
        "2:0:0:0:0:1",
        "02-00-00-00-00-01",
        "0g:00:00:00:00:01",
        "+2:00:00:00:00:01",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
    assert_eq!(format_mac([2, 0, 0, 0, 0, 0xfe]), "02:00:00:00:00:fe");
}

#[test]
fn keywords_round_trip() {
    for k in HashMode::KEYWORDS {
        assert_eq!(k.parse::<HashMode>().unwrap().as_str(), *k);
    }
    assert_eq!(BackendState::Removed.as_str(), "removed");
    assert!("removed".parse::<BackendState>().is_err());
    assert_eq!(Protocol::Udp.number(), 17);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const FULL: &str = r#"[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
ipv6 = "fd00::2"
mtu = 1500
[dataplane]
workers = 2
udp_timeout = "30s"
[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "dnat"
table_size = 251
[[vip.backend]]
address = "10.1.0.11"
port = 8080
weight = 2
[[vip.backend]]
address = "10.1.0.12"
state = "drain"
[[vip]]
name = "v6"
address = "2001:db8::1"
port = 0
protocol = "udp"
forwarding = "gre"
[[vip.backend]]
address = "fd00:1::1"
[io]
driver = "af_xdp"
interface = "eth0"
cores = [1, 2]
"#;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Deleting any lines or replacing any values never panics; every error is one
        /// non-empty line with a place.
        #[test]
        fn mutated_configs_give_one_line_errors(
            drop in proptest::collection::vec(any::<bool>(), 40),
            replace in proptest::collection::vec((0usize..40, "[-a-z0-9:.\" ]{0,8}"), 0..3),
        ) {
            let mut lines: Vec<String> = FULL.lines().map(str::to_string).collect();
            for (i, v) in &replace {
                if let Some(l) = lines.get_mut(*i)
                    && let Some((k, _)) = l.split_once(" = ")
                {
                    *l = format!("{k} = {v}");
                }
            }
            let text: Vec<&str> = lines.iter().zip(drop.iter().chain(std::iter::repeat(&false)))
                .filter(|(_, d)| !**d).map(|(l, _)| l.as_str()).collect();
            let text = text.join("\n");
            match Config::from_toml_str(&text) {
                Ok(c) => prop_assert!(c.validate().is_ok()),
                Err(e) => {
                    prop_assert!(!e.is_empty());
                    for l in e.lines() {
                        prop_assert!(!l.is_empty() && !l.contains('\n'), "{:?}", l);
                        prop_assert!(l.contains(": "), "{:?}", l);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = Config::from_toml_str(&text);
        }
    }

    #[test]
    fn full_config_is_valid() {
        let c = Config::from_toml_str(FULL).unwrap();
        assert_eq!(c.vips.len(), 2);
    }
}

/// A field that cannot be read does not hide the VIP's other mistakes: each rule
/// that does not need the bad field still runs.
#[test]
fn a_bad_field_does_not_hide_the_vips_other_errors() {
    // Bad protocol, plus a non-prime table size and a duplicate backend.
    let text = with_node(&WEB.replace("protocol = \"tcp\"", "protocol = \"sctp\"\ntable_size = 250").replace(
        "  address = \"10.1.0.11\"\n",
        "  address = \"10.1.0.11\"\n  [[vip.backend]]\n  address = \"10.1.0.11\"\n",
    ));
    let errs = errors(&text);
    for want in [
        "vip[0] \"web\": protocol: \"sctp\"",
        "vip[0] \"web\": table_size: 250 is not a prime",
        "backend[1] (10.1.0.11): address: 10.1.0.11 is already backend[0]",
    ] {
        assert!(errs.iter().any(|l| l.contains(want)), "no {want:?} in {errs:#?}");
    }
    // Bad address and port on a second VIP with the first one's name and no backend.
    let second =
        "[[vip]]\nname = \"web\"\naddress = \"1.2.3.4.5\"\nport = 70000\nprotocol = \"udp\"\nforwarding = \"nat\"\n";
    let errs = errors(&with_node(&format!("{WEB}\n{second}")));
    for want in [
        "vip[1] \"web\": address: \"1.2.3.4.5\"",
        "vip[1] \"web\": port: 70000",
        "vip[1] \"web\": forwarding: \"nat\"",
        "vip[1] \"web\": name: \"web\" is already the name of vip[0]",
        "vip[1] \"web\": has no backend",
    ] {
        assert!(errs.iter().any(|l| l.contains(want)), "no {want:?} in {errs:#?}");
    }
    // Placeholders never produce errors of their own (no "unspecified address", no
    // duplicate listener among VIPs whose address did not convert).
    assert!(!errs.iter().any(|l| l.contains("unspecified") || l.contains("already served")), "{errs:#?}");
}
