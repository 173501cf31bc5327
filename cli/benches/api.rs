//! API benchmark against a real `catalyst server` process on SQLite: creates/s and gets/s over
//! HTTP with 8 concurrent clients beside the raw store's writes/s in the same run; 1,000
//! concurrent watchers and their delivery latency at a steady write rate; the server's RSS.
//!
//! `scripts/bench` runs it; by hand: `cargo bench -p catalyst-cli --bench api`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalyst_e2e::{percentile_ms, rss_mib, Server};
use futures::StreamExt;
use serde_json::{json, Value};

const CLIENTS: usize = 8;
const CREATES: usize = 2000;
const GETS: usize = 10_000;
const WATCHERS: usize = 1000;
const WATCH_WRITES: usize = 100;
const WATCH_RATE_PER_SEC: u64 = 20;

fn gameserver(name: &str) -> Value {
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
           "metadata": {"name": name, "labels": {"bench": "yes"}},
           "spec": {"image": "busybox", "ports": [{"containerPort": 25565, "protocol": "TCPUDP"}],
                    "resources": {"cpu": "1", "memory": "1Gi"}}})
}

async fn raw_store_writes(dir: &std::path::Path) -> f64 {
    let store =
        catalyst_apiserver::store::open(&format!("sqlite://{}", dir.join("raw.db").display()))
            .await
            .unwrap();
    let value = serde_json::to_vec(&gameserver("x")).unwrap();
    let t = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in 0..CREATES / CLIENTS {
                    store
                        .create(&format!("/gameservers/default/raw-{c}-{i}"), &value)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    CREATES as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(env!("CARGO_BIN_EXE_catalyst"), &data, &[]);
    let pid = server.pid();
    let (base, token) = (server.url.clone(), server.token.clone());
    let http = server
        .async_http_builder()
        .pool_max_idle_per_host(2 * WATCHERS)
        .build()
        .unwrap();
    let gs = format!("{base}/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_mib(pid);

    let raw = raw_store_writes(dir.path()).await;

    let t = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, gs, token) = (http.clone(), gs.clone(), token.clone());
            tokio::spawn(async move {
                for i in 0..CREATES / CLIENTS {
                    let resp = http
                        .post(&gs)
                        .bearer_auth(&token)
                        .json(&gameserver(&format!("gs-{c}-{i}")))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status().as_u16(), 201);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let creates = CREATES as f64 / t.elapsed().as_secs_f64();
    // at once, so the figure is there even if a later step fails
    eprintln!("creates/s {creates:.0} with the controllers running; raw store writes/s {raw:.0}; ratio {:.2}", creates / raw);

    let t = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, gs, token) = (http.clone(), gs.clone(), token.clone());
            tokio::spawn(async move {
                for i in 0..GETS / CLIENTS {
                    let name = format!("gs-{c}-{}", i % (CREATES / CLIENTS));
                    let resp = http
                        .get(format!("{gs}/{name}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status().as_u16(), 200);
                    resp.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let gets = GETS as f64 / t.elapsed().as_secs_f64();

    // 1,000 watchers, each receiving every write; latency from the write's start to arrival.
    let list: Value = http
        .get(format!("{gs}?limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        WATCHERS * WATCH_WRITES,
    )));
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let resp = http
            .get(format!(
                "{gs}?watch=true&resourceVersion={rv}&labelSelector=watch%3Dyes"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let latencies = latencies.clone();
        watchers.push(tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut buf = Vec::new();
            let mut seen = 0;
            while seen < WATCH_WRITES {
                let Some(Ok(chunk)) = body.next().await else {
                    break;
                };
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let ev: Value = serde_json::from_slice(&line).unwrap();
                    if let Some(sent) = ev["object"]["metadata"]["annotations"]["sent-ns"].as_str()
                    {
                        let sent = Duration::from_nanos(sent.parse().unwrap());
                        latencies.lock().unwrap().push(origin.elapsed() - sent);
                        seen += 1;
                    }
                }
            }
        }));
    }
    let watch_rss = rss_mib(pid);
    let gap = Duration::from_millis(1000 / WATCH_RATE_PER_SEC);
    for i in 0..WATCH_WRITES {
        let mut obj = gameserver(&format!("w-{i}"));
        obj["metadata"]["labels"]["watch"] = "yes".into();
        obj["metadata"]["annotations"] =
            json!({"sent-ns": origin.elapsed().as_nanos().to_string()});
        let resp = http
            .post(&gs)
            .bearer_auth(&token)
            .json(&obj)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        tokio::time::sleep(gap).await;
    }
    for w in watchers {
        let _ = tokio::time::timeout(Duration::from_secs(60), w).await;
    }
    let busy_rss = rss_mib(pid);
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let delivered = l.len();

    println!("API over HTTP (SQLite store, {CLIENTS} clients):");
    println!("  creates/s            {creates:>10.0}   (raw store writes/s in the same run: {raw:.0}; ratio {:.2})", creates / raw);
    println!("  gets/s               {gets:>10.0}");
    println!(
        "  {WATCHERS} watchers, {WATCH_WRITES} writes at {WATCH_RATE_PER_SEC}/s: delivered {delivered}/{}; latency p50 {:.2} ms, p99 {:.2} ms",
        WATCHERS * WATCH_WRITES,
        percentile_ms(&l, 0.5),
        percentile_ms(&l, 0.99)
    );
    println!("  server RSS           idle {idle_rss:.1} MiB; {WATCHERS} watchers connected {watch_rss:.1} MiB; after the writes {busy_rss:.1} MiB");
    drop(server);
}
