//! The API in-process for tests: a router over a SQLite store in a temporary directory,
//! driven through `oneshot` (no socket) with any bearer token.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use catalyst_apiserver::auth::{Authenticator, Identity};
use catalyst_apiserver::http::{app, AppState};
use catalyst_apiserver::registry::Registry;
use catalyst_apiserver::store::{self, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// The administrator's token.
pub const TOKEN: &str = "test-token";
/// The join token.
pub const JOIN_TOKEN: &str = "join-token";
/// The API prefix.
pub const API: &str = "/apis/catalyst.dev/v1alpha1";
/// GameServers of namespace `default`.
pub const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
/// Nodes.
pub const NODES: &str = "/apis/catalyst.dev/v1alpha1/nodes";

/// A router over a fresh store.
pub struct Api {
    pub app: Router,
    pub state: AppState,
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Api {
    /// The API with the admin and join tokens, with the server's real authenticator (tokens
    /// issued by joins are stored and found again).
    pub async fn start() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
            .await
            .unwrap();
        for (token, id) in [
            (TOKEN, Identity::new("admin", "admin")),
            (JOIN_TOKEN, Identity::new("join", "nodes")),
        ] {
            Authenticator::issue_secret(&store, token, &id)
                .await
                .unwrap();
        }
        let auth = Authenticator::load(store.clone()).await.unwrap();
        let state = AppState::new(Registry::new(store.clone()), auth)
            .await
            .unwrap();
        catalyst_apiserver::server::seed_builtin_roles(&state.registry)
            .await
            .unwrap();
        Api {
            app: app(state.clone()),
            state,
            store,
            _dir: dir,
        }
    }

    /// Sends a request with `token` (none when empty); see [`send`].
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        send(&self.app, token, method, uri, content_type, body).await
    }

    /// GET as the administrator.
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call_as(TOKEN, Method::GET, uri, "", None).await
    }

    /// POST JSON as the administrator.
    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call_as(TOKEN, Method::POST, uri, "application/json", Some(body))
            .await
    }

    /// A merge patch as the administrator.
    pub async fn merge(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call_as(
            TOKEN,
            Method::PATCH,
            uri,
            "application/merge-patch+json",
            Some(body),
        )
        .await
    }

    /// DELETE as the administrator.
    pub async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        self.call_as(TOKEN, Method::DELETE, uri, "", None).await
    }

    /// Joins node `name` with `token` (the join token, or the node's own to rotate it).
    pub async fn join_with(&self, token: &str, name: &str) -> (StatusCode, Value) {
        self.call_as(
            token,
            Method::POST,
            "/auth/v1/join",
            "application/json",
            Some(json!({ "nodeName": name })),
        )
        .await
    }

    /// Joins node `name` with the join token; returns its credential.
    pub async fn join(&self, name: &str) -> String {
        let (code, body) = self.join_with(JOIN_TOKEN, name).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

/// Sends a request to `app` with `token` (none when empty); answers the code and the body as
/// JSON (or as a JSON string when it is not JSON).
pub async fn send(
    app: &Router,
    token: &str,
    method: Method,
    uri: &str,
    content_type: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if !token.is_empty() {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, content_type);
    }
    let body = body
        .map(|b| Body::from(serde_json::to_vec(&b).unwrap()))
        .unwrap_or_else(Body::empty);
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("the answer is finite")
        .unwrap()
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// A GameServer named `name` of image busybox.
pub fn gs(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
           "metadata": {"name": name, "labels": labels}, "spec": {"image": "busybox"}})
}

/// A Catalyst object of `kind` named `name` (in `ns`) with `spec`.
pub fn obj(kind: &str, name: &str, ns: Option<&str>, spec: Value) -> Value {
    let mut meta = json!({ "name": name });
    if let Some(ns) = ns {
        meta["namespace"] = ns.into();
    }
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec})
}
