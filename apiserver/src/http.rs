//! The HTTP API: Kubernetes-style REST and watch for every kind, discovery, OpenAPI, health and
//! metrics. `app()` builds the router; tests drive it with `oneshot`, without a socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use catalyst_schemas::watch::{Bookmark, WatchEvent};
use catalyst_schemas::{KindInfo, API_VERSION, KINDS};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::apply;
use crate::auth::Authenticator;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::registry::{meta_str, parse_revision, ListRequest, Part, Registry, Scope};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Revision, StoreError};
use crate::watch::{event_line, CacheMessage, CachedEvent, Subscription, WatchCache};

/// Response header of apply patches: `true` when the apply changed the object.
pub const CHANGED_HEADER: &str = "catalyst-changed";

/// How often a watch sends a BOOKMARK when asked for them.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Object operations.
    pub registry: Registry,
    /// One watch cache per kind.
    pub caches: Arc<HashMap<&'static str, Arc<WatchCache>>>,
    /// Bearer-token checks.
    pub auth: Arc<Authenticator>,
    /// Request counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Bookmark interval (shorter in tests).
    pub bookmark_interval: Duration,
    /// Open node tunnels.
    pub tunnels: Arc<crate::tunnel::Tunnels>,
}

impl AppState {
    /// Starts the watch caches and assembles the state.
    pub async fn new(registry: Registry, auth: Authenticator) -> Result<Self, StoreError> {
        Self::with_window(registry, auth, crate::watch::WINDOW).await
    }

    /// As [`AppState::new`], with watch caches of `window` events.
    pub async fn with_window(
        registry: Registry,
        auth: Authenticator,
        window: usize,
    ) -> Result<Self, StoreError> {
        let mut caches = HashMap::new();
        for kind in KINDS {
            let cache = WatchCache::start(registry.store().clone(), kind, window).await?;
            caches.insert(kind.plural, cache);
        }
        Ok(Self {
            registry,
            caches: Arc::new(caches),
            auth: Arc::new(auth),
            metrics: Arc::new(Metrics::default()),
            bookmark_interval: BOOKMARK_INTERVAL,
            tunnels: Arc::default(),
        })
    }
}

/// The router with every route.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/apis", get(discovery_groups))
        .route("/apis/catalyst.dev/v1alpha1", get(discovery_resources))
        .route("/openapi/v3", get(openapi))
        .route("/metrics", get(metrics))
        .route(
            "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/{plural}",
            get(collection_get).post(collection_post),
        )
        .route(
            "/apis/catalyst.dev/v1alpha1/{plural}",
            get(collection_get).post(collection_post),
        )
        .route(
            "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/{plural}/{name}",
            get(object_get)
                .put(object_put)
                .patch(object_patch)
                .delete(object_delete),
        )
        .route(
            "/apis/catalyst.dev/v1alpha1/{plural}/{name}",
            get(object_get)
                .put(object_put)
                .patch(object_patch)
                .delete(object_delete),
        )
        .route(
            "/apis/catalyst.dev/v1alpha1/nodes/{name}/tunnel",
            get(crate::tunnel::tunnel),
        )
        .route(
            "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}/logs",
            get(crate::tunnel::logs),
        )
        .route(
            "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}/command",
            axum::routing::post(crate::tunnel::command),
        )
        .route(
            "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}/metrics",
            get(crate::tunnel::metrics),
        )
        .route(
            "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/{plural}/{name}/{sub}",
            get(object_get).put(object_put).patch(object_patch),
        )
        .route(
            "/apis/catalyst.dev/v1alpha1/{plural}/{name}/{sub}",
            get(object_get).put(object_put).patch(object_patch),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/auth/v1/join", axum::routing::post(crate::nodes::join))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/version",
            get(|| async {
                Json(json!({"catalyst": env!("CARGO_PKG_VERSION"), "apiVersion": API_VERSION}))
            }),
        )
        .merge(api)
        .fallback(|| async {
            ApiError::NotFound {
                kind: "path".into(),
                name: String::new(),
            }
        })
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned)
        // browsers cannot set headers on a WebSocket: accept the token as a query parameter there
        .or_else(|| {
            req.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("access_token="))
                    .map(str::to_owned)
            })
        });
    match token {
        None => ApiError::Unauthorized(
            "missing bearer token: send Authorization: Bearer <token>".into(),
        )
        .into_response(),
        Some(t) => match state.auth.verify(&t).await {
            Some(identity) if identity.role == "admin" => next.run(req).await,
            Some(identity)
                if identity.role == "node"
                    && crate::nodes::node_may(&identity.name, req.method(), req.uri().path()) =>
            {
                next.run(req).await
            }
            // the join token only buys a node credential (POST /auth/v1/join); it reads nothing
            Some(identity) => ApiError::Forbidden(format!(
                "a {} token ({}) may not {} {}",
                identity.role,
                identity.name,
                req.method(),
                req.uri().path()
            ))
            .into_response(),
            None => ApiError::Unauthorized("invalid bearer token".into()).into_response(),
        },
    }
}

async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let verb = verb_of(req.method(), req.uri().query());
    let kind = kind_of_path(req.uri().path());
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = next.run(req).await;
    tracing::debug!(%method, path, status = response.status().as_u16(), took_ms = started.elapsed().as_secs_f64() * 1000.0, "request");
    state
        .metrics
        .observe(verb, kind, response.status().as_u16(), started.elapsed());
    response
}

fn verb_of(method: &Method, query: Option<&str>) -> &'static str {
    let watching =
        query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match *method {
        Method::GET if watching => "WATCH",
        Method::GET => "GET",
        Method::POST => "CREATE",
        Method::PUT => "UPDATE",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

fn kind_of_path(path: &str) -> &'static str {
    let rest = match path.strip_prefix("/apis/catalyst.dev/v1alpha1/") {
        Some(r) => r,
        None => return "",
    };
    let mut parts = rest.split('/');
    let first = parts.next().unwrap_or("");
    let plural = if first == "namespaces" {
        parts.nth(1).unwrap_or("")
    } else {
        first
    };
    KINDS
        .iter()
        .find(|k| k.plural == plural)
        .map_or("", |k| k.kind)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.registry.store().current_revision().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let revision = state.registry.store().current_revision().await.ok();
    let watchers: usize = state.caches.values().map(|c| c.watchers()).sum();
    let mut text = state.metrics.render(revision, watchers);
    text.push_str(&state.tunnels.prometheus().await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn discovery_groups() -> Json<Value> {
    Json(json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{
            "name": "catalyst.dev",
            "versions": [{"groupVersion": API_VERSION, "version": "v1alpha1"}],
            "preferredVersion": {"groupVersion": API_VERSION, "version": "v1alpha1"}
        }]
    }))
}

async fn discovery_resources() -> Json<Value> {
    let mut resources = Vec::new();
    for k in KINDS {
        resources.push(json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "shortNames": k.short_names,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }));
        resources.push(json!({
            "name": format!("{}/status", k.plural),
            "singularName": "",
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    Json(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION, "resources": resources}),
    )
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

/// Query parameters of every resource request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    label_selector: Option<String>,
    field_selector: Option<String>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_: Option<String>,
    watch: Option<String>,
    resource_version: Option<String>,
    allow_watch_bookmarks: Option<String>,
    timeout_seconds: Option<u64>,
    dry_run: Option<String>,
    field_manager: Option<String>,
    force: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1" | ""))
}

impl Params {
    fn dry_run(&self) -> ApiResult<bool> {
        match self.dry_run.as_deref() {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "dryRun must be All, not {other:?}"
            ))),
        }
    }

    fn list_request(&self) -> ApiResult<ListRequest> {
        let bad = |e: crate::selector::SelectorError| ApiError::BadRequest(e.to_string());
        Ok(ListRequest {
            labels: LabelSelector::parse(self.label_selector.as_deref().unwrap_or(""))
                .map_err(bad)?,
            fields: FieldSelector::parse(self.field_selector.as_deref().unwrap_or(""))
                .map_err(bad)?,
            limit: self.limit.filter(|l| *l > 0),
            continue_token: self.continue_.clone().filter(|c| !c.is_empty()),
            revision: match self.resource_version.as_deref() {
                None | Some("") | Some("0") => None,
                Some(rv) => Some(parse_revision(rv)?),
            },
        })
    }
}

fn kind(plural: &str) -> ApiResult<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.plural == plural)
        .ok_or_else(|| ApiError::NotFound {
            kind: "resource type".into(),
            name: plural.to_owned(),
        })
}

fn scope<'a>(plural: &str, ns: Option<&'a str>) -> ApiResult<Scope<'a>> {
    let kind = kind(plural)?;
    match (kind.namespaced, ns) {
        (false, Some(_)) => Err(ApiError::NotFound {
            kind: "resource type".into(),
            name: format!("{plural} is cluster-scoped, not in a namespace"),
        }),
        _ => Ok(Scope {
            kind,
            namespace: ns,
        }),
    }
}

/// Reads a request body as JSON or YAML, by content type.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if body.is_empty() {
        return Err(ApiError::BadRequest("the request has no body".into()));
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
        let mut docs = catalyst_schemas::parse_documents(text)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if docs.len() != 1 {
            return Err(ApiError::BadRequest(format!(
                "expected one YAML document, got {}",
                docs.len()
            )));
        }
        Ok(docs.remove(0))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

fn created(obj: Value) -> Response {
    (StatusCode::CREATED, Json(obj)).into_response()
}

// ---- handlers ----

/// What a request's path names; one set of handlers serves namespaced and cluster paths.
#[derive(Debug, Deserialize)]
struct Target {
    ns: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

impl Target {
    fn scope(&self) -> ApiResult<Scope<'_>> {
        scope(&self.plural, self.ns.as_deref())
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn part(&self) -> ApiResult<Part> {
        self.sub.as_deref().map_or(Ok(Part::Main), part)
    }
}

async fn collection_get(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    list_or_watch(s, t.scope()?, p, ws.ok()).await
}

async fn collection_post(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    create(s, t.scope()?, p, headers, body).await
}

async fn object_get(State(s): State<AppState>, Path(t): Path<Target>) -> ApiResult<Response> {
    t.part()?;
    Ok(Json(s.registry.get(t.scope()?, t.name()).await?).into_response())
}

async fn object_put(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    replace(s, t.scope()?, t.name(), t.part()?, p, headers, body).await
}

async fn object_patch(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    patch(s, t.scope()?, t.name(), t.part()?, p, headers, body).await
}

async fn object_delete(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    body: Bytes,
) -> ApiResult<Response> {
    delete(s, t.scope()?, t.name(), p, body).await
}

async fn list_or_watch(
    s: AppState,
    scope: Scope<'_>,
    p: Params,
    ws: Option<WebSocketUpgrade>,
) -> ApiResult<Response> {
    if truthy(&p.watch) {
        return watch(s, scope, p, ws).await;
    }
    let result = s.registry.list(scope, &p.list_request()?).await?;
    Ok(Json(result.to_value(scope.kind)).into_response())
}

async fn create(
    s: AppState,
    scope: Scope<'_>,
    p: Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let obj = parse_body(&headers, &body)?;
    let manager = p
        .field_manager
        .clone()
        .unwrap_or_else(|| default_manager(&headers));
    let written = s
        .registry
        .create(scope, apply::track_create(obj, &manager), p.dry_run()?)
        .await?;
    Ok(created(written.object))
}

fn default_manager(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|ua| !ua.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

// ---- single objects ----

async fn replace(
    s: AppState,
    scope: Scope<'_>,
    name: &str,
    part: Part,
    p: Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let obj = parse_body(&headers, &body)?;
    let manager = p
        .field_manager
        .clone()
        .unwrap_or_else(|| default_manager(&headers));
    let pinned = meta_str(&obj, "resourceVersion")
        .map(parse_revision)
        .transpose()?;
    if meta_str(&obj, "name").is_some_and(|n| n != name) {
        return Err(ApiError::BadRequest(format!(
            "the name of the object does not match the request ({name})"
        )));
    }
    let written = s
        .registry
        .update_with(scope, name, pinned, part, p.dry_run()?, |current| {
            Ok(apply::track_update(current, obj.clone(), &manager, part))
        })
        .await?;
    Ok(Json(written.object).into_response())
}

async fn patch(
    s: AppState,
    scope: Scope<'_>,
    name: &str,
    part: Part,
    p: Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let dry_run = p.dry_run()?;
    if ct.starts_with("application/apply-patch+yaml")
        || ct.starts_with("application/apply-patch+json")
    {
        let manager = p
            .field_manager
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::BadRequest("fieldManager is required for apply patches".into())
            })?;
        let config = parse_body(&headers, &body)?;
        let (written, created_now) = apply::server_side_apply(
            &s.registry,
            scope,
            name,
            config,
            &manager,
            truthy(&p.force),
            part,
            dry_run,
        )
        .await?;
        let changed = if written.changed { "true" } else { "false" };
        let mut response = if created_now {
            created(written.object)
        } else {
            Json(written.object).into_response()
        };
        // whether this apply changed the object, so clients need not guess from resourceVersions
        response.headers_mut().insert(
            CHANGED_HEADER,
            axum::http::HeaderValue::from_static(changed),
        );
        return Ok(response);
    }
    if !(ct.starts_with("application/merge-patch+json") || ct.starts_with("application/json")) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "unsupported patch type {ct:?}: use application/merge-patch+json or application/apply-patch+yaml"
        )));
    }
    let patch = parse_body(&headers, &body)?;
    if !patch.is_object() {
        return Err(ApiError::BadRequest(
            "a merge patch is a JSON object".into(),
        ));
    }
    let manager = p
        .field_manager
        .clone()
        .unwrap_or_else(|| default_manager(&headers));
    let pinned = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(parse_revision)
        .transpose()?;
    let written = s
        .registry
        .update_with(scope, name, pinned, part, dry_run, |current| {
            let mut next = current.clone();
            crate::registry::merge(&mut next, &patch);
            Ok(apply::track_update(current, next, &manager, part))
        })
        .await?;
    Ok(Json(written.object).into_response())
}

/// Options a DELETE body may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    #[serde(default)]
    preconditions: Option<Preconditions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    resource_version: Option<String>,
}

async fn delete(
    s: AppState,
    scope: Scope<'_>,
    name: &str,
    p: Params,
    body: Bytes,
) -> ApiResult<Response> {
    let options: DeleteOptions = if body.is_empty() {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    let pinned = options
        .preconditions
        .and_then(|p| p.resource_version)
        .map(|rv| parse_revision(&rv))
        .transpose()?;
    let dry_run = p.dry_run()?;
    let obj = s.registry.delete(scope, name, pinned, dry_run).await?;
    let gone = obj.pointer("/metadata/deletionTimestamp").is_none()
        || obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
    if gone && !dry_run {
        if let Some(uid) = meta_str(&obj, "uid") {
            s.registry.collect_dependents(uid.to_owned());
        }
    }
    Ok(Json(obj).into_response())
}

// ---- subresources ----

fn part(sub: &str) -> ApiResult<Part> {
    match sub {
        "status" => Ok(Part::Status),
        other => Err(ApiError::NotFound {
            kind: "subresource".into(),
            name: other.to_owned(),
        }),
    }
}

// ---- watch ----

/// What a watcher is interested in.
#[derive(Debug, Clone)]
struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if meta_str(obj, "namespace") != Some(ns.as_str()) {
                return false;
            }
        }
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        self.labels.matches(&labels) && self.fields.matches(obj)
    }
}

fn error_line(e: &ApiError) -> Bytes {
    event_line(&WatchEvent::<Value>::Error(e.status_object()))
}

async fn watch(
    s: AppState,
    scope: Scope<'_>,
    p: Params,
    ws: Option<WebSocketUpgrade>,
) -> ApiResult<Response> {
    let req = p.list_request()?;
    let filter = Filter {
        namespace: scope.namespace.map(str::to_owned),
        labels: req.labels.clone(),
        fields: req.fields.clone(),
    };
    let bookmarks = truthy(&p.allow_watch_bookmarks);
    let kind = scope.kind;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // Without a resourceVersion: the current objects as ADDED events first, then changes.
    let (initial, after) = match req.revision {
        Some(rev) => (Vec::new(), rev),
        None => {
            let mut all = Vec::new();
            let mut list_req = ListRequest {
                labels: req.labels.clone(),
                fields: req.fields.clone(),
                ..Default::default()
            };
            let rev = loop {
                let page = s.registry.list(scope, &list_req).await?;
                all.extend(page.items);
                match page.continue_token {
                    Some(c) => list_req.continue_token = Some(c),
                    None => break page.revision,
                }
            };
            (all, rev)
        }
    };
    let cache = s
        .caches
        .get(kind.plural)
        .cloned()
        .expect("a cache per kind");
    let store = s.registry.store().clone();
    let interval = s.bookmark_interval;
    let timeout = p.timeout_seconds.map(Duration::from_secs);
    s.metrics.watch_started();
    let metrics = s.metrics.clone();
    let prefix = scope.prefix();
    tokio::spawn(async move {
        for obj in initial {
            if tx.send(event_line(&WatchEvent::Added(&obj))).await.is_err() {
                metrics.watch_ended();
                return;
            }
        }
        let feed = WatchFeed {
            cache,
            store,
            prefix,
            after,
            filter,
            bookmarks,
            interval,
            timeout,
        };
        feed.run(&tx).await;
        metrics.watch_ended();
    });
    if let Some(ws) = ws {
        return Ok(ws.on_upgrade(move |socket| pump_websocket(socket, rx)));
    }
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json;stream=watch")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .expect("valid response"))
}

async fn pump_websocket(mut socket: WebSocket, mut rx: mpsc::Receiver<Bytes>) {
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => {
                    let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned();
                    if socket.send(Message::Text(text.into())).await.is_err() { return }
                }
                None => { let _ = socket.send(Message::Close(None)).await; return }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
}

/// One watcher's loop: cached (shared) events when the revision is recent, else a direct store
/// watch; filtered; bookmarks; cut off with a 410 when too slow.
struct WatchFeed {
    cache: Arc<WatchCache>,
    store: Arc<dyn crate::store::Store>,
    prefix: String,
    after: Revision,
    filter: Filter,
    bookmarks: bool,
    interval: Duration,
    timeout: Option<Duration>,
}

impl WatchFeed {
    async fn run(self, tx: &mpsc::Sender<Bytes>) {
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let ended = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(ended);
        let mut last = self.after;
        let mut tick = tokio::time::interval(self.interval);
        tick.tick().await;
        let send = |line: Bytes| async move { tx.send(line).await.is_ok() };
        match self.cache.subscribe(self.after) {
            Subscription::Cached { backlog, mut live } => {
                for ev in backlog {
                    if !self.forward(&ev, &mut last, tx).await {
                        return;
                    }
                }
                loop {
                    tokio::select! {
                        _ = &mut ended => return,
                        _ = tick.tick(), if self.bookmarks => {
                            let rev = self.cache.newest().max(last);
                            let mark = WatchEvent::<Value>::Bookmark(Bookmark::at(rev));
                            if !send(event_line(&mark)).await { return }
                        }
                        ev = live.recv() => match ev {
                            Ok(CacheMessage::Reset) => {
                                let _ = send(error_line(&ApiError::Gone("the watch cache lost history; re-list and watch again".into()))).await;
                                return;
                            }
                            Ok(CacheMessage::Event(ev)) => if !self.forward(&ev, &mut last, tx).await { return },
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                let _ = send(error_line(&ApiError::Gone(format!(
                                    "watcher too slow: {n} events behind; re-list and watch again"
                                )))).await;
                                return;
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                }
            }
            Subscription::TooOld => {
                // Older than the cache window: straight from the store (which may say Gone).
                let mut stream = match self.store.watch(&self.prefix, self.after).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = send(error_line(&ApiError::from_store(e, "", ""))).await;
                        return;
                    }
                };
                loop {
                    tokio::select! {
                        _ = &mut ended => return,
                        item = stream.next() => match item {
                            Some(Ok(ev)) => {
                                let Ok(object) = crate::registry::from_kv(&ev.kv) else { continue };
                                let cached = CachedEvent::from_store(ev.kind, ev.kv.mod_revision, object);
                                if !self.forward(&cached, &mut last, tx).await { return }
                            }
                            Some(Err(e)) => {
                                let _ = send(error_line(&ApiError::from_store(e, "", ""))).await;
                                return;
                            }
                            None => return,
                        }
                    }
                }
            }
        }
    }

    async fn forward(
        &self,
        ev: &CachedEvent,
        last: &mut Revision,
        tx: &mpsc::Sender<Bytes>,
    ) -> bool {
        if ev.revision <= *last {
            return true;
        }
        *last = ev.revision;
        if !self.filter.matches(ev.object()) {
            return true;
        }
        tx.send(ev.line.clone()).await.is_ok()
    }
}
