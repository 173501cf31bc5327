//! Passwords: argon2id hashes (PHC strings) kept per user under [`PASSWORDS`], never in the
//! User object. Hashing runs on the blocking pool: argon2 is slow on purpose.

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use super::records::{self, PASSWORDS};
use crate::store::{Store, StoreError};

/// The shortest password accepted.
pub const MIN_LEN: usize = 10;
/// The longest password accepted (argon2 hashes any length; this bounds the work).
pub const MAX_LEN: usize = 1024;

/// Why a password could not be set or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password breaks a rule.
    #[error("{0}")]
    Weak(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hasher (should not happen).
    #[error("hashing: {0}")]
    Hash(String),
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    hash: String,
}

/// Checks the rules a new password must meet.
///
/// # Errors
/// [`PasswordError::Weak`] naming the rule.
pub fn check_rules(user: &str, password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_LEN {
        return Err(PasswordError::Weak(format!(
            "a password has at least {MIN_LEN} characters"
        )));
    }
    if password.len() > MAX_LEN {
        return Err(PasswordError::Weak(format!(
            "a password has at most {MAX_LEN} bytes"
        )));
    }
    if password.eq_ignore_ascii_case(user) {
        return Err(PasswordError::Weak(
            "a password is not the user name".into(),
        ));
    }
    Ok(())
}

/// The argon2id PHC string of `password`.
///
/// # Errors
/// [`PasswordError::Hash`].
pub async fn hash(password: &str) -> Result<String, PasswordError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// Whether `password` matches the PHC string `phc`.
pub async fn matches(phc: String, password: &str) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A fixed PHC string to verify against when the user has no password, so a login for an
/// unknown user costs as much as one for a known user (no user enumeration by timing).
static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets `user`'s password (after [`check_rules`]).
///
/// # Errors
/// [`PasswordError`].
pub async fn set(store: &Arc<dyn Store>, user: &str, password: &str) -> Result<(), PasswordError> {
    check_rules(user, password)?;
    let hash = hash(password).await?;
    records::put(store, &format!("{PASSWORDS}{user}"), &Record { hash }).await?;
    Ok(())
}

/// Whether `password` is `user`'s password (false when the user has none).
///
/// # Errors
/// The store's.
pub async fn verify(
    store: &Arc<dyn Store>,
    user: &str,
    password: &str,
) -> Result<bool, StoreError> {
    if password.len() > MAX_LEN {
        return Ok(false);
    }
    match records::read::<Record>(store, &format!("{PASSWORDS}{user}")).await? {
        Some((r, _)) => Ok(matches(r.hash, password).await),
        None => {
            let dummy = match DUMMY.get() {
                Some(d) => d.clone(),
                None => {
                    let d = hash("not a real password at all").await.unwrap_or_default();
                    DUMMY.get_or_init(|| d).clone()
                }
            };
            let _ = matches(dummy, password).await;
            Ok(false)
        }
    }
}

/// Forgets `user`'s password (the user is deleted).
///
/// # Errors
/// The store's.
pub async fn forget(store: &Arc<dyn Store>, user: &str) -> Result<(), StoreError> {
    records::remove(store, &format!("{PASSWORDS}{user}")).await?;
    records::remove(store, &format!("{}{user}", records::TOTP)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let h = hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(matches(h.clone(), "correct horse battery").await);
        assert!(!matches(h, "correct horse batterz").await);
        assert!(!matches("garbage".into(), "x").await);
    }

    #[test]
    fn weak_passwords_are_refused_with_the_rule() {
        assert!(check_rules("alice", "short").is_err());
        assert!(check_rules("alicealice", "AliceAlice").is_err());
        assert!(check_rules("alice", &"x".repeat(MAX_LEN + 1)).is_err());
        assert!(check_rules("alice", "a good long passphrase").is_ok());
    }
}
