//! The `properties` parser: Java `.properties` (Minecraft's `server.properties`), edited line
//! by line. The value of an existing `key=value` / `key: value` / `key value` entry is replaced
//! (continuation lines included), every other byte of the file stays as it was; a missing key
//! is appended as `key=value`. Keys are compared after Java's unescaping; dots are literal.
//! Written values are escaped as Java reads them: `\` as `\\`, tab/newline/CR/form feed as
//! `\t` `\n` `\r` `\f`, other control and non-ASCII characters as `\uXXXX`, a leading space as
//! `\ `. `if_value` (exact or `regex:`) only replaces an existing key.

use std::borrow::Cow;

use super::{check_text, eol_of, lines, split_eol, Cond, EditError, Replacement, Value};

const FORMAT: &str = "properties";

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\x0c')
}

/// Whether a natural line continues on the next one (an odd number of trailing backslashes).
fn continues(body: &[u8]) -> bool {
    body.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

pub(super) fn edit(input: &[u8], reps: &[Replacement]) -> Result<Option<Vec<u8>>, EditError> {
    check_text(input, FORMAT)?;
    let conds = reps.iter().map(Cond::of).collect::<Result<Vec<_>, _>>()?;
    let all: Vec<&[u8]> = lines(input).collect();
    let mut out = Vec::with_capacity(input.len() + 64);
    let mut found = vec![false; reps.len()];
    let mut i = 0;
    while i < all.len() {
        let line_no = i + 1;
        let (body, _) = split_eol(all[i]);
        let start = body.iter().position(|&b| !is_ws(b)).unwrap_or(body.len());
        if start == body.len() || matches!(body[start], b'#' | b'!') {
            out.extend_from_slice(all[i]);
            i += 1;
            continue;
        }
        // the logical line: natural lines joined while one ends in an odd number of `\`
        let mut end = i;
        while continues(split_eol(all[end]).0) && end + 1 < all.len() {
            end += 1;
        }
        // the key: up to the first unescaped `=`, `:` or whitespace
        let mut k = start;
        while k < body.len() && !matches!(body[k], b'=' | b':') && !is_ws(body[k]) {
            k += if body[k] == b'\\' { 2 } else { 1 };
        }
        let key_end = k.min(body.len());
        let mut v = key_end;
        while v < body.len() && is_ws(body[v]) {
            v += 1;
        }
        if v < body.len() && matches!(body[v], b'=' | b':') {
            v += 1;
            while v < body.len() && is_ws(body[v]) {
                v += 1;
            }
        }
        let key = unescape(&body[start..key_end], line_no)?;
        // the value's raw text over the continuation lines (their leading whitespace dropped)
        let mut raw = body[v..].to_vec();
        for l in &all[i + 1..=end] {
            if continues(&raw) {
                raw.pop();
            }
            let (b, _) = split_eol(l);
            let s = b.iter().position(|&c| !is_ws(c)).unwrap_or(b.len());
            raw.extend_from_slice(&b[s..]);
        }
        if continues(&raw) {
            raw.pop();
        }
        let value = unescape(&raw, line_no)?;
        let mut current = String::from_utf8_lossy(&value).into_owned();
        let mut changed = false;
        for (j, rep) in reps.iter().enumerate() {
            if rep.key.as_bytes() != key.as_slice() {
                continue;
            }
            found[j] = true;
            if let Some(new) = conds[j].decide(Some(&current), false, &rep.value) {
                let new = new.text().into_owned();
                changed |= new != current;
                current = new;
            }
        }
        if changed {
            out.extend_from_slice(&body[..v]);
            if v == key_end {
                // `key` alone: no separator to keep
                out.push(b'=');
            }
            out.extend_from_slice(escape(&current, false).as_bytes());
            out.extend_from_slice(split_eol(all[end]).1);
        } else {
            for l in &all[i..=end] {
                out.extend_from_slice(l);
            }
        }
        i = end + 1;
    }
    // missing keys: appended in order, once each (the last replacement of a key wins)
    let mut append: Vec<(&str, Value)> = Vec::new();
    for (j, rep) in reps.iter().enumerate() {
        if found[j] {
            continue;
        }
        if let Some(new) = conds[j].decide(None, false, &rep.value) {
            match append.iter_mut().find(|(k, _)| *k == rep.key) {
                Some(slot) => slot.1 = new,
                None => append.push((&rep.key, new)),
            }
        }
    }
    let eol = eol_of(input);
    for (key, value) in append {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(escape(key, true).as_bytes());
        out.push(b'=');
        out.extend_from_slice(escape(&value.text(), false).as_bytes());
        out.extend_from_slice(eol);
    }
    Ok(Some(out))
}

/// Java's `loadConvert`: `\uXXXX`, `\t` `\n` `\r` `\f`, `\x` is `x`. Bytes that are not ASCII
/// pass through (a Latin-1 file stays Latin-1).
fn unescape(raw: &[u8], line: usize) -> Result<Vec<u8>, EditError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    let mut pending: Option<u16> = None; // a high surrogate waiting for its low half
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' {
            flush(&mut out, &mut pending);
            out.push(b);
            continue;
        }
        let Some(&e) = raw.get(i) else { break };
        i += 1;
        match e {
            b'u' => {
                let hex = raw
                    .get(i..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                    .ok_or_else(|| EditError::Syntax {
                        format: FORMAT,
                        line: Some(line),
                        why: "a malformed \\uXXXX escape".into(),
                    })?;
                i += 4;
                match (pending.take(), hex) {
                    (Some(hi), 0xDC00..=0xDFFF) => {
                        let c = char::decode_utf16([hi, hex])
                            .next()
                            .and_then(Result::ok)
                            .unwrap_or(char::REPLACEMENT_CHARACTER);
                        push_char(&mut out, c);
                    }
                    (hi, 0xD800..=0xDBFF) => {
                        if hi.is_some() {
                            push_char(&mut out, char::REPLACEMENT_CHARACTER);
                        }
                        pending = Some(hex);
                    }
                    (hi, _) => {
                        if hi.is_some() {
                            push_char(&mut out, char::REPLACEMENT_CHARACTER);
                        }
                        push_char(
                            &mut out,
                            char::from_u32(u32::from(hex)).unwrap_or(char::REPLACEMENT_CHARACTER),
                        );
                    }
                }
                continue;
            }
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'f' => out.push(b'\x0c'),
            other => out.push(other),
        }
        flush(&mut out, &mut pending);
    }
    flush(&mut out, &mut pending);
    Ok(out)
}

fn flush(out: &mut Vec<u8>, pending: &mut Option<u16>) {
    if pending.take().is_some() {
        push_char(out, char::REPLACEMENT_CHARACTER);
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Escapes a value (or, with `key`, a key: also `=`, `:`, whitespace, and `#`/`!` first).
fn escape(s: &str, key: bool) -> Cow<'_, str> {
    let plain = |i: usize, c: char| match c {
        ' ' | '\t' if i == 0 || key => false,
        '=' | ':' if key => false,
        '#' | '!' if key && i == 0 => false,
        '\\' => false,
        c => c.is_ascii() && !c.is_ascii_control(),
    };
    if s.char_indices().all(|(i, c)| plain(i, c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in s.char_indices() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            ' ' | '=' | ':' | '#' | '!' if !plain(i, c) => {
                out.push('\\');
                out.push(c);
            }
            c if plain(i, c) => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04X}"));
                }
            }
        }
    }
    Cow::Owned(out)
}
