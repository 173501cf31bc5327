//! The nodelet: registers its Node, heartbeats, watches the GameServers bound to it and
//! converges containerd toward them (images, containers with limits, CNI networking, console,
//! lifecycle), re-adopting what runs after its own restart.

pub mod api;
pub mod cni;
pub mod console;
pub mod ctd;
pub mod image;
pub mod metrics;
pub mod ownership;
pub mod pack;
pub mod registry;
pub mod rootfs;
pub mod runtime;
pub mod seccomp;
pub mod spec;
pub mod startup;
pub mod supervisor;
pub mod tunnel;
pub mod userns;
pub mod worker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::api::{ApiError, Client, API};
use crate::cni::Network;
use crate::ctd::{Containerd, TaskEvent};
use crate::runtime::{Runtime, LABEL_UID};
use crate::worker::Worker;

/// Anything the nodelet's parts report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// containerd.
    #[error(transparent)]
    Containerd(#[from] ctd::CtdError),
    /// Getting an image ready.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// The server's spec.
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    /// Networking.
    #[error(transparent)]
    Cni(#[from] cni::CniError),
    /// The console.
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
    /// User namespaces and id ranges.
    #[error(transparent)]
    Userns(#[from] userns::UsernsError),
    /// Preparing a container's root filesystem.
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    /// The server asks for what this node does not allow (host network, host ports outside
    /// its range): the scheduler should not have placed it here.
    #[error("{0}")]
    NotAllowed(String),
    /// Local files.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Malformed objects.
    #[error("malformed object: {0}")]
    Json(#[from] serde_json::Error),
    /// Configuration.
    #[error("{0}")]
    Config(String),
}

/// The nodelet's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// How a nodelet runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// API server URL.
    pub server: String,
    /// The join token (its value).
    pub join_token: String,
    /// The Node name.
    pub name: String,
    /// Where servers' data and the nodelet's state live.
    pub data_dir: PathBuf,
    /// containerd's socket.
    pub containerd_socket: PathBuf,
    /// The address players reach this node at (reported in status.addresses).
    pub address: Option<String>,
    /// Labels to put on the Node.
    pub labels: BTreeMap<String, String>,
    /// uid servers run as, inside their user namespace (host uid: the server's range + uid).
    pub uid: u32,
    /// gid, inside the user namespace.
    pub gid: u32,
    /// The machine-wide directory of uid range claims.
    pub idmap_dir: PathBuf,
    /// The host uid of the first server range.
    pub uid_base: u32,
    /// How many ranges of 65536 ids may be handed out.
    pub uid_ranges: u32,
    /// Directories `oci-archive:` images may be read from (besides `<data-dir>/images` and
    /// `/var/lib/catalyst/images`).
    pub image_dirs: Vec<PathBuf>,
    /// The most an image's layers may weigh (as stored), pulled or imported.
    pub max_image_bytes: u64,
    /// Limits for servers that set none (a Node's `spec.defaultResources` overrides them).
    pub default_limits: spec::DefaultLimits,
    /// The CNI bridge name.
    pub bridge: String,
    /// The subnet for servers.
    pub subnet: String,
    /// Where the CNI plugins are (found when None).
    pub cni_bin_dir: Option<PathBuf>,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// A Docker-style auth file with registry credentials.
    pub registry_auth: Option<PathBuf>,
    /// Registries that may be used over plain HTTP (loopback ones always may).
    pub insecure_registries: Vec<String>,
}

impl Config {
    /// Defaults for a node name, server and token.
    pub fn new(server: &str, join_token: &str, name: &str) -> Self {
        Self {
            server: server.to_owned(),
            join_token: join_token.trim().to_owned(),
            name: name.to_owned(),
            data_dir: PathBuf::from("./catalyst-nodelet"),
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
            address: None,
            labels: BTreeMap::new(),
            uid: 1000,
            gid: 1000,
            idmap_dir: PathBuf::from(userns::DEFAULT_CLAIMS_DIR),
            uid_base: userns::DEFAULT_BASE,
            uid_ranges: userns::DEFAULT_COUNT,
            default_limits: spec::DefaultLimits::default(),
            image_dirs: Vec::new(),
            max_image_bytes: image::DEFAULT_MAX_PULL_BYTES,
            bridge: "catalyst0".into(),
            subnet: "10.89.0.0/16".into(),
            cni_bin_dir: None,
            heartbeat: Duration::from_secs(5),
            registry_auth: std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".docker/config.json")),
            insecure_registries: Vec::new(),
        }
    }
}

/// The node token: reused from `<data-dir>/node-token` when the API server still accepts it,
/// else obtained with the join token and saved.
async fn credentials(config: &Config) -> Result<Client> {
    let path = config.data_dir.join("node-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let c = Client::new(&config.server, t.trim());
        match c.get(&format!("{API}/nodes/{}", config.name)).await {
            Ok(_) => return Ok(c),
            Err(e) if matches!(e.code(), Some(401 | 403 | 404)) => {
                tracing::info!(error = %e, "saved node token refused; joining again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let token = Client::join(&config.server, &config.join_token, &config.name).await?;
    write_private(&path, &token)?;
    Ok(Client::new(&config.server, &token))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs until `shutdown` resolves. Game servers keep running when the nodelet stops.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let data_dir = std::fs::canonicalize(&config.data_dir)?;
    let ctd = Containerd::connect(&config.containerd_socket).await?;
    let mut delays = backoff();
    let ctd_version = loop {
        match ctd.version().await {
            Ok(v) => break v,
            Err(e) => {
                tracing::warn!(error = %e, "containerd not answering yet");
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
            }
        }
    };
    let mut delays = backoff();
    let api = loop {
        match credentials(&config).await {
            Ok(c) => break c,
            Err(Error::Api(e)) if e.code().is_none() || e.code() >= Some(500) => {
                tracing::warn!(error = %e, "API server not reachable yet");
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
            }
            Err(e) => return Err(e),
        }
    };
    let bin_dir = config
        .cni_bin_dir
        .clone()
        .or_else(cni::find_bin_dir)
        .ok_or_else(|| {
            Error::Config(
                "no CNI plugins found (install containernetworking-plugins, or pass --cni-bin-dir)"
                    .into(),
            )
        })?;
    let mut images = image::ImagePolicy::for_data_dir(&data_dir);
    images.image_dirs.extend(config.image_dirs.iter().cloned());
    images.max_pull_bytes = config.max_image_bytes;
    let rt = Arc::new(Runtime {
        ctd,
        api: api.clone(),
        net: Network {
            bin_dir,
            bridge: config.bridge.clone(),
            subnet: config.subnet.clone(),
            state_dir: data_dir.join("cni"),
        },
        node: config.name.clone(),
        data_dir,
        uid: config.uid,
        gid: config.gid,
        defaults: Mutex::new(config.default_limits),
        node_spec: Mutex::new(None),
        images,
        ids: userns::IdAllocator::open(&config.idmap_dir, config.uid_base, config.uid_ranges)?,
        consoles: Mutex::new(HashMap::new()),
        wakers: Mutex::new(HashMap::new()),
        oom: Mutex::new(HashSet::new()),
        registries: registry::Registries::load(
            config.registry_auth.as_deref(),
            config.insecure_registries.clone(),
        )
        .map_err(|e| Error::Config(format!("registry auth file: {e}")))?,
        samples: Mutex::new(Vec::new()),
        image_locks: Mutex::new(HashMap::new()),
    });
    tracing::info!(
        node = config.name,
        containerd = ctd_version,
        "nodelet started"
    );
    let heartbeat = tokio::spawn(heartbeat_loop(rt.clone(), config.clone(), ctd_version));
    let events = tokio::spawn(event_pump(rt.clone()));
    let tunnel = tokio::spawn(tunnel::run(rt.clone()));
    let servers = tokio::spawn(server_loop(rt.clone()));
    let sampler = tokio::spawn(sample_loop(rt.clone()));
    shutdown.await;
    tracing::info!("nodelet stopping; game servers keep running");
    for h in [heartbeat, events, tunnel, servers, sampler] {
        h.abort();
    }
    Ok(())
}

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

async fn heartbeat_loop(rt: Arc<Runtime>, config: Config, ctd_version: String) {
    let node_path = format!("{API}/nodes/{}", config.name);
    let mut labelled = config.labels.is_empty();
    loop {
        if !labelled {
            match rt
                .api
                .patch(&node_path, json!({"metadata": {"labels": config.labels}}))
                .await
            {
                Ok(_) => labelled = true,
                Err(e) => tracing::warn!(error = %e, "cannot label the node"),
            }
        }
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
    }
}

/// Task exits and OOM kills from containerd wake the worker of their container. After a gap
/// in the stream every worker looks again, so no exit goes unnoticed.
async fn event_pump(rt: Arc<Runtime>) {
    let mut delays = backoff();
    loop {
        match rt.ctd.task_events().await {
            Ok(stream) => {
                delays = backoff();
                rt.wake_all();
                let mut stream = std::pin::pin!(stream);
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(TaskEvent::Exit { container_id, .. }) => rt.wake(&container_id),
                        Ok(TaskEvent::Oom { container_id }) => {
                            rt.oom.lock().expect("oom").insert(container_id.clone());
                            rt.wake(&container_id);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "containerd event stream broke");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to containerd events"),
        }
        tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
        rt.wake_all();
    }
}

/// How often running servers' metrics are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Samples every running server's cgroup, network and data dir, and the node totals, into
/// memory for the Prometheus endpoint.
async fn sample_loop(rt: Arc<Runtime>) {
    loop {
        let mut samples = Vec::new();
        let mut all = Vec::new();
        if let Ok(containers) = rt
            .ctd
            .container_list(&format!("labels.\"{LABEL_UID}\""))
            .await
        {
            for c in containers {
                let (Some(uid), Some(nsname)) =
                    (c.labels.get(LABEL_UID), c.labels.get(runtime::LABEL_NAME))
                else {
                    continue;
                };
                let Ok(Some((ctd::TaskState::Running, pid))) = rt.ctd.task_state(&c.id).await
                else {
                    continue;
                };
                let (ns, name) = nsname.split_once('/').unwrap_or(("default", nsname));
                let (cid, dir) = (c.id.clone(), rt.server_dir(uid));
                let m = tokio::task::spawn_blocking(move || metrics::server(&cid, Some(pid), &dir))
                    .await
                    .unwrap_or_default();
                samples.extend(metrics::server_samples(&rt.node, ns, name, &m));
                all.push(m);
            }
        }
        samples.extend(metrics::node_samples(&rt.node, &all));
        *rt.samples.lock().expect("samples") = samples;
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

fn uid_of(v: &Value) -> Option<String> {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

struct Servers {
    rt: Arc<Runtime>,
    workers: HashMap<String, watch::Sender<Option<Value>>>,
}

impl Servers {
    fn upsert(&mut self, obj: Value) {
        let Some(uid) = uid_of(&obj) else { return };
        let bound = obj.pointer("/status/nodeName").and_then(Value::as_str) == Some(&self.rt.node);
        if !bound {
            self.remove(&uid);
            return;
        }
        match self.workers.get(&uid) {
            Some(tx) if !tx.is_closed() => {
                tx.send_replace(Some(obj));
            }
            _ => {
                let (tx, rx) = watch::channel(Some(obj));
                Worker::spawn(self.rt.clone(), uid.clone(), rx);
                self.workers.insert(uid, tx);
            }
        }
    }

    fn remove(&mut self, uid: &str) {
        if let Some(tx) = self.workers.get(uid) {
            tx.send_replace(None);
        }
    }

    /// Starts a cleaning worker for a container whose server is gone.
    fn orphan(&mut self, uid: String) {
        if self.workers.contains_key(&uid) {
            return;
        }
        let (tx, rx) = watch::channel(None);
        Worker::spawn(self.rt.clone(), uid.clone(), rx);
        self.workers.insert(uid, tx);
    }

    fn prune(&mut self) {
        self.workers.retain(|_, tx| !tx.is_closed());
    }
}

/// Lists and watches the servers bound here; one worker per server. Containers with Catalyst
/// labels but no server (deleted while the nodelet was down) are cleaned up.
async fn server_loop(rt: Arc<Runtime>) {
    let mut servers = Servers {
        rt: rt.clone(),
        workers: HashMap::new(),
    };
    let mut delays = backoff();
    let mut rv: Option<String> = None;
    loop {
        if rv.is_none() {
            match rt.api.list_servers(&rt.node).await {
                Ok((items, list_rv)) => {
                    let seen: HashSet<String> = items.iter().filter_map(uid_of).collect();
                    let stale: Vec<String> = servers
                        .workers
                        .keys()
                        .filter(|u| !seen.contains(*u))
                        .cloned()
                        .collect();
                    for u in stale {
                        servers.remove(&u);
                    }
                    for obj in items {
                        servers.upsert(obj);
                    }
                    match rt
                        .ctd
                        .container_list(&format!("labels.\"{LABEL_UID}\""))
                        .await
                    {
                        Ok(containers) => {
                            for c in containers {
                                if let Some(u) = c.labels.get(LABEL_UID) {
                                    if !seen.contains(u) {
                                        tracing::info!(
                                            uid = u,
                                            "container without a server; removing"
                                        );
                                        servers.orphan(u.clone());
                                    }
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot list containers"),
                    }
                    // state of servers deleted while the nodelet was away (netns, console)
                    if let Ok(dir) = std::fs::read_dir(rt.data_dir.join("run")) {
                        for e in dir.flatten() {
                            let u = e.file_name().to_string_lossy().into_owned();
                            if !seen.contains(&u) {
                                servers.orphan(u);
                            }
                        }
                    }
                    rv = Some(list_rv);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list game servers");
                    tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
                    continue;
                }
            }
        }
        let from = rv.clone().unwrap_or_default();
        match rt.api.watch_servers(&rt.node, &from).await {
            Ok(stream) => {
                delays = backoff();
                let mut stream = std::pin::pin!(stream);
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok((typ, obj)) => {
                            if let Some(r) = obj
                                .pointer("/metadata/resourceVersion")
                                .and_then(Value::as_str)
                            {
                                rv = Some(r.to_owned());
                            }
                            match typ.as_str() {
                                "ADDED" | "MODIFIED" => servers.upsert(obj),
                                "DELETED" => {
                                    if let Some(u) = uid_of(&obj) {
                                        servers.remove(&u);
                                    }
                                }
                                _ => {}
                            }
                            servers.prune();
                        }
                        Err(ApiError::Gone) => {
                            tracing::info!("watch too old; listing again");
                            rv = None;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "watch broke");
                            break;
                        }
                    }
                }
            }
            Err(ApiError::Gone) => rv = None,
            Err(e) => tracing::warn!(error = %e, "cannot watch game servers"),
        }
        tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
    }
}
