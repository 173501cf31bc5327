//! The controllers in-process against a real store: scheduling onto Ready nodes with host ports,
//! unschedulable servers told why, suspension, lost nodes, and leader election.

use std::time::Duration;

use catalyst_apiserver::auth::Authenticator;
use catalyst_apiserver::http::AppState;
use catalyst_apiserver::registry::{Part, Registry, Scope};
use catalyst_controllers::manager::{self, Config};
use catalyst_controllers::scheduling::Strategy;
use catalyst_schemas::lookup_kind;
use chrono::Utc;
use serde_json::{json, Value};

async fn setup(dir: &std::path::Path) -> (Registry, AppState) {
    let store =
        catalyst_apiserver::store::open(&format!("sqlite://{}", dir.join("c.db").display()))
            .await
            .unwrap();
    let registry = Registry::new(store);
    let state = AppState::new(registry.clone(), Authenticator::fixed(&[]))
        .await
        .unwrap();
    (registry, state)
}

fn start(registry: &Registry, state: &AppState, identity: &str) -> manager::Handle {
    manager::start(
        registry.clone(),
        &state.caches,
        Config {
            strategy: Strategy::Packed,
            ..Config::new(identity, Duration::from_secs(2))
        },
    )
}

fn scope(kind: &str, ns: Option<&'static str>) -> Scope<'static> {
    Scope {
        kind: lookup_kind(kind).unwrap(),
        namespace: ns,
    }
}

async fn add_node(
    registry: &Registry,
    name: &str,
    cpu: &str,
    heartbeat_secs_ago: i64,
    ports: (i64, i64),
) {
    let node = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node", "metadata": {"name": name, "labels": {"region": "eu"}},
                      "spec": {"address": format!("10.0.0.{}", name.len()), "portRange": {"min": ports.0, "max": ports.1}}});
    registry
        .create(scope("nodes", None), node, false)
        .await
        .unwrap();
    heartbeat(registry, name, cpu, heartbeat_secs_ago).await;
}

async fn heartbeat(registry: &Registry, name: &str, cpu: &str, secs_ago: i64) {
    let t = Utc::now() - chrono::Duration::seconds(secs_ago);
    let cpu = cpu.to_owned();
    registry
        .update_with(scope("nodes", None), name, None, Part::Status, false, move |cur| {
            let mut next = cur.clone();
            next["status"] = json!({"state": "Ready", "lastHeartbeatTime": t,
                "allocatable": {"cpu": cpu, "memory": "8Gi", "disk": "100Gi"}, "capacity": {"cpu": cpu, "memory": "8Gi"}});
            Ok(next)
        })
        .await
        .unwrap();
}

async fn add_gs(registry: &Registry, name: &str, spec: Value) {
    let gs = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": name, "namespace": "default"}, "spec": spec});
    registry
        .create(scope("gameservers", Some("default")), gs, false)
        .await
        .unwrap();
}

async fn wait_for(
    registry: &Registry,
    kind: &str,
    ns: Option<&'static str>,
    name: &str,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        if let Ok(obj) = registry.get(scope(kind, ns), name).await {
            if what(&obj) {
                return obj;
            }
            last = obj;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{kind}/{name} never got there; last seen {last:#}");
}

fn phase(obj: &Value) -> &str {
    obj.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_scheduled_onto_ready_nodes_with_distinct_host_ports() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, state) = setup(dir.path()).await;
    add_node(&registry, "node-a", "4", 0, (7000, 7002)).await;
    start(&registry, &state, "server-1");
    for i in 0..3 {
        add_gs(
            &registry,
            &format!("gs-{i}"),
            json!({"image": "busybox", "resources": {"cpu": "1"},
            "ports": [{"containerPort": 25565, "protocol": "TCPUDP"}]}),
        )
        .await;
    }
    let mut ports = Vec::new();
    for i in 0..3 {
        let gs = wait_for(
            &registry,
            "gameservers",
            Some("default"),
            &format!("gs-{i}"),
            |o| phase(o) == "Scheduled",
        )
        .await;
        assert_eq!(gs["status"]["nodeName"], "node-a");
        assert_eq!(gs["status"]["address"], "10.0.0.6");
        ports.push(gs["status"]["ports"][0]["hostPort"].as_i64().unwrap());
    }
    ports.sort();
    assert_eq!(ports, [7000, 7001, 7002], "no host port handed out twice");
    // the range is full: the fourth waits and says why, in a condition and an Event
    add_gs(
        &registry,
        "gs-3",
        json!({"image": "busybox", "ports": [{"containerPort": 1, "protocol": "UDP"}]}),
    )
    .await;
    let waiting = wait_for(&registry, "gameservers", Some("default"), "gs-3", |o| {
        o.pointer("/status/conditions/0/reason").is_some()
    })
    .await;
    assert_eq!(phase(&waiting), "Pending");
    let cond = &waiting["status"]["conditions"][0];
    assert_eq!(
        (
            cond["type"].as_str(),
            cond["status"].as_str(),
            cond["reason"].as_str()
        ),
        (Some("Scheduled"), Some("False"), Some("Unschedulable"))
    );
    assert!(
        cond["message"]
            .as_str()
            .unwrap()
            .contains("no free host port"),
        "{cond}"
    );
    let events = registry
        .list(scope("events", Some("default")), &Default::default())
        .await
        .unwrap();
    assert!(events
        .items
        .iter()
        .any(|e| e["spec"]["reason"] == "FailedScheduling"
            && e["spec"]["involvedObject"]["name"] == "gs-3"));
    assert!(events.items.iter().any(
        |e| e["spec"]["reason"] == "Scheduled" && e["spec"]["involvedObject"]["name"] == "gs-0"
    ));
    // a second node arrives: the waiting server goes there
    add_node(&registry, "node-bb", "4", 0, (7000, 7002)).await;
    let gs = wait_for(&registry, "gameservers", Some("default"), "gs-3", |o| {
        phase(o) == "Scheduled"
    })
    .await;
    assert_eq!(gs["status"]["nodeName"], "node-bb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordoned_full_and_unmatched_nodes_are_skipped_and_suspension_is_reversible() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, state) = setup(dir.path()).await;
    add_node(&registry, "small", "1", 0, (7000, 7100)).await;
    add_node(&registry, "cordoned", "16", 0, (7000, 7100)).await;
    registry
        .merge_patch(
            scope("nodes", None),
            "cordoned",
            json!({"spec": {"unschedulable": true}}),
            Part::Main,
            false,
        )
        .await
        .unwrap();
    start(&registry, &state, "server-1");
    add_gs(
        &registry,
        "big",
        json!({"image": "busybox", "resources": {"cpu": "2"}}),
    )
    .await;
    let gs = wait_for(&registry, "gameservers", Some("default"), "big", |o| {
        o.pointer("/status/conditions/0/message").is_some()
    })
    .await;
    let msg = gs["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("cordoned: node is cordoned") && msg.contains("small: not enough cpu"),
        "{msg}"
    );
    add_gs(
        &registry,
        "elsewhere",
        json!({"image": "busybox", "nodeSelector": {"region": "us"}}),
    )
    .await;
    let gs = wait_for(
        &registry,
        "gameservers",
        Some("default"),
        "elsewhere",
        |o| o.pointer("/status/conditions/0/message").is_some(),
    )
    .await;
    assert!(gs["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .contains("label region=us does not match"));
    // suspend and resume
    add_gs(&registry, "paying", json!({"image": "busybox"})).await;
    wait_for(&registry, "gameservers", Some("default"), "paying", |o| {
        phase(o) == "Scheduled"
    })
    .await;
    registry
        .merge_patch(
            scope("gameservers", Some("default")),
            "paying",
            json!({"spec": {"suspended": true}}),
            Part::Main,
            false,
        )
        .await
        .unwrap();
    wait_for(&registry, "gameservers", Some("default"), "paying", |o| {
        phase(o) == "Suspended"
    })
    .await;
    registry
        .merge_patch(
            scope("gameservers", Some("default")),
            "paying",
            json!({"spec": {"suspended": false}}),
            Part::Main,
            false,
        )
        .await
        .unwrap();
    wait_for(&registry, "gameservers", Some("default"), "paying", |o| {
        phase(o) == "Scheduled"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_heartbeats_goes_not_ready_and_its_servers_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, state) = setup(dir.path()).await;
    add_node(&registry, "node-a", "4", 38, (7000, 7100)).await;
    start(&registry, &state, "server-1");
    add_gs(&registry, "gs", json!({"image": "busybox"})).await;
    wait_for(&registry, "gameservers", Some("default"), "gs", |o| {
        phase(o) == "Scheduled"
    })
    .await;
    let node = wait_for(&registry, "nodes", None, "node-a", |o| {
        o["status"]["state"] == "NotReady"
    })
    .await;
    assert_eq!(
        node["status"]["conditions"][0]["reason"],
        "NodeHeartbeatLost"
    );
    let gs = wait_for(&registry, "gameservers", Some("default"), "gs", |o| {
        phase(o) == "Unknown"
    })
    .await;
    assert!(gs["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["reason"] == "NodeLost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, state) = setup(dir.path()).await;
    add_node(&registry, "node-a", "4", 0, (7000, 7100)).await;
    let first = start(&registry, &state, "server-1");
    let mut leading = first.leading.clone();
    tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|l| l.is_some()))
        .await
        .unwrap()
        .unwrap();
    let second = start(&registry, &state, "server-2");
    // a round of the standby's election completed (it read the lease server-1 holds) before the
    // assertion, so "not leading" is its decision, not a lack of one
    let mut standby_rounds = second.leading.clone();
    tokio::time::timeout(Duration::from_secs(10), standby_rounds.changed())
        .await
        .expect("the standby completes an election round")
        .unwrap();
    assert!(
        first.leading.borrow().is_some() && second.leading.borrow().is_none(),
        "exactly one leader"
    );
    let lease = registry
        .get(
            scope("leases", Some("catalyst-system")),
            "catalyst-controllers",
        )
        .await
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "server-1");
    // the standby does not schedule while it follows
    first.stop();
    let stopped = std::time::Instant::now();
    let mut standby = second.leading.clone();
    tokio::time::timeout(Duration::from_secs(10), standby.wait_for(|l| l.is_some()))
        .await
        .unwrap()
        .unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "took over after {:?}",
        stopped.elapsed()
    );
    add_gs(&registry, "after", json!({"image": "busybox"})).await;
    wait_for(&registry, "gameservers", Some("default"), "after", |o| {
        phase(o) == "Scheduled"
    })
    .await;
    let lease = registry
        .get(
            scope("leases", Some("catalyst-system")),
            "catalyst-controllers",
        )
        .await
        .unwrap();
    assert_eq!(
        (
            lease["spec"]["holderIdentity"].as_str(),
            lease["spec"]["leaseTransitions"].as_i64()
        ),
        (Some("server-2"), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_until_nothing_runs_and_frees_the_ports() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, state) = setup(dir.path()).await;
    add_node(&registry, "node-a", "4", 0, (7000, 7000)).await;
    let controllers = start(&registry, &state, "server-1");
    let gs_scope = scope("gameservers", Some("default"));
    add_gs(&registry, "idle", json!({"image": "busybox"})).await;
    let idle = wait_for(&registry, "gameservers", Some("default"), "idle", |o| {
        phase(o) == "Scheduled"
    })
    .await;
    assert_eq!(
        idle["metadata"]["finalizers"],
        json!(["catalyst.dev/gameserver"])
    );
    registry
        .delete(gs_scope, "idle", None, false)
        .await
        .unwrap();
    for _ in 0..100 {
        if registry.get(gs_scope, "idle").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        registry.get(gs_scope, "idle").await.is_err(),
        "a server that never ran goes at once"
    );

    // a running server holds the only port; its deletion waits for the nodelet to stop it
    add_gs(
        &registry,
        "busy",
        json!({"image": "busybox", "ports": [{"containerPort": 1}]}),
    )
    .await;
    wait_for(&registry, "gameservers", Some("default"), "busy", |o| {
        phase(o) == "Scheduled"
    })
    .await;
    for p in ["Starting", "Running"] {
        registry
            .merge_patch(
                gs_scope,
                "busy",
                json!({"status": {"phase": p}}),
                Part::Status,
                false,
            )
            .await
            .unwrap();
    }
    add_gs(
        &registry,
        "next",
        json!({"image": "busybox", "ports": [{"containerPort": 1}]}),
    )
    .await;
    wait_for(&registry, "gameservers", Some("default"), "next", |o| {
        o.pointer("/status/conditions/0/reason").is_some()
    })
    .await;
    registry
        .delete(gs_scope, "busy", None, false)
        .await
        .unwrap();
    // the controller has reconciled the server as deleting (or later) before we look
    let deleting = registry.get(gs_scope, "busy").await.unwrap();
    assert!(deleting.pointer("/metadata/deletionTimestamp").is_some());
    let rv = catalyst_schemas::object::resource_version(&deleting).unwrap();
    tokio::time::timeout(
        Duration::from_secs(15),
        controllers.gameservers.wait_for("default/busy", rv),
    )
    .await
    .expect("the controller reconciles the deletion");
    assert!(
        registry.get(gs_scope, "busy").await.is_ok(),
        "still there while Running"
    );
    for p in ["Stopping", "Stopped"] {
        registry
            .merge_patch(
                gs_scope,
                "busy",
                json!({"status": {"phase": p}}),
                Part::Status,
                false,
            )
            .await
            .unwrap();
    }
    wait_for(&registry, "gameservers", Some("default"), "next", |o| {
        phase(o) == "Scheduled"
    })
    .await;
    assert!(registry.get(gs_scope, "busy").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_go_with_their_owner_also_when_a_finalizer_lets_it_go_later() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, state) = setup(dir.path()).await;
    let _c = start(&registry, &state, "one");
    let backups = scope("backups", Some("default"));
    // a server without nodes: Pending, the controller's finalizer on it; deleting it lets the
    // controller finalize it, and its Backup goes after it
    add_gs(&registry, "owner", json!({"image": "busybox"})).await;
    let owner = wait_for(&registry, "gameservers", Some("default"), "owner", |o| {
        o.pointer("/metadata/finalizers/0").is_some()
    })
    .await;
    registry
        .create(backups, backup_of("b1", &owner), false)
        .await
        .unwrap();
    // and one that names an owner that stays
    add_gs(&registry, "stays", json!({"image": "busybox"})).await;
    let stays = registry
        .get(scope("gameservers", Some("default")), "stays")
        .await
        .unwrap();
    registry
        .create(backups, backup_of("b2", &stays), false)
        .await
        .unwrap();
    registry
        .delete(scope("gameservers", Some("default")), "owner", None, false)
        .await
        .unwrap();
    for _ in 0..100 {
        if registry.get(backups, "b1").await.is_err() {
            assert!(
                registry.get(backups, "b2").await.is_ok(),
                "b2's owner stays"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the dependent backup was not deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_sweeps_the_dependents_of_owners_that_went_while_none_collected() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, state) = setup(dir.path()).await;
    let servers = scope("gameservers", Some("default"));
    let backups = scope("backups", Some("default"));
    // no controllers run: owners come and go without anyone collecting
    add_gs(&registry, "gone", json!({"image": "busybox"})).await;
    let gone = registry.get(servers, "gone").await.unwrap();
    registry
        .create(backups, backup_of("of-gone", &gone), false)
        .await
        .unwrap();
    add_gs(&registry, "again", json!({"image": "busybox"})).await;
    let first = registry.get(servers, "again").await.unwrap();
    registry
        .create(backups, backup_of("of-first-again", &first), false)
        .await
        .unwrap();
    add_gs(&registry, "stays", json!({"image": "busybox"})).await;
    let stays = registry.get(servers, "stays").await.unwrap();
    registry
        .create(backups, backup_of("of-stays", &stays), false)
        .await
        .unwrap();
    registry.delete(servers, "gone", None, false).await.unwrap();
    // deleted and made again under its name: a new uid, so its old dependent is an orphan
    registry
        .delete(servers, "again", None, false)
        .await
        .unwrap();
    add_gs(&registry, "again", json!({"image": "busybox"})).await;

    let _c = start(&registry, &state, "one");
    for _ in 0..100 {
        let left = (
            registry.get(backups, "of-gone").await.is_ok(),
            registry.get(backups, "of-first-again").await.is_ok(),
        );
        if left == (false, false) {
            assert!(
                registry.get(backups, "of-stays").await.is_ok(),
                "a dependent of an owner that stays stays"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the orphans were not swept");
}

/// A Backup of `owner` that names it as its owner.
fn backup_of(name: &str, owner: &Value) -> Value {
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Backup",
        "metadata": {"name": name, "namespace": "default", "ownerReferences": [{"apiVersion": "catalyst.dev/v1alpha1",
            "kind": "GameServer", "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}]},
        "spec": {"gameServer": owner["metadata"]["name"]}})
}
