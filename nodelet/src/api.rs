//! The nodelet's client of the API server: join, its Node, GameServer watches and status
//! writes, Events.

use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The API group path.
pub const API: &str = "/apis/catalyst.dev/v1alpha1";

/// An API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No connection or a broken stream.
    #[error("API server unreachable: {0}")]
    Unreachable(String),
    /// The server answered with an error Status.
    #[error("{code}: {message}")]
    Status {
        /// HTTP status.
        code: u16,
        /// The Status message.
        message: String,
    },
    /// A watch resource version is too old.
    #[error("resource version too old")]
    Gone,
}

impl ApiError {
    /// HTTP status when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            ApiError::Gone => Some(410),
            ApiError::Unreachable(_) => None,
        }
    }
}

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn unreachable(e: reqwest::Error) -> ApiError {
    ApiError::Unreachable(e.to_string())
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ApiError> {
    let code = resp.status();
    if code.is_success() {
        return Ok(resp);
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if code == StatusCode::GONE {
        return Err(ApiError::Gone);
    }
    Err(ApiError::Status {
        code: code.as_u16(),
        message: body["message"].as_str().unwrap_or("").to_owned(),
    })
}

/// The URL path of a namespaced object.
pub fn gs_path(ns: &str, name: &str) -> String {
    format!("{API}/namespaces/{ns}/gameservers/{name}")
}

impl Client {
    /// A client with a token.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
            base: base.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
        }
    }

    /// The server URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Trades a join token for a node token.
    pub async fn join(base: &str, join_token: &str, node: &str) -> Result<String, ApiError> {
        let c = Self::new(base, join_token);
        let v: Value = c
            .call(
                Method::POST,
                "/auth/v1/join",
                Some(json!({"nodeName": node})),
            )
            .await?;
        v["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Status {
                code: 500,
                message: "join answered without a token".into(),
            })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            rb = if method == Method::PATCH {
                rb.header("content-type", "application/merge-patch+json")
                    .body(serde_json::to_vec(&b).expect("json"))
            } else {
                rb.json(&b)
            };
        }
        let resp = check(rb.send().await.map_err(unreachable)?).await?;
        resp.json().await.map_err(unreachable)
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call(Method::GET, path, None).await
    }

    /// Merge-patch a path.
    pub async fn patch(&self, path: &str, patch: Value) -> Result<Value, ApiError> {
        self.call(Method::PATCH, path, Some(patch)).await
    }

    /// POST to a path.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Records an Event about a GameServer (best effort).
    pub async fn event(&self, gs: &Value, type_: &str, reason: &str, message: &str) {
        let name = gs
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ns = gs
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let now = chrono::Utc::now();
        let event = json!({
            "apiVersion": "catalyst.dev/v1alpha1", "kind": "Event",
            "metadata": {"generateName": format!("{name}."), "namespace": ns},
            "spec": {
                "involvedObject": {"kind": "GameServer", "name": name, "namespace": ns,
                                   "uid": gs.pointer("/metadata/uid")},
                "reason": reason, "message": message, "type": type_, "count": 1,
                "firstTimestamp": now, "lastTimestamp": now, "source": "nodelet",
            }
        });
        if let Err(e) = self
            .post(&format!("{API}/namespaces/{ns}/events"), event)
            .await
        {
            tracing::warn!(error = %e, reason, "cannot record an event");
        }
    }

    /// Lists GameServers bound to `node` (every namespace); returns items and the list revision.
    pub async fn list_servers(&self, node: &str) -> Result<(Vec<Value>, String), ApiError> {
        let v = self
            .get(&format!(
                "{API}/gameservers?fieldSelector=status.nodeName%3D{node}"
            ))
            .await?;
        let rv = v
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_owned();
        let items = v["items"].as_array().cloned().unwrap_or_default();
        Ok((items, rv))
    }

    /// Watches GameServers bound to `node` from `rv`: a stream of (type, object).
    pub async fn watch_servers(
        &self,
        node: &str,
        rv: &str,
    ) -> Result<impl Stream<Item = Result<(String, Value), ApiError>>, ApiError> {
        let url = format!(
            "{}{API}/gameservers?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&fieldSelector=status.nodeName%3D{node}",
            self.base
        );
        let resp = check(
            self.http
                .get(url)
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(unreachable)?,
        )
        .await?;
        let bytes = resp.bytes_stream();
        Ok(futures::stream::unfold(
            (bytes, Vec::<u8>::new()),
            |(mut bytes, mut buf)| async move {
                loop {
                    if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let v: Value = match serde_json::from_slice(&line) {
                            Ok(v) => v,
                            Err(_) => continue,
                        };
                        let typ = v["type"].as_str().unwrap_or("").to_owned();
                        if typ == "ERROR" {
                            let code = v.pointer("/object/code").and_then(Value::as_u64);
                            let err = if code == Some(410) {
                                ApiError::Gone
                            } else {
                                ApiError::Status {
                                    code: code.unwrap_or(500) as u16,
                                    message: v
                                        .pointer("/object/message")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                }
                            };
                            return Some((Err(err), (bytes, buf)));
                        }
                        return Some((Ok((typ, v["object"].clone())), (bytes, buf)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        Some(Err(e)) => return Some((Err(unreachable(e)), (bytes, buf))),
                        None => return None,
                    }
                }
            },
        ))
    }
}
