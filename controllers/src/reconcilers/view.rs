//! Cached objects as the scheduler sees them: a Node as [`NodeInfo`] (Ready only with a fresh
//! heartbeat), a GameServer spec as a [`Request`], a bound GameServer as what it holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_schemas::gameserver::GameServerSpec;
use catalyst_schemas::lifecycle::Phase;
use catalyst_schemas::node::{NodeSpec, NodeState, NodeStatus};
use catalyst_schemas::object::{phase_of, resource_version};
use catalyst_schemas::Quantity;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::informer::Cache;
use crate::scheduling::{Amounts, Bound, HostPort, NodeInfo, PortRequest, Request};

/// How long a node may go without a heartbeat before it is NotReady.
pub const NODE_GRACE: Duration = Duration::from_secs(40);

/// A quantity in millis (`milli`) or whole units; absent is 0.
fn amount(v: &Option<Quantity>, milli: bool) -> i64 {
    v.as_ref()
        .map_or(0, |q| if milli { q.milli_value() } else { q.value() })
}

/// The scheduler's view of a node at `now`; `None` when its spec or status does not parse.
pub(crate) fn node_info(node: &Value, now: DateTime<Utc>) -> Option<NodeInfo> {
    parse_node(node).map(|p| p.at(now))
}

/// A node as parsed once per revision: readiness waits for the time it is asked at.
#[derive(Debug, Clone)]
struct ParsedNode {
    info: NodeInfo,
    state_ready: bool,
    heartbeat: Option<DateTime<Utc>>,
}

impl ParsedNode {
    fn at(&self, now: DateTime<Utc>) -> NodeInfo {
        let fresh = self
            .heartbeat
            .is_some_and(|t| now - t < chrono::Duration::from_std(NODE_GRACE).expect("small"));
        NodeInfo {
            ready: self.state_ready && fresh,
            ..self.info.clone()
        }
    }
}

/// The scheduler's views of the cached Nodes, each parsed once per revision (a scheduling
/// decision would otherwise parse every node again).
#[derive(Debug, Default)]
pub struct NodeInfos {
    parsed: Mutex<HashMap<String, (i64, Option<ParsedNode>)>>,
    /// The last views, and when they were made; taken again while no node changed and they
    /// are younger than [`SNAPSHOT_TTL`].
    snapshot: Mutex<Option<Snapshot>>,
    changed: AtomicBool,
}

/// Node views and when they were made.
type Snapshot = (DateTime<Utc>, Arc<Vec<NodeInfo>>);

/// How long the views of unchanged nodes are reused (readiness by heartbeat age is that late
/// at most).
const SNAPSHOT_TTL: chrono::TimeDelta = chrono::TimeDelta::milliseconds(500);

impl NodeInfos {
    /// Says that a node changed: the next views are made afresh.
    pub fn invalidate(&self) {
        self.changed.store(true, Ordering::SeqCst);
    }

    /// The views of every node in `nodes` at `now` (nodes that do not parse are left out).
    pub(crate) fn current(&self, nodes: &Cache, now: DateTime<Utc>) -> Arc<Vec<NodeInfo>> {
        let mut snapshot = self.snapshot.lock().expect("node snapshot lock");
        let changed = self.changed.swap(false, Ordering::SeqCst);
        if let Some((at, infos)) = snapshot.as_ref() {
            if !changed && now >= *at && now - *at < SNAPSHOT_TTL {
                return infos.clone();
            }
        }
        let infos = Arc::new(self.parse(nodes, now));
        *snapshot = Some((now, infos.clone()));
        infos
    }

    fn parse(&self, nodes: &Cache, now: DateTime<Utc>) -> Vec<NodeInfo> {
        let mut parsed = self.parsed.lock().expect("node infos lock");
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        nodes.visit(|key, node| {
            seen.insert(key.clone());
            let rv = resource_version(node).unwrap_or(0);
            let entry = parsed
                .entry(key.clone())
                .or_insert_with(|| (rv, parse_node(node)));
            if entry.0 != rv {
                *entry = (rv, parse_node(node));
            }
            if let Some(p) = &entry.1 {
                out.push(p.at(now));
            }
        });
        parsed.retain(|k, _| seen.contains(k));
        out
    }
}

fn parse_node(node: &Value) -> Option<ParsedNode> {
    let spec: NodeSpec =
        serde_json::from_value(node.get("spec").cloned().unwrap_or(json!({}))).ok()?;
    let status: NodeStatus =
        serde_json::from_value(node.get("status").cloned().unwrap_or(json!({}))).ok()?;
    let info = NodeInfo {
        name: node.pointer("/metadata/name")?.as_str()?.to_owned(),
        labels: node
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l.clone()).ok())
            .unwrap_or_default(),
        ready: false,
        unschedulable: spec.unschedulable,
        allocatable: Amounts {
            cpu_milli: amount(&status.allocatable.cpu, true),
            memory: amount(&status.allocatable.memory, false),
            disk: amount(&status.allocatable.disk, false),
        },
        port_range: (
            u16::try_from(spec.port_range.min).unwrap_or(1),
            u16::try_from(spec.port_range.max).unwrap_or(u16::MAX),
        ),
        allow_host_network: spec.allow_host_network,
    };
    Some(ParsedNode {
        info,
        state_ready: status.state == NodeState::Ready,
        heartbeat: status.last_heartbeat_time,
    })
}

/// The address players reach a node at: `spec.address`, else its first reported address.
pub(crate) fn node_address(node: &Value) -> Option<String> {
    node.pointer("/spec/address")
        .or_else(|| node.pointer("/status/addresses/0"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// What a server's spec asks of the scheduler.
pub(crate) fn request_of(spec: &GameServerSpec) -> Request {
    Request {
        requests: Amounts {
            cpu_milli: amount(&spec.resources.cpu, true),
            memory: amount(&spec.resources.memory, false),
            disk: amount(&spec.resources.disk, false),
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
pub(super) fn bound_of(gs: &Value) -> Option<Bound> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use catalyst_schemas::gameserver::PortPolicy;

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
