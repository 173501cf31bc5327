//! The Schedule kind: cron with a timezone and ordered tasks for one GameServer.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// When to run what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    /// The GameServer, in the same namespace.
    pub game_server: String,
    /// Cron: 5 fields (minute hour day month weekday) or 6 with seconds first.
    pub cron: String,
    /// An IANA timezone, e.g. `Europe/Berlin`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Run only while the server is Running.
    #[serde(default)]
    pub only_when_running: bool,
    /// Paused.
    #[serde(default)]
    pub suspend: bool,
    /// The tasks, run in order.
    #[serde(default)]
    pub tasks: Vec<ScheduleTask>,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// Checks the shape of a cron expression: 5 or 6 fields of digits, names, `*`, `,`, `-`, `/`, `?`.
pub fn cron_expression(expr: &str) -> Result<(), String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if !(5..=6).contains(&fields.len()) {
        return Err(format!(
            "{expr:?} must have 5 fields (or 6 with seconds), has {}",
            fields.len()
        ));
    }
    for f in &fields {
        if !f
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "*,-/?".contains(c))
        {
            return Err(format!(
                "field {f:?} of {expr:?} has characters cron does not accept"
            ));
        }
    }
    Ok(())
}

impl Validate for ScheduleSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.rule(
            &path.child("gameServer"),
            validation::dns_label(&self.game_server),
        );
        causes.rule(&path.child("cron"), cron_expression(&self.cron));
        let tz_ok = !self.timezone.is_empty()
            && self
                .timezone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
        causes.check(
            tz_ok,
            &path.child("timezone"),
            format!("{:?} is not a timezone name", self.timezone),
        );
        causes.check(
            !self.tasks.is_empty(),
            &path.child("tasks"),
            "at least one task is required",
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

/// What the schedule controller observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<DateTime<Utc>>,
    /// The next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<DateTime<Utc>>,
    /// How the last run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// Observations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Validate for ScheduleStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}
