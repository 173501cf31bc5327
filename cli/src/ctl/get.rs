//! `get`: list objects or show one, as a table, YAML, JSON or names; `-w` keeps watching.

use catalyst_schemas::{KindInfo, API_VERSION};
use serde_json::{json, Value};

use super::error::{CtlError, Outcome};
use super::out::Out;
use super::request::{follow, resource_version};
use super::target::kind;
use crate::client::{collection_path, object_path, query, Client};
use crate::output::{self, Format};

/// Arguments of `get`.
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// The kind: name, plural or short name (gs, node, …).
    pub kind: String,
    /// One object.
    pub name: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
    /// Keep watching for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

impl GetArgs {
    /// Prints the objects, then (with `-w`) every change until the watch ends.
    ///
    /// # Errors
    /// An unknown kind, failed requests, a broken watch, a closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let kind = kind(&self.kind)?;
        let namespace = if self.all_namespaces { None } else { Some(ns) };
        let all = self.all_namespaces && kind.namespaced;
        let (items, rv) = match &self.name {
            Some(name) => {
                let obj = client.get(&object_path(kind, namespace, name)).await?;
                let rv = resource_version(&obj);
                (vec![obj], rv)
            }
            None => {
                let q = query(&[("labelSelector", self.selector.clone().unwrap_or_default())]);
                let list = client
                    .get(&format!("{}{q}", collection_path(kind, namespace)))
                    .await?;
                let rv = resource_version(&list);
                let items = list
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                (items, rv)
            }
        };
        if items.is_empty() && !self.watch && matches!(self.output, None | Some(Format::Wide)) {
            match namespace.filter(|_| kind.namespaced) {
                Some(ns) => out.note(format_args!("No resources found in {ns} namespace.")),
                None => out.note("No resources found."),
            }
        } else {
            out.print(&self.render(kind, &items, all)?)?;
        }
        if !self.watch {
            return Ok(0);
        }
        let mut q = vec![("watch", "true".to_owned()), ("resourceVersion", rv)];
        if let Some(sel) = &self.selector {
            q.push(("labelSelector", sel.clone()));
        }
        if let Some(name) = &self.name {
            q.push(("fieldSelector", format!("metadata.name={name}")));
        }
        let path = format!("{}{}", collection_path(kind, namespace), query(&q));
        follow(client, &path, |type_, obj| {
            if type_ != "BOOKMARK" {
                out.print(&self.render_event(kind, type_, obj, all)?)?;
            }
            Ok(true)
        })
        .await?;
        Ok(0)
    }

    /// The objects in the asked format (a table with a header).
    fn render(&self, kind: &KindInfo, items: &[Value], all: bool) -> Result<String, CtlError> {
        Ok(match self.output {
            Some(Format::Json) => {
                let doc = match (&self.name, items) {
                    (Some(_), [one]) => one.clone(),
                    _ => json!({
                        "apiVersion": API_VERSION,
                        "kind": format!("{}List", kind.kind),
                        "items": items,
                    }),
                };
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&doc).map_err(CtlError::Encode)?
                )
            }
            Some(Format::Yaml) => items
                .iter()
                .map(output::yaml)
                .collect::<Vec<_>>()
                .join("---\n"),
            Some(Format::Name) => items
                .iter()
                .map(|o| format!("{}\n", output::name(o)))
                .collect(),
            Some(Format::Wide) | None => {
                output::table(kind, items, self.output == Some(Format::Wide), all, true)
            }
        })
    }

    /// One watch event: a JSON line, a YAML document, a name, or a table row.
    fn render_event(
        &self,
        kind: &KindInfo,
        type_: &str,
        obj: &Value,
        all: bool,
    ) -> Result<String, CtlError> {
        Ok(match self.output {
            Some(Format::Json) => format!(
                "{}\n",
                serde_json::to_string(&json!({"type": type_, "object": obj}))
                    .map_err(CtlError::Encode)?
            ),
            Some(Format::Yaml) => format!("---\n{}", output::yaml(obj)),
            Some(Format::Name) => format!("{}\n", output::name(obj)),
            Some(Format::Wide) | None => output::table(
                kind,
                std::slice::from_ref(obj),
                self.output == Some(Format::Wide),
                all,
                false,
            ),
        })
    }
}
