//! The nodelet's error type: what any of its parts reports.

use crate::{cni, console, ctd, disk, image, rootfs, spec, userns};

/// Anything the nodelet's parts report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server.
    #[error(transparent)]
    Api(#[from] catalyst_client::Error),
    /// containerd.
    #[error(transparent)]
    Containerd(#[from] ctd::CtdError),
    /// Getting an image ready.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// The server's spec.
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    /// Networking.
    #[error(transparent)]
    Cni(#[from] cni::CniError),
    /// The console.
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
    /// User namespaces and id ranges.
    #[error(transparent)]
    Userns(#[from] userns::UsernsError),
    /// The server's disk (its image, loop device and mount).
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    /// Preparing a container's root filesystem.
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    /// The server asks for what this node does not allow (host network, host ports outside
    /// its range): the scheduler should not have placed it here.
    #[error("{0}")]
    NotAllowed(String),
    /// Local files.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Malformed objects.
    #[error("malformed object: {0}")]
    Json(#[from] serde_json::Error),
    /// Configuration.
    #[error("{0}")]
    Config(String),
}

/// The nodelet's result type.
pub type Result<T> = std::result::Result<T, Error>;
