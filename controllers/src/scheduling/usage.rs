//! The usage index: what the servers bound to each node hold (resources and host ports), kept
//! current one server at a time.

use std::collections::{BTreeMap, HashSet};

use catalyst_schemas::gameserver::Protocol;

use super::ports::{release, take, Used};
use super::request::Amounts;

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
    /// Servers whose binding is being written: what they were given stays held whatever the
    /// cache says of them until [`Usage::release`].
    reserved: HashSet<String>,
}

impl Usage {
    /// Records what server `key` holds now (`None`: nothing). While `key` is reserved, only
    /// another binding replaces what it holds.
    pub fn set(&mut self, key: &str, bound: Option<Bound>) {
        if bound.is_none() && self.reserved.contains(key) {
            return;
        }
        self.put(key, bound);
    }

    /// Holds `bound` for server `key` while its binding is written (the cache still shows it
    /// unbound): no other decision gets its resources or host ports.
    pub fn reserve(&mut self, key: &str, bound: Bound) {
        self.reserved.insert(key.to_owned());
        self.put(key, Some(bound));
    }

    /// Ends the reservation of `key` (the binding was written, or failed); the caller then
    /// records what the cache says the server holds.
    pub fn release(&mut self, key: &str) {
        self.reserved.remove(key);
    }

    fn put(&mut self, key: &str, bound: Option<Bound>) {
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
