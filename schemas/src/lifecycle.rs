//! The GameServer lifecycle: phases, the events that move between them, and the one transition
//! table every part of Catalyst obeys.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a GameServer is in its life (`status.phase`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum Phase {
    /// Accepted, waiting for a node.
    #[default]
    Pending,
    /// Bound to a node; the nodelet takes over.
    Scheduled,
    /// The install script runs.
    Installing,
    /// The container's task runs; the ready pattern has not been seen yet.
    Starting,
    /// Ready: the ready pattern was seen, or there is none.
    Running,
    /// The stop command or signal was sent; waiting for the exit.
    Stopping,
    /// Not running, as asked.
    Stopped,
    /// Exited without being asked to.
    Crashed,
    /// Stopped and held stopped by `spec.suspended`.
    Suspended,
    /// Data moving to another node after `spec.nodeName` changed.
    Transferring,
    /// The node was lost; what runs there is not known.
    Unknown,
    /// Cannot proceed without a change (install failed, image missing, …).
    Error,
}

impl Phase {
    /// Every phase, in declaration order.
    pub const ALL: [Phase; 12] = [
        Phase::Pending,
        Phase::Scheduled,
        Phase::Installing,
        Phase::Starting,
        Phase::Running,
        Phase::Stopping,
        Phase::Stopped,
        Phase::Crashed,
        Phase::Suspended,
        Phase::Transferring,
        Phase::Unknown,
        Phase::Error,
    ];

    /// The phase's name as it appears in `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Scheduled => "Scheduled",
            Phase::Installing => "Installing",
            Phase::Starting => "Starting",
            Phase::Running => "Running",
            Phase::Stopping => "Stopping",
            Phase::Stopped => "Stopped",
            Phase::Crashed => "Crashed",
            Phase::Suspended => "Suspended",
            Phase::Transferring => "Transferring",
            Phase::Unknown => "Unknown",
            Phase::Error => "Error",
        }
    }

    /// True when a container may be running in this phase.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Installing | Phase::Starting | Phase::Running | Phase::Stopping
        )
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happens to a GameServer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// The scheduler bound the server to a node.
    Scheduled,
    /// The server lost its node binding before anything ran (node deleted or cordoned away).
    Unscheduled,
    /// The install script container started.
    InstallStarted,
    /// The install script exited 0.
    InstallSucceeded,
    /// The install script failed.
    InstallFailed,
    /// The server's task started.
    Started,
    /// The ready pattern matched (or there is none).
    Ready,
    /// The stop command or signal was sent.
    StopRequested,
    /// The task exited after a stop was asked.
    Stopped,
    /// The task exited without a stop being asked (exit code or OOM).
    Crashed,
    /// `spec.suspended` became true and nothing runs.
    Suspended,
    /// `spec.suspended` became false.
    Resumed,
    /// The data began moving to another node.
    TransferStarted,
    /// The data arrived on the new node.
    TransferSucceeded,
    /// The node heartbeat was lost.
    NodeLost,
    /// Something failed that needs a change to fix (image, install, transfer, a start of a
    /// stopped or crashed server whose spec cannot run).
    Failed,
    /// A user or controller asks to try again from the start (reinstall, spec change after Error).
    Reset,
}

impl Event {
    /// Every event, in declaration order.
    pub const ALL: [Event; 17] = [
        Event::Scheduled,
        Event::Unscheduled,
        Event::InstallStarted,
        Event::InstallSucceeded,
        Event::InstallFailed,
        Event::Started,
        Event::Ready,
        Event::StopRequested,
        Event::Stopped,
        Event::Crashed,
        Event::Suspended,
        Event::Resumed,
        Event::TransferStarted,
        Event::TransferSucceeded,
        Event::NodeLost,
        Event::Failed,
        Event::Reset,
    ];
}

/// An event that the table does not allow in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event {event:?} is not allowed in phase {from}")]
pub struct IllegalTransition {
    /// The phase the server was in.
    pub from: Phase,
    /// The event that was refused.
    pub event: Event,
}

/// The transition table: the phase after `event` happens in `from`, or the refusal.
///
/// The whole lifecycle is this one function; controllers, nodelets and the API server's status
/// admission all ask it.
pub fn transition(from: Phase, event: Event) -> Result<Phase, IllegalTransition> {
    use Event as E;
    use Phase as P;
    let to = match (from, event) {
        (P::Pending, E::Scheduled) => P::Scheduled,
        (P::Scheduled, E::Unscheduled) => P::Pending,

        (P::Scheduled | P::Stopped | P::Crashed | P::Error, E::InstallStarted) => P::Installing,
        (P::Installing, E::InstallSucceeded) => P::Stopped,
        (P::Installing, E::InstallFailed) => P::Error,

        (P::Scheduled | P::Stopped | P::Crashed | P::Unknown, E::Started) => P::Starting,
        (P::Starting | P::Unknown, E::Ready) => P::Running,
        (P::Starting | P::Running, E::StopRequested) => P::Stopping,
        (P::Installing, E::StopRequested) => P::Stopping,
        (P::Stopping | P::Unknown, E::Stopped) => P::Stopped,
        (P::Starting | P::Running | P::Unknown, E::Crashed) => P::Crashed,

        (P::Pending | P::Scheduled | P::Stopped | P::Crashed | P::Error, E::Suspended) => {
            P::Suspended
        }
        (P::Suspended, E::Resumed) => P::Pending,

        (P::Stopped | P::Crashed | P::Error, E::TransferStarted) => P::Transferring,
        (P::Transferring, E::TransferSucceeded) => P::Stopped,

        (
            P::Scheduled
            | P::Installing
            | P::Starting
            | P::Running
            | P::Stopping
            | P::Stopped
            | P::Crashed
            | P::Transferring,
            E::NodeLost,
        ) => P::Unknown,

        (
            P::Pending
            | P::Scheduled
            | P::Installing
            | P::Starting
            | P::Stopping
            | P::Stopped
            | P::Crashed
            | P::Transferring,
            E::Failed,
        ) => P::Error,

        (P::Error | P::Crashed | P::Stopped | P::Unknown, E::Reset) => P::Pending,

        _ => return Err(IllegalTransition { from, event }),
    };
    Ok(to)
}

/// True when a status write may move a server from `from` to `to`: the same phase, or a phase
/// some event leads to.
pub fn can_move(from: Phase, to: Phase) -> bool {
    from == to || Event::ALL.iter().any(|&e| transition(from, e) == Ok(to))
}

/// The events that lead from `from` to `to`.
pub fn events_between(from: Phase, to: Phase) -> Vec<Event> {
    Event::ALL
        .iter()
        .copied()
        .filter(|&e| transition(from, e) == Ok(to))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use Phase as P;

    /// The lifecycle as a plain list of edges, written independently of `transition`.
    const EDGES: &[(Phase, Event, Phase)] = &[
        (P::Pending, E::Scheduled, P::Scheduled),
        (P::Pending, E::Suspended, P::Suspended),
        (P::Pending, E::Failed, P::Error),
        (P::Scheduled, E::Unscheduled, P::Pending),
        (P::Scheduled, E::InstallStarted, P::Installing),
        (P::Scheduled, E::Started, P::Starting),
        (P::Scheduled, E::Suspended, P::Suspended),
        (P::Scheduled, E::NodeLost, P::Unknown),
        (P::Scheduled, E::Failed, P::Error),
        (P::Installing, E::InstallSucceeded, P::Stopped),
        (P::Installing, E::InstallFailed, P::Error),
        (P::Installing, E::StopRequested, P::Stopping),
        (P::Installing, E::NodeLost, P::Unknown),
        (P::Installing, E::Failed, P::Error),
        (P::Starting, E::Ready, P::Running),
        (P::Starting, E::StopRequested, P::Stopping),
        (P::Starting, E::Crashed, P::Crashed),
        (P::Starting, E::NodeLost, P::Unknown),
        (P::Starting, E::Failed, P::Error),
        (P::Running, E::StopRequested, P::Stopping),
        (P::Running, E::Crashed, P::Crashed),
        (P::Running, E::NodeLost, P::Unknown),
        (P::Stopping, E::Stopped, P::Stopped),
        (P::Stopping, E::NodeLost, P::Unknown),
        (P::Stopping, E::Failed, P::Error),
        (P::Stopped, E::InstallStarted, P::Installing),
        (P::Stopped, E::Started, P::Starting),
        (P::Stopped, E::Suspended, P::Suspended),
        (P::Stopped, E::TransferStarted, P::Transferring),
        (P::Stopped, E::NodeLost, P::Unknown),
        (P::Stopped, E::Reset, P::Pending),
        (P::Stopped, E::Failed, P::Error),
        (P::Crashed, E::InstallStarted, P::Installing),
        (P::Crashed, E::Started, P::Starting),
        (P::Crashed, E::Suspended, P::Suspended),
        (P::Crashed, E::TransferStarted, P::Transferring),
        (P::Crashed, E::NodeLost, P::Unknown),
        (P::Crashed, E::Reset, P::Pending),
        (P::Crashed, E::Failed, P::Error),
        (P::Suspended, E::Resumed, P::Pending),
        (P::Transferring, E::TransferSucceeded, P::Stopped),
        (P::Transferring, E::NodeLost, P::Unknown),
        (P::Transferring, E::Failed, P::Error),
        (P::Unknown, E::Started, P::Starting),
        (P::Unknown, E::Ready, P::Running),
        (P::Unknown, E::Stopped, P::Stopped),
        (P::Unknown, E::Crashed, P::Crashed),
        (P::Unknown, E::Reset, P::Pending),
        (P::Error, E::InstallStarted, P::Installing),
        (P::Error, E::Suspended, P::Suspended),
        (P::Error, E::TransferStarted, P::Transferring),
        (P::Error, E::Reset, P::Pending),
    ];

    #[test]
    fn every_phase_event_pair_matches_the_edge_list() {
        let mut checked = 0;
        for &from in &P::ALL {
            for &event in &E::ALL {
                let expected = EDGES
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                match (transition(from, event), expected) {
                    (Ok(got), Some(want)) => assert_eq!(got, want, "{from} + {event:?}"),
                    (Err(err), None) => {
                        assert_eq!(err, IllegalTransition { from, event });
                    }
                    (got, want) => {
                        panic!("{from} + {event:?}: table gives {got:?}, edge list {want:?}")
                    }
                }
                checked += 1;
            }
        }
        assert_eq!(checked, P::ALL.len() * E::ALL.len());
    }

    #[test]
    fn suspended_is_left_only_by_resuming() {
        for &event in &E::ALL {
            let allowed = transition(P::Suspended, event).is_ok();
            assert_eq!(allowed, event == E::Resumed, "{event:?}");
        }
    }

    #[test]
    fn a_running_server_cannot_be_suspended_or_moved_without_stopping_first() {
        assert!(transition(P::Running, E::Suspended).is_err());
        assert!(transition(P::Running, E::TransferStarted).is_err());
        assert!(transition(P::Running, E::InstallStarted).is_err());
    }

    #[test]
    fn every_phase_is_reachable_from_pending() {
        let mut seen = vec![P::Pending];
        let mut i = 0;
        while i < seen.len() {
            for &e in &E::ALL {
                if let Ok(to) = transition(seen[i], e) {
                    if !seen.contains(&to) {
                        seen.push(to);
                    }
                }
            }
            i += 1;
        }
        seen.sort();
        assert_eq!(seen, P::ALL.to_vec());
    }

    #[test]
    fn status_writes_may_repeat_a_phase_or_follow_an_edge() {
        assert!(can_move(P::Running, P::Running));
        assert!(can_move(P::Starting, P::Running));
        assert!(!can_move(P::Pending, P::Running));
        assert!(!can_move(P::Suspended, P::Running));
        assert_eq!(events_between(P::Running, P::Crashed), vec![E::Crashed]);
    }
}
