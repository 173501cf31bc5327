//! Archives of a server's files: packing files and trees into tar, tar.gz, tar.zst or zip, and
//! unpacking such archives, entirely through the safe path layer ([`Root`]).
//!
//! Unpacking is where file managers of game panels went wrong before (zip-slip, symbolic and
//! hard links in archives, decompression bombs: Wings' CVE-2023-25152, CVE-2023-25168,
//! CVE-2024-27102), so [`extract`] works in two passes:
//!
//! 1. **Scan.** Every member header is read without writing anything (tar: the entries are
//!    iterated, data skipped; zip: the central directory). The whole archive is refused
//!    ([`FsError::Refused`], naming the member) when a member has an absolute name, a `..`
//!    component or a NUL byte, is a symbolic link, a hard link, a device, a FIFO or a sparse
//!    file, or when there are more members than [`ExtractLimits::max_entries`]. It is refused
//!    with [`FsError::TooLarge`] when the sizes the members declare add up to more than the
//!    byte limit (the least of [`ExtractLimits::max_total_bytes`], the free space, and
//!    [`ExtractLimits::max_ratio`] times the archive's own size, but never less than
//!    [`RATIO_ALLOWANCE`] for the ratio).
//! 2. **Write.** Directories are created one level at a time with [`Root::mkdir`] (so the ones
//!    this extraction created are known), files with [`Root::write_atomic`] (a member appears
//!    whole or not at all), and the bytes actually written are counted: past the byte limit the
//!    extraction stops with [`FsError::TooLarge`], whatever the headers declared. The members
//!    are checked again as they are written (the customer owns the archive file and may change
//!    it between the passes).
//!
//! When the write pass fails, the files and directories this extraction created are removed
//! again, so the destination is left as it was, with one exception: **a file the archive
//! replaced stays replaced** (the old content is not kept aside). Permission bits of the
//! members are kept (`& 0o777`; never setuid, setgid or sticky), owners are the server's.
//!
//! Because every write goes through the path layer, a symbolic link planted in the
//! destination (`plugins -> /etc`) is never written through: the layer reports
//! [`FsError::Escapes`] and the extraction is undone.
//!
//! Everything here is **blocking** (see the [module](super) documentation).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use chrono::{Datelike, Timelike};

use super::{path, Entry, EntryKind, FsError, Root, UPLOAD_PREFIX};

/// The formats [`compress`] writes and [`extract`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ArchiveFormat {
    /// An uncompressed tar archive (`.tar`).
    #[serde(rename = "tar")]
    Tar,
    /// A gzip-compressed tar archive (`.tar.gz`, `.tgz`).
    #[serde(rename = "tar.gz")]
    TarGz,
    /// A zstd-compressed tar archive (`.tar.zst`, `.tzst`).
    #[serde(rename = "tar.zst")]
    TarZst,
    /// A zip archive (`.zip`; members stored or deflated, zstd read too).
    #[serde(rename = "zip")]
    Zip,
}

impl ArchiveFormat {
    /// The format by its name: `tar`, `tar.gz` or `tgz`, `tar.zst` or `tzst`, `zip` (ASCII case
    /// ignored, a leading `.` allowed).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('.').to_ascii_lowercase();
        Some(match s.as_str() {
            "tar" => ArchiveFormat::Tar,
            "tar.gz" | "tgz" => ArchiveFormat::TarGz,
            "tar.zst" | "tzst" => ArchiveFormat::TarZst,
            "zip" => ArchiveFormat::Zip,
            _ => return None,
        })
    }

    /// The format by how a file name ends (`world.tar.gz`, `backup.zip`, ...; ASCII case
    /// ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        [
            (".tar.gz", ArchiveFormat::TarGz),
            (".tgz", ArchiveFormat::TarGz),
            (".tar.zst", ArchiveFormat::TarZst),
            (".tzst", ArchiveFormat::TarZst),
            (".tar", ArchiveFormat::Tar),
            (".zip", ArchiveFormat::Zip),
        ]
        .into_iter()
        .find(|(end, _)| name.ends_with(end))
        .map(|(_, f)| f)
    }

    /// The format by the first bytes of a file (gzip and zstd are taken for tar inside).
    fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(ArchiveFormat::TarGz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(ArchiveFormat::TarZst)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(ArchiveFormat::Zip)
        } else if head.get(257..262) == Some(b"ustar") {
            Some(ArchiveFormat::Tar)
        } else {
            None
        }
    }

    /// The usual name ending, without the dot: `tar`, `tar.gz`, `tar.zst`, `zip`.
    pub fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::Tar => "tar",
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::TarZst => "tar.zst",
            ArchiveFormat::Zip => "zip",
        }
    }
}

/// How much an [`extract`] may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// The most bytes of member data written (the free space of the filesystem bounds it
    /// further).
    pub max_total_bytes: u64,
    /// The most members (files, directories and the rest) an archive may have.
    pub max_entries: u64,
    /// The most bytes written per byte of the archive file (uncompressed / compressed). The
    /// first [`RATIO_ALLOWANCE`] bytes are always allowed by the ratio, so that a small archive
    /// of very compressible files (zeros, logs) still extracts; a bomb is stopped past it.
    pub max_ratio: u64,
    /// Each file is `fsync`ed as it is written (what a user's extract needs: every member that
    /// appears is whole on disk). False: the caller syncs the filesystem once at the end
    /// ([`Root::sync_fs`]) and throws everything away if anything fails before (a restore's
    /// staging directory); thousands of small files then cost no `fsync` each.
    pub sync_each: bool,
}

impl Default for ExtractLimits {
    /// 50 GiB, 100 000 members, a ratio of 200, each file synced.
    fn default() -> Self {
        ExtractLimits {
            max_total_bytes: 50 << 30,
            max_entries: 100_000,
            max_ratio: 200,
            sync_each: true,
        }
    }
}

/// What an [`extract`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractReport {
    /// Files written (new or replaced).
    pub files: u64,
    /// Directories created (members, their missing parents and the destination itself when it
    /// was missing; directories that were there already are not counted).
    pub directories: u64,
    /// Bytes of member data written.
    pub bytes: u64,
    /// Symbolic links made (only by an extraction that keeps them).
    pub links: u64,
}

/// What the ratio of [`ExtractLimits::max_ratio`] always allows, whatever the archive's size:
/// 64 MiB.
pub const RATIO_ALLOWANCE: u64 = 64 << 20;

/// The most bytes of tar metadata (headers, GNU long names, pax extensions) read for one
/// member: more is refused, so a hostile long name can't fill memory.
const MAX_TAR_METADATA: u64 = 1 << 20;
/// The deepest tree [`compress`] goes into.
const MAX_DEPTH: usize = 512;
/// The copy buffer.
const CHUNK: usize = 64 << 10;
/// The default mode of a file member without one.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// The mode the layer gives the directories it creates.
const DEFAULT_DIR_MODE: u32 = 0o755;

// ---------------------------------------------------------------------------------------------
// compress
// ---------------------------------------------------------------------------------------------

/// One thing to pack: its member name, its user path and what it is.
#[derive(Debug)]
struct Item {
    member: String,
    path: String,
    dir: bool,
    /// A symbolic link's target (only when the walk keeps links).
    link: Option<String>,
    mode: u32,
    modified: chrono::DateTime<chrono::Utc>,
}

/// What a walk packs besides directories and regular files, and what it leaves out.
struct Walk<'a> {
    /// Keep symbolic links as link members.
    links: bool,
    /// Leave out a cleaned path (`true` when it is a directory): the whole tree below it.
    skip: &'a dyn Fn(&str, bool) -> bool,
}

/// Nothing left out.
fn keep_all(_: &str, _: bool) -> bool {
    false
}

/// What [`pack_tree`] packed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackReport {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub directories: u64,
    /// Symbolic links.
    pub links: u64,
    /// Files left out because they changed during the walk or the layer refuses to read them
    /// (hard-linked, on another filesystem).
    pub skipped: u64,
}

/// Packs the whole data directory as a tar stream into `w` (members relative to the root,
/// directories and symbolic links kept, owners not), leaving out what `skip` names (a cleaned
/// path, and whether it is a directory: its whole tree goes) and the layer's temporary files.
/// Blocking; `w` is given back to be finished (a compressor) or flushed.
pub fn pack_tree<W: Write>(
    root: &Root,
    w: W,
    skip: &dyn Fn(&str, bool) -> bool,
) -> Result<(W, PackReport), FsError> {
    let walk = Walk { links: true, skip };
    let items = collect(root, &["/".to_owned()], "", &walk)?;
    let mut report = PackReport::default();
    let w = write_tar(root, &items, w, "/", &mut report)?;
    Ok((w, report))
}

/// Packs `paths` (files and directory trees; user paths of the server's files) into the
/// archive `dest`, written with [`Root::write_atomic`] so it appears whole or not at all.
/// Blocking.
///
/// The format is `format`, or else the one `dest`'s name tells ([`ArchiveFormat::from_name`]),
/// or else the call is [`FsError::Invalid`]. Member names are relative to the parent of each
/// given path, like Wings: packing `/world` (or `/saves/world`) gives members `world/...`;
/// packing the root `/` gives its entries as members. Two given paths with the same final
/// name are [`FsError::Invalid`].
///
/// Symbolic links, FIFOs, sockets and devices are skipped (never followed), and so are the
/// layer's temporary files (`.catalyst-upload-*`), `dest` itself, and files the layer refuses
/// to read (hard-linked, on another filesystem) or that vanish during the walk. A file that
/// grows while it is read is cut at the size it had when opened (one that shrinks is padded
/// with zeros), so the archive stays well-formed. Permission bits and modification times are
/// kept; owners are not (members belong to uid/gid 0).
pub fn compress(
    root: &Root,
    paths: &[String],
    dest: &str,
    format: Option<ArchiveFormat>,
) -> Result<Entry, FsError> {
    let dest_clean = Root::clean(dest)?;
    let dest_shown = path::shown(&dest_clean);
    let format = format
        .or_else(|| ArchiveFormat::from_name(&dest_clean))
        .ok_or_else(|| {
            FsError::invalid(
                &dest_shown,
                "unknown archive format (name it .tar, .tar.gz, .tgz, .tar.zst, .tzst or .zip, \
                 or give the format)",
            )
        })?;
    if paths.is_empty() {
        return Err(FsError::invalid(&dest_shown, "nothing to compress"));
    }
    let walk = Walk {
        links: false,
        skip: &keep_all,
    };
    let items = collect(root, paths, &dest_clean, &walk)?;
    let mut out = root.write_atomic(&dest_clean, None)?;
    let io_err = |e: io::Error| FsError::from_io(&dest_shown, e);
    {
        let w = BufWriter::with_capacity(CHUNK, out.file());
        match format {
            ArchiveFormat::Tar => {
                write_tar(root, &items, w, &dest_shown, &mut PackReport::default())?
                    .flush()
                    .map_err(io_err)?;
            }
            ArchiveFormat::TarGz => {
                let gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
                write_tar(root, &items, gz, &dest_shown, &mut PackReport::default())?
                    .finish()
                    .map_err(io_err)?
                    .flush()
                    .map_err(io_err)?;
            }
            ArchiveFormat::TarZst => {
                let zst = zstd::stream::write::Encoder::new(w, 3).map_err(io_err)?;
                write_tar(root, &items, zst, &dest_shown, &mut PackReport::default())?
                    .finish()
                    .map_err(io_err)?
                    .flush()
                    .map_err(io_err)?;
            }
            ArchiveFormat::Zip => {
                write_zip(root, &items, w, &dest_shown)?
                    .flush()
                    .map_err(io_err)?;
            }
        }
    }
    let entry = out.commit()?;
    tracing::info!(
        dest = entry.path,
        format = format.extension(),
        members = items.len(),
        bytes = entry.size,
        "archive written"
    );
    Ok(entry)
}

/// Walks the given paths: every directory and regular file to pack, parents before children.
fn collect(
    root: &Root,
    paths: &[String],
    dest_clean: &str,
    walk: &Walk<'_>,
) -> Result<Vec<Item>, FsError> {
    let mut items = Vec::new();
    let mut tops = HashSet::new();
    for given in paths {
        let clean = Root::clean(given)?;
        let shown = path::shown(&clean);
        // members are named relative to the given path's parent
        let base_len = match path::split(&clean) {
            None => 0,
            Some(("", _)) => 0,
            Some((parent, _)) => parent.len() + 1,
        };
        let top_name = clean[base_len..].to_owned();
        if !tops.insert(top_name.clone()) {
            return Err(FsError::invalid(
                &shown,
                "two of the given paths have the same name in the archive",
            ));
        }
        let top = root.stat(&clean)?;
        // the root is always a directory; below it, what the entry is (never followed)
        let mut stack: Vec<(String, usize)> = Vec::new();
        match top.kind {
            EntryKind::Directory => {
                if !clean.is_empty() {
                    items.push(item(&top, &clean, base_len, true));
                }
                stack.push((clean.clone(), 0));
            }
            EntryKind::File => {
                if skipped_file(&clean, dest_clean) {
                    continue;
                }
                items.push(item(&top, &clean, base_len, false));
            }
            EntryKind::Symlink if walk.links && !clean.is_empty() => {
                if let Some(it) = link_item(root, &top, &clean, base_len) {
                    items.push(it);
                }
            }
            EntryKind::Symlink | EntryKind::Other => {
                tracing::debug!(path = shown, "compress: skipped a link or special file");
            }
        }
        while let Some((dir, depth)) = stack.pop() {
            if depth >= MAX_DEPTH {
                return Err(FsError::refused(
                    &path::shown(&dir),
                    "the directory tree is too deep",
                ));
            }
            let listing = match root.list(&dir, None, 0) {
                Ok(l) => l,
                // vanished, or swapped for a link that leads outside, since it was listed
                Err(FsError::NotFound { .. } | FsError::Escapes { .. }) if depth > 0 => continue,
                Err(e) => return Err(e),
            };
            for e in listing.items {
                let child = Root::clean(&e.path)?;
                if (walk.skip)(&child, e.kind == EntryKind::Directory) {
                    continue;
                }
                match e.kind {
                    EntryKind::Directory => {
                        items.push(item(&e, &child, base_len, true));
                        stack.push((child, depth + 1));
                    }
                    EntryKind::File if !skipped_file(&child, dest_clean) => {
                        items.push(item(&e, &child, base_len, false));
                    }
                    EntryKind::Symlink if walk.links => {
                        if let Some(it) = link_item(root, &e, &child, base_len) {
                            items.push(it);
                        }
                    }
                    _ => tracing::debug!(path = e.path, "compress: skipped"),
                }
            }
        }
    }
    Ok(items)
}

fn item(e: &Entry, clean: &str, base_len: usize, dir: bool) -> Item {
    Item {
        member: clean[base_len..].to_owned(),
        path: clean.to_owned(),
        dir,
        link: None,
        mode: e.mode & 0o777,
        modified: e.modified,
    }
}

/// A symbolic link to pack, with its target; None when it vanished or changed meanwhile.
fn link_item(root: &Root, e: &Entry, clean: &str, base_len: usize) -> Option<Item> {
    match root.read_link(clean) {
        Ok(target) => Some(Item {
            link: Some(target),
            mode: 0o777,
            ..item(e, clean, base_len, false)
        }),
        Err(e) => {
            tracing::debug!(path = clean, error = %e, "pack: skipped a link that changed");
            None
        }
    }
}

/// The layer's temporary files and the archive being written are never packed.
fn skipped_file(clean: &str, dest_clean: &str) -> bool {
    let name = path::split(clean).map_or("", |(_, n)| n);
    clean == dest_clean || name.starts_with(UPLOAD_PREFIX)
}

/// Opens a file to pack: the file and its size when opened, or None when it is to be skipped
/// (vanished, or refused by the layer: a link or special file swapped in, hard-linked).
fn open_member(root: &Root, item: &Item) -> Result<Option<(File, u64)>, FsError> {
    match root.open_read(&item.path) {
        Ok((f, e)) => Ok(Some((f, e.size))),
        Err(FsError::NotFound { .. } | FsError::Refused { .. } | FsError::Escapes { .. }) => {
            tracing::debug!(path = item.path, "compress: skipped a file that changed");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Exactly `size` bytes of a file: cut when it grew, padded with zeros when it shrank.
fn exact(file: File, size: u64) -> impl Read {
    file.take(size).chain(io::repeat(0)).take(size)
}

fn write_tar<W: Write>(
    root: &Root,
    items: &[Item],
    w: W,
    dest_shown: &str,
    report: &mut PackReport,
) -> Result<W, FsError> {
    let mut b = tar::Builder::new(w);
    for it in items {
        let shown = path::shown(&it.path);
        let err = |e: io::Error| FsError::from_io(&shown, e);
        let mut h = tar::Header::new_gnu();
        h.set_mode(it.mode);
        h.set_mtime(u64::try_from(it.modified.timestamp()).unwrap_or(0));
        h.set_uid(0);
        h.set_gid(0);
        if it.dir {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{}/", it.member), io::empty())
                .map_err(err)?;
            report.directories += 1;
        } else if let Some(target) = &it.link {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &it.member, target).map_err(err)?;
            report.links += 1;
        } else {
            let Some((file, size)) = open_member(root, it)? else {
                report.skipped += 1;
                continue;
            };
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            b.append_data(&mut h, &it.member, exact(file, size))
                .map_err(err)?;
            report.files += 1;
        }
    }
    b.into_inner().map_err(|e| FsError::from_io(dest_shown, e))
}

fn write_zip<W: Write + Seek>(
    root: &Root,
    items: &[Item],
    w: W,
    dest_shown: &str,
) -> Result<W, FsError> {
    use zip::write::SimpleFileOptions;
    let mut z = zip::ZipWriter::new(w);
    let zerr = |shown: &str, e: zip::result::ZipError| match e {
        zip::result::ZipError::Io(e) => FsError::from_io(shown, e),
        e => FsError::other(shown, &e.to_string()),
    };
    for it in items {
        let shown = path::shown(&it.path);
        let opts = SimpleFileOptions::default()
            .unix_permissions(it.mode)
            .last_modified_time(zip_time(&it.modified));
        if it.dir {
            z.add_directory(format!("{}/", it.member), opts)
                .map_err(|e| zerr(&shown, e))?;
            continue;
        }
        let Some((file, size)) = open_member(root, it)? else {
            continue;
        };
        let opts = opts
            .compression_method(zip::CompressionMethod::Deflated)
            // deflate may grow incompressible data a little: zip64 well before 4 GiB
            .large_file(size >= (1 << 32) - (1 << 26));
        z.start_file(it.member.as_str(), opts)
            .map_err(|e| zerr(&shown, e))?;
        io::copy(&mut exact(file, size), &mut z).map_err(|e| FsError::from_io(&shown, e))?;
    }
    z.finish().map_err(|e| zerr(dest_shown, e))
}

/// A zip timestamp (1980..=2107, two-second resolution); 1980-01-01 outside that range.
fn zip_time(t: &chrono::DateTime<chrono::Utc>) -> zip::DateTime {
    let (y, mo, d) = (t.year(), t.month(), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    u16::try_from(y)
        .ok()
        .and_then(|y| {
            zip::DateTime::from_date_and_time(y, mo as u8, d as u8, h as u8, mi as u8, s as u8).ok()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// extract
// ---------------------------------------------------------------------------------------------

/// What a member is, once its header is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    /// A regular file: its cleaned name (relative to the destination), permission bits and
    /// declared size.
    File { name: String, mode: u32, size: u64 },
    /// A directory ("" for the destination itself).
    Dir { name: String, mode: u32 },
    /// A symbolic link (only when the extraction keeps links): made after every other member,
    /// so no member is ever written through a link of the archive.
    Link { name: String, target: String },
    /// Metadata without a file of its own (a pax global header): not extracted, not counted.
    Meta,
}

/// Unpacks the archive at `archive` into the directory `dest` (created, with its missing
/// parents, when missing) and says what it wrote. Blocking.
///
/// The format is told by the file's first bytes (gzip, zstd, zip, ustar), else by its name.
/// See the [module](self) documentation for the two passes, the refusals and the limits:
/// a hostile archive is [`FsError::Refused`] (403) before anything is written, one that
/// declares or expands to too much is [`FsError::TooLarge`] (413), a full disk or quota is
/// [`FsError::NoSpace`] (507), a corrupt one [`FsError::Invalid`] (400). After a failure in
/// the write pass the files and directories it created are removed; files it replaced stay
/// replaced.
pub fn extract(
    root: &Root,
    archive: &str,
    dest: &str,
    limits: &ExtractLimits,
) -> Result<ExtractReport, FsError> {
    let archive_clean = Root::clean(archive)?;
    let (file, meta) = root.open_read(&archive_clean)?;
    extract_file(
        root,
        file,
        meta.size,
        &archive_clean,
        dest,
        limits,
        Links::Refused,
    )
}

/// Whether an extraction refuses symbolic link members or makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A link member refuses the whole archive (the file manager's extract).
    Refused,
    /// Links are made, after every other member (a restore of a backup that kept them).
    Made,
}

/// As [`extract`], from an archive file opened by the caller (`size` bytes; `name` is its
/// user-facing name, for errors and to tell the format when its first bytes don't), with
/// symbolic link members refused or made as `links` says. Blocking.
pub fn extract_file(
    root: &Root,
    mut file: File,
    size: u64,
    name: &str,
    dest: &str,
    limits: &ExtractLimits,
    links: Links,
) -> Result<ExtractReport, FsError> {
    let archive_shown = path::shown(name.trim_start_matches('/'));
    let dest_clean = Root::clean(dest)?;
    let mut head = [0u8; 512];
    let n = read_up_to(&mut file, &mut head).map_err(|e| FsError::from_io(&archive_shown, e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| FsError::from_io(&archive_shown, e))?;
    let format = ArchiveFormat::sniff(&head[..n])
        .or_else(|| ArchiveFormat::from_name(name))
        .ok_or_else(|| FsError::invalid(&archive_shown, "not an archive of a known format"))?;
    let free = root.space()?.free;
    let by_ratio = limits.max_ratio.saturating_mul(size).max(RATIO_ALLOWANCE);
    let limit = limits.max_total_bytes.min(free).min(by_ratio);
    let mut x = Extraction {
        root,
        archive: archive_shown,
        dest: dest_clean,
        limits: *limits,
        links,
        limit,
        total: 0,
        report: ExtractReport::default(),
        created_files: Vec::new(),
        created_dirs: Vec::new(),
        known_dirs: HashSet::new(),
        dir_modes: HashMap::new(),
        pending_links: Vec::new(),
    };
    tracing::debug!(
        archive = x.archive,
        format = format.extension(),
        limit,
        free,
        by_ratio,
        "extracting"
    );
    let result = match format {
        ArchiveFormat::Zip => x.zip(file),
        tar_format => x.tar(&file, tar_format),
    }
    .and_then(|()| x.make_links())
    .and_then(|()| x.apply_dir_modes());
    match result {
        Ok(()) => {
            tracing::info!(
                archive = x.archive,
                dest = path::shown(&x.dest),
                files = x.report.files,
                directories = x.report.directories,
                bytes = x.report.bytes,
                "archive extracted"
            );
            Ok(x.report)
        }
        Err(e) => {
            tracing::warn!(archive = x.archive, error = %e, "extraction failed");
            x.undo();
            Err(e)
        }
    }
}

/// Reads until `buf` is full or the end of the file; how much was read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// One extraction's state: the limit, what it wrote, what it created (to undo it).
struct Extraction<'a> {
    root: &'a Root,
    /// The archive's user path, for errors.
    archive: String,
    /// The destination, cleaned.
    dest: String,
    limits: ExtractLimits,
    /// Link members refused or made.
    links: Links,
    /// The most bytes to write: the least of the limit, the free space and the ratio.
    limit: u64,
    /// Bytes written so far.
    total: u64,
    report: ExtractReport,
    /// Cleaned paths of the files this extraction created (not the ones it replaced).
    created_files: Vec<String>,
    /// Cleaned paths of the directories this extraction created, parents first.
    created_dirs: Vec<String>,
    /// Cleaned paths known to be directories (or in the way as something the layer resolves).
    known_dirs: HashSet<String>,
    /// The archive's modes of the directories it names.
    dir_modes: HashMap<String, u32>,
    /// Link members to make once every other member is written: (cleaned path, target).
    pending_links: Vec<(String, String)>,
}

impl Extraction<'_> {
    fn refused(&self, member: &str, why: &str) -> FsError {
        FsError::Refused {
            path: self.archive.clone(),
            why: format!("member {member:?}: {why}"),
        }
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> FsError {
        FsError::invalid(&self.archive, &format!("not a valid archive: {e}"))
    }

    fn too_large(&self) -> FsError {
        FsError::TooLarge {
            path: self.archive.clone(),
            limit: self.limit,
        }
    }

    fn too_many(&self) -> FsError {
        FsError::refused(
            &self.archive,
            &format!("more than {} members", self.limits.max_entries),
        )
    }

    /// The cleaned path of a member under the destination.
    fn target(&self, name: &str) -> String {
        match (self.dest.is_empty(), name.is_empty()) {
            (_, true) => self.dest.clone(),
            (true, false) => name.to_owned(),
            (false, false) => format!("{}/{name}", self.dest),
        }
    }

    /// The checks of the scan, for one member (the write pass repeats them): counted, and its
    /// declared size added.
    fn admit(&self, m: &Member, count: &mut u64, declared: &mut u64) -> Result<(), FsError> {
        if *m == Member::Meta {
            return Ok(());
        }
        *count += 1;
        if *count > self.limits.max_entries {
            return Err(self.too_many());
        }
        if let Member::File { size, .. } = m {
            *declared = declared.saturating_add(*size);
            if *declared > self.limit {
                tracing::warn!(
                    archive = self.archive,
                    declared = *declared,
                    limit = self.limit,
                    "archive declares more than it may write"
                );
                return Err(self.too_large());
            }
        }
        Ok(())
    }

    // ---- tar -------------------------------------------------------------------------------

    /// A fresh tar reader over the archive file from its start (decompressed as the format
    /// says), with the metadata meter between the decompressor and the tar parser.
    fn tar_reader<'f>(
        &self,
        mut file: &'f File,
        format: ArchiveFormat,
        meter: &Rc<Meter>,
    ) -> Result<tar::Archive<Metered<Box<dyn Read + 'f>>>, FsError> {
        file.seek(SeekFrom::Start(0))
            .map_err(|e| FsError::from_io(&self.archive, e))?;
        let buf = BufReader::with_capacity(CHUNK, file);
        let inner: Box<dyn Read + 'f> = match format {
            ArchiveFormat::TarGz => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
            ArchiveFormat::TarZst => Box::new(
                zstd::stream::read::Decoder::with_buffer(buf).map_err(|e| self.corrupt(e))?,
            ),
            _ => Box::new(buf),
        };
        meter.pos.set(0);
        meter.limit.set(MAX_TAR_METADATA);
        meter.tripped.set(false);
        let mut a = tar::Archive::new(Metered {
            inner,
            meter: meter.clone(),
        });
        a.set_ignore_zeros(false);
        Ok(a)
    }

    fn tar(&mut self, file: &File, format: ArchiveFormat) -> Result<(), FsError> {
        let meter = Rc::new(Meter::default());
        // pass 1: headers only
        {
            let mut a = self.tar_reader(file, format, &meter)?;
            let (mut count, mut declared) = (0, 0);
            let mut entries = a.entries().map_err(|e| self.corrupt(e))?;
            while let Some(entry) = self.next_tar(&mut entries, &meter)? {
                let m = self.tar_member(&entry)?;
                self.admit(&m, &mut count, &mut declared)?;
            }
        }
        // pass 2: write, checking again
        let dest = self.dest.clone();
        self.ensure_dir(&dest)?;
        let mut a = self.tar_reader(file, format, &meter)?;
        let (mut count, mut declared) = (0, 0);
        let mut entries = a.entries().map_err(|e| self.corrupt(e))?;
        while let Some(mut entry) = self.next_tar(&mut entries, &meter)? {
            let m = self.tar_member(&entry)?;
            self.admit(&m, &mut count, &mut declared)?;
            self.write_member(&m, &mut entry)?;
        }
        Ok(())
    }

    /// The next tar entry, with the meter set for what reading past it may take.
    fn next_tar<'e, R: Read>(
        &self,
        entries: &mut tar::Entries<'e, R>,
        meter: &Meter,
    ) -> Result<Option<tar::Entry<'e, R>>, FsError> {
        match entries.next() {
            None => Ok(None),
            Some(Ok(entry)) => {
                // skipping this entry's data (padded) and reading the next headers
                let padded = entry.size().saturating_add(511) & !511;
                meter.limit.set(
                    meter
                        .pos
                        .get()
                        .saturating_add(padded)
                        .saturating_add(MAX_TAR_METADATA),
                );
                Ok(Some(entry))
            }
            Some(Err(_)) if meter.tripped.get() => Err(FsError::refused(
                &self.archive,
                "a member's headers (long name, pax extensions) are too large",
            )),
            Some(Err(e)) => Err(self.corrupt(e)),
        }
    }

    fn tar_member<R: Read>(&self, entry: &tar::Entry<'_, R>) -> Result<Member, FsError> {
        use tar::EntryType as T;
        let raw = entry.path_bytes();
        let shown = String::from_utf8_lossy(&raw).replace('\0', "\\0");
        let name = std::str::from_utf8(&raw)
            .map_err(|_| self.refused(&shown, "the name is not UTF-8"))
            .and_then(|n| check_name(n).map_err(|why| self.refused(&shown, why)))?;
        let header = entry.header();
        let mode = header.mode().ok().map(|m| m & 0o777);
        match header.entry_type() {
            T::Regular | T::Continuous if name.is_empty() => {
                Err(self.refused(&shown, "a file without a name"))
            }
            T::Regular | T::Continuous => Ok(Member::File {
                name,
                mode: mode.unwrap_or(DEFAULT_FILE_MODE),
                size: entry.size(),
            }),
            T::Directory => Ok(Member::Dir {
                name,
                mode: mode.unwrap_or(DEFAULT_DIR_MODE),
            }),
            T::XGlobalHeader => Ok(Member::Meta),
            T::Symlink if self.links == Links::Made && !name.is_empty() => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.refused(&shown, "a link without a target"))?;
                let target = std::str::from_utf8(&target)
                    .map_err(|_| self.refused(&shown, "the link's target is not UTF-8"))?;
                if target.is_empty() || target.contains('\0') || target.len() > 4095 {
                    return Err(self.refused(&shown, "not a valid link target"));
                }
                Ok(Member::Link {
                    name,
                    target: target.to_owned(),
                })
            }
            T::Symlink => Err(self.refused(&shown, &format!("a symbolic link{}", to(entry)))),
            T::Link => Err(self.refused(&shown, &format!("a hard link{}", to(entry)))),
            T::Char | T::Block => Err(self.refused(&shown, "a device")),
            T::Fifo => Err(self.refused(&shown, "a FIFO")),
            T::GNUSparse => Err(self.refused(&shown, "a sparse file (not supported)")),
            _ => Err(self.refused(&shown, "an unsupported member type")),
        }
    }

    // ---- zip -------------------------------------------------------------------------------

    fn zip(&mut self, mut file: File) -> Result<(), FsError> {
        // the central directory's own count, before the zip reader holds every entry in memory
        if let Some(n) = zip_declared_entries(&mut file) {
            if n > self.limits.max_entries {
                return Err(self.too_many());
            }
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| FsError::from_io(&self.archive, e))?;
        let mut z = zip::ZipArchive::new(BufReader::with_capacity(CHUNK, file))
            .map_err(|e| self.corrupt(e))?;
        if z.len() as u64 > self.limits.max_entries {
            return Err(self.too_many());
        }
        // pass 1: the central directory
        let (mut count, mut declared) = (0, 0);
        for i in 0..z.len() {
            let f = z.by_index_raw(i).map_err(|e| self.corrupt(e))?;
            let m = self.zip_member(&f)?;
            self.admit(&m, &mut count, &mut declared)?;
        }
        // pass 2: write, checking again
        let dest = self.dest.clone();
        self.ensure_dir(&dest)?;
        let (mut count, mut declared) = (0, 0);
        for i in 0..z.len() {
            let m = {
                let f = z.by_index_raw(i).map_err(|e| self.corrupt(e))?;
                self.zip_member(&f)?
            };
            self.admit(&m, &mut count, &mut declared)?;
            match &m {
                Member::File { .. } => {
                    let mut f = z.by_index(i).map_err(|e| self.corrupt(e))?;
                    self.write_member(&m, &mut f)?;
                }
                _ => self.write_member(&m, &mut io::empty())?,
            }
        }
        Ok(())
    }

    fn zip_member<R: Read + ?Sized>(
        &self,
        f: &zip::read::ZipFile<'_, R>,
    ) -> Result<Member, FsError> {
        const S_IFMT: u32 = 0o170_000;
        const S_IFDIR: u32 = 0o040_000;
        const S_IFREG: u32 = 0o100_000;
        const S_IFLNK: u32 = 0o120_000;
        // Windows tools write `\`; on Linux it would be a plain character of the name
        let shown = f.name().replace('\0', "\\0");
        let raw = f.name().replace('\\', "/");
        let name = check_name(&raw).map_err(|why| self.refused(&shown, why))?;
        if f.encrypted() {
            return Err(self.refused(&shown, "encrypted"));
        }
        let unix = f.unix_mode();
        let kind = unix.map_or(0, |m| m & S_IFMT);
        let is_dir = raw.ends_with('/') || kind == S_IFDIR;
        match kind {
            0 | S_IFDIR | S_IFREG => {}
            S_IFLNK => return Err(self.refused(&shown, "a symbolic link")),
            _ => return Err(self.refused(&shown, "a device, FIFO or socket")),
        }
        if is_dir {
            return Ok(Member::Dir {
                name,
                mode: unix.map_or(DEFAULT_DIR_MODE, |m| m & 0o777),
            });
        }
        if name.is_empty() {
            return Err(self.refused(&shown, "a file without a name"));
        }
        match f.compression() {
            zip::CompressionMethod::Stored
            | zip::CompressionMethod::Deflated
            | zip::CompressionMethod::Zstd => {}
            other => {
                return Err(self.refused(&shown, &format!("unsupported compression {other}")));
            }
        }
        Ok(Member::File {
            name,
            mode: unix.map_or(DEFAULT_FILE_MODE, |m| m & 0o777),
            size: f.size(),
        })
    }

    // ---- writing ---------------------------------------------------------------------------

    fn write_member(&mut self, m: &Member, data: &mut dyn Read) -> Result<(), FsError> {
        match m {
            Member::Meta => Ok(()),
            Member::Dir { name, mode } => {
                let target = self.target(name);
                self.ensure_dir(&target)?;
                if !name.is_empty() {
                    self.dir_modes.insert(target, *mode);
                }
                Ok(())
            }
            Member::File { name, mode, .. } => {
                let target = self.target(name);
                if let Some((parent, _)) = path::split(&target) {
                    self.ensure_dir(parent)?;
                }
                self.write_file(&target, *mode, data)
            }
            Member::Link { name, target } => {
                let at = self.target(name);
                if let Some((parent, _)) = path::split(&at) {
                    self.ensure_dir(parent)?;
                }
                self.pending_links.push((at, target.clone()));
                Ok(())
            }
        }
    }

    /// Makes the link members, once every other member is written: no member was written
    /// through one of them.
    fn make_links(&mut self) -> Result<(), FsError> {
        for (at, target) in std::mem::take(&mut self.pending_links) {
            self.root.symlink(&target, &at)?;
            self.created_files.push(at);
            self.report.links += 1;
        }
        Ok(())
    }

    /// Creates a directory and its missing parents, one level at a time, remembering the ones
    /// it created. Something in the way that is not a directory is [`FsError::NotADirectory`];
    /// a symbolic link is left to the layer (followed while it stays inside, else
    /// [`FsError::Escapes`] when written through).
    fn ensure_dir(&mut self, clean: &str) -> Result<(), FsError> {
        if clean.is_empty() || self.known_dirs.contains(clean) {
            return Ok(());
        }
        if let Some((parent, _)) = path::split(clean) {
            self.ensure_dir(parent)?;
        }
        match self.root.mkdir(clean) {
            Ok(()) => {
                self.created_dirs.push(clean.to_owned());
                self.report.directories += 1;
            }
            Err(FsError::Exists { .. }) => match self.root.stat(clean)?.kind {
                EntryKind::Directory | EntryKind::Symlink => {}
                EntryKind::File | EntryKind::Other => {
                    return Err(FsError::NotADirectory {
                        path: path::shown(clean),
                    });
                }
            },
            Err(e) => return Err(e),
        }
        self.known_dirs.insert(clean.to_owned());
        Ok(())
    }

    /// Writes one file atomically, counting the bytes against the limit.
    fn write_file(&mut self, target: &str, mode: u32, data: &mut dyn Read) -> Result<(), FsError> {
        let shown = path::shown(target);
        let existed = match self.root.stat(target) {
            Ok(_) => true,
            Err(FsError::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        let mut out = self.root.write_atomic(target, Some(mode))?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.corrupt(e)),
            };
            self.total = self.total.saturating_add(n as u64);
            if self.total > self.limit {
                tracing::warn!(
                    archive = self.archive,
                    limit = self.limit,
                    member = shown,
                    "archive expands to more than it may write"
                );
                return Err(self.too_large());
            }
            out.write_all(&buf[..n])
                .map_err(|e| FsError::from_io(&shown, e))?;
        }
        if self.limits.sync_each {
            out.commit()?;
        } else {
            out.commit_unsynced()?;
        }
        // (a name written twice by one archive existed the second time)
        if !existed {
            self.created_files.push(target.to_owned());
        }
        self.report.files += 1;
        self.report.bytes = self.total;
        Ok(())
    }

    /// Gives the directories this extraction created the modes the archive names, deepest
    /// first (so a mode without `x` does not lock out the ones below).
    fn apply_dir_modes(&mut self) -> Result<(), FsError> {
        for dir in self.created_dirs.iter().rev() {
            if let Some(&mode) = self.dir_modes.get(dir) {
                if mode != DEFAULT_DIR_MODE {
                    self.root.chmod(dir, mode)?;
                }
            }
        }
        Ok(())
    }

    /// Removes what this extraction created: files, then directories deepest first (only
    /// when empty: what someone else put there meanwhile stays).
    fn undo(&mut self) {
        for f in self.created_files.drain(..).rev() {
            match self.root.remove(&f, false) {
                Ok(()) | Err(FsError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not remove a file of a failed extraction")
                }
            }
        }
        for d in self.created_dirs.drain(..).rev() {
            match self.root.remove(&d, false) {
                Ok(()) | Err(FsError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not remove a directory of a failed extraction")
                }
            }
        }
    }
}

/// ` to "target"` of a tar link member, for messages.
fn to<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    match entry.link_name_bytes() {
        Some(t) => format!(" to {:?}", String::from_utf8_lossy(&t)),
        None => String::new(),
    }
}

/// Checks a member's name and cleans it: relative to the destination, without `.` or empty
/// components; `""` for the destination itself. Refused: a NUL byte, an absolute name, a
/// `..` component, a component over 255 bytes.
fn check_name(raw: &str) -> Result<String, &'static str> {
    if raw.contains('\0') {
        return Err("the name contains a NUL byte");
    }
    if raw.starts_with('/') {
        return Err("an absolute name");
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("a `..` component"),
            p if p.len() > 255 => return Err("a name longer than 255 bytes"),
            p => parts.push(p),
        }
    }
    let name = parts.join("/");
    if name.len() > 4095 {
        return Err("the name is too long");
    }
    Ok(name)
}

/// How many members a zip's end of central directory record (or its zip64 record) declares,
/// when it can be found.
fn zip_declared_entries(file: &mut File) -> Option<u64> {
    const EOCD: &[u8; 4] = b"PK\x05\x06";
    const LOCATOR: &[u8; 4] = b"PK\x06\x07";
    const EOCD64: &[u8; 4] = b"PK\x06\x06";
    let len = file.seek(SeekFrom::End(0)).ok()?;
    let tail_len = len.min(22 + 65_535);
    let start = len - tail_len;
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = vec![0u8; usize::try_from(tail_len).ok()?];
    file.read_exact(&mut tail).ok()?;
    let pos = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| &tail[i..i + 4] == EOCD)?;
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let entries = u16_at(&tail, pos + 10);
    if entries != 0xffff {
        return Some(u64::from(entries));
    }
    // zip64: the locator is just before the record
    let loc = pos.checked_sub(20)?;
    if &tail[loc..loc + 4] != LOCATOR {
        return None;
    }
    let off = u64::from_le_bytes(tail[loc + 8..loc + 16].try_into().ok()?);
    file.seek(SeekFrom::Start(off)).ok()?;
    let mut rec = [0u8; 56];
    file.read_exact(&mut rec).ok()?;
    if &rec[..4] != EOCD64 {
        return None;
    }
    Some(u64::from_le_bytes(rec[32..40].try_into().ok()?))
}

/// How far the tar parser may read: decompressed bytes so far and the position it may not
/// pass (the current member's data, padded, and [`MAX_TAR_METADATA`] of headers after it).
#[derive(Debug, Default)]
struct Meter {
    pos: Cell<u64>,
    limit: Cell<u64>,
    tripped: Cell<bool>,
}

/// A reader that stops at its [`Meter`]'s limit.
struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (pos, limit) = (self.meter.pos.get(), self.meter.limit.get());
        if pos >= limit {
            if buf.is_empty() {
                return Ok(0);
            }
            self.meter.tripped.set(true);
            return Err(io::Error::other("tar metadata over the limit"));
        }
        let room = usize::try_from(limit - pos).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = self.inner.read(&mut buf[..want])?;
        self.meter.pos.set(pos + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
