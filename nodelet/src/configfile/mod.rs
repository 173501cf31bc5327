//! The config-file editor: a Template's `configFiles` edits (Pterodactyl egg `config.files`),
//! applied to a server's data directory before every start, as Pterodactyl Wings does.
//!
//! [`edit`] is pure: a parser, the file's bytes (or `None` when it does not exist) and the
//! replacements (placeholders already resolved by the caller) give the new bytes, or `None`
//! when the file is to be left as it is. [`apply`] reads and writes the files through the data
//! directory's safe path layer ([`crate::files::Root`]).
//!
//! One file per parser: `properties` and `ini` edit lines in place (comments, order and every
//! other line stay byte-identical), `json` and `yaml` edit a tree and re-write the whole file,
//! `xml` edits a small DOM that keeps the source text of everything it did not change, `file`
//! replaces lines that start with a key. See docs/configfiles.md for the exact semantics and
//! where they differ from Wings.
//!
//! A file is edited as a whole or not at all: a file that does not parse, or one replacement
//! that cannot be made, leaves the file byte-identical and is reported as an [`EditError`].

mod file;
mod ini;
mod json;
mod properties;
mod tree;
mod xml;
mod yaml;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io::{Read, Write};

pub use catalyst_schemas::template::ConfigParser;

use crate::files::{EntryKind, FsError, Root};

/// The largest file the editor reads or writes.
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// The most path segments a key may have (json, yaml, xml).
const MAX_SEGMENTS: usize = 256;

/// A replacement's new value, placeholders already resolved. `json` and `yaml` write
/// [`Value::Int`] and [`Value::Bool`] as numbers and booleans; the text formats write all three
/// as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// Text.
    Str(String),
}

impl Value {
    /// The value as text.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Str(s) => Cow::Borrowed(s),
        }
    }
}

/// One edit of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// What to set: a dotted path (json, yaml, xml), `section.key` (ini), a key (properties)
    /// or a line prefix (file).
    pub key: String,
    /// Only replace when the current value is exactly this, or, as `regex:RE`, when it matches
    /// `RE` (the new value is then `RE.replace_all(current, value)`, `$1`/`${name}` expanded).
    pub if_value: Option<String>,
    /// The new value.
    pub value: Value,
}

/// Why a file was not edited. The file is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file (or what it would become) is larger than [`MAX_FILE_BYTES`].
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The file does not parse in its format.
    #[error("not valid {format}: {}{why}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Syntax {
        /// The format: `JSON`, `YAML`, `XML`, `properties`, `INI`, `text`.
        format: &'static str,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        why: String,
    },
    /// A replacement cannot be made (a bad key, an index past the end, a path through a
    /// string, an invalid regex, a value the format cannot hold).
    #[error("key {key}: {why}")]
    Key {
        /// The replacement's key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The path is absolute, or names the data directory itself.
    #[error("{path}: {why}")]
    Path {
        /// The configured path.
        path: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Reading or writing the file failed (it leads outside the data directory, is a symbolic
    /// link, a hard-linked file, a directory, ...).
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// `input` as text; a `format` syntax error naming the line where it stops being UTF-8.
fn utf8<'a>(input: &'a [u8], format: &'static str) -> Result<&'a str, EditError> {
    std::str::from_utf8(input).map_err(|e| {
        let line = input[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        EditError::Syntax {
            format,
            line: Some(line),
            why: "not UTF-8".into(),
        }
    })
}

/// The dotted `path` of replacement `key` as segments: none empty, at most [`MAX_SEGMENTS`].
fn segments<'k>(key: &str, path: &'k str) -> Result<Vec<&'k str>, EditError> {
    let segs: Vec<&str> = path.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(EditError::key(key, "an empty path segment"));
    }
    if segs.len() > MAX_SEGMENTS {
        return Err(EditError::key(
            key,
            format!("more than {MAX_SEGMENTS} path segments"),
        ));
    }
    Ok(segs)
}

impl EditError {
    fn key(key: &str, why: impl Into<String>) -> EditError {
        EditError::Key {
            key: key.to_owned(),
            why: why.into(),
        }
    }
}

/// Edits one file's bytes. `old` is `None` when the file does not exist. `Ok(None)`: leave the
/// file as it is (or do not create it): nothing changes, or the `file` parser met a missing
/// file. `Ok(Some(bytes))`: write these. Never panics.
pub fn edit(
    parser: ConfigParser,
    old: Option<&[u8]>,
    reps: &[Replacement],
) -> Result<Option<Vec<u8>>, EditError> {
    if old.is_some_and(|o| o.len() > MAX_FILE_BYTES) {
        return Err(EditError::TooLarge {
            limit: MAX_FILE_BYTES,
        });
    }
    if let Some(r) = reps.iter().find(|r| r.key.is_empty()) {
        return Err(EditError::key(&r.key, "an empty key"));
    }
    if reps.is_empty() || (parser == ConfigParser::File && old.is_none()) {
        return Ok(None);
    }
    let input = old.unwrap_or_default();
    let out = match parser {
        ConfigParser::Properties => properties::edit(input, reps)?,
        ConfigParser::Ini => ini::edit(input, reps)?,
        ConfigParser::Json => json::edit(input, reps)?,
        ConfigParser::Yaml => yaml::edit(input, reps)?,
        ConfigParser::Xml => xml::edit(input, reps)?,
        ConfigParser::File => file::edit(input, reps)?,
    };
    match out {
        Some(out) if out.len() > MAX_FILE_BYTES => Err(EditError::TooLarge {
            limit: MAX_FILE_BYTES,
        }),
        Some(out) if out == input => Ok(None),
        out => Ok(out),
    }
}

/// Edits the files of a data directory: each path is read through the safe path layer,
/// edited with [`edit`] and written back atomically (a temporary file renamed over it, the
/// file's mode kept; a created file gets `0o644`). One result per file, in order: whether it
/// changed, or why it was left alone. A path that is absolute, climbs out with `..`, is a
/// symbolic link, or leads outside through one is refused; nothing is ever written outside.
/// A missing parent directory is an error (nothing is created but the file).
///
/// Blocking (the path layer switches the thread's fsuid): call it from `spawn_blocking`.
pub fn apply(
    root: &Root,
    files: &[(String, ConfigParser, Vec<Replacement>)],
) -> Vec<(String, Result<bool, EditError>)> {
    files
        .iter()
        .map(|(path, parser, reps)| {
            let result = apply_one(root, path, *parser, reps);
            match &result {
                Ok(changed) => tracing::debug!(path, changed, "config file"),
                Err(e) => tracing::debug!(path, error = %e, "config file not edited"),
            }
            (path.clone(), result)
        })
        .collect()
}

fn apply_one(
    root: &Root,
    path: &str,
    parser: ConfigParser,
    reps: &[Replacement],
) -> Result<bool, EditError> {
    if path.starts_with('/') {
        return Err(EditError::Path {
            path: path.to_owned(),
            why: "an absolute path; config files are relative to the data directory",
        });
    }
    let clean = Root::clean(path)?;
    if clean.is_empty() {
        return Err(EditError::Path {
            path: path.to_owned(),
            why: "names the data directory itself",
        });
    }
    let exists = match root.stat(&clean) {
        Ok(entry) => match entry.kind {
            EntryKind::File => true,
            EntryKind::Symlink => {
                return Err(FsError::Refused {
                    path: entry.path,
                    why: "a symbolic link; config files are only edited in place".into(),
                }
                .into())
            }
            EntryKind::Directory => return Err(FsError::IsADirectory { path: entry.path }.into()),
            EntryKind::Other => {
                return Err(FsError::Refused {
                    path: entry.path,
                    why: "not a regular file".into(),
                }
                .into())
            }
        },
        Err(FsError::NotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    let old = if exists {
        let (file, entry) = root.open_read(&clean)?;
        if entry.size > MAX_FILE_BYTES as u64 {
            return Err(EditError::TooLarge {
                limit: MAX_FILE_BYTES,
            });
        }
        let mut buf = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
        file.take(MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| FsError::from_io(&entry.path, e))?;
        Some(buf)
    } else {
        None
    };
    let Some(new) = edit(parser, old.as_deref(), reps)? else {
        return Ok(false);
    };
    let mut out = root.write_atomic(&clean, None)?;
    out.write_all(&new)
        .map_err(|e| FsError::from_io(&format!("/{clean}"), e))?;
    out.commit()?;
    Ok(true)
}

/// A replacement's condition, from its `if_value`.
#[derive(Debug)]
enum Cond {
    /// No `if_value`: always set.
    Always,
    /// Only when the current value is exactly this.
    Equals(String),
    /// `regex:RE`: only when the current value matches; the new value is the rewrite.
    Regex(regex::Regex),
}

impl Cond {
    fn of(rep: &Replacement) -> Result<Cond, EditError> {
        match rep.if_value.as_deref() {
            None => Ok(Cond::Always),
            Some(v) => match v.strip_prefix("regex:") {
                Some(re) => regex::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .dfa_size_limit(1 << 20)
                    .build()
                    .map(Cond::Regex)
                    .map_err(|e| EditError::key(&rep.key, format!("if_value: {e}"))),
                None => Ok(Cond::Equals(v.to_owned())),
            },
        }
    }

    /// What to write, given the current value (`None`: the key is missing); `None`: leave it.
    /// `missing_sets`: whether an `Equals` condition sets a missing key (json, yaml, xml) or
    /// not (properties, ini). A regex rewrite is [`Value::Str`].
    fn decide(&self, current: Option<&str>, missing_sets: bool, value: &Value) -> Option<Value> {
        match (self, current) {
            (Cond::Always, _) => Some(value.clone()),
            (Cond::Equals(_), None) => missing_sets.then(|| value.clone()),
            (Cond::Equals(want), Some(cur)) => (want == cur).then(|| value.clone()),
            (Cond::Regex(_), None) => None,
            (Cond::Regex(re), Some(cur)) => re
                .is_match(cur)
                .then(|| Value::Str(re.replace_all(cur, value.text().as_ref()).into_owned())),
        }
    }
}

/// The lines of a text, each with its line ending (the last one may have none).
fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    input.split_inclusive(|&b| b == b'\n')
}

/// A line without its ending, and the ending (`"\r\n"`, `"\n"` or `""`).
fn split_eol(line: &[u8]) -> (&[u8], &[u8]) {
    let n = if line.ends_with(b"\r\n") {
        2
    } else if line.ends_with(b"\n") {
        1
    } else {
        0
    };
    line.split_at(line.len() - n)
}

/// The line ending new lines get: the first line's, else `"\n"`.
fn eol_of(input: &[u8]) -> &'static [u8] {
    match lines(input).next() {
        Some(l) if l.ends_with(b"\r\n") => b"\r\n",
        _ => b"\n",
    }
}

/// Line-based formats refuse a file with a NUL byte: it is not text.
fn check_text(input: &[u8], format: &'static str) -> Result<(), EditError> {
    match input.iter().position(|&b| b == 0) {
        None => Ok(()),
        Some(at) => Err(EditError::Syntax {
            format,
            line: Some(input[..at].iter().filter(|&&b| b == b'\n').count() + 1),
            why: "a NUL byte (not a text file)".into(),
        }),
    }
}

/// Values of line-based formats may not hold a line break (it would add lines), nor a NUL
/// byte (the file would no longer be text).
fn one_line<'v>(key: &str, value: &'v Value) -> Result<Cow<'v, str>, EditError> {
    let text = value.text();
    if text.contains(['\n', '\r']) {
        return Err(EditError::key(key, "the value holds a line break"));
    }
    if text.contains('\0') {
        return Err(EditError::key(key, "the value holds a NUL byte"));
    }
    Ok(text)
}
