//! Several API server URLs (servers sharing one store): which one a call goes to, and when a
//! call may move on to the next one.
//!
//! A client keeps the URL that answered last (sticky) and starts every call there; a call tries
//! each server at most once. It moves on:
//! - after a connect-phase failure (nothing was sent), whatever the verb;
//! - after a failure once the request was sent, only for GET and HEAD (a watch and a log
//!   follow are GETs); a write then fails with [`crate::Error::MayHaveApplied`];
//! - after an answer 503, or 429 with `Retry-After` of at most one second, only for GET and
//!   HEAD (a server whose tunnel to a node is down answers 503 with `Retry-After: 1`).
//!
//! Revisions are global across servers that share a store, so a watch resumes from its last
//! resourceVersion at any of them.

use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

/// The URLs of a comma list (`https://a:7443,https://b:7443`): trimmed, without a trailing
/// `/`, empty entries and duplicates dropped, in order.
pub fn parse_list(list: &str) -> Vec<String> {
    merge(list.split(','))
}

/// The URLs of `lists` (each one URL or a comma list), in order, without duplicates.
pub fn merge<'a>(lists: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for url in lists.into_iter().flat_map(|l| l.split(',')) {
        let url = url.trim().trim_end_matches('/');
        if !url.is_empty() && !urls.iter().any(|u| u == url) {
            urls.push(url.to_owned());
        }
    }
    urls
}

/// A stable index in `0..n` for `key` (FNV-1a): nodelets spread their first server by name.
pub fn spread(key: &str, n: usize) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(hash % n.max(1) as u64).unwrap_or(0)
}

/// The URLs of a client and the one that answered last.
#[derive(Debug)]
pub(crate) struct Servers {
    urls: Vec<String>,
    current: AtomicUsize,
}

impl Servers {
    /// The servers of `urls` (at least one entry; an empty list keeps one empty URL, which
    /// fails at the first call as an invalid URL).
    pub(crate) fn new(urls: Vec<String>) -> Self {
        let urls = if urls.is_empty() {
            vec![String::new()]
        } else {
            urls
        };
        Self {
            urls,
            current: AtomicUsize::new(0),
        }
    }

    pub(crate) fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The index of the server a call starts at.
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.urls.len()
    }

    /// The server a call starts at.
    pub(crate) fn current_url(&self) -> &str {
        &self.urls[self.current()]
    }

    /// Calls start at server `i` from now on.
    pub(crate) fn set_current(&self, i: usize) {
        self.current.store(i % self.urls.len(), Ordering::Relaxed);
    }

    /// The part of `url` after the server URL it starts with (path and query), and that
    /// server's index; None for a URL of no server of this list.
    pub(crate) fn split<'u>(&self, url: &'u str) -> Option<(usize, &'u str)> {
        self.urls
            .iter()
            .enumerate()
            .filter(|(_, base)| !base.is_empty())
            .filter_map(|(i, base)| {
                let rest = url.strip_prefix(base.as_str())?;
                (rest.is_empty() || rest.starts_with(['/', '?'])).then_some((i, rest))
            })
            .max_by_key(|(i, _)| self.urls[*i].len())
    }
}

/// True for the verbs a call repeats at another server after the request was sent.
pub(crate) fn repeatable(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// True for an answer that sends a repeatable call on to the next server: 503, or 429 that
/// asks to wait at most a second.
pub(crate) fn moves_on(status: StatusCode, headers: &HeaderMap) -> bool {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => true,
        StatusCode::TOO_MANY_REQUESTS => headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|secs| secs <= 1),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_list_is_trimmed_and_deduplicated_in_order() {
        assert_eq!(
            parse_list(" https://a:1/, https://b:1,,https://a:1 "),
            vec!["https://a:1".to_owned(), "https://b:1".to_owned()]
        );
        assert_eq!(
            merge(["https://b:1", "https://a:1,https://b:1", "https://c:1"]),
            vec!["https://b:1", "https://a:1", "https://c:1"]
        );
        assert!(parse_list(" , ").is_empty());
    }

    #[test]
    fn a_url_is_split_at_the_longest_server_it_starts_with() {
        let s = Servers::new(vec![
            "http://a:1".into(),
            "http://a:1/proxy".into(),
            "http://b:1".into(),
        ]);
        assert_eq!(s.split("http://b:1/apis?x=1"), Some((2, "/apis?x=1")));
        assert_eq!(s.split("http://a:1/proxy/apis"), Some((1, "/apis")));
        assert_eq!(s.split("http://a:1/apis"), Some((0, "/apis")));
        assert_eq!(s.split("http://a:10/apis"), None);
        assert_eq!(s.split("http://c:1/apis"), None);
        s.set_current(5);
        assert_eq!(s.current_url(), "http://b:1");
    }

    #[test]
    fn only_503_and_a_short_429_move_a_call_on() {
        let mut h = HeaderMap::new();
        assert!(moves_on(StatusCode::SERVICE_UNAVAILABLE, &h));
        assert!(!moves_on(StatusCode::TOO_MANY_REQUESTS, &h));
        h.insert(reqwest::header::RETRY_AFTER, "1".parse().unwrap());
        assert!(moves_on(StatusCode::TOO_MANY_REQUESTS, &h));
        h.insert(reqwest::header::RETRY_AFTER, "5".parse().unwrap());
        assert!(!moves_on(StatusCode::TOO_MANY_REQUESTS, &h));
        assert!(!moves_on(StatusCode::INTERNAL_SERVER_ERROR, &h));
        assert!(repeatable(&Method::GET) && !repeatable(&Method::POST));
        assert!(!repeatable(&Method::PUT) && !repeatable(&Method::DELETE));
    }

    #[test]
    fn nodelets_spread_over_the_servers_by_name() {
        assert_eq!(spread("node-a", 3), spread("node-a", 3));
        assert!(spread("node-a", 3) < 3);
        assert_eq!(spread("x", 1), 0);
        assert_eq!(spread("x", 0), 0);
        let firsts: std::collections::HashSet<usize> =
            (0..30).map(|i| spread(&format!("node-{i}"), 3)).collect();
        assert_eq!(firsts.len(), 3);
    }
}
