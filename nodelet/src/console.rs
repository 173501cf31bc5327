//! A server's console: the task's stdio through FIFOs (opened by the nodelet before the task
//! is created, read-write so opening never blocks and a restart of the nodelet or of the task
//! loses nothing), a ring buffer of the last lines that survives nodelet restarts (a log file
//! beside it), a broadcast for followers, stdin for commands, and a throttle for floods.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Lines kept per server.
pub const RING_LINES: usize = 1000;
/// Lines per second a server may print before the throttle drops lines.
pub const LINES_PER_SECOND: usize = 2000;
/// The longest line kept; longer lines are cut.
const MAX_LINE: usize = 8192;

/// A console failure.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A FIFO or the log file.
    #[error("console {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Commands need a single line.
    #[error("a command must be one line without NUL bytes")]
    BadCommand,
}

struct Ring {
    lines: VecDeque<String>,
    log: Option<std::fs::File>,
    log_path: PathBuf,
    written_since_rotate: usize,
    window_start: Instant,
    window_lines: usize,
    dropped: usize,
}

impl Ring {
    fn push(&mut self, line: String, tx: &broadcast::Sender<String>) {
        if self.lines.len() == RING_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line.clone());
        if let Some(f) = &mut self.log {
            let _ = writeln!(f, "{line}");
        }
        self.written_since_rotate += 1;
        if self.written_since_rotate > RING_LINES {
            self.rotate();
        }
        let _ = tx.send(line);
    }

    /// Rewrites the log file with just the ring's lines.
    fn rotate(&mut self) {
        let tmp = self.log_path.with_extension("tmp");
        let ok = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            for l in &self.lines {
                writeln!(f, "{l}")?;
            }
            f.sync_data()?;
            std::fs::rename(&tmp, &self.log_path)
        })();
        if ok.is_ok() {
            self.log = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.log_path)
                .ok();
            self.written_since_rotate = 0;
        }
    }

    /// Admits a line under the throttle; returns false when it must be dropped.
    fn admit(&mut self, tx: &broadcast::Sender<String>) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            if self.dropped > 0 {
                let msg = format!(
                    "[catalyst] console throttled: {} lines dropped (more than {LINES_PER_SECOND} lines/s)",
                    self.dropped
                );
                self.push(msg, tx);
            }
            self.window_start = now;
            self.window_lines = 0;
            self.dropped = 0;
        }
        self.window_lines += 1;
        if self.window_lines > LINES_PER_SECOND {
            self.dropped += 1;
            return false;
        }
        true
    }
}

/// One server's console.
pub struct Console {
    ring: Arc<Mutex<Ring>>,
    tx: broadcast::Sender<String>,
    stdin: tokio::sync::Mutex<pipe::Sender>,
    dir: PathBuf,
    readers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("dir", &self.dir).finish()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ConsoleError + '_ {
    move |source| ConsoleError::Io {
        path: path.to_owned(),
        source,
    }
}

fn ensure_fifo(path: &Path) -> Result<(), ConsoleError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() => return Ok(()),
        Ok(_) => std::fs::remove_file(path).map_err(io_err(path))?,
        Err(_) => {}
    }
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| {
        ConsoleError::Io {
            path: path.to_owned(),
            source: e.into(),
        }
    })
}

impl Console {
    /// The FIFO paths inside `dir`: stdin, stdout, stderr.
    pub fn fifo_paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        (dir.join("stdin"), dir.join("stdout"), dir.join("stderr"))
    }

    /// Opens (creating if needed) the FIFOs in `dir` and the log `dir/console.log`, loads the
    /// last lines, and starts reading.
    pub fn open(dir: &Path) -> Result<Self, ConsoleError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (stdin_p, stdout_p, stderr_p) = Self::fifo_paths(dir);
        for p in [&stdin_p, &stdout_p, &stderr_p] {
            ensure_fifo(p)?;
        }
        let log_path = dir.join("console.log");
        let mut lines = VecDeque::new();
        if let Ok(text) = std::fs::read_to_string(&log_path) {
            for l in text.lines() {
                if lines.len() == RING_LINES {
                    lines.pop_front();
                }
                lines.push_back(l.to_owned());
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let ring = Arc::new(Mutex::new(Ring {
            written_since_rotate: lines.len(),
            lines,
            log: Some(log),
            log_path,
            window_start: Instant::now(),
            window_lines: 0,
            dropped: 0,
        }));
        let (tx, _) = broadcast::channel(1024);
        let mut readers = Vec::new();
        for p in [&stdout_p, &stderr_p] {
            let rx = pipe::OpenOptions::new()
                .read_write(true)
                .open_receiver(p)
                .map_err(io_err(p))?;
            readers.push(tokio::spawn(read_lines(rx, ring.clone(), tx.clone())));
        }
        let stdin = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&stdin_p)
            .map_err(io_err(&stdin_p))?;
        Ok(Self {
            ring,
            tx,
            stdin: tokio::sync::Mutex::new(stdin),
            dir: dir.to_owned(),
            readers,
        })
    }

    /// The last `n` lines (all kept lines when None).
    pub fn tail(&self, n: Option<usize>) -> Vec<String> {
        let ring = self.ring.lock().expect("console lock");
        let skip = n.map_or(0, |n| ring.lines.len().saturating_sub(n));
        ring.lines.iter().skip(skip).cloned().collect()
    }

    /// The last lines and a subscription to the following ones, with nothing lost between.
    pub fn follow(&self, n: Option<usize>) -> (Vec<String>, broadcast::Receiver<String>) {
        let ring = self.ring.lock().expect("console lock");
        let rx = self.tx.subscribe();
        let skip = n.map_or(0, |n| ring.lines.len().saturating_sub(n));
        (ring.lines.iter().skip(skip).cloned().collect(), rx)
    }

    /// A subscription to new lines.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
    }

    /// Adds a line of the nodelet's own (prefixed `[catalyst]`).
    pub fn system(&self, message: &str) {
        let line = format!("[catalyst] {message}");
        self.ring.lock().expect("console lock").push(line, &self.tx);
    }

    /// Writes one line to the server's stdin.
    pub async fn command(&self, text: &str) -> Result<(), ConsoleError> {
        if text.contains(['\n', '\r', '\0']) {
            return Err(ConsoleError::BadCommand);
        }
        let mut stdin = self.stdin.lock().await;
        let mut line = text.as_bytes().to_vec();
        line.push(b'\n');
        let path = self.dir.join("stdin");
        tokio::time::timeout(Duration::from_secs(5), stdin.write_all(&line))
            .await
            .map_err(|_| ConsoleError::Io {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the server does not read its console",
                ),
            })?
            .map_err(io_err(&path))
    }
}

async fn read_lines(mut rx: pipe::Receiver, ring: Arc<Mutex<Ring>>, tx: broadcast::Sender<String>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "console read failed");
                return;
            }
        };
        partial.extend_from_slice(&buf[..n]);
        let mut r = ring.lock().expect("console lock");
        while let Some(pos) = partial.iter().position(|&b| b == b'\n') {
            let mut raw: Vec<u8> = partial.drain(..=pos).collect();
            raw.pop();
            if raw.last() == Some(&b'\r') {
                raw.pop();
            }
            raw.truncate(MAX_LINE);
            if r.admit(&tx) {
                r.push(String::from_utf8_lossy(&raw).into_owned(), &tx);
            }
        }
        if partial.len() > MAX_LINE {
            let raw: Vec<u8> = std::mem::take(&mut partial);
            if r.admit(&tx) {
                r.push(String::from_utf8_lossy(&raw[..MAX_LINE]).into_owned(), &tx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_reach_the_ring_survive_reopen_and_the_throttle_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Console::open(dir.path()).expect("open");
        let mut sub = c.subscribe();
        {
            let mut w = pipe::OpenOptions::new()
                .open_sender(dir.path().join("stdout"))
                .expect("writer");
            w.write_all(b"hello\r\nworld\npart").await.expect("write");
            w.write_all(b"ial\n").await.expect("write");
        }
        for want in ["hello", "world", "partial"] {
            let got = tokio::time::timeout(Duration::from_secs(5), sub.recv())
                .await
                .expect("line in time")
                .expect("line");
            assert_eq!(got, want);
        }
        c.system("started");
        assert_eq!(c.tail(Some(2)), vec!["partial", "[catalyst] started"]);
        drop(c);
        let c = Console::open(dir.path()).expect("reopen");
        assert_eq!(c.tail(None).len(), 4, "{:?}", c.tail(None));

        // A flood: more than the throttle allows in one second.
        let mut sub = c.subscribe();
        let mut w = pipe::OpenOptions::new()
            .open_sender(dir.path().join("stderr"))
            .expect("writer");
        let flood: String = (0..LINES_PER_SECOND + 500)
            .map(|i| format!("line {i}\n"))
            .collect();
        w.write_all(flood.as_bytes()).await.expect("flood");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        w.write_all(b"after\n").await.expect("write");
        let mut seen = 0;
        let throttled = loop {
            let l = tokio::time::timeout(Duration::from_secs(5), sub.recv())
                .await
                .expect("line in time");
            match l {
                Ok(l) if l.starts_with("[catalyst] console throttled") => break l,
                Ok(_) => seen += 1,
                Err(broadcast::error::RecvError::Lagged(n)) => seen += n as usize,
                Err(e) => panic!("{e}"),
            }
        };
        assert!(throttled.contains("500 lines dropped"), "{throttled}");
        assert_eq!(seen, LINES_PER_SECOND);
        assert_eq!(c.tail(None).len(), RING_LINES);
    }

    #[tokio::test]
    async fn commands_reach_stdin_and_multi_line_commands_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Console::open(dir.path()).expect("open");
        let mut r = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(dir.path().join("stdin"))
            .expect("reader");
        c.command("say hi").await.expect("command");
        let mut buf = [0u8; 7];
        r.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"say hi\n");
        assert!(matches!(
            c.command("a\nb").await,
            Err(ConsoleError::BadCommand)
        ));
    }
}
