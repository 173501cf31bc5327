//! The HTTP face of the node tunnels: the nodelet's WebSocket
//! (`GET …/nodes/NAME/tunnel`) and what users reach through it: a server's console lines
//! (`…/gameservers/NAME/logs`), console commands (`…/command`) and resource use (`…/metrics`).
//!
//! The limits of `crate::tunnel` apply (requests per node and per owner, the ask timeout);
//! here a command's body is bounded ([`COMMAND_BODY_BYTES`]) and so is a nodelet's frame
//! ([`MAX_FRAME_BYTES`]).

use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use catalyst_schemas::lookup_kind;
use catalyst_schemas::tunnel::{Answer, TunnelOp, MAX_FRAME_BYTES};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::registry::{meta_str, Registry, Scope};
use crate::state::AppState;
use crate::tunnel::{Answers, TunnelError, Tunnels};

/// The largest body `POST …/command` takes.
pub const COMMAND_BODY_BYTES: usize = 64 * 1024;
/// The most a `logs` request without `follow` returns; the rest is cut.
pub const LOGS_BYTES: usize = 16 * 1024 * 1024;

/// The tunnel, logs, command and metrics routes.
pub fn routes() -> Router<AppState> {
    const API: &str = "/apis/catalyst.dev/v1alpha1";
    Router::new()
        .route(&format!("{API}/nodes/{{name}}/tunnel"), get(tunnel))
        .route(
            &format!("{API}/namespaces/{{ns}}/gameservers/{{name}}/logs"),
            get(logs),
        )
        .route(
            &format!("{API}/namespaces/{{ns}}/gameservers/{{name}}/command"),
            post(command),
        )
        .route(
            &format!("{API}/namespaces/{{ns}}/gameservers/{{name}}/metrics"),
            get(metrics),
        )
}

/// `GET …/nodes/NAME/tunnel`: a nodelet's WebSocket.
pub async fn tunnel(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Option<Extension<Caller>>,
    ws: WebSocketUpgrade,
) -> Response {
    let tunnels = state.tunnels.clone();
    let access = state.access.clone();
    let caller = caller.map_or(Caller::Join, |c| c.0);
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            // a deleted Node's tunnel closes with its credential
            tokio::select! {
                () = tunnels.serve(name.clone(), socket) => {}
                () = access.revoked(caller) => {
                    tracing::info!(node = name, "node credential revoked: tunnel closed");
                }
            }
        })
}

/// Whom the per-owner request limit counts a request against: the authenticated caller
/// (`user:NAME`, `apikey:NAME`, …).
pub(crate) fn owner(caller: Option<&Caller>) -> String {
    caller.map_or_else(|| "anonymous".to_owned(), Caller::key)
}

/// The node and uid of a GameServer.
pub(crate) async fn locate(
    state: &AppState,
    ns: &str,
    name: &str,
) -> Result<(String, String), ApiError> {
    locate_in(&state.registry, ns, name).await
}

/// The node and uid of a GameServer, read from `registry`.
async fn locate_in(
    registry: &Registry,
    ns: &str,
    name: &str,
) -> Result<(String, String), ApiError> {
    let kind = lookup_kind("gameservers").expect("kind");
    let obj = registry
        .get(
            Scope {
                kind,
                namespace: Some(ns),
            },
            name,
        )
        .await?;
    let node = obj
        .pointer("/status/nodeName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Unavailable(format!("gameserver {name:?} is not on a node yet")))?
        .to_owned();
    Ok((node, meta_str(&obj, "uid").unwrap_or_default().to_owned()))
}

/// Sends a request about a GameServer (`op` made from the server's uid) to the server's node
/// for `owner`; returns the answers and the first one (within the ask timeout), or the node's
/// error as an ApiError.
async fn ask(
    state: &AppState,
    owner: &str,
    ns: &str,
    name: &str,
    op: impl FnOnce(String) -> TunnelOp,
) -> Result<(Answers, Answer), ApiError> {
    let (node, uid) = locate(state, ns, name).await?;
    let mut answers = state.tunnels.request(&node, owner, op(uid)).await?;
    let first = answers.next_in_time().await?;
    match answer_error(&first) {
        Some(e) => Err(e),
        None => Ok((answers, first)),
    }
}

/// The ApiError of a failed answer (by its code), None for any other answer.
fn answer_error(answer: &Answer) -> Option<ApiError> {
    let Answer::Failed { code, error } = answer else {
        return None;
    };
    let msg = error.clone();
    Some(match code {
        404 => ApiError::NotFound {
            kind: "console".into(),
            name: msg,
        },
        400 => ApiError::BadRequest(msg),
        429 => ApiError::TooManyRequests {
            message: msg,
            retry_after_seconds: 1,
        },
        409 => ApiError::Conflict {
            message: msg,
            causes: vec![],
        },
        _ => ApiError::Unavailable(msg),
    })
}

/// Query of the logs endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsQuery {
    /// Keep streaming.
    #[serde(default)]
    pub follow: bool,
    /// Lines of history.
    #[serde(default)]
    pub tail_lines: Option<usize>,
}

/// `GET …/namespaces/NS/gameservers/NAME/logs?follow=true&tailLines=N`: console lines as
/// text/plain, one per line. Without `follow` the whole answer must come within the ask
/// timeout (504 otherwise) and is cut at [`LOGS_BYTES`]; with it, the stream runs until the
/// client or the node ends it, and a client that stops reading has it dropped.
pub async fn logs(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let owner = owner(caller.as_deref());
    let deadline = tokio::time::Instant::now() + state.tunnels.config().ask_timeout;
    let (mut answers, first) = ask(&state, &owner, &ns, &name, |uid| TunnelOp::Logs {
        uid,
        tail: q.tail_lines,
        follow: q.follow,
    })
    .await?;
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !q.follow {
        let body = tokio::time::timeout_at(deadline, collect_lines(first, &mut answers))
            .await
            .map_err(|_| TunnelError::Timeout {
                node: answers.node().to_owned(),
                after: state.tunnels.config().ask_timeout,
            })?;
        return Ok((text, body).into_response());
    }
    let body = futures::stream::unfold(Some((Some(first), answers)), |s| async move {
        let (first, mut answers) = s?;
        let answer = match first {
            Some(a) => a,
            None => answers.next().await?,
        };
        let (chunk, more) = match answer {
            Answer::Line(l) => (format!("{l}\n"), true),
            Answer::Started
            | Answer::Opened(_)
            | Answer::Data(_)
            | Answer::Ack(_)
            | Answer::Progress(_) => (String::new(), true),
            Answer::Failed { error, .. } => (format!("[catalyst] {error}\n"), false),
            Answer::End { .. } => return None,
        };
        let next = more.then_some((None, answers));
        Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), next))
    });
    Ok((text, Body::from_stream(body)).into_response())
}

/// The lines of a finished logs request, up to [`LOGS_BYTES`].
async fn collect_lines(first: Answer, answers: &mut Answers) -> String {
    let mut out = String::new();
    let mut next = Some(first);
    loop {
        let answer = match next.take() {
            Some(a) => a,
            None => match answers.next().await {
                Some(a) => a,
                None => break,
            },
        };
        match answer {
            Answer::Line(l) if out.len() + l.len() < LOGS_BYTES => {
                out.push_str(&l);
                out.push('\n');
            }
            Answer::Line(_) => {
                out.push_str("[catalyst] output cut\n");
                break;
            }
            Answer::Started
            | Answer::Opened(_)
            | Answer::Data(_)
            | Answer::Ack(_)
            | Answer::Progress(_) => {}
            Answer::Failed { error, .. } => {
                out.push_str(&format!("[catalyst] {error}\n"));
                break;
            }
            Answer::End { .. } => break,
        }
    }
    out
}

/// Body of the command endpoint.
#[derive(Debug, Deserialize)]
pub struct CommandBody {
    /// One line for the server's console.
    pub command: String,
}

/// `POST …/namespaces/NS/gameservers/NAME/command` with `{"command": "say hi"}`; a body over
/// [`COMMAND_BODY_BYTES`] gets 413.
pub async fn command(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    caller: Option<Extension<Caller>>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, COMMAND_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!(
                "a command body may have at most {COMMAND_BODY_BYTES} bytes"
            ))
        })?;
    let body: CommandBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("command body: {e}")))?;
    send_command(
        &state.registry,
        &state.tunnels,
        &owner(caller.as_deref()),
        &ns,
        &name,
        body.command,
    )
    .await?;
    Ok((
        StatusCode::OK,
        Json(json!({"kind": "Status", "status": "Success"})),
    )
        .into_response())
}

/// Sends one console line to GameServer `ns/name` through its node's tunnel on behalf of
/// `owner` (the per-owner request limit counts by it) and waits for the node to take it: what
/// `POST …/command` does, for callers in this process (the schedule controller).
///
/// # Errors
/// 400 for a line with a newline or NUL; the server's 404; 503 when it is not on a node or its
/// node has no tunnel to this API server; the node's refusal; 504 when it does not answer in
/// time.
pub async fn send_command(
    registry: &Registry,
    tunnels: &Tunnels,
    owner: &str,
    ns: &str,
    name: &str,
    text: String,
) -> Result<(), ApiError> {
    if text.contains(['\n', '\r', '\0']) {
        return Err(ApiError::BadRequest(
            "command: must be one line without NUL bytes".into(),
        ));
    }
    let (node, uid) = locate_in(registry, ns, name).await?;
    let mut answers = tunnels
        .request(&node, owner, TunnelOp::Command { uid, text })
        .await?;
    let first = answers.next_in_time().await?;
    answer_error(&first).map_or(Ok(()), Err)
}

/// `GET …/namespaces/NS/gameservers/NAME/metrics`: the server's resource use now.
pub async fn metrics(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let owner = owner(caller.as_deref());
    let (_, first) = ask(&state, &owner, &ns, &name, |uid| TunnelOp::Metrics { uid }).await?;
    let result = match first {
        Answer::End { result } => result.unwrap_or(Value::Null),
        _ => Value::Null,
    };
    Ok(Json(result).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_failures_map_to_api_statuses() {
        let status = |code| {
            answer_error(&Answer::Failed {
                code,
                error: "x".into(),
            })
            .map(|e| e.code().as_u16())
        };
        assert_eq!(status(404), Some(404));
        assert_eq!(status(400), Some(400));
        assert_eq!(status(409), Some(409));
        assert_eq!(status(500), Some(503));
        assert!(answer_error(&Answer::Started).is_none());
    }
}
