//! `alerts export`: the AlertRules of a namespace (or all) as Prometheus alerting rules.

use catalyst_schemas::lookup_kind;
use serde_json::Value;

use super::error::Outcome;
use super::out::Out;
use crate::client::{collection_path, Client};

/// Arguments of `alerts`.
#[derive(Debug, Clone, clap::Args)]
pub struct AlertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AlertsCommand,
}

/// `alerts` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AlertsCommand {
    /// Print the AlertRules as a Prometheus rule file (YAML) over the API server's /metrics
    /// (`catalyst_gameserver_*`). Selectors are expanded to today's GameServers; conditions
    /// with no metric (Crash, CrashLoop, BackupFailed) are left out and named on stderr.
    Export {
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
}

fn items(list: &Value) -> Vec<Value> {
    list.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

impl AlertsArgs {
    /// Prints the rule file.
    ///
    /// # Errors
    /// Failed requests (a caller who may not list Nodes gets CPU rules over one core per
    /// server without a CPU limit), a closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let AlertsCommand::Export { all_namespaces } = self.command;
        let namespace = (!all_namespaces).then_some(ns);
        let kind = |k| lookup_kind(k).expect("a built-in kind");
        let rules = items(
            &client
                .get(&collection_path(kind("alertrules"), namespace))
                .await?,
        );
        let servers = items(
            &client
                .get(&collection_path(kind("gameservers"), namespace))
                .await?,
        );
        let nodes = match client.get(&collection_path(kind("nodes"), None)).await {
            Ok(list) => items(&list),
            Err(_) => Vec::new(),
        };
        let export = catalyst_schemas::alert::prometheus_rules(&rules, &servers, &nodes);
        for s in &export.skipped {
            out.note(format_args!("skipped {s}"));
        }
        out.print(&yaml_serde::to_string(&export.document).unwrap_or_default())?;
        Ok(0)
    }
}
