//! The connection to containerd: the namespace and lease every call carries, the error type,
//! and the configuration of a containerd of Catalyst's own.

use std::path::{Path, PathBuf};

use containerd_client::services::v1 as api;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};

/// The containerd namespace every Catalyst container lives in.
pub const NAMESPACE: &str = "catalyst";
/// The snapshotter used for images and containers.
pub const SNAPSHOTTER: &str = "overlayfs";
/// The runtime for containers.
pub const RUNTIME: &str = "io.containerd.runc.v2";
/// The type URL containerd expects for an OCI runtime spec.
pub(super) const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// What can go wrong talking to containerd.
#[derive(Debug, thiserror::Error)]
pub enum CtdError {
    /// The socket could not be reached.
    #[error("cannot connect to containerd at {path}: {message}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The object exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Any other gRPC failure.
    #[error("containerd {op}: {status}")]
    Rpc {
        /// The call that failed.
        op: &'static str,
        /// The gRPC status message.
        status: String,
    },
}

impl CtdError {
    /// The error for a failed call `op`.
    pub(super) fn rpc(op: &'static str, s: Status) -> Self {
        match s.code() {
            Code::NotFound => CtdError::NotFound(format!("{op}: {}", s.message())),
            Code::AlreadyExists => CtdError::AlreadyExists(format!("{op}: {}", s.message())),
            _ => CtdError::Rpc {
                op,
                status: format!("{:?}: {}", s.code(), s.message()),
            },
        }
    }

    /// True for NotFound.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CtdError::NotFound(_))
    }
}

/// What the client's calls return.
pub(super) type Result<T> = std::result::Result<T, CtdError>;

/// A connection to containerd.
#[derive(Debug, Clone)]
pub struct Containerd {
    pub(super) channel: Channel,
    socket: PathBuf,
}

/// A request carrying the `catalyst` namespace and, when given, a lease.
pub(super) fn req<T>(msg: T, lease: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("containerd-namespace", NAMESPACE.parse().expect("ascii"));
    if let Some(lease) = lease {
        if let Ok(v) = lease.parse() {
            r.metadata_mut().insert("containerd-lease", v);
        }
    }
    r
}

impl Containerd {
    /// Connects to the socket (lazily: the first call fails if containerd is down).
    pub async fn connect(socket: &Path) -> Result<Self> {
        let channel = containerd_client::connect(socket)
            .await
            .map_err(|e| CtdError::Connect {
                path: socket.to_owned(),
                message: format!("{e}"),
            })?;
        Ok(Self {
            channel,
            socket: socket.to_owned(),
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// containerd's version string.
    pub async fn version(&self) -> Result<String> {
        let mut c = api::version_client::VersionClient::new(self.channel.clone());
        let v = c
            .version(())
            .await
            .map_err(|s| CtdError::rpc("version", s))?
            .into_inner();
        Ok(v.version)
    }
}

/// A containerd configuration for a containerd of Catalyst's own, with everything under `dir`
/// (root, state, socket) and the CRI plugin off. Returns the socket path.
pub fn write_config(dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let socket = dir.join("containerd.sock");
    let config = dir.join("config.toml");
    let text = format!(
        "version = 2\nroot = {root:?}\nstate = {state:?}\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = {ttrpc:?}\n",
        root = dir.join("root").display().to_string(),
        state = dir.join("state").display().to_string(),
        sock = socket.display().to_string(),
        ttrpc = format!("{}.ttrpc", socket.display()),
    );
    std::fs::write(&config, text)?;
    Ok((config, socket))
}
