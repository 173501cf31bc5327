//! Bearer tokens: random 256-bit secrets handed to clients once, kept in the store only as
//! SHA-256 hashes under `/_catalyst/tokens/`, so every API server of a cluster accepts them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::store::{ListOptions, Store, StoreError};

/// Where token hashes live in the store (outside every kind's prefix, so not in the API).
pub const TOKEN_PREFIX: &str = "/_catalyst/tokens/";

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// `admin`, or `join` for the node join token.
    pub role: String,
    /// A name for logs.
    pub name: String,
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
