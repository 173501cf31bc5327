//! Shared by the end-to-end tests: a `catalyst nodelet` process (optionally inside a network
//! namespace), catalystctl, waits, a blocking API client and a raw HTTP probe of game servers.
#![allow(dead_code)]

pub mod api;
pub mod pg;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use catalyst_e2e::containerd::{self, Containerd};
use catalyst_e2e::Server;
use serde_json::Value;

pub struct Nodelet {
    pub child: Child,
    pub args: Vec<String>,
    /// Run inside this network namespace (`nsenter --net`).
    pub netns: Option<String>,
    admin_config: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
}

impl Nodelet {
    pub fn start(
        server: &Server,
        ctd: &Containerd,
        dir: &Path,
        name: &str,
        bridge: &str,
        subnet: &str,
    ) -> Nodelet {
        Self::start_with(server, ctd, dir, name, bridge, subnet, &[])
    }

    pub fn start_with(
        server: &Server,
        ctd: &Containerd,
        dir: &Path,
        name: &str,
        bridge: &str,
        subnet: &str,
        extra: &[&str],
    ) -> Nodelet {
        let mut args: Vec<String> = vec![
            "nodelet".into(),
            "--server".into(),
            server.url.clone(),
            "--join-token".into(),
            server.data_dir.join("join-token").display().to_string(),
            "--name".into(),
            name.into(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--containerd-socket".into(),
            ctd.socket.display().to_string(),
            "--address".into(),
            "127.0.0.1".into(),
            "--bridge".into(),
            bridge.into(),
            "--subnet".into(),
            subnet.into(),
            // the tests' images are packed next to the nodelet's directory
            "--image-dir".into(),
            dir.parent().unwrap_or(dir).display().to_string(),
        ];
        // tests run side by side: SFTP only where a test asks for it, on a port of its own
        if !extra.contains(&"--sftp-listen") {
            args.extend(["--sftp-listen".into(), "off".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::launch(server, ctd, dir, args, None)
    }

    /// Starts a nodelet with exactly these arguments, inside `netns` when given.
    pub fn launch(
        server: &Server,
        ctd: &Containerd,
        dir: &Path,
        args: Vec<String>,
        netns: Option<String>,
    ) -> Nodelet {
        let child = Self::spawn(&args, dir, netns.as_deref());
        Nodelet {
            child,
            args,
            netns,
            admin_config: server.config.clone(),
            dir: dir.to_owned(),
            socket: ctd.socket.clone(),
        }
    }

    pub fn spawn(args: &[String], dir: &Path, netns: Option<&str>) -> Child {
        std::fs::create_dir_all(dir).expect("nodelet dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("nodelet.log"))
            .expect("log");
        let mut cmd = match netns {
            // only the network namespace: the nodelet's `ip netns add` mounts must stay
            // visible to containerd and runc (`ip netns exec` would give it a mount namespace)
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg(env!("CARGO_BIN_EXE_catalyst"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_catalyst")),
        };
        cmd.args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nodelet")
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self, dir: &Path) {
        self.child = Self::spawn(&self.args, dir, self.netns.as_deref());
    }
}

impl Drop for Nodelet {
    /// Even when a test fails: delete every server so the nodelet removes its containers,
    /// network namespaces and port mappings from this machine, then stop the nodelet.
    fn drop(&mut self) {
        let ctl = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_catalystctl"))
                .args(args)
                .env("CATALYST_CONFIG", &self.admin_config)
                .output()
        };
        if let Ok(out) = ctl(&["get", "gs", "-A", "-o", "name"]) {
            for name in String::from_utf8_lossy(&out.stdout).lines() {
                let name = name.rsplit('/').next().unwrap_or(name);
                let _ = ctl(&["delete", "gs", name]);
            }
        }
        // the servers gone from the API, so the nodelet unmounts and removes their disks
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match ctl(&["get", "gs", "-A", "-o", "name"]) {
                Ok(out) if out.status.success() && !out.stdout.is_empty() => {
                    std::thread::sleep(Duration::from_millis(300));
                }
                _ => break,
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !disks_below(&self.dir).is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let out = Command::new("ctr")
                .arg("-a")
                .arg(&self.socket)
                .args(["-n", "catalyst", "containers", "ls", "-q"])
                .output();
            if out.is_ok_and(|o| o.stdout.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        // SIGTERM: the nodelet drains its namespace pool
        catalyst_e2e::terminate(&mut self.child, Duration::from_secs(15));
        purge_network(&self.dir);
        // what the nodelet could not unmount and detach itself
        catalyst_nodelet::disk::purge_under(&self.dir);
        // the CNI bridge the nodelet made (in the host's network, unless it ran in a netns)
        if self.netns.is_none() {
            if let Some(i) = self.args.iter().position(|a| a == "--bridge") {
                if let Some(bridge) = self.args.get(i + 1) {
                    let _ = Command::new("ip").args(["link", "delete", bridge]).output();
                }
            }
        }
    }
}

/// The mounts below `dir` (servers' disks a nodelet mounted there).
pub fn disks_below(dir: &Path) -> Vec<PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    catalyst_nodelet::disk::mounts()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.mountpoint.starts_with(&dir))
        .map(|m| m.mountpoint)
        .collect()
}

/// Removes what a nodelet that could not clean up (its API server or itself gone when a test
/// failed) left in this machine's network: for every attached server in its CNI state, the
/// network namespace and the NAT rules and chains that name its container.
pub fn purge_network(nodelet_dir: &Path) {
    // the namespaces of every server this nodelet knew, attached or not (a nodelet killed while
    // making them leaves them behind)
    for sub in ["servers", "run"] {
        for e in std::fs::read_dir(nodelet_dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            let cid = format!("gs-{}", e.file_name().to_string_lossy());
            catalyst_nodelet::userns::remove_ns_file(&catalyst_nodelet::userns::userns_path(&cid));
            catalyst_nodelet::userns::remove_ns_file(&catalyst_nodelet::cni::netns_path(&cid));
        }
    }
    // the namespace pool's entries (a nodelet killed before it drained them)
    for e in std::fs::read_dir(nodelet_dir.join("pool/netns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let id = e.file_name().to_string_lossy().into_owned();
        catalyst_nodelet::userns::remove_ns_file(&catalyst_nodelet::userns::userns_path(&id));
        catalyst_nodelet::userns::remove_ns_file(&catalyst_nodelet::cni::netns_path(&id));
    }
    // the machine-wide uid range claims of this nodelet's servers
    if let Ok(claims) = std::fs::read_dir(catalyst_nodelet::userns::DEFAULT_CLAIMS_DIR) {
        for c in claims.flatten() {
            if std::fs::read_to_string(c.path())
                .is_ok_and(|owner| Path::new(owner.trim_end()).starts_with(nodelet_dir))
            {
                let _ = std::fs::remove_file(c.path());
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(nodelet_dir.join("cni/results")) else {
        return;
    };
    let nat = |args: &[&str]| {
        Command::new("iptables")
            .args(["-t", "nat"])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(file_id) = name
            .strip_suffix(".json")
            .or_else(|| name.strip_suffix(".adding"))
        else {
            continue;
        };
        let _ = Command::new("ip")
            .args(["netns", "delete", &format!("catalyst-{file_id}")])
            .output();
        catalyst_nodelet::userns::remove_ns_file(&catalyst_nodelet::userns::userns_path(file_id));
        // the rules name the CNI id the plugins got: a pooled sandbox's, not the server's
        let cni_id = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["cniId"].as_str().map(str::to_owned))
            .unwrap_or_else(|| file_id.to_owned());
        let id = cni_id.as_str();
        let rules = nat(&["-S"]);
        let mut chains = Vec::new();
        for rule in rules
            .lines()
            .filter(|r| r.starts_with("-A ") && r.contains(id))
        {
            if let Some(target) = rule.split(" -j ").nth(1) {
                chains.push(target.split_whitespace().next().unwrap_or("").to_owned());
            }
            // the rule text is iptables' own; hand it back word for word, quotes respected
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "iptables -t nat {}",
                    rule.replacen("-A ", "-D ", 1)
                ))
                .output();
        }
        for chain in chains.iter().filter(|c| c.starts_with("CNI-")) {
            if chain.starts_with("CNI-HOSTPORT") {
                continue;
            }
            nat(&["-F", chain]);
            nat(&["-X", chain]);
        }
        let _ = std::fs::remove_file(e.path());
    }
}

pub fn ctl(server: &Server, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_catalystctl"));
    cmd.args(args)
        .env("CATALYST_CONFIG", &server.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("catalystctl");
    if let Some(s) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("catalystctl output")
}

pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "catalystctl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn gs(server: &Server, name: &str) -> Value {
    serde_json::from_str(&ok(ctl(server, &["get", "gs", name, "-o", "json"], None))).expect("json")
}

pub fn wait_phase(server: &Server, name: &str, phase: &str, nodelet_dir: &Path) -> Value {
    let out = ctl(
        server,
        &[
            "wait",
            &format!("gs/{name}"),
            &format!("--for=phase={phase}"),
            "--timeout",
            "90s",
        ],
        None,
    );
    if !out.status.success() {
        let log = std::fs::read_to_string(nodelet_dir.join("nodelet.log")).unwrap_or_default();
        // the last lines that are not frames of a backtrace (an error's message comes first)
        let frame = |l: &&str| {
            let t = l.trim_start();
            t.starts_with("at ")
                || t.split(':')
                    .next()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        };
        let tail: Vec<&str> = log.lines().rev().filter(|l| !frame(l)).take(40).collect();
        panic!(
            "{name} never reached {phase}: {}\nobject: {}\nnodelet log (last lines, newest first):\n{}",
            String::from_utf8_lossy(&out.stderr),
            gs(server, name),
            tail.join("\n")
        );
    }
    gs(server, name)
}

pub fn host_port(obj: &Value) -> u16 {
    obj.pointer("/status/ports/0/hostPort")
        .and_then(Value::as_u64)
        .expect("a host port") as u16
}

/// Probes a game server's HTTP port on 127.0.0.1 (a raw socket, not an API client).
pub fn probe_http(port: u16, path: &str) -> std::io::Result<String> {
    probe_http_at(&format!("127.0.0.1:{port}"), path)
}

/// GET `path` from a game server at `addr` (`ip:port`) over a raw socket, HTTP/1.0; the whole
/// response.
pub fn probe_http_at(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

pub fn console_log(nodelet_dir: &Path, obj: &Value) -> String {
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("uid");
    std::fs::read_to_string(nodelet_dir.join("run").join(uid).join("console.log"))
        .unwrap_or_default()
}

pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for: {what}");
}

pub fn manifest(name: &str, image: &Path, startup: &str, extra: &str) -> String {
    format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  image: oci-archive:{}\n  startup: {startup:?}\n{extra}",
        image.display()
    )
}

pub struct Env {
    /// First: dropped before the directory is removed.
    pub _disks: DiskGuard,
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub image: PathBuf,
    pub ctd: Containerd,
    pub server: Server,
}

/// Even when a test fails, and before the test's directory goes: no disk of a server (mount,
/// loop device) below it outlives the test.
pub struct DiskGuard(PathBuf);

impl Drop for DiskGuard {
    fn drop(&mut self) {
        catalyst_nodelet::disk::purge_under(&self.0);
    }
}

pub fn setup() -> Env {
    setup_with(&[])
}

/// As [`setup`], the server started with `extra` arguments.
pub fn setup_with(extra: &[&str]) -> Env {
    assert!(
        containerd::available(),
        "containerd, runc and ctr must be installed (scripts/test installs them)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let image = root.join("busybox.tar");
    catalyst_nodelet::pack::busybox_archive(&image).expect("busybox image");
    let ctd = Containerd::start(&root.join("ctd"));
    let server = Server::start(env!("CARGO_BIN_EXE_catalyst"), &root.join("server"), extra);
    Env {
        _disks: DiskGuard(root.clone()),
        _dir: dir,
        root,
        image,
        ctd,
        server,
    }
}

pub fn node_with_ports(server: &Server, name: &str, min: u16) {
    let node = format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  portRange: {{min: {min}, max: {}}}\n",
        min + 99
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&node)));
}

/// GET a path of the API server with the admin token; the body.
pub fn api_text(server: &Server, path: &str) -> String {
    api::Api::of(server).text(path)
}

/// Panics when the host's NAT table still maps `port` (a port mapping left behind).
pub fn assert_no_port_mapping(port: u16) {
    let nat = Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .expect("iptables");
    let nat = String::from_utf8_lossy(&nat.stdout);
    assert!(
        !nat.contains(&format!("--dport {port} ")),
        "port mapping left behind:\n{nat}"
    );
}

/// The server still runs the same task (pid) and is reported Running.
pub fn assert_untouched(server: &Server, ctd: &Containerd, name: &str, cid: &str, pid: u32) {
    assert_eq!(
        ctd.task_pid(cid),
        Some(pid),
        "{name}: the same task, untouched"
    );
    assert_eq!(
        gs(server, name)
            .pointer("/status/phase")
            .and_then(Value::as_str),
        Some("Running"),
        "{name}"
    );
}

/// Every entry under `dir`: a file's SHA-256 and mode, a link's target, or `dir`.
pub fn manifest_of(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(base).expect("base").display().to_string();
            if rel == "lost+found" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).expect("meta");
            if meta.is_symlink() {
                let t = std::fs::read_link(&p).expect("link");
                out.insert(rel, format!("-> {}", t.display()));
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &p, out);
            } else {
                let b = std::fs::read(&p).expect("file");
                let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
                out.insert(
                    rel,
                    format!("{:x} {mode:o}", <sha2::Sha256 as sha2::Digest>::digest(&b)),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `kind/name` as JSON.
pub fn json_of(server: &catalyst_e2e::Server, what: &str) -> Value {
    let (kind, name) = what.split_once('/').expect("kind/name");
    serde_json::from_str(&ok(ctl(server, &["get", kind, name, "-o", "json"], None))).expect("json")
}
