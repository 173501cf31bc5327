//! Who is calling and what they may do. A request's bearer token becomes a [`Caller`]
//! ([`tokens`]); its method and path become RBAC [`attributes`]; the [`authenticate`]
//! middleware in front of the API decides, and hands the caller to the handlers as a request
//! extension. Node credentials are confined by [`node`]; mirrors of the access objects live in
//! [`mirror`] so no decision reads the store.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use catalyst_schemas::lookup_kind;
use serde_json::Value;

use crate::error::ApiError;
use crate::registry::Registry;
use crate::state::AppState;
use crate::watch::WatchCache;

pub mod attributes;
pub mod mirror;
pub mod node;
pub mod tokens;

pub use attributes::Attributes;
pub use mirror::Mirror;
pub use tokens::{bearer_token, hash, new_token, request_token, Authenticator, Identity};

/// Who a request comes from, once its credential checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The bootstrap administrator (`admin.yaml`): every right, whatever the RBAC objects say,
    /// so a cluster cannot lock itself out.
    Admin(String),
    /// A nodelet, by its Node's name.
    Node(String),
    /// The join token: it only buys node credentials at `POST /auth/v1/join`.
    Join,
}

impl Caller {
    /// A stable key for per-identity limits: `admin:NAME`, `node:NAME`, `join`.
    pub fn key(&self) -> String {
        match self {
            Caller::Admin(n) => format!("admin:{n}"),
            Caller::Node(n) => format!("node:{n}"),
            Caller::Join => "join".into(),
        }
    }
}

/// The mirrors authorization reads.
#[derive(Debug)]
pub struct Access {
    /// Node name → uid.
    pub nodes: Arc<Mirror<String>>,
}

fn node_uid(obj: &Value) -> Option<String> {
    catalyst_schemas::object::uid_of(obj).map(str::to_owned)
}

impl Access {
    /// Starts the mirrors over the watch caches (keyed by plural).
    pub async fn start(
        registry: &Registry,
        caches: &std::collections::HashMap<&'static str, Arc<WatchCache>>,
    ) -> Self {
        let kind = |p: &str| lookup_kind(p).expect("access kind");
        Self {
            nodes: Mirror::start(
                registry.clone(),
                caches["nodes"].clone(),
                kind("nodes"),
                node_uid,
            )
            .await,
        }
    }

    /// Whether a node credential still stands: its Node exists, and is the one it joined as.
    pub fn node_valid(&self, identity: &Identity) -> bool {
        match (self.nodes.get(&identity.name), &identity.uid) {
            (Some(uid), Some(want)) => &uid == want,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// The caller of a token: 401 without one, with an unknown one, or with a node credential
/// whose Node is gone.
///
/// # Errors
/// [`ApiError::Unauthorized`].
pub async fn resolve(state: &AppState, token: Option<&str>) -> Result<Caller, ApiError> {
    let token = token.ok_or_else(|| {
        ApiError::Unauthorized("missing bearer token: send Authorization: Bearer <token>".into())
    })?;
    let identity = state
        .auth
        .verify(token)
        .await
        .ok_or_else(|| ApiError::Unauthorized("invalid bearer token".into()))?;
    match identity.role.as_str() {
        "admin" => Ok(Caller::Admin(identity.name)),
        "join" => Ok(Caller::Join),
        "node" if state.access.node_valid(&identity) => Ok(Caller::Node(identity.name)),
        "node" => Err(ApiError::Unauthorized(format!(
            "the credential of node {} was revoked: its Node is gone",
            identity.name
        ))),
        other => Err(ApiError::Unauthorized(format!(
            "a token of unknown role {other:?}"
        ))),
    }
}

/// Decides `req` for `caller`; returns it (a node's status write may have been read and
/// rebuilt) or why not.
///
/// # Errors
/// 403 when the caller may not.
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    req: Request,
) -> Result<Request, ApiError> {
    let attrs = attributes::of(req.method(), req.uri().path(), req.uri().query());
    match (caller, attrs) {
        (Caller::Admin(_), _) => Ok(req),
        (Caller::Join, _) => Err(ApiError::Forbidden(
            "the join token only joins nodes (POST /auth/v1/join)".into(),
        )),
        (Caller::Node(name), Some(a)) => node::authorize(state, name, &a, req).await,
        // discovery and the OpenAPI document describe the API to anyone who may use it
        (Caller::Node(_), None) if *req.method() == Method::GET && !is_metrics(&req) => Ok(req),
        (Caller::Node(name), None) => Err(ApiError::Forbidden(format!(
            "node {name} may not {} {}",
            req.method(),
            req.uri().path()
        ))),
    }
}

fn is_metrics(req: &Request) -> bool {
    req.uri().path() == "/metrics"
}

/// Middleware: authenticates the request, authorizes it, and passes the [`Caller`] on as a
/// request extension; else answers 401 or 403. The response carries the caller too (as a
/// response extension), for the layers outside this one (audit).
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = request_token(req.headers(), req.uri().query());
    let caller = match resolve(&state, token.as_deref()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let mut response = match authorize(&state, &caller, req).await {
        Ok(mut req) => {
            req.extensions_mut().insert(caller.clone());
            next.run(req).await
        }
        Err(e) => {
            tracing::info!(caller = caller.key(), error = %e, "request denied");
            e.into_response()
        }
    };
    response.extensions_mut().insert(caller);
    response
}
