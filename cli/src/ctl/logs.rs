//! `logs NAME [-f] [--tail N]`: console lines from the server's node, through the API server.

use futures::StreamExt;

use super::error::{CtlError, Outcome};
use super::out::Out;
use crate::client::Client;

/// Arguments of `logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// The GameServer.
    pub name: String,
    /// Keep printing new lines.
    #[arg(short, long)]
    pub follow: bool,
    /// Lines of history to print (default: all kept, up to 1000).
    #[arg(long)]
    pub tail: Option<usize>,
}

impl LogsArgs {
    /// The API path of the log stream.
    fn path(&self, ns: &str) -> String {
        let mut path = format!(
            "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{}/logs?follow={}",
            self.name, self.follow
        );
        if let Some(n) = self.tail {
            path.push_str(&format!("&tailLines={n}"));
        }
        path
    }

    /// Copies the log stream to stdout as it arrives; a refused request is said on stderr
    /// (status 1).
    ///
    /// # Errors
    /// A broken stream, a closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let resp = match client.stream(&self.path(ns)).await {
            Ok(r) => r,
            Err(e) => {
                out.note(e);
                return Ok(1);
            }
        };
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| CtlError::Stream {
                what: "log",
                source,
            })?;
            out.bytes(&chunk)?;
            out.flush()?;
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_and_follow_are_query_parameters() {
        let args = LogsArgs {
            name: "survival".into(),
            follow: true,
            tail: Some(10),
        };
        assert_eq!(
            args.path("games"),
            "/apis/catalyst.dev/v1alpha1/namespaces/games/gameservers/survival/logs?follow=true&tailLines=10"
        );
    }
}
