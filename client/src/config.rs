//! The client config file (`admin.yaml`, `~/.catalyst/config`): server URL, the CA to trust,
//! token, namespace.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

/// The client config.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// `https://host:port` (or `http://` for a plain-HTTP server on loopback).
    pub server: String,
    /// Base64 of the PEM of the CA to trust (and no other); the system's roots when absent.
    #[serde(default)]
    pub certificate_authority_data: Option<String>,
    /// The bearer token.
    pub token: String,
    /// The default namespace.
    #[serde(default = "default_ns")]
    pub namespace: String,
}

fn default_ns() -> String {
    "default".to_owned()
}

impl Config {
    /// `--config FILE`, else `$CATALYST_CONFIG`, else `~/.catalyst/config`.
    ///
    /// Fails with [`Error::Config`] when none is given and `HOME` is not set.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, Error> {
        if let Some(p) = explicit {
            return Ok(p.to_owned());
        }
        if let Some(p) = std::env::var_os("CATALYST_CONFIG").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        let home = std::env::var_os("HOME")
            .ok_or_else(|| Error::Config("HOME is not set; pass --config".into()))?;
        Ok(PathBuf::from(home).join(".catalyst/config"))
    }

    /// Reads the config found by [`Config::locate`].
    ///
    /// Fails with [`Error::Config`] when it cannot be read or is not a config.
    pub fn load(explicit: Option<&Path>) -> Result<Self, Error> {
        let path = Self::locate(explicit)?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Config(format!(
                "cannot read the client config {}: {e} (use --config, $CATALYST_CONFIG, or copy <data-dir>/admin.yaml to ~/.catalyst/config)",
                path.display()
            ))
        })?;
        let config: Self = yaml_serde::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config
            .ca_pem()
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    /// The CA's PEM, decoded from `certificateAuthorityData`.
    ///
    /// Fails with [`Error::Config`] when it is not base64 of a PEM certificate.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, Error> {
        use base64::Engine;
        let Some(data) = &self.certificate_authority_data else {
            return Ok(None);
        };
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| Error::Config(format!("certificateAuthorityData is not base64: {e}")))?;
        crate::pin::ca_sha256(&pem)
            .map_err(|e| Error::Config(format!("certificateAuthorityData: {e}")))?;
        Ok(Some(pem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_config_without_a_ca_still_reads() {
        let c: Config = yaml_serde::from_str("server: http://127.0.0.1:7443\ntoken: t\n").unwrap();
        assert_eq!(c.namespace, "default");
        assert_eq!(c.ca_pem().unwrap(), None);
    }

    #[test]
    fn the_ca_is_base64_of_its_pem_and_garbage_is_refused() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        let c: Config = yaml_serde::from_str(&format!(
            "server: https://h:1\ncertificateAuthorityData: {b64}\ntoken: t\n"
        ))
        .unwrap();
        assert_eq!(c.ca_pem().unwrap().as_deref(), Some(pem.as_bytes()));
        let bad: Config =
            yaml_serde::from_str("server: https://h:1\ncertificateAuthorityData: '!!'\ntoken: t\n")
                .unwrap();
        assert!(matches!(bad.ca_pem(), Err(Error::Config(_))));
    }
}
