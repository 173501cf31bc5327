//! What a node credential may do (Kubernetes' Node authorizer and NodeRestriction in one):
//! read its own Node and write its status, open its own tunnel, read the GameServers bound to
//! it (`spec.nodeName` or `status.nodeName` is the node) and the Templates those use, write
//! those GameServers' status without moving them to another node, and record Events.
//! Everything else is 403.
//!
//! Lists and watches of GameServers must select the node itself with a field selector
//! (`status.nodeName=NODE` or `spec.nodeName=NODE`), so the answer holds nothing else.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use serde_json::Value;

use super::attributes::Attributes;
use crate::error::ApiError;
use crate::registry::Scope;
use crate::selector::FieldSelector;
use crate::state::AppState;

/// The largest status write a node may send (bytes).
pub const MAX_STATUS_BODY: usize = 3 << 20;

fn deny(node: &str, a: &Attributes, why: &str) -> ApiError {
    let res = match &a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.clone(),
    };
    ApiError::Forbidden(format!(
        "node {node} may not {} {res}{}: {why}",
        a.verb,
        a.name
            .as_deref()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default()
    ))
}

/// Whether a field selector pins the node: one of its terms is `status.nodeName=NODE` or
/// `spec.nodeName=NODE`.
fn pins_node(query: Option<&str>, node: &str) -> bool {
    let Some(selector) = query.and_then(|q| query_param(q, "fieldSelector")) else {
        return false;
    };
    let Ok(parsed) = FieldSelector::parse(&selector) else {
        return false;
    };
    ["status.nodeName", "spec.nodeName"]
        .iter()
        .any(|f| parsed.requires_equal(f, node))
}

/// The percent-decoded value of parameter `name` in a query string.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    let uri: axum::http::Uri = format!("/?{query}").parse().ok()?;
    let axum::extract::Query(map) =
        axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(&uri)
            .ok()?;
    map.get(name).cloned()
}

/// Where a GameServer is bound and what Template it uses: what the node authorizer needs of
/// it, mirrored so that a node's reads cost no store read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `spec.nodeName`.
    pub spec_node: Option<String>,
    /// `status.nodeName`.
    pub status_node: Option<String>,
    /// `spec.template`.
    pub template: Option<String>,
}

impl Placement {
    fn on(&self, node: &str) -> bool {
        self.spec_node.as_deref() == Some(node) || self.status_node.as_deref() == Some(node)
    }
}

/// The placement of a GameServer object.
pub fn placement(obj: &Value) -> Option<Placement> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_owned);
    Some(Placement {
        spec_node: s("/spec/nodeName"),
        status_node: s("/status/nodeName"),
        template: s("/spec/template"),
    })
}

/// Whether GameServer `ns/name` is bound to `node` by the mirror; a server the mirror does
/// not show there (not yet seen, or another node's) is read from the store, so a binding made
/// an instant ago counts. A server moved away an instant ago may still read as bound until the
/// watch brings the move (milliseconds); writes always read the store.
async fn bound_now(
    state: &AppState,
    ns: Option<&str>,
    name: &str,
    node: &str,
) -> Result<bool, ApiError> {
    let key = match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    };
    if state
        .access
        .placements
        .get(&key)
        .is_some_and(|p| p.on(node))
    {
        return Ok(true);
    }
    Ok(bound_to(&gameserver(state, ns, name).await?, node))
}

/// Whether `obj` (a GameServer) is bound to `node`.
pub fn bound_to(obj: &Value, node: &str) -> bool {
    ["/spec/nodeName", "/status/nodeName"]
        .iter()
        .any(|p| obj.pointer(p).and_then(Value::as_str) == Some(node))
}

async fn gameserver(state: &AppState, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
    let kind = catalyst_schemas::lookup_kind("gameservers").expect("gameservers kind");
    state
        .registry
        .get(
            Scope {
                kind,
                namespace: ns,
            },
            name,
        )
        .await
}

/// Whether some GameServer bound to `node` uses Template `template`: by the mirror, else
/// (a server bound an instant ago) by the store.
async fn template_in_use(state: &AppState, node: &str, template: &str) -> Result<bool, ApiError> {
    let mirrored = state
        .access
        .placements
        .values()
        .iter()
        .any(|p| p.on(node) && p.template.as_deref() == Some(template));
    if mirrored {
        return Ok(true);
    }
    let kind = catalyst_schemas::lookup_kind("gameservers").expect("gameservers kind");
    for field in ["status.nodeName", "spec.nodeName"] {
        let req = crate::registry::ListRequest {
            fields: FieldSelector::parse(&format!("{field}={node}"))
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            ..Default::default()
        };
        let scope = Scope {
            kind,
            namespace: None,
        };
        let list = state.registry.list_all(scope, &req).await?;
        if list
            .items
            .iter()
            .any(|gs| gs.pointer("/spec/template").and_then(Value::as_str) == Some(template))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Decides a node's request; may read the object it names, and for a status write, the body
/// (the request comes back whole).
///
/// # Errors
/// 403 when the node may not, or whatever reading the object gave (404 for a server that is
/// not there: a node learns nothing more than that).
pub async fn authorize(
    state: &AppState,
    node: &str,
    a: &Attributes,
    req: Request,
) -> Result<Request, ApiError> {
    let query = req.uri().query().map(str::to_owned);
    let read = matches!(a.verb.as_str(), "get" | "list" | "watch");
    let write = matches!(a.verb.as_str(), "update" | "patch");
    let own = a.name.as_deref() == Some(node);
    match (a.resource.as_str(), a.subresource.as_deref()) {
        ("nodes", None) if own && a.verb == "get" => Ok(req),
        ("nodes", Some("status")) if own && (read || write) => Ok(req),
        ("nodes", Some("tunnel")) if own && a.verb == "get" => Ok(req),
        ("nodes", _) => Err(deny(
            node,
            a,
            "a node reaches only its own Node and its status",
        )),
        ("events", None) if a.verb == "create" => Ok(req),
        ("gameservers", None) if matches!(a.verb.as_str(), "list" | "watch") => {
            if pins_node(query.as_deref(), node) {
                Ok(req)
            } else {
                Err(deny(
                    node,
                    a,
                    &format!(
                        "select this node's servers with fieldSelector=status.nodeName={node}"
                    ),
                ))
            }
        }
        ("gameservers", None) if a.verb == "get" => {
            let name = a.name.as_deref().unwrap_or_default();
            if bound_now(state, a.namespace.as_deref(), name, node).await? {
                Ok(req)
            } else {
                Err(deny(node, a, "the server is not on this node"))
            }
        }
        ("gameservers", Some("status")) if read || write => {
            let name = a.name.as_deref().unwrap_or_default();
            let current = gameserver(state, a.namespace.as_deref(), name).await?;
            if !bound_to(&current, node) {
                return Err(deny(node, a, "the server is not on this node"));
            }
            if read {
                return Ok(req);
            }
            check_status_write(node, a, &current, req).await
        }
        ("templates", None) if a.verb == "get" => {
            let name = a.name.as_deref().unwrap_or_default();
            if template_in_use(state, node, name).await? {
                Ok(req)
            } else {
                Err(deny(node, a, "no server on this node uses the template"))
            }
        }
        _ => Err(deny(node, a, "not something a node does")),
    }
}

/// A node's status write must leave `status.nodeName` as it is: a node cannot hand a server
/// to itself or to another node. The body is JSON (a merge patch or a whole object).
async fn check_status_write(
    node: &str,
    a: &Attributes,
    current: &Value,
    req: Request,
) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_STATUS_BODY)
        .await
        .map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
    let ct = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("yaml") {
        return Err(deny(node, a, "a node writes status as JSON"));
    }
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let before = current.pointer("/status/nodeName").cloned();
    let after = body.pointer("/status/nodeName").cloned();
    let is_patch = a.verb == "patch";
    let moves = match (is_patch, after) {
        // a merge patch without the field leaves it alone
        (true, None) => false,
        (_, after) => after.filter(|v| !v.is_null()) != before.filter(|v| !v.is_null()),
    };
    if moves {
        return Err(deny(node, a, "status.nodeName is not a node's to change"));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_selector_must_pin_the_node() {
        assert!(pins_node(Some("fieldSelector=status.nodeName%3Dn1"), "n1"));
        assert!(pins_node(
            Some("watch=true&fieldSelector=spec.nodeName=n1,metadata.name=x"),
            "n1"
        ));
        assert!(!pins_node(Some("fieldSelector=status.nodeName%3Dn2"), "n1"));
        assert!(!pins_node(
            Some("fieldSelector=status.nodeName!%3Dn1"),
            "n1"
        ));
        assert!(!pins_node(Some("labelSelector=a%3Db"), "n1"));
        assert!(!pins_node(None, "n1"));
    }

    #[test]
    fn a_server_is_bound_by_spec_or_status_node_name() {
        assert!(bound_to(&json!({"spec": {"nodeName": "a"}}), "a"));
        assert!(bound_to(
            &json!({"spec": {"nodeName": "b"}, "status": {"nodeName": "a"}}),
            "a"
        ));
        assert!(!bound_to(&json!({"spec": {}, "status": {}}), "a"));
    }
}
