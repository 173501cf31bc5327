//! Garbage collection of dependents: an index of ownerReferences (owner uid → the objects that
//! name it), kept by one list-then-watch loop per kind over the API server's watch caches. When
//! an object leaves the store (deleted at once, or finalized by its controller), the leader
//! deletes the objects that named it as owner; their own DELETED events take it further down.
//! A deletion looks up the index: no scan of every object of every kind.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{Registry, Scope};
use catalyst_apiserver::watch::WatchCache;
use catalyst_client::informer::ListWatch;
use catalyst_client::{WatchEvent, Watched};
use catalyst_schemas::object::resource_version;
use catalyst_schemas::{KindInfo, KINDS};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::informer::RegistrySource;
use crate::leader::{is_leading, Leading};

/// An object that names an owner: its kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dependent {
    /// The kind's plural name.
    pub plural: &'static str,
    /// Its namespace (none for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// Owner uid → dependents, and each dependent's owner uids (to update it when it changes).
#[derive(Debug, Default)]
pub struct OwnerIndex {
    by_owner: HashMap<String, BTreeSet<Dependent>>,
    owners_of: HashMap<Dependent, Vec<String>>,
}

impl OwnerIndex {
    /// Records `object` of kind `plural` as it is now (`None`: gone).
    pub fn set(&mut self, dependent: Dependent, owners: Vec<String>) {
        if let Some(old) = self.owners_of.remove(&dependent) {
            for uid in old {
                if let Some(set) = self.by_owner.get_mut(&uid) {
                    set.remove(&dependent);
                    if set.is_empty() {
                        self.by_owner.remove(&uid);
                    }
                }
            }
        }
        if owners.is_empty() {
            return;
        }
        for uid in &owners {
            self.by_owner
                .entry(uid.clone())
                .or_default()
                .insert(dependent.clone());
        }
        self.owners_of.insert(dependent, owners);
    }

    /// Forgets every dependent of kind `plural` (before that kind is listed again).
    pub fn clear_kind(&mut self, plural: &str) {
        let of_kind: Vec<Dependent> = self
            .owners_of
            .keys()
            .filter(|d| d.plural == plural)
            .cloned()
            .collect();
        for d in of_kind {
            self.set(d, Vec::new());
        }
    }

    /// The objects that name `owner_uid` as an owner.
    pub fn dependents(&self, owner_uid: &str) -> Vec<Dependent> {
        self.by_owner
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many objects name an owner.
    pub fn len(&self) -> usize {
        self.owners_of.len()
    }

    /// True when no object names an owner.
    pub fn is_empty(&self) -> bool {
        self.owners_of.is_empty()
    }
}

/// The owner uids an object names in `metadata.ownerReferences`.
fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn dependent_of(kind: &'static KindInfo, obj: &Value) -> Option<Dependent> {
    let meta = obj.get("metadata")?;
    Some(Dependent {
        plural: kind.plural,
        namespace: meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
        name: meta.get("name")?.as_str()?.to_owned(),
    })
}

/// How long a deletion waits before its dependents are looked up, so that the loops of other
/// kinds have indexed an object created just before its owner went.
const SETTLE: Duration = Duration::from_millis(500);
/// How long to wait after a failed list.
const RETRY: Duration = Duration::from_secs(1);

/// Starts the index loops (one per kind) and the collector, which deletes dependents while
/// `leading`. Returns the tasks and the shared index.
pub fn start(
    registry: Registry,
    caches: &HashMap<&'static str, Arc<WatchCache>>,
    leading: Leading,
) -> (Vec<tokio::task::JoinHandle<()>>, Arc<Mutex<OwnerIndex>>) {
    let index: Arc<Mutex<OwnerIndex>> = Arc::default();
    let (gone_tx, gone_rx) = mpsc::unbounded_channel();
    let mut tasks: Vec<_> = KINDS
        .iter()
        .filter_map(|kind| {
            let cache = caches.get(kind.plural)?.clone();
            Some(tokio::spawn(index_kind(
                RegistrySource::new(registry.clone(), cache, kind),
                kind,
                index.clone(),
                gone_tx.clone(),
            )))
        })
        .collect();
    tasks.push(tokio::spawn(collect(
        registry,
        index.clone(),
        gone_rx,
        leading,
    )));
    (tasks, index)
}

/// Keeps the index of one kind: list, then follow the watch; a gap lists again. Sends the uid
/// of every object that leaves the store to the collector.
async fn index_kind(
    source: RegistrySource,
    kind: &'static KindInfo,
    index: Arc<Mutex<OwnerIndex>>,
    gone: mpsc::UnboundedSender<String>,
) {
    loop {
        let (items, revision) = match source.list().await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(kind = kind.plural, error = %e, "garbage collector cannot list");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        {
            let mut index = index.lock().expect("owner index lock");
            index.clear_kind(kind.plural);
            for obj in &items {
                if let Some(d) = dependent_of(kind, obj) {
                    index.set(d, owner_uids(obj));
                }
            }
        }
        drop(items);
        let mut from = revision;
        let Ok(mut stream) = source.watch(from).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(Watched::Event(e)) => e,
                Ok(Watched::Gone(_)) | Err(_) => break,
            };
            let (obj, deleted) = match &event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
                WatchEvent::Deleted(o) => (o, true),
                _ => continue,
            };
            from = resource_version(obj).unwrap_or(from).max(from);
            let Some(d) = dependent_of(kind, obj) else {
                continue;
            };
            let owners = if deleted { Vec::new() } else { owner_uids(obj) };
            index.lock().expect("owner index lock").set(d, owners);
            if deleted {
                if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
                    let _ = gone.send(uid.to_owned());
                }
            }
        }
        tracing::debug!(kind = kind.plural, from, "garbage collector lists again");
    }
}

/// Deletes the dependents of every object that left the store, while leading.
async fn collect(
    registry: Registry,
    index: Arc<Mutex<OwnerIndex>>,
    mut gone: mpsc::UnboundedReceiver<String>,
    leading: Leading,
) {
    while let Some(uid) = gone.recv().await {
        if !is_leading(&leading) {
            continue;
        }
        let dependents = index.lock().expect("owner index lock").dependents(&uid);
        if dependents.is_empty() {
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        let dependents = index.lock().expect("owner index lock").dependents(&uid);
        for d in dependents {
            let Some(kind) = catalyst_schemas::lookup_kind(d.plural) else {
                continue;
            };
            let scope = Scope {
                kind,
                namespace: d.namespace.as_deref(),
            };
            match registry.delete(scope, &d.name, None, false).await {
                Ok(_) => tracing::info!(
                    kind = kind.kind,
                    name = d.name,
                    owner = uid,
                    "deleted dependent of a deleted owner"
                ),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(kind = kind.kind, name = d.name, error = %e, "cannot delete dependent")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str) -> Dependent {
        Dependent {
            plural: "backups",
            namespace: Some("default".into()),
            name: name.into(),
        }
    }

    #[test]
    fn the_index_follows_owners_as_they_change() {
        let mut index = OwnerIndex::default();
        index.set(dep("a"), vec!["u1".into()]);
        index.set(dep("b"), vec!["u1".into(), "u2".into()]);
        assert_eq!(index.dependents("u1"), vec![dep("a"), dep("b")]);
        index.set(dep("b"), vec!["u2".into()]);
        assert_eq!(index.dependents("u1"), vec![dep("a")]);
        assert_eq!(index.dependents("u2"), vec![dep("b")]);
        index.set(dep("a"), Vec::new());
        assert!(index.dependents("u1").is_empty());
        assert_eq!(index.len(), 1);
        index.clear_kind("backups");
        assert!(index.is_empty() && index.dependents("u2").is_empty());
    }

    #[test]
    fn owners_are_read_from_owner_references() {
        let obj = serde_json::json!({"metadata": {"name": "x", "namespace": "n",
            "ownerReferences": [{"uid": "u1", "kind": "GameServer", "name": "gs"}, {"kind": "bad"}]}});
        assert_eq!(owner_uids(&obj), vec!["u1".to_owned()]);
        let d = dependent_of(catalyst_schemas::lookup_kind("backups").unwrap(), &obj).unwrap();
        assert_eq!((d.namespace.as_deref(), d.name.as_str()), (Some("n"), "x"));
    }
}
