//! The GameServers bound to this node, by name (kept by `servers`, shared through the
//! `Runtime`): how an SFTP user name finds its server, and how SFTP sessions learn that their
//! server left the node.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// One GameServer bound to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundServer {
    /// Its uid (the data directory's name).
    pub uid: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// The servers bound to this node, kept by the nodelet's server bookkeeping
/// (`crate::servers`): [`BoundServers::bind`] when the informer sees a server bound here,
/// [`BoundServers::unbind`] when it is deleted or moves away. Every unbind is announced to
/// the SFTP server, which closes that server's sessions at once.
#[derive(Debug)]
pub struct BoundServers {
    by_uid: Mutex<HashMap<String, BoundServer>>,
    gone: broadcast::Sender<String>,
}

impl Default for BoundServers {
    fn default() -> Self {
        Self::new()
    }
}

impl BoundServers {
    /// None bound yet.
    pub fn new() -> Self {
        BoundServers {
            by_uid: Mutex::new(HashMap::new()),
            gone: broadcast::channel(256).0,
        }
    }

    /// Server `uid` (`namespace/name`) is bound here.
    pub fn bind(&self, uid: &str, namespace: &str, name: &str) {
        let server = BoundServer {
            uid: uid.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.by_uid
            .lock()
            .expect("bound servers")
            .insert(uid.to_owned(), server);
    }

    /// Server `uid` is no longer bound here (deleted, or moved): its sessions close.
    pub fn unbind(&self, uid: &str) {
        let was = self.by_uid.lock().expect("bound servers").remove(uid);
        if was.is_some() {
            let _ = self.gone.send(uid.to_owned());
        }
    }

    /// The uids of every bound server.
    pub fn uids(&self) -> Vec<String> {
        self.by_uid
            .lock()
            .expect("bound servers")
            .keys()
            .cloned()
            .collect()
    }

    /// The bound servers with this name (in any namespace).
    pub fn named(&self, name: &str) -> Vec<BoundServer> {
        let mut found: Vec<BoundServer> = self
            .by_uid
            .lock()
            .expect("bound servers")
            .values()
            .filter(|s| s.name == name)
            .cloned()
            .collect();
        found.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        found
    }

    /// Whether server `uid` is bound here.
    pub fn contains(&self, uid: &str) -> bool {
        self.by_uid.lock().expect("bound servers").contains_key(uid)
    }

    /// The uids of servers unbound from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.gone.subscribe()
    }
}
