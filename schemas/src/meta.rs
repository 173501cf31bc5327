//! The object envelope every resource shares: metadata, owner references, managed fields and
//! status conditions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::{self, Causes, FieldPath};

/// The API group of every Catalyst resource.
pub const GROUP: &str = "catalyst.dev";
/// The version of the API this crate describes.
pub const VERSION: &str = "v1alpha1";
/// `GROUP/VERSION`, the `apiVersion` of every object.
pub const API_VERSION: &str = "catalyst.dev/v1alpha1";

/// Metadata every object carries. The server sets `uid`, `resourceVersion`, `generation`,
/// `creationTimestamp` and `deletionTimestamp`; users set the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Unique within the kind (and namespace, for namespaced kinds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A prefix from which the server makes a unique name when `name` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// The namespace of a namespaced object; absent for cluster-scoped kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Unique for the object's lifetime, set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The store revision of the object's last write, set by the server. Opaque to clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Rises when the spec changes, set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Identifying key/value pairs, matched by label selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form key/value pairs for tools.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// When the object was created, set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// When deletion was asked while finalizers remained, set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<DateTime<Utc>>,
    /// Controllers that must finish before the object goes away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Objects this one depends on; it is deleted when its owners are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// Which manager owns which fields (server-side apply).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// A reference from a dependent object to its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// The owner's apiVersion.
    pub api_version: String,
    /// The owner's kind.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// True when the owner is the managing controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// True when the owner cannot be deleted before this dependent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// How a managed-fields entry was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagedFieldsOperation {
    /// Server-side apply.
    Apply,
    /// Create, replace or patch.
    Update,
}

/// The fields one manager owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedFieldsEntry {
    /// The field manager's name, e.g. `catalystctl`.
    pub manager: String,
    /// Apply or Update.
    pub operation: ManagedFieldsOperation,
    /// The apiVersion the fields were written with.
    pub api_version: String,
    /// When the entry last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// `FieldsV1`.
    #[serde(default = "fields_v1")]
    pub fields_type: String,
    /// The owned fields as a tree of `f:<name>` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields_v1: Option<serde_json::Value>,
    /// The subresource written (`status`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

fn fields_v1() -> String {
    "FieldsV1".to_owned()
}

/// The truth value of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It is not known whether the condition holds.
    Unknown,
}

/// One observation about an object, written by the controller or nodelet that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// What is observed, e.g. `Ready`, `Scheduled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// A CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
    /// The generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition observed now: `True` when `ok`, else `False`.
    pub fn new(
        type_: &str,
        ok: bool,
        reason: &str,
        message: &str,
        observed_generation: Option<i64>,
    ) -> Self {
        Condition {
            type_: type_.to_owned(),
            status: if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: reason.to_owned(),
            message: message.to_owned(),
            last_transition_time: Some(Utc::now()),
            observed_generation,
        }
    }
}

/// Sets or replaces the condition of the same type; keeps `lastTransitionTime` when the status
/// did not change.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            if existing.status == new.status {
                new.last_transition_time =
                    existing.last_transition_time.or(new.last_transition_time);
            }
            *existing = new;
        }
        None => conditions.push(new),
    }
}

/// Checks names, namespace, labels and annotations. `name_rule` is the kind's name rule.
pub(crate) fn validate_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_rule: fn(&str) -> Result<(), String>,
    causes: &mut Causes,
) {
    let path = FieldPath::root("metadata");
    if meta.name.is_empty() {
        causes.check(
            meta.generate_name.is_some(),
            &path.child("name"),
            "name or generateName is required",
        );
    } else {
        causes.rule(&path.child("name"), name_rule(&meta.name));
    }
    if let Some(prefix) = &meta.generate_name {
        let sample = format!("{prefix}abcde");
        causes.rule(&path.child("generateName"), name_rule(&sample));
    }
    match (&meta.namespace, namespaced) {
        (Some(ns), true) => causes.rule(&path.child("namespace"), validation::dns_label(ns)),
        (Some(ns), false) if !ns.is_empty() => causes.push(
            &path.child("namespace"),
            "must be absent: this kind is cluster-scoped",
        ),
        _ => {}
    }
    for (k, v) in &meta.labels {
        let p = path.child("labels").key(k);
        causes.rule(&p, validation::qualified_name(k));
        causes.rule(&p, validation::label_value(v));
    }
    let annotations = path.child("annotations");
    for k in meta.annotations.keys() {
        causes.rule(&annotations.key(k), validation::qualified_name(k));
    }
    let total: usize = meta
        .annotations
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    causes.check(
        total <= 256 * 1024,
        &annotations,
        "annotations must total at most 256 KiB",
    );
    for (i, f) in meta.finalizers.iter().enumerate() {
        causes.rule(
            &path.child("finalizers").index(i),
            validation::qualified_name(f),
        );
    }
    for (i, o) in meta.owner_references.iter().enumerate() {
        let p = path.child("ownerReferences").index(i);
        causes.check(!o.kind.is_empty(), &p.child("kind"), "is required");
        causes.check(!o.name.is_empty(), &p.child("name"), "is required");
        causes.check(!o.uid.is_empty(), &p.child("uid"), "is required");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: ConditionStatus, at: i64) -> Condition {
        Condition {
            type_: "Ready".into(),
            status,
            reason: String::new(),
            message: String::new(),
            last_transition_time: DateTime::from_timestamp(at, 0),
            observed_generation: None,
        }
    }

    #[test]
    fn setting_a_condition_with_the_same_status_keeps_its_transition_time() {
        let mut cs = vec![cond(ConditionStatus::True, 10)];
        set_condition(&mut cs, cond(ConditionStatus::True, 20));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, DateTime::from_timestamp(10, 0));
        set_condition(&mut cs, cond(ConditionStatus::False, 30));
        assert_eq!(cs[0].last_transition_time, DateTime::from_timestamp(30, 0));
    }

    #[test]
    fn cluster_scoped_objects_must_not_name_a_namespace() {
        let meta = ObjectMeta {
            name: "node-a".into(),
            namespace: Some("default".into()),
            ..Default::default()
        };
        let mut causes = Causes::default();
        validate_meta(&meta, false, validation::dns_label, &mut causes);
        assert_eq!(causes.as_slice()[0].field, "metadata.namespace");
    }
}
