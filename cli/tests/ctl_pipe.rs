//! `catalystctl` writing into a pipe nobody reads any more (`catalystctl get gs | head -1`):
//! it stops quietly with status 0 instead of panicking. Needs no server: `explain` and
//! `completion` print without one.
#![cfg(target_os = "linux")]

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The write end of a pipe whose read end is already closed: a FIFO opened for reading and
/// writing (which Linux allows without blocking) keeps it open while the write end is opened,
/// then goes away.
fn pipe_without_reader(dir: &Path) -> File {
    let fifo = dir.join("stdout");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let keeper = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let writer = OpenOptions::new().write(true).open(&fifo).unwrap();
    drop(keeper);
    writer
}

fn catalystctl(args: &[&str], stdout: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catalystctl"))
        .args(args)
        .env("CATALYST_CONFIG", "/nonexistent/catalyst-config")
        .env_remove("HOME")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// Runs `args` with stdout a pipe without a reader; asserts it ends with 0 and no panic.
fn exits_quietly_into_a_closed_pipe(args: &[&str]) {
    let readable = catalystctl(args, Stdio::piped());
    assert!(readable.status.success(), "{args:?}: {readable:?}");
    assert!(
        !readable.stdout.is_empty(),
        "{args:?} prints something when read"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = catalystctl(args, Stdio::from(pipe_without_reader(dir.path())));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(
        out.status.success(),
        "{args:?} into a closed pipe: {:?}, stderr: {stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "{args:?} says nothing: {stderr}");
}

#[test]
fn explain_into_a_closed_pipe_exits_0_without_a_panic() {
    exits_quietly_into_a_closed_pipe(&["explain", "gameserver"]);
    exits_quietly_into_a_closed_pipe(&["explain", "gs.spec.ports"]);
}

#[test]
fn a_long_completion_script_into_a_closed_pipe_exits_0_without_a_panic() {
    exits_quietly_into_a_closed_pipe(&["completion", "bash"]);
    exits_quietly_into_a_closed_pipe(&["completion", "zsh"]);
}

#[test]
fn version_client_into_a_closed_pipe_exits_0_without_a_panic() {
    exits_quietly_into_a_closed_pipe(&["version", "--client"]);
}
