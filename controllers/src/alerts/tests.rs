//! The evaluator against a real store, a fake clock (each evaluation is given its `now`),
//! recorded node samples and a webhook receiver on 127.0.0.1.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_apiserver::registry::{Registry, Scope};
use catalyst_schemas::alert::WebhookFormat;
use catalyst_schemas::lookup_kind;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::notify::{body, Message, NotifyError, Sender};
use super::state::Notice;
use super::*;

/// Node answers as a test sets them.
#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<(String, Value)>>);

impl MetricSource for Recorded {
    fn samples(&self) -> Answers<'_> {
        let v = self.0.lock().expect("lock").clone();
        Box::pin(async move { v })
    }
}

impl Recorded {
    fn memory(&self, node: &str, name: &str, used: f64, limit: f64) {
        let labels = json!({"namespace": "default", "name": name, "node": node});
        *self.0.lock().expect("lock") = vec![(
            node.to_owned(),
            json!({"samples": [
                {"metric": "catalyst_gameserver_memory_bytes", "labels": labels, "value": used},
                {"metric": "catalyst_gameserver_memory_limit_bytes", "labels": labels, "value": limit},
            ]}),
        )];
    }
}

/// A webhook receiver on 127.0.0.1: records each request's path and JSON body and answers
/// with the next scripted status (200 when none is left).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/hook?token=secret",
            listener.local_addr().expect("addr")
        );
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let statuses: Arc<Mutex<VecDeque<u16>>> = Arc::default();
        let (g, st) = (got.clone(), statuses.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (g, st) = (g.clone(), st.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, len) = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let path = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let body: Value =
                        serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
                    g.lock().expect("lock").push((path, body));
                    let code = st.lock().expect("lock").pop_front().unwrap_or(200);
                    let reply = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        Receiver {
            url,
            got,
            statuses,
            task,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

fn local_sender() -> Sender {
    Sender {
        allow: vec!["127.0.0.0/8".parse().expect("cidr")],
        timeout: Duration::from_secs(5),
        retries: 3,
        first_delay: Duration::from_millis(20),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    registry: Registry,
    caches: Caches,
    source: Arc<Recorded>,
    evaluator: Evaluator,
}

async fn fixture(sender: Sender) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        catalyst_apiserver::store::open(&format!("sqlite://{}", dir.path().join("a.db").display()))
            .await
            .expect("store");
    let registry = Registry::new(store);
    let caches = Caches {
        rules: Arc::default(),
        gameservers: Arc::default(),
        nodes: Arc::default(),
        backups: Arc::default(),
    };
    let source = Arc::new(Recorded::default());
    let evaluator = Evaluator::new(
        registry.clone(),
        caches.clone(),
        AlertConfig {
            interval: Duration::from_secs(10),
            sender,
            metrics: source.clone(),
        },
    );
    Fixture {
        _dir: dir,
        registry,
        caches,
        source,
        evaluator,
    }
}

impl Fixture {
    async fn rule(&self, name: &str, spec: Value) {
        let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "AlertRule",
                         "metadata": {"name": name, "namespace": "default"}, "spec": spec});
        let scope = Scope {
            kind: lookup_kind("alertrules").expect("kind"),
            namespace: Some("default"),
        };
        let written = self
            .registry
            .create(scope, obj, false)
            .await
            .expect("create");
        self.caches.rules.write_through(&written.object);
    }

    fn server(&self, name: &str, status: Value) {
        self.caches.gameservers.write_through(&json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"game": "mc"}, "resourceVersion": "1"},
            "spec": {"resources": {"memory": "100Mi"}},
            "status": status,
        }));
    }

    /// One evaluation at `t0 + secs`, waiting for its deliveries.
    async fn at(&self, secs: i64) {
        for t in self
            .evaluator
            .evaluate(t0() + chrono::Duration::seconds(secs))
            .await
        {
            t.await.expect("delivery task");
        }
    }

    fn status(&self, rule: &str) -> Value {
        self.caches
            .rules
            .get(&format!("default/{rule}"))
            .expect("rule")["status"]
            .clone()
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn memory_rule(url: &str, format: &str, extra: Value) -> Value {
    let mut spec = json!({
        "selector": {"game": "mc"},
        "condition": {"metric": "Memory", "operator": ">", "threshold": 80.0},
        "for": "30s",
        "repeatInterval": "10m",
        "notifications": [{"webhook": {"url": url, "format": format}}],
    });
    spec.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    spec
}

#[tokio::test]
async fn a_memory_threshold_goes_pending_then_fires_once_reminds_and_resolves_once() {
    let rx = Receiver::start().await;
    let f = fixture(local_sender()).await;
    f.rule("mem", memory_rule(&rx.url, "Generic", json!({})))
        .await;
    f.server("hog", json!({"phase": "Running", "nodeName": "n1"}));
    f.source
        .memory("n1", "hog", 90.0 * 1024.0 * 1024.0, 100.0 * 1024.0 * 1024.0);

    f.at(0).await;
    assert_eq!(f.status("mem")["alerts"][0]["state"], "Pending");
    assert!(rx.bodies().is_empty(), "nothing before `for`");
    f.at(10).await;
    f.at(20).await;
    assert!(rx.bodies().is_empty());
    f.at(30).await;
    let st = f.status("mem");
    assert_eq!(st["alerts"][0]["state"], "Firing", "{st:#}");
    assert_eq!(st["firing"], true);
    assert_eq!(st["firingCount"], 1);
    assert_eq!(rx.bodies().len(), 1);
    let b = &rx.bodies()[0];
    assert_eq!(b["status"], "firing");
    assert_eq!(b["target"], "gameserver/hog");
    assert_eq!(b["rule"], json!({"namespace": "default", "name": "mem"}));
    assert_eq!(b["value"], 90.0);
    assert_eq!(rx.got.lock().expect("lock")[0].0, "/hook?token=secret");
    for s in [40, 100, 300, 500] {
        f.at(s).await;
    }
    assert_eq!(rx.bodies().len(), 1, "one notification per firing");
    f.at(630).await;
    assert_eq!(rx.bodies().len(), 2, "a reminder after repeatInterval");
    assert_eq!(rx.bodies()[1]["reminder"], true);
    f.at(640).await;
    assert_eq!(rx.bodies().len(), 2);

    f.source
        .memory("n1", "hog", 10.0 * 1024.0 * 1024.0, 100.0 * 1024.0 * 1024.0);
    f.at(650).await;
    f.at(660).await;
    f.at(700).await;
    let bodies = rx.bodies();
    assert_eq!(bodies.len(), 3, "resolved once: {bodies:#?}");
    assert_eq!(bodies[2]["status"], "resolved");
    let st = f.status("mem");
    assert_eq!(st["alerts"][0]["state"], "Resolved");
    assert_eq!(st["firing"], false);
    assert!(st["lastResolvedAt"].is_string() && st["lastFiredAt"].is_string());
}

#[tokio::test]
async fn a_silence_holds_the_notification_back_until_it_ends() {
    let rx = Receiver::start().await;
    let f = fixture(local_sender()).await;
    let until = t0() + chrono::Duration::seconds(100);
    f.rule(
        "mem",
        memory_rule(
            &rx.url,
            "Generic",
            json!({"for": "0s", "silencedUntil": until}),
        ),
    )
    .await;
    f.server("hog", json!({"phase": "Running", "nodeName": "n1"}));
    f.source.memory("n1", "hog", 95.0, 100.0);
    f.at(0).await;
    f.at(50).await;
    assert_eq!(f.status("mem")["alerts"][0]["state"], "Firing");
    assert!(rx.bodies().is_empty(), "silenced");
    f.at(110).await;
    assert_eq!(rx.bodies().len(), 1, "told once the silence ended");
    assert_eq!(rx.bodies()[0]["status"], "firing");
}

#[tokio::test]
async fn samples_of_a_node_about_a_server_bound_elsewhere_are_ignored() {
    let rx = Receiver::start().await;
    let f = fixture(local_sender()).await;
    f.rule("mem", memory_rule(&rx.url, "Generic", json!({"for": "0s"})))
        .await;
    f.server("hog", json!({"phase": "Running", "nodeName": "n1"}));
    f.source.memory("n2", "hog", 95.0, 100.0);
    f.at(0).await;
    assert!(
        f.status("mem").get("alerts").is_none(),
        "{}",
        f.status("mem")
    );
    assert!(rx.bodies().is_empty());
}

#[tokio::test]
async fn a_crash_fires_and_a_restart_resolves_it() {
    let rx = Receiver::start().await;
    let f = fixture(local_sender()).await;
    f.rule(
        "crash",
        json!({"gameServer": "c", "condition": {"event": "Crash"},
        "notifications": [{"webhook": {"url": rx.url, "format": "Slack"}}]}),
    )
    .await;
    let finished = t0() + chrono::Duration::seconds(1);
    f.server(
        "c",
        json!({"phase": "Crashed", "nodeName": "n1",
        "lastExit": {"exitCode": 3, "finishedAt": finished}}),
    );
    f.at(2).await;
    f.at(12).await;
    let bodies = rx.bodies();
    assert_eq!(bodies.len(), 1);
    assert!(
        bodies[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("[FIRING]") && t.contains("exited with code 3")),
        "{bodies:#?}"
    );
    assert_eq!(bodies[0]["blocks"][0]["type"], "header");
    f.server(
        "c",
        json!({"phase": "Running", "nodeName": "n1",
        "lastExit": {"exitCode": 3, "finishedAt": finished}}),
    );
    f.at(22).await;
    f.at(32).await;
    assert_eq!(rx.bodies().len(), 2);
    assert!(rx.bodies()[1]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("[RESOLVED]")));
}

#[tokio::test]
async fn a_crash_hidden_by_a_quick_restart_still_fires_once() {
    let rx = Receiver::start().await;
    let f = fixture(local_sender()).await;
    f.rule(
        "crash",
        json!({"condition": {"event": "Crash"},
        "notifications": [{"webhook": {"url": rx.url, "format": "Discord"}}]}),
    )
    .await;
    // a user's stop that ended with a signal's code, then a start: no crash
    f.server(
        "c",
        json!({"phase": "Running", "nodeName": "n1", "restartCount": 0,
        "lastExit": {"exitCode": 137, "finishedAt": t0() + chrono::Duration::seconds(1)}}),
    );
    f.at(2).await;
    assert!(rx.bodies().is_empty(), "{:#?}", rx.bodies());
    f.server("c", json!({"phase": "Running", "nodeName": "n1", "restartCount": 1,
        "lastExit": {"exitCode": 0, "oomKilled": true, "finishedAt": t0() + chrono::Duration::seconds(5)}}));
    f.at(10).await;
    f.at(20).await;
    f.at(30).await;
    let bodies = rx.bodies();
    assert_eq!(bodies.len(), 2, "fired and resolved: {bodies:#?}");
    assert!(bodies[0]["content"]
        .as_str()
        .is_some_and(|t| t.contains("out of memory")));
    assert_eq!(bodies[0]["embeds"][0]["color"], 0xe74c3c);
    assert_eq!(bodies[1]["embeds"][0]["color"], 0x2ecc71);
    // an old crash does not fire a new rule
    f.rule(
        "late",
        json!({"condition": {"event": "Crash"},
        "notifications": [{"webhook": {"url": rx.url}}]}),
    )
    .await;
    f.at(1000).await;
    assert_eq!(rx.bodies().len(), 2);
}

#[tokio::test]
async fn node_down_and_a_failed_backup_fire_for_the_servers_they_touch() {
    let rx = Receiver::start().await;
    let f = fixture(local_sender()).await;
    f.rule("down", json!({"condition": {"event": "NodeDown"}, "notifications": [{"webhook": {"url": rx.url}}]})).await;
    f.rule("backup", json!({"condition": {"event": "BackupFailed"}, "notifications": [{"webhook": {"url": rx.url}}]})).await;
    f.server("a", json!({"phase": "Unknown", "nodeName": "n1"}));
    f.server("b", json!({"phase": "Running", "nodeName": "n2"}));
    f.caches
        .nodes
        .write_through(&json!({"metadata": {"name": "n1", "resourceVersion": "1"},
        "status": {"state": "NotReady", "conditions": [{"type": "Ready", "status": "False"}]}}));
    f.caches.nodes.write_through(
        &json!({"metadata": {"name": "n2", "resourceVersion": "1"}, "status": {"state": "Ready"}}),
    );
    let backup = |name: &str, gs: &str, phase: &str, secs: i64| {
        json!({"metadata": {"name": name, "namespace": "default",
        "resourceVersion": "1", "creationTimestamp": t0() + chrono::Duration::seconds(secs)},
        "spec": {"gameServer": gs}, "status": {"phase": phase, "message": "disk full"}})
    };
    f.caches
        .backups
        .write_through(&backup("b1", "b", "Completed", 0));
    f.caches
        .backups
        .write_through(&backup("b2", "b", "Failed", 5));
    f.caches
        .backups
        .write_through(&backup("a1", "a", "Failed", 0));
    f.caches
        .backups
        .write_through(&backup("a2", "a", "Completed", 5));
    f.at(10).await;
    let mut msgs: Vec<String> = rx
        .bodies()
        .iter()
        .map(|b| format!("{} {}", b["target"], b["message"]))
        .collect();
    msgs.sort();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].starts_with("\"gameserver/a\" \"node n1 is NotReady"),
        "{msgs:?}"
    );
    assert_eq!(msgs[1], "\"gameserver/b\" \"backup b2 failed: disk full\"");
}

#[tokio::test]
async fn a_failed_delivery_is_tried_again_until_it_succeeds() {
    let rx = Receiver::start().await;
    rx.statuses.lock().expect("lock").extend([500, 503]);
    let sender = local_sender();
    sender
        .send(&rx.url, &json!({"x": 1}))
        .await
        .expect("third time lucky");
    assert_eq!(rx.bodies().len(), 3);
    // a 4xx is not retried
    rx.statuses.lock().expect("lock").push_back(404);
    let e = sender
        .send(&rx.url, &json!({"x": 2}))
        .await
        .expect_err("404");
    assert!(matches!(e, NotifyError::Status { code: 404, .. }), "{e}");
    assert_eq!(rx.bodies().len(), 4);
    // retries run out
    rx.statuses
        .lock()
        .expect("lock")
        .extend([500, 500, 500, 500]);
    let e = sender
        .send(&rx.url, &json!({"x": 3}))
        .await
        .expect_err("500s");
    assert!(matches!(e, NotifyError::Status { code: 500, .. }), "{e}");
    assert_eq!(rx.bodies().len(), 8, "the first attempt and three retries");
}

#[tokio::test]
async fn private_link_local_and_loopback_addresses_are_refused_without_the_operator_allowing_them()
{
    let rx = Receiver::start().await;
    let strict = Sender {
        first_delay: Duration::from_millis(1),
        ..Sender::default()
    };
    let port = rx
        .url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .expect("port")
        .to_owned();
    for url in [
        "http://10.0.0.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://localhost:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
        "http://[::1]/hook".to_owned(),
        "http://[::ffff:169.254.169.254]/".to_owned(),
        "http://0x7f.1/hook".to_owned(),
    ] {
        let e = strict.send(&url, &json!({})).await.expect_err(&url);
        assert!(matches!(e, NotifyError::Refused(_)), "{url}: {e}");
    }
    let e = strict
        .send("http://localhost/x", &json!({}))
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("localhost resolves to"), "{e}");
    assert!(rx.bodies().is_empty(), "nothing reached the receiver");
    let e = strict
        .send("ftp://example.com/x", &json!({}))
        .await
        .expect_err("scheme");
    assert!(matches!(e, NotifyError::Invalid(_)), "{e}");
    // the operator's block opens loopback, and only it
    let open = local_sender();
    open.send(&rx.url, &json!({})).await.expect("allowed");
    let e = open
        .send("http://10.0.0.1/hook", &json!({}))
        .await
        .expect_err("still private");
    assert!(matches!(e, NotifyError::Refused(_)), "{e}");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let rx = Receiver::start().await;
    rx.statuses.lock().expect("lock").push_back(302);
    let e = local_sender()
        .send(&rx.url, &json!({}))
        .await
        .expect_err("302");
    assert!(matches!(e, NotifyError::Status { code: 302, .. }), "{e}");
    assert_eq!(rx.bodies().len(), 1);
}

#[test]
fn bodies_in_each_format_carry_the_alert() {
    let msg = Message {
        notice: Notice::Firing,
        namespace: "default".into(),
        rule: "mem".into(),
        target: "gameserver/hog".into(),
        condition: "Memory > 80".into(),
        message: "memory 91.0% > 80%".into(),
        value: Some(91.0),
        fired_at: Some(t0()),
        resolved_at: None,
    };
    let g = body(WebhookFormat::Generic, &msg);
    assert_eq!(g["status"], "firing");
    assert_eq!(g["condition"], "Memory > 80");
    assert_eq!(g["firedAt"], "2026-03-01T12:00:00+00:00");
    assert_eq!(g["resolvedAt"], Value::Null);
    let d = body(WebhookFormat::Discord, &msg);
    assert_eq!(
        d["content"],
        "[FIRING] default/mem on gameserver/hog: memory 91.0% > 80%"
    );
    assert_eq!(d["embeds"][0]["fields"][2]["value"], "91");
    assert_eq!(
        d["allowed_mentions"]["parse"],
        json!([]),
        "no @everyone from a message"
    );
    let s = body(
        WebhookFormat::Slack,
        &Message {
            notice: Notice::Resolved,
            ..msg
        },
    );
    assert!(s["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("[RESOLVED]")));
    assert_eq!(s["blocks"][1]["text"]["type"], "mrkdwn");
}
