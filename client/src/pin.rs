//! Join tokens and the CA they pin: `K10<sha256 of the CA certificate's DER, hex>::<secret>`
//! (k3s's format), or a bare secret that pins nothing.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A join token, split into its CA pin and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the CA certificate's DER (64 lowercase hex digits), when pinned.
    pub ca_sha256: Option<String>,
    /// The whole token, as sent to the server.
    pub token: String,
}

impl JoinToken {
    /// Parses a join token. A token that starts with `K10` and holds `::` must carry a
    /// 64-digit hex hash there.
    ///
    /// Fails with [`Error::Config`] for a malformed pin.
    pub fn parse(token: &str) -> Result<Self> {
        let token = token.trim();
        let Some((hash, secret)) = token.strip_prefix("K10").and_then(|t| t.split_once("::"))
        else {
            return Ok(Self {
                ca_sha256: None,
                token: token.to_owned(),
            });
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Config(format!(
                "the join token's CA hash {hash:?} is not a SHA-256 (64 hex digits)"
            )));
        }
        if secret.is_empty() {
            return Err(Error::Config(
                "the join token has no secret after `::`".into(),
            ));
        }
        Ok(Self {
            ca_sha256: Some(hash.to_ascii_lowercase()),
            token: token.to_owned(),
        })
    }

    /// Checks that `ca_pem` is the CA this token pins (any CA passes a token without a pin).
    ///
    /// Fails with [`Error::CaMismatch`], or [`Error::Tls`] when `ca_pem` holds no certificate.
    pub fn check(&self, ca_pem: &[u8]) -> Result<()> {
        let Some(expected) = &self.ca_sha256 else {
            return Ok(());
        };
        let actual = ca_sha256(ca_pem)?;
        if &actual != expected {
            return Err(Error::CaMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// SHA-256 (hex) of the DER of the first certificate in `pem`.
///
/// Fails with [`Error::Tls`] when `pem` holds no certificate.
pub fn ca_sha256(pem: &[u8]) -> Result<String> {
    let cert = CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or_else(|| Error::Tls("the CA holds no certificate".into()))?
        .map_err(|e| Error::Tls(format!("the CA is not PEM: {e}")))?;
    Ok(Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // a throwaway self-signed certificate (any DER will do for hashing)
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_k10_token_carries_the_ca_hash_and_a_bare_one_pins_nothing() {
        let h = "AB".repeat(32);
        let t = JoinToken::parse(&format!("  K10{h}::secret\n")).unwrap();
        assert_eq!(t.ca_sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(t.token, format!("K10{h}::secret"));
        let bare = JoinToken::parse("0123abcd").unwrap();
        assert_eq!(bare.ca_sha256, None);
        assert_eq!(bare.token, "0123abcd");
        // K10 without `::` is a bare secret that happens to start so
        assert_eq!(JoinToken::parse("K10abc").unwrap().ca_sha256, None);
    }

    #[test]
    fn a_malformed_pin_is_refused() {
        assert!(matches!(
            JoinToken::parse("K10nothex::secret"),
            Err(Error::Config(_))
        ));
        let h = "a".repeat(64);
        assert!(matches!(
            JoinToken::parse(&format!("K10{h}::")),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn the_pin_is_the_sha256_of_the_certificate_der() {
        // sha256 of bytes 0..=9
        let h = ca_sha256(PEM.as_bytes()).unwrap();
        assert_eq!(
            h,
            "1f825aa2f0020ef7cf91dfa30da4668d791c5d4824fc8e41354b89ec05795ab3"
        );
        let pinned = JoinToken::parse(&format!("K10{h}::s")).unwrap();
        assert!(pinned.check(PEM.as_bytes()).is_ok());
        let wrong = JoinToken::parse(&format!("K10{}::s", "0".repeat(64))).unwrap();
        assert!(matches!(
            wrong.check(PEM.as_bytes()),
            Err(Error::CaMismatch { .. })
        ));
        assert!(matches!(ca_sha256(b"no pem"), Err(Error::Tls(_))));
        assert!(JoinToken::parse("bare").unwrap().check(b"anything").is_ok());
    }
}
