//! Statistics: adding up workers' counters, the `--stats-json` document, and the
//! human summary. Schema: docs/STATS.md.

use common::snapshot::Snapshot;
use dataplane::counters::{Counter, Counters, DropReason};
use dataplane::flow_table::FlowTableStats;
use serde_json::{Value, json};

/// Everything a run counted.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub counters: Counters,
    /// Flow-table figures summed over workers.
    pub flows: FlowTableStats,
    pub workers: usize,
    pub per_worker: Vec<Counters>,
}

fn state_name(s: common::snapshot::BackendState) -> &'static str {
    use common::snapshot::BackendState as S;
    match s {
        S::Up => "up",
        S::Drain => "drain",
        S::Down => "down",
        S::Removed => "removed",
    }
}

impl RunStats {
    /// The `--stats-json` document (docs/STATS.md).
    pub fn to_json(&self, snap: &Snapshot) -> Value {
        let c = &self.counters;
        let drops: serde_json::Map<String, Value> =
            DropReason::ALL.iter().map(|r| (r.name().to_string(), json!(c.dropped(*r)))).collect();
        let counters: serde_json::Map<String, Value> =
            Counter::ALL.iter().map(|k| (k.name().to_string(), json!(c.get(*k)))).collect();
        let vips: Vec<Value> = snap
            .vips
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let vc = c.vips.get(i).cloned().unwrap_or_default();
                let backends: Vec<Value> = v
                    .backends
                    .iter()
                    .enumerate()
                    .map(|(j, b)| {
                        let bc = vc.backends.get(j).copied().unwrap_or_default();
                        json!({
                            "address": b.address.to_string(),
                            "port": b.port,
                            "weight": b.weight,
                            "state": state_name(b.state),
                            "packets": bc.packets,
                            "bytes": bc.bytes,
                        })
                    })
                    .collect();
                let total = vc.total();
                json!({
                    "name": v.name,
                    "address": v.address.to_string(),
                    "port": v.port,
                    "protocol": if v.proto_num == 6 { "tcp" } else { "udp" },
                    "packets": total.packets,
                    "bytes": total.bytes,
                    "backends": backends,
                })
            })
            .collect();
        let workers: Vec<Value> = self
            .per_worker
            .iter()
            .enumerate()
            .map(|(i, w)| {
                json!({
                    "worker": i,
                    "rx_packets": w.get(Counter::RxPackets),
                    "tx_packets": w.get(Counter::TxPackets),
                    "host_packets": w.get(Counter::HostPackets),
                    "dropped_packets": w.get(Counter::DropPackets),
                    "handoff_in": w.get(Counter::HandoffIn),
                    "handoff_out": w.get(Counter::HandoffOut),
                })
            })
            .collect();
        json!({
            "totals": {
                "rx_packets": c.get(Counter::RxPackets),
                "rx_bytes": c.get(Counter::RxBytes),
                "tx_packets": c.get(Counter::TxPackets),
                "tx_bytes": c.get(Counter::TxBytes),
                "host_packets": c.get(Counter::HostPackets),
                "host_bytes": c.get(Counter::HostBytes),
                "dropped_packets": c.get(Counter::DropPackets),
            },
            "drops": drops,
            "flows": {
                "created": self.flows.created,
                "expired": self.flows.expired,
                "evicted": self.flows.evicted,
                "active": self.flows.active,
            },
            "counters": counters,
            "vips": vips,
            "workers": workers,
        })
    }

    /// A readable summary: totals, drops, and per VIP and backend packets and share.
    pub fn summary(&self, snap: &Snapshot) -> String {
        use std::fmt::Write;
        let c = &self.counters;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "packets: {} in, {} sent, {} to host, {} dropped ({} workers)",
            c.get(Counter::RxPackets),
            c.get(Counter::TxPackets),
            c.get(Counter::HostPackets),
            c.get(Counter::DropPackets),
            self.workers
        );
        let _ = writeln!(
            s,
            "flows: {} created, {} expired, {} evicted, {} active",
            self.flows.created, self.flows.expired, self.flows.evicted, self.flows.active
        );
        if c.get(Counter::HandoffOut) > 0 {
            // DNAT and ICMP-error packets that arrived on another worker than their
            // flow's owner (RSS spreads a reply by its own 5-tuple).
            let _ = writeln!(s, "handoff: {} packets to the worker owning their flow", c.get(Counter::HandoffOut));
        }
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| c.dropped(**r) > 0)
            .map(|r| format!("{} {}", r.name(), c.dropped(*r)))
            .collect();
        if !drops.is_empty() {
            let _ = writeln!(s, "drops: {}", drops.join(", "));
        }
        for (i, v) in snap.vips.iter().enumerate() {
            let vc = c.vips.get(i).cloned().unwrap_or_default();
            let _ = writeln!(s, "vip {} {}:{} ({} packets)", v.name, v.address, v.port, vc.total().packets);
            let sent: u64 = vc.backends.iter().map(|b| b.packets).sum();
            for (j, b) in v.backends.iter().enumerate() {
                let bc = vc.backends.get(j).copied().unwrap_or_default();
                if b.state == common::snapshot::BackendState::Removed && bc.packets == 0 {
                    continue;
                }
                let share = if sent > 0 { 100.0 * bc.packets as f64 / sent as f64 } else { 0.0 };
                let _ = writeln!(
                    s,
                    "  backend {:<39} {:>6} {:>10} packets {:>6.2}%",
                    b.address.to_string(),
                    state_name(b.state),
                    bc.packets,
                    share
                );
            }
        }
        s
    }
}
