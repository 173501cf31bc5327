//! The node's SFTP server: customers reach their server's files with any SFTP client.
//!
//! - **Who**: the user name is `USER.SERVER`, split at the *last* dot (user names may hold
//!   dots, GameServer names may not): `alice.example.com.survival` is user
//!   `alice.example.com` on server `survival`. The server is the GameServer bound to this
//!   node with that name ([`BoundServers`]); when servers of that name from several
//!   namespaces are bound here the login is refused (and the nodelet logs why), since the
//!   name alone does not say which one is meant.
//! - **Whether**: the API server decides every login and, every `recheck` (2 s), whether each
//!   open session may go on ([`Authority`]; [`ApiAuthority`] is the real one). A session whose
//!   grant is withdrawn (user disabled, `file.sftp` taken away, server suspended or deleted),
//!   or whose checks fail `recheck_errors` times in a row, is cut at once, even in the middle
//!   of a transfer: its socket is shut down, so nothing a client sends after that is served
//!   (unlike the Wings session that outlived a revoked permission, GHSA-8c39-xppg-479c). A
//!   server unbound from this node ([`BoundServers::unbind`]) has its sessions cut too.
//! - **What**: the session sees the server's data directory as `/` and nothing else: every
//!   SFTP request maps to one call of the safe path layer ([`crate::files::Root`], run in
//!   `spawn_blocking` as the server's uid). `..` stops at `/` (as in a chroot); symbolic links
//!   that lead outside, hard-linked files, FIFOs and devices are refused by the layer; creating
//!   symbolic or hard links is refused; chmod keeps the permission bits only (no setuid,
//!   setgid or sticky); chown is refused.
//! - **How much**: failed logins slow down per remote address (after 5 failures each attempt
//!   waits 1 s, doubling up to 60 s), a connection gets 3 login attempts and 30 s to log in,
//!   at most 10 sessions per user and 500 in all, 256 open handles per session, and a session
//!   idle for 10 minutes is closed. The client is never told which part of a login was wrong.
//!
//! Host key: ed25519, made once and kept at `<data-dir>/sftp/host_key` (mode 0600); its
//! OpenSSH SHA256 fingerprint goes into the Node's `status.sftp`.
//!
//! Entry point: [`SftpServer::start`] with an [`SftpConfig`], an [`Authority`], the
//! [`BoundServers`] and a [`RootOpener`]; the nodelet's `run` does this with [`for_node`].

mod authority;
mod config;
mod conn;
mod error;
mod hostkey;
mod limits;
mod ops;
mod shared;
mod ssh;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

pub use crate::bound::{BoundServer, BoundServers};
pub use authority::{ApiAuthority, Authority, Denied, Grant, CHECK_PATH, LOGIN_PATH};
pub use config::SftpConfig;
pub use error::SftpError;
pub use hostkey::{fingerprint, load_or_create as load_or_create_host_key, public_line};
pub use shared::RootOpener;

use crate::files::{FsError, Root};
use crate::runtime::Runtime;
use conn::Conn;
use limits::Throttle;
use shared::Shared;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:2022";

/// What the Node's status says about SFTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpStatus {
    /// The address the server listens on.
    pub listen: SocketAddr,
    /// The host key's SHA256 fingerprint (`SHA256:…`).
    pub host_key_fingerprint: String,
}

/// A running SFTP server. Dropping it (or [`SftpServer::shutdown`]) stops listening and cuts
/// every session.
pub struct SftpServer {
    addr: SocketAddr,
    fingerprint: String,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpServer")
            .field("addr", &self.addr)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SftpServer {
    /// Loads (or makes) the host key, binds `config.listen` and serves until dropped.
    pub async fn start(
        config: SftpConfig,
        authority: Arc<dyn Authority>,
        servers: Arc<BoundServers>,
        roots: RootOpener,
    ) -> Result<SftpServer, SftpError> {
        let path = config.host_key.clone();
        let key = tokio::task::spawn_blocking(move || hostkey::load_or_create(&path))
            .await
            .map_err(|e| SftpError::HostKey {
                path: config.host_key.clone(),
                message: e.to_string(),
            })??;
        let fingerprint = hostkey::fingerprint(&key);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SftpError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SftpError::Bind {
            addr: config.listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            ssh: Arc::new(ssh::russh_config(&config, key)),
            throttle: Throttle::new(
                config.free_failures,
                config.failure_delay,
                config.max_failure_delay,
            ),
            config,
            authority,
            servers,
            roots,
            total: Arc::default(),
            users: Arc::default(),
            unauthenticated: Arc::default(),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        tracing::info!(%addr, fingerprint, "SFTP server listening");
        let accept = tokio::spawn(ssh::accept_loop(shared.clone(), listener));
        let gone = tokio::spawn(gone_loop(shared.clone()));
        Ok(SftpServer {
            addr,
            fingerprint,
            shared,
            tasks: vec![accept, gone],
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host key's SHA256 fingerprint, as OpenSSH shows it (`SHA256:…`).
    pub fn host_key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// What the Node's status says about it.
    pub fn status(&self) -> SftpStatus {
        SftpStatus {
            listen: self.addr,
            host_key_fingerprint: self.fingerprint.clone(),
        }
    }

    /// Sessions (connections) open now.
    pub fn sessions(&self) -> usize {
        self.shared.conns.lock().expect("conns").len()
    }

    /// Stops listening and cuts every session.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let conns: Vec<Arc<Conn>> = self
            .shared
            .conns
            .lock()
            .expect("conns")
            .values()
            .cloned()
            .collect();
        for c in conns {
            c.close("the nodelet is stopping");
        }
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Cuts the sessions of servers that leave this node.
async fn gone_loop(shared: Arc<Shared>) {
    let mut gone = shared.servers.subscribe();
    loop {
        let uid = match gone.recv().await {
            Ok(uid) => Some(uid),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let conns: Vec<Arc<Conn>> = shared
            .conns
            .lock()
            .expect("conns")
            .values()
            .cloned()
            .collect();
        for c in conns {
            let Some(grant) = c.grant.get() else { continue };
            let cut = match &uid {
                Some(uid) => &grant.uid == uid,
                // missed some: every session whose server is no longer bound
                None => !shared.servers.contains(&grant.uid),
            };
            if cut {
                c.close("the server left this node");
            }
        }
    }
}

/// The SFTP server of the nodelet: [`ApiAuthority`] over the node's API client, the servers
/// bound to this node, and their data directories opened as their own host uid. The host key
/// lives at `<data-dir>/sftp/host_key`.
pub async fn for_node(rt: Arc<Runtime>, listen: SocketAddr) -> Result<SftpServer, SftpError> {
    let config = SftpConfig::new(listen, rt.data_dir.join("sftp").join("host_key"));
    let authority = Arc::new(ApiAuthority::new(rt.api.clone()));
    let servers = rt.bound.clone();
    let roots: RootOpener = Arc::new(move |uid: &str| node_root(&rt, uid));
    SftpServer::start(config, authority, servers, roots).await
}

/// The data directory of server `uid` on this node, as its host uid/gid. A directory that does
/// not exist yet is not made (the server has no files here yet).
fn node_root(rt: &Runtime, uid: &str) -> Result<Root, FsError> {
    let missing = || FsError::NotFound { path: "/".into() };
    if uid.is_empty() || uid.contains(['/', '.', '\0']) {
        return Err(missing());
    }
    let dir = rt.server_dir(uid);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.file_type().is_dir() => {}
        _ => return Err(missing()),
    }
    let range = rt
        .ids
        .claim(&dir)
        .map_err(|e| FsError::other("/", &format!("the server's id range: {e}")))?;
    let host_uid = range.host(rt.uid).unwrap_or(range.start);
    let host_gid = range.host(rt.gid).unwrap_or(range.start);
    let mut root = Root::open(&dir, host_uid, host_gid)?;
    root.set_denylist(rt.denylist(uid));
    Ok(root)
}
