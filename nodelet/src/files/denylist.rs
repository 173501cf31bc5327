//! A Template's `fileDenylist`: gitignore patterns (Pterodactyl's `file_denylist`) matched
//! against `/` + the cleaned path. A denied path (or one inside a denied directory) cannot be
//! read, written, renamed, copied, removed or have its mode or times changed through the file
//! manager or SFTP; it is still listed, as Wings does.

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::{FsError, Root};

/// Compiled denylist patterns.
#[derive(Debug, Clone)]
pub struct Denylist {
    set: Gitignore,
}

impl Denylist {
    /// Compiles `patterns`; None when there are none. A pattern that does not compile is
    /// skipped (logged): the rest still apply.
    pub fn new(patterns: &[String]) -> Option<Denylist> {
        if patterns.is_empty() {
            return None;
        }
        let mut b = GitignoreBuilder::new("/");
        for p in patterns {
            if let Err(e) = b.add_line(None, p) {
                tracing::warn!(pattern = p, error = %e, "a fileDenylist pattern does not compile");
            }
        }
        match b.build() {
            Ok(set) if !set.is_empty() => Some(Denylist { set }),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the fileDenylist does not compile");
                None
            }
        }
    }

    /// Whether a cleaned path (`world/level.dat`, `""` for the root) is denied.
    pub fn denies(&self, clean: &str) -> bool {
        if clean.is_empty() {
            return false;
        }
        let full = format!("/{clean}");
        // a pattern naming a directory (`logs/`) covers what is inside it
        self.set
            .matched_path_or_any_parents(&full, false)
            .is_ignore()
            || self.set.matched(&full, true).is_ignore()
    }
}

/// The most entries a denied-file check walks below a directory being renamed, copied or
/// removed; a larger tree is refused while a denylist is set.
const TREE_LIMIT: usize = 100_000;

fn fd_path(fd: &impl AsFd) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())).ok()
}

impl Root {
    /// The path of an opened descriptor (plus `name` in it) from the data directory, as the
    /// kernel resolved it: what a symbolic link inside led to.
    fn real_clean(&self, fd: &impl AsFd, name: Option<&str>) -> Option<String> {
        let root = fd_path(&self.dir)?;
        let mut real = fd_path(fd)?;
        if let Some(n) = name {
            real.push(n);
        }
        let rel = real.strip_prefix(&root).ok()?;
        Some(rel.to_str()?.to_owned())
    }

    /// Refuses what the denylist denies where `fd` (and `name` in it) really is: a link
    /// `l -> eula.txt` opens `eula.txt`, which is what is checked.
    pub(super) fn check_denied_real(
        &self,
        fd: &impl AsFd,
        name: Option<&str>,
        shown: &str,
    ) -> Result<(), FsError> {
        let Some(d) = &self.denylist else {
            return Ok(());
        };
        match self.real_clean(fd, name) {
            Some(real) if !d.denies(&real) => Ok(()),
            Some(_) => Err(FsError::refused(
                shown,
                "it leads to a file the template's fileDenylist does not allow",
            )),
            None => Err(FsError::refused(shown, "where it leads cannot be told")),
        }
    }

    /// Refuses renaming, copying or removing a directory with a denied entry below it (a
    /// denied file must not move out of its name, be copied elsewhere, or go with its parent).
    pub(super) fn check_denied_tree(&self, clean: &str) -> Result<(), FsError> {
        let Some(d) = &self.denylist else {
            return Ok(());
        };
        let shown = super::path::shown(clean);
        let Some(root) = fd_path(&self.dir) else {
            return Err(FsError::refused(
                &shown,
                "the data directory cannot be walked",
            ));
        };
        let top = root.join(clean);
        match std::fs::symlink_metadata(&top) {
            Ok(m) if m.is_dir() => {}
            _ => return Ok(()),
        }
        let mut stack = vec![top];
        let mut seen = 0usize;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                seen += 1;
                if seen > TREE_LIMIT {
                    return Err(FsError::refused(
                        &shown,
                        "too many entries to check against the template's fileDenylist",
                    ));
                }
                let path = e.path();
                let Some(rel) = path.strip_prefix(&root).ok().and_then(|p| p.to_str()) else {
                    continue;
                };
                if d.denies(rel) {
                    return Err(FsError::refused(
                        &shown,
                        &format!(
                            "/{rel} below it is a file the template's fileDenylist does not allow"
                        ),
                    ));
                }
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Denylist;

    #[test]
    fn gitignore_patterns_from_the_root() {
        let d = Denylist::new(&[
            "*.jar".into(),
            "/eula.txt".into(),
            "secrets/".into(),
            "!allowed.jar".into(),
        ])
        .expect("patterns");
        for (path, denied) in [
            ("server.jar", true),
            ("plugins/x.jar", true),
            ("allowed.jar", false),
            ("eula.txt", true),
            ("sub/eula.txt", false),
            ("secrets", true),
            ("secrets/key.pem", true),
            ("config/secrets.yml", false),
            ("server.properties", false),
            ("", false),
        ] {
            assert_eq!(d.denies(path), denied, "{path}");
        }
        assert!(Denylist::new(&[]).is_none());
    }

    /// The denied file cannot be reached another way: through a link to it, by moving, copying
    /// or removing its directory, or by writing through a linked directory.
    #[test]
    fn a_denied_file_is_not_reached_around_its_name() {
        use crate::files::testutil::Fixture;
        use crate::files::{FsError, WriteOpts};
        let mut fx = Fixture::new();
        fx.file("config/secret.yml", b"token: x");
        fx.file("config/ok.yml", b"a: 1");
        fx.file("eula.txt", b"eula=false");
        fx.link("l", "eula.txt");
        fx.link("c", "config");
        let list = Denylist::new(&["/config/secret.yml".into(), "/eula.txt".into()]);
        fx.root.set_denylist(list.map(std::sync::Arc::new));
        let refused = |r: Result<(), FsError>, what: &str| {
            assert!(matches!(r, Err(FsError::Refused { .. })), "{what}: {r:?}");
        };
        refused(fx.root.open_read("eula.txt").map(drop), "read");
        refused(fx.root.open_read("l").map(drop), "read through a link");
        refused(
            fx.root.open_read("c/secret.yml").map(drop),
            "read through a linked dir",
        );
        refused(
            fx.root.write_atomic("c/secret.yml", None).map(drop),
            "replace through a linked dir",
        );
        refused(
            fx.root
                .open_write(
                    "l",
                    WriteOpts {
                        create: true,
                        ..WriteOpts::default()
                    },
                )
                .map(drop),
            "write through a link",
        );
        refused(
            fx.root.rename("config", "moved", false),
            "move its directory",
        );
        refused(fx.root.copy("config", "copy"), "copy its directory");
        refused(fx.root.remove("config", true), "remove its directory");
        // what is not denied works as before
        assert!(fx.root.open_read("config/ok.yml").is_ok());
        assert!(fx.root.open_read("c/ok.yml").is_ok());
        assert!(fx.root.copy("config/ok.yml", "ok-copy.yml").is_ok());
        assert_eq!(std::fs::read(fx.p("eula.txt")).unwrap(), b"eula=false");
        assert!(fx.p("config/secret.yml").exists());
    }
}
