//! GET: one object (or its status), a list of a collection, or a watch when `watch=true`.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::request::{truthy, Params, Target};
use super::watch::watch;
use crate::error::ApiResult;
use crate::registry::Scope;
use crate::state::AppState;

/// `GET` on a collection: a list, or a watch with `watch=true`.
pub(super) async fn collection_get(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    list_or_watch(s, t.scope()?, p, ws.ok()).await
}

/// `GET` on an object or its status.
pub(super) async fn object_get(
    State(s): State<AppState>,
    Path(t): Path<Target>,
) -> ApiResult<Response> {
    t.part()?;
    Ok(Json(s.registry.get(t.scope()?, t.name()).await?).into_response())
}

async fn list_or_watch(
    s: AppState,
    scope: Scope<'_>,
    p: Params,
    ws: Option<WebSocketUpgrade>,
) -> ApiResult<Response> {
    if truthy(&p.watch) {
        return watch(s, scope, p, ws).await;
    }
    let result = s.registry.list(scope, &p.list_request()?).await?;
    Ok(Json(result.to_value(scope.kind)).into_response())
}
