//! An authenticated client: requests with a bearer token over HTTPS that trusts the cluster CA
//! (or the system's roots) to one of several server URLs (failing over as [`crate::servers`]
//! says), JSON answers, failures as the API's Status; node join (checking the CA against the
//! join token's pin), Event recording, list across pages and watch.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::paths::{query, API};
use crate::pin::JoinToken;
use crate::servers::{self, Servers};
use crate::session::Refresher;
use crate::watch::{decode, Watched};
use crate::Revision;

/// How long a connection may take to open (then the next server is tried).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the JSON verbs of a [`Client::new`] client may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one or several API servers (sharing one store) with one bearer token. Cheap to
/// clone; clones share the server that answered last.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    servers: Arc<Servers>,
    /// Shared by clones: a refresh replaces it for all of them.
    token: Arc<RwLock<String>>,
    /// Set for a config with a login session: trades the refresh token on a 401.
    refresher: Option<Arc<Refresher>>,
    namespace: String,
    timeout: Option<Duration>,
    component: String,
    ca_pem: Option<Arc<[u8]>>,
}

/// What a node got from [`Client::join`]: its token, and the CA it checked against the join
/// token's pin (None over plain HTTP or when the token pins nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The node token.
    pub token: String,
    /// The CA (PEM) the node should trust from now on.
    pub ca_pem: Option<Vec<u8>>,
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

/// How a client checks the server's certificate.
enum Trust<'a> {
    /// The system's roots.
    System,
    /// This CA (PEM) and no other.
    Only(&'a [u8]),
    /// Nothing at all: only for fetching a CA that is checked against a pin afterwards.
    Unverified,
}

fn http_client(user_agent: &str, trust: Trust<'_>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(CONNECT_TIMEOUT);
    match trust {
        Trust::System => {}
        Trust::Only(pem) => {
            crate::pin::ca_sha256(pem)?;
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| Error::Tls(format!("the CA: {e}")))?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert);
        }
        Trust::Unverified => builder = builder.danger_accept_invalid_certs(true),
    }
    builder
        .build()
        .map_err(|e| Error::Tls(format!("cannot build the HTTP client: {e}")))
}

/// The error of a request to `server` that failed: [`Error::MayHaveApplied`] for a write
/// that was sent, else [`Error::Unreachable`].
fn sent_error(server: &str, method: &Method, e: reqwest::Error) -> Error {
    let server = server.to_owned();
    if e.is_connect() || servers::repeatable(method) || e.is_builder() {
        Error::Unreachable { server, source: e }
    } else {
        Error::MayHaveApplied { server, source: e }
    }
}

const USER_AGENT: &str = concat!("catalyst-client/", env!("CARGO_PKG_VERSION"));

impl Client {
    /// A client of `base` (`https://host:port`, or a comma list of them, tried in turn) with
    /// `token`, trusting the system's roots; its JSON verbs time out after 30 seconds (watches
    /// and [`Client::send`] do not).
    pub fn new(base: &str, token: &str) -> Self {
        Self::with_http(
            http_client(USER_AGENT, Trust::System).expect("an HTTP client builds"),
            base,
            token,
            None,
        )
    }

    /// As [`Client::new`], trusting exactly the CA `ca_pem` (PEM) when given, else the
    /// system's roots.
    ///
    /// Fails with [`Error::Tls`] when `ca_pem` holds no usable certificate.
    pub fn with_ca(base: &str, token: &str, ca_pem: Option<&[u8]>) -> Result<Self> {
        let trust = ca_pem.map_or(Trust::System, Trust::Only);
        Ok(Self::with_http(
            http_client(USER_AGENT, trust)?,
            base,
            token,
            ca_pem,
        ))
    }

    fn with_http(http: reqwest::Client, base: &str, token: &str, ca: Option<&[u8]>) -> Self {
        Self {
            http,
            servers: Arc::new(Servers::new(servers::parse_list(base))),
            token: Arc::new(RwLock::new(token.trim().to_owned())),
            refresher: None,
            namespace: "default".to_owned(),
            timeout: Some(REQUEST_TIMEOUT),
            component: "catalyst-client".to_owned(),
            ca_pem: ca.map(Arc::from),
        }
    }

    /// A client for a client config (`catalystctl`'s): its servers, token and namespace, no
    /// request timeout, and `catalystctl` as user agent and Event source. With a refresh
    /// token (a login session), a request answered 401 trades it for a new pair (`POST
    /// /auth/v1/refresh`), saves the pair into the config's file, and is sent once more with
    /// the new token (see [`Client::send_full`]). It trusts exactly
    /// the config's CA (`certificateAuthorityData`) when it has one, else the system's roots;
    /// a CA that cannot be used (which [`Config::load`] already refuses) makes a client that
    /// trusts nothing.
    pub fn from_config(config: &Config) -> Self {
        let agent = concat!("catalystctl/", env!("CARGO_PKG_VERSION"));
        let ca = config.ca_pem();
        let http = match &ca {
            Ok(Some(pem)) => http_client(agent, Trust::Only(pem)),
            Ok(None) => http_client(agent, Trust::System),
            Err(e) => Err(Error::Tls(e.to_string())),
        };
        let http = http.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the config's CA is unusable; trusting no server");
            reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .build()
                .expect("an HTTP client builds")
        });
        Self {
            http,
            servers: Arc::new(Servers::new(config.servers.clone())),
            token: Arc::new(RwLock::new(config.token.clone())),
            refresher: config
                .refresh_token
                .as_ref()
                .map(|r| Arc::new(Refresher::new(config.clone(), r.clone()))),
            namespace: config.namespace.clone(),
            timeout: None,
            component: "catalystctl".to_owned(),
            ca_pem: ca.ok().flatten().map(Arc::from),
        }
    }

    /// The CA (PEM) this client trusts, when it trusts one CA rather than the system's roots.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }

    /// The same client, recording Events as `component` (e.g. `nodelet`).
    pub fn with_component(mut self, component: &str) -> Self {
        component.clone_into(&mut self.component);
        self
    }

    /// The server URL calls start at: the one that answered last.
    pub fn base(&self) -> &str {
        self.servers.current_url()
    }

    /// Every server URL, in the order they were given.
    pub fn servers(&self) -> &[String] {
        self.servers.urls()
    }

    /// Calls start at the server `key` spreads to (see [`servers::spread`]) until another
    /// answers: nodelets start at `hash(node) % n`, so they share the load.
    pub fn spread_by(&self, key: &str) {
        self.servers
            .set_current(servers::spread(key, self.servers.urls().len()));
    }

    /// The bearer token (the latest, after a refresh).
    pub fn token(&self) -> String {
        self.token.read().expect("the token lock").clone()
    }

    /// Replaces the bearer token of this client and its clones.
    pub(crate) fn set_token(&self, token: &str) {
        token.clone_into(&mut self.token.write().expect("the token lock"));
    }

    /// The HTTP client, without the token.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The default namespace (`default` unless the config says otherwise).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The CA a join token pins, fetched from `base` and checked: for a `K10<hash>::` token
    /// over https, `GET /cacerts` without verifying the server (nothing secret is sent), and
    /// the answer's SHA-256 must be the pin. None for a token without a pin.
    ///
    /// Fails with [`Error::CaMismatch`] when the server's CA is not the pinned one,
    /// [`Error::Config`] for a pinned token over plain `http://`, [`Error::Unreachable`] or a
    /// Status when `/cacerts` cannot be fetched.
    pub async fn pinned_ca(base: &str, join_token: &JoinToken) -> Result<Option<Vec<u8>>> {
        if join_token.ca_sha256.is_none() {
            return Ok(None);
        }
        if !base.starts_with("https://") {
            return Err(Error::Config(format!(
                "the join token pins a CA, but {base} is not https://"
            )));
        }
        let fetch = Self::with_http(http_client(USER_AGENT, Trust::Unverified)?, base, "", None);
        let req = fetch
            .http
            .get(format!("{}/cacerts", fetch.base()))
            .timeout(REQUEST_TIMEOUT);
        let resp = fetch
            .failover(req.build().map_err(|e| fetch.unreachable(e))?)
            .await?;
        let code = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| fetch.unreachable(e))?;
        if code >= 400 {
            return Err(Error::from_body(code, &bytes));
        }
        join_token.check(&bytes)?;
        Ok(Some(bytes.to_vec()))
    }

    /// Trades a join token for a node token (`POST /auth/v1/join`). A token that pins a CA
    /// (`K10<sha256>::<secret>`) first gets the server's CA and checks it against the pin
    /// ([`Client::pinned_ca`]), then joins trusting that CA only; a token without a pin trusts
    /// the system's roots.
    ///
    /// Fails with [`Error::CaMismatch`] (before the token is sent anywhere) when the server's
    /// CA is not the pinned one, with the server's Status, or [`Error::Decode`] when the
    /// answer has no token.
    pub async fn join(base: &str, join_token: &str, node: &str) -> Result<Joined> {
        Self::join_trusting(base, join_token, node, None, &Default::default()).await
    }

    /// As [`Client::join`], with a CA already at hand (e.g. saved at an earlier join): it is
    /// checked against the pin instead of fetching one. A new Node gets `labels` (a node
    /// cannot relabel itself afterwards).
    ///
    /// Fails as [`Client::join`] does.
    pub async fn join_trusting(
        base: &str,
        join_token: &str,
        node: &str,
        known_ca: Option<&[u8]>,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<Joined> {
        let parsed = JoinToken::parse(join_token)?;
        let ca = match known_ca {
            Some(pem) => {
                parsed.check(pem)?;
                Some(pem.to_vec())
            }
            None => Self::pinned_ca(base, &parsed).await?,
        };
        let v = Self::with_ca(base, &parsed.token, ca.as_deref())?
            .post(
                "/auth/v1/join",
                json!({ "nodeName": node, "labels": labels }),
            )
            .await?;
        let token = v["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode("join answered without a token".into()))?;
        Ok(Joined { token, ca_pem: ca })
    }

    /// A request to `path` (which starts with `/`) with the token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base()))
            .bearer_auth(self.token())
    }

    /// Sends and decodes the JSON answer (a body that is not JSON becomes
    /// `{"reason": "Unknown", "message": <text>}`); a code of 400 or more becomes
    /// [`Error::Status`].
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let (code, _, body) = self.send_full(req).await?;
        Ok((code, body))
    }

    /// As [`Client::send`], with the response headers. A 401 of a client with a login session
    /// refreshes it and sends the request once more (not for a streamed body, which cannot
    /// be sent twice).
    pub async fn send_full(&self, req: reqwest::RequestBuilder) -> Result<(u16, HeaderMap, Value)> {
        let resp = self.execute(req).await?;
        self.answer(resp).await
    }

    /// The code, headers and JSON of an answer; a code of 400 or more becomes
    /// [`Error::Status`].
    pub(crate) async fn answer(&self, resp: reqwest::Response) -> Result<(u16, HeaderMap, Value)> {
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

    /// Sends a request (to the servers in turn, see [`Client::failover`]); on a 401, with a
    /// login session, refreshes it and sends the request once more with the new token. The
    /// answer of the last attempt.
    async fn execute(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let req = req.build().map_err(|e| self.unreachable(e))?;
        let again = self.refresher.as_ref().and_then(|_| req.try_clone());
        let resp = self.failover(req).await?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let (Some(refresher), Some(mut again)) = (&self.refresher, again) else {
            return Ok(resp);
        };
        let used = again
            .headers()
            .get(reqwest::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let Some(token) = refresher.refresh(self, &used).await else {
            return Ok(resp);
        };
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Error::Decode("the refreshed token is not a header value".into()))?;
        again
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, value);
        self.failover(again).await
    }

    /// Sends `req` (built for one of this client's servers) starting at the server that
    /// answered last, each server at most once: on to the next after a connect-phase failure
    /// (any verb: nothing was sent), after a failure once sent (GET and HEAD only: a write
    /// fails with [`Error::MayHaveApplied`]), and after an answer 503 or 429 with a short
    /// `Retry-After` (GET and HEAD only). A request whose body cannot be copied (a streamed
    /// upload) goes to one server only. The server that answers becomes the first for the next
    /// calls. When every server was tried, the last answer, else the last failure.
    pub(crate) async fn failover(&self, req: reqwest::Request) -> Result<reqwest::Response> {
        let url = req.url().as_str().to_owned();
        let Some((_, rest)) = self
            .servers
            .split(&url)
            .filter(|_| self.servers().len() > 1)
        else {
            let method = req.method().clone();
            return self
                .http
                .execute(req)
                .await
                .map_err(|e| sent_error(self.base(), &method, e));
        };
        let urls = self.servers.urls();
        let start = self.servers.current();
        let method = req.method().clone();
        let repeatable = servers::repeatable(&method);
        let mut next = Some(req);
        let mut answered = None;
        let mut failed = None;
        for k in 0..urls.len() {
            let i = (start + k) % urls.len();
            let Some(mut req) = next.take() else { break };
            next = req.try_clone().filter(|_| k + 1 < urls.len());
            match reqwest::Url::parse(&format!("{}{rest}", urls[i])) {
                Ok(u) => *req.url_mut() = u,
                Err(e) => return Err(Error::Config(format!("{}: {e}", urls[i]))),
            }
            match self.http.execute(req).await {
                Ok(resp)
                    if repeatable
                        && next.is_some()
                        && servers::moves_on(resp.status(), resp.headers()) =>
                {
                    tracing::debug!(
                        server = urls[i],
                        code = resp.status().as_u16(),
                        "trying the next API server"
                    );
                    answered = Some(resp);
                }
                Ok(resp) => {
                    self.servers.set_current(i);
                    return Ok(resp);
                }
                Err(e) if e.is_connect() || repeatable => {
                    tracing::debug!(server = urls[i], error = %e, "trying the next API server");
                    failed = Some(Error::Unreachable {
                        server: urls[i].clone(),
                        source: e,
                    });
                }
                Err(e) => return Err(sent_error(&urls[i], &method, e)),
            }
        }
        match (answered, failed) {
            (Some(resp), _) => Ok(resp),
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::Config("no API server to send to".into())),
        }
    }

    pub(crate) fn unreachable(&self, source: reqwest::Error) -> Error {
        Error::Unreachable {
            server: self.base().to_owned(),
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
        let resp = self.execute(self.request(Method::GET, path)).await?;
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
        let server = self.base().to_owned();
        let chunks = resp.bytes_stream().map(move |c| {
            c.map_err(|source| Error::Unreachable {
                server: server.clone(),
                source,
            })
        });
        Ok(decode(chunks))
    }
}
