//! Downloading a URL into a server's files ("pull"), safe against server-side request forgery.
//!
//! The customer chooses the URL, so it may name the node's own services (`127.0.0.1`), the
//! cloud's metadata service (`169.254.169.254`), the private network, or a host name that
//! resolves to any of those, now or a second later (DNS rebinding). So for every request,
//! the first one and each redirect:
//!
//! - the scheme must be `http` or `https`;
//! - the host is resolved here, once, and **every** address it resolves to must be public
//!   ([`crate::registry::non_public`]: loopback, private, link-local, CGNAT, unique local,
//!   IPv4-mapped, NAT64 and 6to4 of those, documentation, multicast, …), unless the operator
//!   allowed that exact address ([`PullPolicy::allow`]);
//! - the HTTP client is built to connect only to those checked addresses (its DNS overridden
//!   for that host, every other name refused, no proxy), so what was checked is what is
//!   connected to;
//! - redirects are not followed by the client but here, at most
//!   [`PullPolicy::max_redirects`], each hop checked again.
//!
//! The body is written with [`Root::write_atomic`] by a blocking writer fed through a bounded
//! channel, so a download appears whole or not at all. A declared `Content-Length` over the
//! limit (the least of [`PullPolicy::max_bytes`] and the free space) is refused before any
//! byte is written, and the bytes actually received are counted against the same limit.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::Url;
use tokio::sync::mpsc;

use super::{path, Entry, FsError, Root};
use crate::registry::non_public;

/// What a [`pull`] may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullPolicy {
    /// The most bytes downloaded (the free space bounds it further).
    pub max_bytes: u64,
    /// The most time the whole download may take, redirects included.
    pub timeout: Duration,
    /// The most redirects followed.
    pub max_redirects: usize,
    /// Addresses a download may reach although they are not public (an internal mirror, say):
    /// exact addresses, nothing else of their network. Empty by default.
    pub allow: Vec<IpAddr>,
}

impl Default for PullPolicy {
    /// 10 GiB, one hour, five redirects, no address allowed beyond the public ones.
    fn default() -> Self {
        PullPolicy {
            max_bytes: 10 << 30,
            timeout: Duration::from_secs(3600),
            max_redirects: 5,
            allow: Vec::new(),
        }
    }
}

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the other side may stay silent while a response is read.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Chunks in flight between the download and the blocking writer.
const CHANNEL: usize = 16;

/// Downloads `url` (http or https) into the file `dest` of the server's files and says what
/// is there now. The parent directory must exist; an existing file is replaced atomically (a
/// symbolic link at `dest` is replaced, never written through).
///
/// Errors: a scheme other than http and https, or a host that is or resolves to an address
/// that is not public (and not allowed), is [`FsError::Refused`] naming the host and why
/// (`"127.0.0.1 is loopback"`), for the first request as for every redirect; a body over the
/// limit is [`FsError::TooLarge`] (nothing is left behind); a full disk or quota is
/// [`FsError::NoSpace`]; a malformed URL [`FsError::Invalid`]; no answer, a timeout, an HTTP
/// error status or too many redirects [`FsError::Remote`].
pub async fn pull(
    root: Arc<Root>,
    url: &str,
    dest: &str,
    policy: &PullPolicy,
) -> Result<Entry, FsError> {
    let dest_clean = Root::clean(dest)?;
    let shown = path::shown(&dest_clean);
    let mut url = Url::parse(url).map_err(|e| FsError::invalid(&shown, &format!("URL: {e}")))?;
    let started = std::time::Instant::now();
    let work = async {
        let mut hops = 0;
        loop {
            let resp = request(&url, policy, &shown).await?;
            let status = resp.status();
            if status.is_redirection() {
                let next = redirect_target(&url, &resp, &shown)?;
                if hops >= policy.max_redirects {
                    return Err(remote(
                        &shown,
                        format!("more than {} redirects", policy.max_redirects),
                    ));
                }
                hops += 1;
                tracing::debug!(
                    from = host_of(&url),
                    to = host_of(&next),
                    status = status.as_u16(),
                    "pull: redirect"
                );
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(remote(
                    &shown,
                    format!("{} answered {status}", host_of(&url)),
                ));
            }
            return receive(root.clone(), resp, &dest_clean, &shown, policy).await;
        }
    };
    let result = match tokio::time::timeout(policy.timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(remote(
            &shown,
            format!("timed out after {} s", policy.timeout.as_secs()),
        )),
    };
    match &result {
        Ok(entry) => tracing::info!(
            host = host_of(&url),
            dest = entry.path,
            bytes = entry.size,
            seconds = started.elapsed().as_secs(),
            "pull: downloaded"
        ),
        Err(e) => tracing::warn!(host = host_of(&url), error = %e, "pull: failed"),
    }
    result
}

/// The host of a URL, for messages (never the path or query, which may hold tokens).
fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => "(no host)".to_owned(),
    }
}

fn remote(shown: &str, why: String) -> FsError {
    FsError::Remote {
        path: shown.to_owned(),
        why,
    }
}

/// Checks a URL and resolves its host: the addresses to connect to, all of them public or
/// allowed. A refusal names the host and why.
pub(crate) async fn admit(
    url: &Url,
    allow: &[IpAddr],
    shown: &str,
) -> Result<Vec<SocketAddr>, FsError> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(FsError::refused(
            shown,
            &format!("{scheme}: URLs are not allowed (only http and https)"),
        ));
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| FsError::invalid(shown, "URL without a port"))?;
    let (name, addrs): (String, Vec<SocketAddr>) = match host(url) {
        None => return Err(FsError::invalid(shown, "URL without a host")),
        Some(Host::Ip(ip)) => (ip.to_string(), vec![SocketAddr::new(ip, port)]),
        Some(Host::Domain(d)) => {
            let found = tokio::net::lookup_host((d, port))
                .await
                .map_err(|e| remote(shown, format!("{d}: cannot resolve: {e}")))?;
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for a in found {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
            if addrs.is_empty() {
                return Err(remote(shown, format!("{d} resolves to no address")));
            }
            (d.to_owned(), addrs)
        }
    };
    for a in &addrs {
        let ip = a.ip();
        if allow.contains(&ip) {
            continue;
        }
        if let Some(class) = non_public(ip) {
            let not = if class.contains("not public") {
                ""
            } else {
                ", not a public address"
            };
            let why = if name == ip.to_string() {
                format!("{ip} is {class}{not}")
            } else {
                format!("{name} resolves to {ip}, which is {class}{not}")
            };
            tracing::warn!(host = name, %ip, class, "pull: refused a non-public address");
            return Err(FsError::refused(shown, &why));
        }
    }
    Ok(addrs)
}

/// A URL's host: an address literal or a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host<'a> {
    Ip(IpAddr),
    Domain(&'a str),
}

/// The host of a URL. The URL parser has already turned every IPv4 spelling (`0x7f.1`,
/// `2130706433`, ...) into dotted decimal and put IPv6 literals in brackets.
fn host(url: &Url) -> Option<Host<'_>> {
    let h = url.host_str().filter(|h| !h.is_empty())?;
    let bare = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Domain(h),
    })
}

/// An HTTP client for `url` (tenant-written) that connects only to the addresses of its host
/// [`admit`] checked: no other name resolution, no proxy, no redirects.
pub(crate) async fn checked_client(
    url: &Url,
    allow: &[IpAddr],
    shown: &str,
    read_timeout: Duration,
) -> Result<reqwest::Client, FsError> {
    let addrs = admit(url, allow, shown).await?;
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .no_proxy()
        .user_agent(concat!("catalyst-nodelet/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(catalyst_client::noresolve::NoResolve));
    if let Some(Host::Domain(d)) = host(url) {
        builder = builder.resolve_to_addrs(d, &addrs);
    }
    builder
        .build()
        .map_err(|e| FsError::other(shown, &format!("http client: {e}")))
}

/// One request, to the checked addresses of the URL's host only.
async fn request(
    url: &Url,
    policy: &PullPolicy,
    shown: &str,
) -> Result<reqwest::Response, FsError> {
    let client = checked_client(url, &policy.allow, shown, READ_TIMEOUT).await?;
    client.get(url.clone()).send().await.map_err(|e| {
        remote(
            shown,
            format!("{}: {}", host_of(url), chain(&e.without_url())),
        )
    })
}

/// The next URL of a redirect (relative `Location`s resolved against the current URL).
fn redirect_target(url: &Url, resp: &reqwest::Response, shown: &str) -> Result<Url, FsError> {
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            remote(
                shown,
                format!("{} redirected without a usable Location", host_of(url)),
            )
        })?;
    url.join(location).map_err(|e| {
        remote(
            shown,
            format!("{} redirected to a malformed URL: {e}", host_of(url)),
        )
    })
}

/// An error with its causes (a refused connection, a timeout, a TLS failure).
fn chain(e: &dyn std::error::Error) -> String {
    let mut m = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        m.push_str(": ");
        m.push_str(&s.to_string());
        src = s.source();
    }
    m
}

/// What the download sends the blocking writer.
#[derive(Debug)]
enum Chunk {
    Data(Vec<u8>),
    /// Everything was received: commit.
    Done,
}

/// Streams a successful response's body into `dest`, counting bytes against the limit.
async fn receive(
    root: Arc<Root>,
    mut resp: reqwest::Response,
    dest_clean: &str,
    shown: &str,
    policy: &PullPolicy,
) -> Result<Entry, FsError> {
    let space = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || root.space())
            .await
            .map_err(|e| FsError::other(shown, &format!("space: {e}")))??
    };
    let limit = policy.max_bytes.min(space.free);
    if let Some(declared) = resp.content_length() {
        if declared > limit {
            tracing::warn!(declared, limit, "pull: Content-Length over the limit");
            return Err(FsError::TooLarge {
                path: shown.to_owned(),
                limit,
            });
        }
    }
    let (tx, mut rx) = mpsc::channel::<Chunk>(CHANNEL);
    let writer = {
        let dest = dest_clean.to_owned();
        let shown = shown.to_owned();
        // Ok(None): the download gave up (and dropping the file removed the temporary one)
        tokio::task::spawn_blocking(move || -> Result<Option<Entry>, FsError> {
            let mut file = root.write_atomic(&dest, None)?;
            while let Some(chunk) = rx.blocking_recv() {
                match chunk {
                    Chunk::Data(d) => file
                        .write_all(&d)
                        .map_err(|e| FsError::from_io(&shown, e))?,
                    Chunk::Done => return file.commit().map(Some),
                }
            }
            Ok(None)
        })
    };
    let mut total: u64 = 0;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                drop(tx);
                let e = remote(
                    shown,
                    format!("reading the body: {}", chain(&e.without_url())),
                );
                return Err(writer_error(writer, e).await);
            }
        };
        total = total.saturating_add(chunk.len() as u64);
        if total > limit {
            tracing::warn!(total, limit, "pull: body over the limit");
            drop(tx);
            let e = FsError::TooLarge {
                path: shown.to_owned(),
                limit,
            };
            // wait for the writer to remove its temporary file
            let _ = writer.await;
            return Err(e);
        }
        if tx.send(Chunk::Data(chunk.to_vec())).await.is_err() {
            // the writer stopped: its error says why
            let e = FsError::other(shown, "the writer stopped");
            return Err(writer_error(writer, e).await);
        }
    }
    if tx.send(Chunk::Done).await.is_err() {
        let e = FsError::other(shown, "the writer stopped");
        return Err(writer_error(writer, e).await);
    }
    drop(tx);
    match writer.await {
        Ok(Ok(Some(entry))) => Ok(entry),
        Ok(Ok(None)) => Err(FsError::other(shown, "the writer stopped")),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(FsError::other(shown, &format!("writer: {e}"))),
    }
}

/// The blocking writer's own error when it stopped with one, else `fallback`.
async fn writer_error(
    writer: tokio::task::JoinHandle<Result<Option<Entry>, FsError>>,
    fallback: FsError,
) -> FsError {
    match writer.await {
        Ok(Err(e)) => e,
        _ => fallback,
    }
}

#[cfg(test)]
mod tests;
