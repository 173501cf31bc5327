//! `catalystctl convert egg` on the eleven real Pterodactyl eggs (copied from `shared/eggs` into
//! `cli/tests/eggs/pterodactyl`; `CATALYST_EGGS_DIR` points elsewhere): each converts through the binary, the YAML
//! passes admission, twice gives the same bytes, the binary says what the library says, the
//! expected reports appear, the egg defaults pass their converted rules (but the four that
//! Pterodactyl leaves for the admin), and values the rules forbid are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use catalyst_cli::egg::{self, Options};
use catalyst_schemas::template::rules::RuleSet;
use serde_json::Value;

fn eggs_dir() -> PathBuf {
    let dir = std::env::var_os("CATALYST_EGGS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eggs/pterodactyl"));
    assert!(
        dir.join("egg-paper.json").is_file(),
        "the test eggs are not at {}",
        dir.display()
    );
    dir
}

/// The copies in the repository are the shared test data, when that is beside the clone.
#[test]
fn the_copied_eggs_are_the_shared_ones() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/eggs");
    if !shared.is_dir() {
        return;
    }
    for name in EGGS {
        let ours = std::fs::read(eggs_dir().join(name)).expect("our copy");
        let theirs = std::fs::read(shared.join(name)).expect("the shared egg");
        assert!(ours == theirs, "{name} differs from shared/eggs");
    }
}

const EGGS: &[&str] = &[
    "egg-ark--survival-evolved.json",
    "egg-bungeecord.json",
    "egg-counter--strike--global-offensive.json",
    "egg-custom-source-engine-game.json",
    "egg-forge-minecraft.json",
    "egg-garrys-mod.json",
    "egg-insurgency.json",
    "egg-paper.json",
    "egg-sponge--sponge-vanilla.json",
    "egg-teamspeak3-server.json",
    "egg-vanilla-minecraft.json",
];

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catalystctl"))
        .args(args)
        .env("CATALYST_CONFIG", "/nonexistent/catalyst-config")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn convert_with_binary(file: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["convert", "egg", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = ctl(&args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{}: {stderr}", file.display());
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn yaml_to_json(yaml: &str) -> Value {
    let mut docs = catalyst_schemas::parse_documents(yaml).unwrap();
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

/// Report fields (and a part of their message) each egg must have, and nothing else.
fn expected_reports(egg: &str) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("ports", "declares no ports")];
    let minecraft = [(
        "features",
        "eula, java_version, pid_limit kept in source.features",
    )];
    out.extend(match egg {
        "egg-ark--survival-evolved.json" => vec![
            ("config.stop", "^C stops with SIGTERM here, not SIGINT"),
            ("startup", "`==` inside `[ … ]` is bash"),
            ("startup", "`echo -e` is bash"),
            ("features", "steam_disk_space kept"),
        ],
        "egg-bungeecord.json" => minecraft.to_vec(),
        "egg-counter--strike--global-offensive.json" => vec![
            (
                "variables[STEAM_ACC].default_value",
                "the default \"\" fails its own rules (is required): a GameServer must set STEAM_ACC",
            ),
            ("features", "gsl_token, steam_disk_space kept"),
        ],
        "egg-custom-source-engine-game.json" => vec![
            ("variables[SRCDS_APPID].default_value", "fails its own rules"),
            ("variables[SRCDS_GAME].default_value", "fails its own rules"),
            ("variables[SRCDS_MAP].default_value", "fails its own rules"),
            ("features", "steam_disk_space kept"),
        ],
        "egg-forge-minecraft.json" => {
            let mut v = minecraft.to_vec();
            v.push(("startup", "`[[ … ]]` is bash"));
            v
        }
        "egg-garrys-mod.json" => vec![
            ("startup", "`==` inside `[ … ]` is bash"),
            ("features", "gsl_token, steam_disk_space kept"),
        ],
        "egg-insurgency.json" => vec![("features", "steam_disk_space kept")],
        "egg-teamspeak3-server.json" => vec![(
            "config.logs",
            "{\"custom\":true,\"location\":\"logs/ts3.log\"} left out",
        )],
        _ => minecraft.to_vec(),
    });
    out
}

#[test]
fn every_egg_converts_through_the_binary_passes_admission_and_is_stable() {
    let dir = eggs_dir();
    for name in EGGS {
        let file = dir.join(name);
        let (yaml, stderr) = convert_with_binary(&file, &[]);
        let (again, _) = convert_with_binary(&file, &[]);
        assert_eq!(yaml, again, "{name}: converting twice differs");
        let template = yaml_to_json(&yaml);
        if let Err(e) = catalyst_schemas::admit(template.clone()) {
            panic!("{name}: the Template is refused: {e:?}\n{yaml}");
        }
        // the library gives the same object, YAML and reports
        let lib = egg::convert(&std::fs::read(&file).unwrap(), &Options::default()).unwrap();
        assert_eq!(lib.template, template, "{name}");
        assert_eq!(lib.to_yaml(), yaml, "{name}");
        let warnings: Vec<String> = lib
            .reports
            .iter()
            .map(|r| format!("warning: {r}"))
            .collect();
        assert_eq!(stderr.lines().collect::<Vec<_>>(), warnings, "{name}");
        // the expected reports, and no others
        let expected = expected_reports(name);
        for (field, text) in &expected {
            assert!(
                lib.reports
                    .iter()
                    .any(|r| r.field == *field && r.message.contains(text)),
                "{name}: no report {field}: …{text}…; got {stderr}"
            );
        }
        for r in &lib.reports {
            assert!(
                expected.iter().any(|(f, _)| *f == r.field),
                "{name}: unexpected report {r}"
            );
        }
        // shape: the egg's name and what it says
        let raw: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let spec = &template["spec"];
        assert_eq!(spec["source"]["name"], raw["name"], "{name}");
        assert_eq!(spec["source"]["format"], raw["meta"]["version"], "{name}");
        assert!(!yaml.contains('\r'), "{name}: a CR is left");
        assert_eq!(
            spec["variables"].as_array().unwrap().len(),
            raw["variables"].as_array().unwrap().len(),
            "{name}"
        );
        assert!(spec["install"]["script"]
            .as_str()
            .unwrap()
            .starts_with("#!/bin/"));
        assert!(!spec["ready"]["lines"].as_array().unwrap().is_empty());
    }
}

#[test]
fn names_images_stops_and_config_files_are_what_the_eggs_say() {
    let dir = eggs_dir();
    let get = |name: &str| {
        egg::convert(&std::fs::read(dir.join(name)).unwrap(), &Options::default())
            .unwrap()
            .template
    };
    let paper = get("egg-paper.json");
    assert_eq!(paper["metadata"]["name"], "paper");
    let labels: Vec<&str> = paper["spec"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["Java 21", "Java 17", "Java 16", "Java 11", "Java 8"]
    );
    assert_eq!(paper["spec"]["stop"]["command"], "stop");
    assert_eq!(
        paper["spec"]["ready"]["lines"],
        serde_json::json!([")! For help, type "])
    );
    assert_eq!(
        paper["spec"]["configFiles"][0],
        serde_json::json!({"path": "server.properties", "parser": "properties", "replace": [
            {"match": "server-ip", "value": "0.0.0.0"},
            {"match": "server-port", "value": "{{server.build.default.port}}"},
            {"match": "query.port", "value": "{{server.build.default.port}}"}]})
    );
    let ark = get("egg-ark--survival-evolved.json");
    assert_eq!(ark["metadata"]["name"], "ark-survival-evolved");
    assert_eq!(ark["spec"]["stop"]["signal"], "SIGTERM");
    assert_eq!(
        ark["spec"]["images"][0]["image"],
        "quay.io/parkervcp/pterodactyl-images:debian_source"
    );
    let ts = get("egg-teamspeak3-server.json");
    assert_eq!(ts["spec"]["stop"]["signal"], "SIGINT");
    let bungee = get("egg-bungeecord.json");
    assert_eq!(
        bungee["spec"]["configFiles"][0]["replace"][2],
        serde_json::json!({"match": "servers.*.address",
            "ifValue": "regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$",
            "value": "{{config.docker.interface}}$2"})
    );
    assert_eq!(bungee["spec"]["configFiles"][0]["parser"], "yaml");
    let csgo = get("egg-counter--strike--global-offensive.json");
    assert_eq!(csgo["metadata"]["name"], "counter-strike-global-offensive");
    let forge = get("egg-forge-minecraft.json");
    assert_eq!(forge["spec"]["install"]["image"], "openjdk:8-jdk-slim");
    assert_eq!(forge["spec"]["install"]["entrypoint"], "bash");
}

/// The converted rules of variable `var` of egg `name`.
fn rules_of(template: &Value, var: &str) -> RuleSet {
    let v = template["spec"]["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == var)
        .unwrap_or_else(|| panic!("no variable {var}"));
    RuleSet::parse(v["rules"].as_str().unwrap_or("")).unwrap()
}

#[test]
fn egg_defaults_pass_their_converted_rules_but_the_four_left_to_the_admin() {
    let dir = eggs_dir();
    let mut failing = Vec::new();
    let mut checked = 0;
    for name in EGGS {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let template = egg::convert(&bytes, &Options::default()).unwrap().template;
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        for v in raw["variables"].as_array().unwrap() {
            let var = v["env_variable"].as_str().unwrap();
            let default = v["default_value"].as_str().unwrap();
            checked += 1;
            if let Err(e) = rules_of(&template, var).check(default) {
                failing.push(format!("{name} {var}: {e}"));
            }
        }
    }
    assert_eq!(checked, 50);
    assert_eq!(
        failing,
        [
            "egg-counter--strike--global-offensive.json STEAM_ACC: is required",
            "egg-custom-source-engine-game.json SRCDS_APPID: is required",
            "egg-custom-source-engine-game.json SRCDS_GAME: is required",
            "egg-custom-source-engine-game.json SRCDS_MAP: is required",
        ]
    );
}

#[test]
fn the_converted_rules_refuse_what_the_egg_rules_forbid() {
    let dir = eggs_dir();
    let long = |n: usize| "x".repeat(n);
    // (egg, variable, value, why): one row or more per rule the eggs use
    let refused: Vec<(&str, &str, String, &str)> = vec![
        (
            "egg-garrys-mod.json",
            "MAX_PLAYERS",
            "500".into(),
            "must be at most 128",
        ),
        (
            "egg-garrys-mod.json",
            "MAX_PLAYERS",
            "12.5".into(),
            "must be an integer",
        ),
        (
            "egg-garrys-mod.json",
            "TICKRATE",
            "101".into(),
            "must be at most 100",
        ),
        (
            "egg-garrys-mod.json",
            "WORKSHOP_ID",
            "12a".into(),
            "must be an integer",
        ),
        (
            "egg-garrys-mod.json",
            "SRCDS_MAP",
            "gm construct".into(),
            "letters, numbers, dashes",
        ),
        (
            "egg-garrys-mod.json",
            "LUA_REFRESH",
            "yes".into(),
            "must be 0 or 1",
        ),
        (
            "egg-garrys-mod.json",
            "GAMEMODE",
            "  ".into(),
            "is required",
        ),
        (
            "egg-garrys-mod.json",
            "STEAM_ACC",
            "short".into(),
            "exactly 32 characters",
        ),
        (
            "egg-forge-minecraft.json",
            "BUILD_TYPE",
            "beta".into(),
            "one of: recommended, latest",
        ),
        (
            "egg-forge-minecraft.json",
            "SERVER_JARFILE",
            "../x.jar".into(),
            "must match",
        ),
        (
            "egg-forge-minecraft.json",
            "SERVER_JARFILE",
            "server.zip".into(),
            "must match",
        ),
        (
            "egg-forge-minecraft.json",
            "FORGE_VERSION",
            "1.2a".into(),
            "must match",
        ),
        (
            "egg-forge-minecraft.json",
            "MC_VERSION",
            "1.20.1-pre1".into(),
            "at most 9 characters",
        ),
        (
            "egg-ark--survival-evolved.json",
            "RCON_PORT",
            "27o20".into(),
            "must be a number",
        ),
        (
            "egg-ark--survival-evolved.json",
            "ARK_PASSWORD",
            "a b".into(),
            "letters, numbers, dashes",
        ),
        (
            "egg-ark--survival-evolved.json",
            "ARK_ADMIN_PASSWORD",
            long(101),
            "between 1 and 100 characters",
        ),
        (
            "egg-ark--survival-evolved.json",
            "SRCDS_APPID",
            "0x10".into(),
            "must be a number",
        ),
        (
            "egg-ark--survival-evolved.json",
            "SESSION_NAME",
            long(129),
            "at most 128 characters",
        ),
        (
            "egg-counter--strike--global-offensive.json",
            "STEAM_ACC",
            format!("{}!", long(31)),
            "letters and numbers",
        ),
        (
            "egg-counter--strike--global-offensive.json",
            "SRCDS_APPID",
            long(21),
            "at most 20 characters",
        ),
        (
            "egg-custom-source-engine-game.json",
            "SRCDS_APPID",
            "1234567".into(),
            "between 1 and 6 digits",
        ),
        (
            "egg-custom-source-engine-game.json",
            "SRCDS_APPID",
            "1e3".into(),
            "between 1 and 6 digits",
        ),
        (
            "egg-custom-source-engine-game.json",
            "SRCDS_GAME",
            "cs go".into(),
            "letters, numbers, dashes",
        ),
        (
            "egg-teamspeak3-server.json",
            "QUERY_PORT",
            "80".into(),
            "between 1025 and 65535",
        ),
        (
            "egg-teamspeak3-server.json",
            "QUERY_SSH",
            "65536".into(),
            "between 1025 and 65535",
        ),
        (
            "egg-teamspeak3-server.json",
            "QUERY_PROTOCOLS_VAR",
            "raw,http,ssh,x".into(),
            "at most 12 characters",
        ),
        (
            "egg-teamspeak3-server.json",
            "TS_VERSION",
            "3.13.7b".into(),
            "at most 6 characters",
        ),
        (
            "egg-teamspeak3-server.json",
            "SERVERADMIN_PASSWORD",
            long(33),
            "at most 32 characters",
        ),
        (
            "egg-bungeecord.json",
            "BUNGEE_VERSION",
            "1.2.3".into(),
            "letters and numbers",
        ),
        (
            "egg-bungeecord.json",
            "BUNGEE_VERSION",
            "latest1".into(),
            "between 1 and 6 characters",
        ),
        (
            "egg-insurgency.json",
            "SRCDS_APPID",
            "237411".into(),
            "must match",
        ),
        ("egg-insurgency.json", "SRCDS_MAP", long(21), "must match"),
        (
            "egg-vanilla-minecraft.json",
            "VANILLA_VERSION",
            "1".into(),
            "between 3 and 15 characters",
        ),
        (
            "egg-sponge--sponge-vanilla.json",
            "SPONGE_VERSION",
            "1.12 2".into(),
            "must match",
        ),
        (
            "egg-paper.json",
            "BUILD_NUMBER",
            long(21),
            "at most 20 characters",
        ),
        (
            "egg-paper.json",
            "MINECRAFT_VERSION",
            long(21),
            "at most 20 characters",
        ),
    ];
    // and values at the edges that pass
    let accepted: Vec<(&str, &str, String)> = vec![
        ("egg-garrys-mod.json", "MAX_PLAYERS", "128".into()),
        ("egg-garrys-mod.json", "STEAM_ACC", long(32)),
        ("egg-garrys-mod.json", "WORKSHOP_ID", "".into()),
        ("egg-forge-minecraft.json", "BUILD_TYPE", "latest".into()),
        ("egg-forge-minecraft.json", "FORGE_VERSION", "47.2.0".into()),
        (
            "egg-custom-source-engine-game.json",
            "SRCDS_APPID",
            "740".into(),
        ),
        ("egg-teamspeak3-server.json", "QUERY_PORT", "65535".into()),
        ("egg-ark--survival-evolved.json", "ARK_PASSWORD", "".into()),
        ("egg-insurgency.json", "SRCDS_MAP", "ministry".into()),
    ];
    let mut templates = std::collections::BTreeMap::new();
    let mut template = |name: &str| -> Value {
        templates
            .entry(name.to_owned())
            .or_insert_with(|| {
                egg::convert(&std::fs::read(dir.join(name)).unwrap(), &Options::default())
                    .unwrap()
                    .template
            })
            .clone()
    };
    for (name, var, value, why) in &refused {
        let err = rules_of(&template(name), var)
            .check(value)
            .expect_err(&format!("{name} {var}={value:?} accepted"));
        assert!(err.contains(why), "{name} {var}={value:?}: {err}");
    }
    for (name, var, value) in &accepted {
        if let Err(e) = rules_of(&template(name), var).check(value) {
            panic!("{name} {var}={value:?} refused: {e}");
        }
    }
}

#[test]
fn image_maps_rewrite_the_egg_images_or_go_into_the_template() {
    let file = eggs_dir().join("egg-paper.json");
    let (yaml, stderr) = convert_with_binary(
        &file,
        &[
            "--image-map",
            "ghcr.io/pterodactyl/yolks:=mirror.local/yolks:",
            "--image-map",
            "ghcr.io/pterodactyl/yolks:java_21=oci-archive:/srv/images/java21.tar",
        ],
    );
    let t = yaml_to_json(&yaml);
    catalyst_schemas::admit(t.clone()).unwrap();
    let images: Vec<&str> = t["spec"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert_eq!(
        images,
        [
            "oci-archive:/srv/images/java21.tar",
            "mirror.local/yolks:java_17",
            "mirror.local/yolks:java_16",
            "mirror.local/yolks:java_11",
            "mirror.local/yolks:java_8"
        ]
    );
    assert_eq!(t["spec"]["images"][0]["name"], "Java 21");
    assert_eq!(
        t["spec"]["install"]["image"],
        "ghcr.io/pterodactyl/installers:alpine"
    );
    assert!(
        stderr.contains("warning: scripts.installation.container: ghcr.io/pterodactyl/installers:alpine matches no --image-map entry"),
        "{stderr}"
    );
    assert!(t["spec"].get("imageMap").is_none());

    let (yaml, stderr) = convert_with_binary(
        &file,
        &[
            "--image-map",
            "ghcr.io/pterodactyl/installers:alpine=oci-archive:/srv/images/alpine.tar",
            "--keep-image-map",
        ],
    );
    let t = yaml_to_json(&yaml);
    catalyst_schemas::admit(t.clone()).unwrap();
    assert_eq!(
        t["spec"]["install"]["image"],
        "ghcr.io/pterodactyl/installers:alpine"
    );
    assert_eq!(
        t["spec"]["imageMap"],
        serde_json::json!({"ghcr.io/pterodactyl/installers:alpine": "oci-archive:/srv/images/alpine.tar"})
    );
    assert!(!stderr.contains("--image-map"), "{stderr}");

    let bad = ctl(&[
        "convert",
        "egg",
        file.to_str().unwrap(),
        "--image-map",
        "nothing",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"nothing\" is not FROM=TO"));
}

#[test]
fn input_that_is_not_an_egg_fails_with_the_file_named() {
    let dir = std::env::temp_dir().join(format!("catalyst-convert-egg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("template.json");
    std::fs::write(&f, r#"{"meta": {"version": "PTDL_v9"}}"#).unwrap();
    let out = ctl(&["convert", "egg", f.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("converting the Pterodactyl egg: unsupported egg format \"PTDL_v9\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let out = ctl(&["convert", "egg", "/nonexistent/egg.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/egg.json"));
}

#[test]
fn apply_diff_and_delete_take_an_egg_file_as_its_template() {
    let dir = tempfile::tempdir().unwrap();
    let server = catalyst_e2e::Server::start(env!("CARGO_BIN_EXE_catalyst"), dir.path(), &[]);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_catalystctl"))
            .args(args)
            .env("CATALYST_CONFIG", &server.config)
            .env_remove("HOME")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !run(&["get", "templates"]).status.success() {
        assert!(std::time::Instant::now() < deadline, "server not ready");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let egg = eggs_dir().join("egg-paper.json");
    let egg = egg.to_str().unwrap();
    let map = ["--image-map", "ghcr.io/pterodactyl/=mirror.local/ptero/"];
    let text = |o: &Output| {
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let applied = run(&[&["apply", "-f", egg][..], &map].concat());
    let (stdout, stderr) = text(&applied);
    assert!(applied.status.success(), "{stderr}");
    assert_eq!(stdout, "template/paper created\n");
    assert!(
        stderr.contains(&format!("warning: {egg}: ports: the egg declares no ports")),
        "{stderr}"
    );
    let got = run(&["get", "template", "paper", "-o", "json"]);
    let t: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(
        t["spec"]["images"][0]["image"],
        "mirror.local/ptero/yolks:java_21"
    );
    assert_eq!(
        t["spec"]["install"]["image"],
        "mirror.local/ptero/installers:alpine"
    );
    assert_eq!(t["spec"]["source"]["name"], "Paper");

    let same = run(&[&["diff", "-f", egg][..], &map].concat());
    assert_eq!(same.status.code(), Some(0), "{:?}", text(&same));
    let other = run(&["diff", "-f", egg]);
    assert_eq!(
        other.status.code(),
        Some(1),
        "without the map the images differ"
    );
    assert!(
        text(&other)
            .0
            .contains("+  - image: ghcr.io/pterodactyl/yolks:java_21"),
        "{:?}",
        text(&other)
    );
    let again = run(&[&["apply", "-f", egg][..], &map].concat());
    assert_eq!(text(&again).0, "template/paper unchanged\n");

    let deleted = run(&["delete", "-f", egg]);
    let (stdout, stderr) = text(&deleted);
    assert!(deleted.status.success(), "{stderr}");
    assert_eq!(stdout, "template/paper deleted\n");
    assert!(
        stderr.is_empty(),
        "delete prints no conversion warnings: {stderr}"
    );
}
