//! `backup create SERVER [--name N] [--ignore P]… [--lock] [--stop] [--command C]`,
//! `backup restore NAME [--into SERVER] [--truncate]`, `backup download NAME [FILE]`: Backups
//! and Restores made from the command line, and a completed backup's archive fetched through
//! the API (`GET …/backups/NAME/download`). `create` and `restore` print the new object's
//! name; follow it with `catalystctl get backup NAME -w` or `catalystctl wait`.

use serde_json::{json, Value};

use super::error::{CtlError, Outcome};
use super::out::Out;
use crate::client::Client;

/// Arguments of `backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BackupCommand,
}

/// The `backup` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BackupCommand {
    /// Take a backup of a GameServer's files (on its node).
    Create {
        /// The GameServer.
        server: String,
        /// The Backup's name (default: SERVER-YYYYMMDD-HHMMSS).
        #[arg(long)]
        name: Option<String>,
        /// A path to leave out (gitignore syntax); repeatable.
        #[arg(long)]
        ignore: Vec<String>,
        /// Keep it from deletion and retention.
        #[arg(long)]
        lock: bool,
        /// Stop the server for the backup and start it again afterwards.
        #[arg(long)]
        stop: bool,
        /// A console line sent first (e.g. save-all).
        #[arg(long)]
        command: Option<String>,
    },
    /// Put a backup back into its GameServer (or another one on the same node).
    Restore {
        /// The Backup.
        name: String,
        /// The GameServer to restore into (default: the one backed up).
        #[arg(long)]
        into: Option<String>,
        /// Remove the files the backup does not hold.
        #[arg(long)]
        truncate: bool,
    },
    /// Save a completed backup's archive (tar.zst) to FILE (default NAME.tar.zst; `-` for
    /// stdout).
    Download {
        /// The Backup.
        name: String,
        /// The local file.
        file: Option<String>,
    },
}

impl BackupArgs {
    /// Runs the subcommand; a refusal prints the server's message and exits 1.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        match self.command.run(client, ns, out).await {
            Err(CtlError::Client(e)) => {
                out.note(e);
                Ok(1)
            }
            other => other,
        }
    }
}

const API: &str = "/apis/catalyst.dev/v1alpha1";

impl BackupCommand {
    async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        match self {
            BackupCommand::Create {
                server,
                name,
                ignore,
                lock,
                stop,
                command,
            } => {
                let name = name.clone().unwrap_or_else(|| {
                    format!("{server}-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"))
                });
                let mut spec = json!({ "gameServer": server });
                if !ignore.is_empty() {
                    spec["ignore"] = json!(ignore);
                }
                if *lock {
                    spec["locked"] = json!(true);
                }
                if *stop {
                    spec["stopServer"] = json!(true);
                }
                if let Some(c) = command {
                    spec["command"] = json!(c);
                }
                let body = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Backup",
                    "metadata": {"name": name, "namespace": ns}, "spec": spec});
                let made = client
                    .post(&format!("{API}/namespaces/{ns}/backups"), body)
                    .await?;
                out.line(format_args!("backup/{} created", name_of(&made)))?;
            }
            BackupCommand::Restore {
                name,
                into,
                truncate,
            } => {
                let mut spec = json!({ "backup": name, "truncate": truncate });
                if let Some(s) = into {
                    spec["gameServer"] = json!(s);
                }
                let body = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Restore",
                    "metadata": {"generateName": format!("{name}-restore-"), "namespace": ns},
                    "spec": spec});
                let made = client
                    .post(&format!("{API}/namespaces/{ns}/restores"), body)
                    .await?;
                out.line(format_args!("restore/{} created", name_of(&made)))?;
            }
            BackupCommand::Download { name, file } => {
                let file = file.clone().unwrap_or_else(|| format!("{name}.tar.zst"));
                let local = (file != "-").then_some(file.as_str());
                let path = format!("{API}/namespaces/{ns}/backups/{name}/download");
                let bytes = super::files::save(client, &path, local, out).await?;
                if let Some(l) = local {
                    out.note(format_args!("backup/{name} -> {l} ({bytes} bytes)"));
                }
            }
        }
        Ok(0)
    }
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}
