//! The Node's heartbeat: labels once, then capacity, addresses, versions and readiness every
//! interval; the answer carries the Node's spec (default limits for servers that set none).

use std::sync::Arc;

use catalyst_client::API;
use serde_json::{json, Value};

use crate::config::Config;
use crate::runtime::Runtime;
use crate::sftp::SftpStatus;
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

/// What `status.sftp` says: where clients connect (the listen address, or the node's first
/// address when it listens on all of them) and the host key's fingerprint; `null` without SFTP.
fn sftp_status(sftp: Option<&SftpStatus>, addresses: &[String]) -> Value {
    let Some(s) = sftp else {
        return Value::Null;
    };
    let port = s.listen.port();
    let host = if s.listen.ip().is_unspecified() {
        addresses
            .first()
            .cloned()
            .unwrap_or_else(|| "127.0.0.1".into())
    } else {
        s.listen.ip().to_string()
    };
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    json!({"address": address, "port": port, "hostKeyFingerprint": s.host_key_fingerprint})
}

/// Reports the Node's status every `config.heartbeat`, forever.
pub async fn heartbeat_loop(
    rt: Arc<Runtime>,
    config: Config,
    ctd_version: String,
    sftp: Option<SftpStatus>,
) {
    let node_path = format!("{API}/nodes/{}", config.name);
    // the Node's labels come with its join (a node cannot relabel itself)
    loop {
        let (cpus, mem, disk) = metrics::capacity(&rt.data_dir);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let resources = json!({"cpu": cpus.to_string(), "memory": mem.to_string(),
                               "disk": disk.to_string(), "pids": 32768});
        let addresses = node_addresses(&config);
        let status = json!({"status": {
            "state": "Ready",
            "sftp": sftp_status(sftp.as_ref(), &addresses),
            "addresses": addresses,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sftp_status_names_a_reachable_address_and_the_fingerprint() {
        let status = |listen: &str| SftpStatus {
            listen: listen.parse().expect("addr"),
            host_key_fingerprint: "SHA256:abc".into(),
        };
        let addrs = vec!["192.0.2.7".to_owned()];
        assert_eq!(sftp_status(None, &addrs), Value::Null);
        assert_eq!(
            sftp_status(Some(&status("0.0.0.0:2022")), &addrs),
            json!({"address": "192.0.2.7:2022", "port": 2022, "hostKeyFingerprint": "SHA256:abc"})
        );
        assert_eq!(
            sftp_status(Some(&status("10.1.2.3:22")), &addrs)["address"],
            "10.1.2.3:22"
        );
        assert_eq!(
            sftp_status(Some(&status("[::]:2022")), &["2001:db8::1".to_owned()])["address"],
            "[2001:db8::1]:2022"
        );
    }
}
