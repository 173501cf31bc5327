//! What the user named on the command line: a kind by any of its names, `KIND NAME` or
//! `KIND/NAME`.

use catalyst_schemas::{lookup_kind, KindInfo};

use super::error::CtlError;

/// Finds a kind by its name, plural or short name.
///
/// # Errors
/// [`CtlError::UnknownKind`], listing the known kinds.
pub fn kind(name: &str) -> Result<&'static KindInfo, CtlError> {
    lookup_kind(name).ok_or_else(|| CtlError::UnknownKind {
        name: name.to_owned(),
    })
}

/// `KIND/NAME` (no `second`) or `KIND NAME`.
///
/// # Errors
/// [`CtlError::Usage`] for any other shape, [`CtlError::UnknownKind`].
pub fn kind_and_name(
    first: &str,
    second: Option<&str>,
) -> Result<(&'static KindInfo, String), CtlError> {
    match (first.split_once('/'), second) {
        (Some((k, n)), None) => Ok((kind(k)?, n.to_owned())),
        (None, Some(n)) => Ok((kind(first)?, n.to_owned())),
        _ => Err(CtlError::Usage("expected KIND NAME or KIND/NAME".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_an_object_name_it() {
        let (k, n) = kind_and_name("gs/survival", None).unwrap();
        assert_eq!((k.kind, n.as_str()), ("GameServer", "survival"));
        let (k, n) = kind_and_name("nodes", Some("node-a")).unwrap();
        assert_eq!((k.kind, n.as_str()), ("Node", "node-a"));
        assert!(matches!(kind_and_name("gs", None), Err(CtlError::Usage(_))));
        assert!(kind("pods")
            .unwrap_err()
            .to_string()
            .starts_with("unknown resource type \"pods\"; known: "));
    }
}
