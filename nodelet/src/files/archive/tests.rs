//! Tests of archives: real files on temporary directories, as root, with the data directory
//! owned by an unprivileged uid. Hostile archives are built by hand (tar and zip crates, raw
//! zip bytes) and by the real `tar`, `zip` and Python's `zipfile`, so the checks don't only
//! agree with our own writer.

use std::io::{Cursor, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use super::*;
use crate::files::testutil::{Fixture, GID, UID};

// ---- helpers ----------------------------------------------------------------------------------

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).expect("meta").mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Runs a command line tool, which must succeed.
fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `/tmp/x` is now (inode and change time), to see that nothing made or touched it.
fn tmp_x() -> Option<(u64, i64)> {
    std::fs::symlink_metadata("/tmp/x")
        .ok()
        .map(|m| (m.ino(), m.ctime()))
}

/// Extracting `archive` into `dest` is refused before anything is written: the data directory,
/// the outside directory and `/tmp/x` are as they were, and the error names `member`.
fn assert_refused(fx: &Fixture, archive: &str, member: &str) {
    let before = fx.tree();
    let x = tmp_x();
    let e = extract(&fx.root, archive, "dest", &ExtractLimits::default()).expect_err(archive);
    assert!(matches!(e, FsError::Refused { .. }), "{archive}: {e:?}");
    assert_eq!(e.status(), 403);
    assert!(e.to_string().contains(member), "{archive}: {e}");
    assert_eq!(fx.tree(), before, "{archive}: nothing written");
    fx.outside_untouched();
    assert_eq!(tmp_x(), x, "{archive}: /tmp/x untouched");
}

/// A tar member with a raw name (not checked by the tar crate's builder).
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: &'a str,
    data: &'a [u8],
}

fn raw(name: &str) -> Raw<'_> {
    Raw {
        name,
        kind: tar::EntryType::Regular,
        link: "",
        data: b"pwned\n",
    }
}

fn raw_tar(members: &[Raw<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().expect("gnu");
            gnu.name[..m.name.len()].copy_from_slice(m.name.as_bytes());
            gnu.linkname[..m.link.len()].copy_from_slice(m.link.as_bytes());
        }
        h.set_entry_type(m.kind);
        h.set_mode(0o644);
        h.set_size(m.data.len() as u64);
        h.set_cksum();
        b.append(&h, m.data).expect("append");
    }
    b.into_inner().expect("tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gz");
    gz.finish().expect("gz")
}

fn zip_of(build: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    build(&mut z);
    z.finish().expect("zip").into_inner()
}

fn opts() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
}

/// A raw deflate stream of `mib` MiB of zeros, built fast: one sync-flushed MiB repeated,
/// then an empty final block. About 1 KiB per MiB.
fn deflated_zeros(mib: u64) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 1 << 20]).expect("deflate");
    enc.flush().expect("sync flush");
    let chunk = enc.get_ref().clone();
    let mut out = Vec::with_capacity(chunk.len() * mib as usize + 2);
    for _ in 0..mib {
        out.extend_from_slice(&chunk);
    }
    // a final fixed-Huffman block holding only its end: BFINAL=1, BTYPE=01, EOB
    out.extend_from_slice(&[0x03, 0x00]);
    out
}

/// The CRC-32 of `mib` MiB of zeros, by combining (no need to hash gigabytes).
fn crc_of_zeros(mib: u64) -> u32 {
    let mut one = flate2::Crc::new();
    one.update(&vec![0u8; 1 << 20]);
    let mut total = flate2::Crc::new();
    let mut power = one;
    let mut n = mib;
    while n > 0 {
        if n & 1 == 1 {
            total.combine(&power);
        }
        let copy = {
            let mut c = flate2::Crc::new();
            c.combine(&power);
            c
        };
        power.combine(&copy);
        n >>= 1;
    }
    total.sum()
}

/// A zip of one deflated member, written by hand with zip64 fields, declaring `declared`
/// uncompressed bytes whatever `data` expands to.
fn raw_zip(name: &str, data: &[u8], crc: u32, declared: u64) -> Vec<u8> {
    let mut z = Vec::new();
    let n = u16::try_from(name.len()).expect("name");
    let csize = data.len() as u64;
    let (le16, le32, le64) = (u16::to_le_bytes, u32::to_le_bytes, u64::to_le_bytes);
    // local header
    z.extend(le32(0x0403_4b50));
    z.extend(le16(45));
    z.extend(le16(0));
    z.extend(le16(8));
    z.extend(le16(0));
    z.extend(le16(0x21));
    z.extend(le32(crc));
    z.extend(le32(u32::MAX));
    z.extend(le32(u32::MAX));
    z.extend(le16(n));
    z.extend(le16(20));
    z.extend(name.as_bytes());
    z.extend(le16(1));
    z.extend(le16(16));
    z.extend(le64(declared));
    z.extend(le64(csize));
    z.extend(data);
    // central directory
    let cd = z.len() as u64;
    z.extend(le32(0x0201_4b50));
    z.extend(le16((3 << 8) | 45));
    z.extend(le16(45));
    z.extend(le16(0));
    z.extend(le16(8));
    z.extend(le16(0));
    z.extend(le16(0x21));
    z.extend(le32(crc));
    z.extend(le32(u32::MAX));
    z.extend(le32(u32::MAX));
    z.extend(le16(n));
    z.extend(le16(28));
    z.extend(le16(0));
    z.extend(le16(0));
    z.extend(le16(0));
    z.extend(le32(0o100_644 << 16));
    z.extend(le32(u32::MAX));
    z.extend(name.as_bytes());
    z.extend(le16(1));
    z.extend(le16(24));
    z.extend(le64(declared));
    z.extend(le64(csize));
    z.extend(le64(0));
    let cd_size = z.len() as u64 - cd;
    // zip64 end of central directory, its locator, the end of central directory
    let eocd64 = z.len() as u64;
    z.extend(le32(0x0606_4b50));
    z.extend(le64(44));
    z.extend(le16((3 << 8) | 45));
    z.extend(le16(45));
    z.extend(le32(0));
    z.extend(le32(0));
    z.extend(le64(1));
    z.extend(le64(1));
    z.extend(le64(cd_size));
    z.extend(le64(cd));
    z.extend(le32(0x0706_4b50));
    z.extend(le32(0));
    z.extend(le64(eocd64));
    z.extend(le32(1));
    z.extend(le32(0x0605_4b50));
    z.extend(le16(0));
    z.extend(le16(0));
    z.extend(le16(u16::MAX));
    z.extend(le16(u16::MAX));
    z.extend(le32(u32::MAX));
    z.extend(le32(u32::MAX));
    z.extend(le16(0));
    z
}

// ---- formats and names ------------------------------------------------------------------------

#[test]
fn formats_by_name_and_by_spelling() {
    use ArchiveFormat as F;
    for (s, f) in [
        ("tar", F::Tar),
        ("tar.gz", F::TarGz),
        ("TGZ", F::TarGz),
        (".tar.zst", F::TarZst),
        ("tzst", F::TarZst),
        ("zip", F::Zip),
    ] {
        assert_eq!(ArchiveFormat::parse(s), Some(f), "{s}");
    }
    assert_eq!(ArchiveFormat::parse("rar"), None);
    for (n, f) in [
        ("/a/world.tar", Some(F::Tar)),
        ("w.TAR.GZ", Some(F::TarGz)),
        ("w.tgz", Some(F::TarGz)),
        ("w.tar.zst", Some(F::TarZst)),
        ("w.tzst", Some(F::TarZst)),
        ("w.zip", Some(F::Zip)),
        ("w.gz", None),
        ("w.zst", None),
        ("zip", None),
    ] {
        assert_eq!(ArchiveFormat::from_name(n), f, "{n}");
    }
    assert_eq!(
        serde_json::to_string(&F::TarGz).expect("json"),
        "\"tar.gz\""
    );
}

#[test]
fn member_names_are_checked_and_cleaned() {
    for (raw, clean) in [
        ("a", "a"),
        ("./a/./b", "a/b"),
        ("a//b/", "a/b"),
        ("./", ""),
        (".", ""),
    ] {
        assert_eq!(check_name(raw).as_deref(), Ok(clean), "{raw}");
    }
    for raw in [
        "../x",
        "../../x",
        "a/../../x",
        "a/../b",
        "..",
        "/etc/passwd",
        "/tmp/x",
        "a\0b",
    ] {
        assert!(check_name(raw).is_err(), "{raw}");
    }
    assert!(check_name(&"a".repeat(256)).is_err());
}

// ---- round trips ------------------------------------------------------------------------------

/// A tree with files of several modes, an empty directory, and what must not be packed: a
/// link leading outside, a FIFO, a temporary upload.
fn sample_tree(fx: &Fixture) {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fx.file("world/level.dat", b"level");
    fx.file("world/region/r.0.0.mca", &big);
    fx.file("world/run.sh", b"#!/bin/sh\necho hi\n");
    fx.file("world/.catalyst-upload-0123", b"half an upload");
    fx.file("server.properties", b"motd=hi\n");
    std::fs::create_dir_all(fx.p("world/empty")).expect("dir");
    fx.link("world/etc", "/etc");
    fx.link("world/out", "../../outside");
    nix::unistd::mkfifo(
        &fx.p("world/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("fifo");
    chmod(&fx.p("world/run.sh"), 0o755);
    chmod(&fx.p("world/region/r.0.0.mca"), 0o600);
    chmod(&fx.p("world/empty"), 0o750);
    fx.own();
}

/// What a restored sample tree must hold under `base` (host path), with modes.
fn assert_restored(base: &Path) {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let read = |rel: &str| std::fs::read(base.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(read("world/level.dat"), b"level");
    assert_eq!(read("world/region/r.0.0.mca"), big);
    assert_eq!(read("world/run.sh"), b"#!/bin/sh\necho hi\n");
    assert_eq!(read("server.properties"), b"motd=hi\n");
    assert_eq!(mode_of(&base.join("world/level.dat")), 0o644);
    assert_eq!(mode_of(&base.join("world/run.sh")), 0o755);
    assert_eq!(mode_of(&base.join("world/region/r.0.0.mca")), 0o600);
    assert_eq!(mode_of(&base.join("world/empty")), 0o750);
    assert_eq!(mode_of(&base.join("world")), 0o755);
    for skipped in [
        "world/etc",
        "world/out",
        "world/fifo",
        "world/.catalyst-upload-0123",
    ] {
        assert!(
            std::fs::symlink_metadata(base.join(skipped)).is_err(),
            "{skipped} is not packed"
        );
    }
    let meta = std::fs::metadata(base.join("world/level.dat")).expect("meta");
    assert_eq!((meta.uid(), meta.gid()), (UID, GID), "owned by the server");
}

#[test]
fn every_format_round_trips_contents_and_modes() {
    for format in [
        ArchiveFormat::Tar,
        ArchiveFormat::TarGz,
        ArchiveFormat::TarZst,
        ArchiveFormat::Zip,
    ] {
        let fx = Fixture::new();
        sample_tree(&fx);
        let dest = format!("backups/world.{}", format.extension());
        std::fs::create_dir(fx.p("backups")).expect("backups");
        fx.own();
        let paths = ["/world".to_owned(), "server.properties".to_owned()];
        let entry = compress(&fx.root, &paths, &dest, None).expect("compress");
        assert_eq!(entry.path, format!("/{dest}"));
        assert_eq!(
            entry.size,
            std::fs::metadata(fx.p(&dest)).expect("meta").len()
        );
        assert_eq!(fx.root.stat(&dest).expect("stat").uid, UID);
        let report = extract(&fx.root, &dest, "restore", &ExtractLimits::default())
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_restored(&fx.p("restore"));
        assert_eq!(report.files, 4, "{format:?}");
        // restore, world, region, empty
        assert_eq!(report.directories, 4, "{format:?}");
        assert_eq!(report.bytes, 5 + 300_000 + 18 + 8, "{format:?}");
        fx.outside_untouched();

        // what the real tools make of our archive
        let host = fx.p(&dest);
        let host = host.to_str().expect("utf-8");
        let listing = match format {
            ArchiveFormat::Zip => Command::new("unzip").args(["-Z1", host]).output(),
            ArchiveFormat::TarZst => Command::new("tar").args(["--zstd", "-tf", host]).output(),
            _ => Command::new("tar").args(["-tf", host]).output(),
        }
        .expect("list");
        assert!(listing.status.success(), "{format:?}: {listing:?}");
        let listing = String::from_utf8_lossy(&listing.stdout);
        for member in [
            "world/level.dat",
            "world/region/r.0.0.mca",
            "server.properties",
        ] {
            assert!(
                listing.lines().any(|l| l == member),
                "{format:?}: {member} in {listing}"
            );
        }
        assert!(
            !listing.contains("fifo") && !listing.contains("etc"),
            "{listing}"
        );
        if format == ArchiveFormat::Zip {
            run(&fx.data, "unzip", &["-tq", host]);
        }
    }
}

#[test]
fn compress_names_members_from_the_parent_and_checks_its_arguments() {
    let fx = Fixture::new();
    fx.file("saves/deep/world/level.dat", b"level");
    fx.file("saves/deep/world/.catalyst-upload-1", b"tmp");
    fx.file("other/world/x", b"x");
    // a format given explicitly wins over the name; extraction sniffs the content
    compress(
        &fx.root,
        &["/saves/deep/world".to_owned()],
        "archive.bin",
        Some(ArchiveFormat::TarGz),
    )
    .expect("compress");
    extract(&fx.root, "archive.bin", "out", &ExtractLimits::default()).expect("extract");
    assert_eq!(
        std::fs::read(fx.p("out/world/level.dat")).expect("read"),
        b"level"
    );
    assert!(!fx.p("out/world/.catalyst-upload-1").exists());
    // the whole root, into itself: the archive being written is not packed
    compress(&fx.root, &["/".to_owned()], "all.zip", None).expect("root");
    extract(&fx.root, "all.zip", "copy", &ExtractLimits::default()).expect("extract all");
    assert_eq!(
        std::fs::read(fx.p("copy/saves/deep/world/level.dat")).expect("read"),
        b"level"
    );
    assert!(!fx.p("copy/all.zip").exists());

    let e = compress(&fx.root, &["/saves".to_owned()], "x.rar", None).expect_err("format");
    assert_eq!(e.status(), 400);
    let e = compress(&fx.root, &[], "x.zip", None).expect_err("nothing");
    assert_eq!(e.status(), 400);
    let two = ["/saves/deep/world".to_owned(), "/other/world".to_owned()];
    let e = compress(&fx.root, &two, "x.zip", None).expect_err("same name");
    assert_eq!(e.status(), 400);
    let e = compress(&fx.root, &["/nope".to_owned()], "x.zip", None).expect_err("missing");
    assert_eq!(e.status(), 404);
    let e = compress(&fx.root, &["/../outside".to_owned()], "x.zip", None).expect_err("escape");
    assert_eq!(e.status(), 403);
    // a destination through a link that leads outside
    fx.link("evil", "../outside");
    let e = compress(&fx.root, &["/saves".to_owned()], "evil/x.zip", None).expect_err("escape");
    assert!(matches!(e, FsError::Escapes { .. }), "{e:?}");
    assert!(!fx.p("x.zip").exists() && !fx.p("x.rar").exists());
    fx.outside_untouched();
}

#[test]
fn archives_of_the_real_tools_extract() {
    let fx = Fixture::new();
    let scratch = tempfile::tempdir().expect("scratch");
    let s = scratch.path();
    std::fs::create_dir_all(s.join("world/region")).expect("dirs");
    std::fs::write(s.join("world/level.dat"), b"level").expect("write");
    std::fs::write(s.join("world/region/r.mca"), vec![7u8; 100_000]).expect("write");
    std::fs::write(s.join("world/run.sh"), b"run").expect("write");
    chmod(&s.join("world/run.sh"), 0o750);
    run(s, "tar", &["-czf", "w.tgz", "world"]);
    run(s, "tar", &["--zstd", "-cf", "w.tar.zst", "world"]);
    run(s, "tar", &["-C", "world", "-cf", "dot.tar", "."]);
    run(s, "zip", &["-qr", "w.zip", "world"]);
    for (name, prefix) in [
        ("w.tgz", "world/"),
        ("w.tar.zst", "world/"),
        ("dot.tar", ""),
        ("w.zip", "world/"),
    ] {
        fx.file(name, &std::fs::read(s.join(name)).expect("read"));
        let dest = format!("x-{name}");
        extract(&fx.root, name, &dest, &ExtractLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let base = fx.p(&dest).join(prefix);
        assert_eq!(std::fs::read(base.join("level.dat")).expect(name), b"level");
        assert_eq!(
            std::fs::read(base.join("region/r.mca")).expect(name),
            vec![7u8; 100_000]
        );
        assert_eq!(mode_of(&base.join("run.sh")), 0o750, "{name}");
    }
    fx.outside_untouched();
}

// ---- hostile archives -------------------------------------------------------------------------

#[test]
fn hand_made_hostile_tars_are_refused_whole() {
    let fx = Fixture::new();
    use tar::EntryType as T;
    let ok = raw("innocent.txt");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("slip.tar", raw_tar(&[raw("ok/../../x")]), "`..`"),
        ("slip2.tar", raw_tar(&[ok, raw("../../x")]), "../../x"),
        ("abs.tar", raw_tar(&[raw("/tmp/x")]), "/tmp/x"),
        (
            "hard.tar",
            raw_tar(&[Raw {
                name: "passwd",
                kind: T::Link,
                link: "/etc/passwd",
                data: b"",
            }]),
            "hard link",
        ),
        (
            "sym.tar",
            raw_tar(&[
                Raw {
                    name: "link",
                    kind: T::Symlink,
                    link: "/etc",
                    data: b"",
                },
                raw("link/passwd"),
            ]),
            "symbolic link",
        ),
        (
            "fifo.tar",
            raw_tar(&[Raw {
                name: "fifo",
                kind: T::Fifo,
                link: "",
                data: b"",
            }]),
            "FIFO",
        ),
        (
            "dev.tar",
            raw_tar(&[Raw {
                name: "sda",
                kind: T::Block,
                link: "",
                data: b"",
            }]),
            "device",
        ),
        (
            "sym.tar.gz",
            gzip(&raw_tar(&[
                raw("first.txt"),
                Raw {
                    name: "link",
                    kind: T::Symlink,
                    link: "/etc",
                    data: b"",
                },
                raw("link/passwd"),
            ])),
            "symbolic link",
        ),
    ];
    for (name, bytes, _) in &cases {
        fx.file(name, bytes);
    }
    for (name, _, member) in &cases {
        assert_refused(&fx, name, member);
    }
    // a long name larger than the metadata allowance: refused, not read into memory
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().expect("gnu").name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(T::GNULongName);
    h.set_size(2 << 20);
    h.set_cksum();
    b.append(&h, &vec![b'a'; 2 << 20][..]).expect("append");
    b.append(&raw_tar_header("x", 1), &b"x"[..])
        .expect("append");
    fx.file("long.tar", &b.into_inner().expect("tar"));
    assert_refused(&fx, "long.tar", "too large");
}

fn raw_tar_header(name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    h
}

#[test]
fn hand_made_hostile_zips_are_refused_whole() {
    let fx = Fixture::new();
    let file = |z: &mut zip::ZipWriter<Cursor<Vec<u8>>>, name: &str| {
        z.start_file(name, opts()).expect("start");
        z.write_all(b"pwned\n").expect("write");
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "slip.zip",
            zip_of(|z| {
                file(z, "innocent.txt");
                file(z, "../../x");
            }),
            "../../x",
        ),
        ("abs.zip", zip_of(|z| file(z, "/tmp/x")), "/tmp/x"),
        ("backslash.zip", zip_of(|z| file(z, "..\\..\\x")), "`..`"),
        (
            "sym.zip",
            zip_of(|z| {
                z.add_symlink("link", "/etc", opts()).expect("symlink");
                file(z, "link/passwd");
            }),
            "symbolic link",
        ),
        (
            "fifo.zip",
            zip_of(|z| {
                // a FIFO's mode, as Info-ZIP would record it
                z.start_file("fifo", opts()).expect("start");
            }),
            "",
        ),
    ];
    // the zip crate keeps only permission bits; patch the FIFO's type into the central
    // directory's external attributes by hand
    let mut cases = cases;
    let fifo = &mut cases[4].1;
    let cd = fifo
        .windows(4)
        .rposition(|w| w == b"PK\x01\x02")
        .expect("central directory");
    let attr = cd + 38;
    let mode = u32::from_le_bytes(fifo[attr..attr + 4].try_into().expect("attr")) >> 16;
    fifo[attr..attr + 4].copy_from_slice(&(((mode & 0o777) | 0o010_000) << 16).to_le_bytes());
    cases[4].2 = "FIFO";
    for (name, bytes, _) in &cases {
        fx.file(name, bytes);
    }
    for (name, _, member) in &cases {
        assert_refused(&fx, name, member);
    }
}

#[test]
fn hostile_archives_of_the_real_tools_are_refused_whole() {
    let fx = Fixture::new();
    let scratch = tempfile::tempdir().expect("scratch");
    let s = scratch.path();
    std::fs::write(s.join("x"), b"pwned\n").expect("x");
    std::fs::write(s.join("f"), b"f\n").expect("f");
    std::fs::hard_link(s.join("f"), s.join("g")).expect("link");
    std::os::unix::fs::symlink("/etc", s.join("link")).expect("symlink");
    std::fs::write(s.join("passwd"), b"root::0:0::/:/bin/sh\n").expect("passwd");
    std::fs::create_dir_all(s.join("in/side")).expect("dirs");
    // GNU tar keeps `..` and absolute names with -P, and renames with --transform
    run(
        s,
        "tar",
        &[
            "-P",
            "--transform",
            "s,^x$,../../x,",
            "-cf",
            "slip.tar",
            "x",
        ],
    );
    run(
        s,
        "tar",
        &["-P", "--transform", "s,^x$,/tmp/x,", "-cf", "abs.tar", "x"],
    );
    // g: a hard link whose target is renamed to /etc/passwd
    run(
        s,
        "tar",
        &[
            "-P",
            "--transform",
            "s,^f$,/etc/passwd,RSh",
            "-cf",
            "hard.tar",
            "f",
            "g",
        ],
    );
    run(
        s,
        "tar",
        &[
            "--transform",
            "s,^passwd$,link/passwd,",
            "-cf",
            "sym.tar",
            "link",
            "passwd",
        ],
    );
    run(s, "tar", &["-czf", "sym.tgz", "link"]);
    // Info-ZIP stores `../../x` as given, and symbolic links with --symlinks
    run(
        &s.join("in/side"),
        "zip",
        &["-q", "../../slip.zip", "../../x"],
    );
    run(s, "zip", &["-q", "--symlinks", "sym.zip", "link", "passwd"]);
    // Python's zipfile writes absolute names
    let py = "import zipfile, sys\n\
              z = zipfile.ZipFile(sys.argv[1], 'w')\n\
              z.writestr('/tmp/x', b'pwned')\n\
              i = zipfile.ZipInfo('link'); i.create_system = 3; i.external_attr = 0o120777 << 16\n\
              z.writestr(i, '/etc')\n\
              z.writestr('link/passwd', b'root::0:0::/:/bin/sh')\n\
              z.close()\n";
    run(s, "python3", &["-c", py, "py.zip"]);
    let cases = [
        ("slip.tar", "../../x"),
        ("abs.tar", "/tmp/x"),
        ("hard.tar", "hard link"),
        ("sym.tar", "symbolic link"),
        ("sym.tgz", "symbolic link"),
        ("slip.zip", "../../x"),
        ("sym.zip", "symbolic link"),
        ("py.zip", "/tmp/x"),
    ];
    for (name, _) in cases {
        fx.file(name, &std::fs::read(s.join(name)).expect(name));
    }
    for (name, member) in cases {
        assert_refused(&fx, name, member);
    }
}

#[test]
fn too_many_members_are_refused_before_writing() {
    let fx = Fixture::new();
    let many = zip_of(|z| {
        for i in 0..10 {
            z.start_file(format!("f{i}"), opts()).expect("start");
        }
    });
    fx.file("many.zip", &many);
    let members: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    let raws: Vec<Raw<'_>> = members.iter().map(|m| raw(m)).collect();
    fx.file("many.tar", &raw_tar(&raws));
    let limits = ExtractLimits {
        max_entries: 9,
        ..ExtractLimits::default()
    };
    for name in ["many.zip", "many.tar"] {
        let before = fx.tree();
        let e = extract(&fx.root, name, "dest", &limits).expect_err(name);
        assert_eq!(e.status(), 403, "{e}");
        assert!(e.to_string().contains("more than 9 members"), "{e}");
        assert_eq!(fx.tree(), before);
        let ten = ExtractLimits {
            max_entries: 10,
            ..limits
        };
        let report =
            extract(&fx.root, name, name.replace('.', "-").as_str(), &ten).expect("ten are fine");
        assert_eq!(report.files, 10);
    }
}

// ---- bombs and limits -------------------------------------------------------------------------

#[test]
fn a_zip_declaring_ten_gib_is_refused_before_writing() {
    let fx = Fixture::new();
    let ten_gib = 10 << 10; // in MiB
                            // ~1 KiB: one MiB of deflated zeros, declared as 10 GiB
    let tiny = raw_zip(
        "zeros",
        &deflated_zeros(1),
        crc_of_zeros(ten_gib),
        ten_gib << 20,
    );
    assert!(tiny.len() < 4096, "{}", tiny.len());
    // ~10 MiB: really 10 GiB of deflated zeros, declared honestly
    let bomb = raw_zip(
        "zeros",
        &deflated_zeros(ten_gib),
        crc_of_zeros(ten_gib),
        ten_gib << 20,
    );
    assert!(bomb.len() < 16 << 20, "{}", bomb.len());
    fx.file("tiny.zip", &tiny);
    fx.file("bomb.zip", &bomb);
    for (name, size) in [("tiny.zip", tiny.len()), ("bomb.zip", bomb.len())] {
        let before = fx.tree();
        // no byte limit: the ratio (or the free space) stops it
        let limits = ExtractLimits {
            max_total_bytes: u64::MAX,
            ..ExtractLimits::default()
        };
        let started = std::time::Instant::now();
        let e = extract(&fx.root, name, "dest", &limits).expect_err(name);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{name}: fast"
        );
        let FsError::TooLarge { limit, .. } = e else {
            panic!("{name}: {e:?}");
        };
        assert!(
            limit <= (200 * size as u64).max(RATIO_ALLOWANCE),
            "{name}: {limit}"
        );
        assert_eq!(e.status(), 413);
        assert_eq!(fx.tree(), before, "{name}: nothing written");
    }
    fx.outside_untouched();
}

#[test]
fn a_zip_lying_about_its_size_stops_at_the_ratio_and_cleans_up() {
    let fx = Fixture::new();
    // 1 GiB of zeros (~1 MiB deflated) declared as 1 KiB: the scan lets it through
    let data = deflated_zeros(1024);
    let liar = raw_zip("zeros", &data, crc_of_zeros(1024), 1024);
    fx.file("liar.zip", &liar);
    fx.file("dest/keep.txt", b"keep");
    let before = fx.tree();
    let limits = ExtractLimits {
        max_ratio: 4,
        ..ExtractLimits::default()
    };
    let e = extract(&fx.root, "liar.zip", "dest/new/dir", &limits).expect_err("bomb");
    let FsError::TooLarge { limit, .. } = e else {
        panic!("{e:?}");
    };
    // the ratio's limit (past the allowance every archive has), not the byte limit
    assert_eq!(limit, (4 * liar.len() as u64).max(RATIO_ALLOWANCE));
    assert!(limit < ExtractLimits::default().max_total_bytes);
    assert_eq!(fx.tree(), before, "created directories and files are gone");
    assert_eq!(std::fs::read(fx.p("dest/keep.txt")).expect("keep"), b"keep");
    fx.outside_untouched();
}

#[test]
fn a_tar_gz_declaring_ten_gib_is_refused_before_writing() {
    let fx = Fixture::new();
    let mut tar = raw_tar_header("zeros", 10 << 30).as_bytes().to_vec();
    tar.extend(vec![0u8; 1 << 20]);
    fx.file("bomb.tar.gz", &gzip(&tar));
    let before = fx.tree();
    let e = extract(&fx.root, "bomb.tar.gz", "dest", &ExtractLimits::default()).expect_err("bomb");
    assert!(matches!(e, FsError::TooLarge { .. }), "{e:?}");
    assert_eq!(fx.tree(), before);
    // the byte limit applies to plain tar too
    let mut b = tar::Builder::new(Vec::new());
    b.append(&raw_tar_header("a", 600), &vec![1u8; 600][..])
        .expect("append");
    b.append(&raw_tar_header("b", 600), &vec![2u8; 600][..])
        .expect("append");
    fx.file("two.tar", &b.into_inner().expect("tar"));
    let limits = ExtractLimits {
        max_total_bytes: 1000,
        ..ExtractLimits::default()
    };
    let before = fx.tree();
    let e = extract(&fx.root, "two.tar", "dest", &limits).expect_err("limit");
    assert!(matches!(e, FsError::TooLarge { limit: 1000, .. }), "{e:?}");
    assert_eq!(fx.tree(), before);
}

/// A data directory on a 1 MiB tmpfs, unmounted on drop.
struct SmallDisk {
    fx: Fixture,
}

impl SmallDisk {
    fn new() -> SmallDisk {
        let fx = Fixture::new();
        let opts = format!("size=1m,nr_inodes=4096,mode=0755,uid={UID},gid={GID}");
        nix::mount::mount(
            Some("tmpfs"),
            &fx.data,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(opts.as_str()),
        )
        .expect("mount a tmpfs (the tests run as root)");
        // the root opened before the mount is the directory under it: open the tmpfs
        let root = Root::open(&fx.data, UID, GID).expect("root");
        SmallDisk {
            fx: Fixture { root, ..fx },
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.fx.data, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn extraction_past_the_free_space_fails_and_cleans_up() {
    let disk = SmallDisk::new();
    let fx = &disk.fx;
    let free = fx.root.space().expect("space").free;
    assert!(free <= 1 << 20, "{free}");
    // 4 MiB of zeros declared as 1 KiB: the free space stops it, not the ratio
    let liar = raw_zip("zeros", &deflated_zeros(4), crc_of_zeros(4), 1024);
    fx.file("liar.zip", &liar);
    fx.file("dest/keep.txt", b"keep");
    let before = fx.tree();
    let limits = ExtractLimits {
        max_ratio: u64::MAX,
        ..ExtractLimits::default()
    };
    let e = extract(&fx.root, "liar.zip", "dest/sub", &limits).expect_err("too large");
    // the counter stops it at the free space (or, should the filesystem's own overhead come
    // first, the disk does)
    match e {
        FsError::TooLarge { limit, .. } => assert!(limit <= free, "{limit} <= {free}"),
        FsError::NoSpace { .. } => {}
        e => panic!("{e:?}"),
    }
    assert_eq!(fx.tree(), before);

    // declared honestly: refused by the scan
    let honest = raw_zip("zeros", &deflated_zeros(4), crc_of_zeros(4), 4 << 20);
    fx.file("honest.zip", &honest);
    let before = fx.tree();
    let e = extract(&fx.root, "honest.zip", "dest/sub", &limits).expect_err("declared");
    assert!(matches!(e, FsError::TooLarge { .. }), "{e:?}");
    assert_eq!(fx.tree(), before);

    // small files whose blocks fill the disk before their bytes reach the limit: ENOSPC
    let many = zip_of(|z| {
        for i in 0..400 {
            z.start_file(format!("d/f{i}"), opts()).expect("start");
            z.write_all(&[b'x'; 100]).expect("write");
        }
    });
    fx.file("many.zip", &many);
    let before = fx.tree();
    let e = extract(&fx.root, "many.zip", "dest/sub", &limits).expect_err("full");
    assert!(matches!(e, FsError::NoSpace { .. }), "{e:?}");
    assert_eq!(e.status(), 507);
    assert_eq!(fx.tree(), before, "the files written before are removed");
    fx.outside_untouched();
}

// ---- the destination --------------------------------------------------------------------------

#[test]
fn a_link_planted_in_the_destination_is_never_followed() {
    for format in [ArchiveFormat::Zip, ArchiveFormat::TarGz] {
        let fx = Fixture::new();
        // what the archive holds: a file that replaces one, a new file, then plugins/...
        fx.file("src/keep.txt", b"new");
        fx.file("src/fresh.txt", b"fresh");
        fx.file("src/plugins/evil.jar", b"evil");
        fx.file("src/plugins/sub/deeper.jar", b"evil");
        let archive = format!("a.{}", format.extension());
        let paths = [
            "/src/keep.txt".to_owned(),
            "/src/fresh.txt".to_owned(),
            "/src/plugins".to_owned(),
        ];
        compress(&fx.root, &paths, &archive, None).expect("compress");
        // the game's plant: plugins leads outside (relative and absolute)
        fx.file("dest/keep.txt", b"old");
        fx.link("dest/plugins", "../../outside");
        fx.link("dest2/plugins", &fx.outside);
        for dest in ["dest", "dest2"] {
            let before = fx.tree();
            let e =
                extract(&fx.root, &archive, dest, &ExtractLimits::default()).expect_err("escape");
            assert!(matches!(e, FsError::Escapes { .. }), "{format:?}: {e:?}");
            assert_eq!(e.status(), 403);
            fx.outside_untouched();
            // the files it created are removed again
            assert_eq!(fx.tree(), before, "{format:?}");
            if dest == "dest" {
                // documented: a replaced file stays replaced
                assert_eq!(std::fs::read(fx.p("dest/keep.txt")).expect("keep"), b"new");
            }
            assert!(std::fs::symlink_metadata(fx.p(&format!("{dest}/plugins")))
                .expect("link")
                .file_type()
                .is_symlink());
        }
    }
}

#[test]
fn conflicts_in_the_destination_fail_cleanly() {
    let fx = Fixture::new();
    fx.file("src/a/b.txt", b"b");
    compress(&fx.root, &["/src/a".to_owned()], "a.tar", None).expect("compress");
    // a file where the archive has a directory
    fx.file("dest/a", b"a file");
    let before = fx.tree();
    let e = extract(&fx.root, "a.tar", "dest", &ExtractLimits::default()).expect_err("conflict");
    assert_eq!(e.status(), 409, "{e:?}");
    assert_eq!(fx.tree(), before);
    // the destination itself is a file
    let e = extract(&fx.root, "a.tar", "dest/a", &ExtractLimits::default()).expect_err("file");
    assert_eq!(e.status(), 409, "{e:?}");
    // not an archive
    fx.file("junk.zip", b"this is not a zip file at all");
    let e = extract(&fx.root, "junk.zip", "out", &ExtractLimits::default()).expect_err("junk");
    assert_eq!(e.status(), 400, "{e:?}");
    assert!(!fx.p("out").exists());
    // an archive that is a link leading outside
    fx.link("evil.tar", "../outside/secret");
    let e = extract(&fx.root, "evil.tar", "out", &ExtractLimits::default()).expect_err("link");
    assert_eq!(e.status(), 403, "{e:?}");
    fx.outside_untouched();
}
