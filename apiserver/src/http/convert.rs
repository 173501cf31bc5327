//! `POST /convert/v1/egg`: a Pterodactyl egg (the JSON the Panel exports, as the body) converted
//! into a Catalyst Template, exactly as `catalystctl convert egg` does it (the converter is
//! `catalyst_schemas::egg`, pure). Nothing is stored: the answer is `{"template": <Template>,
//! "warnings": ["field: what was left out or changed", …]}` for the caller to review and
//! create. Any signed-in caller may convert; creating the Template needs `create templates`.
//!
//! Query: `name=` (the Template's name instead of one made from the egg's), `imageMap=FROM=TO` (repeatable: an exact image reference, or a prefix ending in `/` or
//! `:`), `keepImageMap=true` to put the map into the Template's `imageMap` instead of rewriting
//! the references now.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use catalyst_schemas::egg::{self, EggError, Options};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// The largest egg taken: the Panel's eggs are a few KiB to a few tens of KiB.
pub const MAX_EGG_BYTES: usize = 512 << 10;

/// Conversions running at once: each runs on a blocking thread, so a flood of them never
/// holds the runtime's workers (node heartbeats, watches) up.
static RUNNING: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| tokio::sync::Semaphore::new(2));

/// The route (behind authentication).
pub fn routes() -> Router<AppState> {
    Router::new().route("/convert/v1/egg", post(convert_egg))
}

fn options(query: Option<&str>) -> Result<(Options, Option<String>), ApiError> {
    let mut opts = Options::default();
    let mut name = None;
    let Some(query) = query else {
        return Ok((opts, name));
    };
    let pairs: Vec<(String, String)> = query_pairs(query)?;
    for (k, v) in pairs {
        match k.as_str() {
            "imageMap" => {
                let (from, to) = v
                    .split_once('=')
                    .filter(|(f, t)| !f.is_empty() && !t.is_empty())
                    .ok_or_else(|| ApiError::BadField {
                        field: "imageMap".into(),
                        message: format!("{v:?} is not FROM=TO"),
                    })?;
                opts.image_map.insert(from.to_owned(), to.to_owned());
            }
            "name" => {
                catalyst_schemas::validation::dns_subdomain(&v).map_err(|message| {
                    ApiError::BadField {
                        field: "name".into(),
                        message,
                    }
                })?;
                name = Some(v);
            }
            "keepImageMap" => opts.keep_image_map = matches!(v.as_str(), "true" | "1" | ""),
            other => {
                return Err(ApiError::BadField {
                    field: other.to_owned(),
                    message: "unknown query parameter (name, imageMap, keepImageMap)".into(),
                })
            }
        }
    }
    Ok((opts, name))
}

/// The query's `key=value` pairs, percent-decoded, in order (repeated keys kept).
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let uri: axum::http::Uri = format!("/?{query}")
        .parse()
        .map_err(|_| ApiError::BadRequest("the query is not valid".into()))?;
    let axum::extract::Query(pairs) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    Ok(pairs)
}

async fn convert_egg(RawQuery(query): RawQuery, body: Bytes) -> Result<Response, ApiError> {
    let (opts, name) = options(query.as_deref())?;
    if body.len() > MAX_EGG_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "an egg has at most {MAX_EGG_BYTES} bytes"
        )));
    }
    let _slot = RUNNING
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("the converter is shutting down".into()))?;
    let converted = tokio::task::spawn_blocking(move || egg::convert(&body, &opts))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the egg conversion panicked");
            ApiError::Internal("the conversion failed (logged)".into())
        })?;
    let conversion = converted.map_err(|e| match e {
        EggError::Invalid(source) => ApiError::Invalid {
            kind: "Template".into(),
            name: String::new(),
            source,
        },
        other => ApiError::BadRequest(other.to_string()),
    })?;
    let mut template = conversion.template;
    if let Some(name) = name {
        template["metadata"]["name"] = name.into();
    }
    let warnings: Vec<String> = conversion.reports.iter().map(ToString::to_string).collect();
    Ok(Json(json!({"template": template, "warnings": warnings})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_gives_the_image_map() {
        let (o, name) = options(Some(
            "imageMap=ghcr.io%2Fpterodactyl%2Fyolks%3A%3Dmirror%2Fyolks%3A&keepImageMap=true",
        ))
        .unwrap();
        assert_eq!(o.image_map["ghcr.io/pterodactyl/yolks:"], "mirror/yolks:");
        assert!(o.keep_image_map);
        assert_eq!(name, None);
        assert_eq!(
            options(Some("name=paper")).unwrap().1.as_deref(),
            Some("paper")
        );
        assert!(options(Some("name=Not_A_Name")).is_err());
        assert!(options(Some("imageMap=nothing")).is_err());
        assert!(options(Some("other=x")).is_err());
        assert!(options(None).unwrap().0.image_map.is_empty());
    }
}
