//! Request rate limits (governor's GCRA): per API key (`ApiKey.spec.requestsPerMinute`, else
//! [`LimitConfig::key_requests_per_minute`]), per signed-in user (a generous
//! [`LimitConfig::user_requests_per_minute`]) and successful node joins per source address.
//! Over a limit the answer is 429 with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// An API key's requests per minute when its spec names none.
pub const DEFAULT_KEY_REQUESTS_PER_MINUTE: u32 = 600;
/// A signed-in user's requests per minute (the panel's included).
pub const DEFAULT_USER_REQUESTS_PER_MINUTE: u32 = 6000;
/// Successful node joins per minute from one source address.
pub const DEFAULT_JOINS_PER_MINUTE: u32 = 30;

/// The most limiter entries kept per map before idle ones are dropped.
const MAX_ENTRIES: usize = 10_000;

/// The limits a server applies.
#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    /// An API key's rate when `spec.requestsPerMinute` is unset.
    pub key_requests_per_minute: u32,
    /// A user's rate (JWT callers).
    pub user_requests_per_minute: u32,
    /// Successful joins per source address.
    pub joins_per_minute: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            key_requests_per_minute: DEFAULT_KEY_REQUESTS_PER_MINUTE,
            user_requests_per_minute: DEFAULT_USER_REQUESTS_PER_MINUTE,
            joins_per_minute: DEFAULT_JOINS_PER_MINUTE,
        }
    }
}

fn per_minute(rate: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(rate.max(1)).expect("at least 1"))
}

fn too_many(what: &str, wait: std::time::Duration) -> ApiError {
    ApiError::TooManyRequests {
        message: format!("rate limit of {what} exceeded; try again later"),
        retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

/// The limiters of one server.
#[derive(Debug)]
pub struct RateLimits {
    config: LimitConfig,
    clock: DefaultClock,
    /// Per credential (`apikey:NAME`, `user:NAME`): its rate and its limiter, rebuilt when the
    /// configured rate changes. Direct limiters, since every key may have a quota of its own.
    callers: Mutex<HashMap<String, (u32, DefaultDirectRateLimiter)>>,
    joins: DefaultKeyedRateLimiter<String>,
}

impl RateLimits {
    /// Limiters for `config`.
    pub fn new(config: LimitConfig) -> Self {
        Self {
            config,
            clock: DefaultClock::default(),
            callers: Mutex::new(HashMap::new()),
            joins: RateLimiter::keyed(per_minute(config.joins_per_minute)),
        }
    }

    /// The limits applied.
    pub fn config(&self) -> LimitConfig {
        self.config
    }

    /// Counts a request of API key `name`, whose spec allows `requests_per_minute` (the
    /// default when `None`).
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`] over the limit.
    pub fn check_key(&self, name: &str, requests_per_minute: Option<u32>) -> Result<(), ApiError> {
        let rate = requests_per_minute.unwrap_or(self.config.key_requests_per_minute);
        self.check_caller(&format!("apikey:{name}"), rate, "requests for this API key")
    }

    /// Counts a request of user `name`.
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`] over the limit.
    pub fn check_user(&self, name: &str) -> Result<(), ApiError> {
        let rate = self.config.user_requests_per_minute;
        self.check_caller(&format!("user:{name}"), rate, "requests for this user")
    }

    fn check_caller(&self, key: &str, rate: u32, what: &str) -> Result<(), ApiError> {
        let mut callers = self.callers.lock().expect("limits lock");
        if callers.len() >= MAX_ENTRIES && !callers.contains_key(key) {
            // a full limiter has waited out its quota: forgetting it loses nothing
            callers.retain(|_, (r, l)| l.check_n(NonZeroU32::new(*r).expect("r >= 1")).is_err());
        }
        let entry = callers
            .entry(key.to_owned())
            .or_insert_with(|| (rate, RateLimiter::direct(per_minute(rate))));
        if entry.0 != rate {
            tracing::debug!(key, from = entry.0, to = rate, "rate limit changed");
            *entry = (rate, RateLimiter::direct(per_minute(rate)));
        }
        entry
            .1
            .check()
            .map_err(|not_until| too_many(what, not_until.wait_time_from(self.clock.now())))
    }

    /// Counts a successful join from `address`.
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`] over the limit.
    pub fn check_join(&self, address: &str) -> Result<(), ApiError> {
        if self.joins.len() >= MAX_ENTRIES {
            self.joins.retain_recent();
        }
        self.joins
            .check_key(&address.to_owned())
            .map_err(|not_until| {
                too_many(
                    "node joins from this address",
                    not_until.wait_time_from(self.clock.now()),
                )
            })
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::new(LimitConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_own_rate_and_a_new_one_when_it_changes() {
        let limits = RateLimits::default();
        for _ in 0..3 {
            limits.check_key("k", Some(3)).unwrap();
        }
        let e = limits.check_key("k", Some(3)).unwrap_err();
        assert_eq!(e.code().as_u16(), 429);
        match e {
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } => assert!(
                (1..=20).contains(&retry_after_seconds),
                "{retry_after_seconds}"
            ),
            other => panic!("{other:?}"),
        }
        // another key is apart; a raised rate takes effect at once
        limits.check_key("other", Some(3)).unwrap();
        limits.check_key("k", Some(10)).unwrap();
        // unset: the default
        for _ in 0..DEFAULT_KEY_REQUESTS_PER_MINUTE {
            limits.check_key("d", None).unwrap();
        }
        assert!(limits.check_key("d", None).is_err());
    }

    #[test]
    fn joins_are_limited_per_address() {
        let limits = RateLimits::new(LimitConfig {
            joins_per_minute: 2,
            ..LimitConfig::default()
        });
        limits.check_join("10.0.0.1").unwrap();
        limits.check_join("10.0.0.1").unwrap();
        assert!(limits.check_join("10.0.0.1").is_err());
        limits.check_join("10.0.0.2").unwrap();
        limits.check_user("u").unwrap();
    }
}
