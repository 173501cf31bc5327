//! The read barrier of a takeover: informers asked for a revision above their last list list
//! again, once each, and the barrier passes once every list was read at or after it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use catalyst_apiserver::auth::Authenticator;
use catalyst_apiserver::http::AppState;
use catalyst_apiserver::registry::{Registry, Scope};
use catalyst_controllers::informer::{self, Cache, Relist};
use catalyst_schemas::lookup_kind;
use serde_json::json;

#[path = "support/gate.rs"]
mod gate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_request_lists_every_informer_again_once() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        catalyst_apiserver::store::open(&format!("sqlite://{}", dir.path().join("r.db").display()))
            .await
            .unwrap();
    let state = AppState::new(Registry::new(store.clone()), Authenticator::fixed(&[]))
        .await
        .unwrap();
    // lists that take a while: a new informer's list is never done at its first poll
    let registry = Registry::new(Arc::new(gate::GateStore::new(
        store.clone(),
        Duration::from_millis(30),
    )));
    let relist = Arc::new(Relist::default());
    let mut tasks = Vec::new();
    let mut seen = Vec::new();
    for plural in ["gameservers", "nodes", "schedules"] {
        let kind = lookup_kind(plural).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tasks.push(tokio::spawn(informer::run(
            registry.clone(),
            state.caches[plural].clone(),
            kind,
            Arc::new(Cache::default()),
            move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            },
            relist.clone(),
        )));
        seen.push(calls);
    }
    // every informer listed once: the barrier at the current revision passes
    let first = store.current_revision().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), relist.wait(first))
        .await
        .expect("the first lists");
    // a server, then a token above every list (as a takeover's Lease create makes one)
    let gs = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
                    "metadata": {"name": "a", "namespace": "default"}, "spec": {"image": "busybox"}});
    let scope = Scope {
        kind: lookup_kind("gameservers").unwrap(),
        namespace: Some("default"),
    };
    registry.create(scope, gs, false).await.unwrap();
    let token = store.create("/leases/t", b"{}").await.unwrap();
    // let the watch deliver the server, then count from there
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<usize> = seen.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    relist.request(token);
    tokio::time::timeout(Duration::from_secs(5), relist.wait(token))
        .await
        .expect("every informer lists at or after the token");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after: Vec<usize> = seen.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    // the relist reports each cached key once: one server, no node, no schedule
    assert_eq!(
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>(),
        vec![1, 0, 0]
    );
    tasks.iter().for_each(|t| t.abort());
}
