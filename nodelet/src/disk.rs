//! Per-server disk quotas: every server's data directory is an ext4 filesystem of its own, kept
//! in a sparse image `<data-dir>/disks/<uid>.img`, attached to a loop device and mounted on the
//! data directory (`nodev,nosuid,discard`). The filesystem is as large as the server's
//! `resources.disk`: a write past it fails with ENOSPC inside the container, and the node's own
//! filesystem holds only what the server really wrote (the image is sparse, and `discard`
//! punches the blocks of deleted files back out of it).
//!
//! Why an image and not project quotas: project quotas need the node's filesystem mounted with
//! `prjquota` (ext4, xfs), which nodes rarely are; an image works on any filesystem that holds
//! sparse files. The costs: a loop device per server, an `mkfs.ext4` per new server (tens of
//! milliseconds, the inode tables are not written), ext4's own overhead inside the limit
//! (journal, inode tables: about 2.5 % of a 10 GiB disk), and a limit that only grows: an image
//! is never shrunk (that could lose data).
//!
//! Every function here blocks (files, `mkfs.ext4`, `losetup`, `resize2fs`, `e2fsck`, `cp`,
//! mounts): call them through `tokio::task::spawn_blocking`.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

pub mod spares;

/// The smallest disk a server gets (smaller limits are raised to it): ext4 needs room for its
/// journal and inode tables.
pub const MIN_BYTES: u64 = 16 << 20;

/// The disk of a server that sets none, when its Node's `spec.defaultResources` sets none
/// either (documented in docs/nodelet.md).
pub const DEFAULT_BYTES: i64 = 10 << 30;

/// Use (percent of the limit) at which a `DiskAlmostFull` warning is raised.
pub const ALMOST_FULL_PERCENT: u64 = 90;

/// Use (percent of the limit) below which the warning is armed again.
pub const REARM_PERCENT: u64 = 85;

/// How much smaller than its image a filesystem may be before it counts as not grown yet:
/// mkfs leaves out a last block group too small for its own metadata (under 4 MiB).
const SLACK: u64 = 4 << 20;

/// The options every server filesystem is mounted with (flags) and its data options.
const MOUNT_FLAGS: MsFlags = MsFlags::MS_NODEV.union(MsFlags::MS_NOSUID);
const MOUNT_DATA: &str = "discard";

/// What went wrong with a server's disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
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
    /// A tool (`mkfs.ext4`, `losetup`, `resize2fs`, `e2fsck`, `cp`) failed or is missing.
    #[error("{command} failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status, or why it did not run.
        status: String,
        /// What it said on stderr (and stdout).
        output: String,
    },
    /// The data directory is a mount of something else than the server's image.
    #[error("{mountpoint} is mounted from {device}, not from its disk image {image}")]
    Foreign {
        /// The data directory.
        mountpoint: PathBuf,
        /// What is mounted there.
        device: String,
        /// The server's image.
        image: PathBuf,
    },
    /// Files were written into the data directory while its disk was not mounted; mounting
    /// would hide them.
    #[error(
        "{0} holds files outside its disk image (written while the disk was not mounted): move \
         them away, they are not hidden under the disk nor deleted"
    )]
    NotEmpty(PathBuf),
    /// The data of a server made before quotas could not be moved into its new disk; nothing
    /// was lost (the data stays where it was).
    #[error("moving the existing data of {dir} into its disk failed (nothing was lost): {reason}")]
    Migration {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// A mount or unmount failed.
    #[error("{what} {path}: {errno}")]
    Mount {
        /// mount or unmount.
        what: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The kernel's answer.
        errno: Errno,
    },
    /// The image is not an ext4 filesystem.
    #[error("{0} is not an ext4 filesystem")]
    NotExt4(PathBuf),
}

type Result<T> = std::result::Result<T, DiskError>;

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DiskError + 'a {
    move |source| DiskError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// What [`ensure`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ensured {
    /// The size asked for (at least [`MIN_BYTES`], rounded up to 4 KiB).
    pub asked_bytes: u64,
    /// The size of the image now: more than asked when the limit was lowered (never shrunk).
    pub image_bytes: u64,
    /// The image was made now.
    pub created: bool,
    /// The image made now was a spare made ahead ([`spares`]).
    pub spare: bool,
    /// The data directory held files (a server made before quotas): they were moved in.
    pub migrated: bool,
    /// The filesystem was grown now, from this many bytes.
    pub grown_from: Option<u64>,
    /// The grow was done on the mounted filesystem (else: unmounted, checked, grown).
    pub grown_online: bool,
    /// A grow that could not happen now, and why (tried again at the next start).
    pub grow_deferred: Option<String>,
}

impl Ensured {
    /// The limit was lowered below the image, which is kept as it is.
    pub fn kept_larger(&self) -> bool {
        self.image_bytes > self.asked_bytes
    }
}

/// A filesystem's use, from statvfs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in use.
    pub used_bytes: u64,
    /// Bytes the filesystem holds (its size less ext4's own metadata).
    pub limit_bytes: u64,
}

impl Usage {
    /// Use in percent of the limit (0 without a limit).
    pub fn percent(&self) -> u64 {
        (u128::from(self.used_bytes) * 100)
            .checked_div(u128::from(self.limit_bytes))
            .map_or(0, |p| p as u64)
    }
}

/// The `DiskAlmostFull` warning's state: raised once when use reaches
/// [`ALMOST_FULL_PERCENT`], armed again only when it fell below [`REARM_PERCENT`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FullAlarm {
    raised: bool,
}

impl FullAlarm {
    /// An alarm that knows the last use reported (so a nodelet restart does not warn again
    /// about a disk already reported full).
    pub fn seeded(last: Option<Usage>) -> Self {
        FullAlarm {
            raised: last.is_some_and(|u| u.limit_bytes > 0 && u.percent() >= REARM_PERCENT),
        }
    }

    /// Takes a new reading; true when the warning is to be raised now.
    pub fn observe(&mut self, u: Usage) -> bool {
        if u.limit_bytes == 0 {
            return false;
        }
        let p = u.percent();
        if self.raised {
            if p < REARM_PERCENT {
                self.raised = false;
            }
            false
        } else if p >= ALMOST_FULL_PERCENT {
            self.raised = true;
            true
        } else {
            false
        }
    }
}

/// The size an image gets for a limit of `bytes`: at least [`MIN_BYTES`], whole 4 KiB blocks.
pub fn image_size(bytes: u64) -> u64 {
    bytes.max(MIN_BYTES).div_ceil(4096) * 4096
}

/// Where a program is: on `PATH`, else in the sbin directories (the nodelet may run with a
/// PATH that lacks them).
fn tool(name: &str) -> PathBuf {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs a command; its stdout when it exits with one of `ok` codes.
fn run_ok(cmd: &mut Command, ok: &[i32]) -> Result<String> {
    let line = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| DiskError::Command {
        command: line.clone(),
        status: e.to_string(),
        output: String::new(),
    })?;
    if out.status.code().is_some_and(|c| ok.contains(&c)) {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let mut output = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        output = format!("{output}\n{}", stdout.trim());
    }
    Err(DiskError::Command {
        command: line,
        status: out.status.to_string(),
        output,
    })
}

fn run(cmd: &mut Command) -> Result<String> {
    run_ok(cmd, &[0])
}

/// A mount as `/proc/self/mountinfo` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The filesystem type.
    pub fstype: String,
    /// What is mounted (a device for ext4).
    pub source: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> OsString {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(n as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsString::from_vec(out)
}

/// The mounts of a mountinfo text, in its order (later ones are on top).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mountpoint = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let source = right.next()?;
            Some(MountEntry {
                mountpoint: PathBuf::from(unescape(mountpoint)),
                fstype: fstype.to_owned(),
                source: unescape(source).to_string_lossy().into_owned(),
            })
        })
        .collect()
}

/// Every mount of this process's mount namespace.
pub fn mounts() -> Result<Vec<MountEntry>> {
    let p = Path::new("/proc/self/mountinfo");
    Ok(parse_mountinfo(
        &std::fs::read_to_string(p).map_err(io_err("read", p))?,
    ))
}

/// The topmost mount on `mountpoint`, if any.
pub fn mount_at(mountpoint: &Path) -> Result<Option<MountEntry>> {
    let at = canonical(mountpoint);
    Ok(mounts()?.into_iter().rev().find(|m| m.mountpoint == at))
}

/// The path with symlinks resolved (as the kernel reports paths), or as given when it cannot
/// be resolved.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned())
}

/// Every attached loop device and the file behind it (from sysfs).
pub fn loop_devices() -> Vec<(PathBuf, PathBuf)> {
    let Ok(dir) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, PathBuf)> = dir
        .flatten()
        .filter(|e| e.file_name().as_bytes().starts_with(b"loop"))
        .filter_map(|e| {
            let backing = std::fs::read(e.path().join("loop/backing_file")).ok()?;
            let backing = backing.strip_suffix(b"\n").unwrap_or(&backing).to_vec();
            Some((
                Path::new("/dev").join(e.file_name()),
                PathBuf::from(OsString::from_vec(backing)),
            ))
        })
        .collect();
    out.sort();
    out
}

/// The loop devices backed by `image`.
pub fn loops_of(image: &Path) -> Vec<PathBuf> {
    let image = canonical(image);
    loop_devices()
        .into_iter()
        .filter(|(_, b)| *b == image)
        .map(|(d, _)| d)
        .collect()
}

/// The file behind a loop device, if it is one and attached.
fn backing_of(dev: &Path) -> Option<PathBuf> {
    let name = dev.file_name()?;
    let backing =
        std::fs::read(Path::new("/sys/block").join(name).join("loop/backing_file")).ok()?;
    let backing = backing.strip_suffix(b"\n").unwrap_or(&backing).to_vec();
    Some(PathBuf::from(OsString::from_vec(backing)))
}

/// One attach at a time in this process: `losetup --find` picks a free device and then claims
/// it, and two picks may land on the same one.
static ATTACH: Mutex<()> = Mutex::new(());

/// A loop device for `image`: one already backed by it (refreshed to the file's size), else a
/// new one. True when it was attached now.
fn attach(image: &Path) -> Result<(PathBuf, bool)> {
    let _one = ATTACH.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dev) = loops_of(image).into_iter().next() {
        run(Command::new(tool("losetup"))
            .arg("--set-capacity")
            .arg(&dev))?;
        return Ok((dev, false));
    }
    let mut last = None;
    for attempt in 0..5u64 {
        match run(Command::new(tool("losetup"))
            .args(["--find", "--show"])
            .arg(image))
        {
            Ok(out) => return Ok((PathBuf::from(out.trim()), true)),
            Err(e) => {
                // another process took the device between the pick and the claim
                tracing::debug!(error = %e, attempt, "losetup --find failed; again");
                last = Some(e);
                std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
            }
        }
    }
    Err(last.expect("an attempt"))
}

/// Detaches a loop device (deferred by the kernel while something still has it open).
fn detach(dev: &Path) -> Result<()> {
    if backing_of(dev).is_none() {
        return Ok(());
    }
    match run(Command::new(tool("losetup")).arg("--detach").arg(dev)) {
        Ok(_) => Ok(()),
        // detached meanwhile (autoclear)
        Err(_) if backing_of(dev).is_none() => Ok(()),
        Err(e) => Err(e),
    }
}

fn mount_dev(dev: &Path, at: &Path) -> Result<()> {
    mount(Some(dev), at, Some("ext4"), MOUNT_FLAGS, Some(MOUNT_DATA)).map_err(|errno| {
        DiskError::Mount {
            what: "mount",
            path: at.to_owned(),
            errno,
        }
    })
}

/// The size of the ext4 filesystem on `path` (an image, or the loop device of a mounted one,
/// whose superblock the kernel keeps current), from its superblock.
pub fn fs_bytes(path: &Path) -> Result<u64> {
    let f = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut sb = [0u8; 1024];
    f.read_exact_at(&mut sb, 1024)
        .map_err(io_err("read the superblock of", path))?;
    let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().expect("4 bytes"));
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return Err(DiskError::NotExt4(path.to_owned()));
    }
    let block = 1024u64 << u32_at(0x18).min(16);
    let mut blocks = u64::from(u32_at(0x04));
    if u32_at(0x60) & 0x80 != 0 {
        blocks |= u64::from(u32_at(0x150)) << 32;
    }
    Ok(blocks * block)
}

fn file_len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p).map_err(io_err("stat", p))?.len())
}

fn set_len(p: &Path, len: u64) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .and_then(|f| f.set_len(len))
        .map_err(io_err("resize", p))
}

fn has_entries(dir: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(dir)
        .map_err(io_err("read", dir))?
        .next()
        .is_some())
}

/// The marker of a migration whose copy is complete (the image holds the data): the old
/// files in the data directory are leftovers to remove.
fn marker(image: &Path) -> PathBuf {
    image.with_extension("migrated")
}

/// Where a fresh image is made before it takes its name (a half-made one is never used).
fn fresh_image(image: &Path) -> PathBuf {
    image.with_extension("img.new")
}

/// Where a fresh image is mounted while old data is copied into it.
fn migration_mount(image: &Path) -> PathBuf {
    image.with_extension("migrating")
}

/// Makes a sparse image of `bytes` with an ext4 filesystem whose root belongs to uid:gid.
fn make_image(path: &Path, bytes: u64, uid: u32, gid: u32) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("create", path))?;
    let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
    f.set_len(bytes).map_err(io_err("size", path))?;
    drop(f);
    // no reserved blocks (the server may use all of it), the root directory the server's, and
    // nothing zeroed: the file is sparse, its holes read as zeros
    run(Command::new(tool("mkfs.ext4"))
        .args(["-q", "-F", "-m", "0", "-E"])
        .arg(format!(
            "root_owner={uid}:{gid},lazy_itable_init=1,lazy_journal_init=1"
        ))
        .arg(path))?;
    Ok(())
}

/// A mount made for a while (the migration's), undone on drop whatever happens.
struct TempMount {
    dev: PathBuf,
    at: PathBuf,
    mounted: bool,
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = umount2(&self.at, MntFlags::empty()) {
                tracing::warn!(path = %self.at.display(), error = %e, "unmount failed; detaching lazily");
                let _ = umount2(&self.at, MntFlags::MNT_DETACH);
            }
        }
        let _ = detach(&self.dev);
        let _ = std::fs::remove_dir(&self.at);
    }
}

/// Copies what `dir` holds into the fresh image (owners, modes, times, links as links, never
/// following one), then gives the image its name and removes the old files. Crash-safe: the
/// image takes its name only once it holds everything, and a marker says so until the old
/// files are gone.
fn migrate(dir: &Path, fresh: &Path, image: &Path) -> Result<()> {
    let failed = |reason: String| DiskError::Migration {
        dir: dir.to_owned(),
        reason,
    };
    {
        let at = migration_mount(image);
        std::fs::create_dir_all(&at).map_err(io_err("create", &at))?;
        let (dev, _) = attach(fresh)?;
        let mut tmp = TempMount {
            dev,
            at,
            mounted: false,
        };
        mount_dev(&tmp.dev, &tmp.at)?;
        tmp.mounted = true;
        let _ = std::fs::remove_dir(tmp.at.join("lost+found"));
        let mut src = dir.as_os_str().to_owned();
        src.push("/.");
        run(Command::new(tool("cp"))
            .args(["-a", "--no-dereference", "--one-file-system", "--"])
            .arg(src)
            .arg(&tmp.at))
        .map_err(|e| failed(e.to_string()))?;
        umount2(&tmp.at, MntFlags::empty()).map_err(|errno| DiskError::Mount {
            what: "unmount",
            path: tmp.at.clone(),
            errno,
        })?;
        tmp.mounted = false;
    }
    let m = marker(image);
    std::fs::write(&m, b"").map_err(io_err("write", &m))?;
    std::fs::rename(fresh, image).map_err(io_err("rename", fresh))?;
    clear_leftovers(dir, image)
}

/// Removes the old files a completed migration left in the data directory, then its marker.
fn clear_leftovers(dir: &Path, image: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)
        .map_err(io_err("read", dir))?
        .flatten()
    {
        let p = e.path();
        // never follows a link: a link is removed as itself
        let r = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
        r.map_err(io_err("remove", &p))?;
    }
    let m = marker(image);
    std::fs::remove_file(&m).map_err(io_err("remove", &m))
}

/// Grows the mounted filesystem on `dev` to the image's new size, online.
fn grow_online(dev: &Path, image: &Path, to: u64) -> Result<()> {
    if file_len(image)? < to {
        set_len(image, to)?;
    }
    run(Command::new(tool("losetup")).arg("--set-capacity").arg(dev))?;
    run(Command::new(tool("resize2fs")).arg(dev))?;
    Ok(())
}

/// Grows an unmounted image's filesystem to the file's size: checked first, as resize2fs asks.
fn grow_offline(image: &Path) -> Result<()> {
    // 0: clean, 1: errors fixed
    run_ok(
        Command::new(tool("e2fsck")).args(["-f", "-p"]).arg(image),
        &[0, 1],
    )?;
    run(Command::new(tool("resize2fs")).arg(image))?;
    Ok(())
}

/// Makes `mountpoint` the server's own filesystem of `bytes` (see [`image_size`]), made from
/// the image at `image` with its root owned by uid:gid. Idempotent: a disk mounted there
/// already is kept (grown if `bytes` grew); an image that exists is reused; a data directory
/// that already holds files (a server made before quotas) has them moved in. A disk is never
/// shrunk: a lower limit leaves it as it is ([`Ensured::kept_larger`]). Blocking.
pub fn ensure(image: &Path, mountpoint: &Path, bytes: u64, uid: u32, gid: u32) -> Result<Ensured> {
    ensure_from(image, mountpoint, bytes, uid, gid, None)
}

/// [`ensure`], a new image taken from `spares` when one of the size is there (its root is
/// root's then: the caller gives the mounted directory to uid:gid).
pub fn ensure_from(
    image: &Path,
    mountpoint: &Path,
    bytes: u64,
    uid: u32,
    gid: u32,
    spares: Option<&spares::Spares>,
) -> Result<Ensured> {
    let started = Instant::now();
    let want = image_size(bytes);
    std::fs::create_dir_all(mountpoint).map_err(io_err("create", mountpoint))?;
    let disks = image.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(disks).map_err(io_err("create", disks))?;
    let _ = std::fs::set_permissions(disks, std::fs::Permissions::from_mode(0o700));
    let image = &canonical(disks).join(image.file_name().unwrap_or_default());
    let mountpoint = &canonical(mountpoint);
    let mut out = Ensured {
        asked_bytes: want,
        ..Ensured::default()
    };

    if let Some(m) = mount_at(mountpoint)? {
        let dev = PathBuf::from(&m.source);
        if backing_of(&dev).as_deref() != Some(image.as_path()) {
            return Err(DiskError::Foreign {
                mountpoint: mountpoint.clone(),
                device: m.source,
                image: image.clone(),
            });
        }
        let len = file_len(image)?;
        let fs = fs_bytes(&dev)?;
        // larger asked, or a grow that stopped half-way (the file grown, not its filesystem)
        if want <= len && fs + SLACK >= len {
            out.image_bytes = len;
            return Ok(out);
        }
        let target = want.max(len);
        out.image_bytes = target;
        match grow_online(&dev, image, target) {
            Ok(()) => {
                tracing::info!(image = %image.display(), from = fs, to = target, "disk grown online");
                out.grown_from = Some(fs);
                out.grown_online = true;
                return Ok(out);
            }
            Err(online) => {
                // e.g. no CAP_SYS_RESOURCE: unmount, check and grow offline, unless something
                // uses the filesystem (then at the next start)
                tracing::info!(image = %image.display(), error = %online, "online grow refused; growing offline");
                if let Err(e) = umount2(mountpoint, MntFlags::UMOUNT_NOFOLLOW) {
                    out.grow_deferred = Some(format!("{online}; in use, not unmounted: {e}"));
                    return Ok(out);
                }
                detach(&dev)?;
            }
        }
    }

    // not mounted: a loop device still backing the image is stale (a crash between attach and
    // mount) and goes, unless the filesystem is mounted elsewhere (then the kernel only marks
    // it to go when released, and it is mounted here too, as it is)
    for dev in loops_of(image) {
        let _ = detach(&dev);
    }
    let busy = !loops_of(image).is_empty();
    let fresh = fresh_image(image);
    if !image.exists() {
        let _ = std::fs::remove_file(marker(image));
        let empty = !has_entries(mountpoint)?;
        out.created = true;
        if empty && spares.is_some_and(|s| s.take(want, image)) {
            out.spare = true;
        } else if !empty {
            make_image(&fresh, want, uid, gid)?;
            if let Err(e) = migrate(mountpoint, &fresh, image) {
                let _ = std::fs::remove_file(&fresh);
                return Err(e);
            }
            out.migrated = true;
            tracing::info!(dir = %mountpoint.display(), "existing data moved into its disk");
        } else {
            make_image(&fresh, want, uid, gid)?;
            std::fs::rename(&fresh, image).map_err(io_err("rename", &fresh))?;
        }
    } else {
        let _ = std::fs::remove_file(&fresh);
        if marker(image).exists() {
            // a migration copied everything and then stopped: the rest are leftovers
            clear_leftovers(mountpoint, image)?;
        } else if has_entries(mountpoint)? {
            return Err(DiskError::NotEmpty(mountpoint.clone()));
        }
        let len = file_len(image)?;
        let target = want.max(len);
        let fs = fs_bytes(image)?;
        if want > len || fs + SLACK < len {
            if busy {
                out.grow_deferred =
                    Some("the filesystem is still in use elsewhere; not grown".to_owned());
            } else {
                set_len(image, target)?;
                grow_offline(image)?;
                tracing::info!(image = %image.display(), from = fs, to = target, "disk grown offline");
                out.grown_from = Some(fs);
            }
        }
    }
    out.image_bytes = file_len(image)?;

    let (dev, attached) = attach(image)?;
    if let Err(e) = mount_dev(&dev, mountpoint) {
        if attached {
            let _ = detach(&dev);
        }
        return Err(e);
    }
    if out.created && !out.migrated {
        // a game's directory has no use for it; e2fsck makes it again when it needs one
        let _ = std::fs::remove_dir(mountpoint.join("lost+found"));
    }
    tracing::info!(
        image = %image.display(),
        mountpoint = %mountpoint.display(),
        bytes = out.image_bytes,
        created = out.created,
        spare = out.spare,
        ms = started.elapsed().as_millis() as u64,
        "disk mounted"
    );
    Ok(out)
}

/// Unmounts the server's disk from `mountpoint` and detaches its loop device; nothing mounted
/// is fine. A busy filesystem is detached lazily (logged): it goes when its last user does.
/// Blocking.
pub fn unmount(mountpoint: &Path) -> Result<()> {
    let mountpoint = &canonical(mountpoint);
    for _ in 0..16 {
        let Some(m) = mount_at(mountpoint)? else {
            return Ok(());
        };
        match umount2(mountpoint, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
            Err(Errno::EBUSY) => {
                tracing::warn!(path = %mountpoint.display(), "disk busy; unmounting lazily");
                umount2(mountpoint, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW).map_err(
                    |errno| DiskError::Mount {
                        what: "unmount",
                        path: mountpoint.clone(),
                        errno,
                    },
                )?;
            }
            Err(errno) => {
                return Err(DiskError::Mount {
                    what: "unmount",
                    path: mountpoint.clone(),
                    errno,
                })
            }
        }
        if m.source.starts_with("/dev/loop") {
            detach(Path::new(&m.source))?;
        }
    }
    Err(DiskError::Mount {
        what: "unmount",
        path: mountpoint.clone(),
        errno: Errno::EBUSY,
    })
}

/// Removes a server's image (detaching any loop device still backed by it) and whatever a
/// make or migration that stopped half-way left beside it. Unmount first. Blocking.
pub fn remove(image: &Path) -> Result<()> {
    let tmp = migration_mount(image);
    if mount_at(&tmp)?.is_some() {
        unmount(&tmp)?;
    }
    let _ = std::fs::remove_dir(&tmp);
    for p in [image.to_owned(), fresh_image(image)] {
        for dev in loops_of(&p) {
            detach(&dev)?;
        }
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err("remove", &p)(e))
            }
            _ => {}
        }
    }
    let _ = std::fs::remove_file(marker(image));
    tracing::info!(image = %image.display(), "disk removed");
    Ok(())
}

/// The use of the filesystem at `mountpoint` (statvfs). Blocking.
pub fn usage(mountpoint: &Path) -> Result<Usage> {
    let s = nix::sys::statvfs::statvfs(mountpoint).map_err(|e| DiskError::Io {
        what: "statvfs",
        path: mountpoint.to_owned(),
        source: e.into(),
    })?;
    let unit = s.fragment_size();
    let blocks = s.blocks();
    Ok(Usage {
        used_bytes: blocks.saturating_sub(s.blocks_free()) * unit,
        limit_bytes: blocks * unit,
    })
}

/// The use of `dir`'s disk when `dir` is a filesystem of its own (the server's disk is
/// mounted there); None otherwise. Blocking.
pub fn own_usage(dir: &Path) -> Option<Usage> {
    use std::os::unix::fs::MetadataExt;
    let here = std::fs::symlink_metadata(dir).ok()?;
    let parent = std::fs::metadata(dir.join("..")).ok()?;
    (here.is_dir() && here.dev() != parent.dev())
        .then(|| usage(dir).ok())
        .flatten()
}

/// Unmounts every mount below `dir` and detaches every loop device backed by a file below it,
/// lazily and quietly: what tests (and a node being taken apart) use to leave the machine as
/// they found it. Blocking.
pub fn purge_under(dir: &Path) {
    let dir = canonical(dir);
    let mut below: Vec<PathBuf> = mounts()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.mountpoint.starts_with(&dir))
        .map(|m| m.mountpoint)
        .collect();
    // deepest first
    below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in below {
        let _ = umount2(&m, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
    }
    for (dev, backing) in loop_devices() {
        if backing.starts_with(&dir) {
            let _ = detach(&dev);
        }
    }
}

#[cfg(test)]
mod tests;
