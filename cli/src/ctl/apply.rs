//! `apply -f`: server-side apply of manifests, with `--prune` of what left the input.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use super::convert::EggArgs;
use super::error::{CtlError, Outcome};
use super::manifest::Manifest;
use super::out::Out;
use super::request::FIELD_MANAGER;
use super::target::kind;
use crate::client::{collection_path, object_path, query, Client, ClientError};

/// Arguments of `apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// Files, directories, or - for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Descend into directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Delete objects with the -l labels that are not in the input.
    #[arg(long, requires = "selector")]
    pub prune: bool,
    /// The label selector for --prune.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// `server`: validate and show what would happen, write nothing.
    #[arg(long, value_parser = ["server"])]
    pub dry_run: Option<String>,
    /// Take over fields other managers own.
    #[arg(long)]
    pub force_conflicts: bool,
    /// How Pterodactyl eggs among the files are converted into Templates.
    #[command(flatten)]
    pub eggs: EggArgs,
}

/// An object as one of the input, identified for `--prune`: kind, namespace, name.
type Key = (String, Option<String>, String);

impl ApplyArgs {
    /// Applies every manifest, printing `kind/name created|configured|unchanged`; per-object
    /// failures go to stderr and make the status 1.
    ///
    /// # Errors
    /// Unreadable input, `--prune` without a selector or with no objects, failed prune lists.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let prune = self.prune.then(|| self.selector.as_deref().unwrap_or(""));
        if prune.is_some_and(str::is_empty) {
            return Err(CtlError::Usage(
                "--prune needs a label selector: -l KEY=VALUE".into(),
            ));
        }
        let dry_run = self.dry_run.is_some();
        let manifests = self.eggs.read(&self.files, self.recursive, out)?;
        let suffix = if dry_run { " (server dry run)" } else { "" };
        let mut failed = false;
        let mut applied: BTreeSet<Key> = BTreeSet::new();
        for m in &manifests {
            match server_side_apply(client, m, ns, dry_run, self.force_conflicts).await {
                Ok((_, verdict)) => {
                    out.line(format_args!(
                        "{}/{} {verdict}{suffix}",
                        m.kind.singular,
                        m.name()
                    ))?;
                    applied.insert((
                        m.kind.kind.to_owned(),
                        m.namespace(ns).map(str::to_owned),
                        m.name().to_owned(),
                    ));
                }
                Err(e) => {
                    out.note(format_args!(
                        "{}: {}/{}: {e}",
                        m.source,
                        m.kind.singular,
                        m.name()
                    ));
                    failed = true;
                }
            }
        }
        if let Some(selector) = prune {
            if failed {
                out.note("not pruning: some objects failed to apply");
            } else {
                let pruning = Prune {
                    client,
                    selector,
                    dry_run,
                };
                failed |= pruning.absent(ns, &manifests, &applied, out).await?;
            }
        }
        Ok(i32::from(failed))
    }
}

/// Server-side applies one manifest (into `ns` unless it names its namespace); returns the
/// object as the server has it (or would, for a dry run) and `created`, `configured` or
/// `unchanged`.
///
/// # Errors
/// The request's.
pub async fn server_side_apply(
    client: &Client,
    m: &Manifest,
    ns: &str,
    dry_run: bool,
    force: bool,
) -> Result<(Value, &'static str), ClientError> {
    let path = object_path(m.kind, m.namespace(ns), m.name());
    let mut object = m.object.clone();
    if let (Some(ns), Some(meta)) = (
        m.namespace(ns),
        object.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        meta.insert("namespace".into(), ns.into());
    }
    let q = query(&[
        ("fieldManager", FIELD_MANAGER.into()),
        ("force", if force { "true".into() } else { String::new() }),
        ("dryRun", if dry_run { "All".into() } else { String::new() }),
    ]);
    let body = serde_json::to_vec(&object).expect("a JSON value encodes");
    let (code, headers, after) = client
        .send_full(
            client
                .request(Method::PATCH, &format!("{path}{q}"))
                .header("Content-Type", "application/apply-patch+yaml")
                .body(body),
        )
        .await?;
    // the server says whether this apply changed anything (other writers may have, meanwhile)
    let changed = headers
        .get("catalyst-changed")
        .and_then(|v| v.to_str().ok())
        != Some("false");
    let verdict = match (code, changed) {
        (201, _) => "created",
        (_, true) => "configured",
        (_, false) => "unchanged",
    };
    Ok((after, verdict))
}

/// `--prune`: what to delete and how.
struct Prune<'a> {
    client: &'a Client,
    selector: &'a str,
    dry_run: bool,
}

impl Prune<'_> {
    /// Deletes objects with the selector's labels that catalystctl applied and that are no
    /// longer in the input. Looks at the kinds of the input, in the namespaces of the input.
    /// Returns whether a deletion failed.
    async fn absent(
        &self,
        ns: &str,
        manifests: &[Manifest],
        applied: &BTreeSet<Key>,
        out: &mut Out,
    ) -> Result<bool, CtlError> {
        if manifests.is_empty() {
            return Err(CtlError::Usage("--prune with no objects in the input would delete everything with those labels; refusing".into()));
        }
        let scopes: BTreeSet<(&'static str, Option<String>)> = manifests
            .iter()
            .map(|m| (m.kind.kind, m.namespace(ns).map(str::to_owned)))
            .collect();
        let mut failed = false;
        for (kind_name, namespace) in scopes {
            let kind = kind(kind_name)?;
            let path = format!(
                "{}{}",
                collection_path(kind, namespace.as_deref()),
                query(&[("labelSelector", self.selector.into())])
            );
            let list = self.client.get(&path).await?;
            for obj in list
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                if applied.contains(&(kind.kind.to_owned(), namespace.clone(), name.clone()))
                    || !applied_by_us(obj)
                {
                    continue;
                }
                let q = if self.dry_run { "?dryRun=All" } else { "" };
                let target = format!("{}{q}", object_path(kind, namespace.as_deref(), &name));
                let client = self.client;
                match client.send(client.request(Method::DELETE, &target)).await {
                    Ok(_) => out.line(format_args!(
                        "{}/{name} pruned{}",
                        kind.singular,
                        if self.dry_run {
                            " (server dry run)"
                        } else {
                            ""
                        }
                    ))?,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        out.note(format_args!("{}/{name}: {e}", kind.singular));
                        failed = true;
                    }
                }
            }
        }
        Ok(failed)
    }
}

/// Whether catalystctl applied (not merely patched) some of the object's fields.
fn applied_by_us(obj: &Value) -> bool {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|mf| {
            mf.iter().any(|e| {
                e.get("manager").and_then(Value::as_str) == Some(FIELD_MANAGER)
                    && e.get("operation").and_then(Value::as_str) == Some("Apply")
            })
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_objects_catalystctl_applied_are_pruned() {
        let managed = |manager: &str, operation: &str| json!({"metadata": {"managedFields": [{"manager": manager, "operation": operation}]}});
        assert!(applied_by_us(&managed("catalystctl", "Apply")));
        assert!(!applied_by_us(&managed("catalystctl", "Update")));
        assert!(!applied_by_us(&managed("panel", "Apply")));
        assert!(!applied_by_us(&json!({"metadata": {}})));
    }
}
