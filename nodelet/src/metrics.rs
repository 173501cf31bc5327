//! Resource use of servers and the node, read from cgroup files and /proc (v1 and v2), and
//! of servers' disks (statvfs).

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
    /// Bytes in the data directory (the same as `disk_used_bytes`).
    pub disk_bytes: u64,
    /// Bytes in use on the server's disk (its data directory).
    pub disk_used_bytes: u64,
    /// Bytes the server's disk holds (0: no disk of its own).
    pub disk_limit_bytes: u64,
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
    // the server's own disk answers at once; a data directory without one is walked
    match crate::disk::own_usage(data_dir) {
        Some(u) => {
            m.disk_used_bytes = u.used_bytes;
            m.disk_limit_bytes = u.limit_bytes;
        }
        None => m.disk_used_bytes = dir_size(data_dir),
    }
    m.disk_bytes = m.disk_used_bytes;
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

/// One Prometheus sample.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub metric: String,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// HELP and TYPE of every metric a nodelet reports, for the API server's `/metrics`.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "catalyst_gameserver_cpu_seconds_total",
        "counter",
        "CPU time used by a game server's container.",
    ),
    (
        "catalyst_gameserver_memory_bytes",
        "gauge",
        "Memory in use by a game server's container.",
    ),
    (
        "catalyst_gameserver_memory_limit_bytes",
        "gauge",
        "A game server's memory limit (0: none).",
    ),
    (
        "catalyst_gameserver_network_receive_bytes_total",
        "counter",
        "Bytes a game server received.",
    ),
    (
        "catalyst_gameserver_network_transmit_bytes_total",
        "counter",
        "Bytes a game server sent.",
    ),
    (
        "catalyst_gameserver_disk_bytes",
        "gauge",
        "Bytes in a game server's data directory (as catalyst_gameserver_disk_used_bytes).",
    ),
    (
        "catalyst_gameserver_disk_used_bytes",
        "gauge",
        "Bytes in use on a game server's disk.",
    ),
    (
        "catalyst_gameserver_disk_limit_bytes",
        "gauge",
        "The size of a game server's disk, less the filesystem's own (0: none).",
    ),
    (
        "catalyst_gameserver_pids",
        "gauge",
        "Processes and threads of a game server.",
    ),
    (
        "catalyst_node_gameservers_running",
        "gauge",
        "Game servers whose task runs on the node.",
    ),
    (
        "catalyst_node_gameservers_memory_bytes",
        "gauge",
        "Memory in use by all game servers of the node.",
    ),
    (
        "catalyst_node_gameservers_cpu_seconds_total",
        "counter",
        "CPU time used by all game servers of the node.",
    ),
    (
        "catalyst_node_images_removed_total",
        "counter",
        "Unused images the node's image garbage collection removed.",
    ),
    (
        "catalyst_node_image_bytes_freed_total",
        "counter",
        "Bytes the node's image garbage collection freed.",
    ),
];

/// Samples of one server, labelled with its namespace, name and node.
pub fn server_samples(node: &str, ns: &str, name: &str, m: &ServerMetrics) -> Vec<Sample> {
    let labels: std::collections::BTreeMap<String, String> =
        [("namespace", ns), ("name", name), ("node", node)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let s = |metric: &str, value: f64| Sample {
        metric: metric.to_owned(),
        labels: labels.clone(),
        value,
    };
    vec![
        s(
            "catalyst_gameserver_cpu_seconds_total",
            m.cpu_usage_ns as f64 / 1e9,
        ),
        s("catalyst_gameserver_memory_bytes", m.memory_bytes as f64),
        s(
            "catalyst_gameserver_memory_limit_bytes",
            m.memory_limit_bytes as f64,
        ),
        s(
            "catalyst_gameserver_network_receive_bytes_total",
            m.network_rx_bytes as f64,
        ),
        s(
            "catalyst_gameserver_network_transmit_bytes_total",
            m.network_tx_bytes as f64,
        ),
        s("catalyst_gameserver_disk_bytes", m.disk_bytes as f64),
        s(
            "catalyst_gameserver_disk_used_bytes",
            m.disk_used_bytes as f64,
        ),
        s(
            "catalyst_gameserver_disk_limit_bytes",
            m.disk_limit_bytes as f64,
        ),
        s("catalyst_gameserver_pids", m.pids as f64),
    ]
}

/// Node totals over its servers' metrics.
pub fn node_samples(node: &str, servers: &[ServerMetrics]) -> Vec<Sample> {
    let labels: std::collections::BTreeMap<String, String> =
        [("node".to_owned(), node.to_owned())].into();
    let s = |metric: &str, value: f64| Sample {
        metric: metric.to_owned(),
        labels: labels.clone(),
        value,
    };
    vec![
        s("catalyst_node_gameservers_running", servers.len() as f64),
        s(
            "catalyst_node_gameservers_memory_bytes",
            servers.iter().map(|m| m.memory_bytes as f64).sum(),
        ),
        s(
            "catalyst_node_gameservers_cpu_seconds_total",
            servers.iter().map(|m| m.cpu_usage_ns as f64 / 1e9).sum(),
        ),
        s(
            "catalyst_node_images_removed_total",
            crate::imagegc::IMAGES_REMOVED.load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
        s(
            "catalyst_node_image_bytes_freed_total",
            crate::imagegc::BYTES_FREED.load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_node_samples_carry_their_labels_and_units() {
        let m = ServerMetrics {
            memory_bytes: 1024,
            cpu_usage_ns: 2_500_000_000,
            disk_used_bytes: 3 << 20,
            disk_limit_bytes: 16 << 20,
            ..Default::default()
        };
        let samples = server_samples("n1", "default", "a", &m);
        let cpu = samples
            .iter()
            .find(|s| s.metric == "catalyst_gameserver_cpu_seconds_total")
            .expect("cpu");
        assert_eq!(cpu.value, 2.5);
        assert_eq!(cpu.labels["node"], "n1");
        assert_eq!(cpu.labels["name"], "a");
        assert!(samples
            .iter()
            .all(|s| FAMILIES.iter().any(|f| f.0 == s.metric)));
        let value = |metric: &str| samples.iter().find(|s| s.metric == metric).map(|s| s.value);
        assert_eq!(
            value("catalyst_gameserver_disk_used_bytes"),
            Some(f64::from(3 << 20))
        );
        assert_eq!(
            value("catalyst_gameserver_disk_limit_bytes"),
            Some(f64::from(16 << 20))
        );
        let node = node_samples("n1", &[m.clone(), m]);
        assert_eq!(node[0].value, 2.0);
        assert_eq!(node[1].value, 2048.0);
    }
}
