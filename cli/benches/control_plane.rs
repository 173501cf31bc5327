//! Control-plane scale: a real `catalyst server` (API server + controllers, SQLite) with 100
//! simulated nodes, each with a fake nodelet that reports its servers Starting then Running
//! (one after another) instead of running containers. 10,000 GameServers are created over HTTP
//! by 8 clients; prints the time until all are Running, create → Running p50/p99, the server's
//! RSS, and how long the garbage collector takes to delete a dependent of a deleted owner with
//! all those servers and their Events stored.
//!
//! `scripts/bench` runs it; by hand: `cargo bench -p catalyst-cli --bench control_plane`
//! (`CATALYST_BENCH_SERVERS` and `CATALYST_BENCH_NODES` change the scale).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalyst_e2e::{percentile_ms, rss_mib, Server};
use futures::StreamExt;
use serde_json::{json, Value};

const CLIENTS: usize = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        ct: &str,
        body: Value,
    ) -> (u16, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", ct)
            .body(if body.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&body).unwrap()
            })
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    async fn status(&self, path: &str, status: Value) -> u16 {
        self.send(
            reqwest::Method::PATCH,
            &format!("{path}/status"),
            "application/merge-patch+json",
            json!({"status": status}),
        )
        .await
        .0
    }
}

async fn heartbeat(api: &Api, nodes: usize) {
    for n in 0..nodes {
        let code = api
            .status(
                &format!("/apis/catalyst.dev/v1alpha1/nodes/node-{n}"),
                json!({"state": "Ready", "lastHeartbeatTime": chrono::Utc::now(),
                       "allocatable": {"cpu": "64", "memory": "256Gi", "disk": "2Ti"}}),
            )
            .await;
        assert_eq!(code, 200);
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let servers = env_usize("CATALYST_BENCH_SERVERS", 10_000);
    let nodes = env_usize("CATALYST_BENCH_NODES", 100);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(env!("CARGO_BIN_EXE_catalyst"), &data, &[]);
    let pid = server.pid();
    let api = Api {
        http: server.async_http_client(),
        base: server.url.clone(),
        token: server.token.clone(),
    };

    for n in 0..nodes {
        let node = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node", "metadata": {"name": format!("node-{n}")},
                          "spec": {"address": format!("127.0.1.{}", n % 250 + 1), "portRange": {"min": 7000, "max": 7999}}});
        let (code, _) = api
            .send(
                reqwest::Method::POST,
                "/apis/catalyst.dev/v1alpha1/nodes",
                "application/json",
                node,
            )
            .await;
        assert_eq!(code, 201);
    }
    heartbeat(&api, nodes).await;
    let beating = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                heartbeat(&api, nodes).await;
            }
        })
    };

    // fake nodelets, one per simulated node: Scheduled → Starting → Running, reported through
    // /status like a nodelet (each node's servers one after another)
    let created_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let gs_path = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
    let mut node_tx = HashMap::new();
    let mut reporters = Vec::new();
    for n in 0..nodes {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        node_tx.insert(format!("node-{n}"), tx);
        let (api, created_at, latencies) = (api.clone(), created_at.clone(), latencies.clone());
        reporters.push(tokio::spawn(async move {
            while let Some(name) = rx.recv().await {
                let path = format!("{gs_path}/{name}");
                assert_eq!(api.status(&path, json!({"phase": "Starting"})).await, 200);
                assert_eq!(api.status(&path, json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "reason": "Simulated"}]})).await, 200);
                let start = created_at.lock().unwrap().get(&name).copied();
                if let Some(t) = start {
                    latencies.lock().unwrap().push(t.elapsed());
                }
            }
        }));
    }
    let watch = api
        .http
        .get(format!(
            "{}{gs_path}?watch=true&resourceVersion=1",
            api.base
        ))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    let watcher = tokio::spawn(async move {
        let mut body = watch.bytes_stream();
        let mut buf = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let ev: Value = serde_json::from_slice(&line).unwrap();
                if ev["object"]["status"]["phase"] == "Scheduled" {
                    let name = ev["object"]["metadata"]["name"].as_str().unwrap();
                    let node = ev["object"]["status"]["nodeName"]
                        .as_str()
                        .unwrap_or_default();
                    if let Some(tx) = node_tx.get(node) {
                        let _ = tx.send(name.to_owned());
                    }
                }
            }
        }
    });

    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (api, created_at) = (api.clone(), created_at.clone());
            tokio::spawn(async move {
                for i in (c..servers).step_by(CLIENTS) {
                    let name = format!("gs-{i}");
                    let gs = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": name},
                                    "spec": {"image": "busybox", "resources": {"cpu": "500m", "memory": "1Gi"},
                                             "ports": [{"containerPort": 25565, "protocol": "TCPUDP"}]}});
                    created_at.lock().unwrap().insert(name, Instant::now());
                    let (code, body) = api.send(reqwest::Method::POST, gs_path, "application/json", gs).await;
                    assert_eq!(code, 201, "{body}");
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let created = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let n = latencies.lock().unwrap().len();
        if n >= servers {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {servers} Running after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_running = start.elapsed();
    let rss = rss_mib(pid);
    let collected = owner_to_dependent_gone(&api).await;
    beating.abort();
    watcher.abort();
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    println!("Control plane, fake runtime ({nodes} simulated nodes, SQLite, one catalyst server process):");
    println!(
        "  {servers} GameServers created in {:.1} s ({:.0}/s over HTTP, {CLIENTS} clients)",
        created.as_secs_f64(),
        servers as f64 / created.as_secs_f64()
    );
    println!("  all Running after    {:.1} s", all_running.as_secs_f64());
    println!(
        "  create -> Running    p50 {:.0} ms, p99 {:.0} ms",
        percentile_ms(&l, 0.5),
        percentile_ms(&l, 0.99)
    );
    println!("  API server RSS       {rss:.1} MiB");
    println!(
        "  owner deleted -> dependent deleted {:.0} ms (with {servers} GameServers and their Events stored)",
        collected.as_secs_f64() * 1000.0
    );
    drop(server);
}

/// Garbage collection at scale: a Pending GameServer (no node matches it) owns a Secret; the
/// time from deleting the server to the Secret gone (the controller finalizes the server, the
/// garbage collector finds the Secret through its ownerReference index).
async fn owner_to_dependent_gone(api: &Api) -> Duration {
    let gs_path = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
    let secrets = "/apis/catalyst.dev/v1alpha1/namespaces/default/secrets";
    let owner = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": "gc-owner"},
                       "spec": {"image": "busybox", "nodeSelector": {"nowhere": "true"}}});
    let (code, owner) = api
        .send(reqwest::Method::POST, gs_path, "application/json", owner)
        .await;
    assert_eq!(code, 201, "{owner}");
    let secret = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Secret",
        "metadata": {"name": "gc-dependent", "ownerReferences": [{"apiVersion": "catalyst.dev/v1alpha1",
            "kind": "GameServer", "name": "gc-owner", "uid": owner["metadata"]["uid"]}]},
        "spec": {"data": {"k": "v"}}});
    let (code, body) = api
        .send(reqwest::Method::POST, secrets, "application/json", secret)
        .await;
    assert_eq!(code, 201, "{body}");
    // the controller's finalizer is on before the deletion, as it would be on any real server
    for _ in 0..300 {
        let (_, obj) = api
            .send(
                reqwest::Method::GET,
                &format!("{gs_path}/gc-owner"),
                "application/json",
                Value::Null,
            )
            .await;
        if obj.pointer("/metadata/finalizers/0").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = Instant::now();
    let (code, body) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{gs_path}/gc-owner"),
            "application/json",
            Value::Null,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    loop {
        let (code, _) = api
            .send(
                reqwest::Method::GET,
                &format!("{secrets}/gc-dependent"),
                "application/json",
                Value::Null,
            )
            .await;
        if code == 404 {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the dependent was never collected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
