//! Backups and restores end to end: a real `catalyst server`, a nodelet on real containerd, a
//! busybox "game" whose data directory holds ~150 MB of random bytes, small files, links, empty
//! directories and directories its ignore file leaves out. Backup → download (checked by GNU
//! tar and zstd, not our own reader) → the files change → Restore → the same files, byte for
//! byte; a locked backup refuses deletion; retention keeps the newest; a tampered archive
//! with `../` members (written by Python's tarfile and the zstd tool) is refused by Restore.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;
use support::*;

/// Waits until a Backup or Restore (`backup/NAME`) is Completed; its object. Failed panics.
fn completed(server: &catalyst_e2e::Server, what: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = json_of(server, what);
        match last.pointer("/status/phase").and_then(Value::as_str) {
            Some("Completed") => return last,
            Some("Failed") => panic!("{what} failed: {last}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    panic!("{what} never completed: {last}");
}

/// Sends a console line to the game and waits until it says it ran it.
fn run(server: &catalyst_e2e::Server, line: &str) {
    ok(ctl(server, &["command", "bk", "--", line], None));
    eventually(
        &format!("the game ran {line:?}"),
        Duration::from_secs(60),
        || {
            String::from_utf8_lossy(&ctl(server, &["logs", "bk"], None).stdout)
                .contains(&format!("done: {line}"))
        },
    );
}

#[test]
fn backups_restore_byte_for_byte_refuse_tampering_and_follow_retention() {
    let env = setup();
    let ndir = env.root.join("nodelet-bk");
    node_with_ports(&env.server, "node-bk", 9400);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-bk",
        "cat-bk0",
        "10.231.40.0/24",
    );
    let server = &env.server;
    // the game makes its world once (a restart keeps it), then runs console lines in a shell
    let world = "mkdir -p world/region empty/deeper cache logs; \
        dd if=/dev/urandom of=world/region/r.0.0.mca bs=1M count=150 2>/dev/null; \
        echo level > world/level.dat; echo motd=hi > server.properties; chmod 600 server.properties; \
        echo junk > cache/tmp.bin; echo log > logs/latest.log; printf 'cache/\\n' > .catalystignore; \
        ln -s world/level.dat level-link; ln -s /etc etc-link; touch made";
    let startup = format!(
        "cd /home/container; [ -e made ] || {{ {world}; }}; echo ready; while read line; do sh -c \"$line\" 2>&1; echo \"done: $line\"; done"
    );
    let game = manifest(
        "bk",
        &env.image,
        &startup,
        "  ready: {logPattern: '^ready$'}\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n  resources: {memory: 128Mi, disk: 2Gi}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&game)));
    let obj = wait_phase(server, "bk", "Running", &ndir);
    let uid = obj["metadata"]["uid"].as_str().expect("uid").to_owned();
    let data = ndir.join("servers").join(&uid);
    let before = manifest_of(&data);
    assert!(before.contains_key("world/region/r.0.0.mca"), "{before:?}");

    // a backup, leaving out cache/ (the ignore file) and logs/ (the Backup's pattern)
    ok(ctl(
        server,
        &[
            "backup", "create", "bk", "--name", "b1", "--ignore", "logs/",
        ],
        None,
    ));
    let b1 = completed(server, "backup/b1");
    let sha = b1["status"]["sha256"].as_str().expect("sha256").to_owned();
    let size = b1["status"]["sizeBytes"].as_u64().expect("size");
    assert!(size > 150 << 20, "random bytes do not compress: {b1}");

    // downloaded through the API: the bytes the Backup names, readable by GNU tar + zstd
    let local = env.root.join("b1.tar.zst");
    ok(ctl(
        server,
        &["backup", "download", "b1", &local.display().to_string()],
        None,
    ));
    let got = std::fs::read(&local).expect("download");
    assert_eq!(got.len() as u64, size);
    assert_eq!(format!("{:x}", sha2::Sha256::digest(&got)), sha);
    let listed = Command::new("tar")
        .args(["--zstd", "-tvf"])
        .arg(&local)
        .output()
        .expect("tar");
    assert!(listed.status.success(), "{listed:?}");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("world/region/r.0.0.mca"), "{listed}");
    assert!(listed.contains("etc-link -> /etc"), "{listed}");
    assert!(listed.contains("empty/deeper/"), "{listed}");
    assert!(
        !listed.contains("cache/") && !listed.contains("logs/"),
        "{listed}"
    );
    std::fs::remove_file(&local).expect("rm");

    // the game's files change; then the restore puts them back while the server is stopped,
    // and starts it again
    run(
        server,
        "echo griefed > world/level.dat; rm -rf world/region etc-link; mkdir new-dir; chmod 644 server.properties",
    );
    assert_ne!(manifest_of(&data), before);
    ok(ctl(
        server,
        &["backup", "restore", "b1", "--truncate"],
        None,
    ));
    let restore = ok(ctl(server, &["get", "restores", "-o", "name"], None));
    let restore = restore.trim().rsplit('/').next().expect("name").to_owned();
    let r = completed(server, &format!("restore/{restore}"));
    assert!(r["status"]["files"].as_u64().is_some_and(|n| n >= 4), "{r}");
    let mut expected = before.clone();
    for ignored in ["cache", "cache/tmp.bin", "logs", "logs/latest.log"] {
        expected.remove(ignored);
    }
    assert_eq!(manifest_of(&data), expected, "the restored files");
    let obj = wait_phase(server, "bk", "Running", &ndir);
    // the game sees its restored world as its own user
    run(server, "cat world/level.dat; ls -ln world/level.dat");
    let logs = String::from_utf8_lossy(&ctl(server, &["logs", "bk"], None).stdout).into_owned();
    assert!(
        logs.lines()
            .any(|l| l.contains("world/level.dat") && l.split_whitespace().nth(2) == Some("1000")),
        "{logs}"
    );
    assert!(obj.pointer("/status/phase").is_some());

    // smaller backups from here on
    run(server, "rm -rf world/region");
    // locked: deletion refused with the reason, and retention passes it by
    ok(ctl(
        server,
        &["backup", "create", "bk", "--name", "keep", "--lock"],
        None,
    ));
    completed(server, "backup/keep");
    let refused = ctl(server, &["delete", "backup", "keep"], None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("locked"),
        "{refused:?}"
    );
    // b2 sends a console line first (a game's save-all); b3 stops the server for the backup
    // and starts it again
    ok(ctl(
        server,
        &[
            "backup",
            "create",
            "bk",
            "--name",
            "b2",
            "--command",
            "echo saved-for-b2",
        ],
        None,
    ));
    completed(server, "backup/b2");
    let logs = String::from_utf8_lossy(&ctl(server, &["logs", "bk"], None).stdout).into_owned();
    assert!(logs.contains("done: echo saved-for-b2"), "{logs}");
    ok(ctl(
        server,
        &["backup", "create", "bk", "--name", "b3", "--stop"],
        None,
    ));
    let b3 = completed(server, "backup/b3");
    let obj = wait_phase(server, "bk", "Running", &ndir);
    // (times, not strings: `…:23.8Z` is after `…:23Z`; startedAt has whole seconds)
    let time = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp())
    };
    let (stopped, began) = (
        time(&obj, "/status/lastExit/finishedAt"),
        time(&b3, "/status/startedAt"),
    );
    assert!(
        began > 0 && stopped >= began,
        "the server stopped for b3: {obj}\n{b3}"
    );
    let b1_archive = ndir.join("backups").join(&uid).join(format!(
        "{}.tar.zst",
        b1["metadata"]["uid"].as_str().expect("uid")
    ));
    assert!(b1_archive.exists());
    let api = support::api::Api::of(server);
    let merge = "application/merge-patch+json";
    let (code, v) = api.send(
        reqwest::Method::PATCH,
        "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/bk",
        merge,
        Some(serde_json::json!({"spec": {"backupRetention": {"keepLast": 2}}})),
    );
    assert_eq!(code, 200, "{v}");
    eventually(
        "retention deletes b1 and its archive",
        Duration::from_secs(90),
        || {
            let names = ok(ctl(server, &["get", "backups", "-o", "name"], None));
            !names.contains("backup/b1\n") && !b1_archive.exists()
        },
    );
    let names = ok(ctl(server, &["get", "backups", "-o", "name"], None));
    for kept in ["backup/keep", "backup/b2", "backup/b3"] {
        assert!(names.contains(kept), "{kept} kept: {names}");
    }

    // a tampered archive (the node's disk or a bucket changed): `../` members, written by
    // Python's tarfile, compressed by the zstd tool, its SHA-256 made to match; refused whole
    let b2 = json_of(server, "backup/b2");
    let b2_archive: PathBuf = ndir.join("backups").join(&uid).join(format!(
        "{}.tar.zst",
        b2["metadata"]["uid"].as_str().expect("uid")
    ));
    let tar = env.root.join("evil.tar");
    let py = format!(
        "import tarfile, io\nt = tarfile.open({:?}, 'w')\nfor name in ['world/ok.txt', '../../../../tmp/catalyst-evil', '../escape.txt']:\n    data = b'pwned'\n    i = tarfile.TarInfo(name)\n    i.size = len(data)\n    t.addfile(i, io.BytesIO(data))\nt.close()\n",
        tar.display().to_string()
    );
    let made = Command::new("python3")
        .args(["-c", &py])
        .status()
        .expect("python3");
    assert!(made.success());
    let zst = Command::new("zstd")
        .args(["-q", "-f", "-o"])
        .arg(&b2_archive)
        .arg(&tar)
        .status()
        .expect("zstd");
    assert!(zst.success());
    let evil_sha = format!(
        "{:x}",
        sha2::Sha256::digest(std::fs::read(&b2_archive).expect("evil"))
    );
    let (code, v) = api.send(
        reqwest::Method::PATCH,
        "/apis/catalyst.dev/v1alpha1/namespaces/default/backups/b2/status",
        merge,
        Some(serde_json::json!({"status": {"sha256": evil_sha}})),
    );
    assert_eq!(code, 200, "{v}");
    let untouched = manifest_of(&data);
    ok(ctl(server, &["backup", "restore", "b2"], None));
    let mut failed = Value::Null;
    eventually(
        "the tampered restore fails",
        Duration::from_secs(120),
        || {
            let list: Value =
                serde_json::from_str(&ok(ctl(server, &["get", "restores", "-o", "json"], None)))
                    .expect("json");
            failed = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| {
                    r["spec"]["backup"] == "b2"
                        && r.pointer("/status/phase").and_then(Value::as_str) == Some("Failed")
                })
                .cloned()
                .unwrap_or(Value::Null);
            !failed.is_null()
        },
    );
    let message = failed["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(".."), "{failed}");
    assert!(!Path::new("/tmp/catalyst-evil").exists());
    assert!(!data.parent().expect("servers").join("escape.txt").exists());
    assert_eq!(
        manifest_of(&data),
        untouched,
        "a refused restore changes nothing"
    );
    wait_phase(server, "bk", "Running", &ndir);
}
