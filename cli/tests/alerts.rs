//! AlertRules end to end: a real `catalyst server` (alerts every 2 s, webhooks allowed to
//! 127.0.0.0/8, nodes lost after 15 s), a nodelet on a containerd of the test's own, and a
//! webhook receiver on 127.0.0.1. A server that fills 52 MiB of its 64 MiB memory (a tmpfs
//! file, charged to its cgroup) fires a memory alert once and resolves once when it frees it;
//! a server whose process exits 3 fires a crash alert; `kill -9` of the nodelet fires a node
//! down alert, which resolves when the nodelet is back.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// Records every JSON body POSTed to it; answers 200.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let g = got.clone();
        // the thread ends with the test process; it holds no file and no child
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_ok() {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        g.lock().expect("lock").push(v);
                    }
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Hook { url, got }
    }

    /// `status` of the notifications about `rule`.
    fn of(&self, rule: &str) -> Vec<String> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|b| b["rule"]["name"] == rule)
            .map(|b| {
                let reminder = if b["reminder"] == true {
                    "-reminder"
                } else {
                    ""
                };
                format!("{}{reminder}", b["status"].as_str().unwrap_or_default())
            })
            .collect()
    }

    fn all(&self) -> String {
        format!("{:#?}", self.got.lock().expect("lock"))
    }
}

fn rule(name: &str, url: &str, body: &str) -> String {
    format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: AlertRule\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{body}  notifications:\n  - webhook: {{url: \"{url}\"}}\n"
    )
}

fn rule_status(server: &catalyst_e2e::Server, name: &str) -> Value {
    serde_json::from_str(&ok(ctl(
        server,
        &["get", "alertrule", name, "-o", "json"],
        None,
    )))
    .map(|o: Value| o["status"].clone())
    .expect("json")
}

#[test]
fn memory_crash_and_node_down_alerts_reach_a_webhook_once() {
    let env = setup_with(&[
        "--alert-webhook-allow-cidr",
        "127.0.0.0/8",
        "--alert-interval",
        "2s",
        "--node-grace-period",
        "15s",
    ]);
    let hook = Hook::start();
    let ndir = env.root.join("nodelet-al");
    node_with_ports(&env.server, "node-al", 8900);
    let mut nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-al",
        "cat-e2eal",
        "10.231.41.0/24",
    );
    let server = &env.server;

    // the rules first, so nothing that happens is missed
    let rules = [
        rule("hog-memory", &hook.url, "  gameServer: hog\n  condition: {metric: Memory, operator: \">\", threshold: 70}\n  for: 4s\n  repeatInterval: 1h\n"),
        rule("crash", &hook.url, "  gameServer: crasher\n  condition: {event: Crash}\n"),
        rule("node-down", &hook.url, "  gameServer: hog\n  condition: {event: NodeDown}\n"),
    ]
    .join("---\n");
    ok(ctl(server, &["apply", "-f", "-"], Some(&rules)));

    // memory: 52 MiB in a tmpfs file of a 64 MiB server, then freed on a console command
    let hog = manifest(
        "hog",
        &env.image,
        "dd if=/dev/zero of=/tmp/fill bs=1M count=52 2>/dev/null; echo filled; read x; rm -f /tmp/fill; echo freed; exec sleep 3600",
        "  ready: {logPattern: '^filled$'}\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n  resources: {memory: 64Mi}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&hog)));
    let hog_obj = wait_phase(server, "hog", "Running", &ndir);
    eventually("the memory alert fires", Duration::from_secs(40), || {
        hook.of("hog-memory") == ["firing"]
    });
    let st = rule_status(server, "hog-memory");
    assert_eq!(st["alerts"][0]["state"], "Firing", "{st:#}");
    // the same rules for Prometheus
    let export = ctl(server, &["alerts", "export"], None);
    let (yaml, notes) = (
        String::from_utf8_lossy(&export.stdout).into_owned(),
        String::from_utf8_lossy(&export.stderr).into_owned(),
    );
    assert!(export.status.success(), "{yaml}{notes}");
    let doc: Value = yaml_serde::from_str(&yaml).expect("a YAML rule file");
    let hog_rule = doc["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == "default/hog-memory")
        .map(|g| g["rules"][0].clone())
        .unwrap_or_default();
    assert_eq!(hog_rule["alert"], "CatalystHogMemory", "{yaml}");
    assert_eq!(hog_rule["for"], "4s", "{yaml}");
    assert!(
        hog_rule["expr"].as_str().is_some_and(|e| e.starts_with(
            "100 * catalyst_gameserver_memory_bytes{namespace=\"default\",name=\"hog\"}"
        ) && e.ends_with("> 70")),
        "{yaml}"
    );
    assert!(
        notes.contains("skipped default/crash: Crash has no Prometheus metric"),
        "{notes}"
    );
    assert!(
        st["alerts"][0]["value"].as_f64().is_some_and(|v| v > 70.0),
        "{st:#}"
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        hook.of("hog-memory"),
        ["firing"],
        "once per firing: {}",
        hook.all()
    );
    ok(ctl(server, &["command", "hog", "--", "free"], None));
    eventually("the hog frees its memory", Duration::from_secs(10), || {
        console_log(&ndir, &hog_obj).contains("freed")
    });
    eventually("the memory alert resolves", Duration::from_secs(20), || {
        hook.of("hog-memory").len() == 2
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        hook.of("hog-memory"),
        ["firing", "resolved"],
        "{}",
        hook.all()
    );
    assert_eq!(
        rule_status(server, "hog-memory")["alerts"][0]["state"],
        "Resolved"
    );

    // crash: the process exits 3 and is not restarted
    let crasher = manifest(
        "crasher",
        &env.image,
        "echo up; sleep 1; exit 3",
        "  restartPolicy: Never\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&crasher)));
    wait_phase(server, "crasher", "Crashed", &ndir);
    eventually("the crash alert fires", Duration::from_secs(20), || {
        hook.of("crash") == ["firing"]
    });
    assert!(
        hook.all().contains("exited with code 3"),
        "the notification says how: {}",
        hook.all()
    );

    // node down: kill -9 of the nodelet; NotReady after the 15 s grace
    assert!(hook.of("node-down").is_empty(), "{}", hook.all());
    nodelet.kill9();
    eventually("the node down alert fires", Duration::from_secs(45), || {
        hook.of("node-down") == ["firing"]
    });
    let st = rule_status(server, "node-down");
    assert!(
        st["alerts"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("node-al is NotReady")),
        "{st:#}"
    );
    // back: the node heartbeats, the alert resolves (and the nodelet cleans up on drop)
    nodelet.restart(&ndir);
    eventually(
        "the node down alert resolves",
        Duration::from_secs(30),
        || hook.of("node-down") == ["firing", "resolved"],
    );
}
