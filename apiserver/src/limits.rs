//! The API's limits against hostile or careless clients: body size, page size, watch length,
//! and how many watches one client may hold open at once ([`WatchLimiter`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ApiError;

/// The largest request body (3 MiB, as Kubernetes); bigger ones are refused with a 413.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The largest page a list hands out; a bigger `limit` gets this many and a continue token.
/// Lists without a `limit` are complete, read from the store in pages of this size.
pub const MAX_LIMIT: usize = 500;

/// The longest watch a client may ask for with `timeoutSeconds` (a day); longer is a 400.
pub const MAX_WATCH_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Open watches one client may hold by default.
pub const WATCHES_PER_CLIENT: usize = 100;

/// Seconds a refused client is told to wait (`Retry-After`).
pub const WATCH_RETRY_AFTER: u64 = 5;

/// Counts open watches per client and refuses one past the cap. The client key is an opaque
/// string chosen by the caller (today the SHA-256 of the request's token).
#[derive(Debug)]
pub struct WatchLimiter {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Default for WatchLimiter {
    fn default() -> Self {
        Self::new(WATCHES_PER_CLIENT)
    }
}

impl WatchLimiter {
    /// A limiter allowing `max` open watches per client.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// Takes one of `who`'s watches; the permit gives it back when dropped.
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`] (429, with a `Retry-After`) when `who` already holds the
    /// maximum.
    pub fn acquire(&self, who: &str) -> Result<WatchPermit, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(who.to_owned()).or_default();
        if *count >= self.max {
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "too many open watches: at most {} per client; close one or try again later",
                    self.max
                ),
                retry_after_seconds: WATCH_RETRY_AFTER,
            });
        }
        *count += 1;
        Ok(WatchPermit {
            who: who.to_owned(),
            open: self.open.clone(),
        })
    }

    /// Watches `who` holds now.
    pub fn held(&self, who: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(who).copied().unwrap_or(0)
    }
}

/// One open watch of one client; dropping it frees the slot.
#[derive(Debug)]
pub struct WatchPermit {
    who: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.who) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_per_client_and_released_on_drop() {
        let limiter = WatchLimiter::new(2);
        let a1 = limiter.acquire("a").unwrap();
        let _a2 = limiter.acquire("a").unwrap();
        let err = limiter.acquire("a").unwrap_err();
        assert_eq!(err.code().as_u16(), 429);
        assert_eq!(err.reason(), "TooManyRequests");
        // another client is not affected
        let _b = limiter.acquire("b").unwrap();
        drop(a1);
        assert_eq!(limiter.held("a"), 1);
        let _a3 = limiter.acquire("a").unwrap();
        assert_eq!(limiter.held("a"), 2);
    }

    #[test]
    fn a_client_with_no_open_watches_leaves_no_entry() {
        let limiter = WatchLimiter::new(1);
        drop(limiter.acquire("a").unwrap());
        assert!(limiter.open.lock().unwrap().is_empty());
    }
}
