//! `edit`: an object in `$EDITOR`, replaced with what was saved; re-opened with the error on
//! failure.

use reqwest::Method;
use serde_json::Value;

use super::error::{CtlError, Outcome};
use super::out::Out;
use super::target::kind_and_name;
use crate::client::{object_path, Client};
use crate::output;

/// The first lines of the file the editor opens.
const HEADER: &str =
    "# Edit the object below. Lines starting with '#' are ignored; an unchanged file cancels.\n";

/// Arguments of `edit`.
#[derive(Debug, Clone, clap::Args)]
pub struct EditArgs {
    /// KIND or KIND/NAME.
    pub kind: String,
    /// NAME.
    pub name: Option<String>,
}

impl EditArgs {
    /// Opens the object (without managed fields) in `$EDITOR` (else `$VISUAL`, else `vi`) and
    /// replaces it with the result; an empty or unchanged file cancels.
    ///
    /// # Errors
    /// A bad `KIND NAME`, a failed fetch, an editor that fails, the temporary file.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let (kind, name) = kind_and_name(&self.kind, self.name.as_deref())?;
        let path = object_path(kind, Some(ns), &name);
        let mut shown = client.get(&path).await?;
        if let Some(meta) = shown.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let editor = std::env::var("EDITOR")
            .or_else(|_| std::env::var("VISUAL"))
            .unwrap_or_else(|_| "vi".into());
        let mut text = output::yaml(&shown);
        let mut header = String::from(HEADER);
        loop {
            let edited = run_editor(&editor, &format!("{header}{text}"))?;
            if edited.trim().is_empty() || edited == text {
                out.line("Edit cancelled, no changes made.")?;
                return Ok(0);
            }
            let replaced = match one_document(&edited) {
                Ok(obj) => client
                    .send(
                        client
                            .request(
                                Method::PUT,
                                &format!("{path}?fieldManager=catalystctl-edit"),
                            )
                            .json(&obj),
                    )
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match replaced {
                Ok(_) => {
                    out.line(format_args!("{}/{name} edited", kind.singular))?;
                    return Ok(0);
                }
                Err(e) => {
                    header = failed_header(&e);
                    text = edited;
                }
            }
        }
    }
}

/// Lets the user edit `content` in a temporary file; returns it without `#` lines.
fn run_editor(editor: &str, content: &str) -> Result<String, CtlError> {
    let file = tempfile::Builder::new()
        .prefix("catalystctl-edit-")
        .suffix(".yaml")
        .tempfile()
        .map_err(CtlError::EditFile)?;
    std::fs::write(file.path(), content).map_err(CtlError::EditFile)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .map_err(|source| CtlError::EditorStart {
            editor: editor.to_owned(),
            source,
        })?;
    if !status.success() {
        return Err(CtlError::EditorFailed(status));
    }
    let saved = std::fs::read_to_string(file.path()).map_err(CtlError::EditFile)?;
    Ok(without_comments(&saved))
}

fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The one YAML document of `text`, or why not.
fn one_document(text: &str) -> Result<Value, String> {
    let mut docs = catalyst_schemas::parse_documents(text).map_err(|e| e.to_string())?;
    if docs.len() == 1 {
        Ok(docs.remove(0))
    } else {
        Err("expected one document".into())
    }
}

/// The header of a re-opened file: the usual lines and the error, commented.
fn failed_header(error: &str) -> String {
    let quoted: String = error.lines().map(|l| format!("# {l}\n")).collect();
    format!("{HEADER}#\n# The edit failed:\n{quoted}#\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_dropped_and_errors_are_quoted_in_the_header() {
        assert_eq!(
            without_comments("# note\nkind: GameServer\n#x\n"),
            "kind: GameServer\n"
        );
        assert_eq!(
            failed_header("Error from server (Invalid): bad\n  spec.image: required"),
            format!("{HEADER}#\n# The edit failed:\n# Error from server (Invalid): bad\n#   spec.image: required\n#\n")
        );
        assert!(one_document("a: 1\n---\nb: 2\n").is_err());
        assert_eq!(one_document("a: 1\n"), Ok(serde_json::json!({"a": 1})));
    }
}
