//! The pauses between retries of the nodelet's background loops.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// 200 ms doubling to 10 s, with jitter, forever.
pub fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
}
