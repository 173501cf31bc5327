//! Node tunnels: each nodelet keeps a WebSocket open to an API server; requests for a
//! server's console and metrics travel down it as [`TunnelRequest`] frames and come back as
//! [`TunnelAnswer`] frames (both in `catalyst_schemas::tunnel`). This module owns the open
//! connections and the request/answer bookkeeping; the HTTP routes that use them are in
//! `http::tunnel`.
//!
//! A tunnel is shared by every request to its node, so no request may hold it up: the loop
//! that reads a nodelet's frames never waits. Each request has its own bounded buffer of
//! answers ([`TunnelConfig::stream_buffer`]); a reader that lets it fill has its stream
//! dropped (it gets a last `Failed` answer and the nodelet a `cancel`). Requests are limited
//! per node and per owner (429), asks time out (504), and when a tunnel closes every request
//! on it ends at once (503).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use catalyst_schemas::tunnel::{
    data_frame, parse_data_frame, Answer, TunnelAnswer, TunnelOp, TunnelRequest,
};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ApiError;

/// Limits and timeouts of the node tunnels (defaults in [`TunnelConfig::default`]).
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// How long a node may take to answer an ask (command, metrics, logs without follow, the
    /// start of a follow) and to accept a request frame: 10 s.
    pub ask_timeout: Duration,
    /// Answers buffered per request; a reader that falls this far behind loses its stream: 256.
    pub stream_buffer: usize,
    /// Open requests (streams and asks) per node: 256.
    pub max_streams_per_node: usize,
    /// Open requests per owner across all nodes: 32.
    pub max_streams_per_owner: usize,
    /// The `Retry-After` of a 429: 1 s.
    pub retry_after: Duration,
    /// How often the API server pings a nodelet: 20 s.
    pub ping_interval: Duration,
    /// How long `/metrics` waits for a node's metrics: 2 s.
    pub scrape_timeout: Duration,
    /// How long a console stream may go on skipping lines because its reader takes none
    /// before it is dropped: 10 s.
    pub line_stall: Duration,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        Self {
            ask_timeout: Duration::from_secs(10),
            stream_buffer: 256,
            max_streams_per_node: 256,
            max_streams_per_owner: 32,
            retry_after: Duration::from_secs(1),
            ping_interval: Duration::from_secs(20),
            scrape_timeout: Duration::from_secs(2),
            line_stall: Duration::from_secs(10),
        }
    }
}

/// Why a tunnel request failed; each maps to an [`ApiError`].
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// 503: the node has no tunnel to this API server.
    #[error("node {node:?} has no tunnel to this API server")]
    NotConnected {
        /// The node.
        node: String,
    },
    /// 503: the tunnel closed before the request was answered.
    #[error("node {node:?} tunnel closed")]
    Closed {
        /// The node.
        node: String,
    },
    /// 429: the node has `limit` open requests.
    #[error("node {node:?} has {limit} open console and metrics requests, the most it may have")]
    NodeBusy {
        /// The node.
        node: String,
        /// The limit.
        limit: usize,
        /// When to retry.
        retry_after: Duration,
    },
    /// 429: the owner has `limit` open requests.
    #[error("you have {limit} open console and metrics requests, the most you may have")]
    OwnerBusy {
        /// The limit.
        limit: usize,
        /// When to retry.
        retry_after: Duration,
    },
    /// 504: the node did not answer in time.
    #[error("node {node:?} did not answer within {after:?}")]
    Timeout {
        /// The node.
        node: String,
        /// The timeout.
        after: Duration,
    },
}

impl From<TunnelError> for ApiError {
    fn from(e: TunnelError) -> Self {
        let message = e.to_string();
        match e {
            TunnelError::NotConnected { .. } | TunnelError::Closed { .. } => {
                ApiError::Unavailable(message)
            }
            TunnelError::NodeBusy { retry_after, .. }
            | TunnelError::OwnerBusy { retry_after, .. } => ApiError::TooManyRequests {
                message,
                retry_after_seconds: retry_after.as_secs().max(1),
            },
            TunnelError::Timeout { .. } => ApiError::Timeout(message),
        }
    }
}

/// Where one request's answers go.
#[derive(Debug)]
struct Route {
    tx: mpsc::Sender<Answer>,
    /// Console lines skipped since the reader last had room.
    skipped: u64,
    /// Since when lines have been skipped without one getting through.
    stalled_since: Option<std::time::Instant>,
}

impl Route {
    fn new(tx: mpsc::Sender<Answer>) -> Self {
        Self {
            tx,
            skipped: 0,
            stalled_since: None,
        }
    }
}

/// The open requests of one tunnel: where each one's answers go.
#[derive(Debug, Default)]
struct Routes {
    open: HashMap<u64, Route>,
    /// Set when the tunnel closed: no request may join it any more.
    closed: bool,
}

#[derive(Debug, Clone)]
struct Conn {
    tx: mpsc::Sender<Message>,
    routes: Arc<Mutex<Routes>>,
    generation: u64,
}

type Owners = Arc<Mutex<HashMap<String, usize>>>;

/// The open tunnels of this API server, by node name.
#[derive(Debug, Default)]
pub struct Tunnels {
    config: TunnelConfig,
    nodes: Mutex<HashMap<String, Conn>>,
    owners: Owners,
    next: AtomicU64,
}

/// One owner's hold on one request slot; dropping it frees the slot.
#[derive(Debug)]
struct OwnerSlot {
    owners: Owners,
    owner: String,
}

impl OwnerSlot {
    fn take(owners: &Owners, owner: &str, limit: usize) -> Option<Self> {
        let mut map = owners.lock().expect("owners");
        let n = map.get(owner).copied().unwrap_or(0);
        if n >= limit {
            return None;
        }
        map.insert(owner.to_owned(), n + 1);
        Some(Self {
            owners: owners.clone(),
            owner: owner.to_owned(),
        })
    }
}

impl Drop for OwnerSlot {
    fn drop(&mut self) {
        let mut map = self.owners.lock().expect("owners");
        if let Some(n) = map.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.owner);
            }
        }
    }
}

/// Answers from a nodelet to one request; dropping it cancels the request and frees its slot.
#[derive(Debug)]
pub struct Answers {
    rx: mpsc::Receiver<Answer>,
    id: u64,
    node: String,
    conn: Conn,
    timeout: Duration,
    _slot: OwnerSlot,
}

impl Answers {
    /// The next answer, or None when the tunnel closed (or the request ended).
    pub async fn next(&mut self) -> Option<Answer> {
        self.rx.recv().await
    }

    /// An answer that has already come, if any (never waits).
    pub fn try_next(&mut self) -> Option<Answer> {
        self.rx.try_recv().ok()
    }

    /// The next answer within the ask timeout.
    ///
    /// # Errors
    /// [`TunnelError::Timeout`] when none came in time, [`TunnelError::Closed`] when the
    /// tunnel closed.
    pub async fn next_in_time(&mut self) -> Result<Answer, TunnelError> {
        match tokio::time::timeout(self.timeout, self.rx.recv()).await {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(TunnelError::Closed {
                node: self.node.clone(),
            }),
            Err(_) => Err(TunnelError::Timeout {
                node: self.node.clone(),
                after: self.timeout,
            }),
        }
    }

    /// The node this request went to.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        let open = self
            .conn
            .routes
            .lock()
            .expect("routes")
            .open
            .remove(&self.id);
        if open.is_some() {
            // still running on the node: tell it to stop
            let _ = self.conn.tx.try_send(encode(&TunnelRequest {
                id: self.id,
                op: TunnelOp::Cancel,
            }));
        }
    }
}

impl Answers {
    /// Gives the node room for `chunks` more data chunks of this download.
    ///
    /// # Errors
    /// [`TunnelError::Closed`] when the tunnel is gone.
    pub async fn ack(&self, chunks: u32) -> Result<(), TunnelError> {
        let frame = encode(&TunnelRequest {
            id: self.id,
            op: TunnelOp::Ack { chunks },
        });
        self.conn
            .tx
            .send(frame)
            .await
            .map_err(|_| TunnelError::Closed {
                node: self.node.clone(),
            })
    }

    /// Sends a data chunk of this upload to the node (an empty one ends it). The caller keeps
    /// to the window: at most `FILE_WINDOW` chunks the node has not acknowledged.
    ///
    /// # Errors
    /// [`TunnelError::Closed`] when the tunnel is gone, [`TunnelError::Timeout`] when it does
    /// not take the chunk within the ask timeout.
    pub async fn send_data(&self, data: &[u8]) -> Result<(), TunnelError> {
        let frame = Message::Binary(data_frame(self.id, data).into());
        match tokio::time::timeout(self.timeout, self.conn.tx.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(TunnelError::Closed {
                node: self.node.clone(),
            }),
            Err(_) => Err(TunnelError::Timeout {
                node: self.node.clone(),
                after: self.timeout,
            }),
        }
    }

    /// The ask timeout of this request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

fn encode(request: &TunnelRequest) -> Message {
    Message::Text(
        serde_json::to_string(request)
            .expect("requests encode")
            .into(),
    )
}

/// Hands one answer frame to its request without waiting. A console line whose reader has no
/// room is skipped and counted (a notice of how many goes out once there is room again); a
/// reader that takes no line for `stall` has its stream ended, as has a request whose buffer
/// fills with other answers: with a `Failed` answer (429) in the slot kept free for the last
/// one, and a cancel to the node. Returns the id of a request dropped this way.
fn deliver(routes: &Mutex<Routes>, frame: TunnelAnswer, stall: Duration) -> Option<u64> {
    let mut routes = routes.lock().expect("routes");
    let id = frame.id;
    let route = routes.open.get_mut(&id)?;
    if frame.answer.is_last() {
        // non-last answers leave a slot free, so the last one always fits
        let route = routes.open.remove(&id)?;
        let _ = route.tx.try_send(frame.answer);
        return None;
    }
    if matches!(frame.answer, Answer::Line(_)) {
        if route.skipped > 0 && route.tx.capacity() > 2 {
            let notice = format!("[catalyst] {} lines skipped (slow reader)", route.skipped);
            let _ = route.tx.try_send(Answer::Line(notice));
            route.skipped = 0;
        }
        if route.tx.capacity() > 1 {
            let _ = route.tx.try_send(frame.answer);
            route.stalled_since = None;
            return None;
        }
        route.skipped += 1;
        let since = *route
            .stalled_since
            .get_or_insert_with(std::time::Instant::now);
        if since.elapsed() < stall {
            return None;
        }
    } else if route.tx.capacity() > 1 {
        let _ = route.tx.try_send(frame.answer);
        return None;
    }
    let route = routes.open.remove(&id)?;
    let behind = route.tx.max_capacity() - 1;
    let _ = route.tx.try_send(Answer::Failed {
        code: 429,
        error: format!("stream dropped: the reader fell {behind} answers behind"),
    });
    Some(id)
}

impl Tunnels {
    /// No tunnels yet, with these limits.
    pub fn new(config: TunnelConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &TunnelConfig {
        &self.config
    }

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
    /// HELP/TYPE per family); nodes are asked at once, and a node that does not answer within
    /// [`TunnelConfig::scrape_timeout`] is left out.
    pub async fn prometheus(&self) -> String {
        render_prometheus(&self.samples().await)
    }

    /// Every connected node's metrics answer (`{"families": […], "samples": […]}`), with the
    /// name of the node whose tunnel it came by; nodes are asked at once, and a node that does
    /// not answer within [`TunnelConfig::scrape_timeout`] is left out. What a node says is its
    /// own word: callers trust a sample only about servers bound to that node.
    pub async fn samples(&self) -> Vec<(String, Value)> {
        let asks = self.nodes().into_iter().map(|node| async move {
            let owner = format!("system:scrape:{node}");
            let mut a = self
                .request(&node, &owner, TunnelOp::Prometheus)
                .await
                .ok()?;
            match tokio::time::timeout(self.config.scrape_timeout, a.next()).await {
                Ok(Some(Answer::End { result })) => Some((node, result.unwrap_or(Value::Null))),
                _ => None,
            }
        });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Sends a request to a node on behalf of `owner` (an opaque key the per-owner limit
    /// counts by); its answers arrive on the returned [`Answers`], which holds the request's
    /// slot until dropped.
    ///
    /// # Errors
    /// [`TunnelError::NotConnected`] / [`TunnelError::Closed`] when the node has no tunnel
    /// to this API server or it just closed; [`TunnelError::OwnerBusy`] /
    /// [`TunnelError::NodeBusy`] over a limit; [`TunnelError::Timeout`] when the tunnel does
    /// not take the request in time.
    pub async fn request(
        &self,
        node: &str,
        owner: &str,
        op: TunnelOp,
    ) -> Result<Answers, TunnelError> {
        let conn = self
            .nodes
            .lock()
            .expect("tunnels")
            .get(node)
            .cloned()
            .ok_or_else(|| TunnelError::NotConnected {
                node: node.to_owned(),
            })?;
        let cfg = &self.config;
        let slot = OwnerSlot::take(&self.owners, owner, cfg.max_streams_per_owner).ok_or(
            TunnelError::OwnerBusy {
                limit: cfg.max_streams_per_owner,
                retry_after: cfg.retry_after,
            },
        )?;
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(cfg.stream_buffer.max(2));
        {
            let mut routes = conn.routes.lock().expect("routes");
            if routes.closed {
                return Err(TunnelError::Closed {
                    node: node.to_owned(),
                });
            }
            if routes.open.len() >= cfg.max_streams_per_node {
                return Err(TunnelError::NodeBusy {
                    node: node.to_owned(),
                    limit: cfg.max_streams_per_node,
                    retry_after: cfg.retry_after,
                });
            }
            routes.open.insert(id, Route::new(tx));
        }
        let answers = Answers {
            rx,
            id,
            node: node.to_owned(),
            conn: conn.clone(),
            timeout: cfg.ask_timeout,
            _slot: slot,
        };
        let frame = encode(&TunnelRequest { id, op });
        match tokio::time::timeout(cfg.ask_timeout, conn.tx.send(frame)).await {
            Ok(Ok(())) => Ok(answers),
            Ok(Err(_)) => Err(TunnelError::Closed {
                node: node.to_owned(),
            }),
            Err(_) => Err(TunnelError::Timeout {
                node: node.to_owned(),
                after: cfg.ask_timeout,
            }),
        }
    }

    /// Serves one nodelet's WebSocket until it closes: a writer sends requests and pings, a
    /// reader routes answers to their requests without ever waiting on one (see [`deliver`]).
    /// A newer tunnel of the same node replaces this one. When it closes, every request still
    /// open on it ends (its [`Answers`] yield None).
    pub async fn serve(&self, node: String, socket: WebSocket) {
        let (tx, mut rx) = mpsc::channel::<Message>(256);
        let routes: Arc<Mutex<Routes>> = Arc::default();
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        self.nodes.lock().expect("tunnels").insert(
            node.clone(),
            Conn {
                tx: tx.clone(),
                routes: routes.clone(),
                generation,
            },
        );
        tracing::info!(node, "node tunnel open");
        let (mut sink, mut stream) = socket.split();
        let ping_every = self.config.ping_interval;
        let stall = self.config.line_stall;
        let writer = async {
            let mut ping = tokio::time::interval(ping_every);
            loop {
                let msg = tokio::select! {
                    out = rx.recv() => match out {
                        Some(msg) => msg,
                        None => break,
                    },
                    _ = ping.tick() => Message::Ping(Bytes::new()),
                };
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
        };
        let reader = async {
            while let Some(msg) = stream.next().await {
                let text = match msg {
                    Ok(Message::Text(t)) => t,
                    Ok(Message::Binary(b)) => {
                        let Some((id, data)) = parse_data_frame(&b) else {
                            continue;
                        };
                        let frame = TunnelAnswer::new(id, Answer::Data(data.to_vec()));
                        if let Some(id) = deliver(&routes, frame, stall) {
                            tracing::warn!(
                                node,
                                id,
                                "tunnel transfer dropped: its reader is too slow"
                            );
                            let _ = tx.try_send(encode(&TunnelRequest {
                                id,
                                op: TunnelOp::Cancel,
                            }));
                        }
                        continue;
                    }
                    Ok(Message::Close(_)) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(node, error = %e, "node tunnel read failed");
                        break;
                    }
                };
                let frame = match serde_json::from_str::<TunnelAnswer>(&text) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::debug!(node, error = %e, "undecodable tunnel frame ignored");
                        continue;
                    }
                };
                if let Some(id) = deliver(&routes, frame, stall) {
                    tracing::warn!(node, id, "tunnel stream dropped: its reader is too slow");
                    let _ = tx.try_send(encode(&TunnelRequest {
                        id,
                        op: TunnelOp::Cancel,
                    }));
                }
            }
        };
        tokio::select! {
            () = writer => {}
            () = reader => {}
        }
        {
            let mut nodes = self.nodes.lock().expect("tunnels");
            if nodes.get(&node).is_some_and(|c| c.generation == generation) {
                nodes.remove(&node);
            }
        }
        let mut routes = routes.lock().expect("routes");
        routes.closed = true;
        routes.open.clear();
        tracing::info!(node, "node tunnel closed");
    }
}

/// Whether `name` is a metric name of the Prometheus text format that a node may publish:
/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, under `catalyst_gameserver_` or `catalyst_node_` (so a node
/// cannot pass for the API server's own families).
fn node_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && (name.starts_with("catalyst_gameserver_") || name.starts_with("catalyst_node_"))
}

/// Whether `name` is a label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not reserved (`__…`).
fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// A label value escaped as the text format wants: `\\`, `\"` and `\n`.
fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text escaped as the text format wants: `\\` and `\n`.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as the text format writes it (`NaN`, `+Inf`, `-Inf`).
fn sample_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// Renders nodes' `{"families": [{name, type, help}], "samples": [{metric, labels, value}]}`
/// answers, each with the name of the node whose tunnel it came by.
///
/// What a node sends cannot break the exposition: families whose name is not a valid node
/// metric name ([`node_metric_name`]) are dropped with their samples, unknown types become
/// `untyped`, HELP and label values are escaped, labels with invalid names are dropped,
/// samples without a numeric value are dropped, and the `node` label is always the tunnel's
/// node (a node cannot speak for another).
pub fn render_prometheus(answers: &[(String, Value)]) -> String {
    const TYPES: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];
    let mut families: Vec<(String, &str, String)> = Vec::new();
    for (_, a) in answers {
        for f in a["families"].as_array().into_iter().flatten() {
            let name = f["name"].as_str().unwrap_or_default();
            if !node_metric_name(name) || families.iter().any(|(n, _, _)| n == name) {
                continue;
            }
            let typ = f["type"].as_str().unwrap_or_default();
            let typ = TYPES
                .iter()
                .find(|t| **t == typ)
                .copied()
                .unwrap_or("untyped");
            let help = escape_help(f["help"].as_str().unwrap_or_default());
            families.push((name.to_owned(), typ, help));
        }
    }
    let mut out = String::new();
    for (name, typ, help) in &families {
        let mut lines = Vec::new();
        for (node, a) in answers {
            for s in a["samples"].as_array().into_iter().flatten() {
                if s["metric"].as_str() != Some(name) {
                    continue;
                }
                let Some(value) = s["value"].as_f64() else {
                    continue;
                };
                let mut labels: std::collections::BTreeMap<&str, &str> = s["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| label_name(k))
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                    .collect();
                labels.insert("node", node);
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
                    .collect();
                lines.push(format!(
                    "{name}{{{}}} {}\n",
                    labels.join(","),
                    sample_value(value)
                ));
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

    fn node(n: &str, name: &str) -> (String, Value) {
        let v = json!({
            "families": [{"name": "catalyst_gameserver_memory_bytes", "type": "gauge", "help": "Memory."}],
            "samples": [{"metric": "catalyst_gameserver_memory_bytes",
                         "labels": {"name": name, "node": n}, "value": 1024.0}],
        });
        (n.to_owned(), v)
    }

    #[test]
    fn node_metrics_render_with_one_help_and_type_per_family() {
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

    /// Every line of an exposition is a comment or `name{labels} value`, with labels that
    /// parse: what Prometheus would accept.
    fn assert_well_formed(text: &str) {
        for line in text.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect(line);
            assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
            let (name, labels) = series.split_once('{').expect(line);
            assert!(node_metric_name(name), "{line}");
            let mut rest = labels.strip_suffix('}').expect(line);
            while !rest.is_empty() {
                let (k, v) = rest.split_once("=\"").expect(line);
                assert!(label_name(k), "{line}");
                let mut end = None;
                let mut escaped = false;
                for (i, c) in v.char_indices() {
                    match (escaped, c) {
                        (true, '\\' | '"' | 'n') => escaped = false,
                        (true, _) => panic!("bad escape in {line}"),
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.expect(line);
                rest = v[end + 1..].strip_prefix(',').unwrap_or(&v[end + 1..]);
            }
        }
    }

    #[test]
    fn a_hostile_node_cannot_inject_lines_or_names_into_the_exposition() {
        let hostile = json!({
            "families": [
                {"name": "catalyst_gameserver_memory_bytes", "type": "gauge\nevil_metric 3",
                 "help": "Memory.\nevil_metric 4"},
                {"name": "catalyst_gameserver_x{a=\"b\"} 1\nevil_metric", "type": "gauge", "help": ""},
                {"name": "catalyst_apiserver_requests_total", "type": "counter", "help": ""},
                {"name": "evil_metric", "type": "gauge", "help": ""},
            ],
            "samples": [
                {"metric": "catalyst_gameserver_memory_bytes",
                 "labels": {"name": "a\"} 1\nevil_metric 2", "node": "someone-else",
                            "bad\"} 1\nevil": "x", "__name__": "evil_metric"},
                 "value": 1.0},
                {"metric": "catalyst_gameserver_memory_bytes", "labels": {}, "value": "1\nevil 5"},
                {"metric": "catalyst_gameserver_x{a=\"b\"} 1\nevil_metric", "labels": {}, "value": 1},
                {"metric": "catalyst_apiserver_requests_total", "labels": {}, "value": 1},
                {"metric": "evil_metric", "labels": {}, "value": 1},
            ],
        });
        let text = render_prometheus(&[("n1".into(), hostile), node("n2", "b")]);
        assert_well_formed(&text);
        assert!(!text.lines().any(|l| l.starts_with("evil")), "{text}");
        assert!(!text.contains("catalyst_apiserver"), "{text}");
        assert!(!text.contains("catalyst_gameserver_x"), "{text}");
        assert!(
            text.contains(
                "catalyst_gameserver_memory_bytes{name=\"a\\\"} 1\\nevil_metric 2\",node=\"n1\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE catalyst_gameserver_memory_bytes untyped\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP catalyst_gameserver_memory_bytes Memory.\\nevil_metric 4\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 4, "{text}");
    }

    #[test]
    fn values_use_the_text_formats_spelling_of_infinities() {
        assert_eq!(sample_value(f64::INFINITY), "+Inf");
        assert_eq!(sample_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(sample_value(f64::NAN), "NaN");
        assert_eq!(sample_value(2.5), "2.5");
    }

    fn line(id: u64) -> TunnelAnswer {
        TunnelAnswer::new(id, Answer::Line("x".into()))
    }

    fn data(id: u64) -> TunnelAnswer {
        TunnelAnswer::new(id, Answer::Data(vec![1]))
    }

    const STALL: Duration = Duration::from_millis(200);

    #[test]
    fn a_full_buffer_drops_its_stream_with_a_last_failure_and_leaves_others_alone() {
        let routes = Mutex::new(Routes::default());
        let (slow_tx, mut slow) = mpsc::channel(3);
        let (fast_tx, mut fast) = mpsc::channel(3);
        routes.lock().unwrap().open.insert(1, Route::new(slow_tx));
        routes.lock().unwrap().open.insert(2, Route::new(fast_tx));
        assert_eq!(deliver(&routes, data(1), STALL), None);
        assert_eq!(deliver(&routes, data(1), STALL), None);
        assert_eq!(
            deliver(&routes, data(1), STALL),
            Some(1),
            "the third fills the buffer"
        );
        assert_eq!(
            deliver(&routes, data(1), STALL),
            None,
            "nothing more for it"
        );
        assert!(!routes.lock().unwrap().open.contains_key(&1));
        for _ in 0..2 {
            assert_eq!(slow.try_recv().unwrap(), Answer::Data(vec![1]));
        }
        assert!(matches!(
            slow.try_recv().unwrap(),
            Answer::Failed { code: 429, .. }
        ));
        assert!(slow.try_recv().is_err());
        // the other stream still flows, and its last answer always fits
        assert_eq!(deliver(&routes, line(2), STALL), None);
        assert_eq!(deliver(&routes, line(2), STALL), None);
        let end = TunnelAnswer::new(2, Answer::End { result: None });
        assert_eq!(deliver(&routes, end, STALL), None);
        assert_eq!(fast.try_recv().unwrap(), Answer::Line("x".into()));
        assert_eq!(fast.try_recv().unwrap(), Answer::Line("x".into()));
        assert_eq!(fast.try_recv().unwrap(), Answer::End { result: None });
        assert!(routes.lock().unwrap().open.is_empty());
    }

    #[test]
    fn a_slow_console_reader_skips_lines_and_a_stalled_one_is_dropped() {
        let routes = Mutex::new(Routes::default());
        let (tx, mut rx) = mpsc::channel(4);
        routes.lock().unwrap().open.insert(1, Route::new(tx));
        for _ in 0..10 {
            assert_eq!(
                deliver(&routes, line(1), STALL),
                None,
                "skipped, not dropped"
            );
        }
        // three got in (one slot stays free for the last answer); the reader takes them
        for _ in 0..3 {
            assert_eq!(rx.try_recv().unwrap(), Answer::Line("x".into()));
        }
        assert_eq!(deliver(&routes, line(1), STALL), None);
        assert_eq!(
            rx.try_recv().unwrap(),
            Answer::Line("[catalyst] 7 lines skipped (slow reader)".into())
        );
        assert_eq!(rx.try_recv().unwrap(), Answer::Line("x".into()));
        // a reader that takes nothing more is dropped once it stalled for STALL
        for _ in 0..5 {
            deliver(&routes, line(1), STALL);
        }
        std::thread::sleep(STALL + Duration::from_millis(50));
        assert_eq!(deliver(&routes, line(1), STALL), Some(1));
        assert!(!routes.lock().unwrap().open.contains_key(&1));
    }

    #[test]
    fn tunnel_errors_become_statuses_with_retry_after() {
        let busy = ApiError::from(TunnelError::OwnerBusy {
            limit: 32,
            retry_after: Duration::from_millis(200),
        });
        assert_eq!(busy.code().as_u16(), 429);
        assert_eq!(busy.status()["details"]["retryAfterSeconds"], 1);
        let late = ApiError::from(TunnelError::Timeout {
            node: "n".into(),
            after: Duration::from_secs(10),
        });
        assert_eq!((late.code().as_u16(), late.reason()), (504, "Timeout"));
        let closed = ApiError::from(TunnelError::Closed { node: "n".into() });
        assert_eq!(closed.code().as_u16(), 503);
    }
}
