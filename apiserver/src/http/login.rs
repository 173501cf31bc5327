//! Sign-in and the self-service endpoints under `/auth/v1/`:
//! - open: `POST login` (user name, password, TOTP code) → an access JWT and a refresh token;
//!   `POST refresh`; `POST logout`. Failed logins are throttled per account and per source
//!   address (429 with Retry-After).
//! - signed in: `GET whoami`, `POST password` (one's own, with the current one), `POST totp`
//!   (enrol), `POST totp/confirm`, `DELETE totp`, `POST access-review` (may I …? for the panel
//!   and `catalystctl auth can-i`), and `POST keys/rotate` (administrators: a new JWT signing
//!   key); plus `POST …/users/NAME/password` to set someone's password (RBAC `create
//!   users/password`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use catalyst_schemas::rbac::Attributes;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{password, totp, Caller};
use crate::error::ApiError;
use crate::registry::Scope;
use crate::state::AppState;

/// The most a login body may hold.
const BODY_LIMIT: usize = 16 << 10;

/// The open routes (no token needed).
pub fn open_routes() -> Router<AppState> {
    Router::new()
        .route("/auth/v1/login", post(login))
        .route("/auth/v1/refresh", post(refresh))
        .route("/auth/v1/logout", post(logout))
}

/// The routes for signed-in callers (behind authentication).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/v1/whoami", get(whoami))
        .route("/auth/v1/password", post(own_password))
        .route("/auth/v1/totp", post(totp_enroll).delete(totp_disable))
        .route("/auth/v1/totp/confirm", post(totp_confirm))
        .route("/auth/v1/access-review", post(access_review))
        .route("/auth/v1/rules", get(rules_review))
        .route("/auth/v1/keys/rotate", post(rotate_keys))
        .route(
            "/apis/catalyst.dev/v1alpha1/users/{name}/password",
            post(set_password),
        )
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge(format!(
            "an auth request body has at most {BODY_LIMIT} bytes"
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))
}

/// `POST /auth/v1/login`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// The User's name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The current TOTP code, when the user has one.
    #[serde(default)]
    pub totp: Option<String>,
}

/// The client's address, when the server was started to record it.
fn source(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".into(), |a| a.0.ip().to_string())
}

async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: LoginRequest = parse(&body)?;
    let account = format!("login:{}", req.username);
    let address = format!("login-from:{}", source(&extensions));
    state
        .address_throttle
        .check(&address, "logins from this address")
        .await?;
    state
        .account_throttle
        .check(&account, "logins for this user")
        .await?;
    let store = state.registry.store();
    // a refusal is counted against the account and the address once the checks are done
    let refusal = std::sync::OnceLock::<&'static str>::new();
    let fail = |why: &'static str| {
        let _ = refusal.set(why);
        ApiError::Unauthorized("invalid user name, password or code".into())
    };
    let checked = async {
        let password_ok = password::verify(store, &req.username, &req.password).await?;
        if !password_ok {
            return Err(fail("password"));
        }
        if state.access.user_caller(&req.username).is_err() {
            // a User made an instant ago may not be in the mirror yet
            let users = &state.access.rbac.users;
            users.reread(&state.registry, &req.username).await;
            if state.access.user_caller(&req.username).is_err() {
                return Err(fail("user missing or disabled"));
            }
        }
        if totp::state(store, &req.username).await? == totp::State::On {
            match req.totp.as_deref() {
                None => {
                    return Err(ApiError::Unauthorized(
                        "this user signs in with a TOTP code: send \"totp\"".into(),
                    ))
                }
                Some(code) if totp::check(store, &req.username, code).await? => {}
                Some(_) => return Err(fail("totp")),
            }
        }
        Ok(())
    }
    .await;
    if let Some(why) = refusal.get() {
        state.account_throttle.failed(&account).await;
        state.address_throttle.failed(&address).await;
        tracing::info!(user = req.username, source = address, why, "login refused");
    }
    checked?;
    state.account_throttle.succeeded(&account).await;
    let session = state
        .sessions
        .open(&req.username)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    record_login(&state, &req.username).await;
    Ok((StatusCode::OK, Json(session)).into_response())
}

/// Notes the time of a login in the User's status (best effort).
async fn record_login(state: &AppState, user: &str) {
    let kind = catalyst_schemas::lookup_kind("users").expect("users kind");
    let patch = json!({"status": {"lastLoginTime": chrono::Utc::now()}});
    if let Err(e) = state
        .registry
        .merge_patch(
            Scope {
                kind,
                namespace: None,
            },
            user,
            patch,
            crate::registry::Part::Status,
            false,
        )
        .await
    {
        tracing::warn!(user, error = %e, "cannot record the login time");
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: RefreshRequest = parse(&body)?;
    let refused = || ApiError::Unauthorized("invalid, used or expired refresh token".into());
    let (user, session) = state
        .sessions
        .refresh(&req.refresh_token)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(refused)?;
    if let Err(e) = state.access.user_caller(&user) {
        let _ = state.sessions.close(&session.refresh_token).await;
        return Err(e);
    }
    Ok((StatusCode::OK, Json(session)).into_response())
}

async fn logout(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: RefreshRequest = parse(&body)?;
    state
        .sessions
        .close(&req.refresh_token)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn whoami(Extension(caller): Extension<Caller>) -> Response {
    let groups = match &caller {
        Caller::User { groups, .. } => groups.clone(),
        _ => vec![],
    };
    Json(json!({
        "kind": caller.kind(),
        "name": caller.name(),
        "user": caller.user(),
        "groups": groups,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OwnPassword {
    current_password: String,
    password: String,
}

fn signed_in_user(caller: &Caller) -> Result<&str, ApiError> {
    match caller {
        Caller::User { name, .. } => Ok(name),
        other => Err(ApiError::Forbidden(format!(
            "a {} credential has no password or second factor of its own; sign in as a user",
            other.kind()
        ))),
    }
}

fn weak(e: password::PasswordError) -> ApiError {
    match e {
        password::PasswordError::Weak(m) => ApiError::Invalid {
            kind: "users".into(),
            name: String::new(),
            source: catalyst_schemas::ValidationError {
                causes: vec![catalyst_schemas::Cause {
                    field: "password".into(),
                    message: m,
                }],
            },
        },
        other => ApiError::Internal(other.to_string()),
    }
}

async fn own_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let user = signed_in_user(&caller)?.to_owned();
    let req: OwnPassword = parse(&body)?;
    let key = format!("password:{user}");
    state
        .account_throttle
        .check(&key, "password changes")
        .await?;
    let store = state.registry.store();
    if !password::verify(store, &user, &req.current_password).await? {
        state.account_throttle.failed(&key).await;
        return Err(ApiError::Forbidden("the current password is wrong".into()));
    }
    password::set(store, &user, &req.password)
        .await
        .map_err(weak)?;
    // other sessions end with the old password
    let _ = state.sessions.close_all(&user).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetPassword {
    password: String,
}

async fn set_password(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: SetPassword = parse(&body)?;
    let kind = catalyst_schemas::lookup_kind("users").expect("users kind");
    state
        .registry
        .get(
            Scope {
                kind,
                namespace: None,
            },
            &name,
        )
        .await?;
    let store = state.registry.store();
    password::set(store, &name, &req.password)
        .await
        .map_err(weak)?;
    let _ = state.sessions.close_all(&name).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Code {
    code: String,
}

async fn totp_enroll(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let user = signed_in_user(&caller)?;
    let secret = totp::enroll(state.registry.store(), user)
        .await?
        .ok_or_else(|| ApiError::Conflict {
            message: "TOTP is already on: turn it off first (DELETE /auth/v1/totp with a code)"
                .into(),
            causes: vec![],
        })?;
    Ok(Json(json!({
        "secret": secret,
        "otpauthUrl": totp::otpauth_url(user, &secret),
        "confirm": "POST /auth/v1/totp/confirm {\"code\": \"123456\"}",
    }))
    .into_response())
}

async fn set_totp_status(state: &AppState, user: &str, on: bool) {
    let kind = catalyst_schemas::lookup_kind("users").expect("users kind");
    let _ = state
        .registry
        .merge_patch(
            Scope {
                kind,
                namespace: None,
            },
            user,
            json!({"status": {"totpEnabled": on}}),
            crate::registry::Part::Status,
            false,
        )
        .await;
}

async fn totp_confirm(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let user = signed_in_user(&caller)?;
    let req: Code = parse(&body)?;
    let key = format!("totp:{user}");
    state.account_throttle.check(&key, "TOTP codes").await?;
    if !totp::check(state.registry.store(), user, &req.code).await? {
        state.account_throttle.failed(&key).await;
        return Err(ApiError::Forbidden("wrong or expired code".into()));
    }
    set_totp_status(&state, user, true).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn totp_disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let user = signed_in_user(&caller)?;
    let req: Code = parse(&body)?;
    let key = format!("totp:{user}");
    state.account_throttle.check(&key, "TOTP codes").await?;
    if totp::state(state.registry.store(), user).await? == totp::State::On
        && !totp::check(state.registry.store(), user, &req.code).await?
    {
        state.account_throttle.failed(&key).await;
        return Err(ApiError::Forbidden("wrong or expired code".into()));
    }
    totp::disable(state.registry.store(), user).await?;
    set_totp_status(&state, user, false).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /auth/v1/access-review`: whether the caller may do something.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessReview {
    /// get, list, watch, create, update, patch, delete.
    pub verb: String,
    /// A plural, or `plural/subresource`.
    pub resource: String,
    /// The namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The object's name.
    #[serde(default)]
    pub name: Option<String>,
}

async fn access_review(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: AccessReview = parse(&body)?;
    let mut a = Attributes::new(&req.verb, &req.resource);
    a.namespace = req.namespace.filter(|n| !n.is_empty());
    a.name = req.name.filter(|n| !n.is_empty());
    let allowed = crate::auth::allows(&state, &caller, &a);
    Ok(Json(json!({
        "allowed": allowed,
        "caller": caller.key(),
        "verb": a.verb,
        "resource": req.resource,
        "namespace": a.namespace,
        "name": a.name,
    }))
    .into_response())
}

/// `GET /auth/v1/rules`: what the caller's grants allow, as rules, each with the namespace it
/// holds in (`null`: everywhere) and the names it is narrowed to: the panel's answer to "which
/// game servers may I see" (Kubernetes' SelfSubjectRulesReview). The administrator holds one
/// rule of wildcards. An API key's rules are its own grants; its owner's grants narrow them
/// further (the access review answers for both). The self-service rights every user has (their
/// own User and keys) are not listed.
async fn rules_review(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let grants: Vec<catalyst_schemas::rbac::Grant> = match &caller {
        Caller::Admin(_) => {
            return Json(json!({"caller": caller.key(), "rules": [{
                "namespace": null, "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"],
                "resourceNames": [],
            }]}))
            .into_response()
        }
        Caller::User { name, groups } => state
            .access
            .rbac
            .bound_grants(catalyst_schemas::access::SubjectKind::User, name, groups)
            .to_vec(),
        Caller::ApiKey { name, .. } => state
            .access
            .rbac
            .keys
            .get(name)
            .map(|k| state.access.rbac.key_own_grants(name, &k.spec))
            .unwrap_or_default(),
        Caller::Node(_) | Caller::Join => vec![],
    };
    let mut rules = Vec::new();
    for g in &grants {
        for r in &g.rules {
            // both name lists narrow: the binding's and the rule's
            let names: Vec<&String> =
                match (g.resource_names.is_empty(), r.resource_names.is_empty()) {
                    (true, _) => r.resource_names.iter().collect(),
                    (false, true) => g.resource_names.iter().collect(),
                    (false, false) => g
                        .resource_names
                        .iter()
                        .filter(|n| r.resource_names.contains(n))
                        .collect(),
                };
            if !g.resource_names.is_empty() && !r.resource_names.is_empty() && names.is_empty() {
                continue;
            }
            rules.push(json!({
                "namespace": g.namespace,
                "apiGroups": r.api_groups,
                "resources": r.resources,
                "verbs": r.verbs,
                "resourceNames": names,
            }));
        }
    }
    Json(json!({"caller": caller.key(), "rules": rules})).into_response()
}

async fn rotate_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    if !state.access.may(&caller, &Attributes::new("*", "*")) {
        return Err(ApiError::Forbidden(
            "only administrators rotate the signing keys".into(),
        ));
    }
    let kid = state
        .sessions
        .rotate()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!({"kid": kid})).into_response())
}
