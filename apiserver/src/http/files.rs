//! The file API of a GameServer (`…/namespaces/NS/gameservers/NAME/files`), served by the
//! server's node through its tunnel: every path is resolved beneath the server's data directory
//! by the nodelet's path layer, as the server's own uid.
//!
//! - `GET ?path=DIR[&after=NAME&limit=N]`: a page of the directory (JSON `Listing`);
//!   `GET ?path=P&stat=true`: one entry.
//! - `GET …/gameservers/NAME/filecontents?path=F`: the file's bytes, streamed, with `Range` (one
//!   range) for resumable downloads (its own subresource: Pterodactyl's `file.read-content`
//!   is a right apart from listing).
//! - `PUT ?path=F[&mode=644]`: replaces the file with the body, streamed and atomic (201).
//! - `POST ?path=P&op=mkdir|copy|extract[&to=Q]`, `POST ?op=compress` with
//!   `{"paths": [...], "dest": "/a.tar.gz", "format": "tar.gz"}`, `POST ?op=pull` with
//!   `{"url": "https://…", "dest": "/file"}`.
//! - `PATCH ?path=P` with `{"to": "/new", "replace": false}` (rename or move) or
//!   `{"mode": "0755"}` (chmod, never following a link).
//! - `DELETE ?path=P[&recursive=true]`.
//!
//! RBAC: the `gameservers/files` subresource by verb (get, update (PUT), create (POST), patch
//! (PATCH), delete) and `gameservers/filecontents` (get). Request bodies of uploads are streamed in chunks of
//! [`FILE_CHUNK_BYTES`], at most [`FILE_WINDOW`] in flight, so an upload of any size holds a
//! bounded amount of memory; a download is paced by its reader the same way.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use catalyst_schemas::lookup_kind;
use catalyst_schemas::tunnel::{Answer, FileCall, TunnelOp, FILE_CHUNK_BYTES, FILE_WINDOW};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::registry::{meta_str, Scope};
use crate::state::AppState;
use crate::tunnel::Answers;

use super::tunnel::owner;

/// The largest JSON body of a file request (compress, pull, rename, chmod).
pub const FILE_REQUEST_BODY_BYTES: usize = 64 * 1024;

/// The file routes.
pub fn routes() -> Router<AppState> {
    const API: &str = "/apis/catalyst.dev/v1alpha1";
    Router::new()
        .route(
            &format!("{API}/namespaces/{{ns}}/gameservers/{{name}}/files"),
            get(read)
                .put(upload)
                .post(create)
                .patch(change)
                .delete(remove),
        )
        .route(
            &format!("{API}/namespaces/{{ns}}/gameservers/{{name}}/filecontents"),
            get(contents),
        )
}

/// The query of the file routes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilesQuery {
    /// The path in the server's data directory (`/` is its root).
    #[serde(default)]
    pub path: Option<String>,
    /// GET: one entry.
    #[serde(default)]
    pub stat: bool,
    /// GET of a directory: the last name of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// GET of a directory: entries per page.
    #[serde(default)]
    pub limit: Option<usize>,
    /// DELETE: a directory with its contents.
    #[serde(default)]
    pub recursive: bool,
    /// POST: `mkdir`, `copy`, `compress`, `extract` or `pull`.
    #[serde(default)]
    pub op: Option<String>,
    /// POST copy and extract: the destination.
    #[serde(default)]
    pub to: Option<String>,
    /// PUT: permission bits of a new file, in octal.
    #[serde(default)]
    pub mode: Option<String>,
}

impl FilesQuery {
    fn path(&self) -> Result<String, ApiError> {
        self.path.clone().ok_or_else(|| ApiError::BadField {
            field: "path".into(),
            message: "the query needs path=… (a path in the server's files)".into(),
        })
    }
}

/// The node and uid of a GameServer whose files may be reached: bound to a node, and not
/// suspended (but for the administrator).
async fn target(
    state: &AppState,
    caller: Option<&Caller>,
    ns: &str,
    name: &str,
) -> Result<(String, String), ApiError> {
    let kind = lookup_kind("gameservers").expect("kind");
    let scope = Scope {
        kind,
        namespace: Some(ns),
    };
    let obj = state.registry.get(scope, name).await?;
    let suspended = obj.pointer("/spec/suspended").and_then(Value::as_bool) == Some(true);
    if suspended && !matches!(caller, Some(Caller::Admin(_))) {
        return Err(ApiError::Conflict {
            message: format!("gameserver {name:?} is suspended: its files cannot be reached"),
            causes: vec![],
        });
    }
    let node = obj
        .pointer("/status/nodeName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Unavailable(format!("gameserver {name:?} is not on a node yet")))?
        .to_owned();
    Ok((node, meta_str(&obj, "uid").unwrap_or_default().to_owned()))
}

/// The ApiError of a node's failed file call about `path`.
pub(super) fn file_error(code: u16, message: String, path: &str) -> ApiError {
    match code {
        400 => ApiError::BadRequest(message),
        403 => ApiError::Forbidden(message),
        404 => ApiError::NotFound {
            kind: "file".into(),
            name: path.to_owned(),
        },
        409 => ApiError::Conflict {
            message,
            causes: vec![],
        },
        413 => ApiError::PayloadTooLarge(message),
        416 => ApiError::RangeNotSatisfiable(message),
        422 => ApiError::BadRequest(message),
        429 => ApiError::TooManyRequests {
            message,
            retry_after_seconds: 1,
        },
        507 => ApiError::InsufficientStorage(message),
        502 => ApiError::BadGateway(message),
        _ => ApiError::Unavailable(message),
    }
}

/// Sends a file call to the server's node: its answers, the node, and the path it is about.
async fn send_call(
    state: &AppState,
    caller: Option<&Caller>,
    ns: &str,
    name: &str,
    call: FileCall,
) -> Result<(Answers, String, String), ApiError> {
    let (node, uid) = target(state, caller, ns, name).await?;
    let path = call.path().to_owned();
    let answers = state
        .tunnels
        .request(&node, &owner(caller), TunnelOp::Files { uid, call })
        .await?;
    Ok((answers, node, path))
}

/// Starts a file call on the server's node; returns its answers and the first one (within the
/// ask timeout), or the node's refusal.
async fn start(
    state: &AppState,
    caller: Option<&Caller>,
    ns: &str,
    name: &str,
    call: FileCall,
) -> Result<(Answers, Answer), ApiError> {
    let (mut answers, _, path) = send_call(state, caller, ns, name, call).await?;
    let first = answers.next_in_time().await?;
    match first {
        Answer::Failed { code, error } => Err(file_error(code, error, &path)),
        other => Ok((answers, other)),
    }
}

/// How long a call that works through a tree (copy, remove, compress, extract, pull) may take.
const LONG_CALL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs a call to its end: its result.
async fn finish(
    state: &AppState,
    caller: Option<&Caller>,
    ns: &str,
    name: &str,
    call: FileCall,
) -> Result<Value, ApiError> {
    let long = matches!(
        call,
        FileCall::Copy { .. }
            | FileCall::Remove { .. }
            | FileCall::Compress { .. }
            | FileCall::Extract { .. }
            | FileCall::Pull { .. }
    );
    let (mut answers, node, path) = send_call(state, caller, ns, name, call).await?;
    loop {
        let answer = if long {
            match tokio::time::timeout(LONG_CALL, answers.next()).await {
                Ok(Some(a)) => a,
                Ok(None) => {
                    return Err(ApiError::Unavailable(format!(
                        "node {node:?} tunnel closed"
                    )))
                }
                Err(_) => return Err(ApiError::Timeout("the file operation took too long".into())),
            }
        } else {
            answers.next_in_time().await?
        };
        match answer {
            Answer::End { result } => return Ok(result.unwrap_or(Value::Null)),
            Answer::Failed { code, error } => return Err(file_error(code, error, &path)),
            _ => {}
        }
    }
}

/// `GET …/filecontents?path=F`: the file's bytes.
pub async fn contents(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<FilesQuery>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    download(&state, caller.as_deref(), &ns, &name, q.path()?, &headers).await
}

/// `GET`: a listing or an entry.
pub async fn read(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<FilesQuery>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let caller = caller.as_deref();
    let path = q.path.clone().unwrap_or_else(|| "/".into());
    let call = if q.stat {
        FileCall::Stat { path }
    } else {
        FileCall::List {
            path,
            after: q.after,
            limit: q.limit,
        }
    };
    Ok(Json(finish(&state, caller, &ns, &name, call).await?).into_response())
}

/// One byte range of a `Range` header: (start, end inclusive, suffix).
type ByteRange = (Option<u64>, Option<u64>, Option<u64>);

/// Parses `Range: bytes=A-B`, `bytes=A-` or `bytes=-N` (one range; several are refused with
/// 416, as a server may).
pub(super) fn parse_range(value: &str) -> Result<ByteRange, ApiError> {
    let bad = || ApiError::RangeNotSatisfiable(format!("unsupported Range {value:?}"));
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(ApiError::RangeNotSatisfiable(
            "only one byte range per request".into(),
        ));
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => Ok((None, None, Some(num(b)?))),
        (false, true) => Ok((Some(num(a)?), None, None)),
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(bad());
            }
            Ok((Some(a), Some(b), None))
        }
        (true, true) => Err(bad()),
    }
}

/// `GET ?content=true`: the file's bytes, streamed as the reader takes them.
async fn download(
    state: &AppState,
    caller: Option<&Caller>,
    ns: &str,
    name: &str,
    path: String,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => Some(parse_range(v)?),
        None => None,
    };
    let (start_at, end_at, suffix) = range.unwrap_or_default();
    let call = FileCall::Read {
        path,
        start: start_at,
        end: end_at,
        suffix,
    };
    let (answers, first) = start(state, caller, ns, name, call).await?;
    streamed(answers, first, range.is_some(), "file")
}

/// The response of a read the node has opened (`first`): its data chunks streamed as the
/// reader takes them, with the length, range and name headers.
pub(super) fn streamed(
    answers: Answers,
    first: Answer,
    ranged: bool,
    default_name: &str,
) -> Result<Response, ApiError> {
    let Answer::Opened(meta) = first else {
        return Err(ApiError::Unavailable(
            "the node answered a read without opening the file".into(),
        ));
    };
    let size = meta.get("size").and_then(Value::as_u64).unwrap_or(0);
    let from = meta.get("start").and_then(Value::as_u64).unwrap_or(0);
    let length = meta.get("length").and_then(Value::as_u64).unwrap_or(size);
    let file_name = meta
        .pointer("/entry/name")
        .and_then(Value::as_str)
        .unwrap_or(default_name)
        .to_owned();
    let modified = meta
        .pointer("/entry/modified")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let status = if ranged {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let body = futures::stream::unfold(Some(answers), |answers| async move {
        let mut answers = answers?;
        loop {
            let answer = match answers.next_in_time().await {
                Ok(a) => a,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            };
            match answer {
                Answer::Data(d) => {
                    // the chunk is taken: room for one more
                    if let Err(e) = answers.ack(1).await {
                        return Some((Err(std::io::Error::other(e.to_string())), None));
                    }
                    return Some((Ok(Bytes::from(d)), Some(answers)));
                }
                Answer::End { .. } => return None,
                Answer::Failed { error, .. } => {
                    // the length promised cannot be kept: the connection is cut
                    return Some((Err(std::io::Error::other(error)), None));
                }
                _ => {}
            }
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if ranged {
        let last = (from + length).saturating_sub(1);
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {from}-{last}/{size}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    if let Some(t) = modified {
        let http_date = t
            .with_timezone(&chrono::Utc)
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        if let Ok(v) = HeaderValue::from_str(&http_date) {
            h.insert(header::LAST_MODIFIED, v);
        }
    }
    let safe: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Parses permission bits given in octal (`644`, `0755`).
fn parse_mode(field: &str, s: &str) -> Result<u32, ApiError> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| ApiError::BadField {
            field: field.into(),
            message: format!("{s:?} is not permission bits in octal (like 644)"),
        })
}

/// `PUT ?path=F`: replaces the file with the request body, atomically; the body is streamed to
/// the node in chunks, never held whole.
pub async fn upload(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<FilesQuery>,
    caller: Option<Extension<Caller>>,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = caller.as_deref();
    let mode = q
        .mode
        .as_deref()
        .map(|m| parse_mode("mode", m))
        .transpose()?;
    let path = q.path()?;
    let call = FileCall::Write {
        path: path.clone(),
        mode,
    };
    let (mut answers, first) = start(&state, caller, &ns, &name, call).await?;
    if !matches!(first, Answer::Opened(_)) {
        return Err(ApiError::Unavailable(
            "the node answered a write without opening the file".into(),
        ));
    }
    let mut in_flight: u32 = 0;
    let mut stream = body.into_data_stream();
    // what the node said while the body was being sent (a failure ends the upload early)
    let settle = |answer: Answer, in_flight: &mut u32| -> Result<Option<Value>, ApiError> {
        match answer {
            Answer::Ack(n) => {
                *in_flight = in_flight.saturating_sub(n);
                Ok(None)
            }
            Answer::Failed { code, error } => Err(file_error(code, error, &path)),
            Answer::End { result } => Ok(Some(result.unwrap_or(Value::Null))),
            _ => Ok(None),
        }
    };
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        for chunk in piece.chunks(FILE_CHUNK_BYTES) {
            while let Some(a) = answers.try_next() {
                if settle(a, &mut in_flight)?.is_some() {
                    return Err(ApiError::Unavailable(
                        "the node ended the upload early".into(),
                    ));
                }
            }
            while in_flight >= FILE_WINDOW {
                let a = answers.next_in_time().await?;
                if settle(a, &mut in_flight)?.is_some() {
                    return Err(ApiError::Unavailable(
                        "the node ended the upload early".into(),
                    ));
                }
            }
            answers.send_data(chunk).await?;
            in_flight += 1;
        }
    }
    answers.send_data(&[]).await?;
    // the node syncs and renames the file in place: that may take a while for a big file
    let deadline = answers.timeout() * 6;
    let entry = tokio::time::timeout(deadline, async {
        loop {
            match answers.next().await {
                Some(a) => {
                    if let Some(entry) = settle(a, &mut in_flight)? {
                        return Ok(entry);
                    }
                }
                None => return Err(ApiError::Unavailable("the node's tunnel closed".into())),
            }
        }
    })
    .await
    .map_err(|_| ApiError::Timeout("the node did not finish the upload in time".into()))??;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

/// A small JSON body (compress, pull, rename, chmod).
async fn json_body<T: serde::de::DeserializeOwned>(body: Body, what: &str) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, FILE_REQUEST_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!(
                "a {what} body may have at most {FILE_REQUEST_BODY_BYTES} bytes"
            ))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("{what} body: {e}")))
}

/// The body of `POST ?op=compress`.
#[derive(Debug, Deserialize)]
pub struct CompressBody {
    /// What to pack.
    pub paths: Vec<String>,
    /// The archive to write.
    pub dest: String,
    /// `tar.gz`, `tar.zst` or `zip` (else from `dest`'s name).
    #[serde(default)]
    pub format: Option<String>,
}

/// The body of `POST ?op=pull`.
#[derive(Debug, Deserialize)]
pub struct PullBody {
    /// What to fetch.
    pub url: String,
    /// The file to write.
    pub dest: String,
}

/// `POST ?op=…`: mkdir, copy, compress, extract, pull.
pub async fn create(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<FilesQuery>,
    caller: Option<Extension<Caller>>,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = caller.as_deref();
    let to = || {
        q.to.clone().ok_or_else(|| ApiError::BadField {
            field: "to".into(),
            message: "the query needs to=… (the destination)".into(),
        })
    };
    let call = match q.op.as_deref() {
        Some("mkdir") => FileCall::Mkdir { path: q.path()? },
        Some("copy") => FileCall::Copy {
            from: q.path()?,
            to: to()?,
        },
        Some("extract") => FileCall::Extract {
            path: q.path()?,
            dest: q.to.clone().unwrap_or_else(|| "/".into()),
        },
        Some("compress") => {
            let b: CompressBody = json_body(body, "compress").await?;
            FileCall::Compress {
                paths: b.paths,
                dest: b.dest,
                format: b.format,
            }
        }
        Some("pull") => {
            let b: PullBody = json_body(body, "pull").await?;
            FileCall::Pull {
                url: b.url,
                dest: b.dest,
            }
        }
        other => {
            return Err(ApiError::BadField {
                field: "op".into(),
                message: format!("{other:?}: op must be mkdir, copy, compress, extract or pull"),
            })
        }
    };
    let result = finish(&state, caller, &ns, &name, call).await?;
    Ok((StatusCode::CREATED, Json(result)).into_response())
}

/// The body of `PATCH`: a rename (`to`) or a chmod (`mode`).
#[derive(Debug, Deserialize)]
pub struct ChangeBody {
    /// Rename or move to.
    #[serde(default)]
    pub to: Option<String>,
    /// Replace what is at `to`.
    #[serde(default)]
    pub replace: bool,
    /// Permission bits in octal.
    #[serde(default)]
    pub mode: Option<String>,
}

/// `PATCH ?path=P`: rename or chmod.
pub async fn change(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<FilesQuery>,
    caller: Option<Extension<Caller>>,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = caller.as_deref();
    let path = q.path()?;
    let b: ChangeBody = json_body(body, "change").await?;
    let call = match (b.to, b.mode) {
        (Some(to), None) => FileCall::Rename {
            from: path,
            to,
            replace: b.replace,
        },
        (None, Some(mode)) => FileCall::Chmod {
            path,
            mode: parse_mode("mode", &mode)?,
        },
        _ => {
            return Err(ApiError::BadRequest(
                "the body must have either \"to\" (rename) or \"mode\" (chmod)".into(),
            ))
        }
    };
    Ok(Json(finish(&state, caller, &ns, &name, call).await?).into_response())
}

/// `DELETE ?path=P[&recursive=true]`.
pub async fn remove(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<FilesQuery>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let caller = caller.as_deref();
    let call = FileCall::Remove {
        path: q.path()?,
        recursive: q.recursive,
    };
    finish(&state, caller, &ns, &name, call).await?;
    Ok((
        StatusCode::OK,
        Json(json!({"kind": "Status", "status": "Success"})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_http_has_them() {
        assert_eq!(parse_range("bytes=0-9").unwrap(), (Some(0), Some(9), None));
        assert_eq!(parse_range("bytes=5-").unwrap(), (Some(5), None, None));
        assert_eq!(parse_range("bytes=-3").unwrap(), (None, None, Some(3)));
        for bad in [
            "bytes=9-1",
            "bytes=-",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=a-b",
        ] {
            assert_eq!(
                parse_range(bad).unwrap_err().code(),
                StatusCode::RANGE_NOT_SATISFIABLE,
                "{bad}"
            );
        }
    }

    #[test]
    fn modes_are_octal_and_bounded() {
        assert_eq!(parse_mode("mode", "644").unwrap(), 0o644);
        assert_eq!(parse_mode("mode", "0755").unwrap(), 0o755);
        assert!(parse_mode("mode", "999").is_err());
        assert!(parse_mode("mode", "77777").is_err());
    }

    #[test]
    fn node_failures_keep_their_status() {
        for code in [400u16, 403, 404, 409, 413, 416, 502, 507] {
            assert_eq!(file_error(code, "x".into(), "/p").code().as_u16(), code);
        }
        assert_eq!(file_error(500, "x".into(), "/p").code().as_u16(), 503);
    }
}
