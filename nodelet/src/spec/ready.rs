//! When a server counts as ready: a regular expression (`logPattern`), or texts of which any
//! one found in a console line will do (`lines`, Pterodactyl's `config.startup.done`, where
//! `regex:RE` is a regular expression), after removing ANSI escapes when asked.

use catalyst_schemas::gameserver::ReadySpec;
use regex::Regex;

/// One way a line may show readiness.
#[derive(Debug, Clone)]
enum Test {
    Text(String),
    Pattern(Regex),
}

/// A compiled [`ReadySpec`].
#[derive(Debug, Clone)]
pub struct ReadyMatcher {
    tests: Vec<Test>,
    strip_ansi: bool,
}

fn pattern(re: &str) -> Option<Regex> {
    regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .build()
        .ok()
}

impl ReadyMatcher {
    /// The matcher of `spec`; None when nothing is to be waited for (ready at once). A pattern
    /// that does not compile (admission refuses those) is left out.
    pub fn new(spec: Option<&ReadySpec>) -> Option<ReadyMatcher> {
        let spec = spec?;
        let mut tests = Vec::new();
        if let Some(p) = &spec.log_pattern {
            tests.extend(pattern(p).map(Test::Pattern));
        }
        for line in &spec.lines {
            match line.strip_prefix("regex:") {
                Some(re) => tests.extend(pattern(re).map(Test::Pattern)),
                None if !line.is_empty() => tests.push(Test::Text(line.clone())),
                None => {}
            }
        }
        (!tests.is_empty()).then_some(ReadyMatcher {
            tests,
            strip_ansi: spec.strip_ansi,
        })
    }

    /// Whether `line` shows the server ready.
    pub fn is_match(&self, line: &str) -> bool {
        let stripped;
        let line = if self.strip_ansi {
            stripped = strip_ansi(line);
            stripped.as_str()
        } else {
            line
        };
        self.tests.iter().any(|t| match t {
            Test::Text(s) => line.contains(s.as_str()),
            Test::Pattern(re) => re.is_match(line),
        })
    }
}

/// `line` without ANSI escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL|ESC \`, and
/// two-byte `ESC x`).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> ReadySpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn texts_are_substrings_not_patterns() {
        let m = ReadyMatcher::new(Some(&spec(
            serde_json::json!({"lines": [")! For help, type "]}),
        )))
        .unwrap();
        assert!(m.is_match("[12:00:01 INFO]: Done (3.2s)! For help, type \"help\""));
        assert!(!m.is_match("Done (3.2s) For help"));
    }

    #[test]
    fn any_of_several_and_regex_entries() {
        let m = ReadyMatcher::new(Some(&spec(
            serde_json::json!({"lines": ["Listening on ", "regex:^server started in \\d+ms$"]}),
        )))
        .unwrap();
        assert!(m.is_match("Listening on /0.0.0.0:25577"));
        assert!(m.is_match("server started in 42ms"));
        assert!(!m.is_match("server started in a while"));
    }

    #[test]
    fn ansi_codes_are_stripped_when_asked() {
        let line = "\x1b[32mDone\x1b[0m (1s)! For help";
        let plain = ReadyMatcher::new(Some(&spec(
            serde_json::json!({"lines": ["Done (1s)!"], "stripAnsi": true}),
        )))
        .unwrap();
        assert!(plain.is_match(line));
        let raw =
            ReadyMatcher::new(Some(&spec(serde_json::json!({"lines": ["Done (1s)!"]})))).unwrap();
        assert!(!raw.is_match(line));
        assert_eq!(strip_ansi("a\x1b]0;title\x07b\x1b[1;31mc"), "abc");
    }

    #[test]
    fn a_log_pattern_is_a_regex_and_nothing_means_ready_at_once() {
        let m = ReadyMatcher::new(Some(&spec(
            serde_json::json!({"logPattern": "^ready \\d$"}),
        )))
        .unwrap();
        assert!(m.is_match("ready 1"));
        assert!(ReadyMatcher::new(None).is_none());
    }
}
