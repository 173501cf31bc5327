use super::*;

const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";

fn b64(pem: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(pem)
}

const TWO: &str = "currentContext: alice@prod
contexts:
- name: admin
  server: https://127.0.0.1:7443
  token: adm
- name: alice@prod
  server: https://prod:7443
  user: alice
  token: jwt
  refreshToken: r1
  namespace: games
";

#[test]
fn an_old_config_without_a_ca_still_reads() {
    let c = Config::from_yaml("server: http://127.0.0.1:7443\ntoken: t\n", None).unwrap();
    assert_eq!(c.namespace, "default");
    assert_eq!(c.context, "default");
    assert_eq!(c.refresh_token, None);
    assert_eq!(c.ca_pem().unwrap(), None);
}

#[test]
fn the_flat_admin_file_is_the_context_default() {
    // as `catalyst server` writes admin.yaml
    let text = format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: Config\nserver: https://127.0.0.1:7443\ncertificateAuthorityData: {}\ntoken: secret\nnamespace: games\n",
        b64(PEM)
    );
    assert_eq!(ConfigFile::parse(&text).unwrap().to_yaml(), text);
    let c = Config::from_yaml(&text, None).unwrap();
    assert_eq!(
        (c.server.as_str(), c.token.as_str(), c.namespace.as_str()),
        ("https://127.0.0.1:7443", "secret", "games")
    );
    assert_eq!(c.ca_pem().unwrap().as_deref(), Some(PEM.as_bytes()));
    assert_eq!(Config::from_yaml(&text, Some("default")).unwrap(), c);
    let err = Config::from_yaml(&text, Some("prod")).unwrap_err();
    assert_eq!(err.to_string(), "no context \"prod\" (known: default)");
}

#[test]
fn the_current_context_is_used_unless_another_is_chosen() {
    let c = Config::from_yaml(TWO, None).unwrap();
    assert_eq!(c.context, "alice@prod");
    assert_eq!(c.server, "https://prod:7443");
    assert_eq!(c.token, "jwt");
    assert_eq!(c.refresh_token.as_deref(), Some("r1"));
    assert_eq!(c.namespace, "games");
    let admin = Config::from_yaml(TWO, Some("admin")).unwrap();
    assert_eq!(
        (admin.token.as_str(), admin.namespace.as_str()),
        ("adm", "default")
    );
    assert!(Config::from_yaml(TWO, Some("nope")).is_err());
}

#[test]
fn without_a_current_context_the_first_one_is_used() {
    let text = TWO.replace("currentContext: alice@prod\n", "");
    assert_eq!(Config::from_yaml(&text, None).unwrap().context, "admin");
}

#[test]
fn a_logged_out_context_says_to_log_in() {
    let text = "contexts:\n- name: p\n  server: https://p:1\n  user: alice\n";
    let err = Config::from_yaml(text, None).unwrap_err().to_string();
    assert!(err.contains("catalystctl login --context p"), "{err}");
    let err = Config::from_yaml("{}", None).unwrap_err().to_string();
    assert!(err.contains("catalystctl login --server"), "{err}");
}

#[test]
fn unknown_fields_and_twice_named_contexts_are_refused() {
    assert!(ConfigFile::parse("server: x\ntokne: t\n").is_err());
    assert!(ConfigFile::parse("kind: GameServer\nserver: x\n").is_err());
    let twice = "contexts:\n- {name: a, server: x}\n- {name: a, server: y}\n";
    assert!(ConfigFile::parse(twice).is_err());
}

#[test]
fn a_round_trip_writes_the_same_layout_without_empty_fields() {
    let flat = "server: https://127.0.0.1:7443\ntoken: secret\nnamespace: default\n";
    assert_eq!(ConfigFile::parse(flat).unwrap().to_yaml(), flat);
    let file = ConfigFile::parse(TWO).unwrap();
    let again = ConfigFile::parse(&file.to_yaml()).unwrap();
    assert_eq!(again, file);
    assert!(!file.to_yaml().contains("null"), "{}", file.to_yaml());
}

#[test]
fn writing_default_keeps_a_flat_file_flat_and_another_name_moves_it_into_contexts() {
    let mut file = ConfigFile::parse("server: https://a:1\ntoken: old\n").unwrap();
    let mut d = file.context("default").unwrap();
    d.token = Some("new".into());
    file.set_context(d);
    assert_eq!(file.to_yaml(), "server: https://a:1\ntoken: new\n");

    file.set_context(Context {
        name: "alice@b".into(),
        server: "https://b:1".into(),
        token: Some("jwt".into()),
        ..Context::default()
    });
    file.current_context = Some("alice@b".into());
    assert_eq!(file.server, None);
    let names: Vec<String> = file.contexts().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["default", "alice@b"]);
    assert_eq!(
        file.context("default").unwrap().token.as_deref(),
        Some("new")
    );
    assert_eq!(Config::from_file(&file, None).unwrap().token, "jwt");
}

#[test]
fn the_file_is_written_owner_only_and_tokens_are_saved_into_their_context() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/config");
    ConfigFile::parse(TWO).unwrap().write(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let config = Config::load_context(Some(&path), None).unwrap();
    config.save_tokens("jwt2", Some("r2")).unwrap();
    let again = Config::load_context(Some(&path), None).unwrap();
    assert_eq!(
        (again.token.as_str(), again.refresh_token.as_deref()),
        ("jwt2", Some("r2"))
    );
    assert_eq!(
        Config::load_context(Some(&path), Some("admin"))
            .unwrap()
            .token,
        "adm"
    );
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left behind");
}

#[test]
fn the_ca_is_base64_of_its_pem_and_garbage_is_refused() {
    let c = Config::from_yaml(
        &format!(
            "server: https://h:1\ncertificateAuthorityData: {}\ntoken: t\n",
            b64(PEM)
        ),
        None,
    )
    .unwrap();
    assert_eq!(c.ca_pem().unwrap().as_deref(), Some(PEM.as_bytes()));
    let bad = Config::from_yaml(
        "server: https://h:1\ncertificateAuthorityData: '!!'\ntoken: t\n",
        None,
    );
    assert!(matches!(bad, Err(Error::Config(_))));
    assert_eq!(encode_ca(PEM.as_bytes()).unwrap(), b64(PEM));
    assert!(encode_ca(b"nope").is_err());
}

#[test]
fn servers_follow_server_without_duplicates_in_both_layouts() {
    let flat =
        "server: https://a:1\nservers:\n- https://b:1\n- https://a:1/\n- https://c:1\ntoken: t\n";
    let c = Config::from_yaml(flat, None).unwrap();
    assert_eq!(c.server, "https://a:1");
    assert_eq!(c.servers, ["https://a:1", "https://b:1", "https://c:1"]);
    let file = ConfigFile::parse(flat).unwrap();
    assert_eq!(file.to_yaml(), flat, "a flat file keeps its servers");
    let listed =
        "contexts:\n- name: x\n  server: https://a:1\n  servers: [https://b:1]\n  token: t\n";
    let c = Config::from_yaml(listed, None).unwrap();
    assert_eq!(c.servers, ["https://a:1", "https://b:1"]);
    // without servers: the one server, as before
    assert_eq!(
        Config::from_yaml("server: https://a:1\ntoken: t\n", None)
            .unwrap()
            .servers,
        ["https://a:1"]
    );
}

#[test]
fn moving_a_flat_file_into_contexts_keeps_its_servers() {
    let mut file =
        ConfigFile::parse("server: https://a:1\nservers: [https://b:1]\ntoken: t\n").unwrap();
    file.set_context(Context {
        name: "other".into(),
        server: "https://z:1".into(),
        token: Some("u".into()),
        ..Context::default()
    });
    assert!(file.servers.is_empty());
    assert_eq!(
        file.context("default").unwrap().urls(),
        ["https://a:1", "https://b:1"]
    );
    let mut d = file.context("default").unwrap();
    d.servers = vec!["https://c:1".into()];
    file.set_context(d);
    let again = ConfigFile::parse(&file.to_yaml()).unwrap();
    assert_eq!(
        again.context("default").unwrap().urls(),
        ["https://a:1", "https://c:1"]
    );
}
