//! The GameServers bound to this node: an informer (list by `status.nodeName`, watch from the
//! list's revision, relist on 410 Gone, backoff) feeds one worker per server. After every
//! (re)list, containers, run directories and disks whose server is gone get a cleaning worker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use catalyst_client::informer::{Cache, Change, Informer};
use catalyst_client::source::HttpSource;
use catalyst_client::{ListParams, API};
use catalyst_schemas::object::{name_of, namespace_of, uid_of};
use serde_json::Value;
use tokio::sync::watch;

use crate::runtime::{Runtime, LABEL_UID};
use crate::worker::Worker;

/// One worker per server uid: each gets the newest object, or `None` when its server is gone.
struct Servers {
    rt: Arc<Runtime>,
    workers: HashMap<String, watch::Sender<Option<Value>>>,
}

impl Servers {
    fn upsert(&mut self, obj: Value) {
        let Some(uid) = uid_of(&obj).map(str::to_owned) else {
            return;
        };
        let bound = obj.pointer("/status/nodeName").and_then(Value::as_str) == Some(&self.rt.node);
        if !bound {
            self.remove(&uid);
            return;
        }
        // SFTP logins find the server by name
        let namespace = namespace_of(&obj).unwrap_or_default().to_owned();
        self.rt.bound.bind(&uid, &namespace, name_of(&obj));
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
        // its SFTP sessions close at once
        self.rt.bound.unbind(uid);
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

    /// After a (re)list: workers of servers no longer listed stop, every listed server gets
    /// its newest object, and what remains of servers deleted while the nodelet was away
    /// (containers, run directories with netns and console state, disks) is cleaned up.
    async fn relisted(&mut self, items: Vec<Value>) {
        let seen: HashSet<String> = items
            .iter()
            .filter_map(|o| uid_of(o).map(str::to_owned))
            .collect();
        let stale: Vec<String> = self
            .workers
            .keys()
            .filter(|u| !seen.contains(*u))
            .cloned()
            .collect();
        for u in stale {
            self.remove(&u);
        }
        for obj in items {
            self.upsert(obj);
        }
        let rt = self.rt.clone();
        match rt
            .ctd
            .container_list(&format!("labels.\"{LABEL_UID}\""))
            .await
        {
            Ok(containers) => {
                for c in containers {
                    if let Some(u) = c.labels.get(LABEL_UID) {
                        if !seen.contains(u) {
                            tracing::info!(uid = u, "container without a server; removing");
                            self.orphan(u.clone());
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list containers"),
        }
        if let Ok(dir) = std::fs::read_dir(rt.data_dir.join("run")) {
            for e in dir.flatten() {
                let u = e.file_name().to_string_lossy().into_owned();
                if !seen.contains(&u) {
                    self.orphan(u);
                }
            }
        }
        // a network attachment (address, host ports) whose server is gone
        for id in rt.net.recorded_ids() {
            if let Some(u) = id.strip_prefix("gs-").filter(|u| !seen.contains(*u)) {
                self.orphan(u.to_owned());
            }
        }
        // a disk (image, loop device, mount) whose server is gone
        if let Ok(dir) = std::fs::read_dir(rt.data_dir.join("disks")) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(u) = name.split('.').next().filter(|u| !u.is_empty()) else {
                    continue;
                };
                if !seen.contains(u) {
                    self.orphan(u.to_owned());
                }
            }
        }
    }
}

/// Lists and watches the servers bound here, forever; one worker per server.
pub async fn server_loop(rt: Arc<Runtime>) {
    let source = HttpSource::new(
        rt.api.clone(),
        format!("{API}/gameservers"),
        ListParams::fields(format!("status.nodeName={}", rt.node)),
    );
    let mut informer =
        Informer::new(source, Arc::new(Cache::default())).with_name("nodelet gameservers");
    let mut servers = Servers {
        rt,
        workers: HashMap::new(),
    };
    loop {
        match informer.next().await {
            Change::Listed(_) => {
                let all = informer.cache().all();
                servers
                    .relisted(
                        all.into_iter()
                            .map(std::sync::Arc::unwrap_or_clone)
                            .collect(),
                    )
                    .await;
                servers
                    .rt
                    .servers_listed
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Change::Applied(_, obj) => {
                servers.upsert(obj);
                servers.prune();
            }
            Change::Deleted(_, obj) => {
                if let Some(u) = uid_of(&obj) {
                    servers.remove(u);
                }
                servers.prune();
            }
        }
    }
}
