//! How the SFTP server runs: addresses, intervals and limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the SFTP server runs.
#[derive(Debug, Clone)]
pub struct SftpConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The host key file (made when missing).
    pub host_key: PathBuf,
    /// How often every open session's grant is checked again.
    pub recheck: Duration,
    /// Failed checks in a row (errors or time-outs, not refusals) that close a session.
    pub recheck_errors: u32,
    /// The longest an [`Authority`] call may take (then it counts as failed).
    pub authority_timeout: Duration,
    /// A session with no SFTP request for this long is closed.
    pub idle_timeout: Duration,
    /// A connection not logged in after this long is closed.
    pub login_timeout: Duration,
    /// Sessions (connections) at once, in all.
    pub max_sessions: usize,
    /// Sessions at once per user.
    pub max_sessions_per_user: usize,
    /// Connections not yet logged in at once, per remote address.
    pub max_unauthenticated_per_ip: usize,
    /// Open files and directories per SFTP session.
    pub max_handles: usize,
    /// Login attempts (passwords and proven keys) per connection.
    pub max_auth_attempts: u32,
    /// Failed logins from one address before attempts from it are slowed down.
    pub free_failures: u32,
    /// The first slow-down; it doubles with every further failure.
    pub failure_delay: Duration,
    /// The longest slow-down.
    pub max_failure_delay: Duration,
    /// Every refused login takes at least this long (so timing tells nothing).
    pub rejection_time: Duration,
}

impl SftpConfig {
    /// The defaults, listening on `listen` with the host key at `host_key`.
    pub fn new(listen: SocketAddr, host_key: PathBuf) -> Self {
        SftpConfig {
            listen,
            host_key,
            recheck: Duration::from_secs(2),
            recheck_errors: 3,
            authority_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10 * 60),
            login_timeout: Duration::from_secs(30),
            max_sessions: 500,
            max_sessions_per_user: 10,
            max_unauthenticated_per_ip: 10,
            max_handles: 256,
            max_auth_attempts: 3,
            free_failures: 5,
            failure_delay: Duration::from_secs(1),
            max_failure_delay: Duration::from_secs(60),
            rejection_time: Duration::from_secs(1),
        }
    }
}
