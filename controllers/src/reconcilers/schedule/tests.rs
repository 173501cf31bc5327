use super::*;
use serde_json::json;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn schedule(spec: Value, status: Value) -> Observed {
    let obj = json!({
        "metadata": {"name": "s", "namespace": "default", "creationTimestamp": "2026-03-01T11:00:30Z"},
        "spec": spec,
        "status": status,
    });
    Observed::of(&obj).unwrap()
}

fn hourly(extra: Value) -> Value {
    let mut spec = json!({"gameServer": "gs", "cron": "@hourly", "tasks": [{"action": "Restart"}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

#[test]
fn nothing_is_due_before_the_first_slot_after_creation() {
    let o = schedule(hourly(json!({})), json!({}));
    assert_eq!(
        decide(&o, false, t("2026-03-01T11:59:59Z")),
        Decision::Wait(Some(t("2026-03-01T12:00:00Z")))
    );
    assert_eq!(
        decide(&o, false, t("2026-03-01T12:00:00Z")),
        Decision::Run {
            slot: Some(t("2026-03-01T12:00:00Z")),
            request: None
        }
    );
}

#[test]
fn a_slot_taken_is_never_due_again() {
    let o = schedule(
        hourly(json!({})),
        json!({"lastScheduleTime": "2026-03-01T12:00:00Z", "lastResult": "Succeeded"}),
    );
    assert_eq!(
        decide(&o, false, t("2026-03-01T12:30:00Z")),
        Decision::Wait(Some(t("2026-03-01T13:00:00Z")))
    );
}

#[test]
fn of_missed_slots_only_the_latest_runs_and_only_within_the_deadline() {
    let status = json!({"lastScheduleTime": "2026-03-01T12:00:00Z"});
    // down from 12:30 to 15:01: 13:00, 14:00 and 15:00 were missed; 15:00 runs, once
    let o = schedule(
        hourly(json!({"startingDeadlineSeconds": 120})),
        status.clone(),
    );
    assert_eq!(
        decide(&o, false, t("2026-03-01T15:01:00Z")),
        Decision::Run {
            slot: Some(t("2026-03-01T15:00:00Z")),
            request: None
        }
    );
    // back at 15:05: 15:00 is older than the deadline
    let Decision::Pass {
        slot,
        result,
        message,
    } = decide(&o, false, t("2026-03-01T15:05:00Z"))
    else {
        panic!("not passed")
    };
    assert_eq!(
        (slot, result),
        (t("2026-03-01T15:00:00Z"), RunResult::Missed)
    );
    assert!(message.contains("300 s"), "{message}");
    // without a deadline it runs however late
    let o = schedule(hourly(json!({})), status);
    assert!(matches!(
        decide(&o, false, t("2026-03-01T15:59:00Z")),
        Decision::Run { slot: Some(s), .. } if s == t("2026-03-01T15:00:00Z")
    ));
}

#[test]
fn a_slot_that_comes_during_a_run_is_skipped() {
    let o = schedule(
        hourly(json!({})),
        json!({"lastScheduleTime": "2026-03-01T12:00:00Z", "lastResult": "Running"}),
    );
    assert!(matches!(
        decide(&o, true, t("2026-03-01T13:00:01Z")),
        Decision::Pass {
            result: RunResult::Skipped,
            ..
        }
    ));
    assert_eq!(
        decide(&o, true, t("2026-03-01T12:10:00Z")),
        Decision::Wait(Some(t("2026-03-01T13:00:00Z"))),
        "a run under way is left alone"
    );
    assert_eq!(
        decide(&o, false, t("2026-03-01T12:10:00Z")),
        Decision::Interrupted,
        "Running in the status with no run here: it was cut short"
    );
}

#[test]
fn suspended_schedules_wait_but_a_run_request_runs_once() {
    let o = schedule(hourly(json!({"suspend": true})), json!({}));
    assert_eq!(
        decide(&o, false, t("2026-03-01T15:00:00Z")),
        Decision::Wait(None)
    );
    let mut o = o;
    o.run_request = Some("2026-03-01T15:00:00.000Z".into());
    assert_eq!(
        decide(&o, false, t("2026-03-01T15:00:01Z")),
        Decision::Run {
            slot: None,
            request: Some("2026-03-01T15:00:00.000Z".into())
        }
    );
    assert_eq!(
        decide(&o, true, t("2026-03-01T15:00:01Z")),
        Decision::Wait(None),
        "waits for the run under way"
    );
    o.status.last_run_request = o.run_request.clone();
    assert_eq!(
        decide(&o, false, t("2026-03-01T15:00:02Z")),
        Decision::Wait(None),
        "handled once"
    );
}

#[test]
fn deleting_and_invalid_schedules_do_not_run() {
    let mut o = schedule(hourly(json!({})), json!({}));
    o.deleting = true;
    assert_eq!(
        decide(&o, false, t("2026-03-01T15:00:00Z")),
        Decision::Nothing
    );
    let o = schedule(hourly(json!({"timezone": "Mars/Olympus"})), json!({}));
    assert!(
        matches!(decide(&o, false, t("2026-03-01T15:00:00Z")), Decision::Invalid(m) if m.contains("spec.timezone"))
    );
}

#[test]
fn backup_names_stay_dns_subdomains() {
    let now = t("2026-03-01T04:00:05Z");
    assert_eq!(run::backup_name("nightly", now), "nightly-20260301-040005");
    let long = "a".repeat(253);
    let name = run::backup_name(&long, now);
    assert!(name.len() <= 253 && name.ends_with("-20260301-040005"));
}
