//! Image garbage collection, as the kubelet does it: when the filesystem holding containerd's
//! content store is fuller than the high threshold, images no server of this node uses are
//! removed, least recently used first, until it is back under the low threshold; on demand
//! (`catalyst image prune`), every unused image goes.
//!
//! An image is in use when a server bound to this node names it (its spec or template, running
//! or not: each worker records the images of every resolution, pinned and latest, main and
//! install), when a container in containerd was made from it, or when its per-image lock is
//! held (a fetch or a container being prepared). Last use is the time a server last started
//! with it (kept in `<data-dir>/image-use.json`), else when containerd last updated it.
//! Removing is containerd's image delete with a synchronous garbage collection, so the blobs
//! and snapshots only that image held go at once; the bytes freed are measured on the
//! filesystem.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::ctd::{Containerd, CtdError};

/// Default: collect when the image filesystem is this full (percent).
pub const DEFAULT_HIGH_THRESHOLD: u8 = 85;
/// Default: collect down to this (percent).
pub const DEFAULT_LOW_THRESHOLD: u8 = 80;
/// How often the thresholds are checked (besides after each fetch).
pub const CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);
/// The name of the prune socket in the nodelet's data directory.
pub const SOCKET_NAME: &str = "image-gc.sock";

/// Images removed by this process (a Prometheus counter).
pub static IMAGES_REMOVED: AtomicU64 = AtomicU64::new(0);
/// Bytes freed by removing images (a Prometheus counter).
pub static BYTES_FREED: AtomicU64 = AtomicU64::new(0);

/// What can go wrong collecting images.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// containerd refused.
    #[error(transparent)]
    Containerd(#[from] CtdError),
    /// containerd does not say where its content store is.
    #[error("containerd does not report the root of its content store")]
    NoRoot,
    /// The filesystem could not be measured.
    #[error("cannot measure the filesystem of {path}: {source}")]
    Statvfs {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// Not every server bound here has said which images it needs yet.
    #[error("not every server of this node has been resolved yet; try again shortly")]
    NotReady,
    /// The thresholds make no sense.
    #[error("image GC thresholds: low ({low}%) must be below high ({high}%), high at most 100%")]
    Thresholds {
        /// Low.
        low: u8,
        /// High.
        high: u8,
    },
}

/// One image as the selection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its name in containerd.
    pub name: String,
    /// Its bytes on disk (shared layers counted in full).
    pub size: u64,
    /// When it was last used (seconds since the epoch).
    pub last_used: i64,
    /// Whether something on this node uses it (never removed).
    pub in_use: bool,
}

/// How many bytes to free: none while `used` is under `high` percent of `capacity`, else down
/// to `low` percent.
pub fn bytes_to_free(capacity: u64, used: u64, high: u8, low: u8) -> u64 {
    let percent = |p: u8| (capacity as u128 * p as u128 / 100) as u64;
    if used < percent(high) {
        0
    } else {
        used.saturating_sub(percent(low))
    }
}

/// The images to remove to free `to_free` bytes: unused ones, least recently used first (ties
/// by name), until their sizes add up to it (`u64::MAX`: every unused image).
pub fn select(images: &[Candidate], to_free: u64) -> Vec<String> {
    let mut unused: Vec<&Candidate> = images.iter().filter(|c| !c.in_use).collect();
    unused.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.name.cmp(&b.name)));
    let mut planned = 0u64;
    let mut out = Vec::new();
    for c in unused {
        if planned >= to_free {
            break;
        }
        planned = planned.saturating_add(c.size);
        out.push(c.name.clone());
    }
    out
}

/// Last-use times of images, kept in a small JSON file.
#[derive(Debug)]
pub struct LastUse {
    path: PathBuf,
    times: Mutex<BTreeMap<String, i64>>,
}

impl LastUse {
    /// The record in `path` (empty when absent or unreadable).
    pub fn open(path: &Path) -> Self {
        let times = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        LastUse {
            path: path.to_owned(),
            times: Mutex::new(times),
        }
    }

    /// `image` is used now. A use within the last minute is not written again (every start
    /// touches its image; the order of use needs no finer grain).
    pub fn touch(&self, image: &str) {
        let now = chrono::Utc::now().timestamp();
        if self
            .get(image)
            .is_some_and(|t| (0..60).contains(&(now - t)))
        {
            return;
        }
        self.set(image, Some(now));
    }

    /// When `image` was last used, if recorded.
    pub fn get(&self, image: &str) -> Option<i64> {
        self.times.lock().expect("last use").get(image).copied()
    }

    /// Forgets `image` (removed).
    pub fn forget(&self, image: &str) {
        self.set(image, None);
    }

    fn set(&self, image: &str, at: Option<i64>) {
        let mut times = self.times.lock().expect("last use");
        match at {
            Some(t) => times.insert(image.to_owned(), t),
            None => times.remove(image),
        };
        let tmp = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec(&*times)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::warn!(file = %self.path.display(), error = %e, "image last-use record not saved");
        }
    }
}

/// One removed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Its name.
    pub name: String,
    /// The bytes the filesystem gained.
    pub freed: u64,
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The images removed, in order.
    pub removed: Vec<Removed>,
    /// The bytes freed in all.
    pub freed: u64,
    /// Images kept because something uses them.
    pub in_use: usize,
}

/// Which collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only above the high threshold, down to the low one.
    Thresholds,
    /// Every unused image.
    Prune,
}

/// The node's image collector: thresholds, last-use record, per-image locks and the images
/// each server needs.
#[derive(Debug)]
pub struct ImageGc {
    ctd: Containerd,
    high: u8,
    low: u8,
    last_use: LastUse,
    /// Per-image locks: one fetch per image at a time, and no removal while held.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The images each server (by uid) needs.
    users: Mutex<HashMap<String, BTreeSet<String>>>,
    /// One collection at a time.
    running: tokio::sync::Mutex<()>,
}

impl ImageGc {
    /// A collector for `ctd` with thresholds in percent, its record in `data_dir`.
    pub fn new(ctd: Containerd, data_dir: &Path, high: u8, low: u8) -> Result<Self, GcError> {
        if low >= high || high > 100 {
            return Err(GcError::Thresholds { low, high });
        }
        Ok(ImageGc {
            ctd,
            high,
            low,
            last_use: LastUse::open(&data_dir.join("image-use.json")),
            locks: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// The lock of `image` (taken by fetches and container preparation).
    pub fn lock(&self, image: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("image locks")
            .entry(image.to_owned())
            .or_default()
            .clone()
    }

    /// Server `uid` needs these images (replacing what it needed before).
    pub fn set_users(&self, uid: &str, images: BTreeSet<String>) {
        self.users
            .lock()
            .expect("image users")
            .insert(uid.to_owned(), images);
    }

    /// Server `uid` is gone from this node.
    pub fn forget_user(&self, uid: &str) {
        self.users.lock().expect("image users").remove(uid);
    }

    /// True when every one of `uids` has said which images it needs.
    pub fn knows_all(&self, uids: &[String]) -> bool {
        let users = self.users.lock().expect("image users");
        uids.iter().all(|u| users.contains_key(u))
    }

    /// `image` is used now (a server starts with it).
    pub fn touch(&self, image: &str) {
        self.last_use.touch(image);
    }

    /// Capacity and used bytes of the filesystem holding containerd's content store.
    async fn usage(&self) -> Result<(u64, u64), GcError> {
        let root = self.ctd.content_root().await?.ok_or(GcError::NoRoot)?;
        let s = nix::sys::statvfs::statvfs(&root).map_err(|source| GcError::Statvfs {
            path: root.clone(),
            source,
        })?;
        let block = s.fragment_size();
        let capacity = s.blocks() * block;
        Ok((capacity, capacity - s.blocks_free() * block))
    }

    /// Collects: above the high threshold (or every unused image for [`Mode::Prune`]).
    pub async fn collect(&self, mode: Mode) -> Result<Outcome, GcError> {
        let _one = self.running.lock().await;
        let (capacity, used) = self.usage().await?;
        let to_free = match mode {
            Mode::Prune => u64::MAX,
            Mode::Thresholds => bytes_to_free(capacity, used, self.high, self.low),
        };
        let mut outcome = Outcome::default();
        if to_free == 0 {
            return Ok(outcome);
        }
        let low_mark = (capacity as u128 * self.low as u128 / 100) as u64;
        let mut containers = BTreeSet::new();
        for c in self.ctd.container_list("").await? {
            containers.insert(c.image);
        }
        let mut candidates = Vec::new();
        for image in self.ctd.image_list().await? {
            let Some(target) = image.target.clone() else {
                continue;
            };
            let size = match crate::image::footprint(&self.ctd, &image.name, target).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(image = image.name, error = %e, "image size unknown");
                    0
                }
            };
            let updated = image
                .updated_at
                .or(image.created_at)
                .map_or(0, |t| t.seconds);
            candidates.push(Candidate {
                in_use: containers.contains(&image.name) || self.used(&image.name),
                last_used: self.last_use.get(&image.name).unwrap_or(updated),
                size,
                name: image.name,
            });
        }
        outcome.in_use = candidates.iter().filter(|c| c.in_use).count();
        let mut before = used;
        // the selection plans with sizes that count shared layers in full: go on past it while
        // the filesystem is still over the low mark
        let mut order = select(&candidates, to_free);
        for extra in select(&candidates, u64::MAX) {
            if !order.contains(&extra) {
                order.push(extra);
            }
        }
        for name in order {
            if mode == Mode::Thresholds && before <= low_mark {
                break;
            }
            let lock = self.lock(&name);
            let Ok(_held) = lock.try_lock() else {
                tracing::debug!(image = name, "image being fetched or prepared; kept");
                continue;
            };
            if self.used(&name) {
                continue;
            }
            self.ctd.image_remove(&name, true).await?;
            self.last_use.forget(&name);
            let (_, now) = self.usage().await?;
            let freed = before.saturating_sub(now);
            before = now;
            outcome.freed += freed;
            IMAGES_REMOVED.fetch_add(1, Ordering::Relaxed);
            BYTES_FREED.fetch_add(freed, Ordering::Relaxed);
            tracing::info!(image = name, freed, "unused image removed");
            outcome.removed.push(Removed { name, freed });
        }
        Ok(outcome)
    }

    fn used(&self, image: &str) -> bool {
        self.users
            .lock()
            .expect("image users")
            .values()
            .any(|s| s.contains(image))
    }
}

/// Serves `catalyst image prune` on a Unix socket (root only) in the nodelet's data directory:
/// a client writes `prune`, the answer is the [`Outcome`] as one JSON line (or `{"error": …}`).
pub async fn serve_prune(gc: Arc<ImageGc>, socket: PathBuf, ready: impl Fn() -> bool) {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let _ = std::fs::remove_file(&socket);
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(socket = %socket.display(), error = %e, "image prune socket not served");
            return;
        }
    };
    let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(read);
        if reader.read_line(&mut line).await.is_err() {
            continue;
        }
        let answer = match line.trim() {
            "prune" if !ready() => serde_json::json!({ "error": GcError::NotReady.to_string() }),
            "prune" => match gc.collect(Mode::Prune).await {
                Ok(o) => serde_json::to_value(o).unwrap_or_default(),
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            },
            other => serde_json::json!({ "error": format!("unknown request {other:?}") }),
        };
        let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
    }
}

/// `catalyst image prune`: asks the nodelet whose data directory is `data_dir` to remove every
/// unused image.
pub async fn request_prune(data_dir: &Path) -> std::io::Result<Result<Outcome, String>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(data_dir.join(SOCKET_NAME)).await?;
    stream.write_all(b"prune\n").await?;
    let mut line = String::new();
    tokio::io::BufReader::new(stream)
        .read_line(&mut line)
        .await?;
    let v: serde_json::Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Ok(Err(e.to_owned()));
    }
    Ok(serde_json::from_value(v).map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, size: u64, last_used: i64, in_use: bool) -> Candidate {
        Candidate {
            name: name.into(),
            size,
            last_used,
            in_use,
        }
    }

    #[test]
    fn nothing_is_freed_under_the_high_threshold_then_down_to_the_low_one() {
        assert_eq!(bytes_to_free(1000, 849, 85, 80), 0);
        assert_eq!(bytes_to_free(1000, 850, 85, 80), 50);
        assert_eq!(bytes_to_free(1000, 990, 85, 80), 190);
        assert_eq!(bytes_to_free(0, 0, 85, 80), 0);
    }

    #[test]
    fn the_least_recently_used_unused_images_go_first_until_enough_is_planned() {
        let images = [
            c("new", 100, 300, false),
            c("old", 100, 100, false),
            c("used-oldest", 500, 10, true),
            c("middle", 100, 200, false),
        ];
        assert_eq!(select(&images, 0), Vec::<String>::new());
        assert_eq!(select(&images, 1), ["old"]);
        assert_eq!(select(&images, 100), ["old"]);
        assert_eq!(select(&images, 150), ["old", "middle"]);
        assert_eq!(select(&images, 10_000), ["old", "middle", "new"]);
        assert_eq!(select(&images, u64::MAX), ["old", "middle", "new"]);
        // ties by name, and an image in use is never chosen however old and large
        let tied = [c("b", 1, 5, false), c("a", 1, 5, false), c("z", 9, 0, true)];
        assert_eq!(select(&tied, u64::MAX), ["a", "b"]);
    }

    #[test]
    fn last_use_survives_a_restart_and_forgets_removed_images() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("image-use.json");
        let l = LastUse::open(&path);
        assert_eq!(l.get("a"), None);
        l.touch("a");
        l.touch("b");
        let again = LastUse::open(&path);
        assert!(again.get("a").is_some_and(|t| t > 0));
        again.forget("a");
        assert_eq!(LastUse::open(&path).get("a"), None);
        assert!(LastUse::open(&path).get("b").is_some());
    }

    /// A tmpfs of `mib` MiB at `at`, unmounted when dropped.
    struct Tmpfs(PathBuf);

    impl Tmpfs {
        fn mount(at: &Path, mib: u64) -> Self {
            use nix::mount::{mount, MsFlags};
            std::fs::create_dir_all(at).expect("mountpoint");
            mount(
                Some("tmpfs"),
                at,
                Some("tmpfs"),
                MsFlags::empty(),
                Some(format!("size={mib}m").as_str()),
            )
            .expect("tmpfs");
            Tmpfs(at.to_owned())
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// An image of one layer: a file of `mib` MiB of noise (as large compressed as not).
    fn noise_image(path: &Path, seed: u8, mib: usize) {
        let mut data = vec![0u8; mib << 20];
        let mut x = 0x9e37_79b9_u32 ^ seed as u32;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        crate::pack::write_archive(
            path,
            &[crate::pack::Entry::File("noise".into(), data, 0o644)],
            &["sh"],
        )
        .expect("archive");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_image_store_loses_its_least_recently_used_unused_images_down_to_the_low_mark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Tmpfs::mount(&dir.path().join("ctd"), 96);
        let ctd_proc = crate::supervisor::start(&store.0)
            .await
            .expect("containerd");
        let ctd = Containerd::connect(&ctd_proc.socket)
            .await
            .expect("connect");
        let images_dir = dir.path().join("images");
        std::fs::create_dir_all(&images_dir).expect("images dir");
        let mut policy = crate::image::ImagePolicy::for_data_dir(dir.path());
        policy.image_dirs.push(images_dir.clone());
        // five images of 6 MiB each (a blob and an unpacked snapshot: 12 MiB on the store)
        let mut names = Vec::new();
        for i in 0..5u8 {
            let path = images_dir.join(format!("i{i}.tar"));
            noise_image(&path, i, 6);
            let name = format!("oci-archive:{}", path.display());
            let regs = crate::registry::Registries::load(None, vec![]).expect("registries");
            crate::image::ensure_with(&ctd, &regs, &policy, &name, None)
                .await
                .expect("import");
            names.push(name);
        }
        // i0 is the oldest and in use; then i1 … i4 by last use
        let record: BTreeMap<String, i64> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), 100 * (i as i64 + 1)))
            .collect();
        std::fs::write(
            dir.path().join("image-use.json"),
            serde_json::to_vec(&record).expect("json"),
        )
        .expect("record");
        let probe = ImageGc::new(ctd.clone(), dir.path(), 100, 0).expect("gc");
        let (capacity, used) = probe.usage().await.expect("usage");
        let percent = |b: u64| (b * 100 / capacity) as u8;
        // over the high mark; the low one 30 MiB below the use: three 12 MiB images must go
        let high = percent(used).saturating_sub(5).max(1);
        let low = percent(used - (30 << 20));
        let gc = ImageGc::new(ctd.clone(), dir.path(), high, low).expect("gc");
        gc.set_users("server-uid", BTreeSet::from([names[0].clone()]));
        let before = (
            IMAGES_REMOVED.load(Ordering::Relaxed),
            BYTES_FREED.load(Ordering::Relaxed),
        );
        let o = gc.collect(Mode::Thresholds).await.expect("collect");
        let removed: Vec<&str> = o.removed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(removed, [&names[1], &names[2], &names[3]], "{o:?}");
        assert_eq!(o.in_use, 1);
        for r in &o.removed {
            // the blob and the snapshot went with the name
            assert!(r.freed >= 11 << 20, "{r:?}");
        }
        let (_, after) = gc.usage().await.expect("usage");
        assert!(
            percent(after) <= low,
            "{after} of {capacity} is over {low}%"
        );
        assert!(IMAGES_REMOVED.load(Ordering::Relaxed) >= before.0 + 3);
        assert!(BYTES_FREED.load(Ordering::Relaxed) >= before.1 + o.freed);
        let present = |n: &str| {
            let ctd = ctd.clone();
            let n = n.to_owned();
            async move { ctd.image_get(&n).await.expect("get").is_some() }
        };
        assert!(present(&names[0]).await && present(&names[4]).await);
        assert!(!present(&names[1]).await);
        // under the high mark now: nothing more goes
        let o = gc.collect(Mode::Thresholds).await.expect("collect");
        assert!(o.removed.is_empty(), "{o:?}");
        // a prune takes every unused image, never the one in use, nor one being pulled
        let pulling = gc.lock(&names[4]);
        let held = pulling.lock().await;
        assert!(gc
            .collect(Mode::Prune)
            .await
            .expect("prune")
            .removed
            .is_empty());
        drop(held);
        let o = gc.collect(Mode::Prune).await.expect("prune");
        let removed: Vec<&str> = o.removed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(removed, [&names[4]]);
        assert!(present(&names[0]).await);
        // over the prune socket too, once the server is gone
        gc.forget_user("server-uid");
        let gc = Arc::new(gc);
        let serving = tokio::spawn(serve_prune(
            gc.clone(),
            dir.path().join(SOCKET_NAME),
            || true,
        ));
        let mut answer = None;
        for _ in 0..50 {
            if let Ok(a) = request_prune(dir.path()).await {
                answer = Some(a);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let o = answer.expect("socket").expect("pruned");
        let removed: Vec<&str> = o.removed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(removed, [&names[0]]);
        assert!(!present(&names[0]).await);
        serving.abort();
        ctd_proc.shutdown().await;
        drop(store);
    }
}
