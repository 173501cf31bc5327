//! A containerd of Catalyst's own for the one-machine install: its config, root, state and
//! socket under `<data-dir>/containerd/`, started as a child, restarted when it dies, stopped on
//! shutdown. Game servers keep running across its restarts (their shims are separate processes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::ctd;

/// A supervised containerd.
#[derive(Debug)]
pub struct Supervised {
    /// Its socket.
    pub socket: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn spawn(config: &Path, log: &Path) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Command::new("containerd")
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(false)
        .spawn()
}

/// Writes the config under `dir`, starts containerd and waits (up to 30 s) for its socket.
pub async fn start(dir: &Path) -> Result<Supervised, crate::Error> {
    let (config, socket) = ctd::write_config(dir)?;
    let log = dir.join("containerd.log");
    let mut child = spawn(&config, &log).map_err(|e| {
        crate::Error::Config(format!(
            "cannot start containerd ({e}); install it (Debian: apt-get install containerd runc) \
             or pass --containerd-socket"
        ))
    })?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if socket.exists() {
            if let Ok(c) = ctd::Containerd::connect(&socket).await {
                if c.version().await.is_ok() {
                    break;
                }
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(crate::Error::Config(format!(
                "containerd exited at start ({status}); see {}",
                log.display()
            )));
        }
        if Instant::now() > deadline {
            return Err(crate::Error::Config(format!(
                "containerd did not answer within 30 s; see {}",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::info!(socket = %socket.display(), "containerd started");
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        loop {
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(?status, "containerd died; restarting");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    match spawn(&config, &log) {
                        Ok(c) => child = c,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot restart containerd");
                            continue;
                        }
                    }
                }
                _ = stopped.changed() => {
                    if let Some(pid) = child.id() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                    if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                    tracing::info!("containerd stopped");
                    return;
                }
            }
        }
    });
    Ok(Supervised { socket, stop, task })
}

impl Supervised {
    /// Stops containerd (SIGTERM, then SIGKILL after 10 s) and waits for it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
