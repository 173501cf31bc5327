//! Images: registry pulls and `oci-archive:` imports into containerd's content store, unpacked
//! into overlayfs snapshots through the snapshots and diff services (containerd 1.6 has no
//! Transfer service).
//!
//! Images come from hostile tenants. Every blob is checked against its descriptor (digest and
//! size), documents are at most 4 MiB, an image's layers at most the node's limit. Each layer
//! is verified as containerd's own unpacker does: the digest of its uncompressed content,
//! computed here while containerd applies it (and the one containerd reports), must be the
//! configuration's `rootfs.diff_ids[i]`, else the snapshot being built is removed and nothing is
//! committed under that chain ID. Committed snapshots carry `catalyst.dev/verified=<diff id>`;
//! one without it (from an older nodelet, or made by hand) is never reused: it is removed and
//! rebuilt. An image is named in containerd only once it is unpacked and verified.
//!
//! `oci-archive:PATH[:REF]` reads any OCI image layout in a tar (as skopeo, podman, buildx or
//! Docker write them: directory entries, `./` prefixes, long names, hard links; the tar itself
//! may be gzip- or zstd-compressed; layers uncompressed, gzip or zstd, OCI or Docker media
//! types). `REF` picks a manifest by its `org.opencontainers.image.ref.name` (or
//! `io.containerd.image.name`) annotation; without it the one manifest for this machine's
//! platform (or the only one) is taken; nested indexes are followed. Only regular files under
//! the node's image directories are read, checked after symlinks are resolved and again on the
//! opened file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use containerd_client::services::v1::snapshots as snap;
use containerd_client::types::Descriptor;
use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::ctd::{Containerd, CtdError, SNAPSHOTTER};
use crate::registry::{
    self, valid_digest, Registries, RegistryError, Session, MANIFEST_TYPES, MAX_DOCUMENT_BYTES,
};

/// The label a committed snapshot carries once its layer's diff ID was verified.
pub const VERIFIED_LABEL: &str = "catalyst.dev/verified";
/// An image directory every node has (besides `<data-dir>/images`).
pub const DEFAULT_IMAGE_DIR: &str = "/var/lib/catalyst/images";
/// The default limit of an image's layers (compressed), pulled or imported: 20 GiB.
pub const DEFAULT_MAX_PULL_BYTES: u64 = 20 << 30;
/// At most this many layers (overlayfs stacks no more than this usefully).
const MAX_LAYERS: usize = 128;
/// At most this many entries in an archive's tar.
const MAX_ARCHIVE_ENTRIES: usize = 100_000;
/// Indexes nested deeper than this are refused.
const MAX_INDEX_DEPTH: usize = 4;
/// The annotation skopeo and others name an image of a layout by.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and buildx name an image of a layout by.
const CONTAINERD_NAME: &str = "io.containerd.image.name";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

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
    /// The `oci-archive:` path is not allowed (or not usable).
    #[error("oci-archive {path}: {message}")]
    ArchivePath {
        /// The path as given.
        path: String,
        /// Why it is refused.
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
    /// A layer's uncompressed content is not what the configuration's diff IDs say.
    #[error(
        "image {image}: layer {index} ({digest}) has the wrong diff id: the configuration says \
         {expected}, {source_name} {got}"
    )]
    WrongDiffId {
        /// The image.
        image: String,
        /// Which layer, from 0 at the bottom.
        index: usize,
        /// The layer blob's digest.
        digest: String,
        /// `rootfs.diff_ids[index]`.
        expected: String,
        /// What it is.
        got: String,
        /// Who computed `got`.
        source_name: &'static str,
    },
    /// The image is larger than the node allows.
    #[error("image {image}: {what} is {size} bytes, over this node's limit of {limit} bytes")]
    TooLarge {
        /// The image.
        image: String,
        /// What is too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// containerd refused.
    #[error(transparent)]
    Containerd(#[from] CtdError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Where images may come from and how large they may be; the node's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePolicy {
    /// `oci-archive:` files must be regular files in one of these directories (symlinks
    /// resolved). Directories that do not exist are ignored.
    pub image_dirs: Vec<PathBuf>,
    /// The most an image's layers may weigh (as stored, compressed), pulled or imported.
    pub max_pull_bytes: u64,
}

impl ImagePolicy {
    /// The defaults for a node: `<data-dir>/images` and [`DEFAULT_IMAGE_DIR`],
    /// [`DEFAULT_MAX_PULL_BYTES`].
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            image_dirs: vec![data_dir.join("images"), PathBuf::from(DEFAULT_IMAGE_DIR)],
            max_pull_bytes: DEFAULT_MAX_PULL_BYTES,
        }
    }
}

impl Default for ImagePolicy {
    /// [`DEFAULT_IMAGE_DIR`] only, [`DEFAULT_MAX_PULL_BYTES`].
    fn default() -> Self {
        Self {
            image_dirs: vec![PathBuf::from(DEFAULT_IMAGE_DIR)],
            max_pull_bytes: DEFAULT_MAX_PULL_BYTES,
        }
    }
}

/// An `oci-archive:PATH[:REF]` reference, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRef {
    /// The archive (absolute, no `..`).
    pub path: PathBuf,
    /// The image in it, by its `org.opencontainers.image.ref.name` annotation.
    pub name: Option<String>,
}

/// Parses an image reference as `oci-archive:PATH[:REF]` (the path ends at the first `:`, as
/// in skopeo); `Ok(None)` when it is not an archive reference.
pub fn parse_archive_reference(image: &str) -> Result<Option<ArchiveRef>, String> {
    let Some(rest) = image.strip_prefix("oci-archive:") else {
        return Ok(None);
    };
    if rest.contains('\0') {
        return Err("the path contains NUL".into());
    }
    if rest.chars().any(char::is_control) {
        return Err("the path contains control characters".into());
    }
    let (path, name) = match rest.split_once(':') {
        Some((p, n)) => (p, Some(n)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err("empty path (write oci-archive:/absolute/path.tar)".into());
    }
    if !path.starts_with('/') {
        return Err(format!(
            "relative path {path:?} (write oci-archive:/absolute/path.tar)"
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("{path:?} has a `..` component"));
    }
    if let Some(n) = name {
        let ok = !n.is_empty()
            && n.len() <= 255
            && n.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'/' | b'+')
            });
        if !ok {
            return Err(format!(
                "bad image name {n:?} after the path (letters, digits and -._:@/+)"
            ));
        }
    }
    Ok(Some(ArchiveRef {
        path: PathBuf::from(path),
        name: name.map(str::to_owned),
    }))
}

/// Admission's check of an image reference: an `oci-archive:` reference must name an absolute
/// path without `..` components or NUL (and, after a `:`, a well-formed image name). Other
/// references are not archive references and pass.
pub fn check_archive_reference(s: &str) -> Result<(), String> {
    parse_archive_reference(s)
        .map(|_| ())
        .map_err(|e| format!("image {s:?}: {e}"))
}

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

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Desc>,
}

#[derive(Debug, Clone, Deserialize)]
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
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
enum DocKind {
    Index,
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
fn doc_kind(declared: &str, data: &[u8]) -> Result<(DocKind, String), String> {
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
enum LayerPacking {
    /// An uncompressed tar.
    Raw,
    /// gzip, zstd or uncompressed, told by the first bytes.
    Detect,
}

fn layer_packing(media_type: &str) -> Result<LayerPacking, String> {
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

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn names_of(d: &Desc) -> impl Iterator<Item = &str> {
    d.annotations
        .iter()
        .flat_map(|a| [a.get(REF_NAME), a.get(CONTAINERD_NAME)])
        .flatten()
        .map(String::as_str)
}

fn listed_names(entries: &[&Desc]) -> String {
    let names: Vec<&str> = entries.iter().flat_map(|d| names_of(d)).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (names: {})", names.join(", "))
    }
}

/// Picks a manifest (or a nested index) among an index's entries: by name when `want` is
/// given, then the one for linux/`arch`, or the only entry when it names no platform.
fn select<'a>(entries: &'a [Desc], want: Option<&str>, arch: &str) -> Result<&'a Desc, String> {
    let all: Vec<&Desc> = entries.iter().collect();
    let pool: Vec<&Desc> = match want {
        Some(w) => {
            let named: Vec<&Desc> = all
                .iter()
                .copied()
                .filter(|d| names_of(d).any(|n| n == w))
                .collect();
            if named.is_empty() {
                return Err(format!(
                    "no image named {w:?} in the index{}",
                    listed_names(&all)
                ));
            }
            named
        }
        None => all,
    };
    if pool.is_empty() {
        return Err("the index lists no manifest".into());
    }
    let fits: Vec<&Desc> = pool
        .iter()
        .copied()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .collect();
    match (fits.len(), pool.len()) {
        (1, _) => Ok(fits[0]),
        (0, 1) => match &pool[0].platform {
            None => Ok(pool[0]),
            Some(p) => Err(format!(
                "the only image is for {}/{}, not linux/{arch}",
                p.os, p.architecture
            )),
        },
        (0, n) => Err(format!(
            "none of the {n} images is for linux/{arch}; name one with \
             oci-archive:PATH:NAME{}",
            listed_names(&pool)
        )),
        (n, _) => Err(format!(
            "{n} images for linux/{arch}; name one with oci-archive:PATH:NAME{}",
            listed_names(&fits)
        )),
    }
}

fn check_desc(d: &Desc, what: &str, max: u64) -> Result<(), String> {
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

/// A document of the chain from the image's target to its manifest: its descriptor, bytes and
/// the GC labels containerd expects on it.
type Doc = (Desc, Vec<u8>, HashMap<String, String>);

/// What a fetch (pull or import) found, with the layers in the content store.
#[derive(Debug)]
struct Fetched {
    docs: Vec<Doc>,
    manifest: Manifest,
    config: Vec<u8>,
    bytes: u64,
}

/// True when containerd has an image of this name.
pub async fn present(ctd: &Containerd, reference: &str) -> Result<bool, ImageError> {
    Ok(ctd.image_get(reference).await?.is_some())
}

/// Makes sure `reference` is in containerd and unpacked with every layer verified; returns
/// what a container needs and, when it had to be fetched, how many layer bytes came.
pub async fn ensure_with(
    ctd: &Containerd,
    regs: &Registries,
    policy: &ImagePolicy,
    reference: &str,
) -> Result<(Image, Option<u64>), ImageError> {
    let archive =
        parse_archive_reference(reference).map_err(|message| ImageError::ArchivePath {
            path: reference.trim_start_matches("oci-archive:").to_owned(),
            message,
        })?;
    let existing = ctd.image_get(reference).await?;
    let mut lease = LazyLease { ctd, id: None };
    let result = async {
        let (fetched, manifest, config_data) = match &existing {
            Some(target) => {
                let (manifest, config) = stored_documents(ctd, reference, target.clone()).await?;
                (None, manifest, config)
            }
            None => {
                let f = match &archive {
                    Some(a) => import_archive(ctd, &mut lease, reference, a, policy).await?,
                    None => pull(ctd, &mut lease, regs, policy, reference).await?,
                };
                (Some((f.docs, f.bytes)), f.manifest, f.config)
            }
        };
        let config = check_image(reference, &manifest, &config_data, policy)?;
        let diff_ids = &config.rootfs.diff_ids;
        let chain = chain_ids(diff_ids);
        unpack(ctd, &mut lease, reference, &manifest, diff_ids, &chain).await?;
        let bytes = match fetched {
            Some((docs, bytes)) => {
                let (top, _, _) = docs
                    .first()
                    .ok_or_else(|| invalid(reference, "no manifest"))?;
                ctd.image_put(reference, to_desc(top)).await?;
                Some(bytes)
            }
            None => None,
        };
        Ok::<_, ImageError>((
            Image {
                name: reference.to_owned(),
                top: chain.last().cloned().unwrap_or_default(),
                config,
            },
            bytes,
        ))
    }
    .await;
    if existing.is_some()
        && matches!(
            result,
            Err(ImageError::WrongDiffId { .. }
                | ImageError::Invalid { .. }
                | ImageError::TooLarge { .. })
        )
    {
        // a stored image that does not pass (one from before verification): forget its name,
        // so that the next attempt fetches it again
        let _ = ctd.image_delete(reference).await;
    }
    lease.release().await;
    result
}

/// A lease taken on first use: deleting a lease lets containerd collect garbage, so none is
/// taken when nothing is written (an image already unpacked).
struct LazyLease<'a> {
    ctd: &'a Containerd,
    id: Option<String>,
}

impl LazyLease<'_> {
    async fn id(&mut self) -> Result<String, CtdError> {
        if let Some(id) = &self.id {
            return Ok(id.clone());
        }
        let id = self.ctd.lease_create().await?;
        self.id = Some(id.clone());
        Ok(id)
    }

    /// Deletes the lease and has containerd collect garbage before answering, so that the
    /// collection it causes is over before the caller goes on (a container snapshot prepared
    /// right after must not meet it).
    async fn release(self) {
        if let Some(id) = self.id {
            if let Err(e) = self.ctd.lease_delete(&id, true).await {
                tracing::warn!(lease = id, error = %e, "lease not deleted");
            }
        }
    }
}

fn invalid(image: &str, message: impl Into<String>) -> ImageError {
    ImageError::Invalid {
        image: image.to_owned(),
        message: message.into(),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(
    image: &str,
    what: &str,
    data: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|e| invalid(image, format!("{what}: {e}")))
}

/// Checks a manifest and its configuration together: descriptors, media types, as many
/// layers as diff IDs, the size limit.
fn check_image(
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

/// The manifest and configuration of an image already in containerd.
async fn stored_documents(
    ctd: &Containerd,
    image: &str,
    mut target: Descriptor,
) -> Result<(Manifest, Vec<u8>), ImageError> {
    for _ in 0..=MAX_INDEX_DEPTH {
        if target.size < 0
            || target.size as u64 > MAX_DOCUMENT_BYTES
            || !valid_digest(&target.digest)
        {
            return Err(invalid(image, format!("stored document {}", target.digest)));
        }
        let data = ctd.read_content(&target.digest).await?;
        let (kind, _) = doc_kind(&target.media_type, &data).map_err(|m| invalid(image, m))?;
        if kind == DocKind::Manifest {
            let manifest: Manifest = parse(image, "manifest", &data)?;
            check_desc(&manifest.config, "config", MAX_DOCUMENT_BYTES)
                .map_err(|m| invalid(image, m))?;
            let config = ctd.read_content(&manifest.config.digest).await?;
            return Ok((manifest, config));
        }
        let index: Index = parse(image, "index", &data)?;
        let pick = select(&index.manifests, None, host_arch()).map_err(|m| invalid(image, m))?;
        target = to_desc(pick);
    }
    Err(invalid(image, "indexes nested too deep"))
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

fn index_labels(next: &Desc) -> HashMap<String, String> {
    HashMap::from([(
        "containerd.io/gc.ref.content.m.0".to_owned(),
        next.digest.clone(),
    )])
}

/// Checks a document against the descriptor that named it.
fn matches_desc(d: &Desc, data: &[u8]) -> Result<(), String> {
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

/// With the layers in the content store: writes the config (labelled with its top snapshot)
/// and the documents that point at it (labelled with their references, so containerd's GC
/// keeps everything an image needs).
async fn write_documents(
    ctd: &Containerd,
    lease: &str,
    image: &str,
    docs: &[Doc],
    manifest: &Manifest,
    config_data: &[u8],
) -> Result<(), ImageError> {
    let config: ImageConfig = parse(image, "image configuration", config_data)?;
    let chain = chain_ids(&config.rootfs.diff_ids);
    let mut config_labels = HashMap::new();
    if let Some(top) = chain.last() {
        config_labels.insert(
            format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
            top.clone(),
        );
    }
    put_blob(
        ctd,
        lease,
        &manifest.config,
        config_data.to_vec(),
        config_labels,
    )
    .await?;
    for (d, data, labels) in docs.iter().rev() {
        put_blob(ctd, lease, d, data.clone(), labels.clone()).await?;
    }
    Ok(())
}

/// One writer per blob in this process at a time: containerd refuses a second writer of the
/// same blob ("ref … locked"), as when two images sharing a layer are fetched at once.
fn blob_lock(digest: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    type Locks = Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .expect("blob locks");
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(l) = map.get(digest).and_then(Weak::upgrade) {
        return l;
    }
    let l = Arc::new(tokio::sync::Mutex::new(()));
    map.insert(digest.to_owned(), Arc::downgrade(&l));
    l
}

async fn put_blob(
    ctd: &Containerd,
    lease: &str,
    d: &Desc,
    data: Vec<u8>,
    labels: HashMap<String, String>,
) -> Result<(), ImageError> {
    let lock = blob_lock(&d.digest);
    let _writing = lock.lock().await;
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

async fn missing_layers(ctd: &Containerd, manifest: &Manifest) -> Result<Vec<Desc>, ImageError> {
    let mut missing: Vec<Desc> = Vec::new();
    for l in &manifest.layers {
        if !missing.iter().any(|m| m.digest == l.digest) && !ctd.content_exists(&l.digest).await? {
            missing.push(l.clone());
        }
    }
    Ok(missing)
}

// ---- registry pulls ----

/// Pulls a registry image's blobs into the content store (under the lease).
async fn pull(
    ctd: &Containerd,
    lease: &mut LazyLease<'_>,
    regs: &Registries,
    policy: &ImagePolicy,
    name: &str,
) -> Result<Fetched, ImageError> {
    let r = registry::parse_reference(name)?;
    let mut session = Session::new(&r, regs)?;
    let bad = |m: String| invalid(name, m);
    let (announced, mut data) = session
        .document(&format!("manifests/{}", r.reference), MANIFEST_TYPES)
        .await?;
    let digest = format!("sha256:{}", sha256_hex(&data));
    if r.reference.starts_with("sha256:") && r.reference != digest {
        return Err(bad(format!(
            "manifest digest {digest} is not {}",
            r.reference
        )));
    }
    let mut desc = Desc {
        media_type: announced,
        digest,
        size: data.len() as i64,
        platform: None,
        annotations: None,
    };
    let mut docs: Vec<Doc> = Vec::new();
    let manifest: Manifest = loop {
        let (kind, media) = doc_kind(&desc.media_type, &data).map_err(bad)?;
        desc.media_type = media;
        if kind == DocKind::Manifest {
            let m: Manifest = parse(name, "manifest", &data)?;
            docs.push((desc, data, manifest_labels(&m)));
            break m;
        }
        if docs.len() >= MAX_INDEX_DEPTH {
            return Err(bad("indexes nested too deep".into()));
        }
        let index: Index = parse(name, "index", &data)?;
        let next = select(&index.manifests, None, host_arch())
            .map_err(bad)?
            .clone();
        check_desc(&next, "manifest", MAX_DOCUMENT_BYTES).map_err(bad)?;
        let (_, d) = session
            .document(&format!("manifests/{}", next.digest), MANIFEST_TYPES)
            .await?;
        matches_desc(&next, &d).map_err(|m| bad(format!("manifest {m}")))?;
        docs.push((desc, data, index_labels(&next)));
        desc = next;
        data = d;
    };
    check_desc(&manifest.config, "config", MAX_DOCUMENT_BYTES).map_err(bad)?;
    let config_data: Vec<u8> = {
        let mut stream = std::pin::pin!(
            session
                .blob(&manifest.config.digest, manifest.config.size as u64)
                .await?
        );
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        out
    };
    matches_desc(&manifest.config, &config_data).map_err(|m| bad(format!("config {m}")))?;
    check_image(name, &manifest, &config_data, policy)?;
    let mut bytes = 0u64;
    // everything checked that can be before the layers: from here on, writes
    let lease = &lease.id().await?;
    for layer in missing_layers(ctd, &manifest).await? {
        let size = layer.size as u64;
        let lock = blob_lock(&layer.digest);
        let _writing = lock.lock().await;
        if ctd.content_exists(&layer.digest).await? {
            continue; // fetched meanwhile for another image
        }
        let stream = session.blob(&layer.digest, size).await?;
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
        // containerd checks the digest and the size when it commits the blob
        let written = ctd
            .write_content(lease, &layer.digest, layer.size, HashMap::new(), chunks)
            .await;
        if let Some(e) = failure.lock().expect("failure").take() {
            return Err(bad(format!("layer {}: {e}", layer.digest)));
        }
        written?;
        bytes += size;
        tracing::debug!(image = name, layer = layer.digest, bytes, "layer pulled");
    }
    write_documents(ctd, lease, name, &docs, &manifest, &config_data).await?;
    Ok(Fetched {
        docs,
        manifest,
        config: config_data,
        bytes,
    })
}

// ---- archives ----

/// Opens an archive if the policy allows it: a regular file under one of the image
/// directories, once symlinks are resolved; the opened file is checked again.
fn open_archive(path: &Path, dirs: &[PathBuf]) -> Result<File, ImageError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    let refuse = |message: String| ImageError::ArchivePath {
        path: path.display().to_string(),
        message,
    };
    let list = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let allowed: Vec<PathBuf> = dirs.iter().filter_map(|d| d.canonicalize().ok()).collect();
    let real = path.canonicalize().map_err(|e| refuse(e.to_string()))?;
    let within = |p: &Path| allowed.iter().any(|d| p.starts_with(d));
    if !within(&real) {
        let via = if real != path {
            format!(" (it resolves to {})", real.display())
        } else {
            String::new()
        };
        return Err(refuse(format!(
            "not in this node's image directories ({list}){via}"
        )));
    }
    let kind = |m: &std::fs::Metadata| {
        let t = m.file_type();
        if t.is_file() {
            None
        } else if t.is_dir() {
            Some("a directory")
        } else {
            Some("not a regular file (a FIFO, socket or device)")
        }
    };
    let meta = std::fs::metadata(&real).map_err(|e| refuse(e.to_string()))?;
    if let Some(k) = kind(&meta) {
        return Err(refuse(format!("{k}; only regular files are imported")));
    }
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(&real)
        .map_err(|e| refuse(e.to_string()))?;
    let opened = file.metadata().map_err(|e| refuse(e.to_string()))?;
    if let Some(k) = kind(&opened) {
        return Err(refuse(format!("{k}; only regular files are imported")));
    }
    let fd_path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| refuse(e.to_string()))?;
    if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) || !within(&fd_path) {
        return Err(refuse(format!(
            "changed while it was opened (now {})",
            fd_path.display()
        )));
    }
    Ok(file)
}

/// How an archive file itself is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    Plain,
    Gzip,
    Zstd,
}

fn packing_of(head: &[u8]) -> Packing {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Packing::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Packing::Zstd
    } else {
        Packing::Plain
    }
}

/// Reads a tar sequentially from an archive file: a plain one by seeking, a compressed one
/// through its decompressor.
struct TarStream<'a> {
    file: &'a File,
    packed: Option<Box<dyn Read + 'a>>,
    pos: u64,
    len: u64,
}

impl<'a> TarStream<'a> {
    fn open(file: &'a File, packing: Packing, len: u64) -> std::io::Result<Self> {
        let mut f = file;
        f.seek(SeekFrom::Start(0))?;
        let reader = std::io::BufReader::with_capacity(1 << 16, file);
        let packed: Option<Box<dyn Read + 'a>> = match packing {
            Packing::Plain => None,
            Packing::Gzip => Some(Box::new(flate2::read::MultiGzDecoder::new(reader))),
            Packing::Zstd => Some(Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)),
        };
        Ok(Self {
            file,
            packed,
            pos: 0,
            len,
        })
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match &mut self.packed {
            Some(r) => r.read(buf)?,
            None => {
                let mut f = self.file;
                f.read(buf)?
            }
        };
        self.pos += n as u64;
        Ok(n)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        let mut at = 0;
        while at < buf.len() {
            match self.read(&mut buf[at..])? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => at += n,
            }
        }
        Ok(())
    }

    /// A 512-byte block, or None at the very end.
    fn block(&mut self) -> std::io::Result<Option<[u8; 512]>> {
        let mut b = [0u8; 512];
        let mut at = 0;
        while at < 512 {
            match self.read(&mut b[at..])? {
                0 if at == 0 => return Ok(None),
                0 => return Err(std::io::Error::other("truncated tar header")),
                n => at += n,
            }
        }
        Ok(Some(b))
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        match &mut self.packed {
            Some(r) => {
                let copied = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
                self.pos += copied;
                if copied < n {
                    return Err(std::io::Error::other("truncated tar"));
                }
            }
            None => {
                if self.pos.saturating_add(n) > self.len {
                    return Err(std::io::Error::other("truncated tar"));
                }
                let mut f = self.file;
                f.seek(SeekFrom::Current(n as i64))?;
                self.pos += n;
            }
        }
        Ok(())
    }

    /// Moves to `offset` of the tar stream (forward only when compressed).
    fn seek_to(&mut self, offset: u64) -> std::io::Result<()> {
        if self.packed.is_none() {
            let mut f = self.file;
            f.seek(SeekFrom::Start(offset))?;
            self.pos = offset;
            return Ok(());
        }
        if offset < self.pos {
            return Err(std::io::Error::other("overlapping entries"));
        }
        self.skip(offset - self.pos)
    }
}

/// The data of a tar extension header (long name, pax), at most `max` bytes.
fn read_meta(t: &mut TarStream<'_>, size: u64, max: u64) -> std::io::Result<Vec<u8>> {
    if size > max {
        return Err(std::io::Error::other("tar extension header too large"));
    }
    let mut buf = vec![0u8; size as usize];
    t.read_exact(&mut buf)?;
    t.skip(padded(size) - size)?;
    Ok(buf)
}

fn padded(size: u64) -> u64 {
    size.div_ceil(512) * 512
}

/// A numeric tar header field: octal text, or GNU base-256.
fn tar_number(field: &[u8]) -> std::io::Result<u64> {
    let bad = || std::io::Error::other("bad number in a tar header");
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] != 0x80 {
            return Err(bad());
        }
        let mut v: u64 = 0;
        for &b in &field[1..] {
            v = v.checked_mul(256).ok_or_else(bad)? + b as u64;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == 0)
        .take_while(|b| *b != b' ' && *b != 0)
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| bad())?;
    u64::from_str_radix(s, 8).map_err(|_| bad())
}

fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// An archive member's path without `./`, leading or doubled slashes; None with `..`.
fn normalize_member(name: &str) -> Option<String> {
    let parts: Vec<&str> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Pax records (`LEN key=value\n`) of interest: path, linkpath, size.
fn pax_records(data: &[u8]) -> std::io::Result<HashMap<String, String>> {
    let bad = || std::io::Error::other("bad pax header");
    let mut out = HashMap::new();
    let mut rest = data;
    while !rest.is_empty() && rest[0] != 0 {
        let sp = rest.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &rest[sp + 1..len - 1];
        let eq = record.iter().position(|b| *b == b'=').ok_or_else(bad)?;
        let key = String::from_utf8_lossy(&record[..eq]).into_owned();
        if matches!(key.as_str(), "path" | "linkpath" | "size") {
            out.insert(key, String::from_utf8_lossy(&record[eq + 1..]).into_owned());
        }
        rest = &rest[len..];
    }
    Ok(out)
}

/// An archive opened and indexed: where each member's data is in the tar stream.
struct Archive {
    path: PathBuf,
    file: File,
    packing: Packing,
    len: u64,
    /// Member → (offset of its data in the tar stream, size).
    members: HashMap<String, (u64, u64)>,
    /// `index.json`.
    index: Vec<u8>,
}

impl Archive {
    /// Indexes the tar in one pass (reading `index.json`, skipping everything else).
    fn scan(path: &Path, file: File) -> std::io::Result<Archive> {
        let len = file.metadata()?.len();
        let mut head = [0u8; 4];
        let n = {
            let mut f = &file;
            f.seek(SeekFrom::Start(0))?;
            f.read(&mut head)?
        };
        let packing = packing_of(&head[..n]);
        let mut members = HashMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        let mut index = None;
        {
            let mut t = TarStream::open(&file, packing, len)?;
            let mut long_name: Option<String> = None;
            let mut long_link: Option<String> = None;
            let mut pax: HashMap<String, String> = HashMap::new();
            let mut count = 0usize;
            while let Some(h) = t.block()? {
                if h.iter().all(|b| *b == 0) {
                    break;
                }
                let stored = tar_number(&h[148..156])?;
                let unsigned: u64 = h
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        if (148..156).contains(&i) {
                            32
                        } else {
                            *b as u64
                        }
                    })
                    .sum();
                let signed: i64 = h
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        if (148..156).contains(&i) {
                            32
                        } else {
                            *b as i8 as i64
                        }
                    })
                    .sum();
                if stored != unsigned && stored as i64 != signed {
                    return Err(std::io::Error::other(format!(
                        "bad tar header checksum at offset {}",
                        t.pos - 512
                    )));
                }
                count += 1;
                if count > MAX_ARCHIVE_ENTRIES {
                    return Err(std::io::Error::other(format!(
                        "more than {MAX_ARCHIVE_ENTRIES} members"
                    )));
                }
                let typeflag = h[156];
                let mut size = tar_number(&h[124..136])?;
                match typeflag {
                    b'L' => {
                        long_name = Some(c_string(&read_meta(&mut t, size, 1 << 16)?));
                        continue;
                    }
                    b'K' => {
                        long_link = Some(c_string(&read_meta(&mut t, size, 1 << 16)?));
                        continue;
                    }
                    b'x' => {
                        pax = pax_records(&read_meta(&mut t, size, 1 << 20)?)?;
                        continue;
                    }
                    b'g' => {
                        t.skip(padded(size))?;
                        continue;
                    }
                    _ => {}
                }
                if let Some(s) = pax.get("size") {
                    size = s
                        .parse()
                        .map_err(|_| std::io::Error::other("bad pax size"))?;
                }
                let ustar = &h[257..263] == b"ustar\0";
                let name = long_name.take().or(pax.remove("path")).unwrap_or_else(|| {
                    let name = c_string(&h[..100]);
                    let prefix = c_string(&h[345..500]);
                    if ustar && !prefix.is_empty() {
                        format!("{prefix}/{name}")
                    } else {
                        name
                    }
                });
                let link = long_link
                    .take()
                    .or(pax.remove("linkpath"))
                    .unwrap_or_else(|| c_string(&h[157..257]));
                pax.clear();
                let data_at = t.pos;
                let member = normalize_member(&name);
                match (typeflag, member) {
                    (b'0' | 0 | b'7', Some(m)) if m == "index.json" => {
                        if size > MAX_DOCUMENT_BYTES {
                            return Err(std::io::Error::other(format!(
                                "index.json is larger than {MAX_DOCUMENT_BYTES} bytes"
                            )));
                        }
                        let mut buf = vec![0u8; size as usize];
                        t.read_exact(&mut buf)?;
                        t.skip(padded(size) - size)?;
                        members.insert(m, (data_at, size));
                        index = Some(buf);
                        continue;
                    }
                    (b'0' | 0 | b'7', Some(m)) => {
                        members.insert(m, (data_at, size));
                    }
                    (b'1', Some(m)) => links.push((m, link)),
                    _ => {} // directories, symlinks, devices: not blobs
                }
                t.skip(padded(size))?;
            }
        }
        for (name, target) in links {
            if let Some(loc) = normalize_member(&target).and_then(|t| members.get(&t).copied()) {
                members.insert(name, loc);
            }
        }
        let index = match index {
            Some(i) => i,
            None if members.contains_key("manifest.json") => {
                return Err(std::io::Error::other(
                    "a docker-archive (manifest.json, no index.json), not an OCI image layout; \
                     convert it: skopeo copy docker-archive:FILE oci-archive:FILE.oci.tar",
                ))
            }
            None => {
                return Err(std::io::Error::other(
                    "no index.json: not an OCI image layout",
                ))
            }
        };
        Ok(Archive {
            path: path.to_owned(),
            file,
            packing,
            len,
            members,
            index,
        })
    }

    fn blob_member(digest: &str) -> String {
        format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
    }

    /// A document blob, checked against its descriptor.
    fn document(&self, d: &Desc) -> Result<Vec<u8>, String> {
        check_desc(d, "document", MAX_DOCUMENT_BYTES)?;
        let member = Self::blob_member(&d.digest);
        let &(offset, size) = self
            .members
            .get(&member)
            .ok_or_else(|| format!("blob {} is not in the archive", d.digest))?;
        if size != d.size as u64 {
            return Err(format!(
                "blob {} is {size} bytes, its descriptor says {}",
                d.digest, d.size
            ));
        }
        let mut t =
            TarStream::open(&self.file, self.packing, self.len).map_err(|e| e.to_string())?;
        t.seek_to(offset).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; size as usize];
        t.read_exact(&mut buf)
            .map_err(|e| format!("blob {}: {e}", d.digest))?;
        matches_desc(d, &buf)?;
        Ok(buf)
    }

    /// Walks from `index.json` to one manifest (by name, platform, nested indexes).
    fn documents(
        &self,
        image: &str,
        want: Option<&str>,
    ) -> Result<(Vec<Doc>, Manifest, Vec<u8>), ImageError> {
        let bad = |m: String| invalid(image, m);
        let index: Index = parse(image, "index.json", &self.index)?;
        let mut entry = select(&index.manifests, want, host_arch())
            .map_err(bad)?
            .clone();
        let mut docs: Vec<Doc> = Vec::new();
        let manifest = loop {
            let data = self.document(&entry).map_err(bad)?;
            let (kind, media) = doc_kind(&entry.media_type, &data).map_err(bad)?;
            entry.media_type = media;
            if kind == DocKind::Manifest {
                let m: Manifest = parse(image, "manifest", &data)?;
                docs.push((entry, data, manifest_labels(&m)));
                break m;
            }
            if docs.len() >= MAX_INDEX_DEPTH {
                return Err(bad("indexes nested too deep".into()));
            }
            let inner: Index = parse(image, "index", &data)?;
            let next = select(&inner.manifests, None, host_arch())
                .map_err(bad)?
                .clone();
            docs.push((entry, data, index_labels(&next)));
            entry = next;
        };
        let config = self
            .document(&manifest.config)
            .map_err(|m| bad(format!("config: {m}")))?;
        Ok((docs, manifest, config))
    }

    /// Streams the wanted blobs, in the order they are in the tar, to `each` (descriptor and
    /// a reader of exactly its bytes).
    fn stream_blobs(
        &self,
        wanted: &[Desc],
        mut each: impl FnMut(&Desc, &mut dyn Read) -> std::io::Result<bool>,
    ) -> std::io::Result<()> {
        let mut located = Vec::new();
        for d in wanted {
            let &(offset, size) =
                self.members
                    .get(&Self::blob_member(&d.digest))
                    .ok_or_else(|| {
                        std::io::Error::other(format!("layer {} is not in the archive", d.digest))
                    })?;
            if size != d.size as u64 {
                return Err(std::io::Error::other(format!(
                    "layer {} is {size} bytes, its descriptor says {}",
                    d.digest, d.size
                )));
            }
            located.push((offset, size, d));
        }
        located.sort_by_key(|(offset, _, _)| *offset);
        let mut t = TarStream::open(&self.file, self.packing, self.len)?;
        for (offset, size, d) in located {
            t.seek_to(offset)?;
            let mut reader = TarEntry {
                t: &mut t,
                left: size,
            };
            if !each(d, &mut reader)? {
                return Ok(());
            }
            if reader.left > 0 {
                return Err(std::io::Error::other(format!(
                    "layer {}: short read",
                    d.digest
                )));
            }
        }
        Ok(())
    }
}

/// Reads exactly one member's bytes.
struct TarEntry<'t, 'a> {
    t: &'t mut TarStream<'a>,
    left: u64,
}

impl Read for TarEntry<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = self.t.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other("truncated archive"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Imports an image of an OCI image layout packed in a tar: the documents read from the
/// index down, then the missing layers streamed into the content store in 1 MiB chunks.
async fn import_archive(
    ctd: &Containerd,
    lease: &mut LazyLease<'_>,
    name: &str,
    aref: &ArchiveRef,
    policy: &ImagePolicy,
) -> Result<Fetched, ImageError> {
    let path = aref.path.clone();
    let archive_err = move |message: String| ImageError::Archive {
        path: path.clone(),
        message,
    };
    let (p, dirs, want, image) = (
        aref.path.clone(),
        policy.image_dirs.clone(),
        aref.name.clone(),
        name.to_owned(),
    );
    let (archive, docs, manifest, config) = tokio::task::spawn_blocking(move || {
        let file = open_archive(&p, &dirs)?;
        let archive = Archive::scan(&p, file).map_err(|e| ImageError::Archive {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let (docs, manifest, config) = archive.documents(&image, want.as_deref())?;
        Ok::<_, ImageError>((archive, docs, manifest, config))
    })
    .await
    .map_err(|e| archive_err(e.to_string()))??;
    check_image(name, &manifest, &config, policy)?;
    let lease = &lease.id().await?;
    let missing = missing_layers(ctd, &manifest).await?;
    let bytes = missing.iter().map(|l| l.size as u64).sum();
    if !missing.is_empty() {
        stream_layers(ctd, lease, archive, missing).await?;
    }
    write_documents(ctd, lease, name, &docs, &manifest, &config).await?;
    Ok(Fetched {
        docs,
        manifest,
        config,
        bytes,
    })
}

/// Streams the wanted layer blobs from the archive into the content store, one at a time, in
/// 1 MiB chunks, without holding a layer in memory. containerd checks each blob's digest and
/// size when it commits it.
async fn stream_layers(
    ctd: &Containerd,
    lease: &str,
    archive: Archive,
    wanted: Vec<Desc>,
) -> Result<(), ImageError> {
    let path = archive.path.clone();
    let (layer_tx, mut layer_rx) = mpsc::channel::<(Desc, mpsc::Receiver<Vec<u8>>)>(1);
    let want = wanted.clone();
    let reader = tokio::task::spawn_blocking(move || {
        archive.stream_blobs(&want, |d, r| {
            let (tx, rx) = mpsc::channel(4);
            if layer_tx.blocking_send((d.clone(), rx)).is_err() {
                return Ok(false);
            }
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    return Ok(true);
                }
                if tx.blocking_send(buf[..n].to_vec()).is_err() {
                    // this blob is not wanted any more (it is in the store already): on
                    // to the next
                    std::io::copy(r, &mut std::io::sink())?;
                    return Ok(true);
                }
            }
        })
    });
    let mut done = 0;
    let mut written = Ok(());
    while let Some((d, rx)) = layer_rx.recv().await {
        let lock = blob_lock(&d.digest);
        let _writing = lock.lock().await;
        match ctd.content_exists(&d.digest).await {
            Ok(true) => {
                done += 1; // written meanwhile for another image
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                written = Err(e);
                break;
            }
        }
        let chunks =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        written = ctd
            .write_content(lease, &d.digest, d.size, HashMap::new(), chunks)
            .await;
        if written.is_err() {
            break;
        }
        done += 1;
    }
    drop(layer_rx);
    let read = reader.await.map_err(|e| ImageError::Archive {
        path: path.clone(),
        message: e.to_string(),
    })?;
    read.map_err(|e| ImageError::Archive {
        path: path.clone(),
        message: e.to_string(),
    })?;
    written?;
    if done != wanted.len() {
        return Err(ImageError::Archive {
            path,
            message: format!("{} of {} layers missing", wanted.len() - done, wanted.len()),
        });
    }
    Ok(())
}

// ---- verified unpacking ----

/// The digest of a layer's uncompressed content, read from the content store (and
/// decompressed here as containerd's diff service does: by the first bytes).
async fn uncompressed_digest(
    ctd: &Containerd,
    image: &str,
    layer: &Desc,
    packing: LayerPacking,
) -> Result<String, ImageError> {
    let mut stream = ctd.read_content_stream(&layer.digest).await?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(4);
    let hasher = tokio::task::spawn_blocking(move || {
        hash_layer(
            ChannelReader {
                rx,
                chunk: Vec::new(),
                at: 0,
            },
            packing,
        )
    });
    while let Some(chunk) = stream.next_chunk().await? {
        if tx.send(chunk).await.is_err() {
            break; // the hasher stopped: its error says why
        }
    }
    drop(tx);
    hasher
        .await
        .map_err(|e| invalid(image, e.to_string()))?
        .map_err(|e| invalid(image, format!("layer {}: {e}", layer.digest)))
}

/// A blocking reader of chunks sent from async code.
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `sha256:` of a layer's tar: the bytes as they are for an uncompressed media type, else
/// decompressed as their first bytes say (gzip, zstd, or none), as containerd does.
fn hash_layer(mut r: impl Read, packing: LayerPacking) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(4);
    while head.len() < 4 {
        let mut b = [0u8; 4];
        let n = r.read(&mut b[..4 - head.len()])?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&b[..n]);
    }
    let kind = match packing {
        LayerPacking::Raw => Packing::Plain,
        LayerPacking::Detect => packing_of(&head),
    };
    let full = std::io::Cursor::new(head).chain(r);
    let mut out = HashWriter(Sha256::new());
    match kind {
        Packing::Plain => std::io::copy(&mut { full }, &mut out)?,
        Packing::Gzip => std::io::copy(
            &mut flate2::read::MultiGzDecoder::new(std::io::BufReader::new(full)),
            &mut out,
        )?,
        Packing::Zstd => std::io::copy(&mut zstd::stream::read::Decoder::new(full)?, &mut out)?,
    };
    Ok(format!("sha256:{}", hex(&out.0.finalize())))
}

/// A committed snapshot this nodelet verified for `diff_id` on `parent`.
fn verified(info: &snap::Info, diff_id: &str, parent: &str) -> bool {
    info.kind == snap::Kind::Committed as i32
        && info.parent == parent
        && info.labels.get(VERIFIED_LABEL).map(String::as_str) == Some(diff_id)
}

/// Unpacks the layers into committed snapshots named by chain ID, each verified against its
/// diff ID; verified snapshots are reused, others removed and rebuilt.
async fn unpack(
    ctd: &Containerd,
    lease: &mut LazyLease<'_>,
    image: &str,
    manifest: &Manifest,
    diff_ids: &[String],
    chain: &[String],
) -> Result<(), ImageError> {
    let parent_of = |i: usize| if i == 0 { "" } else { chain[i - 1].as_str() };
    let n = chain.len();
    // the top verified means all below were (a parent cannot go while it has children)
    if let Some(info) = ctd.snapshot_stat(&chain[n - 1]).await? {
        if verified(&info, &diff_ids[n - 1], parent_of(n - 1)) {
            return Ok(());
        }
    }
    for (i, layer) in manifest.layers.iter().enumerate() {
        if let Some(info) = ctd.snapshot_stat(&chain[i]).await? {
            if verified(&info, &diff_ids[i], parent_of(i)) {
                continue;
            }
            tracing::warn!(
                image,
                snapshot = chain[i],
                "snapshot not verified by this nodelet: removing it to unpack its layer again"
            );
            for j in (i..n).rev() {
                if let Some(info) = ctd.snapshot_stat(&chain[j]).await? {
                    if j > i && verified(&info, &diff_ids[j], parent_of(j)) {
                        continue;
                    }
                    ctd.snapshot_remove(&chain[j]).await.map_err(|e| {
                        invalid(
                            image,
                            format!(
                                "snapshot {} was not verified and cannot be removed (containers \
                                 or other images still use it; stop them and retry): {e}",
                                chain[j]
                            ),
                        )
                    })?;
                }
            }
        }
        apply_layer(
            ctd,
            &lease.id().await?,
            image,
            i,
            layer,
            &diff_ids[i],
            parent_of(i),
            &chain[i],
        )
        .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn apply_layer(
    ctd: &Containerd,
    lease: &str,
    image: &str,
    index: usize,
    layer: &Desc,
    diff_id: &str,
    parent: &str,
    chain_id: &str,
) -> Result<(), ImageError> {
    let packing = layer_packing(&layer.media_type).map_err(|m| invalid(image, m))?;
    let key = format!("extract-{}-{chain_id}", uuid::Uuid::new_v4().simple());
    let mounts = ctd.snapshot_prepare(Some(lease), &key, parent).await?;
    let wrong = |got: String, source_name| ImageError::WrongDiffId {
        image: image.to_owned(),
        index,
        digest: layer.digest.clone(),
        expected: diff_id.to_owned(),
        got,
        source_name,
    };
    let checked = async {
        let (applied, ours) = tokio::try_join!(
            async {
                ctd.diff_apply(lease, to_desc(layer), mounts)
                    .await
                    .map_err(ImageError::from)
            },
            uncompressed_digest(ctd, image, layer, packing),
        )?;
        if ours != diff_id {
            return Err(wrong(ours, "its content is"));
        }
        if applied.digest != diff_id {
            return Err(wrong(applied.digest, "containerd unpacked it to"));
        }
        Ok(())
    }
    .await;
    if let Err(e) = checked {
        let _ = ctd.snapshot_remove(&key).await;
        tracing::warn!(image, layer = layer.digest, error = %e, "layer refused");
        return Err(e);
    }
    let labels = HashMap::from([(VERIFIED_LABEL.to_owned(), diff_id.to_owned())]);
    match ctd.snapshot_commit(lease, &key, chain_id, labels).await {
        Ok(()) => Ok(()),
        Err(CtdError::AlreadyExists(_)) => {
            // unpacked meanwhile by another image sharing the layer
            let _ = ctd.snapshot_remove(&key).await;
            match ctd.snapshot_stat(chain_id).await? {
                Some(info) if verified(&info, diff_id, parent) => Ok(()),
                _ => Err(invalid(
                    image,
                    format!("snapshot {chain_id} appeared meanwhile without verification"),
                )),
            }
        }
        Err(e) => {
            let _ = ctd.snapshot_remove(&key).await;
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack;
    use serde_json::json;

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

    #[test]
    fn archive_references_must_be_absolute_without_dotdot_or_nul() {
        assert_eq!(check_archive_reference("busybox:latest"), Ok(()));
        assert_eq!(
            check_archive_reference("oci-archive:/var/lib/catalyst/images/a.tar"),
            Ok(())
        );
        assert_eq!(
            check_archive_reference("oci-archive:/var/lib/catalyst/images/a.tar:game:1.0"),
            Ok(())
        );
        for bad in [
            "oci-archive:",
            "oci-archive::name",
            "oci-archive:images/a.tar",
            "oci-archive:./a.tar",
            "oci-archive:/var/lib/catalyst/images/../../../etc/shadow",
            "oci-archive:/var/lib/catalyst/images/..",
            "oci-archive:/a\0.tar",
            "oci-archive:/a.tar\n",
            "oci-archive:/a.tar:",
            "oci-archive:/a.tar:bad name",
        ] {
            let e = check_archive_reference(bad).expect_err(bad);
            assert!(e.contains("image"), "{e}");
        }
    }

    #[test]
    fn an_archive_reference_names_an_image_after_the_path() {
        assert_eq!(
            parse_archive_reference("oci-archive:/i/a.tar:web"),
            Ok(Some(ArchiveRef {
                path: "/i/a.tar".into(),
                name: Some("web".into())
            }))
        );
        assert_eq!(
            parse_archive_reference("oci-archive:/i/a.tar"),
            Ok(Some(ArchiveRef {
                path: "/i/a.tar".into(),
                name: None
            }))
        );
        assert_eq!(parse_archive_reference("ghcr.io/a/b:c"), Ok(None));
    }

    #[test]
    fn archives_outside_the_image_directories_are_refused_even_through_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let images = dir.path().join("images");
        std::fs::create_dir(&images).expect("mkdir");
        let dirs = vec![images.clone(), dir.path().join("absent")];
        let inside = images.join("a.tar");
        std::fs::write(&inside, b"x").expect("write");
        assert!(open_archive(&inside, &dirs).is_ok());
        // a symlink inside to a file inside is fine
        std::os::unix::fs::symlink(&inside, images.join("b.tar")).expect("symlink");
        assert!(open_archive(&images.join("b.tar"), &dirs).is_ok());
        // to a file outside, not
        std::os::unix::fs::symlink("/etc/shadow", images.join("shadow.tar")).expect("symlink");
        let e = open_archive(&images.join("shadow.tar"), &dirs)
            .expect_err("shadow")
            .to_string();
        assert!(e.contains("shadow.tar"), "names the path: {e}");
        assert!(e.contains("/etc/shadow"), "names where it leads: {e}");
        assert!(
            e.contains(&images.display().to_string()),
            "names the directories: {e}"
        );
        let outside = dir.path().join("outside.tar");
        std::fs::write(&outside, b"x").expect("write");
        assert!(open_archive(&outside, &dirs).is_err());
        for p in ["/etc/passwd", "/dev/stdin", "/proc/self/environ"] {
            assert!(open_archive(Path::new(p), &dirs).is_err(), "{p}");
        }
        let e = open_archive(&images.join("missing.tar"), &dirs)
            .expect_err("missing")
            .to_string();
        assert!(e.contains("missing.tar"), "{e}");
    }

    #[test]
    fn fifos_devices_and_directories_in_the_image_directories_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dirs = vec![dir.path().to_owned()];
        let fifo = dir.path().join("fifo.tar");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let e = open_archive(&fifo, &dirs).expect_err("fifo").to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::os::unix::fs::symlink("/dev/null", dir.path().join("null.tar")).expect("symlink");
        assert!(open_archive(&dir.path().join("null.tar"), &dirs).is_err());
        std::fs::create_dir(dir.path().join("d.tar")).expect("mkdir");
        let e = open_archive(&dir.path().join("d.tar"), &dirs)
            .expect_err("dir")
            .to_string();
        assert!(e.contains("directory"), "{e}");
        // the image directory itself pointing at /dev: still refused
        let dev = vec![PathBuf::from("/dev")];
        let e = open_archive(Path::new("/dev/stdin"), &dev)
            .expect_err("stdin")
            .to_string();
        assert!(
            e.contains("not a regular file") || e.contains("not in"),
            "{e}"
        );
    }

    fn entry(digest: &str, platform: Option<(&str, &str)>, name: Option<&str>) -> Desc {
        Desc {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size: 1,
            platform: platform.map(|(os, arch)| Platform {
                os: os.into(),
                architecture: arch.into(),
            }),
            annotations: name.map(|n| HashMap::from([(REF_NAME.to_owned(), n.to_owned())])),
        }
    }

    #[test]
    fn the_manifest_for_this_platform_or_the_only_one_is_picked() {
        let only = [entry("sha256:a", None, None)];
        assert_eq!(
            select(&only, None, "amd64").expect("only").digest,
            "sha256:a"
        );
        let multi = [
            entry("sha256:arm", Some(("linux", "arm64")), None),
            entry("sha256:amd", Some(("linux", "amd64")), None),
            entry("sha256:att", Some(("unknown", "unknown")), None),
            entry("sha256:win", Some(("windows", "amd64")), None),
        ];
        assert_eq!(
            select(&multi, None, "amd64").expect("amd64").digest,
            "sha256:amd"
        );
        assert_eq!(
            select(&multi, None, "arm64").expect("arm64").digest,
            "sha256:arm"
        );
        let e = select(&multi[..1], None, "amd64").expect_err("arm only");
        assert!(e.contains("linux/arm64"), "{e}");
        assert!(select(&[], None, "amd64").is_err());
    }

    #[test]
    fn several_candidates_need_a_name_and_a_name_picks_its_image() {
        let two = [
            entry("sha256:one", None, Some("one")),
            entry("sha256:two", None, Some("two")),
        ];
        let e = select(&two, None, "amd64").expect_err("ambiguous");
        assert!(
            e.contains("one, two") && e.contains("oci-archive:PATH:NAME"),
            "{e}"
        );
        assert_eq!(
            select(&two, Some("two"), "amd64").expect("two").digest,
            "sha256:two"
        );
        let e = select(&two, Some("three"), "amd64").expect_err("absent");
        assert!(e.contains("\"three\"") && e.contains("one, two"), "{e}");
        let twins = [
            entry("sha256:x", Some(("linux", "amd64")), Some("x")),
            entry("sha256:y", Some(("linux", "amd64")), Some("y")),
        ];
        assert!(select(&twins, None, "amd64").is_err());
        assert_eq!(
            select(&twins, Some("y"), "amd64").expect("y").digest,
            "sha256:y"
        );
        // containerd's and buildx's annotation names an image too
        let mut c = entry("sha256:c", None, None);
        c.annotations = Some(HashMap::from([(
            CONTAINERD_NAME.to_owned(),
            "docker.io/library/game:1".to_owned(),
        )]));
        let with_c = [c, entry("sha256:d", None, Some("d"))];
        assert_eq!(
            select(&with_c, Some("docker.io/library/game:1"), "amd64")
                .expect("by containerd name")
                .digest,
            "sha256:c"
        );
    }

    #[test]
    fn documents_are_told_apart_by_media_type_or_shape() {
        let m = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(
            doc_kind(DOCKER_MANIFEST, m).expect("docker").0,
            DocKind::Manifest
        );
        assert_eq!(doc_kind("", m).expect("shape").0, DocKind::Manifest);
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(doc_kind(DOCKER_LIST, i).expect("list").0, DocKind::Index);
        assert_eq!(
            doc_kind("application/json", i).expect("shape").0,
            DocKind::Index
        );
        let own = format!(r#"{{"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(
            doc_kind(OCI_MANIFEST, own.as_bytes()).is_err(),
            "announced otherwise"
        );
        assert!(doc_kind("", br#"{"schemaVersion":1,"fsLayers":[]}"#).is_err());
        assert!(doc_kind("application/vnd.cncf.helm.config.v1+json", m).is_err());
        assert!(doc_kind("", b"not json").is_err());
    }

    #[test]
    fn layer_media_types_of_both_flavours_are_known() {
        assert_eq!(
            layer_packing("application/vnd.oci.image.layer.v1.tar"),
            Ok(LayerPacking::Raw)
        );
        for t in [
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        ] {
            assert_eq!(layer_packing(t), Ok(LayerPacking::Detect), "{t}");
        }
        assert!(layer_packing("application/vnd.oci.image.layer.v1.tar+bzip2").is_err());
        assert!(layer_packing("").is_err());
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    #[test]
    fn diff_ids_are_the_digest_of_the_uncompressed_tar() {
        let tar = pack::layer(&[pack::Entry::File("pwned".into(), b"yes".to_vec(), 0o644)])
            .expect("layer");
        let want = pack::digest(&tar);
        let hash = |data: &[u8], p| hash_layer(data, p).expect("hash");
        assert_eq!(hash(&tar, LayerPacking::Raw), want);
        assert_eq!(hash(&tar, LayerPacking::Detect), want);
        assert_eq!(hash(&gzip(&tar), LayerPacking::Detect), want);
        let zst = zstd::stream::encode_all(tar.as_slice(), 3).expect("zstd");
        assert_eq!(hash(&zst, LayerPacking::Detect), want);
        // two gzip members, as pigz or concatenation make
        let (a, b) = tar.split_at(700);
        let mut two = gzip(a);
        two.extend(gzip(b));
        assert_eq!(hash(&two, LayerPacking::Detect), want);
        // gzip bytes under an uncompressed media type are taken as they are
        assert_eq!(
            hash(&gzip(&tar), LayerPacking::Raw),
            pack::digest(&gzip(&tar))
        );
        // corrupt gzip fails
        let mut broken = gzip(&tar);
        let n = broken.len();
        broken.truncate(n - 10);
        assert!(hash_layer(broken.as_slice(), LayerPacking::Detect).is_err());
    }

    fn image_blobs() -> pack::ImageBlobs {
        let layer = pack::layer(&[
            pack::Entry::Dir("bin".into(), 0o755),
            pack::Entry::File("hello".into(), b"hi\n".to_vec(), 0o644),
        ])
        .expect("layer");
        let config = pack::config(&[pack::digest(&layer)], &["sh"]);
        pack::ImageBlobs::new(config, vec![layer])
    }

    fn index_json(manifests: &[(&pack::ImageBlobs, Option<&str>)]) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": manifests.iter().map(|(b, name)| {
                let mut e = json!({"mediaType": OCI_MANIFEST,
                    "digest": pack::digest(&b.manifest), "size": b.manifest.len()});
                if let Some(n) = name {
                    e["annotations"] = json!({REF_NAME: n});
                }
                e
            }).collect::<Vec<_>>(),
        }))
        .expect("json")
    }

    /// Members: (path, entry type, data). Paths as given (`./`, directories, long names).
    fn tar_of(members: &[(String, tar::EntryType, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            if *kind == tar::EntryType::Link {
                h.set_size(0);
                b.append_link(
                    &mut h,
                    "link",
                    data.as_slice()
                        .iter()
                        .map(|c| *c as char)
                        .collect::<String>(),
                )
                .expect("link");
                continue;
            }
            if path.len() <= 100 {
                // as written, `./` and all: the tar crate would normalise the path
                h.as_old_mut().name = [0; 100];
                h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, data.as_slice()).expect("append");
            } else {
                b.append_data(&mut h, path, data.as_slice())
                    .expect("append");
            }
        }
        b.into_inner().expect("tar")
    }

    fn layout_members(
        blobs: &[&pack::ImageBlobs],
        index: Vec<u8>,
        prefix: &str,
    ) -> Vec<(String, tar::EntryType, Vec<u8>)> {
        use tar::EntryType::{Directory, Regular};
        let mut m = vec![
            (prefix.to_string(), Directory, vec![]),
            (
                format!("{prefix}oci-layout"),
                Regular,
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            (format!("{prefix}blobs/"), Directory, vec![]),
            (format!("{prefix}blobs/sha256/"), Directory, vec![]),
        ];
        for b in blobs {
            for blob in b.layers.iter().chain([&b.config, &b.manifest]) {
                m.push((
                    format!("{prefix}blobs/sha256/{}", sha256_hex(blob)),
                    Regular,
                    blob.clone(),
                ));
            }
        }
        m.push((format!("{prefix}index.json"), Regular, index));
        m
    }

    fn scan_bytes(data: &[u8]) -> std::io::Result<Archive> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.tar");
        std::fs::write(&p, data).expect("write");
        Archive::scan(&p, File::open(&p).expect("open"))
    }

    fn layers_of(a: &Archive, m: &Manifest) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        a.stream_blobs(&m.layers, |_, r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v)?;
            out.push(v);
            Ok(true)
        })
        .expect("stream");
        out
    }

    #[test]
    fn layouts_with_directory_entries_and_dot_slash_prefixes_are_read() {
        let img = image_blobs();
        for prefix in ["./", ""] {
            let tar = tar_of(&layout_members(
                &[&img],
                index_json(&[(&img, None)]),
                prefix,
            ));
            let a = scan_bytes(&tar).expect("scan");
            let (docs, m, config) = a.documents("t", None).expect("documents");
            assert_eq!(docs.len(), 1);
            assert_eq!(docs[0].0.digest, pack::digest(&img.manifest));
            assert_eq!(config, img.config);
            assert_eq!(layers_of(&a, &m), img.layers);
        }
    }

    #[test]
    fn gzip_and_zstd_compressed_archives_are_read() {
        let img = image_blobs();
        let tar = tar_of(&layout_members(&[&img], index_json(&[(&img, None)]), "./"));
        for packed in [
            gzip(&tar),
            zstd::stream::encode_all(tar.as_slice(), 3).expect("zstd"),
        ] {
            let a = scan_bytes(&packed).expect("scan");
            assert_ne!(a.packing, Packing::Plain);
            let (_, m, config) = a.documents("t", None).expect("documents");
            assert_eq!(config, img.config);
            assert_eq!(layers_of(&a, &m), img.layers);
        }
    }

    #[test]
    fn several_images_in_one_archive_are_picked_by_name() {
        let one = image_blobs();
        let layer =
            pack::layer(&[pack::Entry::File("two".into(), b"2".to_vec(), 0o644)]).expect("layer");
        let two =
            pack::ImageBlobs::new(pack::config(&[pack::digest(&layer)], &["sh"]), vec![layer]);
        let index = index_json(&[(&one, Some("one")), (&two, Some("two"))]);
        let a = scan_bytes(&tar_of(&layout_members(&[&one, &two], index, "./"))).expect("scan");
        let e = a.documents("t", None).expect_err("ambiguous").to_string();
        assert!(e.contains("one, two"), "{e}");
        let (_, _, config) = a.documents("t", Some("two")).expect("two");
        assert_eq!(config, two.config);
    }

    #[test]
    fn a_nested_index_is_followed() {
        let img = image_blobs();
        let inner = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": pack::digest(&img.manifest),
             "size": img.manifest.len(), "platform": {"os": "linux", "architecture": host_arch()}},
            {"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "0".repeat(64)),
             "size": 10, "platform": {"os": "linux", "architecture": "s390x"}},
        ]}))
        .expect("json");
        let outer = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [
            {"mediaType": OCI_INDEX, "digest": pack::digest(&inner), "size": inner.len(),
             "annotations": {REF_NAME: "multi"}}]}))
        .expect("json");
        let mut members = layout_members(&[&img], outer, "");
        members.push((
            format!("blobs/sha256/{}", sha256_hex(&inner)),
            tar::EntryType::Regular,
            inner.clone(),
        ));
        let a = scan_bytes(&tar_of(&members)).expect("scan");
        let (docs, _, config) = a.documents("t", Some("multi")).expect("nested");
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].2["containerd.io/gc.ref.content.m.0"],
            pack::digest(&img.manifest)
        );
        assert_eq!(config, img.config);
    }

    #[test]
    fn long_names_pax_paths_and_hard_links_are_followed() {
        let img = image_blobs();
        let mut members = layout_members(&[&img], index_json(&[(&img, None)]), "./");
        // the config under a GNU long name (a path of more than 100 bytes)
        let config_path = format!(
            "./././././././././././././././././././././blobs/sha256/{}",
            sha256_hex(&img.config)
        );
        assert!(config_path.len() > 100);
        for m in members.iter_mut() {
            if m.2 == img.config {
                m.0 = config_path.clone();
            }
        }
        // the layer as a hard link to a member with another name
        let layer_hex = sha256_hex(&img.layers[0]);
        members.retain(|m| m.0 != format!("./blobs/sha256/{layer_hex}"));
        members.push((
            "./stash".into(),
            tar::EntryType::Regular,
            img.layers[0].clone(),
        ));
        let mut tar = tar_of(&members);
        // append, before the end blocks, a pax header naming the manifest
        let manifest_hex = sha256_hex(&img.manifest);
        let end = tar.len() - 1024;
        tar.truncate(end);
        let mut b = tar::Builder::new(tar);
        let record = |k: &str, v: &str| {
            let body = format!(" {k}={v}\n");
            let mut n = body.len() + 1;
            if format!("{n}{body}").len() != n {
                n += 1;
            }
            format!("{n}{body}")
        };
        let pax = record("path", &format!("blobs/sha256/{manifest_hex}"));
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(pax.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "PaxHeaders/m", pax.as_bytes())
            .expect("pax");
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(img.manifest.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "truncated-name", img.manifest.as_slice())
            .expect("manifest");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, format!("blobs/sha256/{layer_hex}"), "stash")
            .expect("link");
        let tar = b.into_inner().expect("tar");
        let a = scan_bytes(&tar).expect("scan");
        let (_, m, config) = a.documents("t", None).expect("documents");
        assert_eq!(config, img.config);
        assert_eq!(layers_of(&a, &m), img.layers);
    }

    #[test]
    fn blobs_that_do_not_match_their_descriptor_are_refused() {
        let img = image_blobs();
        let mut members = layout_members(&[&img], index_json(&[(&img, None)]), "");
        for m in members.iter_mut() {
            if m.2 == img.config {
                m.2 = pack::config(&[format!("sha256:{}", "1".repeat(64))], &["sh"]);
            }
        }
        let a = scan_bytes(&tar_of(&members)).expect("scan");
        let e = a.documents("t", None).expect_err("mismatch").to_string();
        assert!(e.contains("config"), "{e}");
        // a layer whose size is not its descriptor's
        let (_, mut m, _) = {
            let ok = scan_bytes(&tar_of(&layout_members(
                &[&img],
                index_json(&[(&img, None)]),
                "",
            )))
            .expect("scan");
            ok.documents("t", None).expect("documents")
        };
        m.layers[0].size += 1;
        let ok = scan_bytes(&tar_of(&layout_members(
            &[&img],
            index_json(&[(&img, None)]),
            "",
        )))
        .expect("scan");
        assert!(ok.stream_blobs(&m.layers, |_, _| Ok(true)).is_err());
    }

    #[test]
    fn docker_archives_truncated_and_corrupt_tars_are_refused_with_a_reason() {
        let docker = tar_of(&[(
            "manifest.json".into(),
            tar::EntryType::Regular,
            b"[]".to_vec(),
        )]);
        let e = scan_bytes(&docker).err().expect("docker").to_string();
        assert!(e.contains("docker-archive"), "{e}");
        let img = image_blobs();
        let tar = tar_of(&layout_members(&[&img], index_json(&[(&img, None)]), ""));
        let e = scan_bytes(&tar[..tar.len() / 2])
            .err()
            .expect("truncated")
            .to_string();
        assert!(e.contains("truncated") || e.contains("index.json"), "{e}");
        let mut corrupt = tar.clone();
        corrupt[5] ^= 0xff;
        let e = scan_bytes(&corrupt).err().expect("corrupt").to_string();
        assert!(e.contains("checksum"), "{e}");
    }

    #[test]
    fn tar_numbers_are_octal_or_base_256() {
        assert_eq!(tar_number(b"00000001750\0").expect("octal"), 1000);
        assert_eq!(tar_number(b"        \0\0\0\0").expect("blank"), 0);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[7] = 0x02; // 2 << 32
        assert_eq!(tar_number(&big).expect("base-256"), 2 << 32);
        assert!(tar_number(&[0xff; 12]).is_err());
    }

    fn manifest_of(img: &pack::ImageBlobs) -> Manifest {
        serde_json::from_slice(&img.manifest).expect("manifest")
    }

    #[test]
    fn images_with_wrong_layer_counts_or_over_the_limit_are_refused() {
        let img = image_blobs();
        let policy = ImagePolicy::default();
        assert!(check_image("t", &manifest_of(&img), &img.config, &policy).is_ok());
        let two = pack::config(&[pack::digest(&img.layers[0]), pack::digest(b"x")], &["sh"]);
        let e = check_image("t", &manifest_of(&img), &two, &policy)
            .expect_err("counts")
            .to_string();
        assert!(e.contains("1 layers but 2 diff_ids"), "{e}");
        let small = ImagePolicy {
            max_pull_bytes: 100,
            ..ImagePolicy::default()
        };
        let e = check_image("t", &manifest_of(&img), &img.config, &small)
            .expect_err("limit")
            .to_string();
        assert!(e.contains("over this node's limit of 100 bytes"), "{e}");
        let bad_id = pack::config(&["sha256:zz".to_owned()], &["sh"]);
        assert!(check_image("t", &manifest_of(&img), &bad_id, &policy).is_err());
        let mut m = manifest_of(&img);
        m.layers[0].digest = "sha256:../../etc".into();
        assert!(check_image("t", &m, &img.config, &policy).is_err());
        let mut m = manifest_of(&img);
        m.layers[0].size = -1;
        assert!(check_image("t", &m, &img.config, &policy).is_err());
    }

    #[test]
    fn member_paths_are_normalised_and_dotdot_is_dropped() {
        assert_eq!(
            normalize_member("./blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(
            normalize_member("/blobs//sha256/./ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(
            normalize_member("blobs/sha256/").as_deref(),
            Some("blobs/sha256")
        );
        assert_eq!(normalize_member("../index.json"), None);
    }
}
