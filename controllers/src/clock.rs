//! Wall-clock time for the controllers that act on it (schedules): [`SystemClock`] in
//! production, [`ManualClock`] where a test moves time by hand instead of waiting for it.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A future a clock resolves.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The time, and waiting for a time.
pub trait Clock: Debug + Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once [`Clock::now`] is at or after `t` (at once when it is already).
    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep<'_>;
}

/// The longest a [`SystemClock`] sleeps before it looks at the wall clock again, so a wall
/// clock that jumps (NTP, a suspended VM) delays a wake-up by at most this.
const RECHECK: Duration = Duration::from_secs(30);

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                let Ok(left) = (t - Utc::now()).to_std() else {
                    return;
                };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(RECHECK)).await;
            }
        })
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`], [`ManualClock::set`]).
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: watch::Sender::new(start),
        }
    }

    /// Moves the clock forward by `d`, waking the sleepers whose time came.
    pub fn advance(&self, d: Duration) {
        let d = chrono::Duration::from_std(d).expect("a sane duration");
        self.now.send_modify(|t| *t += d);
    }

    /// Sets the clock to `t` (never backwards: an earlier `t` is ignored).
    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_if_modified(|now| {
            let later = t > *now;
            if later {
                *now = t;
            }
            later
        });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep<'_> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // the sender lives as long as `self`, which outlives this future
            let _ = rx.wait_for(|now| *now >= t).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_only_once_their_time_came() {
        let start = Utc::now();
        let clock = Arc::new(ManualClock::new(start));
        let c = clock.clone();
        let sleeper = tokio::spawn(async move {
            c.sleep_until(start + chrono::Duration::seconds(10)).await;
            c.now()
        });
        clock.advance(Duration::from_secs(9));
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished(), "woke a second early");
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            sleeper.await.unwrap(),
            start + chrono::Duration::seconds(10)
        );
        clock.set(start);
        assert_eq!(
            clock.now(),
            start + chrono::Duration::seconds(10),
            "never back"
        );
        clock.sleep_until(start).await;
    }
}
