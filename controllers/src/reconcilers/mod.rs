//! The GameServer, Node and Schedule reconcilers. Each first computes a plain decision from the cached
//! objects, then acts on it through the registry (status writes pinned to the revision the
//! decision was made from, so a stale decision fails instead of overwriting).
//!
//! `context` holds what the reconcilers share, `view` turns cached objects into the scheduler's
//! types, `events` records Events, and `gameserver`, `node` and `schedule` hold one reconciler each
//! with its decision function (`schedule` also its runs).

mod context;
mod events;
mod gameserver;
mod node;
mod schedule;
mod view;

pub use context::{Action, Context, ReconcileError, FINALIZER};
pub use events::record_event;
pub use gameserver::reconcile_gameserver;
pub use node::reconcile_node;
pub use schedule::{reconcile_schedule, Runs, ScheduleContext};
pub use view::NODE_GRACE;
pub(crate) use view::{node_address, node_info, request_of};
