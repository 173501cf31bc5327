//! The config files of `catalyst server` and `catalyst nodelet`: a YAML mapping whose keys are
//! the command's long flag names (`listen: 0.0.0.0:7443`, `image-dir: [/srv/images]`,
//! `with-nodelet: true`). The file is `--config FILE`, else `/etc/catalyst/server.yaml` or
//! `/etc/catalyst/nodelet.yaml` when it exists. Its settings become command-line arguments
//! placed before the real ones; a flag given on the command line, or by its environment
//! variable, wins over the file (a repeatable flag on the command line replaces the file's list).
//! Every key must be a flag of the command and every value must parse as that flag's value: the
//! errors name the file and the key.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::ArgAction;
use yaml_serde::Value;

/// Where the packaged config files live.
pub const DEFAULT_DIR: &str = "/etc/catalyst";

/// The subcommands that read a config file.
pub const COMMANDS: [&str; 2] = ["server", "nodelet"];

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not YAML, or not a mapping.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key that is no flag of the command.
    #[error(
        "{path}: unknown key {key:?}: the keys are the long flags of `catalyst {command}`: {known}"
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The subcommand.
        command: String,
        /// The keys it knows, comma-separated.
        known: String,
    },
    /// A value the flag does not take.
    #[error("{path}: key {key:?}: {message}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
}

impl ConfigFileError {
    fn bad(path: &Path, key: &str, message: impl Into<String>) -> Self {
        Self::BadValue {
            path: path.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// What [`with_config_file`] made of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// The command line to parse: the file's settings after the subcommand, then the real
    /// arguments.
    pub args: Vec<OsString>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

/// The value of `--config` on a command line (`--config FILE` or `--config=FILE`).
fn config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            return None;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// Whether `--long` is on the command line (as `--long`, `--long VALUE` or `--long=VALUE`).
fn on_command_line(args: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    let prefix = format!("{flag}=");
    args.iter()
        .take_while(|a| *a != "--")
        .filter_map(|a| a.to_str())
        .any(|a| a == flag || a.starts_with(&prefix))
}

/// The first line of a value parser's error, without clap's `error: ` and the placeholder
/// argument's name: `invalid value 'x': invalid IP address syntax`.
fn parser_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.find(" for '").and_then(|at| {
        let close = line[at + 6..].find('\'')? + at + 6;
        Some((at, close))
    }) {
        Some((at, close)) => format!("{}{}", &line[..at], &line[close + 1..]),
        None => line.to_owned(),
    }
}

/// A scalar of the file as a flag value.
fn scalar(path: &Path, key: &str, v: &Value) -> Result<String, ConfigFileError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ConfigFileError::bad(
            path,
            key,
            "expected a single value (a string or a number)",
        )),
    }
}

/// `argv` (with `argv[0]`) with the settings of the subcommand's config file inserted after the
/// subcommand; unchanged for other subcommands, or when there is no `--config` and no
/// `DIR/COMMAND.yaml`. `command` is the binary's whole clap command; `default_dir` is
/// [`DEFAULT_DIR`] outside tests.
///
/// # Errors
/// [`ConfigFileError`]: an unreadable file, not a mapping, an unknown key, a bad value.
pub fn with_config_file(
    command: &clap::Command,
    argv: Vec<OsString>,
    default_dir: &Path,
) -> Result<Expanded, ConfigFileError> {
    expand(command, argv, default_dir, &|name| {
        std::env::var_os(name).is_some()
    })
}

/// [`with_config_file`], with `env_set` telling which environment variables are set.
fn expand(
    command: &clap::Command,
    argv: Vec<OsString>,
    default_dir: &Path,
    env_set: &dyn Fn(&OsStr) -> bool,
) -> Result<Expanded, ConfigFileError> {
    let unchanged = |args| Ok(Expanded { args, file: None });
    let Some(sub) = argv
        .get(1)
        .and_then(|s| s.to_str())
        .filter(|s| COMMANDS.contains(s))
        .map(str::to_owned)
    else {
        return unchanged(argv);
    };
    let Some(cmd) = command.find_subcommand(&sub) else {
        return unchanged(argv);
    };
    let rest = &argv[2..];
    let path = match config_flag(rest) {
        Some(p) => p,
        None => {
            let p = default_dir.join(format!("{sub}.yaml"));
            if !p.exists() {
                return unchanged(argv);
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let syntax = |message: String| ConfigFileError::Syntax {
        path: path.clone(),
        message,
    };
    let doc: Value = yaml_serde::from_str(&text).map_err(|e| syntax(e.to_string()))?;
    let map = match doc {
        Value::Null => Default::default(),
        Value::Mapping(m) => m,
        _ => return Err(syntax("expected a mapping of flag names to values".into())),
    };
    let settable = |a: &&clap::Arg| {
        a.get_long().is_some_and(|l| l != "config") && !a.is_positional() && !a.is_hide_set()
    };
    let mut extra: Vec<OsString> = Vec::new();
    for (k, v) in &map {
        let key = k
            .as_str()
            .ok_or_else(|| syntax(format!("a key that is not a string: {k:?}")))?;
        let Some(arg) = cmd
            .get_arguments()
            .filter(settable)
            .find(|a| a.get_long() == Some(key))
        else {
            let known: Vec<&str> = cmd
                .get_arguments()
                .filter(settable)
                .filter_map(|a| a.get_long())
                .collect();
            return Err(ConfigFileError::UnknownKey {
                path: path.clone(),
                key: key.to_owned(),
                command: sub.clone(),
                known: known.join(", "),
            });
        };
        let values: Vec<String> = match (arg.get_action(), v) {
            (ArgAction::SetTrue, Value::Bool(true)) => {
                vec![]
            }
            (ArgAction::SetTrue, Value::Bool(false)) => continue,
            (ArgAction::SetTrue, _) => {
                return Err(ConfigFileError::bad(&path, key, "expected true or false"))
            }
            (ArgAction::Append, Value::Sequence(items)) => items
                .iter()
                .map(|i| scalar(&path, key, i))
                .collect::<Result<_, _>>()?,
            (_, Value::Sequence(_)) => {
                return Err(ConfigFileError::bad(
                    &path,
                    key,
                    "takes one value, not a list",
                ))
            }
            (_, v) => vec![scalar(&path, key, v)?],
        };
        // every value through the flag's own parser, so the error names the file and key
        let check = clap::Command::new("catalyst")
            .no_binary_name(true)
            .disable_help_flag(true)
            .arg(
                clap::Arg::new("value")
                    .value_parser(arg.get_value_parser().clone())
                    .action(ArgAction::Append)
                    .allow_hyphen_values(true),
            );
        if let Err(e) = check.try_get_matches_from(&values) {
            return Err(ConfigFileError::bad(&path, key, parser_message(&e)));
        }
        let from_env = arg.get_env().is_some_and(env_set);
        if on_command_line(rest, key) || from_env {
            continue;
        }
        if values.is_empty() {
            extra.push(format!("--{key}").into());
        }
        for value in values {
            extra.push(format!("--{key}={value}").into());
        }
    }
    let mut args = argv[..2].to_vec();
    args.extend(extra);
    args.extend_from_slice(rest);
    Ok(Expanded {
        args,
        file: Some(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    /// A command shaped like `catalyst`: `server` with a scalar, a typed, a flag, a repeatable
    /// and an env flag; `nodelet` with a required one; and a subcommand without a file.
    fn cli() -> Command {
        Command::new("catalyst")
            .subcommand(
                Command::new("server")
                    .arg(Arg::new("config").long("config"))
                    .arg(
                        Arg::new("listen")
                            .long("listen")
                            .default_value("127.0.0.1:7443")
                            .value_parser(clap::value_parser!(std::net::SocketAddr)),
                    )
                    .arg(
                        Arg::new("with_nodelet")
                            .long("with-nodelet")
                            .action(ArgAction::SetTrue),
                    )
                    .arg(
                        Arg::new("image_dirs")
                            .long("image-dir")
                            .action(ArgAction::Append),
                    )
                    .arg(Arg::new("store").long("store").env("CATALYST_STORE"))
                    .arg(
                        Arg::new("retention")
                            .long("audit-retention")
                            .value_parser(clap::value_parser!(u64)),
                    ),
            )
            .subcommand(
                Command::new("nodelet")
                    .arg(Arg::new("config").long("config"))
                    .arg(Arg::new("server").long("server").required(true)),
            )
            .subcommand(Command::new("image").arg(Arg::new("output").long("output")))
    }

    /// [`expand`] with no environment variable set.
    fn no_env(c: &Command, a: Vec<OsString>, d: &Path) -> Result<Expanded, ConfigFileError> {
        expand(c, a, d, &|_| false)
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("catalyst")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn strings(e: &Expanded) -> Vec<String> {
        e.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn dir_with(name: &str, text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(name), text).expect("write");
        dir
    }

    #[test]
    fn the_default_file_becomes_flags_before_the_command_line() {
        let dir = dir_with(
            "server.yaml",
            "# comment\nlisten: 0.0.0.0:7443\nwith-nodelet: true\nimage-dir: [/a, /b]\naudit-retention: 30\n",
        );
        let e = no_env(&cli(), argv(&["server", "--store", "x"]), dir.path()).unwrap();
        assert_eq!(e.file, Some(dir.path().join("server.yaml")));
        assert_eq!(
            strings(&e),
            [
                "catalyst",
                "server",
                "--listen=0.0.0.0:7443",
                "--with-nodelet",
                "--image-dir=/a",
                "--image-dir=/b",
                "--audit-retention=30",
                "--store",
                "x"
            ]
        );
        let m = cli().try_get_matches_from(&e.args).expect("parses");
        let (_, m) = m.subcommand().expect("server");
        assert!(m.get_flag("with_nodelet"));
        assert_eq!(
            m.get_many::<String>("image_dirs")
                .unwrap()
                .collect::<Vec<_>>(),
            ["/a", "/b"]
        );
    }

    #[test]
    fn the_command_line_and_the_environment_win_over_the_file() {
        let dir = dir_with(
            "server.yaml",
            "listen: 0.0.0.0:7443\nimage-dir: [/a]\nwith-nodelet: false\nstore: sqlite:///f\n",
        );
        let cmdline = ["server", "--listen=127.0.0.1:1", "--image-dir", "/c"];
        let e = no_env(&cli(), argv(&cmdline), dir.path()).unwrap();
        // nothing of the file is left but the store, and with-nodelet: false adds nothing
        assert_eq!(
            strings(&e),
            [
                "catalyst",
                "server",
                "--store=sqlite:///f",
                "--listen=127.0.0.1:1",
                "--image-dir",
                "/c"
            ]
        );
        let e = expand(&cli(), argv(&cmdline), dir.path(), &|n| {
            n == "CATALYST_STORE"
        })
        .unwrap();
        assert!(!strings(&e).iter().any(|a| a.starts_with("--store")));
        let e = expand(&cli(), argv(&cmdline), dir.path(), &|n| n == "OTHER").unwrap();
        assert!(strings(&e).iter().any(|a| a.starts_with("--store")));
    }

    #[test]
    fn an_explicit_file_is_read_and_must_exist() {
        let dir = dir_with("n.yaml", "server: https://10.0.0.1:7443\n");
        let file = dir.path().join("n.yaml");
        let e = with_config_file(
            &cli(),
            argv(&["nodelet", "--config", file.to_str().unwrap()]),
            Path::new("/nonexistent"),
        )
        .unwrap();
        // a required flag may come from the file alone
        cli().try_get_matches_from(&e.args).expect("parses");
        assert!(strings(&e).contains(&"--server=https://10.0.0.1:7443".to_owned()));
        let missing = dir.path().join("gone.yaml");
        let err = with_config_file(
            &cli(),
            argv(&["nodelet", &format!("--config={}", missing.display())]),
            dir.path(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigFileError::Read { .. }), "{err}");
        assert!(err.to_string().contains("gone.yaml"), "{err}");
    }

    #[test]
    fn no_file_and_other_subcommands_leave_the_command_line_alone() {
        let empty = tempfile::tempdir().unwrap();
        let a = argv(&["server", "--listen", "127.0.0.1:1"]);
        assert_eq!(
            no_env(&cli(), a.clone(), empty.path()).unwrap(),
            Expanded {
                args: a,
                file: None
            }
        );
        let dir = dir_with("image.yaml", "output: x\n");
        let a = argv(&["image", "--output", "y"]);
        assert_eq!(no_env(&cli(), a.clone(), dir.path()).unwrap().args, a);
        let e = no_env(&cli(), argv(&[]), dir.path()).unwrap();
        assert_eq!(e.args, argv(&[]));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let cases = [
            (
                "lisen: 0.0.0.0:1\n",
                "unknown key \"lisen\"",
                "listen, with-nodelet",
            ),
            ("config: /x\n", "unknown key \"config\"", "image-dir"),
            ("listen: nowhere\n", "key \"listen\"", "nowhere"),
            ("audit-retention: soon\n", "key \"audit-retention\"", "soon"),
            (
                "with-nodelet: yes please\n",
                "key \"with-nodelet\"",
                "true or false",
            ),
            ("listen: [0.0.0.0:1]\n", "key \"listen\"", "not a list"),
            ("image-dir: [{a: b}]\n", "key \"image-dir\"", "single value"),
            ("- listen\n", "server.yaml", "mapping"),
            ("listen: [\n", "server.yaml", ""),
        ];
        for (text, want, detail) in cases {
            let dir = dir_with("server.yaml", text);
            let err = no_env(&cli(), argv(&["server"]), dir.path())
                .expect_err(text)
                .to_string();
            assert!(err.contains("server.yaml"), "{text}: {err}");
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains(detail), "{text}: {err}");
        }
    }

    #[test]
    fn an_empty_file_sets_nothing() {
        let dir = dir_with("server.yaml", "# everything at its default\n");
        let e = no_env(&cli(), argv(&["server"]), dir.path()).unwrap();
        assert_eq!(e.args, argv(&["server"]));
        assert!(e.file.is_some());
    }
}
