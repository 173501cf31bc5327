//! Two `catalyst server` processes on one PostgreSQL and a nodelet on real containerd given
//! both URLs (`--server A,B`): it holds a tunnel to each, so logs and console commands work
//! through either server; after `kill -9` of one, catalystctl with both URLs keeps working
//! (list, logs, command) through the other.
//!
//! Needs containerd (as the other nodelet tests) and `CATALYST_TEST_POSTGRES_URL`; skipped with
//! `skipped: postgres …` when PostgreSQL is left out of `CATALYST_TEST_BACKENDS`.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use catalyst_e2e::Server;
use support::*;

/// catalystctl with the client config `config`.
fn ctl_with(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catalystctl"))
        .args(args)
        .env("CATALYST_CONFIG", config)
        .stdin(Stdio::null())
        .output()
        .expect("catalystctl")
}

/// Sends `text` to web's console through `config` and waits for its echo in the logs read
/// through the same config.
fn command_echoes(config: &Path, text: &str) {
    // the nodelet's tunnel to a server that just started may still be dialling (503)
    eventually(
        &format!("{text:?} sent through {}", config.display()),
        Duration::from_secs(15),
        || {
            ctl_with(config, &["command", "web", "--", text])
                .status
                .success()
        },
    );
    eventually(
        &format!("the echo of {text:?} read through {}", config.display()),
        Duration::from_secs(10),
        || ok(ctl_with(config, &["logs", "web", "--tail", "20"])).contains(&format!("got: {text}")),
    );
}

/// True when `catalystctl console web` through `config` sends `text` and prints its echo.
fn console_echoes(config: &Path, text: &str) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_catalystctl"))
        .args(["console", "web", "--tail", "0"])
        .env("CATALYST_CONFIG", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("catalystctl console");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let echo = format!("got: {text}");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&echo) {
                let _ = tx.send(());
            }
        }
    });
    // the console opens, then the line goes in (again, in case it was sent before it opened)
    let mut stdin = child.stdin.take().expect("stdin");
    let mut seen = false;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let _ = writeln!(stdin, "{text}");
        if rx.recv_timeout(Duration::from_secs(1)).is_ok() {
            seen = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn a_nodelet_with_two_servers_is_reached_through_either_and_survives_losing_one() {
    if !catalyst_e2e::backend_enabled(
        "postgres",
        "a_nodelet_with_two_servers_is_reached_through_either_and_survives_losing_one",
    ) {
        return;
    }
    let begun = Instant::now();
    let store = pg::fresh_database(&format!("ha_nodelet_{}", std::process::id()));
    let env = setup_with(&["--store", &store]);
    let a = &env.server;
    let b = Server::start(
        env!("CARGO_BIN_EXE_catalyst"),
        &env.root.join("server-b"),
        &["--store", &store],
    );
    // both servers hand out certificates of the one CA in the store: A's join token fits B
    assert_eq!(a.ca_pem, b.ca_pem);
    node_with_ports(a, "node-ha", 9800);
    let ndir = env.root.join("nodelet");
    let both = format!("{},{}", a.url, b.url);
    let nodelet = Nodelet::start_with(
        a,
        &env.ctd,
        &ndir,
        "node-ha",
        "cat-ha0",
        "10.231.70.0/24",
        &["--server", &both],
    );
    // A's admin config with both URLs (A first); the nodelet's cleanup uses it too
    let set = ok(ctl_with(&a.config, &["config", "set-servers", &both]));
    assert!(set.contains(&b.url), "{set}");

    let web = manifest(
        "web",
        &env.image,
        "echo ready; while read line; do echo \"got: $line\"; [ \"$line\" = stop ] && exit 0; done",
        "  ready: {logPattern: '^ready$'}\n  stop: {command: stop, timeoutSeconds: 10}\n  resources: {memory: 32Mi, pids: 32}\n",
    );
    ok(ctl(a, &["apply", "-f", "-"], Some(&web)));
    wait_phase(a, "web", "Running", &ndir);

    // logs and console through each server alone: the nodelet has a tunnel to each
    let only_b = &b.config;
    assert!(ok(ctl_with(only_b, &["logs", "web", "--tail", "5"])).contains("ready"));
    command_echoes(only_b, "via-b");
    let only_a = env.root.join("only-a.yaml");
    std::fs::copy(&a.config, &only_a).unwrap();
    ok(ctl_with(&only_a, &["config", "set-servers", &a.url]));
    command_echoes(&only_a, "via-a");

    // the node's series on /metrics come from the leading server only (each holds a tunnel)
    let leads = |text: &str| text.contains("\ncatalyst_controllers_leading 1\n");
    let (mut leader, mut standby) = (String::new(), String::new());
    eventually(
        "the node's series on the leader's /metrics",
        Duration::from_secs(30),
        || {
            let (ta, tb) = (api_text(a, "/metrics"), api_text(&b, "/metrics"));
            (leader, standby) = if leads(&ta) { (ta, tb) } else { (tb, ta) };
            leads(&leader) && leader.contains("\ncatalyst_node_gameservers_running")
        },
    );
    assert!(!leads(&standby), "two leaders");
    assert!(
        !standby.contains("\ncatalyst_node_") && !standby.contains("\ncatalyst_gameserver_"),
        "the standby reports the node too:\n{standby}"
    );

    // kill -9 of A, the first URL of the config: every call moves on to B at once
    let killed = Command::new("kill")
        .args(["-9", &a.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let listed = ok(ctl_with(&a.config, &["get", "gs"]));
    assert!(listed.contains("web"), "{listed}");
    assert!(ok(ctl_with(&a.config, &["logs", "web", "--tail", "50"])).contains("got: via-a"));
    command_echoes(&a.config, "after-the-kill");
    assert!(
        console_echoes(&a.config, "console-after-the-kill"),
        "catalystctl console through B"
    );
    let took = started.elapsed();
    println!(
        "list, logs, command, its echo and the console through B after A's kill -9: {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    // only A's URL: unreachable, said so
    let lost = ctl_with(&only_a, &["get", "gs"]);
    assert!(!lost.status.success());
    assert!(
        String::from_utf8_lossy(&lost.stderr).contains("cannot reach the API server"),
        "{}",
        String::from_utf8_lossy(&lost.stderr)
    );
    // a write through both URLs (A is dead: nothing was sent to it, so it moves on to B)
    let t0 = Instant::now();
    ok(ctl_with(&a.config, &["delete", "gs", "web"]));
    eventually("web is gone", Duration::from_secs(30), || {
        ok(ctl_with(&a.config, &["get", "gs", "-o", "name"]))
            .trim()
            .is_empty()
    });
    println!(
        "web deleted in {:.1} s (test body {:.1} s)",
        t0.elapsed().as_secs_f64(),
        begun.elapsed().as_secs_f64()
    );
    drop(nodelet);
    drop(b);
    // containerd stops before its directory goes (Env's field order removes the directory
    // first, which made the test wait ~30 s)
    let Env {
        _disks,
        _dir,
        ctd,
        server,
        ..
    } = env;
    drop(server);
    drop(ctd);
    drop(_disks);
    drop(_dir);
}
