use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::convert::split_rules;
use super::*;

/// A small v1 egg with `extra` merged over it (serde_json without preserve_order: use
/// [`raw`] where key order matters).
fn egg(extra: Value) -> Vec<u8> {
    let mut base = json!({
        "meta": {"version": "PTDL_v1"},
        "name": "Test Game",
        "author": "a@example.com",
        "images": ["ghcr.io/pterodactyl/yolks:debian"],
        "startup": "./game --port {{SERVER_PORT}}",
        "config": {"files": "{}", "startup": "{\"done\": \"ready\"}", "logs": "{}", "stop": "stop"},
        "scripts": {"installation": {"script": "#!/bin/ash\r\necho hi\r\n", "container": "ghcr.io/pterodactyl/installers:alpine", "entrypoint": "ash"}},
        "variables": []
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::to_vec(&base).unwrap()
}

fn conv(extra: Value) -> Conversion {
    convert(&egg(extra), &Options::default()).unwrap()
}

fn reports(c: &Conversion) -> Vec<String> {
    c.reports.iter().map(ToString::to_string).collect()
}

fn has(c: &Conversion, field: &str, text: &str) -> bool {
    c.reports
        .iter()
        .any(|r| r.field == field && r.message.contains(text))
}

fn stop_of(stop: &str, startup: &str) -> (Value, Vec<String>) {
    let c = conv(json!({"startup": startup, "config": {"stop": stop}}));
    let stop_reports = c
        .reports
        .iter()
        .filter(|r| r.field == "config.stop")
        .map(|r| r.message.clone())
        .collect();
    (c.template["spec"]["stop"].clone(), stop_reports)
}

#[test]
fn stops_follow_wings_except_that_ctrl_c_is_sigint() {
    for (stop, startup, want, reported) in [
        (
            "stop",
            "./x",
            json!({"command": "stop", "timeoutSeconds": 30}),
            false,
        ),
        (
            "quit\r\n",
            "./x",
            json!({"command": "quit", "timeoutSeconds": 30}),
            false,
        ),
        (
            "^C",
            "./x",
            json!({"signal": "SIGINT", "timeoutSeconds": 30}),
            false,
        ),
        (
            "^c",
            "./x",
            json!({"signal": "SIGINT", "timeoutSeconds": 30}),
            false,
        ),
        // ARK: the startup saves on SIGTERM only
        (
            "^C",
            "rmv() { echo; }; trap rmv 15; ./x",
            json!({"signal": "SIGTERM", "timeoutSeconds": 30}),
            true,
        ),
        (
            "^C",
            "trap 'kill $PID; wait' TERM; ./x",
            json!({"signal": "SIGTERM", "timeoutSeconds": 30}),
            true,
        ),
        (
            "^C",
            "trap 'stop' INT TERM; ./x",
            json!({"signal": "SIGINT", "timeoutSeconds": 30}),
            false,
        ),
        (
            "^C",
            "trap -p; ./entrap 15",
            json!({"signal": "SIGINT", "timeoutSeconds": 30}),
            false,
        ),
        (
            "^SIGTERM",
            "./x",
            json!({"signal": "SIGTERM", "timeoutSeconds": 30}),
            false,
        ),
        (
            "^sigint",
            "./x",
            json!({"signal": "SIGINT", "timeoutSeconds": 30}),
            false,
        ),
        (
            "^SIGABRT",
            "./x",
            json!({"signal": "SIGABRT", "timeoutSeconds": 30}),
            false,
        ),
        (
            "^^C",
            "./x",
            json!({"signal": "SIGKILL", "timeoutSeconds": 30}),
            true,
        ),
        (
            "^X",
            "./x",
            json!({"signal": "SIGKILL", "timeoutSeconds": 30}),
            true,
        ),
        (
            "^SIGHUP",
            "./x",
            json!({"signal": "SIGKILL", "timeoutSeconds": 30}),
            true,
        ),
    ] {
        let (got, why) = stop_of(stop, startup);
        assert_eq!(got, want, "{stop:?} with {startup:?}");
        assert_eq!(!why.is_empty(), reported, "{stop:?}: {why:?}");
    }
    let (got, why) = stop_of("", "./x");
    assert_eq!(got, Value::Null);
    assert!(why[0].contains("no stop"), "{why:?}");
    let (got, why) = stop_of("say a\nstop", "./x");
    assert_eq!(got, Value::Null);
    assert!(why[0].contains("one line"), "{why:?}");
}

#[test]
fn names_are_slugs_of_the_egg_name() {
    for (name, want) in [
        ("Ark: Survival Evolved", "ark-survival-evolved"),
        (
            "Counter-Strike: Global Offensive",
            "counter-strike-global-offensive",
        ),
        ("Sponge (SpongeVanilla)", "sponge-spongevanilla"),
        ("  --Teamspeak3   Server--  ", "teamspeak3-server"),
        ("Größe Spiel", "gr-e-spiel"),
        ("", "egg"),
        ("!!!", "egg"),
        ("ÄÖÜ", "egg"),
    ] {
        assert_eq!(slug(name), want, "{name:?}");
    }
    let long = slug(&format!("{}-{}", "a".repeat(62), "bbbb"));
    assert_eq!(long, "a".repeat(62), "cut at 63 and no '-' left at the end");
    let c = conv(json!({"name": "Paper"}));
    assert_eq!(c.name(), "paper");
    assert_eq!(c.template["metadata"]["name"], "paper");
}

#[test]
fn rules_split_like_the_template_parser_and_unknown_rules_are_left_out_and_reported() {
    assert_eq!(
        split_rules("required|regex:/^(a|b)$/|max:3"),
        ["required", "regex:/^(a|b)$/", "max:3"]
    );
    assert_eq!(
        split_rules("nullable|regex:/^[0-9\\.\\-]+$/"),
        ["nullable", "regex:/^[0-9\\.\\-]+$/"]
    );
    assert_eq!(split_rules("required"), ["required"]);
    assert_eq!(split_rules(""), [""]);
    let c = conv(json!({"variables": [
        {"name": "Players", "env_variable": "MAX_PLAYERS", "default_value": "20",
         "user_viewable": true, "user_editable": true,
         "rules": "required|integr|max:64|regex:/^(1|2)[0-9]$/|between:9,1"},
        {"name": "Mode", "env_variable": "MODE", "default_value": "pvp",
         "user_viewable": 1, "user_editable": "0",
         "rules": ["required", "string", "in:pvp,pve", "unique:servers"]},
        {"name": "Token", "env_variable": "TOKEN", "default_value": "",
         "user_viewable": true, "user_editable": true, "rules": "required|alpha_num|size:32"},
        {"name": "Empty", "env_variable": "EMPTY", "default_value": null, "rules": null}
    ]}));
    let vars = &c.template["spec"]["variables"];
    assert_eq!(
        vars[0]["rules"],
        "required|max:64|regex:/^(1|2)[0-9]$/",
        "{:#?}",
        reports(&c)
    );
    assert!(has(
        &c,
        "variables[MAX_PLAYERS].rules",
        "\"integr\" left out: unknown rule"
    ));
    assert!(has(
        &c,
        "variables[MAX_PLAYERS].rules",
        "\"between:9,1\" left out: 9 is greater than 1"
    ));
    assert_eq!(vars[1]["rules"], "required|string|in:pvp,pve");
    assert!(has(
        &c,
        "variables[MODE].rules",
        "\"unique:servers\" left out"
    ));
    assert_eq!(vars[1]["userViewable"], true);
    assert_eq!(vars[1]["userEditable"], false);
    assert!(has(
        &c,
        "variables[TOKEN].default_value",
        "the default \"\" fails its own rules (is required): a GameServer must set TOKEN"
    ));
    assert_eq!(vars[3]["name"], "EMPTY");
    assert_eq!(vars[3]["userViewable"], false, "absent flags are false");
    assert!(vars[3].get("rules").is_none() && vars[3].get("default").is_none());
    assert!(!c
        .reports
        .iter()
        .any(|r| r.field.starts_with("variables[MODE].default")));
}

#[test]
fn variable_defaults_are_one_line_and_bad_names_are_left_out() {
    let c = conv(json!({"variables": [
        {"name": "MOTD", "env_variable": "MOTD", "default_value": "a\r\nb", "rules": "string"},
        {"name": "Bad", "env_variable": "1BAD", "default_value": "x"},
        {"name": "Again", "env_variable": "MOTD", "default_value": "y"},
        {"name": "Port", "env_variable": "RCON", "default_value": 27020, "rules": "required|integer"}
    ]}));
    let vars = c.template["spec"]["variables"].as_array().unwrap();
    assert_eq!(vars.len(), 2);
    assert_eq!(vars[0]["default"], "ab");
    assert!(has(
        &c,
        "variables[MOTD].default_value",
        "CR, LF and NUL removed"
    ));
    assert!(has(&c, "variables[1BAD]", "left out"));
    assert!(has(
        &c,
        "variables[MOTD]",
        "second variable of the same name"
    ));
    assert_eq!(vars[1]["default"], "27020");
}

#[test]
fn find_objects_become_one_conditional_replacement_per_pair_and_values_keep_their_type() {
    let files = r#"{
        "config.yml": {"parser": "yml", "find": {
            "listeners[0].query_port": "{{server.build.default.port}}",
            "servers.*.address": {"regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$": "{{config.docker.interface}}$2", "old": "new"},
            "online": true, "players": 20, "ratio": 1.5, "huge": 18446744073709551615,
            "nothing": null, "list": [1], "": "x", "swap": "{{server.build.swap}}"
        }},
        "server.properties": {"parser": "properties", "find": {"a": {"regex:x": "y"}}},
        "settings.ini": {"parser": "ini", "find": {"s.k": {"v": "w"}}},
        "../escape.json": {"parser": "json", "find": {"a": "b"}},
        "/etc/passwd": {"parser": "file", "find": {"root": "x"}},
        "conf.toml": {"parser": "toml", "find": {"a": "b"}},
        "empty.json": {"parser": "json", "find": {}}
    }"#;
    let c = conv(json!({"config": {"files": files, "startup": "{}", "stop": "stop"}}));
    let cf = &c.template["spec"]["configFiles"];
    assert_eq!(
        cf[0],
        json!({"path": "config.yml", "parser": "yaml", "replace": [
            {"match": "listeners[0].query_port", "value": "{{server.build.default.port}}"},
            {"match": "servers.*.address", "ifValue": "regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$", "value": "{{config.docker.interface}}$2"},
            {"match": "servers.*.address", "ifValue": "old", "value": "new"},
            {"match": "online", "value": true},
            {"match": "players", "value": 20},
            {"match": "ratio", "value": "1.5"},
            {"match": "huge", "value": "18446744073709551615"},
            {"match": "swap", "value": "{{server.build.swap}}"}
        ]}),
        "{:#?}",
        reports(&c)
    );
    assert_eq!(cf[1]["path"], "server.properties");
    assert_eq!(cf[2]["path"], "settings.ini");
    assert_eq!(cf.as_array().unwrap().len(), 3);
    let f = "config.files[config.yml].find";
    assert!(has(&c, &format!("{f}[nothing]"), "null is not a value"));
    assert!(has(&c, &format!("{f}[list]"), "a list is not a value"));
    assert!(has(&c, &format!("{f}[]"), "empty key"));
    assert!(has(
        &c,
        &format!("{f}[swap]"),
        "{{server.build.swap}} has no value in Catalyst"
    ));
    assert!(has(
        &c,
        "config.files[server.properties].find[a]",
        "a regular expression in Catalyst"
    ));
    assert!(has(
        &c,
        "config.files[settings.ini].find[s.k]",
        "Wings ignores it for the ini parser"
    ));
    assert!(has(
        &c,
        "config.files[../escape.json]",
        "stay inside the data directory"
    ));
    assert!(has(
        &c,
        "config.files[/etc/passwd]",
        "stay inside the data directory"
    ));
    assert!(has(
        &c,
        "config.files[conf.toml]",
        "unknown parser \"toml\""
    ));
    assert!(has(&c, "config.files[empty.json]", "nothing to edit"));
    assert!(has(&c, "config.startup.done", "no ready lines"));
}

#[test]
fn v1_images_keep_their_list_order_and_v2_images_their_label_order() {
    let v1 = conv(json!({"images": ["quay.io/a/b:2", "quay.io/a/b:1"]}));
    assert_eq!(
        v1.template["spec"]["images"],
        json!([{"name": "quay.io/a/b:2", "image": "quay.io/a/b:2"},
               {"name": "quay.io/a/b:1", "image": "quay.io/a/b:1"}])
    );
    let old = conv(json!({"images": null, "image": "quay.io/a/b:old"}));
    assert_eq!(
        old.template["spec"]["images"][0]["image"],
        "quay.io/a/b:old"
    );
    // key order matters here: raw JSON
    let v2 = br#"{"meta": {"version": "PTDL_v2"}, "name": "J",
        "docker_images": {"Java 21": "ghcr.io/pterodactyl/yolks:java_21", "Java 8": "ghcr.io/pterodactyl/yolks:java_8", "A bad one": "not an image!"},
        "startup": "java", "config": {"stop": "stop"}}"#;
    let c = convert(v2, &Options::default()).unwrap();
    assert_eq!(
        c.template["spec"]["images"],
        json!([{"name": "Java 21", "image": "ghcr.io/pterodactyl/yolks:java_21"},
               {"name": "Java 8", "image": "ghcr.io/pterodactyl/yolks:java_8"}])
    );
    assert!(has(
        &c,
        "docker_images[A bad one]",
        "not an image reference"
    ));
    assert_eq!(c.template["spec"]["source"]["format"], "PTDL_v2");
    // no image at all: nothing valid remains
    let none = br#"{"meta": {"version": "PTDL_v2"}, "name": "J", "docker_images": {}}"#;
    assert!(matches!(
        convert(none, &Options::default()),
        Err(EggError::Invalid(_))
    ));
}

#[test]
fn image_maps_rewrite_at_conversion_or_go_into_the_template() {
    let map: BTreeMap<String, String> = [
        (
            "ghcr.io/pterodactyl/".to_owned(),
            "mirror.local/ptero/".to_owned(),
        ),
        (
            "ghcr.io/pterodactyl/yolks:debian".to_owned(),
            "oci-archive:/srv/debian.tar".to_owned(),
        ),
    ]
    .into();
    let raw = egg(json!({"images": ["ghcr.io/pterodactyl/yolks:debian", "quay.io/other/x:1"]}));
    let opts = Options {
        image_map: map.clone(),
        keep_image_map: false,
    };
    let c = convert(&raw, &opts).unwrap();
    let spec = &c.template["spec"];
    assert_eq!(spec["images"][0]["image"], "oci-archive:/srv/debian.tar");
    assert_eq!(
        spec["images"][0]["name"],
        "ghcr.io/pterodactyl/yolks:debian"
    );
    assert_eq!(spec["images"][1]["image"], "quay.io/other/x:1");
    assert!(has(&c, "images[1]", "matches no --image-map entry"));
    assert_eq!(
        spec["install"]["image"],
        "mirror.local/ptero/installers:alpine"
    );
    assert!(spec.get("imageMap").is_none());
    // kept in the Template: whole references and prefixes (a prefix target ending in '/')
    let keep = |image_map: BTreeMap<String, String>| {
        convert(
            &raw,
            &Options {
                image_map,
                keep_image_map: true,
            },
        )
    };
    let prefixes = keep(map).expect("prefix entries are kept");
    assert_eq!(
        prefixes.template["spec"]["imageMap"]["ghcr.io/pterodactyl/"],
        "mirror.local/ptero/"
    );
    let exact: BTreeMap<String, String> = [(
        "ghcr.io/pterodactyl/yolks:debian".to_owned(),
        "oci-archive:/srv/debian.tar".to_owned(),
    )]
    .into();
    let kept = keep(exact).unwrap();
    let spec = &kept.template["spec"];
    assert_eq!(
        spec["images"][0]["image"],
        "ghcr.io/pterodactyl/yolks:debian"
    );
    assert_eq!(
        spec["imageMap"]["ghcr.io/pterodactyl/yolks:debian"],
        "oci-archive:/srv/debian.tar"
    );
    assert!(!kept
        .reports
        .iter()
        .any(|r| r.message.contains("--image-map")));
}

#[test]
fn scripts_and_startup_lose_their_carriage_returns() {
    let c = conv(json!({"startup": "./a\r\n./b", "description": "x\r\ny"}));
    let spec = &c.template["spec"];
    assert_eq!(spec["install"]["script"], "#!/bin/ash\necho hi\n");
    assert_eq!(spec["install"]["entrypoint"], "ash");
    assert_eq!(
        spec["install"]["image"],
        "ghcr.io/pterodactyl/installers:alpine"
    );
    assert_eq!(spec["startup"], "./a\n./b");
    assert_eq!(spec["description"], "x\ny");
    assert!(!c.to_yaml().contains('\r'));
}

#[test]
fn ready_lines_take_a_text_or_a_list_and_strip_ansi() {
    let c = conv(json!({"config": {"stop": "stop",
        "startup": "{\"done\": [\"Done (\", \"regex:^Ready$\", \"\", \"regex:(\"], \"strip_ansi\": true, \"userInteraction\": []}"}}));
    assert_eq!(
        c.template["spec"]["ready"],
        json!({"lines": ["Done (", "regex:^Ready$"], "stripAnsi": true})
    );
    assert!(has(&c, "config.startup.done", "\"\" left out"));
    assert!(has(&c, "config.startup.done", "\"regex:(\" left out"));
    assert!(has(
        &c,
        "config.startup.userInteraction",
        "only done and strip_ansi"
    ));
    // an object instead of JSON text is taken too
    let c = conv(json!({"config": {"stop": "stop", "startup": {"done": "up"}}}));
    assert_eq!(c.template["spec"]["ready"], json!({"lines": ["up"]}));
}

#[test]
fn bashisms_logs_extends_ports_features_and_denylist_are_reported() {
    let c = conv(json!({
        "startup": "java $( [[ -f a ]] && echo -e x ) $( [ \"$X\" == \"1\" ] || printf y ) {{server.build.default.port}} {{env.X}} {{X}}",
        "features": ["eula"],
        "file_denylist": ["*.jar", ""],
        "config": {"stop": "stop", "logs": "{\"custom\": true, \"location\": \"logs/x.log\"}", "extends": "12", "startup": "{\"done\": \"x\"}"}
    }));
    let startup: Vec<&str> = c
        .reports
        .iter()
        .filter(|r| r.field == "startup")
        .map(|r| r.message.as_str())
        .collect();
    assert_eq!(startup.len(), 4, "{startup:#?}");
    assert!(startup[0].starts_with("`[[ … ]]` is bash"));
    assert!(startup[1].starts_with("`==` inside `[ … ]`"));
    assert!(startup[2].starts_with("`echo -e`"));
    assert!(startup[3].starts_with("{{server.build.default.port}} stays as written"));
    assert!(has(&c, "config.logs", "\"location\":\"logs/x.log\""));
    assert!(has(&c, "config.extends", "no egg inheritance"));
    assert!(has(&c, "ports", "declares no ports"));
    assert!(has(&c, "features", "eula kept in source.features"));
    assert!(has(&c, "file_denylist[1]", "left out"));
    assert!(has(&c, "file_denylist", "kept as fileDenylist"));
    assert_eq!(c.template["spec"]["fileDenylist"], json!(["*.jar"]));
    let quiet = conv(json!({"startup": "[ \"$X\" = 1 ] && [ -f a ] && echo x"}));
    assert!(!quiet.reports.iter().any(|r| r.field == "startup"));
}

#[test]
fn eggs_are_recognised_by_meta_version_and_other_input_is_refused() {
    assert!(is_egg(&json!({"meta": {"version": "PTDL_v2"}})));
    assert!(!is_egg(
        &json!({"meta": {"version": "PTDL_v2"}, "kind": "Template"})
    ));
    assert!(!is_egg(&json!({"meta": {"version": "PTDL_v3"}})));
    assert!(!is_egg(&json!({"apiVersion": "catalyst.dev/v1alpha1"})));
    let err = convert(br#"{"meta": {"version": "PTDL_v0"}}"#, &Options::default()).unwrap_err();
    assert!(
        matches!(err, EggError::Version(ref v) if v == "PTDL_v0"),
        "{err}"
    );
    assert!(matches!(
        convert(b"not json", &Options::default()),
        Err(EggError::Json(_))
    ));
    let broken = conv(
        json!({"config": {"files": "{not json", "startup": "{\"done\": \"x\"}", "stop": "stop"}}),
    );
    assert!(has(&broken, "config.files", "not JSON"));
}

#[test]
fn converting_twice_gives_the_same_bytes_and_the_yaml_reads_back_as_the_template() {
    let raw = egg(
        json!({"variables": [{"name": "A", "env_variable": "A", "default_value": "1", "rules": "required|integer"}]}),
    );
    let a = convert(&raw, &Options::default()).unwrap();
    let b = convert(&raw, &Options::default()).unwrap();
    assert_eq!(a.to_yaml(), b.to_yaml());
    let back: Value = crate::parse_documents(&a.to_yaml()).unwrap().remove(0);
    assert_eq!(back, a.template);
    assert!(a
        .to_yaml()
        .starts_with("apiVersion: catalyst.dev/v1alpha1\nkind: Template\n"));
}
