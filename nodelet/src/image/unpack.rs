//! Verified unpacking: each layer applied by containerd's diff service onto a snapshot of its
//! parent while the digest of its uncompressed content is computed here; both must be the
//! configuration's diff ID before the snapshot is committed under its chain ID, labelled as
//! verified. Verified snapshots are reused, others removed and rebuilt.

use std::collections::HashMap;
use std::io::{Read, Write};

use containerd_client::services::v1::snapshots as snap;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::error::{invalid, ImageError};
use super::oci::{hex, layer_packing, to_desc, Desc, LayerPacking, Manifest};
use super::store::LazyLease;
use super::tarball::{packing_of, Packing};
use crate::ctd::{Containerd, CtdError};

/// The label a committed snapshot carries once its layer's diff ID was verified.
pub const VERIFIED_LABEL: &str = "catalyst.dev/verified";

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
pub(super) fn hash_layer(mut r: impl Read, packing: LayerPacking) -> std::io::Result<String> {
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
pub(super) async fn unpack(
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
