//! The OpenAPI v3 document: every kind's JSON Schema from `schemars`, and the paths.

use catalyst_schemas::KINDS;
use serde_json::{json, Map, Value};

/// Moves a schema's `$defs` into `components/schemas` and points its `$ref`s there.
fn hoist(mut schema: Value, components: &mut Map<String, Value>) -> Value {
    if let Some(defs) = schema.as_object_mut().and_then(|o| o.remove("$defs")) {
        for (name, def) in defs.as_object().into_iter().flatten() {
            components.insert(name.clone(), rewrite_refs(def.clone()));
        }
    }
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
    }
    rewrite_refs(schema)
}

fn rewrite_refs(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| match (k.as_str(), &v) {
                    ("$ref", Value::String(r)) => (
                        k,
                        Value::String(r.replace("#/$defs/", "#/components/schemas/")),
                    ),
                    _ => (k, rewrite_refs(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(rewrite_refs).collect()),
        other => other,
    }
}

/// The document served at `/openapi/v3`.
pub fn document() -> Value {
    let mut components = Map::new();
    let mut paths = Map::new();
    let base = "/apis/catalyst.dev/v1alpha1";
    for kind in KINDS {
        let schema = hoist(
            serde_json::to_value((kind.schema)()).unwrap_or_default(),
            &mut components,
        );
        components.insert(kind.kind.to_owned(), schema);
        let reference = json!({"$ref": format!("#/components/schemas/{}", kind.kind)});
        let one = json!({"content": {"application/json": {"schema": reference}}});
        let (collection, object) = if kind.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", kind.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", kind.plural),
            )
        } else {
            (
                format!("{base}/{}", kind.plural),
                format!("{base}/{}/{{name}}", kind.plural),
            )
        };
        paths.insert(collection, json!({
            "get": {"summary": format!("List or watch {}", kind.plural), "responses": {"200": {"description": "a list"}}},
            "post": {"summary": format!("Create a {}", kind.kind), "requestBody": one, "responses": {"201": one}},
        }));
        paths.insert(object.clone(), json!({
            "get": {"summary": format!("Read a {}", kind.kind), "responses": {"200": one}},
            "put": {"summary": format!("Replace a {}", kind.kind), "requestBody": one, "responses": {"200": one}},
            "patch": {"summary": format!("Merge-patch or apply a {}", kind.kind), "responses": {"200": one}},
            "delete": {"summary": format!("Delete a {}", kind.kind), "responses": {"200": one}},
        }));
        paths.insert(format!("{object}/status"), json!({
            "get": {"summary": format!("Read a {}'s status", kind.kind), "responses": {"200": one}},
            "put": {"summary": format!("Replace a {}'s status", kind.kind), "requestBody": one, "responses": {"200": one}},
            "patch": {"summary": format!("Merge-patch a {}'s status", kind.kind), "responses": {"200": one}},
        }));
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Catalyst", "version": "v1alpha1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    })
}
