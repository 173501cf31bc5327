//! The namespace pool: a few sandboxes made ahead of time for new Bridge servers, so that a
//! start takes one (bind mounts, a claim file rewritten, a record renamed: ~1 ms) instead of
//! making its namespaces and running the bridge plugin on its way (`unshare`, `nsenter ip link
//! set lo up`, CNI bridge ADD with host-local and iptables, `bridge link set … isolated on`:
//! ~35 ms of processes a start shares its two cores with).
//!
//! An entry is what a new server's sandbox needs before its ports are known: a uid range
//! claimed for the entry's directory `<data-dir>/pool/netns/<id>`, a user namespace mapped to
//! it, a network namespace owned by that (`userns::ensure`), attached to the bridge with the
//! entry's id as the CNI container id (`cni/results/<id>.json`, so every DEL gets what the ADD
//! got). The id is `pool-<tag>-<random>`, `tag` naming the data directory, never reused.
//!
//! A hand-over to server `gs-<uid>` (only one with no uid range yet: its files are owned by
//! nobody) is, in this order: the range's claim file names the server's directory (from here
//! on the range is the server's); the entry's namespaces are bind-mounted at the server's
//! paths and its map written (`userns::reusable` holds: the start makes nothing); the server's
//! CNI record is the entry's, with the entry's CNI id (portmap runs with it at the start, a DEL
//! undoes with it); then the entry's own files go. A kill -9 anywhere leaves something
//! [`NetnsPool::recover`] finishes at the next start: an entry whose id a server's record names
//! was handed over (its leftover paths go, nothing is detached), any other is discarded (bridge
//! DEL through its namespace, namespaces, claim, directory). A server that got the range but no
//! record finds its namespaces reusable and attaches anew; one that got neither makes both.
//!
//! Entries do not outlive the nodelet: SIGTERM drains the pool (the entry being made is
//! finished first), and a restart discards what a kill left before it makes new ones.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::cni::{netns_path, Network};
use crate::runtime::Runtime;
use crate::userns::{self, IdAllocator, IdRange};

/// How many entries a node keeps by default.
pub const DEFAULT_KEEP: usize = 2;

/// How long the pool waits after a hand-over before it makes the next entry (a burst of
/// starts does not share its CPU with the refill).
const QUIET: Duration = Duration::from_millis(500);

/// The prefix of every pool id of the nodelet whose data directory is `data_dir`.
pub fn prefix(data_dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let canonical = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("pool-{tag}-")
}

/// A pre-made sandbox, ready to be handed over.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    range: IdRange,
}

/// A node's namespace pool.
#[derive(Debug)]
pub struct NetnsPool {
    dir: PathBuf,
    prefix: String,
    keep: usize,
    ready: Mutex<VecDeque<Entry>>,
    /// Entries a failed hand-over left: the refill task discards them.
    broken: Mutex<Vec<String>>,
    /// Held through a hand-over.
    handing: Mutex<()>,
    closed: AtomicBool,
    /// Held while an entry is made: a drain waits for it.
    making: tokio::sync::Mutex<()>,
    wake: Notify,
    taken: AtomicU64,
}

/// What [`NetnsPool::recover`] found of a previous run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Entries discarded (never handed over).
    pub discarded: usize,
    /// Hand-overs finished (the server had its record; the entry's leftovers went).
    pub finished: usize,
    /// Entries whose discard failed (kept for the next start).
    pub failed: usize,
}

impl NetnsPool {
    /// The pool of the nodelet whose data directory is `data_dir`, `keep` entries (0: none).
    pub fn new(data_dir: &Path, keep: usize) -> Self {
        NetnsPool {
            dir: data_dir.join("pool").join("netns"),
            prefix: prefix(data_dir),
            keep,
            ready: Mutex::new(VecDeque::new()),
            broken: Mutex::new(Vec::new()),
            handing: Mutex::new(()),
            closed: AtomicBool::new(false),
            making: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            taken: AtomicU64::new(0),
        }
    }

    /// How many entries are kept.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// How many entries are ready now.
    pub fn ready(&self) -> usize {
        self.ready.lock().expect("pool").len()
    }

    /// How many entries were handed over since the nodelet started.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    fn entry_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Hands a ready entry to server container `cid` whose data directory is `server_dir`;
    /// its range when it did (the server's namespaces and bridge attachment are made), None
    /// when the pool is empty or closed, or the server has a range already.
    pub fn hand_over(
        &self,
        ids: &IdAllocator,
        net: &Network,
        cid: &str,
        server_dir: &Path,
    ) -> Option<IdRange> {
        // a drain waits for a hand-over in progress, and none begins after it
        let _handing = self.handing.lock().expect("pool");
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let entry = self.ready.lock().expect("pool").pop_front()?;
        let owner = self.entry_dir(&entry.id);
        let range = match ids.transfer(&owner, server_dir) {
            Ok(Some(range)) => range,
            Ok(None) => {
                // the server has a range of its own
                self.ready.lock().expect("pool").push_front(entry);
                return None;
            }
            Err(e) => {
                tracing::warn!(id = entry.id, error = %e, "pool: claim transfer failed");
                self.broken.lock().expect("pool").push(entry.id);
                self.wake.notify_one();
                return None;
            }
        };
        debug_assert_eq!(range, entry.range);
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        let (from_net, to_net) = (netns_path(&entry.id), netns_path(cid));
        let adopted = userns::adopt(&entry.id, cid, range, Some((&from_net, &to_net)))
            .map_err(|e| e.to_string())
            .and_then(|()| net.adopt(&entry.id, cid).map_err(|e| e.to_string()));
        match adopted {
            Ok(true) => {
                // the entry's own paths; the server's bind mounts hold the namespaces
                userns::remove_ns_file(&userns::userns_path(&entry.id));
                userns::remove_ns_file(&from_net);
                let _ = std::fs::remove_dir(&owner);
                tracing::debug!(id = entry.id, cid, "pool: sandbox handed over");
            }
            other => {
                // the range is the server's; its namespaces are made anew at its start, the
                // entry's attachment is undone by the refill task
                tracing::warn!(id = entry.id, cid, result = ?other, "pool: hand-over failed");
                userns::remove_ns_file(&userns::userns_path(cid));
                userns::remove_ns_file(&to_net);
                net.forget_record(cid);
                self.broken.lock().expect("pool").push(entry.id);
            }
        }
        Some(range)
    }

    /// Removes an entry and all it holds: its bridge attachment (DEL through its namespace),
    /// namespaces, claim and directory. Idempotent; the directory stays when the DEL failed.
    async fn discard(&self, rt: &Runtime, id: &str) -> bool {
        let detached = rt.net.detach(id, &[]).await;
        userns::remove_ns_file(&userns::userns_path(id));
        userns::remove_ns_file(&netns_path(id));
        if let Err(e) = detached {
            tracing::warn!(id, error = %e, "pool: discarding an entry failed; retried later");
            return false;
        }
        let owner = self.entry_dir(id);
        if let Err(e) = rt.ids.release(&owner) {
            tracing::warn!(id, error = %e, "pool: releasing a claim failed");
            return false;
        }
        let _ = std::fs::remove_dir(&owner);
        true
    }

    /// Makes one entry; discarded again when a step fails.
    async fn make_one(&self, rt: &Runtime) -> Result<(), String> {
        let id = format!(
            "{}{}",
            self.prefix,
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let owner = self.entry_dir(&id);
        std::fs::create_dir_all(&owner).map_err(|e| format!("{}: {e}", owner.display()))?;
        let made = async {
            let range = rt.ids.claim(&owner).map_err(|e| e.to_string())?;
            userns::ensure(&id, range, Some(&netns_path(&id)))
                .await
                .map_err(|e| e.to_string())?;
            rt.net.attach_bridge(&id).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(range)
        }
        .await;
        match made {
            Ok(range) => {
                self.ready
                    .lock()
                    .expect("pool")
                    .push_back(Entry { id, range });
                Ok(())
            }
            Err(e) => {
                self.discard(rt, &id).await;
                Err(e)
            }
        }
    }

    /// Every id of this pool found on the node: entry directories, CNI records, namespace
    /// files.
    fn leftover_ids(&self, net: &Network) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        let mine = |name: String, ids: &mut BTreeSet<String>| {
            if name.starts_with(&self.prefix) && !name.contains('/') && !name.contains("..") {
                ids.insert(name);
            }
        };
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            mine(e.file_name().to_string_lossy().into_owned(), &mut ids);
        }
        for id in net.recorded_ids() {
            mine(id, &mut ids);
        }
        for dir in [Path::new("/run/netns"), Path::new(userns::NS_DIR)] {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_prefix("catalyst-") {
                    let id = id.strip_suffix(".map").unwrap_or(id);
                    mine(id.to_owned(), &mut ids);
                }
            }
        }
        ids
    }

    /// Finishes or undoes what a previous run of this nodelet left of the pool (a kill -9, a
    /// drain cut short): entries a server's record names lose their own paths only, the others
    /// are discarded. Runs before any worker; idempotent.
    pub async fn recover(&self, rt: &Runtime) -> Recovered {
        let ids = self.leftover_ids(&rt.net);
        let mut out = Recovered::default();
        if ids.is_empty() {
            return out;
        }
        // the entries servers took: their records name the entry's CNI id
        let taken: BTreeSet<String> = rt
            .net
            .recorded_ids()
            .into_iter()
            .filter(|id| id.starts_with("gs-"))
            .filter_map(|id| rt.net.recorded_cni_id(&id))
            .filter(|cni| ids.contains(cni))
            .collect();
        for id in ids {
            if taken.contains(&id) {
                rt.net.forget_record(&id);
                userns::remove_ns_file(&userns::userns_path(&id));
                userns::remove_ns_file(&netns_path(&id));
                let owner = self.entry_dir(&id);
                let _ = rt.ids.release(&owner);
                let _ = std::fs::remove_dir(&owner);
                out.finished += 1;
            } else if self.discard(rt, &id).await {
                out.discarded += 1;
            } else {
                out.failed += 1;
            }
        }
        tracing::info!(
            discarded = out.discarded,
            finished = out.finished,
            failed = out.failed,
            "pool: entries removed (left by a previous run, or drained)"
        );
        out
    }

    /// Keeps `keep` entries ready, from now until [`NetnsPool::drain`]: at start, then
    /// [`QUIET`] after the last hand-over; a failure backs off (1 s, doubling to a minute).
    pub async fn run(self: Arc<Self>, rt: Arc<Runtime>) {
        if self.keep == 0 {
            return;
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let want = self.keep.saturating_sub(self.ready());
            let taken = self.taken();
            let mut failed = false;
            for _ in 0..want {
                let guard = self.making.lock().await;
                if self.closed.load(Ordering::SeqCst) {
                    return;
                }
                let made = self.make_one(&rt).await;
                drop(guard);
                if let Err(e) = made {
                    tracing::warn!(error = %e, "pool: making an entry failed");
                    failed = true;
                    break;
                }
                if self.taken() != taken {
                    // starts are going on: let them have the CPU first
                    break;
                }
            }
            // entries a failed hand-over left
            let broken: Vec<String> = std::mem::take(&mut *self.broken.lock().expect("pool"));
            if !broken.is_empty() {
                let _guard = self.making.lock().await;
                for id in broken {
                    self.discard(&rt, &id).await;
                }
            }
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
            backoff = Duration::from_secs(1);
            if self.ready() < self.keep && self.taken() != taken {
                tokio::time::sleep(QUIET).await;
                continue;
            }
            self.wake.notified().await;
            // a burst of hand-overs: wait until it has been quiet for a while
            loop {
                let seen = self.taken();
                tokio::time::sleep(QUIET).await;
                if self.taken() == seen {
                    break;
                }
            }
        }
    }

    /// Closes the pool (no more hand-overs), waits for the entry being made and the
    /// hand-over in progress, and discards every entry left. Bounded by `within`; what is left
    /// then is recovered at the next start.
    pub async fn drain(&self, rt: &Runtime, within: Duration) {
        self.closed.store(true, Ordering::SeqCst);
        drop(self.handing.lock().expect("pool"));
        self.wake.notify_one();
        let work = async {
            let _guard = self.making.lock().await;
            self.ready.lock().expect("pool").clear();
            self.broken.lock().expect("pool").clear();
            self.recover(rt).await
        };
        if tokio::time::timeout(within, work).await.is_err() {
            tracing::warn!("pool: drain cut short; the next start finishes it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_data_directory_and_differ_between_nodelets() {
        let a = tempfile::tempdir().expect("tmp");
        let b = tempfile::tempdir().expect("tmp");
        let (pa, pb) = (prefix(a.path()), prefix(b.path()));
        assert!(
            pa.starts_with("pool-") && pa.ends_with('-') && pa.len() == 14,
            "{pa}"
        );
        assert_ne!(pa, pb);
        assert_eq!(pa, prefix(&a.path().join(".")), "canonical");
        // a server's container id never looks like a pool id
        assert!(!crate::runtime::Runtime::container_id("x").starts_with("pool-"));
    }

    #[test]
    fn a_claim_moves_to_a_new_server_only() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ids =
            IdAllocator::open(&tmp.path().join("claims"), userns::DEFAULT_BASE, 4).expect("open");
        let entry = tmp.path().join("pool/netns/pool-x");
        let old = tmp.path().join("servers/old");
        let new = tmp.path().join("servers/new");
        for d in [&entry, &old, &new] {
            std::fs::create_dir_all(d).expect("dir");
        }
        let r_old = ids.claim(&old).expect("old");
        let r = ids.claim(&entry).expect("entry");
        assert_eq!(ids.transfer(&entry, &old).expect("transfer"), None);
        assert_eq!(ids.transfer(&entry, &new).expect("transfer"), Some(r));
        // seen by another nodelet of the machine too
        let other =
            IdAllocator::open(&tmp.path().join("claims"), userns::DEFAULT_BASE, 4).expect("open");
        assert_eq!(other.claim(&new).expect("new"), r);
        assert_eq!(other.claim(&old).expect("old"), r_old);
        assert_eq!(
            ids.transfer(&entry, &new).expect("again"),
            None,
            "new has one"
        );
        let newer = tmp.path().join("servers/newer");
        std::fs::create_dir_all(&newer).expect("dir");
        assert!(ids.transfer(&entry, &newer).is_err(), "the entry's is gone");
    }
}
