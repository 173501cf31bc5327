//! `catalystctl schedule run NAME`: asks a Schedule to run now (a POST to its `run`
//! subresource, which sets the `catalyst.dev/runRequestedAt` annotation the schedule
//! controller acts on once; RBAC `create schedules/run`).

use reqwest::Method;
use serde_json::json;

use super::error::Outcome;
use super::out::Out;
use super::request::FIELD_MANAGER;
use super::target::kind;
use crate::client::{object_path, Client};

/// Arguments of `schedule`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum ScheduleCommand {
    /// Run a schedule's tasks now, once (even while it is suspended); `get schedule NAME`
    /// shows how it went.
    Run {
        /// The Schedule.
        name: String,
    },
}

/// The path of a Schedule's run subresource.
fn run_path(ns: &str, name: &str) -> Result<String, super::error::CtlError> {
    Ok(format!(
        "{}/run?fieldManager={FIELD_MANAGER}",
        object_path(kind("schedules")?, Some(ns), name)
    ))
}

impl ScheduleArgs {
    /// Runs the subcommand; prints `schedule/NAME run requested`.
    ///
    /// # Errors
    /// The request's, a closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        match &self.command {
            ScheduleCommand::Run { name } => {
                let path = run_path(ns, name)?;
                client
                    .send(client.request(Method::POST, &path).json(&json!({})))
                    .await?;
                out.line(format_args!("schedule/{name} run requested"))?;
                Ok(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_posts_to_the_run_subresource() {
        assert_eq!(
            run_path("team", "nightly").unwrap(),
            "/apis/catalyst.dev/v1alpha1/namespaces/team/schedules/nightly/run?fieldManager=catalystctl"
        );
    }
}
