//! Resource use of servers and the node, read from cgroup files and /proc (v1 and v2).

use std::path::{Path, PathBuf};

use serde::Serialize;

/// One server's resource use.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerMetrics {
    /// CPU time used, in nanoseconds (a counter).
    pub cpu_usage_ns: u64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// The memory limit, bytes (0: none).
    pub memory_limit_bytes: u64,
    /// Bytes received by the server's network interface.
    pub network_rx_bytes: u64,
    /// Bytes sent.
    pub network_tx_bytes: u64,
    /// Bytes in the data directory.
    pub disk_bytes: u64,
    /// Processes and threads.
    pub pids: u64,
}

fn v2_root() -> Option<PathBuf> {
    let p = Path::new("/sys/fs/cgroup/cgroup.controllers");
    p.exists().then(|| PathBuf::from("/sys/fs/cgroup"))
}

fn read_u64(p: impl AsRef<Path>) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn keyed(p: impl AsRef<Path>, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(p).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// How many processes the kernel's OOM killer took from a container's cgroup.
pub fn oom_kills(cid: &str) -> u64 {
    match v2_root() {
        Some(root) => keyed(
            root.join("catalyst").join(cid).join("memory.events"),
            "oom_kill",
        ),
        None => keyed(
            Path::new("/sys/fs/cgroup/memory/catalyst")
                .join(cid)
                .join("memory.oom_control"),
            "oom_kill",
        ),
    }
    .unwrap_or(0)
}

/// Reads a container's cgroup, its task's network counters and its data dir size.
pub fn server(cid: &str, pid: Option<u32>, data_dir: &Path) -> ServerMetrics {
    let mut m = ServerMetrics::default();
    match v2_root() {
        Some(root) => {
            let cg = root.join("catalyst").join(cid);
            m.cpu_usage_ns = keyed(cg.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000;
            m.memory_bytes = read_u64(cg.join("memory.current")).unwrap_or(0);
            m.memory_limit_bytes = read_u64(cg.join("memory.max")).unwrap_or(0);
            m.pids = read_u64(cg.join("pids.current")).unwrap_or(0);
        }
        None => {
            let base = Path::new("/sys/fs/cgroup");
            let cg = |c: &str| base.join(c).join("catalyst").join(cid);
            m.cpu_usage_ns = read_u64(cg("cpuacct").join("cpuacct.usage")).unwrap_or(0);
            m.memory_bytes = read_u64(cg("memory").join("memory.usage_in_bytes")).unwrap_or(0);
            m.memory_limit_bytes = read_u64(cg("memory").join("memory.limit_in_bytes"))
                .filter(|&l| l < (1 << 62))
                .unwrap_or(0);
            m.pids = read_u64(cg("pids").join("pids.current")).unwrap_or(0);
        }
    }
    if let Some(pid) = pid {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) {
            for line in text.lines().skip(2) {
                let Some((iface, rest)) = line.split_once(':') else {
                    continue;
                };
                if iface.trim() == "lo" {
                    continue;
                }
                let f: Vec<u64> = rest
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if f.len() >= 9 {
                    m.network_rx_bytes += f[0];
                    m.network_tx_bytes += f[8];
                }
            }
        }
    }
    m.disk_bytes = dir_size(data_dir);
    m
}

/// Bytes used by the files under a directory (no symlinks followed).
pub fn dir_size(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// The node's capacity: cpus, memory bytes, and disk bytes of the filesystem holding `dir`.
pub fn capacity(dir: &Path) -> (u64, u64, u64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let disk = nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0);
    (cpus, mem, disk)
}
