//! The audit log: every write and every denied request as an [`AuditRecord`] (who, from where,
//! what, the answer), appended under its own store prefix ([`PREFIX`]) and, when asked, to a
//! JSON-lines file; read back with [`list`], trimmed to a retention by [`purge`]. The
//! [`record`] middleware builds the records and hands them to the [`Auditor`], whose
//! background task writes them, so a request never waits on the store.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::auth::{attributes, Caller};
use crate::store::{ListOptions, Store, StoreError};

/// Where the records live in the store: `PREFIX<20-digit unix nanos>-<random>`, so keys sort
/// by time.
pub const PREFIX: &str = "/_catalyst/audit/";
/// How long records are kept unless `--audit-retention` says otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// How often the purger looks for records past the retention.
pub const PURGE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Records a read answers with unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 500;
/// The most records one read answers with.
pub const MAX_LIMIT: usize = 5000;
/// The `apiVersion` of a record (stored formats carry their version).
pub const API_VERSION: &str = "catalyst.dev/v1alpha1";
/// The `kind` of a record.
pub const KIND: &str = "AuditRecord";
/// Records waiting for the writer; beyond this, new ones are dropped (and counted) rather than
/// holding up requests.
const QUEUE: usize = 10_000;
/// The largest write answer read for its `metadata.resourceVersion`.
const RV_BODY_LIMIT: u64 = 1 << 20;
/// Store pages when reading or purging.
const PAGE: usize = 1000;

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The `--audit-log` file cannot be opened.
    #[error("audit log {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A read's parameters do not parse (`since`, `limit`).
    #[error("{0}")]
    BadQuery(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who made a request: `kind` is `admin`, `user`, `apikey`, `node`, `join` or `anonymous`
/// (no valid credential); `name` is empty for `join` and `anonymous`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCaller {
    /// What kind of credential.
    pub kind: String,
    /// Whose.
    pub name: String,
}

/// The kind and name of a caller, `None` for an anonymous one. The one place that knows the
/// [`Caller`] variants; a variant without its own arm is named by its [`Caller::key`]
/// (`kind:name`).
pub fn caller_of(caller: Option<&Caller>) -> AuditCaller {
    let (kind, name) = match caller {
        None => ("anonymous".to_owned(), String::new()),
        Some(Caller::Admin(n)) => ("admin".to_owned(), n.clone()),
        Some(Caller::Node(n)) => ("node".to_owned(), n.clone()),
        Some(Caller::Join) => ("join".to_owned(), String::new()),
        Some(Caller::User { name, .. }) => ("user".to_owned(), name.clone()),
        Some(Caller::ApiKey { name, owner }) => {
            ("apikey".to_owned(), format!("{name} (of {owner})"))
        }
    };
    AuditCaller { kind, name }
}

/// One audited request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`KIND`].
    pub kind: String,
    /// When the answer was given (RFC 3339, UTC).
    pub time: DateTime<Utc>,
    /// Who.
    pub caller: AuditCaller,
    /// The peer address of the connection (never `X-Forwarded-For`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The path, without the query (which may carry a token).
    pub path: String,
    /// The RBAC verb (`create`, `patch`, …; from the method outside the resource API).
    pub verb: String,
    /// The plural of the resource, empty outside the resource API.
    #[serde(default)]
    pub resource: String,
    /// `status`, `command`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// The namespace of the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name, when the path names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The HTTP status of the answer.
    pub code: u16,
    /// The object's `metadata.resourceVersion` after a successful write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// The `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A `dryRun=All` write: nothing was stored.
    #[serde(default)]
    pub dry_run: bool,
}

/// What the middleware notes of a request before passing it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The query, if any (for the verb and `dryRun`; never recorded as is).
    pub query: Option<String>,
    /// The connection's peer, when the server inserted `ConnectInfo`.
    pub source: Option<SocketAddr>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

impl Seen {
    /// Notes `req`.
    pub fn of(req: &Request) -> Self {
        Self {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            source: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// Whether a method writes.
pub fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Whether a request with this method and answer is audited: every write whatever its answer,
/// and every 401, 403 and 429; not successful reads.
pub fn is_audited(method: &Method, code: StatusCode) -> bool {
    is_write(method)
        || matches!(
            code,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        )
}

fn verb_of_method(method: &Method) -> String {
    match *method {
        Method::GET | Method::HEAD => "get".into(),
        Method::POST => "create".into(),
        Method::PUT => "update".into(),
        Method::PATCH => "patch".into(),
        Method::DELETE => "delete".into(),
        ref other => other.as_str().to_ascii_lowercase(),
    }
}

fn is_dry_run(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.split_once('=').is_some_and(|(k, _)| k == "dryRun"))
    })
}

impl AuditRecord {
    /// The record of a request `seen`, answered `code` to `caller` (`None`: anonymous) at
    /// `time`; `resource_version` from the answer of a successful write.
    pub fn new(
        seen: &Seen,
        caller: Option<&Caller>,
        code: StatusCode,
        resource_version: Option<String>,
        time: DateTime<Utc>,
    ) -> Self {
        let attrs = attributes::of(&seen.method, &seen.path, seen.query.as_deref());
        let (verb, resource, subresource, namespace, name) = match attrs {
            Some(a) => (a.verb, a.resource, a.subresource, a.namespace, a.name),
            None => (
                verb_of_method(&seen.method),
                String::new(),
                None,
                None,
                None,
            ),
        };
        Self {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            time,
            caller: caller_of(caller),
            source_ip: seen.source.map(|s| s.ip().to_string()),
            method: seen.method.to_string(),
            path: seen.path.clone(),
            verb,
            resource,
            subresource,
            namespace,
            name,
            code: code.as_u16(),
            resource_version,
            user_agent: seen.user_agent.clone(),
            dry_run: is_write(&seen.method) && is_dry_run(seen.query.as_deref()),
        }
    }

    /// The record's store key: [`PREFIX`], the zero-padded unix nanoseconds of its time, a
    /// random suffix.
    pub fn key(&self) -> String {
        let nanos = self.time.timestamp_nanos_opt().unwrap_or(0).max(0);
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!("{PREFIX}{nanos:020}-{}", &random[..12])
    }
}

/// The key below which every record is older than `time`.
fn key_at(time: DateTime<Utc>) -> String {
    let nanos = time.timestamp_nanos_opt().unwrap_or(0).max(0);
    format!("{PREFIX}{nanos:020}")
}

/// The unix nanoseconds a record key names.
fn nanos_of_key(key: &str) -> Option<i64> {
    key.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

enum Message {
    Record(Box<AuditRecord>),
    Sync(oneshot::Sender<()>),
}

/// Takes records from requests and writes them in the background: to the store, and to a
/// JSON-lines file when configured. Dropping it (every clone of the state) ends the writer
/// once the queue is written.
#[derive(Debug)]
pub struct Auditor {
    tx: mpsc::Sender<Message>,
    dropped: AtomicU64,
}

impl Auditor {
    /// Starts the writer over `store`, appending to `log` too when given (created `0600` if
    /// absent). Needs a tokio runtime.
    ///
    /// # Errors
    /// [`AuditError::File`] when `log` cannot be opened for appending.
    pub fn start(store: Arc<dyn Store>, log: Option<&Path>) -> Result<Self, AuditError> {
        let file = match log {
            Some(path) => Some((path.to_owned(), open_log(path)?)),
            None => None,
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_records(rx, store, file));
        Ok(Self {
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues a record; never waits. A full queue drops it (and says so in the log).
    pub fn submit(&self, record: AuditRecord) {
        if let Err(e) = self.tx.try_send(Message::Record(Box::new(record))) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the queue is full",
                mpsc::error::TrySendError::Closed(_) => "the writer stopped",
            };
            tracing::warn!(dropped = n, why, "audit record dropped");
        }
    }

    /// Records dropped so far because the queue was full or the writer gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every record submitted before this call is written (or failed to be).
    pub async fn sync(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Message::Sync(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn open_log(path: &Path) -> Result<std::fs::File, AuditError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| AuditError::File {
            path: path.to_owned(),
            source,
        })
}

/// How many queued records the writer hands to the store at once: they go into one group
/// commit instead of one commit each.
const BATCH: usize = 256;

async fn write_records(
    mut rx: mpsc::Receiver<Message>,
    store: Arc<dyn Store>,
    mut file: Option<(PathBuf, std::fs::File)>,
) {
    let mut messages = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut messages, BATCH).await > 0 {
        let mut lines = Vec::with_capacity(messages.len());
        let mut synced = Vec::new();
        for message in messages.drain(..) {
            match message {
                Message::Record(record) => match serde_json::to_vec(&record) {
                    Ok(line) => lines.push((record.key(), line)),
                    Err(e) => tracing::error!(error = %e, "cannot encode an audit record"),
                },
                // answered once every record queued before it is written
                Message::Sync(done) => synced.push(done),
            }
        }
        let stored =
            futures::future::join_all(lines.iter().map(|(key, line)| store.create(key, line)))
                .await;
        for e in stored.into_iter().filter_map(Result::err) {
            tracing::error!(error = %e, "cannot store an audit record");
        }
        if let Some((path, f)) = &mut file {
            // one write for the batch; every line whole and in order
            let mut buf = Vec::new();
            for (_, line) in &lines {
                buf.extend_from_slice(line);
                buf.push(b'\n');
            }
            if let Err(e) = f.write_all(&buf).and_then(|()| f.flush()) {
                tracing::error!(path = %path.display(), error = %e, "cannot append to the audit log");
            }
        }
        for done in synced {
            let _ = done.send(());
        }
    }
}

/// The `metadata.resourceVersion` of a write's answer, read from a JSON body of known, bounded
/// size (never from a stream); answers the response with its body intact.
async fn resource_version_of(response: Response) -> (Response, Option<String>) {
    #[derive(Deserialize)]
    struct Object {
        metadata: Option<Metadata>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Metadata {
        resource_version: Option<String>,
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") && !ct.contains("stream"));
    let small = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= RV_BODY_LIMIT);
    if !json || !small {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    // the body is whole in memory already (an exact size hint): this takes it, not waits for it
    match axum::body::to_bytes(body, RV_BODY_LIMIT as usize).await {
        Ok(bytes) => {
            let rv = serde_json::from_slice::<Object>(&bytes)
                .ok()
                .and_then(|o| o.metadata?.resource_version);
            (Response::from_parts(parts, Body::from(bytes)), rv)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a write's answer for the audit log");
            (Response::from_parts(parts, Body::empty()), None)
        }
    }
}

/// Middleware around the whole router: audits every write and every 401/403/429, with the
/// [`Caller`] the authentication layer left on the response (none: anonymous).
pub async fn record(State(auditor): State<Arc<Auditor>>, req: Request, next: Next) -> Response {
    let seen = Seen::of(&req);
    let response = next.run(req).await;
    let code = response.status();
    if !is_audited(&seen.method, code) {
        return response;
    }
    let caller = response.extensions().get::<Caller>().cloned();
    let (response, rv) = if is_write(&seen.method) && code.is_success() {
        resource_version_of(response).await
    } else {
        (response, None)
    };
    auditor.submit(AuditRecord::new(
        &seen,
        caller.as_ref(),
        code,
        rv,
        Utc::now(),
    ));
    response
}

/// Which records a read wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this caller name.
    pub user: Option<String>,
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, the newest.
    pub limit: usize,
}

impl AuditQuery {
    /// From the query parameters: `since` is RFC 3339 or a duration back from `now` (`1h`,
    /// `30m`, `2d`); `limit` defaults to [`DEFAULT_LIMIT`] and may not pass [`MAX_LIMIT`].
    ///
    /// # Errors
    /// [`AuditError::BadQuery`] for an unreadable `since` or `limit`.
    pub fn parse(
        user: Option<&str>,
        since: Option<&str>,
        limit: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, AuditError> {
        let since = match since.filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(parse_since(s, now)?),
        };
        let limit = match limit.filter(|s| !s.is_empty()) {
            None => DEFAULT_LIMIT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(AuditError::BadQuery(format!(
                        "limit {l:?}: expected 1 to {MAX_LIMIT}"
                    )))
                }
            },
        };
        Ok(Self {
            user: user.filter(|u| !u.is_empty()).map(str::to_owned),
            since,
            limit,
        })
    }
}

/// A time given as RFC 3339 or as a duration back from `now`.
///
/// # Errors
/// [`AuditError::BadQuery`] when it is neither.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AuditError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let secs = catalyst_schemas::validation::duration(s).map_err(|_| {
        AuditError::BadQuery(format!(
            "since {s:?}: expected an RFC 3339 time or a duration such as 1h, 30m, 2d"
        ))
    })?;
    let back = chrono::Duration::try_seconds(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(chrono::Duration::MAX);
    Ok(now.checked_sub_signed(back).unwrap_or(DateTime::UNIX_EPOCH))
}

/// The newest `query.limit` records that match, oldest first. Undecodable records are skipped.
///
/// # Errors
/// The store's.
pub async fn list(store: &dyn Store, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
    let mut newest: VecDeque<AuditRecord> = VecDeque::with_capacity(query.limit.min(PAGE));
    let mut options = ListOptions {
        revision: None,
        limit: Some(PAGE),
        // every record at `since` or later sorts after this key
        start_after: query.since.map(key_at),
    };
    loop {
        let page = store.list(PREFIX, &options).await?;
        for kv in &page.items {
            let record: AuditRecord = match serde_json::from_slice(&kv.value) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(key = kv.key, error = %e, "undecodable audit record");
                    continue;
                }
            };
            if query
                .user
                .as_ref()
                .is_some_and(|u| *u != record.caller.name)
            {
                continue;
            }
            if newest.len() == query.limit {
                newest.pop_front();
            }
            newest.push_back(record);
        }
        match page.items.last() {
            Some(last) if page.more => {
                options.start_after = Some(last.key.clone());
                options.revision = Some(page.revision);
            }
            _ => break,
        }
    }
    Ok(newest.into())
}

/// Deletes the records from before `cutoff`; returns how many.
///
/// # Errors
/// The store's.
pub async fn purge_before(store: &dyn Store, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
    let cutoff = cutoff.timestamp_nanos_opt().unwrap_or(0);
    let mut deleted = 0;
    let mut options = ListOptions {
        limit: Some(PAGE),
        ..ListOptions::default()
    };
    loop {
        let page = store.list(PREFIX, &options).await?;
        for kv in &page.items {
            match nanos_of_key(&kv.key) {
                // keys sort by time: the first young one ends the purge
                Some(n) if n >= cutoff => return Ok(deleted),
                Some(_) => match store.delete(&kv.key, None).await {
                    Ok(_) => deleted += 1,
                    Err(StoreError::NotFound { .. }) => {} // another server purged it
                    Err(e) => return Err(e),
                },
                None => tracing::warn!(key = kv.key, "an audit key without a time"),
            }
        }
        match page.items.last() {
            Some(last) if page.more => options.start_after = Some(last.key.clone()),
            _ => return Ok(deleted),
        }
    }
}

/// Deletes the records older than `retention`; returns how many.
///
/// # Errors
/// The store's.
pub async fn purge(store: &dyn Store, retention: Duration) -> Result<usize, StoreError> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(retention)
        .unwrap_or(DateTime::UNIX_EPOCH);
    purge_before(store, cutoff).await
}

/// Every `every`, purges the records older than `retention`. Runs until the handle is aborted.
pub fn spawn_purger(
    store: Arc<dyn Store>,
    retention: Duration,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match purge(store.as_ref(), retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "purged old audit records"),
                Err(e) => tracing::warn!(error = %e, "audit purge failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(method: Method, path: &str, query: Option<&str>) -> Seen {
        Seen {
            method,
            path: path.into(),
            query: query.map(Into::into),
            source: Some("192.0.2.7:40000".parse().unwrap()),
            user_agent: Some("catalystctl/0.1".into()),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_write_to_the_resource_api_is_recorded_with_its_attributes() {
        let s = seen(
            Method::PATCH,
            "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/mc/status",
            Some("dryRun=All&fieldManager=x"),
        );
        let r = AuditRecord::new(
            &s,
            Some(&Caller::Admin("admin".into())),
            StatusCode::OK,
            Some("42".into()),
            at("2025-01-02T03:04:05Z"),
        );
        assert_eq!(r.verb, "patch");
        assert_eq!(r.resource, "gameservers");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("mc"));
        assert_eq!(r.caller.kind, "admin");
        assert_eq!(r.source_ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(r.resource_version.as_deref(), Some("42"));
        assert!(r.dry_run);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["time"], "2025-01-02T03:04:05Z");
        assert_eq!(json["sourceIp"], "192.0.2.7");
        assert_eq!(json["resourceVersion"], "42");
        assert_eq!(json["caller"]["name"], "admin");
        assert_eq!(json["kind"], "AuditRecord");
        assert_eq!(
            serde_json::from_value::<AuditRecord>(json).unwrap(),
            r,
            "records read back as written"
        );
    }

    #[test]
    fn a_request_outside_the_resource_api_keeps_its_path_but_never_its_query() {
        let s = seen(Method::POST, "/auth/v1/join", Some("access_token=secret"));
        let r = AuditRecord::new(&s, None, StatusCode::UNAUTHORIZED, None, Utc::now());
        assert_eq!((r.verb.as_str(), r.resource.as_str()), ("create", ""));
        assert_eq!(r.caller.kind, "anonymous");
        assert_eq!(r.path, "/auth/v1/join");
        assert!(!serde_json::to_string(&r).unwrap().contains("secret"));
        assert!(!r.dry_run);
    }

    #[test]
    fn every_caller_has_a_kind_and_a_name() {
        let c = |c: Option<Caller>| {
            let a = caller_of(c.as_ref());
            (a.kind, a.name)
        };
        assert_eq!(c(None), ("anonymous".into(), String::new()));
        assert_eq!(
            c(Some(Caller::Node("n1".into()))),
            ("node".into(), "n1".into())
        );
        assert_eq!(c(Some(Caller::Join)), ("join".into(), String::new()));
        assert_eq!(
            c(Some(Caller::Admin("root".into()))),
            ("admin".into(), "root".into())
        );
    }

    #[test]
    fn writes_and_refusals_are_audited_successful_reads_are_not() {
        assert!(is_audited(&Method::POST, StatusCode::CREATED));
        assert!(is_audited(&Method::DELETE, StatusCode::NOT_FOUND));
        assert!(is_audited(&Method::GET, StatusCode::FORBIDDEN));
        assert!(is_audited(&Method::GET, StatusCode::UNAUTHORIZED));
        assert!(is_audited(&Method::GET, StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_audited(&Method::GET, StatusCode::OK));
        assert!(!is_audited(&Method::GET, StatusCode::NOT_FOUND));
    }

    #[test]
    fn keys_sort_by_time_and_name_it() {
        let mut r = AuditRecord::new(
            &seen(Method::POST, "/x", None),
            None,
            StatusCode::OK,
            None,
            at("2001-09-09T01:46:40Z"),
        );
        let early = r.key();
        assert!(early.starts_with("/_catalyst/audit/01000000000000000000-"));
        assert_eq!(nanos_of_key(&early), Some(1_000_000_000_000_000_000));
        r.time = at("2030-01-01T00:00:00Z");
        assert!(early < r.key());
        assert!(key_at(r.time) < r.key());
    }

    #[test]
    fn since_is_a_time_or_a_duration_back() {
        let now = at("2025-01-02T03:00:00Z");
        assert_eq!(
            parse_since("2025-01-01T00:00:00+01:00", now).unwrap(),
            at("2024-12-31T23:00:00Z")
        );
        assert_eq!(parse_since("1h", now).unwrap(), at("2025-01-02T02:00:00Z"));
        assert!(parse_since("yesterday", now).is_err());
        let q = AuditQuery::parse(Some(""), None, None, now).unwrap();
        assert_eq!((q.user, q.since, q.limit), (None, None, DEFAULT_LIMIT));
        assert!(AuditQuery::parse(None, None, Some("5001"), now).is_err());
        assert!(AuditQuery::parse(None, None, Some("0"), now).is_err());
        assert_eq!(
            AuditQuery::parse(None, None, Some("5000"), now)
                .unwrap()
                .limit,
            5000
        );
    }
}
