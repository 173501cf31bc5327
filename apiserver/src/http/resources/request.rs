//! Request parsing shared by every verb: the path (kind, namespace, name, subresource), the
//! query parameters, the body (JSON or YAML), and the field manager. What a client sends is
//! checked here, before any store access: namespaces and names against their DNS rules, the
//! body's size and shape, `limit` and `timeoutSeconds` against their maxima.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use catalyst_schemas::{validation, KindInfo, KINDS};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::limits::{MAX_BODY_BYTES, MAX_LIMIT, MAX_WATCH_TIMEOUT};
use crate::registry::{parse_revision, ListRequest, Part, Scope};
use crate::selector::{FieldSelector, LabelSelector};

/// Query parameters of every resource request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Params {
    pub(super) label_selector: Option<String>,
    pub(super) field_selector: Option<String>,
    pub(super) limit: Option<usize>,
    #[serde(rename = "continue")]
    pub(super) continue_: Option<String>,
    pub(super) watch: Option<String>,
    pub(super) resource_version: Option<String>,
    pub(super) allow_watch_bookmarks: Option<String>,
    pub(super) timeout_seconds: Option<u64>,
    pub(super) dry_run: Option<String>,
    pub(super) field_manager: Option<String>,
    pub(super) force: Option<String>,
}

pub(super) fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1" | ""))
}

impl Params {
    /// The field manager a write is recorded for: `fieldManager`, else the client's product.
    pub(super) fn manager(&self, headers: &HeaderMap) -> String {
        self.field_manager
            .clone()
            .unwrap_or_else(|| default_manager(headers))
    }

    pub(super) fn dry_run(&self) -> ApiResult<bool> {
        match self.dry_run.as_deref() {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "dryRun must be All, not {other:?}"
            ))),
        }
    }

    /// How long a watch may run: `timeoutSeconds`, at most [`MAX_WATCH_TIMEOUT`].
    pub(super) fn watch_timeout(&self) -> ApiResult<Option<Duration>> {
        match self.timeout_seconds.map(Duration::from_secs) {
            Some(t) if t > MAX_WATCH_TIMEOUT => Err(ApiError::BadField {
                field: "timeoutSeconds".into(),
                message: format!(
                    "must be at most {} (a day), not {}",
                    MAX_WATCH_TIMEOUT.as_secs(),
                    t.as_secs()
                ),
            }),
            t => Ok(t),
        }
    }

    pub(super) fn list_request(&self) -> ApiResult<ListRequest> {
        let bad = |e: crate::selector::SelectorError| ApiError::BadRequest(e.to_string());
        Ok(ListRequest {
            labels: LabelSelector::parse(self.label_selector.as_deref().unwrap_or(""))
                .map_err(bad)?,
            fields: FieldSelector::parse(self.field_selector.as_deref().unwrap_or(""))
                .map_err(bad)?,
            limit: self.limit.filter(|l| *l > 0).map(|l| l.min(MAX_LIMIT)),
            continue_token: self.continue_.clone().filter(|c| !c.is_empty()),
            revision: match self.resource_version.as_deref() {
                None | Some("") | Some("0") => None,
                Some(rv) => Some(parse_revision(rv)?),
            },
        })
    }
}

pub(super) fn kind(plural: &str) -> ApiResult<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.plural == plural)
        .ok_or_else(|| ApiError::NotFound {
            kind: "resource type".into(),
            name: plural.to_owned(),
        })
}

pub(super) fn scope<'a>(plural: &str, ns: Option<&'a str>) -> ApiResult<Scope<'a>> {
    let kind = kind(plural)?;
    match (kind.namespaced, ns) {
        (false, Some(_)) => Err(ApiError::NotFound {
            kind: "resource type".into(),
            name: format!("{plural} is cluster-scoped, not in a namespace"),
        }),
        _ => Ok(Scope {
            kind,
            namespace: ns,
        }),
    }
}

/// Reads a request body as JSON or YAML, by content type: one object (a mapping), nothing else.
pub(super) fn parse_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let value = parse_any(headers, body)?;
    match value {
        Value::Object(_) => Ok(value),
        other => Err(not_an_object(json_type(&other))),
    }
}

fn not_an_object(what: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "the body must be an object (a mapping with apiVersion, kind, metadata…), not {what}"
    ))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_any(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if body.is_empty() {
        return Err(ApiError::BadRequest("the request has no body".into()));
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
        let mut docs = catalyst_schemas::parse_documents(text).map_err(|e| match e {
            catalyst_schemas::ParseError::NotAnObject { .. } => not_an_object("a list or a scalar"),
            other => ApiError::BadRequest(other.to_string()),
        })?;
        if docs.is_empty() {
            // `null`, `~` or nothing at all
            return Ok(Value::Null);
        }
        if docs.len() != 1 {
            return Err(ApiError::BadRequest(format!(
                "expected one YAML document, got {}",
                docs.len()
            )));
        }
        Ok(docs.remove(0))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// A request body of at most [`MAX_BODY_BYTES`]; anything it cannot read is a Status (413 for
/// a body over the limit).
pub(super) struct Body(pub(super) Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge(format!(
                    "the request body is larger than {MAX_BODY_BYTES} bytes (3 MiB)"
                )))
            }
            Err(e) => Err(ApiError::BadRequest(format!(
                "the request body could not be read: {}",
                e.body_text()
            ))),
        }
    }
}

/// What a request's path names; one set of handlers serves namespaced and cluster paths.
#[derive(Debug, Deserialize)]
pub(super) struct Target {
    pub(super) ns: Option<String>,
    pub(super) plural: String,
    pub(super) name: Option<String>,
    pub(super) sub: Option<String>,
}

impl Target {
    /// The kind and namespace; the namespace must be a DNS label.
    pub(super) fn scope(&self) -> ApiResult<Scope<'_>> {
        let scope = scope(&self.plural, self.ns.as_deref())?;
        if let Some(ns) = scope.namespace {
            validation::dns_label(ns).map_err(|message| ApiError::BadField {
                field: "metadata.namespace".into(),
                message,
            })?;
        }
        Ok(scope)
    }

    /// The object's name, checked against its kind's name rule (a DNS label or subdomain), so
    /// no store key is built from anything else.
    pub(super) fn name(&self) -> ApiResult<&str> {
        let name = self.name.as_deref().unwrap_or("");
        let kind = kind(&self.plural)?;
        (kind.name_rule)(name).map_err(|message| ApiError::BadField {
            field: "metadata.name".into(),
            message,
        })?;
        Ok(name)
    }

    /// Scope, name and part of an object path, each checked.
    pub(super) fn object(&self) -> ApiResult<(Scope<'_>, &str, Part)> {
        Ok((self.scope()?, self.name()?, self.part()?))
    }

    pub(super) fn part(&self) -> ApiResult<Part> {
        self.sub.as_deref().map_or(Ok(Part::Main), part)
    }
}

pub(super) fn default_manager(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|ua| !ua.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

pub(super) fn part(sub: &str) -> ApiResult<Part> {
    match sub {
        "status" => Ok(Part::Status),
        other => Err(ApiError::NotFound {
            kind: "subresource".into(),
            name: other.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_kinds_and_scopes() {
        assert_eq!(kind("gameservers").unwrap().kind, "GameServer");
        assert_eq!(kind("widgets").unwrap_err().code().as_u16(), 404);
        let s = scope("gameservers", Some("default")).unwrap();
        assert_eq!(s.namespace, Some("default"));
        assert!(scope("nodes", None).is_ok());
        // a cluster-scoped kind has no namespaced path
        assert_eq!(
            scope("nodes", Some("default")).unwrap_err().code().as_u16(),
            404
        );
        assert_eq!(part("status").unwrap(), Part::Status);
        assert_eq!(part("scale").unwrap_err().code().as_u16(), 404);
    }

    #[test]
    fn query_flags_and_dry_run_parse() {
        assert!(truthy(&Some("true".into())) && truthy(&Some(String::new())));
        assert!(!truthy(&Some("false".into())) && !truthy(&None));
        let p = |dry_run: Option<&str>| Params {
            dry_run: dry_run.map(str::to_owned),
            ..Params::default()
        };
        assert!(!p(None).dry_run().unwrap());
        assert!(p(Some("All")).dry_run().unwrap());
        assert!(p(Some("Yes")).dry_run().is_err());
        let bad = Params {
            label_selector: Some("a in (".into()),
            ..Params::default()
        };
        assert!(bad.list_request().is_err());
        let zero = Params {
            limit: Some(0),
            resource_version: Some("0".into()),
            ..Params::default()
        };
        let req = zero.list_request().unwrap();
        assert_eq!((req.limit, req.revision), (None, None));
    }

    #[test]
    fn bodies_parse_as_json_or_one_yaml_document() {
        let mut headers = HeaderMap::new();
        let json = Bytes::from_static(br#"{"a": 1}"#);
        assert_eq!(parse_body(&headers, &json).unwrap()["a"], 1);
        assert!(parse_body(&headers, &Bytes::new()).is_err());
        headers.insert(header::CONTENT_TYPE, "application/yaml".parse().unwrap());
        let yaml = Bytes::from_static(b"a: 2\n");
        assert_eq!(parse_body(&headers, &yaml).unwrap()["a"], 2);
        let two = Bytes::from_static(b"a: 1\n---\na: 2\n");
        assert!(parse_body(&headers, &two).is_err());
    }

    #[test]
    fn the_default_field_manager_is_the_user_agent_product() {
        let mut headers = HeaderMap::new();
        assert_eq!(default_manager(&headers), "unknown");
        headers.insert(header::USER_AGENT, "catalystctl/0.1".parse().unwrap());
        assert_eq!(default_manager(&headers), "catalystctl");
    }
}
