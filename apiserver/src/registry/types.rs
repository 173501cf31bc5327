//! The registry's value types: where an object lives ([`Scope`]), which part a write changes
//! ([`Part`]), list requests and pages, write outcomes, and the [`Registry`] handle itself.

use std::sync::Arc;

use catalyst_schemas::{KindInfo, API_VERSION};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Revision, Store};

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

/// The object operations: admission, server-set metadata, generation, finalizers, status
/// subresource, lifecycle checks, selectors and paging, over one store.
#[derive(Clone)]
pub struct Registry {
    pub(in crate::registry) store: Arc<dyn Store>,
    pub(in crate::registry) write_check: Arc<std::sync::OnceLock<WriteCheck>>,
    pub(in crate::registry) editor_check: Arc<std::sync::OnceLock<super::templates::EditorCheck>>,
}

/// A check of every object about to be written (kind plural, the object as it will be
/// stored): the API server's escalation checks.
pub type WriteCheck = Arc<dyn Fn(&'static str, &Value) -> Result<(), ApiError> + Send + Sync>;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.store.backend())
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
        }
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
