//! The frames of a node tunnel: the WebSocket a nodelet keeps open to an API server
//! (`/apis/catalyst.dev/v1alpha1/nodes/NAME/tunnel`). Each frame is one JSON text message.
//!
//! - API server → nodelet, a [`TunnelRequest`] tagged by `op`:
//!   `{"id": 7, "op": "logs", "uid": "…", "tail": 100, "follow": true}`,
//!   `{"id": 8, "op": "command", "uid": "…", "text": "say hi"}`,
//!   `{"id": 9, "op": "metrics", "uid": "…"}`, `{"id": 10, "op": "prometheus"}`,
//!   `{"id": 7, "op": "cancel"}`.
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
}

/// A frame that is no answer: none of `ok`, `line`, `end` or `error` is set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tunnel frame {id} has none of ok, line, end or error")]
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
        } else if raw.ok == Some(true) {
            Answer::Started
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
        ];
        for (answer, wire) in cases {
            let frame = TunnelAnswer::new(7, answer);
            assert_eq!(serde_json::to_value(&frame).unwrap(), wire);
            assert_eq!(serde_json::from_value::<TunnelAnswer>(wire).unwrap(), frame);
        }
        assert!(serde_json::from_value::<TunnelAnswer>(json!({"id": 7})).is_err());
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
