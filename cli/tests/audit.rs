//! The audit log end to end: a real `catalyst server --audit-log FILE`, an apply through
//! `catalystctl`, the record in the file and in `catalystctl audit`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use catalyst_e2e::Server;
use serde_json::Value;

#[path = "support/api.rs"]
mod api;

const MANIFEST: &str = "apiVersion: catalyst.dev/v1alpha1
kind: GameServer
metadata: {name: audited}
spec: {image: busybox}
";

fn ctl(server: &Server, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_catalystctl"))
        .args(args)
        .env("CATALYST_CONFIG", &server.config)
        .env_remove("HOME")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "catalystctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The record of the apply of `audited`, once the writer has appended it to `file`.
fn applied_line(file: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let found = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("each line is a JSON record"))
            .find(|r| r["name"] == "audited" && r["verb"] == "patch");
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no record of the apply in {text:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_apply_is_in_the_audit_log_file_and_in_catalystctl_audit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let log_arg = log.to_str().unwrap();
    let server = Server::start(
        env!("CARGO_BIN_EXE_catalyst"),
        &dir.path().join("data"),
        &["--audit-log", log_arg, "--audit-retention", "1d"],
    );
    let http = api::Api::of(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http.healthy() {
        assert!(Instant::now() < deadline, "server not healthy");
        std::thread::sleep(Duration::from_millis(100));
    }

    ctl(&server, &["apply", "-f", "-"], Some(MANIFEST));
    let object = http
        .get("/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/audited")
        .unwrap();
    let rv = object["metadata"]["resourceVersion"].clone();

    let line = applied_line(&log);
    assert_eq!(line["caller"]["kind"], "admin");
    assert_eq!(line["sourceIp"], "127.0.0.1", "the peer address: {line}");
    assert_eq!(line["resource"], "gameservers");
    assert_eq!(line["namespace"], "default");
    assert!(line["code"] == 200 || line["code"] == 201, "{line}");
    // the controllers may have written the object since (scheduling): the apply's revision is
    // then older than the object's
    let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
    let (written, now) = (num(&line["resourceVersion"]), num(&rv));
    assert!(
        written.is_some_and(|w| now.is_some_and(|n| w > 0 && w <= n)),
        "{line} vs {rv}"
    );
    assert!(
        line["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("catalystctl")),
        "{line}"
    );
    // successful reads (the GET above, health checks) are not audited
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("\"verb\":\"get\""), "{text}");

    let out = ctl(&server, &["audit", "-o", "json", "--since", "1h"], None);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    assert!(items.contains(&line), "{line} not in {list}");

    let out = ctl(&server, &["audit", "--user", "admin"], None);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("TIME"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains("default/audited"))
        .unwrap_or_else(|| panic!("no row of the apply in {table}"));
    // the apply's own revision (the controllers may have written the object since)
    assert!(
        row.contains("admin:admin") && row.contains(line["resourceVersion"].as_str().unwrap()),
        "{row}"
    );

    let out = ctl(&server, &["audit", "--user", "nobody", "-o", "json"], None);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["items"], Value::Array(vec![]));
}
