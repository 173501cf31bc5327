//! Prometheus metrics of the API server: requests by verb, kind and code, request latency
//! histograms, open watches and the store revision, rendered as text; and the middleware that
//! records every request by verb and kind.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use catalyst_schemas::KINDS;

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The API server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<(&'static str, &'static str), Histogram>>,
    watches: AtomicI64,
    /// The end of this server's leadership term, while it leads.
    controllers_leading: Mutex<Option<Instant>>,
    /// Whether this process runs controllers (an election) at all.
    elects: AtomicBool,
}

impl Metrics {
    /// Counts one finished request.
    pub fn observe(&self, verb: &'static str, kind: &'static str, code: u16, took: Duration) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((verb, kind, code))
            .or_default() += 1;
        if verb == "WATCH" {
            return; // a watch's duration is its lifetime, not a latency
        }
        let secs = took.as_secs_f64();
        let mut latency = self.latency.lock().expect("metrics lock");
        let h = latency.entry((verb, kind)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// A watch began.
    pub fn watch_started(&self) {
        self.watches.fetch_add(1, Ordering::Relaxed);
    }

    /// A watch ended.
    pub fn watch_ended(&self) {
        self.watches.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether this process's controllers lead (`catalyst_controllers_leading`): Some(the end
    /// of the term) while they do. The gauge reads 0 from the term's end on, even before the
    /// election says so (a process resumed after SIGSTOP answers 0 at once).
    pub fn set_controllers_leading(&self, until: Option<Instant>) {
        self.elects.store(true, Ordering::Relaxed);
        *self.controllers_leading.lock().expect("metrics lock") = until;
    }

    /// Whether this server's controllers lead now.
    pub fn controllers_lead(&self) -> bool {
        self.controllers_leading
            .lock()
            .expect("metrics lock")
            .is_some_and(|until| Instant::now() < until)
    }

    /// Whether this server is the one that speaks for the nodes in `/metrics`: the leader when
    /// several servers share a store (each holds a tunnel to every node, and the same samples
    /// from three servers would count three times), any server that runs no election.
    pub fn speaks_for_nodes(&self) -> bool {
        !self.elects.load(Ordering::Relaxed) || self.controllers_lead()
    }

    /// The Prometheus text exposition; `fenced_writes` is the registry's count of writes
    /// refused for want of a live leadership term.
    pub fn render(
        &self,
        store_revision: Option<i64>,
        cache_watchers: usize,
        fenced_writes: u64,
    ) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP catalyst_apiserver_requests_total API requests by verb, kind and HTTP code.\n",
        );
        out.push_str("# TYPE catalyst_apiserver_requests_total counter\n");
        for ((verb, kind, code), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "catalyst_apiserver_requests_total{{verb=\"{verb}\",kind=\"{kind}\",code=\"{code}\"}} {n}");
        }
        out.push_str("# HELP catalyst_apiserver_request_duration_seconds API request latency.\n");
        out.push_str("# TYPE catalyst_apiserver_request_duration_seconds histogram\n");
        for ((verb, kind), h) in self.latency.lock().expect("metrics lock").iter() {
            let labels = format!("verb=\"{verb}\",kind=\"{kind}\"");
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "catalyst_apiserver_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(
                out,
                "catalyst_apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "catalyst_apiserver_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "catalyst_apiserver_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str("# HELP catalyst_apiserver_watches Open watch requests.\n# TYPE catalyst_apiserver_watches gauge\n");
        let _ = writeln!(
            out,
            "catalyst_apiserver_watches {}",
            self.watches.load(Ordering::Relaxed).max(0)
        );
        out.push_str("# HELP catalyst_apiserver_watch_cache_receivers Receivers on the watch caches.\n# TYPE catalyst_apiserver_watch_cache_receivers gauge\n");
        let _ = writeln!(
            out,
            "catalyst_apiserver_watch_cache_receivers {cache_watchers}"
        );
        out.push_str("# HELP catalyst_controllers_leading 1 while this server's controllers hold the leader Lease.\n# TYPE catalyst_controllers_leading gauge\n");
        let _ = writeln!(
            out,
            "catalyst_controllers_leading {}",
            i64::from(self.controllers_lead())
        );
        out.push_str("# HELP catalyst_store_fenced_writes_total Controller writes refused because this server's leadership term had ended (by the store's fencing check or before reaching it).\n# TYPE catalyst_store_fenced_writes_total counter\n");
        let _ = writeln!(out, "catalyst_store_fenced_writes_total {fenced_writes}");
        if let Some(rev) = store_revision {
            out.push_str("# HELP catalyst_store_revision The store's current revision.\n# TYPE catalyst_store_revision gauge\n");
            let _ = writeln!(out, "catalyst_store_revision {rev}");
        }
        out
    }
}

/// Middleware: logs every request and counts it by verb, kind and status.
pub async fn record(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let verb = verb_of(req.method(), req.uri().query());
    let kind = kind_of_path(req.uri().path());
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = next.run(req).await;
    tracing::debug!(%method, path, status = response.status().as_u16(), took_ms = started.elapsed().as_secs_f64() * 1000.0, "request");
    metrics.observe(verb, kind, response.status().as_u16(), started.elapsed());
    response
}

/// The API verb of a request: `WATCH` for a GET with `watch=true`, else by method.
pub fn verb_of(method: &Method, query: Option<&str>) -> &'static str {
    let watching =
        query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match *method {
        Method::GET if watching => "WATCH",
        Method::GET => "GET",
        Method::POST => "CREATE",
        Method::PUT => "UPDATE",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// The kind a request path names (`GameServer`), or `""` outside the resource API.
pub fn kind_of_path(path: &str) -> &'static str {
    let rest = match path.strip_prefix("/apis/catalyst.dev/v1alpha1/") {
        Some(r) => r,
        None => return "",
    };
    let mut parts = rest.split('/');
    let first = parts.next().unwrap_or("");
    let plural = if first == "namespaces" {
        parts.nth(1).unwrap_or("")
    } else {
        first
    };
    KINDS
        .iter()
        .find(|k| k.plural == plural)
        .map_or("", |k| k.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_verb_and_watch_parameter() {
        assert_eq!(verb_of(&Method::GET, None), "GET");
        assert_eq!(verb_of(&Method::GET, Some("limit=1&watch=true")), "WATCH");
        assert_eq!(verb_of(&Method::GET, Some("watch=1")), "WATCH");
        assert_eq!(verb_of(&Method::GET, Some("watch=false")), "GET");
        assert_eq!(verb_of(&Method::POST, Some("watch=true")), "CREATE");
        assert_eq!(verb_of(&Method::PUT, None), "UPDATE");
        assert_eq!(verb_of(&Method::PATCH, None), "PATCH");
        assert_eq!(verb_of(&Method::DELETE, None), "DELETE");
        assert_eq!(verb_of(&Method::HEAD, None), "OTHER");
    }

    #[test]
    fn the_leading_gauge_follows_the_election() {
        let m = Metrics::default();
        assert!(m
            .render(None, 0, 0)
            .contains("\ncatalyst_controllers_leading 0\n"));
        // a process without controllers speaks for its nodes
        assert!(m.speaks_for_nodes());
        m.set_controllers_leading(Some(Instant::now() + Duration::from_secs(60)));
        assert!(m
            .render(None, 0, 0)
            .contains("\ncatalyst_controllers_leading 1\n"));
        assert!(m.speaks_for_nodes());
        // a term that ended reads 0 before the election says so
        m.set_controllers_leading(Some(Instant::now() - Duration::from_millis(1)));
        assert!(m
            .render(None, 0, 0)
            .contains("\ncatalyst_controllers_leading 0\n"));
        assert!(
            !m.speaks_for_nodes(),
            "a standby leaves the nodes to the leader"
        );
        m.set_controllers_leading(None);
        assert!(m
            .render(None, 0, 0)
            .contains("\ncatalyst_controllers_leading 0\n"));
        assert!(!m.speaks_for_nodes());
    }

    #[test]
    fn fenced_writes_are_a_counter() {
        let text = Metrics::default().render(None, 0, 3);
        assert!(text.contains("# TYPE catalyst_store_fenced_writes_total counter\n"));
        assert!(text.contains("\ncatalyst_store_fenced_writes_total 3\n"));
    }

    #[test]
    fn request_paths_are_classified_by_kind() {
        let api = "/apis/catalyst.dev/v1alpha1";
        assert_eq!(
            kind_of_path(&format!("{api}/namespaces/default/gameservers/a")),
            "GameServer"
        );
        assert_eq!(kind_of_path(&format!("{api}/nodes/n1/status")), "Node");
        assert_eq!(kind_of_path(&format!("{api}/widgets")), "");
        assert_eq!(kind_of_path("/healthz"), "");
    }
}
