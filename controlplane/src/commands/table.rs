//! `l4lb table --config FILE [--vip NAME] [--json]`: each VIP's Maglev table, built by
//! the same code as the data plane's snapshot: entries per backend, share of the table
//! against the weight-ideal share, and max/min imbalance (`share / ideal - 1` over the
//! backends that take new flows).

use std::fmt::Write as _;
use std::path::PathBuf;

use common::config::Config;
use common::snapshot::{NO_BACKEND, Snapshot, VipEntry};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Only this VIP.
    #[arg(long, value_name = "NAME")]
    pub vip: Option<String>,
    /// Print JSON: {"vips": [{"name", "table_size", "backends": [...]}]}.
    #[arg(long)]
    pub json: bool,
}

/// The whole report (the `--json` output).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub vips: Vec<VipReport>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VipReport {
    pub name: String,
    pub table_size: u32,
    pub backends: Vec<BackendReport>,
    pub address: String,
    pub port: u16,
    pub protocol: &'static str,
    pub forwarding: &'static str,
    pub hash: &'static str,
    /// Largest `share / ideal_share - 1` over eligible backends (null if none).
    pub max_imbalance: Option<f64>,
    /// Smallest `share / ideal_share - 1` over eligible backends (null if none).
    pub min_imbalance: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackendReport {
    pub address: String,
    pub weight: u32,
    pub state: &'static str,
    pub entries: u64,
    /// entries / table_size.
    pub share: f64,
    /// weight / sum of eligible weights; 0 for a backend that takes no new flows.
    pub ideal_share: f64,
    pub port: u16,
    /// share / ideal_share - 1 (null for a backend that takes no new flows).
    pub imbalance: Option<f64>,
}

/// Build the report; `Err` names the unknown VIP.
pub fn report(cfg: &Config, vip: Option<&str>) -> Result<Report, String> {
    let snap = Snapshot::build(cfg, None);
    let vips: Vec<&VipEntry> = match vip {
        None => snap.vips.iter().collect(),
        Some(name) => match snap.vip_by_name(name) {
            Some((_, v)) => vec![v],
            None => {
                let names: Vec<String> = snap.vips.iter().map(|v| format!("{:?}", v.name)).collect();
                return Err(format!("no VIP named {name:?} (VIPs: {})", names.join(", ")));
            }
        },
    };
    Ok(Report { vips: vips.into_iter().map(vip_report).collect() })
}

fn vip_report(v: &VipEntry) -> VipReport {
    let mut entries = vec![0u64; v.backends.len()];
    for &e in v.table.iter() {
        if e != NO_BACKEND {
            entries[usize::from(e)] += 1;
        }
    }
    let total_weight: u64 = v.backends.iter().filter(|b| b.is_eligible()).map(|b| u64::from(b.weight)).sum();
    let size = v.table.len().max(1) as f64;
    let backends: Vec<BackendReport> = v
        .backends
        .iter()
        .zip(&entries)
        .map(|(b, &n)| {
            let share = n as f64 / size;
            let ideal = if b.is_eligible() { b.weight as f64 / total_weight as f64 } else { 0.0 };
            BackendReport {
                address: b.address.to_string(),
                weight: b.weight,
                state: b.state.as_str(),
                entries: n,
                share,
                ideal_share: ideal,
                port: b.port,
                imbalance: b.is_eligible().then(|| share / ideal - 1.0),
            }
        })
        .collect();
    let imbalances = || backends.iter().filter_map(|b| b.imbalance);
    VipReport {
        name: v.name.clone(),
        table_size: v.table_size,
        address: v.address.to_string(),
        port: v.port,
        protocol: v.protocol.as_str(),
        forwarding: v.forwarding.as_str(),
        hash: v.hash.as_str(),
        max_imbalance: imbalances().reduce(f64::max),
        min_imbalance: imbalances().reduce(f64::min),
        backends,
    }
}

fn percent(x: Option<f64>) -> String {
    match x {
        Some(x) => format!("{:+.3}%", x * 100.0),
        None => "-".to_string(),
    }
}

/// The human-readable table.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    for v in &r.vips {
        let _ = writeln!(
            out,
            "vip {:?}  {} port {} {}  forwarding {}  hash {}  table_size {}",
            v.name, v.address, v.port, v.protocol, v.forwarding, v.hash, v.table_size
        );
        let _ = writeln!(
            out,
            "  {:<40} {:>5} {:>10} {:<6} {:>9} {:>9} {:>9} {:>10}",
            "backend", "port", "weight", "state", "entries", "share", "ideal", "imbalance"
        );
        for b in &v.backends {
            let _ = writeln!(
                out,
                "  {:<40} {:>5} {:>10} {:<6} {:>9} {:>9.6} {:>9.6} {:>10}",
                b.address,
                b.port,
                b.weight,
                b.state,
                b.entries,
                b.share,
                b.ideal_share,
                percent(b.imbalance)
            );
        }
        let _ =
            writeln!(out, "  max imbalance {}, min imbalance {}", percent(v.max_imbalance), percent(v.min_imbalance));
    }
    out
}

pub fn run(args: &Args) -> i32 {
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        // One line, as for every command but `check` (which lists each error on its own line).
        Err(errors) => return super::replay::fail(errors.lines().join("; ")),
    };
    let r = match report(&cfg, args.vip.as_deref()) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("{}: {msg}", args.config.display());
            return 2;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&r) {
            Ok(s) => super::outln!("{s}"),
            Err(e) => {
                eprintln!("cannot encode JSON: {e}");
                return 1;
            }
        }
    } else {
        super::out!("{}", render_text(&r));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
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
"#;

    #[test]
    fn shares_and_imbalance() {
        let cfg = Config::from_toml_str(CFG).unwrap();
        let r = report(&cfg, None).unwrap();
        let v = &r.vips[0];
        assert_eq!(v.table_size, 65537);
        let entries: u64 = v.backends.iter().map(|b| b.entries).sum();
        assert_eq!(entries, 65537);
        for (b, ideal) in v.backends.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0, 0.0]) {
            assert!((b.ideal_share - ideal).abs() < 1e-12);
            assert!((b.share - ideal).abs() < 0.001, "{b:?}");
        }
        assert_eq!(v.backends[3].entries, 0);
        assert_eq!(v.backends[3].imbalance, None);
        let (max, min) = (v.max_imbalance.unwrap(), v.min_imbalance.unwrap());
        assert!(max >= min && max < 0.01 && min > -0.01);
        let text = render_text(&r);
        assert!(text.contains("vip \"web\""), "{text}");
        assert!(text.contains("10.1.0.14") && text.contains("down"));
        assert!(report(&cfg, Some("nope")).unwrap_err().contains("no VIP named \"nope\" (VIPs: \"web\")"));
        assert_eq!(report(&cfg, Some("web")).unwrap(), r);
    }
}
