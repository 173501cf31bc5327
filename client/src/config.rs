//! The client config file (`admin.yaml`, `~/.catalyst/config`): server URL, token, namespace.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

/// The client config.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `http://host:port`.
    pub server: String,
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
        yaml_serde::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}
