//! Scheduling as a pure decision: which node a GameServer goes to and which host ports it gets,
//! from the nodes, what is already bound to them, and the server's request. No I/O; the
//! GameServer controller acts on the result.
//!
//! `request` holds the inputs and outputs, `ports` the host-port allocation on one node,
//! `usage` the per-node usage index, `place` the node filters and scoring.

mod place;
mod ports;
mod request;
#[cfg(test)]
mod tests;
mod usage;

pub use place::schedule;
pub use ports::{allocate_ports, Used};
pub use request::{Amounts, NodeInfo, Placement, PortRequest, Request, Strategy, Unschedulable};
pub use usage::{Bound, HostPort, NodeUsage, Usage};
