//! Discovery and OpenAPI: `/apis` (the API group), `/apis/catalyst.dev/v1alpha1` (its
//! resources and verbs) and `/openapi/v3` (the schema document built by `crate::openapi`).

use axum::routing::get;
use axum::{Json, Router};
use catalyst_schemas::{API_VERSION, KINDS};
use serde_json::{json, Value};

use crate::state::AppState;

/// The discovery and OpenAPI routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/apis", get(discovery_groups))
        .route("/apis/catalyst.dev/v1alpha1", get(discovery_resources))
        .route("/openapi/v3", get(openapi))
}

async fn discovery_groups() -> Json<Value> {
    Json(json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{
            "name": "catalyst.dev",
            "versions": [{"groupVersion": API_VERSION, "version": "v1alpha1"}],
            "preferredVersion": {"groupVersion": API_VERSION, "version": "v1alpha1"}
        }]
    }))
}

async fn discovery_resources() -> Json<Value> {
    let mut resources = Vec::new();
    for k in KINDS {
        resources.push(json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "shortNames": k.short_names,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }));
        resources.push(json!({
            "name": format!("{}/status", k.plural),
            "singularName": "",
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    Json(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION, "resources": resources}),
    )
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
