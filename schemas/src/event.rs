//! The Event and Lease kinds: what happened to an object, and who holds a lock or heartbeat.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::object::{name_of, namespace_of};
use crate::resource::{resource, NoStatus, Validate};
use crate::validation::{self, Causes, FieldPath};

resource! {
    /// Something that happened to an object, shown by `describe`.
    Event {
        spec: EventSpec,
        status: NoStatus,
        plural: "events",
        singular: "event",
        short: ["ev"],
        namespaced: true,
        name_rule: validation::dns_subdomain,
    }
}

resource! {
    /// A named lock with a holder and an expiry: leader election and node heartbeats.
    Lease {
        spec: LeaseSpec,
        status: NoStatus,
        plural: "leases",
        singular: "lease",
        short: [],
        namespaced: true,
        name_rule: validation::dns_subdomain,
    }
}

/// The object an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    /// Routine.
    #[default]
    Normal,
    /// Needs attention.
    Warning,
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSpec {
    /// The object.
    pub involved_object: ObjectReference,
    /// A CamelCase reason, e.g. `Scheduled`, `Crashed`.
    pub reason: String,
    /// For people.
    #[serde(default)]
    pub message: String,
    /// Normal or Warning.
    #[serde(default, rename = "type")]
    pub type_: EventType,
    /// How often it happened (repeats are counted, not stored again).
    #[serde(default = "one")]
    pub count: i64,
    /// The first time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<DateTime<Utc>>,
    /// The last time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<DateTime<Utc>>,
    /// The component that reported it, e.g. `nodelet/node-a`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

fn one() -> i64 {
    1
}

impl Validate for EventSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        let p = path.child("involvedObject");
        causes.check(
            !self.involved_object.kind.is_empty(),
            &p.child("kind"),
            "is required",
        );
        causes.check(
            !self.involved_object.name.is_empty(),
            &p.child("name"),
            "is required",
        );
        let reason_ok =
            !self.reason.is_empty() && self.reason.chars().all(|c| c.is_ascii_alphanumeric());
        causes.check(reason_ok, &path.child("reason"), "must be a CamelCase word");
        causes.check(self.count >= 1, &path.child("count"), "must be at least 1");
    }
}

/// Who holds the lease, and until when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaseSpec {
    /// The holder's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// How long a renewal is valid.
    #[serde(default = "fifteen")]
    pub lease_duration_seconds: i64,
    /// When the current holder took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<DateTime<Utc>>,
    /// The last renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<DateTime<Utc>>,
    /// How often the holder changed.
    #[serde(default)]
    pub lease_transitions: i64,
}

fn fifteen() -> i64 {
    15
}

impl Validate for LeaseSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.check(
            (1..=3600).contains(&self.lease_duration_seconds),
            &path.child("leaseDurationSeconds"),
            "must be between 1 and 3600",
        );
        causes.check(
            self.lease_transitions >= 0,
            &path.child("leaseTransitions"),
            "must not be negative",
        );
    }
}

/// A new Event (as JSON, ready to create in its namespace) that `source` saw `reason` happen
/// to `involved`; it lands in the object's namespace, `default` for cluster-scoped ones.
pub fn event_about(
    involved: &serde_json::Value,
    type_: &str,
    reason: &str,
    message: &str,
    source: &str,
) -> serde_json::Value {
    let name = name_of(involved);
    let ns = namespace_of(involved).unwrap_or("default");
    let kind = involved
        .get("kind")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let now = Utc::now();
    serde_json::json!({
        "apiVersion": crate::API_VERSION, "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": ns},
        "spec": {
            "involvedObject": {"kind": kind, "name": name, "namespace": ns,
                               "uid": involved.pointer("/metadata/uid")},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_about_an_object_names_it_and_lands_in_its_namespace() {
        let gs = serde_json::json!({"kind": "GameServer",
            "metadata": {"name": "web", "namespace": "team", "uid": "u1"}});
        let ev = event_about(&gs, "Warning", "Crashed", "exited with code 1", "nodelet");
        assert_eq!(ev["metadata"]["namespace"], "team");
        assert_eq!(ev["metadata"]["generateName"], "web.");
        let spec: EventSpec = serde_json::from_value(ev["spec"].clone()).expect("an EventSpec");
        assert_eq!(spec.reason, "Crashed");
        assert_eq!(ev["spec"]["involvedObject"]["uid"], "u1");
        assert_eq!(ev["spec"]["involvedObject"]["kind"], "GameServer");
        assert_eq!(ev["spec"]["source"], "nodelet");
        let node = serde_json::json!({"kind": "Node", "metadata": {"name": "n1"}});
        assert_eq!(
            event_about(&node, "Normal", "x", "", "controller")["metadata"]["namespace"],
            "default"
        );
    }
}
