//! Bearer tokens: random 256-bit secrets handed to clients once, kept in the store only as
//! SHA-256 hashes under `/_catalyst/tokens/`, so every API server of a cluster accepts them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use crate::store::{ListOptions, Store, StoreError};

/// Where token hashes live in the store (outside every kind's prefix, so not in the API).
pub const TOKEN_PREFIX: &str = "/_catalyst/tokens/";

/// Who a token belongs to, as stored beside its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// `admin` (the bootstrap administrator), `join` (the node join token) or `node`.
    pub role: String,
    /// The administrator's or the node's name.
    pub name: String,
    /// For a node: the uid of the Node it joined as. The token dies with that Node object (a
    /// Node re-created under the same name does not revive it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl Identity {
    /// An identity without a uid.
    pub fn new(role: &str, name: &str) -> Self {
        Self {
            role: role.to_owned(),
            name: name.to_owned(),
            uid: None,
        }
    }
}

/// A new random token (64 hex digits).
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The SHA-256 of a token, hex.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks bearer tokens against the hashes in the store.
#[derive(Debug)]
pub struct Authenticator {
    store: Option<Arc<dyn Store>>,
    known: RwLock<HashMap<String, Identity>>,
    last_reload: std::sync::Mutex<Instant>,
}

impl Authenticator {
    /// Loads the token hashes from the store.
    pub async fn load(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let auth = Self {
            store: Some(store),
            known: RwLock::new(HashMap::new()),
            last_reload: std::sync::Mutex::new(Instant::now() - Duration::from_secs(60)),
        };
        auth.reload().await?;
        Ok(auth)
    }

    /// An authenticator that accepts exactly `tokens` (tests).
    pub fn fixed(tokens: &[(&str, Identity)]) -> Self {
        Self {
            store: None,
            known: RwLock::new(tokens.iter().map(|(t, id)| (hash(t), id.clone())).collect()),
            last_reload: std::sync::Mutex::new(Instant::now()),
        }
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let page = store.list(TOKEN_PREFIX, &ListOptions::default()).await?;
        let mut known = HashMap::new();
        for kv in page.items {
            let h = kv.key.trim_start_matches(TOKEN_PREFIX).to_owned();
            if let Ok(id) = serde_json::from_slice::<Identity>(&kv.value) {
                known.insert(h, id);
            }
        }
        *self.known.write().expect("token lock") = known;
        Ok(())
    }

    /// The identity of a token, if it is valid. An unknown token triggers a reload from the
    /// store (at most once a second), so tokens made by another API server work here too.
    pub async fn verify(&self, token: &str) -> Option<Identity> {
        let h = hash(token);
        if let Some(id) = self.known.read().expect("token lock").get(&h) {
            return Some(id.clone());
        }
        let due = {
            let mut last = self.last_reload.lock().expect("reload lock");
            let due = last.elapsed() >= Duration::from_secs(1);
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "cannot reload tokens");
            }
            return self.known.read().expect("token lock").get(&h).cloned();
        }
        None
    }

    /// Makes a just-issued token known here at once (others learn it on their next reload).
    pub fn remember(&self, token: &str, identity: Identity) {
        self.known
            .write()
            .expect("token lock")
            .insert(hash(token), identity);
    }

    /// Deletes every token whose identity `pick` chooses, from the store and from memory;
    /// returns how many.
    pub async fn revoke(&self, pick: impl Fn(&Identity) -> bool) -> Result<usize, StoreError> {
        let mut gone = 0;
        if let Some(store) = &self.store {
            let page = store.list(TOKEN_PREFIX, &ListOptions::default()).await?;
            for kv in page.items {
                let Ok(id) = serde_json::from_slice::<Identity>(&kv.value) else {
                    continue;
                };
                if pick(&id) {
                    match store.delete(&kv.key, None).await {
                        Ok(_) | Err(StoreError::NotFound { .. }) => gone += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        self.known
            .write()
            .expect("token lock")
            .retain(|_, id| !pick(id));
        Ok(gone)
    }

    /// Deletes the token with SHA-256 `hash`, from the store and from memory.
    pub async fn revoke_hash(&self, hash: &str) -> Result<(), StoreError> {
        if let Some(store) = &self.store {
            match store.delete(&format!("{TOKEN_PREFIX}{hash}"), None).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.known.write().expect("token lock").remove(hash);
        Ok(())
    }

    /// Stores the hash of `token` (made by the caller) for `identity`; returns it.
    pub async fn issue_secret(
        store: &Arc<dyn Store>,
        token: &str,
        identity: &Identity,
    ) -> Result<String, StoreError> {
        let value = serde_json::to_vec(identity).expect("identity encodes");
        store
            .create(&format!("{TOKEN_PREFIX}{}", hash(token)), &value)
            .await?;
        Ok(token.to_owned())
    }

    /// Stores a new token's hash; returns the token.
    pub async fn issue(store: &Arc<dyn Store>, identity: &Identity) -> Result<String, StoreError> {
        let token = new_token();
        let value = serde_json::to_vec(identity).expect("identity encodes");
        store
            .create(&format!("{TOKEN_PREFIX}{}", hash(&token)), &value)
            .await?;
        Ok(token)
    }
}

/// The bearer token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The token of a request: the bearer header, else an `access_token` query parameter
/// (browsers cannot set headers on a WebSocket).
pub fn request_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    bearer_token(headers).map(str::to_owned).or_else(|| {
        query.and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("access_token="))
                .map(str::to_owned)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_bearer_header_or_the_access_token_parameter() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            request_token(&headers, Some("watch=true&access_token=q")),
            Some("q".into())
        );
        assert_eq!(request_token(&headers, Some("watch=true")), None);
        headers.insert(header::AUTHORIZATION, "Bearer  h ".parse().unwrap());
        assert_eq!(
            request_token(&headers, Some("access_token=q")),
            Some("h".into())
        );
        headers.insert(header::AUTHORIZATION, "Basic x".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
