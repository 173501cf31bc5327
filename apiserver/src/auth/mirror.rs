//! An in-memory mirror of one kind, kept current from its watch cache: what authorization
//! reads on every request (users, keys, roles, bindings, node uids) without a store read.
//! Each mirror keeps a projection of the objects (`ns/name` or `name` → `T`) and a change
//! counter that long-lived requests watch to notice revoked credentials at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use catalyst_schemas::object::key_of;
use catalyst_schemas::watch::WatchEvent;
use catalyst_schemas::KindInfo;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::registry::{ListRequest, Registry, Scope};
use crate::watch::{CacheMessage, Subscription, WatchCache};

/// The projection of an object a mirror keeps; `None` leaves the object out.
pub type Project<T> = fn(&Value) -> Option<T>;

/// A mirror of one kind.
#[derive(Debug)]
pub struct Mirror<T> {
    kind: &'static KindInfo,
    project: Project<T>,
    items: RwLock<HashMap<String, Arc<T>>>,
    changed: watch::Sender<u64>,
}

impl<T: Clone + PartialEq + Send + Sync + std::fmt::Debug + 'static> Mirror<T> {
    /// Lists the kind, then follows `cache` in the background. Returns once the first list
    /// is in (a failing store is retried every second, so this waits for it).
    pub async fn start(
        registry: Registry,
        cache: Arc<WatchCache>,
        kind: &'static KindInfo,
        project: Project<T>,
    ) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        let mirror = Arc::new(Self {
            kind,
            project,
            items: RwLock::new(HashMap::new()),
            changed,
        });
        let revision = mirror.relist(&registry, project).await;
        tokio::spawn(mirror.clone().follow(registry, cache, project, revision));
        mirror
    }

    /// The projection of the object at `key` (`ns/name`, or `name` when cluster-scoped),
    /// shared (no copy of it is made).
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.items.read().expect("mirror lock").get(key).cloned()
    }

    /// Every projection, in no order.
    pub fn values(&self) -> Vec<Arc<T>> {
        self.items
            .read()
            .expect("mirror lock")
            .values()
            .cloned()
            .collect()
    }

    /// Reads the object at `key` (`ns/name` or `name`) from the store into the mirror, for a
    /// decision that cannot wait for the watch (a credential used the instant its object was
    /// written). Store errors leave the mirror as it was.
    pub async fn reread(&self, registry: &Registry, key: &str) {
        let project = self.project;
        let (ns, name) = match key.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, key),
        };
        let scope = Scope {
            kind: self.kind,
            namespace: ns,
        };
        let now = match registry.get(scope, name).await {
            Ok(obj) => project(&obj),
            Err(crate::error::ApiError::NotFound { .. }) => None,
            Err(_) => return,
        };
        let mut items = self.items.write().expect("mirror lock");
        let changed = match now {
            Some(t) => {
                let t = Arc::new(t);
                items.insert(key.to_owned(), t.clone()).as_ref() != Some(&t)
            }
            None => items.remove(key).is_some(),
        };
        drop(items);
        if changed {
            self.bump();
        }
    }

    /// How many changes the mirror has seen (only grows).
    pub fn generation(&self) -> u64 {
        *self.changed.borrow()
    }

    /// A receiver that sees every change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    async fn relist(&self, registry: &Registry, project: Project<T>) -> i64 {
        let scope = Scope {
            kind: self.kind,
            namespace: None,
        };
        loop {
            match registry.list_all(scope, &ListRequest::default()).await {
                Ok(list) => {
                    let items = list
                        .items
                        .iter()
                        .filter_map(|o| project(o).map(|t| (key_of(o), Arc::new(t))))
                        .collect();
                    *self.items.write().expect("mirror lock") = items;
                    self.bump();
                    return list.revision;
                }
                Err(e) => {
                    tracing::warn!(kind = self.kind.kind, error = %e, "cannot list for the access mirror");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn apply(&self, event: &WatchEvent<Value>, project: Project<T>) {
        let mut items = self.items.write().expect("mirror lock");
        let changed = match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => match project(o) {
                Some(t) => {
                    let t = Arc::new(t);
                    items.insert(key_of(o), t.clone()).as_ref() != Some(&t)
                }
                None => items.remove(&key_of(o)).is_some(),
            },
            WatchEvent::Deleted(o) => items.remove(&key_of(o)).is_some(),
            _ => false,
        };
        drop(items);
        // a heartbeat rewrites a Node without changing what is kept: no wake-up for that
        if changed {
            self.bump();
        }
    }

    async fn follow(
        self: Arc<Self>,
        registry: Registry,
        cache: Arc<WatchCache>,
        project: Project<T>,
        mut revision: i64,
    ) {
        loop {
            let (backlog, mut live) = match cache.subscribe(revision) {
                Subscription::Cached { backlog, live } => (backlog, live),
                Subscription::TooOld => {
                    revision = self.relist(&registry, project).await;
                    continue;
                }
            };
            for e in backlog {
                revision = e.revision;
                self.apply(&e.event, project);
            }
            loop {
                match live.recv().await {
                    Ok(CacheMessage::Event(e)) if e.revision > revision => {
                        revision = e.revision;
                        self.apply(&e.event, project);
                    }
                    Ok(CacheMessage::Event(_)) => {}
                    Ok(CacheMessage::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        revision = self.relist(&registry, project).await;
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}
