//! What nodes ask about SFTP sessions: logins by password, API key and SSH key, only for
//! servers on the asking node and only with `file.sftp`; checks that stop allowing a session
//! once the binding, the user, the key or the server is gone.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{gs, Api, API, GS};

const PASSWORD: &str = "a long enough password";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEQQ7xHJYDTh sam@laptop";

async fn ask(api: &Api, node: &str, path: &str, body: Value) -> (StatusCode, Value) {
    api.call_as(node, Method::POST, path, "application/json", Some(body))
        .await
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen");
}

#[tokio::test]
async fn nodes_ask_about_sftp_for_their_own_servers() {
    let api = Api::start().await;
    let node_a = api.join("node-a").await;
    let node_b = api.join("node-b").await;
    for (name, node) in [("s1", "node-a"), ("s2", "node-a"), ("b1", "node-b")] {
        let mut obj = gs(name, json!({}));
        obj["spec"]["nodeName"] = node.into();
        let (code, body) = api.post(GS, obj).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    let user = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "User",
        "metadata": {"name": "sam"}, "spec": {"sshKeys": [KEY]}});
    let (code, body) = api.post(&format!("{API}/users"), user).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body) = api
        .post(
            &format!("{API}/users/sam/password"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    let binding = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "RoleBinding",
        "metadata": {"name": "sam-sftp", "namespace": "default"},
        "spec": {"roleRef": "file.sftp", "resourceNames": ["s1"],
                 "subjects": [{"kind": "User", "name": "sam"}]}});
    let (code, body) = api
        .post(&format!("{API}/namespaces/default/rolebindings"), binding)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let login = |server: &str, secret: Value| {
        let mut body = json!({"username": "sam", "namespace": "default", "server": server,
            "remoteAddress": "192.0.2.7"});
        body.as_object_mut()
            .unwrap()
            .extend(secret.as_object().unwrap().clone());
        body
    };

    // a password: granted on s1, read-only (file.sftp alone does not change files)
    let (code, grant) = ask(
        &api,
        &node_a,
        "/auth/v1/sftp/login",
        login("s1", json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{grant}");
    assert_eq!(grant["user"], "sam");
    assert_eq!(grant["readOnly"], true, "{grant}");
    assert!(grant["uid"].as_str().is_some_and(|u| !u.is_empty()));
    // the key listed on the User, with another comment
    let other_comment = KEY.replace("sam@laptop", "elsewhere");
    let (code, by_key) = ask(
        &api,
        &node_a,
        "/auth/v1/sftp/login",
        login("s1", json!({"publicKey": other_comment})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{by_key}");
    // refusals: a wrong password, an unlisted key, a server without the binding, another
    // node's server, a server that does not exist; all say the same
    let unlisted =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb x";
    let cases = [
        (
            &node_a,
            login("s1", json!({"password": "wrong password here"})),
        ),
        (&node_a, login("s1", json!({"publicKey": unlisted}))),
        (&node_a, login("s2", json!({"password": PASSWORD}))),
        (&node_a, login("b1", json!({"password": PASSWORD}))),
        (&node_b, login("s1", json!({"password": PASSWORD}))),
        (&node_a, login("nope", json!({"password": PASSWORD}))),
    ];
    for (i, (node, body)) in cases.iter().enumerate() {
        let (code, v) = ask(&api, node, "/auth/v1/sftp/login", body.clone()).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}: {v}");
        assert_eq!(
            v["message"], "invalid user name, server or credentials",
            "{v}"
        );
        if i == 2 {
            // a success clears the account's failures (five are free)
            let (code, v) = ask(
                &api,
                &node_a,
                "/auth/v1/sftp/login",
                login("s1", json!({"password": PASSWORD})),
            )
            .await;
            assert_eq!(code, StatusCode::OK, "{v}");
        }
    }
    // failed logins are throttled per account, as logins to the API are
    for _ in 0..3 {
        ask(
            &api,
            &node_a,
            "/auth/v1/sftp/login",
            login("s1", json!({"password": "wrong again!!"})),
        )
        .await;
    }
    let (code, v) = ask(
        &api,
        &node_a,
        "/auth/v1/sftp/login",
        login("s1", json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{v}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (code, v) = ask(
        &api,
        &node_a,
        "/auth/v1/sftp/login",
        login("s1", json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "after the back-off: {v}");
    // only nodes ask: the administrator and users get 403
    let (code, _) = api
        .post(
            "/auth/v1/sftp/login",
            login("s1", json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    // an API key of sam's given as the password
    let key = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "ApiKey",
        "metadata": {"name": "sam-key"},
        "spec": {"owner": "sam", "roles": [{"role": "file.sftp", "namespace": "default"}]}});
    let (code, key) = api.post(&format!("{API}/apikeys"), key).await;
    assert_eq!(code, StatusCode::CREATED, "{key}");
    let secret = key["status"]["token"].as_str().unwrap().to_owned();
    let (code, by_api_key) = ask(
        &api,
        &node_a,
        "/auth/v1/sftp/login",
        login("s1", json!({"password": secret})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{by_api_key}");
    assert_eq!(by_api_key["key"], "sam-key");

    // checks: allowed now; not once the binding is gone, for the password session and the key
    let (code, v) = ask(&api, &node_a, "/auth/v1/sftp/check", grant.clone()).await;
    assert_eq!(
        (code, v["allowed"].clone()),
        (StatusCode::OK, json!(true)),
        "{v}"
    );
    let (code, v) = ask(&api, &node_b, "/auth/v1/sftp/check", grant.clone()).await;
    assert_eq!(
        (code, v["allowed"].clone()),
        (StatusCode::OK, json!(false)),
        "another node's check: {v}"
    );
    let (code, _) = api
        .delete(&format!("{API}/namespaces/default/rolebindings/sam-sftp"))
        .await;
    assert_eq!(code, StatusCode::OK);
    for g in [&grant, &by_api_key] {
        let g = g.clone();
        eventually("the check refuses", async || {
            let (_, v) = ask(&api, &node_a, "/auth/v1/sftp/check", g.clone()).await;
            v["allowed"] == false
                && v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("file.sftp"))
        })
        .await;
    }

    // a suspended server, a deleted key, a disabled user: refused too
    let binding = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "RoleBinding",
        "metadata": {"name": "sam-sftp2", "namespace": "default"},
        "spec": {"roleRef": "file.sftp", "subjects": [{"kind": "User", "name": "sam"}]}});
    let (code, _) = api
        .post(&format!("{API}/namespaces/default/rolebindings"), binding)
        .await;
    assert_eq!(code, StatusCode::CREATED);
    eventually("allowed again", async || {
        let (_, v) = ask(&api, &node_a, "/auth/v1/sftp/check", grant.clone()).await;
        v["allowed"] == true
    })
    .await;
    let (code, _) = api.delete(&format!("{API}/apikeys/sam-key")).await;
    assert_eq!(code, StatusCode::OK);
    eventually("the key's session ends", async || {
        let (_, v) = ask(&api, &node_a, "/auth/v1/sftp/check", by_api_key.clone()).await;
        v["allowed"] == false
    })
    .await;
    let (code, _) = api.post(&format!("{GS}/s1/suspend"), json!({})).await;
    assert!(code.is_success());
    let (_, v) = ask(&api, &node_a, "/auth/v1/sftp/check", grant.clone()).await;
    assert_eq!(v["allowed"], false, "{v}");
    assert!(
        v["reason"].as_str().unwrap_or("").contains("suspended"),
        "{v}"
    );
    let (code, _) = api.post(&format!("{GS}/s1/unsuspend"), json!({})).await;
    assert!(code.is_success());
    let (code, _) = api
        .merge(
            &format!("{API}/users/sam"),
            json!({"spec": {"disabled": true}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    eventually("a disabled user's session ends", async || {
        let (_, v) = ask(&api, &node_a, "/auth/v1/sftp/check", grant.clone()).await;
        v["allowed"] == false
    })
    .await;
    let (code, _) = ask(
        &api,
        &node_a,
        "/auth/v1/sftp/login",
        login("s1", json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}
