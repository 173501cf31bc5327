//! Why a request failed: the config, the transport, or the API's Status.

use catalyst_schemas::watch::Status;
use serde_json::Value;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client config could not be read.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the API server at {server}: {source}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The connection broke after a write was sent (to the last server tried): it may have
    /// been applied. It is not sent again; check before retrying it.
    #[error("the connection to the API server at {server} broke after the request was sent: it may have been applied, check before retrying ({source})")]
    MayHaveApplied {
        /// The server URL.
        server: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a failure Status (a watch's `ERROR` event too).
    #[error("{status}")]
    Status {
        /// The HTTP code.
        code: u16,
        /// The Status object.
        status: Box<Status>,
    },
    /// The server's answer is not what the API sends.
    #[error("unexpected answer from the API server: {0}")]
    Decode(String),
    /// The CA the server presents is not the one the join token pins: this is not the server
    /// the token was made for (or someone is in between). Nothing was sent to it.
    #[error("the API server's CA (sha256 {actual}) is not the one the join token pins (sha256 {expected}); refusing to join")]
    CaMismatch {
        /// The hash in the join token.
        expected: String,
        /// The hash of the CA the server served.
        actual: String,
    },
    /// A CA certificate that cannot be used (not PEM, no certificate in it).
    #[error("TLS: {0}")]
    Tls(String),
}

impl Error {
    /// A Status error (its code is the Status's code).
    pub fn status(status: Status) -> Self {
        Error::Status {
            code: status.code,
            status: Box::new(status),
        }
    }

    /// A Status error from a failed answer's code and body (any body: JSON that is not a
    /// Status and text become the message).
    pub fn from_body(code: u16, body: &[u8]) -> Self {
        let mut status = match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => serde_json::from_value::<Status>(v).unwrap_or_default(),
            _ => Status {
                reason: "Unknown".into(),
                message: String::from_utf8_lossy(body).into_owned(),
                ..Default::default()
            },
        };
        status.code = code;
        Error::Status {
            code,
            status: Box::new(status),
        }
    }

    /// The HTTP code, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The Status the server answered with.
    pub fn api_status(&self) -> Option<&Status> {
        match self {
            Error::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// True for 404.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// True for 410: a watch's resourceVersion is too old; list again.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }
}

/// The result type of client calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Error from server (Reason): message` plus one line per cause, for a Status held as JSON.
pub fn format_status(status: &Value) -> String {
    serde_json::from_value::<Status>(status.clone())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_body_becomes_a_typed_error_with_code_reason_message_and_causes() {
        let body = br#"{"apiVersion":"v1","kind":"Status","status":"Failure","code":422,
            "reason":"Invalid","message":"gameservers \"a\" is invalid",
            "details":{"kind":"gameservers","name":"a",
                       "causes":[{"field":"spec.image","message":"required"}]}}"#;
        let e = Error::from_body(422, body);
        assert_eq!(e.code(), Some(422));
        let s = e.api_status().expect("a status");
        assert_eq!(s.reason, "Invalid");
        assert_eq!(s.message, "gameservers \"a\" is invalid");
        assert_eq!(s.causes()[0].field, "spec.image");
        assert_eq!(s.causes()[0].message, "required");
        assert_eq!(
            e.to_string(),
            "Error from server (Invalid): gameservers \"a\" is invalid\n  spec.image: required"
        );
    }

    #[test]
    fn a_body_that_is_not_a_status_becomes_the_message() {
        let e = Error::from_body(502, b"bad gateway");
        assert_eq!(e.to_string(), "Error from server (Unknown): bad gateway");
        assert_eq!(e.api_status().map(|s| s.code), Some(502));
        assert!(!e.is_not_found());
        assert!(Error::from_body(404, b"{}").is_not_found());
        assert!(Error::from_body(410, b"{}").is_gone());
    }

    #[test]
    fn format_status_reads_a_json_status() {
        let s = serde_json::json!({"reason": "NotFound", "message": "x not found"});
        assert_eq!(
            format_status(&s),
            "Error from server (NotFound): x not found"
        );
    }
}
