//! The `ini` parser, edited line by line. A key's first `.` outside `[...]` separates the
//! section from the key (`network.server_port`, `[a.b].c` → section `a.b`, key `c`); a key
//! without a dot is in the unnamed section before the first header. Sections and keys are
//! case-sensitive. An existing `key = value` / `key=value` / `key: value` line keeps its own
//! spacing and gets the new value; a missing key is added after the last entry of its section
//! (in that section's style), a missing section is appended at the end of the file. Comments
//! (`;`, `#`) and every other line stay byte-identical. `if_value` (exact or `regex:`) only
//! replaces an existing key.

use super::{check_text, eol_of, lines, one_line, split_eol, Cond, EditError, Replacement, Value};

const FORMAT: &str = "INI";

/// A replacement's section (`None`: the unnamed one) and key.
fn split_key(key: &str) -> Result<(Option<&str>, &str), EditError> {
    let (section, name) = if let Some(rest) = key.strip_prefix('[') {
        let Some((section, name)) = rest.split_once(']') else {
            return Err(EditError::key(key, "an unclosed `[`"));
        };
        let Some(name) = name.strip_prefix('.') else {
            return Err(EditError::key(
                key,
                "`[section]` must be followed by `.key`",
            ));
        };
        (Some(section), name)
    } else {
        match key.split_once('.') {
            Some((s, k)) => (Some(s), k),
            None => (None, key),
        }
    };
    let bad_name = name.is_empty()
        || name.trim() != name
        || name.contains(['=', ':'])
        || name.contains(|c: char| c.is_control())
        || name.starts_with(['[', ';', '#']);
    if bad_name {
        return Err(EditError::key(key, "not a valid INI key name"));
    }
    if section.is_some_and(|s| {
        s.is_empty() || s.trim() != s || s.contains(']') || s.contains(|c: char| c.is_control())
    }) {
        return Err(EditError::key(key, "not a valid INI section name"));
    }
    Ok((section, name))
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// A value as compared with `if_value`: trimmed, surrounding double quotes removed.
fn current_text(raw: &[u8]) -> String {
    let t = trim(raw);
    let t = match t {
        [b'"', inner @ .., b'"'] => inner,
        t => t,
    };
    String::from_utf8_lossy(t).into_owned()
}

/// Keys to add to one section, with their values.
type Entries<'k> = Vec<(&'k str, Value)>;

/// What is known about one section occurrence.
#[derive(Debug, Default)]
struct Section {
    /// The index of the line after which a new key goes (`None`: before the first line).
    last: Option<usize>,
    /// Whether any entry line was seen (for the unnamed section).
    has_entry: bool,
    /// Spaces around the separator in its first entry.
    spaced: Option<bool>,
}

pub(super) fn edit(input: &[u8], reps: &[Replacement]) -> Result<Option<Vec<u8>>, EditError> {
    check_text(input, FORMAT)?;
    let conds = reps.iter().map(Cond::of).collect::<Result<Vec<_>, _>>()?;
    let keys = reps
        .iter()
        .map(|r| split_key(&r.key))
        .collect::<Result<Vec<_>, _>>()?;
    for r in reps {
        one_line(&r.key, &r.value)?;
    }
    let all: Vec<&[u8]> = lines(input).collect();
    let mut replaced: Vec<Option<Vec<u8>>> = vec![None; all.len()];
    let mut found = vec![false; reps.len()];
    // sections in file order, the unnamed one first; the last occurrence of a name wins
    let mut sections: Vec<(Option<Vec<u8>>, Section)> = vec![(None, Section::default())];
    let mut file_spaced: Option<bool> = None;
    for (i, line) in all.iter().enumerate() {
        let (body, eol) = split_eol(line);
        let t = trim(body);
        if t.is_empty() || t.starts_with(b";") || t.starts_with(b"#") {
            continue;
        }
        if t.starts_with(b"[") {
            let Some(close) = t.iter().position(|&b| b == b']') else {
                return Err(EditError::Syntax {
                    format: FORMAT,
                    line: Some(i + 1),
                    why: "an unclosed section header".into(),
                });
            };
            let name = trim(&t[1..close]).to_vec();
            sections.push((
                Some(name),
                Section {
                    last: Some(i),
                    ..Section::default()
                },
            ));
            continue;
        }
        let Some(sep) = body.iter().position(|&b| b == b'=' || b == b':') else {
            // a bare key: left alone
            continue;
        };
        let name = trim(&body[..sep]);
        let spaced = body[..sep].last().is_some_and(|b| b.is_ascii_whitespace());
        let (section_name, section) = sections.last_mut().expect("the unnamed section");
        section.last = Some(i);
        section.has_entry = true;
        section.spaced.get_or_insert(spaced);
        file_spaced.get_or_insert(spaced);
        let mut v = sep + 1;
        while v < body.len() && matches!(body[v], b' ' | b'\t') {
            v += 1;
        }
        let mut current: Option<String> = None;
        for (j, rep) in reps.iter().enumerate() {
            let (s, k) = keys[j];
            if k.as_bytes() != name || s.map(str::as_bytes) != section_name.as_deref() {
                continue;
            }
            found[j] = true;
            let cur = current.clone().unwrap_or_else(|| current_text(&body[v..]));
            if let Some(new) = conds[j].decide(Some(&cur), false, &rep.value) {
                current = Some(new.text().into_owned());
            }
        }
        if let Some(new) = current.filter(|n| *n != current_text(&body[v..])) {
            let mut l = body[..v].to_vec();
            if v == sep + 1 && spaced {
                l.push(b' ');
            }
            l.extend_from_slice(new.as_bytes());
            l.extend_from_slice(eol);
            if l != *line {
                replaced[i] = Some(l);
            }
        }
    }
    // missing keys, grouped by section in first-seen order (the last replacement of a key wins)
    let mut missing: Vec<(Option<&str>, Entries<'_>)> = Vec::new();
    for (j, rep) in reps.iter().enumerate() {
        if found[j] {
            continue;
        }
        let Some(new) = conds[j].decide(None, false, &rep.value) else {
            continue;
        };
        let (s, k) = keys[j];
        let group = match missing.iter().position(|(gs, _)| *gs == s) {
            Some(g) => &mut missing[g].1,
            None => {
                missing.push((s, Vec::new()));
                &mut missing.last_mut().expect("just pushed").1
            }
        };
        match group.iter_mut().find(|(gk, _)| *gk == k) {
            Some(slot) => slot.1 = new,
            None => group.push((k, new)),
        }
    }
    let eol = eol_of(input);
    let entry = |k: &str, v: &Value, spaced: bool| {
        let mut l = k.as_bytes().to_vec();
        l.extend_from_slice(if spaced { b" = " } else { b"=" });
        l.extend_from_slice(v.text().as_bytes());
        l.extend_from_slice(eol);
        l
    };
    // insertions after a line index (`None`: at the start), and whole new sections at the end
    let mut after: Vec<(Option<usize>, Vec<u8>)> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let has_header = sections.len() > 1;
    for (s, group) in &missing {
        let existing = sections
            .iter()
            .rev()
            .find(|(name, _)| name.as_deref() == s.map(str::as_bytes));
        match existing {
            Some((_, sec)) => {
                let spaced = sec.spaced.or(file_spaced).unwrap_or(true);
                let at = match (s, sec.has_entry, has_header) {
                    // the unnamed section without entries: at the start when a header
                    // follows, else at the end of the file
                    (None, false, true) => None,
                    (None, false, false) => all.len().checked_sub(1),
                    _ => sec.last,
                };
                let mut text = Vec::new();
                for (k, v) in group {
                    text.extend(entry(k, v, spaced));
                }
                after.push((at, text));
            }
            None => {
                let spaced = file_spaced.unwrap_or(true);
                if !(input.is_empty() && tail.is_empty()) {
                    tail.extend_from_slice(eol);
                }
                tail.push(b'[');
                tail.extend_from_slice(s.unwrap_or_default().as_bytes());
                tail.push(b']');
                tail.extend_from_slice(eol);
                for (k, v) in group {
                    tail.extend(entry(k, v, spaced));
                }
            }
        }
    }
    let mut out = Vec::with_capacity(input.len() + 64);
    let insert = |out: &mut Vec<u8>, at: Option<usize>| {
        for (_, text) in after.iter().filter(|(a, _)| *a == at) {
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.extend_from_slice(eol);
            }
            out.extend_from_slice(text);
        }
    };
    insert(&mut out, None);
    for (i, line) in all.iter().enumerate() {
        out.extend_from_slice(replaced[i].as_deref().unwrap_or(line));
        insert(&mut out, Some(i));
    }
    if !tail.is_empty() {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(&tail);
    }
    Ok(Some(out))
}
