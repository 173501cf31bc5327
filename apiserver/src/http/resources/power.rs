//! `POST …/namespaces/NS/gameservers/NAME/{start,stop,restart,suspend,unsuspend,reinstall}`:
//! the power actions as subresources, so RBAC grants them one by one (`create
//! gameservers/start`, …). Each applies its merge patch ([`PowerAction::merge_patch`]) and
//! answers 200 with the object; `?dryRun=All` works as on every write. `POST
//! …/namespaces/NS/schedules/NAME/run` is the same for a Schedule's run-now request
//! ([`run_now_patch`]: the `catalyst.dev/runRequestedAt` annotation the schedule controller
//! acts on; RBAC `create schedules/run`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use catalyst_schemas::power::PowerAction;
use catalyst_schemas::schedule::run_now_patch;
use serde_json::Value;

use super::request::{parse_body, scope, Params};
use crate::apply;
use crate::error::{ApiError, ApiResult};
use crate::registry::Part;
use crate::state::AppState;

/// One static route per action (axum prefers them to the generic `{plural}/{name}/{sub}`).
pub(super) fn routes(api: &str) -> Router<AppState> {
    let mut router = Router::new();
    for action in PowerAction::ALL {
        let path = format!(
            "{api}/namespaces/{{ns}}/gameservers/{{name}}/{}",
            action.subresource()
        );
        router = router.route(
            &path,
            post(
                move |state: State<AppState>,
                      target: Path<(String, String)>,
                      query: Query<Params>,
                      headers: HeaderMap,
                      body: Bytes| {
                    patch_action(Target::Power(action), state, target, query, headers, body)
                },
            ),
        );
    }
    router.route(
        &format!("{api}/namespaces/{{ns}}/schedules/{{name}}/run"),
        post(
            |state: State<AppState>,
             target: Path<(String, String)>,
             query: Query<Params>,
             headers: HeaderMap,
             body: Bytes| {
                patch_action(Target::RunSchedule, state, target, query, headers, body)
            },
        ),
    )
}

/// What a POST here does.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A GameServer power action.
    Power(PowerAction),
    /// A Schedule's run-now request.
    RunSchedule,
}

/// The body may be absent or an empty object.
fn check_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<()> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match parse_body(headers, body)? {
        Value::Object(m) if m.is_empty() => Ok(()),
        _ => Err(ApiError::BadRequest(
            "this action takes no body (or {})".into(),
        )),
    }
}

async fn patch_action(
    target: Target,
    State(s): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_body(&headers, &body)?;
    let now = chrono::Utc::now();
    let (plural, patch, action) = match target {
        Target::Power(a) => ("gameservers", a.merge_patch(now), a.subresource()),
        Target::RunSchedule => ("schedules", run_now_patch(now), "run"),
    };
    let scope = scope(plural, Some(&ns))?;
    let dry_run = p.dry_run()?;
    let manager = p.manager(&headers);
    let written = s
        .registry
        .update_with(scope, &name, None, Part::Main, dry_run, |current| {
            let mut next = current.clone();
            crate::registry::merge(&mut next, &patch);
            Ok(apply::track_update(current, next, &manager, Part::Main))
        })
        .await?;
    tracing::info!(
        namespace = ns,
        name,
        kind = plural,
        action,
        dry_run,
        changed = written.changed,
        "power action"
    );
    Ok(Json(written.object).into_response())
}
