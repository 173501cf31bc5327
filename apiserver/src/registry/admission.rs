//! Admission: what a write must satisfy before it is stored. The kind's defaulting and
//! validation, the body's type, server-set metadata kept on updates, the finalizer rule while
//! deleting, generation bumps, and the GameServer lifecycle table for status writes.

use catalyst_schemas::{lifecycle, KindInfo, API_VERSION};
use serde_json::Value;

use super::object::{meta_mut, meta_str};
use super::types::Part;
use crate::error::{ApiError, ApiResult};

fn invalid(kind: &KindInfo, name: &str, e: catalyst_schemas::ValidationError) -> ApiError {
    ApiError::Invalid {
        kind: kind.kind.to_owned(),
        name: name.to_owned(),
        source: e,
    }
}

pub(in crate::registry) fn admit(kind: &KindInfo, obj: Value) -> ApiResult<Value> {
    let name = meta_str(&obj, "name").unwrap_or("").to_owned();
    (kind.admit)(obj).map_err(|e| invalid(kind, &name, e))
}

/// Checks a GameServer status write against the lifecycle table.
pub(in crate::registry) fn check_transition(
    kind: &KindInfo,
    old: &Value,
    new: &Value,
) -> ApiResult<()> {
    if kind.kind != "GameServer" {
        return Ok(());
    }
    let phase = catalyst_schemas::object::phase_of;
    let (from, to) = (phase(old), phase(new));
    if lifecycle::can_move(from, to) {
        Ok(())
    } else {
        Err(ApiError::Conflict {
            message: format!("GameServer status.phase cannot move from {from} to {to}: the lifecycle has no such transition"),
            causes: vec![catalyst_schemas::Cause {
                field: "status.phase".into(),
                message: format!("{from} -> {to} is not a lifecycle transition"),
            }],
        })
    }
}

/// The object's apiVersion and kind must be those of the URL (when given).
pub(in crate::registry) fn check_type(kind: &KindInfo, obj: &Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest("the body must be an object".into()));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != kind.kind {
            return Err(ApiError::BadRequest(format!(
                "the body is a {k}, the request is for {}",
                kind.plural
            )));
        }
    }
    if let Some(v) = obj.get("apiVersion").and_then(Value::as_str) {
        if v != API_VERSION {
            return Err(ApiError::BadRequest(format!(
                "apiVersion {v:?} is not served; use {API_VERSION}"
            )));
        }
    }
    Ok(())
}

/// The object to store after a user's change: server-set metadata kept, the other part kept,
/// defaults and validation applied, generation bumped on spec changes.
pub(in crate::registry) fn prepare_update(
    kind: &KindInfo,
    current: &Value,
    submitted: Value,
    part: Part,
) -> ApiResult<Value> {
    let mut next = match part {
        Part::Main => {
            let mut next = submitted;
            if let Some(o) = next.as_object_mut() {
                match current.get("status") {
                    Some(s) => o.insert("status".into(), s.clone()),
                    None => o.remove("status"),
                };
            }
            next
        }
        Part::Status => {
            let mut next = current.clone();
            match submitted.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    if let Some(o) = next.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            next
        }
    };
    next["apiVersion"] = API_VERSION.into();
    next["kind"] = kind.kind.into();
    let cur_meta = current.get("metadata").cloned().unwrap_or_default();
    let meta = meta_mut(&mut next);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
    ] {
        match cur_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("resourceVersion");
    meta.remove("generateName");
    if cur_meta.get("deletionTimestamp").is_some() {
        // once deleting, finalizers may only go away
        let old: Vec<Value> = cur_meta
            .get("finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(new) = meta.get("finalizers").and_then(Value::as_array) {
            if let Some(added) = new.iter().find(|f| !old.contains(f)) {
                return Err(ApiError::Forbidden(format!(
                    "no new finalizers can be added while an object is being deleted ({added})"
                )));
            }
        }
    }
    let mut next = admit(kind, next)?;
    if next.get("spec") != current.get("spec") {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(&mut next).insert("generation".into(), (generation + 1).into());
    }
    if part == Part::Status {
        check_transition(kind, current, &next)?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gameserver_admission_refuses_privileged_host_ports_and_multi_line_values() {
        let kind = catalyst_schemas::lookup_kind("gameservers").expect("gameservers kind");
        let gs = json!({"apiVersion": API_VERSION, "kind": "GameServer",
            "metadata": {"name": "ssh", "namespace": "default"},
            "spec": {"image": "busybox", "variables": {"MOTD": "a\nb"}, "env": {"X": "c\rd"},
                "ports": [{"containerPort": 22, "policy": "Static", "hostPort": 22}]}});
        let Err(ApiError::Invalid { source, .. }) = admit(kind, gs) else {
            panic!("admitted");
        };
        let fields: Vec<&str> = source.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.variables[MOTD]",
                "spec.env[X]",
                "spec.ports[0].hostPort"
            ]
        );
        assert!(source.causes[2].message.contains("1024-65535"));
    }
}
