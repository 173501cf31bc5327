//! The Node reconciler: a node whose heartbeat stopped goes NotReady, and its servers Unknown.

use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{Part, Scope};
use catalyst_schemas::lifecycle::{self, Event as Lifecycle};
use catalyst_schemas::meta::Condition;
use catalyst_schemas::node::{NodeState, NodeStatus};
use catalyst_schemas::object::{
    key_of, phase_of, put_condition, resource_version as rv_of, split_key,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::context::{kind, Action, Context, ReconcileError};
use super::events::record_event;

/// The Node decision.
#[derive(Debug, Clone, PartialEq)]
enum NodeDecision {
    /// Fine; look again when the heartbeat would expire.
    CheckAgain(Duration),
    /// The heartbeat stopped: NotReady, its servers Unknown.
    Lost,
    /// Already NotReady: make sure its servers are Unknown.
    StillLost,
    /// Heartbeating again after it was lost: its `Ready` condition back to True (its nodelet
    /// writes `state: Ready` itself, and reports its servers again), then as `CheckAgain`.
    Recovered(Duration),
}

fn decide_node(node: &Value, now: DateTime<Utc>, grace_period: Duration) -> NodeDecision {
    let status: NodeStatus =
        serde_json::from_value(node.get("status").cloned().unwrap_or(json!({})))
            .unwrap_or_default();
    let grace = chrono::Duration::from_std(grace_period).unwrap_or(chrono::Duration::MAX);
    let ready_false = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "False")
        });
    match (status.state, status.last_heartbeat_time) {
        (NodeState::Ready, Some(t)) if now - t < grace => {
            let left = (t + grace - now).to_std().unwrap_or_default();
            if ready_false {
                NodeDecision::Recovered(left)
            } else {
                NodeDecision::CheckAgain(left)
            }
        }
        (NodeState::Ready, _) => NodeDecision::Lost,
        (NodeState::NotReady, _) => NodeDecision::StillLost,
        (NodeState::Unknown, _) => NodeDecision::CheckAgain(grace_period),
    }
}

/// Reconciles one Node: NotReady after missed heartbeats, and its servers Unknown.
pub async fn reconcile_node(ctx: &Context, key: &str) -> Result<Action, ReconcileError> {
    let Some(node) = ctx.nodes.get(key) else {
        return Ok(Action::Done);
    };
    let name = key.to_owned();
    match decide_node(&node, Utc::now(), ctx.node_grace) {
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
                            &format!("no heartbeat for {} s", ctx.node_grace.as_secs()),
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
        NodeDecision::Recovered(d) => {
            let scope = Scope {
                kind: kind("nodes"),
                namespace: None,
            };
            let written = ctx
                .registry
                .update_with(scope, &name, rv_of(&node), Part::Status, false, |cur| {
                    let mut next = cur.clone();
                    put_condition(
                        &mut next["status"],
                        Condition::new("Ready", true, "NodeHeartbeat", "heartbeating again", None),
                    );
                    Ok(next)
                })
                .await;
            return match written {
                Ok(w) => {
                    ctx.nodes.write_through(&w.object);
                    record_event(
                        &ctx.registry,
                        &w.object,
                        "Normal",
                        "NodeReady",
                        "the node is heartbeating again",
                    )
                    .await;
                    Ok(Action::RequeueAfter(d + Duration::from_millis(100)))
                }
                Err(ApiError::Conflict { .. }) => {
                    Ok(Action::RequeueAfter(Duration::from_millis(200)))
                }
                Err(e) => Err(e.into()),
            };
        }
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

    #[test]
    fn nodes_are_lost_after_the_grace_period_and_checked_again_before() {
        let now = Utc::now();
        let node = |state: &str, ago: i64| json!({"status": {"state": state, "lastHeartbeatTime": now - chrono::Duration::seconds(ago)}});
        let grace = Duration::from_secs(40);
        assert!(
            matches!(decide_node(&node("Ready", 10), now, grace), NodeDecision::CheckAgain(d) if d <= Duration::from_secs(30))
        );
        assert_eq!(
            decide_node(&node("Ready", 41), now, grace),
            NodeDecision::Lost
        );
        assert_eq!(
            decide_node(&node("NotReady", 100), now, grace),
            NodeDecision::StillLost
        );
        // back after a loss: its Ready condition goes True again
        let mut back = node("Ready", 5);
        back["status"]["conditions"] =
            json!([{"type": "Ready", "status": "False", "reason": "NodeHeartbeatLost"}]);
        assert!(matches!(
            decide_node(&back, now, grace),
            NodeDecision::Recovered(d) if d <= Duration::from_secs(35)
        ));
        let short = Duration::from_secs(15);
        assert_eq!(
            decide_node(&node("Ready", 16), now, short),
            NodeDecision::Lost
        );
    }
}
