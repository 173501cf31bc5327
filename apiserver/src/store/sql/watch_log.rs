//! Watch and notify: a watch reads the log after its cursor whenever a commit is announced
//! (in-process at once; across PostgreSQL servers through LISTEN/NOTIFY) or a poll interval
//! passes.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyPool, Row};
use tokio::sync::watch;

#[cfg(feature = "postgres")]
use super::schema::NOTIFY_CHANNEL;
use super::schema::{kv_from_row, Statements, OP_CREATE, OP_DELETE, OP_UPDATE};
use crate::store::{EventKind, Result, Revision, StoreError, WatchEvent};

/// Rows a watcher reads per query.
const WATCH_BATCH: i64 = 512;
/// How often a watcher polls when no commit was announced.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What watchers learn of the newest commit: its revision and, for a commit of this process,
/// the revision before it and the keys it wrote, so that a watcher whose range it did not
/// touch moves its cursor without reading the log.
#[derive(Debug, Clone, Default)]
pub(super) struct Commit {
    /// The newest committed revision.
    pub(super) revision: Revision,
    /// The revision before the commit's first write.
    pub(super) base: Revision,
    /// The keys it wrote, sorted; `None` when unknown (a commit of another server).
    pub(super) keys: Option<Arc<Vec<String>>>,
}

impl Commit {
    /// A commit whose keys are unknown: every watcher reads the log.
    pub(super) fn at(revision: Revision) -> Self {
        Self {
            revision,
            base: revision,
            keys: None,
        }
    }

    /// Announces `next` on `tx` if it is newer than what watchers know.
    pub(super) fn announce(tx: &watch::Sender<Commit>, next: Commit) {
        tx.send_if_modified(|known| {
            let newer = next.revision > known.revision;
            if newer {
                *known = next;
            }
            newer
        });
    }

    /// True when the revisions after `cursor` up to this commit are all this commit's, and none
    /// of its keys lies in `[start, end)`.
    fn skips(&self, cursor: Revision, start: &str, end: &str) -> bool {
        let Some(keys) = &self.keys else {
            return false;
        };
        if self.base > cursor {
            return false;
        }
        let first = keys.partition_point(|k| k.as_str() < start);
        keys.get(first).is_none_or(|k| k.as_str() >= end)
    }
}

/// Follows NOTIFYs from other servers on the same PostgreSQL and wakes local watchers.
#[cfg(not(feature = "postgres"))]
pub(super) fn spawn_listener(_: String, _: watch::Sender<Commit>) -> tokio::task::JoinHandle<()> {
    unreachable!("PostgreSQL URLs are refused when the postgres feature is off")
}

/// Follows NOTIFYs from other servers on the same PostgreSQL and wakes local watchers.
#[cfg(feature = "postgres")]
pub(super) fn spawn_listener(
    url: String,
    committed: watch::Sender<Commit>,
) -> tokio::task::JoinHandle<()> {
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
                            Commit::announce(&committed, Commit::at(rev));
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

/// One watch: reads the log from `cursor` whenever a commit is announced (or the poll interval
/// passes) and sends the rows under its prefix.
pub(super) struct LogWatcher {
    pub(super) reader: AnyPool,
    pub(super) sql: Arc<Statements>,
    pub(super) backend: &'static str,
    pub(super) committed: watch::Receiver<Commit>,
    pub(super) start: String,
    pub(super) end: String,
    pub(super) cursor: Revision,
}

impl LogWatcher {
    /// Sends the watch's events on `tx` until it is dropped or an error ends the watch.
    pub(super) async fn run(mut self, tx: tokio::sync::mpsc::Sender<Result<WatchEvent>>) {
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
        let backend = self.backend;
        let be = |e: sqlx::Error| StoreError::backend(backend, e);
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
            self.wait().await;
        }
    }

    /// Waits until a commit may hold rows of this watch (or the poll interval passes): commits
    /// of this process that wrote no key in its range move the cursor without a query.
    async fn wait(&mut self) {
        let deadline = tokio::time::Instant::now() + POLL_INTERVAL;
        loop {
            let target = self.cursor;
            let woken =
                tokio::time::timeout_at(deadline, self.committed.wait_for(|c| c.revision > target))
                    .await;
            let Ok(Ok(commit)) = woken else {
                return;
            };
            if !commit.skips(self.cursor, &self.start, &self.end) {
                return;
            }
            self.cursor = commit.revision;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(base: Revision, revision: Revision, keys: &[&str]) -> Commit {
        let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        keys.sort();
        Commit {
            revision,
            base,
            keys: Some(Arc::new(keys)),
        }
    }

    #[test]
    fn a_commit_outside_the_range_right_after_the_cursor_is_skipped() {
        let c = commit(10, 12, &["/events/a", "/nodes/n"]);
        assert!(c.skips(10, "/gameservers/", "/gameservers0"));
        assert!(c.skips(11, "/gameservers/", "/gameservers0"));
        // a key in range, at the start or the end of the range
        assert!(!c.skips(10, "/events/", "/events0"));
        assert!(!commit(10, 11, &["/gameservers/"]).skips(10, "/gameservers/", "/gameservers0"));
        assert!(commit(10, 11, &["/gameservers0"]).skips(10, "/gameservers/", "/gameservers0"));
        // revisions before this commit were not seen: they may hold rows in range
        assert!(!c.skips(9, "/gameservers/", "/gameservers0"));
        // another server's commit: keys unknown
        assert!(!Commit::at(12).skips(11, "/gameservers/", "/gameservers0"));
    }
}
