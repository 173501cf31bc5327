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
pub mod escalation;
pub mod join_tokens;
pub mod jwt;
pub mod limits;
pub mod mirror;
pub mod node;
pub mod password;
pub mod rbac;
pub mod records;
pub mod throttle;
pub mod tokens;
pub mod totp;

pub use attributes::Attributes;
pub use mirror::Mirror;
pub use rbac::Rbac;
pub use tokens::{bearer_token, hash, new_token, request_token, token_id, Authenticator, Identity};

/// Who a request comes from, once its credential checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The bootstrap administrator (`admin.yaml`): every right, whatever the RBAC objects say,
    /// so a cluster cannot lock itself out.
    Admin(String),
    /// A User, logged in (JWT).
    User {
        /// The User's name.
        name: String,
        /// Its groups.
        groups: Vec<String>,
    },
    /// An ApiKey, acting for its owner.
    ApiKey {
        /// The key's name.
        name: String,
        /// The User it belongs to.
        owner: String,
    },
    /// A nodelet, by its Node's name.
    Node(String),
    /// The join token: it only buys node credentials at `POST /auth/v1/join`.
    Join,
}

impl Caller {
    /// A stable key for per-identity limits: `admin:NAME`, `user:NAME`, `apikey:NAME`,
    /// `node:NAME`, `join`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind(), self.name())
    }

    /// `admin`, `user`, `apikey`, `node` or `join`.
    pub fn kind(&self) -> &'static str {
        match self {
            Caller::Admin(_) => "admin",
            Caller::User { .. } => "user",
            Caller::ApiKey { .. } => "apikey",
            Caller::Node(_) => "node",
            Caller::Join => "join",
        }
    }

    /// The name (the key's name for a key; `join` for the join token).
    pub fn name(&self) -> &str {
        match self {
            Caller::Admin(n) | Caller::Node(n) => n,
            Caller::User { name, .. } | Caller::ApiKey { name, .. } => name,
            Caller::Join => "join",
        }
    }

    /// The user a request acts for: the user, a key's owner, the administrator.
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::Admin(n) => Some(n),
            Caller::User { name, .. } => Some(name),
            Caller::ApiKey { owner, .. } => Some(owner),
            Caller::Node(_) | Caller::Join => None,
        }
    }
}

/// The mirrors authorization reads.
#[derive(Debug)]
pub struct Access {
    /// Node name → uid.
    pub nodes: Arc<Mirror<String>>,
    /// GameServer `ns/name` → where it is bound and its template, for the node authorizer.
    pub placements: Arc<Mirror<node::Placement>>,
    /// Users, keys, roles and bindings.
    pub rbac: Rbac,
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
        let r = registry.clone();
        let cache = |p: &str| caches[p].clone();
        let (nodes, placements, users, keys, roles, bindings, cluster_bindings) = tokio::join!(
            Mirror::start(r.clone(), cache("nodes"), kind("nodes"), node_uid),
            Mirror::start(
                r.clone(),
                cache("gameservers"),
                kind("gameservers"),
                node::placement
            ),
            Mirror::start(r.clone(), cache("users"), kind("users"), rbac::user_entry),
            Mirror::start(
                r.clone(),
                cache("apikeys"),
                kind("apikeys"),
                rbac::key_entry
            ),
            Mirror::start(r.clone(), cache("roles"), kind("roles"), rbac::role_entry),
            Mirror::start(
                r.clone(),
                cache("rolebindings"),
                kind("rolebindings"),
                rbac::binding_entry
            ),
            Mirror::start(
                r.clone(),
                cache("clusterrolebindings"),
                kind("clusterrolebindings"),
                rbac::binding_entry
            ),
        );
        Self {
            nodes,
            placements,
            rbac: Rbac::new(users, keys, roles, bindings, cluster_bindings),
        }
    }

    /// Whether a node credential still stands: its Node exists, and is the one it joined as.
    pub fn node_valid(&self, identity: &Identity) -> bool {
        match (self.nodes.get(&identity.name), &identity.uid) {
            (Some(uid), Some(want)) => *uid == *want,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// The caller a user may act as now, or why not (gone, disabled).
    pub fn user_caller(&self, name: &str) -> Result<Caller, ApiError> {
        match self.rbac.users.get(name) {
            Some(u) if !u.spec.disabled => Ok(Caller::User {
                name: name.to_owned(),
                groups: u.spec.groups.clone(),
            }),
            Some(_) => Err(ApiError::Unauthorized(format!("user {name} is disabled"))),
            None => Err(ApiError::Unauthorized(format!(
                "user {name} does not exist"
            ))),
        }
    }

    /// The caller of an API key credential, or why not (key gone or replaced, expired, owner
    /// gone or disabled).
    pub fn key_caller(&self, identity: &Identity) -> Result<Caller, ApiError> {
        let key = self
            .rbac
            .keys
            .get(&identity.name)
            .filter(|k| identity.uid.as_deref() == Some(k.uid.as_str()))
            .ok_or_else(|| {
                ApiError::Unauthorized(format!("API key {} was deleted", identity.name))
            })?;
        if key.spec.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
            return Err(ApiError::Unauthorized(format!(
                "API key {} has expired",
                identity.name
            )));
        }
        self.user_caller(&key.spec.owner)?;
        Ok(Caller::ApiKey {
            name: identity.name.clone(),
            owner: key.spec.owner.clone(),
        })
    }

    /// Whether `caller` still stands (for long-lived requests: watches, streams, tunnels).
    pub fn still_valid(&self, caller: &Caller) -> bool {
        match caller {
            Caller::Admin(_) | Caller::Join => true,
            Caller::Node(n) => self.nodes.get(n).is_some(),
            Caller::User { name, .. } => self.user_caller(name).is_ok(),
            Caller::ApiKey { name, owner } => {
                self.rbac.keys.get(name).is_some_and(|k| {
                    k.spec.owner == *owner
                        && k.spec.expires_at.is_none_or(|t| t > chrono::Utc::now())
                }) && self.user_caller(owner).is_ok()
            }
        }
    }

    /// Resolves once `caller` no longer stands: deleted or disabled user, deleted or expired
    /// key, deleted Node. Checked on every change of the access objects and every second.
    pub async fn revoked(self: Arc<Self>, caller: Caller) {
        let mut users = self.rbac.users.changes();
        let mut keys = self.rbac.keys.changes();
        let mut nodes = self.nodes.changes();
        loop {
            if !self.still_valid(&caller) {
                return;
            }
            tokio::select! {
                _ = users.changed() => {}
                _ = keys.changed() => {}
                _ = nodes.changed() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }

    /// Whether `caller` may do `a` by RBAC (nodes and the join token are decided elsewhere).
    pub fn may(&self, caller: &Caller, a: &Attributes) -> bool {
        match caller {
            Caller::Admin(_) => true,
            Caller::User { name, groups } => self.rbac.user_may(name, groups, a),
            Caller::ApiKey { name, owner } => self.rbac.key_may(name, owner, a),
            Caller::Node(_) | Caller::Join => false,
        }
    }
}

/// The caller of a token: 401 without one, with an unknown one, or with a credential whose
/// subject is gone (Node deleted, user disabled, key deleted or expired).
///
/// # Errors
/// [`ApiError::Unauthorized`].
pub async fn resolve(state: &AppState, token: Option<&str>) -> Result<Caller, ApiError> {
    let token = token.ok_or_else(|| {
        ApiError::Unauthorized("missing bearer token: send Authorization: Bearer <token>".into())
    })?;
    if jwt::Sessions::looks_like_jwt(token) {
        let claims = state
            .sessions
            .verify(token)
            .await
            .ok_or_else(|| ApiError::Unauthorized("invalid or expired access token".into()))?;
        return match state.access.user_caller(&claims.sub) {
            Ok(c) => Ok(c),
            Err(_) => {
                // the watch may not have brought a just-written User yet
                let users = &state.access.rbac.users;
                users.reread(&state.registry, &claims.sub).await;
                state.access.user_caller(&claims.sub)
            }
        };
    }
    let identity = state
        .auth
        .verify(token)
        .await
        .ok_or_else(|| ApiError::Unauthorized("invalid bearer token".into()))?;
    match identity.role.as_str() {
        "admin" => Ok(Caller::Admin(identity.name)),
        "join" => Ok(Caller::Join),
        "apikey" => match state.access.key_caller(&identity) {
            Ok(c) => Ok(c),
            Err(_) => {
                // a key used the instant it was made: read it (and its owner) from the store
                let rbac = &state.access.rbac;
                rbac.keys.reread(&state.registry, &identity.name).await;
                if let Some(k) = rbac.keys.get(&identity.name) {
                    rbac.users.reread(&state.registry, &k.spec.owner).await;
                }
                state.access.key_caller(&identity)
            }
        },
        "node" => {
            if !state.access.node_valid(&identity) {
                // a Node joined an instant ago may not be in the mirror yet
                state
                    .access
                    .nodes
                    .reread(&state.registry, &identity.name)
                    .await;
            }
            if state.access.node_valid(&identity) {
                Ok(Caller::Node(identity.name))
            } else {
                Err(ApiError::Unauthorized(format!(
                    "the credential of node {} was revoked: its Node is gone",
                    identity.name
                )))
            }
        }
        other => Err(ApiError::Unauthorized(format!(
            "a token of unknown role {other:?}"
        ))),
    }
}

fn deny(caller: &Caller, what: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "{} {} may not {what}",
        caller.kind(),
        caller.name()
    ))
}

fn describe(a: &Attributes) -> String {
    let res = match &a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.clone(),
    };
    let mut out = format!("{} {res}", a.verb);
    if let Some(n) = &a.name {
        out.push_str(&format!(" {n:?}"));
    }
    if let Some(ns) = &a.namespace {
        out.push_str(&format!(" in namespace {ns}"));
    }
    out
}

/// Whether `caller` may do `a` as a request without a query: RBAC, or what every user may do for
/// themselves (their own User and keys). The access review's answer, and the `create` check of
/// an apply that creates.
pub fn allows(state: &AppState, caller: &Caller, a: &Attributes) -> bool {
    match caller {
        Caller::Admin(_) => true,
        Caller::Node(_) | Caller::Join => false,
        _ => state.access.may(caller, a) || self_service(state, caller, a, None),
    }
}

/// What users and keys may do without a binding: read their own User, and manage their own
/// API keys (a key's rights are checked when it is written: never more than its owner's).
fn self_service(state: &AppState, caller: &Caller, a: &Attributes, query: Option<&str>) -> bool {
    let Some(me) = caller.user() else {
        return false;
    };
    match (
        a.resource.as_str(),
        a.subresource.as_deref(),
        a.verb.as_str(),
    ) {
        ("users", None, "get") => a.name.as_deref() == Some(me),
        ("apikeys", None, "create") => true,
        ("apikeys", None, "get" | "delete") => a
            .name
            .as_deref()
            .and_then(|n| state.access.rbac.keys.get(n))
            .is_some_and(|k| k.spec.owner == me),
        ("apikeys", None, "list" | "watch") => query
            .and_then(|q| node::query_param(q, "fieldSelector"))
            .and_then(|s| crate::selector::FieldSelector::parse(&s).ok())
            .is_some_and(|s| s.requires_equal("spec.owner", me)),
        _ => false,
    }
}

/// A list or watch pinned to one name (`fieldSelector=metadata.name=X`) is authorized as that
/// verb on that name, as Kubernetes does: a grant narrowed to `resourceNames` (a subuser's
/// binding to one server) then lets its holder follow that one object live. The verb stays
/// `list`/`watch`, so a role must grant them (the subuser roles do) — `get` alone never
/// reads an object's history through a watch from an old revision.
fn one_object_read(state: &AppState, caller: &Caller, a: &Attributes, query: Option<&str>) -> bool {
    if !matches!(a.verb.as_str(), "list" | "watch") || a.subresource.is_some() || a.name.is_some() {
        return false;
    }
    let Some(selector) = query
        .and_then(|q| node::query_param(q, "fieldSelector"))
        .and_then(|s| crate::selector::FieldSelector::parse(&s).ok())
    else {
        return false;
    };
    let Some(name) = selector.pinned_name() else {
        return false;
    };
    let mut pinned = a.clone();
    pinned.name = Some(name.to_owned());
    state.access.may(caller, &pinned)
}

/// Paths outside the resource API any signed-in user or key may use: discovery, OpenAPI, and
/// their own session, password, second factor and access questions.
fn open_to_users(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET => {
            path == "/apis"
                || path == attributes::API
                || path == "/openapi/v3"
                || path == "/auth/v1/whoami"
                || path == "/auth/v1/rules"
        }
        _ => matches!(
            path,
            "/auth/v1/password"
                | "/auth/v1/totp"
                | "/auth/v1/totp/confirm"
                | "/auth/v1/access-review"
                | "/auth/v1/keys/rotate"
                | "/auth/v1/tickets"
                | "/convert/v1/egg"
        ),
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
    let query = req.uri().query().map(str::to_owned);
    let attrs = attributes::of(req.method(), req.uri().path(), query.as_deref());
    match (caller, attrs) {
        (Caller::Admin(_), _) => Ok(req),
        (Caller::Join, _) => Err(ApiError::Forbidden(
            "the join token only joins nodes (POST /auth/v1/join)".into(),
        )),
        (Caller::Node(name), Some(a)) => node::authorize(state, name, &a, req).await,
        // discovery and the OpenAPI document describe the API to anyone who may use it
        (Caller::Node(_), None) if *req.method() == Method::GET && !is_metrics(&req) => Ok(req),
        // a node asks whether an SFTP session of one of its servers may open or go on
        (Caller::Node(_), None)
            if *req.method() == Method::POST && crate::http::sftp::node_path(req.uri().path()) =>
        {
            Ok(req)
        }
        (Caller::Node(name), None) => Err(ApiError::Forbidden(format!(
            "node {name} may not {} {}",
            req.method(),
            req.uri().path()
        ))),
        (_, Some(a)) => {
            if state.access.may(caller, &a)
                || self_service(state, caller, &a, query.as_deref())
                || one_object_read(state, caller, &a, query.as_deref())
            {
                Ok(req)
            } else {
                Err(deny(caller, &describe(&a)))
            }
        }
        (_, None) => {
            let path = req.uri().path();
            let metrics = Attributes::new("get", "metrics");
            let audit = Attributes::new("list", "auditrecords");
            let ok = open_to_users(req.method(), path)
                || (path == "/metrics" && state.access.may(caller, &metrics))
                || (path == "/auth/v1/audit" && state.access.may(caller, &audit));
            if ok {
                Ok(req)
            } else {
                Err(deny(caller, &format!("{} {path}", req.method())))
            }
        }
    }
}

fn is_metrics(req: &Request) -> bool {
    req.uri().path() == "/metrics"
}

/// Ends a streaming answer (a watch, a followed log) once its caller no longer stands: a
/// deleted or disabled user, a deleted or expired key, a deleted Node.
fn cut_when_revoked(response: Response, access: Arc<Access>, caller: Caller) -> Response {
    use futures::StreamExt;
    let (parts, body) = response.into_parts();
    let stream = body
        .into_data_stream()
        .take_until(Box::pin(access.revoked(caller)));
    Response::from_parts(parts, axum::body::Body::from_stream(stream))
}

/// Counts a request against its caller's rate: an API key's `spec.requestsPerMinute` (else
/// the server's default), a user's generous limit; administrators and nodes are not limited.
fn rate_limit(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::ApiKey { name, .. } => {
            let rate = state
                .access
                .rbac
                .keys
                .get(name)
                .and_then(|k| k.spec.requests_per_minute);
            state.limits.check_key(name, rate)
        }
        Caller::User { name, .. } => state.limits.check_user(name),
        Caller::Admin(_) | Caller::Node(_) | Caller::Join => Ok(()),
    }
}

/// Middleware: authenticates the request, applies its caller's rate limit, authorizes it,
/// and passes the [`Caller`] on as a request extension; else answers 401, 429 or 403. The response carries the caller too (as a
/// response extension), for the layers outside this one (audit).
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = request_token(req.headers(), req.uri().query());
    let ticket = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("ticket="))
            .map(str::to_owned)
    });
    let resolved = match (&token, ticket) {
        // a console ticket (browsers cannot send headers on a WebSocket)
        (None, Some(t)) => crate::http::console::redeem(&state, &t, req.uri().path()).await,
        _ => resolve(&state, token.as_deref()).await,
    };
    let caller = match resolved {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = rate_limit(&state, &caller) {
        tracing::info!(caller = caller.key(), error = %e, "request rate limited");
        let mut response = e.into_response();
        response.extensions_mut().insert(caller);
        return response;
    }
    let streams = *req.method() == Method::GET
        && req
            .uri()
            .query()
            .is_some_and(|q| attributes::is_watch(Some(q)) || q.contains("follow=true"));
    let mut response = match authorize(&state, &caller, req).await {
        Ok(mut req) => {
            req.extensions_mut().insert(caller.clone());
            let response = escalation::CALLER
                .scope(caller.clone(), next.run(req))
                .await;
            if streams {
                cut_when_revoked(response, state.access.clone(), caller.clone())
            } else {
                response
            }
        }
        Err(e) => {
            tracing::info!(caller = caller.key(), error = %e, "request denied");
            e.into_response()
        }
    };
    response.extensions_mut().insert(caller);
    response
}
