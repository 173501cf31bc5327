//! The frames of a node tunnel: the WebSocket a nodelet keeps open to an API server
//! (`/apis/catalyst.dev/v1alpha1/nodes/NAME/tunnel`). Each frame is one JSON text message.
//!
//! - API server → nodelet, a [`TunnelRequest`] tagged by `op`:
//!   `{"id": 7, "op": "logs", "uid": "…", "tail": 100, "follow": true}`,
//!   `{"id": 8, "op": "command", "uid": "…", "text": "say hi"}`,
//!   `{"id": 9, "op": "metrics", "uid": "…"}`, `{"id": 10, "op": "prometheus"}`,
//!   `{"id": 11, "op": "files", "uid": "…", "call": {"call": "list", "path": "/"}}`,
//!   `{"id": 12, "op": "ack", "chunks": 4}` (room for 4 more data chunks of a download),
//!   `{"id": 7, "op": "cancel"}`.
//! - Data chunks of a file go as binary messages, both ways: the request id as 8 bytes,
//!   big-endian, then the bytes ([`data_frame`], [`parse_data_frame`]); an empty chunk ends an
//!   upload. A download sends at most [`FILE_WINDOW`] chunks the API server has not made room
//!   for with `ack`; an upload sends at most [`FILE_WINDOW`] chunks the nodelet has not
//!   acknowledged with `{"id": 13, "ack": 1}`.
//! - nodelet → API server, a [`TunnelAnswer`]: `{"id": 7, "ok": true}` (a log stream starts),
//!   `{"id": 7, "line": "…"}`, `{"id": 9, "end": true, "result": {…}}`, `{"id": 7, "end": true}`
//!   or `{"id": 7, "end": true, "error": "…", "code": 404}`. Every request ends with exactly one
//!   frame that has `"end": true`.
//!
//! The answer frames carry no tag (the format predates this module); [`Answer`] is the typed
//! view of them, read and written through the untyped [`RawAnswer`] so the wire stays the same.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest WebSocket message (and frame) either side of a tunnel accepts: a peer that
/// sends more is cut off. Console lines are at most 8 KiB, so only a broken or hostile peer
/// comes near it.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The largest data chunk of a file transfer (one binary message, with its 8-byte id).
pub const FILE_CHUNK_BYTES: usize = 256 * 1024;

/// Data chunks of one transfer in flight without an acknowledgement.
pub const FILE_WINDOW: u32 = 8;

/// A binary data message: `id` as 8 big-endian bytes, then `data`.
pub fn data_frame(id: u64, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(data);
    frame
}

/// The request id and the bytes of a binary data message; None when it is shorter than an id.
pub fn parse_data_frame(frame: &[u8]) -> Option<(u64, &[u8])> {
    let (id, data) = frame.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*id), data))
}

/// One file operation on a GameServer's data directory. Paths are the user's: `/` is the data
/// directory, and no path resolves outside it (the nodelet's path layer sees to that).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "camelCase")]
pub enum FileCall {
    /// A directory's entries, a page at a time (directories first, then by name).
    List {
        /// The directory.
        path: String,
        /// The last name of the previous page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// Entries per page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// One entry (a link is described, not followed).
    Stat {
        /// The entry.
        path: String,
    },
    /// A file's bytes: answered by `Opened` (the entry, and the byte range served), data
    /// chunks, then `End`. The range is HTTP's: `start`-`end` inclusive, or the last `suffix`
    /// bytes; a range past the end fails with 416.
    Read {
        /// The file.
        path: String,
        /// The first byte.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<u64>,
        /// The last byte (inclusive).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<u64>,
        /// The last this many bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        suffix: Option<u64>,
    },
    /// Replaces a file atomically with the data chunks that follow (`Opened` when the node is
    /// ready for them, `End` with the new entry once an empty chunk ended them and the file is
    /// in place).
    Write {
        /// The file.
        path: String,
        /// Permission bits of a new file (masked to 0o777).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
    },
    /// A directory and its missing parents.
    Mkdir {
        /// The directory.
        path: String,
    },
    /// Renames or moves an entry.
    Rename {
        /// What.
        from: String,
        /// Where to.
        to: String,
        /// Replace what is at `to`.
        #[serde(default)]
        replace: bool,
    },
    /// Copies a file or a directory tree.
    Copy {
        /// What.
        from: String,
        /// Where to.
        to: String,
    },
    /// Removes an entry (a directory with `recursive`).
    Remove {
        /// The entry.
        path: String,
        /// Remove a directory's contents too.
        #[serde(default)]
        recursive: bool,
    },
    /// Changes permission bits (never following a link; masked to 0o777).
    Chmod {
        /// The entry.
        path: String,
        /// The bits.
        mode: u32,
    },
    /// Packs entries into an archive at `dest` (`tar.gz`, `tar.zst` or `zip`, by default from
    /// its name).
    Compress {
        /// What to pack.
        paths: Vec<String>,
        /// The archive to write.
        dest: String,
        /// `tar.gz`, `tar.zst`, `zip`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
    },
    /// Unpacks an archive into directory `dest`.
    Extract {
        /// The archive.
        path: String,
        /// Where to.
        dest: String,
    },
    /// Downloads `url` (http or https, public addresses only) to file `dest`.
    Pull {
        /// What to fetch.
        url: String,
        /// The file to write.
        dest: String,
    },
}

impl FileCall {
    /// The path the call is mainly about (for messages and the audit).
    pub fn path(&self) -> &str {
        match self {
            FileCall::List { path, .. }
            | FileCall::Stat { path }
            | FileCall::Read { path, .. }
            | FileCall::Write { path, .. }
            | FileCall::Mkdir { path }
            | FileCall::Remove { path, .. }
            | FileCall::Chmod { path, .. }
            | FileCall::Extract { path, .. } => path,
            FileCall::Rename { from, .. } | FileCall::Copy { from, .. } => from,
            FileCall::Compress { dest, .. } | FileCall::Pull { dest, .. } => dest,
        }
    }
}

/// One operation on the node's backups (`<data-dir>/backups`). Ids are the GameServer's and the
/// Backup's uids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "camelCase")]
pub enum BackupCall {
    /// Packs server `uid`'s data directory into backup `id` (tar.zst): `Progress` answers (the
    /// archive's bytes so far), then `End` with `{size, sha256, files, directories, links,
    /// skipped}`.
    Create {
        /// The GameServer's uid.
        uid: String,
        /// The Backup's uid.
        id: String,
        /// Gitignore patterns left out, besides the server's `.catalystignore`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ignore: Vec<String>,
        /// Pack everything, ignore files and patterns aside (a transfer).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        everything: bool,
        /// Upload the archive there (and keep no local copy) rather than keep it on the node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3: Option<S3Target>,
    },
    /// Puts backup `id`, made of server `from`, back into server `uid`'s data directory once
    /// the archive's SHA-256 is `sha256`: `End` with `{files, directories, bytes, links}`.
    Restore {
        /// The GameServer restored into.
        uid: String,
        /// The GameServer the backup was made of.
        from: String,
        /// The Backup's uid.
        id: String,
        /// The SHA-256 the Backup recorded.
        sha256: String,
        /// Remove what the backup does not hold.
        #[serde(default)]
        truncate: bool,
        /// The archive is there (downloaded first) rather than on this node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3: Option<S3Target>,
    },
    /// The archive's bytes, as `FileCall::Read` sends a file's.
    Read {
        /// The GameServer the backup was made of.
        from: String,
        /// The Backup's uid.
        id: String,
        /// The first byte.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<u64>,
        /// The last byte (inclusive).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<u64>,
        /// The last this many bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        suffix: Option<u64>,
        /// The archive is there rather than on this node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3: Option<S3Target>,
    },
    /// Removes the archive (`End` with `{"removed": bool}`).
    Remove {
        /// The GameServer the backup was made of.
        from: String,
        /// The Backup's uid.
        id: String,
        /// The archive is there rather than on this node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3: Option<S3Target>,
    },
    /// Takes archive `id` of server `uid` from another node (a transfer): `Opened`, then data
    /// chunks as a file upload sends them (each acknowledged, an empty one ends it); kept once
    /// its size and SHA-256 are these. `End` with `{size, sha256}`.
    Receive {
        /// The GameServer's uid.
        uid: String,
        /// The archive's id.
        id: String,
        /// Its size in bytes.
        size: u64,
        /// Its SHA-256, hex.
        sha256: String,
    },
    /// Makes the data directory of `server` (a GameServer object, moving here) on this node
    /// (its disk, as a start would) and puts archive `id` of it into it, replacing what is
    /// there: `End` with `{files, directories, bytes, links}`.
    Adopt {
        /// The GameServer, as stored.
        server: Value,
        /// The archive's id (received before).
        id: String,
        /// Its SHA-256.
        sha256: String,
    },
    /// With `held`, keeps server `uid`'s data on this node even after the server leaves it (a
    /// transfer, until the server runs on its new node or comes back); without, lets it go
    /// with the server again: `End`.
    Hold {
        /// The GameServer's uid.
        uid: String,
        /// Keep it, or no longer.
        held: bool,
    },
    /// Removes the data of server `uid` if the server is not on this node (after a transfer,
    /// or an abandoned one): `End` with `{"removed": bool}`.
    Release {
        /// The GameServer's uid.
        uid: String,
    },
}

/// An object in an S3-compatible bucket and how to reach it, as the controller resolved it
/// from a Backup's `spec.storage.s3` and its Secret. Its `Debug` never shows the secret key
/// nor the session token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Target {
    /// `http(s)://host[:port]` (tenant-written: the node checks where it leads).
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The region (`us-east-1` when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// The object's key.
    pub key: String,
    /// Path-style addressing (`endpoint/bucket/key`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_style: bool,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("key", &self.key)
            .field("path_style", &self.path_style)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A request frame from the API server: an id that correlates the answers, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunnelRequest {
    /// Correlates answers (and a later `cancel`) with this request.
    pub id: u64,
    /// What the nodelet should do.
    #[serde(flatten)]
    pub op: TunnelOp,
}

/// What a tunnel request asks for, tagged by `op` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum TunnelOp {
    /// Console lines of a server: the last `tail` lines, then new ones while `follow`.
    Logs {
        /// The GameServer's uid.
        uid: String,
        /// Lines of history (all the node keeps when absent).
        #[serde(default)]
        tail: Option<usize>,
        /// Keep streaming new lines.
        #[serde(default)]
        follow: bool,
    },
    /// One line for a server's console.
    Command {
        /// The GameServer's uid.
        uid: String,
        /// The command line.
        #[serde(default)]
        text: String,
    },
    /// A server's resource use now.
    Metrics {
        /// The GameServer's uid.
        uid: String,
    },
    /// The node's and its servers' metrics as families and samples, for `/metrics`.
    Prometheus,
    /// A file operation on a server's data directory.
    Files {
        /// The GameServer's uid.
        uid: String,
        /// What to do.
        call: FileCall,
    },
    /// An operation on the node's backups.
    Backup {
        /// What to do.
        call: BackupCall,
    },
    /// Room for `chunks` more data chunks of the download with this id.
    Ack {
        /// How many.
        chunks: u32,
    },
    /// Stops the request with this id (its answers are no longer wanted).
    Cancel,
}

/// An answer frame from the nodelet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawAnswer", into = "RawAnswer")]
pub struct TunnelAnswer {
    /// The id of the request this answers.
    pub id: u64,
    /// The answer.
    pub answer: Answer,
}

/// What a nodelet answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A log stream has started (`"ok": true`); lines follow.
    Started,
    /// A file transfer has started (`"ok": true` with a `result`: the entry, and for a read
    /// the range served).
    Opened(Value),
    /// A chunk of a file (a binary message on the wire, see [`data_frame`]).
    Data(Vec<u8>),
    /// The nodelet wrote `n` more chunks of an upload: room for as many more.
    Ack(u32),
    /// A long operation's bytes so far (a backup's archive).
    Progress(u64),
    /// One console line.
    Line(String),
    /// The request is done, with a result for `metrics` and `prometheus`.
    End {
        /// The result, if the request has one.
        result: Option<Value>,
    },
    /// The request failed; `code` is an HTTP status (404, 400, 409, 500, …).
    Failed {
        /// The HTTP status the failure maps to.
        code: u16,
        /// What went wrong.
        error: String,
    },
}

impl Answer {
    /// True for the last answer of a request ([`Answer::End`] and [`Answer::Failed`]).
    pub fn is_last(&self) -> bool {
        matches!(self, Answer::End { .. } | Answer::Failed { .. })
    }
}

impl TunnelAnswer {
    /// An answer to request `id`.
    pub fn new(id: u64, answer: Answer) -> Self {
        Self { id, answer }
    }
}

/// An answer frame as it is on the wire: every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawAnswer {
    /// The request id.
    pub id: u64,
    /// `true` when a stream starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// A console line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// `true` on the last frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<bool>,
    /// The result of `metrics` and `prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP status of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Chunks of an upload written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<u32>,
    /// A long operation's bytes so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u64>,
    /// A data chunk sent as JSON (senders use binary messages; this keeps every answer
    /// expressible as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<u8>>,
}

/// A frame that is no answer: none of `ok`, `line`, `end`, `error`, `ack`, `progress` or
/// `data` is set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tunnel frame {id} has none of ok, line, end, error, ack, progress or data")]
pub struct UnknownAnswer {
    /// The frame's request id.
    pub id: u64,
}

impl TryFrom<RawAnswer> for TunnelAnswer {
    type Error = UnknownAnswer;

    fn try_from(raw: RawAnswer) -> Result<Self, Self::Error> {
        let answer = if let Some(error) = raw.error {
            Answer::Failed {
                code: raw.code.unwrap_or(500),
                error,
            }
        } else if raw.end == Some(true) {
            Answer::End { result: raw.result }
        } else if let Some(line) = raw.line {
            Answer::Line(line)
        } else if let Some(data) = raw.data {
            Answer::Data(data)
        } else if let Some(n) = raw.ack {
            Answer::Ack(n)
        } else if let Some(n) = raw.progress {
            Answer::Progress(n)
        } else if raw.ok == Some(true) {
            match raw.result {
                Some(result) => Answer::Opened(result),
                None => Answer::Started,
            }
        } else {
            return Err(UnknownAnswer { id: raw.id });
        };
        Ok(Self { id: raw.id, answer })
    }
}

impl From<TunnelAnswer> for RawAnswer {
    fn from(a: TunnelAnswer) -> Self {
        let raw = RawAnswer {
            id: a.id,
            ..RawAnswer::default()
        };
        match a.answer {
            Answer::Started => RawAnswer {
                ok: Some(true),
                ..raw
            },
            Answer::Line(line) => RawAnswer {
                line: Some(line),
                ..raw
            },
            Answer::Opened(result) => RawAnswer {
                ok: Some(true),
                result: Some(result),
                ..raw
            },
            Answer::Data(data) => RawAnswer {
                data: Some(data),
                ..raw
            },
            Answer::Ack(n) => RawAnswer {
                ack: Some(n),
                ..raw
            },
            Answer::Progress(n) => RawAnswer {
                progress: Some(n),
                ..raw
            },
            Answer::End { result } => RawAnswer {
                end: Some(true),
                result,
                ..raw
            },
            Answer::Failed { code, error } => RawAnswer {
                end: Some(true),
                error: Some(error),
                code: Some(code),
                ..raw
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: Value) -> TunnelRequest {
        serde_json::from_value(v).expect("a request")
    }

    #[test]
    fn requests_keep_the_op_tagged_wire_format() {
        let logs = TunnelRequest {
            id: 7,
            op: TunnelOp::Logs {
                uid: "u".into(),
                tail: Some(100),
                follow: true,
            },
        };
        assert_eq!(
            serde_json::to_value(&logs).unwrap(),
            json!({"id": 7, "op": "logs", "uid": "u", "tail": 100, "follow": true})
        );
        assert_eq!(
            serde_json::to_value(TunnelRequest {
                id: 7,
                op: TunnelOp::Cancel
            })
            .unwrap(),
            json!({"id": 7, "op": "cancel"})
        );
        assert_eq!(
            request(json!({"id": 8, "op": "command", "uid": "u", "text": "say hi"})).op,
            TunnelOp::Command {
                uid: "u".into(),
                text: "say hi".into()
            }
        );
    }

    #[test]
    fn requests_of_older_api_servers_still_parse() {
        // null tail, extra fields, uid on a prometheus request
        assert_eq!(
            request(json!({"id": 1, "op": "logs", "uid": "u", "tail": null, "follow": false})).op,
            TunnelOp::Logs {
                uid: "u".into(),
                tail: None,
                follow: false
            }
        );
        assert_eq!(
            request(json!({"id": 2, "op": "prometheus", "uid": ""})).op,
            TunnelOp::Prometheus
        );
        assert!(serde_json::from_value::<TunnelRequest>(json!({"id": 3, "op": "reboot"})).is_err());
    }

    #[test]
    fn answers_round_trip_through_the_untagged_wire_format() {
        let cases = [
            (Answer::Started, json!({"id": 7, "ok": true})),
            (Answer::Line("hi".into()), json!({"id": 7, "line": "hi"})),
            (Answer::End { result: None }, json!({"id": 7, "end": true})),
            (
                Answer::End {
                    result: Some(json!({"cpu": 1})),
                },
                json!({"id": 7, "end": true, "result": {"cpu": 1}}),
            ),
            (
                Answer::Failed {
                    code: 404,
                    error: "no console".into(),
                },
                json!({"id": 7, "end": true, "error": "no console", "code": 404}),
            ),
            (
                Answer::Opened(json!({"size": 3})),
                json!({"id": 7, "ok": true, "result": {"size": 3}}),
            ),
            (Answer::Ack(2), json!({"id": 7, "ack": 2})),
            (Answer::Data(vec![1, 2]), json!({"id": 7, "data": [1, 2]})),
        ];
        for (answer, wire) in cases {
            let frame = TunnelAnswer::new(7, answer);
            assert_eq!(serde_json::to_value(&frame).unwrap(), wire);
            assert_eq!(serde_json::from_value::<TunnelAnswer>(wire).unwrap(), frame);
        }
        assert!(serde_json::from_value::<TunnelAnswer>(json!({"id": 7})).is_err());
    }

    #[test]
    fn file_calls_and_data_frames_keep_their_wire_format() {
        let list = TunnelRequest {
            id: 11,
            op: TunnelOp::Files {
                uid: "u".into(),
                call: FileCall::List {
                    path: "/".into(),
                    after: None,
                    limit: Some(10),
                },
            },
        };
        let wire = json!({"id": 11, "op": "files", "uid": "u",
            "call": {"call": "list", "path": "/", "limit": 10}});
        assert_eq!(serde_json::to_value(&list).unwrap(), wire);
        assert_eq!(request(wire), list);
        assert_eq!(
            request(json!({"id": 12, "op": "ack", "chunks": 4})).op,
            TunnelOp::Ack { chunks: 4 }
        );
        let frame = data_frame(0x0102, b"abc");
        assert_eq!(&frame[..8], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(parse_data_frame(&frame), Some((0x0102, &b"abc"[..])));
        assert_eq!(parse_data_frame(&frame[..8]), Some((0x0102, &b""[..])));
        assert_eq!(parse_data_frame(&frame[..7]), None);
    }

    #[test]
    fn only_end_and_failure_are_last() {
        assert!(!Answer::Started.is_last());
        assert!(!Answer::Line(String::new()).is_last());
        assert!(Answer::End { result: None }.is_last());
        assert!(Answer::Failed {
            code: 500,
            error: String::new()
        }
        .is_last());
    }
}
