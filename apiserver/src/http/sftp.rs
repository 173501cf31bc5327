//! What a node asks before and during an SFTP session: `POST /auth/v1/sftp/login` (do these
//! credentials open this server's files?) and `POST /auth/v1/sftp/check` (does that still hold?).
//! Only nodes call them, and only about GameServers bound to themselves; the nodelet asks again
//! every few seconds and closes a session the answer no longer allows (a revoked binding, a
//! disabled user, a deleted key, a suspended or deleted server).
//!
//! Credentials: the user's password (refused for users with a TOTP second factor: SFTP cannot
//! ask for the code, so they use a key), one of the user's API keys given as the password, or
//! an SSH public key listed in the User's `spec.sshKeys` (the nodelet has checked the client
//! holds its private half). Failures count against the same per-account and per-address
//! throttles as `POST /auth/v1/login`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use catalyst_schemas::access::ssh_key_id;
use catalyst_schemas::lookup_kind;
use catalyst_schemas::rbac::Attributes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{password, totp, Caller};
use crate::error::ApiError;
use crate::registry::{meta_str, Scope};
use crate::state::AppState;

/// The largest body these routes take.
const BODY_LIMIT: usize = 64 * 1024;

/// The SFTP routes (behind authentication; nodes only).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/v1/sftp/login", post(login))
        .route("/auth/v1/sftp/check", post(check))
}

/// Whether `path` is one of the SFTP routes a node may call.
pub fn node_path(path: &str) -> bool {
    matches!(path, "/auth/v1/sftp/login" | "/auth/v1/sftp/check")
}

/// `POST /auth/v1/sftp/login`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SftpLogin {
    /// The User's name.
    pub username: String,
    /// The GameServer's namespace.
    pub namespace: String,
    /// The GameServer's name.
    pub server: String,
    /// A password, or an API key's secret.
    #[serde(default)]
    pub password: Option<String>,
    /// An OpenSSH public key line the client proved it holds.
    #[serde(default)]
    pub public_key: Option<String>,
    /// The SFTP client's address (for the per-address throttle).
    #[serde(default)]
    pub remote_address: Option<String>,
}

/// What a granted session may do, and what to check it against later.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SftpGrant {
    /// The User.
    pub user: String,
    /// The GameServer's namespace.
    pub namespace: String,
    /// The GameServer's name.
    pub server: String,
    /// The GameServer's uid (a server deleted and made again under the same name is another).
    pub uid: String,
    /// The user may read but not change files.
    pub read_only: bool,
    /// The API key the session was opened with, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The answer of `POST /auth/v1/sftp/check`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SftpCheck {
    /// The session may go on.
    pub allowed: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge(format!(
            "an SFTP request body has at most {BODY_LIMIT} bytes"
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))
}

fn node_of(caller: &Caller) -> Result<&str, ApiError> {
    match caller {
        Caller::Node(n) => Ok(n),
        other => Err(ApiError::Forbidden(format!(
            "{} {} is not a node: only nodes ask about SFTP sessions",
            other.kind(),
            other.name()
        ))),
    }
}

/// The GameServer `ns/name` when it is bound to `node`: its uid and whether it is suspended.
async fn server_on(
    state: &AppState,
    node: &str,
    ns: &str,
    name: &str,
) -> Result<(String, bool), ApiError> {
    let kind = lookup_kind("gameservers").expect("gameservers kind");
    let scope = Scope {
        kind,
        namespace: Some(ns),
    };
    let obj = state.registry.get(scope, name).await?;
    if !crate::auth::node::bound_to(&obj, node) {
        return Err(ApiError::Forbidden(format!(
            "gameserver {ns}/{name} is not on node {node}"
        )));
    }
    let suspended = obj.pointer("/spec/suspended").and_then(Value::as_bool) == Some(true);
    Ok((
        meta_str(&obj, "uid").unwrap_or_default().to_owned(),
        suspended,
    ))
}

/// Whether `caller` may use SFTP on `ns/name`, and whether only to read.
fn sftp_rights(state: &AppState, caller: &Caller, ns: &str, name: &str) -> (bool, bool) {
    let on = |verb: &str, res: &str| Attributes::new(verb, res).in_namespace(ns).named(name);
    let may = state.access.may(caller, &on("create", "gameservers/sftp"));
    let writes = state.access.may(caller, &on("update", "gameservers/files"));
    (may, !writes)
}

async fn login(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let node = node_of(&caller)?.to_owned();
    let req: SftpLogin = parse(&body)?;
    let account = format!("login:{}", req.username);
    let address = format!(
        "sftp-from:{}",
        req.remote_address.as_deref().unwrap_or("unknown")
    );
    state
        .address_throttle
        .check(&address, "SFTP logins from this address")
        .await?;
    state
        .account_throttle
        .check(&account, "logins for this user")
        .await?;
    // a refusal is counted against the account and the address once the checks are done
    let refusal = std::sync::OnceLock::<&'static str>::new();
    let refused = |why: &'static str| {
        let _ = refusal.set(why);
        ApiError::Unauthorized("invalid user name, server or credentials".into())
    };
    let checked = async {
        let (uid, suspended) = server_on(&state, &node, &req.namespace, &req.server)
            .await
            .map_err(|_| refused("no such server on this node"))?;
        // the user (or the key acting for them)
        let mut key = None;
        let who = match (&req.password, &req.public_key) {
            (Some(secret), None) => {
                let as_key = state
                    .auth
                    .verify(secret)
                    .await
                    .filter(|id| id.role == "apikey");
                match as_key {
                    Some(identity) => match state.access.key_caller(&identity) {
                        Ok(c @ Caller::ApiKey { .. })
                            if c.user() == Some(req.username.as_str()) =>
                        {
                            key = Some(identity.name.clone());
                            c
                        }
                        _ => return Err(refused("API key not of this user, or not valid")),
                    },
                    None => {
                        let store = state.registry.store();
                        if !password::verify(store, &req.username, secret).await? {
                            return Err(refused("password"));
                        }
                        if totp::state(store, &req.username).await? == totp::State::On {
                            return Err(ApiError::Unauthorized(
                            "this user has a second factor: use an SSH key or an API key for SFTP"
                                .into(),
                        ));
                        }
                        state
                            .access
                            .user_caller(&req.username)
                            .map_err(|_| refused("user missing or disabled"))?
                    }
                }
            }
            (None, Some(public_key)) => {
                let offered = ssh_key_id(public_key).ok_or_else(|| refused("malformed key"))?;
                let listed = state.access.rbac.users.get(&req.username).is_some_and(|u| {
                    u.spec
                        .ssh_keys
                        .iter()
                        .any(|k| ssh_key_id(k) == Some(offered))
                });
                if !listed {
                    return Err(refused("key not listed"));
                }
                state
                    .access
                    .user_caller(&req.username)
                    .map_err(|_| refused("user missing or disabled"))?
            }
            _ => {
                return Err(ApiError::BadRequest(
                    "send exactly one of password and publicKey".into(),
                ))
            }
        };
        let (may, read_only) = sftp_rights(&state, &who, &req.namespace, &req.server);
        if !may {
            return Err(refused("no file.sftp permission on the server"));
        }
        Ok((uid, suspended, key, read_only))
    }
    .await;
    if let Some(why) = refusal.get() {
        state.account_throttle.failed(&account).await;
        state.address_throttle.failed(&address).await;
        tracing::info!(
            user = req.username,
            node,
            source = address,
            why,
            "SFTP login refused"
        );
    }
    let (uid, suspended, key, read_only) = checked?;
    if suspended {
        return Err(ApiError::Forbidden(format!(
            "gameserver {}/{} is suspended",
            req.namespace, req.server
        )));
    }
    state.account_throttle.succeeded(&account).await;
    tracing::info!(user = req.username, node, server = req.server, "SFTP login");
    let grant = SftpGrant {
        user: req.username,
        namespace: req.namespace,
        server: req.server,
        uid,
        read_only,
        key,
    };
    Ok(Json(grant).into_response())
}

async fn check(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let node = node_of(&caller)?.to_owned();
    let grant: SftpGrant = parse(&body)?;
    let no = |reason: String| SftpCheck {
        allowed: false,
        reason: Some(reason),
    };
    let answer = async {
        let who = match &grant.key {
            Some(k) => {
                let valid = state
                    .access
                    .rbac
                    .keys
                    .get(k)
                    .is_some_and(|e| e.spec.owner == grant.user);
                let c = Caller::ApiKey {
                    name: k.clone(),
                    owner: grant.user.clone(),
                };
                if !valid || !state.access.still_valid(&c) {
                    return no(format!("API key {k} is gone, expired or disabled"));
                }
                c
            }
            None => match state.access.user_caller(&grant.user) {
                Ok(c) => c,
                Err(e) => return no(e.to_string()),
            },
        };
        match server_on(&state, &node, &grant.namespace, &grant.server).await {
            Ok((uid, _)) if uid != grant.uid => {
                return no("the server was deleted (another has its name)".into())
            }
            Ok((_, true)) => return no("the server is suspended".into()),
            Ok(_) => {}
            Err(ApiError::NotFound { .. }) => return no("the server was deleted".into()),
            Err(e) => return no(e.to_string()),
        }
        let (may, read_only) = sftp_rights(&state, &who, &grant.namespace, &grant.server);
        if !may {
            return no("the file.sftp permission was taken away".into());
        }
        if read_only && !grant.read_only {
            return no("the right to change files was taken away".into());
        }
        SftpCheck {
            allowed: true,
            reason: None,
        }
    }
    .await;
    Ok(Json(answer).into_response())
}
