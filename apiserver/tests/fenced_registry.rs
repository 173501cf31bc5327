//! A fenced registry (the controllers'): every write carries the leader's term, none is made
//! without a live one, and the store refuses the term's writes once the Lease was re-created.

use std::time::{Duration, Instant};

use catalyst_apiserver::registry::{Part, Registry, Scope, Term, SECRETS};
use catalyst_apiserver::store::{self, Guard, StoreError};
use catalyst_schemas::lookup_kind;
use serde_json::{json, Value};
use tokio::sync::watch;

fn scope(plural: &str) -> Scope<'static> {
    Scope {
        kind: lookup_kind(plural).unwrap(),
        namespace: Some("default"),
    }
}

fn gs(name: &str) -> Value {
    json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
           "metadata": {"name": name}, "spec": {"image": "busybox"}})
}

const LEASE: &str = "/leases/catalyst-system/catalyst-controllers";

/// The guard of the Lease key as it is now, created (again) when `recreate`.
async fn lease_guard(registry: &Registry, recreate: bool) -> Guard {
    let store = registry.store();
    if recreate {
        let _ = store.delete(LEASE, None).await;
    }
    if store.get(LEASE).await.unwrap().is_none() {
        store.create(LEASE, b"{}").await.unwrap();
    }
    let kv = store.get(LEASE).await.unwrap().unwrap();
    Guard {
        key: LEASE.into(),
        create_revision: kv.create_revision,
    }
}

fn term(guard: &Guard, left: Duration, ended: bool) -> Option<Term> {
    let now = Instant::now();
    Some(Term {
        guard: guard.clone(),
        valid_until: if ended { now - left } else { now + left },
    })
}

/// A status patch of server "a" through `registry`: refused by the fence, or not.
async fn patch_refused(registry: &Registry) -> bool {
    let patch = json!({"status": {"phase": "Scheduled"}});
    match registry
        .merge_patch(scope("gameservers"), "a", patch, Part::Status, false)
        .await
    {
        Err(e) => is_fence_refusal(&e),
        Ok(_) => false,
    }
}

fn is_fence_refusal(e: &catalyst_apiserver::error::ApiError) -> bool {
    e.code() == axum::http::StatusCode::CONFLICT
        && (e.to_string().contains("fenced") || e.to_string().contains("no live leadership term"))
}

#[tokio::test]
async fn writes_need_a_live_term_and_the_current_lease() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    let plain = Registry::new(store::open(&url).await.unwrap());
    let (tx, rx) = watch::channel(None);
    let fenced = plain.fenced(rx);

    // no term: refused here, nothing written, counted on every clone
    let e = fenced.create(scope("gameservers"), gs("a"), false).await;
    assert!(is_fence_refusal(&e.unwrap_err()));
    assert!(plain.get(scope("gameservers"), "a").await.is_err());
    assert_eq!(plain.fenced_writes(), 1);
    // the unfenced registry writes without a term
    plain
        .create(scope("gameservers"), gs("b"), false)
        .await
        .unwrap();

    // a live term: applied
    let guard = lease_guard(&plain, false).await;
    tx.send_replace(term(&guard, Duration::from_secs(30), false));
    fenced
        .create(scope("gameservers"), gs("a"), false)
        .await
        .unwrap();
    let before = plain.store().current_revision().await.unwrap();

    // the term ended on this process's clock: refused before the store
    tx.send_replace(term(&guard, Duration::from_millis(1), true));
    assert!(patch_refused(&fenced).await);
    let e = fenced.delete(scope("gameservers"), "b", None, false).await;
    assert!(is_fence_refusal(&e.unwrap_err()));
    assert_eq!(plain.store().current_revision().await.unwrap(), before);
    assert_eq!(plain.fenced_writes(), 3);

    // a live term whose Lease was re-created (another leader took over): the store refuses
    let old = guard.clone();
    let new = lease_guard(&plain, true).await;
    assert_ne!(old, new);
    tx.send_replace(term(&old, Duration::from_secs(30), false));
    let before = plain.store().current_revision().await.unwrap();
    assert!(patch_refused(&fenced).await);
    assert_eq!(plain.store().current_revision().await.unwrap(), before);
    assert_eq!(plain.fenced_writes(), 4);
    let raw = plain
        .store()
        .write(
            store::Write::Delete {
                key: "/gameservers/default/a",
                expected: None,
            },
            Some(&old),
        )
        .await;
    assert!(matches!(raw, Err(StoreError::Fenced { .. })), "{raw:?}");

    // the new term writes
    tx.send_replace(term(&new, Duration::from_secs(30), false));
    assert!(!patch_refused(&fenced).await);
    let a = plain.get(scope("gameservers"), "a").await.unwrap();
    assert_eq!(a["status"]["phase"], "Scheduled");
}

#[tokio::test]
async fn a_secret_without_a_term_leaves_no_values_behind() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    let plain = Registry::new(store::open(&url).await.unwrap());
    let (_tx, rx) = watch::channel(None);
    let fenced = plain.fenced(rx);
    let secret = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Secret",
                        "metadata": {"name": "s"}, "spec": {"data": {"k": "dmFsdWU="}}});
    let e = fenced.create(scope("secrets"), secret, false).await;
    assert!(is_fence_refusal(&e.unwrap_err()));
    let records = plain
        .store()
        .list(SECRETS, &Default::default())
        .await
        .unwrap();
    assert!(records.items.is_empty());
    assert!(plain.get(scope("secrets"), "s").await.is_err());
}
