//! POST on a collection: creates an object (field ownership recorded for its manager).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::request::{parse_body, Body, Params, Target};
use crate::apply;
use crate::error::ApiResult;
use crate::state::AppState;

/// `POST` on a collection.
pub(super) async fn collection_post(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let scope = t.scope()?;
    let obj = parse_body(&headers, &body)?;
    let manager = p.manager(&headers);
    let written = s
        .registry
        .create(scope, apply::track_create(obj, &manager), p.dry_run()?)
        .await?;
    Ok(created(written.object))
}

/// A 201 with the object.
pub(super) fn created(obj: Value) -> Response {
    (StatusCode::CREATED, Json(obj)).into_response()
}
