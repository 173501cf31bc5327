use std::collections::VecDeque;
use std::sync::Mutex;

use catalyst_schemas::watch::Bookmark;
use serde_json::json;

use super::*;

/// One scripted answer of the fake source.
enum Answer {
    List(Result<(Vec<Value>, Revision), String>),
    /// A watch that yields these items, then ends.
    Watch(Vec<Result<Watched, String>>),
    /// A watch that cannot be opened.
    WatchFails(String),
}

/// A source that answers from a script and records what it was asked; once the script is
/// done, a watch stays open and silent.
#[derive(Default)]
struct Scripted {
    script: Mutex<VecDeque<Answer>>,
    asked: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(script: Vec<Answer>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into()),
            asked: Mutex::default(),
        })
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl ListWatch for Arc<Scripted> {
    type Error = String;

    async fn list(&self) -> Result<(Vec<Value>, Revision), String> {
        self.asked.lock().unwrap().push("list".into());
        match self.script.lock().unwrap().pop_front() {
            Some(Answer::List(answer)) => answer,
            _ => panic!("list was not expected now"),
        }
    }

    async fn watch(&self, from: Revision) -> Result<WatchStream<String>, String> {
        self.asked.lock().unwrap().push(format!("watch {from}"));
        match self.script.lock().unwrap().pop_front() {
            Some(Answer::Watch(items)) => Ok(futures::stream::iter(items).boxed()),
            Some(Answer::WatchFails(e)) => Err(e),
            Some(Answer::List(_)) => panic!("watch was not expected now"),
            None => Ok(futures::stream::pending().boxed()),
        }
    }
}

fn obj(name: &str, rv: i64) -> Value {
    json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv.to_string(),
                        "managedFields": [{"manager": "x"}]}})
}

fn ev(event: WatchEvent<Value>) -> Result<Watched, String> {
    Ok(Watched::Event(event))
}

fn keys(cache: &Cache) -> Vec<Key> {
    cache.keys_where(|_| true)
}

fn informer(source: &Arc<Scripted>) -> Informer<Arc<Scripted>> {
    Informer::new(source.clone(), Arc::new(Cache::default())).with_name("test")
}

#[tokio::test(start_paused = true)]
async fn list_then_events_then_gone_relists_and_reports_every_changed_key() {
    let source = Scripted::new(vec![
        Answer::List(Ok((vec![obj("a", 1), obj("b", 2)], 5))),
        Answer::Watch(vec![
            ev(WatchEvent::Added(obj("c", 6))),
            ev(WatchEvent::Modified(obj("a", 7))),
            ev(WatchEvent::Deleted(obj("b", 8))),
            Ok(Watched::Gone("too old".into())),
        ]),
        Answer::List(Ok((vec![obj("a", 7), obj("d", 9)], 9))),
    ]);
    let mut inf = informer(&source);
    assert_eq!(
        inf.next().await,
        Change::Listed(vec!["ns/a".into(), "ns/b".into()])
    );
    assert_eq!(inf.revision(), Some(5));
    assert_eq!(
        inf.next().await,
        Change::Applied("ns/c".into(), obj("c", 6))
    );
    assert_eq!(
        inf.next().await,
        Change::Applied("ns/a".into(), obj("a", 7))
    );
    assert_eq!(
        inf.next().await,
        Change::Deleted("ns/b".into(), obj("b", 8))
    );
    assert_eq!(keys(inf.cache()), ["ns/a", "ns/c"]);
    // gone: a fresh list; the keys that were cached and the listed ones changed
    assert_eq!(
        inf.next().await,
        Change::Listed(vec!["ns/a".into(), "ns/c".into(), "ns/d".into()])
    );
    assert_eq!(keys(inf.cache()), ["ns/a", "ns/d"]);
    assert_eq!(inf.revision(), Some(9));
    assert_eq!(source.asked(), ["list", "watch 5", "list"]);
    // the cache drops field ownership; the change carries the object as received
    assert!(inf.cache().get("ns/a").unwrap()["metadata"]
        .get("managedFields")
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_watch_resumes_from_the_last_revision_without_listing() {
    let source = Scripted::new(vec![
        Answer::List(Ok((vec![], 5))),
        Answer::Watch(vec![
            ev(WatchEvent::Added(obj("a", 6))),
            ev(WatchEvent::Bookmark(Bookmark::at(10))),
            Err("connection reset".into()),
        ]),
        Answer::WatchFails("connection refused".into()),
        // ends without an error (a server-side timeout)
        Answer::Watch(vec![ev(WatchEvent::Modified(obj("a", 11)))]),
        Answer::Watch(vec![ev(WatchEvent::Deleted(obj("a", 12)))]),
    ]);
    let mut inf = informer(&source);
    assert_eq!(inf.next().await, Change::Listed(vec![]));
    assert_eq!(
        inf.next().await,
        Change::Applied("ns/a".into(), obj("a", 6))
    );
    assert_eq!(
        inf.next().await,
        Change::Applied("ns/a".into(), obj("a", 11))
    );
    assert_eq!(
        inf.next().await,
        Change::Deleted("ns/a".into(), obj("a", 12))
    );
    assert!(inf.cache().is_empty());
    assert_eq!(
        source.asked(),
        ["list", "watch 5", "watch 10", "watch 10", "watch 11"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_list_is_retried_and_gone_right_after_a_list_lists_again() {
    let source = Scripted::new(vec![
        Answer::List(Err("unreachable".into())),
        Answer::List(Ok((vec![obj("a", 1)], 3))),
        // the watcher lagged, or the source's cache reset: the source says Gone
        Answer::Watch(vec![Ok(Watched::Gone("watcher too slow".into()))]),
        Answer::List(Ok((vec![obj("b", 4)], 4))),
    ]);
    let mut inf = informer(&source);
    let started = tokio::time::Instant::now();
    assert_eq!(inf.next().await, Change::Listed(vec!["ns/a".into()]));
    assert!(started.elapsed() >= Duration::from_millis(100), "paused");
    assert_eq!(
        inf.next().await,
        Change::Listed(vec!["ns/a".into(), "ns/b".into()])
    );
    assert_eq!(source.asked(), ["list", "list", "watch 3", "list"]);
}

#[tokio::test(start_paused = true)]
async fn run_calls_back_with_each_changed_key() {
    let source = Scripted::new(vec![
        Answer::List(Ok((vec![obj("a", 1), obj("b", 1)], 1))),
        Answer::Watch(vec![
            ev(WatchEvent::Modified(obj("b", 2))),
            Ok(Watched::Gone("reset".into())),
        ]),
        Answer::List(Ok((vec![obj("b", 2)], 2))),
    ]);
    let seen = Arc::new(Mutex::new(Vec::<Key>::new()));
    let cache = Arc::new(Cache::default());
    let inf = Informer::new(source.clone(), cache.clone());
    let record = seen.clone();
    let task = tokio::spawn(inf.run(move |k| record.lock().unwrap().push(k)));
    tokio::time::sleep(Duration::from_secs(60)).await;
    task.abort();
    assert_eq!(
        *seen.lock().unwrap(),
        ["ns/a", "ns/b", "ns/b", "ns/a", "ns/b"]
    );
    assert_eq!(keys(&cache), ["ns/b"]);
}

#[test]
fn write_through_keeps_the_newer_revision() {
    let cache = Cache::default();
    cache.write_through(&obj("a", 5));
    cache.write_through(&obj("a", 4));
    assert_eq!(resource_version(&cache.get("ns/a").unwrap()), Some(5));
    cache.write_through(&obj("a", 6));
    assert_eq!(resource_version(&cache.get("ns/a").unwrap()), Some(6));
}

#[test]
fn backoff_doubles_up_to_its_max_and_jitter_stays_within_half() {
    let b = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_secs(1),
        jitter: false,
    };
    let delays: Vec<u128> = (0..6).map(|a| b.delay(a).as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    let j = Backoff { jitter: true, ..b };
    for a in 0..40 {
        let d = j.delay(a);
        let full = b.delay(a);
        assert!(d >= full / 2 && d <= full, "{d:?} for {full:?}");
    }
}
