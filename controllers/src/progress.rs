//! What a controller's worker has finished: per key, the newest resourceVersion a successful
//! reconcile started from. Lets a caller wait until the controller has really looked at an
//! object as it is now (tests asserting that nothing happened, tools that want to know the
//! controller caught up), instead of sleeping and hoping.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// Completed reconciles per key of one controller.
#[derive(Debug)]
pub struct Progress {
    done: Mutex<HashMap<String, i64>>,
    tick: watch::Sender<u64>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            done: Mutex::new(HashMap::new()),
            tick: watch::Sender::new(0),
        }
    }
}

impl Progress {
    /// Records that a reconcile of `key` that started from revision `rv` succeeded (`None`: the
    /// object was gone, and the key is forgotten).
    pub fn record(&self, key: &str, rv: Option<i64>) {
        {
            let mut done = self.done.lock().expect("progress lock");
            match rv {
                Some(rv) => {
                    let at = done.entry(key.to_owned()).or_insert(rv);
                    *at = (*at).max(rv);
                }
                None => {
                    done.remove(key);
                }
            }
        }
        self.tick.send_modify(|n| *n += 1);
    }

    /// The newest revision of `key` a successful reconcile started from.
    pub fn reconciled(&self, key: &str) -> Option<i64> {
        self.done.lock().expect("progress lock").get(key).copied()
    }

    /// Waits until a reconcile of `key` that started from revision `rv` or newer has succeeded.
    pub async fn wait_for(&self, key: &str, rv: i64) {
        let mut tick = self.tick.subscribe();
        while self.reconciled(key).is_none_or(|at| at < rv) {
            if tick.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_waiter_wakes_only_once_the_revision_it_waits_for_was_reconciled() {
        let p = Arc::new(Progress::default());
        p.record("default/a", Some(3));
        let p2 = p.clone();
        let waiter = tokio::spawn(async move { p2.wait_for("default/a", 5).await });
        p.record("default/b", Some(9));
        p.record("default/a", Some(4));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !waiter.is_finished(),
            "woke before revision 5 was reconciled"
        );
        p.record("default/a", Some(6));
        waiter.await.unwrap();
        assert_eq!(p.reconciled("default/a"), Some(6));
        p.record("default/a", Some(2));
        assert_eq!(p.reconciled("default/a"), Some(6), "never goes back");
        p.record("default/a", None);
        assert_eq!(p.reconciled("default/a"), None);
    }
}
