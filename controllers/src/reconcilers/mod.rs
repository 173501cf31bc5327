//! The GameServer and Node reconcilers. Each first computes a plain decision from the cached
//! objects, then acts on it through the registry (status writes pinned to the revision the
//! decision was made from, so a stale decision fails instead of overwriting).
//!
//! `context` holds what the reconcilers share, `view` turns cached objects into the scheduler's
//! types, `events` records Events, and `gameserver` and `node` hold one reconciler each with its
//! decision function.

mod context;
mod events;
mod gameserver;
mod node;
mod view;

pub use context::{Action, Context, ReconcileError, FINALIZER};
pub use events::record_event;
pub use gameserver::reconcile_gameserver;
pub use node::reconcile_node;
pub use view::NODE_GRACE;
