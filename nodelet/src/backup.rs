//! Backups of servers' data directories, kept on this node under `<data-dir>/backups`.
//!
//! A backup is a tar stream of the whole data directory, compressed with zstd as it is
//! written, hashed (SHA-256) and counted on its way to the disk: nothing is held whole in
//! memory. Files are read through the safe path layer ([`Root`]) as the server's own uid, the
//! tree is walked without following links (links are kept as links), and what the
//! server's ignore files (`.catalystignore`, else `.pteroignore`, gitignore syntax) and the
//! Backup's own patterns name is left out. The archive is written to a `.part` file and
//! renamed into place when complete.
//!
//! A restore checks the archive's SHA-256 against the one the Backup recorded, unpacks it
//! into a staging directory inside the server's disk with every check of the file manager's
//! extract (no absolute names, no `..`, no hard links or devices, links made last and never
//! written through), and only then swaps it in: with `truncate`, everything that was there
//! goes; without it, what the backup holds replaces what is there and the rest stays. What
//! was replaced is moved aside first and removed at the end, so a failure before the swap
//! leaves the data directory as it was.
//!
//! Everything here is **blocking**.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use sha2::{Digest, Sha256};

use crate::files::archive::{self, ExtractLimits, ExtractReport, Links, PackReport};
use crate::files::{EntryKind, FsError, Root};

/// The ignore files read from the root of a data directory, the first one found wins.
pub const IGNORE_FILES: [&str; 2] = [".catalystignore", ".pteroignore"];
/// The most bytes of an ignore file read.
const IGNORE_FILE_BYTES: u64 = 64 << 10;
/// The most patterns a backup may have in all.
const MAX_PATTERNS: usize = 4096;
/// Prefix of the staging directory of a restore, inside the data directory.
pub const STAGING_PREFIX: &str = ".catalyst-restore-";
/// Prefix of the directory a restore moves replaced entries into.
pub const ASIDE_PREFIX: &str = ".catalyst-aside-";
/// How often (in archive bytes) progress is told.
const PROGRESS_EVERY: u64 = 4 << 20;
/// The zstd level: fast, and about what `tar --zstd` uses.
const ZSTD_LEVEL: i32 = 3;

/// What went wrong with a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A server or backup id that is not a plain name.
    #[error("{0:?} is not a valid id")]
    BadId(String),
    /// No such archive on this node.
    #[error("backup {0} is not on this node")]
    NotFound(String),
    /// An ignore pattern gitignore cannot read, or too many.
    #[error("ignore pattern {pattern:?}: {why}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        why: String,
    },
    /// The archive is not the one the Backup recorded.
    #[error("backup {id}: the archive's SHA-256 is {actual}, the Backup recorded {expected}")]
    Checksum {
        /// The backup.
        id: String,
        /// What the Backup says.
        expected: String,
        /// What the archive has.
        actual: String,
    },
    /// The node cannot do it now, or not with what it was given.
    #[error("{0}")]
    Busy(String),
    /// The server's files refused or failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The S3 endpoint is not allowed (not public, nor allowed by the operator); `why`
    /// names the object.
    #[error("{why}")]
    S3Refused {
        /// `s3://bucket/key`.
        object: String,
        /// Why.
        why: String,
    },
    /// The S3 store refused or failed.
    #[error("{object}: {why}")]
    S3 {
        /// `s3://bucket/key`.
        object: String,
        /// What it answered (never the credentials).
        why: String,
    },
    /// The node's backup directory failed.
    #[error("backup {id}: {source}")]
    Io {
        /// The backup.
        id: String,
        /// The error.
        source: io::Error,
    },
}

impl BackupError {
    /// The HTTP status the failure maps to.
    pub fn status(&self) -> u16 {
        match self {
            BackupError::BadId(_) | BackupError::Pattern { .. } => 400,
            BackupError::NotFound(_) => 404,
            BackupError::Checksum { .. } | BackupError::Busy(_) => 409,
            BackupError::S3Refused { .. } => 403,
            BackupError::S3 { .. } => 502,
            BackupError::Fs(e) => e.status(),
            BackupError::Io { source, .. } if source.raw_os_error() == Some(28) => 507,
            BackupError::Io { .. } => 500,
        }
    }
}

/// A finished backup archive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Made {
    /// Bytes of the archive.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// What went in.
    #[serde(flatten)]
    pub report: PackReport,
}

/// The node's backup archives: `<dir>/<server uid>/<backup uid>.tar.zst`.
#[derive(Debug, Clone)]
pub struct Backups {
    dir: PathBuf,
}

impl Backups {
    /// An id is a plain name: 1 to 64 of ASCII letters, digits, `-` and `_`.
    pub fn check_id(id: &str) -> Result<(), BackupError> {
        check_id(id)
    }
}

/// An id is a plain name: 1 to 64 of ASCII letters, digits, `-` and `_`.
fn check_id(id: &str) -> Result<(), BackupError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BackupError::BadId(id.to_owned()))
    }
}

impl Backups {
    /// The backups under `dir` (the nodelet's `<data-dir>/backups`).
    pub fn new(dir: &Path) -> Backups {
        Backups {
            dir: dir.to_owned(),
        }
    }

    /// Where backup `id` of server `server` is (whether it exists or not).
    pub fn archive_path(&self, server: &str, id: &str) -> Result<PathBuf, BackupError> {
        check_id(server)?;
        check_id(id)?;
        Ok(self.dir.join(server).join(format!("{id}.tar.zst")))
    }

    /// Packs the data directory `root` of `server` into backup `id`, leaving out what the
    /// ignore files and `patterns` name (`None`: everything goes in, as a transfer needs);
    /// `progress` hears the archive's bytes so far. An archive of that id already there is
    /// replaced.
    pub fn create(
        &self,
        root: &Root,
        server: &str,
        id: &str,
        patterns: Option<&[String]>,
        progress: &dyn Fn(u64),
    ) -> Result<Made, BackupError> {
        let path = self.archive_path(server, id)?;
        let io_err = |source| BackupError::Io {
            id: id.to_owned(),
            source,
        };
        let ignore = match patterns {
            Some(p) => ignore_matcher(root, p)?,
            None => Gitignore::empty(),
        };
        let skip = |clean: &str, dir: bool| skipped(&ignore, clean, dir);
        let (part, file) = self.part_file(&path).map_err(io_err)?;
        let result = (|| {
            let counted = Counted::new(file, progress);
            let zst = zstd::stream::write::Encoder::new(counted, ZSTD_LEVEL).map_err(io_err)?;
            let (zst, report) = archive::pack_tree(root, zst, &skip)?;
            let mut counted = zst.finish().map_err(io_err)?;
            counted.flush().map_err(io_err)?;
            counted.inner.sync_all().map_err(io_err)?;
            let (size, sha256) = (counted.bytes, format!("{:x}", counted.hash.finalize()));
            Ok::<_, BackupError>(Made {
                size,
                sha256,
                report,
            })
        })();
        match result {
            Ok(made) => {
                std::fs::rename(&part, &path).map_err(io_err)?;
                tracing::info!(
                    server,
                    id,
                    bytes = made.size,
                    files = made.report.files,
                    "backup made"
                );
                Ok(made)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }

    /// The archive of backup `id`, opened, and its size.
    pub fn open(&self, server: &str, id: &str) -> Result<(File, u64), BackupError> {
        let path = self.archive_path(server, id)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BackupError::NotFound(id.to_owned()),
            _ => BackupError::Io {
                id: id.to_owned(),
                source: e,
            },
        })?;
        let size = file
            .metadata()
            .map_err(|source| BackupError::Io {
                id: id.to_owned(),
                source,
            })?
            .len();
        Ok((file, size))
    }

    /// The `.part` file an archive at `path` is written to first (its directories made and
    /// closed to others).
    fn part_file(&self, path: &Path) -> std::io::Result<(PathBuf, File)> {
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent)?;
        restrict(&self.dir);
        restrict(parent);
        let part = path.with_extension("zst.part");
        let file = File::create(&part)?;
        Ok((part, file))
    }

    /// Starts taking archive `id` of server `server` from elsewhere (a transfer): written to a
    /// `.part` file, kept by [`Receiving::finish`] once its size and SHA-256 are right.
    pub fn receive(&self, server: &str, id: &str) -> Result<Receiving, BackupError> {
        let path = self.archive_path(server, id)?;
        let io_err = |source| BackupError::Io {
            id: id.to_owned(),
            source,
        };
        let (part, file) = self.part_file(&path).map_err(io_err)?;
        Ok(Receiving {
            id: id.to_owned(),
            file,
            part,
            path,
            hash: Sha256::new(),
            bytes: 0,
            done: false,
        })
    }

    /// Removes backup `id` (and a `.part` of it); false when there was none.
    pub fn remove(&self, server: &str, id: &str) -> Result<bool, BackupError> {
        let path = self.archive_path(server, id)?;
        let _ = std::fs::remove_file(path.with_extension("zst.part"));
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(BackupError::Io {
                    id: id.to_owned(),
                    source,
                })
            }
        };
        // the server's directory goes with its last backup
        if let Some(parent) = path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        Ok(removed)
    }

    /// Puts backup `id` (of server `from`) back into the data directory `root`, once its
    /// SHA-256 is `sha256`; see the [module](self) documentation.
    pub fn restore(
        &self,
        root: &Root,
        from: &str,
        id: &str,
        sha256: &str,
        truncate: bool,
    ) -> Result<ExtractReport, BackupError> {
        let (mut file, size) = self.open(from, id)?;
        let actual = sha256_of(&mut file).map_err(|source| BackupError::Io {
            id: id.to_owned(),
            source,
        })?;
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(BackupError::Checksum {
                id: id.to_owned(),
                expected: sha256.to_owned(),
                actual,
            });
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|source| BackupError::Io {
                id: id.to_owned(),
                source,
            })?;
        let staging = format!("{STAGING_PREFIX}{id}");
        let aside = format!("{ASIDE_PREFIX}{id}");
        // what an interrupted restore of this backup left
        for stale in [&staging, &aside] {
            match root.remove(stale, true) {
                Ok(()) | Err(FsError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        root.mkdir(&staging)?;
        // the archive was made by a node, but it is the customer's content: every check of
        // the file manager's extract, except the ratio (a world of zeros compresses well) —
        // the disk's free space still bounds it
        // and as many members as the disk has room for; the staging directory is synced once,
        // before the swap, instead of each file (it goes whole if anything fails)
        let limits = ExtractLimits {
            max_ratio: u64::MAX,
            max_entries: u64::MAX,
            sync_each: false,
            ..ExtractLimits::default()
        };
        let report = match archive::extract_file(
            root,
            file,
            size,
            &format!("backup-{id}.tar.zst"),
            &staging,
            &limits,
            Links::Made,
        ) {
            Ok(r) => r,
            Err(e) => {
                let _ = root.remove(&staging, true);
                return Err(e.into());
            }
        };
        if let Err(e) = root.sync_fs() {
            let _ = root.remove(&staging, true);
            return Err(e.into());
        }
        root.mkdir(&aside)?;
        if let Err(e) = swap(root, &staging, &aside, truncate) {
            tracing::warn!(id, error = %e, "restore: the swap failed and was undone");
            for left in [&aside, &staging] {
                let _ = root.remove(left, true);
            }
            return Err(e.into());
        }
        for done in [&aside, &staging] {
            if let Err(e) = root.remove(done, true) {
                tracing::warn!(id, dir = done, error = %e, "restore: could not remove");
            }
        }
        tracing::info!(
            id,
            files = report.files,
            bytes = report.bytes,
            "backup restored"
        );
        Ok(report)
    }
}

/// An archive arriving from another node; its `.part` file goes unless it is finished.
#[derive(Debug)]
pub struct Receiving {
    id: String,
    file: File,
    part: PathBuf,
    path: PathBuf,
    hash: Sha256,
    bytes: u64,
    done: bool,
}

impl Receiving {
    /// Appends a chunk; refuses to grow past `size`.
    pub fn write(&mut self, chunk: &[u8], size: u64) -> Result<(), BackupError> {
        if self.bytes + chunk.len() as u64 > size {
            return Err(BackupError::Io {
                id: self.id.clone(),
                source: io::Error::other(format!("more than the {size} bytes announced")),
            });
        }
        self.file
            .write_all(chunk)
            .map_err(|source| BackupError::Io {
                id: self.id.clone(),
                source,
            })?;
        self.hash.update(chunk);
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    /// Keeps the archive if it is `size` bytes with SHA-256 `sha256`.
    pub fn finish(mut self, size: u64, sha256: &str) -> Result<Made, BackupError> {
        let actual = format!("{:x}", std::mem::take(&mut self.hash).finalize());
        if self.bytes != size || !actual.eq_ignore_ascii_case(sha256) {
            return Err(BackupError::Checksum {
                id: self.id.clone(),
                expected: format!("{sha256} ({size} bytes)"),
                actual: format!("{actual} ({} bytes)", self.bytes),
            });
        }
        let io_err = |source| BackupError::Io {
            id: self.id.clone(),
            source,
        };
        self.file.sync_all().map_err(io_err)?;
        std::fs::rename(&self.part, &self.path).map_err(io_err)?;
        self.done = true;
        Ok(Made {
            size,
            sha256: actual,
            report: PackReport::default(),
        })
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

/// Only root reads the node's backups.
fn restrict(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

/// Whether a backup leaves `clean` out: a restore's own directories, and what the ignore
/// patterns name.
fn skipped(ignore: &Gitignore, clean: &str, dir: bool) -> bool {
    if !clean.contains('/')
        && (clean.starts_with(STAGING_PREFIX) || clean.starts_with(ASIDE_PREFIX))
    {
        return true;
    }
    ignore.matched(Path::new("/").join(clean), dir).is_ignore()
}

/// The patterns of the data directory's ignore file (the first of [`IGNORE_FILES`] there)
/// and `extra`, as gitignore reads them.
pub fn ignore_matcher(root: &Root, extra: &[String]) -> Result<Gitignore, BackupError> {
    let mut lines: Vec<String> = Vec::new();
    for name in IGNORE_FILES {
        match root.open_read(name) {
            Ok((file, _)) => {
                let mut text = String::new();
                let _ = file.take(IGNORE_FILE_BYTES).read_to_string(&mut text);
                lines.extend(text.lines().map(str::to_owned));
                break;
            }
            Err(FsError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(file = name, error = %e, "backup: ignore file not read"),
        }
    }
    lines.extend(extra.iter().cloned());
    if lines.len() > MAX_PATTERNS {
        return Err(BackupError::Pattern {
            pattern: String::new(),
            why: format!("more than {MAX_PATTERNS} patterns"),
        });
    }
    let mut b = GitignoreBuilder::new("/");
    for line in &lines {
        b.add_line(None, line).map_err(|e| BackupError::Pattern {
            pattern: line.clone(),
            why: e.to_string(),
        })?;
    }
    b.build().map_err(|e| BackupError::Pattern {
        pattern: String::new(),
        why: e.to_string(),
    })
}

/// The names in a directory of the server's files.
fn names(root: &Root, dir: &str) -> Result<Vec<(String, EntryKind)>, FsError> {
    Ok(root
        .list(dir, None, 0)?
        .items
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect())
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Moves the unpacked tree `staging` into place (see [`Backups::restore`]); what it replaces
/// goes into `aside` first. When a move fails, the moves made are undone in reverse order,
/// so the data directory is as it was (and the staging tree as unpacked).
fn swap(root: &Root, staging: &str, aside: &str, truncate: bool) -> Result<(), FsError> {
    let mut done: Vec<(String, String)> = Vec::new();
    let result = swap_moves(root, staging, aside, truncate, &mut done);
    if result.is_err() {
        for (from, to) in done.iter().rev() {
            if let Err(e) = root.rename(to, from, false) {
                tracing::warn!(from = to, to = from, error = %e, "restore: could not undo a move");
            }
        }
    }
    result
}

fn swap_moves(
    root: &Root,
    staging: &str,
    aside: &str,
    truncate: bool,
    done: &mut Vec<(String, String)>,
) -> Result<(), FsError> {
    let mut aside_count = 0u64;
    let moved = |from: &str, to: &str, done: &mut Vec<(String, String)>| {
        root.rename(from, to, false)?;
        done.push((from.to_owned(), to.to_owned()));
        Ok::<(), FsError>(())
    };
    let mut put_aside = |path: &str, done: &mut Vec<(String, String)>| {
        aside_count += 1;
        moved(path, &format!("{aside}/{aside_count}"), done)
    };
    if truncate {
        for (name, _) in names(root, "")? {
            if name != staging && name != aside {
                put_aside(&name, done)?;
            }
        }
    }
    // (from, to) pairs of directories to merge, starting with the staging dir into the root
    let mut stack = vec![(staging.to_owned(), String::new())];
    while let Some((from, to)) = stack.pop() {
        for (name, kind) in names(root, &from)? {
            let src = join(&from, &name);
            let dst = join(&to, &name);
            match root.stat(&dst) {
                Err(FsError::NotFound { .. }) => root
                    .rename(&src, &dst, false)
                    .map(|()| done.push((src.clone(), dst.clone())))?,
                Ok(there) if there.kind == EntryKind::Directory && kind == EntryKind::Directory => {
                    stack.push((src, dst));
                }
                Ok(_) => {
                    put_aside(&dst, done)?;
                    root.rename(&src, &dst, false)?;
                    done.push((src, dst));
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The SHA-256 of a file from its start, hex.
fn sha256_of(file: &mut File) -> io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hash.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// A writer that hashes and counts what goes through it, telling the count now and then.
struct Counted<'p, W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
    told: u64,
    progress: &'p dyn Fn(u64),
}

impl<'p, W> Counted<'p, W> {
    fn new(inner: W, progress: &'p dyn Fn(u64)) -> Self {
        Counted {
            inner,
            hash: Sha256::new(),
            bytes: 0,
            told: 0,
            progress,
        }
    }
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        if self.bytes - self.told >= PROGRESS_EVERY {
            self.told = self.bytes;
            (self.progress)(self.bytes);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub mod s3;

#[cfg(test)]
mod tests;
