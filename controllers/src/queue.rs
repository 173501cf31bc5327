//! The controller work queue: keys, not events. A key added many times is reconciled once; a key
//! is never handed to two workers at once (added while in flight, it runs again after); failed
//! keys come back after an exponential backoff that a success resets.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Backoff after the first failure; doubles per failure up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// The longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct State<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    in_flight: HashSet<K>,
    /// Added while in flight: run again when done.
    dirty: HashSet<K>,
    delayed: BTreeMap<(Instant, u64), K>,
    seq: u64,
    failures: HashMap<K, u32>,
    closed: bool,
}

/// A deduplicating, per-key-serialised work queue with delays and backoff.
#[derive(Debug)]
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    wake: Notify,
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                queued: HashSet::new(),
                in_flight: HashSet::new(),
                dirty: HashSet::new(),
                delayed: BTreeMap::new(),
                seq: 0,
                failures: HashMap::new(),
                closed: false,
            }),
            wake: Notify::new(),
        }
    }
}

/// The delay before retry number `failures` (1-based).
pub fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    BASE_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// Queues `key` now (a no-op if it is queued already).
    pub fn add(&self, key: K) {
        let mut s = self.state.lock().expect("queue lock");
        Self::enqueue(&mut s, key);
        drop(s);
        self.wake.notify_one();
    }

    fn enqueue(s: &mut State<K>, key: K) {
        if s.in_flight.contains(&key) {
            s.dirty.insert(key);
        } else if s.queued.insert(key.clone()) {
            s.ready.push_back(key);
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        let mut s = self.state.lock().expect("queue lock");
        s.seq += 1;
        let seq = s.seq;
        s.delayed.insert((Instant::now() + delay, seq), key);
        drop(s);
        self.wake.notify_one();
    }

    /// Marks a reconcile of `key` as successful: resets its backoff.
    pub fn succeeded(&self, key: &K) {
        self.state.lock().expect("queue lock").failures.remove(key);
        self.done(key);
    }

    /// Marks a reconcile of `key` as failed: retries after the backoff; returns the delay.
    pub fn failed(&self, key: &K) -> Duration {
        let delay = {
            let mut s = self.state.lock().expect("queue lock");
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            backoff(*n)
        };
        self.done(key);
        self.add_after(key.clone(), delay);
        delay
    }

    fn done(&self, key: &K) {
        let mut s = self.state.lock().expect("queue lock");
        s.in_flight.remove(key);
        if s.dirty.remove(key) {
            Self::enqueue(&mut s, key.clone());
        }
        drop(s);
        self.wake.notify_one();
    }

    /// Stops the queue: `next` returns `None` once nothing is ready.
    pub fn close(&self) {
        self.state.lock().expect("queue lock").closed = true;
        self.wake.notify_waiters();
    }

    /// The next key to reconcile; waits for one. The caller must report `succeeded` or `failed`.
    pub async fn next(&self) -> Option<K> {
        loop {
            let wait_until = {
                let mut s = self.state.lock().expect("queue lock");
                let now = Instant::now();
                while let Some(entry) = s.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let key = entry.remove();
                    Self::enqueue(&mut s, key);
                }
                if let Some(key) = s.ready.pop_front() {
                    s.queued.remove(&key);
                    s.in_flight.insert(key.clone());
                    return Some(key);
                }
                if s.closed {
                    return None;
                }
                s.delayed.first_key_value().map(|((at, _), _)| *at)
            };
            match wait_until {
                Some(at) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Keys waiting now (not delayed, not in flight).
    pub fn len(&self) -> usize {
        self.state.lock().expect("queue lock").ready.len()
    }

    /// True when no key is waiting now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_key_added_many_times_is_handed_out_once() {
        let q = WorkQueue::default();
        for _ in 0..5 {
            q.add("a");
        }
        q.add("b");
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_in_flight_is_not_handed_out_again_until_done() {
        let q = Arc::new(WorkQueue::default());
        q.add("a");
        assert_eq!(q.next().await, Some("a"));
        q.add("a"); // changed while being reconciled
        let q2 = q.clone();
        let second = tokio::spawn(async move { q2.next().await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!second.is_finished(), "handed out twice at once");
        q.succeeded(&"a");
        assert_eq!(
            second.await.unwrap(),
            Some("a"),
            "runs again after the first finished"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_success_resets() {
        let q = WorkQueue::default();
        q.add("a");
        let start = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..4 {
            let k = q.next().await.unwrap();
            delays.push(q.failed(&k));
        }
        assert_eq!(
            delays,
            [
                Duration::from_millis(200),
                Duration::from_millis(400),
                Duration::from_millis(800),
                Duration::from_millis(1600)
            ]
        );
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(200 + 400 + 800 + 1600)
        );
        q.succeeded(&"a");
        q.add("a");
        let k = q.next().await.unwrap();
        assert_eq!(
            q.failed(&k),
            Duration::from_millis(200),
            "reset by the success"
        );
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_back_in_time_order() {
        let q = WorkQueue::default();
        q.add_after("late", Duration::from_secs(10));
        q.add_after("early", Duration::from_secs(1));
        let t = Instant::now();
        assert_eq!(q.next().await, Some("early"));
        assert_eq!(t.elapsed(), Duration::from_secs(1));
        q.succeeded(&"early");
        assert_eq!(q.next().await, Some("late"));
        assert_eq!(t.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_ends_waiting_workers() {
        let q = Arc::new(WorkQueue::<&str>::default());
        let q2 = q.clone();
        let worker = tokio::spawn(async move { q2.next().await });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(worker.await.unwrap(), None);
    }
}
