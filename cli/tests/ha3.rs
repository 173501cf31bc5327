//! Three `catalyst server` processes on a three-member etcd (each member its own process and
//! data directory, started by the test) under a steady stream of creates: the raft leader among
//! the etcd members is killed, then the server leading the controllers (kill -9). Every
//! acknowledged create is kept and scheduled once, host ports stay unique, the controllers
//! resume on another server within 5 s, and exactly one server leads at the end. A watch through
//! the multi-URL client, following from before the load at the server that is killed, resumes
//! at another server from its last resourceVersion: every create arrives once, in revision
//! order, and nothing is missed or answered 410. Failed logins of an account count at every
//! server. The servers' leading gauges, polled every 100 ms throughout, never read 1 at two
//! servers at once.
//!
//! The same under rolling restarts on PostgreSQL, and a stopping server ends its watches at once.
//!
//! Needs Debian's `etcd-server` and PostgreSQL; a backend left out of `CATALYST_TEST_BACKENDS`
//! is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalyst_e2e::etcd::EtcdCluster;
use catalyst_e2e::Server;
use serde_json::{json, Value};

#[path = "support/api.rs"]
mod api;
#[path = "support/pg.rs"]
mod pg;
use api::Api;

const NODES: &str = "/apis/catalyst.dev/v1alpha1/nodes";
const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
const LEASE: &str =
    "/apis/catalyst.dev/v1alpha1/namespaces/catalyst-system/leases/catalyst-controllers";

/// What a client thread needs to reach a server.
#[derive(Clone)]
struct Endpoint {
    url: String,
    token: String,
    ca: Option<Vec<u8>>,
}

impl Endpoint {
    fn of(s: &Server) -> Self {
        Endpoint {
            url: s.url.replace("0.0.0.0", "127.0.0.1"),
            token: s.token.clone(),
            ca: s.ca_pem.clone(),
        }
    }

    fn api(&self) -> Api {
        Api::new(&self.url, &self.token, self.ca.as_deref())
    }
}

fn leading(api: &Api) -> Option<u8> {
    let (code, _) = api.try_send(reqwest::Method::GET, "/readyz", "", None)?;
    (code == 200).then_some(())?;
    // a server killed between the two requests answers nothing (no panic)
    let text = api.try_text("/metrics", Duration::from_secs(5))?;
    text.lines().find_map(|l| {
        l.strip_prefix("catalyst_controllers_leading ")
            .and_then(|v| v.trim().parse().ok())
    })
}

/// An account's failed logins are counted in the store: its 5 free failures, spread over the
/// three servers, are used up once, and then every server answers 429.
fn failed_logins_count_at_every_server(endpoints: &[Endpoint]) {
    let body = json!({"username": "mallory", "password": "guess"});
    let login = |at: usize| {
        endpoints[at % 3]
            .api()
            .send(
                reqwest::Method::POST,
                "/auth/v1/login",
                "application/json",
                Some(body.clone()),
            )
            .0
    };
    for i in 0..6 {
        assert_eq!(login(i), 401, "failed login {i}");
    }
    for at in 0..3 {
        assert_eq!(login(at), 429, "after 6 failures, at server {at}");
    }
}

/// The Node the GameServers are scheduled to (no nodelet: the test beats for it).
fn register_node(api: &Api) {
    let node = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node", "metadata": {"name": "node-a"},
                      "spec": {"address": "127.0.0.1", "portRange": {"min": 7000, "max": 7999}}});
    assert_eq!(
        api.send(reqwest::Method::POST, NODES, "application/json", Some(node))
            .0,
        201
    );
    assert_eq!(beat(api), 200);
}

fn beat(api: &Api) -> u16 {
    let st = json!({"status": {"state": "Ready", "lastHeartbeatTime": chrono::Utc::now(),
                               "allocatable": {"cpu": "64", "memory": "256Gi"}}});
    api.try_send(
        reqwest::Method::PATCH,
        &format!("{NODES}/node-a/status"),
        "application/merge-patch+json",
        Some(st),
    )
    .map_or(0, |r| r.0)
}

#[test]
fn three_servers_on_three_etcd_members_lose_no_acknowledged_create() {
    if !catalyst_e2e::backend_enabled(
        "etcd",
        "three_servers_on_three_etcd_members_lose_no_acknowledged_create",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = EtcdCluster::start(&dir.path().join("etcd"), 3).expect("etcd (etcd-server)");
    let store = format!(
        "etcd://{}?prefix=/ha3-{}",
        etcd.endpoints(),
        std::process::id()
    );
    let mut servers: Vec<Option<Server>> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            Some(Server::start(
                env!("CARGO_BIN_EXE_catalyst"),
                &dir.path().join(n),
                &["--store", &store],
            ))
        })
        .collect();
    let endpoints: Vec<Endpoint> = servers
        .iter()
        .map(|s| Endpoint::of(s.as_ref().unwrap()))
        .collect();
    let first = endpoints[0].api();
    register_node(&first);
    failed_logins_count_at_every_server(&endpoints);
    let from: i64 = first.get(GS).expect("list")["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("the list's resourceVersion");

    let polling = Arc::new(AtomicBool::new(false));
    let leaders = poll_leaders(&endpoints, polling.clone());
    let load = Load::start(&endpoints);
    std::thread::sleep(Duration::from_secs(2));

    // 1. the etcd member that leads raft goes
    let member = etcd.leader().expect("an etcd leader");
    etcd.kill(member);
    println!("killed etcd member {member} (raft leader)");
    std::thread::sleep(Duration::from_secs(3));

    // 2. the server that leads the controllers goes (kill -9)
    let holder = first
        .get(LEASE)
        .expect("the lease")
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    let leader = servers
        .iter()
        .position(|s| holder.contains(&format!("-{}", s.as_ref().unwrap().pid())))
        .expect("the holder is one of the three");
    // a watch through the client of all three URLs, at the server about to be killed first,
    // from before the load: it has caught up before the kill
    let order: Vec<&Endpoint> = (0..3).map(|k| &endpoints[(leader + k) % 3]).collect();
    let watcher = Watcher::start(&order, from);
    watcher.caught_up(Duration::from_secs(20));
    load.down(leader);
    let mut killed_server = servers[leader].take().unwrap();
    Command::new("kill")
        .args(["-9", &killed_server.pid().to_string()])
        .status()
        .unwrap();
    let _ = killed_server.child.wait();
    let killed = Instant::now();
    println!("killed server {leader} (controllers' leader)");
    let survivor = endpoints[(leader + 1) % 3].api();
    // the first create acknowledged after the kill is scheduled within 5 s of the kill
    let after_kill = loop {
        let newest = load
            .acked
            .lock()
            .unwrap()
            .iter()
            .find(|(_, at)| **at > killed)
            .map(|(n, _)| n.clone());
        if let Some(n) = newest {
            break n;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no create acknowledged after the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let failover = loop {
        let phase = survivor
            .get(&format!("{GS}/{after_kill}"))
            .ok()
            .and_then(|g| {
                g.pointer("/status/phase")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        if phase.as_deref() == Some("Scheduled") {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "{after_kill} not scheduled 15 s after the leader was killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "controllers resumed: {after_kill} scheduled {:.2} s after the leader's kill -9",
        failover.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(2));
    let acked: BTreeSet<String> = load.acked.lock().unwrap().keys().cloned().collect();
    let failed = check_everything_kept(load, &survivor);
    // only creates in flight when a server or the raft leader died may fail
    assert!(failed <= 3, "too many failed creates");
    watcher.check(&acked, &endpoints[leader].url);
    assert!(
        failover <= Duration::from_secs(5),
        "the controllers resumed {failover:?} after the kill"
    );
    one_leader(&endpoints, &[leader]);
    // never two leaders at once, through both kills
    polling.store(true, Ordering::SeqCst);
    let (polls, most) = leaders.join().unwrap();
    println!("leading gauges polled {polls} times: at most {most} at once");
    assert!(polls >= 50, "{polls} polls");
    assert_eq!(
        most, 1,
        "servers that read catalyst_controllers_leading 1 at once"
    );
    drop(servers);
}

/// Reads every server's `catalyst_controllers_leading` every 100 ms until `stop`; how many
/// rounds, and the most servers that read 1 in one round.
fn poll_leaders(
    endpoints: &[Endpoint],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, u32)> {
    let apis: Vec<Api> = endpoints.iter().map(Endpoint::api).collect();
    std::thread::spawn(move || {
        let (mut polls, mut most) = (0, 0);
        while !stop.load(Ordering::SeqCst) {
            let sum: u32 = apis.iter().filter_map(leading).map(u32::from).sum();
            most = most.max(sum);
            polls += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        (polls, most)
    })
}

#[test]
fn three_servers_on_postgres_restarted_one_by_one_lose_nothing() {
    if !catalyst_e2e::backend_enabled(
        "postgres",
        "three_servers_on_postgres_restarted_one_by_one_lose_nothing",
    ) {
        return;
    }
    let store = pg::fresh_database(&format!("ha3_{}", std::process::id()));
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str, listen: &str| {
        Server::start_on(
            env!("CARGO_BIN_EXE_catalyst"),
            &dir.path().join(name),
            listen,
            &["--store", &store],
        )
    };
    let names = ["a", "b", "c"];
    let mut servers: Vec<Server> = names.iter().map(|n| start(n, "127.0.0.1:0")).collect();
    let endpoints: Vec<Endpoint> = servers.iter().map(Endpoint::of).collect();
    let first = endpoints[0].api();
    register_node(&first);
    let transitions = |api: &Api| {
        api.get(LEASE)
            .ok()
            .and_then(|l| l.pointer("/spec/leaseTransitions").and_then(Value::as_u64))
            .unwrap_or(0)
    };
    let load = Load::start(&endpoints);
    std::thread::sleep(Duration::from_secs(2));
    let before = transitions(&first);
    for i in 0..servers.len() {
        // out of the rotation, stopped as systemd stops it (SIGTERM), started again on its
        // address and data directory
        load.down(i);
        let pid = servers[i].pid();
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let stopping = Instant::now();
        while servers[i].child.try_wait().unwrap().is_none() {
            assert!(
                stopping.elapsed() < Duration::from_secs(15),
                "server {i} did not stop within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let listen = endpoints[i].url.rsplit("//").next().unwrap().to_owned();
        servers[i] = start(names[i], &listen);
        let api = endpoints[i].api();
        let up = Instant::now();
        while api
            .try_send(reqwest::Method::GET, "/readyz", "", None)
            .map(|r| r.0)
            != Some(200)
        {
            assert!(
                up.elapsed() < Duration::from_secs(30),
                "server {i} not ready again"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        println!(
            "server {i} restarted ({:.1} s stopped)",
            stopping.elapsed().as_secs_f64()
        );
        load.up(i);
        std::thread::sleep(Duration::from_secs(2));
    }
    // a client of the restarted servers that connects anew
    let checker = endpoints[0].api();
    let failed = check_everything_kept(load, &checker);
    // only a create already on its way to a server when it stopped may fail (never
    // acknowledged: the client hears of it and may send it elsewhere)
    assert!(failed <= 3, "too many failed creates");
    one_leader(&endpoints, &[]);
    let moved = transitions(&checker) - before;
    println!("leadership moved {moved} times");
    assert!(
        moved <= 3,
        "leadership moved {moved} times for three restarts"
    );
}

/// Exactly one of the servers (but those in `gone`) leads the controllers.
fn one_leader(endpoints: &[Endpoint], gone: &[usize]) {
    let leaders: Vec<u8> = (0..endpoints.len())
        .filter(|i| !gone.contains(i))
        .map(|i| leading(&endpoints[i].api()).expect("a live server answers /metrics"))
        .collect();
    assert_eq!(
        leaders.iter().map(|&l| u32::from(l)).sum::<u32>(),
        1,
        "{leaders:?}"
    );
}

/// A stream of creates (one every 50 ms, round robin over the servers that are up) and the
/// Node's heartbeat, in threads.
struct Load {
    down: Arc<Mutex<BTreeSet<usize>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, Instant>>>,
    failed: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(endpoints: &[Endpoint]) -> Load {
        let mut load = Load {
            down: Arc::default(),
            stop: Arc::default(),
            acked: Arc::default(),
            failed: Arc::default(),
            threads: Vec::new(),
        };
        let n = endpoints.len();
        let (down, stop, acked, failed) = (
            load.down.clone(),
            load.stop.clone(),
            load.acked.clone(),
            load.failed.clone(),
        );
        let apis: Vec<Api> = endpoints.iter().map(Endpoint::api).collect();
        load.threads.push(std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let Some(at) = (0..n)
                    .map(|k| (i + k) % n)
                    .find(|s| !down.lock().unwrap().contains(s))
                else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let name = format!("gs-{i:04}");
                i += 1;
                let body = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
                                  "metadata": {"name": name},
                                  "spec": {"image": "busybox", "ports": [{"containerPort": 8080}]}});
                match apis[at].try_send(reqwest::Method::POST, GS, "application/json", Some(body))
                {
                    Some((201, _)) => {
                        acked.lock().unwrap().insert(name, Instant::now());
                    }
                    other => failed
                        .lock()
                        .unwrap()
                        .push(format!("{name} at server {at}: {other:?}")),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
        let (down, stop) = (load.down.clone(), load.stop.clone());
        let apis: Vec<Api> = endpoints.iter().map(Endpoint::api).collect();
        load.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(at) = (0..n).find(|s| !down.lock().unwrap().contains(s)) {
                    beat(&apis[at]);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }));
        load
    }

    /// Server `i` is about to go: no more requests to it.
    fn down(&self, i: usize) {
        self.down.lock().unwrap().insert(i);
    }

    /// Server `i` is back.
    fn up(&self, i: usize) {
        self.down.lock().unwrap().remove(&i);
    }
}

/// A watch of the GameServers through `catalyst_client` with several URLs, resumed from its
/// last resourceVersion whenever its stream ends (the client moves on to the next server).
struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Seen {
    /// (type, name, resourceVersion) of each event but bookmarks, in order.
    events: Vec<(String, String, i64)>,
    /// The last revision seen (bookmarks too).
    last: i64,
    /// The server each watch was answered by, in order.
    servers: Vec<String>,
    /// 410s and other failures.
    gone: Vec<String>,
}

impl Watcher {
    fn start(endpoints: &[&Endpoint], from: i64) -> Watcher {
        let urls: Vec<&str> = endpoints.iter().map(|e| e.url.as_str()).collect();
        let client = catalyst_client::Client::with_ca(
            &urls.join(","),
            &endpoints[0].token,
            endpoints[0].ca.as_deref(),
        )
        .expect("a client");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen {
            last: from,
            ..Seen::default()
        }));
        let (s, out) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            use catalyst_client::watch::Watched;
            use catalyst_schemas::watch::WatchEvent;
            use futures::StreamExt;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let params = catalyst_client::ListParams::default();
                while !s.load(Ordering::SeqCst) {
                    let from = out.lock().unwrap().last;
                    let stream = match client.watch(GS, &params, from).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            out.lock()
                                .unwrap()
                                .gone
                                .push(format!("watch from {from}: {e}"));
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    out.lock().unwrap().servers.push(client.base().to_owned());
                    let mut stream = Box::pin(stream);
                    loop {
                        let next =
                            tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
                        if s.load(Ordering::SeqCst) {
                            return;
                        }
                        let item = match next {
                            Err(_) => continue,
                            Ok(None) | Ok(Some(Err(_))) => break,
                            Ok(Some(Ok(item))) => item,
                        };
                        let mut seen = out.lock().unwrap();
                        let event = match item {
                            Watched::Gone(why) => {
                                seen.gone.push(format!("410 from {from}: {why}"));
                                break;
                            }
                            Watched::Event(event) => event,
                        };
                        let (kind, obj) = match &event {
                            WatchEvent::Added(o) => ("ADDED", o),
                            WatchEvent::Modified(o) => ("MODIFIED", o),
                            WatchEvent::Deleted(o) => ("DELETED", o),
                            WatchEvent::Bookmark(b) => {
                                if let Ok(rv) = b.metadata.resource_version.parse::<i64>() {
                                    seen.last = seen.last.max(rv);
                                }
                                continue;
                            }
                            WatchEvent::Error(st) => {
                                seen.gone.push(format!("error: {st:?}"));
                                break;
                            }
                        };
                        let rv: i64 = obj["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
                        seen.events.push((kind.to_owned(), name, rv));
                        seen.last = seen.last.max(rv);
                    }
                }
            });
        });
        Watcher {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Waits until the watch has delivered the load's first creates.
    fn caught_up(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.seen.lock().unwrap().events.len() < 10 {
            assert!(Instant::now() < deadline, "the watch delivered nothing");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every acknowledged create arrived as one ADDED, events in strictly increasing
    /// revision order, no 410, and the watch went on at another server than `killed`.
    fn check(mut self, acked: &BTreeSet<String>, killed: &str) {
        // what was written last reaches the watch too
        std::thread::sleep(Duration::from_secs(2));
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let seen = self.seen.lock().unwrap();
        println!(
            "watch: {} events, answered by {:?}, failures {:?}",
            seen.events.len(),
            seen.servers,
            seen.gone
        );
        assert!(
            !seen.gone.iter().any(|g| g.starts_with("410")),
            "the watch was answered 410: {:?}",
            seen.gone
        );
        assert_eq!(seen.servers.first().map(String::as_str), Some(killed));
        assert!(
            seen.servers.iter().any(|s| s != killed),
            "the watch never resumed at another server: {:?}",
            seen.servers
        );
        for pair in seen.events.windows(2) {
            assert!(
                pair[0].2 < pair[1].2,
                "events out of order or repeated: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
        let mut added: BTreeMap<&str, usize> = BTreeMap::new();
        for (kind, name, _) in &seen.events {
            if kind == "ADDED" {
                *added.entry(name).or_default() += 1;
            }
        }
        for name in acked {
            assert_eq!(
                added.get(name.as_str()),
                Some(&1),
                "{name}: ADDED events through the watch"
            );
        }
    }
}

/// Stops the load; then every acknowledged create must be listed (through `api`) and
/// scheduled, each on a host port of its own. Returns how many creates failed.
fn check_everything_kept(mut load: Load, api: &Api) -> usize {
    load.stop.store(true, Ordering::SeqCst);
    for t in load.threads.drain(..) {
        t.join().unwrap();
    }
    let acked: BTreeSet<String> = load.acked.lock().unwrap().keys().cloned().collect();
    let failed = load.failed.lock().unwrap().clone();
    println!(
        "creates acknowledged {}, failed {}: {failed:?}",
        acked.len(),
        failed.len()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let items = loop {
        let list = api.get(GS).expect("list");
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let scheduled = items
            .iter()
            .filter(|g| g["status"]["phase"] == "Scheduled")
            .count();
        if scheduled == items.len() || Instant::now() > deadline {
            break items;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let names: BTreeSet<String> = items
        .iter()
        .filter_map(|g| g["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = acked.difference(&names).collect();
    assert!(missing.is_empty(), "acknowledged creates lost: {missing:?}");
    let mut ports = BTreeMap::new();
    for g in &items {
        let name = g["metadata"]["name"].as_str().unwrap_or_default();
        assert_eq!(g["status"]["phase"], "Scheduled", "{name}: {}", g["status"]);
        assert_eq!(
            g["status"]["ports"].as_array().map(Vec::len),
            Some(1),
            "{name}"
        );
        for p in g["status"]["ports"].as_array().into_iter().flatten() {
            let port = p["hostPort"].as_u64().unwrap();
            if let Some(other) = ports.insert(port, name.to_owned()) {
                panic!("host port {port} given to {other} and {name}");
            }
        }
    }
    failed.len()
}

#[test]
fn a_stopping_server_ends_its_watches_and_exits_without_waiting_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(env!("CARGO_BIN_EXE_catalyst"), dir.path(), &[]);
    let http = server.http_client();
    let url = format!(
        "{}{GS}?watch=true",
        server.url.replace("0.0.0.0", "127.0.0.1")
    );
    let token = server.token.clone();
    let (opened_tx, opened) = std::sync::mpsc::channel();
    let watcher = std::thread::spawn(move || {
        use std::io::Read;
        let mut resp = http
            .get(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(60))
            .send()
            .expect("watch");
        assert_eq!(resp.status(), 200);
        opened_tx.send(()).unwrap();
        // read until the server ends the stream
        let mut sink = Vec::new();
        let _ = resp.read_to_end(&mut sink);
        Instant::now()
    });
    opened
        .recv_timeout(Duration::from_secs(10))
        .expect("the watch opened");
    Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    let signalled = Instant::now();
    let ended = watcher.join().unwrap();
    while server.child.try_wait().unwrap().is_none() {
        assert!(
            signalled.elapsed() < Duration::from_secs(4),
            "the server still runs {:?} after SIGTERM (its watch ended after {:?})",
            signalled.elapsed(),
            ended - signalled
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "watch ended {:?} and the server exited {:?} after SIGTERM",
        ended - signalled,
        signalled.elapsed()
    );
    // before the grace for open connections (5 s) ran out: the watch did not hold it
    assert!(ended - signalled < Duration::from_secs(2));
}
