//! Bearer tokens: random 256-bit secrets handed to clients once, kept in the store only as
//! SHA-256 hashes under `/_catalyst/tokens/`, so every API server of a cluster accepts them.
//! A token may expire (`expires`); join tokens are listed and revoked by their [`token_id`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
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
    /// After this time the token is refused (join tokens made by `catalyst token create
    /// --ttl`); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    /// What the token is for (join tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Identity {
    /// An identity without a uid, expiry or description.
    pub fn new(role: &str, name: &str) -> Self {
        Self {
            role: role.to_owned(),
            name: name.to_owned(),
            uid: None,
            expires: None,
            description: None,
        }
    }

    /// Whether the token has expired at `now`.
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|t| t <= now)
    }
}

/// The short id of a token (listing, revoking): the first 12 hex digits of its hash.
pub fn token_id(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
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
    /// Expired tokens are refused.
    pub async fn verify(&self, token: &str) -> Option<Identity> {
        let now = Utc::now();
        self.verify_any(token)
            .await
            .filter(|id| !id.expired_at(now))
    }

    /// The identity of a token read from the store itself, not the memory of it: a token made
    /// or deleted a moment ago by another process (`catalyst token create|revoke`) counts at
    /// once. Expired tokens are refused. Costs a store read: for rare requests (joins), which
    /// are throttled on failure.
    ///
    /// # Errors
    /// The store's.
    pub async fn verify_fresh(&self, token: &str) -> Result<Option<Identity>, StoreError> {
        let Some(store) = &self.store else {
            return Ok(self.verify(token).await);
        };
        let h = hash(token);
        let found = match store.get(&format!("{TOKEN_PREFIX}{h}")).await? {
            Some(kv) => serde_json::from_slice::<Identity>(&kv.value).ok(),
            None => None,
        };
        let mut known = self.known.write().expect("token lock");
        match &found {
            Some(id) => known.insert(h, id.clone()),
            None => known.remove(&h),
        };
        Ok(found.filter(|id| !id.expired_at(Utc::now())))
    }

    async fn verify_any(&self, token: &str) -> Option<Identity> {
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

    /// Whether a stored token's identity satisfies `pick` (reads the store, so tokens issued
    /// by other API servers count).
    pub async fn any_stored(&self, pick: impl Fn(&Identity) -> bool) -> Result<bool, StoreError> {
        let Some(store) = &self.store else {
            return Ok(self.known.read().expect("token lock").values().any(pick));
        };
        let page = store.list(TOKEN_PREFIX, &ListOptions::default()).await?;
        Ok(page
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Identity>(&kv.value).ok())
            .any(|id| pick(&id)))
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

    #[tokio::test]
    async fn expired_tokens_are_refused() {
        let mut past = Identity::new("join", "nodes");
        past.expires = Some(Utc::now() - chrono::Duration::seconds(1));
        let mut future = Identity::new("join", "nodes");
        future.expires = Some(Utc::now() + chrono::Duration::hours(1));
        let auth = Authenticator::fixed(&[
            ("old", past.clone()),
            ("new", future.clone()),
            ("forever", Identity::new("join", "nodes")),
        ]);
        assert_eq!(auth.verify("old").await, None);
        assert_eq!(auth.verify("new").await, Some(future));
        assert!(auth.verify("forever").await.is_some());
        assert_eq!(auth.verify_fresh("old").await.unwrap(), None);
        assert!(past.expired_at(Utc::now()));
    }

    #[test]
    fn identities_without_expiry_keep_their_stored_form() {
        let id = Identity::new("join", "nodes");
        let text = serde_json::to_string(&id).unwrap();
        assert_eq!(text, r#"{"role":"join","name":"nodes"}"#);
        let back: Identity = serde_json::from_str(&text).unwrap();
        assert_eq!(back, id);
        assert_eq!(token_id("0123456789abcdef"), "0123456789ab");
    }

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
