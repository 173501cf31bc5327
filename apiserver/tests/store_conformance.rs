//! One conformance suite, run against every store backend.
//!
//! SQLite runs in a temporary directory. PostgreSQL and etcd need servers: set
//! `CATALYST_TEST_POSTGRES_URL` (a database the tests may create databases from) and
//! `CATALYST_TEST_ETCD` (`host:port`); `scripts/test` starts both on loopback and sets them.
//! A backend whose variable is missing fails its tests, unless `CATALYST_TEST_BACKENDS`
//! (default `sqlite,postgres,etcd`) leaves it out: then each of its tests prints
//! `skipped: <backend> (CATALYST_TEST_BACKENDS=…) <test>` past the harness's output capture and
//! returns, and `scripts/test` counts it as skipped, not passed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use catalyst_apiserver::store::{
    self, EventKind, Guard, ListOptions, Revision, Store, StoreError, WatchEvent, WatchStream,
    Write,
};
use futures::StreamExt;
use tokio::sync::RwLock;

/// etcd is shared by every test of the run; compaction is global there, so compaction tests
/// take this lock exclusively and the others share it.
static COMPACTION: RwLock<()> = RwLock::const_new(());

struct Backend {
    store: Arc<dyn Store>,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

use catalyst_e2e::backend_enabled as enabled;

fn required_env(name: &str, backend: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run scripts/test, which starts {backend}, or leave {backend} out of CATALYST_TEST_BACKENDS"
        )
    })
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

async fn open_backend(backend: &str, test: &str) -> Option<Backend> {
    if !enabled(backend, test) {
        return None;
    }
    let (url, dir) = match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            (
                format!("sqlite://{}", dir.path().join("catalyst.db").display()),
                Some(dir),
            )
        }
        "postgres" => {
            use sqlx::Connection;
            let admin = required_env("CATALYST_TEST_POSTGRES_URL", backend);
            let db = format!("conformance_{}", unique());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            (format!("{base}/{db}"), None)
        }
        "etcd" => {
            let hosts = required_env("CATALYST_TEST_ETCD", backend);
            (
                format!("etcd://{hosts}?prefix=/conformance-{}", unique()),
                None,
            )
        }
        other => panic!("unknown backend {other}"),
    };
    let store = store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    Some(Backend {
        store,
        url,
        _dir: dir,
    })
}

/// Next events of a watch, failing the test after `timeout`.
async fn next_events(stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
            Ok(Some(Ok(ev))) => out.push(ev),
            Ok(Some(Err(e))) => panic!("watch failed after {} events: {e}", out.len()),
            Ok(None) => panic!("watch ended after {} events", out.len()),
            Err(_) => panic!("watch stalled after {} of {n} events", out.len()),
        }
    }
    out
}

/// Asserts that nothing more is on its way: a marker written under `prefix` now is the very
/// next event (a late extra event would come first; a timeout would only show it was slow).
async fn assert_quiet(store: &dyn Store, stream: &mut WatchStream, prefix: &str) {
    let marker = format!("{prefix}quiet-marker");
    let rev = store.create(&marker, b"marker").await.unwrap();
    let next = next_events(stream, 1).await;
    assert_eq!(
        (next[0].kv.key.as_str(), next[0].kv.mod_revision),
        (marker.as_str(), rev),
        "unexpected watch event {:?}",
        next[0]
    );
}

fn revs(events: &[WatchEvent]) -> Vec<Revision> {
    events.iter().map(|e| e.kv.mod_revision).collect()
}

async fn expect_compacted(store: &dyn Store, prefix: &str, after: Revision) {
    match store.watch(prefix, after).await {
        Err(StoreError::Compacted { .. }) => {}
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(mut s) => match tokio::time::timeout(Duration::from_secs(10), s.next()).await {
            Ok(Some(Err(StoreError::Compacted { .. }))) => {}
            other => panic!("expected a Compacted error from the watch, got {other:?}"),
        },
    }
}

mod cases {
    use super::*;

    pub async fn create_then_get_returns_the_value_and_its_revisions(b: Backend) {
        let s = &b.store;
        let before = s.current_revision().await.unwrap();
        let r1 = s.create("/t/a", b"one").await.unwrap();
        let r2 = s.create("/t/b", b"two").await.unwrap();
        assert!(before < r1 && r1 < r2, "{before} < {r1} < {r2}");
        let a = s.get("/t/a").await.unwrap().unwrap();
        assert_eq!(
            (a.value.as_slice(), a.create_revision, a.mod_revision),
            (&b"one"[..], r1, r1)
        );
        assert!(s.get("/t/missing").await.unwrap().is_none());
        assert!(s.current_revision().await.unwrap() >= r2);
    }

    pub async fn creating_an_existing_key_fails_and_changes_nothing(b: Backend) {
        let s = &b.store;
        let r = s.create("/t/a", b"one").await.unwrap();
        let err = s.create("/t/a", b"other").await.unwrap_err();
        assert!(
            matches!(err, StoreError::AlreadyExists { ref key } if key == "/t/a"),
            "{err}"
        );
        let a = s.get("/t/a").await.unwrap().unwrap();
        assert_eq!((a.value.as_slice(), a.mod_revision), (&b"one"[..], r));
    }

    pub async fn updates_compare_and_swap_on_the_revision(b: Backend) {
        let s = &b.store;
        let r1 = s.create("/t/a", b"1").await.unwrap();
        let r2 = s.update("/t/a", b"2", r1).await.unwrap();
        assert!(r2 > r1);
        let err = s.update("/t/a", b"stale", r1).await.unwrap_err();
        match err {
            StoreError::Conflict {
                expected, current, ..
            } => assert_eq!((expected, current), (r1, r2)),
            other => panic!("expected Conflict, got {other}"),
        }
        let a = s.get("/t/a").await.unwrap().unwrap();
        assert_eq!(
            (a.value.as_slice(), a.create_revision, a.mod_revision),
            (&b"2"[..], r1, r2)
        );
        let err = s.update("/t/none", b"x", r1).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    }

    pub async fn deletes_compare_and_swap_when_asked(b: Backend) {
        let s = &b.store;
        let r1 = s.create("/t/a", b"1").await.unwrap();
        let r2 = s.update("/t/a", b"2", r1).await.unwrap();
        let err = s.delete("/t/a", Some(r1)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { current, .. } if current == r2),
            "{err}"
        );
        assert!(
            s.get("/t/a").await.unwrap().is_some(),
            "a failed delete deletes nothing"
        );
        let r3 = s.delete("/t/a", Some(r2)).await.unwrap();
        assert!(r3 > r2);
        assert!(s.get("/t/a").await.unwrap().is_none());
        let err = s.delete("/t/a", None).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        s.create("/t/b", b"x").await.unwrap();
        s.delete("/t/b", None).await.unwrap();
        // a deleted key can be created again, with a new create revision
        let r4 = s.create("/t/a", b"again").await.unwrap();
        assert_eq!(s.get("/t/a").await.unwrap().unwrap().create_revision, r4);
    }

    pub async fn two_writers_racing_a_cas_exactly_one_wins(b: Backend) {
        let s = &b.store;
        let mut rev = s.create("/t/race", b"0").await.unwrap();
        for round in 0..20 {
            let racer = |name: &'static str| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.update("/t/race", format!("{name}{round}").as_bytes(), rev)
                        .await
                })
            };
            let (x, y) = (racer("x"), racer("y"));
            let (x, y) = (x.await.unwrap(), y.await.unwrap());
            let (winner, loser, value) = match (x, y) {
                (Ok(r), Err(e)) => (r, e, format!("x{round}")),
                (Err(e), Ok(r)) => (r, e, format!("y{round}")),
                (x, y) => panic!("round {round}: expected one winner, got {x:?} and {y:?}"),
            };
            assert!(
                matches!(loser, StoreError::Conflict { current, .. } if current == winner),
                "{loser}"
            );
            let now = s.get("/t/race").await.unwrap().unwrap();
            assert_eq!((now.value, now.mod_revision), (value.into_bytes(), winner));
            rev = winner;
        }
    }

    pub async fn a_watcher_sees_every_write_of_eight_writers_once_in_order(b: Backend) {
        const WRITERS: usize = 8;
        const WRITES: usize = 500;
        let s = b.store.clone();
        let start = s.current_revision().await.unwrap();
        let mut watch = s.watch("/w/", start).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::with_capacity(WRITES);
                let key = format!("/w/writer-{w}");
                let mut rev = s.create(&key, b"0").await.unwrap();
                mine.push(rev);
                for i in 1..WRITES - 1 {
                    rev = s
                        .update(&key, format!("{i}").as_bytes(), rev)
                        .await
                        .unwrap();
                    mine.push(rev);
                }
                mine.push(s.delete(&key, Some(rev)).await.unwrap());
                mine
            }));
        }
        // writes outside the prefix must not be seen
        s.create("/other/x", b"x").await.unwrap();
        let mut written = BTreeSet::new();
        for t in tasks {
            for r in t.await.unwrap() {
                assert!(written.insert(r), "revision {r} handed to two writes");
            }
        }
        let events = next_events(&mut watch, WRITERS * WRITES).await;
        let seen = revs(&events);
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "events out of order or repeated"
        );
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), written);
        let created = events
            .iter()
            .filter(|e| e.kind == EventKind::Created)
            .count();
        let deleted = events
            .iter()
            .filter(|e| e.kind == EventKind::Deleted)
            .count();
        assert_eq!((created, deleted), (WRITERS, WRITERS));
        assert_quiet(&*s, &mut watch, "/w/").await;
    }

    pub async fn a_watch_resumed_from_a_mid_revision_gets_exactly_the_rest(b: Backend) {
        let s = &b.store;
        let mut written = vec![s.create("/r/a", b"0").await.unwrap()];
        for i in 1..10 {
            let last = *written.last().unwrap();
            written.push(
                s.update("/r/a", format!("{i}").as_bytes(), last)
                    .await
                    .unwrap(),
            );
        }
        let mut watch = s.watch("/r/", written[4]).await.unwrap();
        let events = next_events(&mut watch, 5).await;
        assert_eq!(revs(&events), written[5..]);
        assert_eq!(events[0].kv.value, b"5");
        assert!(events.iter().all(|e| e.kind == EventKind::Updated));
        assert_quiet(&**s, &mut watch, "/r/").await;
        // and new writes keep coming
        let next = s.update("/r/a", b"10", written[9]).await.unwrap();
        assert_eq!(revs(&next_events(&mut watch, 1).await), [next]);
    }

    pub async fn watch_events_say_created_updated_deleted_with_the_last_value(b: Backend) {
        let s = &b.store;
        let start = s.current_revision().await.unwrap();
        let mut watch = s.watch("/e/", start).await.unwrap();
        let r1 = s.create("/e/a", b"v1").await.unwrap();
        let r2 = s.update("/e/a", b"v2", r1).await.unwrap();
        let r3 = s.delete("/e/a", None).await.unwrap();
        let events = next_events(&mut watch, 3).await;
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.kv.value.clone(),
                    e.kv.mod_revision,
                    e.kv.create_revision,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (EventKind::Created, b"v1".to_vec(), r1, r1),
                (EventKind::Updated, b"v2".to_vec(), r2, r1),
                (EventKind::Deleted, b"v2".to_vec(), r3, r1),
            ]
        );
    }

    pub async fn watching_or_reading_a_compacted_revision_fails(b: Backend) {
        let _exclusive = COMPACTION.write().await;
        let s = &b.store;
        let mut written = vec![s.create("/c/a", b"0").await.unwrap()];
        s.create("/c/gone", b"x").await.unwrap();
        for i in 1..6 {
            let last = *written.last().unwrap();
            written.push(
                s.update("/c/a", format!("{i}").as_bytes(), last)
                    .await
                    .unwrap(),
            );
        }
        s.delete("/c/gone", None).await.unwrap();
        let at = written[3];
        s.compact(at).await.unwrap();
        expect_compacted(s.as_ref(), "/c/", written[0]).await;
        let err = s
            .list(
                "/c/",
                &ListOptions {
                    revision: Some(written[1]),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Compacted { .. }), "{err}");
        // the compaction revision itself and later ones stay readable and watchable
        let page = s
            .list(
                "/c/",
                &ListOptions {
                    revision: Some(at),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let values: Vec<_> = page
            .items
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.clone()))
            .collect();
        assert_eq!(
            values,
            [("/c/a", b"3".to_vec()), ("/c/gone", b"x".to_vec())]
        );
        let mut watch = s.watch("/c/", at).await.unwrap();
        let events = next_events(&mut watch, 3).await;
        assert_eq!(revs(&events[..2]), written[4..]);
        assert_eq!(events[2].kind, EventKind::Deleted);
        // compacting again at or below is a no-op; beyond the present is an error
        s.compact(written[2]).await.unwrap();
        let current = s.current_revision().await.unwrap();
        let err = s.compact(current + 1_000_000).await.unwrap_err();
        assert!(matches!(err, StoreError::FutureRevision { .. }), "{err}");
        // writes go on after a compaction
        s.update("/c/a", b"after", written[5]).await.unwrap();
    }

    pub async fn paging_at_one_revision_stays_consistent_while_writes_happen(b: Backend) {
        let s = b.store.clone();
        let mut expected = BTreeMap::new();
        for i in 0..50 {
            let key = format!("/p/key-{i:03}");
            s.create(&key, format!("v{i}").as_bytes()).await.unwrap();
            expected.insert(key, format!("v{i}").into_bytes());
        }
        let first = s
            .list(
                "/p/",
                &ListOptions {
                    limit: Some(7),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(first.more);
        let at = first.revision;
        // meanwhile: updates, deletes and creates all over the key space
        let writer = {
            let s = s.clone();
            tokio::spawn(async move {
                for i in (0..50).step_by(3) {
                    let key = format!("/p/key-{i:03}");
                    let kv = s.get(&key).await.unwrap().unwrap();
                    if i % 2 == 0 {
                        s.update(&key, b"changed", kv.mod_revision).await.unwrap();
                    } else {
                        s.delete(&key, Some(kv.mod_revision)).await.unwrap();
                    }
                    s.create(&format!("/p/key-{i:03}-new"), b"new")
                        .await
                        .unwrap();
                }
            })
        };
        let mut got: Vec<(String, Vec<u8>)> = first
            .items
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        let mut more = first.more;
        while more {
            tokio::task::yield_now().await;
            let page = s
                .list(
                    "/p/",
                    &ListOptions {
                        revision: Some(at),
                        limit: Some(7),
                        start_after: got.last().map(|(k, _)| k.clone()),
                    },
                )
                .await
                .unwrap();
            assert_eq!(page.revision, at);
            assert!(page.items.len() <= 7);
            more = page.more;
            got.extend(page.items.into_iter().map(|kv| (kv.key, kv.value)));
        }
        writer.await.unwrap();
        assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
        // the current state did change
        let now = s.list("/p/", &ListOptions::default()).await.unwrap();
        assert!(now.revision > at);
        assert_eq!(now.items.len(), 50 - 8 + 17);
    }

    pub async fn lists_at_an_older_revision_show_the_state_then(b: Backend) {
        let s = &b.store;
        let ra = s.create("/o/a", b"a1").await.unwrap();
        s.create("/o/b", b"b1").await.unwrap();
        let then = s.current_revision().await.unwrap();
        s.update("/o/a", b"a2", ra).await.unwrap();
        s.delete("/o/b", None).await.unwrap();
        s.create("/o/c", b"c1").await.unwrap();
        let kvs = |page: store::ListPage| -> Vec<(String, Vec<u8>)> {
            page.items
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect()
        };
        let old = s
            .list(
                "/o/",
                &ListOptions {
                    revision: Some(then),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(old.revision, then);
        assert_eq!(
            kvs(old),
            [
                ("/o/a".into(), b"a1".to_vec()),
                ("/o/b".into(), b"b1".to_vec())
            ]
        );
        let now = s.list("/o/", &ListOptions::default()).await.unwrap();
        assert_eq!(
            kvs(now),
            [
                ("/o/a".into(), b"a2".to_vec()),
                ("/o/c".into(), b"c1".to_vec())
            ]
        );
        let future = s.current_revision().await.unwrap() + 1_000_000;
        let err = s
            .list(
                "/o/",
                &ListOptions {
                    revision: Some(future),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::FutureRevision { .. }), "{err}");
    }

    pub async fn prefixes_do_not_leak_into_each_other(b: Backend) {
        let s = &b.store;
        let start = s.current_revision().await.unwrap();
        let mut watch = s.watch("/gameservers/", start).await.unwrap();
        s.create("/gameserversx/a", b"no").await.unwrap();
        s.create("/gameservers/default/a", b"yes").await.unwrap();
        s.create("/gameserver/b", b"no").await.unwrap();
        let page = s
            .list("/gameservers/", &ListOptions::default())
            .await
            .unwrap();
        let keys: Vec<_> = page.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/gameservers/default/a"]);
        let events = next_events(&mut watch, 1).await;
        assert_eq!(events[0].kv.key, "/gameservers/default/a");
        assert_quiet(&**s, &mut watch, "/gameservers/").await;
    }

    fn guard(key: &str, create_revision: Revision) -> Guard {
        Guard {
            key: key.to_owned(),
            create_revision,
        }
    }

    fn assert_fenced(err: StoreError, key: &str, expected: Revision, current: Revision) {
        match err {
            StoreError::Fenced {
                key: k,
                expected: e,
                current: c,
            } => assert_eq!((k.as_str(), e, c), (key, expected, current)),
            other => panic!("expected Fenced, got {other}"),
        }
    }

    pub async fn guarded_writes_apply_while_the_guard_holds(b: Backend) {
        let s = &b.store;
        let token = s.create("/f/lease", b"holder A").await.unwrap();
        let g = guard("/f/lease", token);
        let r1 = s
            .write(
                Write::Create {
                    key: "/f/a",
                    value: b"1",
                },
                Some(&g),
            )
            .await
            .unwrap();
        // renewing the lease is an update: the create revision, the token, stays
        s.update("/f/lease", b"holder A renewed", token)
            .await
            .unwrap();
        let r2 = s
            .write(
                Write::Update {
                    key: "/f/a",
                    value: b"2",
                    expected: r1,
                },
                Some(&g),
            )
            .await
            .unwrap();
        let a = s.get("/f/a").await.unwrap().unwrap();
        assert_eq!((a.value.as_slice(), a.mod_revision), (&b"2"[..], r2));
        // the op's own compare still counts under a holding guard
        let err = s
            .write(
                Write::Update {
                    key: "/f/a",
                    value: b"stale",
                    expected: r1,
                },
                Some(&g),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { current, .. } if current == r2),
            "{err}"
        );
        let err = s
            .write(
                Write::Create {
                    key: "/f/a",
                    value: b"again",
                },
                Some(&g),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
        let r3 = s
            .write(
                Write::Delete {
                    key: "/f/a",
                    expected: Some(r2),
                },
                Some(&g),
            )
            .await
            .unwrap();
        assert!(r3 > r2);
        assert!(s.get("/f/a").await.unwrap().is_none());
        let err = s
            .write(
                Write::Delete {
                    key: "/f/a",
                    expected: None,
                },
                Some(&g),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    }

    pub async fn a_recreated_or_absent_guard_fences_writes_and_changes_nothing(b: Backend) {
        let s = &b.store;
        let old = s.create("/f/lease", b"holder A").await.unwrap();
        let ra = s.create("/f/a", b"kept").await.unwrap();
        // a takeover: delete the expired lease and create it again
        s.delete("/f/lease", None).await.unwrap();
        let new = s.create("/f/lease", b"holder B").await.unwrap();
        let stale = guard("/f/lease", old);
        let before = s.current_revision().await.unwrap();
        let ops = [
            Write::Create {
                key: "/f/b",
                value: b"x",
            },
            Write::Update {
                key: "/f/a",
                value: b"overwritten",
                expected: ra,
            },
            // Fenced is reported even when the op's own compare would fail too
            Write::Update {
                key: "/f/a",
                value: b"overwritten",
                expected: ra - 1,
            },
            Write::Delete {
                key: "/f/a",
                expected: Some(ra),
            },
            Write::Delete {
                key: "/f/a",
                expected: None,
            },
        ];
        for op in ops {
            let err = s.write(op, Some(&stale)).await.unwrap_err();
            assert_fenced(err, "/f/lease", old, new);
        }
        // the guard key absent altogether
        s.delete("/f/lease", None).await.unwrap();
        let after_delete = s.current_revision().await.unwrap();
        for g in [&stale, &guard("/f/lease", new)] {
            let err = s
                .write(
                    Write::Update {
                        key: "/f/a",
                        value: b"overwritten",
                        expected: ra,
                    },
                    Some(g),
                )
                .await
                .unwrap_err();
            assert_fenced(err, "/f/lease", g.create_revision, 0);
        }
        let err = s
            .write(
                Write::Create {
                    key: "/f/b",
                    value: b"x",
                },
                Some(&guard("/f/never", 1)),
            )
            .await
            .unwrap_err();
        assert_fenced(err, "/f/never", 1, 0);
        // nothing changed and no revision was spent by the refused writes
        let a = s.get("/f/a").await.unwrap().unwrap();
        assert_eq!(
            (a.value.as_slice(), a.create_revision, a.mod_revision),
            (&b"kept"[..], ra, ra)
        );
        assert!(s.get("/f/b").await.unwrap().is_none());
        assert!(before < after_delete);
        if s.backend() != "etcd" {
            // the test's etcd is shared with other tests, which spend revisions meanwhile
            assert_eq!(s.current_revision().await.unwrap(), after_delete);
        }
        // the refused writes left nothing in the history either
        let mut watch = s.watch("/f/", before).await.unwrap();
        let deleted = next_events(&mut watch, 1).await;
        assert_eq!(
            (deleted[0].kind, deleted[0].kv.key.as_str()),
            (EventKind::Deleted, "/f/lease")
        );
        assert_quiet(s.as_ref(), &mut watch, "/f/").await;
    }

    pub async fn a_guarded_write_queued_after_the_guards_delete_is_fenced(b: Backend) {
        let s = &b.store;
        let token = s.create("/f/lease", b"holder A").await.unwrap();
        let g = guard("/f/lease", token);
        // Both are sent before either is answered; SQL stores commit them in the order sent
        // (often in one group), etcd in either order.
        let (deleted, written) = tokio::join!(
            s.delete("/f/lease", Some(token)),
            s.write(
                Write::Create {
                    key: "/f/a",
                    value: b"x"
                },
                Some(&g)
            )
        );
        let deleted = deleted.unwrap();
        match written {
            Ok(rev) => {
                assert_eq!(b.store.backend(), "etcd", "SQL commits the delete first");
                assert!(rev < deleted, "{rev} < {deleted}");
                assert!(s.get("/f/a").await.unwrap().is_some());
            }
            Err(err) => {
                assert_fenced(err, "/f/lease", token, 0);
                assert!(s.get("/f/a").await.unwrap().is_none());
            }
        }
    }

    pub async fn two_writers_racing_fifty_flips_write_only_inside_their_terms(b: Backend) {
        let s = b.store.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..2 {
            let (s, done) = (s.clone(), done.clone());
            writers.push(tokio::spawn(async move {
                // (token, revision) of each success; the number of fenced writes
                let (mut wrote, mut fenced) = (Vec::new(), 0);
                let mut i = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let Some(lease) = s.get("/f/lease").await.unwrap() else {
                        tokio::task::yield_now().await;
                        continue;
                    };
                    let g = guard("/f/lease", lease.create_revision);
                    let key = format!("/f/w{w}-{i}");
                    i += 1;
                    let op = Write::Create {
                        key: &key,
                        value: b"x",
                    };
                    match s.write(op, Some(&g)).await {
                        Ok(rev) => wrote.push((g.create_revision, rev)),
                        Err(StoreError::Fenced { .. }) => fenced += 1,
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
                (wrote, fenced)
            }));
        }
        // term t runs from its create to its delete
        let mut terms = BTreeMap::new();
        for _ in 0..50 {
            let start = s.create("/f/lease", b"holder").await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            let end = s.delete("/f/lease", Some(start)).await.unwrap();
            terms.insert(start, end);
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut successes, mut fenced) = (0, 0);
        for writer in writers {
            let (wrote, f) = writer.await.unwrap();
            fenced += f;
            for (token, rev) in wrote {
                let end = terms[&token];
                assert!(
                    token < rev && rev < end,
                    "a write at {rev} with token {token} lies outside its term {token}..{end}"
                );
                successes += 1;
            }
        }
        assert!(successes > 0, "no guarded write succeeded");
        eprintln!("{} guarded writes applied, {fenced} fenced", successes);
    }

    pub async fn data_and_revisions_survive_reopening_the_store(b: Backend) {
        let r = b.store.create("/d/a", b"kept").await.unwrap();
        let url = b.url.clone();
        let dir = b._dir;
        drop(b.store);
        let reopened = store::open(&url).await.unwrap();
        let a = reopened.get("/d/a").await.unwrap().unwrap();
        assert_eq!((a.value.as_slice(), a.mod_revision), (&b"kept"[..], r));
        assert!(reopened.create("/d/b", b"new").await.unwrap() > r);
        drop(dir);
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        conformance!(@backend sqlite; $($case),*);
        conformance!(@backend postgres; $($case),*);
        conformance!(@backend etcd; $($case),*);
    };
    (@backend $backend:ident; $($case:ident),*) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!(stringify!($backend), "::", stringify!($case));
                    let Some(backend) = super::open_backend(stringify!($backend), test).await else { return };
                    let _shared = if stringify!($case) == "watching_or_reading_a_compacted_revision_fails" {
                        None
                    } else {
                        Some(super::COMPACTION.read().await)
                    };
                    super::cases::$case(backend).await;
                }
            )*
        }
    };
}

conformance!(
    create_then_get_returns_the_value_and_its_revisions,
    creating_an_existing_key_fails_and_changes_nothing,
    updates_compare_and_swap_on_the_revision,
    deletes_compare_and_swap_when_asked,
    two_writers_racing_a_cas_exactly_one_wins,
    a_watcher_sees_every_write_of_eight_writers_once_in_order,
    a_watch_resumed_from_a_mid_revision_gets_exactly_the_rest,
    watch_events_say_created_updated_deleted_with_the_last_value,
    watching_or_reading_a_compacted_revision_fails,
    paging_at_one_revision_stays_consistent_while_writes_happen,
    lists_at_an_older_revision_show_the_state_then,
    prefixes_do_not_leak_into_each_other,
    data_and_revisions_survive_reopening_the_store,
    guarded_writes_apply_while_the_guard_holds,
    a_recreated_or_absent_guard_fences_writes_and_changes_nothing,
    a_guarded_write_queued_after_the_guards_delete_is_fenced,
    two_writers_racing_fifty_flips_write_only_inside_their_terms,
);
