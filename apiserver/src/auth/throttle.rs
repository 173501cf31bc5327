//! Failed-attempt throttling (logins and joins), per account and per source address: after a
//! few failures in a row, every further attempt waits out a back-off that doubles with each
//! failure (to a cap) and is answered 429 with Retry-After meanwhile, without checking the
//! password. A success clears the account's count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;

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
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    until: Option<Instant>,
}

/// Failure counts by key.
#[derive(Debug)]
pub struct Throttle {
    policy: Policy,
    entries: Mutex<HashMap<String, Entry>>,
}

/// The most keys remembered; past it, the oldest are forgotten (a flood of addresses must not
/// grow memory without bound).
const MAX_KEYS: usize = 100_000;

impl Throttle {
    /// A throttle with `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// 429 with the time left when `key` is backing off.
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`].
    pub fn check(&self, key: &str, what: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let entries = self.entries.lock().expect("throttle lock");
        match entries.get(key).and_then(|e| e.until) {
            Some(until) if until > now => Err(ApiError::TooManyRequests {
                message: format!("too many failed {what}; try again later"),
                retry_after_seconds: (until - now).as_secs().max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failure of `key`.
    pub fn failed(&self, key: &str) {
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
        if now.duration_since(e.last) > self.policy.window {
            e.failures = 0;
        }
        e.failures += 1;
        e.last = now;
        if e.failures > self.policy.free {
            let exp = (e.failures - self.policy.free - 1).min(20);
            let wait = self
                .policy
                .base
                .saturating_mul(1 << exp)
                .min(self.policy.max);
            e.until = Some(now + wait);
        }
    }

    /// Clears `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.entries.lock().expect("throttle lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_back_off_doubling() {
        let t = Throttle::new(Policy {
            free: 2,
            base: Duration::from_millis(200),
            max: Duration::from_secs(60),
            window: Duration::from_secs(60),
        });
        for _ in 0..2 {
            t.check("a", "logins").unwrap();
            t.failed("a");
        }
        t.check("a", "logins").unwrap();
        t.failed("a");
        let e = t.check("a", "logins").unwrap_err();
        assert_eq!(e.code().as_u16(), 429);
        assert!(t.check("b", "logins").is_ok(), "keys are apart");
        std::thread::sleep(Duration::from_millis(250));
        t.check("a", "logins").unwrap();
        t.failed("a");
        // the fourth failure waits twice as long
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.check("a", "logins").is_err());
        t.succeeded("a");
        assert!(t.check("a", "logins").is_ok());
    }
}
