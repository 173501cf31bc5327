//! Node tunnels: each nodelet keeps a WebSocket open to an API server; requests for a
//! server's console and metrics travel down it as [`TunnelRequest`] frames and come back as
//! [`TunnelAnswer`] frames (both in `catalyst_schemas::tunnel`). This module owns the open
//! connections and the request/answer bookkeeping; the HTTP routes that use them are in
//! `http::tunnel`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use catalyst_schemas::tunnel::{Answer, TunnelAnswer, TunnelOp, TunnelRequest};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ApiError;

type Pending = Arc<Mutex<HashMap<u64, mpsc::Sender<Answer>>>>;

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
    rx: mpsc::Receiver<Answer>,
    id: u64,
    conn: Conn,
}

impl Answers {
    /// The next answer, or None when the tunnel closed (or the request ended).
    pub async fn next(&mut self) -> Option<Answer> {
        self.rx.recv().await
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        self.conn.pending.lock().expect("pending").remove(&self.id);
        let cancel = TunnelRequest {
            id: self.id,
            op: TunnelOp::Cancel,
        };
        let _ = self
            .conn
            .tx
            .try_send(serde_json::to_string(&cancel).expect("requests encode"));
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
            let Ok(mut a) = self.request(&node, TunnelOp::Prometheus).await else {
                continue;
            };
            if let Ok(Some(Answer::End { result })) =
                tokio::time::timeout(Duration::from_secs(2), a.next()).await
            {
                answers.push(result.unwrap_or(Value::Null));
            }
        }
        render_prometheus(&answers)
    }

    /// Sends a request to a node; its answers arrive on the returned receiver.
    ///
    /// # Errors
    /// 503 when the node has no tunnel to this API server or it just closed.
    pub async fn request(&self, node: &str, op: TunnelOp) -> Result<Answers, ApiError> {
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
        let frame = serde_json::to_string(&TunnelRequest { id, op }).expect("requests encode");
        let (tx, rx) = mpsc::channel(256);
        conn.pending.lock().expect("pending").insert(id, tx);
        conn.tx
            .send(frame)
            .await
            .map_err(|_| ApiError::Unavailable(format!("node {node:?} tunnel closed")))?;
        Ok(Answers { rx, id, conn })
    }

    /// Serves one nodelet's WebSocket until it closes: sends requests, pings every 20 s, and
    /// routes answers to their requests. A newer tunnel of the same node replaces this one.
    pub async fn serve(&self, node: String, socket: WebSocket) {
        let (tx, mut rx) = mpsc::channel::<String>(256);
        let pending: Pending = Arc::default();
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        self.nodes.lock().expect("tunnels").insert(
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
                    let Ok(frame) = serde_json::from_str::<TunnelAnswer>(&text) else { continue };
                    let last = frame.answer.is_last();
                    let target = {
                        let mut p = pending.lock().expect("pending");
                        if last { p.remove(&frame.id) } else { p.get(&frame.id).cloned() }
                    };
                    if let Some(t) = target {
                        let _ = t.send(frame.answer).await;
                    }
                }
            }
        }
        let mut nodes = self.nodes.lock().expect("tunnels");
        if nodes.get(&node).is_some_and(|c| c.generation == generation) {
            nodes.remove(&node);
        }
        pending.lock().expect("pending").clear();
        tracing::info!(node, "node tunnel closed");
    }
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
    use serde_json::json;

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
