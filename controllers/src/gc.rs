//! Garbage collection of dependents: an index of ownerReferences (owner uid → the objects that
//! name it), kept by one list-then-watch loop per kind over the API server's watch caches. When
//! an object leaves the store (deleted at once, or finalized by its controller), the leader
//! deletes the objects that named it as owner; their own DELETED events take it further down.
//! A deletion looks up the index: no scan of every object of every kind.
//!
//! An owner that went while no server collected (its leader killed before it got to the
//! dependents, or a standby that ignores deletions) leaves orphans: each new leader sweeps them
//! once every kind is indexed. The loops also keep the uids of every object; an owner uid the
//! index names that no kind holds is checked against the store (the owner read by the kind and
//! name its dependent's ownerReference gives, its uid compared) before its dependents go.

use std::collections::{BTreeSet, HashMap, HashSet};
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

/// Owner uid → dependents, and each dependent's owner uids (to update it when it changes); the
/// uids of every object of every kind, and which kinds were listed.
#[derive(Debug, Default)]
pub struct OwnerIndex {
    by_owner: HashMap<String, BTreeSet<Dependent>>,
    owners_of: HashMap<Dependent, Vec<String>>,
    live: HashMap<&'static str, HashSet<String>>,
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

    /// Kind `plural` was listed: these are the uids of its objects.
    pub fn listed(&mut self, plural: &'static str, uids: HashSet<String>) {
        self.live.insert(plural, uids);
    }

    /// An object of kind `plural` is there (`true`) or gone.
    pub fn seen(&mut self, plural: &'static str, uid: &str, there: bool) {
        let uids = self.live.entry(plural).or_default();
        if there {
            uids.insert(uid.to_owned());
        } else {
            uids.remove(uid);
        }
    }

    /// How many kinds were listed at least once.
    pub fn kinds_listed(&self) -> usize {
        self.live.len()
    }

    /// Owner uids some object names that no object of any kind has: owners that may be gone.
    pub fn missing_owners(&self) -> Vec<String> {
        self.by_owner
            .keys()
            .filter(|uid| !self.live.values().any(|uids| uids.contains(*uid)))
            .cloned()
            .collect()
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
    let kinds = tasks.len();
    tasks.push(tokio::spawn(collect(
        registry,
        index.clone(),
        gone_rx,
        leading,
        kinds,
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
            let uids = items.iter().filter_map(uid_of).map(str::to_owned).collect();
            index.listed(kind.plural, uids);
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
            if let Some(uid) = uid_of(obj) {
                index
                    .lock()
                    .expect("owner index lock")
                    .seen(kind.plural, uid, !deleted);
            }
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

fn uid_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

/// Deletes the dependents of every object that left the store, while leading; sweeps the
/// orphans each time it starts leading.
async fn collect(
    registry: Registry,
    index: Arc<Mutex<OwnerIndex>>,
    mut gone: mpsc::UnboundedReceiver<String>,
    mut leading: Leading,
    kinds: usize,
) {
    let mut swept = false;
    loop {
        let leads = is_leading(&leading);
        if !leads {
            swept = false;
        } else if !swept {
            // once every kind is indexed (its first list done)
            let listed = index.lock().expect("owner index lock").kinds_listed();
            if listed >= kinds {
                tokio::time::sleep(SETTLE).await;
                sweep(&registry, &index).await;
                swept = true;
                continue;
            }
        }
        let uid = tokio::select! {
            uid = gone.recv() => match uid {
                Some(uid) => uid,
                None => return,
            },
            changed = leading.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            // the indexing is not done yet: look again soon
            () = tokio::time::sleep(SETTLE), if leads && !swept => continue,
        };
        if !is_leading(&leading) {
            continue;
        }
        if index
            .lock()
            .expect("owner index lock")
            .dependents(&uid)
            .is_empty()
        {
            continue;
        }
        // an object created just before its owner went may not be indexed yet
        tokio::time::sleep(SETTLE).await;
        delete_dependents(&registry, &index, &uid).await;
    }
}

/// Deletes the dependents of the owners the index names that are not in the store.
async fn sweep(registry: &Registry, index: &Mutex<OwnerIndex>) {
    let missing = index.lock().expect("owner index lock").missing_owners();
    let mut orphans = 0;
    for uid in missing {
        let dependents = index.lock().expect("owner index lock").dependents(&uid);
        let Some(first) = dependents.first() else {
            continue;
        };
        if owner_exists(registry, first, &uid).await {
            continue;
        }
        orphans += dependents.len();
        delete_dependents(registry, index, &uid).await;
    }
    tracing::info!(orphans, "garbage collector swept for orphans");
}

/// Whether the owner of uid `owner` that `dependent` names is in the store (a failed read
/// counts as there: nothing is deleted on a doubt).
async fn owner_exists(registry: &Registry, dependent: &Dependent, owner: &str) -> bool {
    let Some(kind) = catalyst_schemas::lookup_kind(dependent.plural) else {
        return true;
    };
    let scope = Scope {
        kind,
        namespace: dependent.namespace.as_deref(),
    };
    let obj = match registry.get(scope, &dependent.name).await {
        Ok(obj) => obj,
        // the dependent itself is gone (nothing to collect), or a doubt
        Err(_) => return true,
    };
    let refs = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(r) = refs.iter().find(|r| r["uid"].as_str() == Some(owner)) else {
        return true;
    };
    let (Some(owner_kind), Some(name)) = (r["kind"].as_str(), r["name"].as_str()) else {
        return false;
    };
    let Some(owner_kind) = KINDS.iter().find(|k| k.kind == owner_kind) else {
        // a kind this server does not serve cannot hold the owner
        return false;
    };
    let scope = Scope {
        kind: owner_kind,
        namespace: if owner_kind.namespaced {
            dependent.namespace.as_deref()
        } else {
            None
        },
    };
    match registry.get(scope, name).await {
        Ok(found) => uid_of(&found) == Some(owner),
        Err(ApiError::NotFound { .. }) => false,
        Err(_) => true,
    }
}

/// Deletes what names `uid` as an owner (the sweep waited for the index already; a deletion
/// waits [`SETTLE`] before).
async fn delete_dependents(registry: &Registry, index: &Mutex<OwnerIndex>, uid: &str) {
    let dependents = index.lock().expect("owner index lock").dependents(uid);
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
