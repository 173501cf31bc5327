//! Read paths: the current revision, one key, and a page of a prefix now or at an old revision
//! (from the log), refused once compacted away.

use std::sync::Arc;

use sqlx::{AnyPool, Executor, Row};

use super::schema::{kv_from_row, Dialect, Statements};
use crate::store::{prefix_end, KeyValue, ListOptions, ListPage, Result, Revision, StoreError};

/// The reading side of a SQL store: the reader pool and the statements.
#[derive(Debug, Clone)]
pub(super) struct Reads {
    /// The dialect, for error messages and snapshot isolation.
    pub(super) dialect: Dialect,
    /// Reads and watches.
    pub(super) pool: AnyPool,
    /// The statements of the dialect.
    pub(super) sql: Arc<Statements>,
}

impl Reads {
    fn err(&self, e: sqlx::Error) -> StoreError {
        StoreError::backend(self.dialect.name(), e)
    }

    /// The first column of the first row of `sql`.
    pub(super) async fn scalar(&self, sql: &str) -> Result<i64> {
        sqlx::query(sql)
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.err(e))
    }

    /// The store's current revision.
    pub(super) async fn current_revision(&self) -> Result<Revision> {
        self.scalar(&self.sql.current_revision).await
    }

    /// [`StoreError::Compacted`] when `requested` is below the compaction revision.
    pub(super) async fn check_compacted(&self, requested: Revision) -> Result<()> {
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

    /// One key's current value.
    pub(super) async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let row = sqlx::query(&self.sql.get)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| kv_from_row(&r))
            .transpose()
            .map_err(|e| self.err(e))
    }

    /// A page of the keys under `prefix`, in key order.
    pub(super) async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        let end = prefix_end(prefix);
        let after = options.start_after.as_deref().unwrap_or("");
        let limit = limit_plus_one(options.limit);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
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
