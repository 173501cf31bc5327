//! Node joins: a nodelet trades the cluster's join token for a token of its own (role `node`,
//! named after its Node and tied to that Node's uid) at `POST /auth/v1/join`. A name that is
//! already a Node is 409 unless the request carries that node's current credential (which it
//! then trades for a new one). What a node token may do is decided in `crate::auth::node`.
//! Failed joins (a bad token) back off per source address (`join-from:IP` in the address
//! throttle), and successful ones are rate limited per address: 429 with Retry-After.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use catalyst_schemas::{lookup_kind, API_VERSION};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{bearer_token, Authenticator, Caller, Identity};
use crate::error::ApiError;
use crate::registry::meta_str;
use crate::registry::Scope;
use crate::state::AppState;

/// `POST /auth/v1/join`: open to anyone (the handler checks the join token itself).
pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/v1/join", post(join))
}

/// The body of `POST /auth/v1/join`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinRequest {
    /// The name the node registers under.
    pub node_name: String,
    /// Labels the Node gets when it is created (a node cannot relabel itself later).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

fn uid_of(obj: &serde_json::Value) -> Option<String> {
    meta_str(obj, "uid").map(str::to_owned)
}

/// `POST /auth/v1/join` with the join token: registers the Node (if new) and answers with a
/// node token `{"nodeName": …, "token": …}`. An admin token may also join a node. The answer
/// carries the [`Caller`] of a valid token as a response extension, for the audit log.
pub async fn join(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let source = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string());
    let mut caller = None;
    let mut response = match join_inner(&state, &source, &headers, &body, &mut caller).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some(c) = caller {
        response.extensions_mut().insert(c);
    }
    response
}

async fn join_inner(
    state: &AppState,
    source: &str,
    headers: &HeaderMap,
    body: &[u8],
    caller: &mut Option<Caller>,
) -> Result<Response, ApiError> {
    let address = format!("join-from:{source}");
    state
        .address_throttle
        .check(&address, "joins from this address")
        .await?;
    // a refusal is counted against the address once the checks are done
    let refusal = std::sync::OnceLock::<&'static str>::new();
    let refused = |why: &'static str| {
        let _ = refusal.set(why);
        ApiError::Unauthorized(format!("{why} join token"))
    };
    let token = bearer_token(headers);
    let identity = async {
        let token = token.ok_or_else(|| refused("missing"))?;
        // the join token may carry the CA pin in front (`K10<sha256>::<secret>`); only the
        // secret's hash is kept. Read from the store, so tokens made or revoked by `catalyst
        // token` count at once.
        state
            .auth
            .verify_fresh(crate::tls::join_token_secret(token))
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| refused("invalid, expired or revoked"))
    }
    .await;
    if let Some(why) = refusal.get() {
        state.address_throttle.failed(&address).await;
        tracing::info!(source, why, "join refused");
    }
    let identity = identity?;
    let token = token.unwrap_or_default();
    state.limits.check_join(source)?;
    *caller = match identity.role.as_str() {
        "join" => Some(Caller::Join),
        "admin" => Some(Caller::Admin(identity.name.clone())),
        "node" => Some(Caller::Node(identity.name.clone())),
        _ => None,
    };
    if !matches!(identity.role.as_str(), "join" | "admin" | "node") {
        return Err(ApiError::Forbidden(format!(
            "a {} token cannot join nodes; use the join token",
            identity.role
        )));
    }
    let req: JoinRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body: {e} (expected {{\"nodeName\": …}})")))?;
    let kind = lookup_kind("nodes").expect("nodes kind");
    if let Err(e) = catalyst_schemas::validation::dns_label(&req.node_name) {
        return Err(ApiError::BadRequest(format!(
            "nodeName {:?}: {e}",
            req.node_name
        )));
    }
    // a node credential rotates only itself
    if identity.role == "node"
        && (identity.name != req.node_name || !state.access.node_valid(&identity))
    {
        return Err(ApiError::Forbidden(format!(
            "node {} cannot join as {}",
            identity.name, req.node_name
        )));
    }
    let scope = Scope {
        kind,
        namespace: None,
    };
    let uid = match state.registry.get(scope, &req.node_name).await {
        Ok(existing) if identity.role == "node" => uid_of(&existing),
        // a Node an administrator registered ahead (to set its port range, say) and that no
        // node holds a credential for yet is claimed by the first join
        Ok(existing)
            if !state
                .auth
                .any_stored(|id| {
                    id.role == "node"
                        && id.name == req.node_name
                        && id.uid.as_deref() == meta_str(&existing, "uid")
                })
                .await
                .map_err(ApiError::from)? =>
        {
            uid_of(&existing)
        }
        Ok(_) => {
            return Err(ApiError::Conflict {
                message: format!(
                    "node {:?} has already joined: present its current credential to rejoin, or delete the Node first",
                    req.node_name
                ),
                causes: vec![catalyst_schemas::Cause {
                    field: "nodeName".into(),
                    message: "already a Node".into(),
                }],
            })
        }
        Err(ApiError::NotFound { .. }) if identity.role == "node" => {
            return Err(ApiError::Forbidden("the node's Node is gone".into()))
        }
        Err(ApiError::NotFound { .. }) => {
            let node = json!({
                "apiVersion": API_VERSION, "kind": "Node",
                "metadata": {"name": req.node_name, "labels": req.labels},
                "spec": {},
            });
            match state.registry.create(scope, node, false).await {
                Ok(w) => uid_of(&w.object),
                Err(ApiError::AlreadyExists { .. }) => {
                    return Err(ApiError::Conflict {
                        message: format!("node {:?} joined at the same time", req.node_name),
                        causes: vec![],
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let identity_new = Identity {
        role: "node".into(),
        name: req.node_name.clone(),
        uid,
        ..Identity::new("node", "")
    };
    let token_new = Authenticator::issue(state.registry.store(), &identity_new)
        .await
        .map_err(ApiError::from)?;
    if identity.role == "node" {
        // the old credential ends with the rotation
        let old = crate::auth::hash(token);
        if let Err(e) = state.auth.revoke_hash(&old).await {
            tracing::warn!(error = %e, "cannot revoke the rotated node credential");
        }
    }
    state.auth.remember(&token_new, identity_new);
    let token = token_new;
    tracing::info!(node = req.node_name, "node joined");
    Ok((
        StatusCode::CREATED,
        Json(json!({"nodeName": req.node_name, "token": token})),
    )
        .into_response())
}
