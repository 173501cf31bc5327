//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Every write through the main resource records which manager set which fields: `Update`
//! entries for create/replace/merge-patch (the writer takes the fields it changed), `Apply`
//! entries for apply patches (the manager owns exactly the fields of its last applied config).
//! An apply that would change a field another manager owns is a 409 Conflict naming the field
//! and the manager, unless forced; a field a manager stops applying is removed when no one else
//! owns it. Fields are the leaves of `spec`, `metadata.labels` and `metadata.annotations`, plus
//! `metadata.finalizers` and `metadata.ownerReferences`; lists are owned as a whole.

use std::collections::{BTreeMap, BTreeSet};

use catalyst_schemas::{Cause, API_VERSION};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::{meta_mut, meta_str, Part, Registry, Scope, Written};

/// A field: the keys from the object's root.
pub type FieldPath = Vec<String>;

/// The roots whose leaves are owned, and whether the root is itself one leaf.
const TRACKED: &[(&[&str], bool)] = &[
    (&["spec"], false),
    (&["metadata", "labels"], false),
    (&["metadata", "annotations"], false),
    (&["metadata", "finalizers"], true),
    (&["metadata", "ownerReferences"], true),
];

fn value_at<'v>(obj: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

fn collect_leaves(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(k.clone());
                collect_leaves(child, path, out);
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The owned fields an object sets.
pub fn leaves(obj: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    for (root, atomic) in TRACKED {
        let root: FieldPath = root.iter().map(|s| s.to_string()).collect();
        if let Some(v) = value_at(obj, &root) {
            if *atomic {
                out.insert(root);
            } else {
                let mut path = root.clone();
                collect_leaves(v, &mut path, &mut out);
            }
        }
    }
    out
}

fn set_at(obj: &mut Value, path: &[String], value: Value) {
    let mut cur = obj;
    for k in &path[..path.len() - 1] {
        if !cur.get(k).is_some_and(Value::is_object) {
            cur[k.as_str()] = json!({});
        }
        cur = cur.get_mut(k).expect("just made");
    }
    cur[path[path.len() - 1].as_str()] = value;
}

/// Removes a field and the maps it leaves empty (never the tracked roots themselves).
fn remove_at(obj: &mut Value, path: &[String]) {
    fn go(v: &mut Value, path: &[String], depth: usize) -> bool {
        let Some(map) = v.as_object_mut() else {
            return false;
        };
        if path.len() == 1 {
            map.remove(&path[0]);
        } else if let Some(child) = map.get_mut(&path[0]) {
            if go(child, &path[1..], depth + 1) {
                map.remove(&path[0]);
            }
        }
        depth >= 2 && map.is_empty()
    }
    go(obj, path, 0);
}

fn to_fields_v1(set: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for k in path {
            cur = cur
                .entry(format!("f:{k}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("fields are maps");
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn go(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let children: Vec<_> = v
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, c)| k.strip_prefix("f:").map(|k| (k, c)))
                    .collect()
            })
            .unwrap_or_default();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (k, c) in children {
            path.push(k.to_owned());
            go(c, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

/// (manager, operation) → owned fields, with the entry's time.
type Managers = BTreeMap<(String, String), (BTreeSet<FieldPath>, Value)>;

fn read_managers(obj: &Value) -> Managers {
    let mut out = Managers::new();
    for e in obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let manager = e
            .get("manager")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let op = e
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("Update")
            .to_owned();
        let fields = e.get("fieldsV1").map(from_fields_v1).unwrap_or_default();
        let time = e.get("time").cloned().unwrap_or(Value::Null);
        out.entry((manager, op))
            .or_insert_with(|| (BTreeSet::new(), time))
            .0
            .extend(fields);
    }
    out
}

fn write_managers(obj: &mut Value, managers: &Managers) {
    let entries: Vec<Value> = managers
        .iter()
        .filter(|(_, (set, _))| !set.is_empty())
        .map(|((manager, op), (set, time))| {
            json!({
                "manager": manager,
                "operation": op,
                "apiVersion": API_VERSION,
                "time": time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(set),
            })
        })
        .collect();
    let meta = meta_mut(obj);
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), entries.into());
    }
}

fn now() -> Value {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true).into()
}

fn owns(set: &BTreeSet<FieldPath>, path: &FieldPath) -> bool {
    set.iter()
        .any(|p| p.starts_with(path) || path.starts_with(p))
}

/// Records `manager` as the owner of every field of a new object.
pub fn track_create(mut obj: Value, manager: &str) -> Value {
    let mut managers = Managers::new();
    let fields = leaves(&obj);
    if !fields.is_empty() {
        managers.insert((manager.to_owned(), "Update".into()), (fields, now()));
    }
    write_managers(&mut obj, &managers);
    obj
}

/// Gives `manager` the fields an update changes, taking them from other managers.
pub fn track_update(current: &Value, mut next: Value, manager: &str, part: Part) -> Value {
    if part == Part::Status {
        return next;
    }
    let mut managers = read_managers(current);
    let (before, after) = (leaves(current), leaves(&next));
    let changed: BTreeSet<FieldPath> = before
        .union(&after)
        .filter(|p| value_at(current, p) != value_at(&next, p))
        .cloned()
        .collect();
    if !changed.is_empty() {
        for (set, _) in managers.values_mut() {
            set.retain(|p| !changed.iter().any(|c| p.starts_with(c) || c.starts_with(p)));
        }
        let taken: BTreeSet<FieldPath> =
            changed.into_iter().filter(|p| after.contains(p)).collect();
        if !taken.is_empty() {
            let entry = managers
                .entry((manager.to_owned(), "Update".into()))
                .or_insert_with(|| (BTreeSet::new(), Value::Null));
            entry.0.extend(taken);
            entry.1 = now();
        }
    }
    write_managers(&mut next, &managers);
    next
}

/// Merges an applied configuration into the current object under `manager`'s ownership.
pub fn apply_config(
    current: &Value,
    config: &Value,
    manager: &str,
    force: bool,
) -> ApiResult<Value> {
    let mut managers = read_managers(current);
    let me = (manager.to_owned(), "Apply".to_owned());
    let applied = leaves(config);
    let mut conflicts = Vec::new();
    for path in &applied {
        if value_at(current, path) == value_at(config, path) {
            continue;
        }
        for ((other, op), (set, _)) in &managers {
            if (other, op) != (&me.0, &me.1) && other != manager && owns(set, path) {
                conflicts.push((path.clone(), other.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let causes: Vec<Cause> = conflicts
            .iter()
            .map(|(path, other)| Cause {
                field: path.join("."),
                message: format!("conflict with {other:?}"),
            })
            .collect();
        let listing: Vec<String> = causes
            .iter()
            .map(|c| format!("{} ({})", c.field, c.message))
            .collect();
        return Err(ApiError::Conflict {
            message: format!(
                "Apply failed with {} conflict(s): {}. Re-apply with force to take ownership, or leave these fields out.",
                causes.len(),
                listing.join(", ")
            ),
            causes,
        });
    }
    for (path, _) in &conflicts {
        for (key, (set, _)) in managers.iter_mut() {
            if key != &me {
                set.retain(|p| !(p.starts_with(path) || path.starts_with(p)));
            }
        }
    }
    let mut next = current.clone();
    let previous = managers
        .get(&me)
        .map(|(s, _)| s.clone())
        .unwrap_or_default();
    for dropped in previous.difference(&applied) {
        let shared = managers
            .iter()
            .any(|(k, (set, _))| k != &me && owns(set, dropped));
        if !shared {
            remove_at(&mut next, dropped);
        }
    }
    for path in &applied {
        if let Some(v) = value_at(config, path) {
            set_at(&mut next, path, v.clone());
        }
    }
    if previous != applied {
        managers.insert(me, (applied, now()));
    }
    write_managers(&mut next, &managers);
    Ok(next)
}

/// Server-side apply: creates the object when absent, else merges the configuration under the
/// manager's ownership. Returns the write and whether it created the object.
#[allow(clippy::too_many_arguments)]
pub async fn server_side_apply(
    registry: &Registry,
    scope: Scope<'_>,
    name: &str,
    mut config: Value,
    manager: &str,
    force: bool,
    part: Part,
    dry_run: bool,
    may_create: bool,
) -> ApiResult<(Written, bool)> {
    if part == Part::Status {
        return Err(ApiError::BadRequest(
            "apply to the status subresource is not supported; use a merge patch".into(),
        ));
    }
    if meta_str(&config, "name").is_some_and(|n| n != name) {
        return Err(ApiError::BadRequest(format!(
            "the name of the object does not match the request ({name})"
        )));
    }
    for field in ["apiVersion", "kind"] {
        if config.get(field).is_none() {
            return Err(ApiError::Invalid {
                kind: scope.kind.kind.to_owned(),
                name: name.to_owned(),
                source: catalyst_schemas::ValidationError::single(
                    field,
                    "is required in an applied configuration",
                ),
            });
        }
    }
    meta_mut(&mut config).insert("name".into(), name.into());
    for _ in 0..4 {
        match registry.get(scope, name).await {
            Err(ApiError::NotFound { .. }) if !may_create => {
                return Err(ApiError::Forbidden(format!(
                    "{} {name:?} does not exist, and creating it by apply needs create on {}",
                    scope.kind.kind, scope.kind.plural
                )));
            }
            Err(ApiError::NotFound { .. }) => {
                let mut obj = config.clone();
                let mut managers = Managers::new();
                managers.insert(
                    (manager.to_owned(), "Apply".into()),
                    (leaves(&config), now()),
                );
                write_managers(&mut obj, &managers);
                match registry.create(scope, obj, dry_run).await {
                    Ok(w) => return Ok((w, true)),
                    Err(ApiError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
            Ok(_) => {
                let written = registry
                    .update_with(scope, name, None, Part::Main, dry_run, |current| {
                        apply_config(current, &config, manager, force)
                    })
                    .await?;
                return Ok((written, false));
            }
        }
    }
    Err(ApiError::Conflict {
        message: format!(
            "{} {name:?} keeps appearing and disappearing; try again",
            scope.kind.plural
        ),
        causes: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gs(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "GameServer", "metadata": {"name": "a", "labels": {"game": "mc"}}, "spec": spec})
    }

    #[test]
    fn fields_v1_round_trips() {
        let set = leaves(&gs(
            json!({"image": "x", "resources": {"cpu": "1"}, "ports": [{"containerPort": 1}]}),
        ));
        assert!(
            set.contains(&vec!["spec".to_string(), "ports".to_string()]),
            "lists are atomic"
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }

    #[test]
    fn applying_a_field_another_manager_set_differently_conflicts_unless_forced() {
        let current = track_create(gs(json!({"image": "a", "state": "Running"})), "panel");
        let config = gs(json!({"image": "b"}));
        let err = apply_config(&current, &config, "gitops", false).unwrap_err();
        match &err {
            ApiError::Conflict { causes, .. } => {
                assert_eq!(causes.len(), 1);
                assert_eq!(causes[0].field, "spec.image");
                assert!(causes[0].message.contains("panel"));
            }
            other => panic!("{other}"),
        }
        let forced = apply_config(&current, &config, "gitops", true).unwrap();
        assert_eq!(forced["spec"]["image"], "b");
        let managers = read_managers(&forced);
        let panel = &managers[&("panel".to_string(), "Update".to_string())].0;
        assert!(!panel.contains(&vec!["spec".to_string(), "image".to_string()]));
    }

    #[test]
    fn the_same_value_is_shared_without_conflict() {
        let current = track_create(gs(json!({"image": "a"})), "panel");
        assert!(apply_config(&current, &gs(json!({"image": "a"})), "gitops", false).is_ok());
    }

    #[test]
    fn fields_a_manager_stops_applying_are_removed_unless_others_own_them() {
        let first = apply_config(
            &json!({"apiVersion": API_VERSION, "kind": "GameServer", "metadata": {"name": "a"}}),
            &gs(json!({"image": "a", "env": {"A": "1", "B": "2"}})),
            "gitops",
            false,
        )
        .unwrap();
        let second = apply_config(
            &first,
            &gs(json!({"image": "a", "env": {"A": "1"}})),
            "gitops",
            false,
        )
        .unwrap();
        assert_eq!(second["spec"]["env"], json!({"A": "1"}));
        let third = apply_config(&second, &gs(json!({"image": "a"})), "gitops", false).unwrap();
        assert!(
            third["spec"].get("env").is_none(),
            "empty maps go too: {third}"
        );
    }

    #[test]
    fn reapplying_the_same_config_changes_nothing() {
        let base =
            json!({"apiVersion": API_VERSION, "kind": "GameServer", "metadata": {"name": "a"}});
        let cfg = gs(json!({"image": "a"}));
        let once = apply_config(&base, &cfg, "gitops", false).unwrap();
        let twice = apply_config(&once, &cfg, "gitops", false).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let current = apply_config(
            &json!({"apiVersion": API_VERSION, "kind": "GameServer", "metadata": {"name": "a"}}),
            &gs(json!({"image": "a", "state": "Running"})),
            "gitops",
            false,
        )
        .unwrap();
        let mut next = current.clone();
        next["spec"]["state"] = "Stopped".into();
        let next = track_update(&current, next, "panel", Part::Main);
        let managers = read_managers(&next);
        assert!(managers[&("panel".to_string(), "Update".to_string())]
            .0
            .contains(&vec!["spec".to_string(), "state".to_string()]));
        assert!(!managers[&("gitops".to_string(), "Apply".to_string())]
            .0
            .contains(&vec!["spec".to_string(), "state".to_string()]));
        // now gitops re-applying Running conflicts with the panel
        assert!(apply_config(
            &next,
            &gs(json!({"image": "a", "state": "Running"})),
            "gitops",
            false
        )
        .is_err());
    }
}
