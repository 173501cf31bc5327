//! A node credential reaches only its own Node, its own servers and the Templates they use
//! (Kubernetes' Node authorizer and NodeRestriction), and joins cannot take over a name.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{gs, Api, API, GS, JOIN_TOKEN, NODES, TOKEN};

const MERGE: &str = "application/merge-patch+json";

fn server_on(name: &str, node: &str, template: Option<&str>) -> Value {
    let mut obj = gs(name, json!({}));
    obj["spec"]["nodeName"] = node.into();
    if let Some(t) = template {
        obj["spec"]["template"] = t.into();
    }
    obj
}

fn template(name: &str) -> Value {
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Template",
           "metadata": {"name": name}, "spec": {"images": [{"name": "default", "image": "busybox"}]}})
}

/// node-a and node-b joined; servers a1 (template t-a) on node-a and b1 (t-b) on node-b.
async fn cluster() -> (Api, String, String) {
    let api = Api::start().await;
    let a = api.join("node-a").await;
    let b = api.join("node-b").await;
    for t in ["t-a", "t-b"] {
        let (code, body) = api.post(&format!("{API}/templates"), template(t)).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    for (gs_name, node, t) in [("a1", "node-a", "t-a"), ("b1", "node-b", "t-b")] {
        let (code, body) = api.post(GS, server_on(gs_name, node, Some(t))).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    (api, a, b)
}

#[tokio::test]
async fn a_node_reads_only_its_own_servers_and_their_templates() {
    let (api, a, _b) = cluster().await;
    let get = async |uri: &str| api.call_as(&a, Method::GET, uri, "", None).await.0;
    assert_eq!(get(&format!("{GS}/a1")).await, StatusCode::OK);
    assert_eq!(get(&format!("{GS}/b1")).await, StatusCode::FORBIDDEN);
    assert_eq!(get(&format!("{GS}/a1/status")).await, StatusCode::OK);
    assert_eq!(get(&format!("{GS}/b1/status")).await, StatusCode::FORBIDDEN);
    assert_eq!(get(&format!("{GS}/missing")).await, StatusCode::NOT_FOUND);
    // lists must select the node
    assert_eq!(get(GS).await, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&format!("{API}/gameservers")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&format!(
            "{API}/gameservers?fieldSelector=status.nodeName%3Dnode-b"
        ))
        .await,
        StatusCode::FORBIDDEN
    );
    let (code, list) = api
        .call_as(
            &a,
            Method::GET,
            &format!("{API}/gameservers?fieldSelector=spec.nodeName%3Dnode-a"),
            "",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1"]);
    assert_eq!(
        get(&format!("{API}/gameservers?watch=true")).await,
        StatusCode::FORBIDDEN
    );
    // templates: only those its servers use, and no listing
    assert_eq!(get(&format!("{API}/templates/t-a")).await, StatusCode::OK);
    assert_eq!(
        get(&format!("{API}/templates/t-b")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&format!("{API}/templates")).await,
        StatusCode::FORBIDDEN
    );
    // nothing else
    for other in [
        format!("{API}/namespaces/default/backups"),
        format!("{API}/namespaces/default/schedules"),
        format!("{NODES}/node-b"),
        NODES.to_owned(),
        "/metrics".to_owned(),
    ] {
        assert_eq!(get(&other).await, StatusCode::FORBIDDEN, "{other}");
    }
    assert_eq!(get(&format!("{NODES}/node-a")).await, StatusCode::OK);
}

#[tokio::test]
async fn a_node_writes_only_its_servers_status_and_cannot_move_them() {
    let (api, a, _b) = cluster().await;
    let patch = async |uri: String, body: Value| {
        api.call_as(&a, Method::PATCH, &uri, MERGE, Some(body))
            .await
    };
    // the controllers bind a server (status.nodeName); the node may repeat it, not change it
    let (code, _) = patch(
        format!("{GS}/a1/status"),
        json!({"status": {"nodeName": "node-a"}}),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "only the scheduler binds");
    let (code, body) = api
        .merge(
            &format!("{GS}/a1/status"),
            json!({"status": {"nodeName": "node-a"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // its own server: status yes, spec no
    let (code, body) = patch(
        format!("{GS}/a1/status"),
        json!({"status": {"nodeName": "node-a"}}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _) = patch(
        format!("{GS}/a1/status"),
        json!({"status": {"message": "hello"}}),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    for hijack in [json!("node-b"), Value::Null] {
        let (code, body) = patch(
            format!("{GS}/a1/status"),
            json!({"status": {"nodeName": hijack}}),
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{hijack}: {body}");
    }
    assert_eq!(
        patch(format!("{GS}/a1"), json!({"spec": {"nodeName": "node-a"}}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // the other node's server: not even its status, and not by claiming it
    let (code, _) = patch(
        format!("{GS}/b1/status"),
        json!({"status": {"nodeName": "node-a"}}),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (_, b1) = api.get(&format!("{GS}/b1")).await;
    assert!(b1["status"]["nodeName"].is_null(), "{b1}");
    // a whole-object status write must keep status.nodeName too
    let (_, a1) = api.get(&format!("{GS}/a1")).await;
    let mut moved = a1.clone();
    moved["status"]["nodeName"] = "node-b".into();
    let (code, _) = api
        .call_as(
            &a,
            Method::PUT,
            &format!("{GS}/a1/status"),
            "application/json",
            Some(moved),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // creating or deleting servers is not a node's business
    let (code, _) = api
        .call_as(
            &a,
            Method::POST,
            GS,
            "application/json",
            Some(server_on("new", "node-a", None)),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = api
        .call_as(&a, Method::DELETE, &format!("{GS}/a1"), "", None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // its Node: status yes; labels, spec (address, port range) no; other nodes' status no
    let (code, body) = patch(
        format!("{NODES}/node-a/status"),
        json!({"status": {"state": "Ready"}}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    for (uri, body) in [
        (
            format!("{NODES}/node-a"),
            json!({"metadata": {"labels": {"tier": "gold"}}}),
        ),
        (
            format!("{NODES}/node-a"),
            json!({"spec": {"portRange": {"min": 1, "max": 65535}}}),
        ),
        (
            format!("{NODES}/node-b/status"),
            json!({"status": {"state": "NotReady"}}),
        ),
    ] {
        assert_eq!(
            patch(uri.clone(), body).await.0,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
    }
    // Events yes
    let event = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Event",
        "metadata": {"generateName": "a1-"},
        "involvedObject": {"kind": "GameServer", "namespace": "default", "name": "a1"},
        "reason": "Started", "message": "m", "type": "Normal"});
    let (code, body) = api
        .call_as(
            &a,
            Method::POST,
            &format!("{API}/namespaces/default/events"),
            "application/json",
            Some(event),
        )
        .await;
    assert!(
        code.is_success() || code == StatusCode::UNPROCESSABLE_ENTITY,
        "{code}: {body}"
    );
    // tunnels: only its own
    assert_eq!(
        api.call_as(&a, Method::GET, &format!("{NODES}/node-b/tunnel"), "", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn joins_cannot_take_a_name_and_a_deleted_node_loses_its_credential() {
    let (api, a, b) = cluster().await;
    // the join token cannot join an existing name
    let (code, body) = api.join_with(JOIN_TOKEN, "node-b").await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    // a Node an administrator registered ahead is claimed by its first join, once
    let pre = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node",
        "metadata": {"name": "node-c"}, "spec": {"portRange": {"min": 9000, "max": 9100}}});
    assert!(api.post(NODES, pre).await.0.is_success());
    let (code, body) = api.join_with(JOIN_TOKEN, "node-c").await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, _) = api.join_with(JOIN_TOKEN, "node-c").await;
    assert_eq!(code, StatusCode::CONFLICT, "claimed already");
    // node-a's credential cannot join as node-b
    let (code, _) = api.join_with(&a, "node-b").await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // a name that is no DNS label cannot be a node
    for bad in ["Node_A", "a/b", "..", ""] {
        let (code, body) = api.join_with(JOIN_TOKEN, bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
    }
    // node-b rotates its own credential: the new one works, the old one is gone
    let (code, body) = api.join_with(&b, "node-b").await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let b2 = body["token"].as_str().unwrap().to_owned();
    let node_b = format!("{NODES}/node-b");
    assert_eq!(
        api.call_as(&b2, Method::GET, &node_b, "", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.call_as(&b, Method::GET, &node_b, "", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // deleting node-a's Node revokes its credential within seconds
    let node_a = format!("{NODES}/node-a");
    assert_eq!(
        api.call_as(&a, Method::GET, &node_a, "", None).await.0,
        StatusCode::OK
    );
    assert!(api.delete(&node_a).await.0.is_success());
    let mut code = StatusCode::OK;
    for _ in 0..100 {
        code = api.call_as(&a, Method::GET, &node_a, "", None).await.0;
        if code == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // and a new Node of the same name does not revive the old credential
    let a2 = api.join("node-a").await;
    assert_eq!(
        api.call_as(&a, Method::GET, &node_a, "", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call_as(&a2, Method::GET, &node_a, "", None).await.0,
        StatusCode::OK
    );
    // the admin token still does everything, the join token nothing but joins
    assert_eq!(api.get(&node_b).await.0, StatusCode::OK);
    assert_eq!(
        api.call_as(JOIN_TOKEN, Method::GET, &node_b, "", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call_as(TOKEN, Method::GET, GS, "", None).await.0,
        StatusCode::OK
    );
}
