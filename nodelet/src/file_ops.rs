//! The file calls that come down the tunnel (`catalyst_schemas::tunnel::FileCall`), served
//! through the one path layer ([`crate::files`]) as the server's own uid. Reads stream data
//! chunks as the API server makes room for them (`ack`); writes take data chunks from the
//! tunnel's read loop and acknowledge each one written, so neither side holds more than
//! [`FILE_WINDOW`] chunks of a transfer.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use catalyst_schemas::tunnel::{Answer, BackupCall, FileCall, FILE_CHUNK_BYTES, FILE_WINDOW};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use crate::backup::{s3, BackupError, Backups, Made};
use crate::files::archive::{self, ArchiveFormat, ExtractLimits};
use crate::files::pull::{self, PullPolicy};
use crate::files::{EntryKind, FsError, Root, UPLOAD_PREFIX};
use crate::runtime::Runtime;
use crate::tunnel::StreamTx;

/// Entries per page when a listing asks for no limit, and the most one may ask for.
pub const LIST_PAGE: usize = 1000;
/// The most entries a page may have.
pub const LIST_PAGE_MAX: usize = 10_000;
/// The most bytes of entries a page may have: a page is one tunnel frame
/// (`MAX_FRAME_BYTES`, 1 MiB), so a longer one is cut short and continues at `next`.
pub const LIST_PAGE_BYTES: usize = 768 * 1024;

/// Where a transfer's data chunks and room arrive from the tunnel's read loop.
#[derive(Debug)]
pub struct Inbox {
    /// Data chunks of an upload (an empty one ends it).
    pub data: mpsc::Receiver<Vec<u8>>,
    /// Room for data chunks of a download.
    pub credits: Arc<Semaphore>,
}

/// The read loop's side of an [`Inbox`].
#[derive(Debug, Clone)]
pub struct InboxTx {
    /// Data chunks of an upload.
    pub data: mpsc::Sender<Vec<u8>>,
    /// Room for data chunks of a download.
    pub credits: Arc<Semaphore>,
}

/// A new inbox: room for [`FILE_WINDOW`] chunks each way.
pub fn inbox() -> (InboxTx, Inbox) {
    let (tx, rx) = mpsc::channel(FILE_WINDOW as usize + 1);
    let credits = Arc::new(Semaphore::new(FILE_WINDOW as usize));
    (
        InboxTx {
            data: tx,
            credits: credits.clone(),
        },
        Inbox { data: rx, credits },
    )
}

/// A failure as the tunnel answers it.
fn failed(e: &FsError) -> Answer {
    Answer::Failed {
        code: e.status(),
        error: e.to_string(),
    }
}

/// Runs a blocking path-layer call off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FsError::Io {
            path: "/".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// The data directory of server `uid`, held open as the server's host uid and gid.
///
/// # Errors
/// [`FsError::NotFound`] when the server has no files on this node.
pub async fn root_of(rt: &Runtime, uid: &str) -> Result<Root, FsError> {
    let missing = || FsError::NotFound {
        path: "/ (the server has no files on this node)".into(),
    };
    if uid.is_empty() || uid.contains(['/', '.', '\0']) {
        return Err(missing());
    }
    let dir = rt.server_dir(uid);
    if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return Err(missing());
    }
    let range = rt.ids.claim(&dir).map_err(|e| FsError::Io {
        path: "/".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let uid = range.host(rt.uid).unwrap_or(range.start);
    let gid = range.host(rt.gid).unwrap_or(range.start);
    blocking(move || Root::open(&dir, uid, gid)).await
}

/// Serves one file call for server `uid`; its answers go to `tx`.
pub async fn serve(rt: Arc<Runtime>, uid: String, call: FileCall, tx: StreamTx, inbox: Inbox) {
    let root = match root_of(&rt, &uid).await {
        Ok(mut r) => {
            // a user's call: the Template's fileDenylist applies
            r.set_denylist(rt.denylist(&uid));
            Arc::new(r)
        }
        Err(e) => {
            let _ = tx.send(failed(&e)).await;
            return;
        }
    };
    let answer = match call {
        FileCall::Read {
            path,
            start,
            end,
            suffix,
        } => match read(root, path, (start, end, suffix), &tx, inbox).await {
            Ok(()) => Answer::End { result: None },
            Err(e) => failed(&e),
        },
        FileCall::Write { path, mode } => match write(root, path, mode, &tx, inbox).await {
            Ok(entry) => Answer::End {
                result: Some(entry),
            },
            Err(e) => failed(&e),
        },
        call => match simple(root, call).await {
            Ok(result) => Answer::End {
                result: Some(result),
            },
            Err(e) => failed(&e),
        },
    };
    let _ = tx.send(answer).await;
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The calls that answer once.
async fn simple(root: Arc<Root>, call: FileCall) -> Result<Value, FsError> {
    match call {
        FileCall::List { path, after, limit } => {
            let limit = limit.unwrap_or(LIST_PAGE).clamp(1, LIST_PAGE_MAX);
            let mut listing = blocking(move || root.list(&path, after.as_deref(), limit)).await?;
            listing.items.retain(|e| !e.name.starts_with(UPLOAD_PREFIX));
            // a page must fit in one tunnel frame: cut it short (and continue from there)
            let mut bytes = 0;
            let fits = listing.items.iter().position(|e| {
                bytes += serde_json::to_vec(e).map_or(0, |v| v.len()) + 1;
                bytes > LIST_PAGE_BYTES
            });
            if let Some(n) = fits {
                listing.items.truncate(n.max(1));
                listing.next = listing.items.last().map(|e| match e.kind {
                    EntryKind::Directory => format!("{}/", e.name),
                    _ => e.name.clone(),
                });
            }
            Ok(to_value(listing))
        }
        FileCall::Stat { path } => Ok(to_value(blocking(move || root.stat(&path)).await?)),
        FileCall::Mkdir { path } => blocking(move || {
            root.mkdir_all(&path)?;
            root.stat(&path)
        })
        .await
        .map(to_value),
        FileCall::Rename { from, to, replace } => blocking(move || {
            root.rename(&from, &to, replace)?;
            root.stat(&to)
        })
        .await
        .map(to_value),
        FileCall::Copy { from, to } => blocking(move || {
            root.copy(&from, &to)?;
            root.stat(&to)
        })
        .await
        .map(to_value),
        FileCall::Remove { path, recursive } => {
            blocking(move || root.remove(&path, recursive)).await?;
            Ok(Value::Null)
        }
        FileCall::Chmod { path, mode } => blocking(move || {
            root.chmod(&path, mode)?;
            root.stat(&path)
        })
        .await
        .map(to_value),
        FileCall::Compress {
            paths,
            dest,
            format,
        } => {
            let format = match format.as_deref() {
                None => None,
                Some(f) => Some(ArchiveFormat::parse(f).ok_or_else(|| FsError::Invalid {
                    path: dest.clone(),
                    why: format!("unknown archive format {f:?} (tar, tar.gz, tar.zst, zip)"),
                })?),
            };
            blocking(move || archive::compress(&root, &paths, &dest, format))
                .await
                .map(to_value)
        }
        FileCall::Extract { path, dest } => {
            blocking(move || archive::extract(&root, &path, &dest, &ExtractLimits::default()))
                .await
                .map(to_value)
        }
        FileCall::Pull { url, dest } => pull::pull(root, &url, &dest, &PullPolicy::default())
            .await
            .map(to_value),
        FileCall::Read { .. } | FileCall::Write { .. } => unreachable!("streamed calls"),
    }
}

/// The byte range `(start, length)` of a file of `size` bytes that an HTTP range names, or
/// why not (416).
fn resolve_range(
    path: &str,
    size: u64,
    (start, end, suffix): (Option<u64>, Option<u64>, Option<u64>),
) -> Result<(u64, u64), FsError> {
    let unsatisfiable = || FsError::RangeNotSatisfiable {
        path: path.to_owned(),
        size,
    };
    match (start, end, suffix) {
        (None, None, None) => Ok((0, size)),
        (None, None, Some(n)) => {
            if n == 0 {
                return Err(unsatisfiable());
            }
            let n = n.min(size);
            Ok((size - n, n))
        }
        (Some(a), end, None) => {
            if a >= size {
                return Err(unsatisfiable());
            }
            let last = end.unwrap_or(u64::MAX).min(size - 1);
            if last < a {
                return Err(unsatisfiable());
            }
            Ok((a, last - a + 1))
        }
        _ => Err(unsatisfiable()),
    }
}

/// Streams a file: `Opened` with the entry and range, then data chunks as room is made.
async fn read(
    root: Arc<Root>,
    path: String,
    range: (Option<u64>, Option<u64>, Option<u64>),
    tx: &StreamTx,
    inbox: Inbox,
) -> Result<(), FsError> {
    let p = path.clone();
    let (file, entry) = blocking(move || root.open_read(&p)).await?;
    let (start, length) = resolve_range(&path, entry.size, range)?;
    let opened = json!({"entry": entry, "size": entry.size, "start": start, "length": length});
    stream(file, path, opened, (start, length), tx, inbox).await
}

/// Sends `opened`, then `length` bytes of `file` from `start` as room is made.
async fn stream(
    mut file: std::fs::File,
    path: String,
    opened: Value,
    (start, length): (u64, u64),
    tx: &StreamTx,
    inbox: Inbox,
) -> Result<(), FsError> {
    tx.send(Answer::Opened(opened))
        .await
        .map_err(|_| closed(&path))?;
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| FsError::from_io(&path, e))?;
    }
    let mut left = length;
    let mut file = Some(file);
    while left > 0 {
        // room for one more chunk at the API server
        inbox
            .credits
            .acquire()
            .await
            .map_err(|_| closed(&path))?
            .forget();
        let want = left.min(FILE_CHUNK_BYTES as u64) as usize;
        let mut f = file.take().expect("the file is back after each chunk");
        let p = path.clone();
        let (f, chunk) = blocking(move || {
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                match f.read(&mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(FsError::from_io(&p, e)),
                }
            }
            buf.truncate(got);
            Ok((f, buf))
        })
        .await?;
        file = Some(f);
        if chunk.is_empty() {
            // the file shrank while it was read: the promised length cannot be kept
            return Err(FsError::Invalid {
                path,
                why: "the file changed while it was read".into(),
            });
        }
        left -= chunk.len() as u64;
        tx.send(Answer::Data(chunk))
            .await
            .map_err(|_| closed(&path))?;
    }
    Ok(())
}

fn closed(path: &str) -> FsError {
    FsError::Io {
        path: path.to_owned(),
        source: std::io::Error::other("the tunnel closed"),
    }
}

/// Replaces a file atomically with the data chunks that arrive; answers the new entry.
async fn write(
    root: Arc<Root>,
    path: String,
    mode: Option<u32>,
    tx: &StreamTx,
    mut inbox: Inbox,
) -> Result<Value, FsError> {
    let p = path.clone();
    let r = root.clone();
    let atomic = blocking(move || {
        // an upload makes its missing parent directories, as mkdir -p would
        let clean = Root::clean(&p)?;
        if let Some((parent, _)) = clean.rsplit_once('/') {
            r.mkdir_all(parent)?;
        }
        r.write_atomic(&p, mode)
    })
    .await?;
    tx.send(Answer::Opened(json!({})))
        .await
        .map_err(|_| closed(&path))?;
    let mut atomic = Some(atomic);
    loop {
        let Some(chunk) = inbox.data.recv().await else {
            return Err(closed(&path));
        };
        let mut f = atomic.take().expect("the file is back after each chunk");
        if chunk.is_empty() {
            let entry = blocking(move || f.commit()).await?;
            return Ok(to_value(entry));
        }
        let p = path.clone();
        let f = blocking(move || {
            f.write_all(&chunk).map_err(|e| FsError::from_io(&p, e))?;
            Ok(f)
        })
        .await?;
        atomic = Some(f);
        tx.send(Answer::Ack(1)).await.map_err(|_| closed(&path))?;
    }
}

/// Serves one call on the node's backups; its answers go to `tx`.
pub async fn serve_backup(rt: Arc<Runtime>, call: BackupCall, tx: StreamTx, inbox: Inbox) {
    let backups = Backups::new(&rt.data_dir.join("backups"));
    let answer = match backup_call(&rt, backups, call, &tx, inbox).await {
        Ok(Some(result)) => Answer::End {
            result: Some(result),
        },
        Ok(None) => Answer::End { result: None },
        Err(e) => Answer::Failed {
            code: e.status(),
            error: e.to_string(),
        },
    };
    let _ = tx.send(answer).await;
}

/// Runs a blocking backup call off the runtime.
async fn blocking_backup<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Io {
            id: String::new(),
            source: std::io::Error::other(e.to_string()),
        })?
}

async fn backup_call(
    rt: &Arc<Runtime>,
    backups: Backups,
    call: BackupCall,
    tx: &StreamTx,
    inbox: Inbox,
) -> Result<Option<Value>, BackupError> {
    match call {
        BackupCall::Create {
            uid,
            id,
            ignore,
            everything,
            s3: Some(target),
        } => {
            // the endpoint is checked before anything is packed
            let object = s3::open(&target, &rt.backup_endpoint_allow).await?;
            let patterns = (!everything).then_some(ignore);
            let made = pack(rt, backups.clone(), uid.clone(), id.clone(), patterns, tx).await?;
            let result = upload(&backups, &object, &uid, &id, made.size, tx).await;
            // the archive lives in the bucket only, also when the upload failed
            let _ = blocking_backup(move || backups.remove(&uid, &id)).await;
            result?;
            tracing::info!(object = object.shown, bytes = made.size, "backup uploaded");
            Ok(Some(to_value(made)))
        }
        BackupCall::Create {
            uid,
            id,
            ignore,
            everything,
            s3: None,
        } => pack(rt, backups, uid, id, (!everything).then_some(ignore), tx)
            .await
            .map(|m| Some(to_value(m))),
        BackupCall::Restore {
            uid,
            from,
            id,
            sha256,
            truncate,
            s3: Some(target),
        } => {
            let object = s3::open(&target, &rt.backup_endpoint_allow).await?;
            let root = root_of(rt, &uid).await?;
            let dest = backups.archive_path(&from, &id)?;
            let io_err = |source| BackupError::Io {
                id: id.clone(),
                source,
            };
            let parent = dest
                .parent()
                .map(std::path::Path::to_owned)
                .unwrap_or_default();
            tokio::fs::create_dir_all(&parent).await.map_err(io_err)?;
            let downloaded = object.download(&dest).await;
            let result = match downloaded {
                Ok((_, actual)) if !actual.eq_ignore_ascii_case(&sha256) => {
                    Err(BackupError::Checksum {
                        id: id.clone(),
                        expected: sha256.clone(),
                        actual,
                    })
                }
                Ok(_) => {
                    let (b, f, i) = (backups.clone(), from.clone(), id.clone());
                    blocking_backup(move || b.restore(&root, &f, &i, &sha256, truncate)).await
                }
                Err(e) => Err(e),
            };
            // the download goes, whatever happened
            let _ = blocking_backup(move || backups.remove(&from, &id)).await;
            result.map(|r| Some(to_value(r)))
        }
        BackupCall::Remove {
            s3: Some(target), ..
        } => {
            let object = s3::open(&target, &rt.backup_endpoint_allow).await?;
            let removed = object.delete().await?;
            Ok(Some(json!({ "removed": removed })))
        }
        BackupCall::Read {
            id,
            start,
            end,
            suffix,
            s3: Some(target),
            ..
        } => {
            let object = s3::open(&target, &rt.backup_endpoint_allow).await?;
            let shown = format!("backup {id}");
            let size = object.size().await?;
            let (start, length) = resolve_range(&shown, size, (start, end, suffix))?;
            let opened = json!({"size": size, "start": start, "length": length});
            tx.send(Answer::Opened(opened))
                .await
                .map_err(|_| closed(&shown))?;
            if length > 0 {
                let chunks = object.range(start, length).await?;
                send_chunks(chunks, length, &shown, tx, inbox).await?;
            }
            Ok(None)
        }
        BackupCall::Restore {
            uid,
            from,
            id,
            sha256,
            truncate,
            s3: None,
        } => {
            let root = root_of(rt, &uid).await?;
            blocking_backup(move || backups.restore(&root, &from, &id, &sha256, truncate))
                .await
                .map(|r| Some(to_value(r)))
        }
        BackupCall::Remove { from, id, s3: None } => {
            let removed = blocking_backup(move || backups.remove(&from, &id)).await?;
            Ok(Some(json!({ "removed": removed })))
        }
        BackupCall::Read {
            from,
            id,
            start,
            end,
            suffix,
            s3: None,
        } => {
            let shown = format!("backup {id}");
            let (file, size) = blocking_backup(move || backups.open(&from, &id)).await?;
            let (start, length) = resolve_range(&shown, size, (start, end, suffix))?;
            let opened = json!({"size": size, "start": start, "length": length});
            stream(file, shown, opened, (start, length), tx, inbox).await?;
            Ok(None)
        }
        BackupCall::Receive {
            uid,
            id,
            size,
            sha256,
        } => receive(backups, uid, id, size, sha256, tx, inbox).await,
        BackupCall::Adopt { server, id, sha256 } => adopt(rt, backups, server, id, sha256).await,
        BackupCall::Hold { uid, held } => {
            check_uid(&uid)?;
            let r = rt.clone();
            blocking_backup(move || {
                r.set_held(&uid, held)
                    .map_err(|source| BackupError::Io { id: uid, source })
            })
            .await?;
            Ok(None)
        }
        BackupCall::Release { uid } => {
            check_uid(&uid)?;
            if rt.bound.contains(&uid) {
                return Err(BackupError::Busy(format!(
                    "server {uid} is on this node: its data stays"
                )));
            }
            let there = rt.server_dir(&uid).exists() || rt.disk_image(&uid).exists();
            let r = rt.clone();
            blocking_backup(move || {
                r.set_held(&uid, false)
                    .and_then(|()| {
                        r.remove_server_data(&uid)
                            .map_err(|e| std::io::Error::other(e.to_string()))
                    })
                    .map_err(|source| BackupError::Io { id: uid, source })
            })
            .await?;
            Ok(Some(json!({ "removed": there })))
        }
    }
}

/// A server uid as the node names its directories by.
fn check_uid(uid: &str) -> Result<(), BackupError> {
    Backups::check_id(uid)
}

/// Takes an archive arriving as upload chunks (see [`BackupCall::Receive`]).
async fn receive(
    backups: Backups,
    uid: String,
    id: String,
    size: u64,
    sha256: String,
    tx: &StreamTx,
    mut inbox: Inbox,
) -> Result<Option<Value>, BackupError> {
    let closed = |id: &str| BackupError::Io {
        id: id.to_owned(),
        source: std::io::Error::other("the tunnel closed"),
    };
    let mut incoming = Some(blocking_backup(move || backups.receive(&uid, &id)).await?);
    tx.send(Answer::Opened(json!({})))
        .await
        .map_err(|_| closed(""))?;
    loop {
        let Some(chunk) = inbox.data.recv().await else {
            return Err(closed(""));
        };
        let mut r = incoming.take().expect("back after each chunk");
        if chunk.is_empty() {
            let sha = sha256.clone();
            let made = blocking_backup(move || r.finish(size, &sha)).await?;
            return Ok(Some(to_value(made)));
        }
        incoming = Some(
            blocking_backup(move || {
                r.write(&chunk, size)?;
                Ok(r)
            })
            .await?,
        );
        tx.send(Answer::Ack(1)).await.map_err(|_| closed(""))?;
    }
}

/// Makes a moving server's data directory here and restores its archive into it (see
/// [`BackupCall::Adopt`]). The data is held (kept from the clean-up of servers that are not
/// on this node) from the start: the server is not bound here yet.
async fn adopt(
    rt: &Arc<Runtime>,
    backups: Backups,
    server: Value,
    id: String,
    sha256: String,
) -> Result<Option<Value>, BackupError> {
    let bad = |why: String| BackupError::Busy(why);
    let gs: catalyst_schemas::gameserver::GameServer = serde_json::from_value(server)
        .map_err(|e| bad(format!("the server object does not parse: {e}")))?;
    let uid = gs.metadata.uid.clone().unwrap_or_default();
    check_uid(&uid)?;
    let r = rt.clone();
    let u = uid.clone();
    blocking_backup(move || {
        r.set_held(&u, true)
            .map_err(|source| BackupError::Io { id: u, source })
    })
    .await?;
    let env = crate::worker::env::Env::real(rt.clone(), &uid);
    let template = match &gs.spec.template {
        Some(name) => env
            .status
            .template(name)
            .await
            .map_err(|e| bad(format!("template {name:?}: {e}")))?,
        None => None,
    };
    let resolved = crate::spec::resolve(&gs, template.as_ref())
        .map_err(|e| bad(format!("the server's spec: {e}")))?;
    // the server's own disk, mounted, before anything is written into its directory
    let sandbox = env
        .runtime
        .sandbox(&resolved)
        .await
        .map_err(|e| bad(format!("the server's disk: {e}")))?;
    env.runtime
        .disk(&resolved, &sandbox)
        .await
        .map_err(|e| bad(format!("the server's disk: {e}")))?;
    let root = root_of(rt, &uid).await?;
    let from = uid.clone();
    blocking_backup(move || backups.restore(&root, &from, &id, &sha256, true))
        .await
        .map(|r| Some(to_value(r)))
}

/// Packs server `uid`'s data directory into local backup `id`, telling progress as it goes.
async fn pack(
    rt: &Runtime,
    backups: Backups,
    uid: String,
    id: String,
    ignore: Option<Vec<String>>,
    tx: &StreamTx,
) -> Result<Made, BackupError> {
    let root = root_of(rt, &uid).await?;
    // progress goes out as it comes, never holding the packing up
    let (ptx, prx) = tokio::sync::watch::channel(0u64);
    let job = blocking_backup(move || {
        backups.create(&root, &uid, &id, ignore.as_deref(), &|n| {
            let _ = ptx.send(n);
        })
    });
    with_progress(job, prx, tx).await
}

/// Uploads local backup `id` of server `uid` to `object`; progress answers tell the bytes
/// sent so far.
async fn upload(
    backups: &Backups,
    object: &s3::Object,
    uid: &str,
    id: &str,
    size: u64,
    tx: &StreamTx,
) -> Result<(), BackupError> {
    let (b, u, i) = (backups.clone(), uid.to_owned(), id.to_owned());
    let (file, _) = blocking_backup(move || b.open(&u, &i)).await?;
    let (ptx, prx) = tokio::sync::watch::channel(0u64);
    let tell = move |n| {
        let _ = ptx.send(n);
    };
    with_progress(object.upload(file, size, &tell), prx, tx).await
}

/// Runs `job`, sending a `Progress` answer for each count it tells through `progress` as it
/// comes (never holding the job up); its result.
async fn with_progress<T>(
    job: impl std::future::Future<Output = T>,
    mut progress: tokio::sync::watch::Receiver<u64>,
    tx: &StreamTx,
) -> T {
    tokio::pin!(job);
    loop {
        tokio::select! {
            out = &mut job => return out,
            changed = progress.changed() => {
                if changed.is_err() {
                    // the job is over: its result is all that is left
                    return (&mut job).await;
                }
                let n = *progress.borrow_and_update();
                let _ = tx.send(Answer::Progress(n)).await;
            }
        }
    }
}

/// Sends `length` bytes of `chunks` as data chunks of at most [`FILE_CHUNK_BYTES`], each as
/// room is made at the API server.
async fn send_chunks(
    mut chunks: futures::stream::BoxStream<'static, Result<bytes::Bytes, BackupError>>,
    length: u64,
    shown: &str,
    tx: &StreamTx,
    inbox: Inbox,
) -> Result<(), BackupError> {
    use futures::StreamExt;
    let mut left = length;
    let mut pending = bytes::Bytes::new();
    while left > 0 {
        if pending.is_empty() {
            match chunks.next().await {
                Some(c) => pending = c?,
                None => {
                    return Err(BackupError::Fs(FsError::Invalid {
                        path: shown.to_owned(),
                        why: "the object ended before its length".into(),
                    }))
                }
            }
            continue;
        }
        inbox
            .credits
            .acquire()
            .await
            .map_err(|_| closed(shown))?
            .forget();
        let n = pending.len().min(FILE_CHUNK_BYTES).min(left as usize);
        let chunk = pending.split_to(n);
        left -= n as u64;
        tx.send(Answer::Data(chunk.to_vec()))
            .await
            .map_err(|_| closed(shown))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_http_has_them() {
        let r = |s, e, x| resolve_range("/f", 10, (s, e, x));
        assert_eq!(r(None, None, None).unwrap(), (0, 10));
        assert_eq!(r(Some(2), Some(4), None).unwrap(), (2, 3));
        assert_eq!(r(Some(2), None, None).unwrap(), (2, 8));
        assert_eq!(r(Some(2), Some(99), None).unwrap(), (2, 8));
        assert_eq!(r(None, None, Some(3)).unwrap(), (7, 3));
        assert_eq!(r(None, None, Some(30)).unwrap(), (0, 10));
        assert!(r(Some(10), None, None).is_err());
        assert!(r(None, None, Some(0)).is_err());
        assert_eq!(resolve_range("/e", 0, (None, None, None)).unwrap(), (0, 0));
    }
}
