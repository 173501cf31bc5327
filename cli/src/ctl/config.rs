//! `config get-contexts`, `config use-context NAME`, `config current-context`,
//! `config set-servers URL[,URL…]`: the contexts of the client config file.

use std::path::Path;

use super::error::{CtlError, Outcome};
use super::out::Out;
use crate::client::ConfigFile;

/// Arguments of `config`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The `config` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConfigCommand {
    /// List the contexts; `*` marks the one in use.
    GetContexts,
    /// Make a context the current one.
    UseContext {
        /// The context.
        name: String,
    },
    /// Print the name of the context in use.
    CurrentContext,
    /// Set the servers of the context in use (`--context`, else the current one): servers
    /// sharing one store, as a comma list or several arguments; the first becomes its
    /// `server`, the others its `servers`. Calls fail over between them.
    SetServers {
        /// The server URLs.
        #[arg(required = true, value_delimiter = ',')]
        urls: Vec<String>,
    },
}

/// The `get-contexts` table of `file`, `*` on the context in use (`chosen`, else the
/// current one).
pub fn table(file: &ConfigFile, chosen: Option<&str>) -> String {
    let current = file.current_name(chosen);
    let mut rows = vec![[
        "CURRENT".to_owned(),
        "NAME".to_owned(),
        "SERVER".to_owned(),
        "USER".to_owned(),
        "NAMESPACE".to_owned(),
    ]];
    for c in file.contexts() {
        let mark = if current.as_deref() == Some(c.name.as_str()) {
            "*"
        } else {
            ""
        };
        let user = match (&c.user, &c.token) {
            (_, None) => "(logged out)".to_owned(),
            (Some(u), Some(_)) => u.clone(),
            (None, Some(_)) => String::new(),
        };
        rows.push([
            mark.to_owned(),
            c.name.clone(),
            c.urls().join(","),
            user,
            c.namespace.unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("   ").trim_end());
        text.push('\n');
    }
    text
}

/// The name and context of `file` (read from `path`) in use: `chosen` (`--context`), else the
/// current one.
///
/// # Errors
/// A file without contexts, an unknown context.
pub fn in_use(
    file: &ConfigFile,
    path: &Path,
    chosen: Option<&str>,
) -> Result<(String, crate::client::Context), CtlError> {
    let name = file
        .current_name(chosen)
        .ok_or_else(|| CtlError::Usage(format!("{}: no contexts", path.display())))?;
    let ctx = file
        .context(&name)
        .ok_or_else(|| CtlError::Usage(format!("no context {name:?}")))?;
    Ok((name, ctx))
}

impl ConfigArgs {
    /// Lists, switches or names contexts of the file at `path`; `chosen` is `--context`.
    ///
    /// # Errors
    /// An unreadable or unwritable config, an unknown context.
    pub fn run(&self, path: &Path, chosen: Option<&str>, out: &mut Out) -> Outcome {
        let mut file = ConfigFile::read(path)?;
        match &self.command {
            ConfigCommand::GetContexts => out.print(&table(&file, chosen))?,
            ConfigCommand::CurrentContext => match file.current_name(chosen) {
                Some(name) => out.line(name)?,
                None => return Err(CtlError::Usage(format!("{}: no contexts", path.display()))),
            },
            ConfigCommand::UseContext { name } => {
                if file.context(name).is_none() {
                    let known: Vec<String> = file.contexts().into_iter().map(|c| c.name).collect();
                    return Err(CtlError::Usage(format!(
                        "no context {name:?} in {} (known: {})",
                        path.display(),
                        known.join(", ")
                    )));
                }
                file.current_context = Some(name.clone());
                file.write(path)?;
                out.line(format_args!("Switched to context {name}"))?;
            }
            ConfigCommand::SetServers { urls } => {
                let urls = crate::client::servers::merge(urls.iter().map(String::as_str));
                let (name, mut ctx) = in_use(&file, path, chosen)?;
                let Some((first, rest)) = urls.split_first() else {
                    return Err(CtlError::Usage("no server URL given".into()));
                };
                ctx.server = first.clone();
                ctx.servers = rest.to_vec();
                file.set_context(ctx);
                file.write(path)?;
                out.line(format_args!("Context {name}: servers {}", urls.join(", ")))?;
            }
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_marks_the_context_in_use_and_logged_out_ones() {
        let file = ConfigFile::parse(
            "currentContext: b\ncontexts:\n- {name: a, server: 'https://a:1', token: t}\n- {name: b, server: 'https://b:1', user: alice, namespace: games}\n",
        )
        .unwrap();
        assert_eq!(
            table(&file, None),
            "CURRENT   NAME   SERVER        USER           NAMESPACE\n\
             \x20         a      https://a:1\n\
             *         b      https://b:1   (logged out)   games\n"
        );
        assert!(table(&file, Some("a"))
            .lines()
            .nth(1)
            .unwrap()
            .starts_with('*'));
    }
}
