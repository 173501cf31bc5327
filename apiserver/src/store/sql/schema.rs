//! The table layout and the SQL of both dialects: `catalyst_meta` (revision, compaction
//! revision, layout version), `catalyst_kv` (current values), `catalyst_log` (one row per write),
//! every statement written once, and how a row becomes a [`KeyValue`].

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::store::KeyValue;

/// The version of the table layout this build writes.
pub(super) const SCHEMA_VERSION: i64 = 1;
/// The NOTIFY channel that announces commits to other PostgreSQL-backed servers.
pub(super) const NOTIFY_CHANNEL: &str = "catalyst_revisions";

/// `catalyst_log.op` of a create.
pub(super) const OP_CREATE: i64 = 0;
/// `catalyst_log.op` of an update.
pub(super) const OP_UPDATE: i64 = 1;
/// `catalyst_log.op` of a delete.
pub(super) const OP_DELETE: i64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// SQLite: one writer connection, `?` placeholders.
    Sqlite,
    /// PostgreSQL: several API servers, LISTEN/NOTIFY.
    Postgres,
}

impl Dialect {
    /// The backend's name in errors and metrics.
    pub(super) fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// The statements, written once with `$n` placeholders and adapted to the dialect.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) lock_revision: String,
    pub(super) set_revision: String,
    pub(super) current_revision: String,
    pub(super) compact_revision: String,
    pub(super) get: String,
    pub(super) insert_kv: String,
    pub(super) update_kv: String,
    pub(super) delete_kv: String,
    pub(super) delete_kv_any: String,
    pub(super) insert_log: String,
    pub(super) list_current: String,
    pub(super) list_at: String,
    pub(super) log_after: String,
    pub(super) set_compact: String,
    pub(super) compact_log: String,
    /// PostgreSQL: the kv change and its log row in one statement each.
    pub(super) create_logged: String,
    pub(super) update_logged: String,
    pub(super) delete_logged: String,
    pub(super) delete_any_logged: String,
    /// PostgreSQL: the new revision and its NOTIFY in one statement.
    pub(super) finish: String,
}

impl Statements {
    pub(super) fn new(dialect: Dialect) -> Self {
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

pub(super) fn schema(dialect: Dialect) -> String {
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

/// A `key, value, create_rev, rev` row as a [`KeyValue`].
pub(super) fn kv_from_row(row: &AnyRow) -> Result<KeyValue, sqlx::Error> {
    Ok(KeyValue {
        key: row.try_get(0)?,
        value: row.try_get(1)?,
        create_revision: row.try_get(2)?,
        mod_revision: row.try_get(3)?,
    })
}
