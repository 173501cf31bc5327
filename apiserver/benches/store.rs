//! Store benchmark: per backend, single-writer and 8-writer writes/s, watch delivery latency
//! (p50/p99), and the same raw writes without Catalyst's layer (plain sqlx INSERT, plain etcd
//! put) for the ratio.
//!
//! `scripts/bench` starts PostgreSQL and etcd with their default (durable) settings and runs
//! this; by hand: `cargo bench -p catalyst-apiserver --bench store` with
//! `CATALYST_TEST_POSTGRES_URL` and `CATALYST_TEST_ETCD` set (backends without one are skipped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalyst_apiserver::store::{self, Store};
use futures::StreamExt;

const SINGLE_WRITES: usize = 2000;
const WRITERS: usize = 8;
const WRITES_PER_WRITER: usize = 250;
const WATCH_WRITES: usize = 1000;
const VALUE: &[u8] = &[b'x'; 512];

/// Runs the raw-write baseline of a backend: (single writer/s, 8 writers/s).
type RawBench = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, (f64, f64)>>;

#[derive(Debug, Default)]
struct Figures {
    single: f64,
    concurrent: f64,
    raw_single: f64,
    raw_concurrent: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn layer_writes(s: &Arc<dyn Store>, tag: &str) -> (f64, f64) {
    let t = Instant::now();
    for i in 0..SINGLE_WRITES {
        s.create(&format!("/bench/{tag}/single/{i}"), VALUE)
            .await
            .unwrap();
    }
    let single = rate(SINGLE_WRITES, t.elapsed());
    let t = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = s.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                for i in 0..WRITES_PER_WRITER {
                    s.create(&format!("/bench/{tag}/multi/{w}/{i}"), VALUE)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (single, rate(WRITERS * WRITES_PER_WRITER, t.elapsed()))
}

/// Writes one object at a time while a watcher receives them; latency from just before the
/// write call to the event's arrival.
async fn watch_latency(s: &Arc<dyn Store>, tag: &str) -> (f64, f64) {
    let prefix = format!("/bench/{tag}/watch/");
    let start = s.current_revision().await.unwrap();
    let mut watch = s.watch(&prefix, start).await.unwrap();
    let origin = Instant::now();
    let writer = {
        let s = s.clone();
        let prefix = prefix.clone();
        tokio::spawn(async move {
            for i in 0..WATCH_WRITES {
                let sent = origin.elapsed().as_nanos() as u64;
                let mut value = sent.to_le_bytes().to_vec();
                value.extend_from_slice(&VALUE[8..]);
                s.create(&format!("{prefix}{i}"), &value).await.unwrap();
                // a steady rate rather than a burst
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut latencies = Vec::with_capacity(WATCH_WRITES);
    while latencies.len() < WATCH_WRITES {
        let ev = tokio::time::timeout(Duration::from_secs(60), watch.next())
            .await
            .expect("watch stalled")
            .expect("watch ended")
            .expect("watch failed");
        let sent = u64::from_le_bytes(ev.kv.value[..8].try_into().unwrap());
        latencies.push(origin.elapsed() - Duration::from_nanos(sent));
    }
    writer.await.unwrap();
    latencies.sort();
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
}

async fn raw_sql_writes(url: &str, setup: &[&str], insert: &str) -> (f64, f64) {
    use sqlx::Executor;
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(WRITERS as u32)
        .connect(url)
        .await
        .unwrap();
    for stmt in setup {
        pool.execute(*stmt).await.unwrap();
    }
    let t = Instant::now();
    for i in 0..SINGLE_WRITES {
        sqlx::query(insert)
            .bind(format!("/raw/single/{i}"))
            .bind(VALUE)
            .execute(&pool)
            .await
            .unwrap();
    }
    let single = rate(SINGLE_WRITES, t.elapsed());
    let t = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let pool = pool.clone();
            let insert = insert.to_owned();
            tokio::spawn(async move {
                for i in 0..WRITES_PER_WRITER {
                    sqlx::query(&insert)
                        .bind(format!("/raw/multi/{w}/{i}"))
                        .bind(VALUE)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (single, rate(WRITERS * WRITES_PER_WRITER, t.elapsed()))
}

async fn raw_etcd_writes(hosts: &str, prefix: &str) -> (f64, f64) {
    let client = etcd_client::Client::connect([format!("http://{hosts}")], None)
        .await
        .unwrap();
    let t = Instant::now();
    for i in 0..SINGLE_WRITES {
        client
            .kv_client()
            .put(format!("{prefix}/single/{i}"), VALUE, None)
            .await
            .unwrap();
    }
    let single = rate(SINGLE_WRITES, t.elapsed());
    let t = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let client = client.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                for i in 0..WRITES_PER_WRITER {
                    client
                        .kv_client()
                        .put(format!("{prefix}/multi/{w}/{i}"), VALUE, None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (single, rate(WRITERS * WRITES_PER_WRITER, t.elapsed()))
}

async fn bench(backend: &str) -> Option<Figures> {
    let stamp = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let (url, raw): (String, RawBench) = match backend {
        "sqlite" => {
            let raw_url = format!("sqlite://{}?mode=rwc", dir.path().join("raw.db").display());
            (
                format!("sqlite://{}", dir.path().join("catalyst.db").display()),
                Box::new(move || {
                    Box::pin(async move {
                        // the same durability as the store: WAL, fsync on every commit
                        raw_sql_writes(
                            &raw_url,
                            &[
                                "PRAGMA journal_mode = WAL",
                                "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
                            ],
                            "INSERT INTO kv (key, value) VALUES (?1, ?2)",
                        )
                        .await
                    })
                }),
            )
        }
        "postgres" => {
            let admin = std::env::var("CATALYST_TEST_POSTGRES_URL").ok()?;
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            for db in ["bench_store", "bench_raw"] {
                sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                sqlx::query(&format!("CREATE DATABASE {db}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            let base = admin.rsplit_once('/').unwrap().0.to_owned();
            let raw_url = format!("{base}/bench_raw");
            (
                format!("{base}/bench_store"),
                Box::new(move || {
                    Box::pin(async move {
                        raw_sql_writes(
                            &raw_url,
                            &["CREATE TABLE kv (key TEXT PRIMARY KEY, value BYTEA NOT NULL)"],
                            "INSERT INTO kv (key, value) VALUES ($1, $2)",
                        )
                        .await
                    })
                }),
            )
        }
        "etcd" => {
            let hosts = std::env::var("CATALYST_TEST_ETCD").ok()?;
            let raw_hosts = hosts.clone();
            (
                format!("etcd://{hosts}?prefix=/bench-{stamp}"),
                Box::new(move || {
                    Box::pin(
                        async move { raw_etcd_writes(&raw_hosts, &format!("/raw-{stamp}")).await },
                    )
                }),
            )
        }
        _ => unreachable!(),
    };
    let s = store::open(&url).await.unwrap();
    let (single, concurrent) = layer_writes(&s, backend).await;
    let (p50_ms, p99_ms) = watch_latency(&s, backend).await;
    let (raw_single, raw_concurrent) = raw().await;
    Some(Figures {
        single,
        concurrent,
        raw_single,
        raw_concurrent,
        p50_ms,
        p99_ms,
    })
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs bench binaries with --bench absent; do the work only for bench
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "{:<9} {:>12} {:>12} {:>12} {:>12} {:>7} {:>7} {:>10} {:>10}",
        "backend",
        "1 writer/s",
        "raw 1/s",
        "8 writers/s",
        "raw 8/s",
        "ratio1",
        "ratio8",
        "watch p50",
        "watch p99"
    );
    for backend in ["sqlite", "postgres", "etcd"] {
        match bench(backend).await {
            Some(f) => println!(
                "{:<9} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>7.2} {:>7.2} {:>8.2}ms {:>8.2}ms",
                backend,
                f.single,
                f.raw_single,
                f.concurrent,
                f.raw_concurrent,
                f.single / f.raw_single,
                f.concurrent / f.raw_concurrent,
                f.p50_ms,
                f.p99_ms,
            ),
            None => println!("{backend:<9} skipped: set CATALYST_TEST_POSTGRES_URL / CATALYST_TEST_ETCD (scripts/bench does)"),
        }
    }
}
