//! `catalyst token create|list|revoke` beside a running `catalyst server` (a second process
//! on the same SQLite store): a token made with `--ttl` joins a node until it expires, a
//! revoked one joins none, and the nodes already joined keep their own credentials.

use std::process::Command;
use std::time::Duration;

use catalyst_client::{Client, Error};
use catalyst_e2e::Server;

fn catalyst(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_catalyst"))
        .args(args)
        .output()
        .expect("catalyst");
    assert!(
        out.status.success(),
        "catalyst {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The code a refused join answered, or 0 when it joined.
fn join_code(server: &Server, token: &str, node: &str) -> u16 {
    match rt().block_on(Client::join(&server.url, token, node)) {
        Ok(_) => 0,
        Err(Error::Status { code, .. }) => code,
        Err(e) => panic!("join {node}: {e}"),
    }
}

/// The ID of the listed token described as `description`.
fn id_of(list: &str, description: &str) -> String {
    list.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(description))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token {description} in\n{list}"))
        .to_owned()
}

#[test]
fn join_tokens_expire_and_revoke_while_joined_nodes_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(env!("CARGO_BIN_EXE_catalyst"), &dir.path().join("s"), &[]);
    let data_dir = server.data_dir.to_str().expect("a UTF-8 path").to_owned();
    let create = |extra: &[&str]| {
        let mut args = vec!["token", "create", "--data-dir", &data_dir];
        args.extend_from_slice(extra);
        catalyst(&args).trim().to_owned()
    };
    let short = create(&["--ttl", "2s", "--description", "short"]);
    let spare = create(&["--description", "spare"]);
    let doomed = create(&["--ttl", "24h", "--description", "doomed"]);
    // the pin is the server's CA, as in its own join-token file
    let default = std::fs::read_to_string(server.data_dir.join("join-token")).expect("join-token");
    let pin = |t: &str| t.split("::").next().map(str::to_owned);
    assert!(short.starts_with("K10"), "{short}");
    assert_eq!(pin(&short), pin(default.trim()));

    let rt = rt();
    let quick = rt
        .block_on(Client::join(&server.url, &short, "quick"))
        .expect("a fresh token joins");
    let quick =
        Client::with_ca(&server.url, &quick.token, quick.ca_pem.as_deref()).expect("client");
    let list = catalyst(&["token", "list", "--data-dir", &data_dir]);
    assert!(list.starts_with("ID"), "{list}");
    assert_eq!(
        list.lines().count(),
        5,
        "the default and three more:\n{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.trim_end().ends_with('*') && l.contains("never")),
        "the default token is marked:\n{list}"
    );
    let doomed_id = id_of(&list, "doomed");
    assert_eq!(doomed_id.len(), 12, "{list}");

    // expiry
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(join_code(&server, &short, "late"), 401, "an expired token");
    let list = catalyst(&["token", "list", "--data-dir", &data_dir]);
    assert!(
        list.lines()
            .any(|l| l.contains("short") && l.contains("(expired)")),
        "{list}"
    );

    // revocation
    let out = catalyst(&["token", "revoke", &doomed_id, "--data-dir", &data_dir]);
    assert!(out.contains(&doomed_id), "{out}");
    assert_eq!(join_code(&server, &doomed, "after"), 401, "a revoked token");
    assert_eq!(
        join_code(&server, &spare, "spare"),
        0,
        "the others still join"
    );
    assert_eq!(join_code(&server, default.trim(), "dflt"), 0);
    let list = catalyst(&["token", "list", "--data-dir", &data_dir]);
    assert!(!list.contains("doomed"), "{list}");

    // the node that joined with the expired token keeps its credential, and one whose join
    // token is revoked too
    rt.block_on(quick.get("/apis/catalyst.dev/v1alpha1/nodes/quick"))
        .expect("a joined node outlives its expired join token");
    let joined = rt
        .block_on(Client::join(&server.url, &spare, "keeper"))
        .expect("join");
    let node =
        Client::with_ca(&server.url, &joined.token, joined.ca_pem.as_deref()).expect("client");
    rt.block_on(node.get("/apis/catalyst.dev/v1alpha1/nodes/keeper"))
        .expect("the node token works");
    let revoked = catalyst(&[
        "token",
        "revoke",
        &id_of(&list, "spare"),
        "--data-dir",
        &data_dir,
    ]);
    assert!(revoked.contains("revoked"), "{revoked}");
    rt.block_on(node.get("/apis/catalyst.dev/v1alpha1/nodes/keeper"))
        .expect("a joined node outlives its join token");
}
