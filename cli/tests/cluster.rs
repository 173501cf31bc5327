//! The control plane and nodelets together, end to end with real processes: a node lost and
//! found again, and two nodes as separate hosts in their own network namespaces.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use catalyst_e2e::containerd::Containerd;
use catalyst_e2e::Server;
use serde_json::Value;
use support::*;

fn node_state(server: &Server, name: &str) -> String {
    let out = ctl(server, &["get", "node", name, "-o", "json"], None);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.pointer("/status/state")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn phase(server: &Server, name: &str) -> String {
    gs(server, name)
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

const WEB: &str = "echo hello > /home/container/index.html; httpd -p 8080 -h /home/container; echo ready; while read line; do echo \"got: $line\"; done";

/// Applies a WEB server (plus `extra` spec lines) and waits until it runs: its host port,
/// container id and task pid.
fn run_web(
    server: &Server,
    env: &Env,
    ndir: &std::path::Path,
    name: &str,
    extra: &str,
) -> (u16, String, u32) {
    let web = manifest(
        name,
        &env.image,
        WEB,
        &format!("  ports: [{{containerPort: 8080}}]\n  ready: {{logPattern: '^ready$'}}\n{extra}"),
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&web)));
    let obj = wait_phase(server, name, "Running", ndir);
    let cid = format!(
        "gs-{}",
        obj.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .expect("uid")
    );
    let pid = env.ctd.task_pid(&cid).expect("task");
    (host_port(&obj), cid, pid)
}

/// `kill -9` of a nodelet: its Node goes NotReady and its server Unknown within 45 s, while the
/// server keeps serving players; the restarted nodelet brings both back, same container. A
/// server removed from the API meanwhile (its finalizer dropped by hand) leaves nothing: no
/// container, network namespace, port mapping or CNI record.
#[test]
fn a_lost_node_comes_back_and_its_server_is_untouched() {
    let env = setup();
    let ndir = env.root.join("nodelet-l");
    node_with_ports(&env.server, "node-l", 7200);
    let mut nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-l",
        "cat-e2e2",
        "10.231.2.0/24",
    );
    let server = &env.server;
    let (port, cid, pid) = run_web(server, &env, &ndir, "lost", "");
    let (dropped_port, dropped_cid, _) = run_web(server, &env, &ndir, "dropped", "");

    nodelet.kill9();
    let killed = Instant::now();
    eventually(
        "node NotReady and server Unknown",
        Duration::from_secs(60),
        || node_state(server, "node-l") == "NotReady" && phase(server, "lost") == "Unknown",
    );
    let lost_after = killed.elapsed();
    println!(
        "node NotReady and server Unknown {:.1} s after kill -9",
        lost_after.as_secs_f64()
    );
    assert!(lost_after <= Duration::from_secs(45), "{lost_after:?}");
    let served = probe_http(port, "/index.html");
    if !served.as_ref().is_ok_and(|b| b.contains("hello")) {
        let sh = |c: &str| {
            let o = Command::new("sh").args(["-c", c]).output().expect("sh");
            format!(
                "$ {c}\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        panic!(
            "players are served while the node is lost: {served:?}\n{}\n{}\n{}\n{}",
            sh(&format!("iptables -t nat -S | grep -e {port} -e CNI-HOSTPORT")),
            sh(&format!("ip netns exec catalyst-{cid} ip -br addr")),
            sh(&format!("ip netns exec catalyst-{cid} netstat -ltn 2>&1 || ip netns exec catalyst-{cid} ss -ltn")),
            sh("ip -br link show master cat-e2e2; ip -br addr show cat-e2e2"),
        );
    }

    // "dropped" goes from the API while its node is away: deleted, its finalizer removed
    ok(ctl(server, &["delete", "gs", "dropped"], None));
    let r = server
        .http_client()
        .patch(format!(
            "{}/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/dropped",
            server.url
        ))
        .bearer_auth(&server.token)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata":{"finalizers":null}}"#)
        .send()
        .expect("patch");
    assert!(r.status().is_success(), "{:?}", r.text());

    nodelet.restart(&ndir);
    eventually("node Ready again", Duration::from_secs(30), || {
        node_state(server, "node-l") == "Ready"
    });
    wait_phase(server, "lost", "Running", &ndir);
    assert_eq!(
        env.ctd.task_pid(&cid),
        Some(pid),
        "the same container and task"
    );
    // the restarted nodelet removes what the dropped server had, from its own records: the
    // port mapping too, which its object (gone) no longer names
    eventually(
        "the dropped server's container gone",
        Duration::from_secs(30),
        || {
            !env.ctd.containers().contains(&dropped_cid)
                && !ndir
                    .join(format!("cni/results/{dropped_cid}.json"))
                    .exists()
        },
    );
    assert_no_port_mapping(dropped_port);
    assert!(!std::path::Path::new(&format!("/run/netns/catalyst-{dropped_cid}")).exists());
    assert!(
        probe_http(port, "/index.html").is_ok(),
        "the other server still answers"
    );
}

/// A host of the test's own: a network namespace joined to this one by a veth pair,
/// 10.240.N.1 on this side, 10.240.N.2 inside.
struct Host {
    ns: String,
    veth: String,
}

impl Host {
    fn create(n: u8) -> Host {
        let ns = format!("catnet-h{n}");
        let veth = format!("cath{n}");
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let _ = Command::new("ip").args(["netns", "delete", &ns]).output();
        let _ = Command::new("ip").args(["link", "delete", &veth]).output();
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["addr", "add", &format!("10.240.{n}.1/24"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.240.{n}.2/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &format!("10.240.{n}.1"),
        ]);
        Host { ns, veth }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "delete", &self.veth])
            .output();
    }
}

/// Two nodes, each a host in its own network namespace (`host-1`, `host-2` at 10.240.N.2) with
/// its own containerd and nodelet, and an API server they reach over their veths. Dropped in
/// this order: nodelets (their servers deleted), containerds, hosts, the server.
struct TwoHosts {
    _nodelets: Vec<Nodelet>,
    _ctds: Vec<Containerd>,
    _hosts: [Host; 2],
    server: Server,
}

impl TwoHosts {
    /// Starts the server and both hosts under `root` (a test's directory, with the busybox
    /// image the nodelets may import).
    fn start(root: &std::path::Path) -> TwoHosts {
        // the API server must be reachable from the hosts: it listens on every local address,
        // and its certificate names the address each host reaches it at
        let server = Server::start_on(
            env!("CARGO_BIN_EXE_catalyst"),
            &root.join("server2"),
            "0.0.0.0:0",
            &["--tls-san", "10.240.1.1", "--tls-san", "10.240.2.1"],
        );
        let port = server.url.rsplit(':').next().expect("port").to_owned();
        let hosts = [Host::create(1), Host::create(2)];
        let mut nodelets = Vec::new();
        let mut ctds: Vec<Containerd> = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let n = i + 1;
            let ctd = Containerd::start(&root.join(format!("ctd-h{n}")));
            let dir = root.join(format!("nodelet-h{n}"));
            let args: Vec<String> = [
                "nodelet",
                "--server",
                &format!("https://10.240.{n}.1:{port}"),
                "--join-token",
                &server.data_dir.join("join-token").display().to_string(),
                "--name",
                &format!("host-{n}"),
                "--data-dir",
                &dir.display().to_string(),
                "--containerd-socket",
                &ctd.socket.display().to_string(),
                "--address",
                &format!("10.240.{n}.2"),
                "--subnet",
                &format!("10.232.{n}.0/24"),
                "--image-dir",
                &root.display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            nodelets.push(Nodelet::launch(
                &server,
                &ctd,
                &dir,
                args,
                Some(host.ns.clone()),
            ));
            ctds.push(ctd);
        }
        let cluster = TwoHosts {
            _nodelets: nodelets,
            _ctds: ctds,
            _hosts: hosts,
            server,
        };
        eventually("both nodes Ready", Duration::from_secs(30), || {
            node_state(&cluster.server, "host-1") == "Ready"
                && node_state(&cluster.server, "host-2") == "Ready"
        });
        cluster
    }
}

/// Servers too big to share a node are scheduled across two nodes, and players reach each one
/// at its own node's address and host port.
#[test]
fn two_nodes_in_their_own_network_namespaces_share_the_work() {
    let env = setup();
    drop(env.server);
    let cluster = TwoHosts::start(&env.root);
    let server = &cluster.server;
    // each server asks for three quarters of a node's cpus: two cannot share one
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for name in ["big-a", "big-b"] {
        let m = manifest(
            name,
            &env.image,
            WEB,
            &format!("  ports: [{{containerPort: 8080}}]\n  ready: {{logPattern: '^ready$'}}\n  resources: {{cpu: {}m}}\n", cpus * 750),
        );
        ok(ctl(server, &["apply", "-f", "-"], Some(&m)));
    }
    let dir = env.root.join("nodelet-h1");
    let a = wait_phase(server, "big-a", "Running", &dir);
    let b = wait_phase(server, "big-b", "Running", &env.root.join("nodelet-h2"));
    let node_of = |v: &Value| {
        v.pointer("/status/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    assert_ne!(node_of(&a), node_of(&b), "spread over both nodes");
    for v in [&a, &b] {
        let addr = v
            .pointer("/status/address")
            .and_then(Value::as_str)
            .expect("address");
        assert!(addr.starts_with("10.240."), "{addr}");
        let target = format!("{addr}:{}", host_port(v));
        eventually(
            &format!("{target} answers"),
            Duration::from_secs(10),
            || probe_http_at(&target, "/index.html").is_ok_and(|b| b.contains("hello")),
        );
    }
    drop(cluster);
}

/// A game whose files are made once, at its first start: 20 MB of random text, a note of the
/// shell's pid at that start, an empty directory and a link; it serves them over HTTP.
const KEEPER: &str = "cd /home/container; [ -f data.txt ] || { head -c 15000000 /dev/urandom | base64 > data.txt; mkdir -p empty sub; echo $$ > sub/first-pid; ln -s data.txt link.txt; }; httpd -p 8080 -h /home/container; echo ready; while read line; do echo \"got: $line\"; done";

fn keeper(env_image: &std::path::Path, disk: &str) -> String {
    manifest(
        "keeper",
        env_image,
        KEEPER,
        &format!("  ports: [{{containerPort: 8080}}]\n  ready: {{logPattern: '^ready$'}}\n  nodeName: host-1\n  resources: {{disk: {disk}}}\n"),
    )
}

/// What the game serves: its data, the pid of its first start, and the link's target.
fn served(v: &Value) -> (String, String, String) {
    let addr = v
        .pointer("/status/address")
        .and_then(Value::as_str)
        .expect("address");
    let target = format!("{addr}:{}", host_port(v));
    let mut got = None;
    eventually(
        &format!("{target} serves the files"),
        Duration::from_secs(20),
        || {
            let get = |p: &str| {
                probe_http_at(&target, p)
                    .ok()
                    .filter(|b| b.contains("200 OK"))
            };
            got = get("/data.txt")
                .zip(get("/sub/first-pid"))
                .zip(get("/link.txt"));
            got.is_some()
        },
    );
    let ((data, pid), link) = got.expect("served");
    let body = |r: String| {
        r.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or(r)
    };
    (body(data), body(pid), body(link))
}

fn condition(v: &Value, type_: &str) -> Option<(String, String, String)> {
    v.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("status"), s("reason"), s("message"))
        })
}

/// A server moves between two nodes in their own network namespaces: a move whose target
/// cannot take the data (its disk is too small) leaves the server running on the source with
/// its files; a move that can brings the files intact (the game does not make them again),
/// answers at the new node's address, and leaves nothing on the source.
#[test]
fn a_server_moves_to_another_node_with_its_files() {
    let env = setup();
    drop(env.server);
    let cluster = TwoHosts::start(&env.root);
    let server = &cluster.server;
    let (h1, h2) = (env.root.join("nodelet-h1"), env.root.join("nodelet-h2"));
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&keeper(&env.image, "128Mi")),
    ));
    let first = wait_phase(server, "keeper", "Running", &h1);
    assert_eq!(first["status"]["nodeName"], "host-1");
    let uid = first["metadata"]["uid"].as_str().expect("uid").to_owned();
    let before = served(&first);
    assert!(before.0.len() > 20_000_000, "{}", before.0.len());

    // the target's disk would be too small for the data: the move fails, the server stays
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&keeper(&env.image, "16Mi")),
    ));
    let out = ok(ctl(server, &["transfer", "keeper", "--to", "host-2"], None));
    assert!(out.contains("transferring to host-2"), "{out}");
    let mut last = Value::Null;
    eventually("the failed move is over", Duration::from_secs(180), || {
        last = gs(server, "keeper");
        condition(&last, "Transferred").is_some_and(|c| c.0 == "False")
            && last.pointer("/status/transfer").is_none()
            && last["status"]["phase"] == "Running"
    });
    let (_, reason, message) = condition(&last, "Transferred").expect("condition");
    assert_eq!(reason, "TransferFailed", "{message}");
    assert!(message.contains("stays on node host-1"), "{message}");
    assert_eq!(last["status"]["nodeName"], "host-1", "{last}");
    assert_eq!(last["spec"]["nodeName"], "host-1", "{last}");
    assert_eq!(served(&last), before, "the source's files are as they were");
    let events = ok(ctl(server, &["describe", "gs", "keeper"], None));
    assert!(events.contains("TransferFailed"), "{events}");
    eventually("nothing of it on host-2", Duration::from_secs(30), || {
        disks_below(&h2).is_empty() && !h2.join("servers").join(&uid).exists()
    });

    // a target with room: the files arrive as they were and the game answers there
    ok(ctl(
        server,
        &["apply", "-f", "-"],
        Some(&keeper(&env.image, "128Mi")),
    ));
    ok(ctl(server, &["transfer", "keeper", "--to", "host-2"], None));
    eventually("the move is over", Duration::from_secs(180), || {
        last = gs(server, "keeper");
        condition(&last, "Transferred").is_some_and(|c| c.0 == "True")
            && last["status"]["phase"] == "Running"
    });
    assert_eq!(last["status"]["nodeName"], "host-2", "{last}");
    assert!(last.pointer("/status/transfer").is_none(), "{last}");
    let addr = last["status"]["address"].as_str().expect("address");
    assert_eq!(addr, "10.240.2.2");
    assert_eq!(
        served(&last),
        before,
        "the files arrived intact, not made again"
    );
    let events = ok(ctl(server, &["describe", "gs", "keeper"], None));
    assert!(events.contains("TransferSucceeded"), "{events}");
    eventually(
        "nothing of it left on host-1",
        Duration::from_secs(60),
        || {
            disks_below(&h1).is_empty()
                && !h1.join("servers").join(&uid).exists()
                && !h1
                    .join("backups")
                    .join(&uid)
                    .join("transfer.tar.zst")
                    .exists()
        },
    );
    assert!(!h2
        .join("backups")
        .join(&uid)
        .join("transfer.tar.zst")
        .exists());
    drop(cluster);
}

/// Stops what an all-in-one server started, even when the test fails: its servers (so their
/// containers, namespaces and port mappings go), the server, then its containerd.
struct AllInOne {
    server: Option<Server>,
    data: std::path::PathBuf,
    /// The default bridge was there before the test (then it is left alone).
    had_bridge: bool,
}

impl Drop for AllInOne {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            let _ = ctl(server, &["delete", "gs", "web", "--wait"], None);
        }
        // SIGTERM: the in-process nodelet drains its namespace pool
        if let Some(mut s) = self.server.take() {
            s.terminate(Duration::from_secs(20));
        }
        let config = self.data.join("containerd/config.toml");
        let _ = Command::new("pkill")
            .args(["-f", &config.display().to_string()])
            .output();
        if !self.had_bridge {
            let _ = Command::new("ip")
                .args(["link", "delete", "catalyst0"])
                .output();
        }
    }
}

/// `catalyst server --with-nodelet` on SQLite with the containerd it starts itself: the demo
/// manifest → Running → stop/start/restart → delete leaves no container and no port mapping.
#[test]
fn the_all_in_one_server_runs_the_demo_from_apply_to_delete() {
    let env = setup();
    let data = env.root.join("aio");
    let had_bridge = std::path::Path::new("/sys/class/net/catalyst0").exists();
    let mut aio = AllInOne {
        had_bridge,
        server: Some(Server::start(
            env!("CARGO_BIN_EXE_catalyst"),
            &data,
            &["--with-nodelet", "--node-name", "aio"],
        )),
        data: data.clone(),
    };
    let server = aio.server.as_ref().expect("server");
    let ndir = data.join("nodelet");
    eventually(
        "the in-process nodelet is Ready",
        Duration::from_secs(30),
        || node_state(server, "aio") == "Ready",
    );
    // its own host ports, apart from the other tests running beside it
    node_with_ports(server, "aio", 7300);
    // the in-process nodelet reads archives from <data-dir>/nodelet/images (and
    // /var/lib/catalyst/images) only
    let image = ndir.join("images/busybox.tar");
    std::fs::create_dir_all(ndir.join("images")).expect("images dir");
    std::fs::copy(&env.image, &image).expect("image");
    let demo = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/demo/web.yaml"),
    )
    .expect("demo manifest")
    .replace(
        "oci-archive:/var/lib/catalyst/images/busybox.tar",
        &format!("oci-archive:{}", image.display()),
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&demo)));
    let obj = wait_phase(server, "web", "Running", &ndir);
    let port = host_port(&obj);
    assert!((7300..7400).contains(&port), "{port}");
    let body = probe_http(port, "/").expect("the demo answers");
    assert!(body.contains("Catalyst's demo"), "{body}");

    let socket = data.join("containerd/containerd.sock");
    let ctr = |args: &[&str]| {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(&socket)
            .args(["-n", "catalyst"])
            .args(args)
            .output()
            .expect("ctr");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let task_pid = || {
        ctr(&["tasks", "ls"])
            .lines()
            .find(|l| l.starts_with("gs-") && l.contains("RUNNING"))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    let first = task_pid().expect("a running task in the server's own containerd");

    ok(ctl(server, &["stop", "web"], None));
    wait_phase(server, "web", "Stopped", &ndir);
    assert_eq!(task_pid(), None);
    ok(ctl(server, &["start", "web"], None));
    wait_phase(server, "web", "Running", &ndir);
    let second = task_pid().expect("running again");
    assert_ne!(first, second);
    ok(ctl(server, &["restart", "web"], None));
    eventually("a new task after restart", Duration::from_secs(30), || {
        task_pid().is_some_and(|p| p != second) && phase(server, "web") == "Running"
    });

    ok(ctl(server, &["delete", "gs", "web", "--wait"], None));
    eventually("no container left", Duration::from_secs(20), || {
        ctr(&["containers", "ls", "-q"]).trim().is_empty()
    });
    assert_no_port_mapping(port);
    // SIGTERM: the in-process nodelet drains its namespace pool before the server stops
    let mut stopped = aio.server.take().expect("server");
    stopped.terminate(Duration::from_secs(20));
    assert!(
        !std::fs::read_dir("/run/netns").is_ok_and(|d| d.flatten().any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with(&format!(
                "catalyst-{}",
                catalyst_nodelet::pool::prefix(&ndir)
            )))),
        "the pool's namespaces were drained"
    );
}

/// The API server goes away (`kill -9`) and comes back on the same address: the nodelet rides
/// it out without touching the running server, reconnects its watch and tunnel, and acts on
/// what changed meanwhile, with no second container.
#[test]
fn the_nodelet_rides_out_an_api_server_restart() {
    let env = setup();
    let data = env.root.join("server-r");
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").to_string()
    };
    let server = Server::start_on(env!("CARGO_BIN_EXE_catalyst"), &data, &listen, &[]);
    let ndir = env.root.join("nodelet-r");
    node_with_ports(&server, "node-r", 7600);
    let _nodelet = Nodelet::start(
        &server,
        &env.ctd,
        &ndir,
        "node-r",
        "cat-e2e4",
        "10.231.4.0/24",
    );
    let (port, cid, pid) = run_web(
        &server,
        &env,
        &ndir,
        "steady",
        "  stop: {command: stop-now, timeoutSeconds: 3}\n",
    );

    let failed_heartbeats = || {
        std::fs::read_to_string(ndir.join("nodelet.log"))
            .unwrap_or_default()
            .matches("heartbeat failed")
            .count()
    };
    let failed_before = failed_heartbeats();
    drop(server); // SIGKILL
    let down = std::time::Instant::now();
    // the nodelet has noticed the API server is gone (a heartbeat failed) before we judge how it
    // copes; the outage lasts at least 8 s either way
    eventually(
        "the nodelet notices the API server is gone",
        Duration::from_secs(30),
        || failed_heartbeats() > failed_before,
    );
    std::thread::sleep(Duration::from_secs(8).saturating_sub(down.elapsed()));
    let served = probe_http(port, "/index.html");
    assert!(
        served.is_ok(),
        "players are served while the API server is down: {served:?}\n{}\n{}",
        String::from_utf8_lossy(
            &Command::new("iptables")
                .args(["-t", "nat", "-S"])
                .output()
                .expect("iptables")
                .stdout
        ),
        std::fs::read_to_string(ndir.join("nodelet.log")).unwrap_or_default()
    );
    assert_eq!(env.ctd.task_pid(&cid), Some(pid));
    let server = Server::start_on(env!("CARGO_BIN_EXE_catalyst"), &data, &listen, &[]);

    // the tunnel comes back: a console command reaches the server
    eventually(
        "a command through the new tunnel",
        Duration::from_secs(30),
        || {
            ctl(
                &server,
                &["command", "steady", "--", "after the restart"],
                None,
            )
            .status
            .success()
        },
    );
    eventually("the command's echo", Duration::from_secs(10), || {
        String::from_utf8_lossy(&ctl(&server, &["logs", "steady"], None).stdout)
            .contains("got: after the restart")
    });
    // the watch comes back: a stop asked now is carried out (by SIGKILL after the timeout:
    // this server ignores its stop command)
    ok(ctl(&server, &["stop", "steady"], None));
    let stopped = wait_phase(&server, "steady", "Stopped", &ndir);
    assert_eq!(
        stopped
            .pointer("/status/lastExit/exitCode")
            .and_then(Value::as_i64),
        Some(137),
        "{stopped}"
    );
    assert_eq!(env.ctd.containers(), vec![cid], "one container, never two");
}

/// `catalyst server` on every address prints the join command for another machine; run as
/// printed (plus the directories and socket of this test) on a host of its own (a network
/// namespace), it joins: the node goes Ready, reaching the server at the advertised address,
/// which the server's certificate names.
#[test]
fn the_printed_join_command_joins_a_node_on_another_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let host = Host::create(3);
    let server = Server::start_on(
        env!("CARGO_BIN_EXE_catalyst"),
        &root.join("server"),
        "0.0.0.0:0",
        &["--advertise-address", "10.240.3.1"],
    );
    let mut printed = String::new();
    eventually("the join command", Duration::from_secs(10), || {
        printed = server.stdout.lock().expect("stdout").clone();
        printed.contains("join another machine: ")
    });
    let line = printed
        .lines()
        .find_map(|l| l.split_once("join another machine: "))
        .map(|(_, cmd)| cmd.trim().to_owned())
        .expect("the join line");
    let token = std::fs::read_to_string(server.data_dir.join("join-token")).expect("join-token");
    let port = server.url.rsplit(':').next().expect("port");
    assert_eq!(
        line,
        format!(
            "catalyst nodelet --server https://10.240.3.1:{port} --join-token {}",
            token.trim()
        )
    );
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[..2], ["catalyst", "nodelet"]);

    let ctd = Containerd::start(&root.join("ctd"));
    let ndir = root.join("nodelet");
    let mut args: Vec<String> = words[1..].iter().map(|s| s.to_string()).collect();
    args.extend(
        [
            "--name",
            "joined",
            "--data-dir",
            &ndir.display().to_string(),
            "--containerd-socket",
            &ctd.socket.display().to_string(),
            "--address",
            "10.240.3.2",
            "--subnet",
            "10.232.3.0/24",
            "--sftp-listen",
            "off",
        ]
        .map(str::to_owned),
    );
    let nodelet = Nodelet::launch(&server, &ctd, &ndir, args, Some(host.ns.clone()));
    eventually("the joined node is Ready", Duration::from_secs(30), || {
        node_state(&server, "joined") == "Ready"
    });
    drop(nodelet);
    drop(ctd);
}
