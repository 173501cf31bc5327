//! The HTTP face of the node tunnels: the nodelet's WebSocket
//! (`GET …/nodes/NAME/tunnel`) and what users reach through it: a server's console lines
//! (`…/gameservers/NAME/logs`), console commands (`…/command`) and resource use (`…/metrics`).

use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use catalyst_schemas::lookup_kind;
use catalyst_schemas::tunnel::{Answer, TunnelOp};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::registry::{meta_str, Scope};
use crate::state::AppState;
use crate::tunnel::Answers;

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
    ws: WebSocketUpgrade,
) -> Response {
    let tunnels = state.tunnels.clone();
    ws.on_upgrade(move |socket| async move { tunnels.serve(name, socket).await })
}

/// The node and uid of a GameServer.
async fn locate(state: &AppState, ns: &str, name: &str) -> Result<(String, String), ApiError> {
    let kind = lookup_kind("gameservers").expect("kind");
    let obj = state
        .registry
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

/// Sends a request about a GameServer (`op` made from the server's uid) to the server's node;
/// returns the answers and the first one, or the node's error as an ApiError.
async fn ask(
    state: &AppState,
    ns: &str,
    name: &str,
    op: impl FnOnce(String) -> TunnelOp,
) -> Result<(Answers, Answer), ApiError> {
    let (node, uid) = locate(state, ns, name).await?;
    let mut answers = state.tunnels.request(&node, op(uid)).await?;
    let first = answers
        .next()
        .await
        .ok_or_else(|| ApiError::Unavailable(format!("node {node:?} tunnel closed")))?;
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
/// text/plain, one per line.
pub async fn logs(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let (answers, first) = ask(&state, &ns, &name, |uid| TunnelOp::Logs {
        uid,
        tail: q.tail_lines,
        follow: q.follow,
    })
    .await?;
    let body = futures::stream::unfold((Some(first), answers), |(first, mut answers)| async move {
        let answer = match first {
            Some(a) => a,
            None => answers.next().await?,
        };
        let chunk = match answer {
            Answer::Line(l) => format!("{l}\n"),
            Answer::Started => String::new(),
            Answer::End { .. } | Answer::Failed { .. } => return None,
        };
        Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), (None, answers)))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Body of the command endpoint.
#[derive(Debug, Deserialize)]
pub struct CommandBody {
    /// One line for the server's console.
    pub command: String,
}

/// `POST …/namespaces/NS/gameservers/NAME/command` with `{"command": "say hi"}`.
pub async fn command(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<CommandBody>,
) -> Result<Response, ApiError> {
    if body.command.contains(['\n', '\r', '\0']) {
        return Err(ApiError::BadRequest(
            "command: must be one line without NUL bytes".into(),
        ));
    }
    ask(&state, &ns, &name, |uid| TunnelOp::Command {
        uid,
        text: body.command,
    })
    .await?;
    Ok((
        StatusCode::OK,
        Json(json!({"kind": "Status", "status": "Success"})),
    )
        .into_response())
}

/// `GET …/namespaces/NS/gameservers/NAME/metrics`: the server's resource use now.
pub async fn metrics(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, first) = ask(&state, &ns, &name, |uid| TunnelOp::Metrics { uid }).await?;
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
