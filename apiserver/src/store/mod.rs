//! The versioned store: one global revision, compare-and-swap writes, watch from a revision,
//! compaction. Three backends behind one trait: SQLite (default), PostgreSQL and etcd.
//!
//! Semantics every backend keeps (and `tests/store_conformance.rs` checks):
//! - every successful write gets the next revision of the whole store; a key's `mod_revision`
//!   is the revision of its last write, its `create_revision` the revision that created it;
//! - `list` at a revision returns the state as of that revision, in key order, paged;
//! - `watch(prefix, after)` yields every write with revision > `after` under `prefix`, in
//!   revision order, none lost and none repeated;
//! - after `compact(c)`, reads and watches at revisions below `c` fail with
//!   [`StoreError::Compacted`];
//! - a write with a [`Guard`] applies only if the guard key's `create_revision` is the guard's,
//!   checked atomically with the write; otherwise it fails with [`StoreError::Fenced`], changes
//!   nothing and takes no revision.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "etcd")]
mod etcd_endpoints;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql;

/// A store revision. Revisions rise by one with every write to the store.
pub type Revision = i64;

/// The result type of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` found the key present.
    #[error("{key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// The key is absent.
    #[error("{key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A compare-and-swap found another revision than expected.
    #[error("{key} was modified: expected revision {expected}, current revision is {current}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's current revision.
        current: Revision,
    },
    /// A guarded write found its guard key re-created or absent: the writer's term (its fencing
    /// token) has ended. Unlike [`StoreError::Conflict`], retrying cannot help.
    #[error("write fenced by {key}: expected create revision {expected}, current is {current} (0: absent)")]
    Fenced {
        /// The guard key.
        key: String,
        /// The guard's create revision (the fencing token).
        expected: Revision,
        /// The guard key's current create revision; 0 when it is absent.
        current: Revision,
    },
    /// A fenced writer had no live leadership term (it never led, or its term lapsed on its own
    /// clock): the write was refused before it reached the store. Like [`StoreError::Fenced`],
    /// retrying cannot help.
    #[error("write to {key} refused: this process holds no live leadership term")]
    NoTerm {
        /// The key that was to be written.
        key: String,
    },
    /// The revision asked for has been compacted away (410 Gone in the API).
    #[error(
        "revision {requested} has been compacted; the oldest available revision is {compacted}"
    )]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction revision.
        compacted: Revision,
    },
    /// The revision asked for has not been written yet.
    #[error("revision {requested} is newer than the store's current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's revision.
        current: Revision,
    },
    /// The store URL cannot be used.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The stored data was written by a newer Catalyst or is damaged.
    #[error("store data is not readable: {0}")]
    Corrupt(String),
    /// The backend failed (connection, I/O, server error).
    #[error("{backend} store: {source}")]
    Backend {
        /// `sqlite`, `postgres` or `etcd`.
        backend: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// True for a write refused because the writer's term is over ([`StoreError::Fenced`] by
    /// the store, [`StoreError::NoTerm`] before it).
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. } | StoreError::NoTerm { .. })
    }

    pub(crate) fn backend(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend {
            backend,
            source: source.into(),
        }
    }
}

/// A key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_revision: Revision,
    /// The revision of the key's last write.
    pub mod_revision: Revision,
}

/// A fencing token: a write carrying it applies only while `key` still has this
/// `create_revision` (for a leader, the Lease it created when it took over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The guard key.
    pub key: String,
    /// The create revision the guard key must still have.
    pub create_revision: Revision,
}

impl Guard {
    /// The error for a guard key found with `current` (0: absent) instead.
    pub(crate) fn fenced(&self, current: Revision) -> StoreError {
        StoreError::Fenced {
            key: self.key.clone(),
            expected: self.create_revision,
            current,
        }
    }
}

/// One write, as [`Store::write`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Creates a key that must be absent.
    Create {
        /// The key.
        key: &'a str,
        /// The new value.
        value: &'a [u8],
    },
    /// Replaces a key's value if its revision is still `expected`.
    Update {
        /// The key.
        key: &'a str,
        /// The new value.
        value: &'a [u8],
        /// The revision the key must have.
        expected: Revision,
    },
    /// Deletes a key (if its revision is still `expected`, when given).
    Delete {
        /// The key.
        key: &'a str,
        /// The revision the key must have, if any.
        expected: Option<Revision>,
    },
}

impl Write<'_> {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => {
                key
            }
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this revision; `None` reads the current state.
    pub revision: Option<Revision>,
    /// At most this many items; `None` for all.
    pub limit: Option<usize>,
    /// Only keys after this one (the last key of the previous page).
    pub start_after: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The items, in key order.
    pub items: Vec<KeyValue>,
    /// The revision the page was read at; pass it back with `start_after` for the next page.
    pub revision: Revision,
    /// True when more items follow.
    pub more: bool,
}

/// The kind of change a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Created,
    /// The key's value was replaced.
    Updated,
    /// The key was deleted; the event carries the last value.
    Deleted,
}

/// One write seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Created, Updated or Deleted.
    pub kind: EventKind,
    /// The key and value after the write (for Deleted: the value before it). `mod_revision`
    /// is the revision of this write.
    pub kv: KeyValue,
}

/// A stream of watch events; ends with an error if the watch cannot go on.
pub type WatchStream = BoxStream<'static, Result<WatchEvent>>;

/// The versioned store. Keys are printable ASCII; values are opaque bytes.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite`, `postgres` or `etcd`.
    fn backend(&self) -> &'static str;

    /// The revision of the last write.
    async fn current_revision(&self) -> Result<Revision>;

    /// The key's current value, if present.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys under `prefix`, in key order, at the current or a given revision.
    ///
    /// Errors: [`StoreError::Compacted`] or [`StoreError::FutureRevision`] for a revision out of
    /// range.
    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage>;

    /// Applies one write, if `guard` (when given) still holds, atomically with the check;
    /// returns the write's revision. A refused write changes nothing and takes no revision.
    ///
    /// Errors: [`StoreError::Fenced`] when the guard key is absent or has another create
    /// revision (checked first), else as [`Store::create`], [`Store::update`] and
    /// [`Store::delete`].
    async fn write(&self, op: Write<'_>, guard: Option<&Guard>) -> Result<Revision>;

    /// Creates `key` if absent; returns the write's revision.
    ///
    /// Errors: [`StoreError::AlreadyExists`].
    async fn create(&self, key: &str, value: &[u8]) -> Result<Revision> {
        self.write(Write::Create { key, value }, None).await
    }

    /// Replaces `key`'s value if its revision is still `expected`; returns the new revision.
    ///
    /// Errors: [`StoreError::NotFound`], [`StoreError::Conflict`].
    async fn update(&self, key: &str, value: &[u8], expected: Revision) -> Result<Revision> {
        self.write(
            Write::Update {
                key,
                value,
                expected,
            },
            None,
        )
        .await
    }

    /// Deletes `key` (if its revision is still `expected`, when given); returns the deletion's
    /// revision.
    ///
    /// Errors: [`StoreError::NotFound`], [`StoreError::Conflict`].
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Revision> {
        self.write(Write::Delete { key, expected }, None).await
    }

    /// Every write under `prefix` with a revision above `after`, in order, then new writes as
    /// they happen.
    ///
    /// Errors, from the call or as the stream's last item: [`StoreError::Compacted`] when
    /// `after` is below the compaction revision.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Forgets history before `revision`: reads and watches below it fail afterwards. Compacting
    /// at or below an earlier compaction does nothing.
    ///
    /// Errors: [`StoreError::FutureRevision`].
    async fn compact(&self, revision: Revision) -> Result<()>;
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend())
    }
}

/// Opens the store a URL names:
/// - `sqlite://PATH` (created if absent),
/// - `postgres://user:pass@host:port/db` (tables created if absent; TLS with
///   `?sslmode=verify-full&sslrootcert=FILE`, as libpq reads them),
/// - `etcd://host:port[,host:port…][?prefix=/catalyst]`, or `etcds://…` for TLS with
///   `&ca=FILE` (else the system's roots) and `&cert=FILE&key=FILE` for a client certificate.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(sql::SqlStore::open(url).await?)),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(sql::SqlStore::open(url).await?)),
        #[cfg(feature = "etcd")]
        "etcd" | "etcds" => Ok(Arc::new(etcd::EtcdStore::open(url).await?)),
        #[allow(unreachable_patterns)]
        "sqlite" | "postgres" | "postgresql" | "etcd" | "etcds" => Err(StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: format!("the {scheme} backend is not built into this binary"),
        }),
        _ => Err(StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: "expected sqlite://PATH, postgres://… or etcd://host:port".to_owned(),
        }),
    }
}

/// The smallest key greater than every key starting with `prefix` (keys are printable ASCII).
pub(crate) fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8(bytes).expect("ASCII stays ASCII");
        }
    }
    "\u{7f}".to_owned()
}

/// Keeps the history bounded: every `every`, compacts everything older than the last `keep`
/// revisions. Runs until the returned handle is aborted.
pub fn spawn_compactor(
    store: Arc<dyn Store>,
    keep: Revision,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let target = match store.current_revision().await {
                Ok(current) => current - keep,
                Err(e) => {
                    tracing::warn!(error = %e, "compactor cannot read the current revision");
                    continue;
                }
            };
            if target <= 0 {
                continue;
            }
            match store.compact(target).await {
                Ok(()) => tracing::debug!(revision = target, "compacted store history"),
                Err(e) => tracing::warn!(error = %e, revision = target, "compaction failed"),
            }
        }
    })
}

/// A background task that ends with its owner.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end("/gameservers/"), "/gameservers0");
        assert_eq!(prefix_end("a\u{7f}"), "b");
        assert_eq!(prefix_end(""), "\u{7f}");
        assert!("/gameservers/default/x~~" < prefix_end("/gameservers/").as_str());
    }
}
