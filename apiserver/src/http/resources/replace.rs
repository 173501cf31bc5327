//! PUT on an object or its status: replaces it, pinned to the body's resourceVersion if any.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::request::{parse_body, Body, Params, Target};
use crate::apply;
use crate::error::{ApiError, ApiResult};
use crate::registry::{meta_str, parse_revision};
use crate::state::AppState;

/// `PUT` on an object or its status.
pub(super) async fn object_put(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let (scope, name, part) = t.object()?;
    let obj = parse_body(&headers, &body)?;
    let manager = p.manager(&headers);
    let pinned = meta_str(&obj, "resourceVersion")
        .map(parse_revision)
        .transpose()?;
    if meta_str(&obj, "name").is_some_and(|n| n != name) {
        return Err(ApiError::BadRequest(format!(
            "the name of the object does not match the request ({name})"
        )));
    }
    let written = s
        .registry
        .update_with(scope, name, pinned, part, p.dry_run()?, |current| {
            Ok(apply::track_update(current, obj.clone(), &manager, part))
        })
        .await?;
    Ok(Json(written.object).into_response())
}
