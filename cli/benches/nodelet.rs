//! Nodelet benchmark with real processes: a GameServer's creation (image present) to Running,
//! beside plain `ctr run -d` of the same image on the same containerd in the same run; and the
//! nodelet's RSS idle and with 50 running servers.
//!
//! `cargo bench -p catalyst-cli --bench nodelet` (root; containerd, runc, CNI plugins, busybox).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catalyst_e2e::containerd::Containerd;
use catalyst_e2e::nodelet::NodeletGuard;
use catalyst_e2e::{percentile_ms, rss_mib, Server};
use serde_json::{json, Value};

const ROUNDS: usize = 30;
const MANY: usize = 50;
/// The nodelet's `--netns-pool`.
const POOL: usize = 2;

struct Api {
    http: reqwest::blocking::Client,
    url: String,
    token: String,
}

impl Api {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    fn create(&self, name: &str, image: &str, network: &str) {
        let gs = json!({
            "apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"image": image, "startup": "exec sleep 3600", "network": network,
                     "nodeName": "bench", "ports": [{"containerPort": 8080}],
                     "stop": {"signal": "SIGKILL", "timeoutSeconds": 5}},
        });
        let r = self
            .req(
                reqwest::Method::POST,
                "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers",
            )
            .json(&gs)
            .send()
            .expect("create");
        assert!(
            r.status().is_success(),
            "create {name}: {}",
            r.text().unwrap_or_default()
        );
    }

    fn get(&self, name: &str) -> Value {
        self.req(
            reqwest::Method::GET,
            &format!("/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/{name}"),
        )
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
    }

    fn wait_running(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.get(name);
            let p = v
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            if p == "Running" {
                return;
            }
            assert!(
                Instant::now() < deadline && p != "Error" && p != "Crashed",
                "{name}: {p}: {}",
                v.pointer("/status/message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn delete(&self, name: &str) {
        let _ = self
            .req(
                reqwest::Method::DELETE,
                &format!("/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/{name}"),
            )
            .send();
    }

    fn count(&self) -> usize {
        let v: Value = self
            .req(
                reqwest::Method::GET,
                "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers",
            )
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        v["items"].as_array().map_or(0, Vec::len)
    }
}

fn nodelet(server: &Server, ctd: &Containerd, dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_catalyst"))
        .args([
            "nodelet",
            "--server",
            &server.url,
            "--name",
            "bench",
            "--address",
            "127.0.0.1",
        ])
        .arg("--join-token")
        .arg(server.data_dir.join("join-token"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--containerd-socket")
        .arg(&ctd.socket)
        .args(["--bridge", "cat-bench0", "--subnet", "10.232.0.0/22"])
        .args(["--netns-pool", &POOL.to_string()])
        .arg("--image-dir")
        .arg(dir.parent().unwrap_or(dir))
        // one `start path` line per start: the time of each step
        .env("RUST_LOG", "warn,catalyst_nodelet::worker::start=info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::from(
            std::fs::File::create(dir.with_extension("log")).expect("nodelet log"),
        ))
        .spawn()
        .expect("nodelet")
}

/// A log line without its terminal colours (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The p50 of each start step the nodelet logged (`start path` lines) for `network`.
fn step_p50s(log: &Path, network: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut steps: Vec<(String, Vec<Duration>)> = Vec::new();
    let want = format!("network={network}");
    for line in text.lines().filter(|l| l.contains("start path")) {
        // the fields as written without colours and quotes: `network=Bridge total_ms=…`
        let line = strip_ansi(line).replace('"', "");
        if !line.contains(&want) {
            continue;
        }
        let fields = line.split_whitespace();
        let parsed = fields.filter_map(|f| {
            f.strip_prefix("total_ms=")
                .map(|ms| format!("total:{ms}"))
                .or_else(|| f.strip_prefix("steps=").map(str::to_owned))
        });
        for part in parsed.flat_map(|p| p.split(',').map(str::to_owned).collect::<Vec<_>>()) {
            let Some((name, ms)) = part.split_once(':') else {
                continue;
            };
            let Ok(ms) = ms.parse::<u64>() else { continue };
            let at = match steps.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    steps.push((name.to_owned(), Vec::new()));
                    steps.len() - 1
                }
            };
            steps[at].1.push(Duration::from_millis(ms));
        }
    }
    steps
        .into_iter()
        .map(|(name, mut v)| {
            v.sort();
            format!("{name} {:.0}", percentile_ms(&v, 0.5))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(label: &str, mut v: Vec<Duration>) -> f64 {
    v.sort();
    let p50 = percentile_ms(&v, 0.5);
    println!(
        "{label:<42} p50 {p50:>7.1} ms   p90 {:>7.1} ms   p99 {:>7.1} ms",
        percentile_ms(&v, 0.9),
        percentile_ms(&v, 0.99)
    );
    p50
}

/// Waits until the nodelet's namespace pool holds `keep` whole entries and is idle, so that
/// no refill runs beside a timed start (a start that takes an entry leaves the refill to the
/// quiet time after it: measured apart, as the spare disks are).
fn wait_pool_full(ndir: &Path, keep: usize) {
    let prefix = catalyst_nodelet::pool::prefix(ndir);
    let count = |suffix: &str| {
        std::fs::read_dir(ndir.join("cni/results"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&prefix) && n.ends_with(suffix)
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && (count(".json") < keep || count(".adding") > 0) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(count(".json") >= keep, "the pool did not fill");
    std::thread::sleep(Duration::from_millis(50));
}

fn wait_gone(api: &Api, ctd: &Containerd) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while (api.count() > 0 || ctd.containers().iter().any(|c| c.starts_with("gs-")))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let image_path = dir.path().join("busybox.tar");
    catalyst_nodelet::pack::busybox_archive(&image_path).expect("image");
    let image = format!("oci-archive:{}", image_path.display());
    let ctd = Containerd::start(&dir.path().join("ctd"));
    let server = Server::start(
        env!("CARGO_BIN_EXE_catalyst"),
        &dir.path().join("server"),
        &[],
    );
    let ndir = dir.path().join("nodelet");
    // its own host ports, apart from the end-to-end tests' ranges
    let node_json = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Node",
        "metadata": {"name": "bench"}, "spec": {"portRange": {"min": 7500, "max": 7999}, "allowHostNetwork": true}});
    let http = server.http_client();
    let r = http
        .post(format!("{}/apis/catalyst.dev/v1alpha1/nodes", server.url))
        .bearer_auth(&server.token)
        .json(&node_json)
        .send()
        .expect("node");
    assert!(r.status().is_success(), "node: {:?}", r.text());
    let node = NodeletGuard::new(nodelet(&server, &ctd, &ndir), &server, &ndir, "cat-bench0");
    let api = Api {
        http,
        url: server.url.clone(),
        token: server.token.clone(),
    };
    // warm-up: the first server imports and unpacks the image
    api.create("warm", &image, "Bridge");
    api.wait_running("warm");
    api.delete("warm");
    wait_gone(&api, &ctd);
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_mib(node.child.id());

    let mut bridge = Vec::new();
    let mut host = Vec::new();
    let mut raw = Vec::new();
    let mut raw_seccomp = Vec::new();
    let mut raw_userns = Vec::new();
    for i in 0..ROUNDS {
        for (net, out) in [("Bridge", &mut bridge), ("Host", &mut host)] {
            let name = format!("b-{}-{i}", net.to_lowercase());
            wait_pool_full(&ndir, POOL);
            let t = Instant::now();
            api.create(&name, &image, net);
            api.wait_running(&name);
            out.push(t.elapsed());
            api.delete(&name);
            // measure each start alone: the previous server's teardown (CNI DEL) is done
            wait_gone(&api, &ctd);
        }
        // the raw baseline, plain and with what catalyst adds to every container: Docker's
        // seccomp profile, and a user namespace (ctr's own way: a remapped copy of the snapshot)
        for (variant, out) in [
            ("", &mut raw),
            ("s", &mut raw_seccomp),
            ("u", &mut raw_userns),
        ] {
            let id = format!("raw{variant}-{i}");
            let mut args = vec!["run", "-d", "--snapshotter", "overlayfs"];
            if !variant.is_empty() {
                args.push("--seccomp");
            }
            if variant == "u" {
                args.extend([
                    "--uidmap",
                    "0:1073741824:65536",
                    "--gidmap",
                    "0:1073741824:65536",
                ]);
            }
            args.extend([image.as_str(), id.as_str(), "sleep", "3600"]);
            wait_pool_full(&ndir, POOL);
            let t = Instant::now();
            let run = ctd.ctr(&args);
            out.push(t.elapsed());
            assert!(
                run.status.success(),
                "ctr run: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            let _ = ctd.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]);
        }
    }
    wait_gone(&api, &ctd);
    for i in 0..ROUNDS {
        for variant in ["", "s", "u"] {
            let id = format!("raw{variant}-{i}");
            let _ = ctd.ctr(&["tasks", "rm", "-f", &id]);
            let _ = ctd.ctr(&["containers", "rm", &id]);
        }
    }

    println!(
        "\nnodelet: GameServer created → Running (image present), {ROUNDS} rounds, one at a time"
    );
    let b = summary("catalyst, network Bridge (CNI + portmap)", bridge);
    let h = summary("catalyst, network Host", host);
    let r = summary("ctr run -d (no CNI), same image", raw);
    let rs = summary("ctr run -d --seccomp", raw_seccomp);
    let ru = summary(
        "ctr run -d --seccomp --uidmap/--gidmap (remapped snapshot)",
        raw_userns,
    );
    println!(
        "ratio p50: Bridge / ctr = {:.2}, Host / ctr = {:.2}; ctr --seccomp / ctr = {:.2}, \
         ctr --seccomp --uidmap / ctr = {:.2}",
        b / r,
        h / r,
        rs / r,
        ru / r
    );
    println!(
        "catalyst always runs with seccomp and a user namespace of the server's own \
         (namespaces made once per server, kept between starts)"
    );
    let log = ndir.with_extension("log");
    for net in ["Bridge", "Host"] {
        println!(
            "start steps, p50 ms ({net}; the nodelet's `start path` lines): {}",
            step_p50s(&log, net)
        );
    }
    // what a server's first start spends making its user and network namespaces
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut userns = Vec::new();
    for i in 0..ROUNDS {
        let id = format!("bench-userns-{i}");
        let netns = catalyst_nodelet::cni::netns_path(&id);
        let range = catalyst_nodelet::userns::IdRange {
            start: catalyst_nodelet::userns::DEFAULT_BASE + i as u32 * 65536,
            size: 65536,
        };
        let t = Instant::now();
        rt.block_on(catalyst_nodelet::userns::ensure(&id, range, Some(&netns)))
            .expect("namespaces");
        userns.push(t.elapsed());
        catalyst_nodelet::userns::remove_ns_file(&catalyst_nodelet::userns::userns_path(&id));
        catalyst_nodelet::userns::remove_ns_file(&netns);
    }
    summary(
        "user + network namespace of a new server (userns::ensure)",
        userns,
    );

    let t = Instant::now();
    for i in 0..MANY {
        api.create(&format!("many-{i}"), &image, "Bridge");
    }
    for i in 0..MANY {
        api.wait_running(&format!("many-{i}"));
    }
    let all = t.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let busy = rss_mib(node.child.id());
    println!(
        "{MANY} servers created at once: all Running after {:.1} s",
        all.as_secs_f64()
    );
    println!("nodelet RSS: idle {idle:.1} MiB, with {MANY} running servers {busy:.1} MiB");
    for i in 0..MANY {
        api.delete(&format!("many-{i}"));
    }
    wait_gone(&api, &ctd);
    drop(node);
}
