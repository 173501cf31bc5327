//! `resources.disk` enforced end to end: a real `catalyst nodelet` on a containerd of the test's
//! own gives a server a 16 MiB disk of its own (a sparse ext4 image on a loop device, mounted on
//! its data directory); the game writing 256 MiB sees ENOSPC, the node's filesystem does not pay
//! for it, the status, the metrics and an Event report it, the disk grows with the spec, a
//! nodelet restart keeps it mounted under the running server, and deleting the server leaves
//! no loop device and no mount.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

/// Free bytes of the filesystem holding `dir`, after a sync (so what was written counts).
fn free_bytes(dir: &Path) -> u64 {
    nix::unistd::sync();
    let s = nix::sys::statvfs::statvfs(dir).expect("statvfs");
    s.blocks_available() * s.fragment_size()
}

/// What `losetup -j IMAGE` lists (empty: no loop device backed by it).
fn losetup_j(image: &Path) -> String {
    let out = Command::new("losetup")
        .arg("-j")
        .arg(image)
        .output()
        .expect("losetup");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn events_of(server: &catalyst_e2e::Server, uid: &str, reason: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(&api_text(
        server,
        "/apis/catalyst.dev/v1alpha1/namespaces/default/events",
    ))
    .expect("events json");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e.pointer("/spec/reason").and_then(Value::as_str) == Some(reason)
                && e.pointer("/spec/involvedObject/uid")
                    .and_then(Value::as_str)
                    == Some(uid)
        })
        .filter_map(|e| e.pointer("/spec/message").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

fn disk_status(server: &catalyst_e2e::Server, name: &str) -> (u64, u64) {
    let o = gs(server, name);
    let get = |f: &str| {
        o.pointer(&format!("/status/disk/{f}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    (get("usedBytes"), get("limitBytes"))
}

/// A game that waits for `go` on its console, then writes 256 MiB into its data directory,
/// says how that went, and stays up.
fn filler(image: &Path, disk: &str) -> String {
    manifest(
        "filler",
        image,
        "echo waiting; read go; dd if=/dev/zero of=/home/container/big bs=1M count=256; echo \"dd exit $?\"; sync; ls -l /home/container; df /home/container; echo done; exec sleep 3600",
        &format!(
            "  ready: {{logPattern: '^waiting$'}}\n  stop: {{signal: SIGKILL, timeoutSeconds: 5}}\n  resources: {{disk: {disk}}}\n"
        ),
    )
}

#[test]
fn a_servers_disk_limit_holds_and_is_reported_grown_kept_and_removed() {
    let env = setup();
    let ndir = env.root.join("nodelet-q");
    node_with_ports(&env.server, "node-q", 8600);
    let mut nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-q",
        "cat-e2e9",
        "10.231.9.0/24",
    );
    let server = &env.server;

    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&filler(&env.image, "16Mi")),
    ));
    let obj = wait_phase(server, "filler", "Running", &ndir);
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("uid")
        .to_owned();
    let cid = format!("gs-{uid}");
    let ndir = std::fs::canonicalize(&ndir).expect("nodelet dir");
    let data = ndir.join("servers").join(&uid);
    let image = ndir.join("disks").join(format!("{uid}.img"));

    // the data directory is a filesystem of its own, from the server's image on a loop device
    let mount = catalyst_nodelet::disk::mount_at(&data)
        .expect("mountinfo")
        .expect("the data directory is a mount");
    assert_eq!(mount.fstype, "ext4");
    let loops = catalyst_nodelet::disk::loops_of(&image);
    assert_eq!(loops, vec![PathBuf::from(&mount.source)], "one loop device");
    let (_, limit) = disk_status(server, "filler");
    assert!(
        limit > 8 << 20 && limit <= 16 << 20,
        "the status shows the limit from the start: {limit}"
    );

    // the game writes 256 MiB: it gets ENOSPC, and the node's filesystem pays only the 16 MiB
    // (free space is measured around the write; other processes on the machine write too, so
    // the bound is loose; the image's own blocks are the exact measure)
    let before = free_bytes(&ndir);
    ok(ctl(server, &["command", "filler", "--", "go"], None));
    eventually("the game's dd ends", Duration::from_secs(30), || {
        console_log(&ndir, &obj).contains("done")
    });
    let after = free_bytes(&ndir);
    let log = console_log(&ndir, &obj);
    assert!(log.contains("No space left on device"), "{log}");
    assert!(!log.contains("dd exit 0"), "{log}");
    let big = std::fs::metadata(data.join("big")).expect("the file").len();
    assert!(
        (8 << 20..=16 << 20).contains(&big),
        "{big} bytes written, at most the disk"
    );
    let grew = before.saturating_sub(after);
    assert!(
        grew < 128 << 20,
        "the node's filesystem lost {} MiB for a 256 MiB write",
        grew >> 20
    );
    let on_node = std::fs::metadata(&image).expect("image").blocks() * 512;
    assert!(
        on_node <= 17 << 20,
        "the sparse image holds {on_node} bytes on the node"
    );
    eprintln!(
        "disk quota: dd wrote {} MiB; the node's free space fell by {} MiB; the image holds {} MiB",
        big >> 20,
        grew >> 20,
        on_node >> 20
    );

    // status, metrics and the almost-full warning
    eventually("the status shows the use", Duration::from_secs(60), || {
        disk_status(server, "filler").0 >= big
    });
    let (used, limit) = disk_status(server, "filler");
    assert!(used <= limit, "{used} of {limit}");
    eventually("a DiskAlmostFull Event", Duration::from_secs(30), || {
        !events_of(server, &uid, "DiskAlmostFull").is_empty()
    });
    assert_eq!(events_of(server, &uid, "DiskAlmostFull").len(), 1);
    eventually(
        "the disk in the Prometheus endpoint",
        Duration::from_secs(30),
        || {
            let text = api_text(server, "/metrics");
            let line = |m: &str| {
                text.lines()
                    .find(|l| l.starts_with(&format!("{m}{{")) && l.contains("name=\"filler\""))
                    .and_then(|l| l.rsplit(' ').next())
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            text.contains("# TYPE catalyst_gameserver_disk_used_bytes gauge")
                && line("catalyst_gameserver_disk_used_bytes") >= big as f64
                && line("catalyst_gameserver_disk_limit_bytes") == limit as f64
        },
    );

    // the file API meets the same limit: 507, and no half-written file is left
    let resp = server
        .http_client()
        .put(format!(
            "{}/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/filler/files",
            server.url
        ))
        .query(&[("path", "/too-big.bin")])
        .bearer_auth(&server.token)
        .body(vec![0u8; 32 << 20])
        .send()
        .expect("upload");
    assert_eq!(resp.status().as_u16(), 507, "{:?}", resp.text());
    let listing = api_text(
        server,
        "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/filler/files?path=/",
    );
    assert!(
        !listing.contains("too-big") && !listing.contains("catalyst-upload"),
        "{listing}"
    );

    // kill -9 of the nodelet: the running server keeps its disk; the new nodelet finds it
    // mounted and leaves it
    let pid = env.ctd.task_pid(&cid).expect("task");
    nodelet.kill9();
    nodelet.restart(&ndir);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(env.ctd.task_pid(&cid), Some(pid), "the same task");
    assert_eq!(catalyst_nodelet::disk::loops_of(&image), loops);
    assert_eq!(
        catalyst_nodelet::disk::mount_at(&data)
            .expect("mountinfo")
            .map(|m| m.source),
        Some(mount.source.clone())
    );

    // a larger disk at the next start: grown, the data kept
    ok(ctl(server, &["stop", "filler"], None));
    wait_phase(server, "filler", "Stopped", &ndir);
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&filler(&env.image, "64Mi")),
    ));
    ok(ctl(server, &["start", "filler"], None));
    wait_phase(server, "filler", "Running", &ndir);
    eventually(
        "the status shows the new limit",
        Duration::from_secs(30),
        || disk_status(server, "filler").1 > 48 << 20,
    );
    assert_eq!(
        std::fs::metadata(data.join("big")).expect("kept").len(),
        big,
        "the data survived the grow"
    );
    let grown = events_of(server, &uid, "DiskGrown");
    assert_eq!(grown.len(), 1, "{grown:?}");
    eprintln!("disk quota: {}", grown[0]);

    // a lower limit is not a shrink
    ok(ctl(server, &["stop", "filler"], None));
    wait_phase(server, "filler", "Stopped", &ndir);
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&filler(&env.image, "32Mi")),
    ));
    ok(ctl(server, &["start", "filler"], None));
    wait_phase(server, "filler", "Running", &ndir);
    eventually("a DiskNotShrunk Event", Duration::from_secs(30), || {
        !events_of(server, &uid, "DiskNotShrunk").is_empty()
    });
    assert!(disk_status(server, "filler").1 > 48 << 20);
    assert!(data.join("big").exists());

    // deleted: no mount, no loop device, no image
    ok(ctl(server, &["delete", "gs", "filler", "--wait"], None));
    eventually(
        "the disk unmounted, detached and removed",
        Duration::from_secs(30),
        || {
            catalyst_nodelet::disk::mount_at(&data)
                .expect("mountinfo")
                .is_none()
                && losetup_j(&image).is_empty()
                && !image.exists()
        },
    );
    assert!(disks_below(&ndir).is_empty());
    assert!(!data.exists());
}
