//! etcd with one endpoint dead (a stopped member): the client keeps picking it now and then
//! (tonic's balanced channel, etcd-client#39), and the store retries those connect-phase
//! failures at the next endpoint, so every call succeeds.
//!
//! Needs `CATALYST_TEST_ETCD` (scripts/test starts etcd); skipped when etcd is left out of
//! `CATALYST_TEST_BACKENDS`.

use std::time::{Duration, Instant};

use catalyst_apiserver::store::{self, ListOptions};

#[tokio::test]
async fn a_dead_endpoint_fails_no_call() {
    if !catalyst_e2e::backend_enabled("etcd", "a_dead_endpoint_fails_no_call") {
        return;
    }
    let live =
        std::env::var("CATALYST_TEST_ETCD").expect("CATALYST_TEST_ETCD (scripts/test sets it)");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let prefix = format!("/dead-endpoint-{}", std::process::id());
    let url = format!("etcd://{dead},{live}?prefix={prefix}");
    let started = Instant::now();
    let store = store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    for i in 0..40 {
        let key = format!("/k/{i}");
        let rev = store
            .create(&key, b"v")
            .await
            .unwrap_or_else(|e| panic!("create {i}: {e}"));
        let got = store
            .get(&key)
            .await
            .unwrap_or_else(|e| panic!("get {i}: {e}"));
        assert_eq!(got.map(|kv| kv.mod_revision), Some(rev));
        let page = store
            .list("/k/", &ListOptions::default())
            .await
            .unwrap_or_else(|e| panic!("list {i}: {e}"));
        assert_eq!(page.items.len(), i + 1);
    }
    let took = started.elapsed();
    println!(
        "40 × create, get, list with a dead endpoint: {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}
