//! Container networking through the CNI plugins, run as executables: a network namespace per
//! server (made by `userns::ensure`, owned by the server's user namespace), the `bridge` plugin (Catalyst's own bridge and subnet, ports isolated from
//! each other) and `portmap` for host ports, which also answer on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use catalyst_schemas::gameserver::{PortStatus, Protocol};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A network operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// A plugin or tool could not be run or failed.
    #[error("{what}: {message}")]
    Failed {
        /// The plugin or command.
        what: String,
        /// Its output.
        message: String,
    },
    /// Reading or writing the cached result.
    #[error("cni state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Where the plugins are and how the network looks.
#[derive(Debug, Clone)]
pub struct Network {
    /// Directory with the plugin executables.
    pub bin_dir: PathBuf,
    /// The bridge device.
    pub bridge: String,
    /// The subnet servers get addresses from.
    pub subnet: String,
    /// The nodelet's CNI state (IPAM leases, cached results).
    pub state_dir: PathBuf,
}

impl Network {
    /// The bridge's address in the subnet (host-local's default gateway: the subnet's first
    /// address), how a server reaches the host; `0.0.0.0` for a subnet that does not parse.
    pub fn gateway(&self) -> String {
        let (net, bits) = self.subnet.split_once('/').unwrap_or((&self.subnet, "32"));
        match (net.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>()) {
            (Ok(ip), Ok(bits)) if bits <= 30 => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                std::net::Ipv4Addr::from((u32::from(ip) & mask) + 1).to_string()
            }
            _ => "0.0.0.0".into(),
        }
    }
}

/// The directories where Debian and upstream put the plugins.
pub fn find_bin_dir() -> Option<PathBuf> {
    ["/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("bridge").exists() && p.join("portmap").exists())
}

/// The netns name of a container.
pub fn netns_name(container_id: &str) -> String {
    format!("catalyst-{container_id}")
}

/// The path of a named netns.
pub fn netns_path(container_id: &str) -> PathBuf {
    Path::new("/run/netns").join(netns_name(container_id))
}

async fn run(cmd: &str, args: &[&str]) -> Result<String, CniError> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .await
        .map_err(|e| CniError::Failed {
            what: cmd.to_owned(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(CniError::Failed {
            what: format!("{cmd} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Network {
    fn conflist(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "catalyst",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.state_dir.join("ipam").display().to_string(),
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]
        })
    }

    fn result_path(&self, id: &str) -> PathBuf {
        self.state_dir.join("results").join(format!("{id}.json"))
    }

    /// True when the server's namespace exists and its network was set up.
    pub fn is_attached(&self, id: &str) -> bool {
        netns_path(id).exists() && self.result_path(id).exists()
    }

    /// Attaches the server's network namespace (made beforehand, owned by the server's user
    /// namespace: see `userns::ensure`): bridge, address, host ports. Returns the netns path.
    /// Idempotent: an attached server is left alone.
    pub async fn attach(&self, id: &str, ports: &[PortStatus]) -> Result<PathBuf, CniError> {
        let path = netns_path(id);
        if self.is_attached(id) {
            return Ok(path);
        }
        if !path.exists() {
            return Err(CniError::Failed {
                what: "netns".into(),
                message: format!("{} does not exist", path.display()),
            });
        }
        // Half-done earlier attempt: undo it first.
        let _ = self.del_plugins(id, ports).await;
        let _ = run(
            "ip",
            &[
                "netns",
                "exec",
                &netns_name(id),
                "ip",
                "link",
                "set",
                "lo",
                "up",
            ],
        )
        .await;
        let list = self.conflist();
        let mut prev: Option<Value> = None;
        for plugin in list["plugins"].as_array().expect("plugins") {
            let conf = self.plugin_conf(plugin, prev.as_ref(), ports);
            let res = self.exec(plugin, "ADD", id, &path, &conf).await;
            match res {
                Ok(v) => prev = Some(v),
                Err(e) => {
                    let _ = self.del_plugins(id, ports).await;
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or(Value::Null);
        // Servers must not reach each other's ports: isolate the bridge port of this veth, so
        // it only talks to the bridge (the host, the gateway), never to another server.
        for iface in result["interfaces"].as_array().into_iter().flatten() {
            if iface.get("sandbox").is_none() {
                if let Some(name) = iface["name"].as_str() {
                    if name != self.bridge {
                        run("bridge", &["link", "set", "dev", name, "isolated", "on"]).await?;
                    }
                }
            }
        }
        let rp = self.result_path(id);
        let write = async {
            tokio::fs::create_dir_all(rp.parent().expect("parent")).await?;
            tokio::fs::write(&rp, serde_json::to_vec(&result).expect("json")).await
        };
        write.await.map_err(|source| CniError::Io {
            path: rp.clone(),
            source,
        })?;
        Ok(path)
    }

    /// The container's IPv4 address, from the cached result.
    pub fn address(&self, id: &str) -> Option<String> {
        let data = std::fs::read(self.result_path(id)).ok()?;
        let v: Value = serde_json::from_slice(&data).ok()?;
        v["ips"].as_array()?.iter().find_map(|ip| {
            ip["address"]
                .as_str()
                .and_then(|a| a.split('/').next())
                .map(str::to_owned)
        })
    }

    /// Removes host ports, the address and the namespace. Absent pieces are fine.
    pub async fn detach(&self, id: &str, ports: &[PortStatus]) -> Result<(), CniError> {
        let path = netns_path(id);
        let mut first_err = self.del_plugins(id, ports).await.err();
        if path.exists() {
            if let Err(e) = run("ip", &["netns", "delete", &netns_name(id)]).await {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs every plugin's DEL (host ports, then the address and veth) and forgets the result;
    /// the namespace stays.
    async fn del_plugins(&self, id: &str, ports: &[PortStatus]) -> Result<(), CniError> {
        let path = netns_path(id);
        let rp = self.result_path(id);
        let prev: Option<Value> = std::fs::read(&rp)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok());
        let list = self.conflist();
        let mut first_err = None;
        for plugin in list["plugins"].as_array().expect("plugins").iter().rev() {
            let conf = self.plugin_conf(plugin, prev.as_ref(), ports);
            if let Err(e) = self.exec(plugin, "DEL", id, &path, &conf).await {
                first_err.get_or_insert(e);
            }
        }
        let _ = std::fs::remove_file(&rp);
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>, ports: &[PortStatus]) -> Value {
        let mut conf = plugin.clone();
        conf["cniVersion"] = json!("1.0.0");
        conf["name"] = json!("catalyst");
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        if plugin["type"] == "portmap" {
            let mut mappings = Vec::new();
            for p in ports {
                let protos: &[&str] = match p.protocol {
                    Protocol::TCP => &["tcp"],
                    Protocol::UDP => &["udp"],
                    Protocol::TCPUDP => &["tcp", "udp"],
                };
                for proto in protos {
                    mappings.push(json!({
                        "hostPort": p.host_port,
                        "containerPort": p.container_port,
                        "protocol": proto,
                    }));
                }
            }
            conf["runtimeConfig"] = json!({ "portMappings": mappings });
        }
        conf
    }

    async fn exec(
        &self,
        plugin: &Value,
        command: &str,
        id: &str,
        netns: &Path,
        conf: &Value,
    ) -> Result<Value, CniError> {
        let typ = plugin["type"].as_str().unwrap_or_default();
        let bin = self.bin_dir.join(typ);
        let failed = |message: String| CniError::Failed {
            what: format!("cni {typ} {command}"),
            message,
        };
        let mut child = Command::new(&bin)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.bin_dir)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("{}: {e}", bin.display())))?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(&serde_json::to_vec(conf).expect("json"))
            .await
            .map_err(|e| failed(e.to_string()))?;
        drop(stdin);
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let msg = v["msg"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stdout).into_owned());
            let details = v["details"].as_str().unwrap_or_default();
            return Err(failed(format!("{msg} {details}").trim().to_owned()));
        }
        if out.stdout.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out.stdout).map_err(|e| failed(e.to_string()))
    }
}
