//! The flow tables' memory, checked before any is mapped: each worker's table is
//! mapped and every page written at start (so that no page fault lands on the packet
//! path), so a capacity the machine cannot hold would otherwise end in a failed
//! mapping or the kernel's OOM killer rather than a clear message.

use anyhow::{Result, bail};
use dataplane::flow_table::FlowTable;

/// Fail with one line when `workers` flow tables of `capacity` flows do not fit in
/// the memory the kernel reports available (`MemAvailable`). No check when that
/// cannot be read.
pub fn check(capacity: usize, workers: usize) -> Result<()> {
    let per = FlowTable::bytes_for(capacity);
    let need = per.saturating_mul(workers.max(1));
    if let Some(avail) = mem_available()
        && need > avail
    {
        bail!(
            "dataplane.flow_table_capacity = {capacity} needs {} of flow tables ({workers} worker(s) x {}), but only {} \
             of memory is available: lower flow_table_capacity (about 63 bytes per flow per worker)",
            human(need),
            human(per),
            human(avail)
        );
    }
    Ok(())
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn mem_available() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

fn human(bytes: usize) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let b = bytes as f64;
    if b >= GIB { format!("{:.1} GiB", b / GIB) } else { format!("{:.1} MiB", b / MIB) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capacity_beyond_the_machine_is_refused_in_one_line() {
        let Some(avail) = mem_available() else {
            eprintln!("skipped: no /proc/meminfo");
            return;
        };
        // Enough flows to need twice the available memory.
        let capacity = avail / 63 * 2;
        let err = check(capacity, 1).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("flow_table_capacity"), "{err}");
        check(1_048_576, 1).expect("the default capacity fits");
    }
}
