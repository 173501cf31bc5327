//! Write paths: writes queue for one committer task that commits them in groups (one
//! transaction and one fsync per group, each write with its own revision and result), and
//! compaction of the log.

use std::sync::Arc;

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot, watch};

use super::schema::{
    kv_from_row, Dialect, Statements, NOTIFY_CHANNEL, OP_CREATE, OP_DELETE, OP_UPDATE,
};
use super::watch_log::Commit;
use crate::store::{Guard, Result, Revision, StoreError, Write};

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The writing side of a SQL store: the queue to the committer, and the writer pool.
#[derive(Debug)]
pub(super) struct Writes {
    dialect: Dialect,
    /// Writes. For SQLite a single connection: SQLite has one writer anyway, and queueing here
    /// beats its busy-wait.
    pool: AnyPool,
    sql: Arc<Statements>,
    /// Writes go to the committer task, which commits them in groups.
    queue: mpsc::Sender<Pending>,
}

impl Writes {
    /// Starts the committer task over `pool`; it announces every commit on `committed`.
    pub(super) fn start(
        dialect: Dialect,
        pool: AnyPool,
        sql: Arc<Statements>,
        committed: watch::Sender<Commit>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(1024);
        let committer = Committer {
            dialect,
            writer: pool.clone(),
            sql: sql.clone(),
            committed,
        };
        let task = tokio::spawn(committer.run(rx));
        let writes = Self {
            dialect,
            pool,
            sql,
            queue,
        };
        (writes, task)
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        StoreError::backend(self.dialect.name(), e)
    }

    /// Hands a write to the committer and waits until it is committed (or refused).
    pub(super) async fn submit(&self, op: WriteOp, guard: Option<Guard>) -> Result<Revision> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::backend(self.dialect.name(), "the store's committer stopped");
        self.queue
            .send(Pending { op, guard, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Drops the history at and below `revision` (keeping each key's value as of it).
    pub(super) async fn compact(&self, revision: Revision) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
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
pub(super) enum WriteOp {
    /// Creates a key that must be absent.
    Create {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
    },
    /// Replaces a key at an expected revision.
    Update {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// The revision the key must have.
        expected: Revision,
    },
    /// Deletes a key (at an expected revision, if given).
    Delete {
        /// The key.
        key: String,
        /// The revision the key must have, if any.
        expected: Option<Revision>,
    },
}

impl From<Write<'_>> for WriteOp {
    fn from(op: Write<'_>) -> Self {
        match op {
            Write::Create { key, value } => Self::Create {
                key: key.to_owned(),
                value: value.to_vec(),
            },
            Write::Update {
                key,
                value,
                expected,
            } => Self::Update {
                key: key.to_owned(),
                value: value.to_vec(),
                expected,
            },
            Write::Delete { key, expected } => Self::Delete {
                key: key.to_owned(),
                expected,
            },
        }
    }
}

impl WriteOp {
    fn key(&self) -> &str {
        match self {
            Self::Create { key, .. } | Self::Update { key, .. } | Self::Delete { key, .. } => key,
        }
    }
}

#[derive(Debug)]
pub(super) struct Pending {
    op: WriteOp,
    /// Applies the write only while this holds.
    guard: Option<Guard>,
    reply: oneshot::Sender<Result<Revision>>,
}

/// Writes queued while a commit is under way go into the next transaction together (group
/// commit): one fsync for the group, each write still with its own revision and its own result.
const MAX_GROUP: usize = 256;

/// The task that owns writing. Each group is one transaction: lock the revision row, apply the
/// writes in order (a refused compare-and-swap or a failed guard takes no revision), append
/// their log rows, store the new revision, NOTIFY, commit, then answer every writer.
///
/// A guard is read inside the transaction, after the revision row is locked: every writer
/// locks that row first, and under READ COMMITTED each later statement sees every committed
/// write and the earlier writes of its own group, so nothing can change the guard key between
/// the check and the commit.
struct Committer {
    dialect: Dialect,
    writer: AnyPool,
    sql: Arc<Statements>,
    committed: watch::Sender<Commit>,
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
            if let Some(guard) = &pending.guard {
                if let Some(fenced) = self.check_guard(&mut tx, guard).await? {
                    results.push(Err(fenced));
                    continue;
                }
            }
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
        let mut keys: Vec<String> = group
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(p, _)| p.op.key().to_owned())
            .collect();
        keys.sort_unstable();
        Commit::announce(
            &self.committed,
            Commit {
                revision: rev,
                base,
                keys: Some(Arc::new(keys)),
            },
        );
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

    /// `Some(Fenced)` when the guard key is absent or has another create revision.
    async fn check_guard(&self, tx: &mut Tx, guard: &Guard) -> Result<Option<StoreError>> {
        let row = sqlx::query(&self.sql.get)
            .bind(&guard.key)
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| self.err(e))?;
        let current = match row {
            Some(row) => kv_from_row(&row).map_err(|e| self.err(e))?.create_revision,
            None => 0,
        };
        Ok((current != guard.create_revision).then(|| guard.fenced(current)))
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

/// The log row a write appends.
#[derive(Debug)]
struct LogRow {
    op: i64,
    value: Vec<u8>,
    create_rev: Revision,
    prev_rev: Revision,
}
