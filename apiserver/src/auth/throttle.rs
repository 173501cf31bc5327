//! Failed-attempt throttling (logins and joins), per account and per source address: after a
//! few failures in a row, every further attempt waits out a back-off that doubles with each
//! failure (to a cap) and is answered 429 with Retry-After meanwhile, without checking the
//! password. A success clears the account's count.
//!
//! A throttle is kept in memory ([`Throttle::new`]: the per-address one, each server its own)
//! or in the store ([`Throttle::shared`]: the per-account one, so that several API servers on
//! one store give an account its free failures once, not once each). A shared record is
//! `/_catalyst/throttle/<scope>/<sha256 of the key>` with wall-clock times (the servers' clocks
//! must agree to within seconds, as for tokens' expiry); it is written by compare-and-swap, and
//! records idle for longer than the policy's window are swept. When the store cannot be read or
//! written, the server's own memory counts instead (never an open door, never a locked one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::store::{ListOptions, Store, StoreError};

/// How attempts are throttled.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures allowed before the back-off starts.
    pub free: u32,
    /// The first back-off.
    pub base: Duration,
    /// The longest back-off.
    pub max: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

impl Policy {
    /// Per account: 5 free failures, then 1 s doubling to 15 min.
    pub const ACCOUNT: Policy = Policy {
        free: 5,
        base: Duration::from_secs(1),
        max: Duration::from_secs(15 * 60),
        window: Duration::from_secs(3600),
    };
    /// Per source address: 20 free failures, then 1 s doubling to 15 min.
    pub const ADDRESS: Policy = Policy {
        free: 20,
        base: Duration::from_secs(1),
        max: Duration::from_secs(15 * 60),
        window: Duration::from_secs(3600),
    };

    /// The failure count after one more failure `since_last` after the previous one, and the
    /// back-off it starts (none while failures are free).
    fn after_failure(&self, failures: u32, since_last: Duration) -> (u32, Option<Duration>) {
        let failures = if since_last > self.window {
            1
        } else {
            failures.saturating_add(1)
        };
        let wait = (failures > self.free).then(|| {
            let exp = (failures - self.free - 1).min(20);
            self.base.saturating_mul(1 << exp).min(self.max)
        });
        (failures, wait)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    until: Option<Instant>,
}

/// A shared record: wall-clock milliseconds since the epoch.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    failures: u32,
    last_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until_ms: Option<i64>,
}

/// Where a shared throttle keeps its records.
#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    prefix: String,
}

/// Failure counts by key.
#[derive(Debug)]
pub struct Throttle {
    policy: Policy,
    entries: Mutex<HashMap<String, Entry>>,
    shared: Option<Shared>,
}

/// The most keys remembered; past it, the oldest are forgotten (a flood of addresses must not
/// grow memory without bound).
const MAX_KEYS: usize = 100_000;

/// Where shared throttles keep their records.
pub const PREFIX: &str = "/_catalyst/throttle/";

/// How often idle shared records are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Compare-and-swap tries of one shared failure before it is counted in memory only.
const TRIES: usize = 8;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn too_many(what: &str, seconds: u64) -> ApiError {
    ApiError::TooManyRequests {
        message: format!("too many failed {what}; try again later"),
        retry_after_seconds: seconds.max(1),
    }
}

impl Throttle {
    /// A throttle with `policy`, in this process's memory.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// A throttle with `policy` whose counts live in `store` under `scope` (`account`), shared
    /// by every server on the store.
    pub fn shared(policy: Policy, store: Arc<dyn Store>, scope: &str) -> Self {
        Self {
            shared: Some(Shared {
                store,
                prefix: format!("{PREFIX}{scope}/"),
            }),
            ..Self::new(policy)
        }
    }

    fn record_key(shared: &Shared, key: &str) -> String {
        format!("{}{}", shared.prefix, super::tokens::hash(key))
    }

    async fn read(shared: &Shared, at: &str) -> Result<Option<(Record, i64)>, StoreError> {
        let Some(kv) = shared.store.get(at).await? else {
            return Ok(None);
        };
        // a record that does not parse counts as none (it is overwritten by the next failure)
        Ok(serde_json::from_slice(&kv.value)
            .ok()
            .map(|r| (r, kv.mod_revision)))
    }

    /// 429 with the time left when `key` is backing off.
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`].
    pub async fn check(&self, key: &str, what: &str) -> Result<(), ApiError> {
        if let Some(shared) = &self.shared {
            match Self::read(shared, &Self::record_key(shared, key)).await {
                Ok(record) => {
                    let now = now_ms();
                    return match record.and_then(|(r, _)| r.until_ms) {
                        Some(until) if until > now => {
                            Err(too_many(what, ((until - now) as u64).div_ceil(1000)))
                        }
                        _ => Ok(()),
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "throttle: the store cannot be read; counting here")
                }
            }
        }
        let now = Instant::now();
        let entries = self.entries.lock().expect("throttle lock");
        match entries.get(key).and_then(|e| e.until) {
            Some(until) if until > now => Err(too_many(what, (until - now).as_secs())),
            _ => Ok(()),
        }
    }

    /// Counts a failure of `key`.
    pub async fn failed(&self, key: &str) {
        if let Some(shared) = &self.shared {
            match self.failed_shared(shared, key).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "throttle: the store cannot be written; counting here")
                }
            }
        }
        self.failed_here(key);
    }

    async fn failed_shared(&self, shared: &Shared, key: &str) -> Result<(), StoreError> {
        let at = Self::record_key(shared, key);
        let mut last_err = None;
        for _ in 0..TRIES {
            let now = now_ms();
            let current = Self::read(shared, &at).await?;
            let (failures, since) = match current {
                Some((r, _)) => (
                    r.failures,
                    Duration::from_millis(u64::try_from(now - r.last_ms).unwrap_or(0)),
                ),
                None => (0, Duration::ZERO),
            };
            let (failures, wait) = self.policy.after_failure(failures, since);
            let record = Record {
                failures,
                last_ms: now,
                until_ms: wait.map(|w| now.saturating_add(ms(w))),
            };
            let value = serde_json::to_vec(&record).expect("a record serializes");
            let written = match current {
                Some((_, rev)) => shared.store.update(&at, &value, rev).await,
                None => shared.store.create(&at, &value).await,
            };
            match written {
                Ok(_) => return Ok(()),
                // another server counted a failure meanwhile: count on top of it
                Err(e @ (StoreError::Conflict { .. } | StoreError::AlreadyExists { .. })) => {
                    last_err = Some(e)
                }
                // removed meanwhile (a success, a sweep): count from none
                Err(e @ StoreError::NotFound { .. }) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("a failed try"))
    }

    fn failed_here(&self, key: &str) {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("throttle lock");
        if entries.len() >= MAX_KEYS && !entries.contains_key(key) {
            let window = self.policy.window;
            entries.retain(|_, e| now.duration_since(e.last) < window);
            if entries.len() >= MAX_KEYS {
                entries.clear();
            }
        }
        let e = entries.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            last: now,
            until: None,
        });
        let (failures, wait) = self
            .policy
            .after_failure(e.failures, now.duration_since(e.last));
        e.failures = failures;
        e.last = now;
        if let Some(wait) = wait {
            e.until = Some(now + wait);
        }
    }

    /// Clears `key` after a success.
    pub async fn succeeded(&self, key: &str) {
        self.entries.lock().expect("throttle lock").remove(key);
        if let Some(shared) = &self.shared {
            let at = Self::record_key(shared, key);
            let gone = match shared.store.get(&at).await {
                Ok(Some(kv)) => shared
                    .store
                    .delete(&at, Some(kv.mod_revision))
                    .await
                    .map(drop),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            match gone {
                // a failure counted meanwhile stays
                Ok(()) | Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "throttle: a success not recorded"),
            }
        }
    }

    /// Removes shared records idle for longer than the policy's window; how many went.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let Some(shared) = &self.shared else {
            return Ok(0);
        };
        let horizon = now_ms().saturating_sub(ms(self.policy.window.max(self.policy.max)));
        let mut removed = 0;
        let mut options = ListOptions {
            limit: Some(1000),
            ..ListOptions::default()
        };
        loop {
            let page = shared.store.list(&shared.prefix, &options).await?;
            for kv in &page.items {
                let idle = serde_json::from_slice::<Record>(&kv.value)
                    .map_or(true, |r| r.last_ms < horizon);
                if idle
                    && shared
                        .store
                        .delete(&kv.key, Some(kv.mod_revision))
                        .await
                        .is_ok()
                {
                    removed += 1;
                }
            }
            if !page.more {
                return Ok(removed);
            }
            options.start_after = page.items.last().map(|kv| kv.key.clone());
            options.revision = Some(page.revision);
        }
    }
}

/// Sweeps `throttle`'s idle shared records every [`SWEEP_EVERY`] until the task is aborted.
pub fn spawn_sweeper(throttle: Arc<Throttle>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            match throttle.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "throttle records swept"),
                Err(e) => tracing::warn!(error = %e, "throttle records not swept"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Policy {
        Policy {
            free: 2,
            base: Duration::from_millis(200),
            max: Duration::from_secs(60),
            window: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn failures_past_the_free_ones_back_off_doubling() {
        let t = Throttle::new(quick());
        for _ in 0..2 {
            t.check("a", "logins").await.unwrap();
            t.failed("a").await;
        }
        t.check("a", "logins").await.unwrap();
        t.failed("a").await;
        let e = t.check("a", "logins").await.unwrap_err();
        assert_eq!(e.code().as_u16(), 429);
        assert!(t.check("b", "logins").await.is_ok(), "keys are apart");
        tokio::time::sleep(Duration::from_millis(250)).await;
        t.check("a", "logins").await.unwrap();
        t.failed("a").await;
        // the fourth failure waits twice as long
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(t.check("a", "logins").await.is_err());
        t.succeeded("a").await;
        assert!(t.check("a", "logins").await.is_ok());
    }

    #[tokio::test]
    async fn servers_on_one_store_share_the_count_of_an_account() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = crate::store::open(&url).await.unwrap();
        let (a, b) = (
            Throttle::shared(quick(), store.clone(), "account"),
            Throttle::shared(quick(), store.clone(), "account"),
        );
        // two failures at A, one at B: the third of the account, past its two free ones
        a.failed("alice").await;
        a.failed("alice").await;
        assert!(b.check("alice", "logins").await.is_ok());
        b.failed("alice").await;
        for t in [&a, &b] {
            let e = t.check("alice", "logins").await.unwrap_err();
            assert_eq!(e.code().as_u16(), 429);
        }
        assert!(a.check("bob", "logins").await.is_ok(), "accounts are apart");
        // the record names no account
        let page = store.list(PREFIX, &ListOptions::default()).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(
            !page.items[0].key.contains("alice"),
            "{}",
            page.items[0].key
        );
        // concurrent failures at both are all counted (compare-and-swap)
        let both = futures::future::join_all(
            (0..6).map(|i| (if i % 2 == 0 { &a } else { &b }).failed("carol")),
        );
        both.await;
        let kv = store
            .get(&Throttle::record_key(a.shared.as_ref().unwrap(), "carol"))
            .await
            .unwrap()
            .unwrap();
        let r: Record = serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(r.failures, 6);
        // a success at B clears it for A
        b.succeeded("alice").await;
        assert!(a.check("alice", "logins").await.is_ok());
        // idle records are swept, fresh ones stay
        assert_eq!(a.sweep().await.unwrap(), 0);
        let old = Record {
            failures: 9,
            last_ms: now_ms() - ms(Duration::from_secs(3600)),
            until_ms: None,
        };
        let at = Throttle::record_key(a.shared.as_ref().unwrap(), "dave");
        store
            .create(&at, &serde_json::to_vec(&old).unwrap())
            .await
            .unwrap();
        assert_eq!(a.sweep().await.unwrap(), 1);
        assert!(store.get(&at).await.unwrap().is_none());
        assert!(a.check("carol", "logins").await.is_err(), "carol stays");
    }
}
