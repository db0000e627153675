//! Network namespaces and veth pairs for integration tests, cleaned up on drop.
//!
//! Everything is created with unique names (process id + counter), so tests may
//! run in parallel and next to other users of the machine. A [`Netns`] deletes
//! itself (and so every interface inside it, and the peers of its veths) and kills
//! the processes still running in it when dropped, also when a test panics.
//!
//! ```no_run
//! use l4lb_tests::netns::{self, Netns};
//! if let Some(why) = netns::skip_reason() { eprintln!("skipped: {why}"); return; }
//! let ns = Netns::new("demo").unwrap();
//! let peer = Netns::new("peer").unwrap();
//! let (a, b) = netns::veth_between(&ns, &peer, false).unwrap();  // a in `ns`, b in `peer`
//! peer.ip(&["addr", "add", "10.9.0.2/24", "dev", &b]).unwrap();
//! let sockets = ns.enter(|| { /* open sockets inside `ns` */ }).unwrap();
//! ```

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why namespace tests cannot run here (not root, no `ip`, namespaces refused), or
/// `None` when they can.
pub fn skip_reason() -> Option<String> {
    if !is_root() {
        return Some("not root (network namespace tests need CAP_SYS_ADMIN and CAP_NET_ADMIN)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) is not installed".into());
    }
    match Netns::new("probe") {
        Ok(ns) => {
            drop(ns);
            None
        }
        Err(e) => Some(format!("cannot create a network namespace: {e}")),
    }
}

/// True when running as uid 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// A name unique to this process and call, at most 15 bytes (an interface name).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    let mut s = format!("{prefix}{pid}x{n}");
    s.truncate(15);
    s
}

fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(out)
}

/// Run `ip ARGS` in the current namespace.
pub fn ip(args: &[&str]) -> io::Result<String> {
    let out = run(Command::new("ip").args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create a namespace named `l4t-PREFIX-PID-N` with its loopback up.
    pub fn new(prefix: &str) -> io::Result<Netns> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("l4t-{prefix}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let out = run(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run a command inside the namespace and wait for it (error on failure).
    pub fn exec(&self, argv: &[&str]) -> io::Result<Output> {
        run(Command::new("ip").args(["netns", "exec", &self.name]).args(argv))
    }

    /// Start a command inside the namespace; it is killed when the guard drops.
    pub fn spawn(&self, argv: &[&str]) -> io::Result<ChildGuard> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(ChildGuard(Some(child)))
    }

    /// Run `f` on a thread that has entered this namespace. Sockets opened by `f`
    /// stay in the namespace and may be used from any thread afterwards.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let file = File::open(format!("/run/netns/{}", self.name))?;
        std::thread::scope(|s| {
            s.spawn(move || -> io::Result<T> {
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(io::Error::from)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Turn off checksum offload and segmentation offloads on `dev` (needs ethtool):
    /// frames then carry real checksums and MTU-sized segments, as on a wire, which
    /// packet-socket receivers need.
    pub fn disable_offloads(&self, dev: &str) -> io::Result<()> {
        self.exec(&["ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off"])
            .map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).output();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A child process, killed and reaped on drop.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present until drop")
    }

    /// Stop the process (SIGTERM via `kill`, then SIGKILL) and collect its output.
    pub fn finish(mut self) -> io::Result<Output> {
        let mut child = self.0.take().expect("child present until drop");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).output();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = child.kill();
        child.wait_with_output()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A veth pair between two namespaces (`a` in `ns_a`, `b` in `ns_b`), both up, IPv6
/// off unless `ipv6`. Deleted with either namespace.
pub fn veth_between(ns_a: &Netns, ns_b: &Netns, ipv6: bool) -> io::Result<(String, String)> {
    let a = unique_name("l4ta");
    let b = unique_name("l4tb");
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
    let guard = LinkGuard(a.clone());
    ip(&["link", "set", &a, "netns", ns_a.name()])?;
    ip(&["link", "set", &b, "netns", ns_b.name()])?;
    std::mem::forget(guard);
    for (ns, dev) in [(ns_a, &a), (ns_b, &b)] {
        if !ipv6 {
            ns.exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")])?;
        }
        ns.ip(&["link", "set", dev, "up"])?;
    }
    Ok((a, b))
}

/// Deletes a link in the current namespace on drop (until forgotten).
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists(name: &str) -> bool {
        std::path::Path::new("/run/netns").join(name).exists()
    }

    #[test]
    fn namespaces_and_their_veths_are_removed_on_drop() {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
        let a = Netns::new("unit").unwrap();
        let b = Netns::new("unit").unwrap();
        let (ia, ib) = veth_between(&a, &b, false).unwrap();
        a.ip(&["addr", "add", "10.200.0.1/24", "dev", &ia]).unwrap();
        b.ip(&["addr", "add", "10.200.0.2/24", "dev", &ib]).unwrap();
        a.exec(&["ping", "-c", "1", "-W", "2", "10.200.0.2"]).expect("ping across the veth");
        // enter(): code runs inside the namespace (its own interfaces are visible).
        let seen = b.enter(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap()).unwrap();
        assert!(seen.contains(&ib), "{seen}");
        let mut child = a.spawn(&["sleep", "30"]).unwrap();
        let pid = child.child().id();
        let (na, nb) = (a.name().to_owned(), b.name().to_owned());
        drop(child);
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert!(!comm.starts_with("sleep"), "child killed and reaped on drop");
        drop(a);
        drop(b);
        assert!(!exists(&na) && !exists(&nb), "namespaces deleted");
        assert!(ip(&["link", "show", &ia]).is_err(), "veth gone with its namespace");
    }
}
