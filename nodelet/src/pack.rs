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

/// Writes an OCI archive with one layer holding `entries` and the given default command.
pub fn write_archive(path: &Path, entries: &[Entry], cmd: &[&str]) -> std::io::Result<()> {
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
    let layer = layer.into_inner()?;
    let layer_digest = format!("sha256:{}", hex(&layer));
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .expect("json");
    let config_digest = format!("sha256:{}", hex(&config));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    }))
    .expect("json");
    let manifest_digest = format!("sha256:{}", hex(&manifest));
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest.len(),
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
    for blob in [&layer, &config, &manifest] {
        add(&format!("blobs/sha256/{}", hex(blob)), blob)?;
    }
    out.into_inner()?.sync_all()
}

/// A busybox image from Debian's busybox-static: `/bin/busybox`, a symlink per applet,
/// `/etc/passwd` with uid 1000, and `/home/container`.
pub fn busybox_archive(path: &Path) -> std::io::Result<()> {
    let busybox = std::fs::read("/bin/busybox")?;
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()?;
    let mut entries = vec![
        Entry::Dir("bin".into(), 0o755),
        Entry::Dir("etc".into(), 0o755),
        Entry::Dir("home".into(), 0o755),
        Entry::Dir("home/container".into(), 0o755),
        Entry::Dir("tmp".into(), 0o1777),
        Entry::File("bin/busybox".into(), busybox, 0o755),
        Entry::File(
            "etc/passwd".into(),
            b"root:x:0:0:root:/root:/bin/sh\ncontainer:x:1000:1000::/home/container:/bin/sh\n"
                .to_vec(),
            0o644,
        ),
    ];
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            entries.push(Entry::Symlink(format!("bin/{applet}"), "busybox".into()));
        }
    }
    write_archive(path, &entries, &["sh"])
}
