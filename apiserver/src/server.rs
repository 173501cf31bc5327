//! `catalyst server`: the data directory, the store, the bootstrap credentials and the HTTP
//! listener.

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

/// The client config `catalystctl` reads.
pub fn client_config(server: &str, token: &str) -> String {
    format!("apiVersion: catalyst.dev/v1alpha1\nkind: Config\nserver: {server}\ntoken: {token}\nnamespace: default\n")
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
    listener: tokio::net::TcpListener,
    audit_retention: Duration,
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

    let admin_config = config.data_dir.join("admin.yaml");
    let join_token = config.data_dir.join("join-token");
    let server_url = format!("http://{addr}");
    if !admin_config.exists() {
        let token = Authenticator::issue(&store, &Identity::new("admin", "admin")).await?;
        write_private(&admin_config, &client_config(&server_url, &token))?;
    } else {
        // keep the token, follow the address (the port may have changed)
        let text = std::fs::read_to_string(&admin_config).map_err(io(&admin_config))?;
        let token = text
            .lines()
            .find_map(|l| l.strip_prefix("token: "))
            .unwrap_or("")
            .trim()
            .to_owned();
        write_private(&admin_config, &client_config(&server_url, &token))?;
    }
    if !join_token.exists() {
        let token = Authenticator::issue(&store, &Identity::new("join", "nodes")).await?;
        write_private(&join_token, &format!("{token}\n"))?;
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
        listener,
        audit_retention: config.audit_retention,
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

impl Running {
    /// Serves until `shutdown` resolves, keeping the history bounded and the audit log within
    /// its retention meanwhile; the audit records of the last requests are written before it
    /// returns. Handlers see the peer address as `ConnectInfo<SocketAddr>`.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let store: Arc<dyn Store> = self.state.registry.store().clone();
        let compactor = store::spawn_compactor(store.clone(), HISTORY, Duration::from_secs(60));
        let purger = audit::spawn_purger(store, self.audit_retention, audit::PURGE_EVERY);
        let addr = self.addr;
        let auditor = self.state.audit.clone();
        let result = axum::serve(
            self.listener,
            app(self.state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServerError::Listen { addr, source });
        compactor.abort();
        purger.abort();
        let _ = tokio::time::timeout(Duration::from_secs(5), auditor.sync()).await;
        result
    }
}
