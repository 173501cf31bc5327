//! `oci-archive:` imports: an OCI image layout packed in a tar, indexed in one pass, its
//! documents read from `index.json` down to the manifest, its missing layers streamed into
//! containerd's content store.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::error::{invalid, ImageError};
use super::oci::{check_desc, check_image, matches_desc, parse, Desc, Index, Manifest};
use super::policy::{open_archive, ArchiveRef, ImagePolicy};
use super::resolve::{host_arch, select, Doc, ManifestWalk, Step};
use super::store::{blob_lock, missing_layers, write_documents, Fetched, LazyLease};
use super::tarball::{normalize_member, packing_of, padded, Packing, TarEntry, TarStream};
use crate::ctd::Containerd;
use crate::registry::MAX_DOCUMENT_BYTES;

/// An archive opened and indexed: where each member's data is in the tar stream.
pub(super) struct Archive {
    path: PathBuf,
    file: File,
    /// How the archive file is compressed.
    pub(super) packing: Packing,
    len: u64,
    /// Member → (offset of its data in the tar stream, size).
    members: HashMap<String, (u64, u64)>,
    /// `index.json`.
    index: Vec<u8>,
}

impl Archive {
    /// Indexes the tar in one pass (reading `index.json`, skipping everything else).
    pub(super) fn scan(path: &Path, file: File) -> std::io::Result<Archive> {
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
            while let Some(h) = t.next_member()? {
                let size = h.size;
                match (h.typeflag, normalize_member(&h.name)) {
                    (b'0' | 0 | b'7', Some(m)) if m == "index.json" => {
                        if size > MAX_DOCUMENT_BYTES {
                            return Err(std::io::Error::other(format!(
                                "index.json is larger than {MAX_DOCUMENT_BYTES} bytes"
                            )));
                        }
                        let mut buf = vec![0u8; size as usize];
                        t.read_exact(&mut buf)?;
                        t.skip(padded(size) - size)?;
                        members.insert(m, (h.data_at, size));
                        index = Some(buf);
                        continue;
                    }
                    (b'0' | 0 | b'7', Some(m)) => {
                        members.insert(m, (h.data_at, size));
                    }
                    (b'1', Some(m)) => links.push((m, h.link)),
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
    pub(super) fn documents(
        &self,
        image: &str,
        want: Option<&str>,
    ) -> Result<(Vec<Doc>, Manifest, Vec<u8>), ImageError> {
        let bad = |m: String| invalid(image, m);
        let index: Index = parse(image, "index.json", &self.index)?;
        let entry = select(&index.manifests, want, host_arch())
            .map_err(bad)?
            .clone();
        let mut walk = ManifestWalk::new(image, entry.clone());
        let mut data = self.document(&entry).map_err(bad)?;
        let manifest = loop {
            match walk.step(data)? {
                Step::Done(m) => break m,
                Step::Fetch(next) => data = self.document(&next).map_err(bad)?,
            }
        };
        let config = self
            .document(&manifest.config)
            .map_err(|m| bad(format!("config: {m}")))?;
        Ok((walk.into_docs(), manifest, config))
    }

    /// Streams the wanted blobs, in the order they are in the tar, to `each` (descriptor and
    /// a reader of exactly its bytes).
    pub(super) fn stream_blobs(
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

/// Imports an image of an OCI image layout packed in a tar: the documents read from the
/// index down, then the missing layers streamed into the content store in 1 MiB chunks.
pub(super) async fn import_archive(
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
