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
use crate::store::StoreError;

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

/// What `/readyz` answers when the store does not: the store's error (which may name hosts,
/// paths or users) goes to the log, never to the caller.
pub const READYZ_UNAVAILABLE: &str = "store unavailable";

async fn readyz(State(state): State<AppState>) -> Response {
    ready_answer(state.registry.store().current_revision().await)
}

fn ready_answer<T>(store: Result<T, StoreError>) -> Response {
    match store {
        Ok(_) => "ok".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readyz: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, READYZ_UNAVAILABLE).into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let revision = state.registry.store().current_revision().await.ok();
    let watchers: usize = state.caches.values().map(|c| c.watchers()).sum();
    let fenced = state.registry.fenced_writes();
    let mut text = state.metrics.render(revision, watchers, fenced);
    // the nodes' samples from one server only: the controllers' leader (every server holds a
    // tunnel to every node)
    if state.metrics.speaks_for_nodes() {
        text.push_str(&state.tunnels.prometheus().await);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    #[tokio::test]
    async fn readyz_answers_a_fixed_message_when_the_store_fails() {
        let secret = StoreError::backend(
            "postgres",
            "connection to postgres://admin:hunter2@db/x refused",
        );
        let resp = ready_answer::<u64>(Err(secret));
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], READYZ_UNAVAILABLE.as_bytes());
        let resp = ready_answer(Ok(7u64));
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
