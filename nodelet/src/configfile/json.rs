//! The `json` parser: the file is read as a JSON object, edited by dotted paths (see
//! [`super::tree`]) and written back pretty-printed with a 4-space indent, keys sorted, as Wings
//! does. An empty (or missing) file starts as `{}`.

use serde::Serialize;

use super::{tree, EditError, Replacement};

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(super) fn edit(input: &[u8], reps: &[Replacement]) -> Result<Option<Vec<u8>>, EditError> {
    let (bom, body) = match input.strip_prefix(BOM) {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let mut root = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| EditError::Syntax {
            format: "JSON",
            // serde_json's message names the line and column
            line: None,
            why: e.to_string(),
        })?
    };
    if !root.is_object() {
        return Err(EditError::Syntax {
            format: "JSON",
            line: None,
            why: "the top level is not an object".into(),
        });
    }
    if !tree::apply_all(&mut root, reps)? {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(input.len() + 64);
    if bom {
        out.extend_from_slice(BOM);
    }
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    root.serialize(&mut ser).map_err(|e| EditError::Syntax {
        format: "JSON",
        line: None,
        why: e.to_string(),
    })?;
    out.push(b'\n');
    Ok(Some(out))
}
