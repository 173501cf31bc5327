//! The state every HTTP handler shares: the registry, the watch caches, the authenticator, the
//! metrics, the node tunnels and the per-client limits. It holds these plain types and knows no handler.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use catalyst_schemas::KINDS;

use crate::auth::Authenticator;
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
    /// Request counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Bookmark interval (shorter in tests).
    pub bookmark_interval: Duration,
    /// Open node tunnels.
    pub tunnels: Arc<Tunnels>,
    /// Open watches per client (lower it in tests).
    pub watch_limiter: Arc<WatchLimiter>,
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
        Ok(Self {
            registry,
            caches: Arc::new(caches),
            auth: Arc::new(auth),
            metrics: Arc::new(Metrics::default()),
            bookmark_interval: BOOKMARK_INTERVAL,
            tunnels: Arc::default(),
            watch_limiter: Arc::default(),
        })
    }
}
