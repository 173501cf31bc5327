//! Webhook notifications: the bodies (generic JSON, Discord, Slack) and their delivery, with a
//! timeout, retries with exponential backoff, and a guard against server-side request forgery.
//!
//! A webhook URL is written by a tenant, so it may name the control plane's own services
//! (`127.0.0.1`), the cloud's metadata service (`169.254.169.254`), the private network, or a
//! name resolving to any of those. Each delivery resolves the host once, refuses unless
//! **every** address is public ([`catalyst_schemas::net::non_public`]) or inside a block the
//! operator allowed (`--alert-webhook-allow-cidr`), then connects only to those checked
//! addresses (the client's DNS is overridden for that host and refuses every other name, no
//! proxy). Redirects are not followed: a 3xx answer is a failed delivery.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use catalyst_schemas::alert::WebhookFormat;
use catalyst_schemas::net::{refused, Cidr};
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde_json::{json, Value};

use super::state::Notice;

/// Why a webhook could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The URL does not parse, or is not http(s), or has no host.
    #[error("invalid webhook URL: {0}")]
    Invalid(String),
    /// The host is or resolves to an address that is not public and not allowed.
    #[error("webhook refused: {0}")]
    Refused(String),
    /// The host does not resolve.
    #[error("webhook host {host} does not resolve: {why}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        why: String,
    },
    /// The receiver answered with an error status (or a redirect, which is not followed).
    #[error("webhook {host} answered {code}")]
    Status {
        /// The host.
        host: String,
        /// The HTTP status.
        code: u16,
    },
    /// No answer: connection refused, timeout, TLS failure.
    #[error("webhook {host}: {why}")]
    Transport {
        /// The host.
        host: String,
        /// Why.
        why: String,
    },
}

impl NotifyError {
    /// Worth trying again: no answer, a 5xx or a 429.
    fn retryable(&self) -> bool {
        match self {
            NotifyError::Transport { .. } => true,
            NotifyError::Status { code, .. } => *code >= 500 || *code == 429,
            _ => false,
        }
    }
}

/// What one notification says.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Firing, Reminder or Resolved.
    pub notice: Notice,
    /// The rule's namespace.
    pub namespace: String,
    /// The rule's name.
    pub rule: String,
    /// What it is about, e.g. `gameserver/survival`.
    pub target: String,
    /// The condition, e.g. `Memory > 90`.
    pub condition: String,
    /// What was seen.
    pub message: String,
    /// The metric's value.
    pub value: Option<f64>,
    /// When it started firing.
    pub fired_at: Option<DateTime<Utc>>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Message {
    fn status(&self) -> &'static str {
        match self.notice {
            Notice::Firing | Notice::Reminder => "firing",
            Notice::Resolved => "resolved",
        }
    }

    fn headline(&self) -> String {
        let what = match self.notice {
            Notice::Firing => "FIRING",
            Notice::Reminder => "STILL FIRING",
            Notice::Resolved => "RESOLVED",
        };
        format!(
            "[{what}] {}/{} on {}: {}",
            self.namespace, self.rule, self.target, self.message
        )
    }
}

/// The request body of `msg` in `format`.
pub fn body(format: WebhookFormat, msg: &Message) -> Value {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    match format {
        WebhookFormat::Generic => json!({
            "version": "1",
            "status": msg.status(),
            "reminder": msg.notice == Notice::Reminder,
            "rule": {"namespace": msg.namespace, "name": msg.rule},
            "target": msg.target,
            "condition": msg.condition,
            "message": msg.message,
            "value": msg.value,
            "firedAt": time(msg.fired_at),
            "resolvedAt": time(msg.resolved_at),
        }),
        WebhookFormat::Discord => {
            let color = match msg.notice {
                Notice::Resolved => 0x2e_cc_71,
                _ => 0xe7_4c_3c,
            };
            let mut fields = vec![
                json!({"name": "Target", "value": msg.target, "inline": true}),
                json!({"name": "Condition", "value": msg.condition, "inline": true}),
            ];
            if let Some(v) = msg.value {
                fields.push(json!({"name": "Value", "value": v.to_string(), "inline": true}));
            }
            json!({
                "content": truncate(&msg.headline(), 2000),
                "allowed_mentions": {"parse": []},
                "embeds": [{
                    "title": truncate(&format!("{}/{} {}", msg.namespace, msg.rule, msg.status()), 256),
                    "description": truncate(&msg.message, 4096),
                    "color": color,
                    "timestamp": time(msg.resolved_at.or(msg.fired_at)),
                    "fields": fields,
                }],
            })
        }
        WebhookFormat::Slack => json!({
            "text": msg.headline(),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text",
                    "text": truncate(&format!("{} {}/{}", msg.status(), msg.namespace, msg.rule), 150)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&msg.message, 3000)},
                 "fields": [
                    {"type": "mrkdwn", "text": format!("*Target*\n{}", msg.target)},
                    {"type": "mrkdwn", "text": format!("*Condition*\n{}", msg.condition)},
                 ]},
            ],
        }),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct Sender {
    /// Blocks of non-public addresses a webhook may reach nevertheless (none by default).
    pub allow: Vec<Cidr>,
    /// The most one attempt may take, connection included.
    pub timeout: Duration,
    /// Attempts after the first one.
    pub retries: usize,
    /// The first delay between attempts (doubling, with jitter, up to 30 s).
    pub first_delay: Duration,
}

impl Default for Sender {
    /// No address beyond the public ones, 10 s per attempt, 4 retries from 1 s.
    fn default() -> Self {
        Sender {
            allow: Vec::new(),
            timeout: Duration::from_secs(10),
            retries: 4,
            first_delay: Duration::from_secs(1),
        }
    }
}

/// The host of a URL for messages (never the path or query, which may hold a secret).
fn shown(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => "(no host)".to_owned(),
    }
}

impl Sender {
    /// POSTs `body` to `url`, trying again with backoff after no answer, a 5xx or a 429.
    ///
    /// # Errors
    /// The last attempt's [`NotifyError`]; a refused address or an invalid URL at once.
    pub async fn send(&self, url: &str, body: &Value) -> Result<(), NotifyError> {
        let url = Url::parse(url).map_err(|e| NotifyError::Invalid(e.to_string()))?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.retries)
            .with_jitter();
        (|| self.attempt(&url, body))
            .retry(backoff)
            .when(NotifyError::retryable)
            .notify(|e, after| {
                tracing::info!(error = %e, retry_in_ms = after.as_millis() as u64, "alert webhook failed, retrying");
            })
            .await
    }

    /// The addresses of the URL's host, every one of them public or allowed.
    ///
    /// # Errors
    /// [`NotifyError::Invalid`], [`NotifyError::Resolve`], [`NotifyError::Refused`].
    pub async fn admit(&self, url: &Url) -> Result<Vec<SocketAddr>, NotifyError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(NotifyError::Invalid(format!(
                "{}: only http and https",
                url.scheme()
            )));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| NotifyError::Invalid("no port".into()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| NotifyError::Invalid("no host".into()))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let found =
                    tokio::time::timeout(self.timeout, tokio::net::lookup_host((bare, port)))
                        .await
                        .map_err(|_| NotifyError::Resolve {
                            host: bare.into(),
                            why: "timed out".into(),
                        })?
                        .map_err(|e| NotifyError::Resolve {
                            host: bare.into(),
                            why: e.to_string(),
                        })?;
                let mut v: Vec<SocketAddr> = Vec::new();
                found.for_each(|a| {
                    if !v.contains(&a) {
                        v.push(a)
                    }
                });
                v
            }
        };
        if addrs.is_empty() {
            return Err(NotifyError::Resolve {
                host: bare.into(),
                why: "no address".into(),
            });
        }
        for a in &addrs {
            if let Some(class) = refused(a.ip(), &self.allow) {
                let why = if bare == a.ip().to_string() {
                    format!("{} is {class}, not a public address", a.ip())
                } else {
                    format!(
                        "{bare} resolves to {}, which is {class}, not a public address",
                        a.ip()
                    )
                };
                return Err(NotifyError::Refused(why));
            }
        }
        Ok(addrs)
    }

    async fn attempt(&self, url: &Url, body: &Value) -> Result<(), NotifyError> {
        let addrs = self.admit(url).await?;
        let host = shown(url);
        let transport = |e: reqwest::Error| NotifyError::Transport {
            host: host.clone(),
            why: chain(&e.without_url()),
        };
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .no_proxy()
            .user_agent(concat!("catalyst-alerts/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(catalyst_client::noresolve::NoResolve));
        if let Some(h) = url
            .host_str()
            .filter(|h| h.parse::<IpAddr>().is_err() && !h.starts_with('['))
        {
            builder = builder.resolve_to_addrs(h, &addrs);
        }
        let client = builder.build().map_err(transport)?;
        let resp = client
            .post(url.clone())
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        let code = resp.status();
        if code.is_success() {
            Ok(())
        } else {
            Err(NotifyError::Status {
                host,
                code: code.as_u16(),
            })
        }
    }
}

/// An error with its causes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}
