//! `catalystctl` against a real `catalyst server` process, as a user runs them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use catalyst_e2e::Server;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "support/api.rs"]
mod api;

/// A `catalyst server` child, healthy, killed on drop.
fn start_server(dir: &Path) -> Server {
    let server = Server::start(env!("CARGO_BIN_EXE_catalyst"), dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !api::Api::of(&server).healthy() {
        assert!(Instant::now() < deadline, "server not healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

trait Ctl {
    fn ctl(&self, args: &[&str]) -> Output;
    fn ctl_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output;
    fn http(&self) -> api::Api;
}

impl Ctl for Server {
    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_with(args, None, &[])
    }

    fn ctl_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catalystctl"));
        cmd.args(args)
            .env("CATALYST_CONFIG", &self.config)
            .env_remove("HOME");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn http(&self) -> api::Api {
        api::Api::of(self)
    }
}

/// Watch requests open on the server now (its `catalyst_apiserver_watches` gauge).
fn open_watches(client: &api::Api) -> i64 {
    client
        .text("/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("catalyst_apiserver_watches "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the catalyst_apiserver_watches gauge")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

const SURVIVAL: &str = r#"# yaml-language-server: $schema=../schemas/gameserver.json
apiVersion: catalyst.dev/v1alpha1
kind: GameServer
metadata: {name: survival, labels: {managed-by: gitops}}
spec:
  image: busybox
  ports: [{containerPort: 25565, protocol: TCPUDP}]
---
apiVersion: catalyst.dev/v1alpha1
kind: GameServer
metadata: {name: creative, labels: {managed-by: gitops}}
spec:
  image: busybox
"#;

const TEMPLATE: &str = r#"apiVersion: catalyst.dev/v1alpha1
kind: Template
metadata: {name: minecraft-paper, labels: {managed-by: gitops}}
spec:
  images: [{name: Java 21, image: ghcr.io/pterodactyl/yolks:java_21}]
  startup: java -jar server.jar
"#;

#[test]
fn apply_get_diff_prune_and_delete_like_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"));
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(manifests.join("sub")).unwrap();
    std::fs::write(manifests.join("servers.yaml"), SURVIVAL).unwrap();
    std::fs::write(manifests.join("sub/template.yml"), TEMPLATE).unwrap();
    let m = manifests.to_str().unwrap();

    let out = server.ctl(&["apply", "-f", m, "-R"]);
    assert_eq!(code(&out), 0, "{:?}", text(&out));
    let (stdout, _) = text(&out);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "gameserver/survival created",
            "gameserver/creative created",
            "template/minecraft-paper created"
        ]
    );
    let out = server.ctl(&["apply", "-f", m, "-R"]);
    assert!(
        text(&out).0.lines().all(|l| l.ends_with(" unchanged")),
        "{:?}",
        text(&out)
    );

    let out = server.ctl(&["get", "gs"]);
    let (stdout, _) = text(&out);
    let header: Vec<&str> = stdout.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "NODE", "ADDRESS", "AGE"]);
    assert!(
        stdout.contains("survival") && stdout.contains("Pending"),
        "{stdout}"
    );
    let out = server.ctl(&["get", "gameservers", "-A", "-o", "name"]);
    assert_eq!(text(&out).0, "gameserver/creative\ngameserver/survival\n");
    let out = server.ctl(&["get", "gs", "survival", "-o", "json"]);
    let obj: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(obj["spec"]["ports"][0]["containerPort"], 25565);
    let out = server.ctl(&["get", "tpl", "-o", "yaml"]);
    assert!(text(&out).0.contains("name: minecraft-paper"));

    // diff: 0 same, 1 differs, >1 error
    assert_eq!(code(&server.ctl(&["diff", "-f", m, "-R"])), 0);
    let changed = SURVIVAL.replace("image: busybox\n  ports", "image: alpine\n  ports");
    let out = server.ctl_with(&["diff", "-f", "-"], Some(&changed), &[]);
    assert_eq!(code(&out), 1, "{:?}", text(&out));
    assert!(
        text(&out).0.contains("+  image: alpine"),
        "{}",
        text(&out).0
    );
    let out = server.ctl_with(
        &["diff", "-f", "-"],
        Some("kind: Nope\napiVersion: catalyst.dev/v1alpha1\n"),
        &[],
    );
    assert!(code(&out) > 1, "{:?}", text(&out));

    // invalid input: the server's causes, exit 1
    let bad = "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata: {name: bad}\nspec: {image: busybox, ports: [{containerPort: 0}]}\n";
    let out = server.ctl_with(&["apply", "-f", "-"], Some(bad), &[]);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out)
            .1
            .contains("spec.ports[0].containerPort: must be 1-65535"),
        "{}",
        text(&out).1
    );

    // dry run writes nothing
    let out = server.ctl_with(
        &["apply", "-f", "-", "--dry-run=server"],
        Some(&changed),
        &[],
    );
    assert!(
        text(&out)
            .0
            .contains("gameserver/survival configured (server dry run)"),
        "{:?}",
        text(&out)
    );
    let out = server.ctl(&["get", "gs", "survival", "-o", "json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["spec"]["image"],
        "busybox"
    );

    // prune: creative left the directory
    std::fs::write(
        manifests.join("servers.yaml"),
        SURVIVAL.split("---").next().unwrap(),
    )
    .unwrap();
    let out = server.ctl(&["apply", "-f", m, "-R", "--prune", "-l", "managed-by=gitops"]);
    assert_eq!(code(&out), 0, "{:?}", text(&out));
    assert!(
        text(&out).0.contains("gameserver/creative pruned"),
        "{}",
        text(&out).0
    );
    assert!(!text(&out).0.contains("survival pruned"));

    let out = server.ctl(&["delete", "gs", "survival", "--wait"]);
    assert_eq!(
        (code(&out), text(&out).0.as_str()),
        (0, "gameserver/survival deleted\n")
    );
    let out = server.ctl(&["get", "gs", "survival"]);
    assert_eq!(code(&out), 1);
    assert!(text(&out).1.contains("NotFound"), "{}", text(&out).1);
    let out = server.ctl(&["delete", "-f", manifests.join("sub").to_str().unwrap()]);
    assert_eq!(text(&out).0, "template/minecraft-paper deleted\n");
    assert_eq!(code(&server.ctl(&["get"])), 2, "usage errors exit 2");
}

#[test]
fn conflicts_between_managers_are_reported_and_forced() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"));
    let one = SURVIVAL.split("---").next().unwrap();
    assert_eq!(
        code(&server.ctl_with(&["apply", "-f", "-"], Some(one), &[])),
        0
    );
    let (c, _) = server.http().send(
        reqwest::Method::PATCH,
        "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/survival?fieldManager=panel",
        "application/merge-patch+json",
        Some(json!({"spec": {"image": "alpine"}})),
    );
    assert_eq!(c, 200);
    let out = server.ctl_with(&["apply", "-f", "-"], Some(one), &[]);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out).1.contains("spec.image") && text(&out).1.contains("panel"),
        "{}",
        text(&out).1
    );
    let out = server.ctl_with(&["apply", "-f", "-", "--force-conflicts"], Some(one), &[]);
    assert_eq!(
        (code(&out), text(&out).0.as_str()),
        (0, "gameserver/survival configured\n")
    );
}

#[test]
fn wait_edit_describe_explain_and_friends() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"));
    let one = SURVIVAL.split("---").next().unwrap();
    server.ctl_with(&["apply", "-f", "-"], Some(one), &[]);

    let out = server.ctl(&[
        "wait",
        "gs/survival",
        "--for=phase=Scheduled",
        "--timeout",
        "1s",
    ]);
    assert_eq!(code(&out), 1, "times out: {:?}", text(&out));
    let http = server.http();
    let watches_before = open_watches(&http);
    let waiter = {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catalystctl"));
        cmd.args([
            "wait",
            "gs/survival",
            "--for=phase=Scheduled",
            "--timeout",
            "20s",
        ])
        .env("CATALYST_CONFIG", &server.config)
        .stdout(Stdio::piped());
        cmd.spawn().unwrap()
    };
    // the waiter found the condition unmet and opened its watch: the change below reaches it
    // through the watch, not through its first read
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_watches(&http) <= watches_before {
        assert!(
            Instant::now() < deadline,
            "catalystctl wait never opened its watch"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (c, body) = http.send(
        reqwest::Method::PATCH,
        "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/survival/status",
        "application/merge-patch+json",
        Some(json!({"status": {"phase": "Scheduled", "nodeName": "node-a"}})),
    );
    assert_eq!(c, 200, "{body}");
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(
        (code(&out), String::from_utf8_lossy(&out.stdout).trim()),
        (0, "gameserver/survival condition met")
    );

    let out = server.ctl_with(
        &["edit", "gs", "survival"],
        None,
        &[("EDITOR", "sed -i s/image:\\ busybox/image:\\ alpine/")],
    );
    assert_eq!(code(&out), 0, "{:?}", text(&out));
    let out = server.ctl(&["get", "gs", "survival", "-o", "json"]);
    let obj: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            obj["spec"]["image"].as_str(),
            obj["metadata"]["generation"].as_i64()
        ),
        (Some("alpine"), Some(2))
    );
    // an edit the server rejects is reopened with the error; the second editor run gives up
    let script = dir.path().join("editor.sh");
    std::fs::write(&script, "#!/bin/sh\nif grep -q 'The edit failed' \"$1\"; then grep -q 'containerPort: must be' \"$1\" && : > \"$1\"; exit 0; fi\nsed -i 's/containerPort: 25565/containerPort: 0/' \"$1\"\n").unwrap();
    let out = server.ctl_with(
        &["edit", "gs/survival"],
        None,
        &[("EDITOR", &format!("sh {}", script.display()))],
    );
    assert_eq!(
        (code(&out), text(&out).0.trim()),
        (0, "Edit cancelled, no changes made."),
        "{:?}",
        text(&out)
    );

    for (verb, want) in [
        ("stop", "stopped"),
        ("start", "started"),
        ("restart", "restarted"),
    ] {
        let out = server.ctl(&[verb, "survival"]);
        assert_eq!(
            text(&out).0.trim(),
            format!("gameserver/survival {want}"),
            "{:?}",
            text(&out)
        );
    }
    let out = server.ctl(&["get", "gs", "survival", "-o", "json"]);
    let obj: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(obj["spec"]["state"], "Running");
    assert!(obj["metadata"]["annotations"]["catalyst.dev/restartedAt"].is_string());
    let node = "apiVersion: catalyst.dev/v1alpha1\nkind: Node\nmetadata: {name: node-a}\n";
    server.ctl_with(&["apply", "-f", "-"], Some(node), &[]);
    assert_eq!(
        text(&server.ctl(&["cordon", "node-a"])).0.trim(),
        "node/node-a cordoned"
    );
    let out = server.ctl(&["get", "nodes"]);
    assert!(
        text(&out).0.contains("SchedulingDisabled"),
        "{}",
        text(&out).0
    );
    assert_eq!(
        text(&server.ctl(&["uncordon", "node-a"])).0.trim(),
        "node/node-a uncordoned"
    );

    let out = server.ctl(&["describe", "gs", "survival"]);
    let (stdout, _) = text(&out);
    for want in [
        "Name:         survival",
        "Namespace:    default",
        "phase: Scheduled",
        "Events:",
    ] {
        assert!(stdout.contains(want), "{want} missing from\n{stdout}");
    }
    for (verb, want) in [("suspend", "suspended"), ("unsuspend", "unsuspended")] {
        let out = server.ctl(&[verb, "survival"]);
        assert_eq!(
            text(&out).0.trim(),
            format!("gameserver/survival {want}"),
            "{:?}",
            text(&out)
        );
    }
    let out = server.ctl(&["get", "gs", "survival", "-o", "json"]);
    let obj: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(obj["spec"]["suspended"], false);
    let out = server.ctl(&["explain", "gs.spec.ports"]);
    assert!(text(&out).0.contains("containerPort"), "{}", text(&out).0);
    let out = server.ctl(&["version"]);
    assert!(
        text(&out).0.contains("Server Version: "),
        "{:?}",
        text(&out)
    );
    let out = server.ctl(&["completion", "bash"]);
    assert!(text(&out).0.contains("catalystctl"));
    let out = server.ctl(&["get", "pods"]);
    assert_eq!(code(&out), 1);
    assert!(text(&out).1.contains("unknown resource type"));
    assert!(server.data_dir.join("join-token").exists());
}

#[test]
fn acknowledged_creates_survive_kill_9_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start_server(&data);
    let client = server.http();
    let mut acked = Vec::new();
    let stop = Instant::now() + Duration::from_secs(60);
    // stream creates; kill -9 in the middle
    let killer = {
        let pid = server.child.id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        })
    };
    for i in 0.. {
        if Instant::now() > stop {
            panic!("the server was never killed");
        }
        let body = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": format!("gs-{i}")}, "spec": {"image": "busybox"}});
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client.send(
                reqwest::Method::POST,
                "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers",
                "application/json",
                Some(body),
            )
        }));
        match result {
            Ok((201, _)) => acked.push(format!("gs-{i}")),
            _ => break,
        }
    }
    killer.join().unwrap();
    let _ = server.child.wait();
    assert!(
        acked.len() > 10,
        "only {} creates before the kill",
        acked.len()
    );
    drop(server);
    let server = start_server(&data);
    let out = server.ctl(&["get", "gs", "-o", "name"]);
    let present: std::collections::BTreeSet<String> = text(&out)
        .0
        .lines()
        .map(|l| l.trim_start_matches("gameserver/").to_owned())
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|n| !present.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost after kill -9: {missing:?} (of {})",
        acked.len()
    );
}
