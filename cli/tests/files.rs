//! The file API end to end: real `catalyst server`, a nodelet on real containerd, a busybox
//! "game" that plants links to the host inside its own data directory, and requests through
//! the API server (HTTP) and `catalystctl files`. Every escape class is tried through the API;
//! what the game sees of the files is checked from inside the container.

mod support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Digest;
use support::*;

const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/fs";

struct Http<'a> {
    client: Client,
    server: &'a catalyst_e2e::Server,
    token: String,
}

impl Http<'_> {
    fn req(&self, method: Method, sub: &str, query: &[(&str, &str)]) -> RequestBuilder {
        self.client
            .request(method, format!("{}{GS}/{sub}", self.server.url))
            .query(query)
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120))
    }

    fn status(
        &self,
        method: Method,
        sub: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.req(method, sub, query);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().expect("the API answers");
        let code = resp.status();
        (code, resp.json().unwrap_or(Value::Null))
    }

    fn get_bytes(
        &self,
        path: &str,
        range: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let mut r = self.req(Method::GET, "filecontents", &[("path", path)]);
        if let Some(range) = range {
            r = r.header("Range", range);
        }
        let mut resp = r.send().expect("the API answers");
        let mut body = Vec::new();
        resp.read_to_end(&mut body).expect("body");
        (resp.status(), resp.headers().clone(), body)
    }
}

fn sha(b: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(b))
}

/// Every escape class through the HTTP file API, with links planted by the game itself inside
/// the container; streamed upload and download of 64 MiB with ranges; what the game sees of
/// the uploaded files (owner, content); `catalystctl files` round trips and refusals; a
/// subuser who may list but not read.
#[test]
fn the_file_api_stays_inside_the_data_directory() {
    let env = setup();
    let ndir = env.root.join("nodelet-files");
    node_with_ports(&env.server, "node-files", 8600);
    let _nodelet = Nodelet::start(
        &env.server,
        &env.ctd,
        &ndir,
        "node-files",
        "cat-files0",
        "10.231.30.0/24",
    );
    let server = &env.server;
    // the game plants links to the host's /etc and above its own directory, then serves its
    // console: each line is run by the shell (a test-only "game")
    let game = manifest(
        "fs",
        &env.image,
        "cd /home/container; mkdir -p world; echo level > world/level.dat; ln -s /etc etc-link; ln -s /etc/passwd passwd-link; ln -s ../../../../../.. up; ln -s world/level.dat inner-link; echo ready; while read line; do sh -c \"$line\" 2>&1; echo \"done: $line\"; done",
        "  ready: {logPattern: '^ready$'}\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n  resources: {memory: 64Mi, pids: 64}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&game)));
    wait_phase(server, "fs", "Running", &ndir);
    let http = Http {
        client: server.http_client(),
        server,
        token: server.token.clone(),
    };
    let etc_mode = std::fs::metadata("/etc")
        .expect("/etc")
        .permissions()
        .mode();

    // a listing, with the links described and not followed
    let (code, listing) = http.status(Method::GET, "files", &[("path", "/")], None);
    assert_eq!(code, StatusCode::OK, "{listing}");
    let item = |name: &str| {
        listing["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {listing}"))
    };
    assert_eq!(item("world")["kind"], "directory");
    assert_eq!(item("etc-link")["kind"], "symlink");
    assert_eq!(item("etc-link")["linkTarget"], "/etc");
    // directories first
    assert_eq!(listing["items"][0]["name"], "world", "{listing}");

    // reads: inside yes; through links to the host or above, never
    let (code, _, body) = http.get_bytes("/world/level.dat", None);
    assert_eq!((code, body.as_slice()), (StatusCode::OK, &b"level\n"[..]));
    let (code, _, body) = http.get_bytes("/inner-link", None);
    assert_eq!(
        (code, body.as_slice()),
        (StatusCode::OK, &b"level\n"[..]),
        "a link inside is followed"
    );
    for path in [
        "/etc-link/passwd",
        "/passwd-link",
        "/up/etc/passwd",
        "/../../etc/passwd",
        "world/../../x",
    ] {
        let (code, _, body) = http.get_bytes(path, None);
        assert_eq!(
            code,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
    }
    let (code, _, _) = http.get_bytes("/etc/passwd", None);
    assert_eq!(
        code,
        StatusCode::NOT_FOUND,
        "an absolute path is inside the data directory"
    );
    let (code, v) = http.status(Method::GET, "files", &[("path", "/etc-link")], None);
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "listing through a link to /etc: {v}"
    );

    // writes, chmod, renames, copies and deletes through them: refused, the host untouched
    let put = |path: &str, body: Vec<u8>| {
        let resp = http
            .req(Method::PUT, "files", &[("path", path)])
            .body(body)
            .send()
            .expect("put");
        let code = resp.status();
        (code, resp.json::<Value>().unwrap_or(Value::Null))
    };
    for path in ["/etc-link/catalyst-evil", "/up/tmp/catalyst-evil"] {
        let (code, v) = put(path, b"x".to_vec());
        assert_eq!(code, StatusCode::FORBIDDEN, "{path}: {v}");
    }
    assert!(!std::path::Path::new("/etc/catalyst-evil").exists());
    assert!(!std::path::Path::new("/tmp/catalyst-evil").exists());
    let (code, v) = http.status(
        Method::PATCH,
        "files",
        &[("path", "/etc-link")],
        Some(json!({"mode": "777"})),
    );
    assert_eq!(code, StatusCode::FORBIDDEN, "chmod of a link: {v}");
    let (code, v) = http.status(
        Method::PATCH,
        "files",
        &[("path", "/passwd-link")],
        Some(json!({"mode": "666"})),
    );
    assert_eq!(code, StatusCode::FORBIDDEN, "chmod of a link: {v}");
    assert_eq!(
        std::fs::metadata("/etc")
            .expect("/etc")
            .permissions()
            .mode(),
        etc_mode
    );
    let (code, v) = http.status(
        Method::PATCH,
        "files",
        &[("path", "/world")],
        Some(json!({"to": "/etc-link/world"})),
    );
    assert_eq!(code, StatusCode::FORBIDDEN, "rename into a link: {v}");
    let (code, v) = http.status(
        Method::POST,
        "files",
        &[
            ("path", "/etc-link/passwd"),
            ("op", "copy"),
            ("to", "/stolen"),
        ],
        None,
    );
    assert_eq!(code, StatusCode::FORBIDDEN, "copy out through a link: {v}");
    let (code, v) = http.status(
        Method::DELETE,
        "files",
        &[("path", "/up/tmp"), ("recursive", "true")],
        None,
    );
    assert_eq!(code, StatusCode::FORBIDDEN, "delete through a link: {v}");
    let (code, v) = http.status(
        Method::DELETE,
        "files",
        &[("path", "/"), ("recursive", "true")],
        None,
    );
    assert!(code.is_client_error(), "the root itself cannot go: {v}");
    // renaming over a link replaces the link, never its target
    let (code, v) = put("/plain.txt", b"plain".to_vec());
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let (code, v) = http.status(
        Method::PATCH,
        "files",
        &[("path", "/plain.txt")],
        Some(json!({"to": "/passwd-link", "replace": true})),
    );
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["kind"], "file", "{v}");
    assert!(std::fs::read_to_string("/etc/passwd")
        .expect("passwd")
        .contains("root:"));
    // deleting a link to the host removes the link only
    let (code, v) = http.status(
        Method::DELETE,
        "files",
        &[("path", "/etc-link"), ("recursive", "true")],
        None,
    );
    assert_eq!(code, StatusCode::OK, "{v}");
    assert!(std::path::Path::new("/etc/passwd").exists());
    // setuid and setgid bits are never set
    let (code, v) = http.status(
        Method::PATCH,
        "files",
        &[("path", "/plain.txt")],
        Some(json!({"mode": "6755"})),
    );
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}"); // it was renamed away above
    let (code, v) = http.status(
        Method::PATCH,
        "files",
        &[("path", "/passwd-link")],
        Some(json!({"mode": "6755"})),
    );
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["mode"], 0o755, "{v}");

    // 64 MiB streamed up and down, whole and by ranges
    let big: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (code, v) = put("/world/big.bin", big.clone());
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(v["size"], big.len() as u64, "{v}");
    let (code, headers, body) = http.get_bytes("/world/big.bin", None);
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        headers["content-length"],
        (64u64 << 20).to_string().as_str()
    );
    assert_eq!(sha(&body), sha(&big));
    let (code, headers, body) = http.get_bytes("/world/big.bin", Some("bytes=1000-1999"));
    assert_eq!(code, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        headers["content-range"],
        format!("bytes 1000-1999/{}", big.len()).as_str()
    );
    assert_eq!(body, &big[1000..2000]);
    let (code, _, body) = http.get_bytes("/world/big.bin", Some("bytes=-10"));
    assert_eq!(code, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &big[big.len() - 10..]);
    let (code, _, _) = http.get_bytes("/world/big.bin", Some("bytes=999999999-"));
    assert_eq!(code, StatusCode::RANGE_NOT_SATISFIABLE);

    // the game sees what the API wrote, owned by its own user
    let (code, v) = put("/world/from-api.txt", b"written by the api\n".to_vec());
    assert_eq!(code, StatusCode::CREATED, "{v}");
    ok(ctl(
        server,
        &[
            "command",
            "fs",
            "--",
            "cat world/from-api.txt; ls -ln world/from-api.txt",
        ],
        None,
    ));
    eventually(
        "the game reads the uploaded file",
        Duration::from_secs(15),
        || {
            let logs =
                String::from_utf8_lossy(&ctl(server, &["logs", "fs"], None).stdout).into_owned();
            logs.contains("written by the api")
                && logs.lines().any(|l| {
                    l.contains("from-api.txt") && l.split_whitespace().nth(2) == Some("1000")
                })
        },
    );

    // a directory whose listing is bigger than one tunnel frame: pages are cut short and
    // `next` continues, so every name arrives once
    let long = "n".repeat(180);
    ok(ctl(
        server,
        &[
            "command",
            "fs",
            "--",
            &format!(
                "mkdir many; i=0; while [ $i -lt 4000 ]; do : > many/{long}$i; i=$((i+1)); done"
            ),
        ],
        None,
    ));
    eventually("the game made 4000 files", Duration::from_secs(60), || {
        String::from_utf8_lossy(&ctl(server, &["logs", "fs"], None).stdout)
            .contains("done: mkdir many")
    });
    let mut names = std::collections::BTreeSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("path", "/many"), ("limit", "10000")];
        if let Some(a) = &after {
            query.push(("after", a.as_str()));
        }
        let (code, page) = http.status(Method::GET, "files", &query, None);
        assert_eq!(code, StatusCode::OK, "{page}");
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(!items.is_empty(), "{page}");
        for e in items {
            let name = e["name"].as_str().expect("name").to_owned();
            assert!(names.insert(name.clone()), "{name} listed twice");
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
        assert!(pages < 20, "the listing does not end");
    }
    assert_eq!(names.len(), 4000);
    assert!(
        pages >= 2,
        "4000 long names do not fit one frame, yet came in one page"
    );

    // catalystctl files: mkdir, put, ls, get, cp, mv, chmod, rm; refusals exit 1 with the reason
    let local = env.root.join("local.txt");
    std::fs::write(&local, "from catalystctl\n").expect("local file");
    let local_s = local.display().to_string();
    ok(ctl(server, &["files", "mkdir", "fs", "/a/b/c"], None));
    ok(ctl(
        server,
        &["files", "put", "fs", &local_s, "/a/b/c/x.txt"],
        None,
    ));
    let ls = ok(ctl(server, &["files", "ls", "fs", "/a/b/c"], None));
    assert!(ls.contains("x.txt") && ls.contains("-rw-r--r--"), "{ls}");
    let back = env.root.join("back.txt");
    ok(ctl(
        server,
        &[
            "files",
            "get",
            "fs",
            "/a/b/c/x.txt",
            &back.display().to_string(),
        ],
        None,
    ));
    assert_eq!(
        std::fs::read_to_string(&back).expect("back"),
        "from catalystctl\n"
    );
    ok(ctl(server, &["files", "cp", "fs", "/a", "/a2"], None));
    ok(ctl(
        server,
        &["files", "mv", "fs", "/a2/b/c/x.txt", "/y.txt"],
        None,
    ));
    ok(ctl(
        server,
        &["files", "chmod", "fs", "600", "/y.txt"],
        None,
    ));
    assert_eq!(
        ok(ctl(server, &["files", "cat", "fs", "/y.txt"], None)),
        "from catalystctl\n"
    );
    ok(ctl(server, &["files", "rm", "-r", "fs", "/a2"], None));
    let refused = ctl(server, &["files", "cat", "fs", "/up/etc/passwd"], None);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("outside"), "{err}");
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("root:"));
    let missing = ctl(server, &["files", "rm", "fs", "/no/such"], None);
    assert_eq!(missing.status.code(), Some(1));

    // archives: packed and unpacked by the node; hostile archives made by Python's tarfile and
    // zipfile are refused whole, and nothing lands outside the data directory
    ok(ctl(
        server,
        &["files", "archive", "fs", "/w.tar.gz", "/world"],
        None,
    ));
    ok(ctl(
        server,
        &["files", "extract", "fs", "/w.tar.gz", "/restored"],
        None,
    ));
    let (code, _, body) = http.get_bytes("/restored/world/level.dat", None);
    assert_eq!((code, body.as_slice()), (StatusCode::OK, &b"level\n"[..]));
    let craft = env.root.join("craft.py");
    std::fs::write(
        &craft,
        r#"import io, sys, tarfile, zipfile
out = sys.argv[1]
def tar(name, members):
    with tarfile.open(f"{out}/{name}", "w:gz") as t:
        for m, kind, data in members:
            i = tarfile.TarInfo(m)
            if kind == "link":
                i.type, i.linkname = tarfile.SYMTYPE, data
                t.addfile(i)
            elif kind == "hard":
                i.type, i.linkname = tarfile.LNKTYPE, data
                t.addfile(i)
            else:
                i.size = len(data)
                t.addfile(i, io.BytesIO(data))
tar("slip.tar.gz", [("ok.txt", "file", b"ok"), ("../../catalyst-slip.txt", "file", b"x")])
tar("abs.tar.gz", [("/tmp/catalyst-abs.txt", "file", b"x")])
tar("hard.tar.gz", [("passwd", "hard", "/etc/passwd")])
tar("link.tar.gz", [("link", "link", "/etc"), ("link/catalyst-evil", "file", b"x")])
with zipfile.ZipFile(f"{out}/slip.zip", "w") as z:
    z.writestr("../../catalyst-slip.txt", "x")
"#,
    )
    .expect("craft script");
    let crafted = env.root.join("crafted");
    std::fs::create_dir_all(&crafted).expect("dir");
    let status = std::process::Command::new("python3")
        .arg(&craft)
        .arg(&crafted)
        .status()
        .expect("python3");
    assert!(status.success());
    for name in [
        "slip.tar.gz",
        "abs.tar.gz",
        "hard.tar.gz",
        "link.tar.gz",
        "slip.zip",
    ] {
        let bytes = std::fs::read(crafted.join(name)).expect("crafted archive");
        let (code, v) = put(&format!("/evil/{name}"), bytes);
        assert_eq!(code, StatusCode::CREATED, "{v}");
        let (code, v) = http.status(
            Method::POST,
            "files",
            &[
                ("path", &format!("/evil/{name}")),
                ("op", "extract"),
                ("to", "/evil/out"),
            ],
            None,
        );
        assert_eq!(code, StatusCode::FORBIDDEN, "{name}: {v}");
    }
    let (_, v) = http.status(Method::GET, "files", &[("path", "/evil/out")], None);
    assert!(
        v["items"].as_array().is_none_or(|i| i.is_empty()),
        "nothing extracted: {v}"
    );
    assert!(!std::path::Path::new("/tmp/catalyst-abs.txt").exists());
    assert!(!std::path::Path::new("/etc/catalyst-evil").exists());
    let data_dirs = ndir.join("servers");
    for d in std::fs::read_dir(&data_dirs).expect("servers").flatten() {
        assert!(!d.path().join("../catalyst-slip.txt").exists());
    }
    assert!(!ndir.join("catalyst-slip.txt").exists());

    // pulls from URLs never reach loopback, link-local (the metadata service) or private hosts
    for url in [
        "http://127.0.0.1:1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://localhost/",
        "file:///etc/passwd",
    ] {
        let out = ctl(server, &["files", "pull", "fs", url, "/pulled"], None);
        assert_eq!(out.status.code(), Some(1), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refused") || err.contains("scheme"),
            "{url}: {err}"
        );
    }

    // a subuser who may list files but not read them, nor write
    ok(ctl(server, &["create", "user", "lister"], None));
    let binding = "apiVersion: catalyst.dev/v1alpha1\nkind: RoleBinding\nmetadata:\n  name: lister\n  namespace: default\nspec:\n  roleRef: file.read\n  resourceNames: [fs]\n  subjects: [{kind: User, name: lister}]\n";
    ok(ctl(server, &["apply", "-f", "-"], Some(binding)));
    let key: Value = serde_json::from_str(&ok(ctl(
        server,
        &[
            "create",
            "apikey",
            "lister-key",
            "--owner",
            "lister",
            "--role",
            "file.read@default:fs",
            "-o",
            "json",
        ],
        None,
    )))
    .expect("the key as JSON");
    let lister = Http {
        client: server.http_client(),
        server,
        token: key
            .pointer("/status/token")
            .and_then(Value::as_str)
            .expect("token")
            .to_owned(),
    };
    eventually("the lister's key works", Duration::from_secs(10), || {
        lister
            .status(Method::GET, "files", &[("path", "/")], None)
            .0
            == StatusCode::OK
    });
    let (code, _, _) = lister.get_bytes("/world/level.dat", None);
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "file.read lists but does not read"
    );
    let resp = lister
        .req(Method::PUT, "files", &[("path", "/x")])
        .body("x")
        .send()
        .expect("put");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

/// Runs OpenSSH's `sftp` in batch mode as `user.server` with `key`; its output.
fn sftp(
    port: u16,
    key: &std::path::Path,
    login: &str,
    batch: &str,
    extra: &[&str],
) -> std::process::Output {
    let file = key.with_extension(format!("batch-{}", batch.len()));
    std::fs::write(&file, batch).expect("batch file");
    std::process::Command::new("sftp")
        .args(["-q", "-P", &port.to_string(), "-i"])
        .arg(key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .args(extra)
        .arg("-b")
        .arg(&file)
        .arg(format!("{login}@127.0.0.1"))
        .output()
        .expect("sftp")
}

/// SFTP with OpenSSH's client against a real nodelet: a key registered on the User, the
/// session confined to the server's files (links the game planted, `..`, absolute paths), a
/// user without the permission refused, and a transfer cut within seconds when the permission
/// is taken away.
#[test]
fn sftp_sessions_are_confined_to_the_server_and_end_with_the_permission() {
    let env = setup();
    let ndir = env.root.join("nodelet-sftp");
    node_with_ports(&env.server, "node-sftp", 8800);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let listen = format!("127.0.0.1:{port}");
    let _nodelet = Nodelet::start_with(
        &env.server,
        &env.ctd,
        &ndir,
        "node-sftp",
        "cat-sftp0",
        "10.231.32.0/24",
        &["--sftp-listen", &listen],
    );
    let server = &env.server;
    let game = manifest(
        "fs",
        &env.image,
        "cd /home/container; mkdir -p world; echo level > world/level.dat; ln -s /etc etc-link; ln -s ../../../../../.. up; echo ready; exec sleep 36000",
        "  ready: {logPattern: '^ready$'}\n  stop: {signal: SIGKILL, timeoutSeconds: 5}\n",
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&game)));
    wait_phase(server, "fs", "Running", &ndir);

    let key = env.root.join("id_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let users = format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: User\nmetadata:\n  name: sam\nspec:\n  sshKeys: [{:?}]\n---\napiVersion: catalyst.dev/v1alpha1\nkind: User\nmetadata:\n  name: eve\nspec:\n  sshKeys: [{:?}]\n",
        public.trim(),
        public.trim()
    );
    ok(ctl(server, &["apply", "-f", "-"], Some(&users)));
    let bindings = "apiVersion: catalyst.dev/v1alpha1\nkind: RoleBinding\nmetadata:\n  name: sam-sftp\n  namespace: default\nspec:\n  roleRef: file.sftp\n  resourceNames: [fs]\n  subjects: [{kind: User, name: sam}]\n---\napiVersion: catalyst.dev/v1alpha1\nkind: RoleBinding\nmetadata:\n  name: sam-update\n  namespace: default\nspec:\n  roleRef: file.update\n  resourceNames: [fs]\n  subjects: [{kind: User, name: sam}]\n";
    ok(ctl(server, &["apply", "-f", "-"], Some(bindings)));
    // the node publishes its host key's fingerprint
    let node: Value = serde_json::from_str(&ok(ctl(
        server,
        &["get", "node", "node-sftp", "-o", "json"],
        None,
    )))
    .expect("json");
    assert!(
        node.pointer("/status/sftp/hostKeyFingerprint")
            .and_then(Value::as_str)
            .is_some_and(|f| f.starts_with("SHA256:")),
        "{node}"
    );

    // a session that works: put, get, ls; what SFTP wrote, the API reads
    let local = env.root.join("up.txt");
    std::fs::write(&local, "over sftp\n").expect("local");
    let back = env.root.join("level.dat");
    let batch = format!(
        "put {} /sftp-up.txt\nget /world/level.dat {}\nls -l /\n",
        local.display(),
        back.display()
    );
    let mut out = sftp(port, &key, "sam.fs", &batch, &[]);
    for _ in 0..20 {
        if out.status.success() {
            break;
        }
        // the bindings may not have reached the API server's mirrors yet
        std::thread::sleep(Duration::from_millis(250));
        out = sftp(port, &key, "sam.fs", &batch, &[]);
    }
    assert!(
        out.status.success(),
        "sftp: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&back).expect("got"), "level\n");
    assert_eq!(
        ok(ctl(server, &["files", "cat", "fs", "/sftp-up.txt"], None)),
        "over sftp\n"
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("etc-link") && listing.contains("world"),
        "{listing}"
    );

    // a large file both ways: the client pipelines its reads while answers wait for the
    // channel's window (a download over ~16 MiB once hung)
    let big: Vec<u8> = {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        (0..64 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let big_local = env.root.join("big.bin");
    let big_back = env.root.join("big-back.bin");
    std::fs::write(&big_local, &big).expect("big file");
    let batch = format!(
        "put {} /big.bin\nget /big.bin {}\n",
        big_local.display(),
        big_back.display()
    );
    let out = sftp(port, &key, "sam.fs", &batch, &[]);
    assert!(
        out.status.success(),
        "sftp 64 MiB: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sha(&std::fs::read(&big_back).expect("got big")),
        sha(&big),
        "64 MiB round trip"
    );
    ok(ctl(server, &["files", "rm", "fs", "/big.bin"], None));

    // escapes through links the game planted, `..` and absolute paths: nothing from the host
    for (what, batch) in [
        (
            "a link to /etc",
            "get /etc-link/passwd /tmp/catalyst-sftp-passwd\n",
        ),
        (
            "a link above",
            "get /up/etc/passwd /tmp/catalyst-sftp-passwd\n",
        ),
        (
            "dot-dot",
            "get ../../../../etc/passwd /tmp/catalyst-sftp-passwd\n",
        ),
        (
            "an absolute path",
            "get /etc/passwd /tmp/catalyst-sftp-passwd\n",
        ),
        (
            "a write through a link",
            "put /etc/hostname /etc-link/catalyst-sftp-evil\n",
        ),
        ("chmod of a link", "chmod 777 /etc-link\n"),
    ] {
        let out = sftp(port, &key, "sam.fs", batch, &[]);
        assert!(
            !out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(!std::path::Path::new("/tmp/catalyst-sftp-passwd").exists());
    assert!(!std::path::Path::new("/etc/catalyst-sftp-evil").exists());
    assert_eq!(
        std::fs::metadata("/etc")
            .expect("/etc")
            .permissions()
            .mode()
            & 0o777,
        0o755
    );

    // a user with the key but without file.sftp: refused
    let out = sftp(port, &key, "eve.fs", "ls /\n", &[]);
    assert!(!out.status.success(), "eve has no file.sftp");

    // a slow upload, then the permission is taken away: the session ends within seconds
    let big = env.root.join("big.bin");
    std::fs::write(&big, vec![5u8; 32 << 20]).expect("big");
    let batch_file = key.with_extension("slow-batch");
    std::fs::write(&batch_file, format!("put {} /slow.bin\n", big.display())).expect("batch");
    let mut slow = std::process::Command::new("sftp")
        .args(["-q", "-P", &port.to_string(), "-l", "4096", "-i"])
        .arg(&key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-b",
        ])
        .arg(&batch_file)
        .arg("sam.fs@127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sftp");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        slow.try_wait().expect("wait").is_none(),
        "the upload is still running"
    );
    let revoked = std::time::Instant::now();
    ok(ctl(server, &["delete", "rolebinding", "sam-sftp"], None));
    let status = loop {
        if let Some(s) = slow.try_wait().expect("wait") {
            break Some(s);
        }
        if revoked.elapsed() > Duration::from_secs(15) {
            let _ = slow.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = revoked.elapsed();
    let status = status.expect("the session was not closed within 15 s");
    assert!(!status.success(), "the cut transfer fails");
    eprintln!("sftp: the session closed {took:?} after its permission was removed");
    assert!(took < Duration::from_secs(6), "{took:?}");
    let out = sftp(port, &key, "sam.fs", "ls /\n", &[]);
    assert!(!out.status.success(), "no new session without file.sftp");
}
