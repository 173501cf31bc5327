//! `delete`: objects by file or by kind and name, optionally waiting until they are gone.

use std::time::Duration;

use catalyst_schemas::KindInfo;
use reqwest::Method;

use super::error::{CtlError, Outcome};
use super::manifest::read_manifests;
use super::out::Out;
use super::target::kind_and_name;
use crate::client::{object_path, Client};

/// How often `delete --wait` looks whether an object is gone.
const GONE_POLL: Duration = Duration::from_millis(250);

/// Arguments of `delete`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeleteArgs {
    /// Files or directories of the objects to delete.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// KIND NAME or KIND/NAME.
    pub target: Vec<String>,
    /// Wait until the objects are gone.
    #[arg(long)]
    pub wait: bool,
}

impl DeleteArgs {
    /// Deletes each object, printing `kind/name deleted`; failures go to stderr and make the
    /// status 1.
    ///
    /// # Errors
    /// Neither or both of files and a target, unreadable files, failures while waiting.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        if self.files.is_empty() == self.target.is_empty() {
            return Err(CtlError::Usage("give -f FILE or KIND NAME".into()));
        }
        let mut targets: Vec<(&'static KindInfo, Option<String>, String)> = Vec::new();
        if self.files.is_empty() {
            let (kind, name) = kind_and_name(
                self.target.first().map(String::as_str).unwrap_or(""),
                self.target.get(1).map(String::as_str),
            )?;
            targets.push((kind, kind.namespaced.then(|| ns.to_owned()), name));
        } else {
            // an egg only needs its name here: no image map, no warnings
            for m in read_manifests(&self.files, true, &Default::default(), &mut |_| {})? {
                targets.push((
                    m.kind,
                    m.namespace(ns).map(str::to_owned),
                    m.name().to_owned(),
                ));
            }
        }
        let mut failed = false;
        for (kind, namespace, name) in targets {
            let path = object_path(kind, namespace.as_deref(), &name);
            match client.send(client.request(Method::DELETE, &path)).await {
                Ok(_) => {
                    out.line(format_args!("{}/{name} deleted", kind.singular))?;
                    if self.wait {
                        wait_gone(client, &path).await?;
                    }
                }
                Err(e) => {
                    out.note(e);
                    failed = true;
                }
            }
        }
        Ok(i32::from(failed))
    }
}

/// Polls until `path` answers 404.
async fn wait_gone(client: &Client, path: &str) -> Result<(), CtlError> {
    loop {
        match client.get(path).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(_) => tokio::time::sleep(GONE_POLL).await,
        }
    }
}
