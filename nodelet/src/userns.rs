//! User namespaces: a host uid/gid range of its own for every server, claimed machine-wide, and
//! the server's persistent user (and network) namespace that its containers join.
//!
//! A server's container uid 0..65535 is host uid `start..start+65535`, where `start` is
//! `base + slot * 65536` and the slot is claimed by a file `<claims-dir>/<slot>` naming the
//! server's data directory. The claims directory is shared by every nodelet of the machine
//! (default `/var/lib/catalyst/idmap`), so two servers never share a host uid even when several
//! nodelets run on one machine; a claim whose data directory no longer exists is stale and taken
//! over. The namespaces are created by `unshare(1)` (user + net at once, so the network namespace
//! is owned by the server's user namespace and runc may mount a sysfs for it), mapped by the
//! nodelet (root in the parent namespace may write any mapping), and kept by bind mounts:
//! `<ns-dir>/catalyst-<id>` for the user namespace and `/run/netns/catalyst-<id>` for the network.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// The size of every server's range: a whole 16-bit uid space, as Kubernetes and Podman give.
pub const RANGE_SIZE: u32 = 65536;

/// Default first host uid of the ranges: far above the ranges `/etc/subuid` hands out.
pub const DEFAULT_BASE: u32 = 1 << 30;

/// Default number of ranges (ranges end below 2^31, which some tools read as signed).
pub const DEFAULT_COUNT: u32 = 16384;

/// Default machine-wide claims directory.
pub const DEFAULT_CLAIMS_DIR: &str = "/var/lib/catalyst/idmap";

/// Where persistent user namespaces are bind-mounted.
pub const NS_DIR: &str = "/run/catalyst/userns";

/// A failure to claim a range or to set up a namespace.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// Every range is taken.
    #[error("no free uid range: all {0} ranges of {RANGE_SIZE} ids are claimed")]
    Exhausted(u32),
    /// A configuration that cannot work.
    #[error("uid ranges: {0}")]
    Config(String),
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A namespace could not be made.
    #[error("namespace for {id}: {message}")]
    Namespace {
        /// The container ID.
        id: String,
        /// What went wrong.
        message: String,
    },
}

type Result<T, E = UsernsError> = std::result::Result<T, E>;

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> UsernsError + 'a {
    move |source| UsernsError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// One server's host id range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// The host uid (and gid) of the container's uid 0.
    pub start: u32,
    /// How many ids.
    pub size: u32,
}

impl IdRange {
    /// The host id of a container id, or None when it is outside the range.
    pub fn host(&self, container_id: u32) -> Option<u32> {
        (container_id < self.size).then(|| self.start + container_id)
    }

    /// The `uid_map`/`gid_map` line of this range.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.start, self.size)
    }

    /// The OCI mapping of this range.
    pub fn oci_mapping(&self) -> oci_spec::runtime::LinuxIdMapping {
        oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(self.start)
            .size(self.size)
            .build()
            .expect("every field of a mapping is set")
    }
}

/// Hands out host id ranges, one per server, claimed machine-wide.
#[derive(Debug)]
pub struct IdAllocator {
    dir: PathBuf,
    base: u32,
    count: u32,
    /// owner (a server's data dir) → slot, for this nodelet's claims
    claims: Mutex<HashMap<PathBuf, u32>>,
}

impl IdAllocator {
    /// Opens (creating) the claims directory. `base + count * RANGE_SIZE` must stay below 2^32.
    pub fn open(dir: &Path, base: u32, count: u32) -> Result<Self> {
        if base < RANGE_SIZE {
            return Err(UsernsError::Config(format!(
                "the first range must start at or above {RANGE_SIZE} (host system ids), not {base}"
            )));
        }
        if u64::from(base) + u64::from(count) * u64::from(RANGE_SIZE) > u64::from(u32::MAX) {
            return Err(UsernsError::Config(format!(
                "{count} ranges from {base} pass the largest uid"
            )));
        }
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let me = Self {
            dir: dir.to_owned(),
            base,
            count,
            claims: Mutex::new(HashMap::new()),
        };
        Ok(me)
    }

    fn range(&self, slot: u32) -> IdRange {
        IdRange {
            start: self.base + slot * RANGE_SIZE,
            size: RANGE_SIZE,
        }
    }

    fn lock(&self) -> Result<Flock<std::fs::File>> {
        let f = std::fs::File::open(&self.dir).map_err(io("open", &self.dir))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| UsernsError::Io {
            what: "lock",
            path: self.dir.clone(),
            source: e.into(),
        })
    }

    fn slot_path(&self, slot: u32) -> PathBuf {
        self.dir.join(slot.to_string())
    }

    /// Writes the claim of `slot` for `owner` (synced, renamed into place). Under the lock.
    fn write_claim(&self, slot: u32, owner: &Path) -> Result<()> {
        let path = self.slot_path(slot);
        let tmp = self.dir.join(format!(".{slot}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        writeln!(f, "{}", owner.display()).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("sync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))
    }

    /// Every claim on the machine: slot → owner.
    fn scan(&self) -> Result<HashMap<u32, PathBuf>> {
        let mut out = HashMap::new();
        for e in std::fs::read_dir(&self.dir).map_err(io("read", &self.dir))? {
            let e = e.map_err(io("read", &self.dir))?;
            let Some(slot) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(owner) = std::fs::read_to_string(e.path()) {
                out.insert(slot, PathBuf::from(owner.trim_end_matches('\n')));
            }
        }
        Ok(out)
    }

    /// The range of the server whose data directory is `owner` (absolute), claiming a free
    /// one the first time. Stable across nodelet restarts.
    pub fn claim(&self, owner: &Path) -> Result<IdRange> {
        if let Some(slot) = self.claims.lock().expect("claims").get(owner) {
            return Ok(self.range(*slot));
        }
        let _guard = self.lock()?;
        let taken = self.scan()?;
        let slot = match taken.iter().find(|(_, o)| o.as_path() == owner) {
            Some((slot, _)) => *slot,
            None => {
                // the lowest slot that is free or whose server directory is gone (a claim
                // left by a crash)
                let slot = (0..self.count)
                    .find(|s| taken.get(s).is_none_or(|o| !o.exists()))
                    .ok_or(UsernsError::Exhausted(self.count))?;
                self.write_claim(slot, owner)?;
                tracing::info!(
                    owner = %owner.display(),
                    slot,
                    start = self.range(slot).start,
                    "uid range claimed"
                );
                slot
            }
        };
        self.claims
            .lock()
            .expect("claims")
            .insert(owner.to_owned(), slot);
        Ok(self.range(slot))
    }

    /// Gives `from`'s range to `to` when `to` has none yet (a namespace pool entry handed to a
    /// new server): the claim file names `to` from then on. None when `to` already has one
    /// (then nothing changed); an error when `from` holds none.
    pub fn transfer(&self, from: &Path, to: &Path) -> Result<Option<IdRange>> {
        if self.claims.lock().expect("claims").contains_key(to) {
            return Ok(None);
        }
        let _guard = self.lock()?;
        let taken = self.scan()?;
        if taken.values().any(|o| o.as_path() == to) {
            return Ok(None);
        }
        let Some(slot) = taken
            .iter()
            .find(|(_, o)| o.as_path() == from)
            .map(|(s, _)| *s)
        else {
            return Err(UsernsError::Config(format!(
                "{} holds no uid range",
                from.display()
            )));
        };
        self.write_claim(slot, to)?;
        let mut claims = self.claims.lock().expect("claims");
        claims.remove(from);
        claims.insert(to.to_owned(), slot);
        Ok(Some(self.range(slot)))
    }

    /// Gives the range of `owner` back. Unknown owners are fine.
    pub fn release(&self, owner: &Path) -> Result<()> {
        let _guard = self.lock()?;
        self.claims.lock().expect("claims").remove(owner);
        for (slot, o) in self.scan()? {
            if o == owner {
                let p = self.slot_path(slot);
                std::fs::remove_file(&p).map_err(io("remove", &p))?;
            }
        }
        Ok(())
    }
}

/// The path of a server's persistent user namespace.
pub fn userns_path(container_id: &str) -> PathBuf {
    Path::new(NS_DIR).join(format!("catalyst-{container_id}"))
}

fn is_nsfs(path: &Path) -> bool {
    // a bind-mounted namespace file has the nsfs device, not the directory's
    let (Ok(f), Some(parent)) = (std::fs::metadata(path), path.parent()) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != f.dev())
}

/// Removes a bind-mounted namespace file (every mount stacked on it). Absent is fine.
pub fn remove_ns_file(path: &Path) {
    for _ in 0..16 {
        if umount2(path, MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(map_path(path));
}

/// The file beside a user namespace's that records the range it was mapped to.
fn map_path(user: &Path) -> PathBuf {
    user.with_extension("map")
}

/// True when the server's namespaces exist and its user namespace is mapped to this very
/// range (a server whose range changed must not keep running in the old one, which may be
/// another server's by now); [`ensure`] then reuses them, else it makes them anew.
pub fn reusable(id: &str, range: IdRange, netns: Option<&Path>) -> bool {
    let user = userns_path(id);
    std::fs::read_to_string(map_path(&user)).is_ok_and(|m| m == range.map_line())
        && is_nsfs(&user)
        && netns.is_none_or(is_nsfs)
}

/// Makes sure a server's user namespace (mapped to `range`) and, when `netns` is given, a
/// network namespace owned by it exist as bind mounts. Reuses them when both are there;
/// otherwise removes what is left and makes both anew.
pub async fn ensure(id: &str, range: IdRange, netns: Option<&Path>) -> Result<PathBuf> {
    let user = userns_path(id);
    if reusable(id, range, netns) {
        return Ok(user);
    }
    remove_ns_file(&user);
    if let Some(n) = netns {
        remove_ns_file(n);
    }
    let failed = |message: String| UsernsError::Namespace {
        id: id.to_owned(),
        message,
    };
    let mut args = vec!["--user"];
    if netns.is_some() {
        args.push("--net");
    }
    args.extend(["--", "sleep", "60"]);
    let mut child = tokio::process::Command::new("unshare")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("unshare: {e}")))?;
    let pid = child.id().ok_or_else(|| failed("unshare exited".into()))?;
    let result = async {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let own = std::fs::read_link("/proc/self/ns/user").map_err(io("read", &proc_dir))?;
        // wait until the child has unshared (a few milliseconds)
        let mut waited = Duration::ZERO;
        loop {
            match std::fs::read_link(proc_dir.join("ns/user")) {
                Ok(ns) if ns != own => break,
                Ok(_) => {}
                Err(e) => return Err(failed(format!("unshare did not run: {e}"))),
            }
            if waited > Duration::from_secs(10) {
                return Err(failed(
                    "unshare did not create the namespace in 10 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            waited += Duration::from_millis(2);
        }
        for map in ["uid_map", "gid_map"] {
            let p = proc_dir.join(map);
            std::fs::write(&p, range.map_line()).map_err(io("write", &p))?;
        }
        bind_ns(&proc_dir.join("ns/user"), &user)?;
        if let Some(n) = netns {
            bind_ns(&proc_dir.join("ns/net"), n)?;
        }
        let map = map_path(&user);
        std::fs::write(&map, range.map_line()).map_err(io("write", &map))?;
        Ok(())
    }
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    if let Err(e) = result {
        remove_ns_file(&user);
        if let Some(n) = netns {
            remove_ns_file(n);
        }
        return Err(e);
    }
    Ok(user)
}

/// Gives the namespaces made by [`ensure`] for `from` (user, and network at `net.0`) to `to`
/// (network at `net.1`): bind mounts of the same namespaces at `to`'s paths, mapped to `range`,
/// so that [`reusable`] holds for `to`. What `to` had there before goes; `from`'s stay until
/// removed.
pub fn adopt(from: &str, to: &str, range: IdRange, net: Option<(&Path, &Path)>) -> Result<()> {
    let user = userns_path(to);
    remove_ns_file(&user);
    if let Some((_, to_net)) = net {
        remove_ns_file(to_net);
    }
    let made = (|| {
        bind_ns(&userns_path(from), &user)?;
        if let Some((from_net, to_net)) = net {
            bind_ns(from_net, to_net)?;
        }
        // last: the namespaces count as made once the map says so
        let map = map_path(&user);
        std::fs::write(&map, range.map_line()).map_err(io("write", &map))
    })();
    if made.is_err() {
        remove_ns_file(&user);
        if let Some((_, to_net)) = net {
            remove_ns_file(to_net);
        }
    }
    made
}

fn bind_ns(source: &Path, target: &Path) -> Result<()> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    std::fs::File::create(target).map_err(io("create", target))?;
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| UsernsError::Io {
        what: "bind-mount namespace on",
        path: target.to_owned(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_map_container_ids_into_their_own_block() {
        let r = IdRange {
            start: DEFAULT_BASE + RANGE_SIZE,
            size: RANGE_SIZE,
        };
        assert_eq!(r.host(0), Some(DEFAULT_BASE + RANGE_SIZE));
        assert_eq!(r.host(1000), Some(DEFAULT_BASE + RANGE_SIZE + 1000));
        assert_eq!(r.host(RANGE_SIZE), None);
        assert_eq!(r.map_line(), format!("0 {} 65536\n", r.start));
    }

    #[test]
    fn claims_are_stable_distinct_and_released() {
        let tmp = tempfile::tempdir().expect("tmp");
        let claims = tmp.path().join("claims");
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        std::fs::create_dir(&a).expect("a");
        std::fs::create_dir(&b).expect("b");
        let ids = IdAllocator::open(&claims, DEFAULT_BASE, 8).expect("open");
        let ra = ids.claim(&a).expect("a");
        let rb = ids.claim(&b).expect("b");
        assert_ne!(ra, rb);
        assert_eq!(ids.claim(&a).expect("again"), ra);
        // another nodelet on the same machine sees the claims
        let other = IdAllocator::open(&claims, DEFAULT_BASE, 8).expect("open");
        assert_eq!(other.claim(&b).expect("b"), rb);
        let c = tmp.path().join("c");
        std::fs::create_dir(&c).expect("c");
        let rc = other.claim(&c).expect("c");
        assert!(rc != ra && rc != rb);
        ids.release(&a).expect("release");
        let d = tmp.path().join("d");
        std::fs::create_dir(&d).expect("d");
        assert_eq!(ids.claim(&d).expect("d"), ra, "a released range is reused");
    }

    #[test]
    fn a_claim_whose_server_dir_is_gone_is_taken_over() {
        let tmp = tempfile::tempdir().expect("tmp");
        let claims = tmp.path().join("claims");
        let gone = tmp.path().join("gone");
        std::fs::create_dir(&gone).expect("dir");
        let ids = IdAllocator::open(&claims, DEFAULT_BASE, 1).expect("open");
        let r = ids.claim(&gone).expect("claim");
        std::fs::remove_dir(&gone).expect("rm");
        let fresh = IdAllocator::open(&claims, DEFAULT_BASE, 1).expect("open");
        let new = tmp.path().join("new");
        std::fs::create_dir(&new).expect("dir");
        assert_eq!(fresh.claim(&new).expect("claim"), r);
        let third = tmp.path().join("third");
        std::fs::create_dir(&third).expect("dir");
        assert!(matches!(
            fresh.claim(&third),
            Err(UsernsError::Exhausted(1))
        ));
    }

    #[tokio::test]
    async fn namespaces_are_made_mapped_reused_and_remade_for_another_range() {
        let tmp = tempfile::tempdir().expect("tmp");
        let id = format!("unit-{}", std::process::id());
        let netns = tmp.path().join("net");
        let a = IdRange {
            start: DEFAULT_BASE + 7 * RANGE_SIZE,
            size: RANGE_SIZE,
        };
        let user = ensure(&id, a, Some(&netns)).await.expect("ensure");
        assert!(is_nsfs(&user) && is_nsfs(&netns));
        assert!(reusable(&id, a, Some(&netns)));
        let map = std::process::Command::new("nsenter")
            .arg(format!("--user={}", user.display()))
            .args(["cat", "/proc/self/uid_map"])
            .output()
            .expect("nsenter");
        let text = String::from_utf8_lossy(&map.stdout);
        assert_eq!(
            text.split_whitespace().collect::<Vec<_>>(),
            ["0", &a.start.to_string(), "65536"],
            "{text}"
        );
        let b = IdRange {
            start: DEFAULT_BASE + 8 * RANGE_SIZE,
            size: RANGE_SIZE,
        };
        assert!(
            !reusable(&id, b, Some(&netns)),
            "another range is not reused"
        );
        ensure(&id, b, Some(&netns)).await.expect("remade");
        assert!(reusable(&id, b, Some(&netns)));
        remove_ns_file(&user);
        remove_ns_file(&netns);
        assert!(!user.exists() && !netns.exists());
    }

    #[test]
    fn ranges_that_overlap_system_ids_or_overflow_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        assert!(IdAllocator::open(tmp.path(), 1000, 4).is_err());
        assert!(IdAllocator::open(tmp.path(), u32::MAX - RANGE_SIZE, 2).is_err());
    }
}
