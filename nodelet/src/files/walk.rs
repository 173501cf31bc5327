//! Whole trees: recursive remove, copy and usage. Every directory is opened relative to its
//! parent's descriptor with `O_NOFOLLOW`, every entry is looked at with `AT_SYMLINK_NOFOLLOW`,
//! and the walks stay on the root's filesystem (like `crate::ownership::chown_tree`).

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::OwnedFd;

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};

use super::error::from_errno;
use super::{file_type, path, FsError, Root, PERMS};

/// The deepest tree the walks go into (one descriptor is open per level).
const MAX_DEPTH: usize = 512;

/// What a copy has done so far.
struct CopyState {
    /// (st_dev, st_ino) of every directory the copy created: never copied again, so a copy
    /// that a concurrent rename put inside its own source ends.
    created: HashSet<(u64, u64)>,
    /// Whether the destination itself was created (and so is removed when the copy fails).
    made_top: bool,
}

impl Root {
    /// Removes what is at `path`: a file, a symbolic link (the link, never its target), an
    /// empty directory, or with `recursive` a directory and all it holds. The walk opens each
    /// directory relative to its parent with `O_NOFOLLOW`, never leaves the root's filesystem,
    /// and removes a directory swapped for a link meanwhile as the link. The root itself can't
    /// be removed; a hard-linked file can (only its name goes).
    pub fn remove(&self, path: &str, recursive: bool) -> Result<(), FsError> {
        let clean = Self::clean(path)?;
        self.check_denied(&clean)?;
        self.check_denied_tree(&clean)?;
        let shown = path::shown(&clean);
        let Some((parent, name)) = path::split(&clean) else {
            return Err(FsError::refused(&shown, "the root can't be removed"));
        };
        let _creds = self.creds(&shown)?;
        let dir = self.parent(parent, &shown)?;
        let st =
            fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| from_errno(&shown, e))?;
        if file_type(st.st_mode) != SFlag::S_IFDIR {
            return unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| from_errno(&shown, e));
        }
        if st.st_dev != self.dev {
            return Err(FsError::refused(
                &shown,
                "another filesystem is mounted there",
            ));
        }
        if !recursive {
            return unlinkat(&dir, name, UnlinkatFlags::RemoveDir)
                .map_err(|e| from_errno(&shown, e));
        }
        let name = cstring(name, &shown)?;
        self.remove_tree(&dir, &name, &shown)
    }

    /// Copies `from` to `to`, which must not exist: a regular file, a symbolic link (as a link
    /// with the same target text) or a directory with everything in it (FIFOs, sockets and
    /// devices inside are skipped). Modes are kept (masked to `0o777`); owners are the
    /// server's. Hard-linked files and files on another filesystem are refused, and so is a
    /// directory copied into itself (also through a symbolic link). A copy that fails is
    /// removed again.
    pub fn copy(&self, from: &str, to: &str) -> Result<(), FsError> {
        let from_clean = Self::clean(from)?;
        let to_clean = Self::clean(to)?;
        self.check_denied(&from_clean)?;
        self.check_denied(&to_clean)?;
        self.check_denied_tree(&from_clean)?;
        let from_shown = path::shown(&from_clean);
        let to_shown = path::shown(&to_clean);
        let Some((from_parent, from_name)) = path::split(&from_clean) else {
            return Err(FsError::invalid(
                &to_shown,
                "can't copy a directory into itself",
            ));
        };
        let Some((to_parent, to_name)) = path::split(&to_clean) else {
            return Err(FsError::Exists { path: to_shown });
        };
        if to_clean == from_clean || to_clean.starts_with(&format!("{from_clean}/")) {
            return Err(FsError::invalid(
                &to_shown,
                "can't copy a directory into itself",
            ));
        }
        let _creds = self.creds(&from_shown)?;
        let src_dir = self.parent(from_parent, &from_shown)?;
        let dst_dir = self.parent(to_parent, &to_shown)?;
        let st = fstatat(&src_dir, from_name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| from_errno(&from_shown, e))?;
        if file_type(st.st_mode) == SFlag::S_IFDIR
            && self.is_within(&dst_dir, (st.st_dev, st.st_ino), &to_shown)?
        {
            return Err(FsError::invalid(
                &to_shown,
                "can't copy a directory into itself",
            ));
        }
        let from_c = cstring(from_name, &from_shown)?;
        let to_c = cstring(to_name, &to_shown)?;
        let mut state = CopyState {
            created: HashSet::new(),
            made_top: false,
        };
        let result = self.copy_entry(
            (&src_dir, &from_c, &from_shown),
            (&dst_dir, &to_c, &to_shown),
            0,
            &mut state,
        );
        if result.is_err() && state.made_top {
            let undo = match fstatat(&dst_dir, to_c.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if file_type(st.st_mode) == SFlag::S_IFDIR => {
                    self.remove_tree(&dst_dir, &to_c, &to_shown)
                }
                Ok(_) => unlinkat(&dst_dir, to_c.as_c_str(), UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| from_errno(&to_shown, e)),
                Err(_) => Ok(()),
            };
            if let Err(e) = undo {
                tracing::warn!(path = to_shown, error = %e, "could not remove a failed copy");
            }
        }
        result
    }

    /// Bytes used under the root (`st_blocks * 512` of every entry, a file with several links
    /// once), for usage. The walk never follows a link and stays on the root's filesystem.
    ///
    /// Unlike every other operation it runs as root (it only reads metadata: `fstatat` and
    /// `O_RDONLY | O_DIRECTORY | O_NOFOLLOW` opens, never a write), so that a directory whose
    /// mode hides it from its own owner is still counted.
    pub fn usage(&self) -> Result<u64, FsError> {
        let st = fstat(&self.dir).map_err(|e| from_errno("/", e))?;
        let mut total = blocks(&st);
        let mut seen = HashSet::new();
        let root = self.dir.try_clone().map_err(|e| FsError::from_io("/", e))?;
        let pending = self
            .count(&root, &mut total, &mut seen)
            .map_err(|e| from_errno("/", e))?;
        let mut stack = vec![(root, pending)];
        let mut warned = false;
        loop {
            let depth = stack.len();
            let Some((fd, pending)) = stack.last_mut() else {
                break;
            };
            let Some(name) = pending.pop() else {
                stack.pop();
                continue;
            };
            if depth >= MAX_DEPTH {
                if !warned {
                    tracing::warn!(
                        "usage: tree deeper than {MAX_DEPTH} levels; the rest is not counted"
                    );
                    warned = true;
                }
                continue;
            }
            let Ok(child) = open_dir(fd, &name) else {
                continue;
            };
            if !fstat(&child).is_ok_and(|st| st.st_dev == self.dev) {
                continue;
            }
            let pending = self
                .count(&child, &mut total, &mut seen)
                .unwrap_or_default();
            stack.push((child, pending));
        }
        Ok(total)
    }

    /// Adds the blocks of a directory's entries to `total`; its subdirectories on the root's
    /// filesystem.
    fn count(
        &self,
        dir: &OwnedFd,
        total: &mut u64,
        seen: &mut HashSet<(u64, u64)>,
    ) -> nix::Result<Vec<CString>> {
        let mut subdirs = Vec::new();
        for (name, _) in read_names(dir)? {
            let Ok(st) = fstatat(dir, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            if st.st_dev != self.dev {
                continue;
            }
            let is_dir = file_type(st.st_mode) == SFlag::S_IFDIR;
            if is_dir || st.st_nlink <= 1 || seen.insert((st.st_dev, st.st_ino)) {
                *total = total.saturating_add(blocks(&st));
            }
            if is_dir {
                subdirs.push(name);
            }
        }
        Ok(subdirs)
    }

    /// Removes the directory `name` in `parent` and everything in it. Each level's
    /// descriptor stays open while its subdirectories are removed, so descriptors grow with
    /// depth, not width. A directory that keeps getting new entries is given up after a few
    /// rescans ([`FsError::NotEmpty`]).
    pub(super) fn remove_tree(
        &self,
        parent: &OwnedFd,
        name: &CStr,
        shown: &str,
    ) -> Result<(), FsError> {
        struct Frame {
            fd: OwnedFd,
            name: CString,
            shown: String,
            pending: Option<Vec<CString>>,
        }
        let top = self.open_subdir(parent, name, shown)?;
        let mut stack = vec![Frame {
            fd: top,
            name: name.to_owned(),
            shown: shown.to_owned(),
            pending: None,
        }];
        let mut rescans = 0;
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok(());
            };
            if frame.pending.is_none() {
                frame.pending = Some(remove_files(&frame.fd, &frame.shown)?);
            }
            if let Some(sub) = frame.pending.as_mut().and_then(Vec::pop) {
                let sub_shown = path::child(&frame.shown, &sub.to_string_lossy());
                match open_dir(&frame.fd, &sub) {
                    Ok(fd) => {
                        if fstat(&fd).map_err(|e| from_errno(&sub_shown, e))?.st_dev != self.dev {
                            return Err(FsError::refused(
                                &sub_shown,
                                "another filesystem is mounted there",
                            ));
                        }
                        if stack.len() >= MAX_DEPTH {
                            return Err(FsError::refused(
                                &sub_shown,
                                "the directory tree is too deep",
                            ));
                        }
                        stack.push(Frame {
                            fd,
                            name: sub,
                            shown: sub_shown,
                            pending: None,
                        });
                    }
                    // swapped for a link or a file meanwhile: that name goes
                    Err(Errno::ELOOP | Errno::ENOTDIR) => {
                        match unlinkat(&frame.fd, sub.as_c_str(), UnlinkatFlags::NoRemoveDir) {
                            Ok(()) | Err(Errno::ENOENT) => {}
                            Err(e) => return Err(from_errno(&sub_shown, e)),
                        }
                    }
                    Err(Errno::ENOENT) => {}
                    Err(e) => return Err(from_errno(&sub_shown, e)),
                }
                continue;
            }
            let Some(frame) = stack.pop() else {
                return Ok(());
            };
            let up = stack.last().map_or(parent, |f| &f.fd);
            match unlinkat(up, frame.name.as_c_str(), UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::ENOTEMPTY | Errno::EEXIST) if rescans < 16 => {
                    // something was created meanwhile: go over the directory again
                    rescans += 1;
                    stack.push(Frame {
                        pending: None,
                        ..frame
                    });
                }
                Err(e) => return Err(from_errno(&frame.shown, e)),
            }
        }
    }

    /// Opens a subdirectory with `O_NOFOLLOW` and checks it is on the root's filesystem.
    fn open_subdir(&self, parent: &OwnedFd, name: &CStr, shown: &str) -> Result<OwnedFd, FsError> {
        let fd = open_dir(parent, name).map_err(|e| from_errno(shown, e))?;
        let st = fstat(&fd).map_err(|e| from_errno(shown, e))?;
        if st.st_dev != self.dev {
            return Err(FsError::refused(
                shown,
                "another filesystem is mounted there",
            ));
        }
        Ok(fd)
    }

    /// Whether the directory `dir` is the directory `target` (st_dev, st_ino) or inside it:
    /// a walk up through `..` until the root. Too deep a walk counts as inside.
    fn is_within(&self, dir: &OwnedFd, target: (u64, u64), shown: &str) -> Result<bool, FsError> {
        let mut cur = dir.try_clone().map_err(|e| FsError::from_io(shown, e))?;
        for _ in 0..MAX_DEPTH * 8 {
            let st = fstat(&cur).map_err(|e| from_errno(shown, e))?;
            let here = (st.st_dev, st.st_ino);
            if here == target {
                return Ok(true);
            }
            if here == (self.dev, self.ino) {
                return Ok(false);
            }
            let up = openat(
                &cur,
                "..",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| from_errno(shown, e))?;
            let up_st = fstat(&up).map_err(|e| from_errno(shown, e))?;
            if (up_st.st_dev, up_st.st_ino) == here {
                // the top of the filesystem, without meeting the root: not inside
                return Ok(false);
            }
            cur = up;
        }
        Ok(true)
    }

    /// Copies one entry (the source's and the destination's parent, name and user path).
    fn copy_entry(
        &self,
        (src_dir, src_name, from): (&OwnedFd, &CStr, &str),
        (dst_dir, dst_name, to): (&OwnedFd, &CStr, &str),
        depth: usize,
        state: &mut CopyState,
    ) -> Result<(), FsError> {
        let top = depth == 0;
        let st = match fstatat(src_dir, src_name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // gone since it was listed
            Err(Errno::ENOENT) if !top => return Ok(()),
            Err(e) => return Err(from_errno(from, e)),
        };
        let kind = file_type(st.st_mode);
        if kind == SFlag::S_IFDIR {
            if state.created.contains(&(st.st_dev, st.st_ino)) {
                return Ok(());
            }
            if depth >= MAX_DEPTH {
                return Err(FsError::refused(from, "the directory tree is too deep"));
            }
            let src = self.open_subdir(src_dir, src_name, from)?;
            let src_st = fstat(&src).map_err(|e| from_errno(from, e))?;
            if (src_st.st_dev, src_st.st_ino) != (st.st_dev, st.st_ino) {
                return Err(FsError::refused(from, "changed while being copied"));
            }
            mkdirat(dst_dir, dst_name, Mode::from_bits_truncate(0o700))
                .map_err(|e| from_errno(to, e))?;
            state.made_top |= top;
            let dst = open_dir(dst_dir, dst_name).map_err(|e| from_errno(to, e))?;
            let dst_st = fstat(&dst).map_err(|e| from_errno(to, e))?;
            state.created.insert((dst_st.st_dev, dst_st.st_ino));
            for (name, _) in read_names(&src).map_err(|e| from_errno(from, e))? {
                let n = name.to_string_lossy();
                self.copy_entry(
                    (&src, &name, &path::child(from, &n)),
                    (&dst, &name, &path::child(to, &n)),
                    depth + 1,
                    state,
                )?;
            }
            fchmod(&dst, Mode::from_bits_truncate(st.st_mode & PERMS))
                .map_err(|e| from_errno(to, e))
        } else if kind == SFlag::S_IFLNK {
            let target = readlinkat(src_dir, src_name).map_err(|e| from_errno(from, e))?;
            symlinkat(target.as_os_str(), dst_dir, dst_name).map_err(|e| from_errno(to, e))?;
            state.made_top |= top;
            Ok(())
        } else if kind == SFlag::S_IFREG {
            let src = openat(
                src_dir,
                src_name,
                OFlag::O_RDONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_NONBLOCK
                    | OFlag::O_NOCTTY
                    | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| from_errno(from, e))?;
            let src_st = fstat(&src).map_err(|e| from_errno(from, e))?;
            self.check_regular(&src_st, from)?;
            let dst = openat(
                dst_dir,
                dst_name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_NOCTTY
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| from_errno(to, e))?;
            state.made_top |= top;
            let (mut src, mut dst) = (File::from(src), File::from(dst));
            std::io::copy(&mut src, &mut dst).map_err(|e| FsError::from_io(to, e))?;
            fchmod(&dst, Mode::from_bits_truncate(src_st.st_mode & PERMS))
                .map_err(|e| from_errno(to, e))
        } else if top {
            Err(FsError::refused(from, "not a regular file"))
        } else {
            tracing::debug!(path = from, "copy: skipped a FIFO, socket or device");
            Ok(())
        }
    }
}

/// Removes every non-directory entry of a directory; its subdirectories' names.
fn remove_files(dir: &OwnedFd, shown: &str) -> Result<Vec<CString>, FsError> {
    let mut subdirs = Vec::new();
    for (name, kind) in read_names(dir).map_err(|e| from_errno(shown, e))? {
        let is_dir = match kind {
            Some(t) => t == Type::Directory,
            None => fstatat(dir, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| file_type(st.st_mode) == SFlag::S_IFDIR),
        };
        if is_dir {
            subdirs.push(name);
            continue;
        }
        match unlinkat(dir, name.as_c_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            // a directory now
            Err(Errno::EISDIR) => subdirs.push(name),
            Err(e) => return Err(from_errno(&path::child(shown, &name.to_string_lossy()), e)),
        }
    }
    Ok(subdirs)
}

/// The names in a directory (without `.` and `..`) with their `d_type`, read through a fresh
/// open of the directory (so a walk that comes back reads it from the start).
fn read_names(dir: &OwnedFd) -> nix::Result<Vec<(CString, Option<Type>)>> {
    let mut d = Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for item in d.iter() {
        let item = item?;
        let name = item.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        names.push((name.to_owned(), item.file_type()));
    }
    Ok(names)
}

/// Opens a directory by name, never following a link.
fn open_dir(dir: &OwnedFd, name: &CStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn blocks(st: &FileStat) -> u64 {
    u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512)
}

fn cstring(name: &str, shown: &str) -> Result<CString, FsError> {
    CString::new(name).map_err(|_| FsError::invalid(shown, "the path contains a NUL byte"))
}
