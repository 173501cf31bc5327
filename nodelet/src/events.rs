//! The node's Events, written in the background: a worker records an Event (its time is the
//! moment it happened) and goes on; one writer posts them in order. A start no longer waits
//! for its Started and Ready Events to be stored. Events are best effort, as before: one the
//! API refuses is logged; a full queue (the API unreachable for long) drops the newest.

use catalyst_client::{Client, API};
use serde_json::Value;
use tokio::sync::mpsc;

/// How many Events may wait for the API.
const CAPACITY: usize = 4096;

/// The sending side; cheap to share.
#[derive(Debug, Clone)]
pub struct EventQueue {
    tx: mpsc::Sender<Value>,
    source: &'static str,
}

impl EventQueue {
    /// A queue whose Events `writer` posts through `api` (start it with `tokio::spawn`).
    pub fn new(api: Client, source: &'static str) -> (Self, Writer) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (EventQueue { tx, source }, Writer { api, rx })
    }

    /// Records an Event about `object` now; it is written soon after.
    pub fn record(&self, object: &Value, type_: &str, reason: &str, message: &str) {
        let event =
            catalyst_schemas::event::event_about(object, type_, reason, message, self.source);
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            tracing::warn!(reason, "event queue full; event dropped");
        }
    }
}

/// Posts the queued Events one after the other.
#[derive(Debug)]
pub struct Writer {
    api: Client,
    rx: mpsc::Receiver<Value>,
}

impl Writer {
    /// Posts Events as they come until `stop` fires; then writes what is still queued, for
    /// at most `drain`.
    pub async fn run(
        mut self,
        stop: impl std::future::Future<Output = ()>,
        drain: std::time::Duration,
    ) {
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                event = self.rx.recv() => match event {
                    Some(event) => self.post(event).await,
                    None => return,
                },
                () = &mut stop => break,
            }
        }
        let rest = async {
            while let Ok(event) = self.rx.try_recv() {
                self.post(event).await;
            }
        };
        if tokio::time::timeout(drain, rest).await.is_err() {
            tracing::warn!("events not written before shutdown");
        }
    }

    async fn post(&self, event: Value) {
        let ns = catalyst_schemas::object::namespace_of(&event)
            .unwrap_or("default")
            .to_owned();
        let reason = event
            .pointer("/spec/reason")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Err(e) = self
            .api
            .post(&format!("{API}/namespaces/{ns}/events"), event)
            .await
        {
            tracing::warn!(error = %e, reason, "cannot record an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// An API that stores Events slowly, in the order they arrive.
    async fn slow_api() -> (String, Arc<Mutex<Vec<String>>>) {
        let got: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/events",
            axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    let reason = v["spec"]["reason"].as_str().unwrap_or_default().to_owned();
                    seen.lock().expect("seen").push(reason);
                    axum::Json(v)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, got)
    }

    #[tokio::test]
    async fn events_are_written_in_order_after_the_worker_went_on_and_flushed_at_stop() {
        let (url, got) = slow_api().await;
        let (queue, writer) = EventQueue::new(Client::new(&url, "t"), "nodelet");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(writer.run(
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(10),
        ));
        let gs = serde_json::json!({"kind": "GameServer",
            "metadata": {"name": "mc", "namespace": "default", "uid": "u1"}});
        for reason in ["Pulled", "Started", "Ready", "Stopped"] {
            queue.record(&gs, "Normal", reason, "m");
        }
        // nothing waited for the API: the first is at best being written
        assert!(got.lock().expect("got").len() <= 1);
        stop.send(()).expect("stop");
        running.await.expect("writer");
        assert_eq!(
            *got.lock().expect("got"),
            ["Pulled", "Started", "Ready", "Stopped"],
            "all written, in order, before the writer ended"
        );
    }
}
