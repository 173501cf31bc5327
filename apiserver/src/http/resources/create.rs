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
    let dry_run = p.dry_run()?;
    let written = s
        .registry
        .create(scope, apply::track_create(obj, &manager), dry_run)
        .await?;
    if scope.kind.plural == "apikeys" && !dry_run {
        return Ok(created(issue_key(&s, scope, written.object).await?));
    }
    Ok(created(written.object))
}

/// A new ApiKey's secret: made now, stored only as a hash, and shown once, in the answer to
/// the create (`status.token`). The key's status keeps the first characters to recognise it.
async fn issue_key(
    s: &AppState,
    scope: crate::registry::Scope<'_>,
    obj: Value,
) -> ApiResult<Value> {
    let name = catalyst_schemas::object::name_of(&obj).to_owned();
    let identity = crate::auth::Identity {
        role: "apikey".into(),
        name: name.clone(),
        uid: catalyst_schemas::object::uid_of(&obj).map(str::to_owned),
        ..crate::auth::Identity::new("apikey", "")
    };
    let token = format!("ck_{}", crate::auth::new_token());
    let secret = crate::auth::Authenticator::issue_secret(s.registry.store(), &token, &identity)
        .await
        .map_err(crate::error::ApiError::from)?;
    s.auth.remember(&secret, identity);
    let prefix: String = token.chars().take(10).collect();
    let mut stored = s
        .registry
        .merge_patch(
            scope,
            &name,
            serde_json::json!({"status": {"tokenPrefix": prefix}}),
            crate::registry::Part::Status,
            false,
        )
        .await
        .map(|w| w.object)
        .unwrap_or(obj);
    stored["status"]["token"] = token.into();
    Ok(stored)
}

/// A 201 with the object.
pub(super) fn created(obj: Value) -> Response {
    (StatusCode::CREATED, Json(obj)).into_response()
}
