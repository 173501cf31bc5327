//! End to end with real processes: `catalyst server`, `catalyst nodelet`, a containerd of the
//! test's own, CNI plugins, and a busybox image built here. Players' traffic goes to
//! 127.0.0.1:hostPort.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::*;

/// A real game server from Debian's packages (mumble-server), packed into an image here, pushed
/// to a private registry on loopback (htpasswd auth), pulled by the nodelet with credentials
/// from a Docker-style auth file; a player's UDP ping gets its answer on the host port, and the
/// same port answers TCP.
#[test]
fn a_debian_game_server_pulled_from_a_private_registry_answers_players() {
    let env = setup();
    let registry = catalyst_e2e::registry::Registry::start(&env.root.join("registry"));
    let archive = env.root.join("mumble.tar");
    catalyst_nodelet::pack::host_archive(
        &archive,
        &[
            Path::new("/usr/sbin/murmurd"),
            Path::new("/usr/lib/x86_64-linux-gnu/qt5/plugins/sqldrivers"),
        ],
        &["murmurd", "-fg"],
    )
    .expect("pack mumble-server");
    registry.push(&archive, "games/mumble", "1.3");
    let auth = env.root.join("auth.json");
    registry.auth_file(&auth);
    let ndir = env.root.join("nodelet-b");
    node_with_ports(&env.server, "node-b", 7100);
    let auth_arg = auth.display().to_string();
    let _nodelet = Nodelet::start_with(
        &env.server,
        &env.ctd,
        &ndir,
        "node-b",
        "cat-e2e1",
        "10.231.1.0/24",
        &["--registry-auth", &auth_arg],
    );
    let server = &env.server;

    // a tag that does not exist: Error with the registry's answer
    let missing = format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: nope\n  namespace: default\nspec:\n  image: {}/games/mumble:0.0\n",
        registry.host
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&missing)));
    let nope = wait_phase(server, "nope", "Error", &ndir);
    assert_eq!(
        nope.pointer("/status/reason").and_then(Value::as_str),
        Some("ImagePullFailed")
    );
    let msg = nope
        .pointer("/status/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(msg.contains("404"), "{msg}");

    let startup = "printf 'database=/home/container/murmur.sqlite\\nport=%s\\nwelcometext=catalyst\\n' $SERVER_PORT > /home/container/murmur.ini; exec murmurd -fg -ini /home/container/murmur.ini";
    let mumble = format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: mumble\n  namespace: default\nspec:\n  image: {}/games/mumble:1.3\n  startup: {startup:?}\n  ports: [{{containerPort: 64738, protocol: TCPUDP}}]\n  ready: {{logPattern: 'Server listening on'}}\n  resources: {{memory: 256Mi, cpu: '1'}}\n",
        registry.host
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&mumble)));
    let obj = wait_phase(server, "mumble", "Running", &ndir);
    let port = host_port(&obj);
    assert!((7100..7200).contains(&port), "{port}");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut reply = [0u8; 64];
    let mut got = None;
    for _ in 0..10 {
        let mut ping = vec![0u8; 4];
        ping.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
        sock.send_to(&ping, ("127.0.0.1", port)).expect("send");
        if let Ok((n, _)) = sock.recv_from(&mut reply) {
            got = Some(n);
            break;
        }
    }
    let n = got.expect("mumble answers a UDP ping on its host port");
    assert_eq!(n, 24);
    assert_eq!(
        &reply[4..12],
        &0x1122_3344_5566_7788u64.to_be_bytes(),
        "the ping's ident comes back"
    );
    let max_users = u32::from_be_bytes(reply[16..20].try_into().expect("4 bytes"));
    assert!(max_users > 0, "{max_users}");
    assert!(
        TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().expect("addr"),
            Duration::from_secs(3)
        )
        .is_ok(),
        "the same host port answers TCP"
    );
    let described = ok(ctl(server, &["describe", "gs", "mumble"], None));
    assert!(described.contains("Pulled"), "{described}");
    // the pull's condition, True once the image is there
    assert!(
        described.contains("\n  ImagePulled     True     Pulled "),
        "{described}"
    );
}

/// A server's life on one node: start, answer on its host port, console, stop by command,
/// start again, survive `kill -9` of the nodelet untouched, crash and OOM detection, a fork
/// bomb held by the pids limit, isolation between servers, and deletion leaving nothing.
#[test]
fn a_game_server_lives_on_real_containerd() {
    let env = setup();
    let ndir = env.root.join("nodelet");
    // each test its own host port range: tests run in parallel on one machine
    node_with_ports(&env.server, "node-a", 7000);
    let mut nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-a",
        "cat-e2e0",
        "10.231.0.0/24",
    );
    let server = &env.server;

    // A small "game": serves HTTP on 8080, prints `ready`, echoes console commands, quits on `stop`.
    let web = manifest(
        "web",
        &env.image,
        "echo hello > /home/container/index.html; httpd -p 8080 -h /home/container; echo ready; while read line; do echo \"got: $line\"; [ \"$line\" = stop ] && exit 0; done",
        "  ports: [{containerPort: 8080, protocol: TCP}]\n  ready: {logPattern: '^ready$'}\n  stop: {command: stop, timeoutSeconds: 10}\n  resources: {memory: 64Mi, pids: 64}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&web)));
    let obj = wait_phase(server, "web", "Running", &ndir);
    let port = host_port(&obj);
    let body = probe_http(port, "/index.html").expect("the server answers on 127.0.0.1:hostPort");
    assert!(body.contains("hello"), "{body}");

    // the server runs as uid 1000 of a host uid range of its own (user namespace), not root,
    // and cannot gain privileges
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("uid")
        .to_owned();
    let cid = format!("gs-{uid}");
    let pid = env.ctd.task_pid(&cid).expect("task runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    assert!(
        status.lines().any(|l| l.starts_with("Uid:")
            && l.split_whitespace()
                .nth(1)
                .and_then(|u| u.parse::<u32>().ok())
                .is_some_and(|u| u >= (1 << 30) && (u - (1 << 30)) % 65536 == 1000)),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{status}"
    );

    // console through the API server: history, a command to stdin, its echo
    let history = ok(ctl(server, &["logs", "web", "--tail", "5"], None));
    assert!(history.contains("ready"), "{history}");
    ok(ctl(server, &["command", "web", "--", "say", "hi"], None));
    eventually(
        "the command's echo in the logs",
        Duration::from_secs(10),
        || {
            String::from_utf8_lossy(&ctl(server, &["logs", "web"], None).stdout)
                .contains("got: say hi")
        },
    );

    // metrics: on demand per server, and sampled into the Prometheus endpoint
    let m: Value = serde_json::from_str(&api_text(
        server,
        "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/web/metrics",
    ))
    .expect("metrics json");
    assert!(m["memoryBytes"].as_u64().is_some_and(|b| b > 0), "{m}");
    assert_eq!(m["memoryLimitBytes"].as_u64(), Some(64 << 20), "{m}");
    assert!(m["diskBytes"].as_u64().is_some_and(|b| b > 0), "{m}");
    eventually(
        "web in the Prometheus endpoint",
        Duration::from_secs(20),
        || {
            let text = api_text(server, "/metrics");
            text.contains("# TYPE catalyst_gameserver_memory_bytes gauge")
            && text.contains("catalyst_gameserver_memory_bytes{name=\"web\",namespace=\"default\",node=\"node-a\"}")
        },
    );

    // kill -9 of the nodelet: the server keeps running, the restarted nodelet re-adopts it
    let adopted_before = adopted_events(server, &uid);
    nodelet.kill9();
    assert!(
        probe_http(port, "/index.html").is_ok(),
        "server answers while the nodelet is down"
    );
    nodelet.restart(&ndir);
    // the new nodelet's worker has examined the server and kept its task before we look
    eventually(
        "the restarted nodelet records Adopted for web",
        Duration::from_secs(30),
        || adopted_events(server, &uid) > adopted_before,
    );
    assert_untouched(server, &env.ctd, "web", &cid, pid);

    // stop by console command: exit 0 → Stopped, host port closed
    ok(ctl(server, &["stop", "web"], None));
    let obj = wait_phase(server, "web", "Stopped", &ndir);
    assert_eq!(
        obj.pointer("/status/lastExit/exitCode")
            .and_then(Value::as_i64),
        Some(0)
    );
    assert!(
        console_log(&ndir, &obj).contains("got: stop"),
        "the stop command reached stdin"
    );
    let stopped = ok(ctl(server, &["logs", "web"], None));
    assert!(
        stopped.contains("server stopped (exit code 0)"),
        "{stopped}"
    );
    ok(ctl(server, &["start", "web"], None));
    let obj = wait_phase(server, "web", "Running", &ndir);
    eventually("web answers again", Duration::from_secs(10), || {
        probe_http(host_port(&obj), "/").is_ok()
    });

    // a second server cannot reach the first one's container port
    let web_ip = {
        let result = std::fs::read_to_string(ndir.join("cni/results").join(format!("{cid}.json")))
            .expect("cni result");
        let v: Value = serde_json::from_str(&result).expect("json");
        v.pointer("/result/ips/0/address")
            .and_then(Value::as_str)
            .expect("ip")
            .split('/')
            .next()
            .expect("ip")
            .to_owned()
    };
    let probe = manifest(
        "probe",
        &env.image,
        &format!("wget -T 3 -q -O- http://{web_ip}:8080/index.html && echo REACHED || echo BLOCKED; sleep 3600"),
        "  stop: {signal: SIGKILL, timeoutSeconds: 5}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&probe)));
    let pobj = wait_phase(server, "probe", "Running", &ndir);
    eventually("the probe reports", Duration::from_secs(20), || {
        let log = console_log(&ndir, &pobj);
        log.contains("REACHED") || log.contains("BLOCKED")
    });
    assert!(
        console_log(&ndir, &pobj).contains("BLOCKED"),
        "{}",
        console_log(&ndir, &pobj)
    );

    // a crash: exit code 3 → Crashed with the code, not restarted (Never)
    let crash = manifest(
        "crash",
        &env.image,
        "echo boom; sleep 1; exit 3",
        "  restartPolicy: Never\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&crash)));
    let cobj = wait_phase(server, "crash", "Crashed", &ndir);
    assert_eq!(
        cobj.pointer("/status/lastExit/exitCode")
            .and_then(Value::as_i64),
        Some(3)
    );

    // a memory hog under 16Mi: OOM-killed and reported as such
    let hog = manifest(
        "hog",
        &env.image,
        "echo eating; exec tail /dev/zero",
        "  restartPolicy: Never\n  resources: {memory: 16Mi}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&hog)));
    let hobj = wait_phase(server, "hog", "Crashed", &ndir);
    assert_eq!(
        hobj.pointer("/status/lastExit/oomKilled")
            .and_then(Value::as_bool),
        Some(true),
        "{hobj}"
    );
    assert_eq!(
        hobj.pointer("/status/reason").and_then(Value::as_str),
        Some("OOMKilled")
    );

    // a fork bomb is held by the pids limit; the node (and this test) carry on
    let bomb = manifest(
        "bomb",
        &env.image,
        "echo bombing; (i=0; while [ $i -lt 300 ]; do sleep 600 & i=$((i+1)); done); echo spawned; exec sleep 3600",
        "  resources: {pids: 32}\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&bomb)));
    let bobj = wait_phase(server, "bomb", "Running", &ndir);
    let bcid = format!(
        "gs-{}",
        bobj.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .expect("uid")
    );
    eventually("the bomb hits its limit", Duration::from_secs(20), || {
        let log = console_log(&ndir, &bobj);
        log.contains("can't fork") || log.contains("spawned")
    });
    let pids_current = ["/sys/fs/cgroup/pids/catalyst", "/sys/fs/cgroup/catalyst"]
        .iter()
        .find_map(|b| std::fs::read_to_string(format!("{b}/{bcid}/pids.current")).ok())
        .expect("pids cgroup");
    assert!(
        pids_current.trim().parse::<u32>().expect("number") <= 32,
        "pids {pids_current}"
    );
    assert_eq!(
        gs(server, "bomb")
            .pointer("/status/phase")
            .and_then(Value::as_str),
        Some("Running"),
        "the server lives on under its limit"
    );
    assert!(
        console_log(&ndir, &bobj).contains("can't fork"),
        "the limit bit: {}",
        console_log(&ndir, &bobj)
    );

    // deleting leaves no container, no network namespace and no port mapping
    for name in ["web", "probe", "crash", "hog", "bomb"] {
        ok(ctl(server, &["delete", "gs", name, "--wait"], None));
    }
    eventually("all containers gone", Duration::from_secs(30), || {
        env.ctd.containers().is_empty()
    });
    assert_no_port_mapping(port);
    assert!(!Path::new(&format!("/run/netns/catalyst-{cid}")).exists());
    assert!(
        probe_http(port, "/").is_err(),
        "nothing answers on the freed port"
    );
}

/// A server made from a Template: the template's image, variables' defaults overridden by the
/// server, its install script run once as root with the data dir at /mnt/server, then the
/// server started as uid 1000 on what the script left. A failing install script → Error; a
/// crashing server is restarted with backoff (OnCrash) and counts its restarts.
#[test]
fn templates_install_scripts_and_crash_restarts() {
    let env = setup();
    let ndir = env.root.join("nodelet-t");
    node_with_ports(&env.server, "node-t", 7400);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-t",
        "cat-e2e3",
        "10.231.3.0/24",
    );
    let server = &env.server;
    let template = format!(
        r#"apiVersion: catalyst.dev/v1alpha1
kind: Template
metadata:
  name: busybox-game
spec:
  images: [{{name: busybox, image: "oci-archive:{}"}}]
  startup: "cat /home/container/motd.txt; echo ready; exec sleep 3600"
  variables:
    - {{name: MOTD, default: from the template}}
    - {{name: GREETING, default: hi}}
  install:
    entrypoint: sh
    script: |
      echo "$MOTD / $GREETING" > /mnt/server/motd.txt
      echo "installed as uid $(id -u)"
  ready: {{logPattern: '^ready$'}}
  ports: [{{containerPort: 8080}}]
"#,
        env.image.display()
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&template)));
    let gs_yaml = "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: templated\n  namespace: default\nspec:\n  template: busybox-game\n  variables: {MOTD: from the server}\n";
    ok(ctl(server, &["apply", "-f", "-"], Some(gs_yaml)));
    let obj = wait_phase(server, "templated", "Running", &ndir);
    let logs = ok(ctl(server, &["logs", "templated"], None));
    assert!(logs.contains("installed as uid 0"), "{logs}");
    assert!(logs.contains("from the server / hi"), "{logs}");
    let installed = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Installed" && c["status"] == "True")
        });
    assert!(installed, "{obj}");
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("uid");
    let motd = ndir.join("servers").join(uid).join("motd.txt");
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&motd).expect("motd").uid();
    assert!(
        owner >= (1 << 30) && (owner - (1 << 30)) % 65536 == 1000,
        "handed to the server's user (uid 1000 of its range): {owner}"
    );

    let bad = manifest(
        "badinstall",
        &env.image,
        "echo never",
        "  install: {script: 'echo failing; exit 4'}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&bad)));
    let bobj = wait_phase(server, "badinstall", "Error", &ndir);
    assert_eq!(
        bobj.pointer("/status/reason").and_then(Value::as_str),
        Some("InstallFailed")
    );

    let looper = manifest("looper", &env.image, "echo going down; exit 1", "");
    ok(ctl(server, &["apply", "-f", "-"], Some(&looper)));
    eventually(
        "restarted twice after crashes",
        Duration::from_secs(60),
        || {
            gs(server, "looper")
                .pointer("/status/restartCount")
                .and_then(Value::as_i64)
                .is_some_and(|n| n >= 2)
        },
    );
    let l = gs(server, "looper");
    assert_eq!(
        l.pointer("/status/lastExit/exitCode")
            .and_then(Value::as_i64),
        Some(1),
        "{l}"
    );
}

/// containerd dies and comes back: a server whose process died meanwhile is reported Crashed
/// (not hidden), the other keeps running untouched, and the nodelet goes on working.
#[test]
fn containerd_restarts_are_ridden_out_and_deaths_reported() {
    let mut env = setup();
    let ndir = env.root.join("nodelet-c");
    node_with_ports(&env.server, "node-c", 7700);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-c",
        "cat-e2e5",
        "10.231.5.0/24",
    );
    let server = &env.server;
    let startup = "echo hello > /home/container/index.html; httpd -p 8080 -h /home/container; echo ready; while read line; do echo \"got: $line\"; done";
    for name in ["survivor", "victim"] {
        let m = manifest(
            name,
            &env.image,
            startup,
            "  ports: [{containerPort: 8080}]\n  ready: {logPattern: '^ready$'}\n  restartPolicy: Never\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n",
        );
        ok(ctl(server, &["apply", "-f", "-"], Some(&m)));
    }
    let s = wait_phase(server, "survivor", "Running", &ndir);
    let v = wait_phase(server, "victim", "Running", &ndir);
    let cid = |o: &Value| {
        format!(
            "gs-{}",
            o.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .expect("uid")
        )
    };
    let (scid, vcid) = (cid(&s), cid(&v));
    let spid = env.ctd.task_pid(&scid).expect("survivor task");
    let vpid = env.ctd.task_pid(&vcid).expect("victim task");

    // containerd goes down; while it is away the victim's process is killed
    let socket = env.ctd.socket.clone();
    let ctd = &mut env.ctd;
    let victim_killer = std::thread::spawn(move || {
        // only once containerd is really down (its socket refuses), so nothing sees the death
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "containerd never went down"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::process::Command::new("kill")
            .args(["-9", &vpid.to_string()])
            .output();
    });
    ctd.restart(Duration::from_secs(3));
    victim_killer.join().expect("killer");

    let vobj = wait_phase(server, "victim", "Crashed", &ndir);
    let code = vobj
        .pointer("/status/lastExit/exitCode")
        .and_then(Value::as_i64);
    assert!(
        code == Some(137)
            || vobj.pointer("/status/reason").and_then(Value::as_str) == Some("TaskLost"),
        "{vobj}"
    );
    assert_untouched(server, &env.ctd, "survivor", &scid, spid);
    // the nodelet still drives containerd: stop and start the survivor
    ok(ctl(server, &["stop", "survivor"], None));
    wait_phase(server, "survivor", "Stopped", &ndir);
    ok(ctl(server, &["start", "survivor"], None));
    let again = wait_phase(server, "survivor", "Running", &ndir);
    eventually("the survivor answers", Duration::from_secs(10), || {
        probe_http(host_port(&again), "/index.html").is_ok()
    });
}

/// How many `Adopted` Events the nodelet recorded about the server with this uid (one per
/// nodelet start that found the server's task running and kept it).
fn adopted_events(server: &catalyst_e2e::Server, uid: &str) -> usize {
    let list: Value = serde_json::from_str(&api_text(
        server,
        "/apis/catalyst.dev/v1alpha1/namespaces/default/events",
    ))
    .expect("events json");
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|e| {
                    e.pointer("/spec/reason").and_then(Value::as_str) == Some("Adopted")
                        && e.pointer("/spec/involvedObject/uid")
                            .and_then(Value::as_str)
                            == Some(uid)
                })
                .count()
        })
        .unwrap_or(0)
}

/// The namespace pool: a new Bridge server takes a sandbox made ahead (its CNI id is the
/// entry's) and answers on its host port; the pool refills; a kill -9 of the nodelet and a
/// restart without a pool leave nothing of the entries (namespaces, addresses, NAT rules, uid
/// claims) while the server runs on untouched; deleting it leaves nothing at all.
#[test]
fn new_servers_take_pooled_sandboxes_and_a_killed_pool_leaves_nothing() {
    let env = setup();
    let ndir = env.root.join("nodelet-pool");
    node_with_ports(&env.server, "node-pool", 9900);
    let (bridge, subnet) = ("cat-pool0", "10.231.80.0/24");
    let mut nodelet = Nodelet::start_with(
        &env.server,
        &env.ctd,
        &ndir,
        "node-pool",
        bridge,
        subnet,
        &["--netns-pool", "2"],
    );
    let server = &env.server;
    let prefix = catalyst_nodelet::pool::prefix(&ndir);
    let cni = ndir.join("cni");
    let pool_records = || -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(cni.join("results"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix) && n.ends_with(".json"))
            .collect();
        ids.sort();
        ids
    };
    let pool_ns = || -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("catalyst-{prefix}")))
            .collect()
    };
    let ipam = || -> Vec<String> {
        let mut owners: Vec<String> = std::fs::read_dir(cni.join("ipam/catalyst"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|s| s.lines().next().unwrap_or_default().trim().to_owned())
            .collect();
        owners.sort();
        owners
    };
    let nat = || {
        let out = std::process::Command::new("iptables")
            .args(["-t", "nat", "-S"])
            .output()
            .expect("iptables");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    eventually("two pool entries", Duration::from_secs(30), || {
        pool_records().len() == 2 && pool_ns().len() == 2
    });

    let web = manifest(
        "pooled",
        &env.image,
        "echo pooled > /home/container/index.html; httpd -f -p 8080 -h /home/container",
        "  ports: [{containerPort: 8080, protocol: TCP}]\n  stop: {signal: SIGKILL, timeoutSeconds: 1}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&web)));
    let obj = wait_phase(server, "pooled", "Running", &ndir);
    let port = host_port(&obj);
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("uid")
        .to_owned();
    let cid = format!("gs-{uid}");
    let record: Value = serde_json::from_slice(
        &std::fs::read(cni.join(format!("results/{cid}.json"))).expect("the server's record"),
    )
    .expect("record json");
    let cni_id = record["cniId"].as_str().expect("cniId").to_owned();
    assert!(cni_id.starts_with(&prefix), "a pooled sandbox: {record}");
    eventually("the pooled server answers", Duration::from_secs(10), || {
        probe_http(port, "/index.html").is_ok_and(|b| b.contains("pooled"))
    });
    // from inside: its address is the entry's, its loopback is up
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("catalyst-{cid}"),
            "ip",
            "-o",
            "addr",
        ])
        .output()
        .expect("ip netns exec");
    let addrs = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        addrs.contains("lo ") && addrs.contains("inet 127.0.0.1"),
        "{addrs}"
    );
    assert!(
        addrs.contains("eth0") && addrs.contains("inet 10.231.80."),
        "{addrs}"
    );
    eventually("the pool refilled", Duration::from_secs(30), || {
        pool_records().len() == 2 && !pool_records().iter().any(|r| r.starts_with(&cni_id))
    });
    let pid = env.ctd.task_pid(&cid).expect("task runs");

    // kill -9 (perhaps while the refill runs), restart without a pool: the entries go, the
    // server stays
    nodelet.kill9();
    let mut args = nodelet.args.clone();
    let at = args.iter().position(|a| a == "--netns-pool").expect("flag");
    args[at + 1] = "0".into();
    nodelet.args = args;
    nodelet.restart(&ndir);
    eventually(
        "the pool's entries are gone",
        Duration::from_secs(30),
        || pool_records().is_empty() && pool_ns().is_empty(),
    );
    eventually(
        "only the server holds an address",
        Duration::from_secs(10),
        || ipam() == vec![cni_id.clone()],
    );
    let rules = nat();
    for line in rules.lines().filter(|l| l.contains(&prefix)) {
        assert!(
            line.contains(&cni_id),
            "a pool entry's rule is left: {line}\n{rules}"
        );
    }
    assert!(
        std::fs::read_dir(ndir.join("pool/netns"))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "entry directories left"
    );
    let owners: Vec<String> = std::fs::read_dir(catalyst_nodelet::userns::DEFAULT_CLAIMS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|c| std::fs::read_to_string(c.path()).ok())
        .filter(|o| o.contains(&*ndir.display().to_string()))
        .collect();
    assert_eq!(owners.len(), 1, "only the server's uid range: {owners:?}");
    assert!(owners[0].contains(&uid), "{owners:?}");
    assert_untouched(server, &env.ctd, "pooled", &cid, pid);
    assert!(probe_http(port, "/index.html").is_ok(), "still answering");

    ok(ctl(server, &["delete", "gs", "pooled", "--wait"], None));
    eventually(
        "nothing left of the server",
        Duration::from_secs(30),
        || ipam().is_empty() && !nat().contains(&prefix),
    );
    assert_no_port_mapping(port);
    let veths = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .expect("ip link");
    assert!(
        String::from_utf8_lossy(&veths.stdout).trim().is_empty(),
        "veths left on the bridge"
    );
}
