//! A session with one registry for one repository: requests admitted by the guard, redirects
//! followed by hand, one auth challenge answered (Basic or a Bearer token), documents read with
//! a size limit and blobs streamed with one.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, LOCATION, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::address::{check_ip, GuardedResolver};
use super::auth::{param, Registries};
use super::error::RegistryError;
use super::guard::{without_query, Admit, Origin, Rules};
use super::reference::{valid_digest, Reference};

/// The most a manifest, an index or an image configuration may weigh.
pub const MAX_DOCUMENT_BYTES: u64 = 4 << 20;
/// The most a token endpoint's answer may weigh.
const MAX_TOKEN_BYTES: u64 = 1 << 20;
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// Media types a manifest request accepts.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A session with one registry for one repository.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    base: Url,
    rules: Rules,
    repository: String,
    credentials: Option<(String, String)>,
    auth: Option<String>,
}

impl Session {
    /// Opens a session for a reference.
    pub fn new(r: &Reference, regs: &Registries) -> Result<Self, RegistryError> {
        let invalid = |message: String| RegistryError::Invalid {
            registry: r.registry.clone(),
            message,
        };
        let (base, rules) = Rules::for_reference(r, regs).map_err(invalid)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                open: rules.open_names(),
            }))
            .build()
            .map_err(|e| invalid(format!("http client: {e}")))?;
        Ok(Self {
            http,
            base,
            rules,
            repository: r.repository.clone(),
            credentials: regs.credentials.get(&r.registry).cloned(),
            auth: None,
        })
    }

    fn registry(&self) -> String {
        self.rules.registry.clone()
    }

    fn transport(&self, e: reqwest::Error) -> RegistryError {
        RegistryError::Transport {
            registry: self.registry(),
            // the chain names the cause (a refused address, a timeout)
            message: {
                let mut m = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    m.push_str(": ");
                    m.push_str(&s.to_string());
                    src = s.source();
                }
                m
            },
        }
    }

    /// Checks that a request may go to `url`: scheme and host rules, then, for hosts that
    /// must be public, every address the name resolves to (the resolver checks again when it
    /// connects).
    async fn admit(&self, url: &Url) -> Result<(), RegistryError> {
        let forbidden = |reason: String| RegistryError::Forbidden {
            registry: self.registry(),
            target: without_query(url),
            reason,
        };
        if self.rules.admit(url).map_err(forbidden)? == Admit::Anywhere {
            return Ok(());
        }
        let host = url.host_str().unwrap_or_default();
        if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            return Ok(()); // a literal address, checked by admit
        }
        let name = host;
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs =
            tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| RegistryError::Transport {
                    registry: self.registry(),
                    message: format!("cannot resolve {name}: {e}"),
                })?;
        for a in addrs {
            check_ip(a.ip(), &format!("{name} resolves to an address")).map_err(forbidden)?;
        }
        Ok(())
    }

    /// Answers a 401 challenge from the registry: Basic with the credentials, or a Bearer
    /// token from the realm it names.
    async fn authenticate(&mut self, challenge: &str) -> Result<(), RegistryError> {
        let basic = self.credentials.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        if challenge.to_ascii_lowercase().starts_with("basic") {
            self.auth = basic;
            return Ok(());
        }
        if !challenge.to_ascii_lowercase().starts_with("bearer") {
            return Err(RegistryError::Invalid {
                registry: self.registry(),
                message: format!("unsupported challenge {challenge:?}"),
            });
        }
        let realm = param(challenge, "realm").ok_or_else(|| RegistryError::Invalid {
            registry: self.registry(),
            message: format!("no realm in challenge {challenge:?}"),
        })?;
        let mut realm = Url::parse(&realm).map_err(|e| RegistryError::Invalid {
            registry: self.registry(),
            message: format!("bad token realm {realm:?}: {e}"),
        })?;
        self.admit(&realm).await?;
        {
            let mut q = realm.query_pairs_mut();
            q.append_pair(
                "scope",
                &param(challenge, "scope")
                    .unwrap_or_else(|| format!("repository:{}:pull", self.repository)),
            );
            if let Some(service) = param(challenge, "service") {
                q.append_pair("service", &service);
            }
        }
        let mut req = self.http.get(realm.clone());
        // the token protocol: the credentials go to the realm the registry's own challenge
        // names (never to redirect targets: the token endpoint's redirects are not followed)
        if let Some(b) = basic {
            req = req.header(AUTHORIZATION, b);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        if !resp.status().is_success() {
            let code = resp.status().as_u16();
            return Err(RegistryError::Refused {
                registry: self.registry(),
                code,
                what: format!("a token from {}", without_query(&realm)),
                hint: if resp.status().is_redirection() {
                    " (token endpoints' redirects are not followed)".into()
                } else {
                    " (check the credentials in the auth file)".into()
                },
            });
        }
        let body = self
            .read_limited(resp, "the token", MAX_TOKEN_BYTES)
            .await?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| RegistryError::Invalid {
            registry: self.registry(),
            message: format!("token endpoint: {e}"),
        })?;
        let token = v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| RegistryError::Invalid {
                registry: self.registry(),
                message: "token endpoint answered without a usable token".into(),
            })?;
        self.auth = Some(format!("Bearer {token}"));
        Ok(())
    }

    /// GET `/v2/<repo>/<path>`, following redirects (each admitted; credentials only to the
    /// registry's own origin) and answering one auth challenge from the registry.
    pub async fn get(
        &mut self,
        path: &str,
        accept: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let start = self.base.join(path).map_err(|e| RegistryError::Invalid {
            registry: self.registry(),
            message: format!("bad path {path:?}: {e}"),
        })?;
        let mut url = start.clone();
        let mut challenged = false;
        let mut hops = 0;
        loop {
            self.admit(&url).await?;
            let own = Origin::of(&url).as_ref() == Some(&self.rules.origin);
            let mut req = self.http.get(url.clone()).header(ACCEPT, accept);
            if own {
                if let Some(a) = &self.auth {
                    req = req.header(AUTHORIZATION, a);
                }
            }
            let resp = req.send().await.map_err(|e| self.transport(e))?;
            let status = resp.status();
            if status.is_redirection() {
                if let Some(loc) = resp.headers().get(LOCATION) {
                    hops += 1;
                    if hops > MAX_REDIRECTS {
                        return Err(RegistryError::Invalid {
                            registry: self.registry(),
                            message: format!("more than {MAX_REDIRECTS} redirects for {path}"),
                        });
                    }
                    let loc = loc.to_str().unwrap_or_default();
                    let next = url.join(loc).map_err(|e| RegistryError::Invalid {
                        registry: self.registry(),
                        message: format!("bad redirect {loc:?}: {e}"),
                    })?;
                    tracing::debug!(
                        registry = self.rules.registry,
                        to = %without_query(&next),
                        "redirect"
                    );
                    url = next;
                    continue;
                }
            }
            if status == StatusCode::UNAUTHORIZED && own && !challenged {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("Basic")
                    .to_owned();
                self.authenticate(&challenge).await?;
                challenged = true;
                continue;
            }
            if !status.is_success() {
                let code = status.as_u16();
                let hint = match code {
                    401 | 403 => " (private? add credentials to the node's auth file)",
                    404 => " (no such image or tag)",
                    _ => "",
                };
                return Err(RegistryError::Refused {
                    registry: self.registry(),
                    code,
                    what: format!("{}/{path}", self.repository),
                    hint: hint.into(),
                });
            }
            return Ok(resp);
        }
    }

    async fn read_limited(
        &self,
        resp: reqwest::Response,
        what: &str,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = || RegistryError::TooLarge {
            registry: self.registry(),
            what: what.to_owned(),
            limit,
        };
        if declared_length(&resp).is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.transport(e))?;
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// A document (manifest, index, config) of at most [`MAX_DOCUMENT_BYTES`]: its media type
    /// and bytes.
    pub async fn document(
        &mut self,
        path: &str,
        accept: &str,
    ) -> Result<(String, Vec<u8>), RegistryError> {
        let resp = self.get(path, accept).await?;
        let media = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let body = self
            .read_limited(
                resp,
                &format!("{}/{path}", self.repository),
                MAX_DOCUMENT_BYTES,
            )
            .await?;
        Ok((media, body))
    }

    /// A blob as a stream of chunks; more than `max` bytes is an error.
    pub async fn blob(
        &mut self,
        digest: &str,
        max: u64,
    ) -> Result<
        impl futures::Stream<Item = Result<Vec<u8>, RegistryError>> + Send + 'static,
        RegistryError,
    > {
        if !valid_digest(digest) {
            return Err(RegistryError::Invalid {
                registry: self.registry(),
                message: format!("bad digest {digest:?}"),
            });
        }
        let resp = self.get(&format!("blobs/{digest}"), "*/*").await?;
        let registry = self.registry();
        let what = format!("blob {digest}");
        let too_large = move |registry: String| RegistryError::TooLarge {
            registry,
            what: what.clone(),
            limit: max,
        };
        if declared_length(&resp).is_some_and(|n| n > max) {
            return Err(too_large(registry));
        }
        Ok(resp
            .bytes_stream()
            .scan((0u64, false), move |(seen, done), c| {
                if *done {
                    return std::future::ready(None);
                }
                let item = match c {
                    Ok(b) => {
                        *seen += b.len() as u64;
                        if *seen > max {
                            Err(too_large(registry.clone()))
                        } else {
                            Ok(b.to_vec())
                        }
                    }
                    Err(e) => Err(RegistryError::Transport {
                        registry: registry.clone(),
                        message: e.to_string(),
                    }),
                };
                // nothing after an error
                *done = item.is_err();
                std::future::ready(Some(item))
            }))
    }
}

fn declared_length(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
