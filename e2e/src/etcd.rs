//! A throwaway etcd cluster of several members, each its own `etcd` process with its own data
//! directory, on free loopback ports: for tests where a member dies and comes back. Every
//! member is killed (and reaped) on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member's fixed identity: its name, ports and data directory (kept across restarts).
#[derive(Debug)]
struct Member {
    name: String,
    client: u16,
    peer: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
}

/// A free loopback port (bound, then released for the member to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl EtcdCluster {
    /// Starts `n` members under `dir` (`dir/m{i}`, logs `dir/m{i}.log`) and waits until every
    /// member says it is healthy. None when `etcd` is not installed (Debian's `etcd-server`).
    ///
    /// Panics when the cluster does not come up: this is test support.
    pub fn start(dir: &Path, n: usize) -> Option<EtcdCluster> {
        Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .ok()?;
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_port(),
                peer: free_port(),
                dir: dir.join(format!("m{i}")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            token: format!("catalyst-test-{}-{}", std::process::id(), free_port()),
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_healthy(&(0..n).collect::<Vec<_>>(), Duration::from_secs(30));
        Some(cluster)
    }

    fn spawn(&mut self, i: usize) {
        let (initial_cluster, token) = (self.initial_cluster.clone(), self.token.clone());
        let m = &mut self.members[i];
        std::fs::create_dir_all(&m.dir).expect("member dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.with_extension("log"))
            .expect("member log");
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new("etcd")
            .args(["--name", &m.name, "--data-dir"])
            .arg(m.dir.join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &token])
            // a lost leader is replaced within about a second
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        m.child = Some(child);
    }

    /// Waits until each of `members` answers `/health` with `"health":"true"`.
    pub fn wait_healthy(&self, members: &[usize], within: Duration) {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let started = Instant::now();
        for &i in members {
            let url = format!("http://127.0.0.1:{}/health", self.members[i].client);
            loop {
                let healthy = http
                    .get(&url)
                    .send()
                    .and_then(|r| r.text())
                    .is_ok_and(|t| t.replace(' ', "").contains("\"health\":\"true\""));
                if healthy {
                    break;
                }
                if started.elapsed() > within {
                    let log = std::fs::read_to_string(self.members[i].dir.with_extension("log"))
                        .unwrap_or_default();
                    panic!("etcd member {i} not healthy within {within:?}:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `127.0.0.1:PORT` of every member's client URL, comma-separated (a store URL's hosts).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The member that leads raft now (asked of the first member that answers), if any.
    pub fn leader(&self) -> Option<usize> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let mut ids = Vec::new();
        let mut leader = None;
        for m in &self.members {
            if m.child.is_none() {
                ids.push(None);
                continue;
            }
            let status: Option<serde_json::Value> = http
                .post(format!(
                    "http://127.0.0.1:{}/v3/maintenance/status",
                    m.client
                ))
                .body("{}")
                .send()
                .and_then(|r| r.json())
                .ok();
            let id = status
                .as_ref()
                .and_then(|s| s["header"]["member_id"].as_str().map(str::to_owned));
            if leader.is_none() {
                leader = status
                    .as_ref()
                    .and_then(|s| s["leader"].as_str().map(str::to_owned));
            }
            ids.push(id);
        }
        let leader = leader?;
        ids.iter()
            .position(|id| id.as_deref() == Some(leader.as_str()))
    }

    /// Whether member `i` was started and not killed.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Kills member `i` (SIGKILL) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data directory and ports and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_healthy(&[i], Duration::from_secs(30));
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
