//! What the reconcilers share: the context they run in, what a reconcile asks for next, and
//! its error.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::Registry;
use catalyst_schemas::{lookup_kind, KindInfo};

use super::view::{bound_of, NodeInfos};
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
    /// The cached Nodes as the scheduler sees them, parsed once per revision.
    pub node_infos: Arc<NodeInfos>,
    /// Held while a scheduling decision is made and its placement reserved: decisions run
    /// one at a time, their writes run concurrently.
    pub deciding: Arc<Mutex<()>>,
    /// The keys of the cached GameServers in phase Pending (what a node change may make
    /// schedulable), kept by the GameServer informer.
    pub pending: Arc<Mutex<HashSet<String>>>,
    /// How long a node may go without a heartbeat before the Node reconciler marks it
    /// NotReady ([`super::NODE_GRACE`] unless the operator says otherwise).
    pub node_grace: Duration,
}

impl Context {
    /// Re-reads what server `key` holds from the cache into the usage index.
    pub fn track(&self, key: &str) {
        let cached = self.gameservers.get(key);
        let bound = cached.as_deref().and_then(bound_of);
        self.usage.lock().expect("usage lock").set(key, bound);
        let mut pending = self.pending.lock().expect("pending lock");
        if cached.is_some_and(|gs| {
            catalyst_schemas::object::phase_of(&gs) == catalyst_schemas::lifecycle::Phase::Pending
        }) {
            pending.insert(key.to_owned());
        } else {
            pending.remove(key);
        }
    }

    /// The keys of the Pending servers.
    pub fn pending(&self) -> Vec<String> {
        self.pending
            .lock()
            .expect("pending lock")
            .iter()
            .cloned()
            .collect()
    }
}

/// A built-in kind by plural name.
pub(super) fn kind(name: &str) -> &'static KindInfo {
    lookup_kind(name).expect("a built-in kind")
}
