//! The tunnel: the nodelet dials a WebSocket to the API server
//! (`/apis/catalyst.dev/v1alpha1/nodes/NAME/tunnel`) and answers requests that arrive on it —
//! console logs (tail and follow), console commands, metrics — so nodes behind NAT need no
//! inbound port. Frames are JSON text messages:
//!
//! - API server → nodelet: `{"id": 7, "op": "logs", "uid": "…", "tail": 100, "follow": true}`,
//!   `{"id": 8, "op": "command", "uid": "…", "text": "say hi"}`,
//!   `{"id": 9, "op": "metrics", "uid": "…"}`, `{"id": 7, "op": "cancel"}`.
//! - nodelet → API server: `{"id": 7, "line": "…"}` (logs), `{"id": 9, "result": {…}}`,
//!   `{"id": 7, "end": true}` or `{"id": 7, "end": true, "error": "…", "code": 404}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::api::API;
use crate::runtime::Runtime;

/// A request from the API server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TunnelRequest {
    /// Correlates answers.
    pub id: u64,
    /// `logs`, `command`, `metrics` or `cancel`.
    pub op: String,
    /// The GameServer's uid.
    #[serde(default)]
    pub uid: String,
    /// Lines of history (logs).
    #[serde(default)]
    pub tail: Option<usize>,
    /// Keep streaming (logs).
    #[serde(default)]
    pub follow: bool,
    /// The command line (command).
    #[serde(default)]
    pub text: Option<String>,
}

/// Dials and serves the tunnel forever, redialling with backoff.
pub async fn run(rt: Arc<Runtime>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match serve_once(&rt).await {
            Ok(()) => delay = Duration::from_millis(200),
            Err(e) => tracing::warn!(error = %e, "tunnel closed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn serve_once(rt: &Arc<Runtime>) -> Result<(), String> {
    let base = rt.api.base();
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!("ws://{}", base.trim_start_matches("http://"))
    };
    let mut request = format!("{ws_base}{API}/nodes/{}/tunnel", rt.node)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", rt.api.token())
            .parse()
            .map_err(|_| "token is not a header value".to_owned())?,
    );
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("tunnel to the API server open");
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Value>(1024);
    let writer = tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            if sink
                .send(Message::Text(v.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut running: HashMap<u64, tokio::task::AbortHandle> = HashMap::new();
    let result = loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {
                // the API server pings every 20 s; silence means a dead connection
                break Err("tunnel silent for 60 s".to_owned());
            }
        };
        let Some(msg) = msg else { break Ok(()) };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => break Err(e.to_string()),
        };
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break Ok(()),
            _ => continue,
        };
        let Ok(req) = serde_json::from_str::<TunnelRequest>(&text) else {
            continue;
        };
        running.retain(|_, h| !h.is_finished());
        if req.op == "cancel" {
            if let Some(h) = running.remove(&req.id) {
                h.abort();
            }
            continue;
        }
        let id = req.id;
        let h = tokio::spawn(handle(rt.clone(), req, tx.clone()));
        running.insert(id, h.abort_handle());
    };
    for h in running.values() {
        h.abort();
    }
    writer.abort();
    result
}

async fn handle(rt: Arc<Runtime>, req: TunnelRequest, tx: mpsc::Sender<Value>) {
    let id = req.id;
    if req.op == "prometheus" {
        let samples = rt.samples.lock().expect("samples").clone();
        let families: Vec<Value> = crate::metrics::FAMILIES
            .iter()
            .map(|(name, typ, help)| json!({"name": name, "type": typ, "help": help}))
            .collect();
        let _ = tx
            .send(json!({"id": id, "end": true, "result": {"families": families, "samples": samples}}))
            .await;
        return;
    }
    let end = |error: Option<(u16, String)>| match error {
        None => json!({"id": id, "end": true}),
        Some((code, e)) => json!({"id": id, "end": true, "error": e, "code": code}),
    };
    let known = rt.run_dir(&req.uid).exists() && !req.uid.contains(['/', '.']);
    if !known {
        let _ = tx
            .send(end(Some((
                404,
                "the server has no console on this node yet".into(),
            ))))
            .await;
        return;
    }
    let console = match rt.console(&req.uid) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(end(Some((500, e.to_string())))).await;
            return;
        }
    };
    match req.op.as_str() {
        "logs" => {
            let (lines, mut sub) = console.follow(req.tail);
            if tx.send(json!({"id": id, "ok": true})).await.is_err() {
                return;
            }
            for line in lines {
                if tx.send(json!({"id": id, "line": line})).await.is_err() {
                    return;
                }
            }
            if req.follow {
                loop {
                    match sub.recv().await {
                        Ok(line) => {
                            if tx.send(json!({"id": id, "line": line})).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            let line = format!("[catalyst] {n} lines skipped (slow reader)");
                            let _ = tx.send(json!({"id": id, "line": line})).await;
                        }
                        Err(_) => break,
                    }
                }
            }
            let _ = tx.send(end(None)).await;
        }
        "command" => {
            let text = req.text.unwrap_or_default();
            let r = console.command(&text).await;
            let _ = tx
                .send(end(r.err().map(|e| match e {
                    crate::console::ConsoleError::BadCommand => (400, e.to_string()),
                    other => (409, other.to_string()),
                })))
                .await;
        }
        "metrics" => {
            let cid = Runtime::container_id(&req.uid);
            let pid = match rt.ctd.task_state(&cid).await {
                Ok(Some((crate::ctd::TaskState::Running, pid))) => Some(pid),
                _ => None,
            };
            let dir = rt.server_dir(&req.uid);
            let m = tokio::task::spawn_blocking(move || crate::metrics::server(&cid, pid, &dir))
                .await
                .unwrap_or_default();
            let _ = tx.send(json!({"id": id, "result": m, "end": true})).await;
        }
        other => {
            let _ = tx
                .send(end(Some((400, format!("unknown op {other:?}")))))
                .await;
        }
    }
}
