//! Snapshot publication: the control plane's copy of the configuration, the
//! changes applied to it (events, health checks, API), and the RCU swap.
//!
//! Every change is applied to a copy of the configuration, validated whole, and only
//! then turned into a new snapshot (`Snapshot::build`, pure) and published; a change
//! that would make the configuration invalid is refused and nothing is applied.

use std::net::IpAddr;
use std::sync::Arc;

use common::config::{BackendConfig, BackendState, Config};
use common::snapshot::Snapshot;
use dataplane::snapshot_cell::SnapshotCell;

/// One change to a VIP's backends.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    SetState { vip: String, backend: IpAddr, state: BackendState },
    SetWeight { vip: String, backend: IpAddr, weight: u32 },
    Add { vip: String, backend: BackendConfig },
    Remove { vip: String, backend: IpAddr },
}

impl Change {
    pub fn vip(&self) -> &str {
        match self {
            Change::SetState { vip, .. }
            | Change::SetWeight { vip, .. }
            | Change::Add { vip, .. }
            | Change::Remove { vip, .. } => vip,
        }
    }
}

/// Apply a change to a configuration (validated afterwards by the caller).
pub fn apply_change(cfg: &mut Config, change: &Change) -> Result<(), String> {
    let name = change.vip();
    let vip = cfg.vips.iter_mut().find(|v| v.name == name).ok_or_else(|| format!("no VIP named {name:?}"))?;
    match change {
        Change::SetState { backend, state, .. } => {
            let b = vip
                .backends
                .iter_mut()
                .find(|b| b.address == *backend)
                .ok_or_else(|| format!("VIP {name:?} has no backend {backend}"))?;
            b.state = *state;
        }
        Change::SetWeight { backend, weight, .. } => {
            let b = vip
                .backends
                .iter_mut()
                .find(|b| b.address == *backend)
                .ok_or_else(|| format!("VIP {name:?} has no backend {backend}"))?;
            b.weight = *weight;
        }
        Change::Add { backend, .. } => {
            if vip.backends.iter().any(|b| b.address == backend.address) {
                return Err(format!("VIP {name:?} already has backend {}", backend.address));
            }
            let mut b = backend.clone();
            if b.port == 0 {
                b.port = vip.port;
            }
            vip.backends.push(b);
        }
        Change::Remove { backend, .. } => {
            let before = vip.backends.len();
            vip.backends.retain(|b| b.address != *backend);
            if vip.backends.len() == before {
                return Err(format!("VIP {name:?} has no backend {backend}"));
            }
        }
    }
    Ok(())
}

/// The control plane's publisher.
pub struct Publisher {
    cfg: Config,
    current: Arc<Snapshot>,
    cell: Arc<SnapshotCell>,
}

impl Publisher {
    /// Build the first snapshot from a validated configuration.
    pub fn new(cfg: Config, workers: usize) -> Self {
        let current = Arc::new(Snapshot::build(&cfg, None));
        let cell = SnapshotCell::new(Arc::clone(&current), workers.max(1));
        Publisher { cfg, current, cell }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn cell(&self) -> Arc<SnapshotCell> {
        Arc::clone(&self.cell)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current)
    }

    /// Replace the whole configuration (SIGHUP reload). Only VIPs and backends may
    /// change live; a changed `[node]`, `[dataplane]` or `[io]` needs a restart.
    pub fn replace(&mut self, next: Config) -> Result<(), String> {
        if next.node != self.cfg.node || next.dataplane != self.cfg.dataplane || next.io != self.cfg.io {
            return Err("[node], [dataplane] and [io] cannot change while running: restart l4lb".into());
        }
        let snap = Arc::new(Snapshot::build(&next, Some(&self.current)));
        self.cfg = next;
        self.current = Arc::clone(&snap);
        self.cell.publish(snap);
        Ok(())
    }

    /// Apply changes atomically: all or none, published as one new snapshot.
    pub fn apply(&mut self, changes: &[Change]) -> Result<(), String> {
        let mut next = self.cfg.clone();
        for c in changes {
            apply_change(&mut next, c)?;
        }
        next.validate().map_err(|e| e.to_string().replace('\n', "; "))?;
        let snap = Arc::new(Snapshot::build(&next, Some(&self.current)));
        self.cfg = next;
        self.current = Arc::clone(&snap);
        self.cell.publish(snap);
        Ok(())
    }
}
