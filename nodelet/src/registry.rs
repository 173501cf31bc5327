//! A registry client (OCI distribution API v2) that writes what it pulls into containerd's
//! content store: manifests (OCI and Docker v2, indexes and lists), the config, the layers
//! streamed. Credentials from a Docker-style auth file (`{"auths": {"host": {"auth": …}}}`),
//! Basic or Bearer-token challenges; plain HTTP only for registries on loopback or listed as
//! insecure, as Docker does.
//!
//! Registries are hostile: every request (the registry's own, each redirect hop, a token realm)
//! is admitted first. A registry may be on loopback or a private address only when it is on
//! loopback itself or listed with `--insecure-registry`; a redirect or realm that leads to
//! another host (another host:port) must lead to public addresses only, unless that host is
//! listed itself. Names are resolved by the client's own resolver, which refuses non-public
//! addresses for every name not allowed to have them, so what was checked is what is
//! connected to. Credentials and tokens go to the registry's own origin only (and Basic
//! credentials to the token realm its own challenge names); redirects to other hosts (blob
//! CDNs) are followed without them. Documents are read with a size limit.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, LOCATION, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use serde_json::Value;

/// The most a manifest, an index or an image configuration may weigh.
pub const MAX_DOCUMENT_BYTES: u64 = 4 << 20;
/// The most a token endpoint's answer may weigh.
const MAX_TOKEN_BYTES: u64 = 1 << 20;
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

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
    /// A request the node must not make: the registry, a redirect or a token realm leads to
    /// an address or scheme that is not allowed.
    #[error("registry {registry}: refused to contact {target}: {reason}")]
    Forbidden {
        /// host[:port].
        registry: String,
        /// The URL (without its query).
        target: String,
        /// Why.
        reason: String,
    },
    /// A document or a blob is larger than allowed.
    #[error("registry {registry}: {what} is larger than {limit} bytes")]
    TooLarge {
        /// host[:port].
        registry: String,
        /// What was read.
        what: String,
        /// The limit.
        limit: u64,
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

fn valid_repository(path: &str) -> bool {
    // lowercase components of [a-z0-9] separated by `.`, `_`, `__` or dashes, as in the
    // distribution spec; nothing that could change a URL's meaning
    path.split('/').all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tag.starts_with(['.', '-'])
}

/// True for `sha256:` and 64 lowercase hex digits, the only digests the nodelet accepts.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn valid_registry_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
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
    if !valid_registry_host(&registry)
        || !valid_repository(&repository)
        || tag.as_deref().is_some_and(|t| !valid_tag(t))
        || digest.as_deref().is_some_and(|d| !valid_digest(d))
    {
        return Err(bad());
    }
    Ok(Reference {
        registry,
        repository,
        reference: digest.or(tag).unwrap_or_else(|| "latest".into()),
    })
}

/// Why an address is not public (loopback, private, link-local, …), or None when it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

/// True for an address a registry's redirects and token realms may lead to.
pub fn is_public(ip: IpAddr) -> bool {
    non_public(ip).is_none()
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared CGNAT (100.64.0.0/10)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignment (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "6to4 relay anycast",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4).map(|_| "IPv4-mapped, not public");
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    Some(match s {
        [0, 0, 0, 0, 0, 0, _, _] => "IPv4-compatible (deprecated)",
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            return non_public_v4(embedded(hi, lo)).map(|_| "NAT64 of an address not public")
        }
        [0x64, 0xff9b, 1, ..] => "local-use NAT64 (64:ff9b:1::/48)",
        [0x100, 0, 0, 0, ..] => "discard (100::/64)",
        [0x2001, 0xdb8, ..] => "documentation (2001:db8::/32)",
        [0x2001, 0..=0x1ff, ..] => "IETF special purpose (2001::/23: Teredo, benchmarking, …)",
        [0x2002, hi, lo, ..] => {
            return non_public_v4(embedded(hi, lo)).map(|_| "6to4 of an address not public")
        }
        [x, ..] if x & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        [x, ..] if x & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        [x, ..] if x & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        [x, ..] if x & 0xff00 == 0xff00 => "multicast",
        [x, ..] if x & 0xe000 != 0x2000 => "not global unicast (outside 2000::/3)",
        _ => return None,
    })
}

/// Registry credentials and rules of a node.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// user:password by registry host.
    pub credentials: HashMap<String, (String, String)>,
    /// Registries (`host` or `host:port`) that may be spoken to over plain HTTP and may be on
    /// loopback or private addresses.
    pub insecure: Vec<String>,
}

fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    match registry.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
            (h.trim_matches(['[', ']']), Some(p))
        }
        _ => (registry.trim_matches(['[', ']']), None),
    }
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.to_canonical().is_loopback())
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
    fn plain_http(&self, registry: &str) -> bool {
        let (host, _) = split_host_port(registry);
        is_loopback_host(host) || self.insecure.iter().any(|i| i == registry || i == host)
    }

    /// True when `url`'s host (or host:port) is listed as insecure.
    fn listed(&self, url: &Url) -> bool {
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

/// Scheme, host and port: what "the same host" means for credentials and redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

/// What must hold before a request may go to a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// It may go, whatever the host's addresses (the registry itself, allowed to be on
    /// loopback or a private network, or a host listed as insecure).
    Anywhere,
    /// Only when every address of the host is public.
    PublicOnly,
}

/// The rules for a registry: where its requests, redirects and realms may lead.
#[derive(Debug, Clone)]
struct Rules {
    registry: String,
    origin: Origin,
    /// The registry is on loopback or listed as insecure.
    local_ok: bool,
    regs: Registries,
}

impl Rules {
    /// The scheme and host rules for `url`, before any name is resolved.
    fn admit(&self, url: &Url) -> Result<Admit, String> {
        let same = Origin::of(url).as_ref() == Some(&self.origin);
        match url.scheme() {
            "https" => {}
            "http" if self.local_ok || self.regs.listed(url) => {}
            "http" => {
                return Err(
                    "plain HTTP (only registries on loopback or listed with --insecure-registry \
                     may be spoken to without TLS)"
                        .into(),
                )
            }
            other => return Err(format!("scheme {other:?} is not HTTP(S)")),
        }
        if url.host().is_none() {
            return Err("no host".into());
        }
        if same && self.local_ok {
            return Ok(Admit::Anywhere);
        }
        if !same && self.regs.listed(url) {
            return Ok(Admit::Anywhere);
        }
        let new = if same {
            "the registry"
        } else {
            "another host than the registry"
        };
        let host = url.host_str().unwrap_or_default();
        match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => check_ip(ip, new)?,
            Err(_) => {
                let d = host.trim_end_matches('.').to_ascii_lowercase();
                if d == "localhost" || d.ends_with(".localhost") {
                    return Err(format!("{new} on loopback ({d})"));
                }
            }
        }
        Ok(Admit::PublicOnly)
    }

    /// Host names whose addresses the resolver does not check: the registry's when it may be
    /// on loopback or a private network, and those listed as insecure.
    fn open_names(&self) -> HashSet<String> {
        let mut open: HashSet<String> = self
            .regs
            .insecure
            .iter()
            .map(|i| split_host_port(i).0.to_ascii_lowercase())
            .collect();
        if self.local_ok {
            open.insert(self.origin.host.trim_matches(['[', ']']).to_owned());
        }
        // a proxy from the environment is the operator's, wherever it is
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            if let Some(h) = std::env::var(var)
                .ok()
                .and_then(|v| Url::parse(&v).ok())
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            {
                open.insert(h);
            }
        }
        open
    }
}

fn check_ip(ip: IpAddr, what: &str) -> Result<(), String> {
    match non_public(ip) {
        Some(class) => Err(format!(
            "{what} at {ip}, a {class} address (only registries on loopback or listed with \
             --insecure-registry may use such addresses, and redirects or token realms may not \
             lead to them)"
        )),
        None => Ok(()),
    }
}

/// The client's resolver: a name not in `open` resolves only when all its addresses are
/// public, and the connection goes to exactly those addresses.
#[derive(Debug)]
struct GuardedResolver {
    open: HashSet<String>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let open = self.open.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !open {
                if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                    return Err(format!(
                        "{host} resolves to {}, which is not a public address",
                        bad.ip()
                    )
                    .into());
                }
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
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
    base: Url,
    rules: Rules,
    repository: String,
    credentials: Option<(String, String)>,
    auth: Option<String>,
}

fn param(challenge: &str, key: &str) -> Option<String> {
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

fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

impl Session {
    /// Opens a session for a reference.
    pub fn new(r: &Reference, regs: &Registries) -> Result<Self, RegistryError> {
        let host = if r.registry == "docker.io" {
            "registry-1.docker.io".to_owned()
        } else {
            r.registry.clone()
        };
        let local_ok = regs.plain_http(&r.registry);
        let scheme = if local_ok { "http" } else { "https" };
        let invalid = |message: String| RegistryError::Invalid {
            registry: r.registry.clone(),
            message,
        };
        let base = Url::parse(&format!("{scheme}://{host}/v2/{}/", r.repository))
            .map_err(|e| invalid(format!("bad registry URL: {e}")))?;
        let origin = Origin::of(&base).ok_or_else(|| invalid("no host".into()))?;
        let rules = Rules {
            registry: r.registry.clone(),
            origin,
            local_ok,
            regs: regs.clone(),
        };
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
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(r(&format!("localhost/x@{digest}")).reference, digest);
        assert_eq!(r("user/repo").repository, "user/repo");
        assert_eq!(r("[::1]:5000/a/b:c").registry, "[::1]:5000");
        assert!(parse_reference("ghcr.io/").is_err());
    }

    #[test]
    fn references_that_could_bend_a_url_are_refused() {
        for bad in [
            "localhost:5000/a/../b",
            "localhost:5000/a?x=1",
            "localhost:5000/a#frag",
            "localhost:5000/A",
            "localhost:5000/a:t@sha256:abc",
            "localhost:5000/a@sha256:../../x",
            "localhost:5000/a:../x",
            "evil.com@other/x",
            "localhost:5000/a%2fb",
            "localhost:5000/a:-t",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_private_link_local_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2001:db8::1",
            "2001::1",
            "fec0::1",
        ] {
            let ip: IpAddr = ip.parse().expect(ip);
            assert!(!is_public(ip), "{ip} must not be public");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = ip.parse().expect(ip);
            assert!(is_public(ip), "{ip} is public");
        }
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
        assert!(!regs.plain_http("registry.lan:6000"));
        assert!(!regs.plain_http("ghcr.io"));
        assert!(!regs.plain_http("10.0.0.1:5000"));
    }

    fn rules(registry: &str, insecure: &[&str]) -> Rules {
        let regs = Registries {
            credentials: HashMap::new(),
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
        };
        let r = parse_reference(&format!("{registry}/a/b:c")).expect("reference");
        Session::new(&r, &regs).expect("session").rules
    }

    fn admit(rules: &Rules, url: &str) -> Result<Admit, String> {
        rules.admit(&Url::parse(url).expect(url))
    }

    #[test]
    fn a_loopback_registry_may_use_its_own_origin_but_redirects_elsewhere_on_loopback_are_refused()
    {
        let r = rules("127.0.0.1:5000", &[]);
        assert_eq!(
            admit(&r, "http://127.0.0.1:5000/v2/a/b/blobs/x"),
            Ok(Admit::Anywhere)
        );
        // the canaries: another port on the same loopback address, another loopback address,
        // localhost by name, the metadata service, a private network
        for url in [
            "http://127.0.0.1:5001/token",
            "http://127.0.0.2:5000/v2/",
            "http://localhost:5000/v2/",
            "http://foo.localhost/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://[::1]:5000/",
            "http://[::ffff:127.0.0.1]:5000/",
            "http://0.0.0.0:5000/",
        ] {
            assert!(admit(&r, url).is_err(), "{url} must be refused");
        }
        // a public host (a CDN): allowed, addresses checked when resolved
        assert_eq!(
            admit(&r, "https://cdn.example.com/blob"),
            Ok(Admit::PublicOnly)
        );
    }

    #[test]
    fn hosts_listed_as_insecure_may_be_anywhere() {
        let r = rules("127.0.0.1:5000", &["127.0.0.1:5001", "auth.lan"]);
        assert_eq!(
            admit(&r, "http://127.0.0.1:5001/token"),
            Ok(Admit::Anywhere)
        );
        assert_eq!(admit(&r, "http://auth.lan:9999/t"), Ok(Admit::Anywhere));
        assert!(admit(&r, "http://127.0.0.1:5002/token").is_err());
        let lan = rules("registry.lan:5000", &["registry.lan:5000"]);
        assert_eq!(
            admit(&lan, "http://registry.lan:5000/v2/"),
            Ok(Admit::Anywhere)
        );
        assert_eq!(
            admit(&lan, "http://registry.lan:6000/v2/"),
            Ok(Admit::PublicOnly),
            "another port of a listed host:port is a new host: its addresses must be public"
        );
    }

    #[test]
    fn an_https_registry_cannot_be_downgraded_or_led_to_private_addresses() {
        let r = rules("ghcr.io", &[]);
        assert_eq!(admit(&r, "https://ghcr.io/v2/"), Ok(Admit::PublicOnly));
        assert!(admit(&r, "http://ghcr.io/v2/").is_err(), "no downgrade");
        assert!(
            admit(&r, "http://cdn.example.com/x").is_err(),
            "plain-HTTP realm or redirect from an HTTPS registry"
        );
        assert!(admit(&r, "https://10.1.1.1/token").is_err());
        assert!(admit(&r, "https://[fe80::1]/").is_err());
        assert!(admit(&r, "file:///etc/shadow").is_err());
        assert!(admit(&r, "ftp://example.com/").is_err());
        // a registry at a private literal address that is not listed is refused itself
        let private = rules("10.0.0.5:443", &[]);
        assert!(admit(&private, "https://10.0.0.5/v2/").is_err());
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
