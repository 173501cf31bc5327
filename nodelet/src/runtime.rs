//! What every server worker shares: the node's containerd, API client, network, id ranges and
//! limits, and the per-server consoles and wake-ups. Imports the nodelet's building blocks,
//! never the worker.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::cni::Network;
use crate::console::Console;
use crate::ctd::Containerd;
use crate::spec;
use catalyst_client::Client;

/// Container label: the GameServer's uid.
pub const LABEL_UID: &str = "catalyst.dev/uid";
/// Container label: namespace/name.
pub const LABEL_NAME: &str = "catalyst.dev/gameserver";
/// Container label: the generation the container was made from.
pub const LABEL_GENERATION: &str = "catalyst.dev/generation";

/// What every worker shares.
#[derive(Debug)]
pub struct Runtime {
    /// containerd.
    pub ctd: Containerd,
    /// API client with the node token.
    pub api: Client,
    /// The node's Events, written in the background.
    pub events: crate::events::EventQueue,
    /// CNI networking.
    pub net: Network,
    /// This node's name.
    pub node: String,
    /// The nodelet's data directory.
    pub data_dir: PathBuf,
    /// uid servers run as, inside their user namespace.
    pub uid: u32,
    /// gid, inside the user namespace.
    pub gid: u32,
    /// Limits for servers that set none.
    pub defaults: Mutex<spec::DefaultLimits>,
    /// The Node's spec as last read (host network and port range rules).
    pub node_spec: Mutex<Option<catalyst_schemas::node::NodeSpec>>,
    /// Where images may come from and how large they may be.
    pub images: crate::image::ImagePolicy,
    /// Host uid ranges, one per server.
    pub ids: crate::userns::IdAllocator,
    /// Open consoles by GameServer uid.
    pub consoles: Mutex<HashMap<String, Arc<Console>>>,
    /// Wake-ups by container id.
    pub wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Containers that saw an OOM kill since their task started.
    pub oom: Mutex<HashSet<String>>,
    /// Registry credentials and insecure registries.
    pub registries: crate::registry::Registries,
    /// The last metrics sample of every running server and the node (Prometheus).
    pub samples: Mutex<Vec<crate::metrics::Sample>>,
    /// Image garbage collection, with the per-image locks (one fetch per image at a time:
    /// servers sharing an image wait for the first one's pull; none removed while locked).
    pub image_gc: Arc<crate::imagegc::ImageGc>,
    /// Woken after each image fetch (the image GC checks the thresholds then).
    pub image_fetched: Notify,
    /// Set once the servers bound here were first listed (before, the image GC waits).
    pub servers_listed: std::sync::atomic::AtomicBool,
    /// The GameServers bound to this node, by name (SFTP logins find their server here).
    pub bound: Arc<crate::bound::BoundServers>,
    /// Non-public addresses a backup's S3 endpoint may reach (operator-allowed).
    pub backup_endpoint_allow: Vec<std::net::IpAddr>,
    /// Disks made ahead for new servers.
    pub spares: Arc<crate::disk::spares::Spares>,
    /// Sandboxes (namespaces attached to the bridge) made ahead for new Bridge servers.
    pub pool: Arc<crate::pool::NetnsPool>,
    /// Each server's Template `fileDenylist` as its worker last resolved it, by uid.
    pub denylists: Mutex<HashMap<String, Arc<crate::files::Denylist>>>,
}

impl Runtime {
    /// True when the servers bound here were listed and every one of them has told the image
    /// GC which images it needs.
    pub fn image_users_known(&self) -> bool {
        self.servers_listed
            .load(std::sync::atomic::Ordering::SeqCst)
            && self.image_gc.knows_all(&self.bound.uids())
    }

    /// Keeps server `uid`'s file denylist (none: forgets it).
    pub fn set_denylist(&self, uid: &str, patterns: &[String]) {
        let mut all = self.denylists.lock().expect("denylists");
        match crate::files::Denylist::new(patterns) {
            Some(d) => {
                all.insert(uid.to_owned(), Arc::new(d));
            }
            None => {
                all.remove(uid);
            }
        }
    }

    /// Server `uid`'s file denylist, if its Template has one.
    pub fn denylist(&self, uid: &str) -> Option<Arc<crate::files::Denylist>> {
        self.denylists.lock().expect("denylists").get(uid).cloned()
    }

    /// The container id of a server.
    pub fn container_id(uid: &str) -> String {
        format!("gs-{uid}")
    }

    /// The server's data directory (mounted at /home/container).
    pub fn server_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("servers").join(uid)
    }

    /// The image of the server's disk (mounted on its data directory).
    pub fn disk_image(&self, uid: &str) -> PathBuf {
        self.data_dir.join("disks").join(format!("{uid}.img"))
    }

    /// The server's runtime directory (FIFOs, console log, worker state).
    pub fn run_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("run").join(uid)
    }

    /// The marker that keeps a server's data on this node after it leaves (a transfer).
    fn held_marker(&self, uid: &str) -> PathBuf {
        self.data_dir.join("held").join(uid)
    }

    /// Whether the server's data is held here although the server may have left.
    pub fn held(&self, uid: &str) -> bool {
        self.held_marker(uid).exists()
    }

    /// Holds (`true`) or stops holding the server's data on this node.
    pub fn set_held(&self, uid: &str, held: bool) -> std::io::Result<()> {
        let marker = self.held_marker(uid);
        if held {
            if let Some(dir) = marker.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&marker, b"")?;
            // the marker must survive a crash: a lost one would let the data go
            std::fs::File::open(marker.parent().unwrap_or(&self.data_dir))?.sync_all()
        } else {
            match std::fs::remove_file(&marker) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }

    /// Removes what a gone server had on this node: its disk (unmounted first: removing the
    /// directory must never reach into it while it is mounted, nor happen at all if it cannot
    /// be unmounted), its data directory, id range, console and run directory. Blocking.
    pub fn remove_server_data(&self, uid: &str) -> crate::Result<()> {
        let dir = self.server_dir(uid);
        crate::disk::unmount(&dir)?;
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a data directory");
            }
        }
        crate::disk::remove(&self.disk_image(uid))?;
        self.ids.release(&dir)?;
        self.wakers
            .lock()
            .expect("wakers")
            .remove(&Self::container_id(uid));
        self.consoles.lock().expect("consoles").remove(uid);
        let _ = std::fs::remove_dir_all(self.run_dir(uid));
        Ok(())
    }

    /// The console of a server, opened on first use.
    pub fn console(&self, uid: &str) -> Result<Arc<Console>, crate::console::ConsoleError> {
        let mut consoles = self.consoles.lock().expect("consoles lock");
        if let Some(c) = consoles.get(uid) {
            return Ok(c.clone());
        }
        let c = Arc::new(Console::open(&self.run_dir(uid))?);
        consoles.insert(uid.to_owned(), c.clone());
        Ok(c)
    }

    /// The console of a server if it is open.
    pub fn console_if_open(&self, uid: &str) -> Option<Arc<Console>> {
        self.consoles
            .lock()
            .expect("consoles lock")
            .get(uid)
            .cloned()
    }

    /// The install container of a server's container.
    pub fn install_id(cid: &str) -> String {
        format!("{cid}-install")
    }

    /// The wake-up of a container's worker (made on first use).
    pub fn waker(&self, cid: &str) -> Arc<Notify> {
        self.wakers
            .lock()
            .expect("wakers lock")
            .entry(cid.to_owned())
            .or_default()
            .clone()
    }

    /// Wakes the worker of a container (its install container's wakes the same worker).
    pub fn wake(&self, cid: &str) {
        let cid = cid.strip_suffix("-install").unwrap_or(cid);
        if let Some(n) = self.wakers.lock().expect("wakers lock").get(cid) {
            n.notify_one();
        }
    }

    /// Wakes every worker (after a gap in containerd's event stream).
    pub fn wake_all(&self) {
        for n in self.wakers.lock().expect("wakers lock").values() {
            n.notify_one();
        }
    }
}
