//! Events the reconcilers record about the objects they act on.

use catalyst_apiserver::registry::{Registry, Scope};
use chrono::Utc;
use serde_json::{json, Value};

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
    let kind_name = involved.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = involved
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = involved
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let now = Utc::now();
    let event = json!({
        "apiVersion": catalyst_schemas::API_VERSION, "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": ns},
        "spec": {
            "involvedObject": {"kind": kind_name, "name": name, "namespace": ns, "uid": involved.pointer("/metadata/uid")},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": "controller",
        }
    });
    let scope = Scope {
        kind: kind("events"),
        namespace: Some(ns),
    };
    if let Err(e) = registry.create(scope, event, false).await {
        tracing::warn!(error = %e, reason, "cannot record an event");
    }
}
