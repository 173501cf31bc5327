//! The watch wire format: one `{"type": …, "object": …}` JSON line per event, and the Status
//! object the API returns on failure (also the object of an `ERROR` event).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validation::Cause;

/// One watch event, as the API sends it: `{"type": "ADDED", "object": {...}}`.
///
/// `K` is the object type (`serde_json::Value` for untyped watches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "object", rename_all = "UPPERCASE")]
pub enum WatchEvent<K> {
    /// The object was created (or existed when a watch without a revision started).
    Added(K),
    /// The object changed.
    Modified(K),
    /// The object was deleted: its last state, with the deletion's resourceVersion.
    Deleted(K),
    /// Nothing changed up to a revision; a watch may resume from there.
    Bookmark(Bookmark),
    /// The watch ended with an error (`code` 410: the revision is too old; list again).
    Error(Status),
}

impl<K> WatchEvent<K> {
    /// The object of an `ADDED`, `MODIFIED` or `DELETED` event.
    pub fn object(&self) -> Option<&K> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => Some(o),
            WatchEvent::Bookmark(_) | WatchEvent::Error(_) => None,
        }
    }

    /// The event's `type` string on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        }
    }

    /// The same event over a reference to its object (to serialise without a copy).
    pub fn as_ref(&self) -> WatchEvent<&K> {
        match self {
            WatchEvent::Added(o) => WatchEvent::Added(o),
            WatchEvent::Modified(o) => WatchEvent::Modified(o),
            WatchEvent::Deleted(o) => WatchEvent::Deleted(o),
            WatchEvent::Bookmark(b) => WatchEvent::Bookmark(b.clone()),
            WatchEvent::Error(s) => WatchEvent::Error(s.clone()),
        }
    }
}

/// The object of a `BOOKMARK` event: only a resourceVersion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bookmark {
    /// `catalyst.dev/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// Holds the revision.
    pub metadata: BookmarkMeta,
}

impl Bookmark {
    /// A bookmark at `revision`.
    pub fn at(revision: i64) -> Self {
        Self {
            api_version: crate::API_VERSION.to_owned(),
            metadata: BookmarkMeta {
                resource_version: revision.to_string(),
            },
        }
    }
}

/// The metadata of a bookmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookmarkMeta {
    /// The revision the watch has seen everything up to.
    pub resource_version: String,
}

/// A Kubernetes-style Status: the body of every failed request and the object of an `ERROR`
/// watch event. Every field is optional when reading (a proxy may answer with less).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    /// `v1`.
    pub api_version: String,
    /// `Status`.
    pub kind: String,
    /// `Failure`.
    pub status: String,
    /// For people.
    pub message: String,
    /// For programs: `NotFound`, `Conflict`, `Invalid`, `Gone`…
    pub reason: String,
    /// The HTTP status code.
    pub code: u16,
    /// The object and fields at fault, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
}

/// What a Status is about.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusDetails {
    /// The kind (plural) of the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The object's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The fields at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    /// For 429s: seconds to wait before trying again.
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl Status {
    /// A failure Status with a code, reason and message.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            api_version: "v1".into(),
            kind: "Status".into(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            code,
            details: None,
        }
    }

    /// The field causes (empty without details).
    pub fn causes(&self) -> &[Cause] {
        self.details.as_ref().map_or(&[], |d| &d.causes)
    }
}

/// `Error from server (Reason): message`, then one indented `field: message` line per cause
/// (how `catalystctl` prints a failure).
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = if self.reason.is_empty() {
            "Unknown"
        } else {
            &self.reason
        };
        write!(f, "Error from server ({reason}): {}", self.message)?;
        for c in self.causes() {
            write!(f, "\n  {}: {}", c.field, c.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn events_use_the_kubernetes_type_strings_and_object_field() {
        let ev: WatchEvent<Value> = WatchEvent::Modified(json!({"a": 1}));
        assert_eq!(
            serde_json::to_value(&ev).unwrap(),
            json!({"type": "MODIFIED", "object": {"a": 1}})
        );
        let back: WatchEvent<Value> =
            serde_json::from_str(r#"{"object":{"a":1},"type":"DELETED"}"#).unwrap();
        assert_eq!(back, WatchEvent::Deleted(json!({"a": 1})));
        assert_eq!(back.type_name(), "DELETED");
    }

    #[test]
    fn bookmarks_and_errors_read_their_objects() {
        let b: WatchEvent<Value> = serde_json::from_value(json!({"type": "BOOKMARK",
            "object": {"apiVersion": "catalyst.dev/v1alpha1", "metadata": {"resourceVersion": "7"}}}))
        .unwrap();
        assert_eq!(b, WatchEvent::Bookmark(Bookmark::at(7)));
        let e: WatchEvent<Value> = serde_json::from_value(json!({"type": "ERROR",
            "object": {"kind": "Status", "code": 410, "reason": "Gone", "message": "too old"}}))
        .unwrap();
        let WatchEvent::Error(s) = e else {
            panic!("not an error")
        };
        assert_eq!((s.code, s.reason.as_str()), (410, "Gone"));
    }

    #[test]
    fn a_status_prints_its_reason_message_and_causes() {
        let s: Status = serde_json::from_value(json!({"reason": "Invalid", "message": "bad",
            "details": {"causes": [{"field": "spec.image", "message": "required"}]}}))
        .unwrap();
        assert_eq!(
            s.to_string(),
            "Error from server (Invalid): bad\n  spec.image: required"
        );
        assert_eq!(
            Status::default().to_string(),
            "Error from server (Unknown): "
        );
    }
}
