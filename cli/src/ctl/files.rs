//! `files ls|cat|rm|mkdir|chmod NAME PATH`, `files mv|cp NAME FROM TO`, `files put NAME LOCAL
//! REMOTE`, `files get NAME REMOTE LOCAL` (scp's order), `files archive NAME DEST PATH…`,
//! `files extract NAME ARCHIVE [DIR]`, `files pull NAME URL DEST`: a GameServer's files through
//! the API server's file API. A refused request prints the server's message and exits 1.

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::{CtlError, Outcome};
use super::out::Out;
use crate::client::Client;

/// Arguments of `files`.
#[derive(Debug, Clone, clap::Args)]
pub struct FilesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: FilesCommand,
}

/// The `files` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum FilesCommand {
    /// List a directory (default `/`, the server's data directory).
    Ls {
        /// The GameServer.
        name: String,
        /// The directory.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Print a file.
    Cat {
        /// The GameServer.
        name: String,
        /// The file.
        path: String,
    },
    /// Remove a file, or a directory with -r.
    Rm {
        /// The GameServer.
        name: String,
        /// The entry.
        path: String,
        /// Remove a directory and its contents.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Make a directory and its missing parents.
    Mkdir {
        /// The GameServer.
        name: String,
        /// The directory.
        path: String,
    },
    /// Change permission bits (octal, e.g. 644); a link is never followed.
    Chmod {
        /// The GameServer.
        name: String,
        /// The bits, in octal.
        mode: String,
        /// The entry.
        path: String,
    },
    /// Rename or move an entry.
    Mv {
        /// The GameServer.
        name: String,
        /// What.
        from: String,
        /// Where to.
        to: String,
        /// Replace what is at TO.
        #[arg(short, long)]
        force: bool,
    },
    /// Copy a file or a directory tree.
    Cp {
        /// The GameServer.
        name: String,
        /// What.
        from: String,
        /// Where to.
        to: String,
    },
    /// Upload a local file (`-` for stdin), replacing REMOTE atomically.
    Put {
        /// The GameServer.
        name: String,
        /// The local file.
        local: String,
        /// The path in the server's files.
        remote: String,
    },
    /// Download a file to LOCAL (`-` for stdout).
    Get {
        /// The GameServer.
        name: String,
        /// The path in the server's files.
        remote: String,
        /// The local file.
        local: String,
    },
    /// Pack entries into an archive (tar.gz, tar.zst or zip, by DEST's name).
    Archive {
        /// The GameServer.
        name: String,
        /// The archive to write.
        dest: String,
        /// What to pack.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Unpack an archive into a directory (default `/`).
    Extract {
        /// The GameServer.
        name: String,
        /// The archive.
        archive: String,
        /// Where to.
        #[arg(default_value = "/")]
        dir: String,
    },
    /// Download a URL (http or https, public hosts only) into the server's files.
    Pull {
        /// The GameServer.
        name: String,
        /// What to fetch.
        url: String,
        /// The file to write.
        dest: String,
    },
}

fn files_path(ns: &str, name: &str) -> String {
    format!("/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}/files")
}

fn contents_path(ns: &str, name: &str) -> String {
    format!("/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}/filecontents")
}

/// One line of `ls`: type and mode, size, time, name (and a link's target).
fn ls_line(e: &Value) -> String {
    let kind = match e.get("kind").and_then(Value::as_str) {
        Some("directory") => 'd',
        Some("symlink") => 'l',
        Some("file") => '-',
        _ => '?',
    };
    let mode = e.get("mode").and_then(Value::as_u64).unwrap_or(0) as u32;
    let mut perms = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let size = e.get("size").and_then(Value::as_u64).unwrap_or(0);
    let modified = e
        .get("modified")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
    let mut line = format!("{kind}{perms} {size:>12} {modified} {name}");
    if let Some(target) = e.get("linkTarget").and_then(Value::as_str) {
        line.push_str(&format!(" -> {target}"));
    }
    line
}

impl FilesArgs {
    /// Runs the subcommand; a refused request is said on stderr (status 1).
    ///
    /// # Errors
    /// A local file that cannot be read or written, a broken download, a closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        match self.command.run(client, ns, out).await {
            Err(CtlError::Client(e)) => {
                out.note(e);
                Ok(1)
            }
            other => other,
        }
    }
}

impl FilesCommand {
    async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let send = |method: Method, name: &str, query: Vec<(&str, &str)>, body: Option<Value>| {
            let mut req = client.request(method, &files_path(ns, name)).query(&query);
            if let Some(b) = body {
                req = req.json(&b);
            }
            client.send(req)
        };
        match self {
            FilesCommand::Ls { name, path } => {
                let mut after: Option<String> = None;
                loop {
                    let mut query = vec![("path", path.as_str()), ("limit", "1000")];
                    if let Some(a) = &after {
                        query.push(("after", a.as_str()));
                    }
                    let (_, listing) = send(Method::GET, name, query, None).await?;
                    for e in listing
                        .get("items")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        out.line(ls_line(e))?;
                    }
                    match listing.get("next").and_then(Value::as_str) {
                        Some(n) => after = Some(n.to_owned()),
                        None => break,
                    }
                }
            }
            FilesCommand::Cat { name, path } => {
                download(client, ns, name, path, None, out).await?;
            }
            FilesCommand::Get {
                name,
                remote,
                local,
            } => {
                let local = (local != "-").then_some(local.as_str());
                let bytes = download(client, ns, name, remote, local, out).await?;
                if let Some(l) = local {
                    out.note(format_args!("{remote} -> {l} ({bytes} bytes)"));
                }
            }
            FilesCommand::Rm {
                name,
                path,
                recursive,
            } => {
                let r = if *recursive { "true" } else { "false" };
                let query = vec![("path", path.as_str()), ("recursive", r)];
                send(Method::DELETE, name, query, None).await?;
                out.line(format_args!("removed {path}"))?;
            }
            FilesCommand::Mkdir { name, path } => {
                let query = vec![("path", path.as_str()), ("op", "mkdir")];
                send(Method::POST, name, query, None).await?;
                out.line(format_args!("created {path}"))?;
            }
            FilesCommand::Chmod { name, mode, path } => {
                let body = json!({ "mode": mode });
                send(Method::PATCH, name, vec![("path", path)], Some(body)).await?;
                out.line(format_args!("mode of {path} is {mode}"))?;
            }
            FilesCommand::Mv {
                name,
                from,
                to,
                force,
            } => {
                let body = json!({ "to": to, "replace": force });
                send(Method::PATCH, name, vec![("path", from)], Some(body)).await?;
                out.line(format_args!("moved {from} -> {to}"))?;
            }
            FilesCommand::Cp { name, from, to } => {
                let query = vec![("path", from.as_str()), ("op", "copy"), ("to", to)];
                send(Method::POST, name, query, None).await?;
                out.line(format_args!("copied {from} -> {to}"))?;
            }
            FilesCommand::Put {
                name,
                local,
                remote,
            } => {
                let (entry, bytes) = upload(client, ns, name, local, remote).await?;
                let size = entry.get("size").and_then(Value::as_u64).unwrap_or(bytes);
                out.line(format_args!("{local} -> {remote} ({size} bytes)"))?;
            }
            FilesCommand::Archive { name, dest, paths } => {
                let body = json!({ "paths": paths, "dest": dest });
                let query = vec![("op", "compress")];
                let (_, entry) = send(Method::POST, name, query, Some(body)).await?;
                let size = entry.get("size").and_then(Value::as_u64).unwrap_or(0);
                out.line(format_args!("packed {dest} ({size} bytes)"))?;
            }
            FilesCommand::Extract { name, archive, dir } => {
                let query = vec![("path", archive.as_str()), ("op", "extract"), ("to", dir)];
                let (_, report) = send(Method::POST, name, query, None).await?;
                let n = |k: &str| report.get(k).and_then(Value::as_u64).unwrap_or(0);
                out.line(format_args!(
                    "unpacked {archive} into {dir}: {} files, {} directories, {} bytes",
                    n("files"),
                    n("directories"),
                    n("bytes")
                ))?;
            }
            FilesCommand::Pull { name, url, dest } => {
                let body = json!({ "url": url, "dest": dest });
                let query = vec![("op", "pull")];
                let (_, entry) = send(Method::POST, name, query, Some(body)).await?;
                let size = entry.get("size").and_then(Value::as_u64).unwrap_or(0);
                out.line(format_args!("{url} -> {dest} ({size} bytes)"))?;
            }
        }
        Ok(0)
    }
}

/// Streams a file to `local` (or stdout); the bytes written.
async fn download(
    client: &Client,
    ns: &str,
    name: &str,
    remote: &str,
    local: Option<&str>,
    out: &mut Out,
) -> Result<u64, CtlError> {
    let path = format!(
        "{}?{}",
        contents_path(ns, name),
        serde_urlencoded_path(remote)
    );
    save(client, &path, local, out).await
}

/// Streams the body of `GET path` to `local` (or stdout); the bytes written.
pub(super) async fn save(
    client: &Client,
    path: &str,
    local: Option<&str>,
    out: &mut Out,
) -> Result<u64, CtlError> {
    let resp = client.stream(path).await?;
    let mut file = match local {
        Some(l) => Some(
            tokio::fs::File::create(l)
                .await
                .map_err(|source| CtlError::Read {
                    what: l.to_owned(),
                    source,
                })?,
        ),
        None => None,
    };
    let mut body = resp.bytes_stream();
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|source| CtlError::Stream {
            what: "file",
            source,
        })?;
        written += chunk.len() as u64;
        match (&mut file, local) {
            (Some(f), Some(l)) => f.write_all(&chunk).await.map_err(|source| CtlError::Read {
                what: l.to_owned(),
                source,
            })?,
            _ => out.bytes(&chunk)?,
        }
    }
    if let (Some(mut f), Some(l)) = (file, local) {
        f.flush().await.map_err(|source| CtlError::Read {
            what: l.to_owned(),
            source,
        })?;
    }
    Ok(written)
}

/// `path=…` URL-encoded.
fn serde_urlencoded_path(p: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a URL");
    url.query_pairs_mut().append_pair("path", p);
    url.query().unwrap_or_default().to_owned()
}

/// Streams `local` (or stdin) to the server in chunks; the new entry and the bytes sent.
async fn upload(
    client: &Client,
    ns: &str,
    name: &str,
    local: &str,
    remote: &str,
) -> Result<(Value, u64), CtlError> {
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if local == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(local)
                .await
                .map_err(|source| CtlError::Read {
                    what: local.to_owned(),
                    source,
                })?,
        )
    };
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    let stream = futures::stream::unfold(reader, move |mut r| {
        let counter = counter.clone();
        async move {
            let mut buf = vec![0u8; 256 * 1024];
            match r.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    Some((Ok::<_, std::io::Error>(buf), r))
                }
                Err(e) => Some((Err(e), r)),
            }
        }
    });
    let req = client
        .request(Method::PUT, &files_path(ns, name))
        .query(&[("path", remote)])
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream));
    let (_, entry) = client.send(req).await?;
    Ok((entry, sent.load(std::sync::atomic::Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_lines_read_like_ls() {
        let e = json!({"name": "server.properties", "kind": "file", "size": 1234, "mode": 0o644,
            "modified": "2026-11-30T10:00:00Z"});
        assert_eq!(
            ls_line(&e),
            "-rw-r--r--         1234 2026-11-30 10:00 server.properties"
        );
        let l = json!({"name": "etc", "kind": "symlink", "size": 4, "mode": 0o777,
            "modified": "2026-11-30T10:00:00Z", "linkTarget": "/etc"});
        assert!(ls_line(&l).ends_with("etc -> /etc"));
    }

    #[test]
    fn paths_are_encoded_in_the_query() {
        assert_eq!(serde_urlencoded_path("/a b/c&d"), "path=%2Fa+b%2Fc%26d");
    }
}
