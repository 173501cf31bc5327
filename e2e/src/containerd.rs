//! A containerd of the test's own: its own root, state and socket under a directory, the CRI
//! plugin off; killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running containerd.
#[derive(Debug)]
pub struct Containerd {
    child: Child,
    /// Its gRPC socket.
    pub socket: PathBuf,
    /// Its directory.
    pub dir: PathBuf,
}

/// True when containerd, runc and the CNI plugins are installed (end-to-end tests need them).
pub fn available() -> bool {
    let has = |c: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    has("containerd") && has("runc") && has("ctr")
}

impl Containerd {
    /// Starts containerd with everything under `dir` and waits for its socket.
    pub fn start(dir: &Path) -> Containerd {
        std::fs::create_dir_all(dir).expect("containerd dir");
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = {:?}\n[ttrpc]\n  address = {:?}\n",
                dir.join("root").display().to_string(),
                dir.join("state").display().to_string(),
                socket.display().to_string(),
                format!("{}.ttrpc", socket.display()),
            ),
        )
        .expect("containerd config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            child,
            socket,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if c.ctr(&["version"]).status.success() {
                return c;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "containerd did not start; see {}",
            dir.join("containerd.log").display()
        );
    }

    /// Kills containerd (SIGKILL: its shims and containers live on) and starts it again with
    /// the same configuration, as a crash and a service restart would.
    pub fn restart(&mut self, down_for: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down_for);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("containerd.log"))
            .expect("log");
        self.child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("restart containerd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come back");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `ctr -a SOCKET -n catalyst ARGS`.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", "catalyst"])
            .args(args)
            .output()
            .expect("run ctr")
    }

    /// Container IDs in the `catalyst` namespace.
    pub fn containers(&self) -> Vec<String> {
        let out = self.ctr(&["containers", "ls", "-q"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The pid of a container's task, if it runs.
    pub fn task_pid(&self, id: &str) -> Option<u32> {
        let out = self.ctr(&["tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id) && f.get(2) == Some(&"RUNNING"))
                .then(|| f.get(1).and_then(|p| p.parse().ok()))
                .flatten()
        })
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // kill what the tests left running, wait for it to die, remove it, then containerd
        for id in self.containers() {
            let _ = self.ctr(&["tasks", "kill", "--all", "-s", "SIGKILL", &id]);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && String::from_utf8_lossy(&self.ctr(&["tasks", "ls"]).stdout).contains("RUNNING")
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        for id in self.containers() {
            let _ = self.ctr(&["tasks", "rm", "-f", &id]);
            let _ = self.ctr(&["containers", "rm", &id]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // shims outlive containerd; those of this containerd go with it
        let _ = Command::new("pkill")
            .args([
                "-9",
                "-f",
                "--",
                &format!("-address {}", self.socket.display()),
            ])
            .output();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("root"))
            .output();
        // rootfs mounts of tasks whose shim died before unmounting them
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).output();
        }
    }
}
