//! Secrets: values go in through every write path and never come out of a read (GET, LIST,
//! WATCH, a write's answer); the stored objects do not hold them; the record follows the
//! object's life (kept by writes without data, replaced by writes with it, untouched by dry
//! runs and failed writes, removed with the object).

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use catalyst_apiserver::registry::SECRETS;
use catalyst_apiserver::store::ListOptions;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use support::{Api, TOKEN};
use tower::ServiceExt;

const SEC: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/secrets";
const VALUE: &str = "s3cr3t-value-that-must-not-leak";

fn secret(name: &str, data: Value) -> Value {
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Secret",
           "metadata": {"name": name}, "spec": {"data": data}})
}

async fn values(api: &Api, name: &str) -> Value {
    let data = api
        .state
        .registry
        .secret_values("default", name)
        .await
        .unwrap();
    serde_json::to_value(data).unwrap()
}

/// Every stored value outside the records, as text.
async fn stored_objects(api: &Api) -> String {
    let page = api.store.list("/", &ListOptions::default()).await.unwrap();
    page.items
        .iter()
        .filter(|kv| !kv.key.starts_with("/_catalyst/"))
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first bytes of a watch (it never ends by itself).
async fn watch_start(api: &Api) -> String {
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("{SEC}?watch=true"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = api.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut text = String::new();
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_millis(500), body.frame()).await
    {
        if let Some(d) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(d));
        }
    }
    text
}

#[tokio::test]
async fn values_are_written_and_never_read_back() {
    let api = Api::start().await;
    let (code, created) = api
        .post(
            SEC,
            secret(
                "s3",
                json!({"secretAccessKey": VALUE, "accessKeyId": "AKIA1"}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["spec"],
        json!({"keys": ["accessKeyId", "secretAccessKey"]})
    );
    let (code, got) = api.get(&format!("{SEC}/s3")).await;
    assert_eq!(code, StatusCode::OK);
    let (_, listed) = api.get(SEC).await;
    let watched = watch_start(&api).await;
    assert!(watched.contains("secretAccessKey"), "{watched}");
    for text in [
        created.to_string(),
        got.to_string(),
        listed.to_string(),
        watched,
        stored_objects(&api).await,
    ] {
        assert!(!text.contains(VALUE), "a value came out: {text}");
    }
    assert_eq!(values(&api, "s3").await["secretAccessKey"], VALUE);
    let uid = got["metadata"]["uid"].as_str().unwrap().to_owned();
    assert!(api
        .store
        .get(&format!("{SECRETS}{uid}"))
        .await
        .unwrap()
        .is_some());

    // what a GET shows, written back (get -o yaml | apply; an editor): the values stay
    let (code, put) = api
        .call_as(
            TOKEN,
            Method::PUT,
            &format!("{SEC}/s3"),
            "application/json",
            Some(got.clone()),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{put}");
    assert_eq!(values(&api, "s3").await["secretAccessKey"], VALUE);
    // a label change without data: the same
    let (code, _) = api
        .merge(
            &format!("{SEC}/s3"),
            json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(values(&api, "s3").await["accessKeyId"], "AKIA1");

    // the same values again: nothing is written, also when the clock passed a second since
    // the last write (the field manager's entry gets a new time)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, before) = api.get(&format!("{SEC}/s3")).await;
    let same = json!({"spec": {"data": {"secretAccessKey": VALUE, "accessKeyId": "AKIA1"}}});
    let (code, after) = api.merge(&format!("{SEC}/s3"), same).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert!(!after.to_string().contains(VALUE));

    // a dry run changes no value
    let (code, dry) = api
        .call_as(
            TOKEN,
            Method::PATCH,
            &format!("{SEC}/s3?dryRun=All"),
            "application/merge-patch+json",
            Some(json!({"spec": {"data": {"other": "x"}}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{dry}");
    assert_eq!(dry["spec"]["keys"], json!(["other"]));
    assert_eq!(values(&api, "s3").await["secretAccessKey"], VALUE);
    let (code, _) = api
        .call_as(
            TOKEN,
            Method::POST,
            &format!("{SEC}?dryRun=All"),
            "application/json",
            Some(secret("dry", json!({"k": "v"}))),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let records = api
        .store
        .list(SECRETS, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(records.items.len(), 1, "a dry run wrote no record");

    // a write that fails (a stale resourceVersion) leaves the values as they were
    let mut stale = got.clone();
    stale["spec"] = json!({"data": {"accessKeyId": "CHANGED", "secretAccessKey": "CHANGED"}});
    stale["metadata"]["labels"] = json!({"x": "y"});
    let (code, body) = api
        .call_as(
            TOKEN,
            Method::PUT,
            &format!("{SEC}/s3"),
            "application/json",
            Some(stale),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(values(&api, "s3").await["accessKeyId"], "AKIA1");

    // data replaces all the values, keys follow
    let (code, replaced) = api
        .merge(
            &format!("{SEC}/s3"),
            json!({"spec": {"data": {"token": "t2"}}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["spec"]["keys"], json!(["token"]));
    assert_eq!(values(&api, "s3").await, json!({"token": "t2"}));

    // bad keys and too much, named by field, without the value
    let (code, body) = api
        .post(SEC, secret("bad", json!({"no/slash": VALUE})))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("spec.data[no/slash]"), "{body}");
    assert!(!body.to_string().contains(VALUE), "{body}");
    let (code, body) = api
        .post(SEC, secret("big", json!({"a": "x".repeat(70 << 10)})))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("spec.data"), "{body}");
    let (code, body) = api
        .merge(&format!("{SEC}/s3"), json!({"spec": {"data": {"n": 1}}}))
        .await;
    assert!(code.is_client_error(), "{code} {body}");

    // the record goes with the object
    let (code, _) = api.delete(&format!("{SEC}/s3")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(api
        .store
        .get(&format!("{SECRETS}{uid}"))
        .await
        .unwrap()
        .is_none());
    // a new Secret of the same name does not inherit anything
    let (code, _) = api
        .post(
            SEC,
            json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Secret",
        "metadata": {"name": "s3"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(values(&api, "s3").await, json!({}));
}

#[tokio::test]
async fn a_backup_target_names_the_credentials_field_and_never_a_value() {
    let api = Api::start().await;
    let backup = |secret: &str| {
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Backup",
            "metadata": {"name": "b", "namespace": "default", "uid": "u-1"},
            "spec": {"gameServer": "gs", "storage": {"s3": {"endpoint": "https://s3.example.com",
                "bucket": "bk1", "prefix": "p/", "credentials": secret}}}})
    };
    let registry = &api.state.registry;
    let err = registry
        .backup_s3_target(&backup("nope"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("spec.storage.s3.credentials"),
        "{err}"
    );
    api.post(SEC, secret("half", json!({"accessKeyId": "AKIA2"})))
        .await;
    let err = registry
        .backup_s3_target(&backup("half"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("spec.storage.s3.credentials")
            && err.to_string().contains("secretAccessKey"),
        "{err}"
    );
    api.post(
        SEC,
        secret(
            "full",
            json!({"accessKeyId": "AKIA3", "secretAccessKey": VALUE}),
        ),
    )
    .await;
    let t = registry
        .backup_s3_target(&backup("full"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.key, "p/default/b-u-1.tar.zst");
    assert_eq!(t.secret_access_key, VALUE);
    assert!(!format!("{t:?}").contains(VALUE));
}
