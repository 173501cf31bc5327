//! One run of a Schedule, after its claim was written: checks `onlyWhenRunning`, then runs
//! the tasks in order, each `offsetSeconds` after the previous one ended, and records each
//! task's start, end and outcome in `status.lastTasks` as it goes (so a run cut short shows
//! what ran). Start, stop and restart are the power subresources' merge patches, Command goes
//! through the server's node tunnel as `POST …/command` does, Backup creates a Backup.

use catalyst_apiserver::registry::{Part, Scope};
use catalyst_schemas::lifecycle::Phase;
use catalyst_schemas::object::{namespace_of, phase_of, split_key};
use catalyst_schemas::power::PowerAction;
use catalyst_schemas::schedule::{
    RunResult, ScheduleSpec, ScheduleStatus, ScheduleTask, TaskAction, TaskOutcome, TaskResult,
    SCHEDULE_LABEL,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::super::context::kind;
use super::super::events::record_event;
use super::ScheduleContext;

/// The field manager of the schedule controller's writes to GameServers.
pub const FIELD_MANAGER: &str = "catalyst-schedule";

/// Runs the tasks of `spec` for schedule `key` (`schedule` as claimed), begun at `began`.
pub(super) async fn run(
    ctx: &ScheduleContext,
    key: &str,
    schedule: &Value,
    spec: &ScheduleSpec,
    began: DateTime<Utc>,
) {
    let (ns, name) = split_key(key);
    let ns = ns.unwrap_or("default");
    if spec.only_when_running {
        let phase = ctx
            .registry
            .get(gs_scope(ns), &spec.game_server)
            .await
            .map(|gs| phase_of(&gs));
        if !matches!(phase, Ok(Phase::Running)) {
            let why = match phase {
                Ok(p) => format!(
                    "onlyWhenRunning: gameserver {} is {}, not Running",
                    spec.game_server,
                    p.as_str()
                ),
                Err(e) => format!("onlyWhenRunning: {e}"),
            };
            finish(ctx, ns, name, RunResult::Skipped, why.clone()).await;
            event(ctx, schedule, "Normal", "RunSkipped", &why).await;
            return;
        }
    }
    let mut at = began;
    let mut failed = 0;
    for (i, task) in spec.tasks.iter().enumerate() {
        at += chrono::Duration::seconds(i64::from(task.offset_seconds));
        ctx.clock.sleep_until(at).await;
        let started = ctx.clock.now();
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let mut result = TaskResult {
            index,
            action: task.action,
            started_at: started,
            finished_at: None,
            outcome: TaskOutcome::Running,
            message: None,
            backup: None,
        };
        record_task(ctx, ns, name, &result).await;
        let outcome = act(ctx, ns, name, spec, task, schedule, started).await;
        result.finished_at = Some(ctx.clock.now());
        match outcome {
            Ok(Done { message, backup }) => {
                result.outcome = TaskOutcome::Succeeded;
                result.message = message;
                result.backup = backup;
            }
            Err(why) => {
                result.outcome = TaskOutcome::Failed;
                result.message = Some(why);
                failed += 1;
            }
        }
        record_task(ctx, ns, name, &result).await;
        at = result.finished_at.unwrap_or(started);
        if result.outcome == TaskOutcome::Failed && !task.continue_on_failure {
            let why = format!(
                "task {i} ({:?}) failed: {}; the run stopped there",
                task.action,
                result.message.as_deref().unwrap_or("")
            );
            finish(ctx, ns, name, RunResult::Failed, why.clone()).await;
            event(ctx, schedule, "Warning", "RunFailed", &why).await;
            return;
        }
    }
    let (result, why) = if failed == 0 {
        (
            RunResult::Succeeded,
            format!("ran {} tasks", spec.tasks.len()),
        )
    } else {
        (
            RunResult::Failed,
            format!(
                "ran {} tasks; {failed} failed and were passed over (continueOnFailure)",
                spec.tasks.len()
            ),
        )
    };
    finish(ctx, ns, name, result, why.clone()).await;
    let type_ = if failed == 0 { "Normal" } else { "Warning" };
    event(ctx, schedule, type_, "Ran", &why).await;
}

/// What a task that succeeded says.
struct Done {
    message: Option<String>,
    backup: Option<String>,
}

impl Done {
    fn said(message: String) -> Self {
        Self {
            message: Some(message),
            backup: None,
        }
    }
}

/// Does one task; its error says why it failed.
async fn act(
    ctx: &ScheduleContext,
    ns: &str,
    schedule: &str,
    spec: &ScheduleSpec,
    task: &ScheduleTask,
    owner: &Value,
    now: DateTime<Utc>,
) -> Result<Done, String> {
    let gs = &spec.game_server;
    let power = match task.action {
        TaskAction::Start => PowerAction::Start,
        TaskAction::Stop => PowerAction::Stop,
        TaskAction::Restart => PowerAction::Restart,
        TaskAction::Command => {
            if !crate::leader::is_leading(&ctx.leading) {
                return Err("this server's leadership term ended: the command was not sent".into());
            }
            let text = task.payload.clone().unwrap_or_default();
            let who = format!("system:schedule:{ns}/{schedule}");
            return catalyst_apiserver::http::tunnel::send_command(
                &ctx.registry,
                &ctx.tunnels,
                &who,
                ns,
                gs,
                text,
            )
            .await
            .map(|()| Done::said("sent".into()))
            .map_err(|e| e.to_string());
        }
        TaskAction::Backup => return backup(ctx, ns, schedule, gs, owner, now).await,
    };
    let patch = power.merge_patch(now);
    ctx.registry
        .update_with(gs_scope(ns), gs, None, Part::Main, false, |current| {
            let mut next = current.clone();
            catalyst_apiserver::registry::merge(&mut next, &patch);
            Ok(catalyst_apiserver::apply::track_update(
                current,
                next,
                FIELD_MANAGER,
                Part::Main,
            ))
        })
        .await
        .map(|_| Done::said(format!("gameserver {gs} {}", power.past_tense())))
        .map_err(|e| e.to_string())
}

/// Creates the Backup of a Backup task: named after the schedule and the time, labelled
/// [`SCHEDULE_LABEL`] (no owner reference: deleting the schedule keeps its backups).
async fn backup(
    ctx: &ScheduleContext,
    ns: &str,
    schedule: &str,
    gs: &str,
    owner: &Value,
    now: DateTime<Utc>,
) -> Result<Done, String> {
    let name = backup_name(schedule, now);
    let uid = owner
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let obj = json!({
        "apiVersion": catalyst_schemas::API_VERSION,
        "kind": "Backup",
        "metadata": {
            "name": name,
            "namespace": namespace_of(owner).unwrap_or(ns),
            "labels": {SCHEDULE_LABEL: label_value(schedule)},
            "annotations": {"catalyst.dev/scheduleUid": uid},
        },
        "spec": {"gameServer": gs},
    });
    let scope = Scope {
        kind: kind("backups"),
        namespace: Some(ns),
    };
    ctx.registry
        .create(scope, obj, false)
        .await
        .map(|_| Done {
            message: Some(format!("created backup {name}")),
            backup: Some(name),
        })
        .map_err(|e| e.to_string())
}

/// `SCHEDULE-YYYYMMDD-HHMMSS`, the schedule's name cut so the whole stays a DNS subdomain.
pub(super) fn backup_name(schedule: &str, now: DateTime<Utc>) -> String {
    let stamp = now.format("%Y%m%d-%H%M%S").to_string();
    let keep = 253 - stamp.len() - 1;
    let base: String = schedule.chars().take(keep).collect();
    format!("{}-{stamp}", base.trim_end_matches(['-', '.']))
}

/// A label value is at most 63 characters: longer names are cut.
fn label_value(name: &str) -> String {
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_owned()
}

fn gs_scope(ns: &str) -> Scope<'_> {
    Scope {
        kind: kind("gameservers"),
        namespace: Some(ns),
    }
}

/// Writes `change` into the schedule's status (not pinned: the run owns these fields while it
/// lasts) and keeps the cache current.
async fn update_status(
    ctx: &ScheduleContext,
    ns: &str,
    name: &str,
    change: impl Fn(&mut ScheduleStatus),
) {
    let scope = Scope {
        kind: kind("schedules"),
        namespace: Some(ns),
    };
    let written = ctx
        .registry
        .update_with(scope, name, None, Part::Status, false, |cur| {
            let mut status: ScheduleStatus = cur
                .get("status")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .unwrap_or_default();
            change(&mut status);
            let mut next = cur.clone();
            next["status"] = serde_json::to_value(&status).expect("a status serialises");
            Ok(next)
        })
        .await;
    match written {
        Ok(w) => ctx.schedules.write_through(&w.object),
        Err(e) => {
            tracing::warn!(schedule = name, namespace = ns, error = %e, "cannot record the run")
        }
    }
}

async fn record_task(ctx: &ScheduleContext, ns: &str, name: &str, result: &TaskResult) {
    update_status(ctx, ns, name, |st| {
        match st.last_tasks.iter_mut().find(|t| t.index == result.index) {
            Some(t) => *t = result.clone(),
            None => st.last_tasks.push(result.clone()),
        }
    })
    .await;
}

async fn finish(ctx: &ScheduleContext, ns: &str, name: &str, result: RunResult, why: String) {
    update_status(ctx, ns, name, |st| {
        st.last_result = Some(result);
        st.message = Some(why.clone());
    })
    .await;
}

async fn event(ctx: &ScheduleContext, schedule: &Value, type_: &str, reason: &str, msg: &str) {
    record_event(&ctx.registry, schedule, type_, reason, msg).await;
}
