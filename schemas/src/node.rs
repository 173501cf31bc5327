//! The Node kind: a machine that runs game servers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gameserver::{GameServerPort, NetworkMode, PortPolicy, Resources};
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
    /// Host ports handed to Dynamic ports; Static and Passthrough host ports must lie in it too.
    #[serde(default)]
    pub port_range: PortRange,
    /// Cordoned: no new servers are scheduled here.
    #[serde(default)]
    pub unschedulable: bool,
    /// Servers with `network: Host` may run here (they share the node's network namespace and
    /// may listen on any port). Default false: such servers are not scheduled here.
    #[serde(default)]
    pub allow_host_network: bool,
    /// Limits for servers that set none; when absent the nodelet's defaults apply (memory 1Gi,
    /// cpu 1, pids 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_resources: Option<Resources>,
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

impl PortRange {
    /// True when `port` lies in the range (both ends included).
    pub fn contains(&self, port: i64) -> bool {
        (self.min..=self.max).contains(&port)
    }
}

/// Whether a node's port range holds the host port `port` that a `policy` (Static or
/// Passthrough) port fixes. The error names the port, the policy and the range.
pub fn host_port_in_range(range: &PortRange, policy: PortPolicy, port: i64) -> Result<(), String> {
    if range.contains(port) {
        Ok(())
    } else {
        Err(format!(
            "{policy:?} host port {port} is outside the node's port range {}-{}",
            range.min, range.max
        ))
    }
}

/// Whether a node lets a server have every host port its Static and Passthrough ports fix:
/// each must lie in the node's `spec.portRange` ([`host_port_in_range`]). Dynamic ports are
/// always taken from the range. Pure; the scheduler checks the same before binding and the
/// nodelet again before it runs a server.
pub fn host_ports_allowed(node: &NodeSpec, ports: &[GameServerPort]) -> Result<(), String> {
    ports.iter().try_for_each(|p| match p.fixed_host_port() {
        Some(port) => host_port_in_range(&node.port_range, p.policy, port),
        None => Ok(()),
    })
}

/// Whether a node with `allowHostNetwork` as given may run a server with `network`: Bridge
/// always, Host only where allowed. The error says which node field to set.
pub fn network_allowed(allow_host_network: bool, network: NetworkMode) -> Result<(), String> {
    match network {
        NetworkMode::Host if !allow_host_network => Err(
            "network Host is not allowed on this node (its spec.allowHostNetwork is false)".into(),
        ),
        _ => Ok(()),
    }
}

/// Whether `node` may run a server with `network` ([`network_allowed`] of the node's
/// `allowHostNetwork`). Pure; the scheduler and the nodelet both check it.
pub fn host_network_allowed(node: &NodeSpec, network: NetworkMode) -> Result<(), String> {
    network_allowed(node.allow_host_network, network)
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
        if let Some(r) = &self.default_resources {
            r.validate(&path.child("defaultResources"), causes);
        }
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
    /// The node's SFTP server, when it runs one: where to connect and the host key to expect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sftp: Option<NodeSftp>,
}

/// A node's SFTP server. Users log in as `USER.SERVER` (the GameServer's name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSftp {
    /// Where clients connect, `HOST:PORT` (the node's address when it listens on all).
    pub address: String,
    /// The port.
    pub port: i64,
    /// The host key's SHA256 fingerprint as OpenSSH shows it (`SHA256:…`), to check on the
    /// first connection.
    pub host_key_fingerprint: String,
}

impl Validate for NodeStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gameserver::Protocol;
    use serde_json::json;

    fn port(policy: PortPolicy, container_port: i64, host_port: Option<i64>) -> GameServerPort {
        GameServerPort {
            name: String::new(),
            container_port,
            host_port,
            protocol: Protocol::UDP,
            policy,
        }
    }

    fn node(min: i64, max: i64) -> NodeSpec {
        NodeSpec {
            port_range: PortRange { min, max },
            ..NodeSpec::default()
        }
    }

    #[test]
    fn static_and_passthrough_host_ports_must_lie_in_the_node_range() {
        let n = node(27000, 27999);
        assert!(host_ports_allowed(&n, &[]).is_ok());
        assert!(host_ports_allowed(
            &n,
            &[
                port(PortPolicy::Static, 1, Some(27000)),
                port(PortPolicy::Passthrough, 27999, None),
                // Dynamic ports come from the range anyway
                port(PortPolicy::Dynamic, 80, None),
            ]
        )
        .is_ok());
        assert_eq!(
            host_ports_allowed(&n, &[port(PortPolicy::Static, 1, Some(28000))]),
            Err("Static host port 28000 is outside the node's port range 27000-27999".into())
        );
        assert_eq!(
            host_ports_allowed(&n, &[port(PortPolicy::Passthrough, 25565, None)]),
            Err("Passthrough host port 25565 is outside the node's port range 27000-27999".into())
        );
    }

    #[test]
    fn host_networking_needs_the_node_to_allow_it() {
        let mut n = node(7000, 7999);
        assert!(host_network_allowed(&n, NetworkMode::Bridge).is_ok());
        let err = host_network_allowed(&n, NetworkMode::Host).unwrap_err();
        assert!(err.contains("spec.allowHostNetwork is false"), "{err}");
        n.allow_host_network = true;
        assert!(host_network_allowed(&n, NetworkMode::Host).is_ok());
    }

    #[test]
    fn new_node_fields_default_off_and_are_camel_case() {
        let spec: NodeSpec = serde_json::from_value(json!({})).unwrap();
        assert!(!spec.allow_host_network);
        assert_eq!(spec.default_resources, None);
        let spec: NodeSpec = serde_json::from_value(json!({"allowHostNetwork": true,
            "defaultResources": {"memory": "2Gi", "cpu": "2", "pids": 1024}}))
        .unwrap();
        assert!(spec.allow_host_network);
        assert_eq!(spec.default_resources.unwrap().pids, Some(1024));
    }

    #[test]
    fn default_resources_are_validated_like_a_servers() {
        let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node",
            "metadata": {"name": "node-a"},
            "spec": {"defaultResources": {"memory": "1Ki", "cpu": "0", "pids": -1}}});
        let err = crate::admit(obj).unwrap_err();
        let fields: Vec<&str> = err.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.defaultResources.cpu",
                "spec.defaultResources.memory",
                "spec.defaultResources.pids"
            ]
        );
    }
}
