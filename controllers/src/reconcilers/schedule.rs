//! The Schedule reconciler: decides from a cached Schedule and the clock whether a run is due
//! (a cron slot, a missed slot within `startingDeadlineSeconds`, a run-now request), claims it
//! in the status before anything runs (pinned to the revision decided from, so one slot never
//! runs twice), and hands the run to a task of its own (`run`); between slots a timer on the
//! clock queues the schedule again at its next slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{Part, Registry, Scope};
use catalyst_apiserver::tunnel::Tunnels;
use catalyst_schemas::meta::{set_condition, Condition};
use catalyst_schemas::object::{resource_version as rv_of, split_key, Key};
use catalyst_schemas::schedule::{
    CronSchedule, RunResult, ScheduleSpec, ScheduleStatus, RUN_REQUESTED_AT,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::task::AbortHandle;

use super::context::{kind, Action, ReconcileError};
use super::events::record_event;
use crate::clock::Clock;
use crate::informer::Cache;
use crate::queue::WorkQueue;

mod run;

/// What the schedule reconciler and its runs share.
#[derive(Debug, Clone)]
pub struct ScheduleContext {
    /// Object operations.
    pub registry: Registry,
    /// Cached Schedules.
    pub schedules: Arc<Cache>,
    /// The node tunnels of this API server (Command tasks).
    pub tunnels: Arc<Tunnels>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The schedule queue (timers and finished runs queue their key again).
    pub queue: Arc<WorkQueue<Key>>,
    /// The runs and timers of this process.
    pub runs: Arc<Runs>,
    /// The term the runs act under: checked before each task (a Command reaches a node, which
    /// the store cannot fence).
    pub leading: crate::leader::Leading,
}

/// The runs under way in this process and the timers waiting for next slots, per schedule.
#[derive(Debug, Default)]
pub struct Runs {
    runs: Mutex<HashMap<Key, AbortHandle>>,
    timers: Mutex<HashMap<Key, AbortHandle>>,
}

impl Runs {
    /// True while a run of `key` is under way here.
    pub fn running(&self, key: &str) -> bool {
        self.runs
            .lock()
            .expect("runs lock")
            .get(key)
            .is_some_and(|h| !h.is_finished())
    }

    fn start(&self, key: &str, handle: AbortHandle) {
        self.runs
            .lock()
            .expect("runs lock")
            .insert(key.to_owned(), handle);
    }

    fn set_timer(&self, key: &str, handle: Option<AbortHandle>) {
        let mut timers = self.timers.lock().expect("timers lock");
        let old = match handle {
            Some(h) => timers.insert(key.to_owned(), h),
            None => timers.remove(key),
        };
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Stops the run and the timer of `key`.
    fn forget(&self, key: &str) {
        if let Some(h) = self.runs.lock().expect("runs lock").remove(key) {
            h.abort();
        }
        self.set_timer(key, None);
    }

    /// Stops every run and timer of this process (leadership was lost: the new leader marks
    /// the runs Interrupted and takes over the timers).
    pub fn stop_all(&self) {
        for (_, h) in self.runs.lock().expect("runs lock").drain() {
            h.abort();
        }
        for (_, h) in self.timers.lock().expect("timers lock").drain() {
            h.abort();
        }
    }
}

/// The Schedule decision.
#[derive(Debug, Clone, PartialEq)]
enum Decision {
    /// Being deleted: nothing (its Backups stay; they carry a label, no owner reference).
    Nothing,
    /// The spec does not parse (written before validation got stricter): say so.
    Invalid(String),
    /// The status says a run is under way, but none runs here: it was cut short.
    Interrupted,
    /// Claim and start a run: of cron slot `slot`, or of run request `request`.
    Run {
        slot: Option<DateTime<Utc>>,
        request: Option<String>,
    },
    /// Take cron slot `slot` without running it.
    Pass {
        slot: DateTime<Utc>,
        result: RunResult,
        message: String,
    },
    /// Nothing due: the next slot, if any (none while suspended).
    Wait(Option<DateTime<Utc>>),
}

/// What the decision reads of a Schedule object.
#[derive(Debug, Clone)]
struct Observed {
    spec: ScheduleSpec,
    status: ScheduleStatus,
    created: Option<DateTime<Utc>>,
    run_request: Option<String>,
    deleting: bool,
}

impl Observed {
    fn of(obj: &Value) -> Option<Self> {
        let spec = serde_json::from_value(obj.get("spec")?.clone()).ok()?;
        let status = obj
            .get("status")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
        let time = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Some(Self {
            spec,
            status,
            created: time("/metadata/creationTimestamp"),
            run_request: obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(RUN_REQUESTED_AT))
                .and_then(Value::as_str)
                .map(str::to_owned),
            deleting: obj.pointer("/metadata/deletionTimestamp").is_some(),
        })
    }
}

/// Decides at `now`; `running` tells whether a run of this schedule is under way here.
///
/// Cron slots count from `status.lastScheduleTime` (else the creation time): of the slots
/// since, only the latest is considered (several missed slots run once, as a CronJob's do);
/// it runs if no deadline is set or it is at most `startingDeadlineSeconds` old, and is passed
/// as Missed otherwise. A slot that comes while a run is under way is passed as Skipped. A
/// run-now request (an annotation value other than `status.lastRunRequest`) runs even while
/// suspended, once the run under way (if any) ended.
fn decide(o: &Observed, running: bool, now: DateTime<Utc>) -> Decision {
    if o.deleting {
        return Decision::Nothing;
    }
    let schedule = match CronSchedule::of(&o.spec) {
        Ok(s) => s,
        Err(e) => return Decision::Invalid(e.to_string()),
    };
    if !running && o.status.last_result == Some(RunResult::Running) {
        return Decision::Interrupted;
    }
    let requested = o
        .run_request
        .as_ref()
        .filter(|r| Some(*r) != o.status.last_run_request.as_ref());
    if let (Some(r), false) = (requested, running) {
        return Decision::Run {
            slot: None,
            request: Some(r.clone()),
        };
    }
    if o.spec.suspend {
        return Decision::Wait(None);
    }
    let base = o.status.last_schedule_time.or(o.created).unwrap_or(now);
    match schedule.latest_at_or_before(now).filter(|s| *s > base) {
        Some(slot) if running => Decision::Pass {
            slot,
            result: RunResult::Skipped,
            message: "the previous run was still under way".into(),
        },
        Some(slot) => {
            let late = (now - slot).num_seconds();
            match o.spec.starting_deadline_seconds {
                Some(d) if late > i64::from(d) => Decision::Pass {
                    slot,
                    result: RunResult::Missed,
                    message: format!(
                        "the run of {} was missed by {late} s, more than startingDeadlineSeconds ({d})",
                        slot.to_rfc3339()
                    ),
                },
                _ => Decision::Run {
                    slot: Some(slot),
                    request: None,
                },
            }
        }
        None => Decision::Wait(schedule.next_after(now.max(base))),
    }
}

/// Reconciles one Schedule.
pub async fn reconcile_schedule(
    ctx: &ScheduleContext,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(obj) = ctx.schedules.get(key) else {
        // deleted: its run (if any) and timer go with it
        ctx.runs.forget(key);
        return Ok(Action::Done);
    };
    let Some(o) = Observed::of(&obj) else {
        return Ok(Action::Done);
    };
    let now = ctx.clock.now();
    let running = ctx.runs.running(key);
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let decision = decide(&o, running, now);
    let mut status = o.status.clone();
    status.observed_generation = generation;
    let mut event: Option<(&str, &str, String)> = None;
    let mut start = false;
    match &decision {
        Decision::Nothing => return Ok(Action::Done),
        Decision::Invalid(why) => {
            status.message = Some(why.clone());
            put_condition_on(&mut status, "Valid", false, "InvalidSpec", why, generation);
        }
        Decision::Interrupted => {
            status.last_result = Some(RunResult::Interrupted);
            status.message = Some("the controller running it stopped before it finished".into());
            event = Some((
                "Warning",
                "RunInterrupted",
                "the run was cut short (the controller stopped or lost leadership)".into(),
            ));
        }
        Decision::Run { slot, request } => {
            if let Some(s) = slot {
                status.last_schedule_time = Some(*s);
            }
            if let Some(r) = request {
                status.last_run_request = Some(r.clone());
            }
            status.last_run_time = Some(now);
            status.last_result = Some(RunResult::Running);
            status.message = None;
            status.last_tasks.clear();
            start = true;
        }
        Decision::Pass {
            slot,
            result,
            message,
        } => {
            status.last_schedule_time = Some(*slot);
            // a run under way keeps its own result; a pass is told by an Event
            if !running {
                status.last_result = Some(*result);
                status.message = Some(message.clone());
                status.last_tasks.clear();
            }
            let reason = match result {
                RunResult::Missed => "MissedSchedule",
                _ => "RunSkipped",
            };
            event = Some(("Warning", reason, message.clone()));
        }
        Decision::Wait(_) => {}
    }
    if !matches!(decision, Decision::Invalid(_)) {
        status.conditions.retain(|c| c.type_ != "Valid");
    }
    let next = match &decision {
        Decision::Wait(next) => *next,
        Decision::Invalid(_) => None,
        _ if o.spec.suspend => None,
        _ => {
            let base = status.last_schedule_time.or(o.created).unwrap_or(now);
            CronSchedule::of(&o.spec)
                .ok()
                .and_then(|s| s.next_after(now.max(base)))
        }
    };
    status.next_run_time = next;
    let (ns, name) = split_key(key);
    let scope = Scope {
        kind: kind("schedules"),
        namespace: ns,
    };
    if status != o.status {
        let value = serde_json::to_value(&status).expect("a status serialises");
        // pinned to what was decided from: a claim made on a stale view fails instead of
        // running a slot twice
        let written = ctx
            .registry
            .update_with(scope, name, rv_of(&obj), Part::Status, false, |cur| {
                let mut next = cur.clone();
                next["status"] = value.clone();
                Ok(next)
            })
            .await;
        let written = match written {
            Ok(w) => w,
            Err(ApiError::Conflict { .. }) => {
                return Ok(Action::RequeueAfter(Duration::from_millis(100)))
            }
            Err(ApiError::NotFound { .. }) => return Ok(Action::Done),
            Err(e) => return Err(e.into()),
        };
        ctx.schedules.write_through(&written.object);
        if let Some((type_, reason, message)) = event {
            record_event(&ctx.registry, &written.object, type_, reason, &message).await;
        }
        if start {
            let ctx2 = ctx.clone();
            let (key2, object) = (key.to_owned(), written.object.clone());
            let spec = o.spec.clone();
            let handle = tokio::spawn(async move {
                run::run(&ctx2, &key2, &object, &spec, now).await;
                // a request that came while it ran, or a status to bring up to date
                ctx2.queue.add(key2);
            });
            ctx.runs.start(key, handle.abort_handle());
        }
    }
    set_timer(ctx, key, next);
    Ok(Action::Done)
}

/// Queues `key` again at `at` on the clock (replacing its previous timer).
fn set_timer(ctx: &ScheduleContext, key: &str, at: Option<DateTime<Utc>>) {
    let handle = at.map(|at| {
        let (clock, queue, key) = (ctx.clock.clone(), ctx.queue.clone(), key.to_owned());
        tokio::spawn(async move {
            clock.sleep_until(at).await;
            queue.add(key);
        })
        .abort_handle()
    });
    ctx.runs.set_timer(key, handle);
}

fn put_condition_on(
    status: &mut ScheduleStatus,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    set_condition(
        &mut status.conditions,
        Condition::new(type_, ok, reason, message, generation),
    );
}

#[cfg(test)]
mod tests;
