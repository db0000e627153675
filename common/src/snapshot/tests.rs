use super::*;
use crate::config::BackendConfig;

const BASE: &str = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
ipv6 = "fd00::2"

[dataplane]
tcp_transitory_timeout = "1.5s"
udp_timeout = "500us"

[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
table_size = 251
  [[vip.backend]]
  address = "10.1.0.11"
  [[vip.backend]]
  address = "10.1.0.12"
  weight = 2
  [[vip.backend]]
  address = "10.1.0.13"

[[vip]]
name = "any"
address = "198.51.100.10"
port = 0
protocol = "tcp"
forwarding = "ipip"
table_size = 13
  [[vip.backend]]
  address = "10.1.0.21"

[[vip]]
name = "dns6"
address = "2001:db8::53"
port = 53
protocol = "udp"
forwarding = "dnat"
table_size = 13
  [[vip.backend]]
  address = "2001:db8:1::1"
  port = 5353
  [[vip.backend]]
  address = "2001:db8:1::2"
  state = "drain"
"#;

fn cfg() -> Config {
    Config::from_toml_str(BASE).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().unwrap().octets()
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

fn counts(v: &VipEntry) -> Vec<usize> {
    let mut c = vec![0; v.backends.len()];
    for &e in v.table.iter() {
        assert_ne!(e, NO_BACKEND);
        c[usize::from(e)] += 1;
    }
    c
}

#[test]
fn snapshot_is_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Snapshot>();
    check::<std::sync::Arc<Snapshot>>();
}

#[test]
fn builds_from_config() {
    let s = Snapshot::build(&cfg(), None);
    assert_eq!(s.version, 1);
    assert_eq!(s.node.mac, [2, 0, 0, 0, 0, 1]);
    assert_eq!(s.node.mtu, 1500);
    assert_eq!(s.timeouts, Timeouts { tcp_established_ms: 300_000, tcp_transitory_ms: 1500, udp_ms: 1 });
    assert_eq!(s.vips.len(), 3);
    let web = &s.vips[0];
    assert!(web.active);
    assert_eq!((web.proto_num, web.table.len(), web.table_size), (6, 251, 251));
    let c = counts(web);
    assert_eq!(c.iter().sum::<usize>(), 251);
    // Weights 1:2:1 of 251 entries.
    assert!((62..=63).contains(&c[0]) && (125..=126).contains(&c[1]) && (62..=63).contains(&c[2]), "{c:?}");
    let dns = &s.vips[2];
    assert_eq!(dns.backends[0].port, 5353);
    assert_eq!(dns.backends[1].port, 53);
    // Only the up backend is in the table.
    assert_eq!(counts(dns), [13, 0]);
    let mut s2 = Snapshot::build(&cfg(), Some(&s));
    assert_eq!(s2.version, 2);
    assert_eq!(s2.vips, s.vips);
    s2.version = u64::MAX;
    assert_eq!(Snapshot::build(&cfg(), Some(&s2)).version, 0);
}

#[test]
fn table_holds_only_up_backends_with_weight() {
    let mut c = cfg();
    let web = c.vip_mut("web").unwrap();
    web.backend_mut(ip("10.1.0.11")).unwrap().state = BackendState::Down;
    web.backend_mut(ip("10.1.0.12")).unwrap().weight = 0;
    let s = Snapshot::build(&c, None);
    assert_eq!(counts(&s.vips[0]), [0, 0, 251]);
    c.vip_mut("web").unwrap().backend_mut(ip("10.1.0.13")).unwrap().state = BackendState::Drain;
    let s = Snapshot::build(&c, Some(&s));
    assert!(s.vips[0].table.iter().all(|&e| e == NO_BACKEND));
    assert_eq!(s.vips[0].select(12345), NO_BACKEND);
    assert!(s.vips[0].backends[1].keeps_flows());
    assert!(!s.vips[0].backends[0].keeps_flows());
    assert!(!s.vips[0].backends[1].is_eligible());
}

#[test]
fn backend_slots_are_stable() {
    let s1 = Snapshot::build(&cfg(), None);
    let mut c = cfg();
    // Remove .11 (slot 0), add .14, reorder the rest.
    let web = c.vip_mut("web").unwrap();
    web.backends.remove(0);
    web.backends.reverse();
    web.backends.insert(1, BackendConfig { address: ip("10.1.0.14"), port: 80, weight: 1, state: BackendState::Up });
    c.validate().unwrap();
    let s2 = Snapshot::build(&c, Some(&s1));
    let b = &s2.vips[0].backends;
    assert_eq!(b.len(), 4);
    assert_eq!((b[0].address, b[0].state), (ip("10.1.0.11"), BackendState::Removed));
    assert_eq!((b[1].address, b[1].weight), (ip("10.1.0.12"), 2));
    assert_eq!(b[2].address, ip("10.1.0.13"));
    assert_eq!((b[3].address, b[3].state), (ip("10.1.0.14"), BackendState::Up));
    assert_eq!(counts(&s2.vips[0])[0], 0);
    // Re-adding .11 gives it slot 0 back.
    let s3 = Snapshot::build(&cfg(), Some(&s2));
    let b = &s3.vips[0].backends;
    assert_eq!((b[0].address, b[0].state), (ip("10.1.0.11"), BackendState::Up));
    assert_eq!(b[3].state, BackendState::Removed);
    // Same set of up backends as s1 (the tombstone has weight 0 in Maglev): same table.
    assert_eq!(s3.vips[0].table, s1.vips[0].table);
}

#[test]
fn vip_ids_are_stable() {
    let s1 = Snapshot::build(&cfg(), None);
    let mut c = cfg();
    c.vips.remove(0); // "web"
    c.vips.reverse();
    let s2 = Snapshot::build(&c, Some(&s1));
    assert_eq!(s2.vips.len(), 3);
    assert!(!s2.vips[0].active);
    assert_eq!(s2.vips[0].name, "web");
    assert!(s2.vips[0].table.is_empty());
    assert!(s2.vips[0].backends.iter().all(|b| b.state == BackendState::Removed));
    assert_eq!(s2.vips[1].name, "any");
    assert_eq!(s2.vips[2].name, "dns6");
    // "web"'s packets now fall to the port-0 VIP "any".
    assert_eq!(s2.lookup_vip_v4(v4("198.51.100.10"), 80, 6), Some(1));
    assert_eq!(s2.vip_by_name("web"), None);
    // A new VIP is appended, "web" returns to id 0.
    let mut c3 = cfg();
    let mut extra = c3.vips[1].clone();
    extra.name = "extra".into();
    extra.address = ip("198.51.100.99");
    c3.vips.push(extra);
    let s3 = Snapshot::build(&c3, Some(&s2));
    assert_eq!(s3.vips.len(), 4);
    assert_eq!(s3.vip_by_name("web").unwrap().0, 0);
    assert_eq!(s3.vip_by_name("extra").unwrap().0, 3);
    assert_eq!(s3.lookup_vip_v4(v4("198.51.100.10"), 80, 6), Some(0));
    assert_eq!(s3.vips[0].table, s1.vips[0].table);
}

#[test]
fn lookups() {
    let s = Snapshot::build(&cfg(), None);
    let vip = v4("198.51.100.10");
    assert_eq!(s.lookup_vip_v4(vip, 80, 6), Some(0));
    assert_eq!(s.lookup_vip_v4(vip, 443, 6), Some(1)); // port-0 wildcard
    assert_eq!(s.lookup_vip_v4(vip, 80, 17), None); // no UDP VIP there
    assert_eq!(s.lookup_vip_v4(v4("198.51.100.11"), 80, 6), None);
    assert!(s.is_vip_addr_v4(vip));
    assert!(!s.is_vip_addr_v4(v4("10.1.0.11")));
    let vip6 = v6("2001:db8::53");
    assert_eq!(s.lookup_vip_v6(vip6, 53, 17), Some(2));
    assert_eq!(s.lookup_vip_v6(vip6, 54, 17), None);
    assert_eq!(s.lookup_vip_v6(vip6, 53, 6), None);
    assert!(s.is_vip_addr_v6(vip6));
    assert!(!s.is_vip_addr_v6(v6("2001:db8::54")));
    assert!(s.dnat_backend_v6(v6("2001:db8:1::1"), 5353, 17));
    assert!(s.dnat_backend_v6(v6("2001:db8:1::2"), 53, 17)); // drain: replies still translated
    assert_eq!(s.dnat_vip_v6(v6("2001:db8:1::1"), 5353, 17), Some(2));
    assert!(!s.dnat_backend_v6(v6("2001:db8:1::1"), 53, 17));
    assert!(!s.dnat_backend_v6(v6("2001:db8:1::1"), 5353, 6));
    // GRE backends are not DNAT backends.
    assert!(!s.dnat_backend_v4(v4("10.1.0.11"), 80, 6));
}

#[test]
fn dnat_v4_lookup_and_removed_backends() {
    let text = BASE.replace("forwarding = \"gre\"", "forwarding = \"dnat\"");
    let c = Config::from_toml_str(&text).unwrap();
    let s = Snapshot::build(&c, None);
    assert!(s.dnat_backend_v4(v4("10.1.0.11"), 80, 6));
    assert!(!s.dnat_backend_v4(v4("10.1.0.11"), 81, 6));
    let mut c2 = c.clone();
    c2.vip_mut("web").unwrap().backends.remove(0);
    let s2 = Snapshot::build(&c2, Some(&s));
    assert!(!s2.dnat_backend_v4(v4("10.1.0.11"), 80, 6));
    assert!(s2.dnat_backend_v4(v4("10.1.0.12"), 80, 6));
}

#[test]
fn select_follows_the_table() {
    let s = Snapshot::build(&cfg(), None);
    let web = &s.vips[0];
    for h in [0u64, 1, u64::MAX, 0x8000_0000_0000_0000, 0x1234_5678_9abc_def0] {
        assert_eq!(web.select(h), web.table[maglev::index(h, 251)]);
    }
    assert_eq!(maglev::index(u64::MAX, 251), 250);
    assert_eq!(maglev::index(0, 251), 0);
}

#[test]
fn order_of_backends_does_not_change_the_table() {
    let s1 = Snapshot::build(&cfg(), None);
    let mut c = cfg();
    c.vips[0].backends.reverse();
    let s2 = Snapshot::build(&c, None);
    let by_addr = |s: &Snapshot| -> Vec<IpAddr> {
        s.vips[0].table.iter().map(|&e| s.vips[0].backends[usize::from(e)].address).collect()
    };
    assert_eq!(by_addr(&s1), by_addr(&s2));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// One VIP with a random subset of 12 candidate backends, random states and weights.
    fn config_with(backends: &[(u8, u32, u8)]) -> Config {
        let mut c = cfg();
        c.vips.truncate(1);
        c.vips[0].backends = backends
            .iter()
            .map(|&(i, w, s)| BackendConfig {
                address: IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)),
                port: 80,
                weight: w,
                state: [BackendState::Up, BackendState::Drain, BackendState::Down][usize::from(s % 3)],
            })
            .collect();
        c
    }

    fn backends_strategy() -> impl Strategy<Value = Vec<(u8, u32, u8)>> {
        proptest::collection::btree_map(1u8..13, (0u32..4, 0u8..3), 1..12)
            .prop_map(|m| m.into_iter().map(|(i, (w, s))| (i, w, s)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Across a sequence of rebuilds, an address keeps its slot forever, tables hold
        /// only eligible slots, and each slot's entries are proportional to its weight.
        #[test]
        fn slots_stay_and_tables_hold_only_eligible(steps in proptest::collection::vec(backends_strategy(), 1..6)) {
            let mut prev: Option<Snapshot> = None;
            let mut slot_of: HashMap<IpAddr, usize> = HashMap::new();
            for step in &steps {
                let c = config_with(step);
                let s = Snapshot::build(&c, prev.as_ref());
                let v = &s.vips[0];
                for (slot, b) in v.backends.iter().enumerate() {
                    prop_assert_eq!(*slot_of.entry(b.address).or_insert(slot), slot);
                }
                for bc in &c.vips[0].backends {
                    let slot = slot_of[&bc.address];
                    prop_assert_eq!(v.backends[slot].state, bc.state);
                    prop_assert_eq!(v.backends[slot].weight, bc.weight);
                }
                let eligible: Vec<bool> = v.backends.iter().map(|b| b.is_eligible()).collect();
                for &e in v.table.iter() {
                    if e == NO_BACKEND {
                        prop_assert!(!eligible.contains(&true));
                    } else {
                        prop_assert!(eligible[usize::from(e)]);
                    }
                }
                prev = Some(s);
            }
        }
    }
}
