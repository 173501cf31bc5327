//! Node tunnels: each nodelet keeps a WebSocket open to an API server
//! (`GET /apis/catalyst.dev/v1alpha1/nodes/NAME/tunnel`); requests for a server's console and
//! metrics travel down it (see the nodelet's `tunnel` module for the frames). Users reach them
//! at `…/gameservers/NAME/logs`, `…/command` and `…/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalyst_schemas::lookup_kind;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::http::AppState;
use crate::registry::{meta_str, Scope};

type Pending = Arc<Mutex<HashMap<u64, mpsc::Sender<Value>>>>;

#[derive(Debug, Clone)]
struct Conn {
    tx: mpsc::Sender<String>,
    pending: Pending,
    generation: u64,
}

/// The open tunnels of this API server, by node name.
#[derive(Debug, Default)]
pub struct Tunnels {
    nodes: Mutex<HashMap<String, Conn>>,
    next: AtomicU64,
}

/// Answers from a nodelet to one request; dropping it cancels the request.
#[derive(Debug)]
pub struct Answers {
    rx: mpsc::Receiver<Value>,
    id: u64,
    conn: Conn,
}

impl Answers {
    /// The next answer frame, or None when the tunnel closed.
    pub async fn next(&mut self) -> Option<Value> {
        self.rx.recv().await
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        self.conn.pending.lock().expect("pending").remove(&self.id);
        let _ = self
            .conn
            .tx
            .try_send(json!({"id": self.id, "op": "cancel"}).to_string());
    }
}

impl Tunnels {
    /// Names of the nodes with a tunnel to this API server.
    pub fn nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .nodes
            .lock()
            .expect("tunnels")
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// The game server and node metrics of every connected node, as Prometheus text (one
    /// HELP/TYPE per family); a node that does not answer within 2 s is left out.
    pub async fn prometheus(&self) -> String {
        let mut answers = Vec::new();
        for node in self.nodes() {
            let Ok(mut a) = self.request(&node, json!({"op": "prometheus"})).await else {
                continue;
            };
            if let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(2), a.next()).await {
                answers.push(v["result"].clone());
            }
        }
        render_prometheus(&answers)
    }

    /// Sends a request to a node; its answers arrive on the returned receiver.
    pub async fn request(&self, node: &str, mut req: Value) -> Result<Answers, ApiError> {
        let conn = self
            .nodes
            .lock()
            .expect("tunnels")
            .get(node)
            .cloned()
            .ok_or_else(|| {
                ApiError::Unavailable(format!("node {node:?} has no tunnel to this API server"))
            })?;
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        req["id"] = json!(id);
        let (tx, rx) = mpsc::channel(256);
        conn.pending.lock().expect("pending").insert(id, tx);
        conn.tx
            .send(req.to_string())
            .await
            .map_err(|_| ApiError::Unavailable(format!("node {node:?} tunnel closed")))?;
        Ok(Answers { rx, id, conn })
    }
}

/// `GET …/nodes/NAME/tunnel`: a nodelet's WebSocket.
pub async fn tunnel(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| serve(state, name, socket))
}

async fn serve(state: AppState, node: String, socket: WebSocket) {
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let pending: Pending = Arc::default();
    let generation = state.tunnels.next.fetch_add(1, Ordering::Relaxed);
    state.tunnels.nodes.lock().expect("tunnels").insert(
        node.clone(),
        Conn {
            tx,
            pending: pending.clone(),
            generation,
        },
    );
    tracing::info!(node, "node tunnel open");
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(text) = out else { break };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                let Some(id) = v.get("id").and_then(Value::as_u64) else { continue };
                let end = v.get("end").and_then(Value::as_bool) == Some(true);
                let target = {
                    let mut p = pending.lock().expect("pending");
                    if end { p.remove(&id) } else { p.get(&id).cloned() }
                };
                if let Some(t) = target {
                    let _ = t.send(v).await;
                }
            }
        }
    }
    let mut nodes = state.tunnels.nodes.lock().expect("tunnels");
    if nodes.get(&node).is_some_and(|c| c.generation == generation) {
        nodes.remove(&node);
    }
    pending.lock().expect("pending").clear();
    tracing::info!(node, "node tunnel closed");
}

/// The node and uid of a GameServer.
async fn locate(state: &AppState, ns: &str, name: &str) -> Result<(String, String), ApiError> {
    let kind = lookup_kind("gameservers").expect("kind");
    let obj = state
        .registry
        .get(
            Scope {
                kind,
                namespace: Some(ns),
            },
            name,
        )
        .await?;
    let node = obj
        .pointer("/status/nodeName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Unavailable(format!("gameserver {name:?} is not on a node yet")))?
        .to_owned();
    Ok((node, meta_str(&obj, "uid").unwrap_or_default().to_owned()))
}

/// Sends a request about a GameServer (`op` and its fields; the server's uid is added) to the
/// server's node; returns the answers and the first one, or the node's error as an ApiError.
async fn ask(
    state: &AppState,
    ns: &str,
    name: &str,
    mut req: Value,
) -> Result<(Answers, Value), ApiError> {
    let (node, uid) = locate(state, ns, name).await?;
    req["uid"] = json!(uid);
    let mut answers = state.tunnels.request(&node, req).await?;
    let first = answers
        .next()
        .await
        .ok_or_else(|| ApiError::Unavailable(format!("node {node:?} tunnel closed")))?;
    match answer_error(&first) {
        Some(e) => Err(e),
        None => Ok((answers, first)),
    }
}

fn answer_error(v: &Value) -> Option<ApiError> {
    let msg = v.get("error").and_then(Value::as_str)?.to_owned();
    Some(match v.get("code").and_then(Value::as_u64) {
        Some(404) => ApiError::NotFound {
            kind: "console".into(),
            name: msg,
        },
        Some(400) => ApiError::BadRequest(msg),
        Some(409) => ApiError::Conflict {
            message: msg,
            causes: vec![],
        },
        _ => ApiError::Unavailable(msg),
    })
}

/// Query of the logs endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsQuery {
    /// Keep streaming.
    #[serde(default)]
    pub follow: bool,
    /// Lines of history.
    #[serde(default)]
    pub tail_lines: Option<usize>,
}

/// `GET …/namespaces/NS/gameservers/NAME/logs?follow=true&tailLines=N`: console lines as
/// text/plain, one per line.
pub async fn logs(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let (answers, first) = ask(
        &state,
        &ns,
        &name,
        json!({"op": "logs", "tail": q.tail_lines, "follow": q.follow}),
    )
    .await?;
    let body = futures::stream::unfold((Some(first), answers), |(first, mut answers)| async move {
        let v = match first {
            Some(v) => v,
            None => answers.next().await?,
        };
        if v.get("end").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        let line = v
            .get("line")
            .and_then(Value::as_str)
            .map(|l| format!("{l}\n"));
        Some((
            Ok::<_, std::io::Error>(Bytes::from(line.unwrap_or_default())),
            (None, answers),
        ))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Body of the command endpoint.
#[derive(Debug, Deserialize)]
pub struct CommandBody {
    /// One line for the server's console.
    pub command: String,
}

/// `POST …/namespaces/NS/gameservers/NAME/command` with `{"command": "say hi"}`.
pub async fn command(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<CommandBody>,
) -> Result<Response, ApiError> {
    if body.command.contains(['\n', '\r', '\0']) {
        return Err(ApiError::BadRequest(
            "command: must be one line without NUL bytes".into(),
        ));
    }
    ask(
        &state,
        &ns,
        &name,
        json!({"op": "command", "text": body.command}),
    )
    .await?;
    Ok((
        StatusCode::OK,
        Json(json!({"kind": "Status", "status": "Success"})),
    )
        .into_response())
}

/// `GET …/namespaces/NS/gameservers/NAME/metrics`: the server's resource use now.
pub async fn metrics(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, v) = ask(&state, &ns, &name, json!({"op": "metrics"})).await?;
    Ok(Json(v.get("result").cloned().unwrap_or(Value::Null)).into_response())
}

/// Renders nodes' `{"families": [{name, type, help}], "samples": [{metric, labels, value}]}`.
pub fn render_prometheus(answers: &[Value]) -> String {
    let mut families: Vec<(String, String, String)> = Vec::new();
    for a in answers {
        for f in a["families"].as_array().into_iter().flatten() {
            let name = f["name"].as_str().unwrap_or_default().to_owned();
            if !name.is_empty() && !families.iter().any(|(n, _, _)| *n == name) {
                families.push((
                    name,
                    f["type"].as_str().unwrap_or("untyped").to_owned(),
                    f["help"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    let mut out = String::new();
    for (name, typ, help) in &families {
        let mut lines = Vec::new();
        for a in answers {
            for s in a["samples"].as_array().into_iter().flatten() {
                if s["metric"].as_str() != Some(name) {
                    continue;
                }
                let labels: Vec<String> = s["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        let v = v.as_str().unwrap_or_default();
                        format!(
                            "{k}=\"{}\"",
                            v.replace('\\', "\\\\")
                                .replace('"', "\\\"")
                                .replace('\n', "\\n")
                        )
                    })
                    .collect();
                let value = s["value"].as_f64().unwrap_or(f64::NAN);
                lines.push(format!("{name}{{{}}} {value}\n", labels.join(",")));
            }
        }
        if !lines.is_empty() {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {typ}\n"));
            out.extend(lines);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_metrics_render_with_one_help_and_type_per_family() {
        let node = |n: &str, name: &str| {
            json!({
                "families": [{"name": "catalyst_gameserver_memory_bytes", "type": "gauge", "help": "Memory."}],
                "samples": [{"metric": "catalyst_gameserver_memory_bytes",
                             "labels": {"name": name, "node": n}, "value": 1024.0}],
            })
        };
        let text = render_prometheus(&[node("n1", "a"), node("n2", "b\"q")]);
        assert_eq!(
            text.matches("# TYPE catalyst_gameserver_memory_bytes gauge")
                .count(),
            1
        );
        assert!(
            text.contains("catalyst_gameserver_memory_bytes{name=\"a\",node=\"n1\"} 1024\n"),
            "{text}"
        );
        assert!(text.contains("name=\"b\\\"q\""), "{text}");
    }
}
