//! The SSH side: accepting connections, logging in through the [`Authority`], the `sftp`
//! subsystem (nothing else: no shell, exec, forwarding or agent), and the watchdog that
//! rechecks every session's grant.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};
use tokio::net::TcpListener;

use super::authority::{Authority, Grant};
use super::config::SftpConfig;
use super::conn::Conn;
use super::limits::{address_key, Slot, UserSlot};
use super::ops::{self, SftpSession};
use super::shared::Shared;

/// SFTP channels a connection may have open at once.
const MAX_CHANNELS: usize = 4;

/// russh's settings for our server: password and public-key logins only, the constant
/// rejection time, keepalives (dead clients go within ~2 minutes), and the host key.
pub(super) fn russh_config(config: &SftpConfig, key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        server_id: SshId::Standard("SSH-2.0-Catalyst_SFTP".into()),
        methods: methods(),
        auth_rejection_time: config.rejection_time,
        // OpenSSH clients begin with a "none" probe: answer it at once
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        // every refusal counts here, the "none" probe OpenSSH clients begin with too: the
        // request after the last of our attempts ends the connection ("Too many
        // authentication attempts"); our own count never asks the Authority more often
        max_auth_attempts: config.max_auth_attempts as usize + 1,
        // a backstop only: the watchdog closes idle sessions first, and says why
        inactivity_timeout: Some(config.idle_timeout + Duration::from_secs(60)),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    }
}

fn methods() -> MethodSet {
    MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])
}

/// Accepts connections until the task is aborted. Over `max_sessions` connections in all, or
/// `max_unauthenticated_per_ip` not yet logged in from one address, a new one is closed at
/// once.
pub(super) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "SFTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(total) = shared.total.acquire((), shared.config.max_sessions) else {
            tracing::warn!(%peer, max = shared.config.max_sessions, "SFTP connection refused: too many sessions");
            continue;
        };
        let Some(pre) = shared.unauthenticated.acquire(
            address_key(peer.ip()),
            shared.config.max_unauthenticated_per_ip,
        ) else {
            tracing::debug!(%peer, "SFTP connection refused: too many from this address not logged in");
            continue;
        };
        tokio::spawn(serve_conn(shared.clone(), tcp, peer, total, pre));
    }
}

/// One connection, from the SSH handshake to its end.
async fn serve_conn(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    total: Slot<()>,
    pre: Slot<IpAddr>,
) {
    let _total = total;
    let dup = match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => std::net::TcpStream::from(fd),
        Err(e) => {
            tracing::warn!(%peer, error = %e, "SFTP connection dropped: cannot duplicate its socket");
            return;
        }
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn::new(id, peer, dup));
    shared.conns.lock().expect("conns").insert(id, conn.clone());
    tracing::debug!(conn = id, %peer, "SFTP connection");
    let deadline = {
        let conn = conn.clone();
        let wait = shared.config.login_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if conn.grant.get().is_none() {
                conn.close("not logged in in time");
            }
        })
    };
    let handler = SshHandler {
        shared: shared.clone(),
        conn: conn.clone(),
        attempts: 0,
        pre_auth: Some(pre),
        user_slot: None,
        grant: None,
        channels: HashMap::new(),
        running: Arc::new(AtomicUsize::new(0)),
    };
    let result = async {
        let session = russh::server::run_stream(shared.ssh.clone(), tcp, handler).await?;
        let _ = conn.handle.set(session.handle());
        session.await
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(conn = id, %peer, error = %e, "SFTP connection ended with an error");
    }
    deadline.abort();
    // the SFTP loops and the watchdog stop; the socket is gone for good
    conn.ended.send_replace(true);
    conn.closed.send_replace(true);
    let _ = conn.sock.shutdown(std::net::Shutdown::Both);
    shared.conns.lock().expect("conns").remove(&id);
    if let Some(g) = conn.grant.get() {
        tracing::info!(conn = id, %peer, user = g.user, namespace = g.namespace, server = g.server, "SFTP session ended");
    }
}

/// Why a login was refused (for the log; the client is told nothing).
enum Refusal {
    /// A failed attempt: counts toward the address's slow-down.
    Failed(String),
    /// Refused without asking (slowed down too much, too many sessions): not counted.
    NotCounted(String),
}

/// A credential offered for a login.
enum Credential<'a> {
    Password(&'a str),
    Key(String),
}

/// One connection's SSH handler.
struct SshHandler {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    /// Logins tried on this connection.
    attempts: u32,
    /// Its place among the address's connections not logged in yet.
    pre_auth: Option<Slot<IpAddr>>,
    /// Its place among the user's sessions, once logged in.
    user_slot: Option<UserSlot>,
    grant: Option<Grant>,
    /// Session channels opened, not yet running SFTP.
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// SFTP sessions running on this connection.
    running: Arc<AtomicUsize>,
}

/// Counts a running SFTP session of a connection until dropped.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Running(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SshHandler {
    fn max_attempts(&self) -> u32 {
        self.shared.config.max_auth_attempts
    }

    /// A refusal. Both methods stay on offer (an empty list means "any" to OpenSSH's
    /// client); after the last attempt russh's count ends the connection.
    fn reject(&self) -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(methods()),
            partial_success: false,
        }
    }

    async fn login(&mut self, username: &str, credential: Credential<'_>) -> Auth {
        if self.grant.is_some() || self.attempts >= self.max_attempts() {
            return self.reject();
        }
        self.attempts += 1;
        let ip = self.conn.peer.ip();
        let method = match credential {
            Credential::Password(_) => "password",
            Credential::Key(_) => "publickey",
        };
        match self.check(username, credential).await {
            Ok((grant, slot)) => {
                tracing::info!(
                    conn = self.conn.id,
                    peer = %self.conn.peer,
                    user = grant.user,
                    namespace = grant.namespace,
                    server = grant.server,
                    read_only = grant.read_only,
                    method,
                    "SFTP login"
                );
                self.pre_auth = None;
                self.user_slot = Some(slot);
                let _ = self.conn.grant.set(grant.clone());
                self.grant = Some(grant);
                self.conn.touch();
                Auth::Accept
            }
            Err(refusal) => {
                let (reason, failures) = match refusal {
                    Refusal::Failed(reason) => (reason, Some(self.shared.throttle.failed(ip))),
                    Refusal::NotCounted(reason) => (reason, None),
                };
                tracing::info!(
                    conn = self.conn.id,
                    peer = %self.conn.peer,
                    username,
                    method,
                    attempt = self.attempts,
                    failures,
                    reason,
                    "SFTP login refused"
                );
                self.reject()
            }
        }
    }

    /// Decides a login: the server by name on this node, the Authority's grant for it, a
    /// place among the user's sessions.
    async fn check(
        &self,
        username: &str,
        credential: Credential<'_>,
    ) -> Result<(Grant, UserSlot), Refusal> {
        let shared = &self.shared;
        let Some((user, name)) = username.rsplit_once('.') else {
            return Err(Refusal::Failed("the user name is not USER.SERVER".into()));
        };
        if user.is_empty() || name.is_empty() {
            return Err(Refusal::Failed("the user name is not USER.SERVER".into()));
        }
        // never past the connection's login deadline
        let left = shared
            .config
            .login_timeout
            .saturating_sub(self.conn.started.elapsed() + Duration::from_secs(1));
        if !shared.throttle.wait(self.conn.peer.ip(), left).await {
            return Err(Refusal::NotCounted(
                "too many failed logins from this address".into(),
            ));
        }
        let found = shared.servers.named(name);
        let server = match found.as_slice() {
            [] => return Err(Refusal::Failed(format!("no server {name} on this node"))),
            [one] => one.clone(),
            many => {
                let namespaces: Vec<&str> = many.iter().map(|s| s.namespace.as_str()).collect();
                return Err(Refusal::Failed(format!(
                    "servers named {name} in several namespaces on this node ({}): the name is ambiguous",
                    namespaces.join(", ")
                )));
            }
        };
        let authority: &dyn Authority = shared.authority.as_ref();
        let remote = self.conn.peer.ip();
        let call = async {
            match &credential {
                Credential::Password(p) => {
                    authority
                        .login_password(user, &server.namespace, &server.name, p, remote)
                        .await
                }
                Credential::Key(k) => {
                    authority
                        .login_key(user, &server.namespace, &server.name, k, remote)
                        .await
                }
            }
        };
        let grant = match tokio::time::timeout(shared.config.authority_timeout, call).await {
            Ok(Ok(grant)) => grant,
            Ok(Err(denied)) => return Err(Refusal::Failed(denied.reason)),
            Err(_) => return Err(Refusal::NotCounted("the authority did not answer".into())),
        };
        if grant.uid != server.uid
            || grant.namespace != server.namespace
            || grant.server != server.name
        {
            return Err(Refusal::Failed(format!(
                "the grant is for {}/{} ({}), not the server bound here ({}/{}, {})",
                grant.namespace, grant.server, grant.uid, server.namespace, server.name, server.uid
            )));
        }
        // unbound while the API server was asked: its sessions are being cut
        if !shared.servers.contains(&server.uid) {
            return Err(Refusal::NotCounted(format!(
                "server {name} left this node during the login"
            )));
        }
        let Some(slot) = shared
            .users
            .acquire(grant.user.clone(), shared.config.max_sessions_per_user)
        else {
            return Err(Refusal::NotCounted(format!(
                "user {} has {} sessions already",
                grant.user, shared.config.max_sessions_per_user
            )));
        };
        Ok((grant, slot))
    }

    /// Refuses a channel request (and closes the channel: only SFTP is served).
    fn refuse(channel: ChannelId, session: &mut Session, what: &str) -> Result<(), russh::Error> {
        tracing::debug!(?channel, what, "SFTP: refused a channel request");
        session.channel_failure(channel)?;
        session.close(channel)
    }
}

impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.login(user, Credential::Password(password)).await)
    }

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        _offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // the key is only asked about once the client proved it holds it (auth_publickey)
        if self.grant.is_some() || self.attempts >= self.max_attempts() {
            return Ok(self.reject());
        }
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let line = match key.public_key.to_openssh() {
            // algorithm and key, without a comment
            Ok(l) => l.split(' ').take(2).collect::<Vec<_>>().join(" "),
            Err(_) => return Ok(self.reject()),
        };
        Ok(self.login(user, Credential::Key(line)).await)
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(grant) = &self.grant {
            tokio::spawn(watchdog(
                self.shared.clone(),
                self.conn.clone(),
                grant.clone(),
            ));
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let open = self.channels.len() + self.running.load(Ordering::SeqCst);
        if self.grant.is_none() || self.conn.is_closed() || open >= MAX_CHANNELS {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(grant), true) = (self.grant.clone(), name == "sftp") else {
            return Self::refuse(channel, session, "a subsystem other than sftp");
        };
        let Some(chan) = self.channels.remove(&channel) else {
            return Self::refuse(channel, session, "a second subsystem");
        };
        let roots = self.shared.roots.clone();
        let uid = grant.uid.clone();
        let root = match tokio::task::spawn_blocking(move || roots(&uid)).await {
            Ok(Ok(root)) => root,
            Ok(Err(e)) => {
                tracing::warn!(conn = self.conn.id, namespace = grant.namespace, server = grant.server, error = %e, "SFTP: the server's files can't be opened");
                return Self::refuse(channel, session, "sftp without files");
            }
            Err(e) => {
                tracing::warn!(conn = self.conn.id, error = %e, "SFTP: opening the server's files failed");
                return Self::refuse(channel, session, "sftp without files");
            }
        };
        session.channel_success(channel)?;
        let sess = SftpSession::new(
            root,
            grant.read_only,
            self.conn.clone(),
            self.shared.config.max_handles,
        );
        let running = Running::new(&self.running);
        tokio::spawn(async move {
            let _running = running;
            ops::serve(chan.into_stream(), sess).await;
        });
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse(channel, session, "exec")
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse(channel, session, "shell")
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }
}

/// Rechecks a session's grant every `recheck` and closes it when the grant is withdrawn, when
/// `recheck_errors` checks in a row fail, or when it has been idle for `idle_timeout`.
async fn watchdog(shared: Arc<Shared>, conn: Arc<Conn>, grant: Grant) {
    let config = &shared.config;
    let mut closed = conn.closed.subscribe();
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + config.recheck, config.recheck);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut errors = 0u32;
    loop {
        tokio::select! {
            _ = closed.wait_for(|c| *c) => return,
            _ = tick.tick() => {}
        }
        if conn.idle() >= config.idle_timeout {
            conn.close(&format!("idle for {} s", config.idle_timeout.as_secs()));
            return;
        }
        if !shared.servers.contains(&grant.uid) {
            conn.close("the server left this node");
            return;
        }
        let check = tokio::time::timeout(
            config.authority_timeout,
            shared.authority.still_allowed(&grant),
        );
        let verdict = tokio::select! {
            _ = closed.wait_for(|c| *c) => return,
            v = check => v,
        };
        let error = match verdict {
            Ok(Ok(true)) => {
                errors = 0;
                continue;
            }
            Ok(Ok(false)) => {
                conn.close("access revoked");
                return;
            }
            Ok(Err(denied)) => denied.reason,
            Err(_) => "no answer in time".to_owned(),
        };
        errors += 1;
        tracing::warn!(
            conn = conn.id,
            user = grant.user,
            namespace = grant.namespace,
            server = grant.server,
            errors,
            error,
            "SFTP grant could not be rechecked"
        );
        if errors >= config.recheck_errors {
            conn.close(&format!(
                "the grant could not be rechecked {errors} times in a row"
            ));
            return;
        }
    }
}
