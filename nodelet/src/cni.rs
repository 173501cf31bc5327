//! Container networking through the CNI plugins, run as executables: a network namespace per
//! server (made by `userns::ensure`, owned by the server's user namespace), the `bridge` plugin (Catalyst's own bridge and subnet, ports isolated from
//! each other) and `portmap` for host ports, which also answer on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// The `bridge` plugin's configuration (the first of the list).
    fn bridge_plugin(&self) -> Value {
        json!({
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
        })
    }

    /// The `portmap` plugin's configuration (chained after the bridge).
    fn portmap_plugin(&self) -> Value {
        json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true})
    }

    fn result_path(&self, id: &str) -> PathBuf {
        self.state_dir.join("results").join(format!("{id}.json"))
    }

    /// The intent marker, written before the first ADD: what a DEL must undo if the
    /// attachment never completed.
    fn marker_path(&self, id: &str) -> PathBuf {
        self.state_dir.join("results").join(format!("{id}.adding"))
    }

    /// The attachment recorded for `id`: a completed one, else a started one (its marker),
    /// else None (nothing to undo: no plugin needs to run).
    fn recorded(&self, id: &str, fallback: &[PortStatus]) -> Option<Attachment> {
        let read = |path: PathBuf| -> Option<Value> {
            serde_json::from_slice(&std::fs::read(path).ok()?).ok()
        };
        if let Some(v) = read(self.result_path(id)) {
            return Some(Attachment::from_record(v, id, fallback));
        }
        read(self.marker_path(id)).map(|v| Attachment::from_record(v, id, fallback))
    }

    fn write_json(&self, path: &Path, v: &Value) -> Result<(), CniError> {
        let io = |source| CniError::Io {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("parent")).map_err(io)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(v).expect("json")).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Attaches the server's network namespace (made beforehand, owned by the server's user
    /// namespace: see `userns::ensure`): bridge, address, host ports. Returns the netns path.
    /// Idempotent: an attached server is left alone, but for host ports that changed.
    pub async fn attach(&self, id: &str, ports: &[PortStatus]) -> Result<PathBuf, CniError> {
        let path = self.attach_bridge(id).await?;
        self.map_ports(id, ports).await?;
        Ok(path)
    }

    /// Attaches the server's network namespace to the bridge (an address, a veth isolated
    /// from the other servers', masquerading), without host ports. Idempotent.
    pub async fn attach_bridge(&self, id: &str) -> Result<PathBuf, CniError> {
        let path = netns_path(id);
        if !path.exists() {
            return Err(CniError::Failed {
                what: "netns".into(),
                message: format!("{} does not exist", path.display()),
            });
        }
        match self.recorded(id, &[]) {
            Some(done) if self.result_path(id).exists() && !done.netns_gone => return Ok(path),
            Some(stale) if stale.netns_gone => {
                // attached to a namespace that is gone (its DEL failed before the namespace
                // was made anew): free its address and host ports first, else this one would
                // never get an address; nothing is added while that fails (retried)
                self.del_plugins(&stale, None).await?;
                let _ = std::fs::remove_file(self.result_path(id));
                let _ = std::fs::remove_file(self.marker_path(id));
            }
            Some(half) => {
                // an earlier attempt that did not finish: undo what it may have done
                let _ = self.del_plugins(&half, Some(&path)).await;
            }
            None => {}
        }
        // what a DEL must undo from here on, before anything is done
        let mut attachment = Attachment {
            cni_id: id.to_owned(),
            mappings: Vec::new(),
            mapping: false,
            netns_gone: false,
            result: Value::Null,
        };
        self.write_json(&self.marker_path(id), &attachment.to_record())?;
        let made = async {
            let bridge = self.bridge_plugin();
            let conf = self.plugin_conf(&bridge, None, &[]);
            let (lo, added) = tokio::join!(
                lo_up(&path),
                self.exec(&bridge, "ADD", id, Some(&path), &conf)
            );
            attachment.result = added?;
            lo?;
            // Servers must not reach each other's ports: isolate the bridge port of this
            // veth, so it only talks to the bridge (the host, the gateway), never to another
            // server.
            for iface in attachment.result["interfaces"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if iface.get("sandbox").is_none() {
                    if let Some(name) = iface["name"].as_str() {
                        if name != self.bridge {
                            run("bridge", &["link", "set", "dev", name, "isolated", "on"]).await?;
                        }
                    }
                }
            }
            self.write_json(&self.result_path(id), &attachment.to_record())
        }
        .await;
        if let Err(e) = made {
            let _ = self.del_plugins(&attachment, Some(&path)).await;
            let _ = std::fs::remove_file(self.marker_path(id));
            return Err(e);
        }
        let _ = std::fs::remove_file(self.marker_path(id));
        Ok(path)
    }

    /// Maps the server's host ports (portmap, also on 127.0.0.1) into its attached network
    /// namespace; mappings of other ports recorded from before go first. The mappings are
    /// recorded before the plugin runs, so that a DEL undoes a half-done ADD too.
    pub async fn map_ports(&self, id: &str, ports: &[PortStatus]) -> Result<(), CniError> {
        let path = netns_path(id);
        let wanted = port_mappings(ports);
        let Some(mut done) = self
            .result_path(id)
            .exists()
            .then(|| self.recorded(id, ports))
            .flatten()
        else {
            return Err(CniError::Failed {
                what: "portmap".into(),
                message: format!("{id} is not attached to the bridge"),
            });
        };
        if done.mappings == wanted && !done.mapping {
            return Ok(());
        }
        let portmap = self.portmap_plugin();
        if !done.mappings.is_empty() {
            let old = self.plugin_conf(&portmap, Some(&done.result), &done.mappings);
            self.exec(&portmap, "DEL", &done.cni_id, Some(&path), &old)
                .await?;
        }
        done.mappings = wanted;
        done.mapping = !done.mappings.is_empty();
        self.write_json(&self.result_path(id), &done.to_record())?;
        if !done.mapping {
            return Ok(());
        }
        self.add_mappings(&portmap, &done, &path).await?;
        done.mapping = false;
        self.write_json(&self.result_path(id), &done.to_record())
    }

    /// Adds the attachment's host port mappings: the rules portmap's ADD would make, written
    /// by one `iptables-restore --noflush` (~5 ms, where the plugin runs ~19 `iptables`
    /// processes, ~50 ms of CPU beside the task's start); the plugin itself when its shared
    /// chains are not known to be there yet (the first mapping of this process), for what the
    /// restore cannot express (IPv6, ids with other characters), and when the restore fails.
    /// portmap's DEL removes either.
    async fn add_mappings(
        &self,
        portmap: &Value,
        a: &Attachment,
        netns: &Path,
    ) -> Result<(), CniError> {
        if HOSTPORT_CHAINS.load(Ordering::Relaxed) {
            if let Some(script) = dnat_script(&a.cni_id, &a.result, &a.mappings) {
                // what the plugin sets on the bridge for 127.0.0.1 to reach the container
                let localnet = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", self.bridge);
                let set = std::fs::read_to_string(&localnet).is_ok_and(|v| v.trim() == "1")
                    || std::fs::write(&localnet, "1").is_ok();
                if set {
                    match restore(&script).await {
                        Ok(()) => {
                            RESTORED.fetch_add(1, Ordering::Relaxed);
                            return Ok(());
                        }
                        Err(e) => {
                            tracing::warn!(id = a.cni_id, error = %e, "host ports by iptables-restore failed; running portmap");
                            HOSTPORT_CHAINS.store(false, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        let conf = self.plugin_conf(portmap, Some(&a.result), &a.mappings);
        self.exec(portmap, "ADD", &a.cni_id, Some(netns), &conf)
            .await?;
        HOSTPORT_CHAINS.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The container's IPv4 address, from the recorded attachment.
    pub fn address(&self, id: &str) -> Option<String> {
        let data = std::fs::read(self.result_path(id)).ok()?;
        let v: Value = serde_json::from_slice(&data).ok()?;
        recorded_ips(&Attachment::from_record(v, id, &[]).result)
            .into_iter()
            .next()
    }

    /// Removes host ports, the address and the namespace. Absent pieces are fine. The
    /// plugins run only for an attachment that was recorded (done or begun), with what was
    /// given to them at ADD; `fallback` ports are for a record of an older nodelet, which
    /// kept no mappings.
    pub async fn detach(&self, id: &str, fallback: &[PortStatus]) -> Result<(), CniError> {
        let path = netns_path(id);
        let exists = path.exists();
        let mut first_err = None;
        if let Some(mut a) = self.recorded(id, fallback) {
            // while the namespace exists: the bridge plugin removes its address and masquerade
            // rules through it (without, it only frees the address)
            let netns = (exists && !a.netns_gone).then_some(path.as_path());
            if let Err(e) = self.del_plugins(&a, netns).await {
                // kept for the next try; the namespace goes below, so say so in the record:
                // an attachment to the next namespace of that path is not this one
                if exists && !a.netns_gone {
                    a.netns_gone = true;
                    let kept = if self.result_path(id).exists() {
                        self.result_path(id)
                    } else {
                        self.marker_path(id)
                    };
                    if let Err(io) = self.write_json(&kept, &a.to_record()) {
                        tracing::warn!(id, error = %io, "marking a stale attachment failed");
                    }
                }
                first_err.get_or_insert(e);
            }
        }
        if exists {
            crate::userns::remove_ns_file(&path);
        }
        if first_err.is_none() {
            let _ = std::fs::remove_file(self.result_path(id));
            let _ = std::fs::remove_file(self.marker_path(id));
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Gives the completed attachment of `from` (a namespace pool entry) to `to`, whose
    /// network namespace is now the same one: `to`'s record names `from`'s CNI id (a DEL gets
    /// what the ADD got), the result's sandbox `to`'s path; `from`'s record goes. False when
    /// `from` has no completed attachment (nothing was written).
    pub fn adopt(&self, from: &str, to: &str) -> Result<bool, CniError> {
        let Some(mut a) = self
            .result_path(from)
            .exists()
            .then(|| self.recorded(from, &[]))
            .flatten()
            .filter(|a| !a.netns_gone && !a.result.is_null())
        else {
            return Ok(false);
        };
        let to_path = netns_path(to).display().to_string();
        if let Some(ifaces) = a.result["interfaces"].as_array_mut() {
            for iface in ifaces {
                if iface.get("sandbox").is_some() {
                    iface["sandbox"] = json!(to_path);
                }
            }
        }
        self.write_json(&self.result_path(to), &a.to_record())?;
        let _ = std::fs::remove_file(self.result_path(from));
        Ok(true)
    }

    /// The CNI id a server's record names (a pool entry's id once the server took it).
    pub fn recorded_cni_id(&self, id: &str) -> Option<String> {
        self.recorded(id, &[]).map(|a| a.cni_id)
    }

    /// Forgets `id`'s record without running any plugin (its attachment belongs to another
    /// record now).
    pub fn forget_record(&self, id: &str) {
        let _ = std::fs::remove_file(self.result_path(id));
        let _ = std::fs::remove_file(self.marker_path(id));
    }

    /// The ids of the attachments recorded in the state (done or begun).
    pub fn recorded_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.state_dir.join("results"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")
                    .or_else(|| name.strip_suffix(".adding"))
                    .map(str::to_owned)
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Runs every plugin's DEL (host ports, then the address and veth) with what they were
    /// given at ADD; the namespace stays.
    async fn del_plugins(&self, a: &Attachment, netns: Option<&Path>) -> Result<(), CniError> {
        let prev = (!a.result.is_null()).then_some(&a.result);
        let mut first_err = None;
        // portmap removes nothing without the mappings: skip the process when there are none
        if !a.mappings.is_empty() {
            let portmap = self.portmap_plugin();
            let conf = self.plugin_conf(&portmap, prev, &a.mappings);
            if let Err(e) = self.exec(&portmap, "DEL", &a.cni_id, netns, &conf).await {
                first_err.get_or_insert(e);
            }
        }
        let bridge = self.bridge_plugin();
        let conf = self.plugin_conf(&bridge, prev, &[]);
        if let Err(e) = self.exec(&bridge, "DEL", &a.cni_id, netns, &conf).await {
            first_err.get_or_insert(e);
        }
        if netns.is_none() {
            // without the namespace the bridge plugin cannot learn the address (it reads it
            // from the veth) and leaves its masquerade rule and chain: remove them from the
            // recorded result
            for ip in recorded_ips(&a.result) {
                if let Err(e) = teardown_masquerade(&a.cni_id, &ip).await {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>, mappings: &[Value]) -> Value {
        let mut conf = plugin.clone();
        conf["cniVersion"] = json!("1.0.0");
        conf["name"] = json!("catalyst");
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        if plugin["type"] == "portmap" {
            conf["runtimeConfig"] = json!({ "portMappings": mappings });
        }
        conf
    }

    async fn exec(
        &self,
        plugin: &Value,
        command: &str,
        id: &str,
        netns: Option<&Path>,
        conf: &Value,
    ) -> Result<Value, CniError> {
        let typ = plugin["type"].as_str().unwrap_or_default();
        let bin = self.bin_dir.join(typ);
        let failed = |message: String| CniError::Failed {
            what: format!("cni {typ} {command}"),
            message,
        };
        let mut cmd = Command::new(&bin);
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns.unwrap_or(Path::new("")))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.bin_dir)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        let out = piped(cmd, &serde_json::to_vec(conf).expect("json"))
            .await
            .map_err(|e| failed(format!("{}: {e}", bin.display())))?;
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

/// portmap's `runtimeConfig.portMappings` for the server's host ports.
fn port_mappings(ports: &[PortStatus]) -> Vec<Value> {
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
    mappings
}

/// Set once portmap's shared chains (`CNI-HOSTPORT-DNAT`, `-SETMARK`, `-MASQ` and the jumps to
/// them, which its DEL never removes) were made on this machine by a plugin ADD of this process.
static HOSTPORT_CHAINS: AtomicBool = AtomicBool::new(false);

/// How many attachments' host ports were mapped by `iptables-restore` in this process.
static RESTORED: AtomicU64 = AtomicU64::new(0);

/// How many attachments' host ports this process mapped by `iptables-restore` (not the plugin).
pub fn mappings_restored() -> u64 {
    RESTORED.load(Ordering::Relaxed)
}

/// The `iptables-restore --noflush` input that makes what portmap's ADD (with `snat`) makes
/// for attachment `cni_id` (network `catalyst`): a chain `CNI-DN-<hash>` with, per mapping,
/// the hairpin and localhost SETMARK rules and the DNAT, and per protocol the jumps to it from
/// `CNI-HOSTPORT-DNAT` (multiport, 15 ports a rule), with the plugin's names and comment, so
/// that its DEL removes them. None for what it cannot express: an id with characters other
/// than `[A-Za-z0-9_.-]`, a result without one IPv4 address or with an IPv6 one, a mapping that
/// is not tcp/udp or has a host IP.
fn dnat_script(cni_id: &str, result: &Value, mappings: &[Value]) -> Option<String> {
    if cni_id.is_empty()
        || !cni_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return None;
    }
    let addrs: Vec<&str> = result["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .collect();
    let [cidr] = addrs[..] else {
        return None;
    };
    let (ip, prefix) = cidr.split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let chain = dnat_chain(cni_id);
    let mut rules = format!("*nat\n:{chain} - [0:0]\n");
    let mut by_proto: Vec<(&str, Vec<u16>)> = Vec::new();
    for m in mappings {
        let proto = m["protocol"]
            .as_str()
            .filter(|p| matches!(*p, "tcp" | "udp"))?;
        if m.get("hostIP").is_some_and(|h| !h.is_null() && h != "") {
            return None;
        }
        let host = u16::try_from(m["hostPort"].as_u64()?).ok()?;
        let container = u16::try_from(m["containerPort"].as_u64()?).ok()?;
        for source in [format!("{ip}/{prefix}"), "127.0.0.1".to_owned()] {
            rules.push_str(&format!(
                "-A {chain} -s {source} -p {proto} -m {proto} --dport {host} -j CNI-HOSTPORT-SETMARK\n"
            ));
        }
        rules.push_str(&format!(
            "-A {chain} -p {proto} -m {proto} --dport {host} -j DNAT --to-destination {ip}:{container}\n"
        ));
        match by_proto.iter_mut().find(|(p, _)| *p == proto) {
            Some((_, ports)) => ports.push(host),
            None => by_proto.push((proto, vec![host])),
        }
    }
    if by_proto.is_empty() {
        return None;
    }
    for (proto, ports) in by_proto {
        for chunk in ports.chunks(15) {
            let list: Vec<String> = chunk.iter().map(u16::to_string).collect();
            rules.push_str(&format!(
                "-A CNI-HOSTPORT-DNAT -p {proto} -m comment --comment \"dnat name: \\\"catalyst\\\" id: \\\"{cni_id}\\\"\" -m multiport --dports {} -j {chain}\n",
                list.join(",")
            ));
        }
    }
    rules.push_str("COMMIT\n");
    Some(rules)
}

/// portmap's per-attachment chain name (`CNI-DN-` and the start of the SHA-512 of the network
/// name and the id, 28 characters in all).
fn dnat_chain(cni_id: &str) -> String {
    use sha2::{Digest, Sha512};
    let digest = Sha512::digest(format!("catalyst{cni_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("CNI-DN-{hex}")[..28].to_owned()
}

/// Runs `cmd` with `input` on its stdin; its output.
async fn piped(mut cmd: Command, input: &[u8]) -> std::io::Result<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(input).await?;
    drop(stdin);
    child.wait_with_output().await
}

/// Applies rules with one `iptables-restore -w --noflush` (atomic: all or nothing).
async fn restore(script: &str) -> Result<(), CniError> {
    let failed = |message: String| CniError::Failed {
        what: "iptables-restore".into(),
        message,
    };
    let mut cmd = Command::new("iptables-restore");
    cmd.args(["-w", "--noflush"]);
    let out = piped(cmd, script.as_bytes())
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

/// The addresses (without prefix length) in a bridge result.
fn recorded_ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str()?.split('/').next().map(str::to_owned))
        .collect()
}

/// The bridge plugin's masquerade chain and rule comment of attachment `cni_id` (its
/// `utils.FormatChainName` and `FormatComment` for network `catalyst`).
fn masquerade_names(cni_id: &str) -> (String, String) {
    use sha2::{Digest, Sha512};
    let digest = Sha512::digest(format!("catalyst{cni_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let chain = format!("CNI-{hex}")[..28].to_owned();
    (chain, format!("name: \"catalyst\" id: \"{cni_id}\""))
}

/// Removes what the bridge plugin's `ipMasq` made for `ip` of attachment `cni_id` (its rule in
/// `nat POSTROUTING` and its chain), as its DEL does when it can see the veth. Absent is fine.
async fn teardown_masquerade(cni_id: &str, ip: &str) -> Result<(), CniError> {
    let (chain, comment) = masquerade_names(cni_id);
    let gone = |e: CniError| match e {
        CniError::Failed { ref message, .. }
            if message.contains("does not exist")
                || message.contains("No chain/target/match")
                || message.contains("Bad rule")
                || message.contains("Couldn't load target") =>
        {
            Ok(())
        }
        e => Err(e),
    };
    for source in [ip.to_owned(), format!("{ip}/32")] {
        let rule = [
            "-w",
            "-t",
            "nat",
            "-D",
            "POSTROUTING",
            "-s",
            &source,
            "-j",
            &chain,
            "-m",
            "comment",
            "--comment",
            &comment,
        ];
        run("iptables", &rule).await.map(drop).or_else(gone)?;
    }
    run("iptables", &["-w", "-t", "nat", "-F", &chain])
        .await
        .map(drop)
        .or_else(gone)?;
    run("iptables", &["-w", "-t", "nat", "-X", &chain])
        .await
        .map(drop)
        .or_else(gone)
}

/// Sets the loopback interface of a network namespace up.
async fn lo_up(netns: &Path) -> Result<(), CniError> {
    let net = format!("--net={}", netns.display());
    run("nsenter", &[&net, "ip", "link", "set", "lo", "up"])
        .await
        .map(drop)
}

/// What was attached for a server, as recorded in `results/<id>.json` (or its marker
/// `<id>.adding` before the attachment completed): the id the plugins were called with, the
/// port mappings given to portmap, the bridge's result. A DEL gets the same.
#[derive(Debug, Clone, PartialEq)]
struct Attachment {
    cni_id: String,
    mappings: Vec<Value>,
    /// The mappings were written before portmap's ADD, which has not answered yet.
    mapping: bool,
    /// The namespace it was attached to was removed before its DEL succeeded: the next
    /// namespace at that path is not attached, and a DEL runs without one.
    netns_gone: bool,
    result: Value,
}

impl Attachment {
    /// Reads a record; an older nodelet's record is the bare CNI result (its id is the
    /// container's, its mappings those of the `fallback` ports).
    fn from_record(v: Value, id: &str, fallback: &[PortStatus]) -> Self {
        match v.get("cniId").and_then(Value::as_str) {
            Some(cni_id) => Attachment {
                cni_id: cni_id.to_owned(),
                mappings: v["mappings"].as_array().cloned().unwrap_or_default(),
                mapping: v["mapping"].as_bool().unwrap_or(false),
                netns_gone: v["netnsGone"].as_bool().unwrap_or(false),
                result: v.get("result").cloned().unwrap_or(Value::Null),
            },
            None => Attachment {
                cni_id: id.to_owned(),
                mappings: port_mappings(fallback),
                mapping: false,
                netns_gone: false,
                result: v,
            },
        }
    }

    fn to_record(&self) -> Value {
        json!({
            "cniId": self.cni_id,
            "mappings": self.mappings,
            "mapping": self.mapping,
            "netnsGone": self.netns_gone,
            "result": self.result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host: u16, container: u16, protocol: Protocol) -> PortStatus {
        serde_json::from_value(json!({
            "name": "game", "hostPort": host, "containerPort": container, "protocol": protocol,
        }))
        .expect("port")
    }

    #[test]
    fn records_keep_what_was_given_at_add_and_old_bare_results_still_read() {
        let ports = [port(7001, 25565, Protocol::TCPUDP)];
        let a = Attachment {
            cni_id: "gs-1".into(),
            mappings: port_mappings(&ports),
            mapping: false,
            netns_gone: false,
            result: json!({"ips": [{"address": "10.0.0.2/24"}]}),
        };
        assert_eq!(a.mappings.len(), 2, "tcp and udp");
        // the ports of the object later do not matter: the record says what to undo
        let read = Attachment::from_record(a.to_record(), "gs-1", &[]);
        assert_eq!(read, a);
        // a bare result (an older nodelet): the container's id, the object's ports
        let old = Attachment::from_record(a.result.clone(), "gs-1", &ports);
        assert_eq!(old, a);
    }

    #[test]
    fn host_port_rules_are_portmaps_own() {
        // what portmap 1.1.1 made for these mappings (iptables -t nat -S), as restore input
        let result = json!({"ips": [{"address": "10.239.0.2/24", "gateway": "10.239.0.1"}]});
        let mappings = port_mappings(&[
            port(7998, 25565, Protocol::TCPUDP),
            port(7997, 8080, Protocol::TCP),
        ]);
        let script = dnat_script("ptest1", &result, &mappings).expect("script");
        let c = "CNI-DN-4093a3ab369093d415bb7";
        let expected = format!(
            "*nat\n:{c} - [0:0]\n\
             -A {c} -s 10.239.0.2/24 -p tcp -m tcp --dport 7998 -j CNI-HOSTPORT-SETMARK\n\
             -A {c} -s 127.0.0.1 -p tcp -m tcp --dport 7998 -j CNI-HOSTPORT-SETMARK\n\
             -A {c} -p tcp -m tcp --dport 7998 -j DNAT --to-destination 10.239.0.2:25565\n\
             -A {c} -s 10.239.0.2/24 -p udp -m udp --dport 7998 -j CNI-HOSTPORT-SETMARK\n\
             -A {c} -s 127.0.0.1 -p udp -m udp --dport 7998 -j CNI-HOSTPORT-SETMARK\n\
             -A {c} -p udp -m udp --dport 7998 -j DNAT --to-destination 10.239.0.2:25565\n\
             -A {c} -s 10.239.0.2/24 -p tcp -m tcp --dport 7997 -j CNI-HOSTPORT-SETMARK\n\
             -A {c} -s 127.0.0.1 -p tcp -m tcp --dport 7997 -j CNI-HOSTPORT-SETMARK\n\
             -A {c} -p tcp -m tcp --dport 7997 -j DNAT --to-destination 10.239.0.2:8080\n\
             -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"catalyst\\\" id: \\\"ptest1\\\"\" -m multiport --dports 7998,7997 -j {c}\n\
             -A CNI-HOSTPORT-DNAT -p udp -m comment --comment \"dnat name: \\\"catalyst\\\" id: \\\"ptest1\\\"\" -m multiport --dports 7998 -j {c}\n\
             COMMIT\n"
        );
        assert_eq!(script, expected);
        // 15 ports a multiport rule, as the plugin splits them
        let many: Vec<PortStatus> = (0..17)
            .map(|i| port(7900 + i, 100 + i, Protocol::UDP))
            .collect();
        let script = dnat_script("ptest1", &result, &port_mappings(&many)).expect("script");
        let jumps: Vec<&str> = script
            .lines()
            .filter(|l| l.starts_with("-A CNI-HOSTPORT-DNAT"))
            .collect();
        assert_eq!(jumps.len(), 2);
        assert!(jumps[1].contains("--dports 7915,7916 "), "{}", jumps[1]);
        // what it cannot say goes to the plugin
        assert!(dnat_script("a\"b", &result, &mappings).is_none());
        assert!(
            dnat_script("x", &json!({"ips": [{"address": "fd00::2/64"}]}), &mappings).is_none()
        );
        let two = json!({"ips": [{"address": "10.239.0.2/24"}, {"address": "fd00::2/64"}]});
        assert!(dnat_script("x", &two, &mappings).is_none());
        assert!(dnat_script("x", &result, &[]).is_none());
    }

    #[test]
    fn nothing_recorded_means_nothing_to_undo() {
        let dir = tempfile::tempdir().expect("tmp");
        let net = Network {
            bin_dir: "/nonexistent".into(),
            bridge: "cat0".into(),
            subnet: "10.0.0.0/24".into(),
            state_dir: dir.path().to_owned(),
        };
        assert!(net.recorded("gs-1", &[]).is_none());
        let marker = Attachment {
            cni_id: "gs-1".into(),
            mappings: port_mappings(&[port(7002, 80, Protocol::TCP)]),
            mapping: true,
            netns_gone: false,
            result: Value::Null,
        };
        net.write_json(&net.marker_path("gs-1"), &marker.to_record())
            .expect("marker");
        assert_eq!(net.recorded("gs-1", &[]), Some(marker));
        assert_eq!(net.recorded_ids(), vec!["gs-1".to_owned()]);
    }
}
