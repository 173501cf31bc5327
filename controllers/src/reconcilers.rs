//! The GameServer and Node reconcilers. Each first computes a plain decision from the cached
//! objects, then acts on it through the registry (status writes pinned to the revision the
//! decision was made from, so a stale decision fails instead of overwriting).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{Part, Registry, Scope};
use catalyst_schemas::gameserver::GameServerSpec;
use catalyst_schemas::lifecycle::{self, Event as Lifecycle, Phase};
use catalyst_schemas::node::{NodeSpec, NodeState, NodeStatus};
use catalyst_schemas::{lookup_kind, KindInfo};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use catalyst_schemas::meta::Condition;
use catalyst_schemas::object::{
    key_of, phase_of, put_condition, resource_version as rv_of, split_key,
};

use crate::informer::Cache;
use crate::scheduling::{
    self, Amounts, Bound, HostPort, NodeInfo, PortRequest, Request, Strategy, Usage,
};

/// The finalizer that holds a GameServer's deletion until nothing of it runs.
pub const FINALIZER: &str = "catalyst.dev/gameserver";

/// How long a node may go without a heartbeat before it is NotReady.
pub const NODE_GRACE: Duration = Duration::from_secs(40);

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object changes.
    Done,
    /// Look again after this long.
    RequeueAfter(Duration),
}

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The API refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What the reconcilers share.
#[derive(Debug, Clone)]
pub struct Context {
    /// Object operations.
    pub registry: Registry,
    /// Cached GameServers.
    pub gameservers: Arc<Cache>,
    /// Cached Nodes.
    pub nodes: Arc<Cache>,
    /// Packed or Distributed.
    pub strategy: Strategy,
    /// What bound servers hold per node, kept current as servers change.
    pub usage: Arc<Mutex<Usage>>,
}

impl Context {
    /// Re-reads what server `key` holds from the cache into the usage index.
    pub fn track(&self, key: &str) {
        let bound = self.gameservers.get(key).and_then(|gs| bound_of(&gs));
        self.usage.lock().expect("usage lock").set(key, bound);
    }
}

fn kind(name: &str) -> &'static KindInfo {
    lookup_kind(name).expect("a built-in kind")
}

/// Writes an Event about an object (best effort: a failure is logged, not returned).
pub async fn record_event(
    registry: &Registry,
    involved: &Value,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let kind_name = involved.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = involved
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = involved
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let now = Utc::now();
    let event = json!({
        "apiVersion": catalyst_schemas::API_VERSION, "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": ns},
        "spec": {
            "involvedObject": {"kind": kind_name, "name": name, "namespace": ns, "uid": involved.pointer("/metadata/uid")},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": "controller",
        }
    });
    let scope = Scope {
        kind: kind("events"),
        namespace: Some(ns),
    };
    if let Err(e) = registry.create(scope, event, false).await {
        tracing::warn!(error = %e, reason, "cannot record an event");
    }
}

/// The scheduler's view of a node.
fn node_info(node: &Value) -> Option<NodeInfo> {
    let spec: NodeSpec =
        serde_json::from_value(node.get("spec").cloned().unwrap_or(json!({}))).ok()?;
    let status: NodeStatus =
        serde_json::from_value(node.get("status").cloned().unwrap_or(json!({}))).ok()?;
    let q = |v: &Option<catalyst_schemas::Quantity>, milli: bool| {
        v.as_ref()
            .map_or(0, |q| if milli { q.milli_value() } else { q.value() })
    };
    let fresh = status
        .last_heartbeat_time
        .is_some_and(|t| Utc::now() - t < chrono::Duration::from_std(NODE_GRACE).expect("small"));
    Some(NodeInfo {
        name: node.pointer("/metadata/name")?.as_str()?.to_owned(),
        labels: node
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l.clone()).ok())
            .unwrap_or_default(),
        ready: status.state == NodeState::Ready && fresh,
        unschedulable: spec.unschedulable,
        allocatable: Amounts {
            cpu_milli: q(&status.allocatable.cpu, true),
            memory: q(&status.allocatable.memory, false),
            disk: q(&status.allocatable.disk, false),
        },
        port_range: (
            u16::try_from(spec.port_range.min).unwrap_or(1),
            u16::try_from(spec.port_range.max).unwrap_or(u16::MAX),
        ),
        allow_host_network: spec.allow_host_network,
    })
}

fn node_address(node: &Value) -> Option<String> {
    node.pointer("/spec/address")
        .or_else(|| node.pointer("/status/addresses/0"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// What a server's spec asks of the scheduler.
fn request_of(spec: &GameServerSpec) -> Request {
    let q = |v: &Option<catalyst_schemas::Quantity>, milli: bool| {
        v.as_ref()
            .map_or(0, |q| if milli { q.milli_value() } else { q.value() })
    };
    Request {
        requests: Amounts {
            cpu_milli: q(&spec.resources.cpu, true),
            memory: q(&spec.resources.memory, false),
            disk: q(&spec.resources.disk, false),
        },
        node_name: spec.node_name.clone(),
        node_selector: spec.node_selector.clone(),
        ports: spec
            .ports
            .iter()
            .map(|p| PortRequest {
                container_port: u16::try_from(p.container_port).unwrap_or(0),
                protocol: p.protocol,
                policy: p.policy,
                host_port: p.host_port.and_then(|h| u16::try_from(h).ok()),
            })
            .collect(),
        network: spec.network,
    }
}

/// What a server holds on its node: bound and not Pending or Suspended.
fn bound_of(gs: &Value) -> Option<Bound> {
    if matches!(phase_of(gs), Phase::Pending | Phase::Suspended) {
        return None;
    }
    let node = gs.pointer("/status/nodeName")?.as_str()?.to_owned();
    let spec: GameServerSpec = serde_json::from_value(gs.get("spec")?.clone()).ok()?;
    let ports = gs
        .pointer("/status/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    Some(HostPort {
                        port: u16::try_from(p.get("hostPort")?.as_i64()?).ok()?,
                        protocol: serde_json::from_value(p.get("protocol")?.clone()).ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Bound {
        node,
        requests: request_of(&spec).requests,
        ports,
    })
}

/// An Event to record: (type, reason, message).
type EventNote = (&'static str, &'static str, String);

/// The GameServer decision.
#[derive(Debug, Clone, PartialEq)]
enum GsDecision {
    Nothing,
    /// Put our finalizer on, so deletion waits for the server to be stopped.
    AddFinalizer,
    /// Deleting and nothing runs any more: let the object go.
    Finalize,
    /// Deleting, but the nodelet still has to stop it.
    WaitForStop,
    Suspend,
    Resume,
    Bind(scheduling::Placement),
    Unschedulable(String),
}

fn decide_gameserver(gs: &Value, spec: &GameServerSpec, ctx: &Context) -> GsDecision {
    let phase = phase_of(gs);
    let ours = gs
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if gs.pointer("/metadata/deletionTimestamp").is_some() {
        return match (ours, phase.is_active() || phase == Phase::Unknown) {
            (false, _) => GsDecision::Nothing,
            (true, true) => GsDecision::WaitForStop,
            (true, false) => GsDecision::Finalize,
        };
    }
    if !ours {
        return GsDecision::AddFinalizer;
    }
    if spec.suspended {
        return if lifecycle::transition(phase, Lifecycle::Suspended).is_ok() {
            GsDecision::Suspend
        } else {
            GsDecision::Nothing
        };
    }
    if phase == Phase::Suspended {
        return GsDecision::Resume;
    }
    if phase != Phase::Pending {
        return GsDecision::Nothing;
    }
    let nodes: Vec<NodeInfo> = ctx.nodes.all().iter().filter_map(node_info).collect();
    let usage = ctx.usage.lock().expect("usage lock");
    match scheduling::schedule(&request_of(spec), &nodes, &usage, ctx.strategy) {
        Ok(p) => GsDecision::Bind(p),
        Err(e) if e.reasons.is_empty() => {
            GsDecision::Unschedulable("no nodes are registered".into())
        }
        Err(e) => GsDecision::Unschedulable(e.to_string()),
    }
}

/// Reconciles one GameServer: scheduling, suspension.
pub async fn reconcile_gameserver(ctx: &Context, key: &str) -> Result<Action, ReconcileError> {
    let Some(gs) = ctx.gameservers.get(key) else {
        return Ok(Action::Done);
    };
    let Ok(spec) =
        serde_json::from_value::<GameServerSpec>(gs.get("spec").cloned().unwrap_or_default())
    else {
        return Ok(Action::Done);
    };
    let (ns, name) = split_key(key);
    let scope = Scope {
        kind: kind("gameservers"),
        namespace: ns,
    };
    let generation = gs.pointer("/metadata/generation").and_then(Value::as_i64);
    let decision = decide_gameserver(&gs, &spec, ctx);
    let (new_status, event, requeue): (Option<Value>, Option<EventNote>, Action) = match decision {
        GsDecision::Nothing | GsDecision::WaitForStop => return Ok(Action::Done),
        GsDecision::AddFinalizer | GsDecision::Finalize => {
            let adding = decision == GsDecision::AddFinalizer;
            let written = ctx
                .registry
                .update_with(scope, name, rv_of(&gs), Part::Main, false, |cur| {
                    let mut next = cur.clone();
                    let mut list: Vec<Value> = cur
                        .pointer("/metadata/finalizers")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    list.retain(|f| f != FINALIZER);
                    if adding {
                        list.push(FINALIZER.into());
                    }
                    next["metadata"]["finalizers"] = list.into();
                    Ok(next)
                })
                .await;
            match written {
                Ok(w) if adding => {
                    ctx.gameservers.write_through(&w.object);
                    // go on with scheduling in the same pass
                    return Box::pin(reconcile_gameserver(ctx, key)).await;
                }
                Ok(_) | Err(ApiError::NotFound { .. }) => {
                    if !adding {
                        ctx.usage.lock().expect("usage lock").set(key, None);
                    }
                    return Ok(Action::Done);
                }
                Err(e) => return Err(e.into()),
            }
        }
        GsDecision::Suspend => {
            let mut st = gs.get("status").cloned().unwrap_or(json!({}));
            st["phase"] = "Suspended".into();
            put_condition(
                &mut st,
                Condition::new(
                    "Suspended",
                    true,
                    "Suspended",
                    "spec.suspended is true",
                    generation,
                ),
            );
            (
                Some(st),
                Some(("Normal", "Suspended", "the server is suspended".into())),
                Action::Done,
            )
        }
        GsDecision::Resume => {
            let mut st = gs.get("status").cloned().unwrap_or(json!({}));
            st["phase"] = "Pending".into();
            put_condition(
                &mut st,
                Condition::new(
                    "Suspended",
                    false,
                    "Resumed",
                    "spec.suspended is false",
                    generation,
                ),
            );
            (
                Some(st),
                Some((
                    "Normal",
                    "Resumed",
                    "the server is no longer suspended".into(),
                )),
                Action::Done,
            )
        }
        GsDecision::Bind(p) => {
            let node = ctx.nodes.get(&p.node);
            let mut st = gs.get("status").cloned().unwrap_or(json!({}));
            st["phase"] = "Scheduled".into();
            st["nodeName"] = p.node.clone().into();
            if let Some(addr) = node.as_ref().and_then(node_address) {
                st["address"] = addr.into();
            }
            st["ports"] = spec
                .ports
                .iter()
                .zip(&p.host_ports)
                .map(|(port, host)| json!({"name": port.name, "containerPort": port.container_port, "hostPort": host, "protocol": port.protocol}))
                .collect::<Vec<_>>()
                .into();
            st["observedGeneration"] = generation.into();
            put_condition(
                &mut st,
                Condition::new(
                    "Scheduled",
                    true,
                    "Scheduled",
                    &format!("assigned to {}", p.node),
                    generation,
                ),
            );
            let ports: Vec<String> = p.host_ports.iter().map(u16::to_string).collect();
            let msg = format!(
                "assigned to {} with host ports {}",
                p.node,
                if ports.is_empty() {
                    "none".into()
                } else {
                    ports.join(",")
                }
            );
            (Some(st), Some(("Normal", "Scheduled", msg)), Action::Done)
        }
        GsDecision::Unschedulable(why) => {
            let mut st = gs.get("status").cloned().unwrap_or(json!({}));
            let same = st
                .get("conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Scheduled" && c["message"] == why.as_str())
                });
            if same {
                return Ok(Action::RequeueAfter(Duration::from_secs(10)));
            }
            st["phase"] = "Pending".into();
            put_condition(
                &mut st,
                Condition::new("Scheduled", false, "Unschedulable", &why, generation),
            );
            (
                Some(st),
                Some(("Warning", "FailedScheduling", why)),
                Action::RequeueAfter(Duration::from_secs(10)),
            )
        }
    };
    if let Some(st) = new_status {
        let pinned = rv_of(&gs);
        let written = ctx
            .registry
            .update_with(scope, name, pinned, Part::Status, false, |cur| {
                let mut next = cur.clone();
                next["status"] = st.clone();
                Ok(next)
            })
            .await?;
        ctx.gameservers.write_through(&written.object);
        ctx.track(key);
        if let Some((type_, reason, message)) = event {
            // in the background: the next scheduling decision need not wait for it
            let (registry, object) = (ctx.registry.clone(), written.object.clone());
            tokio::spawn(
                async move { record_event(&registry, &object, type_, reason, &message).await },
            );
        }
    }
    Ok(requeue)
}

/// The Node decision.
#[derive(Debug, Clone, PartialEq)]
enum NodeDecision {
    /// Fine; look again when the heartbeat would expire.
    CheckAgain(Duration),
    /// The heartbeat stopped: NotReady, its servers Unknown.
    Lost,
    /// Already NotReady: make sure its servers are Unknown.
    StillLost,
}

fn decide_node(node: &Value, now: DateTime<Utc>) -> NodeDecision {
    let status: NodeStatus =
        serde_json::from_value(node.get("status").cloned().unwrap_or(json!({})))
            .unwrap_or_default();
    let grace = chrono::Duration::from_std(NODE_GRACE).expect("small");
    match (status.state, status.last_heartbeat_time) {
        (NodeState::Ready, Some(t)) if now - t < grace => {
            NodeDecision::CheckAgain((t + grace - now).to_std().unwrap_or_default())
        }
        (NodeState::Ready, _) => NodeDecision::Lost,
        (NodeState::NotReady, _) => NodeDecision::StillLost,
        (NodeState::Unknown, _) => NodeDecision::CheckAgain(NODE_GRACE),
    }
}

/// Reconciles one Node: NotReady after missed heartbeats, and its servers Unknown.
pub async fn reconcile_node(ctx: &Context, key: &str) -> Result<Action, ReconcileError> {
    let Some(node) = ctx.nodes.get(key) else {
        return Ok(Action::Done);
    };
    let name = key.to_owned();
    match decide_node(&node, Utc::now()) {
        NodeDecision::CheckAgain(d) => {
            return Ok(Action::RequeueAfter(d + Duration::from_millis(100)))
        }
        NodeDecision::Lost => {
            let scope = Scope {
                kind: kind("nodes"),
                namespace: None,
            };
            let written = ctx
                .registry
                .update_with(scope, &name, rv_of(&node), Part::Status, false, |cur| {
                    let mut next = cur.clone();
                    next["status"]["state"] = "NotReady".into();
                    put_condition(
                        &mut next["status"],
                        Condition::new(
                            "Ready",
                            false,
                            "NodeHeartbeatLost",
                            &format!("no heartbeat for {} s", NODE_GRACE.as_secs()),
                            None,
                        ),
                    );
                    Ok(next)
                })
                .await?;
            ctx.nodes.write_through(&written.object);
            record_event(
                &ctx.registry,
                &written.object,
                "Warning",
                "NodeNotReady",
                "the node stopped heartbeating",
            )
            .await;
        }
        NodeDecision::StillLost => {}
    }
    // its servers: Unknown
    for gs in ctx.gameservers.all() {
        if gs.pointer("/status/nodeName").and_then(Value::as_str) != Some(name.as_str()) {
            continue;
        }
        let phase = phase_of(&gs);
        if lifecycle::transition(phase, Lifecycle::NodeLost).is_err() {
            continue;
        }
        let key = key_of(&gs);
        let (ns, gs_name) = split_key(&key);
        let scope = Scope {
            kind: kind("gameservers"),
            namespace: ns,
        };
        let result = ctx
            .registry
            .update_with(scope, gs_name, rv_of(&gs), Part::Status, false, |cur| {
                let mut next = cur.clone();
                next["status"]["phase"] = "Unknown".into();
                put_condition(
                    &mut next["status"],
                    Condition::new(
                        "NodeReady",
                        false,
                        "NodeLost",
                        &format!("node {name} is not ready"),
                        None,
                    ),
                );
                Ok(next)
            })
            .await;
        match result {
            Ok(w) => {
                ctx.gameservers.write_through(&w.object);
                record_event(
                    &ctx.registry,
                    &w.object,
                    "Warning",
                    "NodeLost",
                    &format!("node {name} stopped heartbeating; state unknown"),
                )
                .await;
            }
            Err(ApiError::Conflict { .. }) => {
                return Ok(Action::RequeueAfter(Duration::from_millis(200)))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalyst_schemas::gameserver::PortPolicy;

    #[test]
    fn nodes_are_lost_after_the_grace_period_and_checked_again_before() {
        let now = Utc::now();
        let node = |state: &str, ago: i64| json!({"status": {"state": state, "lastHeartbeatTime": now - chrono::Duration::seconds(ago)}});
        assert!(
            matches!(decide_node(&node("Ready", 10), now), NodeDecision::CheckAgain(d) if d <= Duration::from_secs(30))
        );
        assert_eq!(decide_node(&node("Ready", 41), now), NodeDecision::Lost);
        assert_eq!(
            decide_node(&node("NotReady", 100), now),
            NodeDecision::StillLost
        );
    }

    #[test]
    fn policies_survive_the_request_conversion() {
        let spec: GameServerSpec = serde_json::from_value(json!({"image": "x", "resources": {"cpu": "1500m", "memory": "1Gi"},
            "ports": [{"containerPort": 27015, "protocol": "UDP", "policy": "Static", "hostPort": 27015}]})).unwrap();
        let r = request_of(&spec);
        assert_eq!(r.requests.cpu_milli, 1500);
        assert_eq!(r.requests.memory, 1 << 30);
        assert_eq!(
            (r.ports[0].policy, r.ports[0].host_port),
            (PortPolicy::Static, Some(27015))
        );
    }
}
