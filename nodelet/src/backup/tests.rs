use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::files::testutil::Fixture;

/// Every entry under `dir`: a file's content, a link's target, or `dir` (links not followed).
fn manifest(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(base).expect("base").display().to_string();
            let meta = std::fs::symlink_metadata(&p).expect("meta");
            if meta.is_symlink() {
                let t = std::fs::read_link(&p).expect("link");
                out.insert(rel, format!("-> {}", t.display()));
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &p, out);
            } else {
                let b = std::fs::read(&p).expect("file");
                out.insert(rel, format!("{:x}", Sha256::digest(&b)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn store() -> (tempfile::TempDir, Backups) {
    let dir = tempfile::tempdir().expect("tmp");
    let b = Backups::new(&dir.path().join("backups"));
    (dir, b)
}

fn world(fx: &Fixture) {
    fx.file("world/level.dat", b"level");
    fx.file("world/region/r.0.0.mca", &vec![7u8; 300_000]);
    fx.file("server.properties", b"motd=hi\n");
    fx.file("cache/big.tmp", b"ignored by the ignore file");
    fx.file("logs/latest.log", b"ignored by the Backup's pattern");
    fx.file(".catalystignore", b"# a comment\ncache/\n*.tmp\n");
    fx.link("etc-link", "/etc");
    fx.link("world/inner", "level.dat");
    std::fs::create_dir_all(fx.p("empty/deeper")).expect("empty dirs");
    fx.own();
}

#[test]
fn a_backup_keeps_the_tree_leaves_out_the_ignored_and_restores_byte_for_byte() {
    let fx = Fixture::new();
    world(&fx);
    let (_tmp, b) = store();
    let told = std::cell::Cell::new(0u64);
    let made = b
        .create(&fx.root, "srv", "b1", Some(&["logs/".into()]), &|n| {
            told.set(n)
        })
        .expect("backup");
    let archive = b.archive_path("srv", "b1").expect("path");
    let bytes = std::fs::read(&archive).expect("archive");
    assert_eq!(made.size, bytes.len() as u64);
    assert_eq!(made.sha256, format!("{:x}", Sha256::digest(&bytes)));
    assert_eq!(made.report.links, 2);
    let before = manifest(&fx.data);

    // the files change, the game deletes some and writes others
    fx.file("world/level.dat", b"griefed");
    std::fs::remove_dir_all(fx.p("world/region")).expect("rm");
    std::fs::remove_file(fx.p("etc-link")).expect("rm");
    fx.file("new.txt", b"made after the backup");
    b.restore(&fx.root, "srv", "b1", &made.sha256, true)
        .expect("restore");
    let mut expected = before.clone();
    // what was left out of the backup is gone after a truncating restore
    for gone in ["cache", "cache/big.tmp", "logs", "logs/latest.log"] {
        assert!(expected.remove(gone).is_some(), "{gone} was there");
    }
    assert_eq!(manifest(&fx.data), expected);
    // owned by the server, and nothing of the restore's own left behind
    let own = std::fs::symlink_metadata(fx.p("world/level.dat")).expect("meta");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&own),
        crate::files::testutil::UID
    );
    fx.outside_untouched();
}

#[test]
fn a_restore_without_truncate_keeps_what_the_backup_does_not_hold() {
    let fx = Fixture::new();
    fx.file("a/one.txt", b"one");
    fx.file("two.txt", b"two");
    let (_tmp, b) = store();
    let made = b
        .create(&fx.root, "srv", "b2", Some(&[]), &|_| {})
        .expect("backup");
    fx.file("a/one.txt", b"changed");
    fx.file("a/new.txt", b"new");
    b.restore(&fx.root, "srv", "b2", &made.sha256, false)
        .expect("restore");
    assert_eq!(std::fs::read(fx.p("a/one.txt")).expect("one"), b"one");
    assert_eq!(std::fs::read(fx.p("a/new.txt")).expect("new"), b"new");
    assert_eq!(std::fs::read(fx.p("two.txt")).expect("two"), b"two");
    assert_eq!(fx.tree(), ["a/", "a/new.txt", "a/one.txt", "two.txt"]);
}

#[test]
fn a_restore_refuses_an_archive_that_is_not_the_recorded_one() {
    let fx = Fixture::new();
    fx.file("keep.txt", b"keep");
    let (_tmp, b) = store();
    let made = b
        .create(&fx.root, "srv", "b3", Some(&[]), &|_| {})
        .expect("backup");
    fx.file("keep.txt", b"current");
    let wrong = "0".repeat(64);
    let err = b
        .restore(&fx.root, "srv", "b3", &wrong, true)
        .expect_err("checksum");
    assert!(matches!(err, BackupError::Checksum { .. }), "{err}");
    assert_eq!(err.status(), 409);
    assert_eq!(std::fs::read(fx.p("keep.txt")).expect("keep"), b"current");
    assert_ne!(made.sha256, wrong);
}

/// Writes a crafted tar.zst as backup `id` (the bucket or the node's disk was tampered with,
/// and the Backup's SHA-256 was made to match); its SHA-256.
fn crafted(b: &Backups, id: &str, build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> String {
    let mut t = tar::Builder::new(Vec::new());
    build(&mut t);
    let tar = t.into_inner().expect("tar");
    let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
    let path = b.archive_path("srv", id).expect("path");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(&path, &zst).expect("write");
    format!("{:x}", Sha256::digest(&zst))
}

fn raw_entry(
    t: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    // names set raw, as a hostile tool writes them (the builder's checks refuse `..`)
    let field = &mut h.as_old_mut().name;
    field[..name.len()].copy_from_slice(name.as_bytes());
    if !link.is_empty() {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    t.append(&h, data).expect("append");
}

/// Writes the members of a crafted archive.
type Build = Box<dyn FnOnce(&mut tar::Builder<Vec<u8>>)>;

#[test]
fn a_crafted_backup_is_refused_whole_and_changes_nothing() {
    let fx = Fixture::new();
    fx.file("keep.txt", b"keep");
    let before = manifest(&fx.data);
    let (_tmp, b) = store();
    let cases: Vec<(&str, Build)> = vec![
        (
            "dotdot",
            Box::new(|t| {
                raw_entry(
                    t,
                    "../outside/secret",
                    tar::EntryType::Regular,
                    "",
                    b"pwned",
                )
            }),
        ),
        (
            "absolute",
            Box::new(|t| raw_entry(t, "/tmp/catalyst-pwned", tar::EntryType::Regular, "", b"x")),
        ),
        (
            "hardlink",
            Box::new(|t| raw_entry(t, "h", tar::EntryType::Link, "/etc/shadow", b"")),
        ),
        (
            "through-a-link",
            Box::new(|t| {
                // a link to outside, then a file "through" it: links are made last, so the
                // file lands in a real directory and the link then finds its name taken
                raw_entry(t, "up", tar::EntryType::Symlink, "../outside", b"");
                raw_entry(t, "up/secret", tar::EntryType::Regular, "", b"pwned");
            }),
        ),
        (
            "device",
            Box::new(|t| raw_entry(t, "dev", tar::EntryType::Char, "", b"")),
        ),
    ];
    for (id, build) in cases {
        let sha = crafted(&b, id, build);
        let err = b.restore(&fx.root, "srv", id, &sha, true).expect_err(id);
        assert!(
            matches!(err.status(), 403 | 409 | 400),
            "{id}: {err} ({})",
            err.status()
        );
        assert_eq!(manifest(&fx.data), before, "{id} changed nothing");
        fx.outside_untouched();
    }
}

#[test]
fn ids_are_plain_names() {
    let (_tmp, b) = store();
    for bad in ["", "..", "a/b", "a\0", &"x".repeat(65)] {
        assert!(matches!(
            b.archive_path("srv", bad),
            Err(BackupError::BadId(_))
        ));
        assert!(matches!(
            b.archive_path(bad, "ok"),
            Err(BackupError::BadId(_))
        ));
    }
    assert!(matches!(
        b.open("srv", "missing"),
        Err(BackupError::NotFound(_))
    ));
    assert!(!b.remove("srv", "missing").expect("remove"));
}

#[test]
fn a_swap_that_fails_midway_is_undone() {
    let fx = Fixture::new();
    fx.file("a/one.txt", b"one");
    fx.file("keep.txt", b"keep");
    let (_tmp, b) = store();
    let made = b
        .create(&fx.root, "srv", "b5", Some(&[]), &|_| {})
        .expect("backup");
    // a directory the server's uid cannot move (root's, as no server file ever is): the
    // truncating swap moves `a` aside, then fails on it
    fx.file("a/one.txt", b"changed");
    // (after the fixture's last chown of the tree)
    std::fs::create_dir(fx.p("zz-root")).expect("dir");
    std::fs::write(fx.p("zz-root/f"), b"root's").expect("file");
    let before = manifest(&fx.data);
    let err = b
        .restore(&fx.root, "srv", "b5", &made.sha256, true)
        .expect_err("the swap fails");
    assert_eq!(err.status(), 403, "{err}");
    assert_eq!(
        manifest(&fx.data),
        before,
        "everything is back where it was"
    );
    fx.outside_untouched();
}
