//! Schedules end to end, in real time: a real `catalyst server` and a nodelet on real
//! containerd; a `* * * * *` Schedule in a time zone sends its first command at the next
//! minute and its second a few seconds later (both echoed in the server's console, in order),
//! `catalystctl get schedules` shows how it went, and `catalystctl schedule run` runs it again
//! at once.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use support::*;

fn schedule(server: &catalyst_e2e::Server, name: &str) -> Value {
    serde_json::from_str(&ok(ctl(
        server,
        &["get", "schedule", name, "-o", "json"],
        None,
    )))
    .expect("json")
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("no time in {v}")))
        .expect("a time")
        .with_timezone(&Utc)
}

#[test]
fn a_minute_schedule_sends_its_commands_in_order_with_the_offset_and_runs_on_request() {
    let env = setup();
    let ndir = env.root.join("nodelet-sched");
    node_with_ports(&env.server, "node-sched", 8900);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-sched",
        "cat-sched0",
        "10.231.47.0/24",
    );
    let server = &env.server;
    let talk = manifest(
        "talk",
        &env.image,
        "echo ready; while read line; do echo \"got: $line\"; done",
        "  ready: {logPattern: '^ready$'}\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n  resources: {memory: 64Mi}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&talk)));
    let gs = wait_phase(server, "talk", "Running", &ndir);
    let sched = "apiVersion: catalyst.dev/v1alpha1\nkind: Schedule\nmetadata: {name: every-minute, namespace: default}\nspec:\n  gameServer: talk\n  cron: '* * * * *'\n  timezone: Europe/Berlin\n  onlyWhenRunning: true\n  startingDeadlineSeconds: 30\n  tasks:\n    - {action: Command, payload: 'say first'}\n    - {action: Command, payload: 'say second', offsetSeconds: 3}\n";
    ok(ctl(server, &["apply", "-f", "-"], Some(sched)));
    // a bad time zone is refused naming the field
    let bad = sched
        .replace("every-minute", "bad-zone")
        .replace("Europe/Berlin", "Mars/Olympus");
    let out = ctl(server, &["apply", "-f", "-"], Some(&bad));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.timezone"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // the first minute boundary after now, and both lines within ~70 s
    eventually(
        "both scheduled commands echoed",
        Duration::from_secs(80),
        || console_log(&ndir, &gs).contains("got: say second"),
    );
    let log = console_log(&ndir, &gs);
    let (first, second) = (
        log.find("got: say first").expect("the first command"),
        log.find("got: say second").expect("the second command"),
    );
    assert!(first < second, "in order:\n{log}");
    let mut s = schedule(server, "every-minute");
    eventually("the run recorded", Duration::from_secs(10), || {
        s = schedule(server, "every-minute");
        s.pointer("/status/lastResult") == Some(&Value::from("Succeeded"))
    });
    let tasks = s["status"]["lastTasks"].as_array().expect("tasks").clone();
    assert_eq!(tasks.len(), 2, "{s:#}");
    let slot = time(&s["status"]["lastScheduleTime"]);
    assert_eq!(slot.timestamp() % 60, 0, "a minute boundary: {slot}");
    let gap = time(&tasks[1]["startedAt"]) - time(&tasks[0]["finishedAt"]);
    assert!(
        gap >= chrono::Duration::seconds(3) && gap < chrono::Duration::seconds(5),
        "offset: {gap}"
    );
    let table = ok(ctl(server, &["get", "schedules"], None));
    assert!(
        table.contains("every-minute") && table.contains("Succeeded") && table.contains("in "),
        "{table}"
    );

    // run now, by request
    let out = ok(ctl(server, &["schedule", "run", "every-minute"], None));
    assert_eq!(out.trim(), "schedule/every-minute run requested");
    eventually("the requested run", Duration::from_secs(20), || {
        let s = schedule(server, "every-minute");
        let asked = s.pointer("/metadata/annotations/catalyst.dev~1runRequestedAt");
        asked.is_some()
            && s.pointer("/status/lastRunRequest") == asked
            && s.pointer("/status/lastResult") == Some(&Value::from("Succeeded"))
    });
    assert!(console_log(&ndir, &gs).matches("got: say first").count() >= 2);
}
