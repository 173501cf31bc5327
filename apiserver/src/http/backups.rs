//! `GET …/namespaces/NS/backups/NAME/download`: a completed Backup's archive (tar.zst),
//! streamed from the node that keeps it through its tunnel, with ranges (resumable), as the
//! file manager streams a file. RBAC: `get backups/download` (`backup.download`).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use catalyst_schemas::lookup_kind;
use catalyst_schemas::tunnel::{Answer, BackupCall, TunnelOp};
use serde_json::Value;

use super::files::{file_error, parse_range, streamed};
use super::tunnel::owner;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::registry::{meta_str, Scope};
use crate::state::AppState;

/// The backup routes.
pub fn routes() -> Router<AppState> {
    const API: &str = "/apis/catalyst.dev/v1alpha1";
    Router::new().route(
        &format!("{API}/namespaces/{{ns}}/backups/{{name}}/download"),
        get(download),
    )
}

/// `GET`: the archive's bytes.
pub async fn download(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let scope = Scope {
        kind: lookup_kind("backups").expect("kind"),
        namespace: Some(&ns),
    };
    let backup = state.registry.get(scope, &name).await?;
    let at = |p: &str| backup.pointer(p).and_then(Value::as_str);
    if at("/status/phase") != Some("Completed") {
        return Err(ApiError::Conflict {
            message: format!("backup {name:?} is not completed"),
            causes: vec![],
        });
    }
    let (Some(node), Some(from)) = (at("/status/nodeName"), at("/status/gameServerUid")) else {
        return Err(ApiError::Conflict {
            message: format!("backup {name:?} does not say where it is kept"),
            causes: vec![],
        });
    };
    // a backup in S3 is read by any connected node (its own first)
    let s3 = state
        .registry
        .backup_s3_target(&backup)
        .await
        .map_err(|e| match e {
            crate::registry::TargetError::Api(e) => e,
            e => ApiError::Conflict {
                message: format!("backup {name:?}: {e}"),
                causes: vec![],
            },
        })?;
    let node = match &s3 {
        None => node.to_owned(),
        Some(_) => {
            let connected = state.tunnels.nodes();
            if connected.iter().any(|n| n == node) {
                node.to_owned()
            } else {
                connected
                    .into_iter()
                    .next()
                    .ok_or_else(|| ApiError::Conflict {
                        message: format!(
                            "backup {name:?}: no node is connected to read it from S3"
                        ),
                        causes: vec![],
                    })?
            }
        }
    };
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => Some(parse_range(v)?),
        None => None,
    };
    let (start, end, suffix) = range.unwrap_or_default();
    let call = BackupCall::Read {
        from: from.to_owned(),
        id: meta_str(&backup, "uid").unwrap_or_default().to_owned(),
        start,
        end,
        suffix,
        s3,
    };
    let mut answers = state
        .tunnels
        .request(&node, &owner(caller.as_deref()), TunnelOp::Backup { call })
        .await?;
    let first = answers.next_in_time().await?;
    if let Answer::Failed { code, error } = first {
        return Err(file_error(code, error, &format!("backup {name}")));
    }
    streamed(answers, first, range.is_some(), &format!("{name}.tar.zst"))
}
