//! Login sessions: short-lived access JWTs (HS256) and long-lived refresh tokens. The signing
//! keys are in the store (so every API server of a cluster verifies every token) and rotate:
//! the newest key signs, the last [`KEPT_KEYS`] verify, so a rotation cuts no session short.
//! Refresh tokens are random secrets stored as SHA-256 hashes, traded once (each refresh
//! answers a new one and retires the old).

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::records::{self, JWT_KEYS, REFRESH};
use super::tokens::{hash, new_token};
use crate::store::{Store, StoreError};

/// How long an access token lives.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token lives.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Signing keys kept for verification after a rotation.
pub const KEPT_KEYS: usize = 3;
/// Every access token says it is one of ours.
pub const ISSUER: &str = "catalyst";

/// Why a session could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing (should not happen).
    #[error("signing: {0}")]
    Sign(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SigningKey {
    kid: String,
    secret: String,
    created: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyRing {
    keys: Vec<SigningKey>,
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// `catalyst`.
    pub iss: String,
    /// A unique id.
    pub jti: String,
}

/// A refresh token's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Refresh {
    user: String,
    expires: DateTime<Utc>,
}

/// Issues and verifies sessions.
#[derive(Debug)]
pub struct Sessions {
    store: Arc<dyn Store>,
    ring: RwLock<KeyRing>,
    last_reload: Mutex<Instant>,
    /// Tokens whose signature checked out, with their claims, until they expire: a session
    /// makes many requests, and the decode and HMAC of each would be most of what deciding
    /// it costs. Emptied whenever the key ring changes (a dropped key's tokens stop at once).
    /// The u64 counts key ring changes: a token checked against a ring replaced meanwhile
    /// is not remembered.
    verified: Mutex<(u64, std::collections::HashMap<String, Claims>)>,
}

/// Verified tokens remembered at most; past it the memory starts over.
const VERIFIED_KEPT: usize = 10_000;

/// A fresh session: what `POST /auth/v1/login` and `/auth/v1/refresh` answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// `Bearer`.
    pub token_type: &'static str,
    /// The access JWT.
    pub access_token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The refresh token.
    pub refresh_token: String,
    /// When that expires.
    pub refresh_expires_at: DateTime<Utc>,
}

fn new_key() -> SigningKey {
    let secret = format!("{}{}", new_token(), new_token());
    SigningKey {
        kid: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        secret: base64::engine::general_purpose::STANDARD.encode(secret),
        created: Utc::now(),
    }
}

fn secret_of(key: &SigningKey) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(&key.secret)
        .unwrap_or_default()
}

fn epoch(t: DateTime<Utc>) -> u64 {
    t.timestamp().max(0) as u64
}

impl Sessions {
    /// Loads the key ring, making the first key when there is none.
    ///
    /// # Errors
    /// The store's.
    pub async fn load(store: Arc<dyn Store>) -> Result<Self, SessionError> {
        let ring = match records::read::<KeyRing>(&store, JWT_KEYS).await? {
            Some((ring, _)) if !ring.keys.is_empty() => ring,
            _ => {
                let ring = KeyRing {
                    keys: vec![new_key()],
                };
                match store
                    .create(JWT_KEYS, &serde_json::to_vec(&ring).expect("encodes"))
                    .await
                {
                    Ok(_) => ring,
                    // another API server made it first: use theirs
                    Err(StoreError::AlreadyExists { .. }) => {
                        records::read::<KeyRing>(&store, JWT_KEYS)
                            .await?
                            .map(|(r, _)| r)
                            .unwrap_or_default()
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        Ok(Self {
            store,
            ring: RwLock::new(ring),
            last_reload: Mutex::new(Instant::now()),
            verified: Mutex::default(),
        })
    }

    /// Adds a new signing key (it signs from now on) and drops the oldest past [`KEPT_KEYS`].
    ///
    /// # Errors
    /// The store's.
    pub async fn rotate(&self) -> Result<String, SessionError> {
        loop {
            let (mut ring, rev) = records::read::<KeyRing>(&self.store, JWT_KEYS)
                .await?
                .unwrap_or_default();
            let key = new_key();
            let kid = key.kid.clone();
            ring.keys.insert(0, key);
            ring.keys.truncate(KEPT_KEYS);
            let bytes = serde_json::to_vec(&ring).expect("encodes");
            match self.store.update(JWT_KEYS, &bytes, rev).await {
                Ok(_) => {
                    self.set_ring(ring);
                    return Ok(kid);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Replaces the key ring, forgetting every verified token.
    fn set_ring(&self, ring: KeyRing) {
        let mut current = self.ring.write().expect("ring lock");
        let mut verified = self.verified.lock().expect("verified lock");
        verified.0 += 1;
        verified.1.clear();
        *current = ring;
    }

    async fn reload(&self) {
        let due = {
            let mut last = self.last_reload.lock().expect("reload lock");
            let due = last.elapsed() >= Duration::from_secs(1);
            if due {
                *last = Instant::now();
            }
            due
        };
        if !due {
            return;
        }
        match records::read::<KeyRing>(&self.store, JWT_KEYS).await {
            Ok(Some((ring, _))) => self.set_ring(ring),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reload the signing keys"),
        }
    }

    /// A signed access token for `user`.
    ///
    /// # Errors
    /// [`SessionError::Sign`].
    pub fn access_token(&self, user: &str) -> Result<(String, DateTime<Utc>), SessionError> {
        let now = Utc::now();
        let expires = now + chrono::Duration::from_std(ACCESS_TTL).expect("ttl fits");
        let key = self.ring.read().expect("ring lock").keys[0].clone();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let claims = Claims {
            sub: user.to_owned(),
            exp: epoch(expires),
            iat: epoch(now),
            iss: ISSUER.into(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&secret_of(&key)),
        )
        .map_err(|e| SessionError::Sign(e.to_string()))?;
        Ok((token, expires))
    }

    /// The claims of a valid access token (signature, expiry, issuer), or `None`.
    pub async fn verify(&self, token: &str) -> Option<Claims> {
        let now = epoch(Utc::now());
        let ring = {
            let verified = self.verified.lock().expect("verified lock");
            if let Some(claims) = verified.1.get(token).filter(|c| c.exp > now) {
                return Some(claims.clone());
            }
            verified.0
        };
        let claims = self.decode(token).await?;
        let mut guard = self.verified.lock().expect("verified lock");
        if guard.0 != ring {
            return Some(claims);
        }
        let verified = &mut guard.1;
        if verified.len() >= VERIFIED_KEPT {
            verified.retain(|_, c| c.exp > now);
            if verified.len() >= VERIFIED_KEPT {
                verified.clear();
            }
        }
        verified.insert(token.to_owned(), claims.clone());
        Some(claims)
    }

    /// Checks a token's signature, expiry and issuer.
    async fn decode(&self, token: &str) -> Option<Claims> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        let find = |ring: &KeyRing| ring.keys.iter().find(|k| k.kid == kid).cloned();
        let known = find(&self.ring.read().expect("ring lock"));
        let key = match known {
            Some(k) => k,
            None => {
                self.reload().await;
                find(&self.ring.read().expect("ring lock"))?
            }
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&secret_of(&key)),
            &validation,
        )
        .ok()
        .map(|d| d.claims)
    }

    /// Whether a bearer token looks like a JWT (three base64url parts), not one of our opaque
    /// tokens.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3 && token.starts_with("eyJ")
    }

    /// A new session for `user`: an access token and a refresh token.
    ///
    /// # Errors
    /// The store's, signing.
    pub async fn open(&self, user: &str) -> Result<Session, SessionError> {
        let (access_token, expires_at) = self.access_token(user)?;
        let refresh_token = new_token();
        let refresh_expires_at =
            Utc::now() + chrono::Duration::from_std(REFRESH_TTL).expect("ttl fits");
        self.store
            .create(
                &format!("{REFRESH}{}", hash(&refresh_token)),
                &serde_json::to_vec(&Refresh {
                    user: user.to_owned(),
                    expires: refresh_expires_at,
                })
                .expect("encodes"),
            )
            .await?;
        Ok(Session {
            token_type: "Bearer",
            access_token,
            expires_at,
            refresh_token,
            refresh_expires_at,
        })
    }

    /// Trades a refresh token for a new session; `None` when it is unknown, used or expired.
    /// The caller checks the user still may log in.
    ///
    /// # Errors
    /// The store's, signing.
    pub async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<Option<(String, Session)>, SessionError> {
        let key = format!("{REFRESH}{}", hash(refresh_token));
        let Some((record, rev)) = records::read::<Refresh>(&self.store, &key).await? else {
            return Ok(None);
        };
        // one use: whoever deletes it first gets the new session
        match self.store.delete(&key, Some(rev)).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if record.expires < Utc::now() {
            return Ok(None);
        }
        let session = self.open(&record.user).await?;
        Ok(Some((record.user, session)))
    }

    /// Ends the session of a refresh token (logout); true when there was one.
    ///
    /// # Errors
    /// The store's.
    pub async fn close(&self, refresh_token: &str) -> Result<bool, SessionError> {
        Ok(records::remove(&self.store, &format!("{REFRESH}{}", hash(refresh_token))).await?)
    }

    /// Ends every session of `user` (deleted or disabled, or a password change).
    ///
    /// # Errors
    /// The store's.
    pub async fn close_all(&self, user: &str) -> Result<usize, SessionError> {
        let page = self
            .store
            .list(REFRESH, &crate::store::ListOptions::default())
            .await?;
        let mut n = 0;
        for kv in page.items {
            if serde_json::from_slice::<Refresh>(&kv.value).is_ok_and(|r| r.user == user)
                && records::remove(&self.store, &kv.key).await?
            {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sessions() -> (Sessions, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}", dir.path().join("s.db").display()))
            .await
            .unwrap();
        (Sessions::load(store).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn access_tokens_verify_until_their_keys_are_rotated_out() {
        let (s, _dir) = sessions().await;
        let (t, _) = s.access_token("alice").unwrap();
        assert!(Sessions::looks_like_jwt(&t));
        assert_eq!(s.verify(&t).await.unwrap().sub, "alice");
        // tampering breaks it
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"admin","exp":9999999999,"iat":0,"iss":"catalyst","jti":"x"}"#);
        parts[1] = &forged;
        assert!(s.verify(&parts.join(".")).await.is_none());
        // a rotation keeps old tokens valid for a while, then drops them
        for _ in 0..KEPT_KEYS - 1 {
            s.rotate().await.unwrap();
        }
        assert!(s.verify(&t).await.is_some());
        s.rotate().await.unwrap();
        assert!(s.verify(&t).await.is_none());
        let (t2, _) = s.access_token("bob").unwrap();
        assert_eq!(s.verify(&t2).await.unwrap().sub, "bob");
    }

    #[tokio::test]
    async fn refresh_tokens_are_traded_once_and_die_with_logout() {
        let (s, _dir) = sessions().await;
        let first = s.open("alice").await.unwrap();
        let (user, second) = s.refresh(&first.refresh_token).await.unwrap().unwrap();
        assert_eq!(user, "alice");
        assert!(
            s.refresh(&first.refresh_token).await.unwrap().is_none(),
            "used"
        );
        assert!(s.close(&second.refresh_token).await.unwrap());
        assert!(s.refresh(&second.refresh_token).await.unwrap().is_none());
        let third = s.open("alice").await.unwrap();
        s.open("bob").await.unwrap();
        assert_eq!(s.close_all("alice").await.unwrap(), 1);
        assert!(s.refresh(&third.refresh_token).await.unwrap().is_none());
    }
}
