//! The state every HTTP handler shares: the registry, the watch caches, the authenticator, the
//! rate limits, the metrics, the node tunnels and the audit writer. It holds these plain types
//! and knows no handler.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use catalyst_schemas::KINDS;

use crate::audit::Auditor;
use crate::auth::jwt::Sessions;
use crate::auth::limits::RateLimits;
use crate::auth::throttle::{Policy, Throttle};
use crate::auth::{Access, Authenticator};
use crate::limits::WatchLimiter;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::StoreError;
use crate::tunnel::Tunnels;
use crate::watch::WatchCache;

/// How often a watch sends a BOOKMARK when asked for them.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Object operations.
    pub registry: Registry,
    /// One watch cache per kind.
    pub caches: Arc<HashMap<&'static str, Arc<WatchCache>>>,
    /// Bearer-token checks.
    pub auth: Arc<Authenticator>,
    /// What authorization reads: mirrors of nodes and the access kinds.
    pub access: Arc<Access>,
    /// Login sessions (JWTs, refresh tokens).
    pub sessions: Arc<Sessions>,
    /// Failed logins, password changes and TOTP codes per account, counted in the store (one
    /// count for all servers on it).
    pub account_throttle: Arc<Throttle>,
    /// Failed logins and joins per source address.
    pub address_throttle: Arc<Throttle>,
    /// Request rates per API key and user, and successful joins per address (tests replace it
    /// with tighter limits).
    pub limits: Arc<RateLimits>,
    /// Request counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Bookmark interval (shorter in tests).
    pub bookmark_interval: Duration,
    /// Open node tunnels.
    pub tunnels: Arc<Tunnels>,
    /// The audit log's writer (the store only; the server replaces it to add a file).
    pub audit: Arc<Auditor>,
    /// Open watches per client (lower it in tests).
    pub watch_limiter: Arc<WatchLimiter>,
    /// True once the server stops: watches end, so that their connections close.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AppState {
    /// Starts the watch caches and assembles the state.
    pub async fn new(registry: Registry, auth: Authenticator) -> Result<Self, StoreError> {
        Self::with_window(registry, auth, crate::watch::WINDOW).await
    }

    /// As [`AppState::new`], with watch caches of `window` events.
    pub async fn with_window(
        registry: Registry,
        auth: Authenticator,
        window: usize,
    ) -> Result<Self, StoreError> {
        let mut caches = HashMap::new();
        for kind in KINDS {
            let cache = WatchCache::start(registry.store().clone(), kind, window).await?;
            caches.insert(kind.plural, cache);
        }
        let access = Arc::new(Access::start(&registry, &caches).await);
        let check = access.clone();
        registry.set_write_check(Arc::new(move |plural, obj| {
            crate::auth::escalation::check_write(&check, plural, obj)
        }));
        let editors = access.clone();
        registry.set_editor_check(Arc::new(move || {
            use catalyst_schemas::template::Editor;
            match crate::auth::escalation::current() {
                None | Some(crate::auth::Caller::Admin(_)) => Editor::Operator,
                Some(caller) => {
                    let update = catalyst_schemas::rbac::Attributes::new("update", "templates");
                    if editors.may(&caller, &update) {
                        Editor::Operator
                    } else {
                        Editor::User
                    }
                }
            }
        }));
        let sessions = Sessions::load(registry.store().clone())
            .await
            .map_err(|e| match e {
                crate::auth::jwt::SessionError::Store(e) => e,
                other => StoreError::Corrupt(other.to_string()),
            })?;
        let audit = Auditor::start(registry.store().clone(), None)
            .expect("an audit writer without a file opens nothing");
        let store = registry.store().clone();
        Ok(Self {
            registry,
            caches: Arc::new(caches),
            auth: Arc::new(auth),
            access,
            sessions: Arc::new(sessions),
            account_throttle: Arc::new(Throttle::shared(Policy::ACCOUNT, store, "account")),
            address_throttle: Arc::new(Throttle::new(Policy::ADDRESS)),
            limits: Arc::new(RateLimits::default()),
            metrics: Arc::new(Metrics::default()),
            bookmark_interval: BOOKMARK_INTERVAL,
            tunnels: Arc::default(),
            audit: Arc::new(audit),
            watch_limiter: Arc::default(),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
        })
    }
}
