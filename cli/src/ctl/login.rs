//! `login` and `logout`: a login session (an access token and a refresh token) saved into a
//! context of the client config, and its end.

use std::path::{Path, PathBuf};

use super::error::{CtlError, Outcome};
use super::out::Out;
use super::prompt;
use crate::client::{config, needs_totp, Client, ConfigFile, Context};

/// Arguments of `login` (the context is the global `--context`).
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// The API server (default: the context's); several servers sharing one store as a comma
    /// list or the flag repeated (the first is the context's `server`, the others its
    /// `servers`; calls fail over between them).
    #[arg(long, value_delimiter = ',')]
    pub server: Vec<String>,
    /// The user (default: the context's, else asked).
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Read the password from stdin (its first line) instead of asking.
    #[arg(long)]
    pub password_stdin: bool,
    /// The current code of the user's second factor (asked when the server wants one).
    #[arg(long)]
    pub totp: Option<String>,
    /// The CA to trust (a PEM file, e.g. <data-dir>/ca.crt; default: the context's, else
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
}

/// `USER@HOST` (with the port when the URL has one): the name of a new login's context.
pub fn context_name(user: &str, server: &str) -> String {
    let host = reqwest::Url::parse(server)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .unwrap_or_else(|| server.to_owned());
    format!("{user}@{host}")
}

impl LoginArgs {
    /// Signs in and saves the session into the context `context` (else, with `--server`,
    /// `USER@HOST`, else the current one), which becomes current; prints where.
    ///
    /// # Errors
    /// No server or user to use, an unreadable CA or config, the server's refusal.
    pub async fn run(&self, path: &Path, context: Option<&str>, out: &mut Out) -> Outcome {
        let mut file = ConfigFile::read(path)?;
        let given = crate::client::servers::merge(self.server.iter().map(String::as_str));
        let existing = match (context, given.is_empty()) {
            (Some(name), _) => file.context(name),
            (None, true) => file.current_name(None).and_then(|n| file.context(&n)),
            (None, false) => None,
        };
        let urls = if given.is_empty() {
            existing.as_ref().map(Context::urls).unwrap_or_default()
        } else {
            given.clone()
        };
        let server = urls
            .first()
            .cloned()
            .ok_or_else(|| CtlError::Usage("no server to sign in to: pass --server URL".into()))?;
        let ca_data = match &self.certificate_authority {
            Some(file) => Some(config::encode_ca(&std::fs::read(file).map_err(
                |source| CtlError::Read {
                    what: file.display().to_string(),
                    source,
                },
            )?)?),
            None => existing
                .as_ref()
                .filter(|c| c.server == server)
                .and_then(|c| c.certificate_authority_data.clone()),
        };
        let remembered = existing.as_ref().and_then(|c| c.user.clone());
        let username = match (self.username.clone(), remembered) {
            (Some(u), _) | (None, Some(u)) => u,
            (None, None) if prompt::interactive() && !self.password_stdin => {
                prompt::line("Username: ")?
            }
            (None, None) => return Err(CtlError::Usage("pass --username NAME".into())),
        };
        let password = if self.password_stdin {
            prompt::secret_from_stdin("password")?
        } else if prompt::interactive() {
            prompt::secret("Password: ")?
        } else {
            prompt::line("")?
        };
        let ca_pem = config::decode_ca(ca_data.as_deref())?;
        let client = Client::with_ca(&urls.join(","), "", ca_pem.as_deref())?;
        let session = match client
            .login(&username, &password, self.totp.as_deref())
            .await
        {
            Err(e) if needs_totp(&e) && self.totp.is_none() => {
                if self.password_stdin || !prompt::interactive() {
                    return Err(CtlError::Usage(format!(
                        "{username} signs in with a TOTP code: pass --totp CODE"
                    )));
                }
                let code = prompt::line("TOTP code: ")?;
                client
                    .login(&username, &password, Some(code.trim()))
                    .await?
            }
            other => other?,
        };
        let name = context
            .map(str::to_owned)
            .or_else(|| {
                existing
                    .as_ref()
                    .filter(|_| given.is_empty())
                    .map(|c| c.name.clone())
            })
            .unwrap_or_else(|| context_name(&username, &server));
        let namespace = existing
            .as_ref()
            .filter(|c| c.name == name)
            .and_then(|c| c.namespace.clone());
        file.set_context(Context {
            name: name.clone(),
            server: server.clone(),
            servers: urls[1..].to_vec(),
            certificate_authority_data: ca_data,
            user: Some(username.clone()),
            token: Some(session.access_token),
            refresh_token: Some(session.refresh_token),
            namespace,
        });
        file.current_context = Some(name.clone());
        file.write(path)?;
        out.line(format_args!(
            "Logged in to {server} as {username} (context {name})"
        ))?;
        Ok(0)
    }
}

/// Arguments of `logout` (the context is the global `--context`).
#[derive(Debug, Clone, clap::Args)]
pub struct LogoutArgs {}

impl LogoutArgs {
    /// Ends the session of the context `context` (the current one when None) on the server
    /// and removes its tokens from the config, keeping its server and CA. A server that cannot
    /// be reached is noted; the tokens go anyway.
    ///
    /// # Errors
    /// An unreadable or unwritable config, an unknown context.
    pub async fn run(&self, path: &Path, context: Option<&str>, out: &mut Out) -> Outcome {
        let mut file = ConfigFile::read(path)?;
        let (name, mut ctx) = super::config::in_use(&file, path, context)?;
        match ctx.refresh_token.as_deref() {
            Some(refresh) => {
                let ca = config::decode_ca(ctx.certificate_authority_data.as_deref())?;
                let ended = match Client::with_ca(&ctx.urls().join(","), "", ca.as_deref()) {
                    Ok(c) => c.logout(refresh).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = ended {
                    out.note(format_args!(
                        "warning: the server did not end the session ({e}); removing the tokens anyway"
                    ));
                }
            }
            // an administrator's or key's token is no session: forgetting it would lock the
            // user out (admin.yaml's token exists nowhere else)
            None if ctx.token.is_some() => {
                return Err(CtlError::Usage(format!(
                    "context {name} holds a token that is not a login session (an admin or API key token); logout keeps it: edit {} to remove it",
                    path.display()
                )))
            }
            None => {}
        }
        ctx.token = None;
        ctx.refresh_token = None;
        file.set_context(ctx);
        file.write(path)?;
        out.line(format_args!("Logged out of context {name}"))?;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_context_is_named_user_at_host() {
        assert_eq!(
            context_name("alice", "https://play.example.com"),
            "alice@play.example.com"
        );
        assert_eq!(
            context_name("alice", "https://127.0.0.1:7443/"),
            "alice@127.0.0.1:7443"
        );
    }
}
