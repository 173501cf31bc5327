//! What the safe path layer reports, in terms of the user's path (never the host's).

use nix::errno::Errno;

/// A file operation's failure. Every message names the path as the user wrote it (cleaned, with a
/// leading `/`), never where the data directory lives on the host.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Nothing at that path (or a directory on the way is missing).
    #[error("{path}: not found")]
    NotFound {
        /// The user path.
        path: String,
    },
    /// Something is already there.
    #[error("{path}: already exists")]
    Exists {
        /// The user path.
        path: String,
    },
    /// A directory that still has entries where an empty one is needed.
    #[error("{path}: directory not empty")]
    NotEmpty {
        /// The user path.
        path: String,
    },
    /// The path (through `..` or a symbolic link) leads outside the server's files.
    #[error("{path}: leads outside the server's files")]
    Escapes {
        /// The user path.
        path: String,
    },
    /// A directory was expected.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The user path.
        path: String,
    },
    /// A file was expected but a directory is there.
    #[error("{path}: is a directory")]
    IsADirectory {
        /// The user path.
        path: String,
    },
    /// The layer will not do this to that kind of file (a symbolic link, a hard-linked file, a
    /// FIFO, a file on another filesystem, the root itself, ...).
    #[error("{path}: refused: {why}")]
    Refused {
        /// The user path.
        path: String,
        /// Why.
        why: String,
    },
    /// The server's user may not do this (file permissions).
    #[error("{path}: permission denied")]
    PermissionDenied {
        /// The user path.
        path: String,
    },
    /// The disk or the quota is full (`ENOSPC`, `EDQUOT`).
    #[error("{path}: no space left")]
    NoSpace {
        /// The user path.
        path: String,
    },
    /// A malformed path or argument.
    #[error("{path}: invalid: {why}")]
    Invalid {
        /// The user path (as given, when it could not be cleaned).
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// More bytes than allowed (reported by callers that enforce a size limit).
    #[error("{path}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// The user path.
        path: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A byte range past the end of a file (a ranged read).
    #[error("{path}: range not satisfiable (the file has {size} bytes)")]
    RangeNotSatisfiable {
        /// The user path.
        path: String,
        /// The file's size.
        size: u64,
    },
    /// A download's other side failed: no answer, a timeout, an HTTP error status, too many
    /// redirects (reported by [`pull`](super::pull)).
    #[error("{path}: download failed: {why}")]
    Remote {
        /// The user path being downloaded to.
        path: String,
        /// What went wrong, naming the host.
        why: String,
    },
    /// Anything else the kernel reported, or the layer could not take the server's identity.
    #[error("{path}: {source}")]
    Io {
        /// The user path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl FsError {
    /// The HTTP status that fits: 404 not found; 409 exists, not empty, (not) a directory;
    /// 403 escapes, refused, permission denied; 400 invalid; 507 no space; 413 too large;
    /// 416 a range past the end; 502 a download's other side failed; 500 anything else.
    pub fn status(&self) -> u16 {
        match self {
            FsError::NotFound { .. } => 404,
            FsError::Exists { .. }
            | FsError::NotEmpty { .. }
            | FsError::NotADirectory { .. }
            | FsError::IsADirectory { .. } => 409,
            FsError::Escapes { .. }
            | FsError::Refused { .. }
            | FsError::PermissionDenied { .. } => 403,
            FsError::Invalid { .. } => 400,
            FsError::NoSpace { .. } => 507,
            FsError::TooLarge { .. } => 413,
            FsError::RangeNotSatisfiable { .. } => 416,
            FsError::Remote { .. } => 502,
            FsError::Io { .. } => 500,
        }
    }

    /// The user path the error is about.
    pub fn path(&self) -> &str {
        match self {
            FsError::NotFound { path }
            | FsError::Exists { path }
            | FsError::NotEmpty { path }
            | FsError::Escapes { path }
            | FsError::NotADirectory { path }
            | FsError::IsADirectory { path }
            | FsError::Refused { path, .. }
            | FsError::PermissionDenied { path }
            | FsError::NoSpace { path }
            | FsError::Invalid { path, .. }
            | FsError::TooLarge { path, .. }
            | FsError::RangeNotSatisfiable { path, .. }
            | FsError::Remote { path, .. }
            | FsError::Io { path, .. } => path,
        }
    }

    /// Maps an I/O error met on a file of the layer (a write to an [`AtomicFile`] or to a file
    /// from [`Root::open_write`], say) the way the layer maps its own: `ENOSPC`/`EDQUOT` become
    /// [`FsError::NoSpace`], and so on.
    ///
    /// [`AtomicFile`]: super::AtomicFile
    /// [`Root::open_write`]: super::Root::open_write
    pub fn from_io(path: &str, e: std::io::Error) -> FsError {
        match e.raw_os_error() {
            Some(code) => from_errno(path, Errno::from_raw(code)),
            None => FsError::Io {
                path: path.to_owned(),
                source: e,
            },
        }
    }

    pub(crate) fn refused(path: &str, why: &str) -> FsError {
        FsError::Refused {
            path: path.to_owned(),
            why: why.to_owned(),
        }
    }

    pub(crate) fn invalid(path: &str, why: &str) -> FsError {
        FsError::Invalid {
            path: path.to_owned(),
            why: why.to_owned(),
        }
    }

    pub(crate) fn other(path: &str, message: &str) -> FsError {
        FsError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(message.to_owned()),
        }
    }
}

/// The one errno → [`FsError`] mapping of the layer.
pub(crate) fn from_errno(path: &str, e: Errno) -> FsError {
    let path = path.to_owned();
    match e {
        Errno::ENOENT => FsError::NotFound { path },
        Errno::EEXIST => FsError::Exists { path },
        Errno::ENOTEMPTY => FsError::NotEmpty { path },
        // openat2 with RESOLVE_BENEATH / RESOLVE_NO_XDEV: the path leaves the root
        Errno::EXDEV => FsError::Escapes { path },
        Errno::ENOTDIR => FsError::NotADirectory { path },
        Errno::EISDIR => FsError::IsADirectory { path },
        Errno::EACCES | Errno::EPERM | Errno::EROFS => FsError::PermissionDenied { path },
        Errno::ENOSPC | Errno::EDQUOT => FsError::NoSpace { path },
        Errno::ELOOP => FsError::Refused {
            path,
            why: "a symbolic link is in the way".into(),
        },
        // O_NONBLOCK opens of a FIFO without a reader, or of a socket
        Errno::ENXIO => FsError::Refused {
            path,
            why: "not a regular file".into(),
        },
        Errno::ENAMETOOLONG => FsError::Invalid {
            path,
            why: "name too long".into(),
        },
        Errno::EINVAL => FsError::Invalid {
            path,
            why: "invalid argument".into(),
        },
        e => FsError::Io {
            path,
            source: std::io::Error::from(e),
        },
    }
}
