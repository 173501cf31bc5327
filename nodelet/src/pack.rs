//! Images packed from this machine's files into an OCI image layout in a tar, for
//! `oci-archive:` references: air-gapped nodes, the walkthrough, and tests that must never
//! download. One uncompressed layer.

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

fn hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file to put in the image: its path inside, and either its bytes or a symlink target.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A regular file with mode.
    File(String, Vec<u8>, u32),
    /// A symlink.
    Symlink(String, String),
    /// A directory with mode.
    Dir(String, u32),
}

/// `sha256:` and the hex digest of `data`, as OCI descriptors name blobs.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(data))
}

/// An uncompressed layer (a tar) holding `entries`, owned by root, dated 1970.
pub fn layer(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut layer = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(*mode);
                layer.append_data(&mut h, p, data.as_slice())?;
            }
            Entry::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                layer.append_link(&mut h, p, target)?;
            }
            Entry::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(*mode);
                layer.append_data(&mut h, p, std::io::empty())?;
            }
        }
    }
    layer.into_inner()
}

/// An image configuration for linux/amd64 with these layer diff IDs (the digests of the
/// uncompressed layers, bottom first), a PATH and a default command.
pub fn config(diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json")
}

/// The blobs of an image with uncompressed OCI layers: its manifest, configuration and layers.
#[derive(Debug, Clone)]
pub struct ImageBlobs {
    /// The OCI image manifest.
    pub manifest: Vec<u8>,
    /// The configuration.
    pub config: Vec<u8>,
    /// The layers, bottom first.
    pub layers: Vec<Vec<u8>>,
}

impl ImageBlobs {
    /// The manifest for a configuration and layers, as given (a configuration whose diff IDs
    /// do not match the layers makes an image the nodelet refuses).
    pub fn new(config: Vec<u8>, layers: Vec<Vec<u8>>) -> Self {
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest(&config), "size": config.len()},
            "layers": layers.iter().map(|l| json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest(l), "size": l.len()})).collect::<Vec<_>>(),
        }))
        .expect("json");
        Self {
            manifest,
            config,
            layers,
        }
    }

    /// The blob with this digest (manifest, configuration or a layer).
    pub fn blob(&self, wanted: &str) -> Option<&[u8]> {
        std::iter::once(&self.manifest)
            .chain(std::iter::once(&self.config))
            .chain(self.layers.iter())
            .find(|b| digest(b) == wanted)
            .map(Vec::as_slice)
    }

    /// Writes the image as an OCI image layout in a tar (`oci-archive:`), its one manifest
    /// listed for linux/amd64.
    pub fn write_archive(&self, path: &Path) -> std::io::Result<()> {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": digest(&self.manifest), "size": self.manifest.len(),
                           "platform": {"architecture": "amd64", "os": "linux"}}],
        }))
        .expect("json");
        let mut out = tar::Builder::new(std::fs::File::create(path)?);
        let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            out.append_data(&mut h, name, data)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add("index.json", &index)?;
        let mut seen = std::collections::HashSet::new();
        for blob in self.layers.iter().chain([&self.config, &self.manifest]) {
            if seen.insert(hex(blob)) {
                add(&format!("blobs/sha256/{}", hex(blob)), blob)?;
            }
        }
        out.into_inner()?.sync_all()
    }
}

/// Writes an OCI archive with one layer holding `entries` and the given default command.
pub fn write_archive(path: &Path, entries: &[Entry], cmd: &[&str]) -> std::io::Result<()> {
    let layer = layer(entries)?;
    let config = config(&[digest(&layer)], cmd);
    ImageBlobs::new(config, vec![layer]).write_archive(path)
}

/// A busybox image from Debian's busybox-static: `/bin/busybox`, a symlink per applet,
/// `/etc/passwd` with uid 1000, and `/home/container`.
pub fn busybox_archive(path: &Path) -> std::io::Result<()> {
    host_archive(path, &[], &["sh"])
}

/// The shared libraries an ELF file needs (and its interpreter), from `ldd`.
fn libraries(file: &Path) -> Vec<String> {
    let Ok(out) = std::process::Command::new("ldd").arg(file).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => l.split_whitespace().next(),
            }
        })
        .filter(|p| p.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

/// An image of the busybox base plus files of this machine (e.g. a game server installed from
/// Debian's packages): each path (files, directories recursively) at the same place in the
/// image, with the shared libraries every executable among them needs, copied (symlinks
/// followed). `cmd` is the image's default command.
pub fn host_archive(path: &Path, include: &[&Path], cmd: &[&str]) -> std::io::Result<()> {
    write_archive(path, &host_entries(include)?, cmd)
}

/// The files of a busybox image from Debian's busybox-static (see [`busybox_archive`]), for
/// images of several layers built on it.
pub fn busybox_entries() -> std::io::Result<Vec<Entry>> {
    host_entries(&[])
}

fn host_entries(include: &[&Path]) -> std::io::Result<Vec<Entry>> {
    use std::collections::BTreeMap;
    let busybox = std::fs::read("/bin/busybox")?;
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()?;
    let mut files: BTreeMap<String, Entry> = BTreeMap::new();
    let add_dirs = |files: &mut BTreeMap<String, Entry>, p: &str| {
        let mut acc = String::new();
        let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
        for c in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            files
                .entry(acc.clone())
                .or_insert_with(|| Entry::Dir(acc.clone(), 0o755));
        }
    };
    for d in ["bin", "etc", "home", "home/container", "tmp"] {
        files.insert(
            d.into(),
            Entry::Dir(d.into(), if d == "tmp" { 0o1777 } else { 0o755 }),
        );
    }
    files.insert(
        "bin/busybox".into(),
        Entry::File("bin/busybox".into(), busybox, 0o755),
    );
    files.insert(
        "etc/passwd".into(),
        Entry::File(
            "etc/passwd".into(),
            b"root:x:0:0:root:/root:/bin/sh\ncontainer:x:1000:1000::/home/container:/bin/sh\n"
                .to_vec(),
            0o644,
        ),
    );
    files.insert(
        "etc/group".into(),
        Entry::File(
            "etc/group".into(),
            b"root:x:0:\ncontainer:x:1000:\n".to_vec(),
            0o644,
        ),
    );
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let p = format!("bin/{applet}");
            files.insert(p.clone(), Entry::Symlink(p, "busybox".into()));
        }
    }
    let mut queue: Vec<std::path::PathBuf> = include.iter().map(|p| p.to_path_buf()).collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(p) = queue.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        let meta = std::fs::metadata(&p)?;
        let rel = p.to_string_lossy().trim_start_matches('/').to_owned();
        if meta.is_dir() {
            add_dirs(&mut files, &format!("{rel}/x"));
            for e in std::fs::read_dir(&p)? {
                queue.push(e?.path());
            }
            continue;
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        let data = std::fs::read(&p)?;
        if data.starts_with(b"\x7fELF") {
            for lib in libraries(&p) {
                queue.push(lib.into());
            }
        }
        add_dirs(&mut files, &rel);
        files.insert(rel.clone(), Entry::File(rel, data, mode));
    }
    Ok(files.into_values().collect())
}
