//! A registry client (OCI distribution API v2) that writes what it pulls into containerd's
//! content store: manifests (OCI and Docker v2, indexes and lists), the config, the layers
//! streamed. Credentials from a Docker-style auth file (`{"auths": {"host": {"auth": …}}}`),
//! Basic or Bearer-token challenges; plain HTTP only for registries on loopback or listed as
//! insecure, as Docker does.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::Value;

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference cannot be parsed.
    #[error("invalid image reference {0:?}")]
    Reference(String),
    /// The registry could not be reached.
    #[error("registry {registry}: {message}")]
    Transport {
        /// host[:port].
        registry: String,
        /// Why.
        message: String,
    },
    /// The registry refused.
    #[error("registry {registry}: {code} for {what}{hint}")]
    Refused {
        /// host[:port].
        registry: String,
        /// HTTP status.
        code: u16,
        /// What was asked.
        what: String,
        /// A hint for people.
        hint: String,
    },
    /// The registry sent something malformed.
    #[error("registry {registry}: {message}")]
    Invalid {
        /// host[:port].
        registry: String,
        /// What is wrong.
        message: String,
    },
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// host[:port] as written (docker.io for Docker Hub).
    pub registry: String,
    /// e.g. `library/busybox`.
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

/// Parses `[host[:port]/]path[:tag][@digest]` the way Docker does.
pub fn parse_reference(image: &str) -> Result<Reference, RegistryError> {
    let bad = || RegistryError::Reference(image.to_owned());
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_owned())),
        None => (image, None),
    };
    let (first, remainder) = match rest.split_once('/') {
        Some((f, r)) if f.contains(['.', ':']) || f == "localhost" => (Some(f), r),
        _ => (None, rest),
    };
    let (path, tag) = match remainder.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, Some(t.to_owned())),
        _ => (remainder, None),
    };
    if path.is_empty() || path.starts_with('/') || path.ends_with('/') {
        return Err(bad());
    }
    let registry = first.unwrap_or("docker.io").to_owned();
    let repository = if registry == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    Ok(Reference {
        registry,
        repository,
        reference: digest.or(tag).unwrap_or_else(|| "latest".into()),
    })
}

/// Registry credentials and rules of a node.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// user:password by registry host.
    pub credentials: HashMap<String, (String, String)>,
    /// Registries that may be spoken to over plain HTTP.
    pub insecure: Vec<String>,
}

impl Registries {
    /// Reads a Docker-style auth file; absent file → no credentials.
    pub fn load(auth_file: Option<&Path>, insecure: Vec<String>) -> std::io::Result<Self> {
        let mut credentials = HashMap::new();
        if let Some(path) = auth_file {
            match std::fs::read(path) {
                Ok(data) => {
                    let v: Value = serde_json::from_slice(&data).map_err(std::io::Error::other)?;
                    for (host, entry) in v["auths"].as_object().into_iter().flatten() {
                        let host = host
                            .trim_start_matches("https://")
                            .trim_start_matches("http://")
                            .split('/')
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        let pair = if let Some(a) = entry["auth"].as_str() {
                            base64::engine::general_purpose::STANDARD
                                .decode(a)
                                .ok()
                                .and_then(|d| String::from_utf8(d).ok())
                                .and_then(|s| {
                                    s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned()))
                                })
                        } else {
                            entry["username"]
                                .as_str()
                                .zip(entry["password"].as_str())
                                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                        };
                        if let Some(p) = pair {
                            credentials.insert(host, p);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            credentials,
            insecure,
        })
    }

    fn plain_http(&self, registry: &str) -> bool {
        let host = registry
            .rsplit_once(':')
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            .map_or(registry, |(h, _)| h)
            .trim_matches(['[', ']']);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback || self.insecure.iter().any(|i| i == registry || i == host)
    }
}

/// Media types a manifest request accepts.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A session with one registry for one repository.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    base: String,
    registry: String,
    repository: String,
    credentials: Option<(String, String)>,
    auth: Option<String>,
}

fn param(challenge: &str, key: &str) -> Option<String> {
    let at = challenge.find(&format!("{key}=\""))?;
    let rest = &challenge[at + key.len() + 2..];
    Some(rest[..rest.find('"')?].to_owned())
}

impl Session {
    /// Opens a session for a reference.
    pub fn new(r: &Reference, regs: &Registries) -> Self {
        let host = if r.registry == "docker.io" {
            "registry-1.docker.io".to_owned()
        } else {
            r.registry.clone()
        };
        let scheme = if regs.plain_http(&r.registry) {
            "http"
        } else {
            "https"
        };
        Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            base: format!("{scheme}://{host}/v2/{}", r.repository),
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            credentials: regs.credentials.get(&r.registry).cloned(),
            auth: None,
        }
    }

    fn transport(&self, e: reqwest::Error) -> RegistryError {
        RegistryError::Transport {
            registry: self.registry.clone(),
            message: e.to_string(),
        }
    }

    /// Answers a 401 challenge: Basic with the credentials, or a Bearer token from the realm.
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
        let realm = param(challenge, "realm").ok_or_else(|| RegistryError::Invalid {
            registry: self.registry.clone(),
            message: format!("unsupported challenge {challenge:?}"),
        })?;
        let mut req = self.http.get(&realm);
        let mut query = vec![(
            "scope",
            param(challenge, "scope")
                .unwrap_or_else(|| format!("repository:{}:pull", self.repository)),
        )];
        if let Some(service) = param(challenge, "service") {
            query.push(("service", service));
        }
        req = req.query(&query);
        if let Some(b) = basic {
            req = req.header(AUTHORIZATION, b);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        if !resp.status().is_success() {
            return Err(RegistryError::Refused {
                registry: self.registry.clone(),
                code: resp.status().as_u16(),
                what: "a token".into(),
                hint: " (check the credentials in the auth file)".into(),
            });
        }
        let v: Value = resp.json().await.map_err(|e| self.transport(e))?;
        let token = v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .ok_or_else(|| RegistryError::Invalid {
                registry: self.registry.clone(),
                message: "token endpoint answered without a token".into(),
            })?;
        self.auth = Some(format!("Bearer {token}"));
        Ok(())
    }

    /// GET `/v2/<repo>/<path>`, answering one auth challenge.
    pub async fn get(
        &mut self,
        path: &str,
        accept: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        for attempt in 0..2 {
            let mut req = self
                .http
                .get(format!("{}/{path}", self.base))
                .header(ACCEPT, accept);
            if let Some(a) = &self.auth {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| self.transport(e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("Basic")
                    .to_owned();
                self.authenticate(&challenge).await?;
                continue;
            }
            if !resp.status().is_success() {
                let code = resp.status().as_u16();
                let hint = match code {
                    401 | 403 => " (private? add credentials to the node's auth file)",
                    404 => " (no such image or tag)",
                    _ => "",
                };
                return Err(RegistryError::Refused {
                    registry: self.registry.clone(),
                    code,
                    what: format!("{}/{path}", self.repository),
                    hint: hint.into(),
                });
            }
            return Ok(resp);
        }
        unreachable!("two attempts at most")
    }

    /// A document (manifest, index, config): its media type and bytes.
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
            .to_owned();
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        Ok((media, body.to_vec()))
    }

    /// A blob as a stream of chunks.
    pub async fn blob(
        &mut self,
        digest: &str,
    ) -> Result<
        impl futures::Stream<Item = Result<Vec<u8>, RegistryError>> + Send + 'static,
        RegistryError,
    > {
        let resp = self.get(&format!("blobs/{digest}"), "*/*").await?;
        let registry = self.registry.clone();
        Ok(resp.bytes_stream().map(move |c| {
            c.map(|b| b.to_vec()).map_err(|e| RegistryError::Transport {
                registry: registry.clone(),
                message: e.to_string(),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_docker_does() {
        let r = |s: &str| parse_reference(s).expect(s);
        assert_eq!(
            r("busybox"),
            Reference {
                registry: "docker.io".into(),
                repository: "library/busybox".into(),
                reference: "latest".into()
            }
        );
        assert_eq!(
            r("ghcr.io/pterodactyl/yolks:java_21").repository,
            "pterodactyl/yolks"
        );
        assert_eq!(r("ghcr.io/pterodactyl/yolks:java_21").reference, "java_21");
        let local = r("127.0.0.1:5000/games/mumble:1.3");
        assert_eq!(local.registry, "127.0.0.1:5000");
        assert_eq!(local.repository, "games/mumble");
        assert_eq!(r("localhost/x@sha256:abc").reference, "sha256:abc");
        assert_eq!(r("user/repo").repository, "user/repo");
        assert!(parse_reference("ghcr.io/").is_err());
    }

    #[test]
    fn plain_http_only_for_loopback_or_listed_registries() {
        let regs = Registries {
            credentials: HashMap::new(),
            insecure: vec!["registry.lan:5000".into()],
        };
        assert!(regs.plain_http("127.0.0.1:5000"));
        assert!(regs.plain_http("localhost:5000"));
        assert!(regs.plain_http("[::1]:5000"));
        assert!(regs.plain_http("registry.lan:5000"));
        assert!(!regs.plain_http("ghcr.io"));
        assert!(!regs.plain_http("10.0.0.1:5000"));
    }

    #[test]
    fn auth_files_in_docker_format_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &p,
            format!(r#"{{"auths": {{"https://ghcr.io/v1/": {{"auth": "{auth}"}}, "127.0.0.1:5000": {{"username": "bob", "password": "pw"}}}}}}"#),
        )
        .expect("write");
        let regs = Registries::load(Some(&p), vec![]).expect("load");
        assert_eq!(
            regs.credentials["ghcr.io"],
            ("alice".into(), "s3cret".into())
        );
        assert_eq!(
            regs.credentials["127.0.0.1:5000"],
            ("bob".into(), "pw".into())
        );
        assert!(Registries::load(Some(&dir.path().join("absent")), vec![]).is_ok());
    }
}
