//! The tunnel: the nodelet dials a WebSocket to the API server
//! (`/apis/catalyst.dev/v1alpha1/nodes/NAME/tunnel`) and answers requests that arrive on it —
//! console logs (tail and follow), console commands, metrics — so nodes behind NAT need no
//! inbound port. The frames ([`TunnelRequest`] in, [`TunnelAnswer`] out) are defined in
//! `catalyst_schemas::tunnel`, shared with the API server.
//!
//! One request never holds up another: each runs in a task of its own and may have at most
//! [`STREAM_FRAMES`] answers waiting for the socket ([`StreamTx`]); a log follower that is
//! out of room stops reading its console subscription, which skips lines (and says how many)
//! rather than buffering them. At most [`MAX_REQUESTS`] requests run at once; frames over
//! [`MAX_FRAME_BYTES`] from the API server close the tunnel.
//!
//! Over `wss://` it trusts the CA the API client trusts (the one the join token pins), else the
//! system's roots.
//!
//! With several API servers (sharing one store) the nodelet holds one tunnel to each ([`run`]
//! per URL), so a request for this node works at any of them; a server whose tunnel is down
//! answers 503 with `Retry-After: 1` and clients move on to another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use catalyst_schemas::tunnel::{
    data_frame, parse_data_frame, Answer, TunnelAnswer, TunnelOp, TunnelRequest, FILE_WINDOW,
    MAX_FRAME_BYTES,
};

use crate::file_ops::InboxTx;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::runtime::Runtime;
use catalyst_client::API;

/// Dials and serves the tunnel to the API server at `base` forever, redialling with backoff.
pub async fn run(rt: Arc<Runtime>, base: String) {
    let mut delay = Duration::from_millis(200);
    loop {
        match serve_once(&rt, &base).await {
            Ok(()) => delay = Duration::from_millis(200),
            Err(e) => tracing::warn!(server = base, error = %e, "tunnel closed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn serve_once(rt: &Arc<Runtime>, base: &str) -> Result<(), String> {
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
    let connector = if ws_base.starts_with("wss://") {
        Some(tokio_tungstenite::Connector::Rustls(tls_config(
            rt.api.ca_pem(),
        )?))
    } else {
        None
    };
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config()),
        false,
        connector,
    )
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!(server = base, "tunnel to the API server open");
    serve(rt, ws).await
}

/// Answers from one request to the API server may wait for the socket at most this many
/// at a time; the request's task waits for room, the others do not.
pub const STREAM_FRAMES: usize = 64;
/// Requests that may run at once; more are refused with 429.
pub const MAX_REQUESTS: usize = 512;

/// The tunnel's WebSocket limits: messages and frames up to [`MAX_FRAME_BYTES`].
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

/// An answer on its way to the socket, with the room it takes in its request's budget.
type Outgoing = (TunnelAnswer, Option<OwnedSemaphorePermit>);

/// The sending side of one request: answers go to the shared writer, at most
/// [`STREAM_FRAMES`] (the budget) waiting at a time.
#[derive(Debug, Clone)]
pub struct StreamTx {
    id: u64,
    out: mpsc::UnboundedSender<Outgoing>,
    budget: Arc<Semaphore>,
}

/// The tunnel is gone: nothing more can be sent.
#[derive(Debug, thiserror::Error)]
#[error("the tunnel closed")]
pub struct Closed;

impl StreamTx {
    /// A sender for request `id` with room for `frames` answers in flight.
    fn new(id: u64, out: mpsc::UnboundedSender<Outgoing>, frames: usize) -> Self {
        Self {
            id,
            out,
            budget: Arc::new(Semaphore::new(frames)),
        }
    }

    /// Queues an answer once this request has room; waits only on this request's budget.
    ///
    /// # Errors
    /// [`Closed`] when the tunnel is gone.
    pub async fn send(&self, answer: Answer) -> Result<(), Closed> {
        let permit = self
            .budget
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Closed)?;
        self.out
            .send((TunnelAnswer::new(self.id, answer), Some(permit)))
            .map_err(|_| Closed)
    }

    /// Queues an answer outside the budget (refusals by the read loop, which never waits).
    fn send_now(&self, answer: Answer) {
        let _ = self.out.send((TunnelAnswer::new(self.id, answer), None));
    }
}

/// Serves an open tunnel until it closes: each request runs in its own task.
async fn serve<S>(rt: &Arc<Runtime>, ws: S) -> Result<(), String>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures::Sink<Message>
        + Send
        + 'static,
    <S as futures::Sink<Message>>::Error: Send,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let writer = tokio::spawn(async move {
        // a permit is held until its answer is on the socket
        while let Some((answer, _permit)) = rx.recv().await {
            let msg = match &answer.answer {
                Answer::Data(d) => Message::Binary(data_frame(answer.id, d).into()),
                _ => {
                    let mut text = serde_json::to_string(&answer).expect("answers encode");
                    if text.len() > MAX_FRAME_BYTES {
                        // the API server would close the whole tunnel for it: fail this one
                        let failed = TunnelAnswer::new(
                            answer.id,
                            Answer::Failed {
                                code: 500,
                                error: format!(
                                    "the answer has {} bytes, more than a tunnel frame takes",
                                    text.len()
                                ),
                            },
                        );
                        text = serde_json::to_string(&failed).expect("answers encode");
                    }
                    Message::Text(text.into())
                }
            };
            if sink.send(msg).await.is_err() {
                return;
            }
        }
    });
    let mut running: HashMap<u64, tokio::task::AbortHandle> = HashMap::new();
    // the data chunks and room of file transfers, by request id
    let mut inboxes: HashMap<u64, InboxTx> = HashMap::new();
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
            Message::Binary(b) => {
                let Some((id, data)) = parse_data_frame(&b) else {
                    continue;
                };
                let Some(inbox) = inboxes.get(&id) else {
                    continue;
                };
                if inbox.data.try_send(data.to_vec()).is_err() {
                    // more chunks than the window: the API server broke the protocol
                    if let Some(h) = running.remove(&id) {
                        h.abort();
                    }
                    inboxes.remove(&id);
                    StreamTx::new(id, tx.clone(), 1).send_now(Answer::Failed {
                        code: 400,
                        error: "more data chunks than the window allows".into(),
                    });
                }
                continue;
            }
            Message::Close(_) => break Ok(()),
            _ => continue,
        };
        let req = match serde_json::from_str::<TunnelRequest>(&text) {
            Ok(req) => req,
            Err(e) => {
                // an op this nodelet does not know (a newer API server): refuse it by its id
                if let Some(id) = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_u64))
                {
                    StreamTx::new(id, tx.clone(), 1).send_now(Answer::Failed {
                        code: 400,
                        error: format!("unknown request: {e}"),
                    });
                }
                continue;
            }
        };
        running.retain(|_, h| !h.is_finished());
        inboxes.retain(|id, _| running.contains_key(id));
        if req.op == TunnelOp::Cancel {
            if let Some(h) = running.remove(&req.id) {
                h.abort();
            }
            inboxes.remove(&req.id);
            continue;
        }
        if let TunnelOp::Ack { chunks } = req.op {
            if let Some(inbox) = inboxes.get(&req.id) {
                // never more room than the window
                let room = (FILE_WINDOW as usize).saturating_sub(inbox.credits.available_permits());
                inbox.credits.add_permits((chunks as usize).min(room));
            }
            continue;
        }
        let id = req.id;
        let stream_tx = StreamTx::new(id, tx.clone(), STREAM_FRAMES);
        if running.len() >= MAX_REQUESTS {
            stream_tx.send_now(Answer::Failed {
                code: 429,
                error: format!("the node runs {MAX_REQUESTS} requests, the most it takes"),
            });
            continue;
        }
        let h = match req.op {
            TunnelOp::Files { uid, call } => {
                let (inbox_tx, inbox) = crate::file_ops::inbox();
                inboxes.insert(id, inbox_tx);
                tokio::spawn(crate::file_ops::serve(
                    rt.clone(),
                    uid,
                    call,
                    stream_tx,
                    inbox,
                ))
            }
            TunnelOp::Backup { call } => {
                let (inbox_tx, inbox) = crate::file_ops::inbox();
                inboxes.insert(id, inbox_tx);
                tokio::spawn(crate::file_ops::serve_backup(
                    rt.clone(),
                    call,
                    stream_tx,
                    inbox,
                ))
            }
            _ => tokio::spawn(handle(rt.clone(), req, stream_tx)),
        };
        running.insert(id, h.abort_handle());
    };
    for h in running.values() {
        h.abort();
    }
    writer.abort();
    result
}

/// A rustls client config (ring provider) trusting exactly `ca_pem`, else the system's roots.
pub fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the CA: {e}"))?;
                roots.add(cert).map_err(|e| format!("the CA: {e}"))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    if roots.is_empty() {
        return Err("no CA to trust".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn handle(rt: Arc<Runtime>, req: TunnelRequest, tx: StreamTx) {
    let send = |answer: Answer| tx.send(answer);
    let fail = |code: u16, error: String| Answer::Failed { code, error };
    let uid = match &req.op {
        TunnelOp::Prometheus => {
            let samples = rt.samples.lock().expect("samples").clone();
            let families: Vec<Value> = crate::metrics::FAMILIES
                .iter()
                .map(|(name, typ, help)| json!({"name": name, "type": typ, "help": help}))
                .collect();
            let result = json!({"families": families, "samples": samples});
            let _ = send(Answer::End {
                result: Some(result),
            })
            .await;
            return;
        }
        TunnelOp::Cancel | TunnelOp::Ack { .. } => return,
        // served by `file_ops` (the read loop hands them there)
        TunnelOp::Files { .. } | TunnelOp::Backup { .. } => return,
        TunnelOp::Logs { uid, .. } | TunnelOp::Command { uid, .. } | TunnelOp::Metrics { uid } => {
            uid.clone()
        }
    };
    let known = rt.run_dir(&uid).exists() && !uid.contains(['/', '.']);
    if !known {
        let no_console = "the server has no console on this node yet".to_owned();
        let _ = send(fail(404, no_console)).await;
        return;
    }
    let console = match rt.console(&uid) {
        Ok(c) => c,
        Err(e) => {
            let _ = send(fail(500, e.to_string())).await;
            return;
        }
    };
    match req.op {
        TunnelOp::Logs { tail, follow, .. } => {
            let (lines, mut sub) = console.follow(tail);
            if send(Answer::Started).await.is_err() {
                return;
            }
            for line in lines {
                if send(Answer::Line(line)).await.is_err() {
                    return;
                }
            }
            if follow {
                loop {
                    match sub.recv().await {
                        Ok(line) => {
                            if send(Answer::Line(line)).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            let line = format!("[catalyst] {n} lines skipped (slow reader)");
                            let _ = send(Answer::Line(line)).await;
                        }
                        Err(_) => break,
                    }
                }
            }
            let _ = send(Answer::End { result: None }).await;
        }
        TunnelOp::Command { text, .. } => {
            let answer = match console.command(&text).await {
                Ok(_) => Answer::End { result: None },
                Err(e @ crate::console::ConsoleError::BadCommand) => fail(400, e.to_string()),
                Err(other) => fail(409, other.to_string()),
            };
            let _ = send(answer).await;
        }
        TunnelOp::Metrics { .. } => {
            let cid = Runtime::container_id(&uid);
            let pid = match rt.ctd.task_state(&cid).await {
                Ok(Some((crate::ctd::TaskState::Running, pid))) => Some(pid),
                _ => None,
            };
            let dir = rt.server_dir(&uid);
            let m = tokio::task::spawn_blocking(move || crate::metrics::server(&cid, pid, &dir))
                .await
                .unwrap_or_default();
            let result = serde_json::to_value(m).unwrap_or(Value::Null);
            let _ = send(Answer::End {
                result: Some(result),
            })
            .await;
        }
        TunnelOp::Prometheus
        | TunnelOp::Cancel
        | TunnelOp::Ack { .. }
        | TunnelOp::Files { .. }
        | TunnelOp::Backup { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_out_of_room_waits_alone_and_the_others_keep_sending() {
        let (out, mut rx) = mpsc::unbounded_channel();
        let stuck = StreamTx::new(1, out.clone(), 2);
        let other = StreamTx::new(2, out.clone(), 2);
        let line = || Answer::Line("x".into());
        stuck.send(line()).await.expect("room");
        stuck.send(line()).await.expect("room");
        let third = tokio::spawn({
            let stuck = stuck.clone();
            async move { stuck.send(line()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "no room for a third answer in flight");
        tokio::time::timeout(Duration::from_millis(50), other.send(line()))
            .await
            .expect("another stream is not held up")
            .expect("sent");
        // the writer puts the first answer on the socket: its room frees up
        let (first, permit) = rx.recv().await.expect("an answer");
        assert_eq!(first.id, 1);
        drop(permit);
        tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("room again")
            .expect("task")
            .expect("sent");
        // a refusal by the read loop never waits
        StreamTx::new(3, out.clone(), 1).send_now(Answer::Started);
        drop(rx);
        assert!(other.send(line()).await.is_err(), "closed tunnel");
    }
}
