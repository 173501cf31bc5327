//! `manifests/monitoring`: the Prometheus alerting rules pass `promtool check rules` and their
//! unit tests (`promtool test rules`), the Grafana dashboard is JSON whose every query is
//! PromQL that promtool accepts, and every metric either of them names is one a real
//! `catalyst server` with a real nodelet and a running game server exports on `/metrics`.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::*;

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/monitoring")
}

/// Runs promtool; fails (never skips) when it is missing: scripts/test installs it.
fn promtool(args: &[&str], dir: &Path) -> Output {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian's prometheus package, in scripts/packages/test.txt)");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The rule groups of catalyst-alerts.yaml, as JSON values.
fn rules() -> Vec<Value> {
    let text = std::fs::read_to_string(monitoring_dir().join("catalyst-alerts.yaml"))
        .expect("catalyst-alerts.yaml");
    let doc: Value = yaml_serde::from_str(&text).expect("catalyst-alerts.yaml is YAML");
    doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

/// The dashboard's queries: every panel target's `expr` and every templating query.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(monitoring_dir().join("catalyst-dashboard.json"))
        .expect("catalyst-dashboard.json");
    let dash: Value = serde_json::from_str(&text).expect("catalyst-dashboard.json is JSON");
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    for var in dash["templating"]["list"].as_array().expect("templating") {
        if let Some(q) = var["query"]["query"].as_str() {
            // label_values(METRIC, LABEL): the metric is a selector
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(m, _)| m.to_owned())
                .unwrap_or_else(|| panic!("an unexpected variable query {q:?}"));
            out.push(inner);
        }
    }
    out
}

/// As Prometheus sees a dashboard query once Grafana filled in its variables.
fn as_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$instance", ".*")
        .replace("$namespace", ".*")
        .replace("$node", ".*")
}

/// The metric names a PromQL expression reads: `up` and every `catalyst_…` identifier outside
/// string literals (label values, `humanize` templates are not in expressions).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            let mut escaped = false;
            for (_, c) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    break;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, c)) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    break;
                }
                end = j + c.len_utf8();
                chars.next();
            }
            let word = &expr[i..end];
            if word == "up" || word.starts_with("catalyst_") {
                names.insert(word.to_owned());
            }
        }
    }
    names
}

/// The metric names of a Prometheus text exposition's samples.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_names_are_read_outside_strings_and_label_matchers_are_values() {
    let names = metric_names(
        r#"sum by (code) (rate(catalyst_apiserver_requests_total{code=~"catalyst_x", verb="WATCH"}[5m])) / up{job="catalyst"} unless on (instance) catalyst_store_revision"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "catalyst_apiserver_requests_total",
            "catalyst_store_revision",
            "up"
        ]
    );
    let text = "# HELP a b\n# TYPE catalyst_a counter\ncatalyst_a{x=\"1\"} 2\ncatalyst_b 3\n";
    assert_eq!(
        exported(text).into_iter().collect::<Vec<_>>(),
        ["catalyst_a", "catalyst_b"]
    );
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let dir = monitoring_dir();
    let out = promtool(&["check", "rules", "catalyst-alerts.yaml"], &dir);
    let said = String::from_utf8_lossy(&out.stdout);
    let rules = rules();
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{said}"
    );
    promtool(&["test", "rules", "catalyst-alerts-test.yaml"], &dir);
    // every alert waits before it fires and says what is wrong and what to do
    for rule in &rules {
        let name = rule["alert"].as_str().expect("alerting rules only");
        assert!(rule["for"].as_str().is_some(), "{name} has no `for`");
        for key in ["summary", "description"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.trim().is_empty()),
                "{name} has no {key}"
            );
        }
        assert!(
            rule["labels"]["severity"]
                .as_str()
                .is_some_and(|s| ["warning", "critical"].contains(&s)),
            "{name}: severity"
        );
    }
}

#[test]
fn every_dashboard_query_is_promql_that_promtool_accepts() {
    let queries = dashboard_queries();
    assert!(queries.len() > 20, "{queries:?}");
    // promtool parses PromQL in rule files: the queries as recording rules
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": as_promql(q)}))
        .collect();
    let doc = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().expect("tempdir");
    // JSON is YAML
    std::fs::write(dir.path().join("dashboard.yaml"), doc.to_string()).expect("write");
    promtool(&["check", "rules", "dashboard.yaml"], dir.path());
}

/// A real server, a real nodelet on a containerd of the test's own and one running game server:
/// `/metrics` then carries every family the API server and the nodelet export, and each metric
/// the rules and the dashboard name must be among them.
#[test]
fn every_metric_the_rules_and_dashboard_name_is_exported() {
    let env = setup();
    let ndir = env.root.join("nodelet");
    node_with_ports(&env.server, "node-mon", 9600);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-mon",
        "cat-e2emon",
        "10.231.60.0/24",
    );
    let server = &env.server;
    let gs = manifest(
        "mon",
        &env.image,
        "echo ready; while true; do sleep 1; done",
        "  ready: {logPattern: '^ready$'}\n  resources: {memory: 32Mi, pids: 32}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&gs)));
    wait_phase(server, "mon", "Running", &ndir);
    // a failed request, so the requests counter has samples of an error code too
    let _ = ctl(server, &["get", "gs", "no-such-server"], None);
    let mut text = String::new();
    eventually(
        "the game server's samples on /metrics",
        Duration::from_secs(30),
        || {
            text = api_text(server, "/metrics");
            text.contains("catalyst_gameserver_cpu_seconds_total{name=\"mon\"")
        },
    );
    let exported = exported(&text);

    let mut named = BTreeSet::new();
    for rule in rules() {
        named.extend(metric_names(rule["expr"].as_str().expect("expr")));
    }
    for q in dashboard_queries() {
        named.extend(metric_names(&q));
    }
    assert!(named.len() > 10, "{named:?}");
    // `up` is Prometheus' own, for every scrape target
    let missing: Vec<&String> = named
        .iter()
        .filter(|n| *n != "up" && !exported.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:?}\nexported: {exported:?}"
    );
}
