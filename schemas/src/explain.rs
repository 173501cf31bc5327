//! Documentation of a kind or one of its fields, read from the kind's JSON Schema: the walk
//! behind `catalystctl explain gameserver.spec.resources`. Pure: no I/O, no formatting.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::parse::{lookup_kind, KINDS};
use crate::resource::KindInfo;

/// Why a path cannot be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The first segment names no kind.
    #[error("unknown resource type {name:?}; known: {}", known_plurals())]
    UnknownKind {
        /// The segment as given.
        name: String,
    },
    /// A later segment names no field of the object walked so far.
    #[error("field {field:?} does not exist in {parent}")]
    NoSuchField {
        /// The segment as given.
        field: String,
        /// The kind and fields walked before it, dotted (`GameServer.spec`).
        parent: String,
    },
}

fn known_plurals() -> String {
    KINDS
        .iter()
        .map(|k| k.plural)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a kind or a field is: its description and, for objects, the fields inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The kind (`GameServer`).
    pub kind: &'static str,
    /// The fields walked below the kind (`["spec", "resources"]`); empty for the kind itself.
    pub field_path: Vec<String>,
    /// The description of the kind or field, when the schema has one.
    pub description: Option<String>,
    /// The fields of the object, sorted by name; empty when it is not an object with properties.
    pub fields: Vec<FieldDoc>,
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDoc {
    /// The field's name as written in manifests (`containerPort`).
    pub name: String,
    /// Its JSON type (`string`, `integer`, `object`, `array`, …), never `null`.
    pub type_name: String,
    /// Whether the object must have it.
    pub required: bool,
    /// Its description, when the schema has one (may span lines).
    pub description: Option<String>,
}

/// Explains a dotted path: a kind by any of its names, then field names (`gs.spec.ports`).
///
/// # Errors
/// [`ExplainError::UnknownKind`] for an unknown first segment, [`ExplainError::NoSuchField`]
/// for a field the schema does not have.
pub fn explain(path: &str) -> Result<Explanation, ExplainError> {
    let mut parts = path.split('.');
    let name = parts.next().unwrap_or("");
    let kind = lookup_kind(name).ok_or_else(|| ExplainError::UnknownKind {
        name: name.to_owned(),
    })?;
    explain_kind(kind, &parts.collect::<Vec<_>>())
}

/// Explains `fields` (in order, each inside the previous) of `kind`; no fields: the kind itself.
///
/// # Errors
/// [`ExplainError::NoSuchField`] for a field the schema does not have.
pub fn explain_kind(kind: &'static KindInfo, fields: &[&str]) -> Result<Explanation, ExplainError> {
    let root = (kind.schema)().to_value();
    let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
    let walker = Walker { defs: &defs };
    let mut node = walker.resolve(&root);
    let mut walked = vec![kind.kind.to_owned()];
    for field in fields {
        let child = node
            .pointer(&format!("/properties/{field}"))
            .ok_or_else(|| ExplainError::NoSuchField {
                field: (*field).to_owned(),
                parent: walked.join("."),
            })?;
        node = walker.resolve(child);
        walked.push((*field).to_owned());
    }
    Ok(Explanation {
        kind: kind.kind,
        field_path: walked.split_off(1),
        description: description(&node),
        fields: walker.fields(&node),
    })
}

fn description(schema: &Value) -> Option<String> {
    schema
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Follows references through the schema's `$defs`.
struct Walker<'a> {
    defs: &'a Value,
}

impl Walker<'_> {
    fn definition(&self, schema: &Value) -> Option<&Value> {
        schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .and_then(|n| self.defs.get(n))
    }

    /// `schema` without its `$ref`, `allOf` and nullable `anyOf` wrappers; the outermost
    /// description (the field's own, not its type's) wins.
    fn unwrap(&self, schema: &Value) -> Value {
        let mut v = schema.clone();
        for _ in 0..8 {
            if v.get("properties").is_some() {
                break;
            }
            let next = self
                .definition(&v)
                .or_else(|| v.get("allOf").and_then(|a| a.get(0)))
                .or_else(|| {
                    v.get("anyOf").and_then(Value::as_array).and_then(|a| {
                        a.iter()
                            .find(|x| x.get("type") != Some(&Value::from("null")))
                    })
                })
                .cloned();
            let Some(next) = next else { break };
            let desc = v.get("description").cloned();
            v = next;
            if let (Some(d), Some(o)) = (desc, v.as_object_mut()) {
                o.insert("description".into(), d);
            }
        }
        v
    }

    /// The schema that documents `schema`: unwrapped, and for arrays the schema of the items
    /// carrying the array's description.
    fn resolve(&self, schema: &Value) -> Value {
        let v = self.unwrap(schema);
        let Some(items) = v.get("items").filter(|_| v.get("properties").is_none()) else {
            return v;
        };
        let mut inner = self.unwrap(items);
        if let (Some(d), Some(o)) = (v.get("description").cloned(), inner.as_object_mut()) {
            o.insert("description".into(), d);
        }
        inner
    }

    /// The JSON type of `schema`: its non-null `type`, `[]T` for arrays of `T`; enums and
    /// `oneOf`s of constants are strings; anything else an object.
    fn type_name(&self, schema: &Value) -> String {
        let v = self.unwrap(schema);
        let ty = match v.get("type") {
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or(""),
            Some(other) => other.as_str().unwrap_or(""),
            None if v.get("enum").is_some() || v.get("oneOf").is_some() => "string",
            None => "object",
        };
        match v.get("items") {
            Some(items) if ty == "array" => format!("[]{}", self.type_name(items)),
            _ => ty.to_owned(),
        }
    }

    fn fields(&self, node: &Value) -> Vec<FieldDoc> {
        let Some(props) = node.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        let required: BTreeSet<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields: Vec<FieldDoc> = props
            .iter()
            .map(|(name, schema)| {
                let s = self.resolve(schema);
                FieldDoc {
                    name: name.clone(),
                    type_name: self.type_name(schema),
                    required: required.contains(name.as_str()),
                    description: description(&s),
                }
            })
            .collect();
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'e>(e: &'e Explanation, name: &str) -> &'e FieldDoc {
        e.fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {e:?}"))
    }

    #[test]
    fn a_kind_lists_its_top_level_fields() {
        let e = explain("gameserver").unwrap();
        assert_eq!(e.kind, "GameServer");
        assert!(e.field_path.is_empty());
        assert!(e.description.as_deref().unwrap().contains("game server"));
        let names: Vec<&str> = e.fields.iter().map(|f| f.name.as_str()).collect();
        for want in ["apiVersion", "kind", "metadata", "spec", "status"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "fields are sorted");
    }

    #[test]
    fn short_names_and_nested_objects_resolve_through_references() {
        let e = explain("gs.spec.resources").unwrap();
        assert_eq!(e.kind, "GameServer");
        assert_eq!(e.field_path, ["spec", "resources"]);
        assert_eq!(
            e.description.as_deref(),
            Some("Limits: cpu, memory, disk, pids."),
            "the field's own description, not its type's"
        );
        assert!(!e.fields.is_empty());
        assert!(e.fields.iter().any(|f| f.name == "memory"), "{e:?}");
    }

    #[test]
    fn an_array_field_explains_its_items_with_the_arrays_description() {
        let e = explain("gs.spec.ports").unwrap();
        assert_eq!(
            e.description.as_deref(),
            Some("Ports; the first is the primary (`SERVER_PORT`).")
        );
        let port = field(&e, "containerPort");
        assert_eq!(port.type_name, "integer");
        assert!(port.required);
    }

    #[test]
    fn optional_fields_are_typed_without_null() {
        let e = explain("gs.spec").unwrap();
        let image = field(&e, "image");
        assert_eq!(image.type_name, "string");
        assert!(!image.required);
        assert!(image
            .description
            .as_deref()
            .unwrap()
            .starts_with("The container image"));
        assert_eq!(field(&e, "ports").type_name, "[]object");
        assert_eq!(field(&e, "env").type_name, "object");
        assert_eq!(field(&e, "suspended").type_name, "boolean");
    }

    #[test]
    fn cluster_scoped_kinds_resolve_too() {
        let e = explain("node.spec.portRange").unwrap();
        assert_eq!(e.kind, "Node");
        assert_eq!(e.field_path, ["spec", "portRange"]);
    }

    #[test]
    fn unknown_fields_and_kinds_are_errors_naming_what_was_walked() {
        assert_eq!(
            explain("gs.spec.nope"),
            Err(ExplainError::NoSuchField {
                field: "nope".into(),
                parent: "GameServer.spec".into()
            })
        );
        let err = explain("pods").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("unknown resource type \"pods\"; known: "));
        assert!(err.to_string().contains("gameservers"));
    }
}
