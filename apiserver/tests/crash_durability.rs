//! Acknowledged writes survive `kill -9`: a child process writes to a SQLite store and prints
//! each acknowledged write; the parent kills it mid-stream with SIGKILL, reopens the store and
//! finds every acknowledged write.
//!
//! A test binary without the libtest harness: run with `--child URL` it is the writer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catalyst_apiserver::store;

const WRITERS: usize = 4;
const KILL_AFTER: usize = 300;

fn child(url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = store::open(url).await.unwrap();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("/crash/{w}/{i}");
                        let rev = s
                            .create(&key, format!("value {w} {i}").as_bytes())
                            .await
                            .unwrap();
                        // println! locks stdout per line: whole lines only
                        println!("ACK {key} {rev}");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Kills and reaps the child on every way out of the test.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn parent() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalyst.db").display());
    let mut proc = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args(["--child", &url])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(proc.0.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.len() < KILL_AFTER {
        if Instant::now() > deadline {
            return Err(format!(
                "child acknowledged only {} writes in 120 s",
                acked.len()
            ));
        }
        match lines.next() {
            Some(Ok(line)) => acked.push(line),
            other => return Err(format!("child stopped early: {other:?}")),
        }
    }
    proc.0.kill().unwrap(); // SIGKILL
    proc.0.wait().unwrap();
    // lines the child printed before it died were acknowledged too
    for line in lines {
        match line {
            Ok(l) if l.starts_with("ACK ") => acked.push(l),
            _ => break,
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = store::open(&url).await.map_err(|e| e.to_string())?;
        let mut max_rev = 0;
        for line in &acked {
            let mut parts = line.split(' ').skip(1);
            let (key, rev) = (
                parts.next().unwrap(),
                parts.next().unwrap().parse::<i64>().unwrap(),
            );
            max_rev = max_rev.max(rev);
            match s.get(key).await.map_err(|e| e.to_string())? {
                Some(kv) if kv.mod_revision == rev => {}
                Some(kv) => {
                    return Err(format!(
                        "{key}: revision {} after restart, {rev} acknowledged",
                        kv.mod_revision
                    ))
                }
                None => {
                    return Err(format!(
                        "{key} (revision {rev}) was acknowledged but is gone after kill -9"
                    ))
                }
            }
        }
        let next = s
            .create("/crash/after", b"x")
            .await
            .map_err(|e| e.to_string())?;
        if next <= max_rev {
            return Err(format!(
                "revision {next} reused after restart (acknowledged up to {max_rev})"
            ));
        }
        println!(
            "{} acknowledged writes all present after kill -9",
            acked.len()
        );
        Ok(())
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--child" {
        child(&args[2]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("sqlite_acknowledged_writes_survive_kill_9: test");
        return;
    }
    match parent() {
        Ok(()) => {
            println!("test sqlite_acknowledged_writes_survive_kill_9 ... ok\n1 passed, 0 failed")
        }
        Err(e) => {
            println!("test sqlite_acknowledged_writes_survive_kill_9 ... FAILED: {e}\n0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}
