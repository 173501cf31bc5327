//! What a request does, in RBAC's words: verb, resource, subresource, namespace and name, read
//! from the method, the path and the query alone (before any handler runs).

use axum::http::Method;

pub use catalyst_schemas::rbac::{Attributes, GROUP};

/// The API's path prefix.
pub const API: &str = "/apis/catalyst.dev/v1alpha1";

/// Whether a query asks for a watch, read as the resource handlers read it: the percent-decoded
/// `watch` parameter is `true`, `1` or empty (`?watch`, `?watch=`, `?watch=%74rue`).
pub fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            decode(k) == "watch" && matches!(decode(v).as_str(), "true" | "1" | "")
        })
    })
}

/// `s` percent-decoded, `+` as a space (form encoding, as serde_urlencoded reads it).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The attributes of a request to the resource API, or `None` outside it (discovery, OpenAPI,
/// `/metrics`: the caller decides what those need). Paths are
/// `API/namespaces/NS/PLURAL[/NAME[/SUB]]` and `API/PLURAL[/NAME[/SUB]]`.
pub fn of(method: &Method, path: &str, query: Option<&str>) -> Option<Attributes> {
    let rest = path.strip_prefix(API)?.trim_start_matches('/');
    if rest.is_empty() {
        return None;
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let (namespace, segs) = match segs.as_slice() {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(*ns), tail),
        s => (None, s),
    };
    let (resource, name, sub) = match segs {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    let verb = match (method, name, sub) {
        (&Method::GET | &Method::HEAD, _, _) if is_watch(query) && sub.is_none() => "watch",
        (&Method::GET | &Method::HEAD, None, _) => "list",
        (&Method::GET | &Method::HEAD, Some(_), _) => "get",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, None, _) => "deletecollection",
        (&Method::DELETE, Some(_), _) => "delete",
        _ => return None,
    };
    Some(Attributes {
        verb: verb.to_owned(),
        api_group: GROUP.to_owned(),
        resource: resource.to_owned(),
        subresource: sub.map(str::to_owned),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(m: Method, path: &str, q: Option<&str>) -> Option<(String, String, Option<String>)> {
        of(&m, &format!("{API}{path}"), q).map(|a| {
            let res = match &a.subresource {
                Some(s) => format!("{}/{s}", a.resource),
                None => a.resource.clone(),
            };
            (
                a.verb,
                res,
                a.name
                    .map(|n| format!("{}/{n}", a.namespace.unwrap_or_default())),
            )
        })
    }

    #[test]
    fn a_watch_is_read_as_the_handlers_read_it() {
        for q in [
            "watch=true",
            "watch=1",
            "watch",
            "watch=",
            "watch=%74rue",
            "a=b&watch=true",
            "%77atch=1",
        ] {
            assert!(is_watch(Some(q)), "{q}");
        }
        for q in [
            "watch=false",
            "watch=0",
            "watchx=true",
            "x=watch",
            "watch=tru",
            "",
        ] {
            assert!(!is_watch(Some(q)), "{q}");
        }
        assert!(!is_watch(None));
    }

    #[test]
    fn methods_and_paths_map_to_verbs_and_resources() {
        let t = |v: &str, r: &str, n: Option<&str>| Some((v.into(), r.into(), n.map(Into::into)));
        assert_eq!(
            attrs(Method::GET, "/namespaces/a/gameservers", None),
            t("list", "gameservers", None)
        );
        assert_eq!(
            attrs(Method::GET, "/gameservers", Some("watch=true")),
            t("watch", "gameservers", None)
        );
        assert_eq!(
            attrs(Method::GET, "/namespaces/a/gameservers/x", None),
            t("get", "gameservers", Some("a/x"))
        );
        assert_eq!(
            attrs(
                Method::GET,
                "/namespaces/a/gameservers/x/logs",
                Some("watch=1")
            ),
            t("get", "gameservers/logs", Some("a/x"))
        );
        assert_eq!(
            attrs(Method::POST, "/namespaces/a/gameservers/x/command", None),
            t("create", "gameservers/command", Some("a/x"))
        );
        assert_eq!(
            attrs(Method::PATCH, "/nodes/n1/status", None),
            t("patch", "nodes/status", Some("/n1"))
        );
        assert_eq!(
            attrs(Method::PUT, "/nodes/n1", None),
            t("update", "nodes", Some("/n1"))
        );
        assert_eq!(
            attrs(Method::DELETE, "/namespaces/a/backups/b", None),
            t("delete", "backups", Some("a/b"))
        );
        assert_eq!(
            attrs(Method::DELETE, "/namespaces/a/backups", None),
            t("deletecollection", "backups", None)
        );
        assert_eq!(attrs(Method::GET, "", None), None);
        assert_eq!(attrs(Method::GET, "/a/b/c/d", None), None);
        assert_eq!(attrs(Method::OPTIONS, "/gameservers", None), None);
        assert_eq!(of(&Method::GET, "/healthz", None), None);
    }
}
