//! Variable rules in Pterodactyl's (Laravel's) syntax: `required|string|max:20`.
//!
//! A rule set is parsed once (at Template admission, so a bad rule is refused with its field)
//! and checked against a variable's value as Laravel checks a string: an empty or blank value
//! runs only `required`; sizes compare the number when the set has `numeric` or `integer` and
//! the value is one, else the length in characters. `regex:/…/flags` takes PCRE's delimiters
//! and the flags `i m s x u` (without `u`, `\w` and friends are ASCII, as in PCRE).

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

/// One rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// Not empty or blank.
    Required,
    /// May be empty (every other rule is skipped for an empty value anyway).
    Nullable,
    /// Any text.
    String,
    /// An integer (`FILTER_VALIDATE_INT`: sign, no leading zeros).
    Integer,
    /// A number (PHP's `is_numeric`).
    Numeric,
    /// `0` or `1`.
    Boolean,
    /// Letters (Unicode).
    Alpha,
    /// Letters, numbers, `-` and `_` (Unicode).
    AlphaDash,
    /// Letters and numbers (Unicode).
    AlphaNum,
    /// An absolute URL.
    Url,
    /// At most N (number, or characters).
    Max(f64),
    /// At least N.
    Min(f64),
    /// Between A and B, inclusive.
    Between(f64, f64),
    /// Exactly N.
    Size(f64),
    /// Exactly N digits.
    Digits(usize),
    /// Between A and B digits.
    DigitsBetween(usize, usize),
    /// One of these.
    In(Vec<String>),
    /// None of these.
    NotIn(Vec<String>),
    /// Matches (the source as written, the compiled form).
    Regex(String, Regex),
    /// Does not match.
    NotRegex(String, Regex),
    /// Laravel's `sometimes`: no effect on a value that is always present.
    Sometimes,
}

/// A parsed `rules` string.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    numeric: bool,
}

/// Why a rules string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {index} ({rule:?}): {message}")]
pub struct RuleError {
    /// Position of the rule in the string, from 1.
    pub index: usize,
    /// The rule as written.
    pub rule: String,
    /// What is wrong.
    pub message: String,
}

impl RuleSet {
    /// Parses `required|string|max:20`. Empty: no rules.
    ///
    /// # Errors
    /// An unknown rule, a missing or bad parameter, a regex that does not compile.
    pub fn parse(s: &str) -> Result<RuleSet, RuleError> {
        let mut rules = Vec::new();
        for (i, part) in split(s).into_iter().enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let err = |message: String| RuleError {
                index: i + 1,
                rule: part.to_owned(),
                message,
            };
            rules.push(parse_rule(part).map_err(err)?);
        }
        let numeric = rules
            .iter()
            .any(|r| matches!(r, Rule::Numeric | Rule::Integer));
        Ok(RuleSet { rules, numeric })
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether the set has `required`.
    pub fn required(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, Rule::Required))
    }

    /// Checks a value; the message says what the value must be.
    ///
    /// # Errors
    /// The first rule the value breaks.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let blank = value.trim().is_empty();
        for rule in &self.rules {
            if blank {
                if matches!(rule, Rule::Required) {
                    return Err("is required".into());
                }
                continue;
            }
            self.check_one(rule, value)?;
        }
        Ok(())
    }

    /// The size Laravel compares: the number, or the length in characters.
    fn size(&self, value: &str) -> f64 {
        if self.numeric {
            if let Some(n) = php_number(value) {
                return n;
            }
        }
        value.chars().count() as f64
    }

    fn unit(&self, value: &str) -> &'static str {
        if self.numeric && php_number(value).is_some() {
            ""
        } else {
            " characters"
        }
    }

    fn check_one(&self, rule: &Rule, value: &str) -> Result<(), String> {
        let ok = match rule {
            Rule::Required | Rule::Nullable | Rule::String | Rule::Sometimes => true,
            Rule::Integer => php_int(value),
            Rule::Numeric => php_number(value).is_some(),
            Rule::Boolean => matches!(value, "0" | "1"),
            Rule::Alpha => value.chars().all(|c| c.is_alphabetic() || is_mark(c)),
            Rule::AlphaDash => value
                .chars()
                .all(|c| c.is_alphanumeric() || is_mark(c) || c == '-' || c == '_'),
            Rule::AlphaNum => value.chars().all(|c| c.is_alphanumeric() || is_mark(c)),
            Rule::Url => is_url(value),
            Rule::Max(n) => self.size(value) <= *n,
            Rule::Min(n) => self.size(value) >= *n,
            Rule::Between(a, b) => (*a..=*b).contains(&self.size(value)),
            Rule::Size(n) => self.size(value) == *n,
            Rule::Digits(n) => all_digits(value) && value.len() == *n,
            Rule::DigitsBetween(a, b) => all_digits(value) && (*a..=*b).contains(&value.len()),
            Rule::In(list) => list.iter().any(|x| loose_eq(x, value)),
            Rule::NotIn(list) => !list.iter().any(|x| loose_eq(x, value)),
            Rule::Regex(_, re) => re.is_match(value.as_bytes()),
            Rule::NotRegex(_, re) => !re.is_match(value.as_bytes()),
        };
        if ok {
            return Ok(());
        }
        Err(match rule {
            Rule::Integer => "must be an integer".into(),
            Rule::Numeric => "must be a number".into(),
            Rule::Boolean => "must be 0 or 1".into(),
            Rule::Alpha => "may only contain letters".into(),
            Rule::AlphaDash => "may only contain letters, numbers, dashes and underscores".into(),
            Rule::AlphaNum => "may only contain letters and numbers".into(),
            Rule::Url => "must be a URL (scheme://host/…)".into(),
            Rule::Max(n) => format!("must be at most {}{}", num(*n), self.unit(value)),
            Rule::Min(n) => format!("must be at least {}{}", num(*n), self.unit(value)),
            Rule::Between(a, b) => format!(
                "must be between {} and {}{}",
                num(*a),
                num(*b),
                self.unit(value)
            ),
            Rule::Size(n) => format!("must be exactly {}{}", num(*n), self.unit(value)),
            Rule::Digits(n) => format!("must be {n} digits"),
            Rule::DigitsBetween(a, b) => format!("must be between {a} and {b} digits"),
            Rule::In(list) => format!("must be one of: {}", list.join(", ")),
            Rule::NotIn(list) => format!("must not be one of: {}", list.join(", ")),
            Rule::Regex(src, _) => format!("must match {src}"),
            Rule::NotRegex(src, _) => format!("must not match {src}"),
            Rule::Required | Rule::Nullable | Rule::String | Rule::Sometimes => {
                unreachable!("always true")
            }
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

fn num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// Splits at `|`, except inside a `regex:`/`not_regex:` pattern's delimiters. Linear in the
/// length of `s`.
pub(crate) fn split(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // a rule starts at 0 or after an ASCII `|`: always a character boundary
        if i == start {
            let rest = &s[i..];
            let lower = rest.trim_start();
            let skipped = rest.len() - lower.len();
            for prefix in ["regex:", "not_regex:"] {
                if lower.len() >= prefix.len() && lower[..prefix.len()].eq_ignore_ascii_case(prefix)
                {
                    let pat_start = i + skipped + prefix.len();
                    if let Some(end) = delimited_end(&s[pat_start..]) {
                        i = pat_start + end;
                    }
                    break;
                }
            }
        }
        if i < b.len() && b[i] == b'|' {
            out.push(&s[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

/// The closing delimiter of a PCRE pattern `/…/` (or `#…#`, `(…)`, `{…}`, …): the byte offset
/// just past it.
fn delimited_end(p: &str) -> Option<usize> {
    let open = p.chars().next()?;
    let close = match open {
        '(' => ')',
        '{' => '}',
        '[' => ']',
        '<' => '>',
        c if c.is_alphanumeric() || c == '\\' || c.is_whitespace() => return None,
        c => c,
    };
    let mut escaped = false;
    let mut depth = 0usize;
    for (i, c) in p.char_indices().skip(1) {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
        } else if c == close && depth == 0 {
            return Some(i + c.len_utf8());
        } else if c == close {
            depth -= 1;
        } else if c == open && open != close {
            depth += 1;
        }
    }
    None
}

fn parse_rule(part: &str) -> Result<Rule, String> {
    let (name, param) = match part.split_once(':') {
        Some((n, p)) => (n.trim(), Some(p)),
        None => (part, None),
    };
    let name = name.to_ascii_lowercase();
    let none = |r: Rule| match param {
        None => Ok(r),
        Some(_) => Err(format!("{name} takes no parameter")),
    };
    let params = || -> Vec<String> {
        param
            .map(|p| p.split(',').map(|x| x.trim().to_owned()).collect())
            .unwrap_or_default()
    };
    let number = |s: &str| -> Result<f64, String> {
        php_number(s)
            .filter(|n| n.is_finite())
            .ok_or_else(|| format!("{s:?} is not a number"))
    };
    let count = |s: &str| -> Result<usize, String> {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("{s:?} is not a count"))
    };
    let one = || -> Result<String, String> {
        let p = params();
        match p.as_slice() {
            [x] if !x.is_empty() => Ok(x.clone()),
            _ => Err(format!("{name} takes one parameter: {name}:N")),
        }
    };
    let two = || -> Result<(String, String), String> {
        let p = params();
        match p.as_slice() {
            [a, b] if !a.is_empty() && !b.is_empty() => Ok((a.clone(), b.clone())),
            _ => Err(format!("{name} takes two parameters: {name}:A,B")),
        }
    };
    match name.as_str() {
        "required" => none(Rule::Required),
        "nullable" => none(Rule::Nullable),
        "string" => none(Rule::String),
        "integer" | "int" => none(Rule::Integer),
        "numeric" => none(Rule::Numeric),
        "boolean" | "bool" => none(Rule::Boolean),
        "alpha" => none(Rule::Alpha),
        "alpha_dash" => none(Rule::AlphaDash),
        "alpha_num" => none(Rule::AlphaNum),
        "url" | "active_url" => none(Rule::Url),
        "sometimes" => none(Rule::Sometimes),
        "max" => Ok(Rule::Max(number(&one()?)?)),
        "min" => Ok(Rule::Min(number(&one()?)?)),
        "size" => Ok(Rule::Size(number(&one()?)?)),
        "between" => {
            let (a, b) = two()?;
            let (a, b) = (number(&a)?, number(&b)?);
            if a > b {
                return Err(format!("{} is greater than {}", num(a), num(b)));
            }
            Ok(Rule::Between(a, b))
        }
        "digits" => Ok(Rule::Digits(count(&one()?)?)),
        "digits_between" => {
            let (a, b) = two()?;
            let (a, b) = (count(&a)?, count(&b)?);
            if a > b {
                return Err(format!("{a} is greater than {b}"));
            }
            Ok(Rule::DigitsBetween(a, b))
        }
        "in" | "not_in" => {
            let list: Vec<String> = params()
                .into_iter()
                .map(|x| x.trim_matches('"').to_owned())
                .collect();
            if param.is_none() {
                return Err(format!("{name} takes a list: {name}:a,b"));
            }
            Ok(if name == "in" {
                Rule::In(list)
            } else {
                Rule::NotIn(list)
            })
        }
        "regex" | "not_regex" => {
            let src = param
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| format!("{name} takes a pattern: {name}:/…/"))?;
            let re = pcre(src)?;
            Ok(if name == "regex" {
                Rule::Regex(src.to_owned(), re)
            } else {
                Rule::NotRegex(src.to_owned(), re)
            })
        }
        other => Err(format!(
            "unknown rule {other:?} (known: required, nullable, string, integer, numeric, boolean, alpha, alpha_dash, alpha_num, url, max, min, between, size, digits, digits_between, in, not_in, regex, not_regex, sometimes)"
        )),
    }
}

/// Compiles a PCRE pattern with delimiters and flags.
fn pcre(src: &str) -> Result<Regex, String> {
    let end = delimited_end(src)
        .ok_or_else(|| "a pattern is written between delimiters, e.g. /^[a-z]+$/".to_string())?;
    let open_len = src.chars().next().map(char::len_utf8).unwrap_or(1);
    let close_len = src[..end]
        .chars()
        .next_back()
        .map(char::len_utf8)
        .unwrap_or(1);
    let body = &src[open_len..end - close_len];
    let flags = &src[end..];
    let mut b = RegexBuilder::new(body);
    b.unicode(false).size_limit(1 << 20);
    for f in flags.chars() {
        match f {
            'i' => b.case_insensitive(true),
            'm' => b.multi_line(true),
            's' => b.dot_matches_new_line(true),
            'x' => b.ignore_whitespace(true),
            'u' => b.unicode(true),
            'D' => &mut b,
            other => {
                return Err(format!(
                    "unsupported flag {other:?} (supported: i m s x u D)"
                ))
            }
        };
    }
    b.build().map_err(|e| format!("does not compile: {e}"))
}

fn is_mark(c: char) -> bool {
    // combining marks: Laravel's \pM. The common ranges; letters and numbers cover the rest.
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// PHP's whitespace for numeric strings.
fn php_trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'))
}

/// `filter_var($v, FILTER_VALIDATE_INT)`.
fn php_int(s: &str) -> bool {
    let t = php_trim(s);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return false;
    }
    t.trim_start_matches('+').parse::<i64>().is_ok()
}

/// PHP's `is_numeric`, and the number.
fn php_number(s: &str) -> Option<f64> {
    let t = php_trim(s);
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - f;
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let e = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == e {
            return None;
        }
        i = j;
    }
    if i != b.len() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// PHP 8's `==` between two strings: numeric strings compare as numbers.
fn loose_eq(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (php_number(a), php_number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn is_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || host.starts_with('[') => {
            if !port.is_empty() && !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            h
        }
        _ => host,
    };
    scheme_ok && !host.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::RuleSet;

    /// Each row: rules, value, accepted.
    fn table(rows: &[(&str, &str, bool)]) {
        for (rules, value, ok) in rows {
            let set = RuleSet::parse(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
            let got = set.check(value);
            assert_eq!(got.is_ok(), *ok, "{rules:?} on {value:?}: {got:?}");
        }
    }

    #[test]
    fn required_and_nullable() {
        table(&[
            ("required", "x", true),
            ("required", "", false),
            ("required", "   ", false),
            ("nullable|string", "", true),
            ("string|max:3", "", true), // empty runs only implicit rules, as Laravel
            ("nullable|integer", "", true),
            ("required|integer", " ", false),
        ]);
    }

    #[test]
    fn integer_numeric_boolean() {
        table(&[
            ("integer", "0", true),
            ("integer", "-12", true),
            ("integer", "+7", true),
            ("integer", " 42 ", true),
            ("integer", "007", false),
            ("integer", "1.0", false),
            ("integer", "1e3", false),
            ("integer", "abc", false),
            ("integer", "99999999999999999999", false),
            ("numeric", "1.5", true),
            ("numeric", ".5", true),
            ("numeric", "-3e2", true),
            ("numeric", "007", true),
            ("numeric", "0x1A", false),
            ("numeric", "1,5", false),
            ("numeric", "e5", false),
            ("boolean", "0", true),
            ("boolean", "1", true),
            ("boolean", "true", false),
            ("boolean", "2", false),
        ]);
    }

    #[test]
    fn sizes_compare_numbers_with_numeric_rules_and_lengths_otherwise() {
        table(&[
            ("required|integer|max:128", "128", true),
            ("required|integer|max:128", "129", false),
            ("required|string|max:20", "abcdefghijklmnopqrst", true),
            ("required|string|max:20", "abcdefghijklmnopqrstu", false),
            ("max:3", "1000", false), // a string of 4 characters
            ("numeric|max:3", "1000", false),
            ("numeric|max:3", "3", true),
            ("min:3", "ab", false),
            ("min:3", "abc", true),
            ("integer|min:10", "9", false),
            ("required|integer|between:1025,65535", "1025", true),
            ("required|integer|between:1025,65535", "80", false),
            ("required|integer|between:1025,65535", "65536", false),
            ("between:1,6", "latest", true),
            ("between:1,6", "latest!", false),
            ("between:1,6", "ünïcö", true), // characters, not bytes
            ("required|string|alpha_num|size:32", &"a".repeat(32), true),
            ("required|string|alpha_num|size:32", &"a".repeat(31), false),
            ("numeric|size:5", "5", true),
            ("numeric|size:5", "12345", false),
        ]);
    }

    #[test]
    fn digits_and_lists() {
        table(&[
            ("digits_between:1,6", "730", true),
            ("digits_between:1,6", "1234567", false),
            ("digits_between:1,6", "12a", false),
            ("digits_between:1,6", "-1", false),
            ("digits:4", "0420", true),
            ("digits:4", "420", false),
            ("in:recommended,latest", "latest", true),
            ("in:recommended,latest", "Latest", false),
            ("in:recommended,latest", "beta", false),
            ("in:1,2", "1.0", true), // PHP compares numeric strings as numbers
            ("not_in:root,admin", "root", false),
            ("not_in:root,admin", "steve", true),
        ]);
    }

    #[test]
    fn alpha_rules_are_unicode() {
        table(&[
            ("alpha_dash", "de_dust2", true),
            ("alpha_dash", "gm-construct", true),
            ("alpha_dash", "straße_1", true),
            ("alpha_dash", "de dust", false),
            ("alpha_dash", "a.b", false),
            ("alpha_dash", "a/b", false),
            ("alpha_num", "abc123", true),
            ("alpha_num", "abc_123", false),
            ("alpha_num", "日本語", true),
            ("alpha", "abc", true),
            ("alpha", "abc1", false),
        ]);
    }

    #[test]
    fn regex_rules_take_pcre_delimiters_and_flags() {
        table(&[
            (r"regex:/^([\w\d._-]+)(\.jar)$/", "server.jar", true),
            (r"regex:/^([\w\d._-]+)(\.jar)$/", "server.zip", false),
            (r"regex:/^([\w\d._-]+)(\.jar)$/", "../x.jar", false),
            (r"regex:/^([\w\d._-]+)(\.jar)$/", "sérver.jar", false), // \w is ASCII without /u
            (r"regex:/^([\w\d._-]+)(\.jar)$/u", "sérver.jar", true),
            (r"regex:/^(237410)$/", "237410", true),
            (r"regex:/^(237410)$/", "237411", false),
            (r"regex:/^[a-z]+$/i", "ABC", true),
            (r"regex:/^[a-z]+$/", "ABC", false),
            (r"regex:#^a|b$#", "b", true), // a | inside the pattern is not a separator
            (r"required|regex:/^(a|b)$/|max:1", "a", true),
            (r"required|regex:/^(a|b)$/|max:1", "c", false),
            (r"not_regex:/root/", "rooted", false),
            (r"nullable|regex:/^[0-9\.\-]+$/", "", true),
            (r"nullable|regex:/^[0-9\.\-]+$/", "1.20.1-47.2.0", true),
            (r"nullable|regex:/^[0-9\.\-]+$/", "1.20;rm", false),
        ]);
    }

    #[test]
    fn non_ascii_rules_parse_without_panicking() {
        table(&[
            ("required|in:café,thé", "thé", true),
            ("required|in:café,thé", "the", false),
            ("regex:/^[а-я]+$/u", "привет", true),
        ]);
        assert!(RuleSet::parse("é|required").is_err());
        assert!(RuleSet::parse("regex:^[а-я]+$").is_err());
        assert!(RuleSet::parse("ü:é|max:ö").is_err());
    }

    #[test]
    fn urls() {
        table(&[
            ("url", "https://example.com/a.jar", true),
            ("url", "http://10.0.0.1:8080", true),
            ("url", "ftp://user@host/x", true),
            ("url", "example.com", false),
            ("url", "https://", false),
            ("url", "https://exa mple.com", false),
            ("url", "https://host:port/", false),
        ]);
    }

    #[test]
    fn bad_rules_are_refused_with_their_position() {
        for (rules, index, needle) in [
            ("required|strnig", 2, "unknown rule"),
            ("max", 1, "one parameter"),
            ("max:x", 1, "not a number"),
            ("between:5,1", 1, "greater"),
            ("between:1", 1, "two parameters"),
            ("regex:^a$", 1, "delimiters"),
            ("regex:/(/", 1, "does not compile"),
            ("regex:/a/e", 1, "unsupported flag"),
            ("required|digits_between:a,3", 2, "not a count"),
            ("string:x", 1, "no parameter"),
        ] {
            let e = RuleSet::parse(rules).unwrap_err();
            assert_eq!(e.index, index, "{rules}");
            assert!(e.message.contains(needle), "{rules}: {e}");
        }
    }

    #[test]
    fn messages_name_the_limit() {
        let set = RuleSet::parse("required|integer|max:128").unwrap();
        assert_eq!(set.check("500").unwrap_err(), "must be at most 128");
        let set = RuleSet::parse("required|string|max:20").unwrap();
        assert_eq!(
            set.check(&"x".repeat(21)).unwrap_err(),
            "must be at most 20 characters"
        );
        let set = RuleSet::parse("required|in:recommended,latest").unwrap();
        assert_eq!(
            set.check("beta").unwrap_err(),
            "must be one of: recommended, latest"
        );
        assert_eq!(set.check("").unwrap_err(), "is required");
    }
}
