//! The client config file (`admin.yaml`, `~/.catalyst/config`): one or more contexts (a server,
//! more servers sharing its store, the CA to trust, credentials, a namespace), one of them
//! current. A context's servers are `server` then `servers`, without duplicates: calls start
//! at the one that answered last and move on to the others (see [`crate::servers`]). A binary
//! older than `servers` refuses a file that has them.
//!
//! The file as written by `catalyst server` is flat (`server`, `token`, `namespace`,
//! `certificateAuthorityData`) and stays valid: those fields are the context `default` while
//! the file has no `contexts` list. `catalystctl login` adds `contexts` and `currentContext`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The `apiVersion` of a config file.
pub const API_VERSION: &str = "catalyst.dev/v1alpha1";
/// The `kind` of a config file.
pub const KIND: &str = "Config";

/// The name of the context the flat fields of a file make.
pub const DEFAULT_CONTEXT: &str = "default";

/// One server and the credentials to talk to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Context {
    /// The context's name (`--context NAME`).
    pub name: String,
    /// `https://host:port` (or `http://` for a plain-HTTP server on loopback).
    pub server: String,
    /// More servers sharing `server`'s store (tried after it, in turn).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Base64 of the PEM of the CA to trust (and no other); the system's roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    /// The user `catalystctl login` signed in as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The bearer token (an access JWT, an API key, the admin token); absent once logged out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The refresh token of a login session: traded for a new pair when the token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The default namespace (`default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The client config file as stored: the flat fields of the original layout, the contexts
/// and which one is current. Fields it does not know are refused, so a write keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// `catalyst.dev/v1alpha1`, as `admin.yaml` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `Config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The flat layout's server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The flat layout's more servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// The flat layout's CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    /// The flat layout's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The flat layout's refresh token (after `login --context default` into a flat file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The flat layout's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The flat layout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The context used without `--context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// The contexts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<Context>,
}

impl ConfigFile {
    /// Parses a config file's text.
    ///
    /// Fails with [`Error::Config`] when it is not a config, or names a context twice.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let file: Self = yaml_serde::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        if file.kind.as_deref().is_some_and(|k| k != KIND) {
            return Err(Error::Config(format!(
                "kind {:?} is not a client config ({KIND})",
                file.kind.as_deref().unwrap_or_default()
            )));
        }
        for (i, c) in file.contexts.iter().enumerate() {
            if file.contexts[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::Config(format!(
                    "context {:?} is defined twice",
                    c.name
                )));
            }
        }
        Ok(file)
    }

    /// A config without contexts, saying its `apiVersion` and `kind`.
    pub fn new() -> Self {
        Self {
            api_version: Some(API_VERSION.to_owned()),
            kind: Some(KIND.to_owned()),
            ..Self::default()
        }
    }

    /// Reads the file at `path`; a [`ConfigFile::new`] when there is none.
    ///
    /// Fails with [`Error::Config`] when it cannot be read or parsed.
    pub fn read(path: &Path) -> Result<Self, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Self::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::new()),
            Err(e) => Err(Error::Config(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// The YAML text of the file.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("a config encodes")
    }

    /// Writes the file to `path` atomically (a temporary file beside it, renamed), readable by
    /// its owner only; makes the directory (owner-only) when missing.
    ///
    /// Fails with [`Error::Config`] when it cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let fail =
            |e: std::io::Error| Error::Config(format!("cannot write {}: {e}", path.display()));
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fail)?;
        }
        let name = path
            .file_name()
            .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(self.to_yaml().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(fail)
    }

    /// True when the file uses the flat layout (a server at the top, no contexts list).
    fn is_flat(&self) -> bool {
        self.contexts.is_empty() && self.server.is_some()
    }

    /// Every context: the listed ones, or the flat fields as `default`.
    pub fn contexts(&self) -> Vec<Context> {
        if self.is_flat() {
            return vec![Context {
                name: DEFAULT_CONTEXT.to_owned(),
                server: self.server.clone().unwrap_or_default(),
                servers: self.servers.clone(),
                certificate_authority_data: self.certificate_authority_data.clone(),
                user: self.user.clone(),
                token: self.token.clone(),
                refresh_token: self.refresh_token.clone(),
                namespace: self.namespace.clone(),
            }];
        }
        self.contexts.clone()
    }

    /// The context named `name`.
    pub fn context(&self, name: &str) -> Option<Context> {
        self.contexts().into_iter().find(|c| c.name == name)
    }

    /// The name of the context to use: `chosen` (`--context`), else `currentContext`, else the
    /// only (or first) context. None for a file without contexts.
    pub fn current_name(&self, chosen: Option<&str>) -> Option<String> {
        if let Some(c) = chosen.filter(|c| !c.is_empty()) {
            return Some(c.to_owned());
        }
        if let Some(c) = self.current_context.as_deref().filter(|c| !c.is_empty()) {
            return Some(c.to_owned());
        }
        self.contexts().first().map(|c| c.name.clone())
    }

    /// Adds `context`, or replaces the one of the same name. A flat file stays flat when
    /// `default` is written; another name moves the flat fields into the list as `default`.
    pub fn set_context(&mut self, context: Context) {
        if self.is_flat() || (self.contexts.is_empty() && context.name == DEFAULT_CONTEXT) {
            if context.name == DEFAULT_CONTEXT {
                self.server = Some(context.server);
                self.servers = context.servers;
                self.certificate_authority_data = context.certificate_authority_data;
                self.user = context.user;
                self.token = context.token;
                self.refresh_token = context.refresh_token;
                self.namespace = context.namespace;
                return;
            }
            if self.is_flat() {
                self.contexts = self.contexts();
                self.server = None;
                self.servers = Vec::new();
                self.certificate_authority_data = None;
                self.user = None;
                self.token = None;
                self.refresh_token = None;
                self.namespace = None;
            }
        }
        match self.contexts.iter_mut().find(|c| c.name == context.name) {
            Some(c) => *c = context,
            None => self.contexts.push(context),
        }
    }
}

impl Context {
    /// Every server of the context: `server`, then `servers`, without duplicates.
    pub fn urls(&self) -> Vec<String> {
        crate::servers::merge(
            std::iter::once(self.server.as_str()).chain(self.servers.iter().map(String::as_str)),
        )
    }
}

/// What a command needs of the client config: the chosen context, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `https://host:port` (or `http://` for a plain-HTTP server on loopback).
    pub server: String,
    /// Every server, `server` first, without duplicates.
    pub servers: Vec<String>,
    /// Base64 of the PEM of the CA to trust (and no other); the system's roots when absent.
    pub certificate_authority_data: Option<String>,
    /// The bearer token.
    pub token: String,
    /// The default namespace.
    pub namespace: String,
    /// The context's name.
    pub context: String,
    /// The refresh token of a login session, when the context has one.
    pub refresh_token: Option<String>,
    /// The file it was read from: where a refreshed session is saved.
    pub path: Option<PathBuf>,
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

    /// Reads the current context of the config found by [`Config::locate`].
    ///
    /// Fails as [`Config::load_context`] does.
    pub fn load(explicit: Option<&Path>) -> Result<Self, Error> {
        Self::load_context(explicit, None)
    }

    /// Reads the context `context` (the current one when None) of the config found by
    /// [`Config::locate`].
    ///
    /// Fails with [`Error::Config`] when the file cannot be read or is not a config, the
    /// context does not exist, has no token (logged out) or an unusable CA.
    pub fn load_context(explicit: Option<&Path>, context: Option<&str>) -> Result<Self, Error> {
        let path = Self::locate(explicit)?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Config(format!(
                "cannot read the client config {}: {e} (use --config, $CATALYST_CONFIG, or copy <data-dir>/admin.yaml to ~/.catalyst/config)",
                path.display()
            ))
        })?;
        let mut config = Self::from_yaml(&text, context)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config.path = Some(path);
        Ok(config)
    }

    /// The context `context` (the current one when None) of a config file's text.
    ///
    /// Fails as [`Config::load_context`] does.
    pub fn from_yaml(text: &str, context: Option<&str>) -> Result<Self, Error> {
        Self::from_file(&ConfigFile::parse(text)?, context)
    }

    /// The context `context` (the current one when None) of a parsed config file.
    ///
    /// Fails as [`Config::load_context`] does.
    pub fn from_file(file: &ConfigFile, context: Option<&str>) -> Result<Self, Error> {
        let name = file.current_name(context).ok_or_else(|| {
            Error::Config(
                "no server and no contexts: sign in with `catalystctl login --server URL`".into(),
            )
        })?;
        let ctx = file.context(&name).ok_or_else(|| {
            let known: Vec<String> = file.contexts().into_iter().map(|c| c.name).collect();
            Error::Config(format!(
                "no context {name:?} (known: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        let servers = ctx.urls();
        let token = ctx.token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            Error::Config(format!(
                "context {name:?} is logged out: sign in with `catalystctl login --context {name}`"
            ))
        })?;
        let config = Self {
            servers,
            server: ctx.server,
            certificate_authority_data: ctx.certificate_authority_data,
            token: token.trim().to_owned(),
            namespace: ctx
                .namespace
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_owned()),
            context: name,
            refresh_token: ctx.refresh_token.filter(|t| !t.is_empty()),
            path: None,
        };
        config.ca_pem()?;
        Ok(config)
    }

    /// Saves a new token pair into this config's context in its file (re-read first, so other
    /// changes to it are kept). Nothing to do for a config that was not read from a file.
    ///
    /// Fails with [`Error::Config`] when the file cannot be read or written, or the context
    /// is gone from it.
    pub fn save_tokens(&self, token: &str, refresh_token: Option<&str>) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut file = ConfigFile::read(path)?;
        let mut ctx = file.context(&self.context).ok_or_else(|| {
            Error::Config(format!(
                "{}: context {:?} is gone",
                path.display(),
                self.context
            ))
        })?;
        ctx.token = Some(token.to_owned());
        ctx.refresh_token = refresh_token.map(str::to_owned);
        file.set_context(ctx);
        file.write(path)
    }

    /// The CA's PEM, decoded from `certificateAuthorityData`.
    ///
    /// Fails with [`Error::Config`] when it is not base64 of a PEM certificate.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, Error> {
        decode_ca(self.certificate_authority_data.as_deref())
    }
}

/// The PEM of a `certificateAuthorityData` value.
///
/// Fails with [`Error::Config`] when it is not base64 of a PEM certificate.
pub fn decode_ca(data: Option<&str>) -> Result<Option<Vec<u8>>, Error> {
    use base64::Engine;
    let Some(data) = data else {
        return Ok(None);
    };
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Error::Config(format!("certificateAuthorityData is not base64: {e}")))?;
    crate::pin::ca_sha256(&pem)
        .map_err(|e| Error::Config(format!("certificateAuthorityData: {e}")))?;
    Ok(Some(pem))
}

/// The `certificateAuthorityData` value of a CA's PEM.
///
/// Fails with [`Error::Config`] when `pem` holds no certificate.
pub fn encode_ca(pem: &[u8]) -> Result<String, Error> {
    use base64::Engine;
    crate::pin::ca_sha256(pem).map_err(|e| Error::Config(format!("the CA: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(pem))
}

#[cfg(test)]
mod tests;
