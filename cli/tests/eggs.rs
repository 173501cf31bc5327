//! End to end with a Pterodactyl egg (real containerd, `catalyst server`, `catalyst nodelet`):
//! an egg written for Debian's mumble-server is converted with an image map to an image built
//! here from this machine's murmurd and Debian's own murmur configuration; its install script
//! copies that configuration, the nodelet edits it before every start (the host port, a
//! variable), the server starts on the egg's ready text, and a real client's UDP ping shows
//! the server read the edited file. A Template change reaches the server at its restart, not
//! before; a config file that does not parse or leads outside the data directory is reported
//! and left alone; the egg's denylist refuses files; `reinstall` runs the script again; its stop `^SIGTERM` (murmurd catches
//! SIGTERM, not SIGINT) stops it cleanly.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::*;

const PORT: u16 = 9510;

fn egg_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eggs/egg-mumble-debian.json")
}

/// Mumble's UDP ping (what its client sends to show a server's users and bandwidth): the
/// answer's (max users, max bandwidth).
fn ping(port: u16) -> Option<(u32, u32)> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut reply = [0u8; 64];
    for _ in 0..10 {
        let mut msg = vec![0u8; 4];
        msg.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        sock.send_to(&msg, ("127.0.0.1", port)).expect("send");
        if let Ok((24, _)) = sock.recv_from(&mut reply) {
            assert_eq!(&reply[4..12], &0x0102_0304_0506_0708u64.to_be_bytes());
            let max_users = u32::from_be_bytes(reply[16..20].try_into().expect("4 bytes"));
            let bandwidth = u32::from_be_bytes(reply[20..24].try_into().expect("4 bytes"));
            return Some((max_users, bandwidth));
        }
    }
    None
}

fn files_cat(server: &catalyst_e2e::Server, name: &str, path: &str) -> String {
    ok(ctl(server, &["files", "cat", name, path], None))
}

#[test]
fn an_egg_runs_a_debian_game_server_with_its_config_edited() {
    let env = setup();
    let server = &env.server;
    let ndir = env.root.join("nodelet-egg");
    node_with_ports(server, "node-egg", 9500);
    let _nodelet = Nodelet::start(
        server,
        &env.ctd,
        &ndir,
        "node-egg",
        "cat-egg0",
        "10.231.50.0/24",
    );
    // the game's image: this machine's murmurd and Debian's configuration file for it
    let image = env.root.join("mumble.tar");
    catalyst_nodelet::pack::host_archive(
        &image,
        &[
            Path::new("/usr/sbin/murmurd"),
            Path::new("/usr/lib/x86_64-linux-gnu/qt5/plugins/sqldrivers"),
            Path::new("/etc/mumble-server.ini"),
        ],
        &["murmurd", "-fg"],
    )
    .expect("pack mumble-server");
    let archive = format!("oci-archive:{}", image.display());
    let egg = egg_file();
    let egg = egg.to_str().expect("utf-8 path");

    // `apply -f` takes the egg itself (converted on the fly) …
    let applied = ok(ctl(server, &["apply", "-f", egg], None));
    assert!(
        applied.contains("template/mumble-debian-murmurd"),
        "{applied}"
    );
    // … and `convert egg` points its images at the local archive
    let yolk = format!("ghcr.io/catalyst-test/yolks:mumble={archive}");
    let installer = format!("ghcr.io/catalyst-test/installers:alpine={archive}");
    let out = ctl(
        server,
        &[
            "convert",
            "egg",
            egg,
            "--image-map",
            &yolk,
            "--image-map",
            &installer,
        ],
        None,
    );
    let template = ok(out);
    assert!(template.contains(&archive), "{template}");
    ok(ctl(server, &["apply", "-f", "-"], Some(&template)));

    let gs_yaml = |users: &str| {
        format!(
            "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: mumble\n  namespace: default\nspec:\n  template: mumble-debian-murmurd\n  variables: {{MAX_USERS: '{users}'}}\n  ports: [{{containerPort: {PORT}, policy: Passthrough, protocol: TCPUDP}}]\n  resources: {{memory: 256Mi, cpu: '1'}}\n"
        )
    };
    // the variable's rule (between:1,1000) refuses 5000, naming the variable
    let refused = ctl(server, &["apply", "-f", "-"], Some(&gs_yaml("5000")));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("spec.variables[MAX_USERS]"), "{err}");

    ok(ctl(server, &["apply", "-f", "-"], Some(&gs_yaml("42"))));
    let obj = wait_phase(server, "mumble", "Running", &ndir);
    assert_eq!(
        host_port(&obj),
        PORT,
        "Passthrough: the host port is the container port"
    );
    assert_eq!(
        obj.pointer("/status/templateGeneration")
            .and_then(Value::as_i64),
        Some(2)
    );
    let logs = ok(ctl(server, &["logs", "mumble"], None));
    assert!(logs.contains("install finished in /mnt/server"), "{logs}");

    // the install script's copy of Debian's file, edited in place: comments and the [Ice]
    // section kept, the keys set
    let ini = files_cat(server, "mumble", "murmur.ini");
    let debian = std::fs::read_to_string("/etc/mumble-server.ini").expect("debian's file");
    for line in [
        format!("port={PORT}"),
        "users=42".into(),
        "database=/home/container/murmur.sqlite".into(),
        "welcometext=Welcome to Catalyst".into(),
        "[Ice]".into(),
        "Ice.MessageSizeMax=65536".into(),
    ] {
        assert!(ini.lines().any(|l| l == line), "{line:?} in:\n{ini}");
    }
    assert_eq!(
        ini.lines().filter(|l| l.starts_with(';')).count(),
        debian.lines().filter(|l| l.starts_with(';')).count(),
        "comments kept"
    );
    // the game read it: a real client's ping reports the users and Debian's bandwidth
    assert_eq!(ping(PORT), Some((42, 72000)));

    // a file that does not parse and one that leads outside are reported and left as they were
    assert_eq!(files_cat(server, "mumble", "broken.json"), "{\"motd\": ");
    let described = ok(ctl(server, &["describe", "gs", "mumble"], None));
    assert!(described.contains("ConfigFileFailed"), "{described}");
    assert!(described.contains("broken.json"), "{described}");
    assert!(described.contains("link.properties"), "{described}");
    let host_name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert!(
        !host_name.contains("server-port"),
        "the host's file is untouched"
    );
    // the egg's denylist: the database cannot be read through the file manager
    let denied = ctl(server, &["files", "cat", "mumble", "murmur.sqlite"], None);
    assert!(!denied.status.success());
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.contains("fileDenylist"), "{err}");

    // a Template change waits for the next start
    let mut t: Value = yaml_serde::from_str(&template).expect("the converted YAML");
    t["spec"]["configFiles"]
        .as_array_mut()
        .expect("configFiles")
        .push(serde_json::json!({"path": "murmur.ini", "parser": "ini",
            "replace": [{"match": "bandwidth", "value": 50000}]}));
    ok(ctl(server, &["apply", "-f", "-"], Some(&t.to_string())));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ping(PORT), Some((42, 72000)), "unchanged while it runs");
    let running = gs(server, "mumble");
    assert_eq!(
        running
            .pointer("/status/templateGeneration")
            .and_then(Value::as_i64),
        Some(2)
    );
    ok(ctl(server, &["restart", "mumble"], None));
    eventually(
        "the restart used the new template",
        Duration::from_secs(90),
        || {
            let o = gs(server, "mumble");
            o.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
                && o.pointer("/status/templateGeneration")
                    .and_then(Value::as_i64)
                    == Some(3)
        },
    );
    assert_eq!(ping(PORT), Some((42, 50000)));

    // `reinstall`: stopped, the script runs again (a second line in its log), the config edited
    // again and the server started
    ok(ctl(server, &["reinstall", "mumble"], None));
    eventually("the install ran again", Duration::from_secs(90), || {
        let o = gs(server, "mumble");
        o.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
            && ctl(server, &["files", "cat", "mumble", "installs.log"], None)
                .stdout
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                == 2
    });
    assert_eq!(ping(PORT), Some((42, 50000)));

    // `^SIGTERM`, which murmurd takes as a request to shut down (no kill at the timeout)
    ok(ctl(server, &["stop", "mumble"], None));
    let stopped = wait_phase(server, "mumble", "Stopped", &ndir);
    let code = stopped
        .pointer("/status/lastExit/exitCode")
        .and_then(Value::as_i64);
    assert_ne!(code, Some(137), "killed at the timeout: {stopped}");
    ok(ctl(server, &["delete", "gs", "mumble"], None));
    eventually("the server is gone", Duration::from_secs(60), || {
        !ctl(server, &["get", "gs", "mumble"], None).status.success()
    });
}
