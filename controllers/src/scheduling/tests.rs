//! Scheduling decisions: strategies, reasons, port policies, host networking, and a randomised
//! check that no port is double-booked and no node overfilled.

use std::collections::BTreeMap;

use catalyst_schemas::gameserver::{NetworkMode, PortPolicy, Protocol};

use super::ports::{free, take};
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
                "Static host port 28000 is outside the node's port range 27000-27999".to_owned()
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
