//! The informer: a local cache of every object a source selects, kept current by list + watch,
//! telling its owner what changed. The watch/relist logic is an explicit state machine
//! ([`Informer::next`] is its step function): a lost watch resumes from the last revision seen,
//! a watch that can no longer continue (410 Gone, a lagging watcher, a cache reset) goes back
//! to a fresh list.
//!
//! Sources implement [`ListWatch`]: the HTTP client (`HttpSource` in `source`) and, in
//! the controllers, the API server's registry and watch cache in the same process.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use catalyst_schemas::object::{key_of, resource_version, Key};
use catalyst_schemas::watch::WatchEvent;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;

use crate::watch::Watched;
use crate::Revision;

/// A watch: events after the revision it started from, in order.
pub type WatchStream<E> = BoxStream<'static, Result<Watched, E>>;

/// Where an informer lists and watches.
pub trait ListWatch: Send + Sync {
    /// Why a list or watch failed (logged, then retried after a pause).
    type Error: std::fmt::Display + Send;

    /// Every object, and the revision they were read at.
    fn list(&self) -> impl Future<Output = Result<(Vec<Value>, Revision), Self::Error>> + Send;

    /// The changes after `from`. A revision the source can no longer serve is a stream whose
    /// item is [`Watched::Gone`] (not an error). The stream may end at any time; the informer
    /// then watches again from the last revision it saw.
    fn watch(
        &self,
        from: Revision,
    ) -> impl Future<Output = Result<WatchStream<Self::Error>, Self::Error>> + Send;
}

/// Drops what no controller decides on (field ownership), to keep the cache small.
fn slim(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

/// The cached objects, by key (`namespace/name` or `name`), without `managedFields`.
#[derive(Debug, Default)]
pub struct Cache {
    objects: RwLock<BTreeMap<Key, Arc<Value>>>,
}

impl Cache {
    /// One object (shared: reading it copies nothing).
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
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

    /// Every object (shared, not copied).
    pub fn all(&self) -> Vec<Arc<Value>> {
        self.objects
            .read()
            .expect("cache lock")
            .values()
            .cloned()
            .collect()
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.objects.read().expect("cache lock").len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records an object its owner just wrote, so the next decision sees it even before the
    /// watch delivers it. A newer revision already cached wins.
    pub fn write_through(&self, obj: &Value) {
        self.apply(obj, false);
    }

    /// Replaces every object with `items`; returns every key that was or now is cached,
    /// sorted, once each.
    pub fn replace(&self, items: Vec<Value>) -> Vec<Key> {
        let mut objects = self.objects.write().expect("cache lock");
        let mut changed: Vec<Key> = objects.keys().cloned().collect();
        objects.clear();
        for obj in items {
            let k = key_of(&obj);
            changed.push(k.clone());
            objects.insert(k, Arc::new(slim(obj)));
        }
        changed.sort();
        changed.dedup();
        changed
    }

    /// Calls `f` with every cached object, under the read lock (without copying them).
    pub fn visit(&self, mut f: impl FnMut(&Key, &Value)) {
        let objects = self.objects.read().expect("cache lock");
        objects.iter().for_each(|(k, v)| f(k, v));
    }

    /// Stores (`deleted` false) or removes an object; returns its key. A stored object older
    /// than the cached one (which [`Cache::write_through`] put there before the watch brought
    /// the events in between) is not taken: the cache never goes back in time.
    pub fn apply(&self, obj: &Value, deleted: bool) -> Key {
        let key = key_of(obj);
        let mut objects = self.objects.write().expect("cache lock");
        if deleted {
            objects.remove(&key);
        } else {
            let rv = |v: &Value| resource_version(v).unwrap_or(0);
            if objects.get(&key).is_none_or(|old| rv(old) <= rv(obj)) {
                objects.insert(key.clone(), Arc::new(slim(obj.clone())));
            }
        }
        key
    }
}

/// What changed in the cache, as [`Informer::next`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A (re)list replaced the cache: every key that was or now is in it.
    Listed(Vec<Key>),
    /// An object was added or modified: its key and the object as received.
    Applied(Key, Value),
    /// An object was deleted: its key and its last state.
    Deleted(Key, Value),
}

/// The pauses after failures: doubling from `min` up to `max`, back to `min` once events flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first pause.
    pub min: Duration,
    /// The longest pause.
    pub max: Duration,
    /// Spread each pause over `[pause/2, pause]`, so that many clients do not retry at once.
    pub jitter: bool,
}

impl Default for Backoff {
    /// 200 ms to 10 s, with jitter.
    fn default() -> Self {
        Self {
            min: Duration::from_millis(200),
            max: Duration::from_secs(10),
            jitter: true,
        }
    }
}

impl Backoff {
    /// Always `pause`, without jitter.
    pub fn fixed(pause: Duration) -> Self {
        Self {
            min: pause,
            max: pause,
            jitter: false,
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let d = self
            .min
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        if !self.jitter {
            return d;
        }
        // a random fraction without a random number crate: std's per-process hash keys
        use std::hash::{BuildHasher, RandomState};
        let r = RandomState::new().hash_one(attempt) % 1000;
        d / 2 + d / 2 * (r as u32) / 1000
    }
}

/// Where the informer is.
enum State<E> {
    /// Needs a full list.
    Relist,
    /// Listed (or saw an event) at `from`; watching from there.
    Watch {
        /// The newest revision seen.
        from: Revision,
        /// The open watch, if any.
        stream: Option<WatchStream<E>>,
        /// Nothing arrived since the list: a Gone now means a pause before the next list.
        fresh: bool,
    },
}

/// What one step of the state machine decided.
enum Step {
    /// Report this change.
    Report(Change),
    /// Go on at once.
    Continue,
    /// Pause, then go on.
    Pause,
}

/// Keeps a [`Cache`] equal to what a [`ListWatch`] source selects.
pub struct Informer<S: ListWatch> {
    source: S,
    cache: Arc<Cache>,
    state: State<S::Error>,
    backoff: Backoff,
    attempt: u32,
    name: String,
}

impl<S: ListWatch> std::fmt::Debug for Informer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("name", &self.name)
            .field("revision", &self.revision())
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl<S: ListWatch> Informer<S> {
    /// An informer filling `cache` from `source`; it lists first.
    pub fn new(source: S, cache: Arc<Cache>) -> Self {
        Self {
            source,
            cache,
            state: State::Relist,
            backoff: Backoff::default(),
            attempt: 0,
            name: String::new(),
        }
    }

    /// The same informer with other pauses after failures.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The same informer, naming itself `name` in logs.
    pub fn with_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// The cache it fills.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The newest revision seen, or `None` before the first list (or when a list is due).
    pub fn revision(&self) -> Option<Revision> {
        match &self.state {
            State::Relist => None,
            State::Watch { from, .. } => Some(*from),
        }
    }

    /// Runs the state machine until the cache changed, and says how. Never fails: list and
    /// watch failures are logged and retried after a pause.
    pub async fn next(&mut self) -> Change {
        loop {
            match self.step().await {
                Step::Report(change) => return change,
                Step::Continue => {}
                Step::Pause => {
                    let pause = self.backoff.delay(self.attempt);
                    self.attempt = self.attempt.saturating_add(1);
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Runs forever, calling `changed` with every key that changed (each key of a relist).
    pub async fn run(mut self, changed: impl Fn(Key)) {
        loop {
            match self.next().await {
                Change::Listed(keys) => keys.into_iter().for_each(&changed),
                Change::Applied(key, _) | Change::Deleted(key, _) => changed(key),
            }
        }
    }

    async fn step(&mut self) -> Step {
        let name = self.name.as_str();
        match &mut self.state {
            State::Relist => match self.source.list().await {
                Ok((items, revision)) => {
                    let keys = self.cache.replace(items);
                    self.state = State::Watch {
                        from: revision,
                        stream: None,
                        fresh: true,
                    };
                    Step::Report(Change::Listed(keys))
                }
                Err(e) => {
                    tracing::warn!(informer = name, error = %e, "cannot list; retrying");
                    Step::Pause
                }
            },
            State::Watch {
                from,
                stream: stream @ None,
                ..
            } => match self.source.watch(*from).await {
                Ok(s) => {
                    *stream = Some(s);
                    Step::Continue
                }
                Err(e) => {
                    tracing::warn!(informer = name, error = %e, "cannot watch; retrying");
                    Step::Pause
                }
            },
            State::Watch {
                from,
                stream: stream @ Some(_),
                fresh,
            } => {
                let item = stream.as_mut().expect("an open watch").next().await;
                match item {
                    Some(Ok(Watched::Event(event))) => {
                        *fresh = false;
                        self.attempt = 0;
                        let revision = match &event {
                            WatchEvent::Bookmark(b) => b.metadata.resource_version.parse().ok(),
                            other => other.object().and_then(resource_version),
                        };
                        *from = revision.map_or(*from, |r| r.max(*from));
                        match event {
                            WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                                let key = self.cache.apply(&obj, false);
                                Step::Report(Change::Applied(key, obj))
                            }
                            WatchEvent::Deleted(obj) => {
                                let key = self.cache.apply(&obj, true);
                                Step::Report(Change::Deleted(key, obj))
                            }
                            WatchEvent::Bookmark(_) => Step::Continue,
                            WatchEvent::Error(status) => {
                                tracing::warn!(informer = name, error = %status, "watch failed");
                                *stream = None;
                                Step::Pause
                            }
                        }
                    }
                    Some(Ok(Watched::Gone(why))) => {
                        tracing::info!(
                            informer = name,
                            reason = why,
                            "watch cannot continue; listing again"
                        );
                        let pause = *fresh;
                        self.state = State::Relist;
                        if pause {
                            Step::Pause
                        } else {
                            Step::Continue
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(informer = name, error = %e, "watch broke; resuming");
                        *stream = None;
                        Step::Pause
                    }
                    None => {
                        *stream = None;
                        Step::Pause
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
