//! GET: one object (or its status), a list of a collection, or a watch when `watch=true`.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::request::{truthy, Params, Target};
use super::watch::watch;
use crate::error::ApiResult;
use crate::state::AppState;

/// `GET` on a collection: a list, or a watch with `watch=true`.
pub(super) async fn collection_get(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let scope = t.scope()?;
    if truthy(&p.watch) {
        // watches are counted per client: for now the hash of its token
        let token = crate::auth::request_token(&headers, query.as_deref()).unwrap_or_default();
        return watch(s, scope, p, &crate::auth::hash(&token), ws.ok()).await;
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
