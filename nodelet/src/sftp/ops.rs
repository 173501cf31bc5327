//! One SFTP session (protocol version 3, with OpenSSH's `posix-rename`, `statvfs`, `fsync`
//! and `limits` extensions) over a channel: every request becomes one call of the safe path
//! layer ([`Root`]), run in `spawn_blocking`. The packets are `russh_sftp`'s; the loop is ours,
//! so that it stops the moment its connection is closed and never serves a request after.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;

use bytes::Bytes;
use russh_sftp::extensions::{
    FsyncExtension, HardlinkExtension, LimitsExtension, Statvfs, StatvfsExtension, FSYNC, HARDLINK,
    LIMITS, STATVFS,
};
use russh_sftp::protocol::{
    Attrs, Data, Extended, ExtendedReply, File as NameEntry, FileAttributes, Handle as HandleReply,
    Name, OpenFlags, Packet, Status, StatusCode, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conn::Conn;
use crate::files::{Entry, EntryKind, FsError, Root, WriteOpts};

/// The largest packet a client may send (and the one we announce), as OpenSSH's server.
pub(super) const MAX_PACKET: u32 = 256 * 1024;
/// The most data one read answers, and one write may carry.
const MAX_DATA: u32 = MAX_PACKET - 1024;
/// Directory entries fetched from the path layer at a time (one page is held per open
/// directory).
const DIR_PAGE: usize = 256;
/// Open directories per session (clients list one at a time; each holds a page).
const MAX_DIR_HANDLES: usize = 16;
/// Directory entries per `SSH_FXP_NAME` answer.
const NAMES_PER_READDIR: usize = 100;
/// The longest handle string a client may send back.
const MAX_HANDLE_LEN: usize = 32;
/// OpenSSH's `posix-rename` extension: rename that replaces the destination.
const POSIX_RENAME: &str = "posix-rename@openssh.com";

/// An open file or directory of a session.
enum Handle {
    File {
        file: Arc<std::fs::File>,
        path: String,
        read: bool,
        write: bool,
    },
    Dir {
        path: String,
        pending: VecDeque<NameEntry>,
        /// Where the next page of the path layer starts, when there is one.
        after: Option<String>,
    },
}

/// A failed request: its status code and message.
#[derive(Debug)]
struct Fail {
    code: StatusCode,
    message: String,
}

impl Fail {
    fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Fail {
            code,
            message: message.into(),
        }
    }

    fn denied(message: impl Into<String>) -> Self {
        Fail::new(StatusCode::PermissionDenied, message)
    }

    fn failure(message: impl Into<String>) -> Self {
        Fail::new(StatusCode::Failure, message)
    }
}

impl From<FsError> for Fail {
    fn from(e: FsError) -> Self {
        match e {
            FsError::NotFound { .. } => Fail::new(StatusCode::NoSuchFile, e.to_string()),
            FsError::PermissionDenied { .. }
            | FsError::Escapes { .. }
            | FsError::Refused { .. } => Fail::denied(e.to_string()),
            // as OpenSSH's server says it
            FsError::NoSpace { .. } => Fail::failure("No space left on device"),
            e => Fail::failure(e.to_string()),
        }
    }
}

type Reply = Result<Packet, Fail>;

/// One SFTP session's state.
pub(super) struct SftpSession {
    root: Arc<Root>,
    read_only: bool,
    conn: Arc<Conn>,
    handles: HashMap<String, Handle>,
    next_handle: u64,
    max_handles: usize,
    version: Option<u32>,
}

impl SftpSession {
    pub(super) fn new(root: Root, read_only: bool, conn: Arc<Conn>, max_handles: usize) -> Self {
        SftpSession {
            root: Arc::new(root),
            read_only,
            conn,
            handles: HashMap::new(),
            next_handle: 0,
            max_handles,
            version: None,
        }
    }
}

/// Serves SFTP on `stream` until the client ends it, breaks the protocol, or the connection is
/// closed (then at once: a request under way is abandoned, its answer never sent).
pub(super) async fn serve<S>(stream: S, mut sess: SftpSession)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut closed = sess.conn.closed.subscribe();
    let conn = sess.conn.clone();
    // requests are read on their own, so a client that pipelines reads (OpenSSH: 64 at once)
    // is always heard while an answer waits for the channel's window; if reading stopped while
    // writing waited, the SSH session could not take the client's window adjustments and both
    // would wait for ever
    let (queued, mut requests) = tokio::sync::mpsc::channel::<std::io::Result<Option<Bytes>>>(256);
    let reader = tokio::spawn(async move {
        loop {
            let r = read_packet(&mut rd).await;
            let last = !matches!(r, Ok(Some(_)));
            if queued.send(r).await.is_err() || last {
                break;
            }
        }
    });
    loop {
        if conn.is_closed() {
            break;
        }
        let next = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => break,
            r = requests.recv() => r.unwrap_or(Ok(None)),
        };
        let mut bytes = match next {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(conn = conn.id, error = %e, "SFTP stream ended");
                break;
            }
        };
        conn.touch();
        let reply = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => break,
            r = sess.request(&mut bytes) => r,
        };
        let out = match Bytes::try_from(reply) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(conn = conn.id, error = %e, "SFTP answer could not be encoded");
                break;
            }
        };
        let sent = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => break,
            r = async {
                wr.write_all(&out).await?;
                wr.flush().await
            } => r,
        };
        if sent.is_err() {
            break;
        }
        conn.touch();
    }
    reader.abort();
    if conn.is_closed() {
        // cut: the channel stays as it is (its close would race the disconnect message,
        // which says why) until the socket is shut down
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        return;
    }
    let _ = wr.shutdown().await;
}

/// One packet's body (after its length), `None` at a clean end of the stream.
async fn read_packet<R: AsyncRead + Unpin>(rd: &mut R) -> std::io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len);
    if len == 0 || len > MAX_PACKET {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("an SFTP packet of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    rd.read_exact(&mut body).await?;
    Ok(Some(Bytes::from(body)))
}

/// Runs a path-layer call off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, Fail>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, FsError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Fail::from),
        Err(e) => Err(Fail::failure(format!("internal error: {e}"))),
    }
}

/// A client path as a path of the data directory: relative paths start at `/`, `.` and empty
/// names go, and `..` never climbs above `/` (as in a chroot).
pub(super) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The parent of a normalized path (`/` for `/`).
fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// `stat` that follows symbolic links while they stay inside: a link with an absolute target,
/// or one that climbs above `/`, leads outside ([`FsError::Escapes`]).
fn stat_follow(root: &Root, path: &str) -> Result<Entry, FsError> {
    let mut path = path.to_owned();
    for _ in 0..40 {
        let e = root.stat(&path)?;
        if e.kind != EntryKind::Symlink {
            return Ok(e);
        }
        let target = match e.link_target {
            Some(t) => t,
            None => root.read_link(&path)?,
        };
        if target.starts_with('/') {
            return Err(FsError::Escapes { path });
        }
        let mut parts: Vec<&str> = parent_of(&path)
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        for name in target.split('/') {
            match name {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(FsError::Escapes { path });
                    }
                }
                name => parts.push(name),
            }
        }
        path = format!("/{}", parts.join("/"));
    }
    Err(FsError::Refused {
        path,
        why: "too many levels of symbolic links".into(),
    })
}

/// The file type bits of an entry's kind.
fn type_bits(kind: EntryKind) -> u32 {
    match kind {
        EntryKind::File => 0o100_000,
        EntryKind::Directory => 0o040_000,
        EntryKind::Symlink => 0o120_000,
        EntryKind::Other => 0,
    }
}

fn seconds(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

fn attrs_of(e: &Entry) -> FileAttributes {
    let t = seconds(e.modified.timestamp());
    FileAttributes {
        size: Some(e.size),
        uid: Some(e.uid),
        user: None,
        gid: Some(e.gid),
        group: None,
        permissions: Some(type_bits(e.kind) | (e.mode & 0o7777)),
        atime: Some(t),
        mtime: Some(t),
    }
}

fn attrs_of_meta(m: &std::fs::Metadata) -> FileAttributes {
    FileAttributes {
        size: Some(m.size()),
        uid: Some(m.uid()),
        user: None,
        gid: Some(m.gid()),
        group: None,
        permissions: Some(m.mode() & 0o177_777),
        atime: Some(seconds(m.atime())),
        mtime: Some(seconds(m.mtime())),
    }
}

/// An `ls -l` line, as clients show it.
fn longname(e: &Entry) -> String {
    let kind = match e.kind {
        EntryKind::File => '-',
        EntryKind::Directory => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Other => '?',
    };
    let mut perms = String::with_capacity(9);
    for shift in [6u32, 3, 0] {
        let bits = (e.mode >> shift) & 0o7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let recent = chrono::Utc::now().signed_duration_since(e.modified) < chrono::Duration::days(180);
    let date = if recent {
        e.modified.format("%b %e %H:%M")
    } else {
        e.modified.format("%b %e  %Y")
    };
    format!(
        "{kind}{perms}    1 {:<8} {:<8} {:>8} {date} {}",
        e.uid, e.gid, e.size, e.name
    )
}

fn name_entry(e: &Entry) -> NameEntry {
    NameEntry {
        filename: e.name.clone(),
        longname: longname(e),
        attrs: attrs_of(e),
    }
}

fn ok(id: u32) -> Packet {
    Packet::Status(Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Success".into(),
        language_tag: "en".into(),
    })
}

/// A one-name answer (realpath, readlink).
fn one_name(id: u32, name: String) -> Packet {
    Packet::Name(Name {
        id,
        files: vec![NameEntry {
            filename: name.clone(),
            longname: name,
            attrs: FileAttributes::empty(),
        }],
    })
}

/// The request id of a packet body that could not be decoded (after its type byte).
fn raw_id(bytes: &[u8]) -> u32 {
    bytes
        .get(1..5)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

impl SftpSession {
    /// Answers one packet.
    async fn request(&mut self, bytes: &mut Bytes) -> Packet {
        let raw = bytes.clone();
        let packet = match Packet::try_from(bytes) {
            Ok(p) => p,
            Err(e) => {
                let kind = raw.first().copied().unwrap_or(0);
                tracing::debug!(conn = self.conn.id, kind, error = %e, "undecodable SFTP packet");
                // types 3-20 and 200 are requests we know: malformed; the rest are unknown
                let code = if (3..=20).contains(&kind) || kind == 200 {
                    StatusCode::BadMessage
                } else {
                    StatusCode::OpUnsupported
                };
                return Packet::error(raw_id(&raw), code);
            }
        };
        if let Packet::Init(init) = packet {
            if self.version.is_some() {
                return Packet::error(0, StatusCode::BadMessage);
            }
            self.version = Some(init.version);
            let mut version = Version::new();
            for (name, v) in [
                (POSIX_RENAME, "1"),
                (STATVFS, "2"),
                (FSYNC, "1"),
                (LIMITS, "1"),
            ] {
                version.extensions.insert(name.to_owned(), v.to_owned());
            }
            return Packet::Version(version);
        }
        let id = packet.get_request_id();
        if self.version.is_none() {
            return Packet::status(id, StatusCode::BadMessage, "no SSH_FXP_INIT yet", "en");
        }
        let result = self.dispatch(packet).await;
        match result {
            Ok(p) => p,
            Err(f) => {
                tracing::debug!(conn = self.conn.id, id, code = ?f.code, message = f.message, "SFTP request failed");
                Packet::Status(Status {
                    id,
                    status_code: f.code,
                    error_message: f.message,
                    language_tag: "en".into(),
                })
            }
        }
    }

    async fn dispatch(&mut self, packet: Packet) -> Reply {
        match packet {
            Packet::Open(o) => self.open(o.id, &o.filename, o.pflags, o.attrs).await,
            Packet::Close(c) => self.close(c.id, &c.handle),
            Packet::Read(r) => self.read(r.id, &r.handle, r.offset, r.len).await,
            Packet::Write(w) => self.write(w.id, &w.handle, w.offset, w.data).await,
            Packet::Lstat(s) => self.lstat(s.id, &s.path).await,
            Packet::Stat(s) => self.stat(s.id, &s.path).await,
            Packet::Fstat(s) => self.fstat(s.id, &s.handle).await,
            Packet::SetStat(s) => self.setstat(s.id, &s.path, s.attrs).await,
            Packet::FSetStat(s) => self.fsetstat(s.id, &s.handle, s.attrs).await,
            Packet::OpenDir(o) => self.opendir(o.id, &o.path).await,
            Packet::ReadDir(r) => self.readdir(r.id, &r.handle).await,
            Packet::Remove(r) => self.remove(r.id, &r.filename).await,
            Packet::MkDir(m) => self.mkdir(m.id, &m.path, m.attrs).await,
            Packet::RmDir(r) => self.rmdir(r.id, &r.path).await,
            Packet::RealPath(r) => self.realpath(r.id, &r.path),
            Packet::Rename(r) => self.rename(r.id, &r.oldpath, &r.newpath, false).await,
            Packet::ReadLink(r) => self.readlink(r.id, &r.path).await,
            Packet::Symlink(_) => Err(Fail::denied("symbolic links can't be made over SFTP")),
            Packet::Extended(e) => self.extended(e).await,
            _ => Err(Fail::new(StatusCode::BadMessage, "not a request")),
        }
    }

    fn writable(&self) -> Result<(), Fail> {
        if self.read_only {
            return Err(Fail::denied("read-only access"));
        }
        Ok(())
    }

    fn add_handle(&mut self, handle: Handle) -> Result<String, Fail> {
        if self.handles.len() >= self.max_handles {
            return Err(Fail::failure(format!(
                "too many open files ({} at most)",
                self.max_handles
            )));
        }
        self.next_handle += 1;
        let name = self.next_handle.to_string();
        self.handles.insert(name.clone(), handle);
        Ok(name)
    }

    fn handle(&mut self, handle: &str) -> Result<&mut Handle, Fail> {
        if handle.len() > MAX_HANDLE_LEN {
            return Err(Fail::failure("invalid handle"));
        }
        self.handles
            .get_mut(handle)
            .ok_or_else(|| Fail::failure("invalid handle"))
    }

    async fn open(
        &mut self,
        id: u32,
        filename: &str,
        flags: OpenFlags,
        attrs: FileAttributes,
    ) -> Reply {
        if self.handles.len() >= self.max_handles {
            return Err(Fail::failure(format!(
                "too many open files ({} at most)",
                self.max_handles
            )));
        }
        let path = normalize(filename);
        let root = self.root.clone();
        let writes = OpenFlags::WRITE
            | OpenFlags::APPEND
            | OpenFlags::CREATE
            | OpenFlags::TRUNCATE
            | OpenFlags::EXCLUDE;
        let handle = if flags.intersects(writes) {
            self.writable()?;
            let opts = WriteOpts {
                create: flags.contains(OpenFlags::CREATE),
                truncate: flags.contains(OpenFlags::TRUNCATE),
                append: flags.contains(OpenFlags::APPEND),
                exclusive: flags.contains(OpenFlags::CREATE | OpenFlags::EXCLUDE),
                read: flags.contains(OpenFlags::READ),
                mode: attrs.permissions.map(|m| m & 0o777),
            };
            let p = path.clone();
            let file = blocking(move || root.open_write(&p, opts)).await?;
            Handle::File {
                file: Arc::new(file),
                path,
                read: opts.read,
                write: true,
            }
        } else {
            let p = path.clone();
            let (file, _) = blocking(move || root.open_read(&p)).await?;
            Handle::File {
                file: Arc::new(file),
                path,
                read: true,
                write: false,
            }
        };
        let handle = self.add_handle(handle)?;
        Ok(Packet::Handle(HandleReply { id, handle }))
    }

    fn close(&mut self, id: u32, handle: &str) -> Reply {
        self.handle(handle)?;
        self.handles.remove(handle);
        Ok(ok(id))
    }

    async fn read(&mut self, id: u32, handle: &str, offset: u64, len: u32) -> Reply {
        let Handle::File {
            file, path, read, ..
        } = self.handle(handle)?
        else {
            return Err(Fail::failure("not a file"));
        };
        if !*read {
            return Err(Fail::denied("not open for reading"));
        }
        let (file, path) = (file.clone(), path.clone());
        let len = len.min(MAX_DATA) as usize;
        let data = blocking(move || {
            let mut buf = vec![0u8; len];
            let mut got = 0;
            // a short read is fine for SFTP, but fill what the file has
            while got < len {
                match file.read_at(&mut buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(FsError::from_io(&path, e)),
                }
            }
            buf.truncate(got);
            Ok(buf)
        })
        .await?;
        if data.is_empty() {
            return Err(Fail::new(StatusCode::Eof, "end of file"));
        }
        Ok(Packet::Data(Data { id, data }))
    }

    async fn write(&mut self, id: u32, handle: &str, offset: u64, data: Vec<u8>) -> Reply {
        self.writable()?;
        let Handle::File {
            file, path, write, ..
        } = self.handle(handle)?
        else {
            return Err(Fail::failure("not a file"));
        };
        if !*write {
            return Err(Fail::denied("not open for writing"));
        }
        if data.len() > MAX_DATA as usize {
            return Err(Fail::new(StatusCode::BadMessage, "write too large"));
        }
        let (file, path) = (file.clone(), path.clone());
        blocking(move || {
            file.write_all_at(&data, offset)
                .map_err(|e| FsError::from_io(&path, e))
        })
        .await?;
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: &str) -> Reply {
        let (root, path) = (self.root.clone(), normalize(path));
        let e = blocking(move || root.stat(&path)).await?;
        Ok(Packet::Attrs(Attrs {
            id,
            attrs: attrs_of(&e),
        }))
    }

    async fn stat(&mut self, id: u32, path: &str) -> Reply {
        let (root, path) = (self.root.clone(), normalize(path));
        let e = blocking(move || stat_follow(&root, &path)).await?;
        Ok(Packet::Attrs(Attrs {
            id,
            attrs: attrs_of(&e),
        }))
    }

    async fn fstat(&mut self, id: u32, handle: &str) -> Reply {
        let root = self.root.clone();
        let attrs = match self.handle(handle)? {
            Handle::File { file, path, .. } => {
                let (file, path) = (file.clone(), path.clone());
                blocking(move || {
                    file.metadata()
                        .map(|m| attrs_of_meta(&m))
                        .map_err(|e| FsError::from_io(&path, e))
                })
                .await?
            }
            Handle::Dir { path, .. } => {
                let path = path.clone();
                attrs_of(&blocking(move || root.stat(&path)).await?)
            }
        };
        Ok(Packet::Attrs(Attrs { id, attrs }))
    }

    async fn setstat(&mut self, id: u32, path: &str, attrs: FileAttributes) -> Reply {
        self.writable()?;
        let (root, path) = (self.root.clone(), normalize(path));
        blocking(move || {
            same_owner(&root, &path, &attrs)?;
            if let Some(size) = attrs.size {
                let f = root.open_write(&path, WriteOpts::default())?;
                f.set_len(size).map_err(|e| FsError::from_io(&path, e))?;
            }
            set_mode_and_times(&root, &path, &attrs)
        })
        .await?;
        Ok(ok(id))
    }

    async fn fsetstat(&mut self, id: u32, handle: &str, attrs: FileAttributes) -> Reply {
        self.writable()?;
        let root = self.root.clone();
        let (file, path) = match self.handle(handle)? {
            Handle::File {
                file, path, write, ..
            } => {
                if attrs.size.is_some() && !*write {
                    return Err(Fail::denied("not open for writing"));
                }
                (Some(file.clone()), path.clone())
            }
            Handle::Dir { path, .. } => (None, path.clone()),
        };
        blocking(move || {
            same_owner(&root, &path, &attrs)?;
            if let (Some(size), Some(file)) = (attrs.size, &file) {
                file.set_len(size).map_err(|e| FsError::from_io(&path, e))?;
            }
            set_mode_and_times(&root, &path, &attrs)
        })
        .await?;
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: &str) -> Reply {
        if self.handles.len() >= self.max_handles {
            return Err(Fail::failure(format!(
                "too many open files ({} at most)",
                self.max_handles
            )));
        }
        let dirs = self
            .handles
            .values()
            .filter(|h| matches!(h, Handle::Dir { .. }))
            .count();
        if dirs >= MAX_DIR_HANDLES {
            return Err(Fail::failure(format!(
                "too many open directories ({MAX_DIR_HANDLES} at most)"
            )));
        }
        let (root, path) = (self.root.clone(), normalize(path));
        let p = path.clone();
        let listing = blocking(move || root.list(&p, None, DIR_PAGE)).await?;
        let handle = self.add_handle(Handle::Dir {
            path,
            pending: listing.items.iter().map(name_entry).collect(),
            after: listing.next,
        })?;
        Ok(Packet::Handle(HandleReply { id, handle }))
    }

    async fn readdir(&mut self, id: u32, handle: &str) -> Reply {
        let root = self.root.clone();
        let Handle::Dir {
            path,
            pending,
            after,
        } = self.handle(handle)?
        else {
            return Err(Fail::failure("not a directory"));
        };
        if pending.is_empty() {
            if let Some(start) = after.take() {
                let p = path.clone();
                let listing = blocking(move || root.list(&p, Some(&start), DIR_PAGE)).await?;
                pending.extend(listing.items.iter().map(name_entry));
                *after = listing.next;
            }
        }
        if pending.is_empty() {
            return Err(Fail::new(StatusCode::Eof, "end of directory"));
        }
        let n = pending.len().min(NAMES_PER_READDIR);
        let files: Vec<NameEntry> = pending.drain(..n).collect();
        Ok(Packet::Name(Name { id, files }))
    }

    async fn remove(&mut self, id: u32, path: &str) -> Reply {
        self.writable()?;
        let (root, path) = (self.root.clone(), normalize(path));
        blocking(move || {
            if root.stat(&path)?.kind == EntryKind::Directory {
                return Err(FsError::IsADirectory { path });
            }
            root.remove(&path, false)
        })
        .await?;
        Ok(ok(id))
    }

    async fn mkdir(&mut self, id: u32, path: &str, attrs: FileAttributes) -> Reply {
        self.writable()?;
        let (root, path) = (self.root.clone(), normalize(path));
        blocking(move || {
            root.mkdir(&path)?;
            match attrs.permissions {
                Some(mode) => root.chmod(&path, mode & 0o777),
                None => Ok(()),
            }
        })
        .await?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: &str) -> Reply {
        self.writable()?;
        let (root, path) = (self.root.clone(), normalize(path));
        blocking(move || {
            if root.stat(&path)?.kind != EntryKind::Directory {
                return Err(FsError::NotADirectory { path });
            }
            root.remove(&path, false)
        })
        .await?;
        Ok(ok(id))
    }

    fn realpath(&mut self, id: u32, path: &str) -> Reply {
        let path = normalize(path);
        Root::clean(&path)?;
        Ok(one_name(id, path))
    }

    async fn rename(&mut self, id: u32, from: &str, to: &str, replace: bool) -> Reply {
        self.writable()?;
        let (root, from, to) = (self.root.clone(), normalize(from), normalize(to));
        blocking(move || root.rename(&from, &to, replace)).await?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: &str) -> Reply {
        let (root, path) = (self.root.clone(), normalize(path));
        let target = blocking(move || root.read_link(&path)).await?;
        Ok(one_name(id, target))
    }

    async fn extended(&mut self, e: Extended) -> Reply {
        let id = e.id;
        let mut data = Bytes::from(e.data);
        let bad = |_| Fail::new(StatusCode::BadMessage, "malformed extended request");
        match e.request.as_str() {
            POSIX_RENAME => {
                let r: HardlinkExtension = russh_sftp::de::from_bytes(&mut data).map_err(bad)?;
                self.rename(id, &r.oldpath, &r.newpath, true).await
            }
            STATVFS => {
                let r: StatvfsExtension = russh_sftp::de::from_bytes(&mut data).map_err(bad)?;
                let (root, path) = (self.root.clone(), normalize(&r.path));
                let space = blocking(move || {
                    root.stat(&path)?;
                    root.space()
                })
                .await?;
                let block = 4096;
                let st = Statvfs {
                    block_size: block,
                    fragment_size: block,
                    blocks: space.total / block,
                    blocks_free: space.free / block,
                    blocks_avail: space.free / block,
                    inodes: 0,
                    inodes_free: 0,
                    inodes_avail: 0,
                    fs_id: 0,
                    flags: if self.read_only { 1 } else { 0 },
                    name_max: 255,
                };
                reply_data(id, &st)
            }
            FSYNC => {
                let r: FsyncExtension = russh_sftp::de::from_bytes(&mut data).map_err(bad)?;
                let Handle::File { file, path, .. } = self.handle(&r.handle)? else {
                    return Err(Fail::failure("not a file"));
                };
                let (file, path) = (file.clone(), path.clone());
                blocking(move || file.sync_all().map_err(|e| FsError::from_io(&path, e))).await?;
                Ok(ok(id))
            }
            LIMITS => reply_data(
                id,
                &LimitsExtension {
                    max_packet_len: u64::from(MAX_PACKET),
                    max_read_len: u64::from(MAX_DATA),
                    max_write_len: u64::from(MAX_DATA),
                    max_open_handles: self.max_handles as u64,
                },
            ),
            HARDLINK => Err(Fail::denied("hard links can't be made over SFTP")),
            other => Err(Fail::new(
                StatusCode::OpUnsupported,
                format!("{other} is not supported"),
            )),
        }
    }
}

fn reply_data<T: serde::Serialize>(id: u32, value: &T) -> Reply {
    let data = russh_sftp::ser::to_bytes(value)
        .map_err(|e| Fail::failure(e.to_string()))?
        .to_vec();
    Ok(Packet::ExtendedReply(ExtendedReply { id, data }))
}

/// chown is refused: an owner in `attrs` must be the one the file has (clients that copy
/// attributes send it unchanged).
fn same_owner(root: &Root, path: &str, attrs: &FileAttributes) -> Result<(), FsError> {
    if attrs.uid.is_none() && attrs.gid.is_none() {
        return Ok(());
    }
    let e = root.stat(path)?;
    if attrs.uid.is_some_and(|u| u != e.uid) || attrs.gid.is_some_and(|g| g != e.gid) {
        return Err(FsError::Refused {
            path: path.to_owned(),
            why: "the owner can't be changed".into(),
        });
    }
    Ok(())
}

/// The permission bits (masked to `0o777`) and times of `attrs`, through the path layer.
fn set_mode_and_times(root: &Root, path: &str, attrs: &FileAttributes) -> Result<(), FsError> {
    if let Some(mode) = attrs.permissions {
        root.chmod(path, mode & 0o777)?;
    }
    if let (Some(atime), Some(mtime)) = (attrs.atime, attrs.mtime) {
        root.set_times(path, i64::from(atime), i64::from(mtime))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh_sftp::protocol::{
        Init, Open, Read as ReadPacket, ReadLink, Status as StatusPacket, Symlink,
    };
    use std::os::unix::fs::PermissionsExt;

    /// A session over an in-memory stream, as the server's uid on a temporary directory with
    /// `f.txt` and a link `l` → `f.txt`; packets go in and come out through the client end.
    struct Wire {
        _tmp: tempfile::TempDir,
        client: tokio::io::DuplexStream,
        conn: Arc<Conn>,
        _peer: std::net::TcpStream,
    }

    async fn wire(max_handles: usize) -> Wire {
        let tmp = tempfile::tempdir().expect("tmp");
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).expect("data");
        std::fs::write(data.join("f.txt"), b"abc").expect("file");
        std::fs::set_permissions(data.join("f.txt"), std::fs::Permissions::from_mode(0o644))
            .expect("mode");
        std::os::unix::fs::symlink("f.txt", data.join("l")).expect("link");
        crate::ownership::chown_tree(&data, 4242, 4343).expect("chown");
        let root = Root::open(&data, 4242, 4343).expect("root");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (sock, addr) = listener.accept().expect("accept");
        let conn = Arc::new(Conn::new(1, addr, sock));
        let (client, server) = tokio::io::duplex(1 << 20);
        let sess = SftpSession::new(root, false, conn.clone(), max_handles);
        tokio::spawn(serve(server, sess));
        Wire {
            _tmp: tmp,
            client,
            conn,
            _peer: peer,
        }
    }

    impl Wire {
        async fn call(&mut self, packet: Packet) -> Packet {
            let out = Bytes::try_from(packet).expect("encodes");
            self.client.write_all(&out).await.expect("send");
            let mut body = read_packet(&mut self.client)
                .await
                .expect("read")
                .expect("an answer");
            Packet::try_from(&mut body).expect("decodes")
        }

        async fn status(&mut self, packet: Packet) -> (StatusCode, String) {
            match self.call(packet).await {
                Packet::Status(StatusPacket {
                    status_code,
                    error_message,
                    ..
                }) => (status_code, error_message),
                other => panic!("not a status: {other:?}"),
            }
        }

        async fn open(&mut self, id: u32, name: &str) -> Packet {
            self.call(Packet::Open(Open {
                id,
                filename: name.into(),
                pflags: OpenFlags::READ,
                attrs: FileAttributes::empty(),
            }))
            .await
        }
    }

    #[tokio::test]
    async fn requests_before_init_are_refused_and_init_announces_the_extensions() {
        let mut w = wire(8).await;
        let (code, _) = w.status(w_open_packet(1, "f.txt")).await;
        assert_eq!(code, StatusCode::BadMessage);
        let Packet::Version(v) = w.call(Packet::Init(Init::new())).await else {
            panic!("no version");
        };
        assert_eq!(v.version, 3);
        for ext in [POSIX_RENAME, STATVFS, FSYNC, LIMITS] {
            assert!(v.extensions.contains_key(ext), "{ext}");
        }
        assert!(!v.extensions.contains_key(HARDLINK));
        // a second init is a protocol error
        let (code, _) = w.status(Packet::Init(Init::new())).await;
        assert_eq!(code, StatusCode::BadMessage);
    }

    fn w_open_packet(id: u32, name: &str) -> Packet {
        Packet::Open(Open {
            id,
            filename: name.into(),
            pflags: OpenFlags::READ,
            attrs: FileAttributes::empty(),
        })
    }

    #[tokio::test]
    async fn handles_are_limited_and_links_are_never_made() {
        let mut w = wire(3).await;
        w.call(Packet::Init(Init::new())).await;
        let Packet::ExtendedReply(r) = w
            .call(Packet::Extended(Extended {
                id: 1,
                request: LIMITS.into(),
                data: Vec::new(),
            }))
            .await
        else {
            panic!("no limits");
        };
        let limits: LimitsExtension =
            russh_sftp::de::from_bytes(&mut Bytes::from(r.data)).expect("limits");
        assert_eq!(limits.max_open_handles, 3);
        assert_eq!(limits.max_packet_len, u64::from(MAX_PACKET));
        let mut handles = Vec::new();
        for id in 2..5 {
            let Packet::Handle(h) = w.open(id, "f.txt").await else {
                panic!("no handle");
            };
            handles.push(h.handle);
        }
        let (code, message) = w.status(w_open_packet(5, "l")).await;
        assert_eq!(code, StatusCode::Failure);
        assert!(message.contains("too many open files"), "{message}");
        // reads at offsets, then the end
        let Packet::Data(d) = w
            .call(Packet::Read(ReadPacket {
                id: 6,
                handle: handles[0].clone(),
                offset: 1,
                len: 100,
            }))
            .await
        else {
            panic!("no data");
        };
        assert_eq!(d.data, b"bc");
        let (code, _) = w
            .status(Packet::Read(ReadPacket {
                id: 7,
                handle: handles[0].clone(),
                offset: 3,
                len: 100,
            }))
            .await;
        assert_eq!(code, StatusCode::Eof);
        let (code, _) = w
            .status(Packet::Symlink(Symlink {
                id: 8,
                linkpath: "evil".into(),
                targetpath: "/etc".into(),
            }))
            .await;
        assert_eq!(code, StatusCode::PermissionDenied);
        let hardlink = russh_sftp::ser::to_bytes(&HardlinkExtension {
            oldpath: "f.txt".into(),
            newpath: "hard".into(),
        })
        .expect("encodes")
        .to_vec();
        let (code, _) = w
            .status(Packet::Extended(Extended {
                id: 9,
                request: HARDLINK.into(),
                data: hardlink,
            }))
            .await;
        assert_eq!(code, StatusCode::PermissionDenied);
        let Packet::Name(n) = w
            .call(Packet::ReadLink(ReadLink {
                id: 10,
                path: "/l".into(),
            }))
            .await
        else {
            panic!("no name");
        };
        assert_eq!(n.files[0].filename, "f.txt");
        // a closed connection serves nothing more: the loop ends, the stream with it
        w.conn.close("test");
        let out = Bytes::try_from(w_open_packet(11, "f.txt")).expect("encodes");
        let _ = w.client.write_all(&out).await;
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            read_packet(&mut w.client),
        )
        .await
        .expect("the stream ends");
        assert!(matches!(answer, Ok(None) | Err(_)), "{answer:?}");
    }

    #[test]
    fn paths_stay_under_the_root_like_in_a_chroot() {
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("."), "/");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("../../.."), "/");
        assert_eq!(normalize("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(normalize("a/./b//c/"), "/a/b/c");
        assert_eq!(normalize("/a/b/../../../c"), "/c");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("/"), "/");
    }

    #[test]
    fn fs_errors_map_to_sftp_status_codes() {
        let p = || "/x".to_owned();
        let code = |e: FsError| Fail::from(e).code;
        assert_eq!(
            code(FsError::NotFound { path: p() }),
            StatusCode::NoSuchFile
        );
        assert_eq!(
            code(FsError::Escapes { path: p() }),
            StatusCode::PermissionDenied
        );
        assert_eq!(
            code(FsError::PermissionDenied { path: p() }),
            StatusCode::PermissionDenied
        );
        assert_eq!(
            code(FsError::Refused {
                path: p(),
                why: "x".into()
            }),
            StatusCode::PermissionDenied
        );
        let full = Fail::from(FsError::NoSpace { path: p() });
        assert_eq!(full.code, StatusCode::Failure);
        assert_eq!(full.message, "No space left on device");
        assert_eq!(code(FsError::Exists { path: p() }), StatusCode::Failure);
    }
}
