//! The power actions on a GameServer (`POST …/gameservers/NAME/{start,stop,restart,suspend,
//! unsuspend,reinstall}`): each is one merge patch, so RBAC can grant them one by one while the
//! object stays declarative.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::object::{REINSTALL_REQUESTED_AT, RESTARTED_AT};

/// One power action, named as its subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// `spec.state: Running`.
    Start,
    /// `spec.state: Stopped`.
    Stop,
    /// [`RESTARTED_AT`] set to now.
    Restart,
    /// `spec.suspended: true`.
    Suspend,
    /// `spec.suspended: false`.
    Unsuspend,
    /// [`REINSTALL_REQUESTED_AT`] set to now.
    Reinstall,
}

impl PowerAction {
    /// Every action.
    pub const ALL: [PowerAction; 6] = [
        PowerAction::Start,
        PowerAction::Stop,
        PowerAction::Restart,
        PowerAction::Suspend,
        PowerAction::Unsuspend,
        PowerAction::Reinstall,
    ];

    /// The subresource: `start`, `stop`, …
    pub fn subresource(self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Stop => "stop",
            PowerAction::Restart => "restart",
            PowerAction::Suspend => "suspend",
            PowerAction::Unsuspend => "unsuspend",
            PowerAction::Reinstall => "reinstall",
        }
    }

    /// The action of a subresource name.
    pub fn from_subresource(sub: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.subresource() == sub)
    }

    /// What the CLI prints: `started`, `stopped`, …
    pub fn past_tense(self) -> &'static str {
        match self {
            PowerAction::Start => "started",
            PowerAction::Stop => "stopped",
            PowerAction::Restart => "restarted",
            PowerAction::Suspend => "suspended",
            PowerAction::Unsuspend => "unsuspended",
            PowerAction::Reinstall => "reinstall requested",
        }
    }

    /// The merge patch the action applies, with `now` for the annotations (RFC 3339 with
    /// milliseconds, so two restarts in one second are two restarts).
    pub fn merge_patch(self, now: DateTime<Utc>) -> Value {
        let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        match self {
            PowerAction::Start => json!({"spec": {"state": "Running"}}),
            PowerAction::Stop => json!({"spec": {"state": "Stopped"}}),
            PowerAction::Restart => json!({"metadata": {"annotations": {RESTARTED_AT: stamp}}}),
            PowerAction::Suspend => json!({"spec": {"suspended": true}}),
            PowerAction::Unsuspend => json!({"spec": {"suspended": false}}),
            PowerAction::Reinstall => {
                json!({"metadata": {"annotations": {REINSTALL_REQUESTED_AT: stamp}}})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_is_one_merge_patch_named_by_its_subresource() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            PowerAction::Restart.merge_patch(now),
            json!({"metadata": {"annotations": {"catalyst.dev/restartedAt": "2026-03-01T12:00:00.500Z"}}})
        );
        assert_eq!(
            PowerAction::Reinstall.merge_patch(now),
            json!({"metadata": {"annotations": {"catalyst.dev/reinstallRequestedAt": "2026-03-01T12:00:00.500Z"}}})
        );
        assert_eq!(
            PowerAction::Stop.merge_patch(now),
            json!({"spec": {"state": "Stopped"}})
        );
        assert_eq!(
            PowerAction::Unsuspend.merge_patch(now),
            json!({"spec": {"suspended": false}})
        );
        for a in PowerAction::ALL {
            assert_eq!(PowerAction::from_subresource(a.subresource()), Some(a));
        }
        assert_eq!(PowerAction::from_subresource("status"), None);
    }
}
