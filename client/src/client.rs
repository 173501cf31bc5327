//! An authenticated client: requests with a bearer token, JSON answers, failures as the API's
//! Status; node join, Event recording, list across pages and watch.

use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::paths::{query, API};
use crate::watch::{decode, Watched};
use crate::Revision;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the JSON verbs of a [`Client::new`] client may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one API server with one bearer token. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    namespace: String,
    timeout: Option<Duration>,
    component: String,
}

/// Which objects a list or watch selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// `labelSelector`, e.g. `app=mc,tier in (a,b)`.
    pub label_selector: Option<String>,
    /// `fieldSelector`, e.g. `status.nodeName=n1`.
    pub field_selector: Option<String>,
}

impl ListParams {
    /// Objects whose fields match `selector`.
    pub fn fields(selector: impl Into<String>) -> Self {
        Self {
            field_selector: Some(selector.into()),
            ..Self::default()
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "labelSelector",
                self.label_selector.clone().unwrap_or_default(),
            ),
            (
                "fieldSelector",
                self.field_selector.clone().unwrap_or_default(),
            ),
        ]
    }
}

/// Every object of a list, and the revision the list was read at (watch from there).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct List {
    /// The objects.
    pub items: Vec<Value>,
    /// `metadata.resourceVersion` of the list.
    pub revision: Revision,
}

fn http_client(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .expect("an HTTP client builds")
}

impl Client {
    /// A client of `base` (`http://host:port`) with `token`; its JSON verbs time out after 30
    /// seconds (watches and [`Client::send`] do not).
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: http_client(concat!("catalyst-client/", env!("CARGO_PKG_VERSION"))),
            base: base.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            namespace: "default".to_owned(),
            timeout: Some(REQUEST_TIMEOUT),
            component: "catalyst-client".to_owned(),
        }
    }

    /// A client for a client config (`catalystctl`'s): its server, token and namespace, no
    /// request timeout, and `catalystctl` as user agent and Event source.
    pub fn from_config(config: &Config) -> Self {
        Self {
            http: http_client(concat!("catalystctl/", env!("CARGO_PKG_VERSION"))),
            base: config.server.trim_end_matches('/').to_owned(),
            token: config.token.clone(),
            namespace: config.namespace.clone(),
            timeout: None,
            component: "catalystctl".to_owned(),
        }
    }

    /// The same client, recording Events as `component` (e.g. `nodelet`).
    pub fn with_component(mut self, component: &str) -> Self {
        component.clone_into(&mut self.component);
        self
    }

    /// The server URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The default namespace (`default` unless the config says otherwise).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Trades a join token for a node token (`POST /auth/v1/join`).
    ///
    /// Fails with the server's Status, or [`Error::Decode`] when the answer has no token.
    pub async fn join(base: &str, join_token: &str, node: &str) -> Result<String> {
        let v = Self::new(base, join_token)
            .post("/auth/v1/join", json!({ "nodeName": node }))
            .await?;
        v["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode("join answered without a token".into()))
    }

    /// A request to `path` (which starts with `/`) with the token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends and decodes the JSON answer (a body that is not JSON becomes
    /// `{"reason": "Unknown", "message": <text>}`); a code of 400 or more becomes
    /// [`Error::Status`].
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let (code, _, body) = self.send_full(req).await?;
        Ok((code, body))
    }

    /// As [`Client::send`], with the response headers.
    pub async fn send_full(&self, req: reqwest::RequestBuilder) -> Result<(u16, HeaderMap, Value)> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if code >= 400 {
            return Err(Error::from_body(code, &bytes));
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(
            |_| json!({"reason": "Unknown", "message": String::from_utf8_lossy(&bytes)}),
        );
        Ok((code, headers, body))
    }

    fn unreachable(&self, source: reqwest::Error) -> Error {
        Error::Unreachable {
            server: self.base.clone(),
            source,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<(&str, Value)>) -> Result<Value> {
        let mut req = self.request(method, path);
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        if let Some((content_type, body)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(serde_json::to_vec(&body).expect("JSON encodes"));
        }
        Ok(self.send(req).await?.1)
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// POST a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(Method::POST, path, Some(("application/json", body)))
            .await
    }

    /// PUT a JSON body (a whole object; its resourceVersion is checked).
    pub async fn put(&self, path: &str, body: Value) -> Result<Value> {
        self.call(Method::PUT, path, Some(("application/json", body)))
            .await
    }

    /// Merge-patch a path.
    pub async fn patch(&self, path: &str, patch: Value) -> Result<Value> {
        self.call(
            Method::PATCH,
            path,
            Some(("application/merge-patch+json", patch)),
        )
        .await
    }

    /// DELETE a path.
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.call(Method::DELETE, path, None).await
    }

    /// A streaming GET (logs, a watch read by hand): the raw response once it answered
    /// successfully.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response> {
        let resp = self
            .request(Method::GET, path)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let code = resp.status().as_u16();
        if code >= 400 {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(Error::from_body(code, &body));
        }
        Ok(resp)
    }

    /// Records an Event about `object` (best effort: a failure is logged).
    pub async fn event(&self, object: &Value, type_: &str, reason: &str, message: &str) {
        let event =
            catalyst_schemas::event::event_about(object, type_, reason, message, &self.component);
        let ns = catalyst_schemas::object::namespace_of(&event).unwrap_or("default");
        if let Err(e) = self
            .post(&format!("{API}/namespaces/{ns}/events"), event)
            .await
        {
            tracing::warn!(error = %e, reason, "cannot record an event");
        }
    }

    /// Lists a collection (a path from [`crate::collection_path`]), every page (following
    /// `metadata.continue`).
    pub async fn list(&self, collection: &str, params: &ListParams) -> Result<List> {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let mut pairs = params.pairs();
            pairs.push(("continue", token.clone()));
            let page = self.get(&format!("{collection}{}", query(&pairs))).await?;
            if let Some(page_items) = page.get("items").and_then(Value::as_array) {
                items.extend(page_items.iter().cloned());
            }
            let revision = catalyst_schemas::object::resource_version(&page).unwrap_or(0);
            match page.pointer("/metadata/continue").and_then(Value::as_str) {
                Some(c) if !c.is_empty() => c.clone_into(&mut token),
                _ => return Ok(List { items, revision }),
            }
        }
    }

    /// Watches a collection from `from` (exclusive) with bookmarks: a stream of events; a
    /// revision that is too old ends it with [`Watched::Gone`], another `ERROR` event is an
    /// [`Error::Status`] item.
    ///
    /// Fails when the server cannot be reached or refuses the watch.
    pub async fn watch(
        &self,
        collection: &str,
        params: &ListParams,
        from: Revision,
    ) -> Result<impl Stream<Item = Result<Watched>> + Send + 'static> {
        let mut pairs = vec![
            ("watch", "true".to_owned()),
            ("resourceVersion", from.to_string()),
            ("allowWatchBookmarks", "true".to_owned()),
        ];
        pairs.extend(params.pairs());
        let resp = self
            .stream(&format!("{collection}{}", query(&pairs)))
            .await?;
        let server = self.base.clone();
        let chunks = resp.bytes_stream().map(move |c| {
            c.map_err(|source| Error::Unreachable {
                server: server.clone(),
                source,
            })
        });
        Ok(decode(chunks))
    }
}
