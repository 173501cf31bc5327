//! `create user NAME` and `create apikey NAME`: the access-control objects that need more
//! than `apply` (a password set apart; a secret shown once).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::error::{CtlError, Outcome};
use super::out::Out;
use super::prompt;
use super::request::WHOAMI_PATH;
use super::target::kind;
use crate::client::{collection_path, object_path, Client};

/// Arguments of `create`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// What to create.
    #[command(subcommand)]
    pub what: CreateCommand,
}

/// The `create` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CreateCommand {
    /// Create a User, and set its password with --password-stdin.
    User(CreateUserArgs),
    /// Create an API key and print its secret (shown this once only).
    #[command(name = "apikey", alias = "key")]
    ApiKey(CreateApiKeyArgs),
}

/// Arguments of `create user`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateUserArgs {
    /// The user's name.
    pub name: String,
    /// The name shown in the panel.
    #[arg(long)]
    pub display_name: Option<String>,
    /// Contact address.
    #[arg(long)]
    pub email: Option<String>,
    /// A group the user belongs to (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Read the user's password from stdin (its first line) and set it.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Arguments of `create apikey`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateApiKeyArgs {
    /// The key's name.
    pub name: String,
    /// The User the key acts for (default: the signed-in user).
    #[arg(long)]
    pub owner: Option<String>,
    /// A role the key carries: ROLE, ROLE@NAMESPACE, with :NAME1,NAME2 to limit it to those
    /// objects (repeatable; none: the key may do nothing).
    #[arg(long = "role", value_name = "ROLE[@NAMESPACE][:NAMES]", value_parser = parse_role)]
    pub roles: Vec<Value>,
    /// When the key stops working: a duration from now (30d, 12h) or an RFC 3339 time.
    #[arg(long)]
    pub expires: Option<String>,
    /// What the key is for.
    #[arg(long)]
    pub description: Option<String>,
    /// Print the whole answer as JSON (it holds the secret in status.token).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<CreateFormat>,
}

/// How `create apikey` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CreateFormat {
    /// The created object as the server answered it.
    Json,
}

/// A `--role` value as an ApiKey's `spec.roles` item: `ROLE[@NAMESPACE][:NAME1,NAME2]`.
///
/// # Errors
/// A message for clap when a part is empty.
pub fn parse_role(spec: &str) -> Result<Value, String> {
    let (head, names) = match spec.split_once(':') {
        Some((h, n)) => (h, Some(n)),
        None => (spec, None),
    };
    let (role, namespace) = match head.split_once('@') {
        Some((r, ns)) => (r, Some(ns)),
        None => (head, None),
    };
    if role.is_empty() || namespace.is_some_and(str::is_empty) {
        return Err(format!("{spec:?}: expected ROLE[@NAMESPACE][:NAME1,NAME2]"));
    }
    let mut grant = json!({"role": role});
    if let Some(ns) = namespace {
        grant["namespace"] = json!(ns);
    }
    if let Some(names) = names {
        let names: Vec<&str> = names.split(',').map(str::trim).collect();
        if names.iter().any(|n| n.is_empty()) {
            return Err(format!("{spec:?}: empty name after ':'"));
        }
        grant["resourceNames"] = json!(names);
    }
    Ok(grant)
}

/// When a key given `--expires` stops working: `now` plus a duration (`30d`, `12h`, `90m`),
/// or an RFC 3339 time.
///
/// # Errors
/// [`CtlError::Usage`] for anything else.
pub fn parse_expiry(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, CtlError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let secs = catalyst_schemas::validation::duration(text)
        .map_err(|e| CtlError::Usage(format!("--expires: {e}, or an RFC 3339 time")))?;
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    chrono::Duration::try_seconds(secs)
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| CtlError::Usage(format!("--expires {text:?} is too far away")))
}

impl CreateArgs {
    /// Creates the object; see each subcommand.
    ///
    /// # Errors
    /// Failed requests, bad arguments, a closed stdout.
    pub async fn run(&self, client: &Client, out: &mut Out) -> Outcome {
        match &self.what {
            CreateCommand::User(args) => args.run(client, out).await,
            CreateCommand::ApiKey(args) => args.run(client, out).await,
        }
    }
}

impl CreateUserArgs {
    /// Creates the User (`user/NAME created`), then, with `--password-stdin`, sets its
    /// password (`user/NAME password set`).
    ///
    /// # Errors
    /// Failed requests (the User stays when only the password was refused), no password on
    /// stdin, a closed stdout.
    pub async fn run(&self, client: &Client, out: &mut Out) -> Outcome {
        let password = if self.password_stdin {
            Some(prompt::secret_from_stdin("password")?)
        } else {
            None
        };
        let users = kind("users")?;
        let mut spec = json!({});
        if let Some(d) = &self.display_name {
            spec["displayName"] = json!(d);
        }
        if let Some(e) = &self.email {
            spec["email"] = json!(e);
        }
        if !self.groups.is_empty() {
            spec["groups"] = json!(self.groups);
        }
        let user = json!({
            "apiVersion": catalyst_schemas::API_VERSION,
            "kind": users.kind,
            "metadata": {"name": self.name},
            "spec": spec,
        });
        client.post(&collection_path(users, None), user).await?;
        out.line(format_args!("user/{} created", self.name))?;
        if let Some(password) = password {
            let path = format!("{}/password", object_path(users, None, &self.name));
            client.post(&path, json!({"password": password})).await?;
            out.line(format_args!("user/{} password set", self.name))?;
        }
        Ok(0)
    }
}

impl CreateApiKeyArgs {
    /// Creates the ApiKey and prints `apikey/NAME created` and `token: ck_…` (with a warning
    /// on stderr that it is not shown again), or with `-o json` the whole answer.
    ///
    /// # Errors
    /// Failed requests (403 when the caller does not hold the roles), a bad `--expires`, an
    /// answer without a token, a closed stdout.
    pub async fn run(&self, client: &Client, out: &mut Out) -> Outcome {
        let expires = self
            .expires
            .as_deref()
            .map(|e| parse_expiry(e, Utc::now()))
            .transpose()?;
        let owner = match &self.owner {
            Some(o) => o.clone(),
            None => {
                let me = client.get(WHOAMI_PATH).await?;
                me.get("user")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        CtlError::Usage(
                            "this credential acts for no user: pass --owner USER".into(),
                        )
                    })?
            }
        };
        let keys = kind("apikeys")?;
        let mut spec = json!({"owner": owner, "roles": self.roles});
        if let Some(d) = &self.description {
            spec["description"] = json!(d);
        }
        if let Some(t) = expires {
            spec["expiresAt"] = json!(t.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        let key = json!({
            "apiVersion": catalyst_schemas::API_VERSION,
            "kind": keys.kind,
            "metadata": {"name": self.name},
            "spec": spec,
        });
        let created = client.post(&collection_path(keys, None), key).await?;
        if self.output == Some(CreateFormat::Json) {
            out.line(serde_json::to_string_pretty(&created).map_err(CtlError::Encode)?)?;
            return Ok(0);
        }
        let token = created
            .pointer("/status/token")
            .and_then(Value::as_str)
            .ok_or_else(|| CtlError::Usage("the server answered without status.token".into()))?;
        out.line(format_args!("apikey/{} created", self.name))?;
        out.line(format_args!("token: {token}"))?;
        out.note("warning: the token is shown this once only; store it now");
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_spec_names_the_role_its_namespace_and_objects() {
        assert_eq!(parse_role("viewer").unwrap(), json!({"role": "viewer"}));
        assert_eq!(
            parse_role("viewer@default").unwrap(),
            json!({"role": "viewer", "namespace": "default"})
        );
        assert_eq!(
            parse_role("control.console@games:survival,creative").unwrap(),
            json!({"role": "control.console", "namespace": "games",
                   "resourceNames": ["survival", "creative"]})
        );
        assert_eq!(
            parse_role("operator:a").unwrap(),
            json!({"role": "operator", "resourceNames": ["a"]})
        );
        for bad in ["", "@ns", "viewer@", "viewer@ns:", "viewer:a,,b"] {
            assert!(parse_role(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expiry_is_a_duration_from_now_or_a_time() {
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_expiry("30d", now).unwrap().to_rfc3339(),
            "2025-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_expiry("2026-02-03T04:05:06+01:00", now)
                .unwrap()
                .to_rfc3339(),
            "2026-02-03T03:05:06+00:00"
        );
        assert!(matches!(parse_expiry("soon", now), Err(CtlError::Usage(_))));
    }
}
