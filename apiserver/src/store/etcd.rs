//! The etcd backend: etcd's own revisions, compare-and-swap as transactions on `mod_revision`,
//! and native watches from a start revision. Keys live under a prefix (default `/catalyst`), so
//! several Catalyst installations — or test runs — can share one etcd.

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue as EtcdKv, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use std::time::Duration;

use futures::StreamExt;

use super::etcd_endpoints::Endpoints;
use super::{
    prefix_end, AbortOnDrop, EventKind, Guard, KeyValue, ListOptions, ListPage, Result, Revision,
    Store, StoreError, WatchEvent, WatchStream, Write,
};

const BACKEND: &str = "etcd";

/// What an `etcd://` or `etcds://` URL says.
#[derive(Debug, PartialEq, Eq)]
struct EtcdUrl {
    endpoints: Vec<String>,
    prefix: String,
    tls: bool,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

impl EtcdUrl {
    fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: &str| StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (tls, rest) = match (url.strip_prefix("etcd://"), url.strip_prefix("etcds://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(invalid("expected etcd://host:port or etcds://host:port")),
        };
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.trim_end_matches('/');
        let mut parsed = Self {
            endpoints: Vec::new(),
            prefix: "/catalyst".to_owned(),
            tls,
            ca: None,
            cert: None,
            key: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", p)) if p.starts_with('/') => {
                    parsed.prefix = p.trim_end_matches('/').to_owned()
                }
                Some(("ca", f)) if tls && !f.is_empty() => parsed.ca = Some(f.to_owned()),
                Some(("cert", f)) if tls && !f.is_empty() => parsed.cert = Some(f.to_owned()),
                Some(("key", f)) if tls && !f.is_empty() => parsed.key = Some(f.to_owned()),
                _ => {
                    return Err(invalid(&format!(
                        "unknown or malformed option {pair:?} (prefix=/path; with etcds:// also \
                         ca=FILE, cert=FILE, key=FILE)"
                    )))
                }
            }
        }
        if parsed.cert.is_some() != parsed.key.is_some() {
            return Err(invalid("cert=FILE and key=FILE go together"));
        }
        let scheme = if tls { "https" } else { "http" };
        parsed.endpoints = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("{scheme}://{h}"))
            .collect();
        if parsed.endpoints.is_empty() {
            return Err(invalid("no etcd endpoints"));
        }
        Ok(parsed)
    }
}

/// The etcd store.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
    /// With several members: which are in use, and the prober that ends with the last clone.
    endpoints: Option<(std::sync::Arc<Endpoints>, std::sync::Arc<AbortOnDrop>)>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn be(e: etcd_client::Error) -> StoreError {
    StoreError::backend(BACKEND, e)
}

/// Maps etcd's revision errors to ours.
fn revision_error(e: etcd_client::Error, requested: Revision) -> StoreError {
    if let etcd_client::Error::GRpcStatus(status) = &e {
        let msg = status.message();
        if msg.contains("required revision has been compacted") {
            return StoreError::Compacted {
                requested,
                compacted: requested + 1,
            };
        }
        if msg.contains("future revision") {
            return StoreError::FutureRevision {
                requested,
                current: requested - 1,
            };
        }
    }
    be(e)
}

impl EtcdStore {
    /// Connects to `etcd://host:port[,host:port…][?prefix=/catalyst]`, or over TLS to
    /// `etcds://…[?ca=FILE][&cert=FILE&key=FILE]` (the CA to trust, else the system's roots;
    /// a client certificate and key).
    pub async fn open(url: &str) -> Result<Self> {
        let parsed = EtcdUrl::parse(url)?;
        let mut options = etcd_client::ConnectOptions::new();
        if parsed.tls {
            let read = |path: &str| {
                std::fs::read(path).map_err(|e| StoreError::InvalidUrl {
                    url: url.to_owned(),
                    reason: format!("{path}: {e}"),
                })
            };
            let mut tls = etcd_client::TlsOptions::new();
            tls = match &parsed.ca {
                Some(ca) => tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?)),
                None => tls.with_native_roots(),
            };
            if let (Some(cert), Some(key)) = (&parsed.cert, &parsed.key) {
                tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            options = options.with_tls(tls);
        }
        // a member that stops answering is noticed within seconds (also on an idle watch's
        // connection), and one without a leader refuses at once instead of timing out
        options = options
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true)
            .with_connect_timeout(Duration::from_secs(1));
        let endpoints = parsed.endpoints;
        let prefix = parsed.prefix;
        let client = Client::connect(&endpoints, Some(options))
            .await
            .map_err(be)?;
        let endpoints = Endpoints::start(&client, &endpoints)
            .map(|(e, prober)| (e, std::sync::Arc::new(prober)));
        let store = Self {
            client,
            prefix,
            endpoints,
        };
        // Fail at start-up, not at the first request, when etcd is unreachable.
        store.current_revision().await?;
        Ok(store)
    }

    /// Runs an etcd call, again while it failed before reaching etcd (see `etcd_endpoints`).
    async fn call<T, F, Fut>(
        &self,
        read: bool,
        call: F,
    ) -> std::result::Result<T, etcd_client::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        Endpoints::retry(self.endpoints.as_ref().map(|(e, _)| &**e), read, call).await
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn convert(&self, kv: &EtcdKv) -> Result<KeyValue> {
        let key = std::str::from_utf8(kv.key())
            .ok()
            .and_then(|k| k.strip_prefix(&self.prefix))
            .ok_or_else(|| {
                StoreError::Corrupt(format!("unexpected key {:?} under the prefix", kv.key()))
            })?;
        Ok(KeyValue {
            key: key.to_owned(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// The error for a failed compare-and-swap, from the `get` in the transaction's else branch.
    fn cas_failure(
        &self,
        key: &str,
        expected: Revision,
        responses: &[TxnOpResponse],
    ) -> StoreError {
        let current = responses.iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        });
        match current {
            Some(current) => StoreError::Conflict {
                key: key.to_owned(),
                expected,
                current,
            },
            None => StoreError::NotFound {
                key: key.to_owned(),
            },
        }
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Corrupt("etcd response without a header".into()))
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .call(true, || {
                let mut kv = self.client.kv_client();
                let prefix = self.prefix.clone();
                async move {
                    kv.get(prefix, Some(GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await
            .map_err(be)?;
        header_revision(resp.header())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let full = self.full_key(key);
        let resp = self
            .call(true, || {
                let mut kv = self.client.kv_client();
                let full = full.clone();
                async move { kv.get(full, None).await }
            })
            .await
            .map_err(be)?;
        resp.kvs().first().map(|kv| self.convert(kv)).transpose()
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        let start = match &options.start_after {
            // the first key after `start_after`
            Some(after) if after.as_str() >= prefix => format!("{}\0", self.full_key(after)),
            _ => self.full_key(prefix),
        };
        let mut get = GetOptions::new().with_range(self.full_key(&prefix_end(prefix)));
        if let Some(limit) = options.limit {
            get = get.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        if let Some(rev) = options.revision {
            get = get.with_revision(rev);
        }
        let resp = self
            .call(true, || {
                let mut kv = self.client.kv_client();
                let (start, get) = (start.clone(), get.clone());
                async move { kv.get(start, Some(get)).await }
            })
            .await
            .map_err(|e| revision_error(e, options.revision.unwrap_or(0)))?;
        let revision = match options.revision {
            Some(r) => r,
            None => header_revision(resp.header())?,
        };
        let items = resp
            .kvs()
            .iter()
            .map(|kv| self.convert(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListPage {
            items,
            revision,
            more: resp.more(),
        })
    }

    async fn write(&self, op: Write<'_>, guard: Option<&Guard>) -> Result<Revision> {
        let k = self.full_key(op.key());
        let k = k.as_str();
        // One transaction: the op's own compare, the guard's, and in the else branch a get of
        // the key (for a compare-and-swap) and of the guard key, to tell why it failed.
        let (mut when, then, mut otherwise) = match op {
            Write::Create { value, .. } => (
                vec![Compare::create_revision(k, CompareOp::Equal, 0)],
                TxnOp::put(k, value, None),
                vec![],
            ),
            Write::Update {
                value, expected, ..
            } => (
                vec![Compare::mod_revision(k, CompareOp::Equal, expected)],
                TxnOp::put(k, value, None),
                vec![TxnOp::get(k, None)],
            ),
            Write::Delete {
                expected: Some(exp),
                ..
            } => (
                vec![Compare::mod_revision(k, CompareOp::Equal, exp)],
                TxnOp::delete(k, None),
                vec![TxnOp::get(k, None)],
            ),
            Write::Delete { expected: None, .. } => (
                vec![Compare::create_revision(k, CompareOp::Greater, 0)],
                TxnOp::delete(k, None),
                vec![],
            ),
        };
        let guard_key = guard.map(|g| self.full_key(&g.key));
        if let (Some(g), Some(gk)) = (guard, &guard_key) {
            when.push(Compare::create_revision(
                gk.as_str(),
                CompareOp::Equal,
                g.create_revision,
            ));
            otherwise.push(TxnOp::get(gk.as_str(), None));
        }
        let txn = Txn::new().when(when).and_then([then]).or_else(otherwise);
        let resp = self
            .call(false, || {
                let mut kv = self.client.kv_client();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(be)?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        let responses = resp.op_responses();
        let key = op.key().to_owned();
        if let Some(g) = guard {
            // the guard's get is the last response
            let current = match responses.last() {
                Some(TxnOpResponse::Get(got)) => {
                    got.kvs().first().map_or(0, |kv| kv.create_revision())
                }
                _ => 0,
            };
            if current != g.create_revision {
                return Err(g.fenced(current));
            }
        }
        Err(match op {
            Write::Create { .. } => StoreError::AlreadyExists { key },
            Write::Update { expected, .. }
            | Write::Delete {
                expected: Some(expected),
                ..
            } => self.cas_failure(&key, expected, responses.get(..1).unwrap_or_default()),
            Write::Delete { expected: None, .. } => StoreError::NotFound { key },
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let options = WatchOptions::new()
            .with_range(self.full_key(&prefix_end(prefix)))
            .with_start_revision(after + 1)
            .with_prev_key();
        let from = self.full_key(prefix);
        let stream = self
            .call(true, || {
                let mut w = self.client.watch_client();
                let (from, options) = (from.clone(), options.clone());
                async move { w.watch(from, Some(options)).await }
            })
            .await
            .map_err(be)?;
        let this = self.clone();
        // Each etcd response becomes zero or more events; a cancel ends the stream with an error.
        let events = futures::stream::unfold(Some(stream), move |state| {
            let this = this.clone();
            async move {
                let mut stream = state?;
                loop {
                    let resp = match stream.message().await {
                        Ok(Some(resp)) => resp,
                        Ok(None) => {
                            let closed =
                                StoreError::backend(BACKEND, "watch stream closed by etcd");
                            return Some((vec![Err(closed)], None));
                        }
                        Err(e) => return Some((vec![Err(be(e))], None)),
                    };
                    if resp.canceled() {
                        let err = if resp.compact_revision() > 0 {
                            StoreError::Compacted {
                                requested: after,
                                compacted: resp.compact_revision(),
                            }
                        } else {
                            StoreError::backend(
                                BACKEND,
                                format!("watch canceled: {}", resp.cancel_reason()),
                            )
                        };
                        return Some((vec![Err(err)], None));
                    }
                    if resp.events().is_empty() {
                        continue;
                    }
                    let batch: Vec<Result<WatchEvent>> = resp
                        .events()
                        .iter()
                        .map(|ev| this.convert_event(ev))
                        .collect();
                    return Some((batch, Some(stream)));
                }
            }
        })
        .flat_map(futures::stream::iter);
        Ok(Box::pin(events))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.current_revision().await?;
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        let compacted = self
            .call(true, || {
                let mut kv = self.client.kv_client();
                async move { kv.compact(revision, None).await }
            })
            .await;
        match compacted {
            Ok(_) => Ok(()),
            Err(e) => match revision_error(e, revision) {
                // compacting at or below an earlier compaction does nothing
                StoreError::Compacted { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

impl EtcdStore {
    fn convert_event(&self, ev: &etcd_client::Event) -> Result<WatchEvent> {
        let kv = ev
            .kv()
            .ok_or_else(|| StoreError::Corrupt("watch event without a key".into()))?;
        match ev.event_type() {
            EventType::Put => {
                let kv = self.convert(kv)?;
                let kind = if kv.create_revision == kv.mod_revision {
                    EventKind::Created
                } else {
                    EventKind::Updated
                };
                Ok(WatchEvent { kind, kv })
            }
            EventType::Delete => {
                // the deleted value comes from prev_kv; the revision from the event
                let mut out = match ev.prev_kv() {
                    Some(prev) => self.convert(prev)?,
                    None => self.convert(kv)?,
                };
                out.mod_revision = kv.mod_revision();
                Ok(WatchEvent {
                    kind: EventKind::Deleted,
                    kv: out,
                })
            }
        }
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn etcds_urls_carry_the_ca_and_client_certificate_and_etcd_urls_no_tls() {
        let u = EtcdUrl::parse("etcds://a:2379,b:2379?ca=/c.pem&cert=/x.pem&key=/x.key&prefix=/p/")
            .unwrap();
        assert_eq!(u.endpoints, ["https://a:2379", "https://b:2379"]);
        assert!(u.tls);
        assert_eq!(u.prefix, "/p");
        assert_eq!(u.ca.as_deref(), Some("/c.pem"));
        assert_eq!(u.cert.as_deref(), Some("/x.pem"));
        let plain = EtcdUrl::parse("etcd://a:2379").unwrap();
        assert_eq!(plain.endpoints, ["http://a:2379"]);
        assert!(!plain.tls);
        assert_eq!(plain.prefix, "/catalyst");
        // TLS options need etcds://; a certificate needs its key
        assert!(EtcdUrl::parse("etcd://a:2379?ca=/c.pem").is_err());
        assert!(EtcdUrl::parse("etcds://a:2379?cert=/x.pem").is_err());
        assert!(EtcdUrl::parse("etcds://").is_err());
    }
}
