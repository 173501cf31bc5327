//! End-to-end test support: real `catalyst` processes, started and cleaned up on drop, and the
//! small measurements benchmarks share.

pub mod containerd;
pub mod etcd;
pub mod nodelet;
pub mod registry;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `catalyst server` process; killed (and reaped) on drop.
#[derive(Debug)]
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// `<data-dir>/admin.yaml`.
    pub config: PathBuf,
    /// `https://127.0.0.1:PORT` (`http://` with `--insecure-http`).
    pub url: String,
    /// The admin token.
    pub token: String,
    /// The CA the server's certificate chains to (`<data-dir>/ca.crt`, PEM); None over plain
    /// HTTP.
    pub ca_pem: Option<Vec<u8>>,
    /// What the server printed on stdout after its first line, as it comes.
    pub stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `binary server --listen 127.0.0.1:0 --data-dir DIR EXTRA…` and waits until it
    /// listens. `binary` is the `catalyst` executable (`env!("CARGO_BIN_EXE_catalyst")`).
    ///
    /// Panics when the server does not start: this is test support.
    pub fn start(binary: &str, data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_on(binary, data_dir, "127.0.0.1:0", extra)
    }

    /// As [`Server::start`], listening on `listen` (e.g. a test network's address).
    pub fn start_on(binary: &str, data_dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(binary)
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start catalyst server");
        // the first stdout line names the address; the listener is bound before it is printed
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        out.read_line(&mut line)
            .expect("read the server's first line");
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let printed = stdout.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while out.read_line(&mut line).is_ok_and(|n| n > 0) {
                printed.lock().expect("stdout").push_str(&line);
                line.clear();
            }
            // not UTF-8: the rest is drained unread, so the server never blocks on stdout
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(
            url.starts_with("https://") || url.starts_with("http://"),
            "unexpected first line {line:?}"
        );
        let config = data_dir.join("admin.yaml");
        let admin = std::fs::read_to_string(&config).expect("admin.yaml");
        assert!(admin.contains(&url), "admin.yaml names the server: {admin}");
        let token = admin
            .lines()
            .find_map(|l| l.strip_prefix("token: "))
            .expect("a token in admin.yaml")
            .to_owned();
        let ca_pem = url
            .starts_with("https://")
            .then(|| std::fs::read(data_dir.join("ca.crt")).expect("<data-dir>/ca.crt"));
        Server {
            child,
            data_dir: data_dir.to_owned(),
            config,
            url,
            token,
            ca_pem,
            stdout,
        }
    }

    /// A blocking HTTP client that trusts this server's CA (and no other); send the token
    /// yourself (`.bearer_auth(&server.token)`).
    pub fn http_client(&self) -> reqwest::blocking::Client {
        let mut b = reqwest::blocking::Client::builder();
        if let Some(pem) = &self.ca_pem {
            b = b
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("CA PEM"));
        }
        b.build().expect("an HTTP client")
    }

    /// As [`Server::http_client`], async.
    pub fn async_http_client(&self) -> reqwest::Client {
        self.async_http_builder().build().expect("an HTTP client")
    }

    /// A builder of async clients trusting this server's CA, to add settings of one's own.
    pub fn async_http_builder(&self) -> reqwest::ClientBuilder {
        let b = reqwest::Client::builder();
        match &self.ca_pem {
            Some(pem) => b
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("CA PEM")),
            None => b,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server as an operator would (SIGTERM: an in-process nodelet drains its
    /// namespace pool), killing it after `within`.
    pub fn terminate(&mut self, within: Duration) {
        terminate(&mut self.child, within);
    }
}

/// SIGTERM to `child`, then SIGKILL if it has not exited within `within`; reaped either way.
pub fn terminate(child: &mut Child, within: Duration) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .output();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether store `backend` is in `CATALYST_TEST_BACKENDS` (all three when unset); if not,
/// says that `test` is skipped. The line goes straight to stderr in one write: the harness
/// captures only the print macros, and a skipped test must show as skipped even when it passes
/// (`scripts/test` counts these lines).
pub fn backend_enabled(backend: &str, test: &str) -> bool {
    let list =
        std::env::var("CATALYST_TEST_BACKENDS").unwrap_or_else(|_| "sqlite,postgres,etcd".into());
    if list.split(',').any(|b| b.trim() == backend) {
        return true;
    }
    let line = format!("skipped: {backend} (CATALYST_TEST_BACKENDS={list}) {test}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    false
}

/// Resident memory of a process in MiB (0 when it is gone).
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The `p` quantile of sorted durations, in milliseconds (NaN when empty).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&d, 0.5), 51.0);
        assert_eq!(percentile_ms(&d, 0.99), 99.0);
        assert!(percentile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn the_rss_of_this_process_is_positive() {
        assert!(rss_mib(std::process::id()) > 0.0);
    }
}
