//! The `xml` parser: a small DOM over `quick-xml` that keeps the source text of everything it
//! does not change (declaration, comments, processing instructions, whitespace, tags).
//!
//! A key is a path of element names split at `.`, the first one the root element's; `*` matches
//! any element. A value `[attr='v']` sets that attribute on every match, any other value sets
//! the matches' text. Without `*`, missing elements are created along the path (indented like
//! their siblings); an empty or missing file starts as `<?xml version="1.0" encoding="utf-8"?>`
//! and the root. `if_value` (exact, or `regex:`) compares with the element's trimmed text or
//! the attribute's value; a missing one is set for an exact `if_value`.
//!
//! Refused: a `DOCTYPE` (no DTDs, so no entities and no XXE), references to anything but the
//! five predefined entities and character references, nesting deeper than 256 elements, text
//! that is not UTF-8, anything that is not well-formed.

use std::sync::LazyLock;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{Cond, EditError, Replacement, Value};

const FORMAT: &str = "XML";
const MAX_DEPTH: usize = 256;
const BOM: &str = "\u{feff}";

/// `[attr='value']`.
static ATTR: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^\[(\w+)='(.*)'\]$").expect("a valid regex"));

#[derive(Debug)]
enum Node {
    Elem(Elem),
    /// Text and references, as in the source (escaped).
    Text(String),
    /// `<![CDATA[...]]>`, as in the source.
    CData(String),
    /// A comment or processing instruction, as in the source.
    Other(String),
}

#[derive(Debug)]
struct Elem {
    name: String,
    /// The start tag as in the source; `None` once the attributes changed (or for a new one).
    start: Option<String>,
    /// Whether the start tag closes itself (`<a/>`).
    self_closing: bool,
    /// Attributes, unescaped.
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    /// The end tag as in the source.
    end: Option<String>,
}

impl Elem {
    fn new(name: &str) -> Elem {
        Elem {
            name: name.to_owned(),
            start: None,
            self_closing: true,
            attrs: Vec::new(),
            children: Vec::new(),
            end: None,
        }
    }

    /// The text content: text and CDATA children, unescaped, concatenated, trimmed.
    fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            match c {
                Node::Text(raw) => match quick_xml::escape::unescape(raw) {
                    Ok(t) => s.push_str(&t),
                    Err(_) => s.push_str(raw),
                },
                Node::CData(raw) => s.push_str(
                    raw.strip_prefix("<![CDATA[")
                        .and_then(|r| r.strip_suffix("]]>"))
                        .unwrap_or(raw),
                ),
                _ => {}
            }
        }
        s.trim().to_owned()
    }

    fn child_elems(&self) -> impl Iterator<Item = (usize, &Elem)> {
        self.children
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Node::Elem(e) => Some((i, e)),
                _ => None,
            })
    }
}

#[derive(Debug, Default)]
struct Doc {
    bom: bool,
    /// What comes before the root (declaration, comments, PIs, whitespace), as in the source.
    prolog: String,
    root: Option<Elem>,
    /// What comes after the root.
    epilog: String,
    /// The line ending of new lines.
    eol: &'static str,
    /// One level of indentation: the root's first child element's, else two spaces.
    unit: String,
}

fn syntax(text: &str, pos: u64, why: impl Into<String>) -> EditError {
    let pos = usize::try_from(pos).unwrap_or(usize::MAX).min(text.len());
    let line = text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    EditError::Syntax {
        format: FORMAT,
        line: Some(line),
        why: why.into(),
    }
}

fn parse(input: &[u8]) -> Result<Doc, EditError> {
    let text = super::utf8(input, FORMAT)?;
    let (bom, text) = match text.strip_prefix(BOM) {
        Some(t) => (true, t),
        None => (false, text),
    };
    let mut doc = Doc {
        bom,
        eol: if text.contains("\r\n") { "\r\n" } else { "\n" },
        ..Doc::default()
    };
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = false;
    config.trim_text(false);
    let mut stack: Vec<Elem> = Vec::new();
    loop {
        let before = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| syntax(text, reader.error_position(), e.to_string()))?;
        let after = reader.buffer_position();
        let raw = usize::try_from(before)
            .ok()
            .zip(usize::try_from(after).ok())
            .and_then(|(b, a)| text.get(b..a))
            .ok_or_else(|| syntax(text, before, "a position inside a character"))?;
        let node = match event {
            Event::Eof => break,
            Event::DocType(_) => {
                return Err(syntax(
                    text,
                    before,
                    "a DOCTYPE (DTDs and entities are refused)",
                ))
            }
            Event::Start(e) | Event::Empty(e) => {
                let self_closing = raw.ends_with("/>");
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let mut attrs = Vec::new();
                for a in e.attributes().with_checks(true) {
                    let a = a.map_err(|err| syntax(text, before, err.to_string()))?;
                    let value = a
                        .unescape_value()
                        .map_err(|err| syntax(text, before, err.to_string()))?;
                    attrs.push((
                        String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                        value.into_owned(),
                    ));
                }
                let el = Elem {
                    name,
                    start: Some(raw.to_owned()),
                    self_closing,
                    attrs,
                    children: Vec::new(),
                    end: None,
                };
                if !self_closing {
                    if stack.len() >= MAX_DEPTH {
                        return Err(syntax(
                            text,
                            before,
                            format!("elements nested deeper than {MAX_DEPTH}"),
                        ));
                    }
                    stack.push(el);
                    continue;
                }
                Node::Elem(el)
            }
            Event::End(_) => {
                let Some(mut el) = stack.pop() else {
                    return Err(syntax(text, before, "an end tag without a start tag"));
                };
                el.end = Some(raw.to_owned());
                Node::Elem(el)
            }
            Event::GeneralRef(r) => {
                let known = if r.is_char_ref() {
                    matches!(r.resolve_char_ref(), Ok(Some(_)))
                } else {
                    matches!(&*r, b"lt" | b"gt" | b"amp" | b"apos" | b"quot")
                };
                if !known {
                    return Err(syntax(
                        text,
                        before,
                        format!("an unknown entity reference {raw}"),
                    ));
                }
                Node::Text(raw.to_owned())
            }
            Event::Text(_) => Node::Text(raw.to_owned()),
            Event::CData(_) => Node::CData(raw.to_owned()),
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => Node::Other(raw.to_owned()),
        };
        match (stack.last_mut(), node) {
            (Some(top), Node::Text(t)) => match top.children.last_mut() {
                Some(Node::Text(prev)) => prev.push_str(&t),
                _ => top.children.push(Node::Text(t)),
            },
            (Some(top), node) => top.children.push(node),
            (None, Node::Elem(el)) => {
                if doc.root.is_some() {
                    return Err(syntax(text, before, "a second root element"));
                }
                doc.root = Some(el);
            }
            (None, Node::Text(t)) if !t.trim().is_empty() => {
                return Err(syntax(text, before, "text outside the root element"));
            }
            (None, Node::CData(_)) => {
                return Err(syntax(text, before, "CDATA outside the root element"));
            }
            (None, Node::Text(raw) | Node::Other(raw)) => {
                if doc.root.is_some() {
                    doc.epilog.push_str(&raw);
                } else {
                    doc.prolog.push_str(&raw);
                }
            }
        }
    }
    doc.unit = doc
        .root
        .as_ref()
        .and_then(|r| {
            r.children.windows(2).find_map(|w| match w {
                [Node::Text(t), Node::Elem(_)] if t.trim().is_empty() => {
                    t.rsplit_once('\n').map(|(_, ind)| ind.to_owned())
                }
                _ => None,
            })
        })
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "  ".to_owned());
    if let Some(open) = stack.last() {
        return Err(syntax(
            text,
            text.len() as u64,
            format!("<{}> is not closed", open.name),
        ));
    }
    Ok(doc)
}

pub(super) fn edit(input: &[u8], reps: &[Replacement]) -> Result<Option<Vec<u8>>, EditError> {
    let mut doc = parse(input)?;
    let mut changed = false;
    for rep in reps {
        changed |= apply(&mut doc, rep)?;
    }
    if !changed {
        return Ok(None);
    }
    let mut out = String::with_capacity(input.len() + 64);
    if doc.bom {
        out.push_str(BOM);
    }
    out.push_str(&doc.prolog);
    if let Some(root) = &doc.root {
        write(root, &mut out);
    }
    out.push_str(&doc.epilog);
    Ok(Some(out.into_bytes()))
}

/// What a replacement sets.
enum Target<'v> {
    Text(String),
    Attr(&'v str, String),
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// Text a document may hold: no control characters but tab, newline and carriage return.
fn check_chars(key: &str, s: &str) -> Result<(), EditError> {
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(EditError::key(key, "the value holds a control character"));
    }
    Ok(())
}

fn apply(doc: &mut Doc, rep: &Replacement) -> Result<bool, EditError> {
    let key = rep.key.as_str();
    let segs = super::segments(key, key)?;
    let cond = Cond::of(rep)?;
    let value = rep.value.text();
    let attr = match &rep.value {
        Value::Str(s) => ATTR.captures(s),
        _ => None,
    };
    let (attr_name, value) = match &attr {
        Some(c) => (
            c.get(1).map(|m| m.as_str()),
            c.get(2).map_or("", |m| m.as_str()).to_owned(),
        ),
        None => (None, value.into_owned()),
    };
    check_chars(key, &value)?;
    if attr_name.is_some_and(|n| !is_name(n)) {
        return Err(EditError::key(key, "not a valid attribute name"));
    }
    let wild = segs.contains(&"*");
    let decide = |current: Option<&str>| {
        cond.decide(current, true, &Value::Str(value.clone()))
            .map(|v| v.text().into_owned())
    };
    let target = |v: String| match attr_name {
        Some(a) => Target::Attr(a, v),
        None => Target::Text(v),
    };
    // what a path that matches nothing gets created with (never through a wildcard)
    let creatable = || -> Result<Option<String>, EditError> {
        if wild {
            return Ok(None);
        }
        let Some(new) = decide(None) else {
            return Ok(None);
        };
        if !segs.iter().all(|s| is_name(s)) {
            return Err(EditError::key(key, "not a valid element name"));
        }
        Ok(Some(new))
    };
    let root = match doc.root.as_mut() {
        Some(root) => {
            if segs[0] != "*" && segs[0] != root.name {
                return Err(EditError::key(
                    key,
                    format!("the root element is <{}>, not <{}>", root.name, segs[0]),
                ));
            }
            root
        }
        None => {
            let Some(new) = creatable()? else {
                return Ok(false);
            };
            if doc.prolog.trim().is_empty() {
                doc.prolog = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>{}", doc.eol);
            } else if !doc.prolog.ends_with('\n') {
                doc.prolog.push_str(doc.eol);
            }
            doc.epilog = doc.eol.to_owned();
            let root = doc.root.insert(Elem::new(segs[0]));
            let el = create(root, &segs[1..], doc.eol, &doc.unit);
            set(el, target(new));
            return Ok(true);
        }
    };
    let mut found = Vec::new();
    find(root, &segs[1..], &mut Vec::new(), &mut found);
    if found.is_empty() {
        let Some(new) = creatable()? else {
            return Ok(false);
        };
        let el = create(root, &segs[1..], doc.eol, &doc.unit);
        set(el, target(new));
        return Ok(true);
    }
    let mut changed = false;
    for path in found {
        let Some(el) = walk(root, &path) else {
            continue;
        };
        let current = match attr_name {
            Some(a) => el
                .attrs
                .iter()
                .find(|(k, _)| k == a)
                .map(|(_, v)| v.clone()),
            None => Some(el.text()),
        };
        let Some(new) = decide(current.as_deref()) else {
            continue;
        };
        if current.as_deref() == Some(new.as_str()) {
            continue;
        }
        set(el, target(new));
        changed = true;
    }
    Ok(changed)
}

/// The child indices of every element below `el` matching `segs`.
fn find(el: &Elem, segs: &[&str], at: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    let Some((first, rest)) = segs.split_first() else {
        out.push(at.clone());
        return;
    };
    for (i, child) in el.child_elems() {
        if *first == "*" || child.name == *first {
            at.push(i);
            find(child, rest, at, out);
            at.pop();
        }
    }
}

fn walk<'e>(mut el: &'e mut Elem, path: &[usize]) -> Option<&'e mut Elem> {
    for &i in path {
        el = match el.children.get_mut(i)? {
            Node::Elem(e) => e,
            _ => return None,
        };
    }
    Some(el)
}

/// The element at `segs` below `el`, following the first match of each name and creating what
/// is missing.
fn create<'e>(mut el: &'e mut Elem, segs: &[&str], eol: &str, unit: &str) -> &'e mut Elem {
    for (depth, seg) in segs.iter().enumerate() {
        let existing = el
            .child_elems()
            .find(|(_, c)| c.name == *seg)
            .map(|(i, _)| i);
        let i = match existing {
            Some(i) => i,
            None => insert(el, depth, Elem::new(seg), eol, unit),
        };
        el = match &mut el.children[i] {
            Node::Elem(e) => e,
            _ => unreachable!("an element index"),
        };
    }
    el
}

fn is_blank(n: &Node) -> bool {
    matches!(n, Node::Text(t) if t.trim().is_empty())
}

/// Adds `child` to `parent` (at `depth` below the root), indented like its siblings; its index.
fn insert(parent: &mut Elem, depth: usize, child: Elem, eol: &str, unit: &str) -> usize {
    let kids = &mut parent.children;
    // the whitespace before the last child element, else the document's indent a level
    let before = kids
        .iter()
        .enumerate()
        .rev()
        .find(|(_, n)| matches!(n, Node::Elem(_)))
        .and_then(|(i, _)| i.checked_sub(1))
        .and_then(|i| match &kids[i] {
            Node::Text(t) if t.trim().is_empty() && t.contains('\n') => Some(t.clone()),
            _ => None,
        });
    let indent = |levels: usize| format!("{eol}{}", unit.repeat(levels));
    let has_text = kids
        .iter()
        .any(|n| matches!(n, Node::Text(_) | Node::CData(_)) && !is_blank(n));
    if has_text {
        kids.push(Node::Elem(child));
        return kids.len() - 1;
    }
    if kids.is_empty() {
        kids.push(Node::Text(indent(depth + 1)));
        kids.push(Node::Elem(child));
        kids.push(Node::Text(indent(depth)));
        return 1;
    }
    let ws = before.unwrap_or_else(|| indent(depth + 1));
    let at = match kids.last() {
        Some(n) if is_blank(n) => kids.len() - 1,
        _ => kids.len(),
    };
    kids.insert(at, Node::Elem(child));
    kids.insert(at, Node::Text(ws));
    at + 1
}

fn set(el: &mut Elem, target: Target<'_>) {
    match target {
        Target::Attr(name, value) => {
            match el.attrs.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => slot.1 = value,
                None => el.attrs.push((name.to_owned(), value)),
            }
            el.start = None;
        }
        Target::Text(value) => {
            el.children
                .retain(|n| !matches!(n, Node::Text(_) | Node::CData(_)));
            if !value.is_empty() {
                el.children.insert(0, Node::Text(escape_text(&value)));
            }
        }
    }
}

fn escape_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn escape_attr(s: &str) -> String {
    escape_text(s)
        .replace('"', "&quot;")
        .replace('\t', "&#9;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
}

fn write(el: &Elem, out: &mut String) {
    let empty = el.children.is_empty();
    match &el.start {
        Some(raw) if !el.self_closing || empty => out.push_str(raw),
        // `<a/>` that got children: `<a>`
        Some(raw) => {
            out.push_str(raw.strip_suffix("/>").unwrap_or(raw).trim_end());
            out.push('>');
        }
        None => {
            out.push('<');
            out.push_str(&el.name);
            for (k, v) in &el.attrs {
                out.push(' ');
                out.push_str(k);
                out.push_str("=\"");
                out.push_str(&escape_attr(v));
                out.push('"');
            }
            out.push_str(if el.self_closing && empty { "/>" } else { ">" });
        }
    }
    if el.self_closing && empty {
        return;
    }
    for c in &el.children {
        match c {
            Node::Elem(e) => write(e, out),
            Node::Text(s) | Node::CData(s) | Node::Other(s) => out.push_str(s),
        }
    }
    match &el.end {
        Some(raw) => out.push_str(raw),
        None => {
            out.push_str("</");
            out.push_str(&el.name);
            out.push('>');
        }
    }
}
