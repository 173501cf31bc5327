//! Giving a server's files to its user: a tree walk that never follows a link.

use std::path::Path;

/// Gives a tree to uid:gid without ever following a symlink, even one swapped in while the
/// walk runs: every directory is opened relative to its parent's descriptor with `O_NOFOLLOW`,
/// every entry is changed with `AT_SYMLINK_NOFOLLOW`, and the walk stays on the root's
/// filesystem. Entries that vanish meanwhile are skipped. Blocking: call it off the runtime.
pub fn chown_tree(root: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use nix::dir::Dir;
    use nix::fcntl::{open, openat, AtFlags, OFlag};
    use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
    use nix::unistd::{fchown, fchownat, Gid, Uid};
    use std::os::fd::OwnedFd;
    use std::rc::Rc;
    const MAX_DEPTH: usize = 4096;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let (owner, group) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let top = open(root, flags, Mode::empty())?;
    let dev = fstat(&top)?.st_dev;
    fchown(&top, owner, group)?;
    // pending directories: (parent's descriptor, name, depth); a parent's descriptor stays open
    // only while some of its children wait, so open descriptors grow with depth, not width
    let mut stack: Vec<(Rc<OwnedFd>, std::ffi::CString, usize)> = Vec::new();
    let mut dirs = vec![(top, 0usize)];
    while let Some((fd, depth)) = dirs.pop() {
        let fd = Rc::new(fd);
        let mut dir = match Dir::openat(&*fd, ".", flags, Mode::empty()) {
            Ok(d) => d,
            Err(_) => continue,
        };
        for entry in dir.iter().flatten() {
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let Ok(st) = fstatat(&*fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            if st.st_dev != dev {
                continue;
            }
            let _ = fchownat(&*fd, name, owner, group, AtFlags::AT_SYMLINK_NOFOLLOW);
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
                if depth + 1 < MAX_DEPTH {
                    stack.push((fd.clone(), name.to_owned(), depth + 1));
                } else {
                    tracing::warn!(root = %root.display(), "chown: tree deeper than {MAX_DEPTH} levels; the rest is left");
                }
            }
        }
        while let Some((parent, name, d)) = stack.pop() {
            if let Ok(child) = openat(&*parent, name.as_c_str(), flags, Mode::empty()) {
                if fstat(&child).is_ok_and(|st| st.st_dev == dev) {
                    dirs.push((child, d));
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn chown_tree_changes_every_entry_and_never_follows_a_link() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("data");
        std::fs::create_dir_all(root.join("a/b/c")).expect("dirs");
        std::fs::write(root.join("a/b/c/file"), b"x").expect("file");
        std::fs::create_dir_all(root.join("wide")).expect("wide");
        for i in 0..50 {
            std::fs::create_dir(root.join(format!("wide/{i}"))).expect("dir");
        }
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).expect("outside");
        std::fs::write(outside.join("secret"), b"s").expect("secret");
        std::os::unix::fs::symlink(&outside, root.join("a/link")).expect("link");
        chown_tree(&root, 4242, 4343).expect("chown");
        for p in ["", "a", "a/b/c", "a/b/c/file", "wide/49"] {
            let m = std::fs::symlink_metadata(root.join(p)).expect(p);
            assert_eq!((m.uid(), m.gid()), (4242, 4343), "{p}");
        }
        let link = std::fs::symlink_metadata(root.join("a/link")).expect("link");
        assert_eq!(link.uid(), 4242, "the link itself is changed");
        assert_eq!(
            std::fs::metadata(outside.join("secret"))
                .expect("secret")
                .uid(),
            0,
            "what the link points at is not"
        );
        assert_eq!(std::fs::metadata(&outside).expect("outside").uid(), 0);
    }

    #[test]
    fn chown_tree_refuses_a_root_that_is_a_link() {
        let tmp = tempfile::tempdir().expect("tmp");
        let target = tmp.path().join("t");
        std::fs::create_dir(&target).expect("t");
        let link = tmp.path().join("l");
        std::os::unix::fs::symlink(&target, &link).expect("link");
        assert!(chown_tree(&link, 4242, 4242).is_err());
        assert_eq!(std::fs::metadata(&target).expect("t").uid(), 0);
    }
}
