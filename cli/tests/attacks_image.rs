//! Hostile images end to end, on a containerd of the test's own: OCI archives written by
//! other tools (Debian's skopeo), archive paths outside the node's image directories, a
//! registry serving a layer whose diff ID is forged to take over another image's snapshot, and
//! registries whose redirects and token realms point at other services on the machine.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use catalyst_nodelet::pack::{self, Entry, ImageBlobs};
use serde_json::Value;
use support::*;

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(["--insecure-policy"])
        .args(args)
        .output()
        .expect("skopeo (Debian's skopeo package)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn apply_gs(server: &catalyst_e2e::Server, name: &str, image: &str, startup: &str, extra: &str) {
    let m = format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  image: {image:?}\n  startup: {startup:?}\n{extra}"
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&m)));
}

fn failure(obj: &Value) -> (String, String) {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    (s("/status/reason"), s("/status/message"))
}

/// Committed snapshots of the `catalyst` namespace and their labels.
fn committed_snapshots(
    ctd: &catalyst_e2e::containerd::Containerd,
) -> Vec<(String, HashMap<String, String>)> {
    let list = ctd.ctr(&["snapshots", "ls"]);
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .skip(1)
        // KEY [PARENT] KIND: a base layer has no parent
        .filter(|l| l.split_whitespace().last() == Some("Committed"))
        .map(|l| {
            let key = l.split_whitespace().next().unwrap_or("").to_owned();
            let info = ctd.ctr(&["snapshots", "info", &key]);
            let v: Value = serde_json::from_slice(&info.stdout).unwrap_or(Value::Null);
            let labels = v["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            (key, labels)
        })
        .collect()
}

fn snapshot_keys(ctd: &catalyst_e2e::containerd::Containerd) -> Vec<String> {
    let list = ctd.ctr(&["snapshots", "ls"]);
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Deletes a test's CNI bridge when dropped (declared before the nodelet, so dropped after it
/// has removed its servers).
struct Bridge(&'static str);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "delete", self.0]).output();
    }
}

const READY: &str =
    "  ready: {logPattern: '^checked$'}\n  stop: {signal: SIGKILL, timeoutSeconds: 1}\n";

/// Archives as skopeo writes them (directory entries; gzip, zstd and uncompressed layers; OCI
/// and Docker media types; several images in one layout, picked by name) import and run; an
/// archive that is a symlink out of the image directories, or a device, is refused with the
/// path and the directories named; every snapshot is labelled as verified.
#[test]
fn archives_written_by_skopeo_import_and_run_and_paths_outside_the_image_dirs_are_refused() {
    let env = setup();
    let root = &env.root;
    let src = format!("oci-archive:{}", env.image.display());
    let gzip_tar = root.join("skopeo-gzip.tar");
    skopeo(&["copy", &src, &format!("oci-archive:{}", gzip_tar.display())]);
    let docker_tar = root.join("skopeo-docker.tar");
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        &src,
        &format!("oci-archive:{}", docker_tar.display()),
    ]);
    // two images in one layout, one of them with zstd layers, tarred by GNU tar (`./` names)
    let layout = root.join("layout");
    skopeo(&[
        "copy",
        "--dest-compress-format",
        "zstd",
        "--dest-compress",
        &src,
        &format!("oci:{}:zstd", layout.display()),
    ]);
    skopeo(&[
        "copy",
        "--dest-oci-accept-uncompressed-layers",
        &src,
        &format!("oci:{}:plain", layout.display()),
    ]);
    let multi = root.join("multi.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&multi)
        .arg(".")
        .output()
        .expect("tar");
    assert!(tar.status.success());
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&multi)
        .output()
        .expect("tar -t");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("./blobs/sha256/\n"), "{listing}");
    let blobs = std::fs::read_dir(layout.join("blobs/sha256")).expect("blobs");
    let zstd_layer = blobs
        .flatten()
        .any(|b| std::fs::read(b.path()).is_ok_and(|d| d.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])));
    assert!(zstd_layer, "skopeo wrote a zstd layer");
    std::os::unix::fs::symlink("/etc/shadow", root.join("shadow.tar")).expect("symlink");

    let ndir = root.join("nodelet");
    let _bridge = Bridge("cat-img0");
    node_with_ports(&env.server, "node-img0", 8200);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-img0",
        "cat-img0",
        "10.231.20.0/24",
    );
    let server = &env.server;
    let startup = "echo checked; exec sleep 100000";
    let images = [
        ("sk-gzip", format!("oci-archive:{}", gzip_tar.display())),
        ("sk-docker", format!("oci-archive:{}", docker_tar.display())),
        ("sk-zstd", format!("oci-archive:{}:zstd", multi.display())),
        ("sk-plain", format!("oci-archive:{}:plain", multi.display())),
    ];
    let refused = [
        (
            "ambiguous",
            format!("oci-archive:{}", multi.display()),
            "name one",
        ),
        (
            "shadow",
            format!("oci-archive:{}", root.join("shadow.tar").display()),
            "/etc/shadow",
        ),
        ("stdin", "oci-archive:/dev/stdin".to_owned(), "/dev/stdin"),
    ];
    for (name, image, _) in &refused {
        apply_gs(server, name, image, startup, READY);
    }
    // one at a time: the nodelet prepares a container's snapshot outside any lease, and
    // another import finishing meanwhile lets containerd collect it
    for (name, image) in &images {
        apply_gs(server, name, image, startup, READY);
        let obj = wait_phase(server, name, "Running", &ndir);
        assert!(console_log(&ndir, &obj).contains("checked"), "{name}");
    }
    for (name, _, says) in &refused {
        let obj = wait_phase(server, name, "Error", &ndir);
        let (reason, message) = failure(&obj);
        assert_eq!(reason, "ImagePullFailed", "{name}: {message}");
        assert!(message.contains(says), "{name}: {message}");
        if *name != "ambiguous" {
            assert!(
                message.contains("image directories") || message.contains("regular file"),
                "{name}: {message}"
            );
            assert!(
                message.contains(&root.display().to_string()),
                "{name}: the allowed directories are named: {message}"
            );
        }
    }
    let snaps = committed_snapshots(&env.ctd);
    assert!(!snaps.is_empty());
    for (key, labels) in &snaps {
        assert!(
            labels.contains_key("catalyst.dev/verified"),
            "{key} is committed without verification: {labels:?}"
        );
    }
}

fn busybox_layer() -> Vec<u8> {
    pack::layer(&pack::busybox_entries().expect("busybox")).expect("layer")
}

fn file_layer(name: &str, content: &str) -> Vec<u8> {
    pack::layer(&[Entry::File(name.into(), content.as_bytes().to_vec(), 0o644)]).expect("layer")
}

/// A poisoned snapshot made by hand under the base layer's chain ID (as an older nodelet
/// could have left one), then an image whose second layer adds `/pwned` while its
/// configuration claims the diff ID of another image's second layer: the pull fails with
/// "wrong diff id", nothing is committed under the victim's chain ID, and the victim pulled
/// afterwards runs on clean, verified snapshots.
#[test]
fn a_forged_diff_id_cannot_plant_files_in_another_images_snapshot() {
    let env = setup();
    let root = &env.root;
    let registry = catalyst_e2e::registry::Registry::start(&root.join("registry"));
    let base = busybox_layer();
    let legit = file_layer("legit", "legit-content\n");
    let pwned = file_layer("pwned", "pwned-content\n");
    let ids = [pack::digest(&base), pack::digest(&legit)];
    let victim = ImageBlobs::new(pack::config(&ids, &["sh"]), vec![base.clone(), legit]);
    let forged = ImageBlobs::new(pack::config(&ids, &["sh"]), vec![base, pwned]);
    for (blobs, repo) in [(&victim, "games/victim"), (&forged, "games/forged")] {
        let archive = root.join(format!("{}.tar", repo.replace('/', "-")));
        blobs.write_archive(&archive).expect("archive");
        registry.push(&archive, repo, "1");
    }
    let chain = catalyst_nodelet::image::chain_ids(&ids);

    // the poisoned base snapshot, committed without the verification label
    let ctr_ok = |args: &[&str]| {
        let out = env.ctd.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ctr_ok(&["snapshots", "prepare", "plant"]);
    let mounts = ctr_ok(&["snapshots", "mounts", "/unused", "plant"]);
    let dir = mounts
        .split_whitespace()
        .skip_while(|w| *w != "bind")
        .nth(1)
        .expect("a bind mount of the snapshot's directory")
        .to_owned();
    std::fs::write(Path::new(&dir).join("pwned-base"), "planted\n").expect("plant");
    ctr_ok(&["snapshots", "commit", &chain[0], "plant"]);

    let auth = root.join("auth.json");
    registry.auth_file(&auth);
    let auth_arg = auth.display().to_string();
    let ndir = root.join("nodelet");
    let _bridge = Bridge("cat-img1");
    node_with_ports(&env.server, "node-img1", 8300);
    let _nodelet = Nodelet::start_with(
        &env.server,
        &env.ctd,
        &ndir,
        "node-img1",
        "cat-img1",
        "10.231.21.0/24",
        &["--registry-auth", &auth_arg],
    );
    let server = &env.server;
    let startup = "ls -a /; cat /legit; echo checked; exec sleep 100000";
    apply_gs(
        server,
        "forged",
        &format!("{}/games/forged:1", registry.host),
        startup,
        READY,
    );
    let obj = wait_phase(server, "forged", "Error", &ndir);
    let (reason, message) = failure(&obj);
    assert_eq!(reason, "ImagePullFailed", "{message}");
    assert!(message.contains("wrong diff id"), "{message}");
    let keys = snapshot_keys(&env.ctd);
    assert!(
        !keys.contains(&chain[1]),
        "nothing committed under the victim's chain ID: {keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.starts_with("extract-")),
        "no extraction left behind: {keys:?}"
    );

    apply_gs(
        server,
        "victim",
        &format!("{}/games/victim:1", registry.host),
        startup,
        READY,
    );
    let obj = wait_phase(server, "victim", "Running", &ndir);
    let log = console_log(&ndir, &obj);
    assert!(log.contains("legit-content"), "{log}");
    assert!(!log.contains("pwned"), "the victim's rootfs: {log}");
    let snaps: HashMap<String, HashMap<String, String>> =
        committed_snapshots(&env.ctd).into_iter().collect();
    for (i, c) in chain.iter().enumerate() {
        assert_eq!(
            snaps
                .get(c)
                .and_then(|l| l.get("catalyst.dev/verified"))
                .map(String::as_str),
            Some(ids[i].as_str()),
            "{c}: {snaps:?}"
        );
    }
}

/// An HTTP/1.1 server on loopback of the test's own (one thread per connection, each closed
/// after its answer); every request is recorded. Stopped on drop.
struct Http {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn answer(status: u16, headers: &[(&str, String)], body: &[u8]) -> Answer {
    Answer {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        body: body.to_vec(),
    }
}

type Handler = Arc<dyn Fn(&str, &HashMap<String, String>) -> Answer + Send + Sync>;

impl Http {
    fn start(handler: Handler) -> Http {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, s2) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (r3, h) = (r2.clone(), handler.clone());
                std::thread::spawn(move || serve(conn, &r3, &h));
            }
        });
        Http {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

fn serve(conn: TcpStream, requests: &Mutex<Vec<String>>, handler: &Handler) {
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        requests
            .lock()
            .expect("requests")
            .push("<no request>".into());
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    requests.lock().expect("requests").push(format!(
        "{} auth={}",
        line.trim(),
        headers.get("authorization").map_or("-", String::as_str)
    ));
    let a = handler(&path, &headers);
    let mut out = conn;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        a.status,
        a.body.len()
    );
    for (k, v) in &a.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&a.body);
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A registry on loopback whose redirects (of a manifest, of a blob, to `localhost` by name)
/// and Bearer realm point at a canary listening on another loopback port: those pulls fail and
/// the canary sees no connection at all; the same registry's own token endpoint and its blob
/// redirects to itself work, and the image runs.
#[test]
fn redirects_and_token_realms_to_other_loopback_services_are_never_followed() {
    let env = setup();
    let canary = Http::start(Arc::new(|_, _| answer(200, &[], b"canary")));
    let cport = canary.addr.port();
    let image = ImageBlobs::new(
        pack::config(&[pack::digest(&busybox_layer())], &["sh"]),
        vec![busybox_layer()],
    );
    let manifest_type = (
        "Content-Type",
        "application/vnd.oci.image.manifest.v1+json".to_owned(),
    );
    // a manifest of 5 MiB: over the limit of documents, whatever it says
    let mut huge = b"{\"schemaVersion\": 2, \"x\": \"".to_vec();
    huge.resize(5 << 20, b'x');
    huge.extend_from_slice(b"\"}");
    let registry = Http::start(Arc::new(move |path, headers| {
        let host = headers.get("host").cloned().unwrap_or_default();
        let bearer = |realm: String| {
            answer(
                401,
                &[(
                    "WWW-Authenticate",
                    format!("Bearer realm=\"{realm}\",service=\"fake\""),
                )],
                b"",
            )
        };
        let (repo, rest) = path
            .strip_prefix("/v2/")
            .and_then(|p| p.split_once('/'))
            .unwrap_or(("", path));
        if path.starts_with("/token") {
            return answer(200, &[], br#"{"token":"tok-123"}"#);
        }
        if let Some(d) = path.strip_prefix("/cdn/") {
            return match image.blob(d) {
                Some(b) => answer(200, &[], b),
                None => answer(404, &[], b""),
            };
        }
        match (repo, rest) {
            ("redirect", _) => answer(
                307,
                &[("Location", format!("http://127.0.0.1:{cport}{path}"))],
                b"",
            ),
            ("byname", _) => answer(
                307,
                &[("Location", format!("http://localhost:{cport}{path}"))],
                b"",
            ),
            ("realm", _) => bearer(format!("http://127.0.0.1:{cport}/token")),
            ("huge", _) => answer(200, std::slice::from_ref(&manifest_type), &huge),
            ("tampered", "manifests/1") => {
                answer(200, std::slice::from_ref(&manifest_type), &image.manifest)
            }
            ("tampered", r) => {
                let d = r.trim_start_matches("blobs/");
                let mut b = image.blob(d).map(<[u8]>::to_vec).unwrap_or_default();
                if d != pack::digest(&image.config) {
                    // a layer of the announced size whose bytes are not the digest's
                    let last = b.len() - 1;
                    b[last] ^= 0xff;
                }
                answer(200, &[], &b)
            }
            ("blob", "manifests/1") => {
                answer(200, std::slice::from_ref(&manifest_type), &image.manifest)
            }
            ("blob", r) => answer(
                302,
                &[(
                    "Location",
                    format!(
                        "http://127.0.0.1:{cport}/cdn/{}",
                        r.trim_start_matches("blobs/")
                    ),
                )],
                b"",
            ),
            ("good", r) => {
                if headers.get("authorization").map(String::as_str) != Some("Bearer tok-123") {
                    return bearer(format!("http://{host}/token"));
                }
                match r.strip_prefix("blobs/") {
                    None if r == "manifests/1" => {
                        answer(200, std::slice::from_ref(&manifest_type), &image.manifest)
                    }
                    None => answer(404, &[], b""),
                    // a blob redirect to a path of the registry itself (relative Location)
                    Some(d) => answer(307, &[("Location", format!("/cdn/{d}"))], b""),
                }
            }
            _ => answer(404, &[], b""),
        }
    }));
    let host = format!("127.0.0.1:{}", registry.addr.port());
    let ndir = env.root.join("nodelet");
    let _bridge = Bridge("cat-img2");
    node_with_ports(&env.server, "node-img2", 8400);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-img2",
        "cat-img2",
        "10.231.22.0/24",
    );
    let server = &env.server;
    let startup = "echo checked; exec sleep 100000";
    let refused = [
        ("redirect", "refused to contact"),
        ("byname", "refused to contact"),
        ("realm", "refused to contact"),
        ("blob", "refused to contact"),
        ("huge", "larger than 4194304 bytes"),
        ("tampered", "unexpected commit digest"),
    ];
    for (name, _) in refused {
        apply_gs(server, name, &format!("{host}/{name}:1"), startup, READY);
    }
    for (name, says) in refused {
        let obj = wait_phase(server, name, "Error", &ndir);
        let (reason, message) = failure(&obj);
        assert_eq!(reason, "ImagePullFailed", "{name}: {message}");
        assert!(message.contains(says), "{name}: {message}");
    }
    // after the failures: one that fetched something (tampered) had its lease deleted, and
    // the nodelet prepares a container's snapshot outside any lease
    apply_gs(server, "good", &format!("{host}/good:1"), startup, READY);
    let obj = wait_phase(server, "good", "Running", &ndir);
    assert!(console_log(&ndir, &obj).contains("checked"));
    let seen = registry.requests();
    assert!(
        seen.iter().any(|r| r.starts_with("GET /token")),
        "the registry's own token endpoint was asked: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET /cdn/") && r.ends_with("auth=Bearer tok-123")),
        "a redirect to the registry itself keeps the token: {seen:?}"
    );
    assert!(
        canary.requests().is_empty(),
        "the canary was contacted: {:?}",
        canary.requests()
    );
}
