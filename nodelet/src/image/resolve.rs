//! From an index to one image manifest: which entry of an index is this node's image (by name,
//! by platform), and the walk down nested indexes that every source of images (a registry, an
//! `oci-archive:` file, containerd's own store) shares.

use std::collections::HashMap;

use super::error::{invalid, ImageError};
use super::oci::{doc_kind, parse, Desc, DocKind, Index, Manifest, CONTAINERD_NAME, REF_NAME};

/// Indexes nested deeper than this are refused.
const MAX_INDEX_DEPTH: usize = 4;

pub(super) fn host_arch() -> &'static str {
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
pub(super) fn select<'a>(
    entries: &'a [Desc],
    want: Option<&str>,
    arch: &str,
) -> Result<&'a Desc, String> {
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

/// A document of the chain from the image's target to its manifest: its descriptor, bytes and
/// the GC labels containerd expects on it.
pub(super) type Doc = (Desc, Vec<u8>, HashMap<String, String>);

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

/// Where a [`ManifestWalk`] is after a document.
#[derive(Debug)]
pub(super) enum Step {
    /// The document was an index: fetch this entry of it, check it against the descriptor, and
    /// step again with its bytes.
    Fetch(Desc),
    /// The document was the image manifest: the walk is over.
    Done(Manifest),
}

/// The walk from an image's top document down nested indexes to its manifest, written once for
/// every source of documents: the caller fetches (from a registry, an archive or containerd's
/// content store, each checking what it fetched against the descriptor), the walk decides what
/// comes next. At each index the entry for this machine's platform (or the only one) is taken;
/// at most [`MAX_INDEX_DEPTH`] indexes are followed.
#[derive(Debug)]
pub(super) struct ManifestWalk<'a> {
    image: &'a str,
    current: Desc,
    docs: Vec<Doc>,
}

impl<'a> ManifestWalk<'a> {
    /// A walk of `image` starting at the document `top` names.
    pub(super) fn new(image: &'a str, top: Desc) -> Self {
        Self {
            image,
            current: top,
            docs: Vec::new(),
        }
    }

    /// Takes the bytes of the current document (as named by the last [`Step::Fetch`], or the top
    /// one): records it with its media type settled and its GC labels, and says what is next.
    pub(super) fn step(&mut self, data: Vec<u8>) -> Result<Step, ImageError> {
        let image = self.image;
        let bad = |m: String| invalid(image, m);
        let (kind, media) = doc_kind(&self.current.media_type, &data).map_err(bad)?;
        let mut desc = self.current.clone();
        desc.media_type = media;
        if kind == DocKind::Manifest {
            let m: Manifest = parse(image, "manifest", &data)?;
            self.docs.push((desc, data, manifest_labels(&m)));
            return Ok(Step::Done(m));
        }
        if self.docs.len() >= MAX_INDEX_DEPTH {
            return Err(bad("indexes nested too deep".into()));
        }
        let index: Index = parse(image, "index", &data)?;
        let next = select(&index.manifests, None, host_arch())
            .map_err(bad)?
            .clone();
        self.docs.push((desc, data, index_labels(&next)));
        self.current = next.clone();
        Ok(Step::Fetch(next))
    }

    /// The documents walked, from the top one to the manifest.
    pub(super) fn into_docs(self) -> Vec<Doc> {
        self.docs
    }
}
