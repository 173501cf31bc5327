//! The client against a real API server (in this process, on a loopback port, SQLite).

use std::sync::Arc;
use std::time::Duration;

use catalyst_apiserver::auth::{Authenticator, Identity};
use catalyst_apiserver::http::{app, AppState};
use catalyst_apiserver::registry::Registry;
use catalyst_apiserver::store;
use catalyst_client::informer::{Cache, Change, Informer};
use catalyst_client::source::HttpSource;
use catalyst_client::{Client, ListParams, API};
use serde_json::{json, Value};

const TOKEN: &str = "test-token";
const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";

async fn serve() -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
        .await
        .unwrap();
    let auth = Authenticator::fixed(&[(TOKEN, Identity::new("admin", "admin"))]);
    let state = AppState::new(Registry::new(store), auth).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    (Client::new(&format!("http://{addr}"), TOKEN), dir)
}

fn gs(name: &str) -> Value {
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
           "metadata": {"name": name, "namespace": "default"}, "spec": {"image": "busybox"}})
}

async fn bind(client: &Client, name: &str, node: &str) {
    client
        .patch(
            &format!("{GS}/{name}/status"),
            json!({"status": {"phase": "Scheduled", "nodeName": node}}),
        )
        .await
        .unwrap();
}

async fn next(informer: &mut Informer<HttpSource>) -> Change {
    tokio::time::timeout(Duration::from_secs(10), informer.next())
        .await
        .expect("a change in time")
}

#[tokio::test]
async fn failures_carry_the_api_status() {
    let (client, _dir) = serve().await;
    let e = client.get(&format!("{GS}/nope")).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let status = e.api_status().unwrap();
    assert_eq!(status.reason, "NotFound");
    assert!(
        e.to_string().starts_with("Error from server (NotFound): "),
        "{e}"
    );
    let mut bad = gs("x");
    bad["spec"]["image"] = json!("");
    let e = client.post(GS, bad).await.unwrap_err();
    assert_eq!(e.code(), Some(422), "{e}");
    assert!(
        e.api_status()
            .unwrap()
            .causes()
            .iter()
            .any(|c| c.field == "spec.image"),
        "{e}"
    );
}

#[tokio::test]
async fn an_informer_over_http_lists_by_field_selector_and_follows_changes() {
    let (client, _dir) = serve().await;
    for name in ["a", "b"] {
        client.post(GS, gs(name)).await.unwrap();
    }
    bind(&client, "a", "n1").await;
    bind(&client, "b", "n2").await;
    let listed = client
        .list(
            &format!("{API}/gameservers"),
            &ListParams::fields("status.nodeName=n1"),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.revision > 0);

    let source = HttpSource::new(
        client.clone(),
        format!("{API}/gameservers"),
        ListParams::fields("status.nodeName=n1"),
    );
    let cache = Arc::new(Cache::default());
    let mut informer = Informer::new(source, cache.clone());
    assert_eq!(
        next(&mut informer).await,
        Change::Listed(vec!["default/a".into()])
    );

    client.post(GS, gs("c")).await.unwrap();
    bind(&client, "c", "n1").await;
    let Change::Applied(key, obj) = next(&mut informer).await else {
        panic!("an applied change")
    };
    assert_eq!(key, "default/c");
    assert_eq!(obj["status"]["nodeName"], "n1");

    client.delete(&format!("{GS}/a")).await.unwrap();
    // a delete may first be a finalizing update; the deletion itself ends it
    loop {
        match next(&mut informer).await {
            Change::Deleted(key, _) => {
                assert_eq!(key, "default/a");
                break;
            }
            Change::Applied(key, _) => assert_eq!(key, "default/a"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(cache.keys_where(|_| true), ["default/c"]);
}
