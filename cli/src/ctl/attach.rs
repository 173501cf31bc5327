//! `console NAME`: an interactive terminal on a GameServer's console, over the API server's
//! console WebSocket. Lines are printed as they come; each line typed is sent as a command;
//! phase changes (and with `--stats`, resource use) are noted on stderr. Ctrl-D at a terminal
//! ends it; with stdin from a pipe, the commands are sent and the console stays open until the
//! server closes it or the process is stopped.

use std::io::IsTerminal;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::error::{CtlError, Outcome};
use super::out::Out;
use crate::client::Client;

/// Arguments of `console`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// The GameServer.
    pub name: String,
    /// Lines of history to print first.
    #[arg(long, default_value_t = 100)]
    pub tail: usize,
    /// Print resource use (cpu, memory, network) on stderr as it comes.
    #[arg(long)]
    pub stats: bool,
}

/// The console's WebSocket URL.
fn ws_url(base: &str, ns: &str, name: &str, tail: usize) -> String {
    let ws = match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", base.trim_start_matches("http://")),
    };
    format!(
        "{ws}/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}/console?tail={tail}"
    )
}

impl ConsoleArgs {
    /// Runs the terminal until the console closes; 1 when it could not be opened or the
    /// server closed it for a reason of its own.
    ///
    /// # Errors
    /// A closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        // each server in turn from the one that answered last: a refused connect or a 503 (no
        // tunnel to the node there) moves on
        let servers = client.servers();
        let first = servers.iter().position(|u| u == client.base()).unwrap_or(0);
        let mut dialled = None;
        for k in 0..servers.len() {
            let url = ws_url(
                &servers[(first + k) % servers.len()],
                ns,
                &self.name,
                self.tail,
            );
            let mut request = match url.as_str().into_client_request() {
                Ok(r) => r,
                Err(e) => return Err(CtlError::Usage(format!("console URL {url}: {e}"))),
            };
            let bearer = format!("Bearer {}", client.token());
            match bearer.parse() {
                Ok(v) => {
                    request.headers_mut().insert("authorization", v);
                }
                Err(_) => return Err(CtlError::Usage("the token is not a header value".into())),
            }
            let connector = if url.starts_with("wss://") {
                match catalyst_nodelet::tunnel::tls_config(client.ca_pem()) {
                    Ok(c) => Some(tokio_tungstenite::Connector::Rustls(c)),
                    Err(e) => {
                        out.note(format_args!("console: {e}"));
                        return Ok(1);
                    }
                }
            } else {
                None
            };
            let result =
                tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
                    .await;
            let next = match &result {
                Err(tokio_tungstenite::tungstenite::Error::Io(_)) => true,
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status() == 503,
                _ => false,
            };
            dialled = Some(result);
            if !next {
                break;
            }
        }
        let (ws, _) = match dialled
            .unwrap_or_else(|| Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))
        {
            Ok(c) => c,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp.body().as_deref().unwrap_or_default();
                let status: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let msg = status["message"].as_str().unwrap_or("").to_owned();
                out.note(format_args!("console: {} {msg}", resp.status()));
                return Ok(1);
            }
            Err(e) => {
                out.note(format_args!("console: {e}"));
                return Ok(1);
            }
        };
        let (mut sink, mut stream) = ws.split();
        let interactive = std::io::stdin().is_terminal();
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut stdin_open = true;
        loop {
            tokio::select! {
                line = stdin.next_line(), if stdin_open => match line {
                    Ok(Some(l)) => {
                        let msg = json!({"event": "command", "data": l}).to_string();
                        if sink.send(Message::Text(msg.into())).await.is_err() {
                            out.note("console: the connection closed");
                            return Ok(1);
                        }
                    }
                    _ => {
                        stdin_open = false;
                        if interactive {
                            let _ = sink.send(Message::Close(None)).await;
                            return Ok(0);
                        }
                    }
                },
                msg = stream.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | None => return Ok(0),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            out.note(format_args!("console: {e}"));
                            return Ok(1);
                        }
                    };
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let data = &v["data"];
                    match v["event"].as_str() {
                        Some("line") => {
                            out.line(data.as_str().unwrap_or_default())?;
                            out.flush()?;
                        }
                        Some("phase") => out.note(format_args!("[phase: {}]", data.as_str().unwrap_or("-"))),
                        Some("stats") if self.stats => out.note(format_args!("[stats: {data}]")),
                        Some("error") => out.note(format_args!("[error: {}]", data.as_str().unwrap_or_default())),
                        Some("closed") => {
                            let why = data.as_str().unwrap_or_default();
                            out.note(format_args!("[console closed: {why}]"));
                            return Ok(if why == "the client closed" { 0 } else { 1 });
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_follows_the_scheme() {
        assert_eq!(
            ws_url("https://127.0.0.1:6443", "games", "mc", 10),
            "wss://127.0.0.1:6443/apis/catalyst.dev/v1alpha1/namespaces/games/gameservers/mc/console?tail=10"
        );
        assert!(ws_url("http://localhost:1", "a", "b", 1).starts_with("ws://localhost:1/"));
    }
}
