//! What the reconcilers share: the context they run in, what a reconcile asks for next, and
//! its error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::Registry;
use catalyst_schemas::{lookup_kind, KindInfo};

use super::view::bound_of;
use crate::informer::Cache;
use crate::scheduling::{Strategy, Usage};

/// The finalizer that holds a GameServer's deletion until nothing of it runs.
pub const FINALIZER: &str = "catalyst.dev/gameserver";

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object changes.
    Done,
    /// Look again after this long.
    RequeueAfter(Duration),
}

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The API refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What the reconcilers share.
#[derive(Debug, Clone)]
pub struct Context {
    /// Object operations.
    pub registry: Registry,
    /// Cached GameServers.
    pub gameservers: Arc<Cache>,
    /// Cached Nodes.
    pub nodes: Arc<Cache>,
    /// Packed or Distributed.
    pub strategy: Strategy,
    /// What bound servers hold per node, kept current as servers change.
    pub usage: Arc<Mutex<Usage>>,
    /// How long a node may go without a heartbeat before the Node reconciler marks it
    /// NotReady ([`super::NODE_GRACE`] unless the operator says otherwise).
    pub node_grace: Duration,
}

impl Context {
    /// Re-reads what server `key` holds from the cache into the usage index.
    pub fn track(&self, key: &str) {
        let bound = self.gameservers.get(key).and_then(|gs| bound_of(&gs));
        self.usage.lock().expect("usage lock").set(key, bound);
    }
}

/// A built-in kind by plural name.
pub(super) fn kind(name: &str) -> &'static KindInfo {
    lookup_kind(name).expect("a built-in kind")
}
