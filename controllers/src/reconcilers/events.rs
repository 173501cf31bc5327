//! Events the reconcilers record about the objects they act on.

use catalyst_apiserver::registry::{Registry, Scope};
use serde_json::Value;

use super::context::kind;

/// An Event to record: (type, reason, message).
pub(super) type EventNote = (&'static str, &'static str, String);

/// Writes an Event about an object (best effort: a failure is logged, not returned).
pub async fn record_event(
    registry: &Registry,
    involved: &Value,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let event =
        catalyst_schemas::event::event_about(involved, type_, reason, message, "controller");
    let ns = catalyst_schemas::object::namespace_of(&event)
        .unwrap_or("default")
        .to_owned();
    let scope = Scope {
        kind: kind("events"),
        namespace: Some(&ns),
    };
    if let Err(e) = registry.create(scope, event, false).await {
        tracing::warn!(error = %e, reason, "cannot record an event");
    }
}
