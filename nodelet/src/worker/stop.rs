//! Stopping: the stop command or signal with its deadline, SIGKILL when it passes, and
//! interrupting an install.

use std::time::Duration;

use catalyst_schemas::lifecycle::Event;
use serde_json::json;

use super::plan::{StopHow, KILL_GRACE};
use super::{Next, Worker};

impl Worker {
    /// Sends the stop command or signal; the deadline wakes the worker to kill.
    pub(super) async fn send_stop(
        &mut self,
        how: StopHow,
        timeout: Duration,
        events: &[Event],
    ) -> crate::Result<Next> {
        self.set_stop_asked(true);
        self.memory.stop_deadline = Some(self.env.clock.now() + timeout);
        let console = self.env.runtime.console()?;
        match how {
            StopHow::Command(cmd) => {
                console.system(&format!("stopping: sending {cmd:?} to the console"));
                if let Err(e) = console.command(&cmd).await {
                    console.system(&format!("stop command failed ({e}); sending SIGTERM"));
                    self.env.runtime.kill(&self.cid, 15, false).await?;
                }
            }
            StopHow::Signal(name, number) => {
                console.system(&format!("stopping: sending {name}"));
                self.env.runtime.kill(&self.cid, number, false).await?;
            }
        }
        // the stop is on its way before the status says so: a failed write must not turn a
        // graceful stop into the SIGKILL at the deadline
        self.report(events, json!({})).await?;
        Ok(Next::After(timeout))
    }

    /// The stop deadline passed: SIGKILL every process of the server, look again shortly.
    pub(super) async fn kill(&mut self) -> crate::Result<Next> {
        self.console_line("stop timeout reached; killing the server");
        self.env.runtime.kill(&self.cid, 9, true).await?;
        self.memory.stop_deadline = Some(self.env.clock.now() + KILL_GRACE);
        Ok(Next::After(KILL_GRACE))
    }

    /// Kills the running install (every process of it): a stop or delete was asked, or it ran
    /// past its deadline. Its exit is reported by the next pass.
    pub(super) async fn stop_install(
        &mut self,
        timed_out: bool,
        events: &[Event],
    ) -> crate::Result<Next> {
        let again = self.memory.install_killed;
        if again {
            self.console_line("the install script is still there; killing it again");
        } else if timed_out {
            self.memory.install_timed_out = true;
            self.save();
            self.console_line("the install script ran past its timeout; killing it");
        } else {
            self.set_stop_asked(true);
            self.console_line("stopping: killing the install script");
        }
        let id = self.install_id.clone();
        self.env.runtime.kill(&id, 9, true).await?;
        self.memory.install_killed = true;
        self.memory.install_kill_deadline = Some(self.env.clock.now() + KILL_GRACE);
        if !again && !timed_out {
            self.report(events, json!({})).await?;
        }
        Ok(Next::After(KILL_GRACE))
    }
}
