//! The GameServer reconciler: the finalizer, suspension, and scheduling of Pending servers.

use std::sync::Mutex;
use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{Part, Scope};
use catalyst_schemas::gameserver::GameServerSpec;
use catalyst_schemas::lifecycle::{self, Event as Lifecycle, Phase};
use catalyst_schemas::meta::Condition;
use catalyst_schemas::object::{phase_of, put_condition, resource_version as rv_of, split_key};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::context::{kind, Action, Context, ReconcileError, FINALIZER};
use super::events::{record_event, EventNote};
use super::view::{node_address, request_of};
use crate::scheduling::{self, Bound, HostPort, NodeInfo, Strategy, Usage};

/// The GameServer decision.
#[derive(Debug, Clone, PartialEq)]
enum GsDecision {
    /// Nothing to do until the object changes.
    Nothing,
    /// Put our finalizer on, so deletion waits for the server to be stopped.
    AddFinalizer,
    /// Deleting and nothing runs any more: let the object go.
    Finalize,
    /// Deleting, but the nodelet still has to stop it.
    WaitForStop,
    /// `spec.suspended` is set: the phase goes Suspended.
    Suspend,
    /// No longer suspended: back to Pending, to be scheduled again.
    Resume,
    /// Pending and a node fits: bind it there with these host ports.
    Bind(scheduling::Placement),
    /// Pending and no node fits: why.
    Unschedulable(String),
}

/// Decides what to do with a GameServer from its cached object at `now`: `nodes` (the cached
/// Nodes) and `usage` are only consulted when a Pending server is to be placed.
fn decide_gameserver(
    gs: &Value,
    spec: &GameServerSpec,
    nodes: impl FnOnce(DateTime<Utc>) -> std::sync::Arc<Vec<NodeInfo>>,
    usage: &Mutex<Usage>,
    strategy: Strategy,
    now: DateTime<Utc>,
) -> GsDecision {
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
    let nodes = nodes(now);
    let usage = usage.lock().expect("usage lock");
    match scheduling::schedule(&request_of(spec), &nodes, &usage, strategy) {
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
    let decision = {
        // one decision at a time; a placement is reserved before the next one is made, so
        // concurrent binding writes never share a host port or capacity
        let _one = ctx.deciding.lock().expect("deciding lock");
        let now = Utc::now();
        let decision = decide_gameserver(
            &gs,
            &spec,
            |now| ctx.node_infos.current(&ctx.nodes, now),
            &ctx.usage,
            ctx.strategy,
            now,
        );
        if let GsDecision::Bind(p) = &decision {
            let bound = Bound {
                node: p.node.clone(),
                requests: request_of(&spec).requests,
                ports: spec
                    .ports
                    .iter()
                    .zip(&p.host_ports)
                    .map(|(port, host)| HostPort {
                        port: *host,
                        protocol: port.protocol,
                    })
                    .collect(),
            };
            ctx.usage.lock().expect("usage lock").reserve(key, bound);
        }
        decision
    };
    let reserved = matches!(decision, GsDecision::Bind(_));
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
            if let Some(addr) = node.as_deref().and_then(node_address) {
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
            .await;
        if let Ok(w) = &written {
            ctx.gameservers.write_through(&w.object);
        }
        if reserved {
            // written: the cache holds the binding now; failed: what was reserved is free
            ctx.usage.lock().expect("usage lock").release(key);
        }
        ctx.track(key);
        let written = written?;
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

#[cfg(test)]
mod tests;
