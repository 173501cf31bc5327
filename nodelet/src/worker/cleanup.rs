//! Removing what a server has on the node: its containers (main and install), network
//! attachment and namespaces; its data too once it is gone from the API.

use catalyst_schemas::gameserver::PortStatus;
use catalyst_schemas::lifecycle::Event;
use serde_json::json;

use super::{Next, Worker};

impl Worker {
    /// The server is being deleted and nothing runs: remove everything but its data, and let
    /// the controller see it stopped.
    pub(super) async fn clean_up(&mut self, events: &[Event]) -> crate::Result<Next> {
        self.remove_everything().await?;
        if !events.is_empty() {
            self.report(events, json!({"reason": "Deleted"})).await?;
        }
        Ok(Next::Idle)
    }

    /// The server is gone from the API: remove everything, its data included.
    pub(super) async fn clean_up_gone(&mut self) -> crate::Result<()> {
        self.remove_everything().await?;
        self.forget_ready();
        self.env.runtime.set_denylist(&[]);
        self.env.runtime.release(true).await
    }

    /// Kills and removes the server's container and any install container (nothing of the
    /// server may outlive it: its id range goes to the next server), detaches its network and
    /// removes its namespaces.
    pub(super) async fn remove_everything(&mut self) -> crate::Result<()> {
        for id in [self.cid.clone(), self.install_id.clone()] {
            self.env.runtime.remove(&id).await?;
        }
        let ports: Vec<PortStatus> = self
            .gs
            .pointer("/status/ports")
            .cloned()
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default();
        self.env.network.detach(&self.cid, &ports).await?;
        self.env.runtime.release(false).await
    }
}
