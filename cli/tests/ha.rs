//! Two `catalyst server` processes on one PostgreSQL or etcd: both serve the API, one leads the
//! controllers; `kill -9` of the leader → the other schedules within 5 s (the default
//! `--leader-lease 3s`, renewed every second).
//!
//! Needs `CATALYST_TEST_POSTGRES_URL` and `CATALYST_TEST_ETCD` (scripts/test sets them); a backend
//! left out of `CATALYST_TEST_BACKENDS` is skipped: its test prints
//! `skipped: <backend> (CATALYST_TEST_BACKENDS=…) <test>` and `scripts/test` counts it as skipped.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use catalyst_e2e::Server;
use serde_json::{json, Value};

use catalyst_e2e::backend_enabled as enabled;

fn start(dir: &Path, store: &str) -> Server {
    Server::start(env!("CARGO_BIN_EXE_catalyst"), dir, &["--store", store])
}

#[path = "support/api.rs"]
mod api;
#[path = "support/pg.rs"]
mod pg;

/// Requests to whichever server a step talks to; an unreachable server answers code 0.
struct Http;

impl Http {
    fn new() -> Self {
        Http
    }

    fn send(
        &self,
        s: &Server,
        method: reqwest::Method,
        path: &str,
        ct: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        api::Api::of(s)
            .try_send(method, path, ct, body)
            .unwrap_or((0, Value::Null))
    }
}

const NODES: &str = "/apis/catalyst.dev/v1alpha1/nodes";
const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
const LEASE: &str =
    "/apis/catalyst.dev/v1alpha1/namespaces/catalyst-system/leases/catalyst-controllers";

fn wait_scheduled(http: &Http, s: &Server, name: &str, within: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        let (code, gs) = http.send(s, reqwest::Method::GET, &format!("{GS}/{name}"), "", None);
        if code == 200 && gs["status"]["phase"] == "Scheduled" {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{name} was not scheduled within {within:?}");
}

fn leader_fails_over(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let a = start(&dir.path().join("a"), store);
    let b = start(&dir.path().join("b"), store);
    let http = Http::new();
    let node = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node", "metadata": {"name": "node-a"},
                      "spec": {"address": "127.0.0.1", "portRange": {"min": 7000, "max": 7100}}});
    assert_eq!(
        http.send(
            &a,
            reqwest::Method::POST,
            NODES,
            "application/json",
            Some(node)
        )
        .0,
        201
    );
    let beat = |s: &Server| {
        let st = json!({"status": {"state": "Ready", "lastHeartbeatTime": chrono::Utc::now(), "allocatable": {"cpu": "8", "memory": "16Gi"}}});
        http.send(
            s,
            reqwest::Method::PATCH,
            &format!("{NODES}/node-a/status"),
            "application/merge-patch+json",
            Some(st),
        )
        .0
    };
    assert_eq!(beat(&b), 200, "b writes to the same store");
    let gs = |name: &str| json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": name}, "spec": {"image": "busybox"}});
    assert_eq!(
        http.send(
            &b,
            reqwest::Method::POST,
            GS,
            "application/json",
            Some(gs("first"))
        )
        .0,
        201
    );
    wait_scheduled(&http, &a, "first", Duration::from_secs(30));
    // who leads? the identity ends with the pid
    let (_, lease) = http.send(&a, reqwest::Method::GET, LEASE, "", None);
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
    let (mut leader, follower) = if holder.ends_with(&format!("-{}", a.child.id())) {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        holder.ends_with(&format!("-{}", leader.child.id())),
        "{holder}"
    );
    let leading = |s: &Server| {
        api::Api::of(s)
            .text("/metrics")
            .lines()
            .find_map(|l| {
                l.strip_prefix("catalyst_controllers_leading ")
                    .map(str::to_owned)
            })
            .expect("catalyst_controllers_leading in /metrics")
    };
    assert_eq!(
        (leading(&leader), leading(&follower)),
        ("1".into(), "0".into())
    );
    Command::new("kill")
        .args(["-9", &leader.child.id().to_string()])
        .status()
        .unwrap();
    let _ = leader.child.wait();
    let killed = Instant::now();
    assert_eq!(beat(&follower), 200);
    assert_eq!(
        http.send(
            &follower,
            reqwest::Method::POST,
            GS,
            "application/json",
            Some(gs("second"))
        )
        .0,
        201
    );
    wait_scheduled(&http, &follower, "second", Duration::from_secs(5));
    let failover = killed.elapsed();
    println!(
        "{store}: the standby scheduled 'second' {:.1} s after the leader was killed",
        failover.as_secs_f64()
    );
    assert!(
        failover <= Duration::from_secs(5),
        "failover took {failover:?}"
    );
    let (_, lease) = http.send(&follower, reqwest::Method::GET, LEASE, "", None);
    assert!(lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .ends_with(&format!("-{}", follower.child.id())));
}

#[test]
fn postgres_leader_killed_the_standby_takes_over() {
    if !enabled("postgres", "postgres_leader_killed_the_standby_takes_over") {
        return;
    }
    leader_fails_over(&pg::fresh_database(&format!("ha_{}", std::process::id())));
}

/// A metric of `s` (None when it does not answer within 500 ms).
fn metric(api: &api::Api, name: &str) -> Option<String> {
    let text = api.try_text("/metrics", Duration::from_millis(500))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
}

fn signal(s: &Server, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &s.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// The leader paused (SIGSTOP) past its lease, the standby takes over, the old leader resumes:
/// at once it no longer leads (its gauge reads 0 within 2 s), two servers never lead at once,
/// and every host port is given once.
#[test]
fn postgres_paused_leader_is_fenced() {
    if !enabled("postgres", "postgres_paused_leader_is_fenced") {
        return;
    }
    // a server paused inside a write transaction holds the store's revision row lock, and
    // every writer waits for it; PostgreSQL ends such a session after this long
    let store = pg::fresh_database(&format!("fence_{}", std::process::id()));
    let dir = tempfile::tempdir().unwrap();
    let a = start(&dir.path().join("a"), &store);
    let b = start(&dir.path().join("b"), &store);
    let http = Http::new();
    let node = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node", "metadata": {"name": "node-a"},
                      "spec": {"address": "127.0.0.1", "portRange": {"min": 7000, "max": 7029}}});
    let post = |s: &Server, path: &str, body: Value| {
        http.send(
            s,
            reqwest::Method::POST,
            path,
            "application/json",
            Some(body),
        )
        .0
    };
    assert_eq!(post(&a, NODES, node), 201);
    let st = json!({"status": {"state": "Ready", "lastHeartbeatTime": chrono::Utc::now(), "allocatable": {"cpu": "64", "memory": "64Gi"}}});
    let patched = http.send(
        &a,
        reqwest::Method::PATCH,
        &format!("{NODES}/node-a/status"),
        "application/merge-patch+json",
        Some(st),
    );
    assert_eq!(patched.0, 200);
    let gs = |name: String| {
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": name},
                                   "spec": {"image": "busybox", "ports": [{"containerPort": 25565}]}})
    };
    assert_eq!(post(&b, GS, gs("first".into())), 201);
    wait_scheduled(&http, &a, "first", Duration::from_secs(30));
    let (_, lease) = http.send(&a, reqwest::Method::GET, LEASE, "", None);
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
    let (leader, follower) = if holder.ends_with(&format!("-{}", a.child.id())) {
        (a, b)
    } else {
        (b, a)
    };
    let transitions = lease["spec"]["leaseTransitions"].as_i64().unwrap();

    // the gauges of both, every 100 ms, until told to stop: never 1 on both at once
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let apis = [api::Api::of(&leader), api::Api::of(&follower)];
    let poller = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut both = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let g = apis
                    .iter()
                    .map(|api| metric(api, "catalyst_controllers_leading"))
                    .collect::<Vec<_>>();
                if g.iter().all(|g| g.as_deref() == Some("1")) {
                    both += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            both
        }
    });

    // work in flight, then the leader pauses
    for i in 0..10 {
        assert_eq!(post(&follower, GS, gs(format!("before-{i}"))), 201);
    }
    signal(&leader, "-STOP");
    let paused = Instant::now();
    let follower_api = api::Api::of(&follower);
    while metric(&follower_api, "catalyst_controllers_leading").as_deref() != Some("1") {
        assert!(
            paused.elapsed() < Duration::from_secs(10),
            "the standby never took over"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "postgres: the standby leads {:.1} s after the leader was paused",
        paused.elapsed().as_secs_f64()
    );
    for i in 0..10 {
        assert_eq!(post(&follower, GS, gs(format!("after-{i}"))), 201);
    }
    std::thread::sleep(Duration::from_secs(1));
    signal(&leader, "-CONT");
    let resumed = Instant::now();
    let leader_api = api::Api::of(&leader);
    loop {
        if metric(&leader_api, "catalyst_controllers_leading").as_deref() == Some("0") {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(2),
            "the resumed leader still leads"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "postgres: the resumed leader's gauge read 0 after {} ms",
        resumed.elapsed().as_millis()
    );

    // everything scheduled, each host port once
    let names: Vec<String> = std::iter::once("first".to_owned())
        .chain((0..10).map(|i| format!("before-{i}")))
        .chain((0..10).map(|i| format!("after-{i}")))
        .collect();
    let mut ports = std::collections::HashSet::new();
    for name in &names {
        wait_scheduled(&http, &follower, name, Duration::from_secs(15));
        let (_, obj) = http.send(
            &follower,
            reqwest::Method::GET,
            &format!("{GS}/{name}"),
            "",
            None,
        );
        let port = obj["status"]["ports"][0]["hostPort"].as_i64().unwrap();
        assert!(ports.insert(port), "host port {port} given twice ({name})");
    }
    // the old leader stays a follower for a while
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(poller.join().unwrap(), 0, "two servers led at once");
    let (_, lease) = http.send(&follower, reqwest::Method::GET, LEASE, "", None);
    assert!(lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .ends_with(&format!("-{}", follower.child.id())));
    assert_eq!(
        lease["spec"]["leaseTransitions"].as_i64(),
        Some(transitions + 1)
    );
    println!(
        "postgres: fenced writes of the resumed leader: {}",
        metric(&leader_api, "catalyst_store_fenced_writes_total").unwrap_or_default()
    );
}

#[test]
fn etcd_leader_killed_the_standby_takes_over() {
    if !enabled("etcd", "etcd_leader_killed_the_standby_takes_over") {
        return;
    }
    let hosts =
        std::env::var("CATALYST_TEST_ETCD").expect("CATALYST_TEST_ETCD (scripts/test sets it)");
    leader_fails_over(&format!("etcd://{hosts}?prefix=/ha-{}", std::process::id()));
}
