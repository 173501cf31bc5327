//! API paths: the group prefix, collection and object paths per kind, and query strings.

use catalyst_schemas::{KindInfo, API_VERSION};

/// The API group path.
pub const API: &str = "/apis/catalyst.dev/v1alpha1";

/// The API path of a collection: namespaced when the kind is and a namespace is given, else
/// across every namespace (or cluster-scoped).
pub fn collection_path(kind: &KindInfo, namespace: Option<&str>) -> String {
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => format!("/apis/{API_VERSION}/namespaces/{ns}/{}", kind.plural),
        _ => format!("/apis/{API_VERSION}/{}", kind.plural),
    }
}

/// The API path of an object.
pub fn object_path(kind: &KindInfo, namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", collection_path(kind, namespace))
}

/// The API path of a GameServer.
pub fn gs_path(ns: &str, name: &str) -> String {
    format!("{API}/namespaces/{ns}/gameservers/{name}")
}

/// `?k=v&…` with the values percent-encoded; pairs with an empty value are left out (and no
/// pairs give `""`).
pub fn query(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalyst_schemas::lookup_kind;

    #[test]
    fn paths_follow_the_kind_scope() {
        let gs = lookup_kind("gs").expect("gameservers");
        let node = lookup_kind("node").expect("nodes");
        assert_eq!(
            object_path(gs, Some("ns"), "a"),
            "/apis/catalyst.dev/v1alpha1/namespaces/ns/gameservers/a"
        );
        assert_eq!(
            collection_path(gs, None),
            "/apis/catalyst.dev/v1alpha1/gameservers"
        );
        assert_eq!(
            collection_path(node, Some("ns")),
            "/apis/catalyst.dev/v1alpha1/nodes"
        );
        assert_eq!(gs_path("ns", "a"), object_path(gs, Some("ns"), "a"));
    }

    #[test]
    fn query_values_are_encoded_and_empty_ones_dropped() {
        assert_eq!(
            query(&[
                ("fieldSelector", "status.nodeName=n1".into()),
                ("x", String::new())
            ]),
            "?fieldSelector=status.nodeName%3Dn1"
        );
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[("labelSelector", "a in (b,c)".into()), ("x", String::new())]),
            "?labelSelector=a%20in%20%28b%2Cc%29"
        );
        assert_eq!(query(&[("x", String::new())]), "");
    }
}
