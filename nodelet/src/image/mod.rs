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
//!
//! The parts, each importing only those listed before it: `error` (the error type),
//! `policy` (image directories, size cap, `oci-archive:` references), `oci` (documents and
//! their checks), `resolve` (index → manifest, shared by every source), `tarball` (the tar
//! reader), `store` (containerd's content store), `pull` (registries), `archive`
//! (`oci-archive:` files), `unpack` (verified snapshots); this module puts them together.

mod archive;
mod error;
mod oci;
mod policy;
mod pull;
mod resolve;
mod store;
mod tarball;
mod unpack;

#[cfg(test)]
mod tests;

use containerd_client::types::Descriptor;

use crate::ctd::Containerd;
use crate::registry::Registries;

pub use error::ImageError;
pub use oci::{chain_ids, Desc, ImageConfig, Platform, RunConfig};
pub use policy::{
    check_archive_reference, parse_archive_reference, ArchiveRef, ImagePolicy, DEFAULT_IMAGE_DIR,
    DEFAULT_MAX_PULL_BYTES,
};
pub use unpack::VERIFIED_LABEL;

use archive::import_archive;
use error::invalid;
use oci::{check_image, to_desc};
use pull::pull;
pub use store::Progress;
use store::{stored_documents, LazyLease};
use unpack::unpack;

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

/// True when containerd has an image of this name.
pub async fn present(ctd: &Containerd, reference: &str) -> Result<bool, ImageError> {
    Ok(ctd.image_get(reference).await?.is_some())
}

/// Makes sure `reference` is in containerd and unpacked with every layer verified; returns
/// what a container needs and, when it had to be fetched, how many layer bytes came. A pull
/// reports its layer bytes to `progress`.
pub async fn ensure_with(
    ctd: &Containerd,
    regs: &Registries,
    policy: &ImagePolicy,
    reference: &str,
    progress: Option<Progress>,
) -> Result<(Image, Option<u64>), ImageError> {
    let archive =
        parse_archive_reference(reference).map_err(|message| ImageError::ArchivePath {
            path: reference.trim_start_matches("oci-archive:").to_owned(),
            message,
        })?;
    let existing = ctd.image_get(reference).await?;
    let mut lease = LazyLease::new(ctd);
    let result = async {
        let (fetched, manifest, config_data) = match &existing {
            Some(target) => {
                let (manifest, config) = stored_documents(ctd, reference, target.clone()).await?;
                (None, manifest, config)
            }
            None => {
                let f = match &archive {
                    Some(a) => import_archive(ctd, &mut lease, reference, a, policy).await?,
                    None => pull(ctd, &mut lease, regs, policy, reference, progress).await?,
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

/// The bytes an image holds on this node: its layer blobs, configuration and manifest in the
/// content store and its unpacked snapshots (layers shared with other images counted in full).
pub async fn footprint(
    ctd: &Containerd,
    name: &str,
    target: Descriptor,
) -> Result<u64, ImageError> {
    let mut bytes = target.size.max(0) as u64;
    let (manifest, config_data) = stored_documents(ctd, name, target).await?;
    bytes += config_data.len() as u64;
    for layer in &manifest.layers {
        bytes += ctd.content_size(&layer.digest).await?.unwrap_or(0);
    }
    let config: ImageConfig = oci::parse(name, "image configuration", &config_data)?;
    for id in chain_ids(&config.rootfs.diff_ids) {
        bytes += ctd.snapshot_usage(&id).await?;
    }
    Ok(bytes)
}
