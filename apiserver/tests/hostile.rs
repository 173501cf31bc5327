//! Hostile clients, in-process through `oneshot`: every request here once took the server's
//! memory, panicked a handler or a watch task, or reached the store with a key it should not
//! have. Each answers with a Status now, and the server keeps serving.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
const OTHER: &str = "other-token";
const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";
const API: &str = "/apis/catalyst.dev/v1alpha1";

struct Api {
    app: Router,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn api_with(tune: impl FnOnce(&mut AppState)) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
        .await
        .unwrap();
    let admin = |name: &str| Identity::new("admin", name);
    let auth = Authenticator::fixed(&[(TOKEN, admin("admin")), (OTHER, admin("other"))]);
    let mut state = AppState::new(Registry::new(store.clone()), auth)
        .await
        .unwrap();
    tune(&mut state);
    Api {
        app: app(state),
        store,
        _dir: dir,
    }
}

async fn api() -> Api {
    api_with(|_| {}).await
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Api {
    /// One request with the admin token; the body as given, bytes and all.
    async fn send(&self, method: Method, uri: &str, content_type: &str, body: Vec<u8>) -> Answer {
        self.send_as(TOKEN, method, uri, content_type, body).await
    }

    async fn send_as(
        &self,
        token: &str,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send(Method::GET, uri, "application/json", Vec::new())
            .await
    }

    async fn create(&self, name: &str) {
        let gs = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"image": "busybox"}});
        let a = self
            .send(
                Method::POST,
                GS,
                "application/json",
                serde_json::to_vec(&gs).unwrap(),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
}

/// A Status with this code and reason, else a panic naming what came instead.
fn assert_status(a: &Answer, code: StatusCode, reason: &str) {
    assert_eq!(a.status, code, "{}", a.body);
    assert_eq!(a.body["kind"], "Status", "{}", a.body);
    assert_eq!(a.body["reason"], reason, "{}", a.body);
    assert_eq!(a.body["code"], code.as_u16(), "{}", a.body);
}

/// About 100 KB of YAML whose aliases expand to 10^8 scalars: an anchor of 10^4 scalars
/// and 10^4 aliases of it.
fn alias_bomb() -> Vec<u8> {
    let mut text = String::from("apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\n");
    text.push_str("metadata: {name: bomb, namespace: default}\nspec:\n  a: &a [");
    text.push_str(&"x,".repeat(10_000));
    text.push_str("x]\n  b: [");
    text.push_str(&"*a,".repeat(10_000));
    text.push_str("*a]\n");
    text.into_bytes()
}

#[tokio::test]
async fn an_alias_bomb_is_refused_quickly() {
    let api = api().await;
    let bomb = alias_bomb();
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    for (method, uri, ct) in [
        (Method::POST, GS.to_owned(), "application/yaml"),
        (Method::PUT, format!("{GS}/bomb"), "application/yaml"),
        (
            Method::PATCH,
            format!("{GS}/bomb?fieldManager=t"),
            "application/apply-patch+yaml",
        ),
    ] {
        let started = Instant::now();
        let a = api.send(method.clone(), &uri, ct, bomb.clone()).await;
        let took = started.elapsed();
        assert_status(&a, StatusCode::BAD_REQUEST, "BadRequest");
        assert!(
            a.body["message"].as_str().unwrap().contains("alias"),
            "{}",
            a.body
        );
        assert!(took < Duration::from_secs(1), "{method} took {took:?}");
    }
}

#[tokio::test]
async fn bodies_that_are_not_objects_are_bad_requests() {
    let api = api().await;
    api.create("a").await;
    for body in ["[]", "1", "\"x\"", "null", "true"] {
        for (method, uri, ct) in [
            (Method::POST, GS.to_owned(), "application/json"),
            (Method::PUT, format!("{GS}/a"), "application/json"),
            (Method::PUT, format!("{GS}/a/status"), "application/json"),
            (
                Method::PATCH,
                format!("{GS}/a"),
                "application/merge-patch+json",
            ),
            (
                Method::PATCH,
                format!("{GS}/a?fieldManager=t"),
                "application/apply-patch+yaml",
            ),
            (
                Method::PATCH,
                format!("{GS}/a?fieldManager=t"),
                "application/apply-patch+json",
            ),
            (Method::PUT, format!("{GS}/a"), "application/yaml"),
        ] {
            let a = api.send(method.clone(), &uri, ct, body.into()).await;
            assert_status(&a, StatusCode::BAD_REQUEST, "BadRequest");
            assert!(
                a.body["message"].as_str().unwrap().contains("object"),
                "{method} {uri} {ct} {body}: {}",
                a.body
            );
        }
    }
    // the object is untouched and the server still answers
    let a = api.get(&format!("{GS}/a")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["spec"]["image"], "busybox");
}

#[tokio::test]
async fn a_watch_timeout_beyond_a_day_is_a_bad_request() {
    let api = api().await;
    for t in ["18446744073709551615", "86401"] {
        let a = api
            .get(&format!("{GS}?watch=true&timeoutSeconds={t}"))
            .await;
        assert_status(&a, StatusCode::BAD_REQUEST, "BadRequest");
        assert!(
            a.body["message"].as_str().unwrap().contains("86400"),
            "{}",
            a.body
        );
    }
    // a day is fine (the stream stays open: only its head is read)
    let req = Request::get(format!("{GS}?watch=true&timeoutSeconds=86400"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = api.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_router_keeps_serving() {
    let api = api().await;
    let app = catalyst_apiserver::http::with_panic_guard(api.app.clone().route(
        "/test/panic",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("a handler bug");
            }
            "unreachable"
        }),
    ));
    let req = Request::get("/test/panic").body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let status: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "InternalError");
    // the message says nothing of the panic's text
    assert!(!status["message"].as_str().unwrap().contains("handler bug"));
    let req = Request::get("/healthz").body(Body::empty()).unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn limit_is_clamped_to_500_with_a_continue_token_and_plain_lists_are_complete() {
    let api = api().await;
    // 501 objects straight into the store, faster than through the API
    for i in 0..501 {
        let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
            "metadata": {"name": format!("gs-{i:04}"), "namespace": "default", "uid": format!("u{i}")},
            "spec": {"image": "busybox"}});
        api.store
            .create(
                &format!("/gameservers/default/gs-{i:04}"),
                &serde_json::to_vec(&obj).unwrap(),
            )
            .await
            .unwrap();
    }
    let a = api.get(&format!("{GS}?limit=100000")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["items"].as_array().unwrap().len(), 500);
    let token = a.body["metadata"]["continue"].as_str().unwrap().to_owned();
    let a = api
        .get(&format!("{GS}?limit=100000&continue={token}"))
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(a.body["items"][0]["metadata"]["name"], "gs-0500");
    // without a limit: every object, no continue token
    let a = api.get(GS).await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 501);
    assert!(a.body["metadata"]
        .get("continue")
        .is_none_or(Value::is_null));
}

#[tokio::test]
async fn watches_per_identity_are_capped_with_429_and_released_on_drop() {
    let api =
        api_with(|s| s.watch_limiter = Arc::new(catalyst_apiserver::limits::WatchLimiter::new(2)))
            .await;
    let watch = || {
        Request::get(format!("{GS}?watch=true"))
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap()
    };
    let first = api.app.clone().oneshot(watch()).await.unwrap();
    let second = api.app.clone().oneshot(watch()).await.unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = api.get(&format!("{GS}?watch=true")).await;
    assert_status(&third, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
    assert!(third.headers.contains_key(header::RETRY_AFTER));
    // another identity has its own allowance
    let other = api
        .app
        .clone()
        .oneshot(
            Request::get(format!("{GS}?watch=true"))
                .header(header::AUTHORIZATION, format!("Bearer {OTHER}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    // closing a watch gives its permit back (the watch task notices within a moment)
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = api.app.clone().oneshot(watch()).await.unwrap();
        if resp.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the permit was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn path_namespaces_and_names_are_validated_before_the_store() {
    let api = api().await;
    api.create("a").await;
    let bad_names = ["default%2Fx", "..", "UPPER", "a.b", "-a", &"x".repeat(64)];
    for name in bad_names {
        let uri = format!("{GS}/{name}");
        for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
            let a = api
                .send(
                    method.clone(),
                    &uri,
                    "application/merge-patch+json",
                    b"{}".to_vec(),
                )
                .await;
            assert_status(&a, StatusCode::BAD_REQUEST, "BadRequest");
            assert_eq!(
                a.body["details"]["causes"][0]["field"], "metadata.name",
                "{method} {uri}: {}",
                a.body
            );
        }
    }
    for ns in ["default%2Fx", "..", "UPPER", "a.b", &"x".repeat(64)] {
        for uri in [
            format!("{API}/namespaces/{ns}/gameservers"),
            format!("{API}/namespaces/{ns}/gameservers/a"),
            format!("{API}/namespaces/{ns}/gameservers/a/status"),
        ] {
            let a = api.get(&uri).await;
            assert_status(&a, StatusCode::BAD_REQUEST, "BadRequest");
            assert_eq!(
                a.body["details"]["causes"][0]["field"], "metadata.namespace",
                "{uri}: {}",
                a.body
            );
        }
        let a = api
            .send(
                Method::POST,
                &format!("{API}/namespaces/{ns}/gameservers"),
                "application/json",
                b"{}".to_vec(),
            )
            .await;
        assert_status(&a, StatusCode::BAD_REQUEST, "BadRequest");
    }
    // subdomain kinds take dots, label kinds do not
    let a = api
        .get(&format!("{API}/namespaces/default/events/a.b"))
        .await;
    assert_status(&a, StatusCode::NOT_FOUND, "NotFound");
    let a = api.get(&format!("{API}/nodes/a.b")).await;
    assert_status(&a, StatusCode::BAD_REQUEST, "BadRequest");
    // a/b is another route (a subresource), not a name
    let a = api.get(&format!("{GS}/a/b")).await;
    assert_status(&a, StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn bodies_over_3_mib_are_413_statuses() {
    let api = api().await;
    let mut big = br#"{"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": "big", "namespace": "default"}, "spec": {"image": ""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024));
    big.extend(br#""}}"#);
    for (method, uri) in [
        (Method::POST, GS.to_owned()),
        (Method::PUT, format!("{GS}/big")),
        (Method::PATCH, format!("{GS}/big")),
        (Method::DELETE, format!("{GS}/big")),
    ] {
        let a = api
            .send(method, &uri, "application/merge-patch+json", big.clone())
            .await;
        assert_status(&a, StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge");
    }
    // just under the limit is read (and judged on its content)
    let mut fits = br#"{"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": "fits", "namespace": "default"}, "spec": {"image": "busybox", "env": {"PAD": ""#.to_vec();
    fits.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    fits.extend(br#""}}}"#);
    let a = api.send(Method::POST, GS, "application/json", fits).await;
    assert_ne!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
}
