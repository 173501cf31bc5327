//! Unit tests of the image module: references, policy, documents, archives, layer digests.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::archive::Archive;
use super::oci::{
    check_image, doc_kind, layer_packing, sha256_hex, DocKind, LayerPacking, Manifest,
    CONTAINERD_NAME, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, REF_NAME,
};
use super::policy::open_archive;
use super::resolve::{host_arch, select, ManifestWalk, Step};
use super::tarball::{normalize_member, tar_number, Packing};
use super::unpack::hash_layer;
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
    let tar =
        pack::layer(&[pack::Entry::File("pwned".into(), b"yes".to_vec(), 0o644)]).expect("layer");
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
    let two = pack::ImageBlobs::new(pack::config(&[pack::digest(&layer)], &["sh"]), vec![layer]);
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

#[test]
fn the_walk_follows_at_most_four_nested_indexes_to_the_manifest() {
    let img = image_blobs();
    // `n` indexes, each naming the next document, then the manifest
    let chain_of = |n: usize| {
        let mut chain = vec![img.manifest.clone()];
        for i in 0..n {
            let media = if i == 0 { OCI_MANIFEST } else { OCI_INDEX };
            let to = chain.last().expect("doc");
            chain.push(
                serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                    "manifests": [{"mediaType": media, "digest": pack::digest(to),
                    "size": to.len()}]}))
                .expect("json"),
            );
        }
        chain.reverse();
        chain
    };
    let top = |data: &[u8]| {
        let mut d = entry(&pack::digest(data), None, None);
        d.media_type = OCI_INDEX.into();
        d
    };
    let chain = chain_of(4);
    let mut walk = ManifestWalk::new("t", top(&chain[0]));
    for (i, data) in chain.iter().enumerate() {
        match walk.step(data.clone()).expect("step") {
            Step::Fetch(next) => assert_eq!(next.digest, pack::digest(&chain[i + 1])),
            Step::Done(m) => {
                assert_eq!(i, 4);
                assert_eq!(m.layers.len(), 1);
            }
        }
    }
    let docs = walk.into_docs();
    assert_eq!(docs.len(), 5);
    assert_eq!(docs[0].1, chain[0]);
    assert_eq!(docs[4].0.media_type, OCI_MANIFEST);
    // a fifth index is refused
    let chain = chain_of(5);
    let mut walk = ManifestWalk::new("t", top(&chain[0]));
    for data in chain.iter().take(4) {
        assert!(matches!(walk.step(data.clone()), Ok(Step::Fetch(_))));
    }
    let e = walk
        .step(chain[4].clone())
        .expect_err("too deep")
        .to_string();
    assert!(e.contains("nested too deep"), "{e}");
}

/// A registry on loopback serving one image (`games/slow:1`), its layer 256 KiB at a time
/// with 50 ms between chunks. Returns its host:port.
async fn slow_registry(
    img: std::sync::Arc<pack::ImageBlobs>,
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let img = img.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                let (body, media): (&[u8], &str) = if path == "/v2/games/slow/manifests/1" {
                    (&img.manifest, "application/vnd.oci.image.manifest.v1+json")
                } else if let Some(b) = path
                    .strip_prefix("/v2/games/slow/blobs/")
                    .and_then(|d| img.blob(d))
                {
                    (b, "application/octet-stream")
                } else {
                    let _ = conn
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                };
                let header = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {media}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if conn.write_all(header.as_bytes()).await.is_err() {
                    return;
                }
                for chunk in body.chunks(256 << 10) {
                    if conn.write_all(chunk).await.is_err() {
                        return;
                    }
                    let _ = conn.flush().await;
                    if body.len() > 1 << 20 {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
                let _ = conn.shutdown().await;
            });
        }
    });
    (host, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_pull_reports_its_progress_while_the_layer_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctd_proc = crate::supervisor::start(&dir.path().join("ctd"))
        .await
        .expect("containerd");
    let ctd = crate::ctd::Containerd::connect(&ctd_proc.socket)
        .await
        .expect("connect");
    // 4 MiB of noise in one layer: 16 chunks, about 0.8 s
    let mut data = vec![0u8; 4 << 20];
    let mut x = 0x2545_f491_u32;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let layer = pack::layer(&[pack::Entry::File("noise".into(), data, 0o644)]).expect("layer");
    let total = layer.len() as u64;
    let config = pack::config(&[pack::digest(&layer)], &["sh"]);
    let img = std::sync::Arc::new(pack::ImageBlobs::new(config, vec![layer]));
    let (host, server) = slow_registry(img).await;
    let name = format!("{host}/games/slow:1");
    let (tx, mut rx) = tokio::sync::watch::channel(None);
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while rx.changed().await.is_ok() {
            if let Some(p) = *rx.borrow_and_update() {
                seen.push(p);
            }
        }
        seen
    });
    let regs = crate::registry::Registries::load(None, vec![]).expect("registries");
    let policy = ImagePolicy::for_data_dir(dir.path());
    let (_, fetched) = ensure_with(&ctd, &regs, &policy, &name, Some(std::sync::Arc::new(tx)))
        .await
        .expect("pull");
    let seen = seen.await.expect("progress reader");
    assert_eq!(fetched, Some(total));
    assert!(
        seen.iter()
            .filter(|&&(d, t)| t == total && d > 0 && d < total)
            .count()
            >= 2,
        "progress while streaming: {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert_eq!(seen.last(), Some(&(total, total)));
    server.abort();
    ctd_proc.shutdown().await;
}
