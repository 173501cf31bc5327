//! The load of `scripts/soak`: `--slots` workers, each looping over one GameServer's life
//! (create → Running → stop → Stopped → start → Running → delete → gone), all writes paced
//! together to `--rate` per second, through a client given every server URL (it fails over).
//! Phases are read from an informer (list + watch of the soak's GameServers), so waiting costs
//! no polling.
//!
//! A write that failed where it may have been applied (the connection broke after it was sent,
//! a 5xx, a 429) is checked with a GET and sent again only when it was not applied: such an
//! error is counted by kind, and the op fails only when it cannot complete (a bad phase, a
//! refused write, the op's timeout). At the end everything the driver made is deleted and
//! waited for. Figures go to stdout and `--out` (`results.json`).
//!
//! ```text
//! soak --servers http://127.0.0.1:17451,… --token-file admin-token --image /abs/busybox.tar
//!      [--seconds 3600] [--rate 5] [--slots 20] [--op-timeout 180] [--out DIR]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use catalyst_client::informer::{Backoff, Cache, Informer};
use catalyst_client::source::HttpSource;
use catalyst_client::{Client, Error as ApiError, ListParams};
use serde_json::{json, Value};

/// The soak's GameServers live here.
const COLLECTION: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
/// The label the driver puts on its GameServers (and selects by).
const LABEL: (&str, &str) = ("app", "catalyst-soak");
/// How long a write is sent again after failures before its op fails.
const WRITE_RETRY: Duration = Duration::from_secs(60);

/// The measured steps, in cycle order.
const STEPS: [&str; 4] = [
    "create→Running",
    "stop→Stopped",
    "start→Running",
    "delete→gone",
];

#[derive(Debug)]
struct Args {
    servers: String,
    token: String,
    image: String,
    seconds: u64,
    rate: f64,
    slots: usize,
    op_timeout: Duration,
    out: Option<PathBuf>,
}

fn usage() -> &'static str {
    "usage: soak --servers URL[,URL…] --token-file FILE --image /abs/archive.tar [--seconds 3600] \
     [--rate 5] [--slots 20] [--op-timeout 180] [--out DIR]"
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        servers: String::new(),
        token: String::new(),
        image: String::new(),
        seconds: 3600,
        rate: 5.0,
        slots: 20,
        op_timeout: Duration::from_secs(180),
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{}", usage());
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{}", usage()))?;
        match flag.as_str() {
            "--servers" => args.servers = value,
            "--token-file" => {
                args.token = std::fs::read_to_string(&value)
                    .with_context(|| format!("reading {value}"))?
                    .trim()
                    .to_owned();
            }
            "--image" => args.image = value,
            "--seconds" => args.seconds = value.parse().context("--seconds")?,
            "--rate" => args.rate = value.parse().context("--rate")?,
            "--slots" => args.slots = value.parse().context("--slots")?,
            "--op-timeout" => {
                args.op_timeout = Duration::from_secs(value.parse().context("--op-timeout")?);
            }
            "--out" => args.out = Some(PathBuf::from(value)),
            other => bail!("unknown flag {other}\n{}", usage()),
        }
    }
    if args.servers.is_empty() || args.token.is_empty() || args.image.is_empty() {
        bail!(
            "--servers, --token-file and --image are required\n{}",
            usage()
        );
    }
    if args.rate.is_nan() || args.rate <= 0.0 || args.slots == 0 {
        bail!("--rate and --slots must be positive");
    }
    Ok(args)
}

/// What the run measured.
#[derive(Debug, Default)]
struct Stats {
    /// Per step, the time from the first send of its write to the phase seen.
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    /// Errors by `write: kind` (also those of writes checked and sent again).
    errors: BTreeMap<String, u64>,
    /// Writes that failed after they may have been applied.
    may_have_applied: u64,
    /// Ops that could not complete, with why (the first 200).
    failed: Vec<String>,
    failed_count: u64,
    /// Write requests sent (retries included).
    writes: u64,
    /// Cycles completed without a failed op.
    cycles: u64,
}

impl Stats {
    fn fail(&mut self, started: Instant, what: String) {
        self.failed_count += 1;
        if self.failed.len() < 200 {
            self.failed
                .push(format!("{:>7.1}s {what}", started.elapsed().as_secs_f64()));
        }
        eprintln!("soak: failed op: {what}");
    }
}

/// Spaces every write of every worker `interval` apart.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().expect("pacer");
            let at = (*next).max(Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Create,
    Stop,
    Start,
    Delete,
}

impl Write {
    fn name(self) -> &'static str {
        match self {
            Write::Create => "create",
            Write::Stop => "stop",
            Write::Start => "start",
            Write::Delete => "delete",
        }
    }
}

/// What a wait sees in an object (None: absent).
enum Seen {
    Done,
    Pending,
    Bad(String),
}

fn phase(obj: Option<&Value>) -> Option<&str> {
    obj?.pointer("/status/phase").and_then(Value::as_str)
}

fn running(obj: Option<&Value>) -> Seen {
    match phase(obj) {
        Some("Running") => Seen::Done,
        Some(p @ ("Error" | "Crashed")) => Seen::Bad(format!("phase {p}")),
        // Stopped, until the start is picked up
        _ => Seen::Pending,
    }
}

fn stopped(obj: Option<&Value>) -> Seen {
    match phase(obj) {
        Some("Stopped") => Seen::Done,
        Some(p @ ("Error" | "Crashed")) => Seen::Bad(format!("phase {p}")),
        _ if obj.is_none() => Seen::Bad("gone".into()),
        _ => Seen::Pending,
    }
}

fn gone(obj: Option<&Value>) -> Seen {
    if obj.is_none() {
        Seen::Done
    } else {
        Seen::Pending
    }
}

/// A short name of an error, for counting.
fn kind(e: &ApiError) -> String {
    match e {
        ApiError::Unreachable { .. } => "unreachable".into(),
        ApiError::MayHaveApplied { .. } => "may-have-applied".into(),
        ApiError::Status { code, status } => format!("{code} {}", status.reason),
        ApiError::Decode(_) => "decode".into(),
        other => format!("{other}"),
    }
}

/// Shared by the workers.
#[derive(Debug)]
struct Soak {
    client: Client,
    cache: Arc<Cache>,
    changed: tokio::sync::watch::Receiver<u64>,
    pacer: Pacer,
    stats: Mutex<Stats>,
    image: String,
    op_timeout: Duration,
    run: String,
    started: Instant,
}

impl Soak {
    fn manifest(&self, name: &str) -> Value {
        json!({
            "apiVersion": "catalyst.dev/v1alpha1",
            "kind": "GameServer",
            "metadata": {"name": name, "namespace": "default", "labels": {LABEL.0: LABEL.1}},
            "spec": {
                "image": format!("oci-archive:{}", self.image),
                "startup": "echo ready; while read line; do [ \"$line\" = stop ] && exit 0; echo \"got: $line\"; done",
                "ports": [{"containerPort": 8080}],
                "ready": {"logPattern": "^ready$"},
                "stop": {"command": "stop", "timeoutSeconds": 10},
                "resources": {"memory": "32Mi", "pids": 32}
            }
        })
    }

    async fn send(&self, w: Write, name: &str) -> Result<Value, ApiError> {
        let path = format!("{COLLECTION}/{name}");
        match w {
            Write::Create => self.client.post(COLLECTION, self.manifest(name)).await,
            Write::Stop => {
                let p = format!("{path}/stop?fieldManager=catalyst-soak");
                self.client.post(&p, json!({})).await
            }
            Write::Start => {
                let p = format!("{path}/start?fieldManager=catalyst-soak");
                self.client.post(&p, json!({})).await
            }
            Write::Delete => self.client.delete(&path).await,
        }
    }

    /// After an ambiguous failure: whether the write took effect (None: cannot tell now).
    async fn applied(&self, w: Write, name: &str) -> Option<bool> {
        let obj = match self.client.get(&format!("{COLLECTION}/{name}")).await {
            Ok(o) => Some(o),
            Err(e) if e.is_not_found() => None,
            Err(_) => return None,
        };
        let state = |o: &Value| {
            o.pointer("/spec/state")
                .and_then(Value::as_str)
                .unwrap_or("Running")
                .to_owned()
        };
        Some(match (w, &obj) {
            (Write::Create, o) => o.is_some(),
            (Write::Stop, Some(o)) => state(o) == "Stopped",
            (Write::Start, Some(o)) => state(o) == "Running",
            (Write::Stop | Write::Start, None) => false,
            (Write::Delete, None) => true,
            (Write::Delete, Some(o)) => o.pointer("/metadata/deletionTimestamp").is_some(),
        })
    }

    /// Sends a write (paced), checking and sending it again after failures that may or may
    /// not have applied it; when it was first sent.
    async fn write(&self, w: Write, name: &str) -> Result<Instant, String> {
        let mut first = None;
        let begun = Instant::now();
        loop {
            self.pacer.wait().await;
            let sent = Instant::now();
            let first_sent = *first.get_or_insert(sent);
            self.stats.lock().expect("stats").writes += 1;
            let e = match self.send(w, name).await {
                Ok(_) => return Ok(first_sent),
                Err(e) => e,
            };
            let k = kind(&e);
            {
                let mut s = self.stats.lock().expect("stats");
                *s.errors.entry(format!("{}: {k}", w.name())).or_default() += 1;
                if matches!(e, ApiError::MayHaveApplied { .. }) {
                    s.may_have_applied += 1;
                }
            }
            eprintln!(
                "soak: {:.1}s {} {name}: {e}",
                self.started.elapsed().as_secs_f64(),
                w.name()
            );
            let retried = sent > first_sent;
            let code = e.code();
            let ambiguous = match &e {
                ApiError::Unreachable { .. } | ApiError::MayHaveApplied { .. } => true,
                ApiError::Status { code, .. } => *code == 429 || *code >= 500 || *code == 409,
                _ => false,
            };
            // a retry that finds the first attempt's work done
            if retried && w == Write::Create && code == Some(409) {
                return Ok(first_sent);
            }
            // gone already (an earlier attempt, or a create that never applied)
            if w == Write::Delete && code == Some(404) {
                return Ok(first_sent);
            }
            if !ambiguous || (w == Write::Create && code == Some(409) && !retried) {
                return Err(format!("{}: {k}", w.name()));
            }
            // did it apply? ask until a server answers
            let check_until = Instant::now() + Duration::from_secs(20);
            loop {
                match self.applied(w, name).await {
                    Some(true) => return Ok(first_sent),
                    Some(false) => break,
                    None if Instant::now() < check_until => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    None => break,
                }
            }
            if begun.elapsed() > WRITE_RETRY {
                return Err(format!(
                    "{}: {k} (sent again for {WRITE_RETRY:?})",
                    w.name()
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Waits until `name` is as `until` wants it, as the informer sees it.
    async fn wait(&self, name: &str, until: fn(Option<&Value>) -> Seen) -> Result<Instant, String> {
        let key = format!("default/{name}");
        let mut rx = self.changed.clone();
        let deadline = Instant::now() + self.op_timeout;
        loop {
            rx.borrow_and_update();
            let obj = self.cache.get(&key);
            match until(obj.as_deref()) {
                Seen::Done => return Ok(Instant::now()),
                Seen::Bad(why) => return Err(why),
                Seen::Pending => {}
            }
            match tokio::time::timeout_at(deadline.into(), rx.changed()).await {
                Err(_) => {
                    let at = phase(obj.as_deref()).unwrap_or(if obj.is_some() {
                        "no phase"
                    } else {
                        "absent"
                    });
                    return Err(format!("timed out after {:?} ({at})", self.op_timeout));
                }
                Ok(Err(_)) => return Err("the informer stopped".into()),
                Ok(Ok(())) => {}
            }
        }
    }

    fn record(&self, step: &'static str, from: Instant, to: Instant) {
        self.stats
            .lock()
            .expect("stats")
            .latencies
            .entry(step)
            .or_default()
            .push(to - from);
    }

    /// One cycle of one GameServer; on a failed op, it is deleted (best effort).
    async fn cycle(&self, name: &str) {
        let result = self.steps(name).await;
        match result {
            Ok(()) => self.stats.lock().expect("stats").cycles += 1,
            Err(why) => {
                self.stats
                    .lock()
                    .expect("stats")
                    .fail(self.started, format!("{name}: {why}"));
                let cleaned = match self.write(Write::Delete, name).await {
                    Ok(_) => self.wait(name, gone).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = cleaned {
                    self.stats
                        .lock()
                        .expect("stats")
                        .fail(self.started, format!("{name}: cleanup: {e}"));
                }
            }
        }
    }

    async fn steps(&self, name: &str) -> Result<(), String> {
        let sent = self.write(Write::Create, name).await?;
        let seen = self
            .wait(name, running)
            .await
            .map_err(|e| format!("create→Running: {e}"))?;
        self.record(STEPS[0], sent, seen);

        let sent = self.write(Write::Stop, name).await?;
        let seen = self
            .wait(name, stopped)
            .await
            .map_err(|e| format!("stop→Stopped: {e}"))?;
        self.record(STEPS[1], sent, seen);

        let sent = self.write(Write::Start, name).await?;
        let seen = self
            .wait(name, running)
            .await
            .map_err(|e| format!("start→Running: {e}"))?;
        self.record(STEPS[2], sent, seen);

        let sent = self.write(Write::Delete, name).await?;
        let seen = self
            .wait(name, gone)
            .await
            .map_err(|e| format!("delete→gone: {e}"))?;
        self.record(STEPS[3], sent, seen);
        Ok(())
    }
}

/// Deletes every GameServer of the soak and waits until none is listed; how many are left.
async fn delete_everything(client: &Client, within: Duration) -> usize {
    let params = ListParams {
        label_selector: Some(format!("{}={}", LABEL.0, LABEL.1)),
        ..ListParams::default()
    };
    let deadline = Instant::now() + within;
    let mut left = usize::MAX;
    while Instant::now() < deadline {
        match client.list(COLLECTION, &params).await {
            Ok(list) => {
                left = list.items.len();
                if left == 0 {
                    return 0;
                }
                for o in &list.items {
                    let deleting = o.pointer("/metadata/deletionTimestamp").is_some();
                    let name = o
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !deleting && !name.is_empty() {
                        let _ = client.delete(&format!("{COLLECTION}/{name}")).await;
                    }
                }
            }
            Err(e) => eprintln!("soak: listing what is left: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    left
}

fn figures(sorted: &[Duration]) -> Value {
    let ms = |p| {
        let v = catalyst_e2e::percentile_ms(sorted, p);
        if v.is_nan() {
            Value::Null
        } else {
            json!((v * 10.0).round() / 10.0)
        }
    };
    json!({"count": sorted.len(), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1.0)})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = parse_args()?;
    let client = Client::new(&args.servers, &args.token).with_component("catalyst-soak");

    // every change of the soak's GameServers wakes the waiting workers
    let cache = Arc::new(Cache::default());
    let (tx, changed) = tokio::sync::watch::channel(0u64);
    let params = ListParams {
        label_selector: Some(format!("{}={}", LABEL.0, LABEL.1)),
        ..ListParams::default()
    };
    let informer = Informer::new(
        HttpSource::new(client.clone(), COLLECTION, params),
        cache.clone(),
    )
    .with_backoff(Backoff::fixed(Duration::from_millis(500)))
    .with_name("soak");
    tokio::spawn(informer.run(move |_| tx.send_modify(|n| *n += 1)));

    // what an earlier run left (a killed driver) goes first
    let left = delete_everything(&client, Duration::from_secs(120)).await;
    anyhow::ensure!(
        left == 0,
        "{left} GameServers of an earlier soak are still there"
    );

    let started = Instant::now();
    let soak = Arc::new(Soak {
        client: client.clone(),
        cache,
        changed,
        pacer: Pacer {
            interval: Duration::from_secs_f64(1.0 / args.rate),
            next: Mutex::new(Instant::now()),
        },
        stats: Mutex::new(Stats::default()),
        image: args.image.clone(),
        op_timeout: args.op_timeout,
        run: format!("{:x}", std::process::id()),
        started,
    });
    let until = started + Duration::from_secs(args.seconds);
    println!(
        "soak: {} slots, {} writes/s, {} s, through {}",
        args.slots,
        args.rate,
        args.seconds,
        client.servers().join(",")
    );
    let workers: Vec<_> = (0..args.slots)
        .map(|slot| {
            let soak = soak.clone();
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < until {
                    let name = format!("soak-{}-{slot}-{i}", soak.run);
                    soak.cycle(&name).await;
                    i += 1;
                }
            })
        })
        .collect();
    // progress every minute
    let progress = {
        let soak = soak.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let s = soak.stats.lock().expect("stats");
                let errors: u64 = s.errors.values().sum();
                println!(
                    "soak: {:>5.0}s cycles {} writes {} errors {} failed ops {}",
                    soak.started.elapsed().as_secs_f64(),
                    s.cycles,
                    s.writes,
                    errors,
                    s.failed_count
                );
            }
        })
    };
    for w in workers {
        w.await.context("a worker panicked")?;
    }
    progress.abort();
    let load_secs = started.elapsed().as_secs_f64();
    let leftover = delete_everything(&client, Duration::from_secs(180)).await;

    let s = soak.stats.lock().expect("stats");
    let mut ops = serde_json::Map::new();
    for step in STEPS {
        let mut l = s.latencies.get(step).cloned().unwrap_or_default();
        l.sort();
        ops.insert(step.to_owned(), figures(&l));
    }
    let errors: u64 = s.errors.values().sum();
    let results = json!({
        "seconds": (load_secs * 10.0).round() / 10.0,
        "slots": args.slots,
        "rate": args.rate,
        "cycles": s.cycles,
        "writes": s.writes,
        "writes_per_s": ((s.writes as f64 / load_secs) * 100.0).round() / 100.0,
        "ops": ops,
        "errors": s.errors,
        "errors_total": errors,
        "may_have_applied": s.may_have_applied,
        "failed_ops": s.failed_count,
        "failed": s.failed,
        "leftover": leftover,
    });
    println!(
        "soak: {load_secs:.0} s, {} cycles, {} writes ({:.2}/s), {errors} errors, {} failed ops, {leftover} GameServers left",
        s.cycles,
        s.writes,
        s.writes as f64 / load_secs,
        s.failed_count
    );
    for step in STEPS {
        let o = &results["ops"][step];
        println!(
            "soak:   {step:<15} n={:<5} p50 {} ms  p99 {} ms  max {} ms",
            o["count"], o["p50_ms"], o["p99_ms"], o["max_ms"]
        );
    }
    for (k, n) in &s.errors {
        println!("soak:   error {k}: {n}");
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(&results)? + "\n",
        )?;
    }
    Ok(())
}
