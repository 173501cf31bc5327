//! Startup-line templating: each `{{NAME}}` becomes a reference to `$NAME`, quoted for its context.
//!
//! A startup line is run as `/bin/sh -c LINE` (dash or busybox `sh`) and every variable is also
//! in the process's environment under its own name. So [`substitute`] never writes a value into
//! the line: it writes a parameter expansion of the variable's name, quoted for where the
//! placeholder sits, which a small lexer with a context stack works out:
//!
//! | placeholder sits                                 | becomes                                |
//! | ------------------------------------------------ | -------------------------------------- |
//! | unquoted (also inside `$(…)`, backticks, `${…}`) | `"${NAME}"`                            |
//! | inside `"…"` (also in a `${…}` inside `"…"`)     | `${NAME}`                              |
//! | inside `'…'`                                     | `'"${NAME}"'` (close, insert, reopen)  |
//! | inside `$((…))`                                  | `$(printf %d "${NAME}")`               |
//!
//! **Guarantee**: no value can be parsed as shell syntax, whatever the context. The value never
//! appears in the line; the shell meets it only as the result of an expansion, and POSIX `sh`
//! does not parse expansion results again (no quote removal, command substitution or
//! redirection happens to them). The quoting keeps it one word: no field splitting, no globbing.
//! In arithmetic, where `sh` would read an expanded value as an expression (with assignments),
//! `printf %d` turns it into a plain number first (a non-number is reported on stderr and counts
//! as what `printf` makes of it, usually 0). Each replacement holds as many `'` as `"` and both in
//! pairs, so even where the lexer misjudges the context (here-documents, `case` patterns inside
//! `$(…)`, `\'` inside busybox's `$'…'`) the line's structure stays as written and the value is
//! still only expanded, at worst unquoted.
//!
//! The one thing no templating can prevent: a template that hands text to another round of
//! parsing itself (`eval`, `sh -c "… {{X}} …"`, `su -c`, a `trap` string) asks for the value to be
//! parsed there.
//!
//! Other rules: names match `[A-Za-z_][A-Za-z0-9_]*`, written `{{NAME}}`, `{{ NAME }}` or
//! Pterodactyl's `{{env.NAME}}`; anything else between `{{` and `}}`, and a `{{` without `}}`,
//! stays literal. A backslash before a placeholder escapes it (`\{{X}}` reaches the shell as is, so
//! the program sees `{{X}}`). A `$` right before a placeholder is written `\$`, so `${{PRICE}}` is
//! a dollar sign and the value. A name that is not in the environment expands to "", except the
//! shell's own variables (`PWD`, `IFS`, `PPID`, `OPTIND`, …), which expand to the shell's value.

use catalyst_schemas::validation::env_name;

/// Where the lexer is in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// The line itself, unquoted; `)` is plain text here.
    Top,
    /// Inside `$(…)`, unquoted; `depth` counts the `(` opened inside it.
    Command { depth: u32 },
    /// Inside backticks, unquoted.
    Backtick,
    /// Inside `"…"`.
    Double,
    /// Inside `'…'` or `$'…'`.
    Single,
    /// Inside `${…}`; `quoted` when the expansion itself is inside double quotes.
    Brace { quoted: bool },
    /// Inside `$((…))`; `depth` counts the `(` opened inside it.
    Arith { depth: u32 },
}

impl Ctx {
    /// Unquoted contexts where `'` opens single quotes and `#` may start a comment.
    fn unquoted(self) -> bool {
        matches!(self, Ctx::Top | Ctx::Command { .. } | Ctx::Backtick)
    }

    /// What a placeholder of `name` becomes here.
    fn reference(self, name: &str) -> String {
        match self {
            Ctx::Top | Ctx::Command { .. } | Ctx::Backtick | Ctx::Brace { quoted: false } => {
                format!("\"${{{name}}}\"")
            }
            Ctx::Double | Ctx::Brace { quoted: true } => format!("${{{name}}}"),
            Ctx::Single => format!("'\"${{{name}}}\"'"),
            Ctx::Arith { .. } => format!("$(printf %d \"${{{name}}}\")"),
        }
    }
}

/// A valid placeholder at the start of `s`: its name and its length in bytes.
fn placeholder(s: &str) -> Option<(&str, usize)> {
    let inner = s.strip_prefix("{{")?;
    let end = inner.find("}}")?;
    let name = inner[..end].trim();
    let name = name.strip_prefix("env.").unwrap_or(name);
    env_name(name).is_ok().then_some((name, end + 4))
}

/// Bytes after which a `#` starts a comment.
fn word_boundary(b: Option<u8>) -> bool {
    b.is_none_or(|b| b" \t\r\n;&|()<>".contains(&b))
}

/// Replaces every valid `{{NAME}}` (`{{ NAME }}`, `{{env.NAME}}`) in a startup line by a
/// reference to the environment variable `NAME`, quoted for the shell context the placeholder
/// sits in (see the module documentation for the rules and the guarantee: no value can be
/// parsed as shell syntax). The result is meant for `/bin/sh -c` with every variable in the
/// process's environment; it never fails, and text that is not a valid placeholder is kept.
pub fn substitute(startup: &str) -> String {
    let b = startup.as_bytes();
    let mut out = String::with_capacity(startup.len() + 32);
    let mut stack = vec![Ctx::Top];
    let mut i = 0;
    // copies `startup[from..to]`; both ends are char boundaries (ASCII bytes or whole chars)
    let copy = |out: &mut String, from: usize, to: usize| out.push_str(&startup[from..to]);
    while i < b.len() {
        let ctx = stack.last().copied().unwrap_or(Ctx::Top);
        if b[i] == b'{' {
            if let Some((name, len)) = placeholder(&startup[i..]) {
                out.push_str(&ctx.reference(name));
                i += len;
                continue;
            }
        }
        let c = b[i];
        let next = b.get(i + 1).copied();
        let pop = |stack: &mut Vec<Ctx>| {
            if stack.len() > 1 {
                stack.pop();
            }
        };
        // one char: a multi-byte char is copied whole
        let mut len = startup[i..].chars().next().map_or(1, char::len_utf8);
        if ctx == Ctx::Single {
            if c == b'\'' {
                pop(&mut stack);
            }
            copy(&mut out, i, i + len);
            i += len;
            continue;
        }
        match c {
            b'\\' => {
                // the escaped char goes with it (whole, if multi-byte), so `\{{X}}`, `\"`, `\$`
                // and `` \` `` change nothing
                len += startup[i + 1..].chars().next().map_or(0, char::len_utf8);
            }
            b'$' if placeholder(&startup[i + 1..]).is_some() => {
                out.push('\\');
            }
            b'$' if startup[i..].starts_with("$((") => {
                stack.push(Ctx::Arith { depth: 0 });
                len = 3;
            }
            b'$' if next == Some(b'(') => {
                stack.push(Ctx::Command { depth: 0 });
                len = 2;
            }
            b'$' if next == Some(b'{') => {
                let quoted = matches!(ctx, Ctx::Double | Ctx::Brace { quoted: true });
                stack.push(Ctx::Brace { quoted });
                len = 2;
            }
            b'$' if next == Some(b'\'')
                && (ctx.unquoted() || ctx == Ctx::Brace { quoted: false }) =>
            {
                stack.push(Ctx::Single);
                len = 2;
            }
            b'`' if ctx == Ctx::Backtick => pop(&mut stack),
            b'`' => stack.push(Ctx::Backtick),
            b'"' if ctx == Ctx::Double => pop(&mut stack),
            b'"' => stack.push(Ctx::Double),
            b'\'' if ctx.unquoted() || ctx == Ctx::Brace { quoted: false } => {
                stack.push(Ctx::Single)
            }
            b'(' => {
                if let Some(Ctx::Command { depth } | Ctx::Arith { depth }) = stack.last_mut() {
                    *depth += 1;
                }
            }
            b')' => match stack.last_mut() {
                Some(Ctx::Command { depth: 0 }) => pop(&mut stack),
                Some(Ctx::Arith { depth: 0 }) if next == Some(b')') => {
                    pop(&mut stack);
                    len = 2;
                }
                Some(Ctx::Command { depth } | Ctx::Arith { depth }) => {
                    *depth = depth.saturating_sub(1)
                }
                _ => {}
            },
            b'}' if matches!(ctx, Ctx::Brace { .. }) => pop(&mut stack),
            b'#' if ctx.unquoted() && word_boundary(i.checked_sub(1).map(|p| b[p])) => {
                // a comment runs to the end of the line (in backticks, to the closing one)
                let rest = &b[i..];
                len = rest
                    .iter()
                    .position(|&x| x == b'\n' || (ctx == Ctx::Backtick && x == b'`'))
                    .unwrap_or(rest.len());
            }
            _ => {}
        }
        copy(&mut out, i, i + len);
        i += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;
    use std::process::Command;

    #[test]
    fn each_context_gets_its_own_reference() {
        for (line, want) in [
            ("java -jar {{JAR}}", r#"java -jar "${JAR}""#),
            ("-Xmx{{MEM}}M", r#"-Xmx"${MEM}"M"#),
            (r#"--motd "{{MOTD}}""#, r#"--motd "${MOTD}""#),
            ("--motd '{{MOTD}}'", r#"--motd ''"${MOTD}"''"#),
            ("$(echo {{A}})", r#"$(echo "${A}")"#),
            ("`echo {{A}}`", r#"`echo "${A}"`"#),
            (r#""$(echo "{{A}}" {{B}})""#, r#""$(echo "${A}" "${B}")""#),
            (r#""`echo {{A}}`""#, r#""`echo "${A}"`""#),
            ("${X:-{{A}}}", r#"${X:-"${A}"}"#),
            (r#""${X:-{{A}}}""#, r#""${X:-${A}}""#),
            ("$(( {{N}} - 1 ))", r#"$(( $(printf %d "${N}") - 1 ))"#),
            ("{{ A }} {{env.A}} {{ env.A }}", r#""${A}" "${A}" "${A}""#),
            (r#""it's {{A}}""#, r#""it's ${A}""#),
            (
                "x # it's {{A}}\necho {{A}}",
                "x # it's {{A}}\necho \"${A}\"",
            ),
            ("$'{{A}}'", r#"$''"${A}"''"#),
            ("${{PRICE}}", r#"\$"${PRICE}""#),
        ] {
            assert_eq!(substitute(line), want, "{line}");
        }
    }

    #[test]
    fn invalid_and_unterminated_placeholders_stay_literal() {
        for line in [
            "a {{b c}} {{x",
            "{{1X}}",
            "{{}}",
            "{{env.}}",
            "{{A-B}}",
            "{{ env. A }}",
            "{{",
            "}}",
        ] {
            assert_eq!(substitute(line), line);
        }
        assert_eq!(substitute("é{{A}}ü '{{A}}ß'"), r#"é"${A}"ü ''"${A}"'ß'"#);
    }

    #[test]
    fn a_backslash_keeps_a_placeholder_literal() {
        assert_eq!(substitute(r"\{{A}}"), r"\{{A}}");
        assert_eq!(substitute(r#""\{{A}}""#), r#""\{{A}}""#);
        // an escaped backslash escapes nothing further
        assert_eq!(substitute(r"\\{{A}}"), r#"\\"${A}""#);
        assert_eq!(substitute(r#""\"{{A}}""#), r#""\"${A}""#);
    }

    #[test]
    fn the_eggs_startup_lines_keep_their_shape() {
        let forge = r#"java -jar $( [[  ! -f unix_args.txt ]] && printf %s "-jar {{SERVER_JARFILE}}" || printf %s "@unix_args.txt" )"#;
        assert_eq!(
            substitute(forge),
            r#"java -jar $( [[  ! -f unix_args.txt ]] && printf %s "-jar ${SERVER_JARFILE}" || printf %s "@unix_args.txt" )"#
        );
        let ark = r#"./ShooterGameServer {{SERVER_MAP}}?SessionName="{{SESSION_NAME}}"?Port={{SERVER_PORT}}$( [ "$BATTLE_EYE" == "1" ] || printf %s ' -NoBattlEye' ) -server {{ARGS}} -log"#;
        assert_eq!(
            substitute(ark),
            r#"./ShooterGameServer "${SERVER_MAP}"?SessionName="${SESSION_NAME}"?Port="${SERVER_PORT}"$( [ "$BATTLE_EYE" == "1" ] || printf %s ' -NoBattlEye' ) -server "${ARGS}" -log"#
        );
    }

    /// The shells a startup line may meet.
    const SHELLS: &[&[&str]] = &[&["/bin/sh"], &["/bin/busybox", "sh"]];

    /// Runs `line` through `shell -c` in `dir` with `vars` as the whole environment (and PATH);
    /// returns stdout.
    fn run(shell: &[&str], line: &str, dir: &Path, vars: &[(&str, &str)]) -> String {
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .arg("-c")
            .arg(line)
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .envs(vars.iter().copied())
            .output()
            .expect("the shell runs");
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Values that would run `touch canary` or delete `victim` if they were parsed.
    const HOSTILE: &[&str] = &[
        "$(touch canary)",
        "`touch canary`",
        "'",
        "\"",
        "\\",
        "\\\\\"",
        ";rm -rf victim",
        "; touch canary",
        "'; touch canary; '",
        "\"; touch canary; \"",
        "'\"$(touch canary)\"'",
        "$HOME",
        "${HOME}",
        "*",
        "  two  spaces ",
        "",
        "a}}b",
        "{{V}}",
        "$((1+1))",
        "&& touch canary",
        "| touch canary",
        "> canary",
        "#",
        ")",
        "é ü",
    ];

    #[test]
    fn hostile_values_come_out_literally_in_every_context_of_dash_and_busybox() {
        // (context, template, prefix, suffix): the program prints [prefix VALUE suffix]
        let cases: &[(&str, &str, &str, &str)] = &[
            ("bare", "printf '[%s]\\n' {{V}}", "", ""),
            ("env form", "printf '[%s]\\n' {{ env.V }}", "", ""),
            (
                "double-quoted",
                "printf '[%s]\\n' \"a {{V}} b\"",
                "a ",
                " b",
            ),
            ("single-quoted", "printf '[%s]\\n' 'a {{V}} b'", "a ", " b"),
            (
                "adjacent to text",
                "printf '[%s]\\n' -Xmx{{V}}M",
                "-Xmx",
                "M",
            ),
            (
                "inside $(...)",
                "x=$(printf '[%s]' {{V}}); printf '%s\\n' \"$x\"",
                "",
                "",
            ),
            (
                "inside backticks",
                "x=`printf '[%s]' {{V}}`; printf '%s\\n' \"$x\"",
                "",
                "",
            ),
            (
                "inside \"$(...)\"",
                "printf '%s\\n' \"$(printf '[%s]' {{V}})\"",
                "",
                "",
            ),
            (
                "double-quoted inside \"$(...)\"",
                "printf '%s\\n' \"$(printf '[%s]' \"x{{V}}\")\"",
                "x",
                "",
            ),
            (
                "inside backticks inside double quotes",
                "printf '%s\\n' \"`printf '[%s]' {{V}}`\"",
                "",
                "",
            ),
            (
                "single-quoted inside $(...)",
                "x=$(printf '[%s]' 'q{{V}}q'); printf '%s\\n' \"$x\"",
                "q",
                "q",
            ),
            (
                "a default of ${...}",
                "printf '[%s]\\n' ${UNSET:-{{V}}}",
                "",
                "",
            ),
            (
                "a default of \"${...}\"",
                "printf '[%s]\\n' \"${UNSET:-{{V}}}\"",
                "",
                "",
            ),
            (
                "after a comment with a quote",
                "# it's here: {{V}}\nprintf '[%s]\\n' {{V}}",
                "",
                "",
            ),
            ("after a dollar sign", "printf '[%s]\\n' ${{V}}", "$", ""),
        ];
        let dir = tempfile::tempdir().expect("temp dir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "x").expect("victim file");
        let canary = dir.path().join("canary");
        for shell in SHELLS {
            for (context, template, prefix, suffix) in cases {
                let line = substitute(template);
                for value in HOSTILE {
                    let got = run(shell, &line, dir.path(), &[("V", value), ("HOME", "/h")]);
                    assert_eq!(
                        got,
                        format!("[{prefix}{value}{suffix}]\n"),
                        "{shell:?}, {context}: {line} with V={value:?}"
                    );
                    assert!(
                        !canary.exists(),
                        "{shell:?}, {context}: V={value:?} ran a command"
                    );
                    assert!(
                        victim.exists(),
                        "{shell:?}, {context}: V={value:?} deleted a file"
                    );
                }
            }
        }
    }

    #[test]
    fn arithmetic_reads_a_value_only_as_a_number() {
        let dir = tempfile::tempdir().expect("temp dir");
        let line = substitute("printf '[%s]\\n' $(( {{N}} - 512 )) \"$PATH\"");
        for shell in SHELLS {
            let path = "[/usr/local/bin:/usr/bin:/bin]\n";
            let got = run(shell, &line, dir.path(), &[("N", "4096")]);
            assert_eq!(got, format!("[3584]\n{path}"), "{shell:?}");
            for value in [
                "PATH=0",
                "$(touch canary)",
                "a[$(touch canary)]",
                "1+1",
                "x=1",
            ] {
                let got = run(shell, &line, dir.path(), &[("N", value)]);
                assert!(!dir.path().join("canary").exists(), "{shell:?}: {value}");
                // never evaluated (1+1 would give -510) nor assigned (PATH stays): printf makes
                // the leading number of the text, or 0, of it
                assert!(
                    [format!("[-512]\n{path}"), format!("[-511]\n{path}")].contains(&got),
                    "{shell:?}: N={value:?} was evaluated: {got}"
                );
            }
        }
    }

    #[test]
    fn unknown_names_expand_to_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let line = substitute("printf '[%s]' {{MISSING}} \"{{MISSING}}\" '{{MISSING}}'");
        for shell in SHELLS {
            assert_eq!(run(shell, &line, dir.path(), &[]), "[][][]");
        }
    }

    #[test]
    fn a_backslashed_placeholder_reaches_the_program_as_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let line = substitute(r"printf '[%s]' \{{V}} \\{{V}}");
        for shell in SHELLS {
            assert_eq!(run(shell, &line, dir.path(), &[("V", "v")]), r"[{{V}}][\v]");
        }
    }
}
