//! Host-port allocation on one node: which ports a server's Dynamic, Static and Passthrough
//! ports get, given what the node's servers already hold (per single protocol).

use std::collections::BTreeMap;

use catalyst_schemas::gameserver::{PortPolicy, Protocol};
use catalyst_schemas::node::{host_port_in_range, PortRange};

use super::request::{NodeInfo, PortRequest};

fn protocols(p: Protocol) -> &'static [Protocol] {
    match p {
        Protocol::TCP => &[Protocol::TCP],
        Protocol::UDP => &[Protocol::UDP],
        Protocol::TCPUDP => &[Protocol::TCP, Protocol::UDP],
    }
}

/// Host ports in use on a node, per single protocol, with how many servers hold each.
pub type Used = BTreeMap<(u16, Protocol), u32>;

pub(super) fn free(used: &Used, port: u16, protocol: Protocol) -> bool {
    protocols(protocol)
        .iter()
        .all(|p| !used.contains_key(&(port, *p)))
}

pub(super) fn take(used: &mut Used, port: u16, protocol: Protocol) {
    for p in protocols(protocol) {
        *used.entry((port, *p)).or_default() += 1;
    }
}

pub(super) fn release(used: &mut Used, port: u16, protocol: Protocol) {
    for p in protocols(protocol) {
        if let Some(n) = used.get_mut(&(port, *p)) {
            *n -= 1;
            if *n == 0 {
                used.remove(&(port, *p));
            }
        }
    }
}

/// Chooses host ports on one node, or says why it cannot: a Static or Passthrough host port
/// outside the node's port range, in use, or no free port in the range for a Dynamic one.
pub fn allocate_ports(
    node: &NodeInfo,
    used: &Used,
    ports: &[PortRequest],
) -> Result<Vec<u16>, String> {
    let mut used = used.clone();
    let mut out = Vec::with_capacity(ports.len());
    // fixed ports first, so a Dynamic port never takes a port a Static one of the same server needs
    let mut chosen: Vec<Option<u16>> = vec![None; ports.len()];
    for (i, p) in ports.iter().enumerate() {
        let fixed = match p.policy {
            PortPolicy::Static => p.host_port,
            PortPolicy::Passthrough => Some(p.container_port),
            PortPolicy::Dynamic => None,
        };
        if let Some(port) = fixed {
            let range = PortRange {
                min: node.port_range.0.into(),
                max: node.port_range.1.into(),
            };
            host_port_in_range(&range, p.policy, port.into())?;
            if !free(&used, port, p.protocol) {
                return Err(format!("host port {port}/{:?} is in use", p.protocol));
            }
            take(&mut used, port, p.protocol);
            chosen[i] = Some(port);
        }
    }
    let (lo, hi) = node.port_range;
    for (i, p) in ports.iter().enumerate() {
        if chosen[i].is_some() {
            continue;
        }
        let port = (lo..=hi)
            .find(|port| free(&used, *port, p.protocol))
            .ok_or_else(|| format!("no free host port in {lo}-{hi}"))?;
        take(&mut used, port, p.protocol);
        chosen[i] = Some(port);
    }
    out.extend(chosen.into_iter().map(|c| c.expect("every port chosen")));
    Ok(out)
}
