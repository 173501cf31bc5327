//! Accessors over objects held as JSON (`serde_json::Value`): the few fields every controller,
//! the nodelet and the API server read from objects they do not deserialize whole. Each one is
//! written here once.

use serde_json::Value;

use crate::lifecycle::Phase;
use crate::meta::Condition;

/// `namespace/name`, or `name` for cluster-scoped kinds: the key caches and queues use.
pub type Key = String;

/// The annotation `catalystctl restart` sets (an RFC 3339 time); the nodelet restarts the
/// server once per new value.
pub const RESTARTED_AT: &str = "catalyst.dev/restartedAt";

/// The annotation `POST …/gameservers/NAME/reinstall` sets (an RFC 3339 time): a request to
/// run the install script again, once per new value.
pub const REINSTALL_REQUESTED_AT: &str = "catalyst.dev/reinstallRequestedAt";

/// A string field by JSON pointer, `""` when absent or not a string.
pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `metadata.name`.
pub fn name_of(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

/// `metadata.namespace`, if the object has one.
pub fn namespace_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace").and_then(Value::as_str)
}

/// `metadata.uid`, if set.
pub fn uid_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

/// `metadata.generation`, if set.
pub fn generation_of(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/generation").and_then(Value::as_i64)
}

/// `metadata.resourceVersion` as a number, if set and numeric.
pub fn resource_version(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
}

/// True when `candidate` is at least as new as `current` by resource version (an object
/// without one counts as oldest).
pub fn is_newer_or_same(candidate: &Value, current: &Value) -> bool {
    resource_version(candidate).unwrap_or(0) >= resource_version(current).unwrap_or(0)
}

/// `status.phase` of a GameServer; `Pending` when absent or unreadable.
pub fn phase_of(obj: &Value) -> Phase {
    obj.pointer("/status/phase")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok())
        .unwrap_or_default()
}

/// The key of an object.
pub fn key_of(obj: &Value) -> Key {
    let name = name_of(obj);
    match namespace_of(obj) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// Splits a key into (namespace, name).
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

/// `status.conditions`, typed; entries that do not parse are skipped.
pub fn conditions_of(obj: &Value) -> Vec<Condition> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::from_value(c.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// True when the object's condition `type_` is `True`.
pub fn condition_true(obj: &Value, type_: &str) -> bool {
    conditions_of(obj)
        .iter()
        .any(|c| c.type_ == type_ && c.status == crate::meta::ConditionStatus::True)
}

/// Sets a condition in a status object (`{"conditions": [...], ...}`) through
/// [`crate::meta::set_condition`]: the transition time is kept when the status is unchanged.
pub fn put_condition(status: &mut Value, new: Condition) {
    if !status.is_object() {
        *status = Value::Object(Default::default());
    }
    let mut list: Vec<Condition> = status
        .get("conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::from_value(c.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    crate::meta::set_condition(&mut list, new);
    status["conditions"] = serde_json::to_value(list).expect("conditions serialize");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ConditionStatus;
    use serde_json::json;

    #[test]
    fn accessors_read_what_is_there_and_default_the_rest() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns", "uid": "u1",
                         "resourceVersion": "42", "generation": 3},
                         "status": {"phase": "Running"}});
        assert_eq!(key_of(&obj), "ns/a");
        assert_eq!(split_key("ns/a"), (Some("ns"), "a"));
        assert_eq!(split_key("node-1"), (None, "node-1"));
        assert_eq!(uid_of(&obj), Some("u1"));
        assert_eq!(resource_version(&obj), Some(42));
        assert_eq!(generation_of(&obj), Some(3));
        assert_eq!(phase_of(&obj), Phase::Running);
        let bare = json!({"metadata": {"name": "n"}});
        assert_eq!(key_of(&bare), "n");
        assert_eq!(resource_version(&bare), None);
        assert_eq!(phase_of(&bare), Phase::Pending);
        assert_eq!(
            phase_of(&json!({"status": {"phase": "Bogus"}})),
            Phase::Pending
        );
        assert!(is_newer_or_same(&obj, &bare));
        assert!(!is_newer_or_same(&bare, &obj));
    }

    #[test]
    fn put_condition_keeps_the_transition_time_while_the_status_holds() {
        let mut status = json!({"phase": "Running"});
        let first = Condition::new("Ready", true, "Ok", "up", Some(1));
        let t0 = first.last_transition_time;
        put_condition(&mut status, first);
        let mut later = Condition::new("Ready", true, "StillOk", "still up", Some(2));
        later.last_transition_time = Some(chrono::Utc::now() + chrono::Duration::seconds(5));
        put_condition(&mut status, later);
        let obj = json!({ "status": status });
        let cs = conditions_of(&obj);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].reason, "StillOk");
        assert_eq!(cs[0].observed_generation, Some(2));
        assert_eq!(cs[0].last_transition_time, t0);
        assert!(condition_true(&obj, "Ready"));
        let mut status = obj["status"].clone();
        put_condition(
            &mut status,
            Condition::new("Ready", false, "Down", "", None),
        );
        let obj = json!({ "status": status });
        assert!(!condition_true(&obj, "Ready"));
        assert_eq!(conditions_of(&obj)[0].status, ConditionStatus::False);
        assert_ne!(conditions_of(&obj)[0].last_transition_time, t0);
        assert_eq!(obj["status"]["phase"], "Running");
    }
}
