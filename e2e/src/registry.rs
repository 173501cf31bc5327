//! A Docker registry of the test's own (Debian's `docker-registry`) on loopback, with htpasswd
//! auth, and a small push client for OCI archives.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry; killed on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// User and password it accepts.
    pub credentials: (String, String),
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Registry {
    /// Starts `docker-registry` with storage and an htpasswd file under `dir`.
    pub fn start(dir: &Path) -> Registry {
        std::fs::create_dir_all(dir).expect("registry dir");
        let (user, pass) = ("catalyst".to_owned(), "s3cret-pull".to_owned());
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", &user, &pass])
            .output()
            .expect("htpasswd (apache2-utils)");
        assert!(htpasswd.status.success(), "htpasswd failed");
        std::fs::write(dir.join("htpasswd"), &htpasswd.stdout).expect("htpasswd file");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\nauth:\n  htpasswd:\n    realm: catalyst-test\n    path: {}\n",
                dir.join("data").display(),
                dir.join("htpasswd").display()
            ),
        )
        .expect("config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry {
            child,
            host,
            credentials: (user, pass),
        }
    }

    /// Pushes the image in an OCI archive as `repo:tag` (blobs, then the manifest).
    pub fn push(&self, archive: &Path, repo: &str, tag: &str) {
        let http = reqwest::blocking::Client::new();
        let (u, p) = &self.credentials;
        let base = format!("http://{}/v2/{repo}", self.host);
        let mut tar = tar::Archive::new(std::fs::File::open(archive).expect("archive"));
        let mut blobs = Vec::new();
        let mut index = Vec::new();
        for e in tar.entries().expect("entries") {
            let mut e = e.expect("entry");
            let path: PathBuf = e.path().expect("path").into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("read");
            let name = path.to_string_lossy().trim_start_matches("./").to_owned();
            if name == "index.json" {
                index = data;
            } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                blobs.push((format!("sha256:{hex}"), data));
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&index).expect("index.json");
        let manifest_digest = index["manifests"][0]["digest"]
            .as_str()
            .expect("manifest")
            .to_owned();
        let mut manifest = None;
        for (digest, data) in blobs {
            if digest == manifest_digest {
                manifest = Some(data);
                continue;
            }
            let r = http
                .post(format!("{base}/blobs/uploads/"))
                .basic_auth(u, Some(p))
                .send()
                .expect("start upload");
            assert_eq!(r.status().as_u16(), 202, "upload start: {:?}", r.text());
            let location = r.headers()["location"]
                .to_str()
                .expect("location")
                .to_owned();
            let url = if location.starts_with("http") {
                location
            } else {
                format!("http://{}{location}", self.host)
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let r = http
                .put(format!("{url}{sep}digest={digest}"))
                .basic_auth(u, Some(p))
                .header("content-type", "application/octet-stream")
                .body(data)
                .send()
                .expect("upload");
            assert_eq!(r.status().as_u16(), 201, "upload {digest}: {:?}", r.text());
        }
        let r = http
            .put(format!("{base}/manifests/{tag}"))
            .basic_auth(u, Some(p))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.expect("manifest blob"))
            .send()
            .expect("put manifest");
        assert_eq!(r.status().as_u16(), 201, "manifest: {:?}", r.text());
    }

    /// A Docker-style auth file with this registry's credentials.
    pub fn auth_file(&self, path: &Path) {
        use base64::Engine;
        let (u, p) = &self.credentials;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        std::fs::write(
            path,
            serde_json::json!({"auths": {self.host.clone(): {"auth": auth}}}).to_string(),
        )
        .expect("auth file");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
