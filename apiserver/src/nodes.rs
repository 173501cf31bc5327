//! Node credentials: a nodelet trades the cluster's join token for a token of its own (role
//! `node`, named after its Node), and what such a token may do.

use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalyst_schemas::{lookup_kind, API_VERSION};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Authenticator, Identity};
use crate::error::ApiError;
use crate::http::AppState;
use crate::registry::Scope;

/// The body of `POST /auth/v1/join`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The name the node registers under.
    pub node_name: String,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
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
    let token = bearer(headers).ok_or_else(|| {
        ApiError::Unauthorized("missing bearer token: send the join token".into())
    })?;
    let identity = state
        .auth
        .verify(token)
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

/// What a node token may do: read and write its own Node (and its status), read GameServers
/// and Templates, write GameServer status, create Events, and use its tunnel. Nothing else.
pub fn node_may(node: &str, method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/apis/catalyst.dev/v1alpha1") else {
        return false;
    };
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        return *method == Method::GET;
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let segs: &[&str] = match segs.as_slice() {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        s => s,
    };
    let read = *method == Method::GET;
    let write = matches!(*method, Method::PUT | Method::PATCH);
    match segs {
        ["nodes", name] => *name == node && (read || write),
        ["nodes", name, "status"] => *name == node && (read || write),
        ["nodes", name, "tunnel"] => *name == node && read,
        ["gameservers"] | ["gameservers", _] | ["templates"] | ["templates", _] => read,
        ["gameservers", _, "status"] => read || write,
        ["events"] => *method == Method::POST,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_token_reaches_only_its_own_node_and_server_status() {
        let p = "/apis/catalyst.dev/v1alpha1";
        let ok = |m: Method, path: &str| node_may("node-a", &m, &format!("{p}{path}"));
        assert!(ok(Method::GET, "/nodes/node-a"));
        assert!(ok(Method::PATCH, "/nodes/node-a/status"));
        assert!(!ok(Method::PATCH, "/nodes/node-b/status"));
        assert!(!ok(Method::DELETE, "/nodes/node-a"));
        assert!(!ok(Method::POST, "/nodes"));
        assert!(ok(Method::GET, "/gameservers"));
        assert!(ok(Method::GET, "/namespaces/default/gameservers/x"));
        assert!(ok(
            Method::PATCH,
            "/namespaces/default/gameservers/x/status"
        ));
        assert!(!ok(Method::PATCH, "/namespaces/default/gameservers/x"));
        assert!(!ok(Method::DELETE, "/namespaces/default/gameservers/x"));
        assert!(!ok(Method::POST, "/namespaces/default/gameservers"));
        assert!(ok(Method::POST, "/namespaces/default/events"));
        assert!(!ok(Method::GET, "/namespaces/default/backups"));
        assert!(!ok(Method::GET, "/healthz"));
    }
}
