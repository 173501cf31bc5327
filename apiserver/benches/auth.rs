//! What access control costs: GET requests/s of one GameServer through the whole router
//! (authentication, authorization, audit, metrics) with the bootstrap admin token (no RBAC:
//! the baseline), a user's JWT, an API key and a node token, each bound to read that server;
//! and login latency (argon2id) p50/p99. In-process (`oneshot`, no socket), SQLite store.
//! Besides the request rates it times the decision alone (`auth::resolve` + `auth::authorize`
//! for the same GET), which is what RBAC costs a request: the rates differ by less than
//! their own noise on a busy machine.
//!
//! `cargo bench -p catalyst-apiserver --bench auth` (also run by `scripts/bench`).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use catalyst_apiserver::auth::{self, Authenticator, Identity};
use catalyst_apiserver::http::{app, AppState};
use catalyst_apiserver::registry::Registry;
use catalyst_apiserver::store;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: &str = "bench-admin-token";
const JOIN: &str = "bench-join-token";
const API: &str = "/apis/catalyst.dev/v1alpha1";
/// Requests per credential, in ROUNDS interleaved rounds (the credentials take turns, so a
/// slow moment of the machine hits them alike; each one's figure is its median round).
const REQUESTS: usize = 4000;
const ROUNDS: usize = 8;
const DECISIONS: usize = 20_000;
const LOGINS: usize = 30;
const PASSWORD: &str = "a long benchmark password";

async fn call(
    app: &Router,
    token: &str,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if !token.is_empty() {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(serde_json::to_vec(&b).unwrap()));
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let code = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn created(app: &Router, uri: &str, body: Value) -> Value {
    let (code, body) = call(app, ADMIN, Method::POST, uri, Some(body)).await;
    assert!(code.is_success(), "POST {uri}: {code} {body}");
    body
}

/// GETs `uri` with `token` `n` times; requests/s.
async fn rate(app: &Router, token: &str, uri: &str, n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        let (code, body) = call(app, token, Method::GET, uri, None).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// The authentication and authorization of one GET by `token` alone (no handler, no
/// store read): the mean over DECISIONS, in microseconds.
async fn decision_us(state: &AppState, token: &str, uri: &str) -> f64 {
    let t = Instant::now();
    for _ in 0..DECISIONS {
        let caller = auth::resolve(state, Some(token)).await.unwrap();
        let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        auth::authorize(state, &caller, req).await.unwrap();
    }
    t.elapsed().as_secs_f64() * 1e6 / DECISIONS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("b.db").display()))
        .await
        .unwrap();
    for (token, id) in [
        (ADMIN, Identity::new("admin", "admin")),
        (JOIN, Identity::new("join", "nodes")),
    ] {
        Authenticator::issue_secret(&store, token, &id)
            .await
            .unwrap();
    }
    let auth = Authenticator::load(store.clone()).await.unwrap();
    let state = AppState::new(Registry::new(store.clone()), auth)
        .await
        .unwrap();
    catalyst_apiserver::server::seed_builtin_roles(&state.registry)
        .await
        .unwrap();
    let app = app(state.clone());

    // a node, a server on it, a user with viewer in the namespace (and 50 more bindings of
    // others, so the lookup is not trivially small), an API key of that user
    let (code, joined) = call(
        &app,
        JOIN,
        Method::POST,
        "/auth/v1/join",
        Some(json!({"nodeName": "n1"})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{joined}");
    let node = joined["token"].as_str().unwrap().to_owned();
    let gs = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
        "metadata": {"name": "s1"}, "spec": {"image": "busybox", "nodeName": "n1"}});
    created(&app, &format!("{API}/namespaces/team/gameservers"), gs).await;
    for i in 0..50 {
        let user = format!("other{i}");
        created(&app, &format!("{API}/users"), json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "User", "metadata": {"name": user}, "spec": {}})).await;
        created(&app, &format!("{API}/namespaces/ns{i}/rolebindings"), json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "RoleBinding",
            "metadata": {"name": "b"}, "spec": {"roleRef": "operator", "subjects": [{"kind": "User", "name": user}]}})).await;
    }
    created(&app, &format!("{API}/users"), json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "User", "metadata": {"name": "vera"}, "spec": {}})).await;
    let (code, _) = call(
        &app,
        ADMIN,
        Method::POST,
        &format!("{API}/users/vera/password"),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    created(&app, &format!("{API}/namespaces/team/rolebindings"), json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "RoleBinding",
        "metadata": {"name": "vera"}, "spec": {"roleRef": "viewer", "subjects": [{"kind": "User", "name": "vera"}]}})).await;
    let key = created(&app, &format!("{API}/apikeys"), json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "ApiKey",
        "metadata": {"name": "vera-key"}, "spec": {"owner": "vera", "roles": [{"role": "viewer", "namespace": "team"}],
        "requestsPerMinute": 100000}})).await;
    let key = key["status"]["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // logins: argon2id verification dominates
    let mut logins = Vec::with_capacity(LOGINS);
    let mut jwt = String::new();
    for _ in 0..LOGINS {
        let t = Instant::now();
        let (code, body) = call(
            &app,
            "",
            Method::POST,
            "/auth/v1/login",
            Some(json!({"username": "vera", "password": PASSWORD})),
        )
        .await;
        logins.push(t.elapsed());
        assert_eq!(code, StatusCode::OK, "{body}");
        jwt = body["accessToken"].as_str().unwrap().to_owned();
    }
    logins.sort();

    let uri = format!("{API}/namespaces/team/gameservers/s1");
    let credentials = [
        ("admin token (no RBAC, baseline)", ADMIN),
        ("user JWT (RBAC)", jwt.as_str()),
        ("API key (RBAC, key ∩ owner)", key.as_str()),
        ("node token (node authorizer)", node.as_str()),
    ];
    for (_, token) in credentials {
        rate(&app, token, &uri, 200).await; // warm-up
    }
    let mut rounds = vec![Vec::new(); credentials.len()];
    for round in 0..ROUNDS {
        for i in 0..credentials.len() {
            let i = (i + round) % credentials.len();
            rounds[i].push(rate(&app, credentials[i].1, &uri, REQUESTS / ROUNDS).await);
        }
    }
    let rates: Vec<f64> = rounds.into_iter().map(median).collect();
    let mut decisions = Vec::new();
    for (_, token) in credentials {
        decisions.push(decision_us(&state, token, &uri).await);
    }
    let request_us = 1e6 / rates[0];
    println!(
        "auth: GET one GameServer through the router, {REQUESTS} requests each in {ROUNDS} \
         interleaved rounds (median round), one client"
    );
    for (i, (what, _)) in credentials.iter().enumerate() {
        println!(
            "  {what:<34} {:>7.0} req/s ({:+5.1}% vs baseline)   decision {:>6.2} µs = {:4.1}% of a request",
            rates[i],
            (rates[0] - rates[i]) / rates[0] * 100.0,
            decisions[i],
            decisions[i] / request_us * 100.0,
        );
    }
    println!(
        "  login (argon2id): p50 {:.1} ms, p99 {:.1} ms over {LOGINS}",
        ms(logins[LOGINS / 2]),
        ms(logins[(LOGINS * 99 / 100).min(LOGINS - 1)])
    );
}
