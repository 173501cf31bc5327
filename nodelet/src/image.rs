//! Images: `oci-archive:PATH` imported into containerd's content store and unpacked into
//! overlayfs snapshots through the snapshots and diff services (containerd 1.6 has no Transfer
//! service).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use containerd_client::types::Descriptor;
use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::ctd::{Containerd, CtdError, SNAPSHOTTER};
use crate::registry::{self, Registries, RegistryError, Session, MANIFEST_TYPES};

/// What can go wrong getting an image ready.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The archive could not be read.
    #[error("cannot read {path}: {message}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The image is malformed.
    #[error("invalid image {image}: {message}")]
    Invalid {
        /// The image.
        image: String,
        /// What is wrong.
        message: String,
    },
    /// containerd refused.
    #[error(transparent)]
    Containerd(#[from] CtdError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// An OCI descriptor as found in JSON documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Desc {
    /// Media type.
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
    /// Platform, on index entries.
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    /// e.g. `amd64`.
    pub architecture: String,
    /// e.g. `linux`.
    pub os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Desc>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Desc,
    layers: Vec<Desc>,
}

/// The parts of an image configuration the nodelet uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    /// The run configuration.
    #[serde(default)]
    pub config: RunConfig,
    rootfs: RootFs,
}

/// `config` of an image configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `uid[:gid]` or a name.
    #[serde(default)]
    pub user: Option<String>,
    /// `KEY=value` lines.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Command.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// An image ready to run: its name in containerd, the snapshot to build on and its config.
#[derive(Debug, Clone)]
pub struct Image {
    /// The name in containerd's image store.
    pub name: String,
    /// The chain ID of its top layer (the parent snapshot for containers).
    pub top: String,
    /// Its configuration.
    pub config: ImageConfig,
}

fn to_desc(d: &Desc) -> Descriptor {
    Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: HashMap::new(),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The chain IDs of a layer stack, as containerd names committed snapshots.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!("sha256:{}", sha256_hex(format!("{prev} {d}").as_bytes())),
        };
        out.push(next);
    }
    out
}

fn is_index(media_type: &str) -> bool {
    media_type.contains("image.index") || media_type.contains("manifest.list")
}

/// True when containerd has an image of this name.
pub async fn present(ctd: &Containerd, reference: &str) -> Result<bool, ImageError> {
    Ok(ctd.image_get(reference).await?.is_some())
}

/// Makes sure `reference` is in containerd and unpacked; returns what a container needs and,
/// when it had to be fetched, how many layer bytes came.
pub async fn ensure(
    ctd: &Containerd,
    regs: &Registries,
    reference: &str,
) -> Result<(Image, Option<u64>), ImageError> {
    let mut fetched = None;
    if ctd.image_get(reference).await?.is_none() {
        fetched = Some(match reference.strip_prefix("oci-archive:") {
            Some(path) => import_archive(ctd, reference, Path::new(path)).await?,
            None => pull(ctd, regs, reference).await?,
        });
    }
    let target = ctd
        .image_get(reference)
        .await?
        .ok_or_else(|| ImageError::Invalid {
            image: reference.to_owned(),
            message: "vanished after import".into(),
        })?;
    let manifest = resolve_manifest(ctd, reference, target).await?;
    let config: ImageConfig = parse(reference, &ctd.read_content(&manifest.config.digest).await?)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::Invalid {
            image: reference.to_owned(),
            message: format!(
                "{} layers but {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    let chain = chain_ids(&config.rootfs.diff_ids);
    unpack(ctd, &manifest, &chain).await?;
    Ok((
        Image {
            name: reference.to_owned(),
            top: chain.last().cloned().unwrap_or_default(),
            config,
        },
        fetched,
    ))
}

fn parse<T: for<'de> Deserialize<'de>>(image: &str, data: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|e| ImageError::Invalid {
        image: image.to_owned(),
        message: e.to_string(),
    })
}

async fn resolve_manifest(
    ctd: &Containerd,
    image: &str,
    mut target: Descriptor,
) -> Result<Manifest, ImageError> {
    for _ in 0..4 {
        let data = ctd.read_content(&target.digest).await?;
        if !is_index(&target.media_type) {
            return parse(image, &data);
        }
        let index: Index = parse(image, &data)?;
        let pick = pick_manifest(&index.manifests).ok_or_else(|| ImageError::Invalid {
            image: image.to_owned(),
            message: "no linux/amd64 manifest in the index".into(),
        })?;
        target = to_desc(pick);
    }
    Err(ImageError::Invalid {
        image: image.to_owned(),
        message: "indexes nested too deep".into(),
    })
}

fn pick_manifest(entries: &[Desc]) -> Option<&Desc> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    entries
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .or_else(|| entries.iter().find(|d| d.platform.is_none()))
}

async fn unpack(ctd: &Containerd, manifest: &Manifest, chain: &[String]) -> Result<(), ImageError> {
    if chain.is_empty()
        || ctd
            .snapshot_exists(chain.last().expect("non-empty"))
            .await?
    {
        return Ok(());
    }
    let lease = ctd.lease_create().await?;
    let result = async {
        for (i, layer) in manifest.layers.iter().enumerate() {
            if ctd.snapshot_exists(&chain[i]).await? {
                continue;
            }
            let parent = if i == 0 { "" } else { chain[i - 1].as_str() };
            let key = format!("extract-{}-{}", uuid::Uuid::new_v4().simple(), chain[i]);
            let mounts = ctd.snapshot_prepare(Some(&lease), &key, parent).await?;
            let applied = ctd.diff_apply(&lease, to_desc(layer), mounts).await;
            let committed = match applied {
                Ok(()) => ctd.snapshot_commit(&lease, &key, &chain[i]).await,
                Err(e) => Err(e),
            };
            match committed {
                Ok(()) => {}
                Err(CtdError::AlreadyExists(_)) => ctd.snapshot_remove(&key).await?,
                Err(e) => {
                    let _ = ctd.snapshot_remove(&key).await;
                    return Err(e.into());
                }
            }
        }
        Ok::<_, ImageError>(())
    }
    .await;
    let _ = ctd.lease_delete(&lease).await;
    result
}

/// Blobs of an archive small enough to be documents (manifests, configs, indexes).
const SMALL_BLOB: u64 = 4 << 20;

/// Imports an OCI image layout packed in a tar: one pass reads the documents, a second streams
/// the layers into the content store; then the image is named `name`.
async fn import_archive(ctd: &Containerd, name: &str, path: &Path) -> Result<u64, ImageError> {
    let archive_err = |message: String| ImageError::Archive {
        path: path.to_owned(),
        message,
    };
    let p = path.to_owned();
    let (index, small) = tokio::task::spawn_blocking(move || read_documents(&p))
        .await
        .map_err(|e| archive_err(e.to_string()))?
        .map_err(|e| archive_err(e.to_string()))?;
    let index: Index = parse(name, &index)?;
    let small_get = |d: &str| {
        small
            .get(d)
            .cloned()
            .ok_or_else(|| archive_err(format!("blob {d} missing")))
    };
    // Walk from index.json to one manifest, keeping the chain of documents.
    let mut docs: Vec<Doc> = Vec::new();
    let mut entry = pick_manifest(&index.manifests)
        .or(index.manifests.first())
        .cloned()
        .ok_or_else(|| archive_err("index.json lists no manifest".into()))?;
    let manifest: Manifest = loop {
        let data = small_get(&entry.digest)?;
        if is_index(&entry.media_type) {
            let inner: Index = parse(name, &data)?;
            let next = pick_manifest(&inner.manifests)
                .cloned()
                .ok_or_else(|| archive_err("no linux manifest in nested index".into()))?;
            let labels = HashMap::from([(
                "containerd.io/gc.ref.content.m.0".to_owned(),
                next.digest.clone(),
            )]);
            docs.push((entry, data, labels));
            entry = next;
            if docs.len() > 4 {
                return Err(archive_err("indexes nested too deep".into()));
            }
            continue;
        }
        let m: Manifest = parse(name, &data)?;
        let labels = manifest_labels(&m);
        docs.push((entry.clone(), data, labels));
        break m;
    };
    let config_data = small_get(&manifest.config.digest)?;
    let lease = ctd.lease_create().await?;
    let result = async {
        let missing = missing_layers(ctd, &manifest).await?;
        let bytes = missing.iter().map(|l| l.size.max(0) as u64).sum();
        if !missing.is_empty() {
            stream_layers(ctd, &lease, path, missing).await?;
        }
        commit_image(ctd, &lease, name, &docs, &manifest, config_data).await?;
        Ok::<_, ImageError>(bytes)
    }
    .await;
    let _ = ctd.lease_delete(&lease).await;
    result
}

type Doc = (Desc, Vec<u8>, HashMap<String, String>);

async fn missing_layers(ctd: &Containerd, manifest: &Manifest) -> Result<Vec<Desc>, ImageError> {
    let mut missing = Vec::new();
    for l in &manifest.layers {
        if !ctd.content_exists(&l.digest).await? {
            missing.push(l.clone());
        }
    }
    Ok(missing)
}

/// With the layers in the content store: writes the config (labelled with its top snapshot)
/// and the documents that point at it (labelled with their references, so containerd's GC
/// keeps everything an image needs), then names the image.
async fn commit_image(
    ctd: &Containerd,
    lease: &str,
    name: &str,
    docs: &[Doc],
    manifest: &Manifest,
    config_data: Vec<u8>,
) -> Result<(), ImageError> {
    let config: ImageConfig = parse(name, &config_data)?;
    let chain = chain_ids(&config.rootfs.diff_ids);
    let mut config_labels = HashMap::new();
    if let Some(top) = chain.last() {
        config_labels.insert(
            format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
            top.clone(),
        );
    }
    put_blob(ctd, lease, &manifest.config, config_data, config_labels).await?;
    for (d, data, labels) in docs.iter().rev() {
        put_blob(ctd, lease, d, data.clone(), labels.clone()).await?;
    }
    let (top, _, _) = docs.first().expect("one document at least");
    ctd.image_put(name, to_desc(top)).await?;
    Ok(())
}

fn manifest_labels(m: &Manifest) -> HashMap<String, String> {
    let mut labels = HashMap::from([(
        "containerd.io/gc.ref.content.config".to_owned(),
        m.config.digest.clone(),
    )]);
    for (i, l) in m.layers.iter().enumerate() {
        labels.insert(
            format!("containerd.io/gc.ref.content.l.{i}"),
            l.digest.clone(),
        );
    }
    labels
}

fn media_of(header: String, data: &[u8]) -> String {
    if !header.is_empty() && header != "application/json" && header != "text/plain" {
        return header;
    }
    serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into())
}

/// Pulls a registry image into the content store and names it; returns the layer bytes fetched.
async fn pull(ctd: &Containerd, regs: &Registries, name: &str) -> Result<u64, ImageError> {
    let r = registry::parse_reference(name)?;
    let mut session = Session::new(&r, regs);
    let invalid = |message: String| ImageError::Invalid {
        image: name.to_owned(),
        message,
    };
    let (media, mut data) = session
        .document(&format!("manifests/{}", r.reference), MANIFEST_TYPES)
        .await?;
    let mut media = media_of(media, &data);
    let mut digest = format!("sha256:{}", sha256_hex(&data));
    if r.reference.starts_with("sha256:") && r.reference != digest {
        return Err(invalid(format!(
            "manifest digest {digest} is not {}",
            r.reference
        )));
    }
    let mut docs: Vec<Doc> = Vec::new();
    let manifest: Manifest = loop {
        let desc = Desc {
            media_type: media.clone(),
            digest: digest.clone(),
            size: data.len() as i64,
            platform: None,
        };
        if is_index(&media) {
            let index: Index = parse(name, &data)?;
            let next = pick_manifest(&index.manifests)
                .cloned()
                .ok_or_else(|| invalid("no linux manifest for this machine in the index".into()))?;
            let labels = HashMap::from([(
                "containerd.io/gc.ref.content.m.0".to_owned(),
                next.digest.clone(),
            )]);
            docs.push((desc, data, labels));
            if docs.len() > 4 {
                return Err(invalid("indexes nested too deep".into()));
            }
            let (m, d) = session
                .document(&format!("manifests/{}", next.digest), MANIFEST_TYPES)
                .await?;
            if format!("sha256:{}", sha256_hex(&d)) != next.digest {
                return Err(invalid(format!(
                    "manifest {} does not match its digest",
                    next.digest
                )));
            }
            media = media_of(m, &d);
            digest = next.digest;
            data = d;
            continue;
        }
        let m: Manifest = parse(name, &data)?;
        let labels = manifest_labels(&m);
        docs.push((desc, data, labels));
        break m;
    };
    let config_data: Vec<u8> = {
        let mut stream = std::pin::pin!(session.blob(&manifest.config.digest).await?);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        out
    };
    if format!("sha256:{}", sha256_hex(&config_data)) != manifest.config.digest {
        return Err(invalid("config does not match its digest".into()));
    }
    let lease = ctd.lease_create().await?;
    let result = async {
        let missing = missing_layers(ctd, &manifest).await?;
        let mut bytes = 0u64;
        for layer in missing {
            let stream = session.blob(&layer.digest).await?;
            let failure = std::sync::Arc::new(std::sync::Mutex::new(None));
            let f2 = failure.clone();
            let chunks = stream
                .take_while(move |c| {
                    if let Err(e) = c {
                        *f2.lock().expect("failure") = Some(e.to_string());
                    }
                    std::future::ready(c.is_ok())
                })
                .map(|c| c.unwrap_or_default());
            let written = ctd
                .write_content(&lease, &layer.digest, layer.size, HashMap::new(), chunks)
                .await;
            if let Some(e) = failure.lock().expect("failure").take() {
                return Err(invalid(format!("layer {}: {e}", layer.digest)));
            }
            written?;
            bytes += layer.size.max(0) as u64;
            tracing::debug!(image = name, layer = layer.digest, bytes, "layer pulled");
        }
        commit_image(ctd, &lease, name, &docs, &manifest, config_data).await?;
        Ok::<_, ImageError>(bytes)
    }
    .await;
    let _ = ctd.lease_delete(&lease).await;
    result
}

async fn put_blob(
    ctd: &Containerd,
    lease: &str,
    d: &Desc,
    data: Vec<u8>,
    labels: HashMap<String, String>,
) -> Result<(), ImageError> {
    let total = data.len() as i64;
    ctd.write_content(
        lease,
        &d.digest,
        total,
        labels,
        futures::stream::iter([data]),
    )
    .await?;
    Ok(())
}

type Documents = (Vec<u8>, HashMap<String, Vec<u8>>);

fn read_documents(path: &Path) -> std::io::Result<Documents> {
    let mut archive = tar::Archive::new(std::fs::File::open(path)?);
    let mut index = None;
    let mut small = HashMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let p = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        if p == "index.json" {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            index = Some(buf);
        } else if let Some(hex) = p.strip_prefix("blobs/sha256/") {
            if entry.size() <= SMALL_BLOB {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf)?;
                if sha256_hex(&buf) != hex {
                    return Err(std::io::Error::other(format!("{p}: digest mismatch")));
                }
                small.insert(format!("sha256:{hex}"), buf);
            }
        }
    }
    let index = index.ok_or_else(|| std::io::Error::other("no index.json"))?;
    Ok((index, small))
}

/// Streams the wanted layer blobs from the archive into the content store, one at a time, in
/// 1 MiB chunks, without holding a layer in memory.
async fn stream_layers(
    ctd: &Containerd,
    lease: &str,
    path: &Path,
    wanted: Vec<Desc>,
) -> Result<(), ImageError> {
    let (layer_tx, mut layer_rx) = mpsc::channel::<(Desc, mpsc::Receiver<Vec<u8>>)>(1);
    let p = path.to_owned();
    let want = wanted.clone();
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut archive = tar::Archive::new(std::fs::File::open(&p)?);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let Some(hex) = path.strip_prefix("blobs/sha256/") else {
                continue;
            };
            let digest = format!("sha256:{hex}");
            let Some(d) = want.iter().find(|d| d.digest == digest) else {
                continue;
            };
            let (tx, rx) = mpsc::channel(4);
            if layer_tx.blocking_send((d.clone(), rx)).is_err() {
                return Ok(());
            }
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = entry.read(&mut buf)?;
                if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        }
        Ok(())
    });
    let mut done = 0;
    while let Some((d, rx)) = layer_rx.recv().await {
        let chunks =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        ctd.write_content(lease, &d.digest, d.size, HashMap::new(), chunks)
            .await?;
        done += 1;
    }
    reader
        .await
        .map_err(|e| ImageError::Archive {
            path: path.to_owned(),
            message: e.to_string(),
        })?
        .map_err(|e| ImageError::Archive {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if done != wanted.len() {
        return Err(ImageError::Archive {
            path: path.to_owned(),
            message: format!("{} of {} layers missing", wanted.len() - done, wanted.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let a = "sha256:aaaa".to_owned();
        let b = "sha256:bbbb".to_owned();
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(
            ids[1],
            format!("sha256:{}", sha256_hex(b"sha256:aaaa sha256:bbbb"))
        );
    }
}
