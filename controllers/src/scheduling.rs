//! Scheduling as a pure decision: which node a GameServer goes to and which host ports it gets,
//! from the nodes, what is already bound to them, and the server's request. No I/O; the
//! GameServer controller acts on the result.

use std::collections::BTreeMap;

use catalyst_schemas::gameserver::{NetworkMode, PortPolicy, Protocol};
use catalyst_schemas::node::{host_port_in_range, network_allowed, PortRange};

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
    fn add(self, o: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli + o.cpu_milli,
            memory: self.memory + o.memory,
            disk: self.disk + o.disk,
        }
    }

    fn sub(self, o: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli - o.cpu_milli,
            memory: self.memory - o.memory,
            disk: self.disk - o.disk,
        }
    }

    /// The first resource `self` has less of than `need`, if any.
    fn short_of(self, need: Amounts) -> Option<&'static str> {
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

/// A host port in use on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// The port.
    pub port: u16,
    /// TCP, UDP or both.
    pub protocol: Protocol,
}

/// A server already bound to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The node.
    pub node: String,
    /// What it requests.
    pub requests: Amounts,
    /// Its host ports.
    pub ports: Vec<HostPort>,
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

fn protocols(p: Protocol) -> &'static [Protocol] {
    match p {
        Protocol::TCP => &[Protocol::TCP],
        Protocol::UDP => &[Protocol::UDP],
        Protocol::TCPUDP => &[Protocol::TCP, Protocol::UDP],
    }
}

/// Host ports in use on a node, per single protocol, with how many servers hold each.
pub type Used = BTreeMap<(u16, Protocol), u32>;

fn free(used: &Used, port: u16, protocol: Protocol) -> bool {
    protocols(protocol)
        .iter()
        .all(|p| !used.contains_key(&(port, *p)))
}

fn take(used: &mut Used, port: u16, protocol: Protocol) {
    for p in protocols(protocol) {
        *used.entry((port, *p)).or_default() += 1;
    }
}

fn release(used: &mut Used, port: u16, protocol: Protocol) {
    for p in protocols(protocol) {
        if let Some(n) = used.get_mut(&(port, *p)) {
            *n -= 1;
            if *n == 0 {
                used.remove(&(port, *p));
            }
        }
    }
}

/// What the servers bound to one node hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// Their summed requests.
    pub allocated: Amounts,
    /// Their host ports.
    pub used: Used,
}

/// Per-node usage, kept current one server at a time (no rescans of every server).
#[derive(Debug, Clone, Default)]
pub struct Usage {
    by_server: BTreeMap<String, Bound>,
    per_node: BTreeMap<String, NodeUsage>,
}

impl Usage {
    /// Records what server `key` holds now (`None`: nothing).
    pub fn set(&mut self, key: &str, bound: Option<Bound>) {
        if let Some(old) = self.by_server.remove(key) {
            if let Some(n) = self.per_node.get_mut(&old.node) {
                n.allocated = n.allocated.sub(old.requests);
                for hp in &old.ports {
                    release(&mut n.used, hp.port, hp.protocol);
                }
            }
        }
        if let Some(b) = bound {
            let n = self.per_node.entry(b.node.clone()).or_default();
            n.allocated = n.allocated.add(b.requests);
            for hp in &b.ports {
                take(&mut n.used, hp.port, hp.protocol);
            }
            self.by_server.insert(key.to_owned(), b);
        }
    }

    /// What a node's servers hold.
    pub fn node(&self, name: &str) -> Option<&NodeUsage> {
        self.per_node.get(name)
    }

    /// The usage of a list of bound servers.
    pub fn of(bound: &[Bound]) -> Self {
        let mut u = Self::default();
        for (i, b) in bound.iter().enumerate() {
            u.set(&i.to_string(), Some(b.clone()));
        }
        u
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: i64, mem: i64) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: BTreeMap::new(),
            ready: true,
            unschedulable: false,
            allocatable: Amounts {
                cpu_milli: cpu,
                memory: mem,
                disk: 1 << 40,
            },
            port_range: (7000, 7009),
            allow_host_network: false,
        }
    }

    fn dynamic(protocol: Protocol) -> PortRequest {
        PortRequest {
            container_port: 25565,
            protocol,
            policy: PortPolicy::Dynamic,
            host_port: None,
        }
    }

    fn req(cpu: i64, mem: i64, ports: Vec<PortRequest>) -> Request {
        Request {
            requests: Amounts {
                cpu_milli: cpu,
                memory: mem,
                disk: 0,
            },
            ports,
            ..Default::default()
        }
    }

    #[test]
    fn packed_fills_the_fullest_node_and_distributed_the_emptiest() {
        let nodes = [node("a", 4000, 8 << 30), node("b", 8000, 8 << 30)];
        let r = req(1000, 1 << 30, vec![]);
        assert_eq!(
            schedule(&r, &nodes, &Usage::default(), Strategy::Packed)
                .unwrap()
                .node,
            "a"
        );
        assert_eq!(
            schedule(&r, &nodes, &Usage::default(), Strategy::Distributed)
                .unwrap()
                .node,
            "b"
        );
    }

    #[test]
    fn unschedulable_servers_are_told_why_for_every_node() {
        let mut cordoned = node("c", 8000, 8 << 30);
        cordoned.unschedulable = true;
        let mut down = node("d", 8000, 8 << 30);
        down.ready = false;
        let mut labelled = node("e", 8000, 8 << 30);
        labelled.labels.insert("region".into(), "us".into());
        let nodes = [node("a", 500, 8 << 30), cordoned, down, labelled];
        let mut r = req(1000, 1 << 30, vec![]);
        r.node_selector.insert("region".into(), "eu".into());
        let err = schedule(&r, &nodes, &Usage::default(), Strategy::Packed).unwrap_err();
        let reasons: Vec<&str> = err.reasons.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "label region=eu does not match",
                "node is cordoned",
                "node is not Ready",
                "label region=eu does not match"
            ]
        );
        assert!(err.to_string().contains("c: node is cordoned"));
    }

    #[test]
    fn static_ports_are_exact_or_unschedulable_and_passthrough_uses_the_container_port() {
        let mut a = node("a", 8000, 8 << 30);
        a.port_range = (27000, 30000);
        let nodes = [a];
        let taken = [Bound {
            node: "a".into(),
            requests: Amounts::default(),
            ports: vec![HostPort {
                port: 27015,
                protocol: Protocol::UDP,
            }],
        }];
        let stat = |p| PortRequest {
            container_port: 1,
            protocol: Protocol::UDP,
            policy: PortPolicy::Static,
            host_port: Some(p),
        };
        assert_eq!(
            schedule(
                &req(0, 0, vec![stat(27016)]),
                &nodes,
                &Usage::of(&taken),
                Strategy::Packed
            )
            .unwrap()
            .host_ports,
            [27016]
        );
        let err = schedule(
            &req(0, 0, vec![stat(27015)]),
            &nodes,
            &Usage::of(&taken),
            Strategy::Packed,
        )
        .unwrap_err();
        assert!(err.reasons[0].1.contains("27015"), "{err}");
        // TCP on the same number is free
        let tcp = PortRequest {
            protocol: Protocol::TCP,
            ..stat(27015)
        };
        assert!(schedule(
            &req(0, 0, vec![tcp]),
            &nodes,
            &Usage::of(&taken),
            Strategy::Packed
        )
        .is_ok());
        let pass = PortRequest {
            container_port: 30000,
            protocol: Protocol::TCP,
            policy: PortPolicy::Passthrough,
            host_port: None,
        };
        assert_eq!(
            schedule(
                &req(0, 0, vec![pass]),
                &nodes,
                &Usage::of(&taken),
                Strategy::Packed
            )
            .unwrap()
            .host_ports,
            [30000]
        );
    }

    #[test]
    fn a_dynamic_port_skips_ports_its_own_static_ports_need() {
        let nodes = [node("a", 8000, 8 << 30)];
        let ports = vec![
            dynamic(Protocol::TCP),
            PortRequest {
                container_port: 2,
                protocol: Protocol::TCP,
                policy: PortPolicy::Static,
                host_port: Some(7000),
            },
        ];
        assert_eq!(
            schedule(
                &req(0, 0, ports),
                &nodes,
                &Usage::default(),
                Strategy::Packed
            )
            .unwrap()
            .host_ports,
            [7001, 7000]
        );
    }

    fn fixed(policy: PortPolicy, container_port: u16, host_port: Option<u16>) -> PortRequest {
        PortRequest {
            container_port,
            protocol: Protocol::UDP,
            policy,
            host_port,
        }
    }

    #[test]
    fn static_and_passthrough_ports_go_only_to_nodes_whose_range_holds_them() {
        let mut wide = node("b", 8000, 8 << 30);
        wide.port_range = (27000, 27999);
        let nodes = [node("a", 8000, 8 << 30), wide];
        for p in [
            fixed(PortPolicy::Static, 1, Some(27015)),
            fixed(PortPolicy::Passthrough, 27015, None),
        ] {
            let placed = schedule(
                &req(0, 0, vec![p]),
                &nodes,
                &Usage::default(),
                Strategy::Packed,
            )
            .unwrap();
            assert_eq!(
                (placed.node.as_str(), placed.host_ports),
                ("b", vec![27015])
            );
        }
        let err = schedule(
            &req(0, 0, vec![fixed(PortPolicy::Static, 1, Some(28000))]),
            &nodes,
            &Usage::default(),
            Strategy::Packed,
        )
        .unwrap_err();
        assert_eq!(
            err.reasons,
            [
                (
                    "a".to_owned(),
                    "Static host port 28000 is outside the node's port range 7000-7009".to_owned()
                ),
                (
                    "b".to_owned(),
                    "Static host port 28000 is outside the node's port range 27000-27999"
                        .to_owned()
                )
            ]
        );
    }

    #[test]
    fn a_pinned_server_is_refused_by_its_node_when_a_fixed_port_is_outside_the_range() {
        let nodes = [node("a", 8000, 8 << 30)];
        let mut r = req(0, 0, vec![fixed(PortPolicy::Passthrough, 25565, None)]);
        r.node_name = Some("a".into());
        let err = schedule(&r, &nodes, &Usage::default(), Strategy::Packed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no node fits: a: Passthrough host port 25565 is outside the node's port range 7000-7009"
        );
    }

    #[test]
    fn host_network_servers_go_only_to_nodes_that_allow_it() {
        let mut allowing = node("b", 1000, 1 << 30);
        allowing.allow_host_network = true;
        let nodes = [node("a", 8000, 8 << 30), allowing];
        let mut r = req(0, 0, vec![]);
        r.network = NetworkMode::Host;
        assert_eq!(
            schedule(&r, &nodes, &Usage::default(), Strategy::Distributed)
                .unwrap()
                .node,
            "b"
        );
        // Bridge servers go anywhere (here the emptier node)
        r.network = NetworkMode::Bridge;
        assert_eq!(
            schedule(&r, &nodes, &Usage::default(), Strategy::Distributed)
                .unwrap()
                .node,
            "a"
        );
    }

    #[test]
    fn a_pinned_host_network_server_on_a_node_without_it_is_told_why() {
        let nodes = [node("a", 8000, 8 << 30)];
        let mut r = req(0, 0, vec![]);
        r.network = NetworkMode::Host;
        r.node_name = Some("a".into());
        let err = schedule(&r, &nodes, &Usage::default(), Strategy::Packed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no node fits: a: network Host is not allowed on this node (its spec.allowHostNetwork is false)"
        );
    }

    /// xorshift64*: deterministic randomness without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    #[test]
    fn random_creates_and_deletes_never_double_book_a_port_or_overfill_a_node() {
        let protos = [Protocol::TCP, Protocol::UDP, Protocol::TCPUDP];
        for seed in 1..200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let nodes: Vec<NodeInfo> = (0..1 + rng.next(4))
                .map(|i| {
                    let mut n = node(
                        &format!("n{i}"),
                        1000 + 1000 * rng.next(4) as i64,
                        (1 + rng.next(8) as i64) << 30,
                    );
                    n.port_range = (7000, 7000 + rng.next(12) as u16);
                    n
                })
                .collect();
            let mut bound: Vec<(String, Bound)> = Vec::new();
            let mut usage = Usage::default();
            let mut next_id = 0;
            for _ in 0..200 {
                if rng.next(3) == 0 && !bound.is_empty() {
                    let i = rng.next(bound.len() as u64) as usize;
                    let (id, _) = bound.swap_remove(i);
                    usage.set(&id, None);
                    continue;
                }
                let ports = (0..rng.next(3))
                    .map(|_| {
                        let protocol = protos[rng.next(3) as usize];
                        match rng.next(4) {
                            0 => PortRequest {
                                container_port: 1,
                                protocol,
                                policy: PortPolicy::Static,
                                host_port: Some(7000 + rng.next(16) as u16),
                            },
                            1 => PortRequest {
                                container_port: 7000 + rng.next(16) as u16,
                                protocol,
                                policy: PortPolicy::Passthrough,
                                host_port: None,
                            },
                            _ => dynamic(protocol),
                        }
                    })
                    .collect();
                let r = req(100 * rng.next(20) as i64, (rng.next(4) as i64) << 29, ports);
                let strategy = if rng.next(2) == 0 {
                    Strategy::Packed
                } else {
                    Strategy::Distributed
                };
                if let Ok(p) = schedule(&r, &nodes, &usage, strategy) {
                    let ports = r
                        .ports
                        .iter()
                        .zip(&p.host_ports)
                        .map(|(pr, hp)| HostPort {
                            port: *hp,
                            protocol: pr.protocol,
                        })
                        .collect();
                    let b = Bound {
                        node: p.node,
                        requests: r.requests,
                        ports,
                    };
                    next_id += 1;
                    usage.set(&next_id.to_string(), Some(b.clone()));
                    bound.push((next_id.to_string(), b));
                }
                for n in &nodes {
                    let mine: Vec<&Bound> = bound
                        .iter()
                        .map(|(_, b)| b)
                        .filter(|b| b.node == n.name)
                        .collect();
                    let total = mine
                        .iter()
                        .fold(Amounts::default(), |a, b| a.add(b.requests));
                    assert!(
                        n.allocatable.short_of(total).is_none(),
                        "seed {seed}: {} over capacity",
                        n.name
                    );
                    let mut used = Used::new();
                    for b in mine {
                        for hp in &b.ports {
                            assert!(
                                free(&used, hp.port, hp.protocol),
                                "seed {seed}: {}:{}/{:?} double-booked",
                                n.name,
                                hp.port,
                                hp.protocol
                            );
                            take(&mut used, hp.port, hp.protocol);
                        }
                    }
                }
            }
        }
    }
}
