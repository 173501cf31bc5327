//! A small fixture shared by the tests of the modules on top of the path layer (archives,
//! downloads): a data directory owned by an unprivileged uid, with an "outside" directory
//! beside it that the same uid owns, so that only the path layer (not file permissions) stands
//! between a test and an escape. The tests run as root, as CI does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::Root;

/// The server's host uid in the tests.
pub(crate) const UID: u32 = 4242;
/// The server's host gid in the tests.
pub(crate) const GID: u32 = 4343;

/// A data directory (`data`) and an `outside` directory holding one file, `secret`.
#[derive(Debug)]
pub(crate) struct Fixture {
    /// Holds `data` and `outside`; removed on drop.
    pub(crate) tmp: tempfile::TempDir,
    /// The server's data directory.
    pub(crate) data: PathBuf,
    /// A sibling of the data directory that must never change.
    pub(crate) outside: PathBuf,
    /// The data directory, open.
    pub(crate) root: Root,
}

impl Fixture {
    /// A fresh fixture.
    pub(crate) fn new() -> Fixture {
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
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).expect("mode");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("mode");
        let root = Root::open(&data, UID, GID).expect("root");
        let fx = Fixture {
            tmp,
            data,
            outside,
            root,
        };
        fx.own();
        fx
    }

    /// The host path of a path relative to the data directory.
    pub(crate) fn p(&self, rel: &str) -> PathBuf {
        self.data.join(rel)
    }

    /// Writes a file (mode `0o644`) with its parents, owned by the server.
    pub(crate) fn file(&self, rel: &str, content: &[u8]) {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("mode");
        self.own();
    }

    /// Creates a symbolic link with its parents, owned by the server.
    pub(crate) fn link(&self, rel: &str, target: impl AsRef<Path>) {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::os::unix::fs::symlink(target, &p).expect("symlink");
        self.own();
    }

    /// Everything under data and outside belongs to the server's uid (links not followed).
    pub(crate) fn own(&self) {
        crate::ownership::chown_tree(&self.data, UID, GID).expect("chown data");
        crate::ownership::chown_tree(&self.outside, UID, GID).expect("chown outside");
    }

    /// The outside directory holds exactly what the fixture put there, unchanged.
    pub(crate) fn outside_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(&self.outside)
            .expect("outside")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["secret"], "nothing appears outside");
        assert_eq!(
            std::fs::read(self.outside.join("secret")).expect("secret"),
            b"secret"
        );
        let names: Vec<String> = std::fs::read_dir(self.tmp.path())
            .expect("tmp")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(
            names,
            ["data", "outside"],
            "nothing appears beside the data"
        );
    }

    /// Every path under the data directory (relative, sorted), links not followed.
    pub(crate) fn tree(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).expect("read_dir") {
                let e = e.expect("entry");
                let p = e.path();
                let rel = p
                    .strip_prefix(base)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                let is_dir = e.file_type().expect("type").is_dir();
                out.push(if is_dir { format!("{rel}/") } else { rel });
                if is_dir {
                    walk(base, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data, &self.data, &mut out);
        out.sort();
        out
    }
}
