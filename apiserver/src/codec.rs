//! Stored bytes of an object: JSON that carries the object's `apiVersion`, so that a later
//! Catalyst can recognise and convert objects written by this one.

use catalyst_schemas::API_VERSION;

/// Why stored bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not JSON, or not an object.
    #[error("stored object is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The object names no apiVersion.
    #[error("stored object has no apiVersion")]
    NoVersion,
    /// Written by a version of the API this build does not know.
    #[error("stored object has apiVersion {0:?}, which this build cannot read")]
    UnknownVersion(String),
}

/// Encodes an object for the store. The object must carry `apiVersion`.
pub fn encode(object: &serde_json::Value) -> Result<Vec<u8>, CodecError> {
    match object.get("apiVersion").and_then(|v| v.as_str()) {
        Some(_) => Ok(serde_json::to_vec(object)?),
        None => Err(CodecError::NoVersion),
    }
}

/// Decodes stored bytes into an object of the current apiVersion, converting older versions.
pub fn decode(bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
    let object: serde_json::Value = serde_json::from_slice(bytes)?;
    let version = object
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .ok_or(CodecError::NoVersion)?;
    match version {
        API_VERSION => Ok(object),
        other => Err(CodecError::UnknownVersion(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_with_their_version() {
        let obj = serde_json::json!({"apiVersion": API_VERSION, "kind": "Node", "metadata": {"name": "a"}});
        assert_eq!(decode(&encode(&obj).unwrap()).unwrap(), obj);
    }

    #[test]
    fn bytes_of_an_unknown_version_are_refused_not_misread() {
        let bytes = br#"{"apiVersion":"catalyst.dev/v9","kind":"Node"}"#;
        assert!(
            matches!(decode(bytes), Err(CodecError::UnknownVersion(v)) if v == "catalyst.dev/v9")
        );
        assert!(matches!(decode(b"{}"), Err(CodecError::NoVersion)));
        assert!(matches!(decode(b"not json"), Err(CodecError::Json(_))));
    }
}
