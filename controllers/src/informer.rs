//! The controllers' informers: the client crate's informer state machine
//! ([`catalyst_client::informer`]) over the API server in the same process — the registry for
//! lists, the kind's watch cache for changes.
//!
//! The read barrier of a takeover ([`Relist`]): a new leader's informers list again, and it
//! acts only once every list was read at or after its fencing token, so its caches hold every
//! write of the terms before (all below the token).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{ListRequest, Registry, Scope};
use catalyst_apiserver::watch::{CacheMessage, Subscription, WatchCache};
use catalyst_client::informer::{Backoff, Change, Informer, ListWatch, WatchStream};
use catalyst_client::{Revision, Watched};
use catalyst_schemas::KindInfo;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

pub use catalyst_client::informer::Cache;
pub use catalyst_schemas::object::{key_of, split_key, Key};

/// How long to wait before listing again after a failed list.
const RETRY: Duration = Duration::from_secs(1);

/// The informers a takeover waits for: each lists again when asked for a revision above its
/// last list, and says at which revision it listed.
#[derive(Debug)]
pub struct Relist {
    want: watch::Sender<Revision>,
    listed: Mutex<Vec<watch::Receiver<Revision>>>,
}

impl Default for Relist {
    fn default() -> Self {
        Self {
            want: watch::channel(0).0,
            listed: Mutex::default(),
        }
    }
}

impl Relist {
    /// Asks every informer for a list at or after `revision`.
    pub fn request(&self, revision: Revision) {
        self.want.send_if_modified(|w| {
            let raise = *w < revision;
            *w = (*w).max(revision);
            raise
        });
    }

    /// Waits until every informer listed at or after `revision`.
    pub async fn wait(&self, revision: Revision) {
        let listed = self.listed.lock().expect("relist lock").clone();
        for mut l in listed {
            // an informer that ended (its task stopped) holds nobody up
            let _ = l.wait_for(|r| *r >= revision).await;
        }
    }

    /// One informer's side: what is asked, and where to say at which revision it listed.
    fn register(&self) -> (watch::Receiver<Revision>, watch::Sender<Revision>) {
        let (tx, rx) = watch::channel(0);
        self.listed.lock().expect("relist lock").push(rx);
        (self.want.subscribe(), tx)
    }
}

/// Every object of one kind, from the registry and the kind's watch cache.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    registry: Registry,
    watch: Arc<WatchCache>,
    kind: &'static KindInfo,
    /// Where each list's revision goes (a [`Relist`] waits on it).
    listed: Option<Arc<watch::Sender<Revision>>>,
}

impl RegistrySource {
    /// The objects of `kind` (every namespace); `watch` must be the cache of `kind`.
    pub fn new(registry: Registry, watch: Arc<WatchCache>, kind: &'static KindInfo) -> Self {
        Self {
            registry,
            watch,
            kind,
            listed: None,
        }
    }
}

impl ListWatch for RegistrySource {
    type Error = ApiError;

    async fn list(&self) -> Result<(Vec<Value>, Revision), ApiError> {
        let scope = Scope {
            kind: self.kind,
            namespace: None,
        };
        let all = self
            .registry
            .list_all(scope, &ListRequest::default())
            .await?;
        if let Some(listed) = &self.listed {
            listed.send_replace(all.revision);
        }
        Ok((all.items, all.revision))
    }

    async fn watch(&self, from: Revision) -> Result<WatchStream<ApiError>, ApiError> {
        let (backlog, live) = match self.watch.subscribe(from) {
            Subscription::TooOld => {
                let gone = Watched::Gone("older than the watch cache".into());
                return Ok(futures::stream::once(async move { Ok(gone) }).boxed());
            }
            Subscription::Cached { backlog, live } => (backlog, live),
        };
        let backlog =
            futures::stream::iter(backlog.into_iter().map(|e| Ok(CacheMessage::Event(e))));
        let live = futures::stream::unfold(live, |mut live| async move {
            let msg = live.recv().await;
            (!matches!(msg, Err(RecvError::Closed))).then_some((msg, live))
        });
        let stream = backlog
            .chain(live)
            .scan((from, false), |(last, ended), msg| {
                let next = if *ended {
                    None
                } else {
                    Some(translate(msg, last, ended))
                };
                async move { next }
            })
            .filter_map(|item| async move { item.map(Ok) });
        Ok(stream.boxed())
    }
}

/// One message of the watch cache as a watch item: events at or before `last` are skipped
/// (the backlog and the live feed overlap); a reset or a lagging receiver is Gone and ends
/// the watch (`ended`).
fn translate(
    msg: Result<CacheMessage, RecvError>,
    last: &mut Revision,
    ended: &mut bool,
) -> Option<Watched> {
    match msg {
        Ok(CacheMessage::Event(ev)) if ev.revision <= *last => None,
        Ok(CacheMessage::Event(ev)) => {
            *last = ev.revision;
            Some(Watched::Event(ev.event.clone()))
        }
        Ok(CacheMessage::Reset) => {
            *ended = true;
            Some(Watched::Gone("the watch cache lost history".into()))
        }
        Err(RecvError::Lagged(n)) => {
            *ended = true;
            Some(Watched::Gone(format!("{n} events behind")))
        }
        Err(RecvError::Closed) => None,
    }
}

/// Keeps `cache` equal to the objects of `kind` and calls `changed` with each key that changed;
/// lists again whenever `relist` asks for a revision above its last list.
pub async fn run(
    registry: Registry,
    watch: Arc<WatchCache>,
    kind: &'static KindInfo,
    cache: Arc<Cache>,
    changed: impl Fn(Key) + Send + Sync,
    relist: Arc<Relist>,
) {
    let (mut want, listed) = relist.register();
    let listed = Arc::new(listed);
    loop {
        let source = RegistrySource {
            listed: Some(listed.clone()),
            ..RegistrySource::new(registry.clone(), watch.clone(), kind)
        };
        // a new informer lists first, at once
        let mut informer = Informer::new(source, cache.clone())
            .with_backoff(Backoff::fixed(RETRY))
            .with_name(kind.plural);
        // its first change is its list: a request is looked at only after it
        let mut listed_once = false;
        loop {
            let last = *listed.borrow();
            tokio::select! {
                change = informer.next() => {
                    listed_once = true;
                    match change {
                        Change::Listed(keys) => keys.into_iter().for_each(&changed),
                        Change::Applied(key, _) | Change::Deleted(key, _) => changed(key),
                    }
                }
                // `relist` (held here) keeps the sender: this never fails
                _ = want.wait_for(|w| *w > last), if listed_once => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalyst_apiserver::store::EventKind;
    use catalyst_apiserver::watch::CachedEvent;
    use catalyst_client::WatchEvent;
    use serde_json::json;

    fn event(revision: Revision) -> Result<CacheMessage, RecvError> {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": revision.to_string()}});
        Ok(CacheMessage::Event(Arc::new(CachedEvent::from_store(
            EventKind::Updated,
            revision,
            obj,
        ))))
    }

    #[test]
    fn cache_events_pass_once_in_order() {
        let (mut last, mut ended) = (5, false);
        assert_eq!(translate(event(5), &mut last, &mut ended), None);
        let Some(Watched::Event(WatchEvent::Modified(obj))) =
            translate(event(6), &mut last, &mut ended)
        else {
            panic!("an event")
        };
        assert_eq!(obj["metadata"]["resourceVersion"], "6");
        assert_eq!(translate(event(6), &mut last, &mut ended), None);
        assert_eq!((last, ended), (6, false));
    }

    #[test]
    fn a_reset_or_a_lagging_watcher_is_gone() {
        let (mut last, mut ended) = (5, false);
        assert!(matches!(
            translate(Ok(CacheMessage::Reset), &mut last, &mut ended),
            Some(Watched::Gone(_))
        ));
        assert!(ended);
        let mut ended = false;
        assert!(matches!(
            translate(Err(RecvError::Lagged(3)), &mut last, &mut ended),
            Some(Watched::Gone(_))
        ));
        assert!(ended);
    }
}
