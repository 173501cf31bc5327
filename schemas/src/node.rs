//! The Node kind: a machine that runs game servers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Condition;
use crate::quantity::Quantity;
use crate::resource::{resource, Validate};
use crate::validation::{self, Causes, FieldPath};

resource! {
    /// A machine with a nodelet.
    Node {
        spec: NodeSpec,
        status: NodeStatus,
        plural: "nodes",
        singular: "node",
        short: ["no"],
        namespaced: false,
        name_rule: validation::dns_label,
    }
}

/// What the operator sets on a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// The address players connect to; default: the first address the nodelet reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Host ports handed to Dynamic ports.
    #[serde(default)]
    pub port_range: PortRange,
    /// Cordoned: no new servers are scheduled here.
    #[serde(default)]
    pub unschedulable: bool,
}

/// An inclusive range of host ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    /// The first port.
    pub min: i64,
    /// The last port.
    pub max: i64,
}

impl Default for PortRange {
    fn default() -> Self {
        Self {
            min: 7000,
            max: 7999,
        }
    }
}

impl Validate for NodeSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        let p = path.child("portRange");
        causes.check(
            (1..=65535).contains(&self.port_range.min),
            &p.child("min"),
            "must be 1-65535",
        );
        causes.check(
            (1..=65535).contains(&self.port_range.max),
            &p.child("max"),
            "must be 1-65535",
        );
        causes.check(
            self.port_range.min <= self.port_range.max,
            &p,
            "min must not exceed max",
        );
        if let Some(a) = &self.address {
            causes.check(
                !a.trim().is_empty(),
                &path.child("address"),
                "must not be empty",
            );
        }
    }
}

/// Amounts of node resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeResources {
    /// CPU cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Disk in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Quantity>,
    /// Processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

/// Whether the node is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum NodeState {
    /// Heartbeats arrive.
    Ready,
    /// Heartbeats stopped.
    NotReady,
    /// Never heard from.
    #[default]
    Unknown,
}

/// What the nodelet and the node controller observe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Ready, NotReady or Unknown.
    #[serde(default)]
    pub state: NodeState,
    /// The node's addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Everything the machine has.
    #[serde(default)]
    pub capacity: NodeResources,
    /// What game servers may use.
    #[serde(default)]
    pub allocatable: NodeResources,
    /// What the servers bound here request.
    #[serde(default)]
    pub allocated: NodeResources,
    /// Versions: nodelet, containerd, kernel, os.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// The last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<DateTime<Utc>>,
    /// Observations: Ready, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Validate for NodeStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}
