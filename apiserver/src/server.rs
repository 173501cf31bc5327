//! `catalyst server`: the data directory, the store, the bootstrap credentials and the HTTPS
//! listener (plain HTTP on loopback when asked; see [`crate::tls`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{self, AuditError, Auditor};
use crate::auth::{Authenticator, Identity};
use crate::http::app;
use crate::registry::Registry;
use crate::state::AppState;
use crate::store::{self, Store, StoreError};
use crate::tls::{self, ServerTls, TlsConfig, TlsError};

/// Revisions of history kept for watchers that resume.
pub const HISTORY: i64 = 100_000;

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where state and credentials live.
    pub data_dir: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The store URL; default SQLite in the data dir.
    pub store: Option<String>,
    /// Also append the audit records to this file, one JSON line each.
    pub audit_log: Option<PathBuf>,
    /// How long audit records are kept ([`audit::DEFAULT_RETENTION`] by default).
    pub audit_retention: Duration,
    /// HTTPS (the default) or plain HTTP, and which certificates.
    pub tls: TlsConfig,
    /// Revisions of history kept for watchers that resume ([`HISTORY`] by default).
    pub history: i64,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file in the data dir.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log file.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// TLS set-up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listener.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The client config `catalystctl` reads; `ca_pem` is the CA it trusts (as
/// `certificateAuthorityData`, base64 of the PEM).
pub fn client_config(server: &str, token: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "certificateAuthorityData: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!("apiVersion: catalyst.dev/v1alpha1\nkind: Config\nserver: {server}\n{ca}token: {token}\nnamespace: default\n")
}

/// A started server: its address and the task serving it.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `<data-dir>/admin.yaml`.
    pub admin_config: PathBuf,
    /// `<data-dir>/join-token`.
    pub join_token: PathBuf,
    /// The state the handlers share.
    pub state: AppState,
    /// HTTPS; None for plain HTTP.
    pub tls: Option<ServerTls>,
    listener: tokio::net::TcpListener,
    audit_retention: Duration,
    history: i64,
}

/// Opens the store, makes the bootstrap credentials on first start, binds the listener.
pub async fn start(config: ServerConfig) -> Result<Running, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(io(&config.data_dir))?;
    let url = config
        .store
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", config.data_dir.join("catalyst.db").display()));
    let store = store::open(&url).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;

    let tls = tls::prepare(&config.tls, &config.data_dir, addr, &store).await?;
    let ca_pem = tls.as_ref().map(|t| t.ca_pem.as_str());
    let ca_sha256 = tls.as_ref().map(|t| t.ca_sha256.as_str());

    let admin_config = config.data_dir.join("admin.yaml");
    let join_token = config.data_dir.join("join-token");
    let server_url = url_of(addr, tls.is_some());
    if !admin_config.exists() {
        let token = Authenticator::issue(&store, &Identity::new("admin", "admin")).await?;
        write_private(&admin_config, &client_config(&server_url, &token, ca_pem))?;
    } else {
        // keep the token, follow the address (the port may have changed) and the CA
        let text = std::fs::read_to_string(&admin_config).map_err(io(&admin_config))?;
        let token = text
            .lines()
            .find_map(|l| l.strip_prefix("token: "))
            .unwrap_or("")
            .trim()
            .to_owned();
        write_private(&admin_config, &client_config(&server_url, &token, ca_pem))?;
    }
    // the join token pins the CA: its secret stays, its pin follows the CA
    let secret = match std::fs::read_to_string(&join_token) {
        Ok(t) => tls::join_token_secret(t.trim()).to_owned(),
        Err(_) => Authenticator::issue(&store, &Identity::new("join", "nodes")).await?,
    };
    let token_text = format!("{}\n", tls::pinned_join_token(ca_sha256, &secret));
    if std::fs::read_to_string(&join_token).ok().as_deref() != Some(token_text.as_str()) {
        write_private(&join_token, &token_text)?;
    }
    let auth = Authenticator::load(store.clone()).await?;
    let mut state = AppState::new(Registry::new(store.clone()), auth).await?;
    seed_builtin_roles(&state.registry).await?;
    if let Some(path) = &config.audit_log {
        state.audit = Arc::new(Auditor::start(store.clone(), Some(path))?);
    }
    Ok(Running {
        addr,
        admin_config,
        join_token,
        state,
        tls,
        listener,
        audit_retention: config.audit_retention,
        history: config.history.max(1),
    })
}

/// Creates the built-in Roles (admin, operator, viewer, billing and Pterodactyl's subuser
/// permissions), and brings back to their built-in rules any that were changed.
pub async fn seed_builtin_roles(registry: &Registry) -> Result<(), ServerError> {
    let kind = catalyst_schemas::lookup_kind("roles").expect("roles kind");
    let scope = crate::registry::Scope {
        kind,
        namespace: None,
    };
    for role in catalyst_schemas::rbac::builtin_roles() {
        let name = role.metadata.name.clone();
        let obj = serde_json::to_value(&role).expect("a Role encodes");
        match registry.create(scope, obj.clone(), false).await {
            Ok(_) | Err(crate::error::ApiError::AlreadyExists { .. }) => {}
            Err(e) => {
                return Err(ServerError::Store(StoreError::Corrupt(format!(
                    "cannot create the built-in role {name}: {e}"
                ))))
            }
        }
        let restore = serde_json::json!({"metadata": {"labels": obj["metadata"]["labels"]}});
        let result = registry
            .update_with(
                scope,
                &name,
                None,
                crate::registry::Part::Main,
                false,
                |cur| {
                    let mut next = cur.clone();
                    next["spec"] = obj["spec"].clone();
                    crate::registry::merge(&mut next, &restore);
                    Ok(next)
                },
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(role = name, error = %e, "cannot restore a built-in role");
        }
    }
    Ok(())
}

/// `https://ADDR`, or `http://ADDR` without TLS; a wildcard address (`0.0.0.0`, `::`) becomes
/// loopback, which clients on this machine reach and the generated certificate names.
pub fn url_of(mut addr: SocketAddr, tls: bool) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("{}://{addr}", if tls { "https" } else { "http" })
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections may go on after the server was told to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Running {
    /// `https://ADDR` (`http://` without TLS; loopback for a wildcard listen address).
    pub fn url(&self) -> String {
        url_of(self.addr, self.tls.is_some())
    }

    /// The CA clients trust (PEM), when serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// Serves until `shutdown` resolves, keeping the history bounded and the audit log within
    /// its retention meanwhile; the audit records of the last requests are written before it
    /// returns. Handlers see the peer address as `ConnectInfo<SocketAddr>`.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let store: Arc<dyn Store> = self.state.registry.store().clone();
        let compactor =
            store::spawn_compactor(store.clone(), self.history, Duration::from_secs(60));
        let purger = audit::spawn_purger(store, self.audit_retention, audit::PURGE_EVERY);
        let sweeper = crate::http::console::spawn_sweeper(self.state.clone());
        let throttles = crate::auth::throttle::spawn_sweeper(self.state.account_throttle.clone());
        let addr = self.addr;
        let auditor = self.state.audit.clone();
        let ca: Option<Arc<str>> = self.tls.as_ref().map(|t| Arc::from(t.ca_pem.as_str()));
        let stopping = self.state.stopping.clone();
        let mut stopped = stopping.subscribe();
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        // open connections get SHUTDOWN_GRACE to finish after the signal (watches end at
        // once; a console, a tunnel or a client that never reads would hold the server)
        let grace = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open; closing them");
        };
        let router = tls::routes(ca).merge(app(self.state));
        let serve = async {
            match self.tls {
                None => axum::serve(
                    axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
                        let _ = tcp.set_nodelay(true);
                    }),
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|source| ServerError::Listen { addr, source }),
                Some(t) => {
                    serve_tls(self.listener, t.config, router, shutdown).await;
                    Ok(())
                }
            }
        };
        let result = tokio::select! {
            r = serve => r,
            () = grace => Ok(()),
        };
        compactor.abort();
        purger.abort();
        sweeper.abort();
        throttles.abort();
        let _ = tokio::time::timeout(Duration::from_secs(5), auditor.sync()).await;
        result
    }
}

/// Accepts TLS connections and serves `router` on each (HTTP/1.1 with upgrades, or HTTP/2)
/// until `shutdown` resolves, then waits for open connections to finish, as `axum::serve`
/// does. A failed accept or handshake only drops that connection.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // e.g. out of file descriptors: back off rather than spin
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // small answers (a status PATCH) go out at once, not after the peer's delayed ACK
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
