//! The HTTP API: Kubernetes-style REST and watch for every kind, discovery, OpenAPI, health,
//! metrics, node joins and node tunnels. Each submodule exposes its own `routes()`; [`app`]
//! only merges them and adds the layers (authentication in front of the API, request metrics
//! and the audit log around everything). Tests drive the router with `oneshot`, without a socket.

use axum::middleware;
use axum::Router;

use crate::error::ApiError;

pub mod audit;
pub mod discovery;
pub mod health;
pub mod login;
pub mod nodes;
pub mod resources;
pub mod tunnel;

pub use crate::state::{AppState, BOOKMARK_INTERVAL};
pub use resources::CHANGED_HEADER;

/// The router with every route.
pub fn app(state: AppState) -> Router {
    // everything under the API needs a token; probes, version and joins do not
    let api = Router::new()
        .merge(discovery::routes())
        .merge(health::metrics_routes())
        .merge(resources::routes())
        .merge(tunnel::routes())
        .merge(login::routes())
        .merge(audit::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ));
    Router::new()
        .merge(health::routes())
        .merge(nodes::routes())
        .merge(login::open_routes())
        .merge(api)
        .fallback(|| async {
            ApiError::NotFound {
                kind: "path".into(),
                name: String::new(),
            }
        })
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::record,
        ))
        // outermost: it sees every answer, joins and refusals included
        .layer(middleware::from_fn_with_state(
            state.audit.clone(),
            crate::audit::record,
        ))
        .with_state(state)
}
