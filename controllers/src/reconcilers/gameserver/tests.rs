//! `decide_gameserver` over every branch: deletion with and without our finalizer, adding the
//! finalizer, suspension and resumption per phase, and placement of Pending servers (node
//! readiness and heartbeat, cordon, capacity, ports, strategy, no nodes at all).

use catalyst_schemas::lifecycle::Phase;

use super::*;
use crate::reconcilers::node_info;
use crate::scheduling::{Amounts, Bound, HostPort, Placement};
use catalyst_schemas::gameserver::Protocol;

/// The fixed "now" every case is decided at.
fn now() -> DateTime<Utc> {
    "2030-01-01T12:00:00Z".parse().unwrap()
}

/// A GameServer object: `phase` (None: no status at all), deleting or not, with or without our
/// finalizer, and this spec.
fn gs(phase: Option<Phase>, deleting: bool, ours: bool, spec: Value) -> (Value, GameServerSpec) {
    let mut obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
        "metadata": {"name": "gs", "namespace": "default", "resourceVersion": "5"}, "spec": spec});
    if let Some(p) = phase {
        obj["status"] = json!({"phase": p.as_str()});
    }
    if ours {
        obj["metadata"]["finalizers"] = json!(["other.example/keep", FINALIZER]);
    } else {
        obj["metadata"]["finalizers"] = json!(["other.example/keep"]);
    }
    if deleting {
        obj["metadata"]["deletionTimestamp"] = json!("2030-01-01T11:59:00Z");
    }
    let spec = serde_json::from_value(obj["spec"].clone()).unwrap();
    (obj, spec)
}

fn plain() -> Value {
    json!({"image": "busybox", "resources": {"cpu": "1"}, "ports": [{"containerPort": 25565}]})
}

fn suspended() -> Value {
    let mut s = plain();
    s["suspended"] = true.into();
    s
}

/// A Node: `cpu` cores allocatable, state, heartbeat `ago` seconds before [`now`] (None: never).
fn node(name: &str, cpu: &str, state: &str, ago: Option<i64>) -> Value {
    let mut status = json!({"state": state,
        "allocatable": {"cpu": cpu, "memory": "8Gi", "disk": "100Gi"}});
    if let Some(s) = ago {
        status["lastHeartbeatTime"] = json!(now() - chrono::Duration::seconds(s));
    }
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node", "metadata": {"name": name},
        "spec": {"portRange": {"min": 7000, "max": 7002}}, "status": status})
}

fn ready(name: &str, cpu: &str) -> Value {
    node(name, cpu, "Ready", Some(5))
}

/// Decides with these nodes and usage; the node list must only be read for a Pending server.
fn decide(gs: &(Value, GameServerSpec), nodes: &[Value], usage: Usage, s: Strategy) -> GsDecision {
    let pending = phase_of(&gs.0) == Phase::Pending;
    let nodes = nodes.to_vec();
    decide_gameserver(
        &gs.0,
        &gs.1,
        move |now| {
            assert!(pending, "the nodes are read only to place a Pending server");
            std::sync::Arc::new(nodes.iter().filter_map(|n| node_info(n, now)).collect())
        },
        &Mutex::new(usage),
        s,
        now(),
    )
}

fn packed(gs: &(Value, GameServerSpec), nodes: &[Value]) -> GsDecision {
    decide(gs, nodes, Usage::default(), Strategy::Packed)
}

fn bind(node: &str, ports: &[u16]) -> GsDecision {
    GsDecision::Bind(Placement {
        node: node.into(),
        host_ports: ports.to_vec(),
    })
}

fn unschedulable(why: &str) -> GsDecision {
    GsDecision::Unschedulable(why.into())
}

use GsDecision::{AddFinalizer, Finalize, Nothing, Resume, Suspend, WaitForStop};

/// Every phase with what a deletion holding our finalizer decides: wait while something may run
/// (active phases and Unknown), let go otherwise.
const DELETING_OURS: [(Phase, GsDecision); 12] = [
    (Phase::Pending, Finalize),
    (Phase::Scheduled, Finalize),
    (Phase::Installing, WaitForStop),
    (Phase::Starting, WaitForStop),
    (Phase::Running, WaitForStop),
    (Phase::Stopping, WaitForStop),
    (Phase::Stopped, Finalize),
    (Phase::Crashed, Finalize),
    (Phase::Suspended, Finalize),
    (Phase::Transferring, Finalize),
    (Phase::Unknown, WaitForStop),
    (Phase::Error, Finalize),
];

/// Every phase with what `spec.suspended: true` decides (finalizer on, not deleting): suspend
/// where the lifecycle allows it, otherwise wait.
const SUSPENDING: [(Phase, GsDecision); 12] = [
    (Phase::Pending, Suspend),
    (Phase::Scheduled, Suspend),
    (Phase::Installing, Nothing),
    (Phase::Starting, Nothing),
    (Phase::Running, Nothing),
    (Phase::Stopping, Nothing),
    (Phase::Stopped, Suspend),
    (Phase::Crashed, Suspend),
    (Phase::Suspended, Nothing),
    (Phase::Transferring, Nothing),
    (Phase::Unknown, Nothing),
    (Phase::Error, Suspend),
];

/// Every phase but Pending with what a server that is not suspended decides (finalizer on, not
/// deleting): only a Suspended one is resumed; the others are the nodelet's.
const NOT_SUSPENDED: [(Phase, GsDecision); 11] = [
    (Phase::Scheduled, Nothing),
    (Phase::Installing, Nothing),
    (Phase::Starting, Nothing),
    (Phase::Running, Nothing),
    (Phase::Stopping, Nothing),
    (Phase::Stopped, Nothing),
    (Phase::Crashed, Nothing),
    (Phase::Suspended, Resume),
    (Phase::Transferring, Nothing),
    (Phase::Unknown, Nothing),
    (Phase::Error, Nothing),
];

#[test]
fn the_tables_cover_every_phase() {
    for table in [&DELETING_OURS[..], &SUSPENDING[..]] {
        let phases: Vec<Phase> = table.iter().map(|(p, _)| *p).collect();
        assert_eq!(phases, Phase::ALL);
    }
    let phases: Vec<Phase> = NOT_SUSPENDED.iter().map(|(p, _)| *p).collect();
    let mut want = Phase::ALL.to_vec();
    want.retain(|p| *p != Phase::Pending);
    assert_eq!(phases, want);
}

#[test]
fn a_deletion_with_our_finalizer_waits_while_something_may_run_and_finalizes_otherwise() {
    let nodes = [ready("a", "4")];
    for (phase, want) in DELETING_OURS {
        for spec in [plain(), suspended()] {
            let d = packed(&gs(Some(phase), true, true, spec.clone()), &nodes);
            assert_eq!(d, want, "{phase} deleting, suspended={}", spec["suspended"]);
        }
    }
    // no status at all is Pending: nothing runs
    assert_eq!(packed(&gs(None, true, true, plain()), &nodes), Finalize);
}

#[test]
fn a_deletion_without_our_finalizer_is_left_alone() {
    for phase in Phase::ALL {
        for spec in [plain(), suspended()] {
            let d = packed(&gs(Some(phase), true, false, spec), &[ready("a", "4")]);
            assert_eq!(d, Nothing, "{phase}");
        }
    }
}

#[test]
fn a_server_without_our_finalizer_gets_it_first_whatever_else_holds() {
    for phase in Phase::ALL {
        for spec in [plain(), suspended()] {
            let d = packed(&gs(Some(phase), false, false, spec), &[ready("a", "4")]);
            assert_eq!(d, AddFinalizer, "{phase}");
        }
    }
    assert_eq!(packed(&gs(None, false, false, plain()), &[]), AddFinalizer);
}

#[test]
fn a_suspended_spec_suspends_where_the_lifecycle_allows_and_waits_elsewhere() {
    for (phase, want) in SUSPENDING {
        let d = packed(
            &gs(Some(phase), false, true, suspended()),
            &[ready("a", "4")],
        );
        assert_eq!(d, want, "{phase}");
    }
    assert_eq!(packed(&gs(None, false, true, suspended()), &[]), Suspend);
}

#[test]
fn without_suspension_only_suspended_servers_resume_and_only_pending_ones_are_placed() {
    for (phase, want) in NOT_SUSPENDED {
        let d = packed(&gs(Some(phase), false, true, plain()), &[ready("a", "4")]);
        assert_eq!(d, want, "{phase}");
    }
}

#[test]
fn a_pending_server_is_bound_to_a_ready_node_with_its_host_ports() {
    let pending = gs(Some(Phase::Pending), false, true, plain());
    assert_eq!(packed(&pending, &[ready("a", "4")]), bind("a", &[7000]));
    // no status at all is Pending too
    let fresh = gs(None, false, true, plain());
    assert_eq!(packed(&fresh, &[ready("a", "4")]), bind("a", &[7000]));
    // a heartbeat just inside the grace period still counts
    let d = packed(&pending, &[node("a", "4", "Ready", Some(39))]);
    assert_eq!(d, bind("a", &[7000]));
    // ports already held on the node are skipped
    let held = Usage::of(&[Bound {
        node: "a".into(),
        requests: Amounts::default(),
        ports: vec![HostPort {
            port: 7000,
            protocol: Protocol::TCP,
        }],
    }]);
    let d = decide(&pending, &[ready("a", "4")], held, Strategy::Packed);
    assert_eq!(d, bind("a", &[7001]));
}

#[test]
fn a_pending_server_goes_where_the_strategy_says() {
    let pending = gs(Some(Phase::Pending), false, true, plain());
    let nodes = [ready("big", "8"), ready("small", "2")];
    let d = decide(&pending, &nodes, Usage::default(), Strategy::Packed);
    assert_eq!(d, bind("small", &[7000]));
    let d = decide(&pending, &nodes, Usage::default(), Strategy::Distributed);
    assert_eq!(d, bind("big", &[7000]));
}

#[test]
fn a_pending_server_is_unschedulable_with_the_reason_of_every_node() {
    let pending = gs(Some(Phase::Pending), false, true, plain());
    let cases: Vec<(Vec<Value>, Usage, &str)> = vec![
        (vec![], Usage::default(), "no nodes are registered"),
        (
            // a node whose spec does not parse is not a node to the scheduler
            vec![json!({"metadata": {"name": "broken"}, "spec": {"portRange": "wide"}})],
            Usage::default(),
            "no nodes are registered",
        ),
        (
            vec![node("a", "4", "Ready", Some(41))],
            Usage::default(),
            "no node fits: a: node is not Ready",
        ),
        (
            vec![node("a", "4", "Ready", None)],
            Usage::default(),
            "no node fits: a: node is not Ready",
        ),
        (
            vec![node("a", "4", "NotReady", Some(1))],
            Usage::default(),
            "no node fits: a: node is not Ready",
        ),
        (
            vec![{
                let mut n = ready("a", "4");
                n["spec"]["unschedulable"] = true.into();
                n
            }],
            Usage::default(),
            "no node fits: a: node is cordoned",
        ),
        (
            vec![ready("a", "500m")],
            Usage::default(),
            "no node fits: a: not enough cpu",
        ),
        (
            // capacity held by servers already bound there
            vec![ready("a", "4")],
            Usage::of(&[Bound {
                node: "a".into(),
                requests: Amounts {
                    cpu_milli: 3500,
                    memory: 0,
                    disk: 0,
                },
                ports: vec![],
            }]),
            "no node fits: a: not enough cpu",
        ),
        (
            vec![ready("a", "4")],
            Usage::of(&[Bound {
                node: "a".into(),
                requests: Amounts::default(),
                ports: [7000, 7001, 7002]
                    .map(|port| HostPort {
                        port,
                        protocol: Protocol::TCPUDP,
                    })
                    .to_vec(),
            }]),
            "no node fits: a: no free host port in 7000-7002",
        ),
        (
            vec![node("a", "4", "Ready", Some(60)), ready("b", "500m")],
            Usage::default(),
            "no node fits: a: node is not Ready; b: not enough cpu",
        ),
    ];
    for (nodes, usage, why) in cases {
        let d = decide(&pending, &nodes, usage, Strategy::Packed);
        assert_eq!(d, unschedulable(why), "{nodes:?}");
    }
}

#[test]
fn a_pinned_server_waits_for_its_node() {
    let mut spec = plain();
    spec["nodeName"] = "b".into();
    let pending = gs(Some(Phase::Pending), false, true, spec);
    let d = packed(&pending, &[ready("a", "4")]);
    assert_eq!(d, unschedulable("no node fits: a: not the pinned node"));
    let d = packed(&pending, &[ready("a", "4"), ready("b", "4")]);
    assert_eq!(d, bind("b", &[7000]));
}
