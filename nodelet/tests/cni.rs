//! The CNI attachment records against the real plugins (Debian's `containernetworking-plugins`)
//! and the real kernel: a namespace made anew after a DEL that failed gets a new attachment, and
//! nothing of the old one (address, host-port rules, masquerade chain) stays. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;

use catalyst_nodelet::cni::{find_bin_dir, netns_name, netns_path, Network};
use catalyst_schemas::gameserver::PortStatus;

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn nat_rules() -> String {
    sh("iptables-save", &["-t", "nat"]).1
}

/// Removes the test's namespace, bridge and rules, also when it fails.
struct Cleanup {
    id: String,
    bridge: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "delete", &netns_name(&self.id)]);
        let _ = sh("ip", &["link", "delete", &self.bridge]);
        // rules the test's attachment may have left (named by its id), then their chains
        let mut chains = Vec::new();
        for line in nat_rules().lines() {
            if line.starts_with("-A ") && line.contains(&self.id) {
                let args: Vec<String> = shell_words(line.trim_start_matches("-A "));
                if let Some(j) = args.iter().position(|a| a == "-j") {
                    let target = &args[j + 1];
                    if target.starts_with("CNI-") && !target.starts_with("CNI-HOSTPORT-") {
                        chains.push(target.clone());
                    }
                }
                let mut del = vec!["-w".to_owned(), "-t".into(), "nat".into(), "-D".into()];
                del.extend(args);
                let refs: Vec<&str> = del.iter().map(String::as_str).collect();
                let _ = sh("iptables", &refs);
            }
        }
        for chain in chains {
            let _ = sh("iptables", &["-w", "-t", "nat", "-F", &chain]);
            let _ = sh("iptables", &["-w", "-t", "nat", "-X", &chain]);
        }
    }
}

/// Splits an `iptables-save` rule into arguments (double quotes with `\"` escapes).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            _ => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// A plugin directory whose `bridge` and `portmap` fail every call.
fn failing_plugins(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("failing");
    std::fs::create_dir_all(&bin).expect("dir");
    for name in ["bridge", "portmap"] {
        let p = bin.join(name);
        std::fs::write(
            &p,
            "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"refused by the test\"}'\nexit 1\n",
        )
        .expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    bin
}

fn address_in_netns(id: &str) -> String {
    let net = format!("--net={}", netns_path(id).display());
    sh(
        "nsenter",
        &[&net, "ip", "-4", "-o", "addr", "show", "dev", "eth0"],
    )
    .1
}

/// The plugins' directory when they are installed and the test runs as root (else it says
/// why it is skipped).
fn plugins_as_root() -> Option<PathBuf> {
    let Some(bin_dir) = find_bin_dir() else {
        eprintln!("skipped: no CNI plugins (containernetworking-plugins)");
        return None;
    };
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: not root");
        return None;
    }
    Some(bin_dir)
}

#[tokio::test]
async fn a_namespace_made_anew_after_a_failed_del_is_attached_and_the_old_attachment_goes() {
    let Some(bin_dir) = plugins_as_root() else {
        return;
    };
    let pid = std::process::id();
    let id = format!("gs-cnitest{pid}");
    let bridge = format!("catt{}", pid % 100_000);
    let _cleanup = Cleanup {
        id: id.clone(),
        bridge: bridge.clone(),
    };
    let dir = tempfile::tempdir().expect("tmp");
    let net = Network {
        bin_dir,
        bridge: bridge.clone(),
        subnet: format!("10.231.{}.0/24", pid % 250),
        state_dir: dir.path().join("cni"),
    };
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let ports: Vec<PortStatus> = serde_json::from_value(serde_json::json!([
        {"name": "game", "hostPort": host_port, "containerPort": 30000, "protocol": "TCP"}
    ]))
    .expect("ports");

    assert!(sh("ip", &["netns", "add", &netns_name(&id)]).0, "netns add");
    net.attach(&id, &ports).await.expect("first attach");
    let first = net.address(&id).expect("first address");
    assert!(address_in_netns(&id).contains(&first), "eth0 has {first}");
    let rules = nat_rules();
    assert!(
        rules.contains(&host_port.to_string()),
        "DNAT for {host_port}:\n{rules}"
    );

    // the plugins fail the DEL: the record stays (to be undone later), the namespace goes
    let broken = Network {
        bin_dir: failing_plugins(dir.path()),
        ..net.clone()
    };
    broken.detach(&id, &ports).await.expect_err("the DEL fails");
    assert!(!netns_path(&id).exists(), "the namespace is removed");
    assert_eq!(net.recorded_ids(), vec![id.clone()], "the record is kept");

    // a namespace made anew at the same path gets its own attachment
    assert!(sh("ip", &["netns", "add", &netns_name(&id)]).0, "netns add");
    net.attach_bridge(&id).await.expect("attach again");
    let second = net.address(&id).expect("second address");
    assert!(
        address_in_netns(&id).contains(&second),
        "eth0 of the new namespace has {second}: {}",
        address_in_netns(&id)
    );
    // the old attachment's host port and masquerade rule went with its DEL
    let rules = nat_rules();
    assert!(
        !rules.contains(&format!("--dport {host_port}")),
        "old DNAT left:\n{rules}"
    );
    let masq: Vec<&str> = rules
        .lines()
        .filter(|l| l.starts_with("-A POSTROUTING") && l.contains(&format!("\\\"{id}\\\"")))
        .collect();
    assert_eq!(
        masq.len(),
        1,
        "one masquerade rule, the new one's: {masq:?}"
    );
    assert!(masq[0].contains(&second), "{masq:?}");
    // the address pool holds the new address only
    let ipam: Vec<String> = std::fs::read_dir(dir.path().join("cni/ipam/catalyst"))
        .expect("ipam dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert_eq!(ipam, vec![second.clone()], "address leases");

    // and the normal detach removes everything
    net.detach(&id, &ports).await.expect("detach");
    assert!(!netns_path(&id).exists());
    assert!(net.recorded_ids().is_empty());
    let rules = nat_rules();
    assert!(!rules.contains(&id), "rules of {id} left:\n{rules}");
}

/// Host ports mapped without the plugin (one `iptables-restore`, once the plugin made its shared
/// chains) are the plugin's own rules: the same rules for a second attachment as the plugin
/// made for the first, a player on 127.0.0.1 reaches the server through them, and the plugin's
/// DEL removes them.
#[tokio::test]
async fn host_ports_mapped_by_restore_are_the_plugins_rules_and_answer() {
    let Some(bin_dir) = plugins_as_root() else {
        return;
    };
    let pid = std::process::id();
    let ids = [format!("gs-cnimap{pid}a"), format!("gs-cnimap{pid}b")];
    let bridge = format!("catm{}", pid % 100_000);
    let _cleanup: Vec<Cleanup> = ids
        .iter()
        .map(|id| Cleanup {
            id: id.clone(),
            bridge: bridge.clone(),
        })
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let net = Network {
        bin_dir,
        bridge: bridge.clone(),
        subnet: format!("10.232.{}.0/24", 100 + pid % 100),
        state_dir: dir.path().join("cni"),
    };
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port()
    };
    let mut ports = Vec::new();
    for id in &ids {
        let port = free_port();
        let p: Vec<PortStatus> = serde_json::from_value(serde_json::json!([
            {"name": "game", "hostPort": port, "containerPort": 30000, "protocol": "TCPUDP"},
            {"name": "query", "hostPort": port.wrapping_add(1), "containerPort": 30001, "protocol": "TCP"}
        ]))
        .expect("ports");
        assert!(sh("ip", &["netns", "add", &netns_name(id)]).0, "netns add");
        let restored = catalyst_nodelet::cni::mappings_restored();
        net.attach(id, &p).await.expect("attach");
        if !ports.is_empty() {
            assert!(
                catalyst_nodelet::cni::mappings_restored() > restored,
                "the second attachment's ports were mapped by iptables-restore"
            );
        }
        ports.push(p);
    }
    // each attachment's rules, with its own names, address and ports made generic
    let rules_of = |i: usize| -> Vec<String> {
        let id = &ids[i];
        let ip = net.address(id).expect("address");
        let port = ports[i][0].host_port;
        let chain = nat_rules()
            .lines()
            .find(|l| l.starts_with("-A CNI-HOSTPORT-DNAT") && l.contains(id.as_str()))
            .and_then(|l| l.rsplit(" -j ").next().map(str::to_owned))
            .expect("a DNAT jump");
        let mut rules: Vec<String> = nat_rules()
            .lines()
            .filter(|l| l.contains(&chain))
            .map(|l| {
                l.replace(&chain, "CHAIN")
                    .replace(id.as_str(), "ID")
                    .replace(&ip, "IP")
                    .replace(&(port + 1).to_string(), "PORT1")
                    .replace(&port.to_string(), "PORT")
                    .split(" [")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        rules.sort();
        rules
    };
    let (by_plugin, by_restore) = (rules_of(0), rules_of(1));
    assert_eq!(by_plugin.len(), 12, "{by_plugin:#?}");
    assert_eq!(by_plugin, by_restore, "the same rules");

    // a player on 127.0.0.1 reaches the second one's server through the restored rules
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "mapped\n").expect("index");
    let net_arg = format!("--net={}", netns_path(&ids[1]).display());
    let mut httpd = Command::new("nsenter")
        .args([&net_arg, "busybox", "httpd", "-f", "-p", "30000", "-h"])
        .arg(&www)
        .spawn()
        .expect("httpd");
    let url = format!("127.0.0.1:{}", ports[1][0].host_port);
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(&url) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
            body.clear();
            let _ = s.read_to_string(&mut body);
            if body.contains("mapped") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = httpd.kill();
    let _ = httpd.wait();
    assert!(body.contains("mapped"), "through 127.0.0.1: {body:?}");

    // the plugin's DEL (through detach) removes what the restore made
    for (id, p) in ids.iter().zip(&ports) {
        net.detach(id, p).await.expect("detach");
        let rules = nat_rules();
        assert!(!rules.contains(id.as_str()), "rules of {id} left:\n{rules}");
        assert!(
            !rules.contains(&format!("--dport {}", p[0].host_port)),
            "a DNAT of {id} left:\n{rules}"
        );
    }
}
