//! Backup and restore benchmark with real processes: a `catalyst server`, a nodelet on its
//! own containerd, one busybox GameServer whose data directory holds `CATALYST_BENCH_MIB`
//! (default 1024) MiB: three quarters random bytes in large files, one quarter small text
//! files. Prints MB/s of a Backup (tar.zst, SHA-256, to the node's disk) and of a Restore
//! (checksum, checked extract, swap) through the API, beside `tar --zstd` of the same
//! directory on the same disk (the limit), and the nodelet's resident memory before and at its
//! peak during each (it must stay flat: nothing is held whole).
//!
//! `cargo bench -p catalyst-cli --bench backups` (root; containerd, runc, CNI plugins, zstd).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalyst_e2e::containerd::Containerd;
use catalyst_e2e::nodelet::NodeletGuard;
use catalyst_e2e::{rss_mib, Server};
use serde_json::{json, Value};

const API: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default";

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// Fills `dir` with `bytes`: 3/4 in random 64 MiB files, 1/4 in 16 KiB text files.
fn fill(dir: &Path, bytes: u64) {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = |n: usize| -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(n);
        v
    };
    let big = bytes * 3 / 4;
    std::fs::create_dir_all(dir.join("world/region")).expect("dirs");
    let mut done = 0u64;
    let mut i = 0;
    while done < big {
        let n = (64u64 << 20).min(big - done) as usize;
        std::fs::write(dir.join(format!("world/region/r.{i}.mca")), random(n)).expect("big");
        done += n as u64;
        i += 1;
    }
    let text: Vec<u8> = (0..16 << 10)
        .map(|i: usize| b"the quick brown fox jumps over the lazy dog\n"[i % 44])
        .collect();
    let small = bytes - big;
    let count = small / text.len() as u64;
    for i in 0..count {
        let sub = dir.join(format!("plugins/p{}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&sub).expect("sub");
        }
        std::fs::write(sub.join(format!("c{i}.yml")), &text).expect("small");
    }
}

/// Polls a Backup or Restore until it ends, sampling the nodelet's memory; (time, peak MiB).
fn follow(
    http: &reqwest::blocking::Client,
    server: &Server,
    path: &str,
    nodelet: u32,
) -> (Duration, f64) {
    let t = Instant::now();
    let mut peak = 0f64;
    loop {
        peak = peak.max(rss_mib(nodelet));
        let v: Value = http
            .get(format!("{}{path}", server.url))
            .bearer_auth(&server.token)
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        match v.pointer("/status/phase").and_then(Value::as_str) {
            Some("Completed") => return (t.elapsed(), peak),
            Some("Failed") => panic!("{path} failed: {v}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
        assert!(
            t.elapsed() < Duration::from_secs(3600),
            "{path} never ended"
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u64 = std::env::var("CATALYST_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
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
    let http = server.http_client();
    let post = |path: &str, body: Value| {
        let r = http
            .post(format!("{}{path}", server.url))
            .bearer_auth(&server.token)
            .json(&body)
            .send()
            .expect("post");
        assert!(r.status().is_success(), "{path}: {:?}", r.text());
    };
    post(
        "/apis/catalyst.dev/v1alpha1/nodes",
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node",
            "metadata": {"name": "benchb"}, "spec": {"portRange": {"min": 9500, "max": 9599}}}),
    );
    let ndir = dir.path().join("nodelet");
    let nodelet = Command::new(env!("CARGO_BIN_EXE_catalyst"))
        .args(["nodelet", "--server", &server.url, "--name", "benchb"])
        .args(["--address", "127.0.0.1", "--sftp-listen", "off"])
        .arg("--join-token")
        .arg(server.data_dir.join("join-token"))
        .arg("--data-dir")
        .arg(&ndir)
        .arg("--containerd-socket")
        .arg(&ctd.socket)
        .args(["--bridge", "cat-benchb", "--subnet", "10.232.12.0/24"])
        .arg("--image-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("nodelet");
    let node = NodeletGuard::new(nodelet, &server, &ndir, "cat-benchb");
    let disk = format!("{}Gi", (mib * 3).div_ceil(1024) + 1);
    post(
        &format!("{API}/gameservers"),
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"image": format!("oci-archive:{}", image_path.display()),
                     "startup": "exec sleep 36000", "nodeName": "benchb",
                     "resources": {"disk": disk},
                     "stop": {"signal": "SIGKILL", "timeoutSeconds": 5}}}),
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let uid = loop {
        let v: Value = http
            .get(format!("{}{API}/gameservers/bench", server.url))
            .bearer_auth(&server.token)
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
    fill(&data, bytes);
    // the server's own files, as if the game had written them
    let owner = std::fs::metadata(&data).map(|m| {
        use std::os::unix::fs::MetadataExt;
        format!("{}:{}", m.uid(), m.gid())
    });
    let chowned = Command::new("chown")
        .args(["-R", &owner.expect("owner")])
        .arg(&data)
        .status()
        .expect("chown");
    assert!(chowned.success());
    Command::new("sync").status().expect("sync");
    println!(
        "backups: {mib} MiB (3/4 random in 64 MiB files, 1/4 in 16 KiB text files), 2 cores, same disk"
    );

    // the limit: GNU tar with zstd, same directory, same disk
    let limit_archive = ndir.join("limit.tar.zst");
    let t = Instant::now();
    let ok = Command::new("tar")
        .arg("--zstd")
        .arg("-cf")
        .arg(&limit_archive)
        .arg("-C")
        .arg(&data)
        .arg(".")
        .status()
        .expect("tar");
    assert!(ok.success());
    Command::new("sync").status().expect("sync");
    let tar_c = t.elapsed();
    let out = ndir.join("limit-out");
    std::fs::create_dir_all(&out).expect("out");
    let t = Instant::now();
    let ok = Command::new("tar")
        .arg("--zstd")
        .arg("-xf")
        .arg(&limit_archive)
        .arg("-C")
        .arg(&out)
        .status()
        .expect("tar");
    assert!(ok.success());
    Command::new("sync").status().expect("sync");
    let tar_x = t.elapsed();
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&limit_archive);

    let pid = node.child.id();
    let idle = rss_mib(pid);
    post(
        &format!("{API}/backups"),
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Backup",
            "metadata": {"name": "b", "namespace": "default"}, "spec": {"gameServer": "bench"}}),
    );
    let (backup, backup_peak) = follow(&http, &server, &format!("{API}/backups/b"), pid);
    post(
        &format!("{API}/restores"),
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Restore",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {"backup": "b", "truncate": true}}),
    );
    let (restore, restore_peak) = follow(&http, &server, &format!("{API}/restores/r"), pid);
    let row = |label: &str, d: Duration| {
        println!(
            "  {label:<44} {:>8.1} MB/s  ({:.2} s)",
            mbps(bytes, d),
            d.as_secs_f64()
        )
    };
    row("tar --zstd -c (the limit)", tar_c);
    row("Backup through the API", backup);
    row("tar --zstd -x (the limit)", tar_x);
    row(
        "Restore through the API (stop, check, swap, start)",
        restore,
    );
    println!(
        "  nodelet RSS: idle {idle:.1} MiB, peak during the backup {backup_peak:.1} MiB, during the restore {restore_peak:.1} MiB"
    );
}
