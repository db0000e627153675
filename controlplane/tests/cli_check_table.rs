//! `l4lb check` and `l4lb table`, run as the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn l4lb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l4lb")).args(args).output().expect("run l4lb")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Write a config into this test binary's scratch directory.
fn write(name: &str, content: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli_check_table-{}-{name}", std::process::id()));
    std::fs::write(&p, content).unwrap();
    p
}

const GOOD: &str = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"

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
  weight = 2
  [[vip.backend]]
  address = "10.1.0.13"
  weight = 3
  [[vip.backend]]
  address = "10.1.0.14"
  state = "down"

[[vip]]
name = "api"
address = "198.51.100.11"
port = 443
protocol = "tcp"
forwarding = "ipip"
table_size = 251
  [[vip.backend]]
  address = "10.1.0.21"
"#;

#[test]
fn every_example_passes_check() {
    let files = examples();
    for want in ["gre.toml", "ipip.toml", "dnat.toml", "mixed-v6.toml"] {
        assert!(files.iter().any(|f| f.ends_with(want)), "examples/{want} missing");
    }
    for f in files {
        let out = l4lb(&["check", "--config", f.to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", f.display(), text(&out.stderr));
        let stdout = text(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(stdout.contains(": ok: "), "{stdout}");
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn check_reports_all_three_mistakes_with_their_places() {
    let bad = GOOD
        .replace("  address = \"10.1.0.12\"\n  weight = 2", "  address = \"10.1.0.12\"\n  weight = -2")
        .replace("table_size = 251", "table_size = 250")
        .replace("ipv4 = \"10.0.0.2\"", "ipv4 = \"10.0.0.2\"\nmtu = 10000");
    let path = write("three.toml", &bad);
    let out = l4lb(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let p = path.display().to_string();
    assert_eq!(
        lines,
        [
            format!("{p}: node: mtu: 10000 is out of range 576..=9216"),
            format!("{p}: vip[0] \"web\": backend[1] (10.1.0.12): weight: -2 is out of range 0..=4294967295"),
            format!(
                "{p}: vip[1] \"api\": table_size: 250 is not a prime number (Maglev needs a prime; e.g. 65537, 131071, 1000003)"
            ),
        ],
        "{stderr}"
    );
}

#[test]
fn check_reports_syntax_errors_and_unreadable_files() {
    // Unknown keys and wrong types: every one, with its place, beside the other errors.
    let path = write("keys.toml", &GOOD.replace("port = 80", "port = 80\nwieght = 1\ntable_size = \"big\""));
    let out = l4lb(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(stderr.contains("vip[0] \"web\": wieght: unknown key; expected one of name, address,"), "{stderr}");
    assert!(stderr.contains("vip[0] \"web\": table_size: a string (\"big\") where an integer is expected"), "{stderr}");

    // A TOML syntax error: alone, with its line and column.
    let path = write("syntax.toml", &GOOD.replace("port = 80", "port = 80\nname = \"unterminated"));
    let out = l4lb(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(": line 11, column "), "{stderr}");

    let out = l4lb(&["check", "--config", "/nonexistent/l4lb.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("/nonexistent/l4lb.toml: cannot read the configuration:"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);

    let out = l4lb(&["check"]);
    assert!(!out.status.success());
}

#[test]
fn table_text() {
    let path = write("table.toml", GOOD);
    let out = l4lb(&["table", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("vip \"web\"") && s.contains("vip \"api\""), "{s}");
    assert!(s.contains("table_size 65537") && s.contains("table_size 251"), "{s}");
    assert!(s.contains("max imbalance") && s.contains("min imbalance"), "{s}");
    let down = s.lines().find(|l| l.contains("10.1.0.14")).unwrap();
    assert!(down.contains("down") && down.contains(" 0 "), "{down}");
}

#[test]
fn table_json() {
    let path = write("json.toml", GOOD);
    let out = l4lb(&["table", "--config", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let vips = v["vips"].as_array().unwrap();
    assert_eq!(vips.len(), 2);
    let web = &vips[0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["table_size"], 65537);
    let backends = web["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 4);
    let mut total_entries = 0;
    let mut total_share = 0.0;
    for (b, (addr, weight, state, ideal)) in backends.iter().zip([
        ("10.1.0.11", 1, "up", 1.0 / 6.0),
        ("10.1.0.12", 2, "up", 2.0 / 6.0),
        ("10.1.0.13", 3, "up", 3.0 / 6.0),
        ("10.1.0.14", 1, "down", 0.0),
    ]) {
        assert_eq!(b["address"], addr);
        assert_eq!(b["weight"], weight);
        assert_eq!(b["state"], state);
        let ideal_share = b["ideal_share"].as_f64().unwrap();
        let share = b["share"].as_f64().unwrap();
        assert!((ideal_share - ideal).abs() < 1e-9, "{b}");
        assert!((share - ideal).abs() < 0.01 * ideal.max(0.01), "{b}");
        let entries = b["entries"].as_u64().unwrap();
        assert!((share - entries as f64 / 65537.0).abs() < 1e-12);
        total_entries += entries;
        total_share += share;
    }
    assert_eq!(total_entries, 65537);
    assert!((total_share - 1.0).abs() < 1e-9);
    let max = web["max_imbalance"].as_f64().unwrap();
    let min = web["min_imbalance"].as_f64().unwrap();
    assert!(min <= max && max.abs() < 0.01 && min.abs() < 0.01);
}

#[test]
fn table_one_vip_and_unknown_vip() {
    let path = write("one.toml", GOOD);
    let p = path.to_str().unwrap();
    let out = l4lb(&["table", "--config", p, "--vip", "api", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["vips"].as_array().unwrap().len(), 1);
    assert_eq!(v["vips"][0]["name"], "api");
    assert_eq!(v["vips"][0]["backends"][0]["entries"], 251);

    let out = l4lb(&["table", "--config", p, "--vip", "nope"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no VIP named \"nope\" (VIPs: \"web\", \"api\")"), "{stderr}");

    let bad = write("bad-table.toml", &GOOD.replace("table_size = 251", "table_size = 250"));
    let out = l4lb(&["table", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("table_size: 250 is not a prime"));
}
