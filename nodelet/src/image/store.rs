//! Writing an image into containerd's content store and reading it back: the lease writes go
//! under, one writer per blob, the documents written with the GC labels that keep an image's
//! blobs and snapshots alive, and the manifest and configuration of an image already stored.

use std::collections::HashMap;

use containerd_client::types::Descriptor;

use super::error::{invalid, ImageError};
use super::oci::{chain_ids, check_desc, parse, Desc, ImageConfig, Manifest};
use super::resolve::{Doc, ManifestWalk, Step};
use crate::ctd::{Containerd, CtdError, SNAPSHOTTER};
use crate::registry::{valid_digest, MAX_DOCUMENT_BYTES};

/// Where a registry pull reports the layer bytes it has streamed and the bytes it streams in
/// all: `(done, total)`, updated with every chunk (readers throttle).
pub type Progress = std::sync::Arc<tokio::sync::watch::Sender<Option<(u64, u64)>>>;

/// What a fetch (pull or import) found, with the layers in the content store.
#[derive(Debug)]
pub(super) struct Fetched {
    /// The documents from the top one to the manifest.
    pub(super) docs: Vec<Doc>,
    /// The manifest.
    pub(super) manifest: Manifest,
    /// The configuration's bytes.
    pub(super) config: Vec<u8>,
    /// The layer bytes written.
    pub(super) bytes: u64,
}

/// A lease taken on first use: deleting a lease lets containerd collect garbage, so none is
/// taken when nothing is written (an image already unpacked).
pub(super) struct LazyLease<'a> {
    ctd: &'a Containerd,
    id: Option<String>,
}

impl<'a> LazyLease<'a> {
    /// No lease yet: one is taken on the first [`LazyLease::id`].
    pub(super) fn new(ctd: &'a Containerd) -> Self {
        Self { ctd, id: None }
    }
}

impl LazyLease<'_> {
    /// The lease, taken now if it was not yet.
    pub(super) async fn id(&mut self) -> Result<String, CtdError> {
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
    pub(super) async fn release(self) {
        if let Some(id) = self.id {
            if let Err(e) = self.ctd.lease_delete(&id, true).await {
                tracing::warn!(lease = id, error = %e, "lease not deleted");
            }
        }
    }
}

/// The manifest and configuration of an image already in containerd.
pub(super) async fn stored_documents(
    ctd: &Containerd,
    image: &str,
    target: Descriptor,
) -> Result<(Manifest, Vec<u8>), ImageError> {
    let mut next = Desc {
        media_type: target.media_type,
        digest: target.digest,
        size: target.size,
        platform: None,
        annotations: None,
    };
    let mut walk = ManifestWalk::new(image, next.clone());
    loop {
        if next.size < 0 || next.size as u64 > MAX_DOCUMENT_BYTES || !valid_digest(&next.digest) {
            return Err(invalid(image, format!("stored document {}", next.digest)));
        }
        let data = ctd.read_content(&next.digest).await?;
        match walk.step(data)? {
            Step::Fetch(d) => next = d,
            Step::Done(manifest) => {
                check_desc(&manifest.config, "config", MAX_DOCUMENT_BYTES)
                    .map_err(|m| invalid(image, m))?;
                let config = ctd.read_content(&manifest.config.digest).await?;
                return Ok((manifest, config));
            }
        }
    }
}

/// With the layers in the content store: writes the config (labelled with its top snapshot)
/// and the documents that point at it (labelled with their references, so containerd's GC
/// keeps everything an image needs).
pub(super) async fn write_documents(
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
pub(super) fn blob_lock(digest: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
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

/// Writes one whole blob under the lease, labelled.
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

/// The layers of `manifest` the content store lacks, each once.
pub(super) async fn missing_layers(
    ctd: &Containerd,
    manifest: &Manifest,
) -> Result<Vec<Desc>, ImageError> {
    let mut missing: Vec<Desc> = Vec::new();
    for l in &manifest.layers {
        if !missing.iter().any(|m| m.digest == l.digest) && !ctd.content_exists(&l.digest).await? {
            missing.push(l.clone());
        }
    }
    Ok(missing)
}
