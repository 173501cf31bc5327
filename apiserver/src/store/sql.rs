//! The SQL backends: SQLite (embedded, the default) and PostgreSQL (several API servers).
//!
//! Layout, the same in both: `catalyst_meta` holds the store revision and the compaction
//! revision in one row; `catalyst_kv` the current value of each key; `catalyst_log` one row per
//! write (the history that watches and reads at old revisions use). Every write increments the
//! revision row first, inside its transaction: the row lock serialises writers, so revisions
//! commit in order and a reader that sees revision N sees every revision below it. Watchers
//! poll the log from their last revision when a commit is announced — in-process at once, and
//! across PostgreSQL servers through LISTEN/NOTIFY, with a periodic poll as the fallback.

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    prefix_end, EventKind, KeyValue, ListOptions, ListPage, Result, Revision, Store, StoreError,
    WatchEvent, WatchStream,
};

/// The version of the table layout this build writes.
const SCHEMA_VERSION: i64 = 1;
/// The NOTIFY channel that announces commits to other PostgreSQL-backed servers.
const NOTIFY_CHANNEL: &str = "catalyst_revisions";
/// Rows a watcher reads per query.
const WATCH_BATCH: i64 = 512;
/// How often a watcher polls when no commit was announced.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

const OP_CREATE: i64 = 0;
const OP_UPDATE: i64 = 1;
const OP_DELETE: i64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// The statements, written once with `$n` placeholders and adapted to the dialect.
#[derive(Debug)]
struct Statements {
    lock_revision: String,
    set_revision: String,
    current_revision: String,
    compact_revision: String,
    get: String,
    insert_kv: String,
    update_kv: String,
    delete_kv: String,
    delete_kv_any: String,
    insert_log: String,
    list_current: String,
    list_at: String,
    log_after: String,
    set_compact: String,
    compact_log: String,
    /// PostgreSQL: the kv change and its log row in one statement each.
    create_logged: String,
    update_logged: String,
    delete_logged: String,
    delete_any_logged: String,
    /// PostgreSQL: the new revision and its NOTIFY in one statement.
    finish: String,
}

impl Statements {
    fn new(dialect: Dialect) -> Self {
        let s = |sql: &str| match dialect {
            Dialect::Postgres => sql.to_owned(),
            Dialect::Sqlite => sql.replace('$', "?"),
        };
        Self {
            // a no-op update: takes the row lock (PostgreSQL) or the write lock (SQLite)
            lock_revision: s("UPDATE catalyst_meta SET rev = rev WHERE id = 1 RETURNING rev"),
            set_revision: s("UPDATE catalyst_meta SET rev = $1 WHERE id = 1"),
            current_revision: s("SELECT rev FROM catalyst_meta WHERE id = 1"),
            compact_revision: s("SELECT compact_rev FROM catalyst_meta WHERE id = 1"),
            get: s("SELECT key, value, create_rev, rev FROM catalyst_kv WHERE key = $1"),
            insert_kv: s("INSERT INTO catalyst_kv (key, value, create_rev, rev) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (key) DO NOTHING"),
            update_kv: s("UPDATE catalyst_kv SET value = $2, rev = $3 WHERE key = $1 AND rev = $4 \
                 RETURNING create_rev"),
            delete_kv: s("DELETE FROM catalyst_kv WHERE key = $1 AND rev = $2 RETURNING value, create_rev, rev"),
            delete_kv_any: s("DELETE FROM catalyst_kv WHERE key = $1 RETURNING value, create_rev, rev"),
            insert_log: s("INSERT INTO catalyst_log (rev, key, op, value, create_rev, prev_rev) \
                 VALUES ($1, $2, $3, $4, $5, $6)"),
            list_current: s("SELECT key, value, create_rev, rev FROM catalyst_kv \
                 WHERE key >= $1 AND key < $2 AND key > $3 ORDER BY key LIMIT $4"),
            list_at: s("SELECT l.key, l.value, l.create_rev, l.rev FROM catalyst_log l \
                 WHERE l.key >= $1 AND l.key < $2 AND l.key > $3 AND l.op <> 2 \
                   AND l.rev = (SELECT MAX(l2.rev) FROM catalyst_log l2 WHERE l2.key = l.key AND l2.rev <= $4) \
                 ORDER BY l.key LIMIT $5"),
            log_after: s("SELECT key, value, create_rev, rev, op FROM catalyst_log \
                 WHERE rev > $1 AND rev <= $2 AND key >= $3 AND key < $4 ORDER BY rev LIMIT $5"),
            set_compact: s("UPDATE catalyst_meta SET compact_rev = $1 WHERE id = 1 AND compact_rev < $1 RETURNING rev"),
            compact_log: s("DELETE FROM catalyst_log WHERE rev <= $1 AND (op = 2 OR rev < \
                 (SELECT MAX(l2.rev) FROM catalyst_log l2 WHERE l2.key = catalyst_log.key AND l2.rev <= $1))"),
            create_logged: s("WITH k AS (INSERT INTO catalyst_kv (key, value, create_rev, rev) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (key) DO NOTHING RETURNING key) \
                 INSERT INTO catalyst_log (rev, key, op, value, create_rev, prev_rev) SELECT $3, key, 0, $2, $3, 0 FROM k"),
            update_logged: s("WITH k AS (UPDATE catalyst_kv SET value = $2, rev = $3 WHERE key = $1 AND rev = $4 \
                 RETURNING key, create_rev) \
                 INSERT INTO catalyst_log (rev, key, op, value, create_rev, prev_rev) SELECT $3, key, 1, $2, create_rev, $4 FROM k"),
            delete_logged: s("WITH k AS (DELETE FROM catalyst_kv WHERE key = $1 AND rev = $2 RETURNING key, value, create_rev, rev) \
                 INSERT INTO catalyst_log (rev, key, op, value, create_rev, prev_rev) SELECT $3, key, 2, value, create_rev, rev FROM k"),
            delete_any_logged: s("WITH k AS (DELETE FROM catalyst_kv WHERE key = $1 RETURNING key, value, create_rev, rev) \
                 INSERT INTO catalyst_log (rev, key, op, value, create_rev, prev_rev) SELECT $2, key, 2, value, create_rev, rev FROM k"),
            finish: s("WITH u AS (UPDATE catalyst_meta SET rev = $1 WHERE id = 1) SELECT pg_notify($2, $3)"),
        }
    }
}

fn schema(dialect: Dialect) -> String {
    let (blob, key_type) = match dialect {
        Dialect::Sqlite => ("BLOB", "TEXT"),
        Dialect::Postgres => ("BYTEA", "TEXT COLLATE \"C\""),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS catalyst_meta (
            id INTEGER PRIMARY KEY,
            rev BIGINT NOT NULL,
            compact_rev BIGINT NOT NULL,
            schema_version BIGINT NOT NULL
        );
        INSERT INTO catalyst_meta (id, rev, compact_rev, schema_version) VALUES (1, 0, 0, {SCHEMA_VERSION})
            ON CONFLICT (id) DO NOTHING;
        CREATE TABLE IF NOT EXISTS catalyst_kv (
            key {key_type} PRIMARY KEY,
            value {blob} NOT NULL,
            create_rev BIGINT NOT NULL,
            rev BIGINT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS catalyst_log (
            rev BIGINT PRIMARY KEY,
            key {key_type} NOT NULL,
            op BIGINT NOT NULL,
            value {blob} NOT NULL,
            create_rev BIGINT NOT NULL,
            prev_rev BIGINT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS catalyst_log_key_rev ON catalyst_log (key, rev);"
    )
}

/// The SQLite or PostgreSQL store.
#[derive(Debug)]
pub struct SqlStore {
    dialect: Dialect,
    /// Writes. For SQLite a single connection: SQLite has one writer anyway, and queueing here
    /// beats its busy-wait.
    writer: AnyPool,
    /// Reads and watches.
    reader: AnyPool,
    sql: Arc<Statements>,
    /// The newest revision known to be committed; watchers wait on it.
    committed: watch::Sender<Revision>,
    /// Writes go to the committer task, which commits them in groups.
    writes: mpsc::Sender<Pending>,
    _committer: AbortOnDrop,
    _listener: Option<AbortOnDrop>,
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
        let (committed, _) = watch::channel(current);
        let listener = match dialect {
            Dialect::Postgres => Some(AbortOnDrop(spawn_listener(
                url.to_owned(),
                committed.clone(),
            ))),
            Dialect::Sqlite => None,
        };
        let (writes, queue) = mpsc::channel(1024);
        let committer = Committer {
            dialect,
            writer: writer.clone(),
            sql: sql.clone(),
            committed: committed.clone(),
        };
        let committer = AbortOnDrop(tokio::spawn(committer.run(queue)));
        Ok(Self {
            dialect,
            writer,
            reader,
            sql,
            committed,
            writes,
            _committer: committer,
            _listener: listener,
        })
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        StoreError::backend(self.dialect.name(), e)
    }

    /// Hands a write to the committer and waits until it is committed (or refused).
    async fn submit(&self, op: WriteOp) -> Result<Revision> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::backend(self.dialect.name(), "the store's committer stopped");
        self.writes
            .send(Pending { op, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn scalar(&self, sql: &str) -> Result<i64> {
        sqlx::query(sql)
            .fetch_one(&self.reader)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.err(e))
    }

    async fn check_compacted(&self, requested: Revision) -> Result<()> {
        let compacted = self.scalar(&self.sql.compact_revision).await?;
        if requested < compacted {
            Err(StoreError::Compacted {
                requested,
                compacted,
            })
        } else {
            Ok(())
        }
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

/// Follows NOTIFYs from other servers on the same PostgreSQL and wakes local watchers.
#[cfg(not(feature = "postgres"))]
fn spawn_listener(_: String, _: watch::Sender<Revision>) -> tokio::task::JoinHandle<()> {
    unreachable!("PostgreSQL URLs are refused when the postgres feature is off")
}

/// Follows NOTIFYs from other servers on the same PostgreSQL and wakes local watchers.
#[cfg(feature = "postgres")]
fn spawn_listener(url: String, committed: watch::Sender<Revision>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for store revisions; watchers poll");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
                tracing::warn!(error = %e, "LISTEN failed; watchers poll");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            loop {
                match listener.recv().await {
                    Ok(n) => {
                        if let Ok(rev) = n.payload().parse::<i64>() {
                            committed.send_if_modified(|known| {
                                if rev > *known {
                                    *known = rev;
                                    true
                                } else {
                                    false
                                }
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                        break;
                    }
                }
            }
        }
    })
}

/// The log row a write appends.
#[derive(Debug)]
struct LogRow {
    op: i64,
    value: Vec<u8>,
    create_rev: Revision,
    prev_rev: Revision,
}

fn kv_from_row(row: &AnyRow) -> Result<KeyValue, sqlx::Error> {
    Ok(KeyValue {
        key: row.try_get(0)?,
        value: row.try_get(1)?,
        create_revision: row.try_get(2)?,
        mod_revision: row.try_get(3)?,
    })
}

fn limit_plus_one(limit: Option<usize>) -> i64 {
    limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX - 1) + 1)
}

fn page(mut items: Vec<KeyValue>, limit: Option<usize>, revision: Revision) -> ListPage {
    let more = limit.is_some_and(|l| items.len() > l);
    if let Some(l) = limit {
        items.truncate(l);
    }
    ListPage {
        items,
        revision,
        more,
    }
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.dialect.name()
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.scalar(&self.sql.current_revision).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let row = sqlx::query(&self.sql.get)
            .bind(key)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| kv_from_row(&r))
            .transpose()
            .map_err(|e| self.err(e))
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        let end = prefix_end(prefix);
        let after = options.start_after.as_deref().unwrap_or("");
        let limit = limit_plus_one(options.limit);
        let mut tx = self.reader.begin().await.map_err(|e| self.err(e))?;
        if self.dialect == Dialect::Postgres {
            // the revision and the rows from one snapshot
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await
                .map_err(|e| self.err(e))?;
        }
        let row = sqlx::query(&self.sql.current_revision)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let current: i64 = row.try_get(0).map_err(|e| self.err(e))?;
        let revision = options.revision.unwrap_or(current);
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        let rows = if revision == current {
            sqlx::query(&self.sql.list_current)
                .bind(prefix)
                .bind(&end)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
        } else {
            sqlx::query(&self.sql.list_at)
                .bind(prefix)
                .bind(&end)
                .bind(after)
                .bind(revision)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
        }
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        // Rows of a compaction that committed while we read may be missing: check afterwards.
        if revision < current {
            self.check_compacted(revision).await?;
        }
        let items = rows
            .iter()
            .map(kv_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(page(items, options.limit, revision))
    }

    async fn create(&self, key: &str, value: &[u8]) -> Result<Revision> {
        self.submit(WriteOp::Create {
            key: key.to_owned(),
            value: value.to_vec(),
        })
        .await
    }

    async fn update(&self, key: &str, value: &[u8], expected: Revision) -> Result<Revision> {
        self.submit(WriteOp::Update {
            key: key.to_owned(),
            value: value.to_vec(),
            expected,
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Revision> {
        self.submit(WriteOp::Delete {
            key: key.to_owned(),
            expected,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.check_compacted(after).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let watcher = LogWatcher {
            reader: self.reader.clone(),
            sql: self.sql.clone(),
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
        let mut tx = self.writer.begin().await.map_err(|e| self.err(e))?;
        // Holding the revision row keeps writers out while the history shrinks.
        let current: i64 = sqlx::query(&self.sql.lock_revision)
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.err(e))?;
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        let moved = sqlx::query(&self.sql.set_compact)
            .bind(revision)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if moved.is_none() {
            tx.rollback().await.map_err(|e| self.err(e))?;
            return Ok(());
        }
        sqlx::query(&self.sql.compact_log)
            .bind(revision)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }
}

/// One write waiting for the committer.
#[derive(Debug)]
enum WriteOp {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

#[derive(Debug)]
struct Pending {
    op: WriteOp,
    reply: oneshot::Sender<Result<Revision>>,
}

/// Writes queued while a commit is under way go into the next transaction together (group
/// commit): one fsync for the group, each write still with its own revision and its own result.
const MAX_GROUP: usize = 256;

/// The task that owns writing. Each group is one transaction: lock the revision row, apply the
/// writes in order (a refused compare-and-swap takes no revision), append their log rows, store
/// the new revision, NOTIFY, commit, then answer every writer.
struct Committer {
    dialect: Dialect,
    writer: AnyPool,
    sql: Arc<Statements>,
    committed: watch::Sender<Revision>,
}

impl Committer {
    async fn run(self, mut queue: mpsc::Receiver<Pending>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
            match self.commit(&group).await {
                Ok(results) => {
                    for (pending, result) in group.drain(..).zip(results) {
                        let _ = pending.reply.send(result);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, writes = group.len(), "store commit failed");
                    let message = e.to_string();
                    for pending in group.drain(..) {
                        let _ = pending.reply.send(Err(StoreError::backend(
                            self.dialect.name(),
                            message.clone(),
                        )));
                    }
                }
            }
        }
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        StoreError::backend(self.dialect.name(), e)
    }

    async fn commit(&self, group: &[Pending]) -> Result<Vec<Result<Revision>>> {
        let mut tx = self.writer.begin().await.map_err(|e| self.err(e))?;
        let base: i64 = sqlx::query(&self.sql.lock_revision)
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.err(e))?;
        let mut rev = base;
        let mut results = Vec::with_capacity(group.len());
        for pending in group {
            let outcome = match self.dialect {
                Dialect::Postgres => self.apply_logged(&mut tx, &pending.op, rev + 1).await?,
                Dialect::Sqlite => match self.apply(&mut tx, &pending.op, rev + 1).await? {
                    (key, Ok(row)) => {
                        sqlx::query(&self.sql.insert_log)
                            .bind(rev + 1)
                            .bind(key)
                            .bind(row.op)
                            .bind(row.value)
                            .bind(row.create_rev)
                            .bind(row.prev_rev)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| self.err(e))?;
                        Ok(())
                    }
                    (_, Err(refused)) => Err(refused),
                },
            };
            match outcome {
                Ok(()) => {
                    rev += 1;
                    results.push(Ok(rev));
                }
                Err(refused) => results.push(Err(refused)),
            }
        }
        if rev == base {
            tx.rollback().await.map_err(|e| self.err(e))?;
            return Ok(results);
        }
        match self.dialect {
            Dialect::Postgres => sqlx::query(&self.sql.finish)
                .bind(rev)
                .bind(NOTIFY_CHANNEL)
                .bind(rev.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?,
            Dialect::Sqlite => sqlx::query(&self.sql.set_revision)
                .bind(rev)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?,
        };
        tx.commit().await.map_err(|e| self.err(e))?;
        self.committed.send_if_modified(|known| {
            let newer = rev > *known;
            if newer {
                *known = rev;
            }
            newer
        });
        Ok(results)
    }

    /// PostgreSQL: applies one write and appends its log row in a single statement (one round
    /// trip instead of two). The outer error aborts the group; the inner one refuses this write.
    async fn apply_logged(&self, tx: &mut Tx, op: &WriteOp, rev: Revision) -> Result<Result<()>> {
        let (query, key, expected) = match op {
            WriteOp::Create { key, value } => (
                sqlx::query(&self.sql.create_logged)
                    .bind(key)
                    .bind(value)
                    .bind(rev),
                key,
                None,
            ),
            WriteOp::Update {
                key,
                value,
                expected,
            } => (
                sqlx::query(&self.sql.update_logged)
                    .bind(key)
                    .bind(value)
                    .bind(rev)
                    .bind(*expected),
                key,
                Some(*expected),
            ),
            WriteOp::Delete {
                key,
                expected: Some(exp),
            } => (
                sqlx::query(&self.sql.delete_logged)
                    .bind(key)
                    .bind(*exp)
                    .bind(rev),
                key,
                Some(*exp),
            ),
            WriteOp::Delete {
                key,
                expected: None,
            } => (
                sqlx::query(&self.sql.delete_any_logged).bind(key).bind(rev),
                key,
                None,
            ),
        };
        let done = query.execute(&mut **tx).await.map_err(|e| self.err(e))?;
        if done.rows_affected() > 0 {
            return Ok(Ok(()));
        }
        Ok(Err(match (op, expected) {
            (WriteOp::Create { .. }, _) => StoreError::AlreadyExists { key: key.clone() },
            (_, Some(exp)) => self.cas_failure(tx, key, exp).await?,
            (_, None) => StoreError::NotFound { key: key.clone() },
        }))
    }

    /// Applies one write to `catalyst_kv` at revision `rev`. The outer error aborts the group;
    /// the inner one refuses this write only.
    async fn apply<'o>(
        &self,
        tx: &mut Tx,
        op: &'o WriteOp,
        rev: Revision,
    ) -> Result<(&'o str, Result<LogRow>)> {
        match op {
            WriteOp::Create { key, value } => {
                let done = sqlx::query(&self.sql.insert_kv)
                    .bind(key)
                    .bind(value)
                    .bind(rev)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| self.err(e))?;
                if done.rows_affected() == 0 {
                    return Ok((key, Err(StoreError::AlreadyExists { key: key.clone() })));
                }
                let row = LogRow {
                    op: OP_CREATE,
                    value: value.clone(),
                    create_rev: rev,
                    prev_rev: 0,
                };
                Ok((key, Ok(row)))
            }
            WriteOp::Update {
                key,
                value,
                expected,
            } => {
                let found = sqlx::query(&self.sql.update_kv)
                    .bind(key)
                    .bind(value)
                    .bind(rev)
                    .bind(*expected)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(|e| self.err(e))?;
                let Some(found) = found else {
                    return Ok((key, Err(self.cas_failure(tx, key, *expected).await?)));
                };
                let row = LogRow {
                    op: OP_UPDATE,
                    value: value.clone(),
                    create_rev: found.try_get(0).map_err(|e| self.err(e))?,
                    prev_rev: *expected,
                };
                Ok((key, Ok(row)))
            }
            WriteOp::Delete { key, expected } => {
                let found = match expected {
                    Some(exp) => sqlx::query(&self.sql.delete_kv).bind(key).bind(*exp),
                    None => sqlx::query(&self.sql.delete_kv_any).bind(key),
                }
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| self.err(e))?;
                let Some(found) = found else {
                    let refused = match expected {
                        Some(exp) => self.cas_failure(tx, key, *exp).await?,
                        None => StoreError::NotFound { key: key.clone() },
                    };
                    return Ok((key, Err(refused)));
                };
                let row = LogRow {
                    op: OP_DELETE,
                    value: found.try_get(0).map_err(|e| self.err(e))?,
                    create_rev: found.try_get(1).map_err(|e| self.err(e))?,
                    prev_rev: found.try_get(2).map_err(|e| self.err(e))?,
                };
                Ok((key, Ok(row)))
            }
        }
    }

    /// Why a compare-and-swap failed: NotFound, or Conflict with the current revision.
    async fn cas_failure(&self, tx: &mut Tx, key: &str, expected: Revision) -> Result<StoreError> {
        let row = sqlx::query(&self.sql.get)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| self.err(e))?;
        Ok(match row {
            Some(row) => StoreError::Conflict {
                key: key.to_owned(),
                expected,
                current: kv_from_row(&row).map_err(|e| self.err(e))?.mod_revision,
            },
            None => StoreError::NotFound {
                key: key.to_owned(),
            },
        })
    }
}

/// One watch: reads the log from `cursor` whenever a commit is announced (or the poll interval
/// passes) and sends the rows under its prefix.
struct LogWatcher {
    reader: AnyPool,
    sql: Arc<Statements>,
    backend: &'static str,
    committed: watch::Receiver<Revision>,
    start: String,
    end: String,
    cursor: Revision,
}

impl LogWatcher {
    async fn run(mut self, tx: tokio::sync::mpsc::Sender<Result<WatchEvent>>) {
        loop {
            match self.step().await {
                Ok(events) => {
                    for ev in events {
                        if tx.send(Ok(ev)).await.is_err() {
                            return; // the stream was dropped
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    }

    /// Returns the next events, waiting for a commit when there are none yet.
    async fn step(&mut self) -> Result<Vec<WatchEvent>> {
        let be = |e: sqlx::Error| StoreError::backend(self.backend, e);
        loop {
            // The newest committed revision first: every revision up to it is committed, so
            // the cursor may move to it when no row under the prefix is found.
            let newest: i64 = sqlx::query(&self.sql.current_revision)
                .fetch_one(&self.reader)
                .await
                .and_then(|r| r.try_get(0))
                .map_err(be)?;
            let rows = if newest > self.cursor {
                sqlx::query(&self.sql.log_after)
                    .bind(self.cursor)
                    .bind(newest)
                    .bind(&self.start)
                    .bind(&self.end)
                    .bind(WATCH_BATCH)
                    .fetch_all(&self.reader)
                    .await
                    .map_err(be)?
            } else {
                Vec::new()
            };
            let compacted: i64 = sqlx::query(&self.sql.compact_revision)
                .fetch_one(&self.reader)
                .await
                .and_then(|r| r.try_get(0))
                .map_err(be)?;
            if self.cursor < compacted {
                return Err(StoreError::Compacted {
                    requested: self.cursor,
                    compacted,
                });
            }
            let full = rows.len() as i64 == WATCH_BATCH;
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                let kv = kv_from_row(row).map_err(be)?;
                let op: i64 = row.try_get(4).map_err(be)?;
                let kind = match op {
                    OP_CREATE => EventKind::Created,
                    OP_UPDATE => EventKind::Updated,
                    OP_DELETE => EventKind::Deleted,
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "log row {} has unknown operation {other}",
                            kv.mod_revision
                        )))
                    }
                };
                self.cursor = kv.mod_revision;
                events.push(WatchEvent { kind, kv });
            }
            if !full {
                self.cursor = self.cursor.max(newest);
            }
            if !events.is_empty() {
                return Ok(events);
            }
            if full {
                continue;
            }
            let target = self.cursor;
            let _ =
                tokio::time::timeout(POLL_INTERVAL, self.committed.wait_for(|&rev| rev > target))
                    .await;
        }
    }
}
