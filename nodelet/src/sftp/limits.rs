//! The SFTP server's limits: failed logins slow down per remote address, and sessions are
//! counted (in all, per user, and not yet logged in per address).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// At most this many addresses are remembered; past it, the ones quiet longest are forgotten.
const MAX_ADDRESSES: usize = 65_536;

/// What is counted per remote address: an IPv4 address, or an IPv6 /64 (one host holds a
/// whole /64 and could rotate through it); IPv4-mapped IPv6 addresses count as IPv4.
pub(super) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Failed logins per remote address: after `free` failures, each next attempt waits
/// `base`, doubling per further failure up to `max`. Attempts from one address queue behind
/// each other (parallel connections gain nothing), and one that would wait longer than its
/// caller can (its connection's login deadline) is refused without asking anyone and takes no
/// place in the queue. An address is forgotten `forget` after its last failure.
#[derive(Debug)]
pub(super) struct Throttle {
    free: u32,
    base: Duration,
    max: Duration,
    forget: Duration,
    addrs: Mutex<HashMap<IpAddr, Record>>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    /// When the last queued attempt may run.
    next: Instant,
}

impl Throttle {
    pub(super) fn new(free: u32, base: Duration, max: Duration) -> Self {
        Throttle {
            free,
            base,
            max,
            forget: Duration::from_secs(15 * 60),
            addrs: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before an attempt after `failures` failures.
    fn delay(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// Waits until this address may try again, at most `max_wait`. `false`: refuse this
    /// attempt at once (its turn comes later than that).
    pub(super) async fn wait(&self, ip: IpAddr, max_wait: Duration) -> bool {
        let ip = address_key(ip);
        let until = {
            let mut addrs = self.addrs.lock().expect("throttle");
            let now = Instant::now();
            let Some(rec) = addrs.get_mut(&ip) else {
                return true;
            };
            if now.duration_since(rec.last) > self.forget {
                addrs.remove(&ip);
                return true;
            }
            let delay = self.delay(rec.failures);
            if delay.is_zero() {
                return true;
            }
            let slot = rec.next.max(now) + delay;
            if slot.duration_since(now) > max_wait {
                return false;
            }
            rec.next = slot;
            slot
        };
        tokio::time::sleep_until(until).await;
        true
    }

    /// Counts a failed attempt from this address.
    pub(super) fn failed(&self, ip: IpAddr) -> u32 {
        let ip = address_key(ip);
        let mut addrs = self.addrs.lock().expect("throttle");
        let now = Instant::now();
        if addrs.len() >= MAX_ADDRESSES && !addrs.contains_key(&ip) {
            let forget = self.forget;
            addrs.retain(|_, r| now.duration_since(r.last) <= forget);
            if addrs.len() >= MAX_ADDRESSES {
                // still full: forget the quietest half
                let mut lasts: Vec<Instant> = addrs.values().map(|r| r.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                addrs.retain(|_, r| r.last > cut);
            }
        }
        let rec = addrs.entry(ip).or_insert(Record {
            failures: 0,
            last: now,
            next: now,
        });
        if now.duration_since(rec.last) > self.forget {
            rec.failures = 0;
        }
        rec.failures = rec.failures.saturating_add(1);
        rec.last = now;
        rec.failures
    }
}

/// Counts of something by key, each at most a limit; a [`Slot`] holds one until dropped.
#[derive(Debug)]
pub(super) struct Counter<K: Eq + Hash + Clone + Send + 'static> {
    counts: Mutex<HashMap<K, usize>>,
}

impl<K: Eq + Hash + Clone + Send + 'static> Default for Counter<K> {
    fn default() -> Self {
        Counter {
            counts: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> Counter<K> {
    /// One more for `key`, unless it has `max` already.
    pub(super) fn acquire(self: &Arc<Self>, key: K, max: usize) -> Option<Slot<K>> {
        let mut counts = self.counts.lock().expect("counter");
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Slot {
            counter: self.clone(),
            key,
        })
    }

    /// How many `key` has.
    #[cfg(test)]
    pub(super) fn count(&self, key: &K) -> usize {
        self.counts
            .lock()
            .expect("counter")
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// A logged-in session's place in the per-user count.
pub(super) type UserSlot = Slot<String>;

/// One counted thing; dropping it gives its place back.
#[derive(Debug)]
pub(super) struct Slot<K: Eq + Hash + Clone + Send + 'static> {
    counter: Arc<Counter<K>>,
    key: K,
}

impl<K: Eq + Hash + Clone + Send + 'static> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut counts = self.counter.counts.lock().expect("counter");
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_after_the_free_failures_up_to_the_most() {
        let t = Throttle::new(5, Duration::from_secs(1), Duration::from_secs(60));
        let secs: Vec<u64> = (0..14).map(|f| t.delay(f).as_secs()).collect();
        assert_eq!(secs, [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(t.delay(u32::MAX), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_from_one_address_queue_and_a_long_queue_is_refused() {
        let t = Arc::new(Throttle::new(
            2,
            Duration::from_secs(1),
            Duration::from_secs(4),
        ));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        t.failed(ip);
        t.failed(ip);
        t.failed(ip);
        // 3 failures: each attempt waits 2 s, queued
        let start = Instant::now();
        let most = Duration::from_secs(8);
        assert!(t.wait(ip, most).await);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let (a, b) = tokio::join!(t.wait(ip, most), t.wait(ip, most));
        assert!(a && b);
        assert_eq!(start.elapsed(), Duration::from_secs(6), "the two queued");
        // another address is not held up
        let before = Instant::now();
        assert!(t.wait(other, most).await);
        assert_eq!(before.elapsed(), Duration::ZERO);
        // a turn later than the caller can wait: refused at once, without taking a place
        let waits: Vec<_> = (0..6).map(|_| t.clone()).collect();
        let results = futures::future::join_all(waits.iter().map(|t| t.wait(ip, most))).await;
        assert_eq!(results, [true, true, true, true, false, false]);
        let before = Instant::now();
        assert!(
            t.wait(ip, Duration::from_secs(2)).await,
            "the queue did not grow"
        );
        assert_eq!(before.elapsed(), Duration::from_secs(2));
        // forgotten after a quiet while
        tokio::time::advance(Duration::from_secs(16 * 60)).await;
        let before = Instant::now();
        assert!(t.wait(ip, Duration::ZERO).await);
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let key = |s: &str| address_key(s.parse().expect("ip")).to_string();
        assert_eq!(key("192.0.2.1"), "192.0.2.1");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:bbbb::7"), "2001:db8:1:2::");
        assert_eq!(key("::ffff:192.0.2.9"), "192.0.2.9");
    }

    #[test]
    fn a_counter_holds_at_most_its_limit_and_slots_give_back() {
        let c: Arc<Counter<&str>> = Arc::default();
        let a = c.acquire("u", 2).expect("first");
        let b = c.acquire("u", 2).expect("second");
        assert!(c.acquire("u", 2).is_none());
        assert!(c.acquire("v", 2).is_some());
        drop(a);
        assert_eq!(c.count(&"u"), 1);
        let _c = c.acquire("u", 2).expect("room again");
        drop(b);
        assert!(c.acquire("w", 0).is_none());
        assert_eq!(c.count(&"w"), 0);
    }
}
