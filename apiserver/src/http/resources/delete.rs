//! DELETE on an object: with finalizers it is marked and waits; once gone, its dependents are
//! collected.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::request::{Body, Params, Target};
use crate::error::{ApiError, ApiResult};
use crate::registry::{meta_str, parse_revision};
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
    let obj = s.registry.delete(scope, name, pinned, dry_run).await?;
    let gone = obj.pointer("/metadata/deletionTimestamp").is_none()
        || obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
    if gone && !dry_run {
        if let Some(uid) = meta_str(&obj, "uid") {
            s.registry.collect_dependents(uid.to_owned());
        }
    }
    Ok(Json(obj).into_response())
}
