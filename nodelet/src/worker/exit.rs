//! A task that ended: how (asked or crashed, exit code, OOM), a task that vanished while
//! nobody watched, and failures that need a change to the server.

use catalyst_schemas::gameserver::GameServer;
use catalyst_schemas::lifecycle::Event;
use serde_json::json;

use super::exec::SOON;
use super::{Next, Worker};

impl Worker {
    /// The main task exited: delete it, report Stopped or Crashed with the last lines.
    pub(super) async fn report_exit(
        &mut self,
        gs: &GameServer,
        code: u32,
        oom: bool,
        asked: bool,
        events: &[Event],
    ) -> crate::Result<Next> {
        let cid = self.cid.clone();
        self.env.runtime.delete_task(&cid).await?;
        self.env.runtime.forget_oom(&cid);
        self.forget_ready();
        self.set_stop_asked(false);
        self.memory.stop_deadline = None;
        let console = self.env.runtime.console()?;
        let exit = json!({"exitCode": code, "oomKilled": oom, "finishedAt": chrono::Utc::now()});
        if gs.metadata.deletion_timestamp.is_some() {
            // Stopped lets the controller drop the finalizer: nothing may be left behind then
            self.remove_everything().await?;
        }
        if asked {
            console.system(&format!("server stopped (exit code {code})"));
            self.report(
                events,
                json!({"lastExit": exit, "reason": "Stopped", "message": null}),
            )
            .await?;
            self.event(
                "Normal",
                "Stopped",
                &format!("exited with code {code} after a stop"),
            )
            .await;
        } else {
            let why = if oom {
                "killed by the kernel's OOM killer (memory limit reached)".to_owned()
            } else {
                format!("exited with code {code}")
            };
            console.system(&format!("server crashed: {why}"));
            let tail = console.tail(Some(10)).join("\n");
            let reason = if oom { "OOMKilled" } else { "Crashed" };
            self.report(
                events,
                json!({"lastExit": exit, "reason": reason, "message": why}),
            )
            .await?;
            self.memory.crashed_at = Some(self.env.clock.now());
            self.event(
                "Warning",
                reason,
                &format!("{why}; last console lines:\n{tail}"),
            )
            .await;
        }
        Ok(Next::After(SOON))
    }

    /// No task, but the status says one runs: it ended while nobody watched.
    pub(super) async fn report_lost(
        &mut self,
        asked: bool,
        events: &[Event],
    ) -> crate::Result<Next> {
        self.set_stop_asked(false);
        self.memory.stop_deadline = None;
        let reason = if asked { "Stopped" } else { "TaskLost" };
        self.report(
            events,
            json!({"reason": reason, "message": "no task found in containerd"}),
        )
        .await?;
        if !asked {
            self.memory.crashed_at = Some(self.env.clock.now());
        }
        Ok(Next::After(SOON))
    }

    /// The server cannot run without a change: Error, with the reason said everywhere.
    pub(super) async fn fail(
        &mut self,
        reason: &str,
        message: &str,
        events: &[Event],
    ) -> crate::Result<Next> {
        tracing::warn!(server = self.name(), reason, message, "server failed");
        self.report(events, json!({"reason": reason, "message": message}))
            .await?;
        self.event("Warning", reason, message).await;
        self.console_line(&format!("{reason}: {message}"));
        Ok(Next::After(std::time::Duration::from_secs(30)))
    }
}
