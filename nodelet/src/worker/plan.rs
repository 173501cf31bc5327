//! The worker's decision: a pure function from what containerd shows, what the GameServer asks
//! and what the worker remembers to one [`Plan`]. No I/O happens here; the executor carries the
//! plan out, and the lifecycle events a plan causes are named by [`Plan::events`].

use std::time::Duration;

use catalyst_schemas::gameserver::{DesiredState, GameServer, RestartPolicy, StopSpec};
use catalyst_schemas::lifecycle::{Event, Phase};
use catalyst_schemas::object::{REINSTALL_REQUESTED_AT, RESTARTED_AT};
use tokio::time::Instant;

use crate::ctd::TaskState;
use crate::spec::Resolved;

/// Restarts after which a crashing server is reported as crash-looping.
pub const CRASH_LOOP: i64 = 5;

/// How long a killed task gets to go before it is killed again.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long to wait before looking again at a task containerd cannot describe.
pub const UNKNOWN_RETRY: Duration = Duration::from_secs(1);

/// Crash backoff: 1 s doubling per restart, at most 60 s.
pub fn backoff(restarts: i64) -> Duration {
    Duration::from_secs(1u64 << restarts.clamp(0, 6) as u64).min(Duration::from_secs(60))
}

/// The task of one container as containerd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// No task (no container, or a container that never started).
    Absent,
    /// Created or running.
    Running,
    /// Exited with this status; the task is still there to be read.
    Exited(u32),
    /// containerd cannot say.
    Unknown,
}

impl From<Option<TaskState>> for Task {
    fn from(s: Option<TaskState>) -> Self {
        match s {
            None => Task::Absent,
            Some(TaskState::Created | TaskState::Running) => Task::Running,
            Some(TaskState::Stopped(code)) => Task::Exited(code),
            Some(TaskState::Unknown) => Task::Unknown,
        }
    }
}

/// What the worker sees on the node.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The server's main container.
    pub main: Task,
    /// The install container.
    pub install: Task,
    /// The ready pattern was seen on the console since the main task started.
    pub ready: bool,
    /// The kernel's OOM killer hit the main container since its task started.
    pub oom: bool,
    /// The server resolved against its template, or why it cannot be.
    pub resolved: Result<Resolved, String>,
}

/// What the worker remembers: partly on disk (`run/<uid>/state.json`), partly in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// The restartedAt annotation value already acted on (on disk).
    pub restarted_at: Option<String>,
    /// The reinstallRequestedAt annotation value already acted on (on disk).
    pub reinstalled_at: Option<String>,
    /// A stop was asked for the current task or install (on disk).
    pub stop_asked: bool,
    /// When the main task is killed if it has not stopped.
    pub stop_deadline: Option<Instant>,
    /// When the running install is killed as too slow.
    pub install_deadline: Option<Instant>,
    /// The install was killed (stop or timeout); waiting for it to go.
    pub install_killed: bool,
    /// When a killed install that is still there is killed again.
    pub install_kill_deadline: Option<Instant>,
    /// The install was killed because it ran past its deadline.
    pub install_timed_out: bool,
    /// When the server last crashed (the backoff counts from here).
    pub crashed_at: Option<Instant>,
}

/// How a running server is asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopHow {
    /// A line written to the console.
    Command(String),
    /// A signal, by name and number.
    Signal(String, u32),
}

/// How to stop a server, from its resolved spec.
pub fn stop_how(stop: Option<&StopSpec>) -> (StopHow, Duration) {
    let timeout = Duration::from_secs(stop.map_or(30, |s| u64::from(s.timeout_seconds)));
    let how = match stop.and_then(|s| s.command.clone()) {
        Some(cmd) => StopHow::Command(cmd),
        None => {
            let name = stop
                .and_then(|s| s.signal.clone())
                .unwrap_or_else(|| "SIGTERM".into());
            let number = signal_number(&name);
            StopHow::Signal(name, number)
        }
    };
    (how, timeout)
}

/// A signal's number by name; unknown names mean SIGTERM.
pub fn signal_number(name: &str) -> u32 {
    match name {
        "SIGHUP" => 1,
        "SIGINT" => 2,
        "SIGQUIT" => 3,
        "SIGKILL" => 9,
        "SIGUSR1" => 10,
        "SIGUSR2" => 12,
        "SIGABRT" => 6,
        _ => 15,
    }
}

/// Status bookkeeping that goes with launching a server's container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// `status.restartCount` to write first (a crash restart counts up, a user restart resets).
    pub restart_count: Option<i64>,
    /// The restart annotation value this launch acts on.
    pub acknowledge_restart: Option<String>,
    /// The reinstall annotation value this launch (an install) acts on.
    pub acknowledge_reinstall: Option<String>,
    /// The restart count reached [`CRASH_LOOP`]: say so.
    pub crash_loop: bool,
}

/// One decision of the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing to do until something changes.
    Nothing,
    /// A task runs that the status does not show (after a node or nodelet restart): take it
    /// over and report it started.
    Adopt,
    /// The task runs; wait for the ready line.
    AwaitReady,
    /// The ready line was seen (or there is no pattern).
    MarkReady,
    /// Ask the running server to stop; kill it after `timeout`.
    SendStop {
        /// Command or signal.
        how: StopHow,
        /// Time to stop before SIGKILL.
        timeout: Duration,
    },
    /// A stop was sent; wait this long for the exit.
    WaitStop(Duration),
    /// The stop timed out: SIGKILL every process of the server.
    Kill,
    /// The main task exited: record how and remove the task.
    ReportExit {
        /// Exit status.
        code: u32,
        /// Killed by the OOM killer.
        oom: bool,
        /// A stop had been asked (else it crashed).
        asked: bool,
    },
    /// No task, but the status says one runs: it ended while nobody watched.
    ReportLost {
        /// Nothing should run anyway (stop asked, stopped, deleted): Stopped, else Crashed.
        asked: bool,
    },
    /// Crashed and restarting, but the backoff has not passed yet.
    WaitBackoff(Duration),
    /// Run the install script.
    Install(Launch),
    /// An install runs that the worker did not start (nodelet restart): give it a deadline.
    AdoptInstall,
    /// The install runs; wait for it at most this long.
    WaitInstall(Duration),
    /// Kill the running install: a stop or delete was asked, or it ran too long.
    StopInstall {
        /// It ran past its deadline (else a stop was asked).
        timed_out: bool,
    },
    /// The install container exited.
    FinishInstall {
        /// Exit status.
        code: u32,
        /// It was killed for a stop or delete.
        interrupted: bool,
        /// It was killed for running too long.
        timed_out: bool,
    },
    /// Start the server's container.
    Start(Launch),
    /// The server cannot start without a change to it.
    Fail {
        /// CamelCase reason.
        reason: String,
        /// For people.
        message: String,
    },
    /// Remove the server's containers, network and namespaces (its data goes only when the
    /// server is gone from the API).
    CleanUp,
    /// containerd cannot describe a task: look again shortly.
    Retry(Duration),
}

impl Plan {
    /// The lifecycle events carrying out this plan causes, in order, for a server in `from`.
    /// The executor writes the phase each leads to; the table may still refuse one (a bug, or a
    /// status changed by someone else meanwhile), which is surfaced, never dropped.
    pub fn events(&self, from: Phase) -> Vec<Event> {
        match self {
            Plan::Adopt => vec![Event::Started],
            Plan::MarkReady => vec![Event::Ready],
            Plan::SendStop { .. } => match from {
                Phase::Stopping => vec![],
                // a task runs that the status does not show: it is taken over, then stopped
                Phase::Scheduled | Phase::Stopped | Phase::Crashed | Phase::Unknown => {
                    vec![Event::Started, Event::StopRequested]
                }
                _ => vec![Event::StopRequested],
            },
            // the status already says nothing runs: only the exit is recorded
            Plan::ReportExit { .. } | Plan::ReportLost { .. }
                if matches!(from, Phase::Stopped | Phase::Crashed) =>
            {
                vec![]
            }
            // a task that started and ended before its start was written
            Plan::ReportExit { asked, .. } if from == Phase::Scheduled => {
                let mut events = vec![Event::Started];
                events.extend(if *asked {
                    vec![Event::StopRequested, Event::Stopped]
                } else {
                    vec![Event::Crashed]
                });
                events
            }
            Plan::ReportExit { asked: true, .. } | Plan::ReportLost { asked: true } => match from {
                Phase::Starting | Phase::Running | Phase::Installing => {
                    vec![Event::StopRequested, Event::Stopped]
                }
                _ => vec![Event::Stopped],
            },
            Plan::ReportExit { asked: false, .. } | Plan::ReportLost { asked: false } => {
                vec![Event::Crashed]
            }
            Plan::Install(_) if from != Phase::Installing => vec![Event::InstallStarted],
            Plan::StopInstall { timed_out: false } if from == Phase::Installing => {
                vec![Event::StopRequested]
            }
            // an install container from an earlier life: its outcome goes to the Installed
            // condition, the phase stays
            Plan::FinishInstall { .. } if !matches!(from, Phase::Installing | Phase::Stopping) => {
                vec![]
            }
            Plan::FinishInstall {
                interrupted: true,
                timed_out: false,
                ..
            } => match from {
                Phase::Installing => vec![Event::StopRequested, Event::Stopped],
                Phase::Stopping => vec![Event::Stopped],
                _ => vec![],
            },
            Plan::FinishInstall {
                code: 0,
                timed_out: false,
                ..
            } if from == Phase::Stopping => vec![Event::Stopped],
            Plan::FinishInstall {
                code: 0,
                timed_out: false,
                ..
            } => vec![Event::InstallSucceeded],
            Plan::FinishInstall { .. } if from == Phase::Stopping => vec![Event::Failed],
            Plan::FinishInstall { .. } => vec![Event::InstallFailed],
            Plan::Start(_) => vec![Event::Started],
            Plan::Fail { .. } => vec![Event::Failed],
            Plan::CleanUp if matches!(from, Phase::Stopping | Phase::Unknown) => {
                vec![Event::Stopped]
            }
            _ => vec![],
        }
    }
}

/// Decides what to do next. `now` is the clock the deadlines in `memory` are on.
pub fn plan(observed: &Observed, gs: &GameServer, memory: &Memory, now: Instant) -> Plan {
    let status = gs.status.clone().unwrap_or_default();
    let phase = status.phase;
    let deleting = gs.metadata.deletion_timestamp.is_some();
    let annotation = gs.metadata.annotations.get(RESTARTED_AT);
    let restart_wanted = annotation.is_some_and(|v| Some(v) != memory.restarted_at.as_ref());
    let reinstall = gs.metadata.annotations.get(REINSTALL_REQUESTED_AT);
    // acted on once: by this node (memory) or by any node (the status names the last one)
    let reinstall_wanted = reinstall.is_some_and(|v| {
        Some(v) != memory.reinstalled_at.as_ref() && Some(v) != status.reinstalled_at.as_ref()
    }) && observed
        .resolved
        .as_ref()
        .is_ok_and(|r| r.install.is_some());
    let want_run = !deleting
        && gs.spec.state == DesiredState::Running
        && !gs.spec.suspended
        && !matches!(
            phase,
            Phase::Pending | Phase::Error | Phase::Suspended | Phase::Transferring
        );
    let left = |deadline: Instant| deadline.saturating_duration_since(now);

    // The install container first: while it exists the main container does not run.
    match observed.install {
        Task::Running => {
            if memory.install_killed {
                return match memory.install_kill_deadline {
                    Some(d) if now < d => Plan::WaitInstall(left(d)),
                    _ => Plan::StopInstall {
                        timed_out: memory.install_timed_out,
                    },
                };
            }
            if !want_run || memory.stop_asked {
                return Plan::StopInstall { timed_out: false };
            }
            return match memory.install_deadline {
                None => Plan::AdoptInstall,
                Some(d) if now >= d => Plan::StopInstall { timed_out: true },
                Some(d) => Plan::WaitInstall(left(d)),
            };
        }
        Task::Exited(code) => {
            // killed for a stop (or a stop was asked as it ended): a script that got to exit 0
            // still counts as installed
            return Plan::FinishInstall {
                code,
                interrupted: !memory.install_timed_out
                    && code != 0
                    && (memory.install_killed || memory.stop_asked),
                timed_out: memory.install_timed_out,
            };
        }
        Task::Unknown => return Plan::Retry(UNKNOWN_RETRY),
        Task::Absent => {}
    }

    match observed.main {
        Task::Running => {
            let stopping = phase == Phase::Stopping;
            if !want_run || restart_wanted || reinstall_wanted || memory.stop_asked || stopping {
                return match memory.stop_deadline {
                    Some(d) if now >= d => Plan::Kill,
                    Some(d) => Plan::WaitStop(left(d)),
                    None => {
                        let stop = observed
                            .resolved
                            .as_ref()
                            .ok()
                            .and_then(|r| r.stop.as_ref());
                        let (how, timeout) = stop_how(stop);
                        Plan::SendStop { how, timeout }
                    }
                };
            }
            match phase {
                Phase::Unknown | Phase::Scheduled | Phase::Stopped | Phase::Crashed => Plan::Adopt,
                Phase::Starting if observed.ready => Plan::MarkReady,
                Phase::Starting => Plan::AwaitReady,
                _ => Plan::Nothing,
            }
        }
        Task::Exited(code) => Plan::ReportExit {
            code,
            oom: observed.oom,
            asked: memory.stop_asked || phase == Phase::Stopping,
        },
        Task::Unknown => Plan::Retry(UNKNOWN_RETRY),
        Task::Absent => {
            let installed = status.conditions.iter().any(|c| {
                c.type_ == "Installed" && c.status == catalyst_schemas::meta::ConditionStatus::True
            });
            let install_due = (!installed || reinstall_wanted)
                && observed
                    .resolved
                    .as_ref()
                    .is_ok_and(|r| r.install.is_some());
            if matches!(
                phase,
                Phase::Starting | Phase::Running | Phase::Stopping | Phase::Unknown
            ) {
                let asked = phase == Phase::Stopping || !want_run || memory.stop_asked;
                return Plan::ReportLost { asked };
            }
            if phase == Phase::Installing {
                let asked = !want_run || memory.stop_asked;
                // an install that vanished with nothing asked is simply run again; with no
                // install left to run it is over
                if asked || !install_due {
                    return Plan::ReportLost { asked: true };
                }
            }
            if deleting {
                return Plan::CleanUp;
            }
            if !want_run {
                return Plan::Nothing;
            }
            if let Err(message) = &observed.resolved {
                return Plan::Fail {
                    reason: "InvalidSpec".into(),
                    message: message.clone(),
                };
            }
            let mut launch = Launch::default();
            if phase == Phase::Crashed && !restart_wanted {
                let clean = status
                    .last_exit
                    .as_ref()
                    .is_some_and(|e| e.exit_code == 0 && !e.oom_killed);
                let restart = match gs.spec.restart_policy {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnCrash => !clean,
                    RestartPolicy::Never => false,
                };
                if !restart {
                    return Plan::Nothing;
                }
                let wait = backoff(status.restart_count);
                let since = memory
                    .crashed_at
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                if since < wait {
                    return Plan::WaitBackoff(wait - since);
                }
                let count = status.restart_count + 1;
                launch.restart_count = Some(count);
                launch.crash_loop = count >= CRASH_LOOP;
            }
            if restart_wanted {
                launch.acknowledge_restart = annotation.cloned();
                if status.restart_count != 0 {
                    launch.restart_count = Some(0);
                }
            }
            if reinstall_wanted {
                launch.acknowledge_reinstall = reinstall.cloned();
            }
            if install_due {
                Plan::Install(launch)
            } else {
                Plan::Start(launch)
            }
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
