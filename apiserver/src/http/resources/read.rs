//! GET: one object (or its status), a list of a collection, or a watch when `watch=true`.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;

use super::request::{truthy, Params, Target};
use super::watch::watch;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

/// `GET` on a collection: a list, or a watch with `watch=true`.
pub(super) async fn collection_get(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    caller: Option<Extension<Caller>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let scope = t.scope()?;
    if truthy(&p.watch) {
        // watches are counted per caller (`user:NAME`, `apikey:NAME`, `node:NAME`, …)
        let who = caller.map_or_else(|| "anonymous".to_owned(), |c| c.key());
        return watch(s, scope, p, &who, ws.ok()).await;
    }
    let result = s.registry.list(scope, &p.list_request()?).await?;
    Ok(Json(result.to_value(scope.kind)).into_response())
}

/// `GET` on an object or its status.
pub(super) async fn object_get(
    State(s): State<AppState>,
    Path(t): Path<Target>,
) -> ApiResult<Response> {
    let (scope, name, _) = t.object()?;
    Ok(Json(s.registry.get(scope, name).await?).into_response())
}
