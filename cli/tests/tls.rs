//! HTTPS by default, against a real `catalyst server` process: catalystctl trusts the CA in
//! admin.yaml, other clients do not get through, `--insecure-http` stays on loopback, and the
//! join token's pin lets a node trust this server and no other.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalyst_client::{Client, Error, JoinToken};
use catalyst_e2e::Server;

#[path = "support/api.rs"]
mod api;

fn catalyst() -> &'static str {
    env!("CARGO_BIN_EXE_catalyst")
}

fn ctl(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_catalystctl"))
        .args(args)
        .env("CATALYST_CONFIG", config)
        .output()
        .expect("catalystctl")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn catalystctl_speaks_https_with_the_ca_from_admin_yaml_and_strangers_do_not_get_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(catalyst(), &dir.path().join("s"), &[]);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let admin = std::fs::read_to_string(&server.config).expect("admin.yaml");
    assert!(admin.contains("certificateAuthorityData: "), "{admin}");

    let out = ctl(&server.config, &["get", "nodes"]);
    assert!(
        out.status.success(),
        "catalystctl get nodes over HTTPS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(api::Api::of(&server).healthy());

    // a client trusting the system's roots only: the handshake fails, no answer
    let stranger = reqwest::blocking::Client::new()
        .get(format!("{}/healthz", server.url))
        .send();
    let e = stranger.expect_err("an unknown CA is refused");
    assert!(e.is_connect() || e.is_request(), "{e:?}");
    let r = rt().block_on(Client::new(&server.url, &server.token).get("/healthz"));
    assert!(matches!(r, Err(Error::Unreachable { .. })), "{r:?}");

    // catalystctl with a config that lacks the CA fails the same way, with exit 1
    let no_ca: String = admin
        .lines()
        .filter(|l| !l.starts_with("certificateAuthorityData"))
        .map(|l| format!("{l}\n"))
        .collect();
    let no_ca_path = dir.path().join("no-ca.yaml");
    std::fs::write(&no_ca_path, no_ca).expect("config");
    let out = ctl(&no_ca_path, &["get", "nodes"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("cannot reach"),
        "{err}"
    );

    // plain HTTP on the TLS port gets nothing, and a broken handshake stops nothing
    let mut raw =
        std::net::TcpStream::connect(server.url.trim_start_matches("https://")).expect("connect");
    let _ = raw.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(raw);
    assert!(
        api::Api::of(&server).healthy(),
        "still serving after a bad handshake"
    );
}

#[test]
fn cacerts_serves_the_ca_that_the_join_token_pins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(catalyst(), &dir.path().join("s"), &[]);
    let ca = server.ca_pem.clone().expect("a CA");
    let served = server
        .http_client()
        .get(format!("{}/cacerts", server.url))
        .send()
        .expect("GET /cacerts without a token")
        .bytes()
        .expect("body");
    assert_eq!(served.as_ref(), ca.as_slice());
    let token = std::fs::read_to_string(server.data_dir.join("join-token")).expect("join-token");
    let parsed = JoinToken::parse(&token).expect("a join token");
    assert_eq!(
        parsed.ca_sha256.as_deref(),
        Some(catalyst_client::pin::ca_sha256(&ca).expect("hash").as_str())
    );
}

#[test]
fn insecure_http_is_refused_beyond_loopback_with_exit_2_and_works_on_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(catalyst())
        .args([
            "server",
            "--insecure-http",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(dir.path().join("refused"))
        .stdout(Stdio::null())
        .output()
        .expect("catalyst server");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Server::start(catalyst(), &dir.path().join("plain"), &["--insecure-http"]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert!(server.ca_pem.is_none());
    let out = ctl(&server.config, &["get", "nodes"]);
    assert!(out.status.success(), "{out:?}");
    // without a CA there is nothing to pin: the join token is the bare secret
    let token = std::fs::read_to_string(server.data_dir.join("join-token")).expect("join-token");
    assert!(!token.starts_with("K10"), "{token}");
}

#[test]
fn a_join_token_pinning_another_ca_is_refused_and_the_right_one_joins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(catalyst(), &dir.path().join("s"), &[]);
    let token = std::fs::read_to_string(server.data_dir.join("join-token")).expect("join-token");
    let token = token.trim();
    let secret = token.split_once("::").expect("K10…::secret").1;
    let wrong = format!("K10{}::{secret}", "0".repeat(64));
    let rt = rt();

    let refused = rt.block_on(Client::join(&server.url, &wrong, "n-wrong"));
    match refused {
        Err(e @ Error::CaMismatch { .. }) => {
            assert!(e.to_string().contains("refusing to join"), "{e}");
        }
        other => panic!("expected a CA mismatch, got {other:?}"),
    }
    // nothing reached the server: no Node was registered
    let nodes = api::Api::of(&server)
        .get("/apis/catalyst.dev/v1alpha1/nodes/n-wrong")
        .expect_err("no node n-wrong");
    assert!(nodes.is_not_found(), "{nodes}");

    let joined = rt
        .block_on(Client::join(&server.url, token, "n-right"))
        .expect("the right pin joins");
    assert_eq!(joined.ca_pem.as_deref(), server.ca_pem.as_deref());
    let node =
        Client::with_ca(&server.url, &joined.token, joined.ca_pem.as_deref()).expect("client");
    rt.block_on(node.get("/apis/catalyst.dev/v1alpha1/nodes/n-right"))
        .expect("the node token works over the pinned CA");
}

#[test]
fn a_nodelet_with_a_wrong_pin_exits_before_touching_containerd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(catalyst(), &dir.path().join("s"), &[]);
    let token = std::fs::read_to_string(server.data_dir.join("join-token")).expect("join-token");
    let secret = token
        .trim()
        .split_once("::")
        .expect("K10…::secret")
        .1
        .to_owned();
    let mut child = Command::new(catalyst())
        .args(["nodelet", "--server", &server.url, "--name", "n1"])
        .arg("--join-token")
        .arg(format!("K10{}::{secret}", "f".repeat(64)))
        .arg("--data-dir")
        .arg(dir.path().join("nodelet"))
        // no containerd there: the pin must fail first
        .arg("--containerd-socket")
        .arg(dir.path().join("no-containerd.sock"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("catalyst nodelet");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the nodelet kept running with a wrong pin");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success());
    assert!(stderr.contains("refusing to join"), "{stderr}");
    assert!(!stderr.contains("containerd"), "{stderr}");
    assert!(!dir.path().join("nodelet/node-token").exists());
    assert!(!dir.path().join("nodelet/ca.crt").exists());
}
