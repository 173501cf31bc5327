//! Who may do what, as data: every route and verb of the matrix × administrator, operator,
//! viewer, billing key, subuser with `control.console` and `control.start` on one server,
//! node-a, node-b, an expired key, a disabled user and no token, against the real router (RBAC
//! objects in the store, tokens from real logins, joins and key creation). Then escalation
//! attempts, and revocation of a deleted user's sessions and streams.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{gs, obj, Api, API, NODES, TOKEN};

const MERGE: &str = "application/merge-patch+json";
const JSON: &str = "application/json";
const TEAM: &str = "/apis/catalyst.dev/v1alpha1/namespaces/team";
const PASSWORD: &str = "a long enough password";

fn binding(name: &str, ns: Option<&str>, role: &str, user: &str, names: &[&str]) -> Value {
    let kind = if ns.is_some() {
        "RoleBinding"
    } else {
        "ClusterRoleBinding"
    };
    obj(
        kind,
        name,
        ns,
        json!({"roleRef": role, "subjects": [{"kind": "User", "name": user}], "resourceNames": names}),
    )
}

async fn created(api: &Api, token: &str, uri: &str, body: Value) -> Value {
    let (code, body) = api
        .call_as(token, Method::POST, uri, JSON, Some(body))
        .await;
    assert_eq!(code, StatusCode::CREATED, "POST {uri}: {body}");
    body
}

/// Makes user `name` with a password and signs in; returns the access token.
async fn user(api: &Api, name: &str) -> String {
    created(
        api,
        TOKEN,
        &format!("{API}/users"),
        obj("User", name, None, json!({})),
    )
    .await;
    let (code, body) = api
        .call_as(
            TOKEN,
            Method::POST,
            &format!("{API}/users/{name}/password"),
            JSON,
            Some(json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    login(api, name).await
}

async fn login(api: &Api, name: &str) -> String {
    let (code, body) = api
        .call_as(
            "",
            Method::POST,
            "/auth/v1/login",
            JSON,
            Some(json!({"username": name, "password": PASSWORD})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "login {name}: {body}");
    body["accessToken"].as_str().unwrap().to_owned()
}

async fn key(
    api: &Api,
    token: &str,
    name: &str,
    owner: &str,
    roles: Value,
    expires: Option<&str>,
) -> (StatusCode, Value) {
    let mut spec = json!({"owner": owner, "roles": roles});
    if let Some(t) = expires {
        spec["expiresAt"] = t.into();
    }
    api.call_as(
        token,
        Method::POST,
        &format!("{API}/apikeys"),
        JSON,
        Some(obj("ApiKey", name, None, spec)),
    )
    .await
}

struct World {
    api: Api,
    callers: Vec<(&'static str, String)>,
    carol: String,
    bob: String,
}

async fn world() -> World {
    let api = Api::start().await;
    let node_a = api.join("node-a").await;
    let node_b = api.join("node-b").await;
    for (name, node) in [("s1", "node-a"), ("s2", "node-b")] {
        let mut s = gs(name, json!({}));
        s["spec"]["nodeName"] = node.into();
        created(&api, TOKEN, &format!("{TEAM}/gameservers"), s).await;
    }
    let mut other = gs("o1", json!({}));
    other["metadata"]["namespace"] = "other".into();
    created(
        &api,
        TOKEN,
        &format!("{API}/namespaces/other/gameservers"),
        other,
    )
    .await;

    let alice = user(&api, "alice").await;
    let victor = user(&api, "victor").await;
    let bob = user(&api, "bob").await;
    let billy = user(&api, "billy").await;
    let carol = user(&api, "carol").await;
    let dave = user(&api, "dave").await;
    for b in [
        binding("alice-operator", Some("team"), "operator", "alice", &[]),
        binding(
            "bob-console",
            Some("team"),
            "control.console",
            "bob",
            &["s1"],
        ),
        binding("bob-start", Some("team"), "control.start", "bob", &["s1"]),
        binding("billy-billing", Some("team"), "billing", "billy", &[]),
        binding("carol-admin", Some("team"), "admin", "carol", &[]),
        binding("alice-reads-keys", Some("team"), "viewer", "alice", &[]),
    ] {
        created(&api, TOKEN, &format!("{TEAM}/rolebindings"), b).await;
    }
    for b in [
        binding("victor-viewer", None, "viewer", "victor", &[]),
        binding("dave-admin", None, "admin", "dave", &[]),
    ] {
        created(&api, TOKEN, &format!("{API}/clusterrolebindings"), b).await;
    }
    // billy's billing key, and a key of alice's that expires at once
    let (code, billing) = key(
        &api,
        &billy,
        "billy-billing",
        "billy",
        json!([{"role": "billing", "namespace": "team"}]),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{billing}");
    let billing = billing["status"]["token"].as_str().unwrap().to_owned();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let (code, expired) = key(
        &api,
        &alice,
        "alice-short",
        "alice",
        json!([{"role": "operator", "namespace": "team"}]),
        Some(&soon),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{expired}");
    let expired = expired["status"]["token"].as_str().unwrap().to_owned();
    // dave is disabled after signing in
    let (code, _) = api
        .merge(
            &format!("{API}/users/dave"),
            json!({"spec": {"disabled": true}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    World {
        callers: vec![
            ("admin", TOKEN.to_owned()),
            ("operator", alice),
            ("viewer", victor),
            ("billing", billing),
            ("subuser", bob.clone()),
            ("node-a", node_a),
            ("node-b", node_b),
            ("expired", expired),
            ("disabled", dave),
            ("none", String::new()),
        ],
        api,
        carol,
        bob,
    }
}

#[tokio::test]
async fn the_authorization_matrix_has_no_unexpected_allow_or_deny() {
    let w = world().await;
    let new_gs = gs("new", json!({}));
    let rb = binding("x", Some("team"), "viewer", "bob", &[]);
    let user = obj("User", "eve", None, json!({}));
    let cmd = json!({"command": "say hi"});
    let fsel = "fieldSelector=status.nodeName%3Dnode-a";
    // route, method, body; then A (allowed) or D (denied) per caller in World::callers' order:
    //                                                   adm op  vw  bil sub nA  nB  exp dis none
    let rows: Vec<(String, Method, Option<Value>, &str)> = vec![
        (
            format!("{TEAM}/gameservers"),
            Method::GET,
            None,
            "A A A A D D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s1"),
            Method::GET,
            None,
            "A A A A A A D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s2"),
            Method::GET,
            None,
            "A A A A D D A D D D",
        ),
        (
            format!("{TEAM}/gameservers?dryRun=All"),
            Method::POST,
            Some(new_gs.clone()),
            "A A D A D D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s1?dryRun=All"),
            Method::PATCH,
            Some(json!({"spec": {"state": "Stopped"}})),
            "A A D D D D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s2?dryRun=All"),
            Method::DELETE,
            None,
            "A A D A D D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s1/logs"),
            Method::GET,
            None,
            "A A A D A D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s1/command"),
            Method::POST,
            Some(cmd.clone()),
            "A A D D A D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s2/command"),
            Method::POST,
            Some(cmd.clone()),
            "A A D D D D D D D D",
        ),
        // power subresources, one grant each: bob holds control.start on s1 only, billing
        // suspends and unsuspends but does not start
        (
            format!("{TEAM}/gameservers/s1/start?dryRun=All"),
            Method::POST,
            None,
            "A A D D A D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s1/stop?dryRun=All"),
            Method::POST,
            None,
            "A A D D D D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s2/start?dryRun=All"),
            Method::POST,
            None,
            "A A D D D D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s1/suspend?dryRun=All"),
            Method::POST,
            None,
            "A A D A D D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s1/unsuspend?dryRun=All"),
            Method::POST,
            None,
            "A A D A D D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s1/restart?dryRun=All"),
            Method::POST,
            None,
            "A A D D D D D D D D",
        ),
        (
            format!("{TEAM}/gameservers/s1/status"),
            Method::PATCH,
            Some(json!({"status": {"message": "m"}})),
            "A A D D D A D D D D",
        ),
        (
            format!("{API}/namespaces/other/gameservers"),
            Method::GET,
            None,
            "A D A D D D D D D D",
        ),
        (
            format!("{API}/gameservers?{fsel}"),
            Method::GET,
            None,
            "A D A D D A D D D D",
        ),
        (
            format!("{TEAM}/rolebindings?dryRun=All"),
            Method::POST,
            Some(rb),
            "A D D D D D D D D D",
        ),
        (
            format!("{TEAM}/rolebindings"),
            Method::GET,
            None,
            "A A A D D D D D D D",
        ),
        (
            format!("{API}/roles"),
            Method::GET,
            None,
            "A D A D D D D D D D",
        ),
        (
            format!("{API}/users?dryRun=All"),
            Method::POST,
            Some(user),
            "A D D D D D D D D D",
        ),
        (
            format!("{API}/users"),
            Method::GET,
            None,
            "A D D D D D D D D D",
        ),
        (NODES.to_string(), Method::GET, None, "A D A D D D D D D D"),
        (
            format!("{NODES}/node-a/status"),
            Method::PATCH,
            Some(json!({"status": {"state": "Ready"}})),
            "A D D D D A D D D D",
        ),
        (
            format!("{NODES}/node-a?dryRun=All"),
            Method::DELETE,
            None,
            "A D D D D D D D D D",
        ),
        (
            "/metrics".to_owned(),
            Method::GET,
            None,
            "A D D D D D D D D D",
        ),
        (
            "/auth/v1/audit".to_owned(),
            Method::GET,
            None,
            "A D D D D D D D D D",
        ),
        (
            "/auth/v1/whoami".to_owned(),
            Method::GET,
            None,
            "A A A A A A A D D D",
        ),
    ];
    let mut unexpected = Vec::new();
    for (uri, method, body, expect) in &rows {
        let expect: Vec<&str> = expect.split_whitespace().collect();
        assert_eq!(expect.len(), w.callers.len(), "{uri}");
        for ((who, token), want) in w.callers.iter().zip(expect) {
            let ct = if *method == Method::PATCH {
                MERGE
            } else {
                JSON
            };
            let (code, answer) = w
                .api
                .call_as(token, method.clone(), uri, ct, body.clone())
                .await;
            let denied = code == StatusCode::UNAUTHORIZED || code == StatusCode::FORBIDDEN;
            let got = if denied { "D" } else { "A" };
            if got != want {
                unexpected.push(format!(
                    "{who} {method} {uri}: expected {want}, got {code} {answer}"
                ));
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold() {
    let w = World { ..world().await };
    let api = &w.api;
    let victor = &w.callers[2].1;
    // a viewer binds admin to himself
    let (code, body) = api
        .call_as(
            victor,
            Method::POST,
            &format!("{API}/clusterrolebindings"),
            JSON,
            Some(binding("v-admin", None, "admin", "victor", &[])),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    // carol, admin of namespace team, gives bob console on s2 only: yes; admin anywhere else: no
    let (code, body) = api
        .call_as(
            &w.carol,
            Method::POST,
            &format!("{TEAM}/rolebindings"),
            JSON,
            Some(binding(
                "bob-s2",
                Some("team"),
                "control.console",
                "bob",
                &["s2"],
            )),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    for (uri, b) in [
        (
            format!("{API}/clusterrolebindings"),
            binding("c-all", None, "control.console", "bob", &[]),
        ),
        (
            format!("{API}/namespaces/other/rolebindings"),
            binding("c-other", Some("other"), "viewer", "bob", &[]),
        ),
    ] {
        let (code, body) = api
            .call_as(&w.carol, Method::POST, &uri, JSON, Some(b))
            .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{uri}: {body}");
    }
    // a Role with more than carol holds
    let role = obj(
        "Role",
        "superuser",
        None,
        json!({"rules": [{"resources": ["*"], "verbs": ["*"]}]}),
    );
    let (code, _) = api
        .call_as(
            &w.carol,
            Method::POST,
            &format!("{API}/roles"),
            JSON,
            Some(role),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // someone who may edit bindings cannot sneak a bigger role into one with a merge patch
    let editor = obj(
        "Role",
        "binding-editor",
        None,
        json!({"rules": [
        {"resources": ["rolebindings"], "verbs": ["get", "patch", "update"]},
        {"resources": ["gameservers/logs"], "verbs": ["get"]}]}),
    );
    created(api, TOKEN, &format!("{API}/roles"), editor).await;
    created(
        api,
        TOKEN,
        &format!("{TEAM}/rolebindings"),
        binding("bob-edits", Some("team"), "binding-editor", "bob", &[]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, body) = api
        .call_as(
            &w.bob,
            Method::PATCH,
            &format!("{TEAM}/rolebindings/bob-s2"),
            MERGE,
            Some(json!({"spec": {"roleRef": "admin", "resourceNames": []}})),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let (_, kept) = api.get(&format!("{TEAM}/rolebindings/bob-s2")).await;
    assert_eq!(kept["spec"]["roleRef"], "control.console");
    // bob's key asks for more than bob holds: refused; exactly his console on s1: made
    let (code, body) = key(
        api,
        &w.bob,
        "bob-big",
        "bob",
        json!([{"role": "operator", "namespace": "team"}]),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let (code, body) = key(api, &w.bob, "bob-other", "carol", json!([]), None).await;
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "a key for someone else: {body}"
    );
    let (code, body) = key(
        api,
        &w.bob,
        "bob-s1",
        "bob",
        json!([{"role": "control.console", "namespace": "team", "resourceNames": ["s1"]}]),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let token = body["status"]["token"].as_str().unwrap().to_owned();
    assert!(body["status"]["tokenPrefix"]
        .as_str()
        .is_some_and(|p| token.starts_with(p)));
    let (_, stored) = api.get(&format!("{API}/apikeys/bob-s1")).await;
    assert!(
        stored["status"]["token"].is_null(),
        "the secret is shown once: {stored}"
    );
    let logs = |gs: &str| format!("{TEAM}/gameservers/{gs}/logs");
    assert_eq!(
        api.call_as(&token, Method::GET, &logs("s1"), "", None)
            .await
            .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        api.call_as(&token, Method::GET, &logs("s2"), "", None)
            .await
            .0,
        StatusCode::FORBIDDEN,
        "the key carries s1 only"
    );
    // his own keys: listed by owner, deleted by him; others' keys: not his to see
    let (code, list) = api
        .call_as(
            &w.bob,
            Method::GET,
            &format!("{API}/apikeys?fieldSelector=spec.owner%3Dbob"),
            "",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(
        api.call_as(&w.bob, Method::GET, &format!("{API}/apikeys"), "", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call_as(
            &w.bob,
            Method::GET,
            &format!("{API}/apikeys/billy-billing"),
            "",
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert!(api
        .call_as(
            &w.bob,
            Method::DELETE,
            &format!("{API}/apikeys/bob-s1"),
            "",
            None
        )
        .await
        .0
        .is_success());
    let mut code = StatusCode::OK;
    for _ in 0..40 {
        code = api
            .call_as(&token, Method::GET, &logs("s1"), "", None)
            .await
            .0;
        if code == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, StatusCode::UNAUTHORIZED, "a deleted key is dead");
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_and_open_watches() {
    let w = world().await;
    let api = &w.api;
    let victor = w.callers[2].1.clone();
    let req = axum::http::Request::get(format!("{TEAM}/gameservers?watch=true"))
        .header("authorization", format!("Bearer {victor}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(api.app.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    use http_body_util::BodyExt;
    // the initial ADDED events
    let _ = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap();
    assert!(api
        .delete(&format!("{API}/users/victor"))
        .await
        .0
        .is_success());
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
    assert!(ended.is_ok(), "the watch ends within seconds");
    assert_eq!(
        api.call_as(
            &victor,
            Method::GET,
            &format!("{TEAM}/gameservers"),
            "",
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    // login throttling: a few wrong passwords, then 429 with Retry-After even for the right one
    let mut last = StatusCode::OK;
    for _ in 0..7 {
        last = api
            .call_as(
                "",
                Method::POST,
                "/auth/v1/login",
                JSON,
                Some(json!({"username": "alice", "password": "wrong password!"})),
            )
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let (code, _) = api
        .call_as(
            "",
            Method::POST,
            "/auth/v1/login",
            JSON,
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "backing off");
}

#[tokio::test]
async fn a_schedule_acts_only_with_what_its_writer_holds() {
    let w = world().await;
    let api = &w.api;
    // bob may create schedules in team, and holds console and start on s1 only
    created(
        api,
        TOKEN,
        &format!("{TEAM}/rolebindings"),
        binding("bob-schedules", Some("team"), "schedule.create", "bob", &[]),
    )
    .await;
    // the authorizer's mirror of the bindings follows the store's watch
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let schedule = |name: &str, server: &str, action: &str| {
        let mut task = json!({"action": action});
        if action == "Command" {
            task["payload"] = "say hi".into();
        }
        obj(
            "Schedule",
            name,
            Some("team"),
            json!({"gameServer": server, "cron": "0 4 * * *", "tasks": [task]}),
        )
    };
    for (name, server, action, want) in [
        ("ok-command", "s1", "Command", StatusCode::CREATED),
        ("ok-start", "s1", "Start", StatusCode::CREATED),
        ("no-restart", "s1", "Restart", StatusCode::FORBIDDEN),
        ("no-backup", "s1", "Backup", StatusCode::FORBIDDEN),
        ("other-server", "s2", "Command", StatusCode::FORBIDDEN),
    ] {
        let (code, body) = api
            .call_as(
                &w.bob,
                Method::POST,
                &format!("{TEAM}/schedules"),
                JSON,
                Some(schedule(name, server, action)),
            )
            .await;
        assert_eq!(code, want, "{name}: {body}");
        if want == StatusCode::FORBIDDEN {
            assert!(body.to_string().contains("spec.tasks[0]"), "{body}");
        }
    }
    // running one now is schedule.update's (bob has only schedule.create)
    let (code, body) = api
        .call_as(
            &w.bob,
            Method::POST,
            &format!("{TEAM}/schedules/ok-command/run"),
            JSON,
            Some(json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let (code, body) = api
        .call_as(
            TOKEN,
            Method::POST,
            &format!("{TEAM}/schedules/ok-command/run"),
            JSON,
            Some(json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(body["metadata"]["annotations"]["catalyst.dev/runRequestedAt"].is_string());
}

/// A subuser granted one server by name learns it from `/auth/v1/rules`, and may list and
/// watch that one server (a `metadata.name` field selector), nothing more: not the others, not
/// the namespace, not through a second selector.
#[tokio::test]
async fn a_subuser_finds_and_follows_only_the_servers_granted_by_name() {
    let w = world().await;
    let api = &w.api;
    let get = |token: &str, uri: String| {
        let token = token.to_owned();
        async move { api.call_as(&token, Method::GET, &uri, "", None).await }
    };
    let (code, rules) = get(&w.bob, "/auth/v1/rules".into()).await;
    assert_eq!(code, StatusCode::OK, "{rules}");
    let rules = rules["rules"].as_array().unwrap().clone();
    assert!(!rules.is_empty());
    for r in &rules {
        assert_eq!(r["namespace"], "team", "{r}");
        assert_eq!(r["resourceNames"], json!(["s1"]), "{r}");
    }
    assert!(
        rules.iter().any(|r| r["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("gameservers/console"))),
        "{rules:?}"
    );
    let (code, admin) = get(TOKEN, "/auth/v1/rules".into()).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(admin["rules"][0]["verbs"], json!(["*"]));

    let (code, list) = get(
        &w.bob,
        format!("{TEAM}/gameservers?fieldSelector=metadata.name%3Ds1"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s1"]);
    for refused in [
        format!("{TEAM}/gameservers?fieldSelector=metadata.name%3Ds2"),
        format!("{TEAM}/gameservers"),
        format!("{TEAM}/gameservers?fieldSelector=metadata.name!%3Ds2"),
        format!("{API}/namespaces/other/gameservers?fieldSelector=metadata.name%3Ds1"),
        format!("{API}/gameservers?fieldSelector=metadata.name%3Ds1"),
        format!("{TEAM}/backups?fieldSelector=metadata.name%3Ds1"),
    ] {
        let (code, body) = get(&w.bob, refused.clone()).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{refused}: {body}");
    }
    // two selectors: never the second one's object
    let (code, body) = get(
        &w.bob,
        format!(
            "{TEAM}/gameservers?fieldSelector=metadata.name%3Ds1&fieldSelector=metadata.name%3Ds2"
        ),
    )
    .await;
    assert_ne!(code, StatusCode::OK, "{body}");
    assert!(!body.to_string().contains("\"s2\""), "{body}");
    // the watch of the one server opens (its first event is the server itself)
    let (code, _) = get(
        &w.bob,
        format!("{TEAM}/gameservers?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Ds1"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
}

/// An apply that would create an object is a create: a caller who may only patch changes what
/// exists and creates nothing. The access review counts what every user may do for themselves.
#[tokio::test]
async fn an_apply_creates_only_for_who_may_create() {
    let w = world().await;
    let api = &w.api;
    created(
        api,
        TOKEN,
        &format!("{API}/roles"),
        obj(
            "Role",
            "patcher",
            None,
            json!({"rules": [{"resources": ["gameservers"], "verbs": ["get", "patch"]}]}),
        ),
    )
    .await;
    let patcher = user(api, "patcher").await;
    created(
        api,
        TOKEN,
        &format!("{TEAM}/rolebindings"),
        binding("patcher", Some("team"), "patcher", "patcher", &[]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let apply = |name: &str| {
        let mut body = gs(name, json!({}));
        body["metadata"] = json!({"name": name, "namespace": "team"});
        let uri = format!("{TEAM}/gameservers/{name}?fieldManager=panel");
        let token = patcher.clone();
        async move {
            api.call_as(
                &token,
                Method::PATCH,
                &uri,
                "application/apply-patch+yaml",
                Some(body),
            )
            .await
        }
    };
    let (code, body) = apply("s1").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body) = apply("fresh").await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("create"),
        "{body}"
    );
    assert_eq!(
        api.get(&format!("{TEAM}/gameservers/fresh")).await.0,
        StatusCode::NOT_FOUND
    );

    // the access review: RBAC, and the rights every user has over their own keys
    let review = |verb: &str, resource: &str| {
        let token = patcher.clone();
        let body = json!({"verb": verb, "resource": resource, "namespace": "team"});
        async move {
            let (code, body) = api
                .call_as(
                    &token,
                    Method::POST,
                    "/auth/v1/access-review",
                    JSON,
                    Some(body),
                )
                .await;
            assert_eq!(code, StatusCode::OK, "{body}");
            body["allowed"].as_bool().unwrap()
        }
    };
    assert!(review("patch", "gameservers").await);
    assert!(!review("create", "gameservers").await);
    assert!(review("create", "apikeys").await);
    assert!(!review("list", "apikeys").await);
}
