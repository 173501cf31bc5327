//! The registry's value types: where an object lives ([`Scope`]), which part a write changes
//! ([`Part`]), list requests and pages, write outcomes, and the [`Registry`] handle itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use catalyst_schemas::{KindInfo, API_VERSION};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Guard, Revision, Store, StoreError, Write};

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Metadata and spec; status is kept.
    Main,
    /// Status only.
    Status,
}

/// Where an object lives.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Its kind.
    pub kind: &'static KindInfo,
    /// Its namespace (namespaced kinds), or `None` for every namespace / cluster scope.
    pub namespace: Option<&'a str>,
}

impl Scope<'_> {
    /// The store key of `name`.
    pub fn key(&self, name: &str) -> String {
        match (self.kind.namespaced, self.namespace) {
            (true, Some(ns)) => format!("/{}/{ns}/{name}", self.kind.plural),
            _ => format!("/{}/{name}", self.kind.plural),
        }
    }

    /// The store prefix of every object in the scope.
    pub fn prefix(&self) -> String {
        match (self.kind.namespaced, self.namespace) {
            (true, Some(ns)) => format!("/{}/{ns}/", self.kind.plural),
            _ => format!("/{}/", self.kind.plural),
        }
    }

    pub(in crate::registry) fn not_found(&self, name: &str) -> ApiError {
        ApiError::NotFound {
            kind: self.kind.plural.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Labels the objects must match.
    pub labels: LabelSelector,
    /// Fields the objects must match.
    pub fields: FieldSelector,
    /// At most this many items.
    pub limit: Option<usize>,
    /// The token of the previous page.
    pub continue_token: Option<String>,
    /// Read at this revision (for a first page).
    pub revision: Option<Revision>,
}

/// A page of objects.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// The objects, with their resourceVersions.
    pub items: Vec<Value>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// The token for the next page, if there is one.
    pub continue_token: Option<String>,
}

impl ListResult {
    /// The `<Kind>List` object.
    pub fn to_value(&self, kind: &KindInfo) -> Value {
        let mut meta = json!({"resourceVersion": self.revision.to_string()});
        if let Some(c) = &self.continue_token {
            meta["continue"] = c.clone().into();
        }
        json!({
            "apiVersion": API_VERSION,
            "kind": format!("{}List", kind.kind),
            "metadata": meta,
            "items": self.items,
        })
    }
}

/// How a write ended.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as stored (or as it would be, on a dry run).
    pub object: Value,
    /// False when nothing changed and nothing was written.
    pub changed: bool,
}

/// A leadership term: its fencing token (the leader Lease's create revision) and when it ends
/// on this process's monotonic clock (the last renewal sent + the renew deadline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The guard every write of the term carries.
    pub guard: Guard,
    /// The term ends here, whatever the store says.
    pub valid_until: Instant,
}

impl Term {
    /// True until `valid_until`.
    pub fn live(&self) -> bool {
        Instant::now() < self.valid_until
    }
}

/// The term a fenced registry writes under: None while this process does not lead.
pub type TermReceiver = tokio::sync::watch::Receiver<Option<Term>>;

/// The object operations: admission, server-set metadata, generation, finalizers, status
/// subresource, lifecycle checks, selectors and paging, over one store.
#[derive(Clone)]
pub struct Registry {
    pub(in crate::registry) store: Arc<dyn Store>,
    pub(in crate::registry) write_check: Arc<std::sync::OnceLock<WriteCheck>>,
    pub(in crate::registry) editor_check: Arc<std::sync::OnceLock<super::templates::EditorCheck>>,
    /// Some: every write carries the current term's guard, and none is made without a live term.
    fence: Option<TermReceiver>,
    /// Writes refused for want of a term, here or by the store; shared by every clone.
    fenced_writes: Arc<AtomicU64>,
}

/// A check of every object about to be written (kind plural, the object as it will be
/// stored): the API server's escalation checks.
pub type WriteCheck = Arc<dyn Fn(&'static str, &Value) -> Result<(), ApiError> + Send + Sync>;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.store.backend())
            .field("fenced", &self.fence.is_some())
            .finish()
    }
}

impl Registry {
    /// Object operations over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            write_check: Arc::default(),
            editor_check: Arc::default(),
            fence: None,
            fenced_writes: Arc::default(),
        }
    }

    /// The same registry, fenced by `term`: each write carries the term's guard (the store
    /// refuses it once the guard key was re-created), and with no term, or past its end, a
    /// write is refused here with [`StoreError::NoTerm`]. For the controllers; the leader
    /// election itself writes unfenced.
    pub fn fenced(&self, term: TermReceiver) -> Self {
        Self {
            fence: Some(term),
            ..self.clone()
        }
    }

    /// How many writes were refused for want of a live term, by this process (any clone) or by
    /// the store (`catalyst_store_fenced_writes_total`).
    pub fn fenced_writes(&self) -> u64 {
        self.fenced_writes.load(Ordering::Relaxed)
    }

    /// The guard a write must carry: None when unfenced; [`StoreError::NoTerm`] (counted)
    /// when fenced without a live term.
    pub(in crate::registry) fn guard(&self, key: &str) -> Result<Option<Guard>, StoreError> {
        let Some(fence) = &self.fence else {
            return Ok(None);
        };
        match &*fence.borrow() {
            Some(term) if term.live() => Ok(Some(term.guard.clone())),
            _ => Err(self.count(StoreError::NoTerm {
                key: key.to_owned(),
            })),
        }
    }

    /// Counts `e` when it is a fenced write; returns it.
    pub(in crate::registry) fn count(&self, e: StoreError) -> StoreError {
        if e.is_fenced() {
            self.fenced_writes.fetch_add(1, Ordering::Relaxed);
        }
        e
    }

    /// Every raw write the registry makes: under the term's guard when fenced.
    pub(in crate::registry) async fn write(&self, op: Write<'_>) -> Result<Revision, StoreError> {
        let guard = self.guard(op.key())?;
        self.store
            .write(op, guard.as_ref())
            .await
            .map_err(|e| self.count(e))
    }

    /// Installs the check every write passes (once; later calls are ignored). Every clone of
    /// this registry shares it.
    pub fn set_write_check(&self, check: WriteCheck) {
        let _ = self.write_check.set(check);
    }

    pub(in crate::registry) fn check_write(
        &self,
        plural: &'static str,
        obj: &Value,
    ) -> Result<(), ApiError> {
        match self.write_check.get() {
            Some(check) => check(plural, obj),
            None => Ok(()),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
