//! Spare disks: a few images of the node's default disk size made ahead of time, so that a new
//! server's start takes one (a rename) instead of running `mkfs.ext4` on its way (~30 ms, and
//! CPU and I/O a start shares with the CNI plugins and runc).
//!
//! A spare is a plain file `<data-dir>/pool/disks/spare-<bytes>-<id>.img` (made as
//! `<name>.making` and renamed when whole), its root directory owned by root: the server's
//! user gets it once it is mounted (one directory to re-own, `lost+found` is removed). Nothing
//! of the kernel is held (no loop device, no mount), so a kill -9 at any point leaves only
//! files: a half-made one is removed at the next fill, a whole one is used later. Spares of
//! another size than the default are removed when the default changes. Taking is a rename,
//! atomic between workers: two that race for one spare get one each or one and none.
//!
//! Blocking, like the rest of [`super`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{image_size, io_err, make_image, Result};

/// How many spares a node keeps by default: the servers of a burst of creates beyond it make
/// their disks on their starts, as without spares.
pub const DEFAULT_KEEP: usize = 2;

const PREFIX: &str = "spare-";
const MAKING: &str = ".making";

/// A node's spare disks.
#[derive(Debug)]
pub struct Spares {
    dir: PathBuf,
    keep: usize,
    wake: Notify,
    taken: AtomicU64,
}

impl Spares {
    /// Spares kept under `<data_dir>/pool/disks`, `keep` of them (0: none are made, and any
    /// there are removed at the next fill).
    pub fn new(data_dir: &Path, keep: usize) -> Self {
        Spares {
            dir: data_dir.join("pool").join("disks"),
            keep,
            wake: Notify::new(),
            taken: AtomicU64::new(0),
        }
    }

    /// How many spares are kept.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// How many spares were taken since the nodelet started.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// The whole spares there are, with their image sizes.
    fn list(&self) -> Vec<(PathBuf, u64)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(PathBuf, u64)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let bytes = name
                    .strip_prefix(PREFIX)?
                    .strip_suffix(".img")?
                    .split_once('-')?
                    .0
                    .parse()
                    .ok()?;
                Some((e.path(), bytes))
            })
            .collect();
        out.sort();
        out
    }

    /// Moves a spare image of exactly `image_bytes` to `to` (which must not exist, on the same
    /// filesystem); true when there was one. The filling task is woken to make another.
    pub fn take(&self, image_bytes: u64, to: &Path) -> bool {
        if self.keep == 0 {
            return false;
        }
        for (path, bytes) in self.list() {
            if bytes != image_bytes {
                continue;
            }
            // a rename over nothing: another taker that got it first leaves ENOENT here
            if std::fs::rename(&path, to).is_ok() {
                self.taken.fetch_add(1, Ordering::Relaxed);
                self.wake.notify_one();
                return true;
            }
        }
        false
    }

    /// Removes half-made spares and those of another size than `bytes` makes, then makes
    /// spares until `keep` are there; how many were made.
    pub fn fill(&self, bytes: u64) -> Result<usize> {
        let want = image_size(bytes);
        std::fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(MAKING) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let mut have = 0;
        for (path, size) in self.list() {
            if size == want && have < self.keep {
                have += 1;
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        let mut made = 0;
        while have < self.keep {
            let name = format!("{PREFIX}{want}-{}.img", uuid::Uuid::new_v4().simple());
            let path = self.dir.join(&name);
            let making = self.dir.join(format!("{name}{MAKING}"));
            if let Err(e) = make_image(&making, want, 0, 0) {
                let _ = std::fs::remove_file(&making);
                return Err(e);
            }
            std::fs::rename(&making, &path).map_err(io_err("rename", &making))?;
            have += 1;
            made += 1;
        }
        Ok(made)
    }

    /// Keeps the spares filled for the default disk size `bytes()` says, from now on: at
    /// start, and again a while after each take (so that a burst of starts does not share its
    /// CPU with mkfs). Runs until the task is aborted.
    pub async fn run(self: Arc<Self>, bytes: impl Fn() -> u64 + Send + 'static) {
        if self.keep == 0 {
            let dir = self.dir.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
            return;
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            let me = self.clone();
            let size = bytes();
            match tokio::task::spawn_blocking(move || me.fill(size)).await {
                Ok(Ok(made)) => {
                    backoff = Duration::from_secs(1);
                    if made > 0 {
                        tracing::debug!(made, bytes = size, "spare disks made");
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, retry_s = backoff.as_secs(), "spare disks not made");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    continue;
                }
                Err(e) => tracing::warn!(error = %e, "spare disks not made"),
            }
            // a take wakes the fill, which waits until starts are quiet for a while
            self.wake.notified().await;
            loop {
                let quiet = tokio::time::timeout(QUIET, self.wake.notified()).await;
                if quiet.is_err() {
                    break;
                }
            }
        }
    }
}

/// How long no spare must have been taken before new ones are made.
const QUIET: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    fn spares_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("pool/disks"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn spares_are_made_taken_once_and_replaced_by_size() {
        let tmp = tempfile::tempdir().expect("tmp");
        let spares = Spares::new(tmp.path(), 2);
        // a half-made one from a killed nodelet goes
        std::fs::create_dir_all(tmp.path().join("pool/disks")).expect("dir");
        std::fs::write(
            tmp.path().join("pool/disks/spare-1-x.img.making"),
            b"partial",
        )
        .expect("write");
        assert_eq!(spares.fill(16 << 20).expect("fill"), 2);
        let names = spares_in(tmp.path());
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names
            .iter()
            .all(|n| n.starts_with("spare-16777216-") && n.ends_with(".img")));
        // nothing more to make
        assert_eq!(spares.fill(16 << 20).expect("fill"), 0);

        // only the exact size is taken; each spare once
        let to = |n: u32| tmp.path().join(format!("taken-{n}.img"));
        assert!(!spares.take(32 << 20, &to(0)));
        assert!(spares.take(16 << 20, &to(1)));
        assert!(spares.take(16 << 20, &to(2)));
        assert!(!spares.take(16 << 20, &to(3)));
        assert_eq!(spares.taken(), 2);
        // a real ext4 filesystem (e2fsck finds it clean)
        let check = std::process::Command::new(super::super::tool("e2fsck"))
            .args(["-n", "-f"])
            .arg(to(1))
            .output()
            .expect("e2fsck");
        assert!(check.status.success(), "{check:?}");

        // a new default size: the old spares go, new ones come
        assert_eq!(spares.fill(16 << 20).expect("fill"), 2);
        assert_eq!(spares.fill(32 << 20).expect("fill"), 2);
        let names = spares_in(tmp.path());
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("spare-33554432-")));
    }

    #[test]
    fn no_spares_are_kept_when_none_are_asked_for() {
        let tmp = tempfile::tempdir().expect("tmp");
        let spares = Spares::new(tmp.path(), 0);
        assert_eq!(spares.fill(16 << 20).expect("fill"), 0);
        assert!(spares_in(tmp.path()).is_empty());
        assert!(!spares.take(16 << 20, &tmp.path().join("x.img")));
    }
}
