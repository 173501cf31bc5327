//! `wait KIND/NAME --for=…`: until an object reaches a phase, has a condition, or is deleted.

use std::time::Duration;

use serde_json::Value;

use super::error::{CtlError, Outcome};
use super::out::Out;
use super::request::{follow, resource_version};
use super::target::kind_and_name;
use crate::client::{collection_path, object_path, query, Client};

/// Arguments of `wait`.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// KIND/NAME.
    pub target: String,
    /// phase=PHASE, condition=TYPE or delete.
    #[arg(long = "for")]
    pub for_: WaitFor,
    /// Give up after this long (30s, 5m).
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// What `wait --for` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    /// `phase=Running`.
    Phase(String),
    /// `condition=Ready` (status True).
    Condition(String),
    /// `delete`.
    Delete,
}

impl std::str::FromStr for WaitFor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "delete" {
            return Ok(WaitFor::Delete);
        }
        match s.split_once('=') {
            Some(("phase", p)) if !p.is_empty() => Ok(WaitFor::Phase(p.to_owned())),
            Some(("condition", c)) if !c.is_empty() => Ok(WaitFor::Condition(c.to_owned())),
            _ => Err(format!(
                "--for must be phase=PHASE, condition=TYPE or delete, not {s:?}"
            )),
        }
    }
}

impl WaitFor {
    /// Whether `obj` as it is meets the condition (never, for `delete`).
    pub fn met(&self, obj: &Value) -> bool {
        match self {
            WaitFor::Phase(p) => {
                obj.pointer("/status/phase").and_then(Value::as_str) == Some(p.as_str())
            }
            WaitFor::Condition(c) => obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|x| {
                        x.get("type").and_then(Value::as_str) == Some(c.as_str())
                            && x.get("status").and_then(Value::as_str) == Some("True")
                    })
                }),
            WaitFor::Delete => false,
        }
    }

    /// Whether a watch event of `type_` about `obj` meets the condition.
    fn met_by_event(&self, type_: &str, obj: &Value) -> bool {
        match (type_, self) {
            ("DELETED", WaitFor::Delete) => true,
            ("ADDED" | "MODIFIED", w) => w.met(obj),
            _ => false,
        }
    }
}

/// Parses `60s`, `5m`, `1h`, or plain seconds.
///
/// # Errors
/// A message for anything else.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    catalyst_schemas::validation::duration(s).map(Duration::from_secs)
}

impl WaitArgs {
    /// Prints `kind/name condition met`, or says on stderr that it timed out (status 1).
    ///
    /// # Errors
    /// A bad target, failed requests, a watch that ends or breaks first.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let (kind, name) = kind_and_name(&self.target, None)?;
        let namespace = kind.namespaced.then_some(ns);
        let path = object_path(kind, namespace, &name);
        let what = &self.for_;
        let watched = async {
            let rv = match client.get(&path).await {
                Ok(obj) if what.met(&obj) => return Ok::<bool, CtlError>(true),
                Ok(obj) => resource_version(&obj),
                Err(e) if e.is_not_found() && *what == WaitFor::Delete => return Ok(true),
                Err(e) => return Err(e.into()),
            };
            let q = query(&[
                ("watch", "true".into()),
                ("resourceVersion", rv),
                ("fieldSelector", format!("metadata.name={name}")),
            ]);
            let mut met = false;
            follow(
                client,
                &format!("{}{q}", collection_path(kind, namespace)),
                |type_, obj| {
                    met = what.met_by_event(type_, obj);
                    Ok(!met)
                },
            )
            .await?;
            Ok(met)
        };
        let target = format!("{}/{name}", kind.singular);
        match tokio::time::timeout(self.timeout, watched).await {
            Ok(Ok(true)) => {
                out.line(format_args!("{target} condition met"))?;
                Ok(0)
            }
            Ok(Ok(false)) => Err(CtlError::WatchEnded(target)),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                out.note(format_args!(
                    "error: timed out waiting for the condition on {target}"
                ));
                Ok(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wait_conditions_parse() {
        assert_eq!(
            "phase=Running".parse::<WaitFor>(),
            Ok(WaitFor::Phase("Running".into()))
        );
        assert_eq!("delete".parse::<WaitFor>(), Ok(WaitFor::Delete));
        assert!("phase".parse::<WaitFor>().is_err());
        assert!("phase=".parse::<WaitFor>().is_err());
        assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("15"), Ok(Duration::from_secs(15)));
    }

    #[test]
    fn conditions_are_met_by_phase_true_conditions_and_deletion_events() {
        let gs = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Installed", "status": "False"}
        ]}});
        assert!(WaitFor::Phase("Running".into()).met(&gs));
        assert!(!WaitFor::Phase("Stopped".into()).met(&gs));
        assert!(WaitFor::Condition("Ready".into()).met(&gs));
        assert!(!WaitFor::Condition("Installed".into()).met(&gs));
        assert!(!WaitFor::Delete.met(&gs));
        assert!(WaitFor::Delete.met_by_event("DELETED", &gs));
        assert!(!WaitFor::Phase("Running".into()).met_by_event("DELETED", &gs));
        assert!(WaitFor::Phase("Running".into()).met_by_event("MODIFIED", &gs));
    }
}
