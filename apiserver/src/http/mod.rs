//! The HTTP API: Kubernetes-style REST and watch for every kind, discovery, OpenAPI, health,
//! metrics, node joins and node tunnels, and the web panel at `/`. Each submodule exposes its own `routes()`; [`app`]
//! only merges them and adds the layers (authentication in front of the API, the body limit,
//! a panic guard that turns a handler's panic into a 500 Status, request metrics and the audit
//! log around everything). Tests drive the router with `oneshot`, without a socket.

use std::any::Any;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::limits::MAX_BODY_BYTES;

pub mod audit;
pub mod backups;
pub mod console;
pub mod convert;
pub mod discovery;
pub mod files;
pub mod health;
pub mod login;
pub mod nodes;
pub mod panel;
pub mod resources;
pub mod sftp;
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
        .merge(files::routes())
        .merge(backups::routes())
        .merge(sftp::routes())
        .merge(console::routes())
        .merge(convert::routes())
        .merge(login::routes())
        .merge(audit::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ));
    let routes = Router::new()
        .merge(health::routes())
        .merge(nodes::routes())
        .merge(login::open_routes())
        .merge(api)
        // the web panel: only what no route matched, never an API path
        .fallback(panel::fallback)
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(format!("{method} is not allowed on this path"))
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    with_panic_guard(routes)
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

/// `router` with every panic of its handlers answered as a 500 Status (`InternalError`) instead
/// of a dropped connection. The panic's message is logged here; its backtrace is logged by the
/// process's panic hook (`catalyst` installs one).
pub fn with_panic_guard<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(CatchPanicLayer::custom(panic_response))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = what, "a request handler panicked; answered 500");
    // the caller learns that something broke, not what: the message may hold internals
    let error =
        ApiError::Internal("internal error: the request failed in the server (logged)".into());
    (error.code(), Json(error.status())).into_response()
}
