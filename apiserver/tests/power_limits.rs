//! The GameServer power subresources (`…/start`, `stop`, `restart`, `suspend`, `unsuspend`,
//! `reinstall`), per-key request rates, and the throttling of node joins per source address,
//! against the real router.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use catalyst_apiserver::auth::limits::{LimitConfig, RateLimits};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use support::{gs, Api, API, GS, JOIN_TOKEN, TOKEN};
use tower::ServiceExt;

const JSON: &str = "application/json";

async fn power(api: &Api, name: &str, action: &str, query: &str) -> (StatusCode, Value) {
    api.call_as(
        TOKEN,
        Method::POST,
        &format!("{GS}/{name}/{action}{query}"),
        JSON,
        None,
    )
    .await
}

#[tokio::test]
async fn power_subresources_apply_their_patch_and_answer_the_object() {
    let api = Api::start().await;
    let (code, body) = api.post(GS, gs("s1", json!({}))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");

    let (code, obj) = power(&api, "s1", "stop", "").await;
    assert_eq!(code, StatusCode::OK, "{obj}");
    assert_eq!(obj["spec"]["state"], "Stopped");
    let (_, obj) = power(&api, "s1", "start", "").await;
    assert_eq!(obj["spec"]["state"], "Running");
    let (_, obj) = power(&api, "s1", "suspend", "").await;
    assert_eq!(obj["spec"]["suspended"], true);
    let (_, obj) = power(&api, "s1", "unsuspend", "").await;
    assert_eq!(obj["spec"]["suspended"], false);
    let (_, first) = power(&api, "s1", "restart", "").await;
    let stamp = &first["metadata"]["annotations"]["catalyst.dev/restartedAt"];
    assert!(stamp.is_string(), "{first}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, again) = power(&api, "s1", "restart", "").await;
    assert_ne!(
        &again["metadata"]["annotations"]["catalyst.dev/restartedAt"], stamp,
        "every restart is a new value"
    );
    let (_, obj) = power(&api, "s1", "reinstall", "").await;
    assert!(obj["metadata"]["annotations"]["catalyst.dev/reinstallRequestedAt"].is_string());

    // a dry run answers the object as it would be, and writes nothing
    let (code, dry) = power(&api, "s1", "suspend", "?dryRun=All").await;
    assert_eq!(
        (code, &dry["spec"]["suspended"]),
        (StatusCode::OK, &json!(true))
    );
    let (_, stored) = api.get(&format!("{GS}/s1")).await;
    assert_eq!(stored["spec"]["suspended"], false);

    // `{}` is a body too; anything else is not
    let (code, _) = api.post(&format!("{GS}/s1/stop"), json!({})).await;
    assert_eq!(code, StatusCode::OK);
    let (code, body) = api
        .post(
            &format!("{GS}/s1/stop"),
            json!({"spec": {"state": "Running"}}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    // unknown servers are 404; the generic subresource routes still work beside these
    let (code, _) = power(&api, "nope", "start", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, body) = api
        .call_as(
            TOKEN,
            Method::PATCH,
            &format!("{GS}/s1/status"),
            "application/merge-patch+json",
            Some(json!({"status": {"message": "m"}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _) = api.get(&format!("{GS}/s1/status")).await;
    assert_eq!(code, StatusCode::OK);
}

/// A request as `token` that keeps the Retry-After header.
async fn send(api: &Api, token: &str, uri: &str) -> (StatusCode, Option<u64>) {
    let req = Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = api.app.clone().oneshot(req).await.unwrap();
    let retry = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (resp.status(), retry)
}

#[tokio::test]
async fn an_api_key_is_held_to_its_requests_per_minute() {
    let api = Api::start().await;
    let user = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "User",
                      "metadata": {"name": "alice"}, "spec": {}});
    assert_eq!(
        api.post(&format!("{API}/users"), user).await.0,
        StatusCode::CREATED
    );
    let key = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "ApiKey",
                     "metadata": {"name": "slow"},
                     "spec": {"owner": "alice", "requestsPerMinute": 3}});
    let (code, body) = api.post(&format!("{API}/apikeys"), key).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let token = body["status"]["token"].as_str().unwrap().to_owned();
    // the access mirror learns of the key
    let mut tries = 0;
    while send(&api, &token, "/auth/v1/whoami").await.0 == StatusCode::UNAUTHORIZED {
        tries += 1;
        assert!(tries < 50, "the key never became valid");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 1..3 {
        assert_eq!(
            send(&api, &token, "/auth/v1/whoami").await.0,
            StatusCode::OK
        );
    }
    let (code, retry) = send(&api, &token, "/auth/v1/whoami").await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some_and(|s| (1..=20).contains(&s)), "{retry:?}");
    // the administrator is not held to the key's limit
    assert_eq!(send(&api, TOKEN, "/auth/v1/whoami").await.0, StatusCode::OK);
    // a new rate applies as soon as the spec changes
    let (code, body) = api
        .merge(
            &format!("{API}/apikeys/slow"),
            json!({"spec": {"requestsPerMinute": 100}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let mut tries = 0;
    while send(&api, &token, "/auth/v1/whoami").await.0 != StatusCode::OK {
        tries += 1;
        assert!(tries < 50, "the new rate never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A join from `ip` with `token`.
async fn join_from(api: &Api, ip: [u8; 4], token: &str, name: &str) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/auth/v1/join")
        .header(header::CONTENT_TYPE, JSON)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(json!({ "nodeName": name }).to_string()))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    let resp = api.app.clone().oneshot(req).await.unwrap();
    let code = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn failed_joins_back_off_per_address() {
    let api = Api::start().await;
    let attacker = [192, 0, 2, 7];
    for i in 0..20 {
        let (code, body) = join_from(&api, attacker, "guess", &format!("n{i}")).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{i}: {body}");
    }
    // the 21st failure starts the back-off: now even the right token waits
    join_from(&api, attacker, "guess", "n").await;
    let (code, body) = join_from(&api, attacker, JOIN_TOKEN, "good").await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["details"]["retryAfterSeconds"].as_u64().is_some(),
        "{body}"
    );
    // another address is not held back
    let (code, body) = join_from(&api, [192, 0, 2, 8], JOIN_TOKEN, "good").await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn successful_joins_are_rate_limited_per_address() {
    let mut api = Api::start().await;
    api.state.limits = Arc::new(RateLimits::new(LimitConfig {
        joins_per_minute: 2,
        ..LimitConfig::default()
    }));
    api.app = catalyst_apiserver::http::app(api.state.clone());
    let ip = [198, 51, 100, 1];
    for name in ["a", "b"] {
        let (code, body) = join_from(&api, ip, JOIN_TOKEN, name).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    let (code, body) = join_from(&api, ip, JOIN_TOKEN, "c").await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (code, body) = join_from(&api, [198, 51, 100, 2], JOIN_TOKEN, "c").await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}
