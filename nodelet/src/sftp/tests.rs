//! The SFTP server driven by a real client: OpenSSH's `sftp` (package openssh-client), with an
//! ed25519 key made by `ssh-keygen` (or a password given through `SSH_ASKPASS`), against a
//! fake [`Authority`] and a data directory owned by an unprivileged uid. Like the path layer's
//! tests they run as root, so the fsuid switch is exercised; the "outside" directory belongs to
//! the server's uid too, so only the path layer stands between a client and an escape. Every
//! client runs with its host key checked against the server's (`StrictHostKeyChecking=yes`).

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::process::{Child, Command};

use super::*;

const UID: u32 = 4242;
const GID: u32 = 4343;
const SERVER_UID: &str = "uid-1";
const NAMESPACE: &str = "team";
const NAME: &str = "mc";
const PASSWORD: &str = "correct horse";

/// Grants alice (by her key or her password) on team/mc; every call is counted.
#[derive(Default)]
struct Fake {
    keys: Mutex<HashMap<String, String>>,
    allowed: AtomicBool,
    read_only: AtomicBool,
    logins: AtomicUsize,
    checks: AtomicUsize,
}

impl Fake {
    fn grant(&self, user: &str, namespace: &str, server: &str) -> Result<Grant, Denied> {
        if (namespace, server) != (NAMESPACE, NAME) {
            return Err(Denied::new("no such server"));
        }
        Ok(Grant {
            user: user.to_owned(),
            namespace: namespace.to_owned(),
            server: server.to_owned(),
            uid: SERVER_UID.to_owned(),
            read_only: self.read_only.load(Ordering::SeqCst),
            key: None,
        })
    }
}

#[async_trait]
impl Authority for Fake {
    async fn login_password(
        &self,
        user: &str,
        namespace: &str,
        server: &str,
        password: &str,
        _remote: std::net::IpAddr,
    ) -> Result<Grant, Denied> {
        self.logins.fetch_add(1, Ordering::SeqCst);
        if user != "alice" || password != PASSWORD {
            return Err(Denied::new("wrong password"));
        }
        self.grant(user, namespace, server)
    }

    async fn login_key(
        &self,
        user: &str,
        namespace: &str,
        server: &str,
        public_key: &str,
        _remote: std::net::IpAddr,
    ) -> Result<Grant, Denied> {
        self.logins.fetch_add(1, Ordering::SeqCst);
        let owner = self.keys.lock().expect("keys").get(public_key).cloned();
        if owner.as_deref() != Some(user) {
            return Err(Denied::new("unknown key"));
        }
        self.grant(user, namespace, server)
    }

    async fn still_allowed(&self, _grant: &Grant) -> Result<bool, Denied> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        Ok(self.allowed.load(Ordering::SeqCst))
    }
}

struct Fx {
    tmp: tempfile::TempDir,
    data: PathBuf,
    outside: PathBuf,
    local: PathBuf,
    key: PathBuf,
    known_hosts: PathBuf,
    auth: Arc<Fake>,
    servers: Arc<BoundServers>,
    server: SftpServer,
}

/// Makes an ed25519 key pair at `path` (and `path.pub`); its public line.
async fn keygen(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .await
        .expect("ssh-keygen (package openssh-client) runs");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    let line = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn fx() -> Fx {
    fx_with(|_| {}).await
}

async fn fx_with(tweak: impl FnOnce(&mut SftpConfig)) -> Fx {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("servers").join(SERVER_UID);
    let outside = tmp.path().join("outside");
    let local = tmp.path().join("local");
    for d in [&data, &outside, &local] {
        std::fs::create_dir_all(d).expect("dir");
    }
    std::fs::write(outside.join("secret"), b"secret").expect("secret");
    std::fs::set_permissions(
        outside.join("secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("mode");
    std::fs::write(local.join("a.txt"), b"hello from the client\n").expect("local file");
    crate::ownership::chown_tree(&data, UID, GID).expect("chown data");
    crate::ownership::chown_tree(&outside, UID, GID).expect("chown outside");
    let key = tmp.path().join("id_ed25519");
    let public = keygen(&key).await;
    let auth = Arc::new(Fake::default());
    auth.allowed.store(true, Ordering::SeqCst);
    auth.keys
        .lock()
        .expect("keys")
        .insert(public, "alice".to_owned());
    let servers = Arc::new(BoundServers::new());
    servers.bind(SERVER_UID, NAMESPACE, NAME);
    let mut config = SftpConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        tmp.path().join("sftp").join("host_key"),
    );
    config.rejection_time = Duration::from_millis(50);
    tweak(&mut config);
    let dir = data.clone();
    let roots: RootOpener = Arc::new(move |uid: &str| {
        if uid != SERVER_UID {
            return Err(FsError::NotFound { path: "/".into() });
        }
        Root::open(&dir, UID, GID)
    });
    let server = SftpServer::start(config, auth.clone(), servers.clone(), roots)
        .await
        .expect("SFTP server starts");
    let host_key = load_or_create_host_key(&tmp.path().join("sftp").join("host_key"))
        .expect("the host key is kept");
    let known_hosts = tmp.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {}\n",
            server.local_addr().port(),
            public_line(&host_key)
        ),
    )
    .expect("known_hosts");
    Fx {
        tmp,
        data,
        outside,
        local,
        key,
        known_hosts,
        auth,
        servers,
        server,
    }
}

impl Fx {
    /// `sftp` as `user`, the server's host key checked, logging in with `keys` only (or a
    /// password without keys); `extra` options go before the destination.
    fn sftp(&self, user: &str, keys: &[&Path], extra: &[&std::ffi::OsStr]) -> Command {
        let mut cmd = Command::new("sftp");
        cmd.arg("-P")
            .arg(self.server.local_addr().port().to_string())
            .arg("-F")
            .arg("/dev/null")
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()));
        for o in [
            "StrictHostKeyChecking=yes",
            "GlobalKnownHostsFile=/dev/null",
            "UpdateHostKeys=no",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "ConnectTimeout=10",
            "LogLevel=ERROR",
        ] {
            cmd.arg("-o").arg(o);
        }
        if keys.is_empty() {
            cmd.args([
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password",
            ]);
        } else {
            cmd.args(["-o", "PreferredAuthentications=publickey"]);
            for k in keys {
                cmd.arg("-i").arg(k);
            }
        }
        cmd.args(extra)
            .arg(format!("{user}@127.0.0.1"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// `sftp -b` with these commands, as alice on mc with her key.
    async fn batch(&self, commands: &str) -> Output {
        self.batch_as(&format!("alice.{NAME}"), &[&self.key], commands)
            .await
    }

    async fn batch_as(&self, user: &str, keys: &[&Path], commands: &str) -> Output {
        let file = self
            .tmp
            .path()
            .join(format!("batch-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, commands).expect("batch file");
        let cmd = self.sftp(user, keys, &["-b".as_ref(), file.as_os_str()]);
        run(cmd).await
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.data.join(rel)
    }

    fn l(&self, rel: &str) -> PathBuf {
        self.local.join(rel)
    }
}

/// Runs a client to its end (at most a minute).
async fn run(mut cmd: Command) -> Output {
    let child = cmd.spawn().expect("sftp (package openssh-client) runs");
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client ends within a minute")
        .expect("output")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).expect("stat").mode() & 0o7777
}

/// Bytes that are not all alike, so offsets matter.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_put_get_ls_mkdir_rename_rm_chmod() {
    let fx = fx().await;
    let big = pattern(3 * 1024 * 1024 + 12345);
    std::fs::write(fx.l("big.bin"), &big).expect("big");
    let l = fx.local.display();
    let out = fx
        .batch(&format!(
            "mkdir world\n\
             put {l}/a.txt world/a.txt\n\
             put {l}/big.bin world/big.bin\n\
             ls -l world\n\
             rename world/a.txt world/b.txt\n\
             chmod 4755 world/b.txt\n\
             -chown 0 world/b.txt\n\
             -chgrp 0 world/b.txt\n\
             get world/b.txt {l}/b.txt\n\
             get world/big.bin {l}/big.back\n\
             mkdir tmp\n\
             rmdir tmp\n\
             put {l}/a.txt c.txt\n\
             rm c.txt\n\
             pwd\n\
             ls -la\n"
        ))
        .await;
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        std::fs::read(fx.p("world/b.txt")).expect("uploaded"),
        b"hello from the client\n"
    );
    assert_eq!(std::fs::read(fx.p("world/big.bin")).expect("big"), big);
    assert_eq!(std::fs::read(fx.l("big.back")).expect("big back"), big);
    assert_eq!(
        std::fs::read(fx.l("b.txt")).expect("downloaded"),
        b"hello from the client\n"
    );
    assert!(!fx.p("world/a.txt").exists() && !fx.p("c.txt").exists() && !fx.p("tmp").exists());
    // chmod 4755: the setuid bit is dropped
    assert_eq!(mode(&fx.p("world/b.txt")), 0o755, "{log}");
    let meta = std::fs::metadata(fx.p("world/b.txt")).expect("meta");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (UID, GID),
        "made as the server's user, and chown refused"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("Permission denied").count(), 2, "{log}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Remote working directory: /\n"), "{log}");
    assert!(
        stdout.contains("big.bin") && stdout.contains("world"),
        "{log}"
    );
    assert!(fx.auth.logins.load(Ordering::SeqCst) == 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_stay_inside_the_data_directory() {
    let fx = fx().await;
    let l = fx.local.display();
    let out = fx
        .batch(&format!(
            "-get /etc/passwd {l}/p1\n\
             -get ../../../etc/passwd {l}/p2\n\
             -get ../outside/secret {l}/p3\n\
             cd ../../..\n\
             pwd\n\
             put {l}/a.txt ../../up.txt\n\
             cd /\n\
             pwd\n"
        ))
        .await;
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    for p in ["p1", "p2", "p3"] {
        assert!(!fx.l(p).exists(), "{p} was fetched: {log}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/etc/passwd")
            && (stderr.contains("not found") || stderr.contains("No such file")),
        "{log}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("Remote working directory: /\n").count(),
        2,
        "{log}"
    );
    // `..` stops at the data directory, as in a chroot
    assert!(fx.p("up.txt").exists(), "{log}");
    assert!(!fx.tmp.path().join("up.txt").exists());
    assert!(!fx.tmp.path().join("servers/up.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_out_of_the_data_directory_are_refused() {
    let fx = fx().await;
    // what the game inside could have made
    std::os::unix::fs::symlink("/etc", fx.p("etc")).expect("link to /etc");
    std::os::unix::fs::symlink(&fx.outside, fx.p("out")).expect("link to outside");
    std::os::unix::fs::symlink("../../outside/secret", fx.p("rel")).expect("relative link");
    std::fs::hard_link(fx.outside.join("secret"), fx.p("hl")).expect("hard link");
    std::fs::create_dir(fx.p("inner")).expect("inner");
    std::fs::write(fx.p("inner/ok.txt"), b"fine").expect("inner file");
    std::os::unix::fs::symlink("inner", fx.p("good")).expect("link inside");
    crate::ownership::chown_tree(&fx.data, UID, GID).expect("chown");
    let outside_mode = mode(&fx.outside);
    let l = fx.local.display();
    let out = fx
        .batch(&format!(
            "-get etc/passwd {l}/s1\n\
             -get out/secret {l}/s2\n\
             -get rel {l}/s3\n\
             -get hl {l}/s4\n\
             -ls etc\n\
             -ls out\n\
             -put {l}/a.txt out/planted\n\
             -put {l}/a.txt etc/planted\n\
             -put {l}/a.txt hl\n\
             -chmod 777 out/secret\n\
             -chmod 777 out\n\
             -chmod 777 etc\n\
             -chmod 777 hl\n\
             -rename out/secret stolen\n\
             -mkdir out/made\n\
             -rm out/secret\n\
             -ln -s /etc evil\n\
             -ln hl hard\n\
             -ln -s inner soft\n\
             get good/ok.txt {l}/ok.txt\n\
             ls good\n"
        ))
        .await;
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    for p in ["s1", "s2", "s3", "s4"] {
        assert!(!fx.l(p).exists(), "{p} was fetched: {log}");
    }
    // a link that stays inside is followed
    assert_eq!(std::fs::read(fx.l("ok.txt")).expect("inside link"), b"fine");
    assert_eq!(
        std::fs::read(fx.outside.join("secret")).expect("secret"),
        b"secret"
    );
    assert_eq!(mode(&fx.outside.join("secret")), 0o644, "{log}");
    assert_eq!(mode(&fx.outside), outside_mode, "{log}");
    assert_eq!(
        std::fs::read_dir(&fx.outside).expect("outside").count(),
        1,
        "nothing planted outside: {log}"
    );
    assert!(std::fs::read_dir("/etc")
        .expect("etc")
        .all(|e| e.expect("entry").file_name() != "planted"));
    for p in ["stolen", "evil", "hard", "soft"] {
        assert!(
            std::fs::symlink_metadata(fx.p(p)).is_err(),
            "{p} made: {log}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Permission denied"), "{log}");
    assert!(
        !stderr.contains("root:"),
        "nothing of /etc/passwd shows: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_refused_three_per_connection_then_slowed_down() {
    let fx = fx().await;
    let mut wrong = Vec::new();
    for i in 0..5 {
        let k = fx.tmp.path().join(format!("wrong{i}"));
        keygen(&k).await;
        wrong.push(k);
    }
    let user = format!("alice.{NAME}");
    // five wrong keys on one connection: the server asks about three, then stops
    let keys: Vec<&Path> = wrong.iter().map(PathBuf::as_path).collect();
    let out = fx.batch_as(&user, &keys, "ls\n").await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Too many authentication attempts"),
        "{}",
        text(&out)
    );
    assert_eq!(fx.auth.logins.load(Ordering::SeqCst), 3);
    // two more failures: 5 from this address
    for k in &wrong[..2] {
        let out = fx.batch_as(&user, &[k], "ls\n").await;
        assert!(!out.status.success());
    }
    assert_eq!(fx.auth.logins.load(Ordering::SeqCst), 5);
    // from now on every attempt waits: 1 s, then 2 s, then 4 s
    let start = Instant::now();
    let out = fx.batch_as(&user, &[&wrong[0]], "ls\n").await;
    let first = start.elapsed();
    assert!(!out.status.success());
    assert!(first >= Duration::from_secs(1), "{first:?}");
    let start = Instant::now();
    let out = fx.batch_as(&user, &[&wrong[0]], "ls\n").await;
    let second = start.elapsed();
    assert!(!out.status.success());
    assert!(second >= Duration::from_secs(2), "{second:?}");
    // the right key still works, after its wait
    let start = Instant::now();
    let out = fx.batch("ls\n").await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    // the refusals never said what was wrong
    assert!(!String::from_utf8_lossy(&out.stderr).contains("unknown key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_ambiguous_server_names_are_refused_without_asking() {
    let fx = fx().await;
    for user in ["alice.nope", "alice", "alice.", ".mc"] {
        let out = fx.batch_as(user, &[&fx.key], "ls\n").await;
        assert!(!out.status.success(), "{user}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Permission denied"),
            "{user}: {}",
            text(&out)
        );
    }
    assert_eq!(fx.auth.logins.load(Ordering::SeqCst), 0, "never asked");
    // user names may hold dots: split at the last one
    fx.auth
        .keys
        .lock()
        .expect("keys")
        .values_mut()
        .for_each(|u| *u = "alice.example.com".into());
    let out = fx
        .batch_as(&format!("alice.example.com.{NAME}"), &[&fx.key], "ls\n")
        .await;
    assert!(out.status.success(), "{}", text(&out));
    // a second "mc" in another namespace makes the name ambiguous
    fx.servers.bind("uid-2", "other", NAME);
    let logins = fx.auth.logins.load(Ordering::SeqCst);
    let out = fx
        .batch_as(&format!("alice.example.com.{NAME}"), &[&fx.key], "ls\n")
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(fx.auth.logins.load(Ordering::SeqCst), logins, "not asked");
}

/// A password through `SSH_ASKPASS` (no terminal, no sshpass): sftp reads its commands from
/// standard input, as a person's session would.
async fn password_session(fx: &Fx, password: &str, commands: &str) -> Output {
    let askpass = fx
        .tmp
        .path()
        .join(format!("askpass-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).expect("askpass");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).expect("mode");
    let mut cmd = fx.sftp(
        &format!("alice.{NAME}"),
        &[],
        &["-o".as_ref(), "NumberOfPasswordPrompts=1".as_ref()],
    );
    cmd.env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("sftp runs");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(commands.as_bytes())
            .await
            .expect("commands");
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ends")
        .expect("output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_log_in_and_wrong_ones_are_refused() {
    let fx = fx().await;
    let l = fx.local.display();
    let out = password_session(&fx, "wrong", &format!("put {l}/a.txt pw.txt\n")).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out)
    );
    assert!(!fx.p("pw.txt").exists());
    let out = password_session(&fx, PASSWORD, &format!("put {l}/a.txt pw.txt\nbye\n")).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(fx.p("pw.txt")).expect("uploaded with a password"),
        b"hello from the client\n"
    );
    assert_eq!(fx.auth.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_grants_read_and_refuse_every_change() {
    let fx = fx().await;
    fx.auth.read_only.store(true, Ordering::SeqCst);
    std::fs::write(fx.p("r.txt"), b"read me").expect("file");
    crate::ownership::chown_tree(&fx.data, UID, GID).expect("chown");
    let l = fx.local.display();
    let out = fx
        .batch(&format!(
            "get r.txt {l}/r.txt\n\
             -put {l}/a.txt w.txt\n\
             -mkdir d\n\
             -rm r.txt\n\
             -rename r.txt s.txt\n\
             -chmod 600 r.txt\n"
        ))
        .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(fx.l("r.txt")).expect("read"), b"read me");
    assert!(!fx.p("w.txt").exists() && !fx.p("d").exists() && !fx.p("s.txt").exists());
    assert_eq!(std::fs::read(fx.p("r.txt")).expect("kept"), b"read me");
    assert_ne!(mode(&fx.p("r.txt")), 0o600);
}

/// Starts `put` of a large sparse file and waits until bytes arrive on the server.
async fn start_big_put(fx: &Fx) -> Child {
    let big = fx.l("huge.bin");
    let f = std::fs::File::create(&big).expect("huge");
    f.set_len(64 << 30).expect("sparse");
    let batch = fx.tmp.path().join("put-batch");
    std::fs::write(&batch, format!("put {} huge.bin\n", big.display())).expect("batch");
    let mut cmd = fx.sftp(
        &format!("alice.{NAME}"),
        &[&fx.key],
        &["-b".as_ref(), batch.as_os_str()],
    );
    let child = cmd.spawn().expect("sftp runs");
    let target = fx.p("huge.bin");
    wait_until("the upload starts", Duration::from_secs(20), || {
        std::fs::metadata(&target).is_ok_and(|m| m.len() > 4 << 20)
    })
    .await;
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_grant_cuts_a_running_upload_within_seconds() {
    let fx = fx_with(|c| c.recheck = Duration::from_secs(1)).await;
    let child = start_big_put(&fx).await;
    assert_eq!(fx.server.sessions(), 1);
    let checks = fx.auth.checks.load(Ordering::SeqCst);
    fx.auth.allowed.store(false, Ordering::SeqCst);
    let revoked = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the client is cut off")
        .expect("output");
    let took = revoked.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("access revoked"),
        "{}",
        text(&out)
    );
    assert!(fx.auth.checks.load(Ordering::SeqCst) > checks);
    wait_until("the session is gone", Duration::from_secs(5), || {
        fx.server.sessions() == 0
    })
    .await;
    // nothing more arrives
    let size = std::fs::metadata(fx.p("huge.bin")).expect("partial").len();
    assert!(size < 64 << 30);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        std::fs::metadata(fx.p("huge.bin")).expect("partial").len(),
        size
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_leaving_the_node_cuts_its_sessions_at_once() {
    let fx = fx().await;
    let child = start_big_put(&fx).await;
    fx.servers.unbind(SERVER_UID);
    let gone = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the client is cut off")
        .expect("output");
    assert!(
        gone.elapsed() < Duration::from_secs(3),
        "{:?}",
        gone.elapsed()
    );
    assert!(!out.status.success(), "{}", text(&out));
    // and no new login finds it
    let out = fx.batch("ls\n").await;
    assert!(!out.status.success());
}

/// A session that stays open: sftp reading commands from a pipe nobody writes to.
fn idle_session(fx: &Fx) -> Child {
    let mut cmd = fx.sftp(&format!("alice.{NAME}"), &[&fx.key], &[]);
    cmd.stdin(Stdio::piped());
    cmd.spawn().expect("sftp runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed() {
    let fx = fx_with(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.recheck = Duration::from_millis(250);
    })
    .await;
    let mut child = idle_session(&fx);
    // the client waits for commands that don't come
    let mut stdin = child.stdin.take().expect("stdin");
    wait_until("the session starts", Duration::from_secs(20), || {
        fx.auth.logins.load(Ordering::SeqCst) == 1 && fx.server.sessions() == 1
    })
    .await;
    let start = Instant::now();
    wait_until("the idle session is closed", Duration::from_secs(5), || {
        fx.server.sessions() == 0
    })
    .await;
    assert!(start.elapsed() >= Duration::from_millis(500));
    // the client learns it at its next command
    {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(b"ls\n").await;
    }
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the client ends")
        .expect("output");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("idle"),
        "the client is told why: {}",
        text(&out)
    );
    assert_eq!(fx.auth.logins.load(Ordering::SeqCst), 1);
    assert_eq!(fx.server.sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_user_are_limited() {
    let fx = fx_with(|c| c.max_sessions_per_user = 1).await;
    let mut first = idle_session(&fx);
    let stdin = first.stdin.take();
    wait_until("the first session logs in", Duration::from_secs(20), || {
        fx.auth.logins.load(Ordering::SeqCst) == 1 && fx.server.sessions() == 1
    })
    .await;
    let out = fx.batch("ls\n").await;
    assert!(!out.status.success(), "{}", text(&out));
    drop(stdin);
    drop(first);
    wait_until("the first session ends", Duration::from_secs(10), || {
        fx.server.sessions() == 0
    })
    .await;
    let out = fx.batch("ls\n").await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_key_is_kept_across_restarts_and_fingerprinted_like_openssh() {
    let fx = fx().await;
    let path = fx.tmp.path().join("sftp").join("host_key");
    assert_eq!(mode(&path), 0o600);
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&path)
        .output()
        .await
        .expect("ssh-keygen");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(fx.server.host_key_fingerprint()),
        "{listed} / {}",
        fx.server.host_key_fingerprint()
    );
    assert!(fx.server.host_key_fingerprint().starts_with("SHA256:"));
    assert!(!fx.server.host_key_fingerprint().ends_with('='));
    let again = load_or_create_host_key(&path).expect("kept");
    assert_eq!(fingerprint(&again), fx.server.host_key_fingerprint());
    // a key file left readable by others is tightened
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("mode");
    load_or_create_host_key(&path).expect("still loads");
    assert_eq!(mode(&path), 0o600);
    // a symbolic link in its place is refused
    let link = fx.tmp.path().join("linked_key");
    std::os::unix::fs::symlink(&path, &link).expect("link");
    assert!(load_or_create_host_key(&link).is_err());
}

/// `ssh` with alice's key and these extra arguments.
fn ssh(fx: &Fx, extra: &[&str]) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg("-p")
        .arg(fx.server.local_addr().port().to_string())
        .args(["-F", "/dev/null", "-T", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", fx.known_hosts.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-i",
        ])
        .arg(&fx.key)
        .args(extra)
        .arg(format!("alice.{NAME}@127.0.0.1"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_exec_and_forwarding_are_refused() {
    let fx = fx().await;
    let mut exec = ssh(&fx, &[]);
    exec.arg("id");
    let out = run(exec).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("uid="));
    let forward = ssh(
        &fx,
        &[
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            "0:127.0.0.1:9",
        ],
    );
    let out = run(forward).await;
    assert!(!out.status.success(), "{}", text(&out));
}
