//! Credentials: a Docker-style auth file (`{"auths": {"host": {"auth": …}}}`), the registries a
//! node may speak plain HTTP to, and the parameters of a `WWW-Authenticate` challenge.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use reqwest::Url;
use serde_json::Value;

use super::address::{is_loopback_host, split_host_port};

/// Registry credentials and rules of a node.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// user:password by registry host.
    pub credentials: HashMap<String, (String, String)>,
    /// Registries (`host` or `host:port`) that may be spoken to over plain HTTP and may be on
    /// loopback or private addresses.
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

    /// Plain HTTP, and loopback or private addresses, are allowed for this registry
    /// (`host[:port]` as in a reference): it is on loopback, or listed as insecure.
    pub(super) fn plain_http(&self, registry: &str) -> bool {
        let (host, _) = split_host_port(registry);
        is_loopback_host(host) || self.insecure.iter().any(|i| i == registry || i == host)
    }

    /// True when `url`'s host (or host:port) is listed as insecure.
    pub(super) fn listed(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let bare = host.trim_matches(['[', ']']);
        let port = url.port_or_known_default().unwrap_or(0);
        self.insecure.iter().any(|i| {
            let (h, p) = split_host_port(i);
            h.eq_ignore_ascii_case(bare) && p.is_none_or(|p| p.parse() == Ok(port))
        })
    }
}

/// The value of a quoted parameter `key` of a `WWW-Authenticate` challenge.
pub(super) fn param(challenge: &str, key: &str) -> Option<String> {
    let lower = challenge.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&format!("{key}=\"")) {
        let at = from + at;
        // a whole parameter name, not the tail of another one
        let starts = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b',');
        let rest = &challenge[at + key.len() + 2..];
        if starts {
            return Some(rest[..rest.find('"')?].to_owned());
        }
        from = at + key.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!regs.plain_http("registry.lan:6000"));
        assert!(!regs.plain_http("ghcr.io"));
        assert!(!regs.plain_http("10.0.0.1:5000"));
    }

    #[test]
    fn challenge_parameters_are_read_whole() {
        let c = r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#;
        assert_eq!(
            param(c, "realm").as_deref(),
            Some("https://auth.example.com/token")
        );
        assert_eq!(param(c, "service").as_deref(), Some("registry.example.com"));
        let tricky = r#"Bearer xrealm="http://127.0.0.1:1/",realm="https://auth.example.com/""#;
        assert_eq!(
            param(tricky, "realm").as_deref(),
            Some("https://auth.example.com/")
        );
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
