//! A nodelet process a benchmark started, cleaned up like the tests' own: on drop (also when
//! the benchmark panics) every GameServer is deleted through the API and the nodelet is given
//! the time to remove their containers, disks and networks before it is killed; then what a
//! kill can leave (uid range claims, loop mounts, its bridge) goes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Server;

/// Where nodelets claim host uid ranges, machine-wide.
const CLAIMS_DIR: &str = "/var/lib/catalyst/idmap";

/// The nodelet process and what its drop needs to clean up after it.
#[derive(Debug)]
pub struct NodeletGuard {
    /// The process.
    pub child: Child,
    /// Its `--data-dir`.
    pub dir: PathBuf,
    /// Its `--bridge`.
    pub bridge: String,
    url: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl NodeletGuard {
    /// Guards `child`, a nodelet of `server` with data dir `dir` and bridge `bridge`.
    pub fn new(child: Child, server: &Server, dir: &Path, bridge: &str) -> NodeletGuard {
        NodeletGuard {
            child,
            dir: dir.to_owned(),
            bridge: bridge.to_owned(),
            url: server.url.clone(),
            token: server.token.clone(),
            http: server.http_client(),
        }
    }

    /// The GameServers' `(namespace, name)`, or None when the API does not answer.
    fn servers(&self) -> Option<Vec<(String, String)>> {
        let v: Value = self
            .http
            .get(format!(
                "{}/apis/catalyst.dev/v1alpha1/gameservers",
                self.url
            ))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .send()
            .ok()?
            .json()
            .ok()?;
        Some(
            v["items"]
                .as_array()?
                .iter()
                .map(|o| {
                    let m = &o["metadata"];
                    let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                    (s("namespace"), s("name"))
                })
                .collect(),
        )
    }
}

/// The mount points below `dir`, deepest first.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(&dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found
}

impl Drop for NodeletGuard {
    fn drop(&mut self) {
        if let Some(servers) = self.servers() {
            for (ns, name) in &servers {
                let _ = self
                    .http
                    .delete(format!(
                        "{}/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}",
                        self.url
                    ))
                    .bearer_auth(&self.token)
                    .timeout(Duration::from_secs(10))
                    .send();
            }
            // gone from the API once the nodelet removed their containers and networks
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && self.servers().is_some_and(|s| !s.is_empty()) {
                std::thread::sleep(Duration::from_millis(200));
            }
            // and their disks unmounted
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && !mounts_below(&self.dir).is_empty() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        // SIGTERM: the nodelet drains its namespace pool
        crate::terminate(&mut self.child, Duration::from_secs(15));
        // what the nodelet could not remove itself: disks, their loop devices, uid claims
        for m in mounts_below(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&m).output();
        }
        let disks = self.dir.join("disks");
        for e in std::fs::read_dir(&disks).into_iter().flatten().flatten() {
            let _ = Command::new("losetup")
                .arg("-j")
                .arg(e.path())
                .output()
                .map(|out| {
                    for line in String::from_utf8_lossy(&out.stdout).lines() {
                        if let Some(dev) = line.split(':').next() {
                            let _ = Command::new("losetup").args(["-d", dev]).output();
                        }
                    }
                });
        }
        if let Ok(claims) = std::fs::read_dir(CLAIMS_DIR) {
            for c in claims.flatten() {
                let owner = std::fs::read_to_string(c.path()).unwrap_or_default();
                if Path::new(owner.trim()).starts_with(&self.dir) {
                    let _ = std::fs::remove_file(c.path());
                }
            }
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
    }
}
