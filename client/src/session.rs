//! Login sessions: `POST /auth/v1/login` for an access token and a refresh token, the refresh
//! a [`Client`] made from a config with a session does by itself on a 401, and logout.

use std::fmt;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::Client;
use crate::config::Config;
use crate::error::{Error, Result};

/// Where the server signs users in.
pub const LOGIN_PATH: &str = "/auth/v1/login";
/// Where a refresh token is traded for a new pair.
pub const REFRESH_PATH: &str = "/auth/v1/refresh";
/// Where a session ends.
pub const LOGOUT_PATH: &str = "/auth/v1/logout";

/// What login and refresh answer: a pair of tokens.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The access token (a JWT for 15 minutes): the bearer token.
    pub access_token: String,
    /// The refresh token (30 days, one use).
    pub refresh_token: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Client {
    /// An open request (no token) with a JSON body.
    async fn open_post(&self, path: &str, body: Value) -> Result<Value> {
        let req = self
            .http()
            .request(Method::POST, format!("{}{path}", self.base()))
            .json(&body);
        let req = req.build().map_err(|e| self.unreachable(e))?;
        let resp = self.failover(req).await?;
        Ok(self.answer(resp).await?.2)
    }

    /// Signs `username` in (`POST /auth/v1/login`) with `password` and, when the user has a
    /// second factor, the current `totp` code. Sends no bearer token.
    ///
    /// Fails with the server's Status: 401 for a wrong name, password or code (and, without
    /// `totp`, for a user who needs one: see [`needs_totp`]), 429 while throttled.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<Session> {
        let mut body = json!({"username": username, "password": password});
        if let Some(code) = totp {
            body["totp"] = json!(code);
        }
        let v = self.open_post(LOGIN_PATH, body).await?;
        serde_json::from_value(v).map_err(|e| Error::Decode(format!("login: {e}")))
    }

    /// Trades a refresh token for a new pair (`POST /auth/v1/refresh`); the old one is spent.
    ///
    /// Fails with the server's Status: 401 for a used, expired or ended session.
    pub async fn refresh_session(&self, refresh_token: &str) -> Result<Session> {
        let v = self
            .open_post(REFRESH_PATH, json!({"refreshToken": refresh_token}))
            .await?;
        serde_json::from_value(v).map_err(|e| Error::Decode(format!("refresh: {e}")))
    }

    /// Ends the session of `refresh_token` (`POST /auth/v1/logout`).
    ///
    /// Fails when the server cannot be reached or refuses.
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        self.open_post(LOGOUT_PATH, json!({"refreshToken": refresh_token}))
            .await?;
        Ok(())
    }
}

/// True for the answer to a login without a code by a user who has a second factor.
pub fn needs_totp(error: &Error) -> bool {
    error.code() == Some(401)
        && error
            .api_status()
            .is_some_and(|s| s.message.to_ascii_lowercase().contains("totp"))
}

/// The refresh state of a [`Client`] made from a config with a login session: its refresh
/// token, and the config to save new pairs into. One refresh at a time; a request that got a
/// 401 with a token another request already replaced just uses the new one.
pub(crate) struct Refresher {
    config: Config,
    refresh_token: tokio::sync::Mutex<Option<String>>,
}

impl fmt::Debug for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher")
            .field("context", &self.config.context)
            .finish_non_exhaustive()
    }
}

impl Refresher {
    pub(crate) fn new(config: Config, refresh_token: String) -> Self {
        Self {
            config,
            refresh_token: tokio::sync::Mutex::new(Some(refresh_token)),
        }
    }

    /// After a 401 for a request sent with `used`: a token to send it again with, or None
    /// when the session cannot be refreshed (then the 401 stands).
    pub(crate) async fn refresh(&self, client: &Client, used: &str) -> Option<String> {
        let mut refresh_token = self.refresh_token.lock().await;
        let current = client.token();
        if current != used {
            return Some(current);
        }
        let spent = refresh_token.take()?;
        let session = match client.refresh_session(&spent).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "the session could not be refreshed");
                return None;
            }
        };
        client.set_token(&session.access_token);
        *refresh_token = Some(session.refresh_token.clone());
        if let Err(e) = self
            .config
            .save_tokens(&session.access_token, Some(&session.refresh_token))
        {
            tracing::warn!(error = %e, "the refreshed session could not be saved; log in again next time");
        }
        Some(session.access_token)
    }
}
