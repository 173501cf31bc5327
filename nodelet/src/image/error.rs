//! The image module's error type, shared by all its parts.

use std::path::PathBuf;

use crate::ctd::CtdError;
use crate::registry::RegistryError;

/// What can go wrong getting an image ready.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The archive could not be read.
    #[error("cannot read {path}: {message}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The `oci-archive:` path is not allowed (or not usable).
    #[error("oci-archive {path}: {message}")]
    ArchivePath {
        /// The path as given.
        path: String,
        /// Why it is refused.
        message: String,
    },
    /// The image is malformed.
    #[error("invalid image {image}: {message}")]
    Invalid {
        /// The image.
        image: String,
        /// What is wrong.
        message: String,
    },
    /// A layer's uncompressed content is not what the configuration's diff IDs say.
    #[error(
        "image {image}: layer {index} ({digest}) has the wrong diff id: the configuration says \
         {expected}, {source_name} {got}"
    )]
    WrongDiffId {
        /// The image.
        image: String,
        /// Which layer, from 0 at the bottom.
        index: usize,
        /// The layer blob's digest.
        digest: String,
        /// `rootfs.diff_ids[index]`.
        expected: String,
        /// What it is.
        got: String,
        /// Who computed `got`.
        source_name: &'static str,
    },
    /// The image is larger than the node allows.
    #[error("image {image}: {what} is {size} bytes, over this node's limit of {limit} bytes")]
    TooLarge {
        /// The image.
        image: String,
        /// What is too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// containerd refused.
    #[error(transparent)]
    Containerd(#[from] CtdError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// An [`ImageError::Invalid`] for `image`.
pub(super) fn invalid(image: &str, message: impl Into<String>) -> ImageError {
    ImageError::Invalid {
        image: image.to_owned(),
        message: message.into(),
    }
}
