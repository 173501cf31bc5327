//! The API client `catalystctl` uses: the client config, request helpers, Status errors.

use std::path::{Path, PathBuf};

use catalyst_schemas::{KindInfo, API_VERSION};
use serde::Deserialize;
use serde_json::Value;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The config could not be read.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached.
    #[error("cannot reach the API server at {server}: {source}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a Status failure.
    #[error("{}", format_status(.status))]
    Status {
        /// The HTTP code.
        code: u16,
        /// The Status object.
        status: Value,
    },
}

impl ClientError {
    /// The HTTP code, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for 404.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }
}

/// `Error from server (Reason): message` plus one line per cause.
pub fn format_status(status: &Value) -> String {
    let reason = status
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let mut out = format!("Error from server ({reason}): {message}");
    if let Some(causes) = status.pointer("/details/causes").and_then(Value::as_array) {
        for c in causes {
            let field = c.get("field").and_then(Value::as_str).unwrap_or("");
            let msg = c.get("message").and_then(Value::as_str).unwrap_or("");
            out.push_str(&format!("\n  {field}: {msg}"));
        }
    }
    out
}

/// The client config file (`admin.yaml`).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `http://host:port`.
    pub server: String,
    /// The bearer token.
    pub token: String,
    /// The default namespace.
    #[serde(default = "default_ns")]
    pub namespace: String,
}

fn default_ns() -> String {
    "default".to_owned()
}

impl Config {
    /// `--config FILE`, else `$CATALYST_CONFIG`, else `~/.catalyst/config`.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ClientError> {
        if let Some(p) = explicit {
            return Ok(p.to_owned());
        }
        if let Some(p) = std::env::var_os("CATALYST_CONFIG").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        let home = std::env::var_os("HOME")
            .ok_or_else(|| ClientError::Config("HOME is not set; pass --config".into()))?;
        Ok(PathBuf::from(home).join(".catalyst/config"))
    }

    /// Reads the config.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ClientError> {
        let path = Self::locate(explicit)?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ClientError::Config(format!(
                "cannot read the client config {}: {e} (use --config, $CATALYST_CONFIG, or copy <data-dir>/admin.yaml to ~/.catalyst/config)",
                path.display()
            ))
        })?;
        yaml_serde::from_str(&text)
            .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
    }
}

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The config in use.
    pub config: Config,
}

/// The API path of a collection.
pub fn collection_path(kind: &KindInfo, namespace: Option<&str>) -> String {
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => format!("/apis/{API_VERSION}/namespaces/{ns}/{}", kind.plural),
        _ => format!("/apis/{API_VERSION}/{}", kind.plural),
    }
}

/// The API path of an object.
pub fn object_path(kind: &KindInfo, namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", collection_path(kind, namespace))
}

impl Client {
    /// A client for `config`.
    pub fn new(config: Config) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("catalystctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client");
        Self { http, config }
    }

    /// A request to `path` (which starts with `/`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!("{}{path}", self.config.server.trim_end_matches('/')),
            )
            .bearer_auth(&self.config.token)
    }

    /// Sends and decodes the JSON answer, turning failures into [`ClientError::Status`].
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), ClientError> {
        let (code, _, body) = self.send_full(req).await?;
        Ok((code, body))
    }

    /// As [`Client::send`], with the response headers.
    pub async fn send_full(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, reqwest::header::HeaderMap, Value), ClientError> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::json!({"reason": "Unknown", "message": String::from_utf8_lossy(&bytes)})
        });
        if code >= 400 {
            return Err(ClientError::Status { code, status: body });
        }
        Ok((code, headers, body))
    }

    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            server: self.config.server.clone(),
            source,
        }
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self.send(self.request(reqwest::Method::GET, path)).await?.1)
    }

    /// A streaming GET (watch): the raw response.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().as_u16() >= 400 {
            let code = resp.status().as_u16();
            let status = resp.json().await.unwrap_or(Value::Null);
            return Err(ClientError::Status { code, status });
        }
        Ok(resp)
    }
}
