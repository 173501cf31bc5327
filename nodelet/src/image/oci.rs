//! The OCI documents an image is made of (descriptors, indexes, manifests, configurations), how
//! they are told apart, and the checks every one of them passes: digests, sizes, media types,
//! layer counts and the node's size cap.

use std::collections::HashMap;

use containerd_client::types::Descriptor;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::{invalid, ImageError};
use super::policy::ImagePolicy;
use crate::registry::{valid_digest, MAX_DOCUMENT_BYTES};

/// At most this many layers (overlayfs stacks no more than this usefully).
const MAX_LAYERS: usize = 128;
/// The annotation skopeo and others name an image of a layout by.
pub(super) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and buildx name an image of a layout by.
pub(super) const CONTAINERD_NAME: &str = "io.containerd.image.name";

pub(super) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(super) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// An OCI descriptor as found in JSON documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Desc {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
    /// Platform, on index entries.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations (the image's name in a layout).
    #[serde(default)]
    pub annotations: Option<HashMap<String, String>>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Platform {
    /// e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `linux`.
    #[serde(default)]
    pub os: String,
}

/// An image index (or Docker manifest list).
#[derive(Debug, Deserialize)]
pub(super) struct Index {
    /// Its entries: manifests or nested indexes.
    #[serde(default)]
    pub(super) manifests: Vec<Desc>,
}

/// An image manifest.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Manifest {
    /// The configuration blob.
    pub(super) config: Desc,
    /// The layer blobs, from the bottom.
    pub(super) layers: Vec<Desc>,
}

/// The parts of an image configuration the nodelet uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    /// The run configuration.
    #[serde(default)]
    pub config: RunConfig,
    pub(super) rootfs: RootFs,
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

/// `rootfs` of an image configuration.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct RootFs {
    /// The digests of the layers' uncompressed tars, from the bottom.
    #[serde(default)]
    pub(super) diff_ids: Vec<String>,
}

/// The containerd form of a descriptor (annotations dropped).
pub(super) fn to_desc(d: &Desc) -> Descriptor {
    Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: HashMap::new(),
    }
}

/// Lowercase hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `data` in lowercase hex.
pub(super) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
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

/// What a manifest-like document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DocKind {
    /// An image index or a Docker manifest list.
    Index,
    /// An image manifest.
    Manifest,
}

fn known_kind(media_type: &str) -> Option<DocKind> {
    match media_type {
        OCI_INDEX | DOCKER_LIST => Some(DocKind::Index),
        OCI_MANIFEST | DOCKER_MANIFEST => Some(DocKind::Manifest),
        _ => None,
    }
}

/// The kind and media type of a document, from its own `mediaType`, the media type it was
/// announced with (descriptor or Content-Type), or its shape.
pub(super) fn doc_kind(declared: &str, data: &[u8]) -> Result<(DocKind, String), String> {
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| format!("not a JSON document: {e}"))?;
    if v["schemaVersion"].as_i64() == Some(1) {
        return Err("Docker schema 1 manifests are not supported".into());
    }
    let declared = declared.split(';').next().unwrap_or("").trim();
    if let Some(own) = v["mediaType"].as_str() {
        let kind = known_kind(own).ok_or_else(|| format!("unsupported media type {own}"))?;
        if known_kind(declared).is_some_and(|k| k != kind) {
            return Err(format!("announced as {declared} but is {own}"));
        }
        return Ok((kind, own.to_owned()));
    }
    if let Some(kind) = known_kind(declared) {
        return Ok((kind, declared.to_owned()));
    }
    let generic = matches!(
        declared,
        "" | "application/json" | "text/plain" | "application/octet-stream"
    );
    if !generic {
        return Err(format!("unsupported media type {declared}"));
    }
    if v["manifests"].is_array() {
        Ok((DocKind::Index, OCI_INDEX.into()))
    } else if v["config"].is_object() && v["layers"].is_array() {
        Ok((DocKind::Manifest, OCI_MANIFEST.into()))
    } else {
        Err("neither an image index nor an image manifest".into())
    }
}

/// How a layer's bytes are to be read to get its tar, as containerd's diff service reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LayerPacking {
    /// An uncompressed tar.
    Raw,
    /// gzip, zstd or uncompressed, told by the first bytes.
    Detect,
}

/// How a layer of this media type is read; unknown media types are refused.
pub(super) fn layer_packing(media_type: &str) -> Result<LayerPacking, String> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Ok(LayerPacking::Raw),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.diff.tar"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar" => Ok(LayerPacking::Detect),
        other => Err(format!("unsupported layer media type {other:?}")),
    }
}

/// Checks a descriptor: a sha256 digest, a size between 0 and `max`.
pub(super) fn check_desc(d: &Desc, what: &str, max: u64) -> Result<(), String> {
    if !valid_digest(&d.digest) {
        return Err(format!(
            "{what}: digest {:?} is not sha256:<64 hex digits>",
            d.digest
        ));
    }
    if d.size < 0 || d.size as u64 > max {
        return Err(format!(
            "{what} {}: size {} is not between 0 and {max}",
            d.digest, d.size
        ));
    }
    Ok(())
}

/// Parses a JSON document of `image`; `what` names it in the error.
pub(super) fn parse<T: for<'de> Deserialize<'de>>(
    image: &str,
    what: &str,
    data: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|e| invalid(image, format!("{what}: {e}")))
}

/// Checks a manifest and its configuration together: descriptors, media types, as many
/// layers as diff IDs, the size limit.
pub(super) fn check_image(
    image: &str,
    manifest: &Manifest,
    config_data: &[u8],
    policy: &ImagePolicy,
) -> Result<ImageConfig, ImageError> {
    let bad = |m: String| invalid(image, m);
    check_desc(&manifest.config, "config", MAX_DOCUMENT_BYTES).map_err(bad)?;
    match manifest.config.media_type.as_str() {
        "application/vnd.oci.image.config.v1+json"
        | "application/vnd.docker.container.image.v1+json" => {}
        other => {
            return Err(bad(format!(
                "config media type {other:?}: not a container image"
            )))
        }
    }
    let config: ImageConfig = parse(image, "image configuration", config_data)?;
    let diff_ids = &config.rootfs.diff_ids;
    if manifest.layers.is_empty() {
        return Err(bad("the image has no layers".into()));
    }
    if manifest.layers.len() > MAX_LAYERS {
        return Err(bad(format!(
            "{} layers (at most {MAX_LAYERS})",
            manifest.layers.len()
        )));
    }
    if diff_ids.len() != manifest.layers.len() {
        return Err(bad(format!(
            "{} layers but {} diff_ids",
            manifest.layers.len(),
            diff_ids.len()
        )));
    }
    if let Some(d) = diff_ids.iter().find(|d| !valid_digest(d)) {
        return Err(bad(format!("diff id {d:?} is not sha256:<64 hex digits>")));
    }
    let mut total = 0u64;
    for (i, l) in manifest.layers.iter().enumerate() {
        check_desc(l, &format!("layer {i}"), u64::MAX).map_err(bad)?;
        layer_packing(&l.media_type).map_err(|m| bad(format!("layer {i}: {m}")))?;
        total = total.saturating_add(l.size as u64);
    }
    if total > policy.max_pull_bytes {
        return Err(ImageError::TooLarge {
            image: image.to_owned(),
            what: format!("the sum of its {} layers", manifest.layers.len()),
            size: total,
            limit: policy.max_pull_bytes,
        });
    }
    Ok(config)
}

/// Checks a document against the descriptor that named it.
pub(super) fn matches_desc(d: &Desc, data: &[u8]) -> Result<(), String> {
    if data.len() as i64 != d.size {
        return Err(format!(
            "{} is {} bytes, its descriptor says {}",
            d.digest,
            data.len(),
            d.size
        ));
    }
    let got = format!("sha256:{}", sha256_hex(data));
    if got != d.digest {
        return Err(format!(
            "{} does not match its digest (it is {got})",
            d.digest
        ));
    }
    Ok(())
}
