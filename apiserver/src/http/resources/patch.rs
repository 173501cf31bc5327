//! PATCH on an object or its status: server-side apply (`application/apply-patch+yaml`) or an
//! RFC 7386 merge patch.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use catalyst_schemas::rbac::Attributes;
use serde_json::Value;

use super::create::created;
use super::request::{parse_body, truthy, Body, Params, Target};
use crate::apply;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::registry::parse_revision;
use crate::state::AppState;

/// Response header of apply patches: `true` when the apply changed the object.
pub const CHANGED_HEADER: &str = "catalyst-changed";

/// `PATCH` on an object or its status.
pub(super) async fn object_patch(
    State(s): State<AppState>,
    Path(t): Path<Target>,
    Query(p): Query<Params>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let (scope, name, part) = t.object()?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let dry_run = p.dry_run()?;
    if ct.starts_with("application/apply-patch+yaml")
        || ct.starts_with("application/apply-patch+json")
    {
        let manager = p
            .field_manager
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::BadRequest("fieldManager is required for apply patches".into())
            })?;
        let config = parse_body(&headers, &body)?;
        // the middleware authorized a patch; an apply that creates must also be a create
        // (nodes are authorized for what they write by the node authorizer); without a caller
        // (a route outside authentication) nothing is created
        let may_create = match caller.as_ref().map(|c| &c.0) {
            None => false,
            Some(Caller::Node(_)) => true,
            Some(c) => {
                let mut a = Attributes::new("create", scope.kind.plural);
                a.namespace = scope.namespace.map(str::to_owned);
                crate::auth::allows(&s, c, &a)
            }
        };
        let (written, created_now) = apply::server_side_apply(
            &s.registry,
            scope,
            name,
            config,
            &manager,
            truthy(&p.force),
            part,
            dry_run,
            may_create,
        )
        .await?;
        let changed = if written.changed { "true" } else { "false" };
        let mut response = if created_now {
            created(written.object)
        } else {
            Json(written.object).into_response()
        };
        // whether this apply changed the object, so clients need not guess from resourceVersions
        response.headers_mut().insert(
            CHANGED_HEADER,
            axum::http::HeaderValue::from_static(changed),
        );
        return Ok(response);
    }
    if !(ct.starts_with("application/merge-patch+json") || ct.starts_with("application/json")) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "unsupported patch type {ct:?}: use application/merge-patch+json or application/apply-patch+yaml"
        )));
    }
    let patch = parse_body(&headers, &body)?;
    let manager = p.manager(&headers);
    let pinned = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(parse_revision)
        .transpose()?;
    let written = s
        .registry
        .update_with(scope, name, pinned, part, dry_run, |current| {
            let mut next = current.clone();
            crate::registry::merge(&mut next, &patch);
            Ok(apply::track_update(current, next, &manager, part))
        })
        .await?;
    Ok(Json(written.object).into_response())
}
