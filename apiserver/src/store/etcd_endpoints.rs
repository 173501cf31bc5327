//! Riding out a lost etcd member. etcd-client balances requests over every endpoint it was
//! given and keeps picking one whose member is gone (each such request fails with
//! `tcp connect error`; grpc/grpc-rust#2839): a prober takes endpoints that do not accept a
//! connection out of the balancer and puts them back when they do. A request that failed before
//! anything was sent (or that a member without a leader refused) is tried again; reads are also
//! tried again after a timeout during a leader election, writes are not (they may have been
//! applied: the caller hears of the failure, never of a success that did not happen).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::Client;
use tokio::sync::Notify;

use super::AbortOnDrop;

/// How often the endpoints are probed when nothing failed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a probe waits for a connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a request is tried again for.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// The endpoints and which of them are out of the balancer.
#[derive(Debug)]
pub(super) struct Endpoints {
    urls: Vec<String>,
    out: Mutex<BTreeSet<String>>,
    failed: Notify,
}

/// Why a request failed, for retrying.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Nothing reached etcd (no connection), or it refused before doing anything (no leader):
    /// safe to try again, whatever the request.
    NotSent,
    /// etcd gave up waiting (e.g. for a new leader): a read may be tried again, a write may
    /// have been applied.
    Ambiguous,
    /// Anything else (an answer to give to the caller).
    Other,
}

fn classify(e: &etcd_client::Error) -> Failure {
    match e {
        etcd_client::Error::GRpcStatus(s) => classify_text(&format!("{} {s:?}", s.message())),
        other => classify_text(&other.to_string()),
    }
}

fn classify_text(text: &str) -> Failure {
    let not_sent = [
        "tcp connect error",
        "error trying to connect",
        "Connection refused",
        "Service was not ready",
        "etcdserver: no leader",
    ];
    let ambiguous = [
        "etcdserver: request timed out",
        "etcdserver: leader changed",
        "transport error",
        "connection reset",
        "h2 protocol error",
    ];
    if not_sent.iter().any(|m| text.contains(m)) {
        Failure::NotSent
    } else if ambiguous.iter().any(|m| text.contains(m)) {
        Failure::Ambiguous
    } else {
        Failure::Other
    }
}

impl Endpoints {
    /// Watches `urls` (`http[s]://host:port`) for `client`; None for a single endpoint (nothing
    /// to balance). The prober ends with the returned guard.
    pub(super) fn start(client: &Client, urls: &[String]) -> Option<(Arc<Self>, AbortOnDrop)> {
        if urls.len() < 2 {
            return None;
        }
        let this = Arc::new(Endpoints {
            urls: urls.to_vec(),
            out: Mutex::new(BTreeSet::new()),
            failed: Notify::new(),
        });
        let prober = tokio::spawn(this.clone().probe_loop(client.clone()));
        Some((this, AbortOnDrop(prober)))
    }

    async fn probe_loop(self: Arc<Self>, client: Client) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(PROBE_EVERY) => {}
                () = self.failed.notified() => {}
            }
            self.probe(&client).await;
        }
    }

    /// Connects to every endpoint; takes the ones that refuse out of the balancer (unless
    /// none answers: then there is nothing better to send to) and puts back the ones that
    /// answer again.
    async fn probe(&self, client: &Client) {
        let answers = futures::future::join_all(self.urls.iter().map(|url| async move {
            let addr = host_port(url);
            let connect = tokio::net::TcpStream::connect(addr);
            matches!(
                tokio::time::timeout(PROBE_TIMEOUT, connect).await,
                Ok(Ok(_))
            )
        }))
        .await;
        if !answers.iter().any(|&a| a) {
            return;
        }
        for (url, up) in self.urls.iter().zip(answers) {
            let was_out = self.out.lock().expect("endpoints").contains(url);
            if up && was_out {
                match client.add_endpoint(url).await {
                    Ok(()) => {
                        tracing::info!(endpoint = url, "etcd member answers again");
                        self.out.lock().expect("endpoints").remove(url);
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = url, error = %e, "cannot add etcd endpoint")
                    }
                }
            } else if !up && !was_out {
                match client.remove_endpoint(url).await {
                    Ok(()) => {
                        tracing::warn!(
                            endpoint = url,
                            "etcd member does not answer; not used until it does"
                        );
                        self.out.lock().expect("endpoints").insert(url.clone());
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = url, error = %e, "cannot remove etcd endpoint")
                    }
                }
            }
        }
    }

    /// Runs `call` until it succeeds, fails for good, or [`RETRY_FOR`] passed; `read` says
    /// whether it changes nothing (then an ambiguous failure is retried too).
    pub(super) async fn retry<T, F, Fut>(
        this: Option<&Self>,
        read: bool,
        mut call: F,
    ) -> Result<T, etcd_client::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(25);
        loop {
            let e = match call().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let again = match classify(&e) {
                Failure::NotSent => true,
                Failure::Ambiguous => read,
                Failure::Other => false,
            };
            if !again || started.elapsed() + pause > RETRY_FOR {
                return Err(e);
            }
            if let Some(this) = this {
                this.failed.notify_one();
            }
            tracing::debug!(error = %e, "etcd request tried again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(400));
        }
    }
}

/// `host:port` of `scheme://host:port[/…]`.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_and_port() {
        assert_eq!(host_port("http://127.0.0.1:2379"), "127.0.0.1:2379");
        assert_eq!(host_port("https://etcd-1:2379/"), "etcd-1:2379");
    }

    #[test]
    fn only_what_never_reached_etcd_is_retried_for_writes() {
        assert_eq!(classify_text("tcp connect error"), Failure::NotSent);
        assert_eq!(classify_text("etcdserver: no leader"), Failure::NotSent);
        assert_eq!(
            classify_text("etcdserver: request timed out, possibly due to previous leader failure"),
            Failure::Ambiguous
        );
        assert_eq!(
            classify_text("etcdserver: mvcc: required revision has been compacted"),
            Failure::Other
        );
    }
}
