//! Health and metrics: `/healthz` (the process answers), `/readyz` (the store answers),
//! `/version`, and `/metrics` (Prometheus text: requests, watches, the store revision and the
//! connected nodes' metrics).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use catalyst_schemas::API_VERSION;
use serde_json::json;

use crate::state::AppState;

/// `/healthz`, `/readyz` and `/version`: open to anyone.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/version",
            get(|| async {
                Json(json!({"catalyst": env!("CARGO_PKG_VERSION"), "apiVersion": API_VERSION}))
            }),
        )
}

/// `/metrics`: behind authentication.
pub fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.registry.store().current_revision().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let revision = state.registry.store().current_revision().await.ok();
    let watchers: usize = state.caches.values().map(|c| c.watchers()).sum();
    let mut text = state.metrics.render(revision, watchers);
    text.push_str(&state.tunnels.prometheus().await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
