//! Bearer tokens: random 256-bit secrets handed to clients once, kept in the store only as
//! SHA-256 hashes under `/_catalyst/tokens/`, so every API server of a cluster accepts them.
//! Also who may do what: the [`authenticate`] middleware in front of the API, and what a node
//! token may reach ([`node_may`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::store::{ListOptions, Store, StoreError};

/// Where token hashes live in the store (outside every kind's prefix, so not in the API).
pub const TOKEN_PREFIX: &str = "/_catalyst/tokens/";

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// `admin`, or `join` for the node join token.
    pub role: String,
    /// A name for logs.
    pub name: String,
}

/// A new random token (64 hex digits).
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The SHA-256 of a token, hex.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks bearer tokens against the hashes in the store.
#[derive(Debug)]
pub struct Authenticator {
    store: Option<Arc<dyn Store>>,
    known: RwLock<HashMap<String, Identity>>,
    last_reload: std::sync::Mutex<Instant>,
}

impl Authenticator {
    /// Loads the token hashes from the store.
    pub async fn load(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let auth = Self {
            store: Some(store),
            known: RwLock::new(HashMap::new()),
            last_reload: std::sync::Mutex::new(Instant::now() - Duration::from_secs(60)),
        };
        auth.reload().await?;
        Ok(auth)
    }

    /// An authenticator that accepts exactly `tokens` (tests).
    pub fn fixed(tokens: &[(&str, Identity)]) -> Self {
        Self {
            store: None,
            known: RwLock::new(tokens.iter().map(|(t, id)| (hash(t), id.clone())).collect()),
            last_reload: std::sync::Mutex::new(Instant::now()),
        }
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let page = store.list(TOKEN_PREFIX, &ListOptions::default()).await?;
        let mut known = HashMap::new();
        for kv in page.items {
            let h = kv.key.trim_start_matches(TOKEN_PREFIX).to_owned();
            if let Ok(id) = serde_json::from_slice::<Identity>(&kv.value) {
                known.insert(h, id);
            }
        }
        *self.known.write().expect("token lock") = known;
        Ok(())
    }

    /// The identity of a token, if it is valid. An unknown token triggers a reload from the
    /// store (at most once a second), so tokens made by another API server work here too.
    pub async fn verify(&self, token: &str) -> Option<Identity> {
        let h = hash(token);
        if let Some(id) = self.known.read().expect("token lock").get(&h) {
            return Some(id.clone());
        }
        let due = {
            let mut last = self.last_reload.lock().expect("reload lock");
            let due = last.elapsed() >= Duration::from_secs(1);
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "cannot reload tokens");
            }
            return self.known.read().expect("token lock").get(&h).cloned();
        }
        None
    }

    /// Makes a just-issued token known here at once (others learn it on their next reload).
    pub fn remember(&self, token: &str, identity: Identity) {
        self.known
            .write()
            .expect("token lock")
            .insert(hash(token), identity);
    }

    /// Stores a new token's hash; returns the token.
    pub async fn issue(store: &Arc<dyn Store>, identity: &Identity) -> Result<String, StoreError> {
        let token = new_token();
        let value = serde_json::to_vec(identity).expect("identity encodes");
        store
            .create(&format!("{TOKEN_PREFIX}{}", hash(&token)), &value)
            .await?;
        Ok(token)
    }
}

/// The bearer token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The token of a request: the bearer header, else an `access_token` query parameter
/// (browsers cannot set headers on a WebSocket).
pub fn request_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    bearer_token(headers).map(str::to_owned).or_else(|| {
        query.and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("access_token="))
                .map(str::to_owned)
        })
    })
}

/// Whether a request may go on: `token` is whether one was sent, `identity` whom it belongs
/// to (None: unknown). Admins may do anything, nodes what [`node_may`] allows; the join token
/// only buys a node credential (`POST /auth/v1/join`, not behind this check) and reads nothing.
///
/// # Errors
/// 401 without a token or with an unknown one, 403 when the identity may not do this.
pub fn authorize(
    token: bool,
    identity: Option<&Identity>,
    method: &Method,
    path: &str,
) -> Result<(), ApiError> {
    match (token, identity) {
        (false, _) => Err(ApiError::Unauthorized(
            "missing bearer token: send Authorization: Bearer <token>".into(),
        )),
        (true, None) => Err(ApiError::Unauthorized("invalid bearer token".into())),
        (true, Some(id)) if id.role == "admin" => Ok(()),
        (true, Some(id)) if id.role == "node" && node_may(&id.name, method, path) => Ok(()),
        (true, Some(id)) => Err(ApiError::Forbidden(format!(
            "a {} token ({}) may not {method} {path}",
            id.role, id.name
        ))),
    }
}

/// Middleware: lets a request through when its token [`authorize`]s it, else answers 401/403.
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    req: Request,
    next: Next,
) -> Response {
    let token = request_token(req.headers(), req.uri().query());
    let identity = match &token {
        Some(t) => auth.verify(t).await,
        None => None,
    };
    match authorize(
        token.is_some(),
        identity.as_ref(),
        req.method(),
        req.uri().path(),
    ) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
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

    fn id(role: &str, name: &str) -> Identity {
        Identity {
            role: role.into(),
            name: name.into(),
        }
    }

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

    #[test]
    fn authorization_is_401_without_a_known_token_and_403_beyond_the_role() {
        let gs = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
        let status = |token, identity: Option<&Identity>, m: Method| {
            authorize(token, identity, &m, gs).map_err(|e| e.code().as_u16())
        };
        assert_eq!(status(false, None, Method::GET), Err(401));
        assert_eq!(status(true, None, Method::GET), Err(401));
        assert_eq!(
            status(true, Some(&id("admin", "a")), Method::DELETE),
            Ok(())
        );
        assert_eq!(status(true, Some(&id("node", "n1")), Method::GET), Ok(()));
        assert_eq!(
            status(true, Some(&id("node", "n1")), Method::POST),
            Err(403)
        );
        assert_eq!(
            status(true, Some(&id("join", "nodes")), Method::GET),
            Err(403)
        );
    }

    #[test]
    fn tokens_come_from_the_bearer_header_or_the_access_token_parameter() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            request_token(&headers, Some("watch=true&access_token=q")),
            Some("q".into())
        );
        assert_eq!(request_token(&headers, Some("watch=true")), None);
        headers.insert(header::AUTHORIZATION, "Bearer  h ".parse().unwrap());
        assert_eq!(
            request_token(&headers, Some("access_token=q")),
            Some("h".into())
        );
        headers.insert(header::AUTHORIZATION, "Basic x".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
