//! Field paths, validation causes, and the syntax rules for names, labels and annotations.

use std::fmt;

/// One problem with one field of an object, as the API reports it in `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cause {
    /// The field at fault, e.g. `spec.ports[1].containerPort`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in an object; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The problems, in the order they were found.
    pub causes: Vec<Cause>,
}

impl ValidationError {
    /// An error with a single cause.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            causes: vec![Cause {
                field: field.into(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cause) in self.causes.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{cause}")?;
        }
        Ok(())
    }
}

/// A dotted field path (`spec.ports[1].containerPort`) built while walking an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// The path of a top-level field.
    pub fn root(name: &str) -> Self {
        Self(name.to_owned())
    }

    /// The path of a child field.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// The path of a list element.
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// The path of a map entry (`metadata.labels[app]`).
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Collects causes while an object is validated.
#[derive(Debug, Default)]
pub struct Causes(Vec<Cause>);

impl Causes {
    /// Records a problem with `field`.
    pub fn push(&mut self, field: &FieldPath, message: impl Into<String>) {
        self.0.push(Cause {
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Records a problem when `ok` is false.
    pub fn check(&mut self, ok: bool, field: &FieldPath, message: impl Into<String>) {
        if !ok {
            self.push(field, message);
        }
    }

    /// Records the message of a rule that returned an error.
    pub fn rule(&mut self, field: &FieldPath, result: Result<(), String>) {
        if let Err(message) = result {
            self.push(field, message);
        }
    }

    /// `Ok` when nothing was recorded, else every cause.
    pub fn into_result(self) -> Result<(), ValidationError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { causes: self.0 })
        }
    }

    /// The causes recorded so far.
    pub fn as_slice(&self) -> &[Cause] {
        &self.0
    }
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// An RFC 1123 DNS label: at most 63 lowercase alphanumerics or `-`, starting and ending
/// alphanumeric. GameServer and Node names are labels (they become host and container names).
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!("must be at most 63 characters (is {})", s.len()));
    }
    let ok = s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.starts_with(is_alnum_lower)
        && s.ends_with(is_alnum_lower);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

/// An RFC 1123 DNS subdomain: at most 253 characters, dot-separated DNS labels.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!("must be at most 253 characters (is {})", s.len()));
    }
    if s.split('.').all(|part| dns_label(part).is_ok()) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS subdomain: lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit"
        ))
    }
}

fn qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain, the name at most 63
/// alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric.
pub fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        dns_subdomain(p).map_err(|e| format!("prefix of key {s:?}: {e}"))?;
    }
    if qualified_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid key: an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_` or `.`, starting and ending
/// alphanumeric.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || qualified_name_part(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn env_name(s: &str) -> Result<(), String> {
    let ok = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid variable name: letters, digits and '_', not starting with a digit"
        ))
    }
}

/// An environment variable's value: one line, so no NUL (which the environment cannot hold),
/// CR or LF (which would break the line into two in logs, consoles and config files).
pub fn env_value(s: &str) -> Result<(), String> {
    match s.find(['\0', '\r', '\n']) {
        None => Ok(()),
        Some(i) => Err(format!(
            "must be one line: no NUL, CR or LF (found {:?} at byte {i})",
            &s[i..=i]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_accept_lowercase_names_and_reject_the_rest() {
        assert!(dns_label("survival-1").is_ok());
        assert!(dns_label("a").is_ok());
        for bad in ["", "Survival", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn dns_subdomains_are_dotted_labels() {
        assert!(dns_subdomain("catalyst.dev").is_ok());
        assert!(dns_subdomain("a..b").is_err());
        assert!(dns_subdomain(".a").is_err());
    }

    #[test]
    fn label_keys_may_carry_a_subdomain_prefix() {
        assert!(qualified_name("catalyst.dev/restartedAt").is_ok());
        assert!(qualified_name("game").is_ok());
        assert!(qualified_name("Game_1.x").is_ok());
        assert!(qualified_name("bad prefix/x").is_err());
        assert!(qualified_name("a/").is_err());
        assert!(qualified_name("x/y/z").is_err());
    }

    #[test]
    fn label_values_may_be_empty_but_not_malformed() {
        assert!(label_value("").is_ok());
        assert!(label_value("minecraft").is_ok());
        assert!(label_value("-x").is_err());
        assert!(label_value("a b").is_err());
    }

    #[test]
    fn variable_values_are_one_line_without_nul() {
        assert!(env_value("").is_ok());
        assert!(env_value("a b\t$(x) é").is_ok());
        for bad in ["a\nb", "a\rb", "a\0b", "\n"] {
            let err = env_value(bad).unwrap_err();
            assert!(err.contains("no NUL, CR or LF"), "{bad:?}: {err}");
        }
        assert_eq!(
            env_value("ab\r").unwrap_err(),
            "must be one line: no NUL, CR or LF (found \"\\r\" at byte 2)"
        );
    }

    #[test]
    fn field_paths_render_like_kubernetes() {
        let p = FieldPath::root("spec")
            .child("ports")
            .index(1)
            .child("containerPort");
        assert_eq!(p.as_str(), "spec.ports[1].containerPort");
        assert_eq!(
            FieldPath::root("metadata")
                .child("labels")
                .key("app")
                .as_str(),
            "metadata.labels[app]"
        );
    }
}

/// A duration such as `30s`, `5m`, `1h30m`, `2d`; returns seconds.
pub fn duration(s: &str) -> Result<u64, String> {
    let err = || format!("{s:?} is not a duration: use e.g. 30s, 5m, 1h30m, 2d");
    if s.is_empty() {
        return Err(err());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(err()),
        };
        let n: u64 = num.parse().map_err(|_| err())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(err());
    }
    Ok(total)
}

#[cfg(test)]
mod duration_tests {
    use super::duration;

    #[test]
    fn durations_add_their_parts() {
        assert_eq!(duration("30s"), Ok(30));
        assert_eq!(duration("1h30m"), Ok(5400));
        assert_eq!(duration("2d"), Ok(172_800));
        for bad in ["", "5", "m", "5x", "-1s"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }
}
