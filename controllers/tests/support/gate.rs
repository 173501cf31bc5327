//! A store wrapper for the controllers' tests: writes of bindings (a value with a host port)
//! and of the leader Lease wait while its gate is closed, each waiting write's outcome is
//! recorded; lists can be slowed down.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_apiserver::store::{
    self, Guard, ListOptions, ListPage, Revision, Store, StoreError, WatchStream, Write,
};
use tokio::sync::watch;

/// The leader Lease's key.
pub const LEASE_KEY: &str = "/leases/catalyst-system/catalyst-controllers";

/// A store whose writes of bindings (a value with a host port) and of the leader Lease wait
/// while the gate is closed; every write's outcome is recorded.
pub struct GateStore {
    inner: Arc<dyn Store>,
    /// True while writes pass.
    pub open: watch::Sender<bool>,
    /// Writes waiting at the gate now.
    pub held: watch::Sender<usize>,
    /// The outcomes of the writes that waited: (key, Ok or the error).
    pub released: Mutex<Vec<(String, Result<Revision, String>)>>,
    /// How long each list takes at least.
    list_delay: Duration,
}

impl GateStore {
    /// An open gate over `inner`, each list taking at least `list_delay`.
    pub fn new(inner: Arc<dyn Store>, list_delay: Duration) -> Self {
        Self {
            inner,
            open: watch::channel(true).0,
            held: watch::channel(0).0,
            released: Mutex::default(),
            list_delay,
        }
    }

    fn held_back(op: &Write<'_>) -> bool {
        match op {
            Write::Create { key, value } | Write::Update { key, value, .. } => {
                *key == LEASE_KEY || String::from_utf8_lossy(value).contains("\"hostPort\"")
            }
            Write::Delete { key, .. } => *key == LEASE_KEY,
        }
    }
}

#[async_trait::async_trait]
impl Store for GateStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn current_revision(&self) -> store::Result<Revision> {
        self.inner.current_revision().await
    }
    async fn get(&self, key: &str) -> store::Result<Option<store::KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str, options: &ListOptions) -> store::Result<ListPage> {
        tokio::time::sleep(self.list_delay).await;
        self.inner.list(prefix, options).await
    }
    async fn write(&self, op: Write<'_>, guard: Option<&Guard>) -> store::Result<Revision> {
        if !*self.open.borrow() && Self::held_back(&op) {
            self.held.send_modify(|n| *n += 1);
            // a dropped call (a timed-out Lease renewal) leaves the count: only binding
            // writes are counted below, by key
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|o| *o).await;
            let result = self.inner.write(op, guard).await;
            if op.key() != LEASE_KEY {
                let seen = result.as_ref().map(|r| *r).map_err(|e| match e {
                    StoreError::Fenced { .. } => "Fenced".to_owned(),
                    other => other.to_string(),
                });
                self.released
                    .lock()
                    .unwrap()
                    .push((op.key().to_owned(), seen));
            }
            return result;
        }
        self.inner.write(op, guard).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> store::Result<WatchStream> {
        self.inner.watch(prefix, after).await
    }
    async fn compact(&self, revision: Revision) -> store::Result<()> {
        self.inner.compact(revision).await
    }
}
