//! The Node's heartbeat: labels once, then capacity, addresses, versions and readiness every
//! interval; the answer carries the Node's spec (default limits for servers that set none).

use std::sync::Arc;

use catalyst_client::API;
use serde_json::{json, Value};

use crate::config::Config;
use crate::runtime::Runtime;
use crate::{metrics, spec};

fn node_addresses(config: &Config) -> Vec<String> {
    if let Some(a) = &config.address {
        return vec![a.clone()];
    }
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output();
    let mut addrs: Vec<String> = out
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains(&config.bridge))
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|a| a.split('/').next())
        .map(str::to_owned)
        .collect();
    if addrs.is_empty() {
        addrs.push("127.0.0.1".into());
    }
    addrs
}

/// Reports the Node's status every `config.heartbeat`, forever.
pub async fn heartbeat_loop(rt: Arc<Runtime>, config: Config, ctd_version: String) {
    let node_path = format!("{API}/nodes/{}", config.name);
    // the Node's labels come with its join (a node cannot relabel itself)
    loop {
        let (cpus, mem, disk) = metrics::capacity(&rt.data_dir);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let resources = json!({"cpu": cpus.to_string(), "memory": mem.to_string(),
                               "disk": disk.to_string(), "pids": 32768});
        let status = json!({"status": {
            "state": "Ready",
            "addresses": node_addresses(&config),
            "capacity": resources,
            "allocatable": resources,
            "lastHeartbeatTime": chrono::Utc::now(),
            "versions": {"nodelet": env!("CARGO_PKG_VERSION"), "containerd": ctd_version,
                         "kernel": kernel},
        }});
        match rt.api.patch(&format!("{node_path}/status"), status).await {
            Ok(node) => {
                if let Some(spec) = node
                    .get("spec")
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                {
                    *rt.node_spec.lock().expect("node spec") = Some(spec);
                }
                let limits = default_limits(&node, config.default_limits);
                let mut current = rt.defaults.lock().expect("defaults");
                if *current != limits {
                    tracing::info!(?limits, "default limits for servers that set none");
                    *current = limits;
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        tokio::time::sleep(config.heartbeat).await;
    }
}

/// The limits for servers that set none: the Node's `spec.defaultResources`, field by field,
/// over the nodelet's own defaults.
fn default_limits(node: &Value, fallback: spec::DefaultLimits) -> spec::DefaultLimits {
    let Some(r) = node.pointer("/spec/defaultResources").and_then(|r| {
        serde_json::from_value::<catalyst_schemas::gameserver::Resources>(r.clone()).ok()
    }) else {
        return fallback;
    };
    spec::DefaultLimits {
        memory: r.memory.map_or(fallback.memory, |m| m.value()),
        cpu_millis: r.cpu.map_or(fallback.cpu_millis, |c| c.milli_value()),
        pids: r.pids.unwrap_or(fallback.pids),
        disk: r.disk.map_or(fallback.disk, |d| d.value()),
    }
}
