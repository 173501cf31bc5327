//! Carrying a plan out: dispatch to the verbs, and the status writes that move the phase by
//! lifecycle events (each checked against the table; a refused one is logged and recorded as
//! a Warning Event, never dropped silently).

use std::time::Duration;

use catalyst_schemas::gameserver::GameServer;
use catalyst_schemas::lifecycle::{transition, Event};
use catalyst_schemas::object::{generation_of, is_newer_or_same, phase_of};
use serde_json::{json, Value};

use super::plan::{Observed, Plan};
use super::{Next, Worker};

/// How soon to look again after an action whose effect the next pass checks.
pub(super) const SOON: Duration = Duration::from_millis(10);

impl Worker {
    /// Carries out one plan.
    pub(super) async fn execute(
        &mut self,
        plan: Plan,
        gs: &GameServer,
        observed: Observed,
    ) -> crate::Result<Next> {
        let events = plan.events(phase_of(&self.gs));
        match plan {
            Plan::Nothing => Ok(Next::Idle),
            Plan::Retry(after) | Plan::WaitStop(after) | Plan::WaitInstall(after) => {
                Ok(Next::After(after))
            }
            Plan::WaitBackoff(after) => {
                // a crash the worker did not see (nodelet restart): the backoff counts from now
                if self.memory.crashed_at.is_none() {
                    self.memory.crashed_at = Some(self.env.clock.now());
                }
                Ok(Next::After(after))
            }
            Plan::Adopt => self.adopt(&events).await,
            Plan::AwaitReady => self.await_ready(),
            Plan::MarkReady => self.mark_ready(&events).await,
            Plan::SendStop { how, timeout } => self.send_stop(how, timeout, &events).await,
            Plan::Kill => self.kill().await,
            Plan::StopInstall { timed_out } => self.stop_install(timed_out, &events).await,
            Plan::ReportExit { code, oom, asked } => {
                self.report_exit(gs, code, oom, asked, &events).await
            }
            Plan::ReportLost { asked } => self.report_lost(asked, &events).await,
            Plan::Fail { reason, message } => self.fail(&reason, &message, &events).await,
            Plan::Install(launch) => {
                let resolved = observed.resolved.map_err(crate::Error::Config)?;
                self.install(gs, &resolved, launch, &events).await
            }
            Plan::AdoptInstall => self.adopt_install(gs, observed).await,
            Plan::FinishInstall {
                code,
                interrupted,
                timed_out,
            } => {
                self.finish_install(code, interrupted, timed_out, &events)
                    .await
            }
            Plan::Start(launch) => {
                let resolved = observed.resolved.map_err(crate::Error::Config)?;
                self.start(gs, &resolved, launch, &events).await
            }
            Plan::CleanUp => self.clean_up(&events).await,
        }
    }

    /// Writes the phase the `events` lead to, with `extra` status fields. Intermediate phases
    /// are written on their own (the API checks every write against the table). An event the
    /// table refuses stops the walk: it is logged and recorded, and `extra` is written anyway.
    pub(super) async fn report(&mut self, events: &[Event], extra: Value) -> crate::Result<()> {
        let mut patch = extra;
        if !patch.is_object() {
            patch = json!({});
        }
        let mut from = phase_of(&self.gs);
        let mut to = None;
        for (i, &event) in events.iter().enumerate() {
            match transition(from, event) {
                Ok(next) => {
                    if i + 1 < events.len() {
                        self.patch_status(json!({ "phase": next })).await?;
                    }
                    from = next;
                    to = Some(next);
                }
                Err(refused) => {
                    tracing::warn!(server = self.name(), %refused, "lifecycle refuses the event; status written without the phase");
                    self.event(
                        "Warning",
                        "IllegalTransition",
                        &format!("the nodelet saw {event:?} while the server is {from}; the phase is left as it is"),
                    )
                    .await;
                    break;
                }
            }
        }
        if let Some(phase) = to {
            patch["phase"] = json!(phase);
        }
        patch["observedGeneration"] = json!(generation_of(&self.gs));
        self.patch_status(patch).await
    }

    /// Merges fields into the status and keeps the object written (if newer).
    pub(super) async fn patch_status(&mut self, status: Value) -> crate::Result<()> {
        let updated = self.env.status.patch_status(&self.gs, status).await?;
        if is_newer_or_same(&updated, &self.gs) {
            self.gs = updated;
        }
        Ok(())
    }

    /// Adds the server's conditions with one set (typed; the transition time stays while the
    /// status holds) to a status patch, so the condition is written with the phase.
    pub(super) fn with_condition(
        &self,
        status: &mut Value,
        type_: &str,
        ok: bool,
        reason: &str,
        message: &str,
    ) {
        status["conditions"] = self
            .gs
            .pointer("/status/conditions")
            .cloned()
            .unwrap_or(json!([]));
        catalyst_schemas::object::put_condition(
            status,
            catalyst_schemas::Condition::new(type_, ok, reason, message, generation_of(&self.gs)),
        );
    }

    pub(super) fn name(&self) -> String {
        catalyst_schemas::object::name_of(&self.gs).to_owned()
    }
}
