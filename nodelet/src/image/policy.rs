//! Where images may come from and how large they may be: the node's image directories (the
//! only places `oci-archive:` files are read from), the size cap, and `oci-archive:` references.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::ImageError;

/// An image directory every node has (besides `<data-dir>/images`).
pub const DEFAULT_IMAGE_DIR: &str = "/var/lib/catalyst/images";
/// The default limit of an image's layers (compressed), pulled or imported: 20 GiB.
pub const DEFAULT_MAX_PULL_BYTES: u64 = 20 << 30;

/// Where images may come from and how large they may be; the node's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePolicy {
    /// `oci-archive:` files must be regular files in one of these directories (symlinks
    /// resolved). Directories that do not exist are ignored.
    pub image_dirs: Vec<PathBuf>,
    /// The most an image's layers may weigh (as stored, compressed), pulled or imported.
    pub max_pull_bytes: u64,
}

impl ImagePolicy {
    /// The defaults for a node: `<data-dir>/images` and [`DEFAULT_IMAGE_DIR`],
    /// [`DEFAULT_MAX_PULL_BYTES`].
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            image_dirs: vec![data_dir.join("images"), PathBuf::from(DEFAULT_IMAGE_DIR)],
            max_pull_bytes: DEFAULT_MAX_PULL_BYTES,
        }
    }
}

impl Default for ImagePolicy {
    /// [`DEFAULT_IMAGE_DIR`] only, [`DEFAULT_MAX_PULL_BYTES`].
    fn default() -> Self {
        Self {
            image_dirs: vec![PathBuf::from(DEFAULT_IMAGE_DIR)],
            max_pull_bytes: DEFAULT_MAX_PULL_BYTES,
        }
    }
}

/// An `oci-archive:PATH[:REF]` reference, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRef {
    /// The archive (absolute, no `..`).
    pub path: PathBuf,
    /// The image in it, by its `org.opencontainers.image.ref.name` annotation.
    pub name: Option<String>,
}

/// Parses an image reference as `oci-archive:PATH[:REF]` (the path ends at the first `:`, as
/// in skopeo); `Ok(None)` when it is not an archive reference.
pub fn parse_archive_reference(image: &str) -> Result<Option<ArchiveRef>, String> {
    let Some(rest) = image.strip_prefix("oci-archive:") else {
        return Ok(None);
    };
    if rest.contains('\0') {
        return Err("the path contains NUL".into());
    }
    if rest.chars().any(char::is_control) {
        return Err("the path contains control characters".into());
    }
    let (path, name) = match rest.split_once(':') {
        Some((p, n)) => (p, Some(n)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err("empty path (write oci-archive:/absolute/path.tar)".into());
    }
    if !path.starts_with('/') {
        return Err(format!(
            "relative path {path:?} (write oci-archive:/absolute/path.tar)"
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("{path:?} has a `..` component"));
    }
    if let Some(n) = name {
        let ok = !n.is_empty()
            && n.len() <= 255
            && n.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'/' | b'+')
            });
        if !ok {
            return Err(format!(
                "bad image name {n:?} after the path (letters, digits and -._:@/+)"
            ));
        }
    }
    Ok(Some(ArchiveRef {
        path: PathBuf::from(path),
        name: name.map(str::to_owned),
    }))
}

/// Admission's check of an image reference: an `oci-archive:` reference must name an absolute
/// path without `..` components or NUL (and, after a `:`, a well-formed image name). Other
/// references are not archive references and pass.
pub fn check_archive_reference(s: &str) -> Result<(), String> {
    parse_archive_reference(s)
        .map(|_| ())
        .map_err(|e| format!("image {s:?}: {e}"))
}

/// Opens an archive if the policy allows it: a regular file under one of the image
/// directories, once symlinks are resolved; the opened file is checked again.
pub(super) fn open_archive(path: &Path, dirs: &[PathBuf]) -> Result<File, ImageError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    let refuse = |message: String| ImageError::ArchivePath {
        path: path.display().to_string(),
        message,
    };
    let list = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let allowed: Vec<PathBuf> = dirs.iter().filter_map(|d| d.canonicalize().ok()).collect();
    let real = path.canonicalize().map_err(|e| refuse(e.to_string()))?;
    let within = |p: &Path| allowed.iter().any(|d| p.starts_with(d));
    if !within(&real) {
        let via = if real != path {
            format!(" (it resolves to {})", real.display())
        } else {
            String::new()
        };
        return Err(refuse(format!(
            "not in this node's image directories ({list}){via}"
        )));
    }
    let kind = |m: &std::fs::Metadata| {
        let t = m.file_type();
        if t.is_file() {
            None
        } else if t.is_dir() {
            Some("a directory")
        } else {
            Some("not a regular file (a FIFO, socket or device)")
        }
    };
    let meta = std::fs::metadata(&real).map_err(|e| refuse(e.to_string()))?;
    if let Some(k) = kind(&meta) {
        return Err(refuse(format!("{k}; only regular files are imported")));
    }
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(&real)
        .map_err(|e| refuse(e.to_string()))?;
    let opened = file.metadata().map_err(|e| refuse(e.to_string()))?;
    if let Some(k) = kind(&opened) {
        return Err(refuse(format!("{k}; only regular files are imported")));
    }
    let fd_path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| refuse(e.to_string()))?;
    if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) || !within(&fd_path) {
        return Err(refuse(format!(
            "changed while it was opened (now {})",
            fd_path.display()
        )));
    }
    Ok(file)
}
