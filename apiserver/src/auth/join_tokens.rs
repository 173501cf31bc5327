//! Join tokens as records in the token store: made with an expiry and a description, listed
//! by id (the first 12 hex digits of the token's hash) and revoked by deleting the record
//! (`catalyst token create|list|revoke`, straight on the store). Nodes that joined keep their
//! own node tokens when the join token that admitted them goes, as in k3s.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::tokens::{hash, new_token, token_id, Authenticator, Identity, TOKEN_PREFIX};
use crate::store::{ListOptions, Store, StoreError};

/// Why a join-token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinTokenError {
    /// The store's.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No join token has this id.
    #[error("no join token has the id {0:?} (see `catalyst token list`)")]
    NotFound(String),
    /// The id is too short to name one token.
    #[error("the id {0:?} is too short: give at least 6 hex digits")]
    IdTooShort(String),
}

/// A join token as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The first 12 hex digits of its hash.
    pub id: String,
    /// The full hash.
    pub hash: String,
    /// What it is for.
    pub description: Option<String>,
    /// When it stops working; `None`: never.
    pub expires: Option<DateTime<Utc>>,
}

/// Makes a join token; returns its id and its secret (shown once: only its hash is kept).
///
/// # Errors
/// The store's.
pub async fn create(
    store: &Arc<dyn Store>,
    expires: Option<DateTime<Utc>>,
    description: Option<String>,
) -> Result<(String, String), JoinTokenError> {
    let identity = Identity {
        expires,
        description,
        ..Identity::new("join", "nodes")
    };
    let secret = new_token();
    Authenticator::issue_secret(store, &secret, &identity).await?;
    Ok((token_id(&hash(&secret)).to_owned(), secret))
}

/// Every join token, by id.
///
/// # Errors
/// The store's.
pub async fn list(store: &Arc<dyn Store>) -> Result<Vec<JoinToken>, JoinTokenError> {
    let page = store.list(TOKEN_PREFIX, &ListOptions::default()).await?;
    let mut out: Vec<JoinToken> = page
        .items
        .iter()
        .filter_map(|kv| {
            let id: Identity = serde_json::from_slice(&kv.value).ok()?;
            let h = kv.key.strip_prefix(TOKEN_PREFIX)?.to_owned();
            (id.role == "join").then(|| JoinToken {
                id: token_id(&h).to_owned(),
                hash: h,
                description: id.description,
                expires: id.expires,
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Deletes the join token whose id (or hash) starts with `id`; returns its id.
///
/// # Errors
/// [`JoinTokenError::NotFound`] (also when `id` names several), [`JoinTokenError::IdTooShort`],
/// the store's.
pub async fn revoke(store: &Arc<dyn Store>, id: &str) -> Result<String, JoinTokenError> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < 6 {
        return Err(JoinTokenError::IdTooShort(id));
    }
    let matching: Vec<JoinToken> = list(store)
        .await?
        .into_iter()
        .filter(|t| t.hash.starts_with(&id))
        .collect();
    let [token] = matching.as_slice() else {
        return Err(JoinTokenError::NotFound(id));
    };
    match store
        .delete(&format!("{TOKEN_PREFIX}{}", token.hash), None)
        .await
    {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(token.id.clone()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn join_tokens_are_made_listed_and_revoked_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
            .await
            .unwrap();
        let soon = Utc::now() + chrono::Duration::hours(1);
        let (a, secret) = create(&store, Some(soon), Some("rack 4".into()))
            .await
            .unwrap();
        let (b, _) = create(&store, None, None).await.unwrap();
        Authenticator::issue(&store, &Identity::new("node", "n1"))
            .await
            .unwrap();
        let all = list(&store).await.unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        let mine = all.iter().find(|t| t.id == a).unwrap();
        assert_eq!(mine.description.as_deref(), Some("rack 4"));
        assert_eq!(mine.expires, Some(soon));
        let auth = Authenticator::load(store.clone()).await.unwrap();
        assert!(auth.verify_fresh(&secret).await.unwrap().is_some());
        assert!(matches!(
            revoke(&store, "abc").await,
            Err(JoinTokenError::IdTooShort(_))
        ));
        assert!(matches!(
            revoke(&store, "zzzzzzzzzzzz").await,
            Err(JoinTokenError::NotFound(_))
        ));
        assert_eq!(revoke(&store, &a).await.unwrap(), a);
        assert_eq!(auth.verify_fresh(&secret).await.unwrap(), None);
        assert_eq!(
            list(&store)
                .await
                .unwrap()
                .iter()
                .map(|t| &t.id)
                .collect::<Vec<_>>(),
            [&b]
        );
    }
}
