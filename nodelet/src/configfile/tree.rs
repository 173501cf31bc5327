//! Dotted-path edits of a JSON tree, shared by the `json` and `yaml` parsers.
//!
//! Keys (Wings' gabs paths): `a.b.c` sets a value, creating missing objects; split at the first
//! `.*`, `a.*.b` sets `b` in every child of `a` (object values or array elements); `P[N]` and
//! `P[N].rest` (one bracket, `P` dotted) address element `N` of the array at `P`, which is
//! created as `[{}]` when missing and `N` is 0. A numeric segment indexes an existing array.

use std::sync::LazyLock;

use serde_json::{Map, Value as Json};

use super::{Cond, EditError, Replacement, Value};

/// `P[N]` and `P[N].rest`.
static INDEXED: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^([^\[\]]+)\[(\d+)\](\..+)?$").expect("a valid regex"));

/// A parsed key.
#[derive(Debug)]
enum Path<'k> {
    /// `a.b.c`.
    Plain(Vec<&'k str>),
    /// `a.*.rest`: `rest` in every child of `a` (`rest` may be empty: the children themselves).
    Each(Vec<&'k str>, Vec<&'k str>),
    /// `P[N].rest`.
    Index(Vec<&'k str>, usize, Vec<&'k str>),
}

/// Applies the replacements in order to `root` (an object); whether anything changed.
pub(super) fn apply_all(root: &mut Json, reps: &[Replacement]) -> Result<bool, EditError> {
    let mut changed = false;
    for rep in reps {
        let cond = Cond::of(rep)?;
        changed |= apply(root, rep, &cond)?;
    }
    Ok(changed)
}

fn segments<'k>(key: &str, path: &'k str) -> Result<Vec<&'k str>, EditError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    super::segments(key, path)
}

fn parse(key: &str) -> Result<Path<'_>, EditError> {
    if let Some((parent, rest)) = key.split_once(".*") {
        let parent = segments(key, parent)?;
        if parent.is_empty() {
            return Err(EditError::key(key, "nothing before `.*`"));
        }
        return Ok(Path::Each(parent, segments(key, rest.trim_matches('.'))?));
    }
    if let Some(c) = INDEXED.captures(key) {
        let (Some(parent), Some(index)) = (c.get(1), c.get(2)) else {
            return Err(EditError::key(key, "a malformed index"));
        };
        let index: usize = index
            .as_str()
            .parse()
            .map_err(|_| EditError::key(key, "an index too large"))?;
        let rest = c.get(3).map_or("", |m| &m.as_str()[1..]);
        return Ok(Path::Index(
            segments(key, parent.as_str())?,
            index,
            segments(key, rest)?,
        ));
    }
    Ok(Path::Plain(segments(key, key)?))
}

fn apply(root: &mut Json, rep: &Replacement, cond: &Cond) -> Result<bool, EditError> {
    let key = rep.key.as_str();
    match parse(key)? {
        Path::Plain(segs) => set(root, &segs, rep, cond),
        Path::Each(parent, rest) => {
            let mut changed = false;
            match get_mut(root, &parent) {
                Some(Json::Object(m)) => {
                    for child in m.values_mut() {
                        changed |= set(child, &rest, rep, cond)?;
                    }
                }
                Some(Json::Array(a)) => {
                    for child in a.iter_mut() {
                        changed |= set(child, &rest, rep, cond)?;
                    }
                }
                // Wings: a missing or scalar parent has no children
                _ => {}
            }
            Ok(changed)
        }
        Path::Index(parent, index, rest) => match get_mut(root, &parent) {
            Some(Json::Array(a)) if index < a.len() => set(&mut a[index], &rest, rep, cond),
            Some(Json::Array(a)) if a.is_empty() => {
                let Some(el) = new_element(&rest, rep, cond)? else {
                    return Ok(false);
                };
                a.push(el);
                Ok(true)
            }
            Some(Json::Array(a)) => Err(EditError::key(
                key,
                format!(
                    "index {index} is past the end of `{}` ({} elements)",
                    parent.join("."),
                    a.len()
                ),
            )),
            None | Some(Json::Null) if index == 0 => {
                let Some(el) = new_element(&rest, rep, cond)? else {
                    return Ok(false);
                };
                put(root, &parent, Json::Array(vec![el]), key)?;
                Ok(true)
            }
            None | Some(Json::Null) => Err(EditError::key(
                key,
                format!(
                    "`{}` does not exist (only index 0 creates the array)",
                    parent.join(".")
                ),
            )),
            Some(other) => Err(EditError::key(
                key,
                format!("`{}` is {}, not an array", parent.join("."), kind(other)),
            )),
        },
    }
}

/// A new array element holding the value at `rest`, when the condition sets a missing key.
fn new_element(rest: &[&str], rep: &Replacement, cond: &Cond) -> Result<Option<Json>, EditError> {
    let Some(new) = cond.decide(None, true, &rep.value) else {
        return Ok(None);
    };
    let mut el = Json::Object(Map::new());
    put(&mut el, rest, to_json(new, cond), &rep.key)?;
    Ok(Some(el))
}

/// Sets the value at `segs` below `node` when the condition says so; whether it changed.
fn set(node: &mut Json, segs: &[&str], rep: &Replacement, cond: &Cond) -> Result<bool, EditError> {
    let current = get(node, segs);
    if matches!(cond, Cond::Regex(_)) && matches!(current, Some(Json::Array(_) | Json::Object(_))) {
        return Ok(false);
    }
    let text = current.map(render);
    let Some(new) = cond.decide(text.as_deref(), true, &rep.value) else {
        return Ok(false);
    };
    let new = to_json(new, cond);
    if current == Some(&new) {
        return Ok(false);
    }
    put(node, segs, new, &rep.key)?;
    Ok(true)
}

/// A value as JSON. A regex rewrite that reads as a whole number becomes a number (Wings types
/// `replace_with` that way).
fn to_json(v: Value, cond: &Cond) -> Json {
    match v {
        Value::Bool(b) => Json::Bool(b),
        Value::Int(i) => Json::Number(i.into()),
        Value::Str(s) => match (cond, s.parse::<i64>()) {
            (Cond::Regex(_), Ok(i)) => Json::Number(i.into()),
            _ => Json::String(s),
        },
    }
}

/// A value as the text `if_value` is compared with: strings without quotes, numbers and
/// booleans as written, `null` as the empty string, objects and arrays as compact JSON.
fn render(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn child<'v>(node: &'v Json, seg: &str) -> Option<&'v Json> {
    match node {
        Json::Object(m) => m.get(seg),
        Json::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    }
}

fn get<'v>(node: &'v Json, segs: &[&str]) -> Option<&'v Json> {
    segs.iter().try_fold(node, |n, seg| child(n, seg))
}

fn get_mut<'v>(node: &'v mut Json, segs: &[&str]) -> Option<&'v mut Json> {
    let mut cur = node;
    for seg in segs {
        cur = match cur {
            Json::Object(m) => m.get_mut(*seg)?,
            Json::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Writes `new` at `segs` below `node`, creating missing objects (a `null` on the way becomes
/// an object); a string, number or boolean on the way, or an index past an array's end, is an
/// error.
fn put(node: &mut Json, segs: &[&str], new: Json, key: &str) -> Result<(), EditError> {
    let mut cur = node;
    for (i, seg) in segs.iter().enumerate() {
        if cur.is_null() {
            *cur = Json::Object(Map::new());
        }
        let last = i + 1 == segs.len();
        let at = || segs[..i].join(".");
        cur = match cur {
            Json::Object(m) => {
                if last {
                    m.insert((*seg).to_owned(), new);
                    return Ok(());
                }
                m.entry(*seg).or_insert_with(|| Json::Object(Map::new()))
            }
            Json::Array(a) => {
                let len = a.len();
                match seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    Some(el) if last => {
                        *el = new;
                        return Ok(());
                    }
                    Some(el) => el,
                    None => {
                        return Err(EditError::key(
                            key,
                            format!(
                            "`{}` is an array of {len} elements and `{seg}` is not an index in it",
                            at()
                        ),
                        ))
                    }
                }
            }
            other => {
                let at = at();
                let at = if at.is_empty() { "the value" } else { &at };
                return Err(EditError::key(
                    key,
                    format!("`{at}` is {}, not an object", kind(other)),
                ));
            }
        };
    }
    *cur = new;
    Ok(())
}
