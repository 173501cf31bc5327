//! Namespaces as tenants: a Quota limits what GameServers a namespace may hold, whoever
//! creates them (a billing key cannot oversell), and its status shows the usage.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{gs, Api, API};

const TEAM: &str = "/apis/catalyst.dev/v1alpha1/namespaces/team";

fn server(name: &str, memory: &str, template: Option<&str>) -> Value {
    let mut s = gs(name, json!({}));
    s["spec"]["resources"] = json!({"memory": memory, "cpu": "1"});
    if let Some(t) = template {
        s["spec"]["template"] = t.into();
    }
    s
}

async fn used(api: &Api) -> Value {
    let (_, q) = api.get(&format!("{TEAM}/quotas/plan")).await;
    q["status"]["used"].clone()
}

#[tokio::test]
async fn a_quota_refuses_what_does_not_fit_and_counts_what_is_there() {
    let api = Api::start().await;
    let quota = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Quota",
        "metadata": {"name": "plan"},
        "spec": {"maxGameServers": 2, "memory": "3Gi", "cpu": "4"}});
    let (code, body) = api.post(&format!("{TEAM}/quotas"), quota).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    // a billing key of the namespace sells servers
    let (code, body) = api
        .post(
            &format!("{API}/users"),
            json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "User", "metadata": {"name": "shop"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let rb = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "RoleBinding",
        "metadata": {"name": "shop-billing"},
        "spec": {"roleRef": "billing", "subjects": [{"kind": "User", "name": "shop"}]}});
    assert_eq!(
        api.post(&format!("{TEAM}/rolebindings"), rb).await.0,
        StatusCode::CREATED
    );
    let key = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "ApiKey",
        "metadata": {"name": "shop-key"},
        "spec": {"owner": "shop", "roles": [{"role": "billing", "namespace": "team"}]}});
    let (code, body) = api.post(&format!("{API}/apikeys"), key).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let token = body["status"]["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sell = async |s: Value| {
        api.call_as(
            &token,
            Method::POST,
            &format!("{TEAM}/gameservers"),
            "application/json",
            Some(s),
        )
        .await
    };
    let (code, body) = sell(server("a", "2Gi", None)).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    // 2Gi more would make 4Gi of 3Gi: refused, naming the field
    let (code, body) = sell(server("b", "2Gi", None)).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.resources.memory") && message.contains("plan"),
        "{message}"
    );
    let (code, body) = sell(server("b", "1Gi", None)).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    // a third server: over maxGameServers, even for the administrator
    let (code, body) = api
        .post(&format!("{TEAM}/gameservers"), server("c", "16Mi", None))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    // growing a server through an update is checked too
    let (code, body) = api
        .merge(
            &format!("{TEAM}/gameservers/b"),
            json!({"spec": {"resources": {"memory": "2Gi"}}}),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    // the status shows the usage, and follows deletions
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = used(&api).await;
        if seen["gameServers"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen["gameServers"], 2, "{seen}");
    assert_eq!(seen["memory"], "3Gi", "{seen}");
    assert!(api
        .call_as(
            &token,
            Method::DELETE,
            &format!("{TEAM}/gameservers/a"),
            "",
            None
        )
        .await
        .0
        .is_success());
    for _ in 0..50 {
        seen = used(&api).await;
        if seen["gameServers"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen["gameServers"], 1, "{seen}");
    // other namespaces are not limited by it
    let (code, _) = api
        .post(
            &format!("{API}/namespaces/other/gameservers"),
            server("x", "64Gi", None),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
}

#[tokio::test]
async fn a_quota_can_limit_the_templates_of_a_namespace() {
    let api = Api::start().await;
    for t in ["small", "huge"] {
        let tpl = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Template", "metadata": {"name": t},
            "spec": {"images": [{"name": "default", "image": "busybox"}]}});
        assert_eq!(
            api.post(&format!("{API}/templates"), tpl).await.0,
            StatusCode::CREATED
        );
    }
    let quota = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Quota",
        "metadata": {"name": "plan"}, "spec": {"allowedTemplates": ["small"]}});
    assert_eq!(
        api.post(&format!("{TEAM}/quotas"), quota).await.0,
        StatusCode::CREATED
    );
    let (code, body) = api
        .post(
            &format!("{TEAM}/gameservers"),
            server("ok", "1Gi", Some("small")),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body) = api
        .post(
            &format!("{TEAM}/gameservers"),
            server("no", "1Gi", Some("huge")),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.template"),
        "{body}"
    );
}

/// Backups are kept on nodes' disks: a Quota bounds how many a namespace holds, and a locked
/// backup refuses deletion with the field named.
#[tokio::test]
async fn a_quota_bounds_the_backups_and_a_locked_one_stays() {
    let api = Api::start().await;
    let quota = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Quota",
        "metadata": {"name": "plan"}, "spec": {"maxBackups": 2}});
    let (code, body) = api.post(&format!("{TEAM}/quotas"), quota).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let backup = |name: &str, locked: bool| {
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Backup",
            "metadata": {"name": name}, "spec": {"gameServer": "mc", "locked": locked}})
    };
    for (name, locked) in [("one", true), ("two", false)] {
        let (code, body) = api
            .post(&format!("{TEAM}/backups"), backup(name, locked))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    let (code, body) = api
        .post(&format!("{TEAM}/backups"), backup("three", false))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.maxBackups") && message.contains("plan"),
        "{message}"
    );
    // the locked one refuses deletion, naming spec.locked; the other goes, making room
    let (code, body) = api.delete(&format!("{TEAM}/backups/one")).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["details"]["causes"][0]["field"], "spec.locked",
        "{body}"
    );
    let (code, body) = api.delete(&format!("{TEAM}/backups/two")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body) = api
        .post(&format!("{TEAM}/backups"), backup("three", false))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    // unlocked, it may go
    let (code, body) = api
        .merge(
            &format!("{TEAM}/backups/one"),
            json!({"spec": {"locked": false}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body) = api.delete(&format!("{TEAM}/backups/one")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}
