//! What goes into and comes out of a scheduling decision: resource amounts, the scheduler's view
//! of a node, a server's request, the strategy, and the placement or the reasons none fits.

use std::collections::BTreeMap;

use catalyst_schemas::gameserver::{NetworkMode, PortPolicy, Protocol};

/// Amounts of node resources: CPU in millicores, memory and disk in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    /// Millicores.
    pub cpu_milli: i64,
    /// Bytes.
    pub memory: i64,
    /// Bytes.
    pub disk: i64,
}

impl Amounts {
    pub(super) fn add(self, o: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli + o.cpu_milli,
            memory: self.memory + o.memory,
            disk: self.disk + o.disk,
        }
    }

    pub(super) fn sub(self, o: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli - o.cpu_milli,
            memory: self.memory - o.memory,
            disk: self.disk - o.disk,
        }
    }

    /// The first resource `self` has less of than `need`, if any.
    pub(super) fn short_of(self, need: Amounts) -> Option<&'static str> {
        if self.cpu_milli < need.cpu_milli {
            Some("cpu")
        } else if self.memory < need.memory {
            Some("memory")
        } else if self.disk < need.disk {
            Some("disk")
        } else {
            None
        }
    }
}

/// A node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Heartbeats arrive.
    pub ready: bool,
    /// Cordoned.
    pub unschedulable: bool,
    /// What servers may use.
    pub allocatable: Amounts,
    /// The host ports Dynamic ports come from (inclusive); Static and Passthrough host ports
    /// must lie in it too.
    pub port_range: (u16, u16),
    /// Servers with `network: Host` may run here (`spec.allowHostNetwork`).
    pub allow_host_network: bool,
}

/// A port to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    /// The container port.
    pub container_port: u16,
    /// TCP, UDP or both.
    pub protocol: Protocol,
    /// How the host port is chosen.
    pub policy: PortPolicy,
    /// The asked host port (Static).
    pub host_port: Option<u16>,
}

/// What a server asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Resources.
    pub requests: Amounts,
    /// Pinned node.
    pub node_name: Option<String>,
    /// Labels the node must carry.
    pub node_selector: BTreeMap<String, String>,
    /// Ports.
    pub ports: Vec<PortRequest>,
    /// Bridge, or Host (only on nodes that allow it).
    pub network: NetworkMode,
}

/// How to choose among nodes that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Fill the fullest node first (fewer machines busy).
    #[default]
    Packed,
    /// Spread over the emptiest nodes.
    Distributed,
}

/// Where a server goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The node.
    pub node: String,
    /// One host port per requested port, in order.
    pub host_ports: Vec<u16>,
}

/// Why no node fits: one reason per node considered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no node fits: {}", .reasons.iter().map(|(n, r)| format!("{n}: {r}")).collect::<Vec<_>>().join("; "))]
pub struct Unschedulable {
    /// (node, reason), sorted by node; empty when there are no nodes at all.
    pub reasons: Vec<(String, String)>,
}
