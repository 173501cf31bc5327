//! The one safe path layer under every file operation of the file API and of SFTP.
//!
//! A server's data directory belongs to a hostile customer: the game inside the container can
//! create symbolic links, hard links, FIFOs and sockets at any moment, and swap them in between
//! two of our system calls. So nothing here checks a path and then uses it:
//!
//! - A user path (`"/world/level.dat"`, `"world/level.dat"`, `"/"`, `""`) is cleaned lexically
//!   first ([`Root::clean`]): `..` above the root is [`FsError::Escapes`], a NUL byte or a name
//!   over 255 bytes is [`FsError::Invalid`]. A leading `/` is the data directory, never the
//!   host's root.
//! - Every path is resolved beneath the data directory's descriptor with `openat2(2)` and
//!   `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`: symbolic links that stay inside
//!   are followed, ones that lead outside (absolute or climbing) fail with `EXDEV`
//!   ([`FsError::Escapes`]), and mount points are never crossed.
//! - What acts on a name (stat, delete, rename, chmod, set times, the destination of a write)
//!   resolves only the parent directory that way and then works on the final name with the
//!   `*at` calls and `AT_SYMLINK_NOFOLLOW` / `O_NOFOLLOW`: a final symbolic link is the link
//!   itself, never its target.
//! - Only regular files are read or written: files are opened with `O_NONBLOCK` (a FIFO can't
//!   hang us) and checked with `fstat` on the open descriptor. A regular file with more than one
//!   hard link, or on another filesystem than the root, is refused for read, write, chmod, copy
//!   and open. Nothing ever creates a device, a FIFO or a socket, nor (except when copying one)
//!   a symbolic link. Modes are masked to `0o777`: no setuid, setgid or sticky bit, ever.
//! - Every operation runs with the calling thread's fsuid/fsgid switched to the server's host
//!   uid/gid (and back to 0/0 afterwards, by a drop guard), so the kernel checks each access as
//!   the server's user and even a bug here cannot write as root. When the switch does not take,
//!   the operation is refused. A process that is not root does not switch.
//!
//! Everything is **blocking** and the identity switch is per thread: call it from
//! `tokio::task::spawn_blocking` (or a thread of your own), never from an async task directly,
//! and do not move a call's work across threads.

pub mod archive;
mod creds;
pub mod denylist;
mod error;
mod path;
pub mod pull;
mod walk;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

pub use denylist::Denylist;
pub use error::FsError;

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use chrono::{DateTime, Utc};
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{
    fcntl, openat, openat2, readlinkat, renameat, renameat2, AtFlags, FcntlArg, OFlag, OpenHow,
    RenameFlags, ResolveFlag,
};
use nix::sys::stat::{
    fchmod, fstat, fstatat, mkdirat, utimensat, FileStat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::statvfs::fstatvfs;
use nix::sys::time::TimeSpec;
use nix::unistd::{ftruncate, geteuid};

use creds::Creds;
use error::from_errno;

/// The mode of files the layer creates, unless one is given.
const FILE_MODE: u32 = 0o644;
/// The mode of directories the layer creates.
const DIR_MODE: u32 = 0o755;
/// The permission bits a caller may set: never setuid, setgid or sticky.
const PERMS: u32 = 0o777;
/// The prefix of the temporary files of [`Root::write_atomic`].
pub const UPLOAD_PREFIX: &str = ".catalyst-upload-";

/// A server's data directory, held open: the only way to its files.
///
/// `Send + Sync`; share it behind an `Arc` and call its (blocking) methods from
/// `tokio::task::spawn_blocking`.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    uid: u32,
    gid: u32,
    dev: u64,
    ino: u64,
    denylist: Option<std::sync::Arc<Denylist>>,
}

/// A file being written by [`Root::write_atomic`]: a temporary file beside the destination
/// that [`AtomicFile::commit`] renames over it. Dropped without a commit, the temporary file is
/// removed.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    dir: OwnedFd,
    tmp: String,
    name: String,
    path: String,
    uid: u32,
    gid: u32,
    committed: bool,
}

/// How [`Root::open_write`] opens a file (SFTP's open flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOpts {
    /// Create the file when it does not exist.
    pub create: bool,
    /// Truncate an existing file to zero length.
    pub truncate: bool,
    /// Every write goes to the end of the file.
    pub append: bool,
    /// Fail with [`FsError::Exists`] when the file exists (implies `create`).
    pub exclusive: bool,
    /// Open for reading as well.
    pub read: bool,
    /// The mode of a file that gets created (masked to `0o777`; default `0o644`).
    pub mode: Option<u32>,
}

/// What a directory entry is, without following it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The final name (empty for the root).
    pub name: String,
    /// The cleaned user path, with a leading `/`.
    pub path: String,
    /// File, directory, symbolic link or something else.
    pub kind: EntryKind,
    /// Size in bytes (for a symbolic link, the length of its target).
    pub size: u64,
    /// The permission bits, with setuid/setgid/sticky (`st_mode & 0o7777`), no file type.
    pub mode: u32,
    /// Last modification.
    pub modified: DateTime<Utc>,
    /// A symbolic link's target, as written in the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    /// Owner (host uid).
    pub uid: u32,
    /// Group (host gid).
    pub gid: u32,
}

/// The kind of an [`Entry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (never followed in listings).
    Symlink,
    /// A FIFO, socket or device: listed, never opened.
    Other,
}

/// One page of a directory: directories first, then by name (byte order).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    /// The listed directory's cleaned user path, with a leading `/`.
    pub path: String,
    /// The entries of this page.
    pub items: Vec<Entry>,
    /// When more entries follow: what to pass as `after` for the next page (the last name of
    /// this page, with a trailing `/` when it is a directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Space on the filesystem of a server's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Space {
    /// Bytes available to unprivileged users.
    pub free: u64,
    /// Size of the filesystem in bytes.
    pub total: u64,
}

impl Root {
    /// Opens the data directory (as root, `O_DIRECTORY | O_NOFOLLOW`: a symbolic link is
    /// refused) whose files belong to host uid/gid. When the process is root, uid or gid 0 is
    /// refused: the layer exists to never act as root on a customer's files.
    pub fn open(dir: &Path, uid: u32, gid: u32) -> Result<Root, FsError> {
        if geteuid().is_root() && (uid == 0 || gid == 0) {
            return Err(FsError::refused(
                "/",
                "a server's files are never accessed as root",
            ));
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(dir, flags, Mode::empty()).map_err(|e| {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot open a data directory");
            match e {
                // O_NOFOLLOW | O_DIRECTORY on a link: ENOTDIR (or ELOOP)
                Errno::ELOOP | Errno::ENOTDIR => FsError::refused(
                    "/",
                    "the data directory is not a directory (a symbolic link?)",
                ),
                e => from_errno("/", e),
            }
        })?;
        let st = fstat(&fd).map_err(|e| from_errno("/", e))?;
        Ok(Root {
            dir: fd,
            uid,
            gid,
            dev: st.st_dev,
            ino: st.st_ino,
            denylist: None,
        })
    }

    /// Refuses, from now on, what `denylist` denies (the Template's `fileDenylist`: roots
    /// opened for users, not the node's own work on the files).
    pub fn set_denylist(&mut self, denylist: Option<std::sync::Arc<Denylist>>) {
        self.denylist = denylist;
    }

    /// [`FsError::Refused`] for a cleaned path the denylist denies.
    fn check_denied(&self, clean: &str) -> Result<(), FsError> {
        match &self.denylist {
            Some(d) if d.denies(clean) => Err(FsError::refused(
                &path::shown(clean),
                "the template's fileDenylist does not allow it",
            )),
            _ => Ok(()),
        }
    }

    /// The host uid that owns the files and that every operation runs as.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The host gid that owns the files and that every operation runs as.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Cleans a user path: `Ok("world/level.dat")`, and `Ok("")` for the root. `..` above the
    /// root is [`FsError::Escapes`]; a NUL byte, a name over 255 bytes or a path over 4095 is
    /// [`FsError::Invalid`].
    pub fn clean(path: &str) -> Result<String, FsError> {
        path::clean(path)
    }

    /// Writes everything of the filesystem this root is on to disk (`syncfs`).
    pub fn sync_fs(&self) -> Result<(), FsError> {
        nix::unistd::syncfs(&self.dir).map_err(|e| from_errno("/", e))
    }

    /// What is at `path`, without following a final symbolic link (`lstat`).
    pub fn stat(&self, path: &str) -> Result<Entry, FsError> {
        let clean = Self::clean(path)?;
        let shown = path::shown(&clean);
        let _creds = self.creds(&shown)?;
        match path::split(&clean) {
            None => {
                let st = fstat(&self.dir).map_err(|e| from_errno(&shown, e))?;
                Ok(entry("", &shown, &st, None))
            }
            Some((parent, name)) => {
                let dir = self.parent(parent, &shown)?;
                stat_at(&dir, name, &shown)
            }
        }
    }

    /// One page of the directory at `path` (symbolic links to directories inside are
    /// followed): directories first, then by name, starting after `after` (the previous page's
    /// [`Listing::next`], or a plain name), at most `limit` entries (0: all of them).
    ///
    /// One `getdents` pass sorts the names (by `d_type`), then only the page's entries are
    /// `fstatat`-ed relative to the directory's descriptor. Names that are not UTF-8 are shown
    /// lossily.
    pub fn list(&self, path: &str, after: Option<&str>, limit: usize) -> Result<Listing, FsError> {
        let clean = Self::clean(path)?;
        let shown = path::shown(&clean);
        let _creds = self.creds(&shown)?;
        let fd = resolve(
            &self.dir,
            &clean,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(|e| from_errno(&shown, e))?;
        // a second descriptor of the directory for the fstatat calls while `dir` is iterated
        let at = fd.try_clone().map_err(|e| FsError::from_io(&shown, e))?;
        let mut dir = Dir::from_fd(fd).map_err(|e| from_errno(&shown, e))?;
        let mut names: Vec<(bool, String, CString)> = Vec::new();
        for item in dir.iter() {
            let item = item.map_err(|e| from_errno(&shown, e))?;
            let raw = item.file_name();
            if raw.to_bytes() == b"." || raw.to_bytes() == b".." {
                continue;
            }
            let is_dir = match item.file_type() {
                Some(t) => t == Type::Directory,
                None => names_is_dir(&at, raw),
            };
            names.push((is_dir, raw.to_string_lossy().into_owned(), raw.to_owned()));
        }
        // (is_dir desc, name): `false < true`, so sort on `!is_dir`
        names.sort_unstable_by(|a, b| (!a.0, &a.1).cmp(&(!b.0, &b.1)));
        let start = match after.filter(|a| !a.is_empty()) {
            None => 0,
            Some(after) => {
                let (is_dir, name) = match after.strip_suffix('/') {
                    Some(name) => (true, name),
                    None => (names.iter().any(|(d, n, _)| *d && n == after), after),
                };
                names.partition_point(|(d, n, _)| (!*d, n.as_str()) <= (!is_dir, name))
            }
        };
        let end = if limit == 0 {
            names.len()
        } else {
            start.saturating_add(limit).min(names.len())
        };
        let next = (end < names.len() && end > start).then(|| {
            let (is_dir, name, _) = &names[end - 1];
            if *is_dir {
                format!("{name}/")
            } else {
                name.clone()
            }
        });
        let mut items = Vec::with_capacity(end.saturating_sub(start));
        for (_, name, raw) in names.get(start..end).unwrap_or_default() {
            let child = path::child(&shown, name);
            let st = match fstatat(&at, raw.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // gone since getdents
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(from_errno(&child, e)),
            };
            let target = (file_type(st.st_mode) == SFlag::S_IFLNK)
                .then(|| readlinkat(&at, raw.as_c_str()).ok())
                .flatten()
                .map(lossy);
            items.push(entry(name, &child, &st, target));
        }
        Ok(Listing {
            path: shown,
            items,
            next,
        })
    }

    /// Opens a regular file for reading (symbolic links inside are followed), with what it is.
    /// FIFOs, sockets, devices, hard-linked files and files on another filesystem are refused.
    pub fn open_read(&self, path: &str) -> Result<(File, Entry), FsError> {
        let clean = Self::clean(path)?;
        self.check_denied(&clean)?;
        let shown = path::shown(&clean);
        let _creds = self.creds(&shown)?;
        let fd = resolve(
            &self.dir,
            &clean,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| from_errno(&shown, e))?;
        self.check_denied_real(&fd, None, &shown)?;
        let st = fstat(&fd).map_err(|e| from_errno(&shown, e))?;
        self.check_regular(&st, &shown)?;
        clear_nonblock(&fd).map_err(|e| from_errno(&shown, e))?;
        let name = path::split(&clean).map(|(_, n)| n).unwrap_or_default();
        Ok((File::from(fd), entry(name, &shown, &st, None)))
    }

    /// Starts an atomic replace of `path`: a temporary file `.catalyst-upload-<random>` in the
    /// same directory (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode `mode & 0o777`, or the replaced
    /// file's permission bits, or `0o644`), which [`AtomicFile::commit`] fsyncs and renames over
    /// `path`. An existing symbolic link or hard link at `path` is replaced (the name), never
    /// written through; a directory there is [`FsError::IsADirectory`]. The parent directory
    /// must exist.
    pub fn write_atomic(&self, path: &str, mode: Option<u32>) -> Result<AtomicFile, FsError> {
        let clean = Self::clean(path)?;
        self.check_denied(&clean)?;
        let shown = path::shown(&clean);
        let Some((parent, name)) = path::split(&clean) else {
            return Err(FsError::IsADirectory { path: shown });
        };
        let _creds = self.creds(&shown)?;
        let dir = self.parent(parent, &shown)?;
        self.check_denied_real(&dir, Some(name), &shown)?;
        let mut keep = FILE_MODE;
        match fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(st.st_mode) == SFlag::S_IFDIR => {
                return Err(FsError::IsADirectory { path: shown });
            }
            Ok(st) if file_type(st.st_mode) == SFlag::S_IFREG => keep = st.st_mode & PERMS,
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(from_errno(&shown, e)),
        }
        let mode = mode.map_or(keep, |m| m & PERMS);
        let tmp = format!("{UPLOAD_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let fd = openat(
            &dir,
            tmp.as_str(),
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| from_errno(&shown, e))?;
        let file = AtomicFile {
            file: File::from(fd),
            dir,
            tmp,
            name: name.to_owned(),
            path: shown,
            uid: self.uid,
            gid: self.gid,
            committed: false,
        };
        // the umask may have taken bits away; dropping `file` on error removes it
        fchmod(&file.file, Mode::from_bits_truncate(mode))
            .map_err(|e| from_errno(&file.path, e))?;
        Ok(file)
    }

    /// Opens a regular file for writing in place (SFTP): created (`0o644` or `opts.mode`),
    /// truncated or appended to as `opts` say, never through a final symbolic link
    /// (`O_NOFOLLOW`). The file is checked (regular, one link, this filesystem) before it is
    /// truncated, so a hard link to another file is never truncated.
    pub fn open_write(&self, path: &str, opts: WriteOpts) -> Result<File, FsError> {
        let clean = Self::clean(path)?;
        self.check_denied(&clean)?;
        let shown = path::shown(&clean);
        let Some((parent, name)) = path::split(&clean) else {
            return Err(FsError::IsADirectory { path: shown });
        };
        let _creds = self.creds(&shown)?;
        let dir = self.parent(parent, &shown)?;
        self.check_denied_real(&dir, Some(name), &shown)?;
        let mut flags = if opts.read {
            OFlag::O_RDWR
        } else {
            OFlag::O_WRONLY
        };
        flags |= OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        if opts.append {
            flags |= OFlag::O_APPEND;
        }
        let mode = Mode::from_bits_truncate(opts.mode.unwrap_or(FILE_MODE) & PERMS);
        let create = flags | OFlag::O_CREAT | OFlag::O_EXCL;
        let err = |e| match e {
            Errno::ELOOP => FsError::refused(&shown, "a symbolic link"),
            e => from_errno(&shown, e),
        };
        let (fd, created) = if opts.exclusive {
            (openat(&dir, name, create, mode).map_err(err)?, true)
        } else if opts.create {
            // O_EXCL first, to know whether the file is new (then its mode is set exactly)
            let mut opened = None;
            for _ in 0..8 {
                match openat(&dir, name, create, mode) {
                    Ok(fd) => opened = Some((fd, true)),
                    Err(Errno::EEXIST) => match openat(&dir, name, flags, Mode::empty()) {
                        Ok(fd) => opened = Some((fd, false)),
                        Err(Errno::ENOENT) => continue,
                        Err(e) => return Err(err(e)),
                    },
                    Err(e) => return Err(err(e)),
                }
                break;
            }
            opened
                .ok_or_else(|| FsError::other(&shown, "the file keeps appearing and vanishing"))?
        } else {
            (
                openat(&dir, name, flags, Mode::empty()).map_err(err)?,
                false,
            )
        };
        let st = fstat(&fd).map_err(|e| from_errno(&shown, e))?;
        self.check_regular(&st, &shown)?;
        if created {
            fchmod(&fd, mode).map_err(|e| from_errno(&shown, e))?;
        } else if opts.truncate {
            ftruncate(&fd, 0).map_err(|e| from_errno(&shown, e))?;
        }
        clear_nonblock(&fd).map_err(|e| from_errno(&shown, e))?;
        Ok(File::from(fd))
    }

    /// Creates the directory at `path` and every missing one above it (`0o755`). Each level is
    /// created relative to its parent's descriptor and opened again with `openat2` beneath the
    /// root, so a symbolic link in the way is followed only while it stays inside.
    pub fn mkdir_all(&self, path: &str) -> Result<(), FsError> {
        let clean = Self::clean(path)?;
        let shown = path::shown(&clean);
        let _creds = self.creds(&shown)?;
        let mut cur = resolve(
            &self.dir,
            "",
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(|e| from_errno("/", e))?;
        if clean.is_empty() {
            return Ok(());
        }
        let mut end = 0;
        for name in clean.split('/') {
            end += if end == 0 { name.len() } else { name.len() + 1 };
            let prefix = &clean[..end];
            let made = match mkdirat(&cur, name, Mode::from_bits_truncate(DIR_MODE)) {
                Ok(()) => true,
                Err(Errno::EEXIST) => false,
                Err(e) => return Err(from_errno(&path::shown(prefix), e)),
            };
            if made {
                fix_dir_mode(&cur, name);
            }
            cur = resolve(
                &self.dir,
                prefix,
                OFlag::O_PATH | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .map_err(|e| from_errno(&path::shown(prefix), e))?;
        }
        Ok(())
    }

    /// Creates one directory (`0o755`); [`FsError::Exists`] when anything is there already,
    /// [`FsError::NotFound`] when the parent is missing.
    pub fn mkdir(&self, path: &str) -> Result<(), FsError> {
        let clean = Self::clean(path)?;
        let shown = path::shown(&clean);
        let Some((parent, name)) = path::split(&clean) else {
            return Err(FsError::Exists { path: shown });
        };
        let _creds = self.creds(&shown)?;
        let dir = self.parent(parent, &shown)?;
        mkdirat(&dir, name, Mode::from_bits_truncate(DIR_MODE))
            .map_err(|e| from_errno(&shown, e))?;
        fix_dir_mode(&dir, name);
        Ok(())
    }

    /// Renames `from` to `to` (`renameat2` on the two parents' descriptors; neither final name
    /// is followed). Without `replace`, an existing `to` is [`FsError::Exists`]
    /// (`RENAME_NOREPLACE`). The root itself can't be moved or replaced, and a directory can't
    /// be moved into itself.
    pub fn rename(&self, from: &str, to: &str, replace: bool) -> Result<(), FsError> {
        let from_clean = Self::clean(from)?;
        let to_clean = Self::clean(to)?;
        self.check_denied(&from_clean)?;
        self.check_denied(&to_clean)?;
        self.check_denied_tree(&from_clean)?;
        let from_shown = path::shown(&from_clean);
        let to_shown = path::shown(&to_clean);
        let Some((from_parent, from_name)) = path::split(&from_clean) else {
            return Err(FsError::refused(&from_shown, "the root can't be moved"));
        };
        let Some((to_parent, to_name)) = path::split(&to_clean) else {
            return Err(FsError::refused(&to_shown, "the root can't be replaced"));
        };
        let _creds = self.creds(&from_shown)?;
        let from_dir = self.parent(from_parent, &from_shown)?;
        let to_dir = self.parent(to_parent, &to_shown)?;
        if from_clean == to_clean {
            // renaming a name onto itself: nothing to do, once it is known to exist
            fstatat(&from_dir, from_name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(|e| from_errno(&from_shown, e))?;
            return Ok(());
        }
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::RENAME_NOREPLACE
        };
        renameat2(&from_dir, from_name, &to_dir, to_name, flags).map_err(|e| match e {
            Errno::EINVAL => FsError::invalid(&to_shown, "can't move a directory into itself"),
            Errno::EEXIST | Errno::ENOTEMPTY => FsError::Exists {
                path: to_shown.clone(),
            },
            Errno::EISDIR | Errno::ENOTDIR => from_errno(&to_shown, e),
            e => from_errno(&from_shown, e),
        })
    }

    /// Changes the permission bits (masked to `0o777`) of the file or directory at `path`,
    /// never following a final symbolic link: the name is opened `O_NOFOLLOW | O_NONBLOCK` and
    /// the descriptor is checked and changed (`fchmod`). Symbolic links, FIFOs, sockets,
    /// devices, hard-linked files and files on another filesystem are refused. The open needs
    /// read permission, so a file without it for its owner must be changed from inside the
    /// server.
    pub fn chmod(&self, path: &str, mode: u32) -> Result<(), FsError> {
        let clean = Self::clean(path)?;
        self.check_denied(&clean)?;
        let shown = path::shown(&clean);
        let _creds = self.creds(&shown)?;
        let mode = Mode::from_bits_truncate(mode & PERMS);
        let fd = match path::split(&clean) {
            None => resolve(
                &self.dir,
                "",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Mode::empty(),
            ),
            Some((parent, name)) => {
                let dir = self.parent(parent, &shown)?;
                openat(
                    &dir,
                    name,
                    OFlag::O_RDONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_NONBLOCK
                        | OFlag::O_NOCTTY
                        | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
            }
        }
        .map_err(|e| match e {
            Errno::ELOOP => FsError::refused(&shown, "a symbolic link has no mode of its own"),
            e => from_errno(&shown, e),
        })?;
        let st = fstat(&fd).map_err(|e| from_errno(&shown, e))?;
        if file_type(st.st_mode) != SFlag::S_IFDIR {
            self.check_regular(&st, &shown)?;
        } else if st.st_dev != self.dev {
            return Err(FsError::refused(&shown, "on another filesystem"));
        }
        fchmod(&fd, mode).map_err(|e| from_errno(&shown, e))
    }

    /// The target of the symbolic link at `path`, as written in the link.
    pub fn read_link(&self, path: &str) -> Result<String, FsError> {
        let clean = Self::clean(path)?;
        let shown = path::shown(&clean);
        let Some((parent, name)) = path::split(&clean) else {
            return Err(FsError::invalid(&shown, "not a symbolic link"));
        };
        let _creds = self.creds(&shown)?;
        let dir = self.parent(parent, &shown)?;
        readlinkat(&dir, name).map(lossy).map_err(|e| match e {
            Errno::EINVAL => FsError::invalid(&shown, "not a symbolic link"),
            e => from_errno(&shown, e),
        })
    }

    /// Creates a symbolic link at `path` holding `target` as written (a restore puts back the
    /// links a backup kept). The link is never followed here, and the layer resolves any later
    /// path through it beneath the root, so a target that leads outside gives nothing from
    /// outside. [`FsError::Exists`] when anything is at `path`.
    pub fn symlink(&self, target: &str, path: &str) -> Result<(), FsError> {
        let clean = Self::clean(path)?;
        self.check_denied(&clean)?;
        let shown = path::shown(&clean);
        let Some((parent, name)) = path::split(&clean) else {
            return Err(FsError::Exists { path: shown });
        };
        if target.is_empty() || target.contains('\0') || target.len() > 4095 {
            return Err(FsError::invalid(&shown, "not a valid link target"));
        }
        let _creds = self.creds(&shown)?;
        let dir = self.parent(parent, &shown)?;
        nix::unistd::symlinkat(target, &dir, name).map_err(|e| from_errno(&shown, e))
    }

    /// Sets the access and modification times (seconds since the epoch) of what is at `path`,
    /// never following a final symbolic link (SFTP's setstat).
    pub fn set_times(&self, path: &str, atime: i64, mtime: i64) -> Result<(), FsError> {
        let clean = Self::clean(path)?;
        self.check_denied(&clean)?;
        let shown = path::shown(&clean);
        let _creds = self.creds(&shown)?;
        let (atime, mtime) = (TimeSpec::new(atime, 0), TimeSpec::new(mtime, 0));
        let result = match path::split(&clean) {
            None => utimensat(
                &self.dir,
                ".",
                &atime,
                &mtime,
                UtimensatFlags::NoFollowSymlink,
            ),
            Some((parent, name)) => {
                let dir = self.parent(parent, &shown)?;
                utimensat(&dir, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
            }
        };
        result.map_err(|e| from_errno(&shown, e))
    }

    /// Free and total bytes of the filesystem of the server's files (`fstatvfs` on the root's
    /// descriptor).
    pub fn space(&self) -> Result<Space, FsError> {
        let st = fstatvfs(&self.dir).map_err(|e| from_errno("/", e))?;
        let frag: u64 = st.fragment_size();
        Ok(Space {
            free: st.blocks_available().saturating_mul(frag),
            total: st.blocks().saturating_mul(frag),
        })
    }

    /// Takes the server's identity on this thread until the guard drops.
    fn creds(&self, shown: &str) -> Result<Creds, FsError> {
        Creds::enter(self.uid, self.gid, shown)
    }

    /// The parent directory of a name, resolved beneath the root (`O_PATH`).
    fn parent(&self, parent: &str, shown: &str) -> Result<OwnedFd, FsError> {
        resolve(
            &self.dir,
            parent,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(|e| from_errno(shown, e))
    }

    /// Refuses anything but a regular file with one link on the root's filesystem.
    fn check_regular(&self, st: &FileStat, shown: &str) -> Result<(), FsError> {
        let kind = file_type(st.st_mode);
        if kind == SFlag::S_IFDIR {
            return Err(FsError::IsADirectory {
                path: shown.to_owned(),
            });
        }
        if kind == SFlag::S_IFLNK {
            return Err(FsError::refused(shown, "a symbolic link"));
        }
        if kind != SFlag::S_IFREG {
            return Err(FsError::refused(shown, "not a regular file"));
        }
        if st.st_nlink > 1 {
            tracing::debug!(path = shown, "refused a hard-linked file");
            return Err(FsError::refused(shown, "hard-linked file"));
        }
        if st.st_dev != self.dev {
            return Err(FsError::refused(shown, "on another filesystem"));
        }
        Ok(())
    }
}

impl AtomicFile {
    /// The temporary file, to write to.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Flushes the data to disk (`fsync`) and renames the temporary file over the destination
    /// (`renameat` in the same directory, so the replace is atomic); what is there now.
    /// A directory that appeared at the destination meanwhile is [`FsError::IsADirectory`].
    pub fn commit(self) -> Result<Entry, FsError> {
        self.commit_with(true)
    }

    /// As [`AtomicFile::commit`] without the `fsync`s: for a caller that syncs the whole
    /// filesystem once when it is done ([`Root::sync_fs`]) and throws the lot away if anything
    /// fails before (a restore's staging directory).
    pub fn commit_unsynced(self) -> Result<Entry, FsError> {
        self.commit_with(false)
    }

    fn commit_with(mut self, sync: bool) -> Result<Entry, FsError> {
        if sync {
            self.file
                .sync_all()
                .map_err(|e| FsError::from_io(&self.path, e))?;
        }
        let _creds = Creds::enter(self.uid, self.gid, &self.path)?;
        renameat(&self.dir, self.tmp.as_str(), &self.dir, self.name.as_str()).map_err(
            |e| match e {
                Errno::EISDIR | Errno::EEXIST | Errno::ENOTEMPTY => FsError::IsADirectory {
                    path: self.path.clone(),
                },
                e => from_errno(&self.path, e),
            },
        )?;
        self.committed = true;
        // the rename itself, durable: best effort (the data already is)
        let dir = openat(
            &self.dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        if let (true, Ok(dir)) = (sync, dir) {
            let _ = nix::unistd::fsync(&dir);
        }
        let st = fstat(&self.file).map_err(|e| from_errno(&self.path, e))?;
        Ok(entry(&self.name, &self.path, &st, None))
    }
}

impl std::io::Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        self.file.write_vectored(bufs)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let Ok(_creds) = Creds::enter(self.uid, self.gid, &self.path) else {
            return;
        };
        if let Err(e) = nix::unistd::unlinkat(
            &self.dir,
            self.tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            if e != Errno::ENOENT {
                tracing::warn!(path = self.path, error = %e, "could not remove an abandoned upload");
            }
        }
    }
}

/// The resolve flags of every user path: beneath the root, no `/proc` magic links, no mount
/// point crossed.
fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV
}

/// `openat2` of a cleaned relative path beneath `dir` (`""` is `dir` itself), retried while the
/// kernel reports `EAGAIN` (a concurrent rename during a `..` in a link target).
fn resolve(dir: impl AsFd, rel: &str, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let rel = if rel.is_empty() { "." } else { rel };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(resolve_flags());
    let mut tries = 0;
    loop {
        match openat2(dir.as_fd(), rel, how) {
            Err(Errno::EAGAIN) if tries < 64 => tries += 1,
            result => return result,
        }
    }
}

/// `lstat` of a name in a directory, as an [`Entry`] (with the target of a link).
fn stat_at(dir: &OwnedFd, name: &str, shown: &str) -> Result<Entry, FsError> {
    let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| from_errno(shown, e))?;
    let target = (file_type(st.st_mode) == SFlag::S_IFLNK)
        .then(|| readlinkat(dir, name).ok())
        .flatten()
        .map(lossy);
    Ok(entry(name, shown, &st, target))
}

/// Whether a listed name whose `d_type` is unknown is a directory (`lstat`).
fn names_is_dir(dir: &OwnedFd, name: &std::ffi::CStr) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| file_type(st.st_mode) == SFlag::S_IFDIR)
}

/// The file type bits of a mode.
fn file_type(mode: u32) -> SFlag {
    SFlag::from_bits_truncate(mode) & SFlag::S_IFMT
}

fn lossy(s: OsString) -> String {
    s.to_string_lossy().into_owned()
}

fn entry(name: &str, shown: &str, st: &FileStat, link_target: Option<String>) -> Entry {
    let kind = match file_type(st.st_mode) {
        t if t == SFlag::S_IFREG => EntryKind::File,
        t if t == SFlag::S_IFDIR => EntryKind::Directory,
        t if t == SFlag::S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    let nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
    Entry {
        name: name.to_owned(),
        path: shown.to_owned(),
        kind,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: st.st_mode & 0o7777,
        modified: DateTime::from_timestamp(st.st_mtime, nanos).unwrap_or_default(),
        link_target,
        uid: st.st_uid,
        gid: st.st_gid,
    }
}

/// Clears `O_NONBLOCK` from a descriptor opened with it (to not hang on a FIFO).
fn clear_nonblock(fd: &OwnedFd) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map(drop)
}

/// Gives a directory the layer just created exactly `0o755` (the umask may have taken bits,
/// a setgid parent may have added one). Best effort: the directory exists either way.
fn fix_dir_mode(dir: &OwnedFd, name: &str) {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let Ok(fd) = openat(dir, name, flags, Mode::empty()) else {
        return;
    };
    if fstat(&fd).is_ok_and(|st| st.st_mode & 0o7777 != DIR_MODE) {
        let _ = fchmod(&fd, Mode::from_bits_truncate(DIR_MODE));
    }
}
