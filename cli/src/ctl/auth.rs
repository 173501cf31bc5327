//! `auth can-i VERB RESOURCE [NAME]` (may I?, like kubectl: exit 0 yes, 1 no) and
//! `auth whoami`.

use serde_json::{json, Value};

use super::error::{CtlError, Outcome};
use super::out::Out;
use super::request::WHOAMI_PATH;
use crate::client::Client;

/// Where the server answers whether the caller may do something.
pub const ACCESS_REVIEW_PATH: &str = "/auth/v1/access-review";

/// Arguments of `auth`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// What to ask.
    #[command(subcommand)]
    pub command: AuthCommand,
}

/// The `auth` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuthCommand {
    /// Whether you may do something: prints yes (exit 0) or no (exit 1).
    CanI(CanIArgs),
    /// Who the server takes you for.
    Whoami(WhoamiArgs),
}

/// Arguments of `auth can-i`.
#[derive(Debug, Clone, clap::Args)]
pub struct CanIArgs {
    /// get, list, watch, create, update, patch, delete (or `*`).
    pub verb: String,
    /// A kind by any of its names, or PLURAL/SUBRESOURCE (gameservers/console).
    pub resource: String,
    /// One object.
    pub name: Option<String>,
    /// In every namespace (a cluster-wide grant).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// Arguments of `auth whoami`.
#[derive(Debug, Clone, clap::Args)]
pub struct WhoamiArgs {
    /// Print the server's answer as JSON.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<WhoamiFormat>,
}

/// How `auth whoami` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WhoamiFormat {
    /// The answer as the server gives it.
    Json,
}

/// The access review body: the resource by its plural (a known kind's short name or singular
/// becomes its plural; the subresource stays), no namespace for `-A` or a cluster-scoped kind.
pub fn review(verb: &str, resource: &str, name: Option<&str>, ns: Option<&str>) -> Value {
    let (base, sub) = match resource.split_once('/') {
        Some((b, s)) => (b, Some(s)),
        None => (resource, None),
    };
    let known = catalyst_schemas::lookup_kind(base);
    let plural = known.map_or(base, |k| k.plural);
    let resource = match sub {
        Some(s) => format!("{plural}/{s}"),
        None => plural.to_owned(),
    };
    let namespace = ns.filter(|_| known.is_none_or(|k| k.namespaced));
    json!({"verb": verb, "resource": resource, "namespace": namespace, "name": name})
}

impl CanIArgs {
    /// Asks the server and prints `yes` (status 0) or `no` (status 1).
    ///
    /// # Errors
    /// A failed request, an answer without `allowed`, a closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let ns = (!self.all_namespaces).then_some(ns);
        let body = review(&self.verb, &self.resource, self.name.as_deref(), ns);
        let answer = client.post(ACCESS_REVIEW_PATH, body).await?;
        let allowed = answer
            .get("allowed")
            .and_then(Value::as_bool)
            .ok_or_else(|| CtlError::Usage("the access review answered without allowed".into()))?;
        out.line(if allowed { "yes" } else { "no" })?;
        Ok(i32::from(!allowed))
    }
}

impl WhoamiArgs {
    /// Prints the caller's kind, name, the user it acts for and its groups.
    ///
    /// # Errors
    /// A failed request (401 for a token the server no longer takes), a closed stdout.
    pub async fn run(&self, client: &Client, out: &mut Out) -> Outcome {
        let me = client.get(WHOAMI_PATH).await?;
        if self.output == Some(WhoamiFormat::Json) {
            out.line(serde_json::to_string_pretty(&me).map_err(CtlError::Encode)?)?;
            return Ok(0);
        }
        let field = |k: &str| me.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let groups: Vec<&str> = me
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.line(format_args!("Kind:    {}", field("kind")))?;
        out.line(format_args!("Name:    {}", field("name")))?;
        out.line(format_args!("User:    {}", field("user")))?;
        out.line(format_args!("Groups:  {}", groups.join(", ")))?;
        Ok(0)
    }
}

impl AuthArgs {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// As the subcommand.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        match &self.command {
            AuthCommand::CanI(args) => args.run(client, ns, out).await,
            AuthCommand::Whoami(args) => args.run(client, out).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_names_the_plural_and_drops_the_namespace_of_cluster_kinds() {
        assert_eq!(
            review("create", "gs", None, Some("default")),
            json!({"verb": "create", "resource": "gameservers", "namespace": "default", "name": null})
        );
        assert_eq!(
            review("create", "gameserver/console", Some("a"), Some("games")),
            json!({"verb": "create", "resource": "gameservers/console", "namespace": "games", "name": "a"})
        );
        assert_eq!(
            review("list", "nodes", None, Some("default"))["namespace"],
            Value::Null
        );
        assert_eq!(review("list", "gs", None, None)["namespace"], Value::Null);
        assert_eq!(
            review("get", "metrics", None, Some("x"))["resource"],
            "metrics"
        );
    }
}
