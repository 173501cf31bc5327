//! A client of several servers against small fakes on loopback: it moves on after a connect
//! error (any verb), never sends a write twice once it was sent, moves GETs on after a 503,
//! sticks to the server that answered, and an informer's watch resumes at the next server from
//! the last resourceVersion.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use catalyst_client::informer::{Cache, Change, Informer};
use catalyst_client::source::HttpSource;
use catalyst_client::{Client, Error, ListParams};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";

/// One fake API server: what it was asked, and how it answers.
#[derive(Default)]
struct Fake {
    name: String,
    /// `METHOD PATH?QUERY` of each request, in order.
    seen: Mutex<Vec<String>>,
    /// Answer everything with 503 and `Retry-After: 1`.
    unavailable: Mutex<bool>,
    /// Watches end (the connection closes) when this is notified.
    end_watches: Notify,
}

impl Fake {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn event(rv: i64) -> String {
    format!(
        "{}\n",
        json!({"type": "ADDED", "object": {"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
            "metadata": {"name": format!("gs{rv}"), "namespace": "default", "resourceVersion": rv.to_string()}}})
    )
}

async fn answer(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    let uri = req.uri().to_string();
    let line = format!("{} {uri}", req.method());
    fake.seen.lock().unwrap().push(line);
    if *fake.unavailable.lock().unwrap() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            axum::Json(
                json!({"kind": "Status", "code": 503, "reason": "ServiceUnavailable",
                              "message": "node n1 has no tunnel to this API server"}),
            ),
        )
            .into_response();
    }
    let query = req.uri().query().unwrap_or_default().to_owned();
    if query.contains("watch=true") {
        let from: i64 = query
            .split('&')
            .find_map(|p| p.strip_prefix("resourceVersion="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // revisions are global: every server has rv 2..=4; this one sends those after `from`
        let events = futures::stream::iter(
            (from + 1..=4).map(|rv| Ok::<_, std::convert::Infallible>(event(rv))),
        );
        let end = async move {
            fake.end_watches.notified().await;
            futures::stream::empty()
        };
        let body = futures::StreamExt::chain(
            events,
            futures::StreamExt::flatten(futures::stream::once(end)),
        );
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            // no keep-alive: a killed server's connection is not reused
            .header(header::CONNECTION, "close")
            .body(Body::from_stream(body))
            .unwrap();
    }
    match *req.method() {
        axum::http::Method::GET => axum::Json(json!({"kind": "GameServerList", "items": [],
            "metadata": {"resourceVersion": "1"}}))
        .into_response(),
        _ => (
            StatusCode::CREATED,
            axum::Json(json!({"server": fake.name})),
        )
            .into_response(),
    }
}

/// A fake on a loopback port: its URL, state and the task serving it (abort it to close the
/// listening socket: connects are refused from then on).
async fn fake(name: &str) -> (String, Arc<Fake>, tokio::task::JoinHandle<()>) {
    let fake = Arc::new(Fake {
        name: name.to_owned(),
        ..Fake::default()
    });
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, fake, task)
}

/// A URL nothing listens on.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// A server that reads a request and closes the connection without answering: what a server
/// killed mid-request looks like. Counts the connections it took.
async fn breaker() -> (String, Arc<Mutex<usize>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let taken = Arc::new(Mutex::new(0));
    let count = taken.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = l.accept().await {
            *count.lock().unwrap() += 1;
            let mut buf = vec![0u8; 4096];
            let _ = conn.read(&mut buf).await;
            drop(conn);
        }
    });
    (url, taken)
}

#[tokio::test]
async fn a_connect_error_moves_any_verb_on_and_the_answering_server_sticks() {
    let dead = dead_url().await;
    let (b, fake_b, _task) = fake("b").await;
    let client = Client::new(&format!("{dead},{b}"), "t");
    assert_eq!(client.servers(), [dead.clone(), b.clone()]);
    assert_eq!(client.base(), dead);
    let v = client.post(GS, json!({})).await.unwrap();
    assert_eq!(
        v["server"], "b",
        "the POST moved on: nothing was sent to the dead one"
    );
    assert_eq!(client.base(), b, "sticky on the server that answered");
    client.get(GS).await.unwrap();
    assert_eq!(fake_b.seen(), [format!("POST {GS}"), format!("GET {GS}")]);
    // a clone shares the choice
    assert_eq!(client.clone().base(), b);
}

#[tokio::test]
async fn a_write_is_not_sent_again_once_it_was_sent_but_a_get_is() {
    let (broken, taken) = breaker().await;
    let (b, fake_b, _task) = fake("b").await;
    let client = Client::new(&format!("{broken},{b}"), "t");
    let e = client.post(GS, json!({})).await.unwrap_err();
    assert!(matches!(e, Error::MayHaveApplied { .. }), "{e:?}");
    assert!(e.to_string().contains("may have been applied"), "{e}");
    assert!(fake_b.seen().is_empty(), "the write went nowhere else");
    assert_eq!(*taken.lock().unwrap(), 1);
    client.get(GS).await.unwrap();
    assert_eq!(fake_b.seen(), [format!("GET {GS}")]);
    assert_eq!(client.base(), b);
}

#[tokio::test]
async fn a_503_moves_gets_on_but_not_writes() {
    let (a, fake_a, _ta) = fake("a").await;
    let (b, fake_b, _tb) = fake("b").await;
    *fake_a.unavailable.lock().unwrap() = true;
    let client = Client::new(&format!("{a},{b}"), "t");
    let e = client.post(GS, json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(503), "{e}");
    assert!(fake_b.seen().is_empty());
    client.get(GS).await.unwrap();
    assert_eq!(client.base(), b);
    client.get(GS).await.unwrap();
    assert_eq!(fake_a.seen().len(), 2, "after B answered, calls start at B");
    assert_eq!(fake_b.seen().len(), 2);
    // every server unavailable: the last answer stands
    *fake_b.unavailable.lock().unwrap() = true;
    let e = client.get(GS).await.unwrap_err();
    assert_eq!(e.code(), Some(503), "{e}");
}

#[tokio::test]
async fn one_server_gives_the_old_errors() {
    let dead = dead_url().await;
    let client = Client::new(&dead, "t");
    let e = client.post(GS, json!({})).await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    let (broken, _) = breaker().await;
    let e = Client::new(&broken, "t")
        .post(GS, json!({}))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::MayHaveApplied { .. }), "{e:?}");
}

async fn next(informer: &mut Informer<HttpSource>) -> Change {
    tokio::time::timeout(Duration::from_secs(10), informer.next())
        .await
        .expect("a change in time")
}

fn name(change: Change) -> String {
    match change {
        Change::Applied(key, _) => key,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_watch_resumes_at_the_next_server_from_the_last_revision() {
    let (a, fake_a, task_a) = fake("a").await;
    let (b, fake_b, _tb) = fake("b").await;
    let client = Client::new(&format!("{a},{b}"), "t");
    let source = HttpSource::new(client.clone(), GS, ListParams::default());
    let mut informer = Informer::new(source, Arc::new(Cache::default()));
    assert!(matches!(next(&mut informer).await, Change::Listed(_)));
    // a's watch from the list's rv 1 sends 2, 3, 4; the fake then ends it when told
    assert_eq!(name(next(&mut informer).await), "default/gs2");
    assert_eq!(name(next(&mut informer).await), "default/gs3");
    assert_eq!(name(next(&mut informer).await), "default/gs4");
    // kill a: no more connects, and its open watch breaks
    task_a.abort();
    let _ = task_a.await;
    fake_a.end_watches.notify_waiters();
    // the informer watches again from rv 4, at b: nothing is repeated, nothing missed
    assert!(
        tokio::time::timeout(Duration::from_secs(2), informer.next())
            .await
            .is_err(),
        "no event is delivered twice"
    );
    let at_b = fake_b.seen();
    assert_eq!(at_b.len(), 1, "b was only asked to watch: {at_b:?}");
    assert!(
        at_b[0].contains("watch=true") && at_b[0].contains("resourceVersion=4"),
        "{at_b:?}"
    );
    assert_eq!(client.base(), b);
    assert_eq!(informer.revision(), Some(4));
}
