//! The Backup and Restore controller in-process against a real store, without nodes: what it
//! refuses or waits for before any node is asked, and jobs a previous leader left Running.

use std::time::Duration;

use catalyst_apiserver::auth::Authenticator;
use catalyst_apiserver::http::AppState;
use catalyst_apiserver::registry::{Part, Registry, Scope};
use catalyst_controllers::manager::{self, Config};
use catalyst_schemas::lookup_kind;
use serde_json::{json, Value};

fn scope(kind: &str) -> Scope<'static> {
    Scope {
        kind: lookup_kind(kind).unwrap(),
        namespace: Some("default"),
    }
}

async fn create(registry: &Registry, kind: &str, name: &str, spec: Value) {
    let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": "default"}, "spec": spec});
    let plural = format!("{}s", kind.to_lowercase());
    registry.create(scope(&plural), obj, false).await.unwrap();
}

/// Waits until `kind/name`'s status satisfies `what`; the object.
async fn status_of(
    registry: &Registry,
    kind: &str,
    name: &str,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = registry.get(scope(kind), name).await.unwrap();
        if what(&last["status"]) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{kind}/{name}: {last:#}");
}

fn says(status: &Value, phase: &str, words: &str) -> bool {
    status["phase"] == phase
        && status["message"]
            .as_str()
            .is_some_and(|m| m.contains(words))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_and_restores_say_why_they_cannot_run_and_interrupted_jobs_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        catalyst_apiserver::store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
            .await
            .unwrap();
    let registry = Registry::new(store);
    let state = AppState::new(registry.clone(), Authenticator::fixed(&[]))
        .await
        .unwrap();
    let _controllers = manager::start(
        registry.clone(),
        &state.caches,
        Config {
            tunnels: state.tunnels.clone(),
            ..Config::new("one", Duration::from_secs(2))
        },
    );
    // no such server; S3 credentials that are not there; a server not on a node waits
    create(&registry, "Backup", "lost", json!({"gameServer": "nope"})).await;
    create(
        &registry,
        "Backup",
        "bucket",
        json!({"gameServer": "nope", "storage": {"s3": {"endpoint": "http://127.0.0.1:1", "bucket": "bkt", "credentials": "missing"}}}),
    )
    .await;
    create(
        &registry,
        "GameServer",
        "mc",
        json!({"image": "busybox", "nodeSelector": {"nowhere": "true"}}),
    )
    .await;
    create(&registry, "Backup", "waits", json!({"gameServer": "mc"})).await;
    status_of(&registry, "backups", "lost", |s| {
        says(s, "Failed", "\"nope\" not found")
    })
    .await;
    status_of(&registry, "backups", "bucket", |s| {
        says(
            s,
            "Failed",
            "spec.storage.s3.credentials: secret \"missing\" not found",
        )
    })
    .await;
    status_of(&registry, "backups", "waits", |s| {
        says(s, "Pending", "not on a node")
    })
    .await;
    // a restore of a backup that does not exist, and of one that is not complete
    create(&registry, "Restore", "r-lost", json!({"backup": "gone"})).await;
    create(&registry, "Restore", "r-waits", json!({"backup": "waits"})).await;
    status_of(&registry, "restores", "r-lost", |s| {
        says(s, "Failed", "not found")
    })
    .await;
    status_of(&registry, "restores", "r-waits", |s| {
        says(s, "Pending", "to complete")
    })
    .await;
    // a job a previous leader left Running, with no task behind it here: interrupted
    create(&registry, "Backup", "left", json!({"gameServer": "mc"})).await;
    registry
        .update_with(scope("backups"), "left", None, Part::Status, false, |cur| {
            let mut next = cur.clone();
            next["status"] = json!({"phase": "Running", "nodeName": "gone-node"});
            Ok(next)
        })
        .await
        .unwrap();
    let left = status_of(&registry, "backups", "left", |s| {
        says(s, "Failed", "interrupted")
    })
    .await;
    assert!(left["status"]["completedAt"].is_string(), "{left:#}");
}
