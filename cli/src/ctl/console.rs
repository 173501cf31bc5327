//! `command NAME -- TEXT`: one line to a GameServer's console.

use serde_json::json;

use super::error::Outcome;
use super::out::Out;
use crate::client::Client;

/// Arguments of `command`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommandArgs {
    /// The GameServer.
    pub name: String,
    /// The words of the line.
    #[arg(last = true, required = true)]
    pub text: Vec<String>,
}

impl CommandArgs {
    /// Sends the words joined by spaces and prints `gameserver/NAME command sent`; a refused
    /// request is said on stderr (status 1).
    ///
    /// # Errors
    /// A closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let path = format!(
            "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{}/command",
            self.name
        );
        let line = self.text.join(" ");
        let sent = client
            .send(
                client
                    .request(reqwest::Method::POST, &path)
                    .json(&json!({ "command": line })),
            )
            .await;
        match sent {
            Ok(_) => {
                out.line(format_args!("gameserver/{} command sent", self.name))?;
                Ok(0)
            }
            Err(e) => {
                out.note(e);
                Ok(1)
            }
        }
    }
}
