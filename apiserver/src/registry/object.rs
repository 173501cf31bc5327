//! Plain object helpers: metadata access, the stored form of an object and back, revisions
//! from strings, and RFC 7386 merge patches.

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::codec;
use crate::error::{ApiError, ApiResult};
use crate::store::{KeyValue, Revision};

/// Now, as an RFC 3339 timestamp in seconds.
pub(in crate::registry) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The metadata map of an object (created if absent).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of the metadata.
pub fn meta_str<'v>(obj: &'v Value, field: &str) -> Option<&'v str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Decodes stored bytes and sets `metadata.resourceVersion` from the revision.
pub fn from_kv(kv: &KeyValue) -> ApiResult<Value> {
    let mut obj = codec::decode(&kv.value).map_err(|e| ApiError::Internal(e.to_string()))?;
    meta_mut(&mut obj).insert("resourceVersion".into(), kv.mod_revision.to_string().into());
    Ok(obj)
}

pub(in crate::registry) fn to_bytes(obj: &Value) -> ApiResult<Vec<u8>> {
    let mut stored = obj.clone();
    meta_mut(&mut stored).remove("resourceVersion");
    codec::encode(&stored).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Parses a resourceVersion string.
pub fn parse_revision(rv: &str) -> ApiResult<Revision> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}")))
}

/// True when two objects differ in nothing but their resourceVersion.
pub(in crate::registry) fn same_object(current: &Value, next: &Value) -> bool {
    let (mut a, mut b) = (current.clone(), next.clone());
    meta_mut(&mut a).remove("resourceVersion");
    // a manager's entry gets a new time whenever it takes fields, also the fields it owned
    // (a write of the same values): a write that changes nothing else is no change
    for obj in [&mut a, &mut b] {
        if let Some(entries) = obj
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("time");
            }
        }
    }
    a == b
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge(&mut t, &json!({"a": [3]}));
        assert_eq!(t, json!({"a": [3]}));
    }

    #[test]
    fn same_object_ignores_the_resource_version() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "3"}, "spec": {}});
        assert!(same_object(
            &a,
            &json!({"metadata": {"name": "a"}, "spec": {}})
        ));
        assert!(!same_object(
            &a,
            &json!({"metadata": {"name": "b"}, "spec": {}})
        ));
    }

    #[test]
    fn same_object_ignores_the_times_of_field_managers_but_not_the_managers() {
        let entry = |manager: &str, time: &str| {
            json!({"manager": manager, "operation": "Update", "time": time,
                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}})
        };
        let obj = |entries: Vec<Value>| json!({"metadata": {"name": "a", "managedFields": entries}, "spec": {}});
        let a = obj(vec![entry("m", "2026-12-01T11:00:00Z")]);
        assert!(same_object(
            &a,
            &obj(vec![entry("m", "2026-12-01T11:00:01Z")])
        ));
        assert!(!same_object(
            &a,
            &obj(vec![
                entry("m", "2026-12-01T11:00:00Z"),
                entry("n", "2026-12-01T11:00:01Z")
            ])
        ));
    }

    #[test]
    fn resource_versions_are_non_negative_integers() {
        assert_eq!(parse_revision("42").unwrap(), 42);
        assert!(parse_revision("-1").is_err());
        assert!(parse_revision("x").is_err());
    }
}
