//! Who may use SFTP on which server: decided by the API server, never by the nodelet. The
//! nodelet asks through [`Authority`]; [`ApiAuthority`] is the real one (the API server's
//! `/auth/v1/sftp/*` endpoints), tests use a fake.

use std::time::Duration;

use async_trait::async_trait;
use catalyst_client::Client;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

use serde_json::{json, Value};

/// Decides logins and whether an open session may go on.
#[async_trait]
pub trait Authority: Send + Sync + 'static {
    /// Checks a password (or an API key given as the password) for `user` on GameServer
    /// `namespace/server`; `Ok(grant)` when the user may use SFTP there.
    async fn login_password(
        &self,
        user: &str,
        namespace: &str,
        server: &str,
        password: &str,
        remote: IpAddr,
    ) -> Result<Grant, Denied>;

    /// Same for a public key (OpenSSH one-line format `"ssh-ed25519 AAAA…"`) the client proved
    /// it holds.
    async fn login_key(
        &self,
        user: &str,
        namespace: &str,
        server: &str,
        public_key: &str,
        remote: IpAddr,
    ) -> Result<Grant, Denied>;

    /// Whether the grant still stands (user not disabled, permission `file.sftp` still held,
    /// server not suspended or deleted). Called every recheck interval (default 2 s) for every
    /// open session; `Ok(false)` closes the session at once, errors close it after a few in a
    /// row.
    async fn still_allowed(&self, grant: &Grant) -> Result<bool, Denied>;
}

/// What a login was granted: who, on which server, how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// The user, as the API server names them.
    pub user: String,
    /// The GameServer's namespace.
    pub namespace: String,
    /// The GameServer's name.
    pub server: String,
    /// The GameServer's uid: must be the server bound to this node under that name.
    pub uid: String,
    /// Reads only: every change is refused.
    #[serde(default)]
    pub read_only: bool,
    /// The API key the session was opened with (given as the password), if one: its deletion
    /// ends the session too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A refusal (or a failure to decide), with the reason for the nodelet's log. The client is
/// never told the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denied {
    /// Why.
    pub reason: String,
}

impl Denied {
    /// A refusal for `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Denied {
            reason: reason.into(),
        }
    }
}

/// The path of the login endpoint.
pub const LOGIN_PATH: &str = "/auth/v1/sftp/login";
/// The path of the recheck endpoint.
pub const CHECK_PATH: &str = "/auth/v1/sftp/check";

/// The real [`Authority`]: the API server, asked with the nodelet's client (its node token).
///
/// - `POST /auth/v1/sftp/login` with `{"username", "namespace", "server", "password"}` or
///   `{…, "publicKey"}` answers 200 with a [`Grant`] (`{"user", "namespace", "server", "uid",
///   "readOnly"}`), or 401/403 with a Status whose `message` is the reason.
/// - `POST /auth/v1/sftp/check` with `{"user", "namespace", "server", "uid"}` answers 200
///   `{"allowed": bool, "reason": "…"}`. A 401, 403, 404 or 410 is a definite no too; any
///   other failure (unreachable, 5xx, 429) is an error, which the session survives a few
///   times in a row.
#[derive(Debug, Clone)]
pub struct ApiAuthority {
    api: Client,
    timeout: Duration,
}

impl ApiAuthority {
    /// Asks the API server through `api`, each call bounded by 10 s.
    pub fn new(api: Client) -> Self {
        ApiAuthority {
            api,
            timeout: Duration::from_secs(10),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, catalyst_client::Error> {
        match tokio::time::timeout(self.timeout, self.api.post(path, body)).await {
            Ok(result) => result,
            Err(_) => Err(catalyst_client::Error::Decode(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }

    async fn login(&self, body: Value) -> Result<Grant, Denied> {
        match self.post(LOGIN_PATH, body).await {
            Ok(v) => serde_json::from_value::<Grant>(v)
                .map_err(|e| Denied::new(format!("the API server's grant: {e}"))),
            Err(e) => Err(Denied::new(reason_of(&e))),
        }
    }
}

/// The Status message of a refusal, or what went wrong.
fn reason_of(e: &catalyst_client::Error) -> String {
    match e.api_status() {
        Some(s) if !s.message.is_empty() => format!("{} ({})", s.message, s.code),
        _ => e.to_string(),
    }
}

#[async_trait]
impl Authority for ApiAuthority {
    async fn login_password(
        &self,
        user: &str,
        namespace: &str,
        server: &str,
        password: &str,
        remote: IpAddr,
    ) -> Result<Grant, Denied> {
        self.login(
            json!({"username": user, "namespace": namespace, "server": server,
                          "password": password, "remoteAddress": remote.to_string()}),
        )
        .await
    }

    async fn login_key(
        &self,
        user: &str,
        namespace: &str,
        server: &str,
        public_key: &str,
        remote: IpAddr,
    ) -> Result<Grant, Denied> {
        self.login(
            json!({"username": user, "namespace": namespace, "server": server,
                          "publicKey": public_key, "remoteAddress": remote.to_string()}),
        )
        .await
    }

    async fn still_allowed(&self, grant: &Grant) -> Result<bool, Denied> {
        let body = serde_json::to_value(grant).unwrap_or(Value::Null);
        match self.post(CHECK_PATH, body).await {
            Ok(v) => {
                let allowed = v.get("allowed").and_then(Value::as_bool).ok_or_else(|| {
                    Denied::new("the API server's check answer has no \"allowed\"")
                })?;
                if !allowed {
                    let reason = v.get("reason").and_then(Value::as_str).unwrap_or("");
                    tracing::info!(
                        user = grant.user,
                        namespace = grant.namespace,
                        server = grant.server,
                        reason,
                        "SFTP grant withdrawn by the API server"
                    );
                }
                Ok(allowed)
            }
            Err(e) if matches!(e.code(), Some(401 | 403 | 404 | 410)) => {
                tracing::info!(
                    user = grant.user,
                    namespace = grant.namespace,
                    server = grant.server,
                    reason = reason_of(&e),
                    "SFTP grant refused by the API server"
                );
                Ok(false)
            }
            Err(e) => Err(Denied::new(reason_of(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    /// A one-route-per-path HTTP server on loopback: answers `(code, body)` by path and
    /// records every request's path and JSON body.
    async fn api(
        answers: Vec<(&'static str, u16, Value)>,
    ) -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            while let Ok((stream, _)) = listener.accept().await {
                let mut rd = BufReader::new(stream);
                let mut line = String::new();
                rd.read_line(&mut line).await.expect("request line");
                let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    rd.read_line(&mut h).await.expect("header");
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().expect("length");
                    }
                }
                let mut body = vec![0; len];
                rd.read_exact(&mut body).await.expect("body");
                log.lock()
                    .expect("log")
                    .push((path.clone(), serde_json::from_slice(&body).expect("json")));
                let (want, code, answer) = answers.next().expect("an answer left");
                assert_eq!(path, want);
                let text = answer.to_string();
                let reply = format!(
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let mut stream = rd.into_inner();
                stream.write_all(reply.as_bytes()).await.expect("reply");
                let _ = stream.shutdown().await;
            }
        });
        (base, seen)
    }

    fn grant() -> Grant {
        Grant {
            user: "alice".into(),
            namespace: "team".into(),
            server: "mc".into(),
            uid: "u-1".into(),
            read_only: false,
            key: None,
        }
    }

    #[tokio::test]
    async fn the_api_authority_posts_logins_and_checks() {
        let status = |code: u16, message: &str| {
            json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                   "message": message, "reason": "Forbidden", "code": code})
        };
        let (base, seen) = api(vec![
            (
                LOGIN_PATH,
                200,
                json!({"user": "alice", "namespace": "team", "server": "mc",
                                     "uid": "u-1", "readOnly": true}),
            ),
            (LOGIN_PATH, 401, status(401, "bad credentials")),
            (CHECK_PATH, 200, json!({"allowed": true})),
            (
                CHECK_PATH,
                200,
                json!({"allowed": false, "reason": "permission file.sftp removed"}),
            ),
            (CHECK_PATH, 403, status(403, "user disabled")),
            (CHECK_PATH, 503, status(503, "store down")),
            (CHECK_PATH, 200, json!({"what": 1})),
        ])
        .await;
        let auth = ApiAuthority::new(Client::new(&base, "node-token"));
        let g = auth
            .login_password("alice", "team", "mc", "pw", [192, 0, 2, 7].into())
            .await
            .expect("granted");
        assert_eq!(
            g,
            Grant {
                read_only: true,
                ..grant()
            }
        );
        let denied = auth
            .login_key(
                "alice",
                "team",
                "mc",
                "ssh-ed25519 AAAA",
                [192, 0, 2, 7].into(),
            )
            .await
            .expect_err("refused");
        assert!(denied.reason.contains("bad credentials"), "{denied}");
        assert_eq!(auth.still_allowed(&grant()).await, Ok(true));
        assert_eq!(auth.still_allowed(&grant()).await, Ok(false));
        assert_eq!(auth.still_allowed(&grant()).await, Ok(false), "403 is a no");
        assert!(
            auth.still_allowed(&grant()).await.is_err(),
            "503 is an error"
        );
        assert!(
            auth.still_allowed(&grant()).await.is_err(),
            "no allowed field"
        );
        let seen = seen.lock().expect("log").clone();
        assert_eq!(
            seen[0].1,
            json!({"username": "alice", "namespace": "team", "server": "mc", "password": "pw",
                   "remoteAddress": "192.0.2.7"})
        );
        assert_eq!(
            seen[1].1,
            json!({"username": "alice", "namespace": "team", "server": "mc",
                   "publicKey": "ssh-ed25519 AAAA", "remoteAddress": "192.0.2.7"})
        );
        assert_eq!(
            seen[2].1,
            json!({"user": "alice", "namespace": "team", "server": "mc", "uid": "u-1",
                   "readOnly": false})
        );
    }
}
