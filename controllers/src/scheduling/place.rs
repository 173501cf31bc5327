//! Choosing a node: the filters (pinned node, readiness, cordon, labels, network, capacity,
//! ports) and the Packed/Distributed scoring among the nodes that pass.

use catalyst_schemas::node::network_allowed;

use super::ports::allocate_ports;
use super::request::{Amounts, NodeInfo, Placement, Request, Strategy, Unschedulable};
use super::usage::{NodeUsage, Usage};

/// Picks a node and host ports for `req`, or explains per node why none fits.
pub fn schedule(
    req: &Request,
    nodes: &[NodeInfo],
    usage: &Usage,
    strategy: Strategy,
) -> Result<Placement, Unschedulable> {
    let mut reasons = Vec::new();
    let mut fits: Vec<(Amounts, &NodeInfo, Vec<u16>)> = Vec::new();
    let mut sorted: Vec<&NodeInfo> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for node in sorted {
        let reason = if req.node_name.as_ref().is_some_and(|n| n != &node.name) {
            Some("not the pinned node".to_owned())
        } else if !node.ready {
            Some("node is not Ready".to_owned())
        } else if node.unschedulable {
            Some("node is cordoned".to_owned())
        } else if let Some((k, v)) = req
            .node_selector
            .iter()
            .find(|(k, v)| node.labels.get(*k) != Some(*v))
        {
            Some(format!("label {k}={v} does not match"))
        } else {
            network_allowed(node.allow_host_network, req.network).err()
        };
        if let Some(r) = reason {
            reasons.push((node.name.clone(), r));
            continue;
        }
        let empty = NodeUsage::default();
        let on_node = usage.node(&node.name).unwrap_or(&empty);
        let (allocated, used) = (on_node.allocated, &on_node.used);
        let remaining = node.allocatable.sub(allocated);
        if let Some(res) = remaining.short_of(req.requests) {
            reasons.push((node.name.clone(), format!("not enough {res}")));
            continue;
        }
        match allocate_ports(node, used, &req.ports) {
            Ok(ports) => fits.push((remaining.sub(req.requests), node, ports)),
            Err(r) => reasons.push((node.name.clone(), r)),
        }
    }
    let best = match strategy {
        Strategy::Packed => fits
            .into_iter()
            .min_by_key(|(left, n, _)| (left.cpu_milli, left.memory, n.name.clone())),
        Strategy::Distributed => fits
            .into_iter()
            .min_by_key(|(left, n, _)| (-left.cpu_milli, -left.memory, n.name.clone())),
    };
    match best {
        Some((_, node, host_ports)) => Ok(Placement {
            node: node.name.clone(),
            host_ports,
        }),
        None => Err(Unschedulable { reasons }),
    }
}
