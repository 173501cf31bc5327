//! Label selectors (`app=x,tier!=db,env in (a,b),env notin (c),gpu,!legacy`) and field selectors
//! (`metadata.name=x,status.phase!=Running`), parsed once and matched against objects.

use std::collections::BTreeSet;

use serde_json::Value;

/// Why a selector could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {which} selector {text:?}: {reason}")]
pub struct SelectorError {
    /// `label` or `field`.
    pub which: &'static str,
    /// The selector.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits at commas outside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_key(key: &str) -> bool {
    catalyst_schemas::validation::qualified_name(key).is_ok()
}

impl LabelSelector {
    /// Parses a selector in Kubernetes syntax.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError {
            which: "label",
            text: text.to_owned(),
            reason,
        };
        let mut reqs = Vec::new();
        for part in split_top(text) {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, rest)) = split_set_op(part, " notin ") {
                Requirement::NotIn(k, parse_set(rest).map_err(err)?)
            } else if let Some((k, rest)) = split_set_op(part, " in ") {
                Requirement::In(k, parse_set(rest).map_err(err)?)
            } else {
                Requirement::Exists(part.to_owned())
            };
            let key = match &req {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::NotExists(k) => k,
            };
            if !valid_key(key) {
                return Err(err(format!("{key:?} is not a label key")));
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// True when the labels satisfy every requirement.
    pub fn matches(&self, labels: &serde_json::Map<String, Value>) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn split_set_op(part: &str, op: &str) -> Option<(String, String)> {
    let (k, rest) = part.split_once(op)?;
    Some((k.trim().to_owned(), rest.trim().to_owned()))
}

fn parse_set(rest: String) -> Result<BTreeSet<String>, String> {
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised list, got {rest:?}"))?;
    let values: BTreeSet<String> = inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err("empty value list".into());
    }
    Ok(values)
}

/// Fields a field selector may name.
pub const SELECTABLE_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "status.phase",
    "spec.nodeName",
    "status.nodeName",
    "spec.owner",
];

/// A parsed field selector: equalities and inequalities on [`SELECTABLE_FIELDS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `field=value,field!=value`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError {
            which: "field",
            text: text.to_owned(),
            reason,
        };
        let mut reqs = Vec::new();
        for part in split_top(text) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(err(format!("{part:?} is not field=value or field!=value")));
            };
            let field = field.trim();
            if !SELECTABLE_FIELDS.contains(&field) {
                return Err(err(format!(
                    "field {field:?} cannot be selected; use one of {}",
                    SELECTABLE_FIELDS.join(", ")
                )));
            }
            reqs.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(reqs))
    }

    /// True when the object satisfies every requirement (an absent field counts as "").
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = object
                .pointer(&pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value) == *equal
        })
    }

    /// Whether one of the requirements is `field=value`.
    pub fn requires_equal(&self, field: &str, value: &str) -> bool {
        self.0
            .iter()
            .any(|(f, eq, v)| f == field && *eq && v == value)
    }

    /// The name a selector pins with `metadata.name=…`, if any.
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, eq, _)| f == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn label_selectors_support_every_operator() {
        let l = labels(json!({"app": "mc", "tier": "game", "region": "eu"}));
        let yes = [
            "",
            "app=mc",
            "app==mc",
            "tier!=db",
            "region in (eu, us)",
            "region notin (ap)",
            "app",
            "!legacy",
            "app=mc,region in (eu),!legacy",
            "missing!=x",
            "missing notin (x)",
        ];
        for s in yes {
            assert!(
                LabelSelector::parse(s).unwrap().matches(&l),
                "{s:?} should match"
            );
        }
        let no = [
            "app=other",
            "tier!=game",
            "region in (us)",
            "region notin (eu)",
            "legacy",
            "!app",
            "missing in (x)",
        ];
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches(&l),
                "{s:?} should not match"
            );
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for s in ["a in (", "a in ()", "bad key=x", "a notin b"] {
            assert!(LabelSelector::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn field_selectors_match_known_fields_only() {
        let obj = json!({"metadata": {"name": "a", "namespace": "default"}, "status": {"phase": "Running"}});
        let sel = FieldSelector::parse("metadata.name=a,status.phase!=Stopped").unwrap();
        assert!(sel.matches(&obj));
        assert_eq!(sel.pinned_name(), Some("a"));
        assert!(!FieldSelector::parse("spec.nodeName=n1")
            .unwrap()
            .matches(&obj));
        assert!(FieldSelector::parse("spec.nodeName=")
            .unwrap()
            .matches(&obj));
        let err = FieldSelector::parse("spec.image=x").unwrap_err();
        assert!(err.reason.contains("metadata.name"), "{err}");
    }
}
