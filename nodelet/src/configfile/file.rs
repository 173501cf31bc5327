//! The `file` parser (Wings' plain-text rule): every line that starts with a replacement's key
//! (a byte prefix) becomes that replacement's value; several matching replacements are written
//! one after the other. Each line keeps its own line ending. Nothing is appended, a missing
//! file is not created, `if_value` is ignored (as Wings does).

use super::{check_text, lines, one_line, split_eol, EditError, Replacement};

pub(super) fn edit(input: &[u8], reps: &[Replacement]) -> Result<Option<Vec<u8>>, EditError> {
    check_text(input, "text")?;
    let values = reps
        .iter()
        .map(|r| one_line(&r.key, &r.value))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(input.len() + 64);
    for line in lines(input) {
        let (body, eol) = split_eol(line);
        let mut matched = false;
        for (rep, value) in reps.iter().zip(&values) {
            if body.starts_with(rep.key.as_bytes()) {
                matched = true;
                out.extend_from_slice(value.as_bytes());
            }
        }
        if matched {
            out.extend_from_slice(eol);
        } else {
            out.extend_from_slice(line);
        }
    }
    Ok(Some(out))
}
