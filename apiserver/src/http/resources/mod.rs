//! The REST verbs of every kind, one module per verb: `read` (get, list), `watch`, `create`,
//! `replace`, `patch` and `delete`; `request` parses what they share (path, query, body).
//! One set of handlers serves namespaced and cluster-scoped paths and the status subresource;
//! `power` serves the GameServer power actions (`start`, `stop`, …).

use axum::routing::get;
use axum::Router;

use crate::state::AppState;

mod create;
mod delete;
mod patch;
mod power;
mod read;
mod replace;
mod request;
mod watch;

pub use patch::CHANGED_HEADER;

/// The collection, object and subresource routes of every kind.
pub fn routes() -> Router<AppState> {
    const API: &str = "/apis/catalyst.dev/v1alpha1";
    let collection = || get(read::collection_get).post(create::collection_post);
    let object = || {
        get(read::object_get)
            .put(replace::object_put)
            .patch(patch::object_patch)
            .delete(delete::object_delete)
    };
    let sub = || {
        get(read::object_get)
            .put(replace::object_put)
            .patch(patch::object_patch)
    };
    Router::new()
        .merge(power::routes(API))
        .route(&format!("{API}/namespaces/{{ns}}/{{plural}}"), collection())
        .route(&format!("{API}/{{plural}}"), collection())
        .route(
            &format!("{API}/namespaces/{{ns}}/{{plural}}/{{name}}"),
            object(),
        )
        .route(&format!("{API}/{{plural}}/{{name}}"), object())
        .route(
            &format!("{API}/namespaces/{{ns}}/{{plural}}/{{name}}/{{sub}}"),
            sub(),
        )
        .route(&format!("{API}/{{plural}}/{{name}}/{{sub}}"), sub())
}
