//! Secrets that are not API objects (password hashes, TOTP secrets, refresh tokens, the JWT
//! signing keys): JSON records in the store under `/_catalyst/…`, outside every kind's prefix,
//! so no API path reads them and every API server of a cluster shares them.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::{Guard, Revision, Store, StoreError, Write};

/// Password hashes by user name.
pub const PASSWORDS: &str = "/_catalyst/passwords/";
/// TOTP secrets by user name.
pub const TOTP: &str = "/_catalyst/totp/";
/// Refresh tokens by SHA-256.
pub const REFRESH: &str = "/_catalyst/refresh/";
/// The JWT signing keys.
pub const JWT_KEYS: &str = "/_catalyst/keys/jwt";

/// Reads the record at `key`, with its revision.
pub async fn read<T: DeserializeOwned>(
    store: &Arc<dyn Store>,
    key: &str,
) -> Result<Option<(T, Revision)>, StoreError> {
    let Some(kv) = store.get(key).await? else {
        return Ok(None);
    };
    match serde_json::from_slice(&kv.value) {
        Ok(v) => Ok(Some((v, kv.mod_revision))),
        Err(e) => {
            tracing::error!(key, error = %e, "unreadable record in the store");
            Ok(None)
        }
    }
}

/// Writes `value` at `key`: creates it, or replaces it whatever its revision.
pub async fn put<T: Serialize>(
    store: &Arc<dyn Store>,
    key: &str,
    value: &T,
) -> Result<Revision, StoreError> {
    put_guarded(store, key, value, None).await
}

/// [`put`], each write under `guard` (when given).
pub async fn put_guarded<T: Serialize>(
    store: &Arc<dyn Store>,
    key: &str,
    value: &T,
    guard: Option<&Guard>,
) -> Result<Revision, StoreError> {
    let value = serde_json::to_vec(value).expect("records encode");
    loop {
        match store.get(key).await? {
            None => match store
                .write(Write::Create { key, value: &value }, guard)
                .await
            {
                Err(StoreError::AlreadyExists { .. }) => continue,
                other => return other,
            },
            Some(kv) => match store
                .write(
                    Write::Update {
                        key,
                        value: &value,
                        expected: kv.mod_revision,
                    },
                    guard,
                )
                .await
            {
                Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => continue,
                other => return other,
            },
        }
    }
}

/// Deletes the record at `key`; true when there was one.
pub async fn remove(store: &Arc<dyn Store>, key: &str) -> Result<bool, StoreError> {
    remove_guarded(store, key, None).await
}

/// [`remove`] under `guard` (when given).
pub async fn remove_guarded(
    store: &Arc<dyn Store>,
    key: &str,
    guard: Option<&Guard>,
) -> Result<bool, StoreError> {
    match store
        .write(
            Write::Delete {
                key,
                expected: None,
            },
            guard,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
