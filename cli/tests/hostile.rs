//! Hostile clients against a real `catalyst server` over real sockets: an alias bomb, bodies
//! that are not objects, an endless watch timeout, names that would escape their store prefix,
//! oversized bodies and pages, too many watches. Each is answered with a Status, `/healthz`
//! answers after each, and the server's memory stays flat.

use std::time::{Duration, Instant};

use catalyst_e2e::Server;
use reqwest::blocking::{Client, Response};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The one place that knows how to reach the server: HTTPS, trusting only its CA.
fn client(server: &Server) -> Client {
    let mut b = Client::builder().timeout(Duration::from_secs(30));
    if let Some(pem) = &server.ca_pem {
        b = b
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("CA PEM"));
    }
    b.build().expect("an HTTP client")
}

const GS: &str = "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers";

struct Target {
    server: Server,
    client: Client,
    _dir: tempfile::TempDir,
}

impl Target {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(env!("CARGO_BIN_EXE_catalyst"), dir.path(), &[]);
        let target = Target {
            client: client(&server),
            server,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !target.healthy() {
            assert!(Instant::now() < deadline, "the server never became healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        target
    }

    fn request(&self, method: Method, path: &str, ct: &str, body: Vec<u8>) -> Response {
        self.client
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(&self.server.token)
            .header(reqwest::header::CONTENT_TYPE, ct)
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Sends a request and expects a Status with `code`.
    fn expect_status(&self, method: Method, path: &str, ct: &str, body: Vec<u8>, code: u16) {
        let resp = self.request(method.clone(), path, ct, body);
        let got = resp.status().as_u16();
        let status: Value = resp.json().unwrap_or(Value::Null);
        assert_eq!(got, code, "{method} {path}: {status}");
        assert_eq!(status["kind"], "Status", "{method} {path}: {status}");
        assert_eq!(status["code"], code, "{method} {path}: {status}");
        assert!(
            self.healthy(),
            "{method} {path}: /healthz stopped answering"
        );
    }

    fn healthy(&self) -> bool {
        self.client
            .get(format!("{}/healthz", self.server.url))
            .timeout(Duration::from_secs(5))
            .send()
            .is_ok_and(|r| r.status() == StatusCode::OK)
    }

    fn rss(&self) -> f64 {
        catalyst_e2e::rss_mib(self.server.pid())
    }
}

/// About 100 KB of YAML expanding to 10^8 scalars.
fn alias_bomb() -> Vec<u8> {
    format!(
        "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata: {{name: bomb, namespace: default}}\nspec:\n  a: &a [{}x]\n  b: [{}*a]\n",
        "x,".repeat(10_000),
        "*a,".repeat(10_000)
    )
    .into_bytes()
}

#[test]
fn hostile_requests_get_statuses_and_the_server_stays_up_and_small() {
    let t = Target::start();

    // 1. an alias bomb: refused within a second, memory flat
    let bomb = alias_bomb();
    assert!(bomb.len() <= 100_000);
    for (method, path, ct) in [
        (Method::POST, GS.to_owned(), "application/yaml"),
        (
            Method::PATCH,
            format!("{GS}/bomb?fieldManager=t"),
            "application/apply-patch+yaml",
        ),
    ] {
        let started = Instant::now();
        t.expect_status(method, &path, ct, bomb.clone(), 400);
        let took = started.elapsed();
        eprintln!("alias bomb ({} bytes) answered in {took:?}", bomb.len());
        assert!(
            took < Duration::from_secs(1),
            "the alias bomb took {took:?}"
        );
    }
    let rss = t.rss();
    eprintln!("RSS after the alias bombs: {rss:.1} MiB");
    assert!(rss < 300.0, "RSS {rss} MiB");

    // 2. bodies that are not objects
    for body in ["[]", "1", "\"x\"", "null"] {
        t.expect_status(
            Method::PUT,
            &format!("{GS}/a"),
            "application/json",
            body.into(),
            400,
        );
        t.expect_status(Method::POST, GS, "application/json", body.into(), 400);
        t.expect_status(
            Method::PATCH,
            &format!("{GS}/a"),
            "application/merge-patch+json",
            body.into(),
            400,
        );
    }

    // 3. a watch that would never end
    t.expect_status(
        Method::GET,
        &format!("{GS}?watch=true&timeoutSeconds=18446744073709551615"),
        "application/json",
        Vec::new(),
        400,
    );

    // 5. a page bigger than the maximum is clamped, not refused
    let resp = t.request(Method::GET, &format!("{GS}?limit=1000000"), "", Vec::new());
    assert_eq!(resp.status(), StatusCode::OK);

    // 7. /readyz answers a fixed text
    let resp = t.request(Method::GET, "/readyz", "", Vec::new());
    assert_eq!(resp.text().unwrap(), "ok");

    // 8. names and namespaces that are not DNS names never reach the store
    for path in [
        format!("{GS}/default%2Fx"),
        // a bare `..` (even as %2E%2E) the client's URL parser resolves away before sending;
        // the in-process tests send it as is
        format!("{GS}/a%2F.."),
        format!("{GS}/UPPER"),
        format!("{GS}/{}", "x".repeat(64)),
        "/apis/catalyst.dev/v1alpha1/namespaces/a%2Fb/gameservers".to_owned(),
        "/apis/catalyst.dev/v1alpha1/namespaces/Default/gameservers/a".to_owned(),
    ] {
        t.expect_status(Method::GET, &path, "application/json", Vec::new(), 400);
        if !path.ends_with("gameservers") {
            t.expect_status(Method::DELETE, &path, "application/json", Vec::new(), 400);
        }
    }
    // a verb a path does not take is a Status too
    t.expect_status(Method::DELETE, GS, "application/json", Vec::new(), 405);

    // 9. a body over 3 MiB
    // one byte past the limit: a far bigger body is refused as well, but the server stops
    // reading it and the client may see the reset before the answer
    let big = vec![b' '; 3 * 1024 * 1024 + 1];
    t.expect_status(Method::POST, GS, "application/json", big, 413);

    // 6. watches per client are capped at 100; a closed watch frees its slot
    let watch = || t.request(Method::GET, &format!("{GS}?watch=true"), "", Vec::new());
    let open: Vec<Response> = (0..100).map(|_| watch()).collect();
    assert!(open.iter().all(|r| r.status() == StatusCode::OK));
    let refused = watch();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(reqwest::header::RETRY_AFTER));
    drop(refused);
    assert!(t.healthy());
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = watch();
        if resp.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed watches never freed their slots"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let rss = t.rss();
    eprintln!("RSS at the end: {rss:.1} MiB");
    assert!(rss < 300.0, "RSS {rss} MiB");
}
