//! `start`, `stop`, `restart` of a GameServer and `cordon`, `uncordon` of a Node: one merge
//! patch each.

use catalyst_schemas::object::RESTARTED_AT;
use serde_json::{json, Value};

use super::error::Outcome;
use super::out::Out;
use super::request::patch_object;
use super::target::kind;
use crate::client::Client;

/// Arguments of `start`, `stop` and `restart`.
#[derive(Debug, Clone, clap::Args)]
pub struct GameServerArgs {
    /// The GameServer.
    pub name: String,
}

/// Arguments of `cordon` and `uncordon`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The node.
    pub name: String,
}

/// What to do to a GameServer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// `spec.state: Running`.
    Start,
    /// `spec.state: Stopped`.
    Stop,
    /// Sets [`RESTARTED_AT`] to now.
    Restart,
}

impl Lifecycle {
    /// The merge patch, with the time for `restart` (RFC 3339, seconds), and the past tense.
    fn patch(self, now: chrono::DateTime<chrono::Utc>) -> (Value, &'static str) {
        match self {
            Lifecycle::Start => (json!({"spec": {"state": "Running"}}), "started"),
            Lifecycle::Stop => (json!({"spec": {"state": "Stopped"}}), "stopped"),
            Lifecycle::Restart => (
                json!({"metadata": {"annotations": {
                    RESTARTED_AT: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }}}),
                "restarted",
            ),
        }
    }
}

impl GameServerArgs {
    /// Patches the GameServer and prints `gameserver/NAME started|stopped|restarted`.
    ///
    /// # Errors
    /// The request's, a closed stdout.
    pub async fn run(&self, verb: Lifecycle, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let (patch, done) = verb.patch(chrono::Utc::now());
        patch_object(
            client,
            kind("gameservers")?,
            ns,
            &self.name,
            patch,
            done,
            out,
        )
        .await
    }
}

impl NodeArgs {
    /// Marks the node unschedulable (`cordon: true`) or schedulable again, and prints
    /// `node/NAME cordoned|uncordoned`.
    ///
    /// # Errors
    /// The request's, a closed stdout.
    pub async fn run(&self, cordon: bool, client: &Client, out: &mut Out) -> Outcome {
        let done = if cordon { "cordoned" } else { "uncordoned" };
        let patch = json!({"spec": {"unschedulable": cordon}});
        patch_object(client, kind("nodes")?, "", &self.name, patch, done, out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_stamps_the_annotation_and_start_stop_set_the_state() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00.5Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let (patch, done) = Lifecycle::Restart.patch(now);
        assert_eq!(done, "restarted");
        assert_eq!(
            patch,
            json!({"metadata": {"annotations": {"catalyst.dev/restartedAt": "2026-03-01T12:00:00Z"}}})
        );
        assert_eq!(
            Lifecycle::Stop.patch(now).0,
            json!({"spec": {"state": "Stopped"}})
        );
        assert_eq!(Lifecycle::Start.patch(now).1, "started");
    }
}
