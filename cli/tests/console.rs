//! The browser console end to end: a real `catalyst server`, a nodelet on real containerd, and
//! WebSocket clients: a ticket opens one console once; lines, commands, phase and stats flow; a
//! flood of console lines reaches ten readers (and a client that does not read) with the API
//! server's memory bounded; taking the right away closes the console; `catalystctl console`
//! drives it from a terminal.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a console WebSocket: with a bearer token, or with `?ticket=` when `bearer` is None.
async fn open(
    server: &catalyst_e2e::Server,
    name: &str,
    bearer: Option<&str>,
    query: &str,
) -> Result<Ws, u16> {
    let url = format!(
        "{}{GS}/{name}/console?{query}",
        server.url.replacen("https://", "wss://", 1)
    );
    let mut req = url.into_client_request().expect("request");
    if let Some(t) = bearer {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    let tls = catalyst_nodelet::tunnel::tls_config(server.ca_pem.as_deref()).expect("tls");
    match tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls)),
    )
    .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("console connect: {e}"),
    }
}

/// The next event of a console (ping frames skipped), within `within`.
async fn next_event(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match msg {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Reads events until one satisfies `f`; panics after `within`.
async fn until(
    ws: &mut Ws,
    what: &str,
    within: Duration,
    mut f: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_event(ws, left).await {
            Some(e) if f(&e) => return e,
            Some(_) => {}
            None => panic!("no {what} before the console ended or {within:?} passed"),
        }
    }
}

/// Whether the server ends the connection within `within` (messages before the end are read).
async fn closes(ws: &mut Ws, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

fn line_is(e: &Value, text: &str) -> bool {
    e["event"] == "line" && e["data"].as_str().is_some_and(|l| l.contains(text))
}

#[test]
fn the_console_streams_to_browsers_safely() {
    let env = setup();
    let ndir = env.root.join("nodelet-console");
    node_with_ports(&env.server, "node-console", 8700);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-console",
        "cat-cons0",
        "10.231.31.0/24",
    );
    let server = &env.server;
    let talk = manifest(
        "talk",
        &env.image,
        "echo ready; while read line; do echo \"got: $line\"; done",
        "  ready: {logPattern: '^ready$'}\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n  resources: {memory: 64Mi}\n",
    );
    let flood = manifest(
        "flood",
        &env.image,
        "echo ready; while read line; do [ \"$line\" = go ] && seq 1 200000 | sed 's/^/flood line /'; echo \"got: $line\"; done",
        "  ready: {logPattern: '^ready$'}\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n  resources: {memory: 64Mi}\n",
    );
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&format!("{talk}---\n{flood}")),
    ));
    wait_phase(server, "talk", "Running", &ndir);
    wait_phase(server, "flood", "Running", &ndir);

    // op may use the consoles of the namespace; lister may only list files
    ok(ctl(server, &["create", "user", "op"], None));
    ok(ctl(server, &["create", "user", "lister"], None));
    let bindings = "apiVersion: catalyst.dev/v1alpha1\nkind: RoleBinding\nmetadata:\n  name: op-console\n  namespace: default\nspec:\n  roleRef: control.console\n  subjects: [{kind: User, name: op}]\n---\napiVersion: catalyst.dev/v1alpha1\nkind: RoleBinding\nmetadata:\n  name: lister\n  namespace: default\nspec:\n  roleRef: file.read\n  subjects: [{kind: User, name: lister}]\n";
    ok(ctl(server, &["apply", "-f", "-"], Some(bindings)));
    let key_of = |user: &str, role: &str| -> String {
        let v: Value = serde_json::from_str(&ok(ctl(
            server,
            &[
                "create",
                "apikey",
                &format!("{user}-key"),
                "--owner",
                user,
                "--role",
                role,
                "-o",
                "json",
            ],
            None,
        )))
        .expect("json");
        v.pointer("/status/token")
            .and_then(Value::as_str)
            .expect("token")
            .to_owned()
    };
    let op = key_of("op", "control.console@default");
    let lister = key_of("lister", "file.read@default");
    let http = server.http_client();
    let ticket = |token: &str, name: &str| {
        let resp = http
            .post(format!("{}/auth/v1/tickets", server.url))
            .bearer_auth(token)
            .json(&json!({"namespace": "default", "name": name}))
            .send()
            .expect("ticket");
        let code = resp.status();
        (code, resp.json::<Value>().unwrap_or(Value::Null))
    };
    let mut waited = 0;
    let (code, t) = loop {
        let (code, t) = ticket(&op, "talk");
        if code == StatusCode::OK || waited > 50 {
            break (code, t);
        }
        waited += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, StatusCode::OK, "{t}");
    let secret = t["ticket"].as_str().expect("ticket").to_owned();
    let (code, v) = ticket(&lister, "talk");
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "no console right, no ticket: {v}"
    );
    let (code, other) = ticket(&op, "flood");
    assert_eq!(code, StatusCode::OK);
    let other = other["ticket"].as_str().expect("ticket").to_owned();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        // a ticket opens its own console once
        assert_eq!(open(server, "talk", None, &format!("ticket={other}")).await.err(), Some(401), "a ticket for another console");
        let mut ws = open(server, "talk", None, &format!("ticket={secret}&tail=50")).await.expect("the ticket opens the console");
        assert_eq!(open(server, "talk", None, &format!("ticket={secret}")).await.err(), Some(401), "a used ticket");
        assert_eq!(open(server, "talk", Some(&lister), "").await.err(), Some(403), "the console needs its right");
        let phase = until(&mut ws, "phase", Duration::from_secs(10), |e| e["event"] == "phase").await;
        assert_eq!(phase["data"], "Running");
        until(&mut ws, "the history", Duration::from_secs(10), |e| line_is(e, "ready")).await;
        ws.send(Message::Text(json!({"event": "command", "data": "hello-ws"}).to_string().into())).await.expect("send");
        until(&mut ws, "the command's echo", Duration::from_secs(10), |e| line_is(e, "got: hello-ws")).await;
        let stats = until(&mut ws, "stats", Duration::from_secs(12), |e| e["event"] == "stats").await;
        assert!(stats["data"]["memoryBytes"].as_u64().is_some_and(|m| m > 0), "{stats}");
        // hostile messages get errors, not a crash; a command flood is slowed down
        ws.send(Message::Text("not json".into())).await.expect("send");
        until(&mut ws, "an error", Duration::from_secs(5), |e| e["event"] == "error").await;
        for i in 0..40 {
            ws.send(Message::Text(json!({"event": "command", "data": format!("c{i}")}).to_string().into())).await.expect("send");
        }
        until(&mut ws, "slow down", Duration::from_secs(5), |e| {
            e["event"] == "error" && e["data"].as_str().is_some_and(|d| d.contains("slow down"))
        })
        .await;
        let big = "x".repeat(10_000);
        let _ = ws.send(Message::Text(json!({"event": "command", "data": big}).to_string().into())).await;
        assert!(closes(&mut ws, Duration::from_secs(10)).await, "an oversized message ends the connection");

        // the flood: ten readers and one client that never reads
        let rss_before = catalyst_e2e::rss_mib(server.pid());
        let peak = Arc::new(std::sync::Mutex::new(rss_before));
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (peak, sampling, pid) = (peak.clone(), sampling.clone(), server.pid());
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    let now = catalyst_e2e::rss_mib(pid);
                    let mut p = peak.lock().expect("peak");
                    *p = p.max(now);
                    drop(p);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let _idle = open(server, "flood", Some(&op), "tail=0").await.expect("the idle client");
        let mut readers = Vec::new();
        for _ in 0..10 {
            let mut ws = open(server, "flood", Some(&op), "tail=0").await.expect("a reader");
            until(&mut ws, "phase", Duration::from_secs(10), |e| e["event"] == "phase").await;
            readers.push(ws);
        }
        let started = Instant::now();
        let command = |text: &'static str| {
            let client = server.async_http_client();
            let (url, token) = (format!("{}{GS}/flood/command", server.url), server.token.clone());
            async move {
                let resp = client.post(url).bearer_auth(token).json(&json!({"command": text})).send().await;
                resp.map(|r| r.status()).ok()
            }
        };
        assert_eq!(command("go").await, Some(StatusCode::OK));
        // once the flood is over, a marker line reaches every reader still connected
        let markers = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            loop {
                let _ = command("marker").await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        };
        let readers_done = futures::future::join_all(readers.into_iter().map(|mut ws| async move {
            let (mut lines, mut skipped) = (0u64, false);
            loop {
                match next_event(&mut ws, Duration::from_secs(120)).await {
                    Some(e) if line_is(&e, "got: marker") => return (lines, skipped, true),
                    Some(e) if line_is(&e, "lines skipped") => skipped = true,
                    Some(e) if line_is(&e, "flood line") => lines += 1,
                    Some(_) => {}
                    None => return (lines, skipped, false),
                }
            }
        }))
        ;
        let counts = tokio::select! {
            c = readers_done => c,
            () = markers => unreachable!("the markers go on until the readers are done"),
        };
        let took = started.elapsed();
        sampling.store(false, Ordering::Relaxed);
        sampler.join().expect("sampler");
        let peak = *peak.lock().expect("peak");
        eprintln!("console flood: 200000 lines in {took:?} to 10 readers: {counts:?}; API server RSS {rss_before:.0} → peak {peak:.0} MiB");
        for (lines, skipped, done) in &counts {
            assert!(*done, "every reader is still connected after the flood: {counts:?}");
            // lines flowed during the flood, and what a reader missed it was told of
            assert!(*lines >= 100, "every reader gets lines: {counts:?}");
            assert!(*lines == 200_000 || *skipped, "no line is lost unannounced: {counts:?}");
        }
        assert!(peak - rss_before < 200.0, "the API server's memory stays bounded: {rss_before} → {peak} MiB");

        // taking the right away closes an open console within seconds
        let mut ws = open(server, "talk", Some(&op), "tail=0").await.expect("console");
        until(&mut ws, "phase", Duration::from_secs(10), |e| e["event"] == "phase").await;
        let taken = Instant::now();
        ok(ctl(server, &["delete", "rolebinding", "op-console"], None));
        let closed = until(&mut ws, "closed", Duration::from_secs(10), |e| e["event"] == "closed").await;
        assert!(closed["data"].as_str().is_some_and(|r| r.contains("taken away")), "{closed}");
        assert!(taken.elapsed() < Duration::from_secs(5), "{:?}", taken.elapsed());
    });

    // catalystctl console: lines out, commands in (admin's context)
    let mut child = Command::new(env!("CARGO_BIN_EXE_catalystctl"))
        .args(["console", "talk", "--tail", "0"])
        .env("CATALYST_CONFIG", &server.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("catalystctl console");
    std::thread::sleep(Duration::from_secs(1));
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"from-ctl\n")
        .expect("write");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("got: from-ctl") {
                let _ = tx.send(());
            }
        }
    });
    let seen = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen,
        "catalystctl console sends commands and prints the lines"
    );
}
