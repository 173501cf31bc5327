//! Secret values: taken out of every write of a `Secret` and kept as a record under
//! [`SECRETS`]`<uid>`, outside every kind's prefix, so no read of the API (GET, LIST, WATCH,
//! a write's answer, the audit) can carry one. The stored object keeps only `spec.keys`.
//!
//! - create: the values are checked with the object (field paths `spec.data[KEY]`), the
//!   record is written first (under the new uid) and removed again if the object is not;
//! - update (replace, merge patch, apply): a write without `spec.data` keeps the values there
//!   are; a write with it replaces all of them. The write is a no-op when the object is the
//!   same and the values equal the record's. The record is written before the object and put
//!   back as it was when the object's write fails;
//! - delete: the record goes when the object does (also when its last finalizer goes);
//! - dry runs write no record.

use std::collections::BTreeMap;

use catalyst_schemas::secret::validate_data;
use catalyst_schemas::validation::{Causes, FieldPath};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::object::meta_str;
use super::types::{Registry, Scope};
use crate::auth::records;
use crate::error::{ApiError, ApiResult};

/// Where the values of Secrets are kept, by the Secret's uid.
pub const SECRETS: &str = "/_catalyst/secrets/";

/// The values of one Secret.
pub type SecretData = BTreeMap<String, String>;

/// The stored record.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
struct Record {
    data: SecretData,
}

/// Whether `plural` is the kind whose values are kept apart.
pub(in crate::registry) fn is_secret(plural: &str) -> bool {
    plural == "secrets"
}

fn record_key(uid: &str) -> String {
    format!("{SECRETS}{uid}")
}

fn invalid(name: &str, causes: Causes) -> ApiError {
    match causes.into_result() {
        Ok(()) => ApiError::Internal("secret data refused without a cause".into()),
        Err(source) => ApiError::Invalid {
            kind: "Secret".into(),
            name: name.to_owned(),
            source,
        },
    }
}

/// Takes `spec.data` out of a submitted Secret (checked: string values, keys and size within
/// the limits) and sets `spec.keys`: the data's keys, or `kept` when the write has no data.
pub(in crate::registry) fn split(
    obj: &mut Value,
    kept: &[String],
) -> ApiResult<Option<SecretData>> {
    let name = meta_str(obj, "name").unwrap_or_default().to_owned();
    let path = FieldPath::root("spec").child("data");
    let raw = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .and_then(|s| s.remove("data"));
    let data = match raw {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            let mut causes = Causes::default();
            let mut data = SecretData::new();
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        data.insert(k, s);
                    }
                    _ => causes.push(&path.key(&k), "must be a string"),
                }
            }
            validate_data(&data, &path, &mut causes);
            causes.into_result().map_err(|source| ApiError::Invalid {
                kind: "Secret".into(),
                name: name.clone(),
                source,
            })?;
            Some(data)
        }
        Some(_) => {
            let mut causes = Causes::default();
            causes.push(&path, "must be a map of keys to string values");
            return Err(invalid(&name, causes));
        }
    };
    let keys: Vec<Value> = match &data {
        Some(d) => d.keys().map(|k| Value::from(k.as_str())).collect(),
        None => kept.iter().map(|k| Value::from(k.as_str())).collect(),
    };
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = serde_json::json!({});
    }
    let spec = obj["spec"].as_object_mut().expect("spec is an object");
    if keys.is_empty() {
        spec.remove("keys");
    } else {
        spec.insert("keys".into(), keys.into());
    }
    Ok(data)
}

/// The keys a stored Secret says it holds.
pub(in crate::registry) fn keys_of(obj: &Value) -> Vec<String> {
    obj.pointer("/spec/keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Registry {
    /// The values of the Secret with uid `uid` (None: no record).
    pub(in crate::registry) async fn secret_record(
        &self,
        uid: &str,
    ) -> ApiResult<Option<SecretData>> {
        let found: Option<(Record, _)> = records::read(&self.store, &record_key(uid))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(found.map(|(r, _)| r.data))
    }

    /// Writes the values of Secret `uid` (an empty map removes the record).
    pub(in crate::registry) async fn put_secret_record(
        &self,
        uid: &str,
        data: &SecretData,
    ) -> ApiResult<()> {
        let key = record_key(uid);
        let guard = self.guard(&key).map_err(ApiError::from)?;
        let done = if data.is_empty() {
            records::remove_guarded(&self.store, &key, guard.as_ref())
                .await
                .map(|_| ())
        } else {
            let record = Record { data: data.clone() };
            records::put_guarded(&self.store, &key, &record, guard.as_ref())
                .await
                .map(|_| ())
        };
        done.map_err(|e| match self.count(e) {
            e if e.is_fenced() => ApiError::from(e),
            e => ApiError::Internal(e.to_string()),
        })
    }

    /// Removes the values of Secret `uid` (after the object went).
    pub(in crate::registry) async fn remove_secret_record(&self, uid: &str) {
        let key = record_key(uid);
        let removed = match self.guard(&key) {
            Ok(guard) => records::remove_guarded(&self.store, &key, guard.as_ref())
                .await
                .map_err(|e| self.count(e)),
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::warn!(uid, error = %e, "could not remove a deleted secret's values");
        }
    }

    /// The values of Secret `name` in `namespace`, read straight from the store: for the
    /// control plane only (a Backup's S3 credentials), never for an API answer. NotFound when
    /// there is no such Secret.
    pub async fn secret_values(&self, namespace: &str, name: &str) -> ApiResult<SecretData> {
        let scope = Scope {
            kind: catalyst_schemas::lookup_kind("secrets").expect("a built-in kind"),
            namespace: Some(namespace),
        };
        let obj = self.get(scope, name).await?;
        let uid = meta_str(&obj, "uid").unwrap_or_default();
        Ok(self.secret_record(uid).await?.unwrap_or_default())
    }
}

/// Why a Backup's S3 target could not be made. The messages name fields and Secrets, never a
/// value.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The Secret `spec.storage.s3.credentials` names is missing or lacks a key.
    #[error("spec.storage.s3.credentials: {0}")]
    Credentials(String),
    /// The store failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The object key of a Backup in its bucket: `status.objectKey` once recorded, else
/// `<prefix>/<namespace>/<name>-<uid>.tar.zst`.
pub fn backup_object_key(backup: &Value) -> String {
    if let Some(k) = backup.pointer("/status/objectKey").and_then(Value::as_str) {
        return k.to_owned();
    }
    let prefix = backup
        .pointer("/spec/storage/s3/prefix")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_matches('/');
    let ns = meta_str(backup, "namespace").unwrap_or("default");
    let name = meta_str(backup, "name").unwrap_or_default();
    let uid = meta_str(backup, "uid").unwrap_or_default();
    let file = format!("{ns}/{name}-{uid}.tar.zst");
    if prefix.is_empty() {
        file
    } else {
        format!("{prefix}/{file}")
    }
}

impl Registry {
    /// Where a Backup with `spec.storage.s3` is kept, with the credentials of its Secret (read
    /// from the store); None for a Backup kept on its node.
    pub async fn backup_s3_target(
        &self,
        backup: &Value,
    ) -> Result<Option<catalyst_schemas::tunnel::S3Target>, TargetError> {
        let Some(s3) = backup.pointer("/spec/storage/s3").filter(|v| v.is_object()) else {
            return Ok(None);
        };
        let field = |k: &str| {
            s3.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let ns = meta_str(backup, "namespace").unwrap_or("default");
        let secret = field("credentials");
        if secret.is_empty() {
            return Err(TargetError::Credentials("names no Secret".into()));
        }
        let data = match self.secret_values(ns, &secret).await {
            Ok(d) => d,
            Err(ApiError::NotFound { .. }) => {
                return Err(TargetError::Credentials(format!(
                    "secret {secret:?} not found in namespace {ns:?}"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let need = |k: &str| {
            data.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| {
                    TargetError::Credentials(format!("secret {secret:?} has no key {k:?}"))
                })
        };
        Ok(Some(catalyst_schemas::tunnel::S3Target {
            endpoint: field("endpoint"),
            bucket: field("bucket"),
            region: field("region"),
            key: backup_object_key(backup),
            path_style: s3.get("pathStyle").and_then(Value::as_bool) == Some(true),
            access_key_id: need("accessKeyId")?,
            secret_access_key: need("secretAccessKey")?,
            session_token: data.get("sessionToken").filter(|v| !v.is_empty()).cloned(),
        }))
    }
}
