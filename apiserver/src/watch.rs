//! The watch cache: one backend watch per kind, a bounded window of recent events, and a
//! broadcast to every watcher of the kind. A watcher that falls behind the window is cut off
//! (it re-lists), so a slow client can neither block others nor grow memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use catalyst_schemas::watch::WatchEvent;
use catalyst_schemas::KindInfo;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::registry::from_kv;
use crate::store::{EventKind, Revision, Store, StoreError};

/// Events kept per kind for watchers that resume from a recent resourceVersion; also how far a
/// watcher may fall behind before it is cut off.
pub const WINDOW: usize = 4096;

/// One change, ready to send.
#[derive(Debug, Clone)]
pub struct CachedEvent {
    /// The revision of the change.
    pub revision: Revision,
    /// For a `MODIFIED` event from the cache: what selectors saw of the object before it
    /// ([`selectable_view`]), so a watcher whose selector the change moves the object out of
    /// gets a `DELETED` (and one it moves in, an `ADDED`), as Kubernetes watches do.
    pub previous: Option<Arc<Value>>,
    /// `ADDED`, `MODIFIED` or `DELETED` with the object (for DELETED: as last stored, with the
    /// deletion's resourceVersion).
    pub event: WatchEvent<Value>,
    /// The event as one NDJSON line, serialised once for every watcher.
    pub line: Bytes,
}

impl CachedEvent {
    /// An event with its line.
    pub fn new(event: WatchEvent<Value>, revision: Revision) -> Self {
        let line = event_line(&event);
        Self {
            revision,
            previous: None,
            event,
            line,
        }
    }

    /// The event of a store change.
    pub fn from_store(kind: EventKind, revision: Revision, object: Value) -> Self {
        Self::new(watch_event(kind, object), revision)
    }

    /// The changed object (`null` for an event without one).
    pub fn object(&self) -> &Value {
        static NONE: Value = Value::Null;
        self.event.object().unwrap_or(&NONE)
    }
}

/// The paths a selector can see: name, namespace and labels, and every selectable field
/// ([`crate::selector::SELECTABLE_FIELDS`]).
const SELECTABLE_PATHS: [(&str, &str); 7] = [
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "labels"),
    ("status", "phase"),
    ("spec", "nodeName"),
    ("status", "nodeName"),
    ("spec", "owner"),
];

/// What label and field selectors see of an object, as an object of the same shape.
pub fn selectable_view(obj: &Value) -> Value {
    let mut view = serde_json::Map::new();
    for (part, field) in SELECTABLE_PATHS {
        if let Some(v) = obj.get(part).and_then(|p| p.get(field)) {
            let entry = view
                .entry(part)
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(o) = entry.as_object_mut() {
                o.insert(field.to_owned(), v.clone());
            }
        }
    }
    Value::Object(view)
}

/// What the cache broadcasts to its watchers.
#[derive(Debug, Clone)]
pub enum CacheMessage {
    /// One change.
    Event(Arc<CachedEvent>),
    /// The cache lost history (its backend watch was compacted): every watcher's view has a
    /// gap and must re-list.
    Reset,
}

/// The event as one NDJSON line: `{"object":…,"type":…}` and a newline (keys sorted, as a
/// `serde_json::Value` writes them).
pub fn event_line<K: Serialize>(event: &WatchEvent<K>) -> Bytes {
    let value = serde_json::to_value(event).expect("JSON encodes");
    let mut line = serde_json::to_vec(&value).expect("JSON encodes");
    line.push(b'\n');
    Bytes::from(line)
}

#[derive(Debug)]
struct Window {
    events: VecDeque<Arc<CachedEvent>>,
    /// Every event after this revision is in `events` (or was, and was evicted past `oldest`).
    complete_after: Revision,
    /// The newest revision seen.
    newest: Revision,
}

/// What a watcher gets when it subscribes.
#[derive(Debug)]
pub enum Subscription {
    /// Events after the asked revision from the window, then the live feed.
    Cached {
        /// Buffered events after the asked revision.
        backlog: Vec<Arc<CachedEvent>>,
        /// Live events; `Lagged` means the watcher was too slow.
        live: broadcast::Receiver<CacheMessage>,
    },
    /// The asked revision is older than the window: watch the store directly.
    TooOld,
}

/// The watch event of a store event.
pub fn watch_event(kind: EventKind, object: Value) -> WatchEvent<Value> {
    match kind {
        EventKind::Created => WatchEvent::Added(object),
        EventKind::Updated => WatchEvent::Modified(object),
        EventKind::Deleted => WatchEvent::Deleted(object),
    }
}

/// The cache of one kind.
#[derive(Debug)]
pub struct WatchCache {
    kind: &'static KindInfo,
    capacity: usize,
    window: Mutex<Window>,
    feed: broadcast::Sender<CacheMessage>,
    /// The [`selectable_view`] of every object of the kind, by key, as of the newest event.
    views: Mutex<HashMap<String, Arc<Value>>>,
}

impl WatchCache {
    /// Starts the cache of `kind`, watching the store from its current revision and keeping
    /// the last `window` events.
    pub async fn start(
        store: Arc<dyn Store>,
        kind: &'static KindInfo,
        window: usize,
    ) -> Result<Arc<Self>, StoreError> {
        let start = store.current_revision().await?;
        let views = Mutex::new(views_at(&store, kind, start).await?);
        let (feed, _) = broadcast::channel(window);
        let cache = Arc::new(Self {
            kind,
            capacity: window,
            window: Mutex::new(Window {
                events: VecDeque::with_capacity(window),
                complete_after: start,
                newest: start,
            }),
            feed,
            views,
        });
        tokio::spawn(cache.clone().run(store, start));
        Ok(cache)
    }

    /// The newest revision the cache has seen.
    pub fn newest(&self) -> Revision {
        self.window.lock().expect("window lock").newest
    }

    /// Watchers connected right now.
    pub fn watchers(&self) -> usize {
        self.feed.receiver_count()
    }

    /// Subscribes to events after `after`.
    pub fn subscribe(&self, after: Revision) -> Subscription {
        let window = self.window.lock().expect("window lock");
        if after < window.complete_after {
            return Subscription::TooOld;
        }
        // subscribing under the lock: no event falls between backlog and live feed
        let live = self.feed.subscribe();
        let backlog = window
            .events
            .iter()
            .filter(|e| e.revision > after)
            .cloned()
            .collect();
        Subscription::Cached { backlog, live }
    }

    fn push(&self, event: CachedEvent) {
        let event = Arc::new(event);
        let mut window = self.window.lock().expect("window lock");
        window.newest = window.newest.max(event.revision);
        if window.events.len() == self.capacity {
            if let Some(old) = window.events.pop_front() {
                window.complete_after = old.revision;
            }
        }
        window.events.push_back(event.clone());
        let _ = self.feed.send(CacheMessage::Event(event));
    }

    async fn run(self: Arc<Self>, store: Arc<dyn Store>, mut from: Revision) {
        let prefix = format!("/{}/", self.kind.plural);
        loop {
            let mut stream = match store.watch(&prefix, from).await {
                Ok(s) => s,
                Err(e) => {
                    self.recover(&store, &mut from, e).await;
                    continue;
                }
            };
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ev) => {
                        from = ev.kv.mod_revision;
                        match from_kv(&ev.kv) {
                            Ok(object) => {
                                let previous = self.remember(&ev.kv.key, ev.kind, &object);
                                let mut cached = CachedEvent::from_store(ev.kind, from, object);
                                if ev.kind == EventKind::Updated {
                                    cached.previous = previous;
                                }
                                self.push(cached)
                            }
                            Err(e) => {
                                tracing::error!(key = ev.kv.key, error = %e, "unreadable object in the store")
                            }
                        }
                    }
                    Err(e) => {
                        self.recover(&store, &mut from, e).await;
                        break;
                    }
                }
            }
        }
    }

    /// Keeps what selectors see of the object at `key` after this change; what they saw before.
    fn remember(&self, key: &str, kind: EventKind, object: &Value) -> Option<Arc<Value>> {
        let mut views = self.views.lock().expect("views lock");
        match kind {
            EventKind::Deleted => views.remove(key),
            _ => views.insert(key.to_owned(), Arc::new(selectable_view(object))),
        }
    }

    /// After a failed backend watch: wait and resume; if the history we needed is gone, restart
    /// from now and cut every watcher off (their view has a gap; they must re-list).
    async fn recover(&self, store: &Arc<dyn Store>, from: &mut Revision, error: StoreError) {
        tracing::warn!(kind = self.kind.kind, error = %error, "watch cache lost its backend watch");
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let StoreError::Compacted { .. } = error {
            if let Ok(now) = store.current_revision().await {
                match views_at(store, self.kind, now).await {
                    Ok(views) => *self.views.lock().expect("views lock") = views,
                    Err(e) => {
                        tracing::warn!(kind = self.kind.kind, error = %e, "watch cache: objects not re-read")
                    }
                }
                let mut window = self.window.lock().expect("window lock");
                window.events.clear();
                window.complete_after = now;
                window.newest = now;
                *from = now;
                drop(window);
                // existing watchers' views have a gap: they end with 410 and re-list
                let _ = self.feed.send(CacheMessage::Reset);
            }
        }
    }
}

/// The [`selectable_view`] of every object of `kind` at revision `at`.
async fn views_at(
    store: &Arc<dyn Store>,
    kind: &KindInfo,
    at: Revision,
) -> Result<HashMap<String, Arc<Value>>, StoreError> {
    let prefix = format!("/{}/", kind.plural);
    let mut views = HashMap::new();
    let mut options = crate::store::ListOptions {
        revision: Some(at),
        limit: Some(1000),
        start_after: None,
    };
    loop {
        let page = store.list(&prefix, &options).await?;
        for kv in &page.items {
            if let Ok(obj) = from_kv(kv) {
                views.insert(kv.key.clone(), Arc::new(selectable_view(&obj)));
            }
        }
        match (page.more, page.items.last()) {
            (true, Some(last)) => options.start_after = Some(last.key.clone()),
            _ => return Ok(views),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalyst_schemas::watch::{Bookmark, Status};
    use serde_json::json;

    /// The line as the API server wrote it before events were typed.
    fn untyped_line(type_: &str, object: &Value) -> Bytes {
        let mut line = serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap();
        line.push(b'\n');
        Bytes::from(line)
    }

    #[test]
    fn typed_event_lines_are_byte_for_byte_the_untyped_ones() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "5"}, "spec": {"x": [1, 2]}});
        let ev = CachedEvent::from_store(EventKind::Updated, 5, obj.clone());
        assert_eq!(ev.line, untyped_line("MODIFIED", &obj));
        assert_eq!(ev.object(), &obj);
        assert_eq!(
            event_line(&WatchEvent::Deleted(&obj)),
            untyped_line("DELETED", &obj)
        );
        let mark = json!({"apiVersion": catalyst_schemas::API_VERSION, "metadata": {"resourceVersion": "9"}});
        assert_eq!(
            event_line(&WatchEvent::<Value>::Bookmark(Bookmark::at(9))),
            untyped_line("BOOKMARK", &mark)
        );
        let gone = crate::error::ApiError::Gone("too old".into());
        assert_eq!(
            event_line(&WatchEvent::<Value>::Error(gone.status_object())),
            untyped_line("ERROR", &gone.status())
        );
        let status: Status = serde_json::from_value(gone.status()).unwrap();
        assert_eq!(status, gone.status_object());
    }
}
