//! The server's disk as the worker reports it: what making sure of it did (Events: data moved
//! in, grown, not shrunk), its use in `status.disk`, and the `DiskAlmostFull` warning.

use std::time::Duration;

use serde_json::{json, Value};

use super::Worker;
use crate::disk::{Ensured, FullAlarm, Usage};

/// The least time between two writes of `status.disk` that only report a change of use.
const WRITE_EVERY: Duration = Duration::from_secs(10);

/// `bytes` for people: `16 MiB`, `10.0 GiB`.
pub(super) fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes.div_ceil(1 << 20))
    }
}

/// The status field of a disk's use.
pub(super) fn disk_status(u: Usage) -> Value {
    json!({"usedBytes": u.used_bytes, "limitBytes": u.limit_bytes})
}

/// The use as the status last reported it.
fn reported(gs: &Value) -> Option<Usage> {
    let d = gs.pointer("/status/disk")?;
    Some(Usage {
        used_bytes: d.get("usedBytes")?.as_u64()?,
        limit_bytes: d.get("limitBytes")?.as_u64()?,
    })
}

/// True when use moved enough since `before` to be worth a status write: 1 % of the limit or
/// 1 MiB, whichever is more; or the limit changed.
fn moved(before: Option<Usage>, now: Usage) -> bool {
    let Some(b) = before else { return true };
    let step = (now.limit_bytes / 100).max(1 << 20);
    b.limit_bytes != now.limit_bytes || b.used_bytes.abs_diff(now.used_bytes) >= step
}

/// What the worker keeps of the disk between passes (in memory).
#[derive(Debug, Default)]
pub(super) struct DiskMemory {
    /// The almost-full warning (seeded from the status at the first reading).
    alarm: Option<FullAlarm>,
    /// The last use written, and when.
    written: Option<(Usage, tokio::time::Instant)>,
    /// The lowered limit already warned about.
    lowered_warned: Option<u64>,
}

impl Worker {
    /// Reports what making sure of the disk did: data moved into a new disk, a grow (or why
    /// not yet), a lower limit that leaves the disk as it is.
    pub(super) async fn disk_notes(&mut self, d: &Ensured) {
        if d.migrated {
            let msg = format!(
                "the data directory's files were moved into the server's own disk of {}",
                human(d.image_bytes)
            );
            self.console_line(&msg);
            self.event("Normal", "DiskMigrated", &msg).await;
        } else if d.created {
            self.console_line(&format!("made a disk of {}", human(d.image_bytes)));
        }
        if let Some(from) = d.grown_from {
            let msg = format!(
                "the disk grew from {} to {} ({})",
                human(from),
                human(d.image_bytes),
                if d.grown_online {
                    "online"
                } else {
                    "checked and grown while unmounted"
                }
            );
            self.console_line(&msg);
            self.event("Normal", "DiskGrown", &msg).await;
        }
        if let Some(why) = &d.grow_deferred {
            let msg = format!(
                "the disk stays at {} for now ({} asked): {why}; tried again at the next start",
                human(d.image_bytes),
                human(d.asked_bytes)
            );
            self.console_line(&msg);
            self.event("Warning", "DiskGrowDeferred", &msg).await;
        }
        if d.kept_larger() && self.disk.lowered_warned != Some(d.asked_bytes) {
            self.disk.lowered_warned = Some(d.asked_bytes);
            let msg = format!(
                "resources.disk asks for {}, less than the server's disk of {}: a disk is never \
                 shrunk (that could lose data), the server keeps {}",
                human(d.asked_bytes),
                human(d.image_bytes),
                human(d.image_bytes)
            );
            self.console_line(&msg);
            self.event("Warning", "DiskNotShrunk", &msg).await;
        }
    }

    /// The disk's use now, for a status write that goes out anyway (a start); remembered as
    /// written.
    pub(super) async fn disk_for_status(&mut self) -> Option<Value> {
        let u = self.env.runtime.disk_usage().await.ok().flatten()?;
        self.disk.written = Some((u, self.env.clock.now()));
        Some(disk_status(u))
    }

    /// Reads the disk's use of a running server: `status.disk` when it moved (at most every
    /// 10 s), and a `DiskAlmostFull` warning when it reaches 90 % (again only after it fell
    /// below 85 %). Failures are logged: they never fail the pass.
    pub(super) async fn watch_disk(&mut self) {
        let u = match self.env.runtime.disk_usage().await {
            Ok(Some(u)) => u,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(server = self.name(), error = %e, "cannot read the disk's use");
                return;
            }
        };
        let last = reported(&self.gs);
        let raise = self
            .disk
            .alarm
            .get_or_insert_with(|| FullAlarm::seeded(last))
            .observe(u);
        let now = self.env.clock.now();
        let due = match self.disk.written {
            None => moved(last, u),
            Some((w, at)) => {
                w.limit_bytes != u.limit_bytes
                    || (moved(Some(w), u) && now.duration_since(at) >= WRITE_EVERY)
            }
        };
        if raise || due {
            match self.patch_status(json!({ "disk": disk_status(u) })).await {
                Ok(()) => self.disk.written = Some((u, now)),
                Err(e) => {
                    tracing::warn!(server = self.name(), error = %e, "cannot write the disk's use")
                }
            }
        }
        if raise {
            let msg = format!(
                "the disk is {}% full: {} of {} used",
                u.percent(),
                human(u.used_bytes),
                human(u.limit_bytes)
            );
            self.console_line(&msg);
            self.event("Warning", "DiskAlmostFull", &msg).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(16 << 20), "16 MiB");
        assert_eq!(human(10 << 30), "10.0 GiB");
        assert_eq!(human(1), "1 MiB");
    }

    #[test]
    fn use_is_written_when_it_moved_a_percent_or_a_mebibyte() {
        let u = |used, limit| Usage {
            used_bytes: used,
            limit_bytes: limit,
        };
        assert!(moved(None, u(0, 100 << 20)));
        assert!(!moved(Some(u(0, 100 << 20)), u(512 << 10, 100 << 20)));
        assert!(moved(Some(u(0, 100 << 20)), u(1 << 20, 100 << 20)));
        assert!(!moved(Some(u(0, 10 << 30)), u(50 << 20, 10 << 30)));
        assert!(moved(Some(u(0, 10 << 30)), u(110 << 20, 10 << 30)));
        assert!(moved(Some(u(5, 10 << 30)), u(5, 11 << 30)), "a new limit");
    }
}
