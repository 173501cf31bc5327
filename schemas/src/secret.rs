//! The Secret kind: named values (S3 credentials, say) that are written through the API and
//! never read back. The API server takes `spec.data` out of every write and keeps the values
//! in a record outside every kind's prefix; the stored object (and so every GET, LIST, WATCH,
//! audit entry and response) holds only `spec.keys`, the sorted names.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resource::{resource, Validate};
use crate::validation::{self, Causes, FieldPath};

resource! {
    /// Write-only values, read only by the control plane (e.g. a Backup's S3 credentials).
    Secret {
        spec: SecretSpec,
        status: SecretStatus,
        plural: "secrets",
        singular: "secret",
        short: [],
        namespaced: true,
        name_rule: validation::dns_subdomain,
    }
}

/// The most bytes of keys and values a Secret may hold together.
pub const MAX_SECRET_BYTES: usize = 64 << 10;
/// The most keys a Secret may hold.
pub const MAX_SECRET_KEYS: usize = 256;
/// The longest key.
pub const MAX_SECRET_KEY_LEN: usize = 253;

/// The values (write-only) and their names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    /// The values by key, write-only: never stored in the object nor returned. A write
    /// without `data` keeps the values there are; a write with it replaces all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    /// The keys held, sorted (set by the API server; what a write sends here is ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

/// Nothing is observed of a Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretStatus {}

impl Validate for SecretStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}

impl Validate for SecretSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        if let Some(data) = &self.data {
            validate_data(data, &path.child("data"), causes);
        }
    }
}

/// A key: like an environment variable's name (letters, digits, `_`, not starting with a
/// digit), also `-` and `.` after the first character; at most 253 bytes.
pub fn secret_key(k: &str) -> Result<(), String> {
    let ok = (1..=MAX_SECRET_KEY_LEN).contains(&k.len())
        && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not a valid key: 1 to {MAX_SECRET_KEY_LEN} letters, digits, '_', '-' or '.', starting with a letter or '_'"
        ))
    }
}

/// Checks a Secret's values (`path` is `spec.data`): valid keys, at most
/// [`MAX_SECRET_KEYS`] of them, at most [`MAX_SECRET_BYTES`] in all. Messages never hold a
/// value.
pub fn validate_data(data: &BTreeMap<String, String>, path: &FieldPath, causes: &mut Causes) {
    for k in data.keys() {
        causes.rule(&path.key(k), secret_key(k));
    }
    causes.check(
        data.len() <= MAX_SECRET_KEYS,
        path,
        format!("at most {MAX_SECRET_KEYS} keys"),
    );
    let bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    causes.check(
        bytes <= MAX_SECRET_BYTES,
        path,
        format!("keys and values are {bytes} bytes; at most {MAX_SECRET_BYTES} (64 KiB)"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_like_variable_names_and_the_size_is_bounded() {
        assert!(secret_key("accessKeyId").is_ok());
        assert!(secret_key("AWS_SECRET_ACCESS_KEY").is_ok());
        assert!(secret_key("tls.key").is_ok());
        for bad in ["", "1a", "a b", "a/b", "../x", "-a"] {
            assert!(secret_key(bad).is_err(), "{bad:?}");
        }
        let mut causes = Causes::default();
        let big = BTreeMap::from([("a".to_owned(), "x".repeat(MAX_SECRET_BYTES))]);
        validate_data(&big, &FieldPath::root("spec").child("data"), &mut causes);
        let text = format!("{causes:?}");
        assert!(text.contains("spec.data"), "{text}");
        assert!(!text.contains("xxxx"), "no value in a message: {text}");
    }
}
