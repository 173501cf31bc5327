//! Tests of downloads: the address guard on its own (no traffic to any refused address), then
//! whole downloads from tiny HTTP servers in the test on 127.0.0.2 (allowed by the policy) and
//! 127.0.0.1 (not allowed, to see that nothing reaches it).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::files::testutil::{Fixture, UID};

const ALLOWED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A tiny HTTP/1.1 server: answers every request with `respond(path)` and closes; records the
/// paths it was asked for.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(ip: &str, respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else {
                        return;
                    };
                    let seen = seen.clone();
                    let respond = respond.clone();
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                            match conn.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&head);
                        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                        seen.lock().expect("seen").push(path.clone());
                        let answer = respond(&path);
                        // a client that stopped reading makes this fail: fine
                        let _ = conn.write_all(&answer).await;
                        let _ = conn.shutdown().await;
                    });
                }
            })
        };
        Server { addr, seen, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn redirect(location: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn policy() -> PullPolicy {
    PullPolicy {
        allow: vec![ALLOWED],
        ..PullPolicy::default()
    }
}

/// Nothing but what the fixture made, and no temporary upload left.
fn no_file(fx: &Fixture, name: &str) {
    let tree = fx.tree();
    assert!(!tree.iter().any(|p| p == name), "{name} in {tree:?}");
    assert!(
        !tree.iter().any(|p| p.contains(crate::files::UPLOAD_PREFIX)),
        "{tree:?}"
    );
}

// ---- the guard, alone -------------------------------------------------------------------------

#[tokio::test]
async fn non_public_addresses_and_other_schemes_are_refused() {
    for (url, why) in [
        ("http://127.0.0.1/", "127.0.0.1 is loopback"),
        ("http://127.0.0.1:25565/x", "127.0.0.1 is loopback"),
        ("https://localhost/", "localhost resolves to"),
        ("http://[::1]:8080/", "::1 is loopback"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is link-local",
        ),
        ("http://10.0.0.1/", "10.0.0.1 is private"),
        ("http://192.168.1.1/", "192.168.1.1 is private"),
        ("http://172.16.0.1/", "172.16.0.1 is private"),
        ("http://100.64.0.1/", "shared CGNAT"),
        ("http://[fd00::1]/", "unique local"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
        ("http://[::ffff:169.254.169.254]/", "IPv4-mapped"),
        ("http://0.0.0.0/", "unspecified"),
        // other spellings of loopback, normalised by the URL parser
        ("http://2130706433/", "127.0.0.1 is loopback"),
        ("http://0x7f.1/", "127.0.0.1 is loopback"),
        ("ftp://example.com/file", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.1/", "only http and https"),
    ] {
        let parsed = Url::parse(url).expect(url);
        let e = admit(&parsed, &[], "/f").await.expect_err(url);
        assert!(matches!(e, FsError::Refused { .. }), "{url}: {e:?}");
        assert_eq!(e.status(), 403);
        assert!(e.to_string().contains(why), "{url}: {e}");
    }
    // localhost names both of its addresses' problem
    let e = admit(&Url::parse("http://localhost/").expect("url"), &[], "/f")
        .await
        .expect_err("localhost");
    assert!(e.to_string().contains("loopback"), "{e}");
    // an allowed address passes, exactly that one
    let url = Url::parse("http://127.0.0.2:8080/").expect("url");
    assert_eq!(
        admit(&url, &[ALLOWED], "/f").await.expect("allowed"),
        vec![SocketAddr::new(ALLOWED, 8080)]
    );
    let url = Url::parse("http://127.0.0.3/").expect("url");
    assert!(admit(&url, &[ALLOWED], "/f").await.is_err());
    // public literals pass (nothing is sent here)
    let url = Url::parse("https://1.1.1.1/").expect("url");
    assert_eq!(
        admit(&url, &[], "/f").await.expect("public"),
        vec!["1.1.1.1:443".parse().expect("addr")]
    );
}

#[tokio::test]
async fn a_refused_pull_writes_nothing() {
    let fx = Fixture::new();
    let root = Arc::new(Root::open(&fx.data, UID, crate::files::testutil::GID).expect("root"));
    for url in [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://[::1]/",
        "http://169.254.169.254/",
        "file:///etc/passwd",
    ] {
        let e = pull(root.clone(), url, "f", &PullPolicy::default())
            .await
            .expect_err(url);
        assert_eq!(e.status(), 403, "{url}: {e}");
        no_file(&fx, "f");
    }
    let e = pull(root.clone(), "not a url", "f", &PullPolicy::default())
        .await
        .expect_err("url");
    assert_eq!(e.status(), 400);
    let e = pull(root, "http://127.0.0.1/", "../f", &PullPolicy::default())
        .await
        .expect_err("dest");
    assert_eq!(e.status(), 403);
    fx.outside_untouched();
}

// ---- with servers -----------------------------------------------------------------------------

#[tokio::test]
async fn a_pull_writes_the_file_following_redirects() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.p("plugins")).expect("dir");
    fx.own();
    let root = Arc::new(Root::open(&fx.data, UID, crate::files::testutil::GID).expect("root"));
    let server = Server::start("127.0.0.2", |path| match path {
        "/start" => redirect("/middle"),
        "/middle" => redirect("/file.jar"),
        "/file.jar" => ok(b"the plugin"),
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
    })
    .await;
    let entry = pull(
        root.clone(),
        &server.url("/start"),
        "plugins/p.jar",
        &policy(),
    )
    .await
    .expect("pull");
    assert_eq!(entry.path, "/plugins/p.jar");
    assert_eq!(entry.size, 10);
    assert_eq!(
        std::fs::read(fx.p("plugins/p.jar")).expect("read"),
        b"the plugin"
    );
    assert_eq!(entry.uid, UID);
    assert_eq!(server.seen(), ["/start", "/middle", "/file.jar"]);

    // too many redirects
    let limited = PullPolicy {
        max_redirects: 1,
        ..policy()
    };
    let e = pull(
        root.clone(),
        &server.url("/start"),
        "plugins/q.jar",
        &limited,
    )
    .await
    .expect_err("redirects");
    assert!(matches!(e, FsError::Remote { .. }), "{e:?}");
    assert_eq!(e.status(), 502);
    no_file(&fx, "plugins/q.jar");

    // an error status
    let e = pull(
        root.clone(),
        &server.url("/missing"),
        "plugins/q.jar",
        &policy(),
    )
    .await
    .expect_err("404");
    assert_eq!(e.status(), 502);
    assert!(e.to_string().contains("404"), "{e}");
    no_file(&fx, "plugins/q.jar");

    // a destination through a link that leads outside
    fx.link("evil", "../outside");
    let e = pull(root, &server.url("/file.jar"), "evil/x", &policy())
        .await
        .expect_err("escape");
    assert!(matches!(e, FsError::Escapes { .. }), "{e:?}");
    fx.outside_untouched();
}

#[tokio::test]
async fn a_redirect_to_a_forbidden_address_is_refused_at_the_hop() {
    let fx = Fixture::new();
    let root = Arc::new(Root::open(&fx.data, UID, crate::files::testutil::GID).expect("root"));
    // the node's own service on loopback, which must never be reached
    let inner = Server::start("127.0.0.1", |_| ok(b"internal secret")).await;
    let inner_url = inner.url("/");
    let outer = Server::start("127.0.0.2", move |path| match path {
        "/to-loopback" => redirect(&inner_url),
        "/to-metadata" => redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-localhost" => redirect("http://localhost/"),
        "/to-file" => redirect("file:///etc/passwd"),
        _ => ok(b"?"),
    })
    .await;
    for (path, why) in [
        ("/to-loopback", "127.0.0.1 is loopback"),
        ("/to-metadata", "169.254.169.254 is link-local"),
        ("/to-localhost", "localhost resolves to"),
        ("/to-file", "only http and https"),
    ] {
        let e = pull(root.clone(), &outer.url(path), "f", &policy())
            .await
            .expect_err(path);
        assert!(matches!(e, FsError::Refused { .. }), "{path}: {e:?}");
        assert!(e.to_string().contains(why), "{path}: {e}");
        no_file(&fx, "f");
    }
    assert_eq!(
        outer.seen(),
        ["/to-loopback", "/to-metadata", "/to-localhost", "/to-file"]
    );
    assert!(
        inner.seen().is_empty(),
        "the loopback server saw no request"
    );
    fx.outside_untouched();
}

#[tokio::test]
async fn bodies_over_the_limit_leave_no_file() {
    let fx = Fixture::new();
    let root = Arc::new(Root::open(&fx.data, UID, crate::files::testutil::GID).expect("root"));
    let big = vec![b'x'; 300_000];
    let server = Server::start("127.0.0.2", move |path| match path {
        // declared honestly: refused before a byte is written
        "/declared" => ok(&big),
        // no Content-Length, the body ends when the connection closes: counted
        "/undeclared" => {
            let mut r = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            r.extend_from_slice(&big);
            r
        }
        // chunked: counted
        "/chunked" => {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in big.chunks(10_000) {
                r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                r.extend_from_slice(c);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        }
        // a Content-Length that lies (shorter than the body)
        "/lying" => {
            let mut r =
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n".to_vec();
            r.extend_from_slice(&big);
            r
        }
        _ => ok(b"small"),
    })
    .await;
    let small = PullPolicy {
        max_bytes: 100_000,
        ..policy()
    };
    for path in ["/declared", "/undeclared", "/chunked"] {
        let e = pull(root.clone(), &server.url(path), "big", &small)
            .await
            .expect_err(path);
        assert!(
            matches!(e, FsError::TooLarge { limit: 100_000, .. }),
            "{path}: {e:?}"
        );
        assert_eq!(e.status(), 413);
        no_file(&fx, "big");
    }
    // the lying length: never more than the limit is written (the client reads what the
    // header says and stops)
    let entry = pull(root.clone(), &server.url("/lying"), "lying", &small).await;
    match entry {
        Ok(entry) => {
            assert_eq!(entry.size, 10);
            assert_eq!(std::fs::read(fx.p("lying")).expect("read"), vec![b'x'; 10]);
        }
        Err(e) => {
            assert!(
                matches!(e, FsError::TooLarge { .. } | FsError::Remote { .. }),
                "{e:?}"
            );
            no_file(&fx, "lying");
        }
    }
    // the same bodies under a larger limit are fine
    let large = PullPolicy {
        max_bytes: 300_000,
        ..policy()
    };
    for path in ["/declared", "/undeclared", "/chunked"] {
        let entry = pull(root.clone(), &server.url(path), "big", &large)
            .await
            .expect(path);
        assert_eq!(entry.size, 300_000, "{path}");
    }
    fx.outside_untouched();
}

#[tokio::test]
async fn a_pull_past_its_time_is_abandoned() {
    let fx = Fixture::new();
    let root = Arc::new(Root::open(&fx.data, UID, crate::files::testutil::GID).expect("root"));
    // accepts, answers the head, then never sends the body
    let listener = TcpListener::bind("127.0.0.2:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf).await;
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let quick = PullPolicy {
        timeout: Duration::from_millis(500),
        ..policy()
    };
    let e = pull(root, &format!("http://{addr}/slow"), "slow", &quick)
        .await
        .expect_err("timeout");
    assert!(matches!(e, FsError::Remote { .. }), "{e:?}");
    assert!(e.to_string().contains("timed out"), "{e}");
    task.abort();
    // the writer removes its temporary file once it sees the download gone
    for _ in 0..50 {
        if !fx
            .tree()
            .iter()
            .any(|p| p.contains(crate::files::UPLOAD_PREFIX))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    no_file(&fx, "slow");
}
