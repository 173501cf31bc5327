//! Attacks from inside a game server and its install script, against the real binaries on real
//! containerd: a probe (e2e/probe/probe.c, built here with `gcc -static`) reports from inside
//! the container what the container lets it do, and the host checks whose uid the process
//! really is. The image is made the way images built from scratch often are: `/tmp` is 0755.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use catalyst_nodelet::pack::{write_archive, Entry};
use serde_json::Value;
use support::*;

/// Docker's default capability set (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
/// SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP) as /proc shows it.
const DOCKER_DEFAULT_CAPS: &str = "00000000a80425fb";

/// The first host uid of the servers' ranges (the nodelet's default).
const UID_BASE: u32 = 1 << 30;

/// Builds the probe and an image holding busybox, the probe at /usr/bin/probe, and a `/tmp`
/// that is root's with mode 0755.
fn probe_image(root: &Path) -> PathBuf {
    let bin = root.join("probe");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/probe/probe.c");
    let out = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(src)
        .output()
        .expect("gcc");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut entries = vec![
        Entry::Dir("bin".into(), 0o755),
        Entry::Dir("etc".into(), 0o755),
        Entry::Dir("home".into(), 0o755),
        Entry::Dir("home/container".into(), 0o755),
        Entry::Dir("tmp".into(), 0o755),
        Entry::Dir("usr".into(), 0o755),
        Entry::Dir("usr/bin".into(), 0o755),
        Entry::File(
            "bin/busybox".into(),
            std::fs::read("/bin/busybox").expect("busybox-static"),
            0o755,
        ),
        Entry::File(
            "usr/bin/probe".into(),
            std::fs::read(&bin).expect("probe"),
            0o755,
        ),
        Entry::File(
            "etc/passwd".into(),
            b"root:x:0:0:root:/root:/bin/sh\ncontainer:x:1000:1000::/home/container:/bin/sh\n"
                .to_vec(),
            0o644,
        ),
    ];
    for applet in ["sh", "sleep", "echo", "cat", "id", "chown", "ls", "touch"] {
        entries.push(Entry::Symlink(format!("bin/{applet}"), "busybox".into()));
    }
    let image = root.join("probe.tar");
    write_archive(&image, &entries, &["sh"]).expect("probe image");
    image
}

/// `key=value` lines of the probe's report whose `probe=` line names `who`.
fn report(text: &str, who: &str) -> std::collections::HashMap<String, String> {
    let start = text
        .find(&format!("probe={who}\n"))
        .unwrap_or_else(|| panic!("no {who} report in:\n{text}"));
    let body = &text[start..];
    let end = body
        .find(&format!("probe_done={who}"))
        .unwrap_or_else(|| panic!("the {who} report did not finish:\n{body}"));
    body[..end]
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn uid_of(server: &Value) -> String {
    server
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("uid")
        .to_owned()
}

/// The real uid of a running process, from the host's /proc.
fn host_uid(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().and_then(|u| u.parse().ok()))
        .expect("Uid line")
}

#[test]
fn a_hostile_server_and_its_install_script_stay_in_their_box() {
    let env = setup();
    let image = probe_image(&env.root);
    let ndir = env.root.join("nodelet");
    node_with_ports(&env.server, "node-w", 7800);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-w",
        "cat-e2e6",
        "10.231.6.0/24",
    );
    let server = &env.server;
    // no limits set anywhere: the node's defaults apply
    let install = "probe install > /mnt/server/install-report.txt; \
                   echo installed > /etc/installed-by-script && echo etc-write=ok >> /mnt/server/install-report.txt; \
                   touch /mnt/server/owned-by-root; chown 0:0 /mnt/server/owned-by-root";
    let startup = "probe main; echo probe-ready; exec sleep 100000";
    let extra = format!(
        "  ready: {{logPattern: '^probe-ready$'}}\n  install: {{script: {install:?}}}\n  stop: {{signal: SIGKILL, timeoutSeconds: 1}}\n"
    );
    for name in ["box-a", "box-b"] {
        ok(ctl(
            server,
            &["apply", "-f", "-"],
            Some(&manifest(name, &image, startup, &extra)),
        ));
    }
    let a = wait_phase(server, "box-a", "Running", &ndir);
    let b = wait_phase(server, "box-b", "Running", &ndir);

    // the server's own process
    let mut log = String::new();
    eventually(
        "the probe's report",
        std::time::Duration::from_secs(10),
        || {
            log = console_log(&ndir, &a);
            log.contains("probe_done=main")
        },
    );
    let main = report(&log, "main");
    let expect = |r: &std::collections::HashMap<String, String>, k: &str, v: &str| {
        assert_eq!(r.get(k).map(String::as_str), Some(v), "{k} in {r:?}");
    };
    let refused = |r: &std::collections::HashMap<String, String>, k: &str| {
        let got = r.get(k).map(String::as_str).unwrap_or("missing");
        assert!(
            got != "ok" && got != "missing",
            "{k} must fail, got {got}: {r:?}"
        );
    };
    expect(&main, "Seccomp", "2");
    expect(&main, "NoNewPrivs", "1");
    for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"] {
        expect(&main, set, "0000000000000000");
    }
    expect(&main, "Uid", "1000 1000 1000 1000");
    for attack in ["unshare_user", "keyctl", "mknod", "mount", "sysrq_trigger"] {
        refused(&main, attack);
    }
    // masked: reads as nothing (or is absent from this kernel)
    for masked in ["kcore", "keys"] {
        let got = main.get(masked).cloned().unwrap_or_default();
        assert!(
            got.starts_with("0:") || !got.contains(':'),
            "/proc/{masked} must read as nothing: {got}"
        );
    }
    // no limits were set: the node's defaults (cgroup v2 or v1, as the machine has it)
    expect(&main, "memory_max", &(1u64 << 30).to_string());
    expect(&main, "pids_max", "512");
    let cpu = main.get("cpu_max").cloned().unwrap_or_default();
    assert!(cpu == "100000 100000" || cpu == "100000", "one CPU: {cpu}");
    expect(&main, "write_tmp", "ok");
    expect(&main, "write_home", "ok");
    expect(&main, "tmp_mode", "1777");
    refused(&main, "write_etc");

    // the install script ran as root inside the server's user namespace only
    let data_a = ndir.join("servers").join(uid_of(&a));
    let install_text =
        std::fs::read_to_string(data_a.join("install-report.txt")).expect("install report");
    let inst = report(&install_text, "install");
    expect(&inst, "Seccomp", "2");
    expect(&inst, "NoNewPrivs", "1");
    expect(&inst, "Uid", "0 0 0 0");
    expect(&inst, "CapEff", DOCKER_DEFAULT_CAPS);
    expect(&inst, "CapBnd", DOCKER_DEFAULT_CAPS);
    expect(&inst, "CapAmb", "0000000000000000");
    for attack in ["unshare_user", "keyctl", "mknod", "mount", "sysrq_trigger"] {
        refused(&inst, attack);
    }
    expect(&inst, "write_tmp", "ok");
    expect(&inst, "write_etc", "ok");
    assert!(
        install_text.contains("etc-write=ok"),
        "root inside may change its own image's files: {install_text}"
    );

    // from the host: whose uid the processes really are
    let cid_a = format!("gs-{}", uid_of(&a));
    let cid_b = format!("gs-{}", uid_of(&b));
    let uid_a = host_uid(env.ctd.task_pid(&cid_a).expect("box-a runs"));
    let uid_b = host_uid(env.ctd.task_pid(&cid_b).expect("box-b runs"));
    for u in [uid_a, uid_b] {
        assert!(
            u >= UID_BASE + 1000 && (u - UID_BASE) % 65536 == 1000,
            "the server's uid 1000 is uid 1000 of a range of its own on the host, not {u}"
        );
    }
    assert_ne!(uid_a, uid_b, "two servers never share a host uid");
    let range_a = uid_a - 1000;
    let meta = std::fs::metadata(&data_a).expect("data dir");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (uid_a, uid_a),
        "the data dir belongs to the server's range"
    );
    let owned = std::fs::symlink_metadata(data_a.join("owned-by-root")).expect("file");
    assert_eq!(
        owned.uid(),
        uid_a,
        "files the install script made are given to the server's user afterwards"
    );
    assert!(owned.uid() >= range_a && owned.uid() < range_a + 65536);
    // nothing the install did reached the host or the shared image
    assert!(!Path::new("/etc/installed-by-script").exists());

    // archives outside the node's image directories are refused by the nodelet, with the reason
    for (name, path) in [("shadow", "/etc/shadow"), ("stdin", "/dev/stdin")] {
        let m = format!(
            "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  image: oci-archive:{path}\n"
        );
        ok(ctl(server, &["apply", "-f", "-"], Some(&m)));
        let obj = wait_phase(server, name, "Error", &ndir);
        assert_eq!(
            obj.pointer("/status/reason").and_then(Value::as_str),
            Some("ImagePullFailed")
        );
        let msg = obj
            .pointer("/status/message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(msg.contains(path), "the message names the file: {msg}");
        ok(ctl(server, &["delete", "gs", name], None));
    }

    // the ranges are released with their servers
    let claims = |uid: &str| {
        std::fs::read_dir("/var/lib/catalyst/idmap")
            .map(|d| {
                d.flatten()
                    .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|s| s.contains(uid)))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(claims(&uid_of(&a)), 1, "box-a holds one claim");
    ok(ctl(server, &["delete", "gs", "box-a", "--wait"], None));
    // the object is gone once the nodelet reported it stopped; the range goes when the nodelet
    // then sees it gone
    eventually(
        "box-a's range is released",
        std::time::Duration::from_secs(30),
        || claims(&uid_of(&a)) == 0,
    );
    assert!(!catalyst_nodelet::userns::userns_path(&cid_a).exists());
}

/// Admission refuses, with the field at fault, what a tenant could use against the node:
/// archive paths that climb or are relative, privileged and out-of-range host ports, and
/// variable values that would break out of a line.
#[test]
fn admission_refuses_hostile_paths_ports_and_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        catalyst_e2e::Server::start(env!("CARGO_BIN_EXE_catalyst"), &dir.path().join("s"), &[]);
    let gs = |spec: &str| {
        format!(
            "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: bad\n  namespace: default\nspec:\n{spec}"
        )
    };
    let cases = [
        ("  image: oci-archive:images/a.tar\n", "spec.image"),
        (
            "  image: oci-archive:/var/lib/catalyst/images/../../../etc/shadow\n",
            "spec.image",
        ),
        (
            "  image: busybox\n  ports: [{containerPort: 22, hostPort: 22, policy: Static}]\n",
            "spec.ports[0].hostPort",
        ),
        (
            "  image: busybox\n  variables: {MOTD: \"hi\\nrm -rf /\"}\n",
            "spec.variables[MOTD]",
        ),
        (
            "  image: busybox\n  variables: {MOTD: \"hi\\rthere\"}\n",
            "spec.variables[MOTD]",
        ),
        (
            "  image: busybox\n  env: {X: \"a\\u0000b\"}\n",
            "spec.env[X]",
        ),
    ];
    for (spec, field) in cases {
        let out = ctl(&server, &["apply", "-f", "-"], Some(&gs(spec)));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted:\n{spec}");
        assert!(err.contains(field), "{field} named for\n{spec}: {err}");
    }
    let out = ctl(&server, &["get", "gs", "-A", "-o", "name"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "nothing was stored"
    );
}
