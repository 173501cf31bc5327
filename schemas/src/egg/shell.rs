//! What the converter notices in an egg's startup line: bash-only syntax (Catalyst runs the
//! startup with `/bin/sh -c`, the yolks' entrypoint runs it with bash) and the signals a
//! `trap` handles.

/// The bash-only constructs in `startup`, each with what `/bin/sh` does with it instead.
pub fn bashisms(startup: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if startup.contains("[[") {
        out.push("`[[ … ]]` is bash: /bin/sh (dash) runs `[[` as a command that is not found, so the test is false");
    }
    if test_with_double_equals(startup) {
        out.push("`==` inside `[ … ]` is bash: dash's `[` fails with \"unexpected operator\", so the test is false");
    }
    if startup.contains("echo -e") {
        out.push("`echo -e` is bash: dash's echo prints \"-e\" and always interprets escapes");
    }
    out
}

/// A `[ … == … ]` test (single brackets).
fn test_with_double_equals(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = s[i..].find("[ ") {
        let open = i + off;
        i = open + 2;
        if open > 0 && b[open - 1] == b'[' {
            continue;
        }
        let Some(close) = s[i..].find(" ]") else {
            break;
        };
        let inside = &s[i..i + close];
        if inside.split_whitespace().any(|w| w == "==") {
            return true;
        }
    }
    false
}

/// The signals named by the `trap` commands in `startup` (upper-case, without `SIG`; numbers
/// as written), in order of appearance.
pub fn trapped_signals(startup: &str) -> Vec<String> {
    let mut out = Vec::new();
    for words in trap_commands(startup) {
        // trap ACTION SIGNAL…; `trap -p`, `trap -l` and `trap` alone trap nothing
        if words.first().is_some_and(|w| w.starts_with('-')) {
            continue;
        }
        for w in words.iter().skip(1) {
            let w = w.to_ascii_uppercase();
            let name = w.strip_prefix("SIG").unwrap_or(&w).to_owned();
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Whether a trap in `startup` handles `name` (`TERM`) or its number (`15`).
pub fn traps(signals: &[String], name: &str, number: u8) -> bool {
    signals
        .iter()
        .any(|s| s == name || s.parse::<u8>().ok() == Some(number))
}

/// The words after each `trap` command word (quotes removed, up to `;`, `&`, `|`, `)` or a
/// line end outside quotes).
fn trap_commands(s: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let is_start = |i: usize| {
        i == 0
            || matches!(
                chars[i - 1],
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | '{'
            )
    };
    while i < chars.len() {
        let rest: String = chars[i..chars.len().min(i + 5)].iter().collect();
        let is_trap = rest.starts_with("trap")
            && is_start(i)
            && (rest.len() == 4 || matches!(chars.get(i + 4), Some(' ' | '\t')));
        if !is_trap {
            i += 1;
            continue;
        }
        i += 4;
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => word.push(c),
                None => match c {
                    '\'' | '"' => {
                        quote = Some(c);
                        in_word = true;
                    }
                    ';' | '&' | '|' | ')' | '\n' => break,
                    ' ' | '\t' => {
                        if in_word {
                            words.push(std::mem::take(&mut word));
                            in_word = false;
                        }
                    }
                    _ => {
                        word.push(c);
                        in_word = true;
                    }
                },
            }
            i += 1;
        }
        if in_word {
            words.push(word);
        }
        out.push(words);
    }
    out
}
