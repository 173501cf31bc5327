//! An informer: a local cache of every object of a kind, kept current by list + watch, that
//! tells the controller which keys changed. The watch/relist logic is an explicit state machine:
//! a lost or too-old watch goes back to a fresh list.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use catalyst_apiserver::registry::{ListRequest, Registry, Scope};
use catalyst_apiserver::watch::{Subscription, WatchCache};
use catalyst_schemas::KindInfo;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

pub use catalyst_schemas::object::{key_of, split_key, Key};

/// Drops what no controller decides on (field ownership), to keep the cache small.
fn slim(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

/// The cached objects of one kind.
#[derive(Debug, Default)]
pub struct Cache {
    objects: RwLock<BTreeMap<Key, Value>>,
}

impl Cache {
    /// One object.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.objects.read().expect("cache lock").get(key).cloned()
    }

    /// The keys of the objects `pred` accepts (without copying the objects).
    pub fn keys_where(&self, pred: impl Fn(&Value) -> bool) -> Vec<Key> {
        let objects = self.objects.read().expect("cache lock");
        objects
            .iter()
            .filter(|(_, v)| pred(v))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every object.
    pub fn all(&self) -> Vec<Value> {
        self.objects
            .read()
            .expect("cache lock")
            .values()
            .cloned()
            .collect()
    }

    /// Records an object the controller itself just wrote, so its next decision sees it even
    /// before the watch delivers it. A newer revision from the watch wins.
    pub fn write_through(&self, obj: &Value) {
        let mut objects = self.objects.write().expect("cache lock");
        let key = key_of(obj);
        let rv = |v: &Value| {
            v.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(0)
        };
        if objects.get(&key).is_none_or(|old| rv(old) <= rv(obj)) {
            objects.insert(key, slim(obj.clone()));
        }
    }

    fn replace(&self, items: Vec<Value>) -> Vec<Key> {
        let mut objects = self.objects.write().expect("cache lock");
        let mut changed: Vec<Key> = objects.keys().cloned().collect();
        objects.clear();
        for obj in items {
            let k = key_of(&obj);
            changed.push(k.clone());
            objects.insert(k, slim(obj));
        }
        changed.sort();
        changed.dedup();
        changed
    }

    fn apply(&self, type_: &str, obj: &Value) -> Key {
        let key = key_of(obj);
        let mut objects = self.objects.write().expect("cache lock");
        if type_ == "DELETED" {
            objects.remove(&key);
        } else {
            objects.insert(key.clone(), slim(obj.clone()));
        }
        key
    }
}

/// Where the informer is.
enum State {
    /// Needs a full list.
    Relist,
    /// Listed at a revision; watch from there.
    Watch(i64),
}

/// Keeps `cache` equal to the objects of `kind` and calls `changed` with each key that changed.
pub async fn run(
    registry: Registry,
    watch: Arc<WatchCache>,
    kind: &'static KindInfo,
    cache: Arc<Cache>,
    changed: impl Fn(Key) + Send + Sync,
) {
    let mut state = State::Relist;
    loop {
        state = match state {
            State::Relist => match list_all(&registry, kind).await {
                Ok((items, rev)) => {
                    for key in cache.replace(items) {
                        changed(key);
                    }
                    State::Watch(rev)
                }
                Err(e) => {
                    tracing::warn!(kind = kind.kind, error = %e, "informer cannot list; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    State::Relist
                }
            },
            State::Watch(rev) => match watch.subscribe(rev) {
                Subscription::TooOld => State::Relist,
                Subscription::Cached { backlog, mut live } => {
                    let mut last = rev;
                    for ev in backlog {
                        last = ev.revision;
                        changed(cache.apply(ev.type_, &ev.object));
                    }
                    loop {
                        match live.recv().await {
                            Ok(ev) if ev.type_ == "RESET" => break State::Relist,
                            Ok(ev) if ev.revision <= last => {}
                            Ok(ev) => {
                                last = ev.revision;
                                changed(cache.apply(ev.type_, &ev.object));
                            }
                            Err(RecvError::Lagged(_)) => break State::Relist,
                            Err(RecvError::Closed) => return,
                        }
                    }
                }
            },
        };
    }
}

async fn list_all(
    registry: &Registry,
    kind: &'static KindInfo,
) -> catalyst_apiserver::error::ApiResult<(Vec<Value>, i64)> {
    let scope = Scope {
        kind,
        namespace: None,
    };
    let mut req = ListRequest::default();
    let mut items = Vec::new();
    loop {
        let page = registry.list(scope, &req).await?;
        items.extend(page.items);
        match page.continue_token {
            Some(c) => req.continue_token = Some(c),
            None => return Ok((items, page.revision)),
        }
    }
}
