//! What the executor acts through: containerd ([`ContainerRuntime`]), CNI ([`Network`]), the API
//! ([`StatusWriter`]) and time ([`Clock`]), with the real implementations over the nodelet's
//! shared [`Runtime`]. Tests put recording fakes in their place (`worker/fake.rs`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use catalyst_schemas::gameserver::{NetworkMode, PortStatus};
use catalyst_schemas::template::Template;
use containerd_client::types::Mount;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::console::{Console, ConsoleError};
use crate::disk::{self, Ensured, Usage};
use crate::image::Image;
use crate::ownership::chown_tree;
use crate::runtime::{Runtime, LABEL_GENERATION, LABEL_NAME, LABEL_UID};
use crate::spec::{self, Placement, Resolved};
use crate::userns::IdRange;
use crate::worker::plan::Task;
use crate::{Error, Result};
use catalyst_client::{gs_path, API};

/// Which of a server's containers to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerKind {
    /// The game server itself.
    Main,
    /// The install script, run as root in the server's user namespace with the data directory
    /// at `/mnt/server`.
    Install {
        /// The script's text.
        script: String,
        /// The interpreter.
        entrypoint: String,
    },
}

/// Where a server's containers run: its data directory (its own disk, mounted by
/// [`ContainerRuntime::disk`]), host id range and namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The data directory (owned by the server's user once its disk is mounted).
    pub data_dir: PathBuf,
    /// The host id range.
    pub range: IdRange,
    /// The user namespace file.
    pub userns: PathBuf,
    /// The network namespace file (bridge networking only).
    pub netns: Option<PathBuf>,
    /// The namespaces cannot be reused and are about to be made anew: an old network
    /// attachment must go first.
    pub fresh: bool,
}

/// A container to make.
#[derive(Debug)]
pub struct NewContainer<'a> {
    /// Its id.
    pub id: &'a str,
    /// Main or install.
    pub kind: &'a ContainerKind,
    /// The server resolved against its template.
    pub resolved: &'a Resolved,
    /// The image, present and verified.
    pub image: &'a Image,
    /// Where it runs.
    pub sandbox: &'a Sandbox,
    /// The server's `namespace/name` (a label; the name is the hostname).
    pub namespace: &'a str,
    /// The server's name.
    pub name: &'a str,
    /// The generation the container is made from (a label).
    pub generation: i64,
}

/// A held per-image lock: servers sharing an image wait for the first one's fetch.
pub type ImageLock = Box<dyn Send>;

/// containerd, the server's files and namespaces, as the worker needs them.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + std::fmt::Debug {
    /// The task of container `id`.
    async fn task(&self, id: &str) -> Result<Task>;
    /// Sends `signal` to the task's process (`all`: every process of the container).
    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()>;
    /// Deletes an exited task.
    async fn delete_task(&self, id: &str) -> Result<()>;
    /// Kills and removes a container with its task and snapshot; absent parts are fine.
    async fn remove(&self, id: &str) -> Result<()>;
    /// True when the OOM killer hit the container since its task started.
    fn oom_killed(&self, id: &str) -> bool;
    /// Forgets OOM kills seen so far (a new task starts).
    fn forget_oom(&self, id: &str);
    /// The server's console (output of its containers, commands to its stdin).
    fn console(&self) -> std::result::Result<Arc<Console>, ConsoleError>;
    /// Checks the node's rules (host network, host port range) for the server.
    fn check_allowed(&self, resolved: &Resolved) -> Result<()>;
    /// Takes the lock of an image.
    async fn lock_image(&self, image: &str) -> ImageLock;
    /// True when the image is in containerd.
    async fn image_present(&self, image: &str) -> Result<bool>;
    /// Makes sure the image is present and verified; the bytes fetched when it was not. A
    /// registry pull reports its layer bytes to `progress`.
    async fn ensure_image(
        &self,
        image: &str,
        progress: crate::image::Progress,
    ) -> Result<(Image, Option<u64>)>;
    /// The data directory and id range of the server, and where its namespaces are; its disk
    /// is mounted by [`ContainerRuntime::disk`], which may run beside the network's and the
    /// container's making (nothing reads the directory before the task starts).
    async fn sandbox(&self, resolved: &Resolved) -> Result<Sandbox>;
    /// Mounts the server's disk (of the size the resolved spec asks) on the sandbox's data
    /// directory, owned by the server's user; what making sure of it found and did (None
    /// where there is no disk: the tests' fakes). A disk that cannot be had is an error: a
    /// server never runs on the node's own filesystem.
    async fn disk(&self, resolved: &Resolved, sandbox: &Sandbox) -> Result<Option<Ensured>>;
    /// Makes the sandbox's user (and network) namespaces, or keeps them when reusable.
    async fn make_namespaces(&self, sandbox: &Sandbox) -> Result<()>;
    /// Creates container `id` (a fresh one; an old one of that id is removed) and returns the
    /// mounts of its root filesystem.
    async fn create(&self, container: &NewContainer<'_>) -> Result<Vec<Mount>>;
    /// Creates and starts the task of container `id` with the console's FIFOs as stdio.
    async fn start(&self, id: &str, mounts: Vec<Mount>) -> Result<()>;
    /// Gives the data directory back to the server's user (after an install ran as root).
    async fn own_data(&self) -> Result<()>;
    /// Removes the server's namespaces; with `gone`, also its data (its disk unmounted first),
    /// id range and runtime state.
    async fn release(&self, gone: bool) -> Result<()>;
    /// The use of the server's disk; None when its data directory is not a disk of its own.
    async fn disk_usage(&self) -> Result<Option<Usage>>;
    /// Keeps the server's Template `fileDenylist` for the file manager and SFTP.
    fn set_denylist(&self, patterns: &[String]);
    /// The images the server needs (the image GC never removes them).
    fn set_images(&self, images: BTreeSet<String>);
    /// The address servers on the bridge reach the host at.
    fn gateway(&self) -> String;
    /// Edits config files in the server's data directory (as its user, through the path
    /// layer): per file, whether it changed or why it was left alone.
    async fn edit_config_files(
        &self,
        files: Vec<ConfigEdits>,
    ) -> Result<Vec<(String, std::result::Result<bool, String>)>>;
}

/// One config file's edits: its path, its format, the replacements (placeholders filled).
pub type ConfigEdits = (
    String,
    catalyst_schemas::template::ConfigParser,
    Vec<crate::configfile::Replacement>,
);

/// The server's network attachment.
#[async_trait]
pub trait Network: Send + Sync + std::fmt::Debug {
    /// Attaches container `id`'s network namespace to the bridge (no host ports yet).
    async fn attach_bridge(&self, id: &str) -> Result<()>;
    /// Maps the host ports into container `id`'s attached network namespace (those of
    /// before, if others, go).
    async fn map_ports(&self, id: &str, ports: &[PortStatus]) -> Result<()>;
    /// Removes the attachment and its port mappings; absent is fine.
    async fn detach(&self, id: &str, ports: &[PortStatus]) -> Result<()>;
}

/// The API side: status writes, Events, and the one read a worker needs (templates).
#[async_trait]
pub trait StatusWriter: Send + Sync + std::fmt::Debug {
    /// Merges `status` into the server's status; returns the object written.
    async fn patch_status(&self, gs: &Value, status: Value) -> Result<Value>;
    /// Records an Event about the server: queued, written in the background (failures are
    /// logged, not returned).
    async fn event(&self, gs: &Value, type_: &str, reason: &str, message: &str);
    /// A template by name; None when it does not exist.
    async fn template(&self, name: &str) -> Result<Option<Template>>;
}

/// The time deadlines are measured on.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Instant;
}

/// Everything a worker acts through.
#[derive(Debug, Clone)]
pub struct Env {
    /// containerd and the server's files.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// CNI.
    pub network: Arc<dyn Network>,
    /// The API.
    pub status: Arc<dyn StatusWriter>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl Env {
    /// The real parts, for server `uid`.
    pub fn real(rt: Arc<Runtime>, uid: &str) -> Self {
        Env {
            runtime: Arc::new(Containers {
                rt: rt.clone(),
                uid: uid.to_owned(),
            }),
            network: Arc::new(Cni(rt.clone())),
            status: Arc::new(Api(rt)),
            clock: Arc::new(TokioClock),
        }
    }
}

/// tokio's clock (paused in tests that pause it).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The API through the node's client.
#[derive(Debug)]
struct Api(Arc<Runtime>);

#[async_trait]
impl StatusWriter for Api {
    async fn patch_status(&self, gs: &Value, status: Value) -> Result<Value> {
        let ns = gs
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let name = catalyst_schemas::object::name_of(gs);
        let path = format!("{}/status", gs_path(ns, name));
        Ok(self.0.api.patch(&path, json!({ "status": status })).await?)
    }

    async fn event(&self, gs: &Value, type_: &str, reason: &str, message: &str) {
        self.0.events.record(gs, type_, reason, message);
    }

    async fn template(&self, name: &str) -> Result<Option<Template>> {
        // templates are cluster-wide
        match self.0.api.get(&format!("{API}/templates/{name}")).await {
            Ok(v) => Ok(Some(serde_json::from_value(v)?)),
            Err(e) if e.code() == Some(404) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// CNI through the node's network.
#[derive(Debug)]
struct Cni(Arc<Runtime>);

#[async_trait]
impl Network for Cni {
    async fn attach_bridge(&self, id: &str) -> Result<()> {
        self.0.net.attach_bridge(id).await?;
        Ok(())
    }

    async fn map_ports(&self, id: &str, ports: &[PortStatus]) -> Result<()> {
        Ok(self.0.net.map_ports(id, ports).await?)
    }

    async fn detach(&self, id: &str, ports: &[PortStatus]) -> Result<()> {
        Ok(self.0.net.detach(id, ports).await?)
    }
}

/// containerd and the node's files for one server.
#[derive(Debug)]
struct Containers {
    rt: Arc<Runtime>,
    uid: String,
}

impl Containers {
    fn cid(&self) -> String {
        Runtime::container_id(&self.uid)
    }

    /// The host uid and gid of the server's user.
    fn host_ids(&self, range: IdRange) -> (u32, u32) {
        (
            range.host(self.rt.uid).unwrap_or(range.start),
            range.host(self.rt.gid).unwrap_or(range.start),
        )
    }

    /// The data directory and its id range.
    fn dir_and_range(&self) -> Result<(PathBuf, IdRange)> {
        let dir = self.rt.server_dir(&self.uid);
        std::fs::create_dir_all(&dir)?;
        let range = self.rt.ids.claim(&dir)?;
        Ok((dir, range))
    }

    /// The server's disk of `bytes` mounted on `dir`; the directory belongs to the server's
    /// user, re-owned when it does not (a new range, an upgrade, data moved into a new disk).
    async fn mount_disk(&self, dir: &Path, range: IdRange, bytes: u64) -> Result<Ensured> {
        let (uid, gid) = self.host_ids(range);
        let image = self.rt.disk_image(&self.uid);
        let at = dir.to_owned();
        let spares = self.rt.spares.clone();
        let ensured = tokio::task::spawn_blocking(move || {
            disk::ensure_from(&image, &at, bytes, uid, gid, Some(&spares))
        })
        .await
        .map_err(|e| Error::Config(format!("disk: {e}")))??;
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(dir)?;
        if ensured.migrated || (m.uid(), m.gid()) != (uid, gid) {
            chown_off_runtime(dir.to_owned(), uid, gid).await?;
        }
        Ok(ensured)
    }
}

async fn chown_off_runtime(dir: PathBuf, uid: u32, gid: u32) -> Result<()> {
    tokio::task::spawn_blocking(move || chown_tree(&dir, uid, gid))
        .await
        .map_err(|e| Error::Config(format!("chown: {e}")))??;
    Ok(())
}

#[async_trait]
impl ContainerRuntime for Containers {
    async fn task(&self, id: &str) -> Result<Task> {
        Ok(Task::from(
            self.rt.ctd.task_state(id).await?.map(|(s, _)| s),
        ))
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        Ok(self.rt.ctd.task_kill(id, signal, all).await?)
    }

    async fn delete_task(&self, id: &str) -> Result<()> {
        self.rt.ctd.task_delete(id).await?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        remove_container(&self.rt.ctd, id).await
    }

    fn oom_killed(&self, id: &str) -> bool {
        self.rt.oom.lock().expect("oom").contains(id) || crate::metrics::oom_kills(id) > 0
    }

    fn forget_oom(&self, id: &str) {
        self.rt.oom.lock().expect("oom").remove(id);
    }

    fn console(&self) -> std::result::Result<Arc<Console>, ConsoleError> {
        self.rt.console(&self.uid)
    }

    fn check_allowed(&self, resolved: &Resolved) -> Result<()> {
        // defence in depth: what the scheduler checked, checked again where it matters
        if let Some(node) = self.rt.node_spec.lock().expect("node spec").as_ref() {
            catalyst_schemas::node::host_network_allowed(node, resolved.network)
                .and_then(|()| catalyst_schemas::node::host_ports_allowed(node, &resolved.ports))
                .map_err(Error::NotAllowed)?;
        }
        Ok(())
    }

    async fn lock_image(&self, image: &str) -> ImageLock {
        let lock = self.rt.image_gc.lock(image);
        Box::new(lock.lock_owned().await)
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        Ok(crate::image::present(&self.rt.ctd, image).await?)
    }

    async fn ensure_image(
        &self,
        image: &str,
        progress: crate::image::Progress,
    ) -> Result<(Image, Option<u64>)> {
        let ensured = crate::image::ensure_with(
            &self.rt.ctd,
            &self.rt.registries,
            &self.rt.images,
            image,
            Some(progress),
        )
        .await?;
        self.rt.image_gc.touch(image);
        if ensured.1.is_some() {
            self.rt.image_fetched.notify_one();
        }
        Ok(ensured)
    }

    async fn sandbox(&self, resolved: &Resolved) -> Result<Sandbox> {
        let cid = self.cid();
        let bridge = resolved.network == NetworkMode::Bridge;
        // a new Bridge server takes a sandbox of the pool: range, namespaces and bridge
        // attachment made ahead (a server with a range keeps it: its files are owned by it;
        // one with a disk image has one, and is not asked: that would scan every claim)
        let pooled = (bridge && !self.rt.disk_image(&self.uid).exists())
            .then(|| {
                let dir = self.rt.server_dir(&self.uid);
                std::fs::create_dir_all(&dir).ok()?;
                self.rt
                    .pool
                    .hand_over(&self.rt.ids, &self.rt.net, &cid, &dir)
            })
            .flatten();
        let (data_dir, range) = self.dir_and_range()?;
        debug_assert!(pooled.is_none_or(|r| r == range));
        let netns = bridge.then(|| crate::cni::netns_path(&cid));
        let fresh = !crate::userns::reusable(&cid, range, netns.as_deref());
        Ok(Sandbox {
            data_dir,
            range,
            userns: crate::userns::userns_path(&cid),
            netns,
            fresh,
        })
    }

    async fn disk(&self, resolved: &Resolved, sandbox: &Sandbox) -> Result<Option<Ensured>> {
        let defaults = *self.rt.defaults.lock().expect("defaults");
        let bytes = spec::disk_bytes(&resolved.resources, &defaults);
        self.mount_disk(&sandbox.data_dir, sandbox.range, bytes)
            .await
            .map(Some)
    }

    async fn make_namespaces(&self, sandbox: &Sandbox) -> Result<()> {
        // the server's user namespace, and its network namespace owned by it, shared by the
        // install and the main container (like a pod's)
        let made =
            crate::userns::ensure(&self.cid(), sandbox.range, sandbox.netns.as_deref()).await?;
        debug_assert_eq!(made, sandbox.userns);
        Ok(())
    }

    async fn create(&self, c: &NewContainer<'_>) -> Result<Vec<Mount>> {
        let NewContainer {
            id,
            kind,
            resolved,
            image,
            sandbox,
            ..
        } = *c;
        let run_dir = self.rt.run_dir(&self.uid);
        let labels = HashMap::from([
            (LABEL_UID.to_owned(), self.uid.clone()),
            (LABEL_NAME.to_owned(), format!("{}/{}", c.namespace, c.name)),
            (LABEL_GENERATION.to_owned(), c.generation.to_string()),
        ]);
        let placement = Placement {
            id,
            hostname: c.name,
            data_dir: &sandbox.data_dir,
            netns: sandbox.netns.as_deref(),
            userns: &sandbox.userns,
            range: sandbox.range,
            uid: self.rt.uid,
            gid: self.rt.gid,
            defaults: *self.rt.defaults.lock().expect("defaults"),
            server_uid: &self.uid,
        };
        let env = spec::environment(resolved, &image.config, &placement);
        let oci = match kind {
            ContainerKind::Main => {
                let args = spec::argv(resolved, &image.config)?;
                spec::runtime_spec(resolved, args, env, &placement, true)?
            }
            ContainerKind::Install { script, entrypoint } => {
                let script_dir = run_dir.join("install");
                std::fs::create_dir_all(&script_dir)?;
                std::fs::write(script_dir.join("install.sh"), script)?;
                let args = vec![entrypoint.clone(), "/mnt/install/install.sh".to_owned()];
                let mut oci = spec::runtime_spec(resolved, args, env, &placement, false)?;
                spec::install_layout(&mut oci, &sandbox.data_dir, &script_dir);
                oci
            }
        };
        let oci = serde_json::to_vec(&oci)?;
        // a fresh container each start: it carries the current spec and generation
        let ctd = &self.rt.ctd;
        let _ = ctd.task_delete(id).await;
        ctd.container_delete(id).await?;
        ctd.snapshot_remove(id).await?;
        // the snapshot is held by a lease until the container refers to it: containerd's
        // garbage collector (run when any other lease ends, e.g. another image import) would
        // otherwise take it in between
        let lease = ctd.lease_create().await?;
        let made = async {
            let mounts = ctd.snapshot_prepare(Some(&lease), id, &image.top).await?;
            // /tmp writable whatever the image made of it; for an install, the image's files
            // given to the server's range so that root inside may install packages
            let target = run_dir.join(format!("rootfs-{id}"));
            let touches = crate::rootfs::Touches {
                remap: matches!(kind, ContainerKind::Install { .. }).then_some(sandbox.range),
            };
            let m = mounts.clone();
            tokio::task::spawn_blocking(move || crate::rootfs::prepare(&m, &target, touches))
                .await
                .map_err(|e| Error::Config(format!("rootfs: {e}")))??;
            ctd.container_create(id, &image.name, labels, oci).await?;
            Ok::<_, Error>(mounts)
        }
        .await;
        let _ = ctd.lease_delete(&lease, false).await;
        made
    }

    async fn start(&self, id: &str, mounts: Vec<Mount>) -> Result<()> {
        let (stdin, stdout, stderr) = Console::fifo_paths(&self.rt.run_dir(&self.uid));
        self.rt
            .ctd
            .task_create(id, mounts, &stdin, &stdout, &stderr)
            .await?;
        self.rt.ctd.task_start(id).await?;
        Ok(())
    }

    async fn own_data(&self) -> Result<()> {
        // the disk is mounted: the install that ran on it is what is re-owned
        let (dir, range) = self.dir_and_range()?;
        let (uid, gid) = self.host_ids(range);
        chown_off_runtime(dir, uid, gid).await
    }

    async fn release(&self, gone: bool) -> Result<()> {
        let cid = self.cid();
        crate::userns::remove_ns_file(&crate::userns::userns_path(&cid));
        if gone {
            self.rt.image_gc.forget_user(&self.uid);
            if self.rt.held(&self.uid) {
                // moved to another node: the data stays until the move is over
                tracing::info!(uid = self.uid, "the server left; its data is held here");
                return Ok(());
            }
            let rt = self.rt.clone();
            let uid = self.uid.clone();
            tokio::task::spawn_blocking(move || rt.remove_server_data(&uid))
                .await
                .map_err(|e| Error::Config(format!("disk: {e}")))??;
        }
        Ok(())
    }

    async fn disk_usage(&self) -> Result<Option<Usage>> {
        let dir = self.rt.server_dir(&self.uid);
        tokio::task::spawn_blocking(move || disk::own_usage(&dir))
            .await
            .map_err(|e| Error::Config(format!("disk: {e}")))
    }

    fn set_denylist(&self, patterns: &[String]) {
        self.rt.set_denylist(&self.uid, patterns);
    }

    fn set_images(&self, images: BTreeSet<String>) {
        self.rt.image_gc.set_users(&self.uid, images);
    }

    fn gateway(&self) -> String {
        self.rt.net.gateway()
    }

    async fn edit_config_files(
        &self,
        files: Vec<ConfigEdits>,
    ) -> Result<Vec<(String, std::result::Result<bool, String>)>> {
        // the node's own work on the files: no denylist, the server's uid
        let root = crate::file_ops::root_of(&self.rt, &self.uid)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            crate::configfile::apply(&root, &files)
                .into_iter()
                .map(|(path, r)| (path, r.map_err(|e| e.to_string())))
                .collect()
        })
        .await
        .map_err(|e| Error::Config(format!("config files: {e}")))
    }
}

/// Kills a container's task (all its processes), waits for it briefly, and removes the task,
/// the container and its snapshot. Absent pieces are fine.
pub async fn remove_container(ctd: &crate::ctd::Containerd, id: &str) -> Result<()> {
    if let Some((state, _)) = ctd.task_state(id).await? {
        if !matches!(state, crate::ctd::TaskState::Stopped(_)) {
            ctd.task_kill(id, 9, true).await?;
            let wait = ctd.task_wait(id);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), wait).await;
        }
        ctd.task_delete(id).await?;
    }
    ctd.container_delete(id).await?;
    ctd.snapshot_remove(id).await?;
    Ok(())
}
