//! Backups in an S3-compatible store end to end: moto's S3 server (PyPI `moto[server]`,
//! installed by scripts/install-moto) on loopback with authentication on, a real
//! `catalyst server`, a nodelet on real containerd allowed to reach 127.0.0.1 only
//! (`--backup-endpoint-allow`). A Secret holds the credentials and never shows them; a Backup
//! goes to the bucket (multipart: ~20 MB of random bytes), the object is checked with boto3
//! (size and SHA-256 as the Backup says), the files change, a Restore puts them back byte for
//! byte, the download streams the object; wrong credentials, a missing Secret and an endpoint
//! on another loopback address fail with clear messages; deleting the Backup deletes the
//! object.

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;
use support::*;

const ACCESS: &str = "AKIACATALYSTTEST0001";

fn venv() -> PathBuf {
    PathBuf::from(
        std::env::var("CATALYST_MOTO_VENV").unwrap_or_else(|_| "/opt/catalyst-test/moto".into()),
    )
}

/// moto's server on a free loopback port; killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Moto {
        let bin = venv().join("bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/install-moto",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // authentication from the fourth request on: the first three make the IAM user
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server");
        let moto = Moto { child, port };
        eventually("moto answers", Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs Python (boto3) with `endpoint` and the helpers `s3(key, secret)` and `iam()`.
    fn py(&self, code: &str) -> String {
        let prelude = format!(
            "import boto3, hashlib, json, sys\nE = {:?}\n\
             def s3(k, s): return boto3.client('s3', endpoint_url=E, region_name='us-east-1', aws_access_key_id=k, aws_secret_access_key=s)\n\
             def iam(): return boto3.client('iam', endpoint_url=E, region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')\n",
            self.url()
        );
        let out = Command::new(venv().join("bin/python"))
            .args(["-c", &format!("{prelude}{code}")])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// Waits until a Backup or Restore ends; its object.
fn ended(server: &catalyst_e2e::Server, what: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = json_of(server, what);
        match last.pointer("/status/phase").and_then(Value::as_str) {
            Some("Completed") | Some("Failed") => return last,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    panic!("{what} never ended: {last}");
}

fn phase(v: &Value) -> &str {
    v.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn message(v: &Value) -> &str {
    v.pointer("/status/message")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn backup(name: &str, endpoint: &str, secret: &str) -> String {
    format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: Backup\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  gameServer: s3g\n  storage:\n    s3: {{endpoint: {endpoint:?}, bucket: backups, region: us-east-1, prefix: tenants/a, pathStyle: true, credentials: {secret}}}\n"
    )
}

fn secret(name: &str, key: &str, value: &str) -> String {
    format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  data:\n    accessKeyId: {key:?}\n    secretAccessKey: {value:?}\n"
    )
}

#[test]
fn backups_go_to_s3_and_come_back_with_credentials_never_shown() {
    let moto = Moto::start();
    // an IAM user with every right and a key (the three unauthenticated actions), then the
    // bucket, made with that key
    let secret_key = moto.py(
        "i = iam()\ni.create_user(UserName='catalyst')\n\
         i.put_user_policy(UserName='catalyst', PolicyName='all', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))\n\
         k = i.create_access_key(UserName='catalyst')['AccessKey']\n\
         print(k['AccessKeyId'] + ' ' + k['SecretAccessKey'])",
    );
    let (access, secret_key) = secret_key.split_once(' ').expect("a key");
    let (access, secret_key) = (access.to_owned(), secret_key.to_owned());
    moto.py(&format!(
        "s3({access:?}, {secret_key:?}).create_bucket(Bucket='backups')"
    ));

    let env = setup();
    let ndir = env.root.join("nodelet-s3");
    node_with_ports(&env.server, "node-s3", 9460);
    let _nodelet = Nodelet::start_with(
        &env.server,
        &env.ctd,
        &ndir,
        "node-s3",
        "cat-s30",
        "10.231.46.0/24",
        &["--backup-endpoint-allow", "127.0.0.1"],
    );
    let server = &env.server;

    // the Secret: its values go in, and never come out of a read or a watch
    let mut watch = Command::new(env!("CARGO_BIN_EXE_catalystctl"))
        .args(["get", "secrets", "-w", "-o", "json"])
        .env("CATALYST_CONFIG", &server.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&secret("creds", &access, &secret_key)),
    ));
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&secret("wrong", ACCESS, "not-the-secret-0123")),
    ));
    let shown = ok(ctl(server, &["get", "secret", "creds", "-o", "yaml"], None));
    assert!(
        shown.contains("accessKeyId") && shown.contains("secretAccessKey"),
        "{shown}"
    );
    let listed = ok(ctl(server, &["get", "secrets", "-o", "json"], None));
    // get -o yaml | apply keeps the values (checked below by the backup that uses them)
    ok(ctl(server, &["apply", "-f", "-"], Some(&shown)));
    std::thread::sleep(Duration::from_secs(2));
    let _ = watch.kill();
    let mut watched = String::new();
    watch
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut watched)
        .expect("watch output");
    let _ = watch.wait();
    assert!(
        watched.contains("creds"),
        "the watch saw the secret: {watched}"
    );
    for (what, text) in [("get", &shown), ("list", &listed), ("watch", &watched)] {
        for value in [secret_key.as_str(), "not-the-secret-0123"] {
            assert!(
                !text.contains(value),
                "a value in the {what} output: {text}"
            );
        }
    }

    // a game with ~20 MB of random bytes (three parts of a multipart upload)
    let startup = "cd /home/container; [ -e made ] || { mkdir -p world empty; \
        dd if=/dev/urandom of=world/r.mca bs=1M count=20 2>/dev/null; echo level > world/level.dat; \
        ln -s world/level.dat link; touch made; }; echo ready; \
        while read line; do sh -c \"$line\" 2>&1; echo \"done: $line\"; done";
    let game = manifest(
        "s3g",
        &env.image,
        startup,
        "  ready: {logPattern: '^ready$'}\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n  resources: {memory: 128Mi, disk: 1Gi}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&game)));
    let obj = wait_phase(server, "s3g", "Running", &ndir);
    let uid = obj["metadata"]["uid"].as_str().expect("uid").to_owned();
    let data = ndir.join("servers").join(&uid);
    let before = manifest_of(&data);

    // the backup goes to the bucket, and nothing of it stays on the node
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&backup("s1", &moto.url(), "creds")),
    ));
    let s1 = ended(server, "backup/s1");
    assert_eq!(phase(&s1), "Completed", "{s1}");
    let key = s1["status"]["objectKey"]
        .as_str()
        .expect("objectKey")
        .to_owned();
    assert!(key.starts_with("tenants/a/default/s1-"), "{key}");
    let size = s1["status"]["sizeBytes"].as_u64().expect("size");
    let sha = s1["status"]["sha256"].as_str().expect("sha").to_owned();
    assert!(size > 20 << 20, "{s1}");
    let seen = moto.py(&format!(
        "b = s3({access:?}, {secret_key:?}).get_object(Bucket='backups', Key={key:?})['Body'].read()\n\
         print(len(b), hashlib.sha256(b).hexdigest())"
    ));
    assert_eq!(
        seen,
        format!("{size} {sha}"),
        "the object as boto3 reads it"
    );
    assert!(
        !ndir.join("backups").join(&uid).exists()
            || std::fs::read_dir(ndir.join("backups").join(&uid))
                .expect("dir")
                .next()
                .is_none(),
        "no local copy"
    );
    let events = ok(ctl(server, &["get", "events", "-o", "json"], None));
    assert!(!events.contains(&secret_key), "no secret in events");

    // the API download streams the object (and a range of it)
    let local = env.root.join("s1.tar.zst");
    ok(ctl(
        server,
        &["backup", "download", "s1", &local.display().to_string()],
        None,
    ));
    let got = std::fs::read(&local).expect("download");
    assert_eq!(format!("{:x}", sha2::Sha256::digest(&got)), sha);
    std::fs::remove_file(&local).expect("rm");

    // the files change; the restore (downloaded from the bucket) puts them back
    ok(ctl(
        server,
        &[
            "command",
            "s3g",
            "--",
            "echo griefed > world/level.dat; rm -f world/r.mca link; mkdir new",
        ],
        None,
    ));
    eventually("the files changed", Duration::from_secs(60), || {
        manifest_of(&data) != before
    });
    ok(ctl(
        server,
        &["backup", "restore", "s1", "--truncate"],
        None,
    ));
    let restore = ok(ctl(server, &["get", "restores", "-o", "name"], None));
    let restore = restore.trim().rsplit('/').next().expect("name").to_owned();
    let r = ended(server, &format!("restore/{restore}"));
    assert_eq!(phase(&r), "Completed", "{r}");
    assert_eq!(manifest_of(&data), before, "the restored files");
    wait_phase(server, "s3g", "Running", &ndir);

    // wrong credentials: Failed, with the store's reason and without the secret
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&backup("bad-key", &moto.url(), "wrong")),
    ));
    let bad = ended(server, "backup/bad-key");
    assert_eq!(phase(&bad), "Failed", "{bad}");
    assert!(
        message(&bad).contains("403") || message(&bad).contains("InvalidAccessKeyId"),
        "{bad}"
    );
    assert!(
        !bad.to_string().contains("not-the-secret-0123") && !bad.to_string().contains(ACCESS),
        "{bad}"
    );
    // no such Secret: Failed naming the field
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&backup("no-secret", &moto.url(), "nope")),
    ));
    let none = ended(server, "backup/no-secret");
    assert_eq!(phase(&none), "Failed", "{none}");
    assert!(
        message(&none).contains("spec.storage.s3.credentials"),
        "{none}"
    );
    // an endpoint on a loopback address the operator did not allow: refused
    let other = format!("http://127.0.0.2:{}", moto.port);
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&backup("private", &other, "creds")),
    ));
    let private = ended(server, "backup/private");
    assert_eq!(phase(&private), "Failed", "{private}");
    assert!(
        message(&private).contains("refused: 127.0.0.2 is loopback"),
        "{private}"
    );

    // deleting the Backup deletes the object
    ok(ctl(server, &["delete", "backup", "s1"], None));
    eventually("the object is deleted", Duration::from_secs(60), || {
        moto.py(&format!(
            "r = s3({access:?}, {secret_key:?}).list_objects_v2(Bucket='backups', Prefix={key:?})\nprint(r.get('KeyCount', 0))"
        )) == "0"
    });
    // failed backups have no object: they go at once
    for b in ["bad-key", "no-secret", "private"] {
        ok(ctl(server, &["delete", "backup", b], None));
    }
    eventually("every backup is gone", Duration::from_secs(30), || {
        ok(ctl(server, &["get", "backups", "-o", "name"], None))
            .trim()
            .is_empty()
    });
}
