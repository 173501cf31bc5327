//! Tests of the safe path layer: real system calls on temporary directories. They run as root
//! (as CI does), with the data directory owned by an unprivileged uid, so the fsuid switch is
//! exercised; the "outside" directory next to it is owned by that uid too, so that only the
//! path layer (not file permissions) stands between a test and an escape.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

const UID: u32 = 4242;
const GID: u32 = 4343;

struct Fx {
    tmp: tempfile::TempDir,
    data: PathBuf,
    outside: PathBuf,
    root: Root,
}

fn fx() -> Fx {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&data).expect("data");
    std::fs::create_dir(&outside).expect("outside");
    std::fs::write(outside.join("secret"), b"secret").expect("secret");
    std::fs::set_permissions(
        outside.join("secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("mode");
    let root = Root::open(&data, UID, GID).expect("root");
    let fx = Fx {
        tmp,
        data,
        outside,
        root,
    };
    fx.own();
    fx
}

impl Fx {
    fn p(&self, rel: &str) -> PathBuf {
        self.data.join(rel)
    }

    fn file(&self, rel: &str, content: &[u8]) {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("mode");
        self.own();
    }

    fn dir(&self, rel: &str) {
        std::fs::create_dir_all(self.p(rel)).expect("dir");
        self.own();
    }

    fn link(&self, rel: &str, target: impl AsRef<Path>) {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::os::unix::fs::symlink(target, &p).expect("symlink");
        self.own();
    }

    /// Everything under data and outside belongs to the server's uid (links not followed).
    fn own(&self) {
        crate::ownership::chown_tree(&self.data, UID, GID).expect("chown data");
        crate::ownership::chown_tree(&self.outside, UID, GID).expect("chown outside");
    }

    /// The outside directory holds exactly what the fixture put there, unchanged.
    fn outside_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(&self.outside)
            .expect("outside")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["secret"], "nothing appears outside");
        let secret = self.outside.join("secret");
        assert_eq!(std::fs::read(&secret).expect("secret"), b"secret");
        let meta = std::fs::metadata(&secret).expect("secret");
        assert_eq!(meta.mode() & 0o7777, 0o644, "outside mode unchanged");
        assert_eq!(
            std::fs::metadata(&self.outside).expect("outside").mode() & 0o7777,
            0o755
        );
    }

    fn names(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.p(rel))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn host(&self) -> String {
        self.tmp.path().display().to_string()
    }
}

fn read_all(root: &Root, path: &str) -> Result<Vec<u8>, FsError> {
    let (mut f, _) = root.open_read(path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).expect("read");
    Ok(buf)
}

fn write_all(root: &Root, path: &str, data: &[u8]) -> Result<Entry, FsError> {
    let mut f = root.write_atomic(path, None)?;
    f.write_all(data).expect("write");
    f.commit()
}

fn create() -> WriteOpts {
    WriteOpts {
        create: true,
        truncate: true,
        ..WriteOpts::default()
    }
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).expect("meta").mode() & 0o7777
}

macro_rules! assert_err {
    ($e:expr, $pat:pat) => {
        match $e {
            Err(e @ $pat) => e,
            other => panic!("expected {}, got {other:?}", stringify!($pat)),
        }
    };
}

#[test]
fn clean_paths() {
    for (raw, want) in [
        ("", ""),
        ("/", ""),
        (".", ""),
        ("//./", ""),
        ("/world/level.dat", "world/level.dat"),
        ("world/level.dat", "world/level.dat"),
        ("world//./level.dat/", "world/level.dat"),
        ("a/b/../c", "a/c"),
        ("a/..", ""),
        ("..a/b..", "..a/b.."),
    ] {
        assert_eq!(Root::clean(raw).expect(raw), want, "{raw}");
    }
    for raw in ["..", "../x", "/../x", "a/../../x", "a/b/../../..", "./.."] {
        assert_err!(Root::clean(raw), FsError::Escapes { .. });
    }
    assert_err!(Root::clean("a\0b"), FsError::Invalid { .. });
    let long = "x".repeat(256);
    assert_err!(Root::clean(&long), FsError::Invalid { .. });
    assert_eq!(Root::clean(&"y".repeat(255)).expect("255"), "y".repeat(255));
    let deep = vec!["abcdefgh"; 600].join("/");
    assert_err!(Root::clean(&deep), FsError::Invalid { .. });
}

#[test]
fn the_thread_takes_the_servers_identity_and_gives_it_back() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    fn fs_ids() -> (u32, u32) {
        let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
        let field = |key: &str| -> u32 {
            let line = status.lines().find(|l| l.starts_with(key)).expect("line");
            line.split_whitespace()
                .nth(4)
                .expect("fsid")
                .parse()
                .expect("number")
        };
        (field("Uid:"), field("Gid:"))
    }
    assert_eq!(fs_ids(), (0, 0));
    {
        let _guard = creds::Creds::enter(UID, GID, "/").expect("switch");
        assert_eq!(fs_ids(), (UID, GID));
        {
            let _inner = creds::Creds::enter(UID, GID, "/").expect("nested");
            assert_eq!(fs_ids(), (UID, GID));
        }
        assert_eq!(
            fs_ids(),
            (UID, GID),
            "a nested guard restores the outer ids"
        );
    }
    assert_eq!(fs_ids(), (0, 0), "restored");
}

#[test]
fn the_layer_acts_as_the_server_not_as_root() {
    let fx = fx();
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    // made by root after the chown: root's, 0600
    std::fs::write(fx.p("rootfile"), b"root only").expect("rootfile");
    std::fs::set_permissions(fx.p("rootfile"), std::fs::Permissions::from_mode(0o600))
        .expect("mode");
    std::fs::create_dir(fx.p("rootdir")).expect("rootdir");
    assert_err!(
        fx.root.open_read("rootfile"),
        FsError::PermissionDenied { .. }
    );
    assert_err!(
        fx.root.open_write("rootfile", WriteOpts::default()),
        FsError::PermissionDenied { .. }
    );
    assert_err!(
        fx.root.chmod("rootfile", 0o644),
        FsError::PermissionDenied { .. }
    );
    assert_err!(
        fx.root.copy("rootfile", "copy"),
        FsError::PermissionDenied { .. }
    );
    assert_err!(
        fx.root.mkdir("rootdir/sub"),
        FsError::PermissionDenied { .. }
    );
    assert_err!(
        fx.root.write_atomic("rootdir/f", None),
        FsError::PermissionDenied { .. }
    );
    assert_eq!(mode_of(&fx.p("rootfile")), 0o600);
    assert!(!fx.p("copy").exists());
    // what it creates belongs to the server
    write_all(&fx.root, "mine", b"x").expect("write");
    fx.root.mkdir("mydir").expect("mkdir");
    for p in ["mine", "mydir"] {
        let m = std::fs::symlink_metadata(fx.p(p)).expect(p);
        assert_eq!((m.uid(), m.gid()), (UID, GID), "{p}");
    }
    // the calling thread is root again afterwards
    assert_eq!(
        std::fs::read(fx.p("rootfile")).expect("root reads"),
        b"root only"
    );
}

#[test]
fn root_open_refuses_links_and_root_ids() {
    let tmp = tempfile::tempdir().expect("tmp");
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).expect("real");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("link");
    assert_err!(Root::open(&link, UID, GID), FsError::Refused { .. });
    assert_err!(
        Root::open(&tmp.path().join("missing"), UID, GID),
        FsError::NotFound { .. }
    );
    if nix::unistd::geteuid().is_root() {
        assert_err!(Root::open(&real, 0, GID), FsError::Refused { .. });
        assert_err!(Root::open(&real, UID, 0), FsError::Refused { .. });
    }
    let root = Root::open(&real, UID, GID).expect("open");
    assert_eq!((root.uid(), root.gid()), (UID, GID));
}

#[test]
fn dot_dot_never_climbs_out() {
    let fx = fx();
    fx.file("a/f", b"f");
    for p in [
        "../outside/secret",
        "a/../../outside/secret",
        "/../x",
        "a/../..",
    ] {
        assert_err!(fx.root.stat(p), FsError::Escapes { .. });
        assert_err!(fx.root.open_read(p), FsError::Escapes { .. });
        assert_err!(fx.root.write_atomic(p, None), FsError::Escapes { .. });
        assert_err!(fx.root.open_write(p, create()), FsError::Escapes { .. });
        assert_err!(fx.root.chmod(p, 0o777), FsError::Escapes { .. });
        assert_err!(fx.root.remove(p, true), FsError::Escapes { .. });
        assert_err!(fx.root.mkdir_all(p), FsError::Escapes { .. });
        assert_err!(fx.root.list(p, None, 0), FsError::Escapes { .. });
        assert_err!(fx.root.rename("a/f", p, true), FsError::Escapes { .. });
        assert_err!(fx.root.copy("a/f", p), FsError::Escapes { .. });
    }
    // `..` that stays inside is fine
    assert_eq!(read_all(&fx.root, "a/../a/./f").expect("read"), b"f");
    fx.outside_untouched();
}

#[test]
fn an_absolute_path_is_inside_the_data_directory() {
    let fx = fx();
    assert_err!(fx.root.open_read("/etc/passwd"), FsError::NotFound { .. });
    assert_err!(fx.root.stat("/etc"), FsError::NotFound { .. });
    assert_err!(
        fx.root.write_atomic("/etc/passwd", None),
        FsError::NotFound { .. }
    );
    fx.root.mkdir_all("/etc").expect("mkdir");
    write_all(&fx.root, "/etc/passwd", b"mine").expect("write");
    assert_eq!(std::fs::read(fx.p("etc/passwd")).expect("read"), b"mine");
    assert_eq!(read_all(&fx.root, "/etc/passwd").expect("read"), b"mine");
    assert_ne!(std::fs::read("/etc/passwd").expect("host"), b"mine");
}

/// Every operation through a symbolic link that leads outside, absolute or climbing.
#[test]
fn links_that_lead_outside_are_never_followed() {
    let fx = fx();
    fx.file("f", b"data");
    fx.dir("d");
    let outside_abs = fx.outside.clone();
    for (link, target, name) in [
        ("abs", outside_abs.as_path(), "secret"),
        ("climb", Path::new("../outside"), "secret"),
        ("deep/climb", Path::new("../../outside"), "secret"),
        ("etc", Path::new("/etc"), "passwd"),
    ] {
        fx.link(link, target);
        let through = format!("{link}/{name}");
        let new = format!("{link}/catalyst-files-test-new");
        let st = fx.root.stat(link).expect("stat link");
        assert_eq!(st.kind, EntryKind::Symlink);
        assert_eq!(
            st.link_target.as_deref(),
            Some(target.to_str().expect("utf-8"))
        );
        assert_eq!(
            fx.root.read_link(link).expect("read_link"),
            target.to_str().expect("utf-8")
        );
        assert_err!(fx.root.stat(&through), FsError::Escapes { .. });
        assert_err!(fx.root.open_read(&through), FsError::Escapes { .. });
        assert_err!(fx.root.open_read(link), FsError::Escapes { .. });
        assert_err!(
            fx.root.write_atomic(&through, None),
            FsError::Escapes { .. }
        );
        assert_err!(fx.root.write_atomic(&new, None), FsError::Escapes { .. });
        assert_err!(
            fx.root.open_write(&through, create()),
            FsError::Escapes { .. }
        );
        assert_err!(fx.root.open_write(&new, create()), FsError::Escapes { .. });
        assert_err!(fx.root.chmod(&through, 0o777), FsError::Escapes { .. });
        assert_err!(fx.root.chmod(link, 0o777), FsError::Refused { .. });
        assert_err!(fx.root.set_times(&through, 0, 0), FsError::Escapes { .. });
        assert_err!(fx.root.rename("f", &through, true), FsError::Escapes { .. });
        assert_err!(fx.root.rename("f", &new, false), FsError::Escapes { .. });
        assert_err!(
            fx.root.rename(&through, "stolen", false),
            FsError::Escapes { .. }
        );
        assert_err!(fx.root.remove(&through, false), FsError::Escapes { .. });
        assert_err!(fx.root.copy(&through, "stolen"), FsError::Escapes { .. });
        assert_err!(fx.root.copy("f", &new), FsError::Escapes { .. });
        assert_err!(fx.root.copy("d", &new), FsError::Escapes { .. });
        assert_err!(
            fx.root.mkdir_all(&format!("{new}/x")),
            FsError::Escapes { .. }
        );
        assert_err!(fx.root.mkdir(&new), FsError::Escapes { .. });
        assert_err!(fx.root.list(link, None, 0), FsError::Escapes { .. });
        assert_err!(fx.root.read_link(&through), FsError::Escapes { .. });
        // the link itself may be copied (as a link) and removed
        fx.root.copy(link, "linkcopy").expect("copy link");
        assert_eq!(
            std::fs::read_link(fx.p("linkcopy")).expect("copied link"),
            target
        );
        fx.root.remove("linkcopy", false).expect("remove copy");
        assert!(!fx.p("stolen").exists());
        assert!(!Path::new("/etc/catalyst-files-test-new").exists());
    }
    fx.outside_untouched();
    // a recursive remove of the links removes the links
    fx.root.remove("abs", true).expect("remove");
    fx.root.remove("deep", true).expect("remove");
    fx.root.remove("etc", true).expect("remove");
    fx.outside_untouched();
    assert!(Path::new("/etc/passwd").exists());
}

#[test]
fn links_that_stay_inside_are_followed_for_opens() {
    let fx = fx();
    fx.file("real/f", b"inside");
    fx.link("in", "real");
    fx.link("sub/up", "../real");
    fx.link("abs-in", "/real");
    assert_eq!(read_all(&fx.root, "in/f").expect("read"), b"inside");
    assert_eq!(read_all(&fx.root, "sub/up/f").expect("read"), b"inside");
    let listing = fx.root.list("in", None, 0).expect("list");
    assert_eq!(listing.path, "/in");
    assert_eq!(listing.items[0].name, "f");
    assert_eq!(listing.items[0].path, "/in/f");
    write_all(&fx.root, "sub/up/g", b"g").expect("write through");
    assert_eq!(std::fs::read(fx.p("real/g")).expect("g"), b"g");
    fx.root.mkdir_all("in/x/y").expect("mkdir through");
    assert!(fx.p("real/x/y").is_dir());
    // an absolute target means the host's root: refused even if the name exists inside
    assert_err!(fx.root.open_read("abs-in/f"), FsError::Escapes { .. });
}

#[test]
fn chmod_never_follows_a_link() {
    let fx = fx();
    fx.file("target", b"t");
    fx.link("l", "target");
    fx.link("out", "../outside/secret");
    assert_err!(fx.root.chmod("l", 0o600), FsError::Refused { .. });
    assert_err!(fx.root.chmod("out", 0o777), FsError::Refused { .. });
    assert_eq!(mode_of(&fx.p("target")), 0o644);
    fx.root.chmod("target", 0o600).expect("chmod");
    assert_eq!(mode_of(&fx.p("target")), 0o600);
    fx.root.chmod("/", 0o750).expect("chmod root");
    assert_eq!(mode_of(&fx.data), 0o750);
    fx.outside_untouched();
}

#[test]
fn setuid_setgid_and_sticky_bits_are_never_set() {
    let fx = fx();
    let mut f = fx.root.write_atomic("a", Some(0o4755)).expect("write");
    f.write_all(b"a").expect("write");
    assert_eq!(f.commit().expect("commit").mode, 0o755);
    assert_eq!(mode_of(&fx.p("a")), 0o755);
    fx.root.chmod("a", 0o7777).expect("chmod");
    assert_eq!(mode_of(&fx.p("a")), 0o777);
    let opts = WriteOpts {
        create: true,
        mode: Some(0o2664),
        ..WriteOpts::default()
    };
    drop(fx.root.open_write("b", opts).expect("open_write"));
    assert_eq!(mode_of(&fx.p("b")), 0o664);
    fx.root.mkdir("d").expect("mkdir");
    fx.root.chmod("d", 0o3777).expect("chmod dir");
    assert_eq!(mode_of(&fx.p("d")), 0o777);
    // a setgid parent does not hand its bit to new directories
    std::fs::set_permissions(fx.p("d"), std::fs::Permissions::from_mode(0o2777)).expect("sgid");
    fx.root.mkdir("d/e").expect("mkdir");
    fx.root.mkdir_all("d/f/g").expect("mkdir_all");
    for p in ["d/e", "d/f", "d/f/g"] {
        assert_eq!(mode_of(&fx.p(p)), 0o755, "{p}");
    }
    // defaults
    write_all(&fx.root, "c", b"c").expect("write");
    assert_eq!(mode_of(&fx.p("c")), 0o644);
}

#[test]
fn a_hard_link_to_a_file_outside_is_refused() {
    let fx = fx();
    std::fs::hard_link(fx.outside.join("secret"), fx.p("hl")).expect("hard link");
    let refused = |r: Result<(), FsError>| match r {
        Err(FsError::Refused { why, .. }) => assert_eq!(why, "hard-linked file"),
        other => panic!("expected a refusal, got {other:?}"),
    };
    refused(fx.root.open_read("hl").map(drop));
    refused(fx.root.open_write("hl", WriteOpts::default()).map(drop));
    refused(fx.root.open_write("hl", create()).map(drop));
    refused(
        fx.root
            .open_write(
                "hl",
                WriteOpts {
                    append: true,
                    ..WriteOpts::default()
                },
            )
            .map(drop),
    );
    refused(fx.root.chmod("hl", 0o777));
    refused(fx.root.copy("hl", "copy"));
    assert!(!fx.p("copy").exists());
    fx.outside_untouched();
    // replacing the name replaces the name; the other link keeps its content
    write_all(&fx.root, "hl", b"new").expect("write_atomic over a hard link");
    assert_eq!(std::fs::read(fx.p("hl")).expect("hl"), b"new");
    fx.outside_untouched();
    std::fs::remove_file(fx.p("hl")).expect("rm");
    // delete and rename only touch the name
    std::fs::hard_link(fx.outside.join("secret"), fx.p("hl2")).expect("hard link");
    fx.root.rename("hl2", "hl3", false).expect("rename");
    fx.root.remove("hl3", false).expect("remove");
    fx.outside_untouched();
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let fx = fx();
    nix::unistd::mkfifo(&fx.p("fifo"), Mode::from_bits_truncate(0o666)).expect("mkfifo");
    fx.own();
    let (tx, rx) = std::sync::mpsc::channel();
    let root = Arc::new(fx.root);
    let r = root.clone();
    std::thread::spawn(move || {
        let read = r.open_read("fifo").map(drop);
        let write = r.open_write("fifo", WriteOpts::default()).map(drop);
        let rw = r
            .open_write(
                "fifo",
                WriteOpts {
                    read: true,
                    ..WriteOpts::default()
                },
            )
            .map(drop);
        let chmod = r.chmod("fifo", 0o600);
        let copy = r.copy("fifo", "fifo2");
        let _ = tx.send((read, write, rw, chmod, copy));
    });
    let (read, write, rw, chmod, copy) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the layer hangs on a FIFO");
    for r in [read, write, rw, chmod, copy] {
        assert_err!(r, FsError::Refused { .. });
    }
    let st = root.stat("fifo").expect("stat");
    assert_eq!(st.kind, EntryKind::Other);
    assert!(!fx.data.join("fifo2").exists());
    // a directory copy skips it
    std::fs::create_dir(fx.data.join("withfifo")).expect("dir");
    std::fs::rename(fx.data.join("fifo"), fx.data.join("withfifo/fifo")).expect("mv");
    std::fs::write(fx.data.join("withfifo/f"), b"f").expect("f");
    crate::ownership::chown_tree(&fx.data, UID, GID).expect("chown");
    root.copy("withfifo", "copied").expect("copy");
    assert!(fx.data.join("copied/f").is_file());
    assert!(!fx.data.join("copied/fifo").exists());
}

#[test]
fn write_atomic_replaces_a_link_not_its_target() {
    let fx = fx();
    fx.link("pw", "../outside/secret");
    fx.link("etcpw", "/etc/passwd");
    fx.file("inner", b"inner");
    fx.link("to-inner", "inner");
    for name in ["pw", "etcpw", "to-inner"] {
        let e = write_all(&fx.root, name, b"replaced").expect("write");
        assert_eq!(e.kind, EntryKind::File);
        assert_eq!(e.path, format!("/{name}"));
        assert_eq!(e.size, 8);
        let meta = std::fs::symlink_metadata(fx.p(name)).expect("meta");
        assert!(meta.file_type().is_file(), "{name} is a file now");
        assert_eq!(std::fs::read(fx.p(name)).expect("read"), b"replaced");
    }
    assert_eq!(std::fs::read(fx.p("inner")).expect("inner"), b"inner");
    fx.outside_untouched();
    // open_write does not write through a final link either
    fx.link("pw2", "../outside/secret");
    assert_err!(fx.root.open_write("pw2", create()), FsError::Refused { .. });
    fx.outside_untouched();
}

#[test]
fn write_atomic_commits_or_leaves_nothing() {
    let fx = fx();
    fx.file("old", b"old");
    std::fs::set_permissions(fx.p("old"), std::fs::Permissions::from_mode(0o600)).expect("mode");
    let mut f = fx.root.write_atomic("old", None).expect("write");
    f.write_all(b"new").expect("write");
    let temps: Vec<String> = fx
        .names("")
        .into_iter()
        .filter(|n| n.starts_with(UPLOAD_PREFIX))
        .collect();
    assert_eq!(temps.len(), 1, "a temporary file beside the destination");
    assert_eq!(std::fs::read(fx.p("old")).expect("old"), b"old", "not yet");
    let e = f.commit().expect("commit");
    assert_eq!(e.mode, 0o600, "the replaced file's mode is kept");
    assert_eq!(std::fs::read(fx.p("old")).expect("new"), b"new");
    assert_eq!(fx.names(""), ["old"]);
    // dropped without commit: nothing
    let mut f = fx.root.write_atomic("never", None).expect("write");
    f.file().write_all(b"x").expect("write");
    drop(f);
    assert_eq!(fx.names(""), ["old"]);
    // a directory at the destination
    fx.dir("dir");
    assert_err!(
        fx.root.write_atomic("dir", None),
        FsError::IsADirectory { .. }
    );
    assert_err!(
        fx.root.write_atomic("/", None),
        FsError::IsADirectory { .. }
    );
    let f = fx.root.write_atomic("late", None).expect("write");
    fx.dir("late/x");
    assert_err!(f.commit(), FsError::IsADirectory { .. });
    assert_eq!(fx.names(""), ["dir", "late", "old"]);
    // a missing parent
    assert_err!(
        fx.root.write_atomic("nope/f", None),
        FsError::NotFound { .. }
    );
    assert_err!(
        fx.root.write_atomic("old/f", None),
        FsError::NotADirectory { .. }
    );
}

#[test]
fn open_write_follows_the_flags() {
    let fx = fx();
    assert_err!(
        fx.root.open_write("f", WriteOpts::default()),
        FsError::NotFound { .. }
    );
    let mut f = fx.root.open_write("f", create()).expect("create");
    f.write_all(b"hello").expect("write");
    drop(f);
    let append = WriteOpts {
        append: true,
        ..WriteOpts::default()
    };
    let mut f = fx.root.open_write("f", append).expect("append");
    f.write_all(b" world").expect("write");
    drop(f);
    assert_eq!(std::fs::read(fx.p("f")).expect("f"), b"hello world");
    let excl = WriteOpts {
        exclusive: true,
        ..WriteOpts::default()
    };
    assert_err!(fx.root.open_write("f", excl), FsError::Exists { .. });
    let mut f = fx
        .root
        .open_write(
            "f",
            WriteOpts {
                read: true,
                ..WriteOpts::default()
            },
        )
        .expect("rw");
    let mut s = String::new();
    f.read_to_string(&mut s).expect("read");
    assert_eq!(s, "hello world");
    drop(f);
    drop(fx.root.open_write("f", create()).expect("truncate"));
    assert_eq!(std::fs::read(fx.p("f")).expect("f"), b"");
    fx.dir("d");
    assert_err!(
        fx.root.open_write("d", create()),
        FsError::IsADirectory { .. }
    );
    assert_err!(
        fx.root.open_write("/", create()),
        FsError::IsADirectory { .. }
    );
    assert_err!(fx.root.open_read("d"), FsError::IsADirectory { .. });
    assert_err!(fx.root.open_read("/"), FsError::IsADirectory { .. });
}

#[test]
fn remove_recursive_never_leaves_the_tree() {
    let fx = fx();
    fx.file("tree/a/b/c/file", b"x");
    fx.link("tree/climb", "../../outside");
    fx.link("tree/a/abs", fx.outside.clone());
    fx.link("tree/a/b/secret", "../../../../outside/secret");
    fx.file("tree/.hidden", b"h");
    assert_err!(fx.root.remove("tree", false), FsError::NotEmpty { .. });
    fx.root.remove("/tree/", true).expect("remove");
    assert!(!fx.p("tree").exists());
    fx.outside_untouched();
    assert_err!(fx.root.remove("/", true), FsError::Refused { .. });
    assert_err!(fx.root.remove("", false), FsError::Refused { .. });
    assert_err!(fx.root.remove("missing", true), FsError::NotFound { .. });
    fx.dir("empty");
    fx.root.remove("empty", false).expect("rmdir");
    fx.file("file", b"f");
    fx.root.remove("file", false).expect("rm");
    assert_eq!(fx.names(""), Vec::<String>::new());
    assert!(fx.data.is_dir(), "the root stays");
    // a wide and deep tree
    for i in 0..30 {
        fx.file(&format!("big/{i}/x/y/z"), b"z");
    }
    let deep: String = (0..100).map(|i| format!("d{i}/")).collect();
    fx.file(&format!("big/{deep}leaf"), b"leaf");
    fx.root.remove("big", true).expect("remove big");
    assert!(!fx.p("big").exists());
}

#[test]
fn rename_moves_names_only() {
    let fx = fx();
    fx.file("a", b"a");
    fx.file("b", b"b");
    fx.file("d/inner", b"i");
    fx.link("l", "../outside/secret");
    assert_err!(fx.root.rename("a", "b", false), FsError::Exists { .. });
    fx.root.rename("a", "b", true).expect("replace");
    assert_eq!(std::fs::read(fx.p("b")).expect("b"), b"a");
    assert_err!(fx.root.rename("a", "c", false), FsError::NotFound { .. });
    // replacing a link replaces the link
    fx.root.rename("b", "l", true).expect("over a link");
    assert_eq!(std::fs::read(fx.p("l")).expect("l"), b"a");
    fx.outside_untouched();
    assert_err!(fx.root.rename("/", "x", false), FsError::Refused { .. });
    assert_err!(fx.root.rename("d", "/", true), FsError::Refused { .. });
    assert_err!(fx.root.rename("d", "d/sub", false), FsError::Invalid { .. });
    fx.root.rename("d", "d", false).expect("onto itself");
    fx.root.rename("d", "e/", false).expect("dir");
    assert!(fx.p("e/inner").is_file());
    assert_err!(
        fx.root.rename("e", "missing/e", false),
        FsError::NotFound { .. }
    );
    // a link in the source's place moves as a link
    fx.link("l2", "../outside");
    fx.root.rename("l2", "e/l2", false).expect("move link");
    assert_eq!(
        std::fs::read_link(fx.p("e/l2")).expect("link"),
        Path::new("../outside")
    );
    fx.outside_untouched();
}

#[test]
fn copy_copies_trees_and_refuses_itself() {
    let fx = fx();
    fx.file("src/a.txt", b"a");
    fx.file("src/sub/b.txt", b"b");
    fx.link("src/link", "../outside/secret");
    fx.link("src/rel", "a.txt");
    std::fs::set_permissions(
        fx.p("src/sub/b.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("mode");
    std::fs::set_permissions(fx.p("src/sub"), std::fs::Permissions::from_mode(0o750))
        .expect("mode");
    fx.root.copy("src", "dst").expect("copy");
    assert_eq!(std::fs::read(fx.p("dst/a.txt")).expect("a"), b"a");
    assert_eq!(std::fs::read(fx.p("dst/sub/b.txt")).expect("b"), b"b");
    assert_eq!(mode_of(&fx.p("dst/sub/b.txt")), 0o600);
    assert_eq!(mode_of(&fx.p("dst/sub")), 0o750);
    assert_eq!(
        std::fs::read_link(fx.p("dst/link")).expect("link"),
        Path::new("../outside/secret")
    );
    assert_eq!(
        std::fs::read_link(fx.p("dst/rel")).expect("link"),
        Path::new("a.txt")
    );
    for p in ["dst", "dst/a.txt", "dst/sub", "dst/link"] {
        let m = std::fs::symlink_metadata(fx.p(p)).expect(p);
        assert_eq!((m.uid(), m.gid()), (UID, GID), "{p}");
    }
    fx.root.copy("src/a.txt", "single").expect("copy file");
    assert_eq!(std::fs::read(fx.p("single")).expect("single"), b"a");
    assert_err!(fx.root.copy("src/a.txt", "single"), FsError::Exists { .. });
    assert_err!(fx.root.copy("src", "dst"), FsError::Exists { .. });
    assert_err!(fx.root.copy("missing", "x"), FsError::NotFound { .. });
    // into itself: lexically, and through a link
    assert_err!(fx.root.copy("src", "src/inside"), FsError::Invalid { .. });
    assert_err!(fx.root.copy("src", "src"), FsError::Invalid { .. });
    assert_err!(fx.root.copy("/", "x"), FsError::Invalid { .. });
    fx.link("self", "src/sub");
    assert_err!(fx.root.copy("src", "self/x"), FsError::Invalid { .. });
    assert!(!fx.p("src/sub/x").exists());
    // a hard-linked file inside: refused, and the partial copy is removed
    std::fs::hard_link(fx.outside.join("secret"), fx.p("src/sub/hl")).expect("hard link");
    assert_err!(fx.root.copy("src", "dst2"), FsError::Refused { .. });
    assert!(!fx.p("dst2").exists());
    fx.outside_untouched();
}

#[test]
fn listing_sorts_pages_and_describes() {
    let fx = fx();
    fx.file("b.txt", b"bbb");
    fx.file("A.txt", b"a");
    fx.dir("zdir");
    fx.dir("adir");
    fx.link("link", "b.txt");
    let l = fx.root.list("/", None, 0).expect("list");
    assert_eq!(l.path, "/");
    assert_eq!(l.next, None);
    let names: Vec<&str> = l.items.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["adir", "zdir", "A.txt", "b.txt", "link"]);
    let b = &l.items[3];
    assert_eq!(
        (b.kind, b.size, b.mode, b.path.as_str(), b.uid, b.gid),
        (EntryKind::File, 3, 0o644, "/b.txt", UID, GID)
    );
    assert_eq!(l.items[0].kind, EntryKind::Directory);
    assert_eq!(l.items[4].kind, EntryKind::Symlink);
    assert_eq!(l.items[4].link_target.as_deref(), Some("b.txt"));
    let json = serde_json::to_value(&l.items[3]).expect("json");
    assert_eq!(json["kind"], "file");
    assert!(json.get("linkTarget").is_none());
    assert_eq!(
        serde_json::to_value(&l.items[4]).expect("json")["linkTarget"],
        "b.txt"
    );
    // pages, with the cursor and with plain names
    let p1 = fx.root.list("", None, 2).expect("page");
    assert_eq!(p1.next.as_deref(), Some("zdir/"));
    let p2 = fx.root.list("", p1.next.as_deref(), 2).expect("page");
    let names: Vec<&str> = p2.items.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["A.txt", "b.txt"]);
    let p2b = fx.root.list("", Some("zdir"), 2).expect("plain dir name");
    assert_eq!(p2b.items, p2.items);
    let p3 = fx.root.list("", p2.next.as_deref(), 2).expect("page");
    assert_eq!(p3.items.len(), 1);
    assert_eq!(p3.next, None);
    assert_err!(
        fx.root.list("b.txt", None, 0),
        FsError::NotADirectory { .. }
    );
    assert_err!(fx.root.list("missing", None, 0), FsError::NotFound { .. });
    let root = fx.root.stat("/").expect("stat root");
    assert_eq!((root.path.as_str(), root.kind), ("/", EntryKind::Directory));
}

#[test]
fn listing_pages_over_thousands_return_every_name_once_in_order() {
    let fx = fx();
    for i in 0..500 {
        std::fs::create_dir(fx.p(&format!("dir{i:04}"))).expect("dir");
    }
    for i in 0..2000 {
        std::fs::write(fx.p(&format!("file{i:05}")), b"").expect("file");
    }
    fx.own();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = fx.root.list("/", after.as_deref(), 97).expect("page");
        pages += 1;
        assert!(page.items.len() <= 97);
        seen.extend(page.items.into_iter().map(|e| (e.kind, e.name)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 2500usize.div_ceil(97));
    assert_eq!(seen.len(), 2500);
    let unique: HashSet<&String> = seen.iter().map(|(_, n)| n).collect();
    assert_eq!(unique.len(), 2500, "every name exactly once");
    assert!(seen[..500].iter().all(|(k, _)| *k == EntryKind::Directory));
    assert!(seen[500..].iter().all(|(k, _)| *k == EntryKind::File));
    assert!(seen[..500].windows(2).all(|w| w[0].1 < w[1].1), "sorted");
    assert!(seen[500..].windows(2).all(|w| w[0].1 < w[1].1), "sorted");
}

#[test]
fn mkdir_and_mkdir_all() {
    let fx = fx();
    fx.root.mkdir_all("a/b/c").expect("mkdir_all");
    fx.root.mkdir_all("a/b/c").expect("again");
    fx.root.mkdir_all("/").expect("root");
    assert!(fx.p("a/b/c").is_dir());
    assert_err!(fx.root.mkdir("a"), FsError::Exists { .. });
    assert_err!(fx.root.mkdir("/"), FsError::Exists { .. });
    assert_err!(fx.root.mkdir("x/y"), FsError::NotFound { .. });
    fx.root.mkdir("a/d").expect("mkdir");
    fx.file("f", b"f");
    assert_err!(fx.root.mkdir_all("f/g"), FsError::NotADirectory { .. });
    fx.link("dangling", "nowhere");
    assert_err!(fx.root.mkdir_all("dangling/x"), FsError::NotFound { .. });
    assert!(!fx.p("nowhere").exists());
}

#[test]
fn set_times_and_read_link() {
    let fx = fx();
    fx.file("f", b"f");
    fx.link("l", "f");
    fx.root.set_times("f", 1_000_000, 2_000_000).expect("times");
    let e = fx.root.stat("f").expect("stat");
    assert_eq!(e.modified.timestamp(), 2_000_000);
    fx.root.set_times("l", 5, 6).expect("link times");
    assert_eq!(
        fx.root.stat("f").expect("stat").modified.timestamp(),
        2_000_000
    );
    assert_eq!(fx.root.stat("l").expect("stat").modified.timestamp(), 6);
    fx.root.set_times("/", 7, 8).expect("root times");
    assert_eq!(fx.root.read_link("l").expect("link"), "f");
    assert_err!(fx.root.read_link("f"), FsError::Invalid { .. });
    assert_err!(fx.root.read_link("/"), FsError::Invalid { .. });
}

#[test]
fn space_and_usage_are_sane() {
    let fx = fx();
    let space = fx.root.space().expect("space");
    assert!(space.total > 0 && space.free <= space.total, "{space:?}");
    let before = fx.root.usage().expect("usage");
    fx.file("big", &vec![7u8; 1 << 20]);
    fx.file("d/e/small", b"s");
    let after = fx.root.usage().expect("usage");
    assert!(after >= before + (1 << 20), "{before} -> {after}");
    // a second name of the same file is not counted twice; links outside are not followed
    std::fs::hard_link(fx.p("big"), fx.p("d/big2")).expect("hard link");
    fx.link("out", fx.outside.clone());
    let again = fx.root.usage().expect("usage");
    assert!(again < after + (1 << 19), "{after} -> {again}");
    // a directory hidden from its owner is still counted
    std::fs::set_permissions(fx.p("d"), std::fs::Permissions::from_mode(0o000)).expect("mode");
    assert_eq!(fx.root.usage().expect("usage"), again);
}

#[test]
fn errors_name_the_user_path_and_map_to_http() {
    let fx = fx();
    fx.link("evil", "../outside");
    let e = fx.root.open_read("evil/secret").expect_err("escape");
    let msg = e.to_string();
    assert!(msg.contains("/evil/secret"), "{msg}");
    assert!(!msg.contains(&fx.host()), "{msg}");
    assert_eq!(e.status(), 403);
    assert_eq!(e.path(), "/evil/secret");
    let e = fx.root.stat("nope").expect_err("missing");
    assert_eq!(
        (e.status(), e.to_string()),
        (404, "/nope: not found".into())
    );
    assert_eq!(fx.root.mkdir("/").expect_err("exists").status(), 409);
    assert_eq!(Root::clean("a\0").expect_err("nul").status(), 400);
    assert_eq!(
        FsError::from_io("/x", std::io::Error::from_raw_os_error(28)).status(),
        507
    );
    assert_eq!(
        FsError::from_io("/x", std::io::Error::from_raw_os_error(122)).status(),
        507
    );
    let too = FsError::TooLarge {
        path: "/x".into(),
        limit: 1,
    };
    assert_eq!(too.status(), 413);
    assert_eq!(
        FsError::from_io("/x", std::io::Error::other("boom")).status(),
        500
    );
}

/// A directory is swapped for a link to outside (and back) as fast as possible while files are
/// written through it: nothing ever appears outside.
#[test]
fn racing_a_directory_against_a_link_never_escapes() {
    let fx = fx();
    fx.dir("d");
    fx.file("f", b"f");
    fx.link("swap", "../outside");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let data = fx.data.clone();
        std::thread::spawn(move || {
            let dir = std::fs::File::open(&data).expect("data");
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if nix::fcntl::renameat2(&dir, "d", &dir, "swap", RenameFlags::RENAME_EXCHANGE)
                    .is_ok()
                {
                    swaps += 1;
                }
            }
            swaps
        })
    };
    let mut written = 0;
    for i in 0..2000 {
        if let Ok(mut f) = fx.root.write_atomic(&format!("d/a{i}"), None) {
            let _ = f.write_all(b"x");
            if f.commit().is_ok() {
                written += 1;
            }
        }
        let _ = fx.root.open_write(&format!("d/w{i}"), create());
        let _ = fx.root.mkdir_all(&format!("d/m{i}/n"));
        let _ = fx.root.copy("f", &format!("d/c{i}"));
        let _ = fx.root.list("d", None, 10);
        let _ = fx.root.chmod("d/secret", 0o777);
        let _ = fx.root.remove("d/secret", true);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(swaps > 0 && written > 0, "swaps {swaps}, written {written}");
    fx.outside_untouched();
}
