//! Watch: the HTTP (NDJSON) or WebSocket stream of a collection's changes, fed from the
//! kind's watch cache (or the store, for revisions older than the cache), filtered by
//! namespace and selectors, with bookmarks and a 410 for watchers that fall behind.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::header;
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::request::{truthy, Params};
use crate::error::{ApiError, ApiResult};
use crate::registry::{meta_str, ListRequest, Scope};
use crate::selector::{FieldSelector, LabelSelector};
use crate::state::AppState;
use crate::store::Revision;
use crate::watch::{event_line, CacheMessage, CachedEvent, Subscription, WatchCache};
use catalyst_schemas::watch::{Bookmark, WatchEvent};

/// What a watcher is interested in.
#[derive(Debug, Clone)]
struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if meta_str(obj, "namespace") != Some(ns.as_str()) {
                return false;
            }
        }
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        self.labels.matches(&labels) && self.fields.matches(obj)
    }
}

fn error_line(e: &ApiError) -> Bytes {
    event_line(&WatchEvent::<Value>::Error(e.status_object()))
}

/// Serves a watch of `scope` as NDJSON, or over `ws` when the client asked for a WebSocket.
/// The watch counts against `who`'s allowance (see [`crate::limits::WatchLimiter`]) until its
/// task ends: at the timeout, an error, or when the client goes away.
pub(super) async fn watch(
    s: AppState,
    scope: Scope<'_>,
    p: Params,
    who: &str,
    ws: Option<WebSocketUpgrade>,
) -> ApiResult<Response> {
    let req = p.list_request()?;
    let timeout = p.watch_timeout()?;
    let permit = s.watch_limiter.acquire(who)?;
    let filter = Filter {
        namespace: scope.namespace.map(str::to_owned),
        labels: req.labels.clone(),
        fields: req.fields.clone(),
    };
    let bookmarks = truthy(&p.allow_watch_bookmarks);
    let kind = scope.kind;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // Without a resourceVersion: the current objects as ADDED events first, then changes.
    let (initial, after) = match req.revision {
        Some(rev) => (Vec::new(), rev),
        None => {
            let list_req = ListRequest {
                labels: req.labels.clone(),
                fields: req.fields.clone(),
                ..Default::default()
            };
            let all = s.registry.list_all(scope, &list_req).await?;
            (all.items, all.revision)
        }
    };
    let cache = s
        .caches
        .get(kind.plural)
        .cloned()
        .expect("a cache per kind");
    let store = s.registry.store().clone();
    let interval = s.bookmark_interval;
    s.metrics.watch_started();
    let metrics = s.metrics.clone();
    let prefix = scope.prefix();
    let mut stopping = s.stopping.subscribe();
    tokio::spawn(async move {
        let _permit = permit;
        for obj in initial {
            if tx.send(event_line(&WatchEvent::Added(&obj))).await.is_err() {
                metrics.watch_ended();
                return;
            }
        }
        let feed = WatchFeed {
            cache,
            store,
            prefix,
            after,
            filter,
            bookmarks,
            interval,
            timeout,
        };
        // a server that stops ends its watches (the client resumes at another server from
        // its last resourceVersion), so its connections can close
        tokio::select! {
            () = feed.run(&tx) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
        metrics.watch_ended();
    });
    if let Some(ws) = ws {
        // an upgraded socket is no response body: it ends here when its caller is revoked
        let caller = crate::auth::escalation::current();
        let access = s.access.clone();
        return Ok(ws.on_upgrade(move |socket| async move {
            match caller {
                Some(caller) => {
                    tokio::select! {
                        () = pump_websocket(socket, rx) => {}
                        () = access.revoked(caller) => {}
                    }
                }
                None => pump_websocket(socket, rx).await,
            }
        }));
    }
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json;stream=watch")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .expect("valid response"))
}

async fn pump_websocket(mut socket: WebSocket, mut rx: mpsc::Receiver<Bytes>) {
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => {
                    let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned();
                    if socket.send(Message::Text(text.into())).await.is_err() { return }
                }
                None => { let _ = socket.send(Message::Close(None)).await; return }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
}

/// One watcher's loop: cached (shared) events when the revision is recent, else a direct store
/// watch; filtered; bookmarks; cut off with a 410 when too slow.
struct WatchFeed {
    cache: Arc<WatchCache>,
    store: Arc<dyn crate::store::Store>,
    prefix: String,
    after: Revision,
    filter: Filter,
    bookmarks: bool,
    interval: Duration,
    timeout: Option<Duration>,
}

impl WatchFeed {
    async fn run(self, tx: &mpsc::Sender<Bytes>) {
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let ended = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(ended);
        let mut last = self.after;
        let mut tick = tokio::time::interval(self.interval);
        tick.tick().await;
        let send = |line: Bytes| async move { tx.send(line).await.is_ok() };
        match self.cache.subscribe(self.after) {
            Subscription::Cached { backlog, mut live } => {
                for ev in backlog {
                    if !self.forward(&ev, &mut last, tx).await {
                        return;
                    }
                }
                loop {
                    tokio::select! {
                        _ = &mut ended => return,
                        _ = tx.closed() => return,
                        _ = tick.tick(), if self.bookmarks => {
                            let rev = self.cache.newest().max(last);
                            let mark = WatchEvent::<Value>::Bookmark(Bookmark::at(rev));
                            if !send(event_line(&mark)).await { return }
                        }
                        ev = live.recv() => match ev {
                            Ok(CacheMessage::Reset) => {
                                let _ = send(error_line(&ApiError::Gone("the watch cache lost history; re-list and watch again".into()))).await;
                                return;
                            }
                            Ok(CacheMessage::Event(ev)) => if !self.forward(&ev, &mut last, tx).await { return },
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                let _ = send(error_line(&ApiError::Gone(format!(
                                    "watcher too slow: {n} events behind; re-list and watch again"
                                )))).await;
                                return;
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                }
            }
            Subscription::TooOld => {
                // Older than the cache window: straight from the store (which may say Gone).
                let mut stream = match self.store.watch(&self.prefix, self.after).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = send(error_line(&ApiError::from_store(e, "", ""))).await;
                        return;
                    }
                };
                loop {
                    tokio::select! {
                        _ = &mut ended => return,
                        _ = tx.closed() => return,
                        item = stream.next() => match item {
                            Some(Ok(ev)) => {
                                let Ok(object) = crate::registry::from_kv(&ev.kv) else { continue };
                                let cached = CachedEvent::from_store(ev.kind, ev.kv.mod_revision, object);
                                if !self.forward(&cached, &mut last, tx).await { return }
                            }
                            Some(Err(e)) => {
                                let _ = send(error_line(&ApiError::from_store(e, "", ""))).await;
                                return;
                            }
                            None => return,
                        }
                    }
                }
            }
        }
    }

    async fn forward(
        &self,
        ev: &CachedEvent,
        last: &mut Revision,
        tx: &mpsc::Sender<Bytes>,
    ) -> bool {
        if ev.revision <= *last {
            return true;
        }
        *last = ev.revision;
        let now = self.filter.matches(ev.object());
        let before = match (&ev.event, &ev.previous) {
            (WatchEvent::Modified(_), Some(prev)) => self.filter.matches(prev),
            _ => now,
        };
        let line = match (before, now) {
            (true, true) => ev.line.clone(),
            (false, false) => return true,
            // moved into the selection: the watcher has not seen it yet
            (false, true) => event_line(&WatchEvent::Added(ev.object())),
            // moved out of it: for this watcher it is gone
            (true, false) => event_line(&WatchEvent::Deleted(ev.object())),
        };
        tx.send(line).await.is_ok()
    }
}
