//! The install script: run once in its own container (data directory at /mnt/server, as in
//! Pterodactyl), with the server's limits, as root in the server's user namespace. It is not
//! awaited: its exit wakes the worker, its deadline is a wake-up, and a stop or delete kills it.

use catalyst_schemas::gameserver::GameServer;
use catalyst_schemas::lifecycle::Event;
use serde_json::json;

use super::env::ContainerKind;
use super::exec::SOON;
use super::plan::{Launch, Observed};
use super::start::{failure_reason, Steps};
use super::{Next, Worker};
use crate::spec::Resolved;

impl Worker {
    /// Starts the install container; `events` (InstallStarted) are written first, so the
    /// image fetch shows as Installing.
    pub(super) async fn install(
        &mut self,
        gs: &GameServer,
        resolved: &Resolved,
        launch: Launch,
        events: &[Event],
    ) -> crate::Result<Next> {
        let Some(install) = resolved.install.clone() else {
            return Ok(Next::After(SOON));
        };
        self.launch_bookkeeping(&launch).await?;
        self.report(events, json!({"reason": null, "message": null}))
            .await?;
        self.console_line("running the install script");
        let id = self.install_id.clone();
        // an install container left by an earlier attempt must not run beside the new one
        self.env.runtime.remove(&id).await?;
        let image_ref = install
            .image
            .clone()
            .unwrap_or_else(|| resolved.image.clone());
        let kind = ContainerKind::Install {
            script: install.script.clone(),
            entrypoint: install.entrypoint.clone().unwrap_or_else(|| "sh".into()),
        };
        let gs = self.typed().unwrap_or_else(|_| gs.clone());
        let prepared = self
            .prepare_container(&id, &kind, &gs, resolved, &image_ref, &mut Steps::new())
            .await;
        self.pin(resolved);
        let started = match prepared {
            Ok(mut p) => match p.ports_mapped().await {
                Ok(()) => self.env.runtime.start(&id, p.mounts).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            let _ = self.env.runtime.remove(&id).await;
            // networking and containerd hiccups are retried like a start's
            let reason = failure_reason(&e, "InstallFailed");
            return self.start_failed(&gs, reason, e).await;
        }
        self.start_failures = 0;
        if let Some(ack) = &launch.acknowledge_reinstall {
            // acknowledged once the script runs (a failed pull tries again), where every node
            // sees it; not installed until it ends well
            self.memory.reinstalled_at = Some(ack.clone());
            let mut status = json!({ "reinstalledAt": ack });
            self.with_condition(
                &mut status,
                "Installed",
                false,
                "Reinstalling",
                "the install script runs again (reinstall)",
            );
            self.patch_status(status).await?;
        }
        self.set_stop_asked(false);
        self.memory.install_killed = false;
        self.memory.install_kill_deadline = None;
        self.memory.install_timed_out = false;
        self.save();
        let timeout = install.timeout();
        self.memory.install_deadline = Some(self.env.clock.now() + timeout);
        self.event("Normal", "InstallStarted", "the install script runs")
            .await;
        Ok(Next::After(timeout))
    }

    /// An install runs that this worker did not start (the nodelet restarted): it gets a full
    /// timeout from now.
    pub(super) async fn adopt_install(
        &mut self,
        gs: &GameServer,
        observed: Observed,
    ) -> crate::Result<Next> {
        let timeout = observed
            .resolved
            .ok()
            .and_then(|r| r.install)
            .or_else(|| gs.spec.install.clone())
            .map_or_else(|| std::time::Duration::from_secs(3600), |i| i.timeout());
        tracing::info!(server = self.name(), "adopting a running install");
        self.memory.install_deadline = Some(self.env.clock.now() + timeout);
        Ok(Next::After(timeout))
    }

    /// The install container exited: remove it, give the files back to the server's user, and
    /// report the outcome.
    pub(super) async fn finish_install(
        &mut self,
        code: u32,
        interrupted: bool,
        timed_out: bool,
        events: &[Event],
    ) -> crate::Result<Next> {
        // the container goes last: until the outcome is written, the next pass finds the
        // exit again instead of running the script anew
        let id = self.install_id.clone();
        self.env.runtime.own_data().await?;
        self.install_outcome(code, interrupted, timed_out, events)
            .await?;
        self.memory.install_deadline = None;
        self.memory.install_killed = false;
        self.memory.install_kill_deadline = None;
        self.memory.install_timed_out = false;
        self.set_stop_asked(false);
        self.save();
        self.env.runtime.remove(&id).await?;
        Ok(if interrupted || (code == 0 && !timed_out) {
            Next::After(SOON)
        } else {
            Next::Idle
        })
    }

    async fn install_outcome(
        &mut self,
        code: u32,
        interrupted: bool,
        timed_out: bool,
        events: &[Event],
    ) -> crate::Result<()> {
        let console = self.env.runtime.console()?;
        if interrupted {
            console.system("install script stopped");
            self.report(
                events,
                json!({"reason": "Stopped", "message": "the install was stopped before it ended"}),
            )
            .await?;
            self.event(
                "Normal",
                "InstallStopped",
                "the install script was stopped; it runs again at the next start",
            )
            .await;
            return Ok(());
        }
        if code == 0 && !timed_out {
            console.system("install script finished");
            let mut status = json!({"reason": "Installed", "message": null});
            self.with_condition(
                &mut status,
                "Installed",
                true,
                "InstallSucceeded",
                "the install script exited 0",
            );
            self.report(events, status).await?;
            self.event("Normal", "Installed", "the install script exited 0")
                .await;
            return Ok(());
        }
        let tail = console.tail(Some(10)).join("\n");
        let msg = if timed_out {
            "the install script ran past its timeout and was killed".to_owned()
        } else {
            format!("the install script exited with code {code}")
        };
        console.system(&msg);
        let mut status = json!({"reason": "InstallFailed", "message": msg});
        self.with_condition(&mut status, "Installed", false, "InstallFailed", &msg);
        self.report(events, status).await?;
        self.event(
            "Warning",
            "InstallFailed",
            &format!("{msg}; last lines:\n{tail}"),
        )
        .await;
        Ok(())
    }
}
