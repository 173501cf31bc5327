//! What the SFTP server could not do.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What the SFTP server could not do.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    /// The listen address could not be bound.
    #[error("SFTP: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The host key could not be read or made.
    #[error("SFTP host key {}: {message}", path.display())]
    HostKey {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
