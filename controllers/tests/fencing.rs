//! Fencing: leader A is held mid-reconcile (its binding writes and Lease renewals wait at a
//! gate), B takes over and schedules the same GameServers, then the gate opens. A's held
//! writes, made under A's term, fail with `Fenced`; every host port is given once, and each
//! server's `status.ports` is written once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use catalyst_apiserver::auth::Authenticator;
use catalyst_apiserver::http::AppState;
use catalyst_apiserver::registry::{Registry, Scope};
use catalyst_apiserver::store::{self, EventKind};
use catalyst_controllers::manager::{self, Config};
use catalyst_schemas::lookup_kind;
use futures::StreamExt;
use serde_json::{json, Value};

#[path = "support/gate.rs"]
mod gate;
use gate::GateStore;

fn scope(kind: &str, ns: Option<&'static str>) -> Scope<'static> {
    Scope {
        kind: lookup_kind(kind).unwrap(),
        namespace: ns,
    }
}

fn start(registry: &Registry, state: &AppState, identity: &str) -> manager::Handle {
    manager::start(
        registry.clone(),
        &state.caches,
        Config::new(identity, Duration::from_secs(3)),
    )
}

async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leaders_held_writes_are_fenced_and_ports_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    let inner = store::open(&url).await.unwrap();
    let plain = Registry::new(inner.clone());
    let state = AppState::new(plain.clone(), Authenticator::fixed(&[]))
        .await
        .unwrap();
    let gate = Arc::new(GateStore::new(inner.clone(), Duration::ZERO));
    let through_gate = Registry::new(gate.clone());

    // one node with 25 host ports
    let node = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node", "metadata": {"name": "node-a"},
                      "spec": {"address": "10.0.0.1", "portRange": {"min": 7000, "max": 7024}}});
    plain
        .create(scope("nodes", None), node, false)
        .await
        .unwrap();
    let wall = chrono::Utc::now();
    plain
        .update_with(scope("nodes", None), "node-a", None, catalyst_apiserver::registry::Part::Status, false, move |cur| {
            let mut next = cur.clone();
            next["status"] = json!({"state": "Ready", "lastHeartbeatTime": wall,
                "allocatable": {"cpu": "64", "memory": "64Gi", "disk": "1Ti"}, "capacity": {"cpu": "64", "memory": "64Gi"}});
            Ok(next)
        })
        .await
        .unwrap();

    // A leads and acts
    let a = start(&through_gate, &state, "server-a");
    let mut acting = a.acting.clone();
    tokio::time::timeout(Duration::from_secs(10), acting.wait_for(|t| t.is_some()))
        .await
        .expect("A acts")
        .unwrap();
    let token_a = a.acting.borrow().as_ref().unwrap().guard.create_revision;

    // the gate closes: A decides ports for 20 servers, its bindings and renewals wait
    gate.open.send_replace(false);
    let from = inner.current_revision().await.unwrap();
    for i in 0..20 {
        let gs = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
                        "metadata": {"name": format!("gs-{i}"), "namespace": "default"},
                        "spec": {"image": "busybox", "ports": [{"containerPort": 25565}]}});
        plain
            .create(scope("gameservers", Some("default")), gs, false)
            .await
            .unwrap();
    }
    let mut held = gate.held.subscribe();
    tokio::time::timeout(Duration::from_secs(20), held.wait_for(|n| *n >= 20))
        .await
        .expect("A's bindings reach the gate")
        .unwrap();

    // B takes over once A's lease expired (A's term lapsed on its own clock before)
    let b = start(&plain, &state, "server-b");
    let mut b_acting = b.acting.clone();
    tokio::time::timeout(Duration::from_secs(15), b_acting.wait_for(|t| t.is_some()))
        .await
        .expect("B acts")
        .unwrap();
    let token_b = b.acting.borrow().as_ref().unwrap().guard.create_revision;
    assert!(token_b > token_a, "a takeover re-creates the Lease");
    assert!(
        a.leading.borrow().is_none(),
        "A stepped down on its own clock"
    );
    let lease = plain
        .get(
            scope("leases", Some("catalyst-system")),
            "catalyst-controllers",
        )
        .await
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "server-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // B schedules all 20
    until("B binds every server", async || {
        let list = plain
            .list(scope("gameservers", Some("default")), &Default::default())
            .await
            .unwrap();
        list.items.len() == 20
            && list
                .items
                .iter()
                .all(|g| g["status"]["phase"] == "Scheduled")
    })
    .await;

    // the gate opens: A's held bindings reach the store under A's ended term
    let fenced_before = through_gate.fenced_writes();
    gate.open.send_replace(true);
    until("A's held bindings are answered", async || {
        gate.released.lock().unwrap().len() >= 20
    })
    .await;
    let released = gate.released.lock().unwrap().clone();
    for (key, result) in &released {
        assert_eq!(
            result.as_ref().err().map(String::as_str),
            Some("Fenced"),
            "{key}"
        );
    }
    assert!(through_gate.fenced_writes() >= fenced_before + 20);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // every host port given once, and each server's ports written once
    let list = plain
        .list(scope("gameservers", Some("default")), &Default::default())
        .await
        .unwrap();
    let mut ports = HashSet::new();
    for gs in &list.items {
        let port = gs["status"]["ports"][0]["hostPort"].as_i64().unwrap();
        assert!(ports.insert(port), "host port {port} given twice");
    }
    // the newest server write: the history is read up to it
    let to = list
        .items
        .iter()
        .filter_map(catalyst_schemas::object::resource_version)
        .max()
        .unwrap();
    let mut events = inner.watch("/gameservers/", from).await.unwrap();
    let mut last: HashMap<String, Value> = HashMap::new();
    let mut writes: HashMap<String, usize> = HashMap::new();
    while let Some(ev) = events.next().await {
        let ev = ev.unwrap();
        let obj: Value = serde_json::from_slice(&ev.kv.value).unwrap();
        let ports = obj["status"]["ports"].clone();
        if ev.kind != EventKind::Deleted && !ports.is_null() {
            let before = last.insert(ev.kv.key.clone(), ports.clone());
            if before.as_ref() != Some(&ports) {
                *writes.entry(ev.kv.key.clone()).or_default() += 1;
            }
        }
        if ev.kv.mod_revision >= to {
            break;
        }
    }
    assert_eq!(writes.len(), 20);
    assert!(writes.values().all(|n| *n == 1), "{writes:?}");
    a.stop();
    b.stop();
}
