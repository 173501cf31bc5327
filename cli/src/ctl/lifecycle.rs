//! `start`, `stop`, `restart`, `suspend`, `unsuspend` of a GameServer (a POST to its power
//! subresource each, so RBAC can grant them one by one) and `cordon`, `uncordon` of a Node (a
//! merge patch).

pub use catalyst_schemas::power::PowerAction;
use reqwest::Method;
use serde_json::json;

use super::error::Outcome;
use super::out::Out;
use super::request::{patch_object, FIELD_MANAGER};
use super::target::kind;
use crate::client::{object_path, Client};

/// Arguments of `start`, `stop`, `restart`, `suspend` and `unsuspend`.
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

/// The path of a GameServer's power subresource.
fn power_path(ns: &str, name: &str, action: PowerAction) -> Result<String, super::error::CtlError> {
    Ok(format!(
        "{}/{}?fieldManager={FIELD_MANAGER}",
        object_path(kind("gameservers")?, Some(ns), name),
        action.subresource()
    ))
}

impl GameServerArgs {
    /// POSTs to the GameServer's power subresource and prints `gameserver/NAME started`,
    /// `stopped`, ….
    ///
    /// # Errors
    /// The request's, a closed stdout.
    pub async fn run(
        &self,
        action: PowerAction,
        client: &Client,
        ns: &str,
        out: &mut Out,
    ) -> Outcome {
        let path = power_path(ns, &self.name, action)?;
        client
            .send(client.request(Method::POST, &path).json(&json!({})))
            .await?;
        out.line(format_args!(
            "gameserver/{} {}",
            self.name,
            action.past_tense()
        ))?;
        Ok(0)
    }
}

/// Arguments of `transfer`.
#[derive(Debug, Clone, clap::Args)]
pub struct TransferArgs {
    /// The GameServer.
    pub name: String,
    /// The node it moves to.
    #[arg(long)]
    pub to: String,
}

impl TransferArgs {
    /// Sets the GameServer's `spec.nodeName` to the target (the transfer controller moves it
    /// there: stopped, data packed, copied and checked, started again on the new node) and
    /// prints `gameserver/NAME transferring to NODE`. `wait --for=condition=Transferred`
    /// waits for the end.
    ///
    /// # Errors
    /// The request's, a closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let patch = json!({"spec": {"nodeName": self.to}});
        let done = format!("transferring to {}", self.to);
        patch_object(
            client,
            kind("gameservers")?,
            ns,
            &self.name,
            patch,
            &done,
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
    fn each_verb_posts_to_its_subresource() {
        assert_eq!(
            power_path("team", "s1", PowerAction::Restart).unwrap(),
            "/apis/catalyst.dev/v1alpha1/namespaces/team/gameservers/s1/restart?fieldManager=catalystctl"
        );
        assert_eq!(PowerAction::Suspend.past_tense(), "suspended");
    }
}
