//! The `yaml` parser: the file (one document, a mapping) is read as a JSON tree with the same
//! alias budget as the API's own YAML, edited by dotted paths (see [`super::tree`]) and
//! re-written whole, as Wings does: comments, anchors and the original layout are lost. An
//! empty (or missing) file starts as `{}`.

use catalyst_schemas::ParseError;

use super::{tree, EditError, Replacement};

pub(super) fn edit(input: &[u8], reps: &[Replacement]) -> Result<Option<Vec<u8>>, EditError> {
    let syntax = |line, why: String| EditError::Syntax {
        format: "YAML",
        line,
        why,
    };
    let text = super::utf8(input, "YAML")?;
    let mut docs = catalyst_schemas::parse_documents(text).map_err(|e| match e {
        ParseError::Syntax {
            location, message, ..
        } => syntax(location.map(|(l, _)| l), message),
        ParseError::TooLarge { limit, .. } => syntax(
            None,
            format!("aliases expand the document past {limit} nodes and string bytes"),
        ),
        ParseError::NotAnObject { .. } => syntax(None, "the top level is not a mapping".into()),
    })?;
    let mut root = match docs.len() {
        0 => serde_json::Value::Object(serde_json::Map::new()),
        1 => docs.remove(0),
        n => return Err(syntax(None, format!("{n} documents; only one is edited"))),
    };
    if !tree::apply_all(&mut root, reps)? {
        return Ok(None);
    }
    yaml_serde::to_string(&root)
        .map(|s| Some(s.into_bytes()))
        .map_err(|e| syntax(None, e.to_string()))
}
