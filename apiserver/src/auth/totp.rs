//! Second factor: TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew), as
//! every authenticator app speaks it. A user enrols (a secret is made and shown once), confirms
//! with a first code, and from then on logs in with a code.

use std::sync::Arc;

use totp_rs::{Algorithm, Secret, TOTP};

use super::records::{self, TOTP as PREFIX};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    /// Base32.
    secret: String,
    confirmed: bool,
}

/// A user's TOTP state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// None enrolled.
    Off,
    /// Enrolled, not confirmed yet: logins do not ask for a code.
    Pending,
    /// Logins need a code.
    On,
}

fn totp(secret_b32: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_owned()).to_bytes().ok()?;
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes).ok()
}

/// Whether `code` is valid now for the base32 secret.
pub fn code_valid(secret_b32: &str, code: &str) -> bool {
    let code = code.trim();
    code.len() == 6
        && code.bytes().all(|b| b.is_ascii_digit())
        && totp(secret_b32).is_some_and(|t| t.check_current(code).unwrap_or(false))
}

/// The code of the base32 secret at `unix` seconds (tests and `catalystctl`'s own checks).
pub fn code_at(secret_b32: &str, unix: u64) -> Option<String> {
    totp(secret_b32).map(|t| t.generate(unix))
}

/// `user`'s TOTP state.
///
/// # Errors
/// The store's.
pub async fn state(store: &Arc<dyn Store>, user: &str) -> Result<State, StoreError> {
    Ok(
        match records::read::<Record>(store, &format!("{PREFIX}{user}")).await? {
            None => State::Off,
            Some((r, _)) if r.confirmed => State::On,
            Some(_) => State::Pending,
        },
    )
}

/// Starts an enrolment: a new secret (base32), replacing an unconfirmed one. Refused while a
/// confirmed one exists (disable it first).
///
/// # Errors
/// The store's; `Ok(None)` when TOTP is already on.
pub async fn enroll(store: &Arc<dyn Store>, user: &str) -> Result<Option<String>, StoreError> {
    if state(store, user).await? == State::On {
        return Ok(None);
    }
    let mut raw = Vec::with_capacity(20);
    while raw.len() < 20 {
        raw.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    raw.truncate(20);
    let Secret::Encoded(secret) = Secret::Raw(raw).to_encoded() else {
        unreachable!("to_encoded encodes")
    };
    records::put(
        store,
        &format!("{PREFIX}{user}"),
        &Record {
            secret: secret.clone(),
            confirmed: false,
        },
    )
    .await?;
    Ok(Some(secret))
}

/// Checks `code` against `user`'s secret; when it is valid and the enrolment was pending,
/// confirms it. True when the code was valid.
///
/// # Errors
/// The store's.
pub async fn check(store: &Arc<dyn Store>, user: &str, code: &str) -> Result<bool, StoreError> {
    let key = format!("{PREFIX}{user}");
    let Some((mut r, _)) = records::read::<Record>(store, &key).await? else {
        return Ok(false);
    };
    if !code_valid(&r.secret, code) {
        return Ok(false);
    }
    if !r.confirmed {
        r.confirmed = true;
        records::put(store, &key, &r).await?;
    }
    Ok(true)
}

/// Turns TOTP off for `user`.
///
/// # Errors
/// The store's.
pub async fn disable(store: &Arc<dyn Store>, user: &str) -> Result<(), StoreError> {
    records::remove(store, &format!("{PREFIX}{user}")).await?;
    Ok(())
}

/// The `otpauth://` URL authenticator apps read (as a QR code or pasted).
pub fn otpauth_url(user: &str, secret_b32: &str) -> String {
    format!("otpauth://totp/Catalyst:{user}?secret={secret_b32}&issuer=Catalyst&algorithm=SHA1&digits=6&period=30")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vectors_and_the_current_code_check() {
        // RFC 6238 appendix B, SHA-1 key "12345678901234567890" (8-digit codes there; the
        // last 6 digits are ours)
        let secret = match Secret::Raw(b"12345678901234567890".to_vec()).to_encoded() {
            Secret::Encoded(s) => s,
            Secret::Raw(_) => unreachable!(),
        };
        assert_eq!(code_at(&secret, 59).unwrap(), "287082");
        assert_eq!(code_at(&secret, 1_111_111_109).unwrap(), "081804");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(code_valid(&secret, &code_at(&secret, now).unwrap()));
        assert!(!code_valid(&secret, &code_at(&secret, now - 300).unwrap()));
        assert!(!code_valid(&secret, "12345"));
        assert!(!code_valid(&secret, "abcdef"));
    }
}
