//! `GET /auth/v1/audit`: the audit log, read back (behind authentication; the administrator
//! only for now).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, AuditError, AuditQuery};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// How long a read waits for the records queued before it to be written.
const SYNC_WAIT: Duration = Duration::from_secs(2);

/// `GET /auth/v1/audit`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/v1/audit", get(read))
}

/// The query of `GET /auth/v1/audit`.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// Only records of this caller name.
    pub user: Option<String>,
    /// RFC 3339 or a duration back from now.
    pub since: Option<String>,
    /// At most this many (the newest).
    pub limit: Option<String>,
}

/// Answers `{"apiVersion", "kind": "AuditRecordList", "items": [...]}`, oldest first.
async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<Params>,
) -> Response {
    match read_inner(&state, &caller, &params).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn read_inner(
    state: &AppState,
    caller: &Caller,
    params: &Params,
) -> Result<Response, ApiError> {
    let read = catalyst_schemas::rbac::Attributes::new("list", "auditrecords");
    if !state.access.may(caller, &read) {
        return Err(ApiError::Forbidden(format!(
            "{} may not read the audit log",
            caller.key()
        )));
    }
    let query = AuditQuery::parse(
        params.user.as_deref(),
        params.since.as_deref(),
        params.limit.as_deref(),
        Utc::now(),
    )
    .map_err(|e| match e {
        AuditError::Store(s) => ApiError::from(s),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    // what was written just before this read should be in it
    let _ = tokio::time::timeout(SYNC_WAIT, state.audit.sync()).await;
    let items = audit::list(state.registry.store().as_ref(), &query).await?;
    Ok(Json(json!({
        "apiVersion": audit::API_VERSION,
        "kind": "AuditRecordList",
        "items": items,
    }))
    .into_response())
}
