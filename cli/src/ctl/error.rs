//! Why a `catalystctl` command failed: one error type for every command.

use std::io;
use std::process::ExitStatus;

use catalyst_schemas::explain::ExplainError;
use catalyst_schemas::{ParseError, ValidationError};
use serde_json::Value;

use crate::client::{format_status, ClientError};

/// What a command ends with: its exit status (0 success, 1 a failure the user can fix, `diff`:
/// 1 for "differs"), or an error.
pub type Outcome = Result<i32, CtlError>;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A request failed, or the client config could not be read.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No kind has this name.
    #[error("unknown resource type {name:?}; known: {}", known_kinds())]
    UnknownKind {
        /// The name as given.
        name: String,
    },
    /// The arguments or input ask for something impossible (`KIND NAME` missing, …).
    #[error("{0}")]
    Usage(String),
    /// A file, directory or stdin could not be read.
    #[error("reading {what}")]
    Read {
        /// The path, or `stdin`.
        what: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A manifest file is not YAML or JSON documents.
    #[error("{file}")]
    Parse {
        /// The file (or `-`).
        file: String,
        /// The failure.
        #[source]
        error: ParseError,
    },
    /// A Pterodactyl egg could not be converted into a Template.
    #[error("{file}: converting the Pterodactyl egg")]
    Egg {
        /// The file (or `-`).
        file: String,
        /// Why.
        #[source]
        error: crate::egg::EggError,
    },
    /// A manifest is of no known kind.
    #[error("{file}: {error}")]
    Kind {
        /// The file (or `-`).
        file: String,
        /// What is wrong with its `apiVersion` and `kind`.
        error: ValidationError,
    },
    /// `explain` was asked about a kind or field that does not exist.
    #[error(transparent)]
    Explain(#[from] ExplainError),
    /// The editor of `edit` could not be started.
    #[error("starting the editor {editor:?}")]
    EditorStart {
        /// `$EDITOR`.
        editor: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The editor of `edit` failed.
    #[error("the editor exited with {0}")]
    EditorFailed(ExitStatus),
    /// The temporary file of `edit` could not be made, written or read.
    #[error(transparent)]
    EditFile(io::Error),
    /// A watch or log stream broke off.
    #[error("reading the {what} stream")]
    Stream {
        /// `watch` or `log`.
        what: &'static str,
        /// The failure.
        #[source]
        source: reqwest::Error,
    },
    /// A watch event could not be decoded.
    #[error("a watch event is not JSON")]
    WatchEvent(#[source] serde_json::Error),
    /// The server ended a watch with an ERROR event (the Status object).
    #[error("{}", format_status(.0))]
    WatchFailed(Value),
    /// The watch of `wait` ended before the condition was met.
    #[error("the watch ended before {0} met the condition")]
    WatchEnded(String),
    /// JSON could not be encoded.
    #[error(transparent)]
    Encode(serde_json::Error),
    /// Whoever read stdout stopped reading (`catalystctl get gs | head -1`): not a failure,
    /// the binary stops quietly with status 0.
    #[error("stdout was closed")]
    StdoutClosed,
    /// Writing to stdout failed otherwise.
    #[error("writing to stdout")]
    Stdout(#[source] io::Error),
}

fn known_kinds() -> String {
    let known: Vec<&str> = catalyst_schemas::KINDS.iter().map(|k| k.plural).collect();
    known.join(", ")
}

impl CtlError {
    /// True when the reader of stdout went away: the command should stop and exit 0.
    pub fn is_stdout_closed(&self) -> bool {
        matches!(self, CtlError::StdoutClosed)
    }
}
