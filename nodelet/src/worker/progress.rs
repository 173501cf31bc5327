//! Pull progress on the GameServer: while a registry pull streams layers, the `ImagePulled`
//! condition (False, reason `Pulling`) says how far it is, written at most every
//! [`INTERVAL`]; when the image is there it turns True.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// The condition type.
pub const CONDITION: &str = "ImagePulled";
/// The least time between two progress writes.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// `123.4 MiB of 456.7 MiB (27%)`.
pub fn message(done: u64, total: u64) -> String {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let percent = if total == 0 {
        100
    } else {
        (done.min(total) as u128 * 100 / total as u128) as u64
    };
    format!("{:.1} MiB of {:.1} MiB ({percent}%)", mib(done), mib(total))
}

/// The next progress to write: the latest value once it changed, no sooner than `every` after
/// `last`; None when the pull is over (the sender is gone).
pub async fn next(
    rx: &mut watch::Receiver<Option<(u64, u64)>>,
    last: Option<Instant>,
    every: Duration,
) -> Option<(u64, u64)> {
    if let Some(l) = last {
        tokio::time::sleep_until(l + every).await;
    }
    loop {
        rx.changed().await.ok()?;
        if let Some(p) = *rx.borrow_and_update() {
            return Some(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_gives_mebibytes_and_percent() {
        assert_eq!(
            message(129_394_278, 478_884_659),
            "123.4 MiB of 456.7 MiB (27%)"
        );
        assert_eq!(message(0, 0), "0.0 MiB of 0.0 MiB (100%)");
        assert_eq!(message(5 << 20, 5 << 20), "5.0 MiB of 5.0 MiB (100%)");
    }

    #[tokio::test(start_paused = true)]
    async fn progress_is_read_at_most_once_an_interval_and_only_the_latest() {
        let (tx, mut rx) = watch::channel(None);
        tx.send_replace(Some((1, 100)));
        let start = Instant::now();
        assert_eq!(next(&mut rx, None, INTERVAL).await, Some((1, 100)));
        assert_eq!(Instant::now(), start, "the first one at once");
        let last = Instant::now();
        let sender = tokio::spawn(async move {
            for done in 2..=50 {
                tx.send_replace(Some((done, 100)));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tx);
        });
        // 49 updates in 490 ms: one read, a second after the last, of the latest value
        assert_eq!(next(&mut rx, Some(last), INTERVAL).await, Some((50, 100)));
        assert_eq!(Instant::now(), last + INTERVAL);
        // nothing new: it waits until the sender is gone
        assert_eq!(next(&mut rx, Some(Instant::now()), INTERVAL).await, None);
        sender.await.expect("sender");
    }
}
