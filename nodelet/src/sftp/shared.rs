//! What every connection of one SFTP server shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::authority::Authority;
use super::config::SftpConfig;
use super::conn::Conn;
use super::limits::{Counter, Throttle};
use crate::bound::BoundServers;
use crate::files::{FsError, Root};

/// Opens the data directory of the GameServer with this uid (blocking; called from
/// `spawn_blocking`).
pub type RootOpener = Arc<dyn Fn(&str) -> Result<Root, FsError> + Send + Sync>;

/// What every connection shares.
pub(super) struct Shared {
    pub(super) config: SftpConfig,
    pub(super) ssh: Arc<russh::server::Config>,
    pub(super) authority: Arc<dyn Authority>,
    pub(super) servers: Arc<BoundServers>,
    pub(super) roots: RootOpener,
    pub(super) throttle: Throttle,
    /// Connections at once (all of them: one key).
    pub(super) total: Arc<Counter<()>>,
    /// Logged-in sessions per user.
    pub(super) users: Arc<Counter<String>>,
    /// Connections not logged in yet, per address.
    pub(super) unauthenticated: Arc<Counter<IpAddr>>,
    pub(super) conns: Mutex<HashMap<u64, Arc<Conn>>>,
    pub(super) next_id: AtomicU64,
}
