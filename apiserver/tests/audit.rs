//! The audit log through the router: writes and refusals leave records with who, what and the
//! answer; reads do not; the administrator reads them back filtered; old ones are purged.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use catalyst_apiserver::audit::{self, AuditQuery, AuditRecord, Seen};
use catalyst_apiserver::auth::Caller;
use chrono::Utc;
use serde_json::{json, Value};
use support::{gs, Api, API, GS, JOIN_TOKEN, TOKEN};
use tower::ServiceExt;

/// Every record so far, oldest first (straight from the store, once the queue is written).
async fn records(api: &Api) -> Vec<AuditRecord> {
    api.state.audit.sync().await;
    let q = AuditQuery::parse(None, None, Some("5000"), Utc::now()).unwrap();
    audit::list(api.store.as_ref(), &q).await.unwrap()
}

fn rv(obj: &Value) -> Option<String> {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn writes_and_refusals_leave_records_and_reads_do_not() {
    let api = Api::start().await;
    let node = api.join("node-a").await;

    let (code, created) = api.post(GS, gs("mc", json!({}))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let (code, _) = api.get(&format!("{GS}/mc")).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api.get(GS).await;
    assert_eq!(code, StatusCode::OK);
    let (code, patched) = api
        .merge(&format!("{GS}/mc"), json!({"spec": {"state": "Stopped"}}))
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    let (code, deleted) = api.delete(&format!("{GS}/mc")).await;
    assert_eq!(code, StatusCode::OK, "{deleted}");
    // a node may not create servers
    let (code, _) = api
        .call_as(
            &node,
            Method::POST,
            GS,
            "application/json",
            Some(gs("x", json!({}))),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // nor read another's node
    let (code, _) = api
        .call_as(&node, Method::GET, &format!("{API}/nodes/other"), "", None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = api.call_as("wrong", Method::GET, GS, "", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    let got = records(&api).await;
    let summary: Vec<(String, String, String, u16)> = got
        .iter()
        .map(|r| {
            let who = format!("{}:{}", r.caller.kind, r.caller.name);
            (who, r.verb.clone(), r.resource.clone(), r.code)
        })
        .collect();
    let t = |who: &str, verb: &str, res: &str, code: u16| {
        (who.to_owned(), verb.to_owned(), res.to_owned(), code)
    };
    let want = vec![
        t("join:", "create", "", 201),
        t("admin:admin", "create", "gameservers", 201),
        t("admin:admin", "patch", "gameservers", 200),
        t("admin:admin", "delete", "gameservers", 200),
        t("node:node-a", "create", "gameservers", 403),
        t("node:node-a", "get", "nodes", 403),
        t("anonymous:", "list", "gameservers", 401),
    ];
    assert_eq!(summary, want);

    let by_verb = |v: &str| got.iter().find(|r| r.verb == v && r.code < 300).unwrap();
    assert_eq!(
        by_verb("create").resource_version,
        None,
        "the join answers a token"
    );
    let create = got
        .iter()
        .find(|r| r.resource == "gameservers" && r.verb == "create" && r.code == 201)
        .unwrap();
    assert_eq!(create.resource_version, rv(&created));
    assert_eq!(create.namespace.as_deref(), Some("default"));
    assert_eq!(create.name, None, "a create names no object in its path");
    assert_eq!(by_verb("patch").resource_version, rv(&patched));
    assert_eq!(by_verb("patch").name.as_deref(), Some("mc"));
    assert!(rv(&patched).is_some() && rv(&patched) != rv(&created));
    assert_eq!(by_verb("delete").resource_version, rv(&deleted));
    assert!(got
        .iter()
        .filter(|r| r.code >= 300)
        .all(|r| r.resource_version.is_none()));
    assert!(got.iter().all(|r| !r.dry_run));
}

#[tokio::test]
async fn a_record_has_the_peer_address_the_user_agent_and_dry_runs_but_no_forwarded_for() {
    let api = Api::start().await;
    let peer: std::net::SocketAddr = "192.0.2.9:50000".parse().unwrap();
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{GS}?dryRun=All"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "audit-test/1")
        .header("X-Forwarded-For", "203.0.113.1")
        .extension(ConnectInfo(peer))
        .body(Body::from(
            serde_json::to_vec(&gs("dry", json!({}))).unwrap(),
        ))
        .unwrap();
    let resp = api.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let got = records(&api).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].source_ip.as_deref(), Some("192.0.2.9"));
    assert_eq!(got[0].user_agent.as_deref(), Some("audit-test/1"));
    assert!(got[0].dry_run);
}

#[tokio::test]
async fn the_administrator_reads_the_log_by_user_and_since_and_others_may_not() {
    let api = Api::start().await;
    let node = api.join("node-a").await;
    let (code, _) = api.post(GS, gs("one", json!({}))).await;
    assert_eq!(code, StatusCode::CREATED);
    api.state.audit.sync().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let between = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (code, _) = api.post(GS, gs("two", json!({}))).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, _) = api
        .call_as(&node, Method::DELETE, &format!("{GS}/two"), "", None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    let read = async |q: &str| {
        let (code, body) = api.get(&format!("/auth/v1/audit{q}")).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["kind"], "AuditRecordList");
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["caller"]["name"].as_str().unwrap(),
                    r["verb"].as_str().unwrap(),
                    r["code"]
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        read("").await,
        [
            " create 201",
            "admin create 201",
            "admin create 201",
            "node-a delete 403"
        ]
    );
    assert_eq!(
        read("?user=admin").await,
        ["admin create 201", "admin create 201"]
    );
    let since = format!("?since={}", between.replace('+', "%2B"));
    assert_eq!(
        read(&since).await,
        ["admin create 201", "node-a delete 403"]
    );
    assert_eq!(
        read(&format!("{since}&user=node-a")).await,
        ["node-a delete 403"]
    );
    assert_eq!(read("?since=1h&limit=2").await.len(), 2, "the newest two");
    assert_eq!(read("?limit=1").await, ["node-a delete 403"], "newest last");
    let (code, _) = api.get("/auth/v1/audit?since=yesterday").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = api.get("/auth/v1/audit?limit=5001").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // a node may not read it, and that refusal is itself audited
    let (code, _) = api
        .call_as(&node, Method::GET, "/auth/v1/audit", "", None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = api
        .call_as(JOIN_TOKEN, Method::GET, "/auth/v1/audit", "", None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = api
        .call_as("", Method::GET, "/auth/v1/audit", "", None)
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let last: Vec<(String, u16)> = records(&api)
        .await
        .iter()
        .rev()
        .take(3)
        .map(|r| (r.caller.kind.clone(), r.code))
        .collect();
    assert_eq!(
        last,
        [
            ("anonymous".into(), 401),
            ("join".into(), 403),
            ("node".into(), 403)
        ]
    );
}

#[tokio::test]
async fn records_older_than_the_retention_are_purged_and_younger_ones_stay() {
    let api = Api::start().await;
    let seen = Seen {
        method: Method::DELETE,
        path: format!("{GS}/x"),
        query: None,
        source: None,
        user_agent: None,
    };
    let admin = Caller::Admin("admin".into());
    for hours_ago in [50, 26, 2, 0] {
        let time = Utc::now() - chrono::Duration::hours(hours_ago);
        let r = AuditRecord::new(&seen, Some(&admin), StatusCode::OK, None, time);
        api.state.audit.submit(r);
    }
    api.state.audit.sync().await;
    assert_eq!(records(&api).await.len(), 4);
    let purged = audit::purge(api.store.as_ref(), Duration::from_secs(24 * 3600))
        .await
        .unwrap();
    assert_eq!(purged, 2);
    let left = records(&api).await;
    assert_eq!(left.len(), 2);
    let oldest = Utc::now() - chrono::Duration::hours(3);
    assert!(left.iter().all(|r| r.time > oldest), "{left:?}");
    assert_eq!(
        audit::purge(api.store.as_ref(), Duration::from_secs(24 * 3600))
            .await
            .unwrap(),
        0
    );
}
