//! Registry pulls: the documents fetched through the registry client and walked down to the
//! manifest, then the missing layers streamed into containerd's content store.

use std::collections::HashMap;

use futures::StreamExt;

use super::error::{invalid, ImageError};
use super::oci::{check_desc, check_image, matches_desc, sha256_hex, Desc};
use super::policy::ImagePolicy;
use super::resolve::{ManifestWalk, Step};
use super::store::{blob_lock, missing_layers, write_documents, Fetched, LazyLease, Progress};
use crate::ctd::Containerd;
use crate::registry::{self, Registries, Session, MANIFEST_TYPES, MAX_DOCUMENT_BYTES};

/// Pulls a registry image's blobs into the content store (under the lease).
pub(super) async fn pull(
    ctd: &Containerd,
    lease: &mut LazyLease<'_>,
    regs: &Registries,
    policy: &ImagePolicy,
    name: &str,
    progress: Option<Progress>,
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
    let top = Desc {
        media_type: announced,
        digest,
        size: data.len() as i64,
        platform: None,
        annotations: None,
    };
    let mut walk = ManifestWalk::new(name, top);
    let manifest = loop {
        match walk.step(data)? {
            Step::Done(m) => break m,
            Step::Fetch(next) => {
                check_desc(&next, "manifest", MAX_DOCUMENT_BYTES).map_err(bad)?;
                let (_, d) = session
                    .document(&format!("manifests/{}", next.digest), MANIFEST_TYPES)
                    .await?;
                matches_desc(&next, &d).map_err(|m| bad(format!("manifest {m}")))?;
                data = d;
            }
        }
    };
    let docs = walk.into_docs();
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
    let missing = missing_layers(ctd, &manifest).await?;
    let total: u64 = missing.iter().map(|l| l.size.max(0) as u64).sum();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(p) = &progress {
        p.send_replace(Some((0, total)));
    }
    for layer in missing {
        let size = layer.size as u64;
        let lock = blob_lock(&layer.digest);
        let _writing = lock.lock().await;
        if ctd.content_exists(&layer.digest).await? {
            // fetched meanwhile for another image
            let now = done.fetch_add(size, std::sync::atomic::Ordering::Relaxed) + size;
            if let Some(p) = &progress {
                p.send_replace(Some((now, total)));
            }
            continue;
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
        let (done2, progress2) = (done.clone(), progress.clone());
        let chunks = chunks.inspect(move |c| {
            let now = done2.fetch_add(c.len() as u64, std::sync::atomic::Ordering::Relaxed)
                + c.len() as u64;
            if let Some(p) = &progress2 {
                p.send_replace(Some((now, total)));
            }
        });
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
