//! User paths: lexical cleaning and splitting, before anything touches the disk.

use super::FsError;

/// The longest name of one path component (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// The longest cleaned path (`PATH_MAX` less the terminating NUL).
const PATH_MAX: usize = 4095;

/// Cleans a user path: a leading `/` is the data directory's root; empty and `.` components
/// are dropped; `..` removes the previous component and is [`FsError::Escapes`] when there is
/// none. The result has no leading or trailing `/` and is empty for the root.
pub(crate) fn clean(raw: &str) -> Result<String, FsError> {
    let shown = || raw.replace('\0', "\\0");
    if raw.contains('\0') {
        return Err(FsError::invalid(&shown(), "the path contains a NUL byte"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(FsError::Escapes { path: shown() });
                }
            }
            name if name.len() > NAME_MAX => {
                return Err(FsError::invalid(
                    &shown(),
                    "a name is longer than 255 bytes",
                ));
            }
            name => parts.push(name),
        }
    }
    let cleaned = parts.join("/");
    if cleaned.len() > PATH_MAX {
        return Err(FsError::invalid(&shown(), "the path is too long"));
    }
    Ok(cleaned)
}

/// How a cleaned path is shown to the user: with a leading `/`.
pub(crate) fn shown(cleaned: &str) -> String {
    format!("/{cleaned}")
}

/// A child's user path under a shown directory path.
pub(crate) fn child(shown_dir: &str, name: &str) -> String {
    if shown_dir == "/" {
        format!("/{name}")
    } else {
        format!("{shown_dir}/{name}")
    }
}

/// Splits a cleaned path into (parent, final name); `None` for the root. The parent is empty
/// for a name directly under the root.
pub(crate) fn split(cleaned: &str) -> Option<(&str, &str)> {
    if cleaned.is_empty() {
        return None;
    }
    Some(match cleaned.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", cleaned),
    })
}
