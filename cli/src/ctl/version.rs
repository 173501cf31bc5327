//! `version`: the client's version and, unless `--client`, the server's.

use serde_json::Value;

use super::error::Outcome;
use super::out::Out;
use crate::client::Client;

/// Arguments of `version`.
#[derive(Debug, Clone, clap::Args)]
pub struct VersionArgs {
    /// Only the client version.
    #[arg(long)]
    pub client: bool,
}

impl VersionArgs {
    /// Prints `Client Version: …` and, with a client, `Server Version: …`; an unreachable server
    /// is said on stderr (status 1).
    ///
    /// # Errors
    /// A closed stdout.
    pub async fn run(&self, client: Option<&Client>, out: &mut Out) -> Outcome {
        out.line(format_args!(
            "Client Version: {}",
            env!("CARGO_PKG_VERSION")
        ))?;
        let Some(c) = client else { return Ok(0) };
        match c.get("/version").await {
            Ok(v) => {
                let server = v
                    .get("catalyst")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                out.line(format_args!("Server Version: {server}"))?;
                Ok(0)
            }
            Err(e) => {
                out.note(e);
                Ok(1)
            }
        }
    }
}
