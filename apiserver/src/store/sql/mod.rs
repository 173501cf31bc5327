//! The SQL backends: SQLite (embedded, the default) and PostgreSQL (several API servers).
//!
//! Layout, the same in both: `catalyst_meta` holds the store revision and the compaction
//! revision in one row; `catalyst_kv` the current value of each key; `catalyst_log` one row per
//! write (the history that watches and reads at old revisions use). Every write increments the
//! revision row first, inside its transaction: the row lock serialises writers, so revisions
//! commit in order and a reader that sees revision N sees every revision below it. Watchers
//! poll the log from their last revision when a commit is announced — in-process at once, and
//! across PostgreSQL servers through LISTEN/NOTIFY, with a periodic poll as the fallback.

//!
//! Laid out by concern: `schema` (tables and statements), `read` (get, list), `write` (the
//! group committer, compaction) and `watch_log` (log watchers, LISTEN/NOTIFY).

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::watch;

use super::{
    prefix_end, AbortOnDrop, Guard, KeyValue, ListOptions, ListPage, Result, Revision, Store,
    StoreError, WatchStream, Write,
};

mod read;
mod schema;
mod watch_log;
mod write;

use read::Reads;
use schema::{schema, Dialect, Statements, SCHEMA_VERSION};
use watch_log::{spawn_listener, Commit, LogWatcher};
use write::Writes;

/// The SQLite or PostgreSQL store.
#[derive(Debug)]
pub struct SqlStore {
    dialect: Dialect,
    /// Reads and watches.
    reads: Reads,
    /// Writes, through the committer task.
    writes: Writes,
    /// The newest revision known to be committed; watchers wait on it.
    committed: watch::Sender<Commit>,
    _committer: AbortOnDrop,
    _listener: Option<AbortOnDrop>,
}

impl SqlStore {
    /// Opens (and creates, if needed) the store at `url`: `sqlite://PATH` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::InvalidUrl {
                url: url.to_owned(),
                reason: "expected sqlite:// or postgres://".to_owned(),
            });
        };
        let built = match dialect {
            Dialect::Sqlite => cfg!(feature = "sqlite"),
            Dialect::Postgres => cfg!(feature = "postgres"),
        };
        if !built {
            return Err(StoreError::InvalidUrl {
                url: url.to_owned(),
                reason: format!(
                    "the {} backend is not built into this binary",
                    dialect.name()
                ),
            });
        }
        let be = |e: sqlx::Error| StoreError::backend(dialect.name(), e);
        let (writer, reader) = match dialect {
            Dialect::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                if path.is_empty() {
                    return Err(StoreError::InvalidUrl {
                        url: url.to_owned(),
                        reason: "no file path".to_owned(),
                    });
                }
                let conn_url = format!("sqlite://{path}?mode=rwc");
                let writer = sqlite_pool(&conn_url, 1).await.map_err(be)?;
                // WAL: readers never block the writer; persistent in the file.
                writer
                    .execute("PRAGMA journal_mode = WAL")
                    .await
                    .map_err(be)?;
                writer.execute(schema(dialect).as_str()).await.map_err(be)?;
                let reader = sqlite_pool(&conn_url, 8).await.map_err(be)?;
                (writer, reader)
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Every write locks the revision row first: a writer stopped inside
                            // its transaction (a leader under SIGSTOP, a hung host) would block
                            // every other server's writes, the standby's takeover too. Our
                            // transactions never wait between statements, so end such a
                            // session after 2 s (its transaction rolls back: nothing applied).
                            conn.execute("SET idle_in_transaction_session_timeout = '2s'")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await
                    .map_err(be)?;
                let mut tx = pool.begin().await.map_err(be)?;
                // Two servers starting together must not race on CREATE TABLE.
                tx.execute("SELECT pg_advisory_xact_lock(7443001)")
                    .await
                    .map_err(be)?;
                tx.execute(schema(dialect).as_str()).await.map_err(be)?;
                tx.commit().await.map_err(be)?;
                (pool.clone(), pool)
            }
        };
        let version: i64 = sqlx::query("SELECT schema_version FROM catalyst_meta WHERE id = 1")
            .fetch_one(&reader)
            .await
            .map_err(be)?
            .try_get(0)
            .map_err(be)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "the tables have layout version {version}, this build reads up to {SCHEMA_VERSION}: upgrade Catalyst"
            )));
        }
        let sql = Arc::new(Statements::new(dialect));
        let current: i64 = sqlx::query(&sql.current_revision)
            .fetch_one(&reader)
            .await
            .map_err(be)?
            .try_get(0)
            .map_err(be)?;
        let (committed, _) = watch::channel(Commit::at(current));
        let listener = match dialect {
            Dialect::Postgres => Some(AbortOnDrop(spawn_listener(
                url.to_owned(),
                committed.clone(),
            ))),
            Dialect::Sqlite => None,
        };
        let (writes, committer) = Writes::start(dialect, writer, sql.clone(), committed.clone());
        Ok(Self {
            dialect,
            reads: Reads {
                dialect,
                pool: reader,
                sql,
            },
            writes,
            committed,
            _committer: AbortOnDrop(committer),
            _listener: listener,
        })
    }
}

async fn sqlite_pool(url: &str, connections: u32) -> Result<AnyPool, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| {
            Box::pin(async move {
                // FULL: a commit is on disk before it is acknowledged, so it survives a crash.
                conn.execute("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = OFF")
                    .await?;
                Ok(())
            })
        })
        .connect(url)
        .await
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.dialect.name()
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.reads.current_revision().await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.reads.get(key).await
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        self.reads.list(prefix, options).await
    }

    async fn write(&self, op: Write<'_>, guard: Option<&Guard>) -> Result<Revision> {
        self.writes.submit(op.into(), guard.cloned()).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.reads.check_compacted(after).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let watcher = LogWatcher {
            reader: self.reads.pool.clone(),
            sql: self.reads.sql.clone(),
            backend: self.dialect.name(),
            committed: self.committed.subscribe(),
            start: prefix.to_owned(),
            end: prefix_end(prefix),
            cursor: after,
        };
        tokio::spawn(watcher.run(tx));
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.writes.compact(revision).await
    }
}
