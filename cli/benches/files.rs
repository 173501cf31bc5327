//! File transfer benchmark with real processes: a `catalyst server`, a nodelet on its own
//! containerd, one busybox GameServer. Prints MB/s of an upload and a download of one file
//! through the file API (HTTPS, API server, node tunnel, path layer), and through SFTP with
//! OpenSSH's `sftp` client, beside `cp` of the same file on the same disk (the limit) and
//! beside OpenSSH's own `sftp-server` (`sftp -D`, no SSH transport); then a list of a
//! 10,000-file directory through the API beside `read_dir` + `lstat` of it.
//!
//! `cargo bench -p catalyst-cli --bench files` (root; containerd, runc, CNI plugins, openssh).
//! `CATALYST_BENCH_MIB` sets the file size (default 512).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalyst_e2e::containerd::Containerd;
use catalyst_e2e::nodelet::NodeletGuard;
use catalyst_e2e::Server;
use serde_json::{json, Value};

const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn line(label: &str, bytes: u64, d: Duration) {
    println!(
        "  {label:<44} {:>8.1} MB/s  ({:.2} s)",
        mbps(bytes, d),
        d.as_secs_f64()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u64 = std::env::var("CATALYST_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let bytes = mib << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let image_path = dir.path().join("busybox.tar");
    catalyst_nodelet::pack::busybox_archive(&image_path).expect("image");
    let ctd = Containerd::start(&dir.path().join("ctd"));
    let server = Server::start(
        env!("CARGO_BIN_EXE_catalyst"),
        &dir.path().join("server"),
        &[],
    );
    let ndir = dir.path().join("nodelet");
    let http = server.http_client();
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}{path}", server.url))
            .bearer_auth(&server.token)
            .timeout(Duration::from_secs(3600))
    };
    let node = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node",
        "metadata": {"name": "benchf"}, "spec": {"portRange": {"min": 8900, "max": 8999}}});
    let r = api(reqwest::Method::POST, "/apis/catalyst.dev/v1alpha1/nodes")
        .json(&node)
        .send()
        .expect("node");
    assert!(r.status().is_success());
    let sftp_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let nodelet = Command::new(env!("CARGO_BIN_EXE_catalyst"))
        .args([
            "nodelet",
            "--server",
            &server.url,
            "--name",
            "benchf",
            "--address",
            "127.0.0.1",
        ])
        .arg("--join-token")
        .arg(server.data_dir.join("join-token"))
        .arg("--data-dir")
        .arg(&ndir)
        .arg("--containerd-socket")
        .arg(&ctd.socket)
        .args(["--bridge", "cat-benchf", "--subnet", "10.232.8.0/24"])
        .args(["--sftp-listen", &format!("127.0.0.1:{sftp_port}")])
        .arg("--image-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("nodelet");
    let _node = NodeletGuard::new(nodelet, &server, &ndir, "cat-benchf");
    let gs = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"image": format!("oci-archive:{}", image_path.display()), "startup": "exec sleep 36000",
                 "nodeName": "benchf", "resources": {"disk": "40Gi"},
                 "stop": {"signal": "SIGKILL", "timeoutSeconds": 5}}});
    let r = api(reqwest::Method::POST, GS)
        .json(&gs)
        .send()
        .expect("create");
    assert!(r.status().is_success(), "{:?}", r.text());
    let deadline = Instant::now() + Duration::from_secs(180);
    let uid = loop {
        let v: Value = api(reqwest::Method::GET, &format!("{GS}/bench"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        if v.pointer("/status/phase").and_then(Value::as_str) == Some("Running") {
            break v["metadata"]["uid"].as_str().expect("uid").to_owned();
        }
        assert!(Instant::now() < deadline, "the server never ran: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let data = ndir.join("servers").join(&uid);

    // the file, on the same disk as the data directory
    let source = dir.path().join("source.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&source).expect("source");
        let chunk: Vec<u8> = (0..(1u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for _ in 0..mib {
            f.write_all(&chunk).expect("write");
        }
        f.sync_all().expect("sync");
    }
    println!("files: one {mib} MiB file, then a 10,000-file directory (2 cores, same disk)");
    let t = Instant::now();
    let cp = Command::new("cp")
        .arg(&source)
        .arg(dir.path().join("copy.bin"))
        .status()
        .expect("cp");
    assert!(cp.success());
    Command::new("sync").status().expect("sync");
    line("cp (the limit)", bytes, t.elapsed());
    let _ = std::fs::remove_file(dir.path().join("copy.bin"));

    let t = Instant::now();
    let r = api(reqwest::Method::PUT, &format!("{GS}/bench/files"))
        .query(&[("path", "/big.bin")])
        .body(std::fs::File::open(&source).expect("source"))
        .send()
        .expect("upload");
    assert!(r.status().is_success(), "{:?}", r.text());
    line("upload through the API (PUT)", bytes, t.elapsed());
    let t = Instant::now();
    let mut r = api(reqwest::Method::GET, &format!("{GS}/bench/filecontents"))
        .query(&[("path", "/big.bin")])
        .send()
        .expect("download");
    let mut sink = std::fs::File::create(dir.path().join("down.bin")).expect("down");
    let got = std::io::copy(&mut r, &mut sink).expect("body");
    assert_eq!(got, bytes);
    line("download through the API (GET)", bytes, t.elapsed());
    let _ = std::fs::remove_file(dir.path().join("down.bin"));

    sftp(&server, &dir, &source, bytes, sftp_port);

    // 10,000 files in one directory, made on the node as the server's user would
    let many = data.join("many");
    std::fs::create_dir(&many).expect("many");
    for i in 0..10_000 {
        std::fs::write(many.join(format!("file-{i:05}.txt")), "x").expect("file");
    }
    let owner = std::fs::metadata(&data).map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.uid(), m.gid())
    });
    if let Ok((u, g)) = owner {
        let _ = Command::new("chown")
            .args(["-R", &format!("{u}:{g}")])
            .arg(&many)
            .status();
    }
    let t = Instant::now();
    let mut n = 0;
    for e in std::fs::read_dir(&many).expect("read_dir").flatten() {
        let _ = std::fs::symlink_metadata(e.path());
        n += 1;
    }
    let raw = t.elapsed();
    // pages as large as they come (a page is cut to fit one tunnel frame), then of 1,000
    let list_all = |limit: &str| {
        let t = Instant::now();
        let (mut after, mut n, mut requests) = (None::<String>, 0, 0);
        loop {
            let mut q = vec![("path", "/many".to_owned()), ("limit", limit.to_owned())];
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let v: Value = api(reqwest::Method::GET, &format!("{GS}/bench/files"))
                .query(&q)
                .send()
                .and_then(|r| r.json())
                .expect("page");
            n += v["items"].as_array().map_or(0, Vec::len);
            requests += 1;
            match v["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break (n, requests, t.elapsed()),
            }
        }
    };
    let (listed, big_pages, one) = list_all("10000");
    let (paged, _, pages) = list_all("1000");
    assert_eq!((n, listed, paged), (10_000, 10_000, 10_000));
    println!(
        "  list 10,000 files: read_dir+lstat {:.1} ms; API in {big_pages} pages (limit 10,000) {:.1} ms; API 10 pages of 1,000 {:.1} ms",
        raw.as_secs_f64() * 1e3,
        one.as_secs_f64() * 1e3,
        pages.as_secs_f64() * 1e3
    );
    let _ = api(reqwest::Method::DELETE, &format!("{GS}/bench")).send();
}

/// SFTP put and get with OpenSSH's client: through the nodelet's server (an SSH key on the
/// User, file.sftp bound), and through OpenSSH's own sftp-server spoken to directly.
fn sftp(server: &Server, dir: &tempfile::TempDir, source: &Path, bytes: u64, port: u16) {
    let sftp_server = ["/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let key = dir.path().join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        println!("  (sftp skipped: no ssh-keygen)");
        return;
    }
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let http = server.http_client();
    let post = |path: &str, body: Value| {
        http.post(format!("{}{path}", server.url))
            .bearer_auth(&server.token)
            .json(&body)
            .send()
            .expect("post")
    };
    post(
        "/apis/catalyst.dev/v1alpha1/users",
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "User",
            "metadata": {"name": "bench"}, "spec": {"sshKeys": [public.trim()]}}),
    );
    post(
        "/apis/catalyst.dev/v1alpha1/namespaces/default/rolebindings",
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "RoleBinding",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"roleRef": "operator", "subjects": [{"kind": "User", "name": "bench"}]}}),
    );
    std::thread::sleep(Duration::from_secs(1));
    let batch = |name: &str, cmds: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, cmds).expect("batch");
        p
    };
    let down = dir.path().join("sftp-down.bin");
    let run = |args: &[&str], b: &Path| {
        // options, then the batch file, then the destination (when there is one)
        let (opts, dest) = match args.split_last() {
            Some((last, rest)) if last.contains('@') => (rest, Some(*last)),
            _ => (args, None),
        };
        let t = Instant::now();
        let out = Command::new("sftp")
            .args(opts)
            .arg("-b")
            .arg(b)
            .args(dest)
            .output()
            .expect("sftp");
        assert!(
            out.status.success(),
            "sftp {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };
    let ssh = [
        "-q",
        "-P",
        &port.to_string(),
        "-i",
        &key.display().to_string(),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "bench.bench@127.0.0.1",
    ]
    .map(str::to_owned);
    let ssh: Vec<&str> = ssh.iter().map(String::as_str).collect();
    let put = batch(
        "put.batch",
        &format!("put {} /sftp.bin\n", source.display()),
    );
    let get = batch("get.batch", &format!("get /sftp.bin {}\n", down.display()));
    line("sftp put (catalyst nodelet)", bytes, run(&ssh, &put));
    line("sftp get (catalyst nodelet)", bytes, run(&ssh, &get));
    let _ = std::fs::remove_file(&down);
    if let Some(raw) = sftp_server {
        let target = dir.path().join("raw");
        std::fs::create_dir_all(&target).expect("raw dir");
        let put = batch(
            "raw-put.batch",
            &format!("put {} {}/sftp.bin\n", source.display(), target.display()),
        );
        let get = batch(
            "raw-get.batch",
            &format!("get {}/sftp.bin {}\n", target.display(), down.display()),
        );
        line(
            "sftp put (OpenSSH sftp-server, no SSH)",
            bytes,
            run(&["-q", "-D", raw], &put),
        );
        line(
            "sftp get (OpenSSH sftp-server, no SSH)",
            bytes,
            run(&["-q", "-D", raw], &get),
        );
    }
}
