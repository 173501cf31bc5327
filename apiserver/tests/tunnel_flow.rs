//! The node tunnel under hostile and slow clients: a real API server router on a socket, a
//! fake nodelet speaking the tunnel protocol over tokio-tungstenite, and HTTP clients that
//! misbehave (a follower that never reads, too many streams, asks nobody answers).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use catalyst_apiserver::auth::{Authenticator, Identity};
use catalyst_apiserver::http::{app, AppState};
use catalyst_apiserver::registry::Registry;
use catalyst_apiserver::store;
use catalyst_apiserver::tunnel::{TunnelConfig, Tunnels};
use catalyst_schemas::tunnel::{
    data_frame, Answer, FileCall, TunnelAnswer, TunnelOp, TunnelRequest, FILE_WINDOW,
};
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";
const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
const NODES: &str = "/apis/catalyst.dev/v1alpha1/nodes";
/// `tailLines` that makes the fake nodelet flood a follow stream with 8 KiB lines.
const FLOOD: usize = 1_000_000;

struct Env {
    app: Router,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

/// An API server with these tunnel limits, serving on 127.0.0.1, with GameServer `a` on
/// node `n1`.
async fn env(config: TunnelConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
        .await
        .unwrap();
    let admin = |name: &str| Identity::new("admin", name);
    let auth = Authenticator::fixed(&[(ALICE, admin("alice")), (BOB, admin("bob"))]);
    let mut state = AppState::new(Registry::new(store), auth).await.unwrap();
    state.tunnels = Arc::new(Tunnels::new(config));
    let app = app(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = app.clone();
    tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });
    let env = Env {
        app,
        addr,
        _dir: dir,
    };
    let gs = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
                    "metadata": {"name": "a"}, "spec": {"image": "busybox"}});
    assert_eq!(
        env.call(ALICE, Method::POST, GS, Some(gs)).await.0,
        StatusCode::CREATED
    );
    let status = json!({"status": {"nodeName": "n1"}});
    let (code, body) = env
        .call(
            ALICE,
            Method::PATCH,
            &format!("{GS}/a/status"),
            Some(status),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    env
}

impl Env {
    /// One request through the router, its whole body (JSON when it parses, else a string).
    async fn call(
        &self,
        token: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self.send(token, method, uri, body).await;
        let code = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (code, value)
    }

    /// One request through the router; the body is left unread.
    async fn send(
        &self,
        token: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> axum::response::Response {
        let content_type = if method == Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        self.app.clone().oneshot(req).await.unwrap()
    }

    async fn command(&self, text: &str) -> (StatusCode, Value) {
        let body = json!({ "command": text });
        self.call(ALICE, Method::POST, &format!("{GS}/a/command"), Some(body))
            .await
    }

    async fn metrics(&self) -> (StatusCode, Value) {
        self.call(ALICE, Method::GET, &format!("{GS}/a/metrics"), None)
            .await
    }

    /// Waits until the node's tunnel carries requests (a command is answered).
    async fn await_tunnel(&self) {
        for _ in 0..200 {
            if self.command("ping").await.0 == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the tunnel never opened");
    }
}

/// A fake nodelet: answers commands (`hang` never), metrics, prometheus (hostile metrics)
/// and logs (a flood of 8 KiB lines when `tail` is [`FLOOD`], else one line and, with
/// `follow`, silence until cancelled). It records every request it gets.
struct FakeNode {
    seen: Arc<Mutex<Vec<TunnelRequest>>>,
    flooded: Arc<AtomicUsize>,
    /// Binary (data) frames the API server sent.
    data_frames: Arc<AtomicUsize>,
    out: mpsc::Sender<Message>,
    closed: mpsc::Receiver<()>,
}

impl FakeNode {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let url = format!("ws://{addr}{NODES}/n1/tunnel?access_token={ALICE}");
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::channel::<Message>(64);
        let (closed_tx, closed) = mpsc::channel(1);
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
        });
        let seen: Arc<Mutex<Vec<TunnelRequest>>> = Arc::default();
        let flooded = Arc::new(AtomicUsize::new(0));
        let data_frames = Arc::new(AtomicUsize::new(0));
        let (s, f, o, d) = (
            seen.clone(),
            flooded.clone(),
            out.clone(),
            data_frames.clone(),
        );
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Binary(_) = msg {
                    d.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let Message::Text(text) = msg else { continue };
                let req: TunnelRequest = serde_json::from_str(&text).unwrap();
                s.lock().unwrap().push(req.clone());
                tokio::spawn(answer(req, o.clone(), s.clone(), f.clone()));
            }
            let _ = closed_tx.send(()).await;
        });
        Self {
            seen,
            flooded,
            data_frames,
            out,
            closed,
        }
    }

    fn cancelled(&self, id: u64) -> bool {
        let seen = self.seen.lock().unwrap();
        seen.iter().any(|r| r.id == id && r.op == TunnelOp::Cancel)
    }

    /// The id of the first request matching `f`.
    fn id_of(&self, f: impl Fn(&TunnelOp) -> bool) -> Option<u64> {
        let seen = self.seen.lock().unwrap();
        seen.iter().find(|r| f(&r.op)).map(|r| r.id)
    }
}

async fn answer(
    req: TunnelRequest,
    out: mpsc::Sender<Message>,
    seen: Arc<Mutex<Vec<TunnelRequest>>>,
    flooded: Arc<AtomicUsize>,
) {
    let send = async |a: Answer| {
        let frame = serde_json::to_string(&TunnelAnswer::new(req.id, a)).unwrap();
        out.send(Message::Text(frame.into())).await.is_ok()
    };
    let cancelled = || {
        let seen = seen.lock().unwrap();
        seen.iter()
            .any(|r| r.id == req.id && r.op == TunnelOp::Cancel)
    };
    match &req.op {
        TunnelOp::Logs { tail, follow, .. } => {
            send(Answer::Started).await;
            if *tail == Some(FLOOD) {
                let line = "x".repeat(8192);
                for _ in 0..20_000 {
                    if cancelled() || !send(Answer::Line(line.clone())).await {
                        return;
                    }
                    flooded.fetch_add(1, Ordering::Relaxed);
                }
            }
            send(Answer::Line("hello".into())).await;
            while *follow && !cancelled() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            send(Answer::End { result: None }).await;
        }
        TunnelOp::Command { text, .. } if text == "hang" => {}
        TunnelOp::Command { .. } => {
            send(Answer::End { result: None }).await;
        }
        TunnelOp::Metrics { .. } => {
            send(Answer::End {
                result: Some(json!({"cpu": 1})),
            })
            .await;
        }
        TunnelOp::Prometheus => {
            let result = json!({
                "families": [
                    {"name": "catalyst_gameserver_pids", "type": "gauge", "help": "Pids."},
                    {"name": "catalyst_node_x\nevil_metric 1", "type": "gauge", "help": ""},
                ],
                "samples": [
                    {"metric": "catalyst_gameserver_pids",
                     "labels": {"name": "a\"} 1\nevil_metric 2", "node": "n1"}, "value": 3},
                    {"metric": "catalyst_node_x\nevil_metric 1", "labels": {}, "value": 1},
                ],
            });
            send(Answer::End {
                result: Some(result),
            })
            .await;
        }
        // a hostile node: a download that ignores the window, an upload never acknowledged
        TunnelOp::Files {
            call: FileCall::Read { .. },
            ..
        } => {
            send(Answer::Opened(
                json!({"size": 1u64 << 30, "start": 0, "length": 1u64 << 30}),
            ))
            .await;
            for _ in 0..100_000 {
                let frame = data_frame(req.id, &[7u8; 1024]);
                if cancelled() || out.send(Message::Binary(frame.into())).await.is_err() {
                    return;
                }
                flooded.fetch_add(1, Ordering::Relaxed);
            }
        }
        TunnelOp::Files {
            call: FileCall::Write { .. },
            ..
        } => {
            send(Answer::Opened(json!({}))).await;
        }
        TunnelOp::Cancel
        | TunnelOp::Files { .. }
        | TunnelOp::Backup { .. }
        | TunnelOp::Ack { .. } => {}
    }
}

/// A raw HTTP client with a tiny receive buffer that asks for a followed log and never
/// reads the answer.
async fn never_reading_follower(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(addr).await.unwrap();
    let req = format!(
        "GET {GS}/a/logs?follow=true&tailLines={FLOOD} HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {BOB}\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    conn
}

async fn within<T>(limit: Duration, what: &str, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"));
    eprintln!("{what}: {:?}", start.elapsed());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_never_reads_blocks_no_command_or_metrics_call() {
    // no patience for a stalled reader: the first line it has no room for drops it
    let env = env(TunnelConfig {
        line_stall: Duration::ZERO,
        ..TunnelConfig::default()
    })
    .await;
    let node = FakeNode::connect(env.addr).await;
    env.await_tunnel().await;

    let mut follower = never_reading_follower(env.addr).await;
    // let the flood fill every buffer between the fake nodelet and the follower
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.flooded.load(Ordering::Relaxed) < 600 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!("lines flooded: {}", node.flooded.load(Ordering::Relaxed));

    let limit = Duration::from_secs(2);
    assert_eq!(
        within(limit, "command", env.command("say hi")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        within(limit, "metrics", env.metrics()).await,
        (StatusCode::OK, json!({"cpu": 1}))
    );

    // the follower's stream was dropped (cancelled on the node), and says so at its end
    let flood = node
        .id_of(|op| {
            matches!(
                op,
                TunnelOp::Logs {
                    tail: Some(FLOOD),
                    ..
                }
            )
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !node.cancelled(flood) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        node.cancelled(flood),
        "the node was told to stop the stream"
    );
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    within(
        Duration::from_secs(20),
        "reading the dropped stream",
        async {
            loop {
                let n = follower.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed before the drop notice");
                tail.extend_from_slice(&buf[..n]);
                let keep = tail.len().saturating_sub(4096);
                tail.drain(..keep);
                if String::from_utf8_lossy(&tail).contains("[catalyst] stream dropped") {
                    break;
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn streams_over_the_per_user_and_per_node_limits_get_429_with_retry_after() {
    let env = env(TunnelConfig {
        max_streams_per_owner: 2,
        max_streams_per_node: 3,
        ..TunnelConfig::default()
    })
    .await;
    let _node = FakeNode::connect(env.addr).await;
    env.await_tunnel().await;
    let follow = format!("{GS}/a/logs?follow=true");
    let open = async |token: &str| env.send(token, Method::GET, &follow, None).await;

    let a1 = open(ALICE).await;
    let a2 = open(ALICE).await;
    assert_eq!((a1.status(), a2.status()), (StatusCode::OK, StatusCode::OK));
    let a3 = open(ALICE).await;
    assert_eq!(a3.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a3.headers()[header::RETRY_AFTER], "1");
    let status: Value =
        serde_json::from_slice(&a3.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["details"]["retryAfterSeconds"], 1);

    // bob has his own allowance, but the node's is used up after his first stream
    let b1 = open(BOB).await;
    assert_eq!(b1.status(), StatusCode::OK);
    let b2 = open(BOB).await;
    assert_eq!(b2.status(), StatusCode::TOO_MANY_REQUESTS);
    let say_hi = Some(json!({"command": "say hi"}));
    let command = format!("{GS}/a/command");
    let (code, status) = env.call(BOB, Method::POST, &command, say_hi).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("node \"n1\""),
        "{status}"
    );

    // closing a stream frees its slot
    drop(a1);
    assert_eq!(env.command("say hi").await.0, StatusCode::OK);
    assert_eq!(open(ALICE).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_ask_the_node_never_answers_gets_504_and_frees_its_slot() {
    let env = env(TunnelConfig {
        ask_timeout: Duration::from_millis(200),
        max_streams_per_owner: 1,
        ..TunnelConfig::default()
    })
    .await;
    let node = FakeNode::connect(env.addr).await;
    env.await_tunnel().await;
    let (code, status) = within(Duration::from_secs(2), "hung command", env.command("hang")).await;
    assert_eq!(code, StatusCode::GATEWAY_TIMEOUT, "{status}");
    assert_eq!(status["reason"], "Timeout");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("did not answer"));
    // its one slot is free again, and the node was told to forget it
    assert_eq!(env.command("say hi").await.0, StatusCode::OK);
    let hung = node
        .id_of(|op| matches!(op, TunnelOp::Command { text, .. } if text == "hang"))
        .unwrap();
    assert!(node.cancelled(hung));
    // a logs request without follow is an ask too, and so is its whole answer
    let (code, body) = env
        .call(ALICE, Method::GET, &format!("{GS}/a/logs"), None)
        .await;
    assert_eq!((code, body), (StatusCode::OK, json!("hello\n")));
}

#[tokio::test]
async fn a_dropped_tunnel_fails_pending_asks_with_503_at_once() {
    let env = env(TunnelConfig {
        ask_timeout: Duration::from_secs(30),
        ..TunnelConfig::default()
    })
    .await;
    let node = FakeNode::connect(env.addr).await;
    env.await_tunnel().await;
    let follow = env
        .send(
            ALICE,
            Method::GET,
            &format!("{GS}/a/logs?follow=true"),
            None,
        )
        .await;
    assert_eq!(follow.status(), StatusCode::OK);
    let hung = tokio::spawn({
        let env_app = env.app.clone();
        async move {
            let req = Request::builder()
                .method(Method::POST)
                .uri(format!("{GS}/a/command"))
                .header(header::AUTHORIZATION, format!("Bearer {ALICE}"))
                .body(Body::from(json!({"command": "hang"}).to_string()))
                .unwrap();
            let r = env_app.oneshot(req).await.unwrap();
            let code = r.status();
            let body = r.into_body().collect().await.unwrap().to_bytes();
            (code, serde_json::from_slice::<Value>(&body).unwrap())
        }
    });
    while node
        .id_of(|op| matches!(op, TunnelOp::Command { text, .. } if text == "hang"))
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.out.send(Message::Close(None)).await.unwrap();
    let (code, status) = within(Duration::from_secs(2), "the pending ask", hung)
        .await
        .unwrap();
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{status}");
    // the follow stream ends too
    let body = within(
        Duration::from_secs(2),
        "the follow stream",
        follow.into_body().collect(),
    )
    .await
    .unwrap()
    .to_bytes();
    assert_eq!(&body[..], b"hello\n");
    assert_eq!(
        env.command("say hi").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn an_oversized_frame_closes_the_tunnel_and_the_server_carries_on() {
    let env = env(TunnelConfig::default()).await;
    let mut node = FakeNode::connect(env.addr).await;
    env.await_tunnel().await;
    let big = format!(r#"{{"id": 1, "line": "{}"}}"#, "x".repeat(2 << 20));
    node.out.send(Message::Text(big.into())).await.unwrap();
    within(
        Duration::from_secs(5),
        "the tunnel closing",
        node.closed.recv(),
    )
    .await;
    let (code, status) = env.command("say hi").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{status}");
    assert_eq!(
        env.call(ALICE, Method::GET, GS, None).await.0,
        StatusCode::OK
    );
    // the node can dial again
    let _again = FakeNode::connect(env.addr).await;
    env.await_tunnel().await;
}

#[tokio::test]
async fn a_command_body_over_64_kib_is_refused_with_413() {
    let env = env(TunnelConfig::default()).await;
    let (code, status) = env.command(&"x".repeat(70 * 1024)).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{status}");
    assert_eq!(status["reason"], "RequestEntityTooLarge");
}

#[tokio::test]
async fn metrics_from_a_hostile_node_cannot_break_the_exposition() {
    let env = env(TunnelConfig::default()).await;
    let _node = FakeNode::connect(env.addr).await;
    env.await_tunnel().await;
    let (code, text) = env.call(ALICE, Method::GET, "/metrics", None).await;
    assert_eq!(code, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(!text.lines().any(|l| l.starts_with("evil")), "{text}");
    assert!(!text.contains("catalyst_node_x"), "{text}");
    assert!(
        text.contains(
            "catalyst_gameserver_pids{name=\"a\\\"} 1\\nevil_metric 2\",node=\"n1\"} 3\n"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_ignores_the_download_window_has_the_transfer_dropped() {
    let env = env(TunnelConfig::default()).await;
    let node = FakeNode::connect(env.addr).await;
    env.await_tunnel().await;
    // a client that asks for the file and reads nothing
    let response = env
        .send(
            ALICE,
            Method::GET,
            &format!("{GS}/a/filecontents?path=/big"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let id = node
        .id_of(|op| {
            matches!(
                op,
                TunnelOp::Files {
                    call: FileCall::Read { .. },
                    ..
                }
            )
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !node.cancelled(id) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        node.cancelled(id),
        "the transfer was dropped and the node told"
    );
    let sent = node.flooded.load(Ordering::Relaxed);
    assert!(sent < 100_000, "the node was stopped early: {sent}");
    // everything else still answers
    assert_eq!(
        within(Duration::from_secs(2), "command", env.command("say hi"))
            .await
            .0,
        StatusCode::OK
    );
    drop(response);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_to_a_node_that_never_acknowledges_stops_at_the_window() {
    let env = env(TunnelConfig {
        ask_timeout: Duration::from_millis(500),
        ..TunnelConfig::default()
    })
    .await;
    let node = FakeNode::connect(env.addr).await;
    env.await_tunnel().await;
    // 64 MiB offered in 256 KiB pieces, made as they are read
    let pieces =
        futures::stream::iter(0..256).map(|_| Ok::<_, std::io::Error>(vec![1u8; 256 * 1024]));
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("{GS}/a/files?path=/stall"))
        .header(header::AUTHORIZATION, format!("Bearer {ALICE}"))
        .body(Body::from_stream(pieces))
        .unwrap();
    let response = within(
        Duration::from_secs(10),
        "the stalled upload",
        env.app.clone().oneshot(req),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frames = node.data_frames.load(Ordering::Relaxed);
    assert!(
        frames <= FILE_WINDOW as usize,
        "no more than the window went to the node: {frames}"
    );
}
