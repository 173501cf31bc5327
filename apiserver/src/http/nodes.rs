//! Node joins: a nodelet trades the cluster's join token for a token of its own (role `node`,
//! named after its Node) at `POST /auth/v1/join`. What such a token may do is decided in
//! `crate::auth::node_may`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use catalyst_schemas::{lookup_kind, API_VERSION};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{bearer_token, Authenticator, Identity};
use crate::error::ApiError;
use crate::registry::Scope;
use crate::state::AppState;

/// `POST /auth/v1/join`: open to anyone (the handler checks the join token itself).
pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/v1/join", post(join))
}

/// The body of `POST /auth/v1/join`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The name the node registers under.
    pub node_name: String,
}

/// `POST /auth/v1/join` with the join token: registers the Node (if new) and answers with a
/// node token `{"nodeName": …, "token": …}`. An admin token may also join a node.
pub async fn join(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match join_inner(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn join_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let token = bearer_token(headers).ok_or_else(|| {
        ApiError::Unauthorized("missing bearer token: send the join token".into())
    })?;
    // the join token may carry the CA pin in front (`K10<sha256>::<secret>`); only the
    // secret's hash is kept
    let identity = state
        .auth
        .verify(crate::tls::join_token_secret(token))
        .await
        .ok_or_else(|| ApiError::Unauthorized("invalid join token".into()))?;
    if identity.role != "join" && identity.role != "admin" {
        return Err(ApiError::Forbidden(format!(
            "a {} token cannot join nodes; use the join token",
            identity.role
        )));
    }
    let req: JoinRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body: {e} (expected {{\"nodeName\": …}})")))?;
    let kind = lookup_kind("nodes").expect("nodes kind");
    let node = json!({
        "apiVersion": API_VERSION, "kind": "Node",
        "metadata": {"name": req.node_name},
        "spec": {},
    });
    match state
        .registry
        .create(
            Scope {
                kind,
                namespace: None,
            },
            node,
            false,
        )
        .await
    {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    let identity = Identity {
        role: "node".into(),
        name: req.node_name.clone(),
    };
    let token = Authenticator::issue(state.registry.store(), &identity)
        .await
        .map_err(ApiError::from)?;
    state.auth.remember(&token, identity);
    tracing::info!(node = req.node_name, "node joined");
    Ok((
        StatusCode::CREATED,
        Json(json!({"nodeName": req.node_name, "token": token})),
    )
        .into_response())
}
