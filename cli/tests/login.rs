//! `catalystctl login`, contexts, `create user|apikey`, `auth can-i` and the transparent
//! refresh of a login session, against a real `catalyst server` process.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use catalyst_e2e::Server;

#[path = "support/api.rs"]
mod api;

/// Runs catalystctl with `config` as its client config, `stdin` piped in.
fn ctl(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_catalystctl"))
        .args(args)
        .env("CATALYST_CONFIG", config)
        .env_remove("CATALYST_CONTEXT")
        .env_remove("HOME")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("catalystctl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("catalystctl output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "catalystctl failed ({:?}): {}{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// The value of `key: VALUE` in a YAML text's first line that has it.
fn field<'a>(yaml: &'a str, key: &str) -> Option<&'a str> {
    yaml.lines()
        .find_map(|l| l.trim_start().trim_start_matches("- ").strip_prefix(key))
        .map(str::trim)
}

const BINDING: &str = "apiVersion: catalyst.dev/v1alpha1
kind: RoleBinding
metadata: {name: alice-views, namespace: default}
spec:
  roleRef: viewer
  subjects: [{kind: User, name: alice}]
";

const PASSWORD: &str = "correct horse battery";

#[test]
fn a_user_logs_in_works_through_refresh_makes_a_key_and_logs_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(env!("CARGO_BIN_EXE_catalyst"), &data, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !api::Api::of(&server).healthy() {
        assert!(Instant::now() < deadline, "server not healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    let admin = &server.config;

    // the administrator makes the user, with a password, and lets it view `default`
    let made = ok(ctl(
        admin,
        &[
            "create",
            "user",
            "alice",
            "--display-name",
            "Alice",
            "--group",
            "players",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    ));
    assert_eq!(made, "user/alice created\nuser/alice password set\n");
    ok(ctl(admin, &["apply", "-f", "-"], Some(BINDING)));

    // alice signs in into a config of her own
    let config = dir.path().join("alice/config");
    let ca = data.join("ca.crt");
    let login = ctl(
        &config,
        &[
            "login",
            "--server",
            &server.url,
            "--username",
            "alice",
            "--password-stdin",
            "--certificate-authority",
            ca.to_str().unwrap(),
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let said = ok(login);
    let host = server
        .url
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let context = format!("alice@{host}");
    assert_eq!(
        said,
        format!("Logged in to {} as alice (context {context})\n", server.url)
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the config is the owner's only");
    }
    let saved = std::fs::read_to_string(&config).unwrap();
    assert_eq!(field(&saved, "currentContext:"), Some(context.as_str()));
    assert!(field(&saved, "refreshToken:").is_some(), "{saved}");
    let contexts = ok(ctl(&config, &["config", "get-contexts"], None));
    assert!(
        contexts
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("*         {context}")),
        "{contexts}"
    );

    // what the viewer role allows, and what not
    assert_eq!(ok(ctl(&config, &["get", "gs"], None)), "");
    let may_create = ctl(&config, &["auth", "can-i", "create", "gameservers"], None);
    assert_eq!(
        (may_create.status.code(), stdout(&may_create).as_str()),
        (Some(1), "no\n")
    );
    let may_list = ctl(&config, &["auth", "can-i", "list", "gameservers"], None);
    assert_eq!(
        (may_list.status.code(), stdout(&may_list).as_str()),
        (Some(0), "yes\n")
    );
    let elsewhere = ctl(
        &config,
        &["auth", "can-i", "list", "gs", "-n", "other"],
        None,
    );
    assert_eq!(elsewhere.status.code(), Some(1));
    let me = ok(ctl(&config, &["auth", "whoami"], None));
    assert!(me.contains("Name:    alice"), "{me}");

    // an API key of alice's, carrying her viewer role, works as a bearer token
    let created = ok(ctl(
        &config,
        &[
            "create",
            "apikey",
            "alice-ci",
            "--role",
            "viewer@default",
            "--expires",
            "30d",
        ],
        None,
    ));
    let token = field(&created, "token:").expect("a token line").to_owned();
    assert!(token.starts_with("ck_"), "{created}");
    let key_config = dir.path().join("key.yaml");
    std::fs::write(
        &key_config,
        format!(
            "server: {}\ncertificateAuthorityData: {}\ntoken: {token}\n",
            server.url,
            field(
                &std::fs::read_to_string(admin).unwrap(),
                "certificateAuthorityData:"
            )
            .unwrap()
        ),
    )
    .unwrap();
    ok(ctl(&key_config, &["get", "gs"], None));
    let key_me = ok(ctl(&key_config, &["auth", "whoami"], None));
    assert!(
        key_me.contains("Name:    alice-ci") && key_me.contains("User:    alice"),
        "{key_me}"
    );
    let key_create = ctl(&key_config, &["auth", "can-i", "create", "gs"], None);
    assert_eq!(key_create.status.code(), Some(1));
    // a key may not carry a role its owner does not hold
    let escalate = ctl(
        &config,
        &["create", "apikey", "alice-admin", "--role", "admin"],
        None,
    );
    assert_eq!(escalate.status.code(), Some(1), "{}", stderr(&escalate));

    // an access token the server no longer takes is refreshed, transparently, and saved
    let before = std::fs::read_to_string(&config).unwrap();
    let old_refresh = field(&before, "refreshToken:").unwrap().to_owned();
    let old_token = field(&before, "token:").unwrap().to_owned();
    std::fs::write(&config, before.replace(&old_token, "garbage")).unwrap();
    assert_eq!(ok(ctl(&config, &["get", "gs"], None)), "");
    let after = std::fs::read_to_string(&config).unwrap();
    let new_refresh = field(&after, "refreshToken:").unwrap();
    assert_ne!(new_refresh, old_refresh, "a new pair is saved");
    assert_ne!(field(&after, "token:").unwrap(), "garbage");
    ok(ctl(&config, &["auth", "can-i", "list", "gs"], None));

    // the spent refresh token no longer works; a garbage token with it fails with a hint
    std::fs::write(
        &config,
        after
            .replace(field(&after, "token:").unwrap(), "garbage")
            .replace(new_refresh, &old_refresh),
    )
    .unwrap();
    let refused = ctl(&config, &["get", "gs"], None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("catalystctl login"),
        "{}",
        stderr(&refused)
    );
    std::fs::write(&config, &after).unwrap();

    // logout ends the session: the tokens go, the server and CA stay
    assert_eq!(
        ok(ctl(&config, &["logout"], None)),
        format!("Logged out of context {context}\n")
    );
    let out = std::fs::read_to_string(&config).unwrap();
    assert!(
        field(&out, "token:").is_none() && field(&out, "refreshToken:").is_none(),
        "{out}"
    );
    assert!(field(&out, "server:").is_some() && field(&out, "certificateAuthorityData:").is_some());
    let gone = ctl(&config, &["get", "gs"], None);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("catalystctl login"),
        "{}",
        stderr(&gone)
    );
    // and the session is over on the server too: its refresh token is refused
    let (code, _) = api::Api::new(&server.url, "", server.ca_pem.as_deref()).send(
        reqwest::Method::POST,
        "/auth/v1/refresh",
        "application/json",
        Some(serde_json::json!({"refreshToken": new_refresh})),
    );
    assert_eq!(code, 401);

    // signing in again needs no --server: the context remembers it and the CA
    ok(ctl(&config, &["login", "--password-stdin"], Some(PASSWORD)));
    ok(ctl(&config, &["get", "gs"], None));
}

#[test]
fn contexts_switch_with_use_context_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        "server: https://127.0.0.1:1\ntoken: admin-token\nnamespace: default\n",
    )
    .unwrap();
    let listed = ok(ctl(&config, &["config", "get-contexts"], None));
    assert_eq!(
        listed,
        "CURRENT   NAME      SERVER                USER   NAMESPACE\n*         default   https://127.0.0.1:1          default\n"
    );
    let missing = ctl(&config, &["config", "use-context", "prod"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no context \"prod\""),
        "{}",
        stderr(&missing)
    );
    assert_eq!(
        ok(ctl(&config, &["config", "use-context", "default"], None)),
        "Switched to context default\n"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        text,
        "server: https://127.0.0.1:1\ntoken: admin-token\nnamespace: default\ncurrentContext: default\n"
    );
    assert_eq!(
        ok(ctl(&config, &["config", "current-context"], None)),
        "default\n"
    );
    let flagged = ctl(&config, &["--context", "prod", "get", "gs"], None);
    assert_eq!(flagged.status.code(), Some(1));
    assert!(
        stderr(&flagged).contains("no context \"prod\""),
        "{}",
        stderr(&flagged)
    );
}

#[test]
fn set_servers_gives_a_context_several_urls() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, "server: https://a:1\ntoken: admin-token\n").unwrap();
    assert_eq!(
        ok(ctl(
            &config,
            &[
                "config",
                "set-servers",
                "https://a:1,https://b:1",
                "https://c:1/"
            ],
            None
        )),
        "Context default: servers https://a:1, https://b:1, https://c:1\n"
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "server: https://a:1\nservers:\n- https://b:1\n- https://c:1\ntoken: admin-token\n"
    );
    let listed = ok(ctl(&config, &["config", "get-contexts"], None));
    assert!(
        listed.contains("https://a:1,https://b:1,https://c:1"),
        "{listed}"
    );
    // the first URL given becomes `server`
    ok(ctl(
        &config,
        &["config", "set-servers", "https://b:1"],
        None,
    ));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "server: https://b:1\ntoken: admin-token\n"
    );
    let none = ctl(&config, &["config", "set-servers"], None);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
}
