//! `diff -f`: what `apply` would change, as a unified diff of live and merged YAML.

use serde_json::Value;

use super::apply::server_side_apply;
use super::convert::EggArgs;
use super::error::Outcome;
use super::out::Out;
use crate::client::{object_path, Client};
use crate::output;

/// Arguments of `diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// Files, directories, or - for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Descend into directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// How Pterodactyl eggs among the files are converted into Templates.
    #[command(flatten)]
    pub eggs: EggArgs,
}

impl DiffArgs {
    /// Prints a diff per object that would change; status 0 when none would, 1 when some would.
    ///
    /// # Errors
    /// Unreadable input, failed requests (a dry-run apply per object).
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let manifests = self.eggs.read(&self.files, self.recursive, out)?;
        let mut differs = false;
        for m in &manifests {
            let path = object_path(m.kind, m.namespace(ns), m.name());
            let live = match client.get(&path).await {
                Ok(v) => strip_volatile(&v),
                Err(e) if e.is_not_found() => Value::Null,
                Err(e) => return Err(e.into()),
            };
            let (merged, _) = server_side_apply(client, m, ns, true, false).await?;
            let merged = strip_volatile(&merged);
            if live == merged {
                continue;
            }
            differs = true;
            let label = format!("{}/{}", m.kind.singular, m.name());
            out.print(&unified_diff(&label, &live, &merged))?;
        }
        Ok(i32::from(differs))
    }
}

/// The object without the metadata the server changes on every write.
fn strip_volatile(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            meta.remove(f);
        }
    }
    v
}

/// `live/LABEL` → `merged/LABEL` as YAML lines; a null `live` (absent) diffs from nothing.
fn unified_diff(label: &str, live: &Value, merged: &Value) -> String {
    let a = if live.is_null() {
        String::new()
    } else {
        output::yaml(live)
    };
    let b = output::yaml(merged);
    similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{label}"), &format!("merged/{label}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_changed_field_shows_as_a_unified_diff_without_volatile_metadata() {
        let live = strip_volatile(&json!({
            "kind": "GameServer",
            "metadata": {"name": "survival", "resourceVersion": "7", "uid": "u"},
            "spec": {"image": "alpine"}
        }));
        let merged = json!({"kind": "GameServer", "metadata": {"name": "survival"}, "spec": {"image": "debian"}});
        let text = unified_diff("gameserver/survival", &live, &merged);
        assert!(
            text.starts_with("--- live/gameserver/survival\n+++ merged/gameserver/survival\n"),
            "{text}"
        );
        assert!(
            text.contains("-  image: alpine\n+  image: debian\n"),
            "{text}"
        );
        assert!(!text.contains("resourceVersion"), "{text}");
        let created = unified_diff("gameserver/new", &Value::Null, &merged);
        assert!(created.contains("+kind: GameServer"), "{created}");
    }
}
