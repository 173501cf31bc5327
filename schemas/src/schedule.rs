//! The Schedule kind: cron with a timezone and ordered tasks for one GameServer, and the pure
//! cron arithmetic its controller uses ([`CronSchedule`]: parse, the next and the latest slot).

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::meta::Condition;
use crate::resource::{resource, Validate};
use crate::validation::{self, Causes, FieldPath};

resource! {
    /// Runs tasks against a GameServer on a cron schedule.
    Schedule {
        spec: ScheduleSpec,
        status: ScheduleStatus,
        plural: "schedules",
        singular: "schedule",
        short: ["sched"],
        namespaced: true,
        name_rule: validation::dns_subdomain,
    }
}

/// The annotation that asks for a run now (`catalystctl schedule run`, `POST …/run`): each new
/// value starts one run; the controller records the value it handled in
/// `status.lastRunRequest`.
pub const RUN_REQUESTED_AT: &str = "catalyst.dev/runRequestedAt";

/// The label on the Backups a schedule's Backup task creates: the schedule's name.
pub const SCHEDULE_LABEL: &str = "catalyst.dev/schedule";

/// The most tasks one schedule may have.
pub const MAX_TASKS: usize = 32;

/// The shortest `startingDeadlineSeconds`: the controller may be a few seconds late itself.
pub const MIN_STARTING_DEADLINE: u32 = 10;

/// The merge patch of a manual run request made at `now` (RFC 3339 with milliseconds, so two
/// requests in one second are two runs).
pub fn run_now_patch(now: DateTime<Utc>) -> Value {
    let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!({"metadata": {"annotations": {RUN_REQUESTED_AT: stamp}}})
}

/// When to run what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    /// The GameServer, in the same namespace.
    pub game_server: String,
    /// Cron: 5 fields (minute hour day-of-month month day-of-week, weekdays 0-7 with 0 and 7
    /// Sunday, names allowed), a nickname (`@hourly`, `@daily`, `@midnight`, `@weekly`,
    /// `@monthly`, `@yearly`, `@annually`), or 6 fields whose first is one second (0-59).
    pub cron: String,
    /// An IANA timezone, e.g. `Europe/Berlin`; the cron fields are wall-clock times there.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Run only while the server is Running (otherwise the run is recorded as Skipped).
    #[serde(default)]
    pub only_when_running: bool,
    /// Paused: no scheduled runs (a manual run request still runs).
    #[serde(default)]
    pub suspend: bool,
    /// A run missed (the control plane was down, or the schedule suspended) starts late only
    /// within this many seconds of its time; absent: however late (as a CronJob's). Only the
    /// latest missed run starts, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<u32>,
    /// The tasks, run in order.
    #[serde(default)]
    pub tasks: Vec<ScheduleTask>,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TaskAction {
    /// Send `payload` to the console.
    Command,
    /// Start the server.
    Start,
    /// Stop the server.
    Stop,
    /// Restart the server.
    Restart,
    /// Take a Backup.
    Backup,
}

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleTask {
    /// The action.
    pub action: TaskAction,
    /// The console line, for Command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Seconds after the previous task.
    #[serde(default)]
    pub offset_seconds: u32,
    /// Go on with the next task if this one fails.
    #[serde(default)]
    pub continue_on_failure: bool,
}

/// A parsed `spec.cron` in its `spec.timezone`: the slots of a schedule.
///
/// Daylight saving time follows Vixie cron (croner's rules): a fixed wall-clock time that a
/// spring-forward skips runs right after the jump, the same day; one that a fall-back repeats
/// runs once, the first time. Wildcard and stepped fields (`*/15 * * * *`) run at each real
/// occurrence: none in the skipped hour, both passes of the repeated one.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
}

/// Parses a cron expression as `spec.cron` takes it.
///
/// # Errors
/// A message naming what is wrong: field count, a value out of range, a sub-minute seconds
/// field.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let expr = expr.trim();
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if expr.starts_with('@') {
        if fields.len() != 1 {
            return Err(format!("{expr:?}: a nickname stands alone"));
        }
    } else if !(5..=6).contains(&fields.len()) {
        return Err(format!(
            "{expr:?} must have 5 fields (minute hour day-of-month month day-of-week), or 6 with a second first; it has {}",
            fields.len()
        ));
    } else if fields.len() == 6 && fields[0].parse::<u8>().map_or(true, |s| s > 59) {
        return Err(format!(
            "{expr:?}: the seconds field must be one second (0-59); schedules run at most once a minute"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a cron expression: {e}"))
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
///
/// # Errors
/// The name is not in the IANA database this build carries.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name)
        .map_err(|_| format!("{name:?} is not an IANA time zone (e.g. Europe/Berlin, UTC)"))
}

impl CronSchedule {
    /// The schedule of a spec.
    ///
    /// # Errors
    /// The problems of `spec.cron` and `spec.timezone`, each naming its field.
    pub fn of(spec: &ScheduleSpec) -> Result<Self, validation::ValidationError> {
        let mut causes = Causes::default();
        let path = FieldPath::root("spec");
        let cron = parse_cron(&spec.cron).map_err(|e| causes.push(&path.child("cron"), e));
        let tz =
            parse_timezone(&spec.timezone).map_err(|e| causes.push(&path.child("timezone"), e));
        match (cron, tz) {
            (Ok(cron), Ok(tz)) => Ok(Self { cron, tz }),
            _ => Err(causes.into_result().expect_err("a cause was recorded")),
        }
    }

    /// The first slot strictly after `t`; `None` when the expression never matches again
    /// (e.g. February 30th).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The latest slot at or before `t`, if any.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
}

impl Validate for ScheduleSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.rule(
            &path.child("gameServer"),
            validation::dns_label(&self.game_server),
        );
        causes.rule(&path.child("cron"), parse_cron(&self.cron).map(drop));
        causes.rule(
            &path.child("timezone"),
            parse_timezone(&self.timezone).map(drop),
        );
        if let Some(d) = self.starting_deadline_seconds {
            causes.check(
                d >= MIN_STARTING_DEADLINE,
                &path.child("startingDeadlineSeconds"),
                format!("must be at least {MIN_STARTING_DEADLINE}"),
            );
        }
        causes.check(
            !self.tasks.is_empty(),
            &path.child("tasks"),
            "at least one task is required",
        );
        causes.check(
            self.tasks.len() <= MAX_TASKS,
            &path.child("tasks"),
            format!("at most {MAX_TASKS} tasks"),
        );
        for (i, t) in self.tasks.iter().enumerate() {
            let p = path.child("tasks").index(i);
            match (t.action, &t.payload) {
                (TaskAction::Command, None) => {
                    causes.push(&p.child("payload"), "is required for Command")
                }
                (TaskAction::Command, Some(c)) => causes.check(
                    !c.trim().is_empty() && !c.contains('\n'),
                    &p.child("payload"),
                    "must be one non-empty line",
                ),
                _ => {}
            }
            causes.check(
                t.offset_seconds <= 86_400,
                &p.child("offsetSeconds"),
                "must be at most 86400",
            );
        }
    }
}

/// How a run ended (or that it is under way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RunResult {
    /// Tasks are being run.
    Running,
    /// Every task succeeded (or failed with `continueOnFailure`).
    Succeeded,
    /// A task failed and the run stopped there.
    Failed,
    /// Not run: `onlyWhenRunning` and the server was not Running, or the previous run was
    /// still under way.
    Skipped,
    /// Not run: it was missed by more than `startingDeadlineSeconds`.
    Missed,
    /// The controller running it stopped (lost leadership, restarted) before it finished.
    Interrupted,
}

/// How one task of a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaskOutcome {
    /// Under way.
    Running,
    /// Done.
    Succeeded,
    /// Failed; `message` says why.
    Failed,
}

/// One task of the last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// Its index in `spec.tasks`.
    pub index: u32,
    /// What it did.
    pub action: TaskAction,
    /// When it began (after its offset).
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// How it went.
    pub outcome: TaskOutcome,
    /// Why it failed, or what it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Backup a Backup task created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

/// What the schedule controller observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The latest cron slot taken (run, skipped or missed); written before its tasks run, so
    /// no slot runs twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,
    /// When the last run began (a cron slot's time, or the time of a manual request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<DateTime<Utc>>,
    /// The last `catalyst.dev/runRequestedAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_request: Option<String>,
    /// The next cron slot (absent while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<DateTime<Utc>>,
    /// How the last run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<RunResult>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The tasks of the last run that began, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_tasks: Vec<TaskResult>,
    /// Observations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Validate for ScheduleStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn spec(cron: &str, tz: &str) -> ScheduleSpec {
        ScheduleSpec {
            game_server: "survival".into(),
            cron: cron.into(),
            timezone: tz.into(),
            tasks: vec![ScheduleTask {
                action: TaskAction::Restart,
                payload: None,
                offset_seconds: 0,
                continue_on_failure: false,
            }],
            ..Default::default()
        }
    }

    fn check(s: &ScheduleSpec) -> Result<(), validation::ValidationError> {
        let mut causes = Causes::default();
        s.validate(&FieldPath::root("spec"), &mut causes);
        causes.into_result()
    }

    fn next(cron: &str, tz: &str, after: &str) -> String {
        CronSchedule::of(&spec(cron, tz))
            .unwrap()
            .next_after(utc(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn five_fields_nicknames_and_a_seconds_field_give_the_expected_slots() {
        assert_eq!(
            next("*/15 * * * *", "UTC", "2026-03-01T12:07:30Z"),
            "2026-03-01T12:15:00+00:00"
        );
        assert_eq!(
            next("@hourly", "UTC", "2026-03-01T12:00:00Z"),
            "2026-03-01T13:00:00+00:00",
            "strictly after"
        );
        assert_eq!(
            next("@daily", "UTC", "2026-03-01T12:00:00Z"),
            "2026-03-02T00:00:00+00:00"
        );
        // POSIX weekdays: 1 is Monday; 2026-03-01 is a Sunday
        assert_eq!(
            next("0 4 * * 1", "UTC", "2026-03-01T12:00:00Z"),
            "2026-03-02T04:00:00+00:00"
        );
        assert_eq!(
            next("0 4 * * 0", "UTC", "2026-02-27T12:00:00Z"),
            next("0 4 * * 7", "UTC", "2026-02-27T12:00:00Z")
        );
        assert_eq!(
            next("30 0 4 * * *", "UTC", "2026-03-01T12:00:00Z"),
            "2026-03-02T04:00:30+00:00"
        );
        let s = CronSchedule::of(&spec("0 4 * * *", "UTC")).unwrap();
        assert_eq!(
            s.latest_at_or_before(utc("2026-03-02T04:00:00Z")),
            Some(utc("2026-03-02T04:00:00Z"))
        );
        assert_eq!(
            s.latest_at_or_before(utc("2026-03-02T03:59:59Z")),
            Some(utc("2026-03-01T04:00:00Z"))
        );
    }

    #[test]
    fn the_fields_are_wall_clock_times_of_the_time_zone() {
        // 04:00 in Berlin is 03:00 UTC in winter and 02:00 UTC in summer
        assert_eq!(
            next("0 4 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z"),
            "2026-01-11T03:00:00+00:00"
        );
        assert_eq!(
            next("0 4 * * *", "Europe/Berlin", "2026-07-10T12:00:00Z"),
            "2026-07-11T02:00:00+00:00"
        );
        assert_eq!(
            next("0 4 * * *", "UTC", "2026-07-10T12:00:00Z"),
            "2026-07-11T04:00:00+00:00"
        );
    }

    #[test]
    fn daylight_saving_skips_nothing_and_repeats_nothing_for_fixed_times() {
        // Berlin springs forward on 2026-03-29 at 02:00 → 03:00: 02:30 runs at 03:00 (01:00 UTC)
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z"),
            "2026-03-29T01:00:00+00:00"
        );
        // and falls back on 2026-10-25 at 03:00 → 02:00: 02:30 runs once, the first time
        let s = CronSchedule::of(&spec("30 2 * * *", "Europe/Berlin")).unwrap();
        let first = s.next_after(utc("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, utc("2026-10-25T00:30:00Z"));
        assert_eq!(
            s.next_after(first).unwrap(),
            utc("2026-10-26T01:30:00Z"),
            "not again an hour later"
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_naming_the_field() {
        for bad in [
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "* * * * 9",
            "*/0 * * * *",
            "@fortnightly",
            "@hourly 5",
            "*/5 * * * * *",
            "* * * * * *",
        ] {
            let err = check(&spec(bad, "UTC")).unwrap_err();
            assert_eq!(err.causes[0].field, "spec.cron", "{bad}: {err}");
        }
        for bad in ["Mars/Olympus", "", "../../etc/localtime", "Europe/Berlin "] {
            let err = check(&spec("0 4 * * *", bad)).unwrap_err();
            assert_eq!(err.causes[0].field, "spec.timezone", "{bad:?}: {err}");
        }
        let mut s = spec("0 4 * * *", "Europe/Berlin");
        s.starting_deadline_seconds = Some(3);
        let err = check(&s).unwrap_err();
        assert_eq!(err.causes[0].field, "spec.startingDeadlineSeconds");
        s.starting_deadline_seconds = Some(300);
        assert!(check(&s).is_ok());
    }

    #[test]
    fn a_run_request_is_one_annotation_with_milliseconds() {
        assert_eq!(
            run_now_patch(utc("2026-03-01T12:00:00.5Z")),
            json!({"metadata": {"annotations": {"catalyst.dev/runRequestedAt": "2026-03-01T12:00:00.500Z"}}})
        );
    }
}
