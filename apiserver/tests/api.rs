//! HTTP behaviour of the API, in-process through `oneshot` (no socket), on a SQLite store.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use catalyst_apiserver::auth::{Authenticator, Identity};
use catalyst_apiserver::http::{app, AppState};
use catalyst_apiserver::registry::Registry;
use catalyst_apiserver::store::{self, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test-token";
const JOIN_TOKEN: &str = "join-token";
const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
const NODES: &str = "/apis/catalyst.dev/v1alpha1/nodes";

struct Api {
    app: Router,
    store: Arc<dyn Store>,
    audit: Arc<catalyst_apiserver::audit::Auditor>,
    _dir: tempfile::TempDir,
}

async fn api_with(setup: impl AsyncFnOnce(&Arc<dyn Store>)) -> Api {
    api_window(setup, catalyst_apiserver::watch::WINDOW).await
}

async fn api_window(setup: impl AsyncFnOnce(&Arc<dyn Store>), window: usize) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
        .await
        .unwrap();
    setup(&store).await;
    let auth = Authenticator::fixed(&[
        (TOKEN, Identity::new("admin", "admin")),
        (JOIN_TOKEN, Identity::new("join", "nodes")),
    ]);
    let mut state = AppState::with_window(Registry::new(store.clone()), auth, window)
        .await
        .unwrap();
    state.bookmark_interval = Duration::from_millis(300);
    Api {
        audit: state.audit.clone(),
        app: app(state),
        store,
        _dir: dir,
    }
}

async fn api() -> Api {
    api_with(async |_| {}).await
}

impl Api {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        support::send(&self.app, TOKEN, method, uri, content_type, body).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, "", None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, uri, "application/json", Some(body))
            .await
    }

    async fn put(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, uri, "application/json", Some(body))
            .await
    }

    async fn merge(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PATCH,
            uri,
            "application/merge-patch+json",
            Some(body),
        )
        .await
    }

    async fn apply(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PATCH,
            uri,
            "application/apply-patch+yaml",
            Some(body),
        )
        .await
    }

    async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, uri, "", None).await
    }

    /// Opens a watch and returns a reader of its NDJSON events.
    async fn watch(&self, uri: &str) -> Watch {
        let req = Request::builder()
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        Watch {
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }
}

struct Watch {
    body: Body,
    buf: Vec<u8>,
}

impl Watch {
    async fn next(&mut self) -> Value {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return serde_json::from_slice(&line).unwrap();
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("watch stalled")
                .expect("watch ended")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// The next event that is not a bookmark.
    async fn next_change(&mut self) -> Value {
        loop {
            let ev = self.next().await;
            if ev["type"] != "BOOKMARK" {
                return ev;
            }
        }
    }
}

fn gs(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
           "metadata": {"name": name, "labels": labels}, "spec": {"image": "busybox"}})
}

fn rv(obj: &Value) -> &str {
    obj["metadata"]["resourceVersion"].as_str().unwrap()
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_as_a_status() {
    let api = api().await;
    let resp = api
        .app
        .clone()
        .oneshot(Request::get(GS).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        (
            body["kind"].as_str(),
            body["reason"].as_str(),
            body["code"].as_u64()
        ),
        (Some("Status"), Some("Unauthorized"), Some(401))
    );
    let resp = api
        .app
        .clone()
        .oneshot(
            Request::get(GS)
                .header(header::AUTHORIZATION, "Bearer wrong")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = api
        .app
        .clone()
        .oneshot(
            Request::get(GS)
                .header(header::AUTHORIZATION, format!("Bearer {JOIN_TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "the join token is no admin token"
    );
    for open in ["/healthz", "/readyz"] {
        let resp = api
            .app
            .clone()
            .oneshot(Request::get(open).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn create_get_and_the_errors_of_create() {
    let api = api().await;
    let (code, created) = api.post(GS, gs("survival", json!({"game": "mc"}))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(
        created["metadata"]["uid"].is_string()
            && created["metadata"]["creationTimestamp"].is_string()
    );
    assert_eq!(
        created["spec"]["restartPolicy"], "OnCrash",
        "defaults are filled"
    );
    let (code, got) = api.get(&format!("{GS}/survival")).await;
    assert_eq!((code, rv(&got)), (StatusCode::OK, rv(&created)));
    let (code, err) = api.post(GS, gs("survival", json!({}))).await;
    assert_eq!(
        (code, err["reason"].as_str()),
        (StatusCode::CONFLICT, Some("AlreadyExists"))
    );
    let (code, err) = api.get(&format!("{GS}/missing")).await;
    assert_eq!(
        (code, err["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );
    let bad = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": "Bad_Name"},
                     "spec": {"image": "busybox", "ports": [{"containerPort": 0}]}});
    let (code, err) = api.post(GS, bad).await;
    assert_eq!(
        (code, err["reason"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Invalid"))
    );
    let fields: Vec<&str> = err["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["metadata.name", "spec.ports[0].containerPort"]);
    let (code, _) = api.post(GS, json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node", "metadata": {"name": "x"}})).await;
    assert_eq!(
        code,
        StatusCode::BAD_REQUEST,
        "a Node posted to gameservers"
    );
    let (code, _) = api
        .get("/apis/catalyst.dev/v1alpha1/namespaces/default/nodes")
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "nodes are cluster-scoped");
    let (code, node) = api.post(NODES, json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node", "metadata": {"name": "node-a"}})).await;
    assert_eq!(code, StatusCode::CREATED, "{node}");
    assert!(node["metadata"].get("namespace").is_none());
}

#[tokio::test]
async fn lists_filter_by_label_and_field_selectors_and_page() {
    let api = api().await;
    for (name, game, tier) in [
        ("a", "mc", "gold"),
        ("b", "mc", "free"),
        ("c", "tee", "free"),
        ("d", "tee", "gold"),
        ("e", "mc", ""),
    ] {
        let labels = if tier.is_empty() {
            json!({"game": game})
        } else {
            json!({"game": game, "tier": tier})
        };
        assert_eq!(api.post(GS, gs(name, labels)).await.0, StatusCode::CREATED);
    }
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (selector, want) in [
        ("game%3Dmc", vec!["a", "b", "e"]),
        ("game!%3Dmc", vec!["c", "d"]),
        ("tier%20in%20(gold)", vec!["a", "d"]),
        ("tier%20notin%20(gold)", vec!["b", "c", "e"]),
        ("tier", vec!["a", "b", "c", "d"]),
        ("!tier", vec!["e"]),
        ("game%3Dmc,tier%3Dgold", vec!["a"]),
    ] {
        let (code, list) = api.get(&format!("{GS}?labelSelector={selector}")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(names(&list), want, "{selector}");
    }
    let (_, list) = api
        .get(&format!("{GS}?fieldSelector=metadata.name%3Dc"))
        .await;
    assert_eq!(names(&list), ["c"]);
    let (code, err) = api.get(&format!("{GS}?fieldSelector=spec.image%3Dx")).await;
    assert_eq!(
        (code, err["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadRequest"))
    );
    // pages of 2 with a filter, while another object is added
    let (_, first) = api.get(&format!("{GS}?limit=2&labelSelector=tier")).await;
    assert_eq!(names(&first), ["a", "b"]);
    api.post(GS, gs("bb", json!({"tier": "x"}))).await;
    let token = first["metadata"]["continue"].as_str().unwrap();
    let (_, second) = api
        .get(&format!("{GS}?limit=2&labelSelector=tier&continue={token}"))
        .await;
    assert_eq!(
        names(&second),
        ["c", "d"],
        "the page is read at the first page's revision"
    );
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    assert!(
        second["metadata"].get("continue").is_none(),
        "nothing after d at that revision"
    );
    let (_, all) = api.get("/apis/catalyst.dev/v1alpha1/gameservers").await;
    assert_eq!(all["kind"], "GameServerList");
    assert_eq!(names(&all).len(), 6);
}

#[tokio::test]
async fn replace_checks_the_resource_version_and_generation_follows_the_spec() {
    let api = api().await;
    let (_, created) = api.post(GS, gs("a", json!({}))).await;
    let mut obj = created.clone();
    obj["spec"]["image"] = "alpine".into();
    obj["status"] = json!({"phase": "Running"});
    let (code, replaced) = api.put(&format!("{GS}/a"), obj.clone()).await;
    assert_eq!(code, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["metadata"]["generation"], 2);
    assert!(
        replaced.get("status").is_none(),
        "status is ignored by the main resource"
    );
    let (code, err) = api.put(&format!("{GS}/a"), obj).await;
    assert_eq!(
        (code, err["reason"].as_str()),
        (StatusCode::CONFLICT, Some("Conflict")),
        "stale resourceVersion"
    );
    let mut labels_only = replaced.clone();
    labels_only["metadata"]["labels"] = json!({"x": "y"});
    let (_, relabelled) = api.put(&format!("{GS}/a"), labels_only).await;
    assert_eq!(
        relabelled["metadata"]["generation"], 2,
        "metadata changes keep the generation"
    );
    let (code, patched) = api
        .merge(&format!("{GS}/a"), json!({"spec": {"state": "Stopped"}}))
        .await;
    assert_eq!(
        (
            code,
            patched["spec"]["state"].as_str(),
            patched["spec"]["image"].as_str()
        ),
        (StatusCode::OK, Some("Stopped"), Some("alpine"))
    );
    assert_eq!(patched["metadata"]["generation"], 3);
    let (code, same) = api
        .merge(&format!("{GS}/a"), json!({"spec": {"state": "Stopped"}}))
        .await;
    assert_eq!(
        (code, rv(&same)),
        (StatusCode::OK, rv(&patched)),
        "a patch that changes nothing writes nothing"
    );
    let (code, err) = api
        .merge(
            &format!("{GS}/a"),
            json!({"spec": {"ports": [{"containerPort": 70000}]}}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err["details"]["causes"][0]["field"],
        "spec.ports[0].containerPort"
    );
}

#[tokio::test]
async fn status_writes_ignore_the_spec_and_follow_the_lifecycle() {
    let api = api().await;
    api.post(GS, gs("a", json!({}))).await;
    let status = format!("{GS}/a/status");
    let (code, obj) = api
        .merge(
            &status,
            json!({"spec": {"image": "evil"}, "status": {"phase": "Scheduled", "nodeName": "n1"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{obj}");
    assert_eq!(
        (
            obj["spec"]["image"].as_str(),
            obj["status"]["phase"].as_str()
        ),
        (Some("busybox"), Some("Scheduled"))
    );
    assert_eq!(
        obj["metadata"]["generation"], 1,
        "status writes keep the generation"
    );
    let (code, err) = api
        .merge(&status, json!({"status": {"phase": "Running"}}))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("Scheduled") && msg.contains("Running"),
        "{msg}"
    );
    for phase in ["Starting", "Running", "Stopping", "Stopped"] {
        let (code, obj) = api
            .merge(&status, json!({"status": {"phase": phase}}))
            .await;
        assert_eq!(code, StatusCode::OK, "{phase}: {obj}");
    }
    let (_, list) = api
        .get(&format!("{GS}?fieldSelector=status.phase%3DStopped"))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let api = api().await;
    let mut obj = gs("a", json!({}));
    obj["metadata"]["finalizers"] = json!(["catalyst.dev/cleanup"]);
    api.post(GS, obj).await;
    let (code, deleting) = api.delete(&format!("{GS}/a")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    let (code, still) = api.get(&format!("{GS}/a")).await;
    assert_eq!(
        code,
        StatusCode::OK,
        "still there while a finalizer remains"
    );
    let (code, _) = api
        .merge(
            &format!("{GS}/a"),
            json!({"metadata": {"finalizers": ["catalyst.dev/cleanup", "x.dev/new"]}}),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "no new finalizers while deleting"
    );
    assert_eq!(
        still["metadata"]["deletionTimestamp"],
        deleting["metadata"]["deletionTimestamp"]
    );
    let (code, _) = api
        .merge(
            &format!("{GS}/a"),
            json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        api.get(&format!("{GS}/a")).await.0,
        StatusCode::NOT_FOUND,
        "gone with the last finalizer"
    );
}

/// The store's revision less the revisions the audit records took (one create each).
async fn object_revision(api: &Api) -> i64 {
    api.audit.sync().await;
    let audit = api
        .store
        .list(catalyst_apiserver::audit::PREFIX, &Default::default())
        .await
        .unwrap();
    api.store.current_revision().await.unwrap() - i64::try_from(audit.items.len()).unwrap()
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let api = api().await;
    let before = object_revision(&api).await;
    let (code, obj) = api
        .post(&format!("{GS}?dryRun=All"), gs("a", json!({})))
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert!(obj["metadata"].get("resourceVersion").is_none());
    assert_eq!(api.get(&format!("{GS}/a")).await.0, StatusCode::NOT_FOUND);
    api.post(GS, gs("b", json!({}))).await;
    let rev = object_revision(&api).await;
    assert_eq!(rev, before + 1);
    let (code, _) = api
        .merge(
            &format!("{GS}/b?dryRun=All"),
            json!({"spec": {"image": "x"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api.delete(&format!("{GS}/b?dryRun=All")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(object_revision(&api).await, rev);
    assert_eq!(
        api.get(&format!("{GS}/b")).await.1["spec"]["image"],
        "busybox"
    );
    let (code, _) = api
        .post(&format!("{GS}?dryRun=Some"), gs("c", json!({})))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_reports_conflicts() {
    let api = api().await;
    let uri = format!("{GS}/a?fieldManager=gitops");
    let mut config = gs("a", json!({"game": "mc"}));
    config["spec"]["env"] = json!({"A": "1", "B": "2"});
    let (code, first) = api.apply(&uri, config.clone()).await;
    assert_eq!(code, StatusCode::CREATED, "{first}");
    let (code, again) = api.apply(&uri, config.clone()).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        (rv(&again), &again["metadata"]["generation"]),
        (rv(&first), &json!(1)),
        "re-applying writes nothing"
    );
    // the panel changes a field gitops applied
    let (code, _) = api
        .merge(
            &format!("{GS}/a?fieldManager=panel"),
            json!({"spec": {"image": "alpine"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, err) = api.apply(&uri, config.clone()).await;
    assert_eq!(code, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["details"]["causes"][0]["field"], "spec.image");
    assert!(err["message"].as_str().unwrap().contains("panel"));
    let (code, forced) = api
        .apply(&format!("{uri}&force=true"), config.clone())
        .await;
    assert_eq!(
        (code, forced["spec"]["image"].as_str()),
        (StatusCode::OK, Some("busybox"))
    );
    // a field gitops stops applying goes away
    config["spec"]["env"] = json!({"A": "1"});
    let (_, dropped) = api.apply(&uri, config).await;
    assert_eq!(dropped["spec"]["env"], json!({"A": "1"}));
    let (code, _) = api.apply(&format!("{GS}/a"), gs("a", json!({}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "fieldManager is required");
}

#[tokio::test]
async fn watches_stream_changes_in_order_with_bookmarks() {
    let api = api().await;
    let (_, a) = api.post(GS, gs("a", json!({"game": "mc"}))).await;
    let mut w = api
        .watch(&format!(
            "{GS}?watch=true&resourceVersion={}&allowWatchBookmarks=true",
            rv(&a)
        ))
        .await;
    let mut only_mc = api
        .watch(&format!(
            "{GS}?watch=true&resourceVersion={}&labelSelector=game%3Dmc",
            rv(&a)
        ))
        .await;
    api.post(GS, gs("b", json!({"game": "tee"}))).await;
    api.merge(&format!("{GS}/a"), json!({"spec": {"state": "Stopped"}}))
        .await;
    api.delete(&format!("{GS}/a")).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = w.next_change().await;
        seen.push((
            ev["type"].as_str().unwrap().to_owned(),
            ev["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("ADDED".into(), "b".into()),
            ("MODIFIED".into(), "a".into()),
            ("DELETED".into(), "a".into())
        ]
    );
    let ev = only_mc.next().await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("MODIFIED"), Some("a"))
    );
    assert_eq!(only_mc.next().await["type"], "DELETED");
    let bookmark = loop {
        let ev = w.next().await;
        if ev["type"] == "BOOKMARK" {
            break ev;
        }
    };
    assert!(
        bookmark["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            >= 4
    );
    // without a resourceVersion: the current objects first
    let mut fresh = api.watch(&format!("{GS}?watch=true")).await;
    let ev = fresh.next().await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("b"))
    );
}

/// A change that moves an object out of a watch's selector is a DELETED for that watcher,
/// one that moves it in an ADDED (as Kubernetes does): a node watching its own servers learns
/// that one left it.
#[tokio::test]
async fn objects_moving_across_a_selector_are_deleted_and_added_for_its_watchers() {
    let api = api().await;
    let (_, a) = api.post(GS, gs("a", json!({"game": "mc"}))).await;
    let mut mc = api
        .watch(&format!(
            "{GS}?watch=true&resourceVersion={}&labelSelector=game%3Dmc",
            rv(&a)
        ))
        .await;
    let label = |v: &str| json!({"metadata": {"labels": {"game": v}}});
    api.merge(&format!("{GS}/a"), label("tee")).await;
    api.merge(&format!("{GS}/a"), json!({"spec": {"state": "Stopped"}}))
        .await;
    api.merge(&format!("{GS}/a"), label("mc")).await;
    api.merge(&format!("{GS}/a"), json!({"spec": {"state": "Running"}}))
        .await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = mc.next_change().await;
        seen.push((
            ev["type"].as_str().unwrap().to_owned(),
            ev["object"]["metadata"]["labels"]["game"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("DELETED".into(), "tee".into()),
            ("ADDED".into(), "mc".into()),
            ("MODIFIED".into(), "mc".into())
        ]
    );
}

#[tokio::test]
async fn a_watch_from_a_compacted_revision_ends_with_410() {
    let api = api_with(async |store| {
        for i in 0..5 {
            store.create(&format!("/gameservers/default/old-{i}"), br#"{"apiVersion":"catalyst.dev/v1alpha1","kind":"GameServer","metadata":{"name":"x"},"spec":{"image":"busybox"}}"#).await.unwrap();
        }
        store.compact(4).await.unwrap();
    })
    .await;
    let mut w = api
        .watch(&format!("{GS}?watch=true&resourceVersion=1"))
        .await;
    let ev = w.next().await;
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(
        (
            ev["object"]["code"].as_u64(),
            ev["object"]["reason"].as_str()
        ),
        (Some(410), Some("Gone"))
    );
    let (code, _) = api.get(&format!("{GS}?resourceVersion=2&limit=1")).await;
    assert_eq!(code, StatusCode::GONE);
}

#[tokio::test]
async fn discovery_openapi_and_metrics_describe_the_api() {
    let api = api().await;
    let (_, groups) = api.get("/apis").await;
    assert_eq!(groups["groups"][0]["name"], "catalyst.dev");
    let (_, resources) = api.get("/apis/catalyst.dev/v1alpha1").await;
    let gs = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "gameservers")
        .unwrap();
    assert_eq!(
        (
            gs["kind"].as_str(),
            gs["namespaced"].as_bool(),
            gs["shortNames"][0].as_str()
        ),
        (Some("GameServer"), Some(true), Some("gs"))
    );
    let (_, openapi) = api.get("/openapi/v3").await;
    assert!(openapi["components"]["schemas"]["GameServer"]["properties"]["spec"].is_object());
    assert!(openapi["paths"].as_object().unwrap().contains_key(
        "/apis/catalyst.dev/v1alpha1/namespaces/{namespace}/gameservers/{name}/status"
    ));
    api.get(&format!("{GS}/none")).await;
    let (_, text) = api.get("/metrics").await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains(
            r#"catalyst_apiserver_requests_total{verb="GET",kind="GameServer",code="404"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("catalyst_apiserver_request_duration_seconds_bucket"));
    assert!(text.contains("catalyst_store_revision"));
}

#[tokio::test]
async fn a_watcher_that_stops_reading_is_cut_off_without_holding_back_the_others() {
    let api = api_window(async |_| {}, 64).await;
    let (_, first) = api.post(GS, gs("first", json!({}))).await;
    let from = rv(&first).to_owned();
    let mut stalled = api
        .watch(&format!("{GS}?watch=true&resourceVersion={from}"))
        .await;
    let mut reader = api
        .watch(&format!("{GS}?watch=true&resourceVersion={from}"))
        .await;
    let reading = tokio::spawn(async move {
        let mut names = Vec::new();
        while names.len() < 400 {
            let ev = reader.next_change().await;
            assert_eq!(ev["type"], "ADDED", "{ev}");
            names.push(
                ev["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        names
    });
    // 8 writers, so the stalled watcher falls far behind
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let app = api.app.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let req = Request::post(GS)
                        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(
                            serde_json::to_vec(&gs(&format!("w{w}-{i}"), json!({}))).unwrap(),
                        ))
                        .unwrap();
                    assert_eq!(
                        app.clone().oneshot(req).await.unwrap().status(),
                        StatusCode::CREATED
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let names = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .expect("the reader was held back")
        .unwrap();
    assert_eq!(
        names
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        400
    );
    let mut delivered = 0;
    let last = loop {
        let ev = stalled.next().await;
        if ev["type"] == "ERROR" {
            break ev;
        }
        delivered += 1;
    };
    assert_eq!(
        (
            last["object"]["code"].as_u64(),
            last["object"]["reason"].as_str()
        ),
        (Some(410), Some("Gone"))
    );
    assert!(last["object"]["message"]
        .as_str()
        .unwrap()
        .contains("too slow"));
    assert!(
        delivered < 400,
        "the stalled watcher got {delivered} events before the cut"
    );
}

#[tokio::test]
async fn the_same_watch_works_over_websocket() {
    use futures::StreamExt;
    let api = api().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (_, a) = api.post(GS, gs("a", json!({}))).await;
    let url = format!(
        "ws://{addr}{GS}?watch=true&resourceVersion={}&access_token={TOKEN}",
        rv(&a)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    api.post(GS, gs("b", json!({}))).await;
    let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ev: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("b"))
    );
    socket.close(None).await.unwrap();
    // and without a token the upgrade is refused
    let bad = format!("ws://{addr}{GS}?watch=true");
    assert!(tokio_tungstenite::connect_async(bad).await.is_err());
}

#[tokio::test]
async fn console_requests_travel_down_the_node_tunnel_as_typed_frames() {
    use catalyst_schemas::tunnel::{Answer, TunnelAnswer, TunnelOp, TunnelRequest};
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let api = api().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    api.post(GS, gs("a", json!({}))).await;
    let (code, _) = api
        .merge(
            &format!("{GS}/a/status"),
            json!({"status": {"nodeName": "n1"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api.get(&format!("{GS}/a/logs")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "no tunnel yet");

    // a fake nodelet: answers logs, command and metrics requests
    let url = format!("ws://{addr}{NODES}/n1/tunnel?access_token={TOKEN}");
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, mut stream) = socket.split();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(text) = msg else { continue };
            let req: TunnelRequest = serde_json::from_str(&text).unwrap();
            let answers = match req.op {
                TunnelOp::Logs { uid, tail, .. } => vec![
                    Answer::Started,
                    Answer::Line(format!("{} {tail:?}", uid.is_empty())),
                    Answer::End { result: None },
                ],
                TunnelOp::Command { text, .. } if text == "bad" => vec![Answer::Failed {
                    code: 400,
                    error: "bad command".into(),
                }],
                TunnelOp::Command { .. } => vec![Answer::End { result: None }],
                TunnelOp::Metrics { .. } => vec![Answer::End {
                    result: Some(json!({"cpu": 1})),
                }],
                TunnelOp::Prometheus
                | TunnelOp::Cancel
                | TunnelOp::Files { .. }
                | TunnelOp::Backup { .. }
                | TunnelOp::Ack { .. } => continue,
            };
            for a in answers {
                let frame = serde_json::to_string(&TunnelAnswer::new(req.id, a)).unwrap();
                sink.send(Message::Text(frame.into())).await.unwrap();
            }
        }
    });
    let mut logs = (StatusCode::SERVICE_UNAVAILABLE, Value::Null);
    for _ in 0..100 {
        logs = api.get(&format!("{GS}/a/logs?tailLines=5")).await;
        if logs.0 != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(logs, (StatusCode::OK, json!("false Some(5)\n")));
    let command = async |text: &str| {
        api.post(&format!("{GS}/a/command"), json!({ "command": text }))
            .await
    };
    assert_eq!(command("say hi").await.0, StatusCode::OK);
    let (code, status) = command("bad").await;
    assert_eq!(
        (code, status["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad command"))
    );
    assert_eq!(
        api.get(&format!("{GS}/a/metrics")).await,
        (StatusCode::OK, json!({"cpu": 1}))
    );
}

/// The web panel is the router's fallback: an unmatched API path stays a JSON 404 Status, a
/// write elsewhere is a 405 Status, and a GET elsewhere is the panel (the built `index.html` for
/// the panel's own routes, or the page saying how to build it), without a token.
#[tokio::test]
async fn the_panel_answers_only_what_the_api_does_not() {
    let api = api().await;
    let plain = |method: Method, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap()
    };
    for path in [
        "/apis/catalyst.dev/v1alpha1/nothing",
        "/auth/v1/nothing",
        "/openapi/v2",
    ] {
        let (code, body) = api.get(path).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["kind"], "Status", "{path}: {body}");
    }
    let r = api
        .app
        .clone()
        .oneshot(plain(Method::POST, "/gameservers/default/web"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);

    let built = catalyst_apiserver::http::panel::is_built();
    for path in ["/", "/gameservers/default/web", "/nodes"] {
        let r = api
            .app
            .clone()
            .oneshot(plain(Method::GET, path))
            .await
            .unwrap();
        let ctype = r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        if built {
            assert!(ctype.starts_with("text/html"), "{path}: {ctype}");
            assert!(text.contains("<div id=\"root\">"), "{path}: {text}");
        } else {
            assert!(text.contains("npm run build"), "{path}: {text}");
        }
    }
    // nothing outside the build is ever read, however the path is written
    for path in [
        "/../Cargo.toml",
        "/../../apiserver/Cargo.toml",
        "/assets/../../Cargo.toml",
        "/..%2f..%2fCargo.toml",
        "/%2e%2e/%2e%2e/Cargo.toml",
        "/./index.html/../../Cargo.toml",
        // a symlink as the last segment (rust-embed's own check of debug reads lets it pass)
        "/../../../../../../../../../../proc/self/exe",
    ] {
        let r = api
            .app
            .clone()
            .oneshot(plain(Method::GET, path))
            .await
            .unwrap();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("[package]"),
            "{path} read a file outside the build"
        );
        assert!(!bytes.starts_with(b"\x7fELF"), "{path} read the executable");
    }
    // a file name the build does not have is a 404, not index.html
    let r = api
        .app
        .clone()
        .oneshot(plain(Method::GET, "/assets/nothing-1234.js"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    if built {
        // a route whose name holds a dot is still the panel
        let r = api
            .app
            .clone()
            .oneshot(plain(Method::GET, "/yaml/templates/paper.v2"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // HEAD: the headers of the GET
        let r = api
            .app
            .clone()
            .oneshot(plain(Method::HEAD, "/"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        // index.html is revalidated (ETag), hashed assets are cached for good
        let r = api
            .app
            .clone()
            .oneshot(plain(Method::GET, "/"))
            .await
            .unwrap();
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = r.headers()[header::ETAG].clone();
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let mut again = plain(Method::GET, "/");
        again.headers_mut().insert(header::IF_NONE_MATCH, etag);
        let r = api.app.clone().oneshot(again).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    }
}

/// `POST /convert/v1/egg` turns a real Pterodactyl egg into a Template that admission takes,
/// with the converter's warnings; what is not an egg is a 400 Status, and it needs a token.
#[tokio::test]
async fn an_egg_converts_into_a_template_the_api_accepts() {
    let api = api().await;
    let egg: Value = serde_json::from_str(include_str!(
        "../../cli/tests/eggs/pterodactyl/egg-paper.json"
    ))
    .unwrap();
    let (code, body) = api
        .post(
            "/convert/v1/egg?imageMap=ghcr.io%2Fpterodactyl%2Fyolks%3A%3Dmirror.local%2Fyolks%3A",
            egg.clone(),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let template = body["template"].clone();
    assert_eq!(template["kind"], "Template");
    assert!(body["warnings"].is_array(), "{body}");
    let images = template["spec"]["images"].to_string();
    assert!(images.contains("mirror.local/yolks:"), "{images}");
    assert!(!images.contains("ghcr.io"), "{images}");
    let (code, created) = api
        .post("/apis/catalyst.dev/v1alpha1/templates", template)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");

    let (code, body) = api
        .post("/convert/v1/egg", json!({"meta": {"version": "PTDL_v9"}}))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["kind"], "Status");
    assert!(
        body["message"].as_str().unwrap().contains("PTDL_v9"),
        "{body}"
    );
    // hostile eggs: a rules string of a regex and 400,000 bars, too many variables, too big
    let mut bars = egg.clone();
    bars["variables"][0]["rules"] = format!("regex:/{}", "|".repeat(400_000)).into();
    let started = std::time::Instant::now();
    let (code, body) = api.post("/convert/v1/egg", bars).await;
    assert!(
        code.is_success() || code.is_client_error(),
        "{code}: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let mut many = egg.clone();
    many["variables"] = (0..300)
        .map(|i| json!({"name": format!("V{i}"), "env_variable": format!("V{i}"), "rules": "nullable"}))
        .collect::<Vec<_>>()
        .into();
    let (code, body) = api.post("/convert/v1/egg", many).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let mut big = egg.clone();
    big["description"] = "x".repeat(600 << 10).into();
    let (code, _) = api.post("/convert/v1/egg", big).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    let (code, _) = api.post("/convert/v1/egg?imageMap=x", egg.clone()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = support::send(
        &api.app,
        "",
        Method::POST,
        "/convert/v1/egg",
        "application/json",
        Some(egg),
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}
