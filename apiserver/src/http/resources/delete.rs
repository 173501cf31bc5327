//! DELETE on an object: with finalizers it is marked and waits.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::request::{Body, Params, Target};
use crate::error::{ApiError, ApiResult};
use crate::registry::parse_revision;
use crate::state::AppState;

/// Options a DELETE body may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    #[serde(default)]
    preconditions: Option<Preconditions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    resource_version: Option<String>,
}

/// `DELETE` on an object.
pub(super) async fn object_delete(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    Body(body): Body,
) -> ApiResult<Response> {
    let (scope, name) = (t.scope()?, t.name()?);
    let options: DeleteOptions = if body.is_empty() {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    let pinned = options
        .preconditions
        .and_then(|p| p.resource_version)
        .map(|rv| parse_revision(&rv))
        .transpose()?;
    let dry_run = p.dry_run()?;
    // dependents go with their owner through the controllers' garbage collector
    // (catalyst_controllers::gc), also when a finalizer lets the owner go later
    let obj = s.registry.delete(scope, name, pinned, dry_run).await?;
    Ok(Json(obj).into_response())
}
