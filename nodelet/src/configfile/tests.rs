//! Tests of the config-file editor: real-format fixtures (testdata/), every parser on a missing
//! and on a broken file, path escapes through a real data directory, and random input.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use serde_json::json;

use super::*;
use crate::files::testutil::Fixture;

const PROPERTIES: &str = include_str!("testdata/server.properties");
const OPENTTD: &str = include_str!("testdata/openttd.cfg");
const BUNGEE: &str = include_str!("testdata/config.yml");
const NESTED: &str = include_str!("testdata/nested.json");
const XML: &str = include_str!("testdata/server.xml");

const ALL: [ConfigParser; 6] = [
    ConfigParser::Properties,
    ConfigParser::Ini,
    ConfigParser::Json,
    ConfigParser::Yaml,
    ConfigParser::Xml,
    ConfigParser::File,
];

fn rep(key: &str, value: Value) -> Replacement {
    Replacement {
        key: key.into(),
        if_value: None,
        value,
    }
}

fn rep_if(key: &str, if_value: &str, value: Value) -> Replacement {
    Replacement {
        key: key.into(),
        if_value: Some(if_value.into()),
        value,
    }
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

/// The edit's new text (panics when the file would be left alone).
fn edited(parser: ConfigParser, old: &str, reps: &[Replacement]) -> String {
    let out = edit(parser, Some(old.as_bytes()), reps)
        .expect("edits")
        .expect("changes");
    String::from_utf8(out).expect("UTF-8")
}

fn key_error(result: Result<Option<Vec<u8>>, EditError>) -> String {
    match result {
        Err(e @ EditError::Key { .. }) => e.to_string(),
        other => panic!("expected a key error, got {other:?}"),
    }
}

// --- properties

#[test]
fn properties_paper_egg_keys() {
    let reps = [
        rep("server-ip", s("0.0.0.0")),
        rep("enable-query", Value::Bool(true)),
        rep("server-port", Value::Int(25570)),
        rep("query.port", Value::Int(25570)),
    ];
    let out = edited(ConfigParser::Properties, PROPERTIES, &reps);
    let want = PROPERTIES
        .replace("\nserver-ip=\n", "\nserver-ip=0.0.0.0\n")
        .replace("\nenable-query=false\n", "\nenable-query=true\n")
        .replace("\nserver-port=25565\n", "\nserver-port=25570\n")
        .replace("\nquery.port=25565\n", "\nquery.port=25570\n");
    assert_eq!(out, want, "only the four lines change");
    // once more: nothing to change
    assert_eq!(
        edit(ConfigParser::Properties, Some(out.as_bytes()), &reps).expect("edits"),
        None
    );
}

#[test]
fn properties_append_escape_and_conditions() {
    let old =
        "# comment\r\nmotd = Hello\\\r\n    World\r\nlevel-type=minecraft\\:normal\r\nkey\r\n";
    let reps = [
        // a continued value is replaced whole, the line's own `key = ` kept
        rep("motd", s("Grüße \\ 🎮")),
        // exact if_value compares with the unescaped value
        rep_if("level-type", "minecraft:normal", s("minecraft:flat")),
        rep_if("level-type", "minecraft:normal", s("never")),
        // a missing key with an if_value is not added
        rep_if("missing", "x", s("y")),
        rep_if("missing2", "regex:.*", s("y")),
        // a key alone gets a separator
        rep("key", s("v")),
        // a missing key is appended, escaped, with the file's line ending
        rep("new key", s(" lead")),
    ];
    let out = edited(ConfigParser::Properties, old, &reps);
    assert_eq!(
        out,
        "# comment\r\nmotd = Gr\\u00FC\\u00DFe \\\\ \\uD83C\\uDFAE\r\nlevel-type=minecraft:flat\r\nkey=v\r\nnew\\ key=\\ lead\r\n"
    );
}

#[test]
fn properties_regex_if_value() {
    let old = "server-ip=127.0.0.1\n";
    let reps = [rep_if(
        "server-ip",
        r"regex:^127\.0\.0\.(\d+)$",
        s("10.89.0.$1"),
    )];
    assert_eq!(
        edited(ConfigParser::Properties, old, &reps),
        "server-ip=10.89.0.1\n"
    );
}

// --- ini

#[test]
fn ini_openttd_sections() {
    let reps = [
        rep("network.server_port", Value::Int(3980)),
        rep("network.server_admin_port", Value::Int(3981)),
        // missing key: after the last entry of its section, in its style
        rep("network.server_name", s("Catalyst")),
        // missing section: appended
        rep("server.motd", s("hi")),
        // [a.b].c form, and a dotted key in a section
        rep("[newgrf].opengfx_base.grf", s("1")),
        // the unnamed section, before the first header
        rep("top", s("yes")),
    ];
    let out = edited(ConfigParser::Ini, OPENTTD, &reps);
    let want = format!(
        "top = yes\n{}\n[server]\nmotd = hi\n",
        OPENTTD
            .replace("server_port = 3979", "server_port = 3980")
            .replace("server_admin_port = 3977", "server_admin_port = 3981")
            .replace(
                "server_advertise = false\n",
                "server_advertise = false\nserver_name = Catalyst\n"
            )
            .replace("opengfx_base.grf = \n", "opengfx_base.grf = 1\n")
    );
    assert_eq!(out, want);
    assert_eq!(
        edit(ConfigParser::Ini, Some(out.as_bytes()), &reps).expect("edits"),
        None,
        "idempotent"
    );
}

#[test]
fn ini_styles_and_conditions() {
    let old = "; top comment\nname=a\n[s]\nk=1\n# c\n[t]\nx : \"q\"\n";
    let reps = [
        rep("name", s("b")),
        rep("s.k2", s("2")),
        rep_if("t.x", "q", s("r")),
        rep_if("t.y", "q", s("never added")),
        rep_if("s.k", "regex:^(\\d)$", s("${1}0")),
    ];
    assert_eq!(
        edited(ConfigParser::Ini, old, &reps),
        "; top comment\nname=b\n[s]\nk=10\nk2=2\n# c\n[t]\nx : r\n"
    );
    // a line break in a value would add lines
    let err = key_error(edit(
        ConfigParser::Ini,
        Some(old.as_bytes()),
        &[rep("s.k", s("1\n[evil]"))],
    ));
    assert!(err.contains("line break"), "{err}");
}

// --- json

#[test]
fn json_paths_wildcards_and_indices() {
    let reps = [
        rep("server.port", Value::Int(7800)),
        rep("server.public", Value::Bool(true)),
        rep("server.tags.region", s("eu")),
        // `*` over an array and over an object
        rep("listeners.*.bind", s("0.0.0.0")),
        rep_if(
            "backends.*.host",
            r"regex:^(127\.0\.0\.1|localhost)$",
            s("10.89.0.1"),
        ),
        rep("listeners[1].port", Value::Int(7801)),
        // a missing array, index 0: created as [{}]
        rep("extra[0].enabled", Value::Bool(true)),
        // exact if_value: a different current value is kept, a missing one is set
        rep_if("server.name", "Other", s("never")),
        rep_if("server.motd", "anything", s("welcome")),
    ];
    let out = edited(ConfigParser::Json, NESTED, &reps);
    assert!(
        out.starts_with("{\n    \"backends\": {\n        \"eu\": {"),
        "{out}"
    );
    assert!(out.ends_with("}\n"));
    let got: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let mut want: serde_json::Value = serde_json::from_str(NESTED).expect("JSON");
    want["server"]["port"] = json!(7800);
    want["server"]["public"] = json!(true);
    want["server"]["tags"] = json!({"region": "eu"});
    want["server"]["motd"] = json!("welcome");
    want["listeners"][0]["bind"] = json!("0.0.0.0");
    want["listeners"][1]["bind"] = json!("0.0.0.0");
    want["listeners"][1]["port"] = json!(7801);
    want["backends"]["eu"]["host"] = json!("10.89.0.1");
    want["backends"]["us"]["host"] = json!("10.89.0.1");
    want["extra"] = json!([{"enabled": true}]);
    assert_eq!(got, want);
}

#[test]
fn json_replacement_errors() {
    let old = NESTED.as_bytes();
    let err = key_error(edit(
        ConfigParser::Json,
        Some(old),
        &[rep("nothing[3].x", s("v"))],
    ));
    assert!(
        err.contains("key nothing[3].x") && err.contains("index 0"),
        "{err}"
    );
    let err = key_error(edit(
        ConfigParser::Json,
        Some(old),
        &[rep("listeners[2].port", Value::Int(1))],
    ));
    assert!(err.contains("past the end"), "{err}");
    let err = key_error(edit(
        ConfigParser::Json,
        Some(old),
        &[rep("server.name.first", s("v"))],
    ));
    assert!(err.contains("`server.name` is a string"), "{err}");
    let err = key_error(edit(
        ConfigParser::Json,
        Some(old),
        &[rep_if("server.name", "regex:(", s("v"))],
    ));
    assert!(err.contains("if_value"), "{err}");
    // one failing replacement: nothing of the file changes
    let err = key_error(edit(
        ConfigParser::Json,
        Some(old),
        &[rep("server.port", Value::Int(1)), rep("a..b", s("v"))],
    ));
    assert!(err.contains("empty path segment"), "{err}");
    let deep = vec!["a"; MAX_SEGMENTS + 1].join(".");
    let err = key_error(edit(ConfigParser::Json, Some(old), &[rep(&deep, s("v"))]));
    assert!(err.contains("path segments"), "{err}");
}

#[test]
fn json_empty_file_starts_as_an_object() {
    let out = edited(ConfigParser::Json, " \n", &[rep("a.b", Value::Int(1))]);
    assert_eq!(out, "{\n    \"a\": {\n        \"b\": 1\n    }\n}\n");
}

// --- yaml

#[test]
fn yaml_bungeecord_egg() {
    let reps = [
        rep("listeners[0].query_port", Value::Int(25570)),
        rep("listeners[0].host", s("0.0.0.0:25570")),
        rep_if(
            "servers.*.address",
            r"regex:^(127\.0\.0\.1|localhost)(:\d{1,5})?$",
            s("10.89.0.1$2"),
        ),
    ];
    let out = edited(ConfigParser::Yaml, BUNGEE, &reps);
    let got = catalyst_schemas::parse_documents(&out).expect("YAML");
    let mut want = catalyst_schemas::parse_documents(BUNGEE).expect("YAML");
    let w = &mut want[0];
    w["listeners"][0]["query_port"] = json!(25570);
    w["listeners"][0]["host"] = json!("0.0.0.0:25570");
    w["servers"]["lobby"]["address"] = json!("10.89.0.1:25565");
    w["servers"]["survival"]["address"] = json!("10.89.0.1");
    assert_eq!(got, want, "{out}");
    assert_eq!(
        got[0]["servers"]["remote"]["address"],
        json!("play.example.com:25565")
    );
    // the rewrite does not match its own result: a second start changes nothing
    assert_eq!(
        edit(ConfigParser::Yaml, Some(out.as_bytes()), &reps).expect("edits"),
        None
    );
}

#[test]
fn yaml_refuses_what_it_cannot_edit() {
    for bad in [
        "- a\n- b\n",
        "just text\n",
        "a: 1\n---\nb: 2\n",
        "a: [1, 2\n",
        "a: &x [*x]\n",
        "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
    ] {
        let r = edit(ConfigParser::Yaml, Some(bad.as_bytes()), &[rep("a", s("v"))]);
        assert!(
            matches!(r, Err(EditError::Syntax { format: "YAML", .. })),
            "{bad:?}: {r:?}"
        );
    }
    // an empty or comment-only file starts as a mapping
    let out = edited(ConfigParser::Yaml, "# nothing yet\n", &[rep("a.b", s("c"))]);
    assert_eq!(out, "a:\n  b: c\n");
}

// --- xml

#[test]
fn xml_text_attributes_wildcards_and_creation() {
    let reps = [
        rep("ServerConfig.Network.Port", Value::Int(27020)),
        rep("ServerConfig.Network.Bind", s("[address='0.0.0.0']")),
        rep("ServerConfig.Listeners.*", s("[port='9000']")),
        rep("ServerConfig.Admin.Password", s("s3cr&t<")),
        rep("ServerConfig.Motd", s("Hi & bye")),
        rep_if("ServerConfig.World.Seed", "999", s("never")),
        rep_if(
            "ServerConfig.Network.QueryPort",
            "regex:^27(\\d+)$",
            s("28$1"),
        ),
    ];
    let out = edited(ConfigParser::Xml, XML, &reps);
    let want = XML
        .replace("<Port>27015</Port>", "<Port>27020</Port>")
        .replace(
            "<QueryPort>27016</QueryPort>",
            "<QueryPort>28016</QueryPort>",
        )
        .replace(
            "<Bind address=\"127.0.0.1\" ipv6=\"false\"/>",
            "<Bind address=\"0.0.0.0\" ipv6=\"false\"/>",
        )
        .replace(
            "<Listener name=\"game\" port=\"7777\"/>",
            "<Listener name=\"game\" port=\"9000\"/>",
        )
        .replace(
            "<Listener name=\"rcon\" port=\"7778\"/>",
            "<Listener name=\"rcon\" port=\"9000\"/>",
        )
        .replace(
            "<Motd><![CDATA[Welcome & have fun]]></Motd>",
            "<Motd>Hi &amp; bye</Motd>",
        )
        .replace(
            "  </World>\n",
            "  </World>\n  <Admin>\n    <Password>s3cr&amp;t&lt;</Password>\n  </Admin>\n",
        );
    assert_eq!(out, want);
    assert_eq!(
        edit(ConfigParser::Xml, Some(out.as_bytes()), &reps[..5]).expect("edits"),
        None,
        "idempotent"
    );
}

#[test]
fn xml_refusals() {
    for bad in [
        // XXE
        "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<r>&x;</r>",
        "<r>&x;</r>",
        "<r><a></r>",
        "<r>",
        "<r/><s/>",
        "text<r/>",
        "<r a=\"1\" a=\"2\"/>",
    ] {
        let r = edit(ConfigParser::Xml, Some(bad.as_bytes()), &[rep("r.a", s("v"))]);
        assert!(
            matches!(r, Err(EditError::Syntax { format: "XML", .. })),
            "{bad:?}: {r:?}"
        );
    }
    let deep = format!("{}{}", "<a>".repeat(300), "</a>".repeat(300));
    let r = edit(
        ConfigParser::Xml,
        Some(deep.as_bytes()),
        &[rep("a", s("v"))],
    );
    assert!(
        matches!(&r, Err(EditError::Syntax { why, .. }) if why.contains("deeper")),
        "{r:?}"
    );
    let err = key_error(edit(
        ConfigParser::Xml,
        Some(XML.as_bytes()),
        &[rep("Other.Port", s("1"))],
    ));
    assert!(err.contains("root element is <ServerConfig>"), "{err}");
}

#[test]
fn xml_created_elements_follow_the_layout() {
    let crlf = "<?xml version=\"1.0\"?>\r\n<r>\r\n\t<a>1</a>\r\n</r>\r\n";
    assert_eq!(
        edited(
            ConfigParser::Xml,
            crlf,
            &[rep("r.b.c", s("2")), rep("r.a", s("[k='v']"))]
        ),
        "<?xml version=\"1.0\"?>\r\n<r>\r\n\t<a k=\"v\">1</a>\r\n\t<b>\r\n\t\t<c>2</c>\r\n\t</b>\r\n</r>\r\n"
    );
    assert_eq!(
        edited(ConfigParser::Xml, "<!-- c -->\n", &[rep("r.b", s("2"))]),
        "<!-- c -->\n<r>\n  <b>2</b>\n</r>\n"
    );
    assert_eq!(
        edited(ConfigParser::Xml, "<r/>", &[rep("r.b", s("2"))]),
        "<r>\n  <b>2</b>\n</r>"
    );
    assert_eq!(
        edited(ConfigParser::Xml, "<r a='1'/>", &[rep("r", s("t"))]),
        "<r a='1'>t</r>"
    );
    assert_eq!(
        edited(ConfigParser::Xml, "<r>text</r>", &[rep("r.b", s("2"))]),
        "<r>text<b>2</b></r>"
    );
}

// --- file

#[test]
fn file_prefix_lines() {
    let old = "port=1\r\nname=x\nport=2 # again\nother\nlast-no-eol";
    let reps = [
        rep("port=", s("port=7777")),
        rep("last", s("last=1")),
        rep_if("name=", "ignored", s("name=y")),
    ];
    assert_eq!(
        edited(ConfigParser::File, old, &reps),
        "port=7777\r\nname=y\nport=7777\nother\nlast=1"
    );
    assert_eq!(
        edit(ConfigParser::File, Some(b"nothing\n"), &reps).expect("edits"),
        None
    );
}

// --- every parser

#[test]
fn missing_file_per_parser() {
    let cases: [(ConfigParser, &str, Option<&str>); 6] = [
        (ConfigParser::Properties, "server.port", Some("server.port=1\n")),
        (ConfigParser::Ini, "net.port", Some("[net]\nport = 1\n")),
        (
            ConfigParser::Json,
            "server.port",
            Some("{\n    \"server\": {\n        \"port\": 1\n    }\n}\n"),
        ),
        (ConfigParser::Yaml, "server.port", Some("server:\n  port: 1\n")),
        (
            ConfigParser::Xml,
            "server.port",
            Some("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<server>\n  <port>1</port>\n</server>\n"),
        ),
        (ConfigParser::File, "server.port", None),
    ];
    for (parser, key, want) in cases {
        let out = edit(parser, None, &[rep(key, Value::Int(1))]).expect("edits");
        assert_eq!(
            out.as_deref()
                .map(|b| std::str::from_utf8(b).expect("UTF-8")),
            want,
            "{parser:?}"
        );
        // a condition that sets nothing creates nothing
        let out = edit(parser, None, &[rep_if(key, "regex:x", s("v"))]).expect("edits");
        assert_eq!(out, None, "{parser:?}");
    }
}

/// A broken file of each format.
fn broken(parser: ConfigParser) -> &'static [u8] {
    match parser {
        ConfigParser::Properties => b"a=1\nmotd=\\u12G4\n",
        ConfigParser::Ini => b"[network\nserver_port = 1\n",
        ConfigParser::Json => b"{\"a\": 1,}",
        ConfigParser::Yaml => b"a: b: c\n",
        ConfigParser::Xml => b"<a><b></a>",
        ConfigParser::File => b"a=1\n\0binary\n",
    }
}

#[test]
fn broken_file_per_parser_is_an_error() {
    for parser in ALL {
        let r = edit(parser, Some(broken(parser)), &[rep("a", s("2"))]);
        match r {
            Err(e @ EditError::Syntax { .. }) => assert!(e.to_string().contains("line"), "{e}"),
            other => panic!("{parser:?}: {other:?}"),
        }
    }
}

#[test]
fn too_large_is_refused() {
    let big = vec![b'#'; MAX_FILE_BYTES + 1];
    for parser in ALL {
        let r = edit(parser, Some(&big), &[rep("a", s("b"))]);
        assert!(matches!(r, Err(EditError::TooLarge { .. })), "{parser:?}");
    }
    // nor may an edit grow a file past the limit
    let children: String = (0..1000).map(|i| format!("\"k{i}\":{{}},")).collect();
    let old = format!("{{\"a\":{{{}\"last\":{{}}}}}}", children);
    let r = edit(
        ConfigParser::Json,
        Some(old.as_bytes()),
        &[rep("a.*.v", s(&"x".repeat(20_000)))],
    );
    assert!(matches!(r, Err(EditError::TooLarge { .. })), "{r:?}");
}

// --- apply: a real data directory

fn files(
    path: &str,
    parser: ConfigParser,
    reps: Vec<Replacement>,
) -> Vec<(String, ConfigParser, Vec<Replacement>)> {
    vec![(path.to_owned(), parser, reps)]
}

#[test]
fn apply_edits_creates_and_keeps_modes() {
    let fx = Fixture::new();
    fx.file("server.properties", PROPERTIES.as_bytes());
    std::fs::set_permissions(
        fx.p("server.properties"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("mode");
    fx.file("plugins/bungee/config.yml", BUNGEE.as_bytes());
    let list = vec![
        (
            "server.properties".to_owned(),
            ConfigParser::Properties,
            vec![rep("server-port", Value::Int(25570))],
        ),
        (
            "plugins/bungee/config.yml".to_owned(),
            ConfigParser::Yaml,
            vec![rep("listeners[0].query_port", Value::Int(25577))],
        ),
        (
            "new.json".to_owned(),
            ConfigParser::Json,
            vec![rep("port", Value::Int(1))],
        ),
        (
            "notes.txt".to_owned(),
            ConfigParser::File,
            vec![rep("x", s("y"))],
        ),
        (
            "nodir/new.json".to_owned(),
            ConfigParser::Json,
            vec![rep("port", Value::Int(1))],
        ),
    ];
    let results = apply(&fx.root, &list);
    let summary: Vec<(&str, Result<bool, String>)> = results
        .iter()
        .map(|(p, r)| {
            (
                p.as_str(),
                r.as_ref().map(|b| *b).map_err(|e| e.to_string()),
            )
        })
        .collect();
    assert_eq!(summary[0], ("server.properties", Ok(true)));
    assert_eq!(
        summary[1],
        ("plugins/bungee/config.yml", Ok(false)),
        "already 25577"
    );
    assert_eq!(summary[2], ("new.json", Ok(true)));
    assert_eq!(
        summary[3],
        ("notes.txt", Ok(false)),
        "the file parser creates nothing"
    );
    assert!(
        matches!(&summary[4].1, Err(e) if e.contains("not found")),
        "{:?}",
        summary[4]
    );
    let props = std::fs::read_to_string(fx.p("server.properties")).expect("read");
    assert!(props.contains("\nserver-port=25570\n"));
    let meta = std::fs::metadata(fx.p("server.properties")).expect("meta");
    assert_eq!(meta.mode() & 0o777, 0o600, "the mode is kept");
    assert_eq!(meta.uid(), crate::files::testutil::UID);
    let meta = std::fs::metadata(fx.p("new.json")).expect("meta");
    assert_eq!(meta.mode() & 0o777, 0o644);
    assert_eq!(
        meta.uid(),
        crate::files::testutil::UID,
        "created as the server"
    );
    assert!(!fx.p("notes.txt").exists());
    assert_eq!(
        fx.tree(),
        [
            "new.json",
            "plugins/",
            "plugins/bungee/",
            "plugins/bungee/config.yml",
            "server.properties"
        ],
        "no temporary files left"
    );
    fx.outside_untouched();
}

#[test]
fn apply_leaves_broken_files_byte_identical() {
    let fx = Fixture::new();
    for parser in ALL {
        let name = format!("broken-{parser:?}");
        fx.file(&name, broken(parser));
        let results = apply(&fx.root, &files(&name, parser, vec![rep("a", s("2"))]));
        assert!(results[0].1.is_err(), "{parser:?}: {:?}", results[0]);
        assert_eq!(std::fs::read(fx.p(&name)).expect("read"), broken(parser));
    }
}

#[test]
fn apply_never_leaves_the_data_directory() {
    let fx = Fixture::new();
    fx.link("out.properties", fx.outside.join("secret"));
    fx.link("outdir", &fx.outside);
    fx.file("inside.properties", b"a=1\n");
    fx.link("in.properties", "inside.properties");
    std::fs::hard_link(fx.outside.join("secret"), fx.p("hard.properties")).expect("hard link");
    std::fs::create_dir(fx.p("adir")).expect("dir");
    fx.own();
    let reps = || vec![rep("a", s("2"))];
    for path in [
        "../outside/secret",
        "a/../../outside/secret",
        "/etc/passwd",
        "out.properties",
        "outdir/secret",
        "outdir/new.properties",
        "in.properties",
        "hard.properties",
        "adir",
        "",
        "/",
    ] {
        let results = apply(&fx.root, &files(path, ConfigParser::Properties, reps()));
        assert!(results[0].1.is_err(), "{path}: {:?}", results[0]);
    }
    // a symbolic link inside is not written through, nor replaced
    assert_eq!(
        std::fs::read(fx.p("inside.properties")).expect("read"),
        b"a=1\n"
    );
    assert!(std::fs::symlink_metadata(fx.p("in.properties"))
        .expect("link")
        .file_type()
        .is_symlink());
    // the hard link to the outside file was not edited
    assert_eq!(
        std::fs::read(fx.outside.join("secret")).expect("read"),
        b"secret"
    );
    std::fs::remove_file(fx.p("hard.properties")).expect("unlink");
    fx.outside_untouched();
}

// --- random input

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that are likely to mean something to one of the formats.
const ALPHABET: &[u8] = b"ab.=:[]{}<>/\\\"'#;!&*-? \t\n\r\0,x1u\xC3\xA9\xFF";

fn random_reps(rng: &mut Rng, parser: ConfigParser) -> Vec<Replacement> {
    let common = [
        "a", "a.b", "x.*.y", "a[0].b", "a[2]", "[s.t].k", "a..b", "*", "a.*", "ab", "u",
    ];
    let own: &[&str] = match parser {
        ConfigParser::Xml => &[
            "*",
            "*.Network.Port",
            "ServerConfig.Listeners.*",
            "ServerConfig.New.Deep",
            "*.*",
        ],
        ConfigParser::Json | ConfigParser::Yaml => &[
            "server.port",
            "listeners[1].port",
            "backends.*.host",
            "servers.*.address",
            "listeners[0].host",
        ],
        _ => &["network.server_port", "server-port", "query.port", "motd"],
    };
    let values = [
        s("v"),
        Value::Int(-3),
        Value::Bool(true),
        s("[x='1']"),
        s("é\\"),
        s(""),
    ];
    (0..1 + rng.below(3))
        .map(|_| Replacement {
            key: match rng.below(10) {
                0..=5 => own[rng.below(own.len())].into(),
                6..=8 => common[rng.below(common.len())].into(),
                // a key of random bytes (lossy: keys are strings)
                _ => {
                    let raw: Vec<u8> = (0..rng.below(10))
                        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                        .collect();
                    String::from_utf8_lossy(&raw).into_owned()
                }
            },
            if_value: match rng.below(4) {
                0 => Some("v".into()),
                1 => Some("regex:^(.*)$".into()),
                _ => None,
            },
            value: values[rng.below(values.len())].clone(),
        })
        .collect()
}

#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let fixtures = [PROPERTIES, OPENTTD, BUNGEE, NESTED, XML];
    let mut edits = [0usize; ALL.len()];
    for round in 0..4000 {
        let input: Vec<u8> = if round % 3 == 0 {
            (0..rng.below(120))
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect()
        } else {
            // a fixture with a few bytes changed, inserted or removed
            let mut f = fixtures[rng.below(fixtures.len())].as_bytes().to_vec();
            for _ in 0..1 + rng.below(2) {
                let at = rng.below(f.len());
                let b = ALPHABET[rng.below(ALPHABET.len())];
                match rng.below(3) {
                    0 => f[at] = b,
                    1 => f.insert(at, b),
                    _ => {
                        f.remove(at);
                    }
                }
            }
            f
        };
        for (n, parser) in ALL.into_iter().enumerate() {
            let reps = random_reps(&mut rng, parser);
            let Ok(Some(out)) = edit(parser, Some(&input), &reps) else {
                continue;
            };
            edits[n] += 1;
            // what the editor writes, it can read again (the same replacements may fail on
            // it: `a.*` then `a[0].b` turns the element into a string)
            let again = edit(parser, Some(&out), &reps);
            assert!(
                !matches!(again, Err(EditError::Syntax { .. } | EditError::TooLarge { .. })),
                "{parser:?} cannot read its own output\ninput: {:?}\nreps: {reps:?}\noutput: {:?}\nerror: {again:?}",
                String::from_utf8_lossy(&input),
                String::from_utf8_lossy(&out)
            );
        }
    }
    // every parser got past its parsing many times
    assert!(edits.iter().all(|&n| n > 50), "{edits:?}");
}
