//! One connection: who it is, what it was granted, and how to cut it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::watch;

use super::authority::Grant;

/// One connection: what it is, and how to cut it.
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    /// A duplicate of the connection's socket descriptor: `shutdown(2)` on it ends the
    /// connection whatever the SSH session is doing.
    pub(super) sock: std::net::TcpStream,
    /// The SSH session's handle (for a polite disconnect message first).
    pub(super) handle: OnceLock<russh::server::Handle>,
    /// What the login granted.
    pub(super) grant: OnceLock<Grant>,
    /// true once closed; SFTP loops and watchdogs wait on it.
    pub(super) closed: watch::Sender<bool>,
    /// true once the SSH session has ended.
    pub(super) ended: watch::Sender<bool>,
    /// Milliseconds since `started` of the last SFTP request (or its answer).
    pub(super) active: AtomicU64,
    pub(super) started: tokio::time::Instant,
}

impl Conn {
    pub(super) fn new(id: u64, peer: SocketAddr, sock: std::net::TcpStream) -> Self {
        Conn {
            id,
            peer,
            sock,
            handle: OnceLock::new(),
            grant: OnceLock::new(),
            closed: watch::channel(false).0,
            ended: watch::channel(false).0,
            active: AtomicU64::new(0),
            started: tokio::time::Instant::now(),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Notes activity now.
    pub(super) fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.active.store(ms, Ordering::Relaxed);
    }

    /// How long since the last activity.
    pub(super) fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.active.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Closes the connection now, for `reason` (logged; sent to the client in the SSH
    /// disconnect message): no request is served after this returns, and the socket is shut
    /// down once the session has ended (the client leaves when it reads the disconnect) or at
    /// the latest a second later.
    pub(super) fn close(&self, reason: &str) {
        if self.closed.send_replace(true) {
            return;
        }
        let grant = self.grant.get();
        tracing::info!(
            conn = self.id,
            peer = %self.peer,
            user = grant.map(|g| g.user.as_str()),
            namespace = grant.map(|g| g.namespace.as_str()),
            server = grant.map(|g| g.server.as_str()),
            reason,
            "SFTP session closed"
        );
        let handle = self.handle.get().cloned();
        let sock = self.sock.try_clone();
        let reason = reason.to_owned();
        let mut ended = self.ended.subscribe();
        let cut = async move {
            if let Some(h) = handle {
                let bye = async {
                    let _ = h
                        .disconnect(russh::Disconnect::ByApplication, reason, "en".to_owned())
                        .await;
                    let _ = ended.wait_for(|e| *e).await;
                };
                let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
            }
            if let Ok(sock) = sock {
                let _ = sock.shutdown(std::net::Shutdown::Both);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(cut);
            }
            Err(_) => {
                let _ = self.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}
