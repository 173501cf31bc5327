//! A container's root filesystem touched up before its task starts: the paths a server must be
//! able to write (`/tmp`) made sticky world-writable directories whatever the image holds, and,
//! for install containers, the image's files given to the server's uid range so that root in
//! the server's user namespace can install packages.
//!
//! The snapshot's mounts (as containerd hands them to the task) are mounted on a private
//! directory of the nodelet, changed, and unmounted; the changes land in the container's own
//! writable layer, never in the shared image layers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use containerd_client::types::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::userns::IdRange;

/// A root filesystem that could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Mounting or unmounting the snapshot.
    #[error("mount {what} on {target}: {source}")]
    Mount {
        /// The mount type.
        what: String,
        /// Where.
        target: PathBuf,
        /// The error.
        #[source]
        source: nix::Error,
    },
    /// A file operation in the root filesystem.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path (inside the mounted root).
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A mount type containerd handed us that we do not know.
    #[error("unsupported rootfs mount type {0:?}")]
    Unsupported(String),
}

type Result<T, E = RootfsError> = std::result::Result<T, E>;

/// Paths a server's process must be able to write, whatever the image made of them; each gets a
/// tmpfs in the runtime spec, and runc gives a tmpfs the mode of the directory it covers.
pub const WRITABLE_DIRS: &[&str] = &["/tmp"];

/// Where the runtime spec mounts something: they must exist in the root filesystem, and runc,
/// root only inside the server's user namespace, cannot make them in an image's directories
/// (owned by host root). Made here when the image lacks them (images built from scratch).
pub const MOUNT_POINTS: &[&str] = &[
    "/proc",
    "/dev",
    "/sys",
    "/home/container",
    "/mnt/server",
    "/mnt/install",
];

/// What to do to a root filesystem.
#[derive(Debug, Clone, Copy)]
pub struct Touches {
    /// Give the image's files (owned by host ids below the range size) to `range`.
    pub remap: Option<IdRange>,
}

/// Mounts `mounts` on `target` (an empty directory), applies `touches`, unmounts.
pub fn prepare(mounts: &[Mount], target: &Path, touches: Touches) -> Result<()> {
    std::fs::create_dir_all(target).map_err(io("create", target))?;
    // a mount left by a crash between mount and unmount goes first
    for _ in 0..16 {
        if umount2(target, MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
    mount_all(mounts, target)?;
    let result = apply(target, touches);
    let unmounted = umount2(target, MntFlags::MNT_DETACH).map_err(|source| RootfsError::Mount {
        what: "umount".into(),
        target: target.to_owned(),
        source,
    });
    let _ = std::fs::remove_dir(target);
    result.and(unmounted)
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RootfsError + 'a {
    move |source| RootfsError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    // containerd's snapshotters hand out one mount for an active snapshot
    let Some(m) = mounts.first() else {
        return Err(RootfsError::Unsupported("(none)".into()));
    };
    let (flags, data, fstype): (MsFlags, Vec<String>, Option<&str>) = match m.r#type.as_str() {
        "overlay" => (
            MsFlags::empty(),
            m.options.iter().filter(|o| *o != "rw").cloned().collect(),
            Some("overlay"),
        ),
        "bind" | "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, Vec::new(), None),
        other => return Err(RootfsError::Unsupported(other.to_owned())),
    };
    let data = data.join(",");
    mount(
        Some(m.source.as_str()),
        target,
        fstype,
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|source| RootfsError::Mount {
        what: m.r#type.clone(),
        target: target.to_owned(),
        source,
    })
}

fn apply(root: &Path, touches: Touches) -> Result<()> {
    if let Some(range) = touches.remap {
        remap_tree(root, range)?;
    }
    for dir in WRITABLE_DIRS {
        writable_dir(root, dir)?;
    }
    for dir in MOUNT_POINTS {
        mount_point(root, dir)?;
    }
    Ok(())
}

/// Makes `root/rel` a directory when nothing is there; anything already there stays (runc
/// resolves symlinks inside the root filesystem itself).
fn mount_point(root: &Path, rel: &str) -> Result<()> {
    let path = root.join(rel.trim_start_matches('/'));
    match std::fs::symlink_metadata(&path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // only below real directories: a parent that is a symlink is left to runc
            let mut dir = root.to_owned();
            for c in Path::new(rel.trim_start_matches('/')).components() {
                dir.push(c);
                match std::fs::symlink_metadata(&dir) {
                    Ok(m) if m.is_dir() => continue,
                    Ok(_) => return Ok(()),
                    Err(_) => {
                        std::fs::create_dir(&dir).map_err(io("create", &dir))?;
                        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                            .map_err(io("chmod", &dir))?;
                    }
                }
            }
            Ok(())
        }
        Err(e) => Err(io("stat", &path)(e)),
    }
}

/// Makes `root/rel` a real directory (not a symlink or file) with mode 1777.
fn writable_dir(root: &Path, rel: &str) -> Result<()> {
    let path = root.join(rel.trim_start_matches('/'));
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
            std::fs::create_dir(&path).map_err(io("create", &path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&path).map_err(io("create", &path))?;
        }
        Err(e) => return Err(io("stat", &path)(e)),
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1777))
        .map_err(io("chmod", &path))
}

/// Shifts every file's owner and group into `range` (ids already past the range's size stay,
/// as they are not the image's), without following symlinks.
fn remap_tree(root: &Path, range: IdRange) -> Result<()> {
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).map_err(io("stat", &p))?;
        let shift = |id: u32| range.host(id).unwrap_or(id);
        if m.uid() < range.size || m.gid() < range.size {
            let mode = m.mode();
            std::os::unix::fs::lchown(&p, Some(shift(m.uid())), Some(shift(m.gid())))
                .map_err(io("chown", &p))?;
            // chown drops set-id bits; keep them for directories (setgid dirs) only
            if m.is_dir() && mode & 0o7000 != 0 {
                let _ =
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777));
            }
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).map_err(io("read", &p))? {
                stack.push(e.map_err(io("read", &p))?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tmp_that_is_missing_a_file_a_link_or_0755_becomes_a_sticky_world_writable_dir() {
        for setup in ["missing", "file", "link", "dir0755"] {
            let tmp = tempfile::tempdir().expect("tmp");
            let root = tmp.path();
            let t = root.join("tmp");
            match setup {
                "file" => std::fs::write(&t, b"x").expect("file"),
                "link" => std::os::unix::fs::symlink("/etc", &t).expect("link"),
                "dir0755" => {
                    std::fs::create_dir(&t).expect("dir");
                    std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o755))
                        .expect("chmod");
                }
                _ => {}
            }
            apply(root, Touches { remap: None }).expect(setup);
            assert!(root.join("proc").is_dir() && root.join("home/container").is_dir());
            let m = std::fs::symlink_metadata(&t).expect("stat");
            assert!(m.is_dir(), "{setup}");
            assert_eq!(m.mode() & 0o7777, 0o1777, "{setup}");
        }
    }

    #[test]
    fn remapping_shifts_image_owners_and_leaves_links_unfollowed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        std::fs::create_dir(root.join("etc")).expect("dir");
        std::fs::write(root.join("etc/file"), b"x").expect("file");
        std::os::unix::fs::lchown(root.join("etc/file"), Some(1000), Some(1000)).expect("own");
        let outside = tempfile::NamedTempFile::new().expect("outside");
        std::os::unix::fs::symlink(outside.path(), root.join("etc/link")).expect("link");
        let range = IdRange {
            start: 1 << 30,
            size: 65536,
        };
        remap_tree(root, range).expect("remap");
        let m = std::fs::metadata(root.join("etc/file")).expect("stat");
        assert_eq!((m.uid(), m.gid()), ((1 << 30) + 1000, (1 << 30) + 1000));
        assert_eq!(
            std::fs::metadata(root.join("etc")).expect("etc").uid(),
            1 << 30
        );
        let link = std::fs::symlink_metadata(root.join("etc/link")).expect("link");
        assert_eq!(link.uid(), 1 << 30);
        assert_eq!(
            std::fs::metadata(outside.path()).expect("outside").uid(),
            0,
            "the link's target outside the root is untouched"
        );
    }
}
