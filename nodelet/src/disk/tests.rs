//! Real loop devices and mounts (the tests run as root). Every test works in a scratch
//! directory whose guard unmounts and detaches everything below it, even when the test fails.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// A scratch directory with an image path and a data directory; on drop (also after a
/// failure) everything mounted or attached below it goes.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    fn image(&self) -> PathBuf {
        canonical(self.dir.path()).join("disks").join("u1.img")
    }

    fn data(&self) -> PathBuf {
        canonical(self.dir.path()).join("servers").join("u1")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        purge_under(self.dir.path());
    }
}

const UID: u32 = 1_073_742_824;
const GID: u32 = 1_073_742_825;

/// What `losetup -j IMAGE` lists (nothing when no loop device is backed by it).
fn losetup_j(image: &Path) -> String {
    let out = Command::new(tool("losetup"))
        .arg("-j")
        .arg(image)
        .output()
        .expect("losetup");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes zeros to `path` in 1 MiB chunks until the disk refuses; the bytes written and the
/// error.
fn fill(path: &Path, max_mib: usize) -> (u64, Option<std::io::Error>) {
    let mut f = std::fs::File::create(path).expect("create");
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    for _ in 0..max_mib {
        match f.write(&chunk) {
            Ok(n) => written += n as u64,
            Err(e) => return (written, Some(e)),
        }
    }
    match f.sync_all() {
        Ok(()) => (written, None),
        Err(e) => (written, Some(e)),
    }
}

#[test]
fn ensure_mounts_a_filesystem_of_the_server_with_the_asked_size_and_twice_is_a_no_op() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    let e = ensure(&image, &data, 32 << 20, UID, GID).expect("ensure");
    assert!(e.created && !e.migrated && !e.kept_larger(), "{e:?}");
    assert_eq!(e.image_bytes, 32 << 20);
    let m = mount_at(&data).expect("mountinfo").expect("mounted");
    assert_eq!(m.fstype, "ext4");
    assert_eq!(loops_of(&image), vec![PathBuf::from(&m.source)]);
    let meta = std::fs::metadata(&data).expect("stat");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (UID, GID),
        "the root is the server's"
    );
    assert!(
        !data.join("lost+found").exists(),
        "no lost+found in a game's directory"
    );
    let u = own_usage(&data).expect("a filesystem of its own");
    // less ext4's journal and inode tables (much of a disk this small)
    assert!(
        u.limit_bytes <= 32 << 20 && u.limit_bytes > 24 << 20,
        "{u:?}"
    );
    // sparse: the node holds only what was written
    let on_node = std::fs::metadata(&image).expect("image").blocks() * 512;
    assert!(on_node < 8 << 20, "{on_node} bytes on the node");
    let opts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = opts
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(data.to_str().expect("utf-8")))
        .expect("listed");
    assert!(
        line.contains("nosuid") && line.contains("nodev") && !line.contains("noexec"),
        "{line}"
    );

    std::fs::write(data.join("keep"), b"x").expect("write");
    let again = ensure(&image, &data, 32 << 20, UID, GID).expect("ensure again");
    assert_eq!(
        again,
        Ensured {
            asked_bytes: 32 << 20,
            image_bytes: 32 << 20,
            ..Ensured::default()
        },
        "nothing done the second time"
    );
    assert_eq!(loops_of(&image).len(), 1, "one loop device");
    assert_eq!(
        mounts()
            .expect("mounts")
            .iter()
            .filter(|m| m.mountpoint == data)
            .count(),
        1,
        "mounted once"
    );
    assert!(data.join("keep").exists());
}

#[test]
fn a_new_disk_is_taken_from_the_spares_only_when_it_fits_and_the_directory_is_empty() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    let spares = spares::Spares::new(s.dir.path(), 1);
    assert_eq!(spares.fill(32 << 20).expect("fill"), 1);
    // another size: made as before
    let other = s.dir.path().join("disks").join("u2.img");
    let other_data = s.dir.path().join("servers").join("u2");
    let e = ensure_from(&other, &other_data, 16 << 20, UID, GID, Some(&spares)).expect("16");
    assert!(e.created && !e.spare, "{e:?}");
    assert_eq!(spares.taken(), 0);
    // a data dir that holds files (a server made before quotas): migrated into a new image
    let old_data = s.dir.path().join("servers").join("u3");
    std::fs::create_dir_all(&old_data).expect("dir");
    std::fs::write(old_data.join("world.dat"), b"w").expect("write");
    let old = s.dir.path().join("disks").join("u3.img");
    let e = ensure_from(&old, &old_data, 32 << 20, UID, GID, Some(&spares)).expect("32");
    assert!(e.created && e.migrated && !e.spare, "{e:?}");
    assert_eq!(
        std::fs::read(old_data.join("world.dat")).expect("kept"),
        b"w"
    );
    // the size and an empty directory: the spare, mounted, without lost+found
    let e = ensure_from(&image, &data, 32 << 20, UID, GID, Some(&spares)).expect("spare");
    assert!(e.created && e.spare && !e.migrated, "{e:?}");
    assert_eq!(e.image_bytes, 32 << 20);
    assert_eq!(spares.taken(), 1);
    let m = mount_at(&data).expect("mountinfo").expect("mounted");
    assert_eq!(loops_of(&image), vec![PathBuf::from(&m.source)]);
    assert!(!data.join("lost+found").exists());
    // its root is root's until the caller gives it to the server's user
    assert_eq!(std::fs::metadata(&data).expect("stat").uid(), 0);
    // none left: the next new disk is made
    let next = s.dir.path().join("disks").join("u4.img");
    let next_data = s.dir.path().join("servers").join("u4");
    let e = ensure_from(&next, &next_data, 32 << 20, UID, GID, Some(&spares)).expect("made");
    assert!(e.created && !e.spare, "{e:?}");
    assert_eq!(
        std::fs::metadata(&next_data).expect("stat").uid(),
        UID,
        "a made disk's root is the server's"
    );
}

#[test]
fn writes_past_the_limit_get_enospc_and_the_node_holds_only_what_was_written() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    ensure(&image, &data, 16 << 20, UID, GID).expect("ensure");
    let (written, err) = fill(&data.join("big"), 64);
    let err = err.expect("the disk refused at some point");
    assert_eq!(err.raw_os_error(), Some(libc_enospc()), "{err}");
    assert!(written <= 16 << 20, "{written}");
    assert!(written >= 8 << 20, "most of the disk is usable: {written}");
    let on_node = std::fs::metadata(&image).expect("image").blocks() * 512;
    assert!(on_node <= 17 << 20, "{on_node} bytes on the node");
    let u = own_usage(&data).expect("usage");
    assert!(u.percent() >= 90, "{u:?}");
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}

#[test]
fn a_grow_keeps_the_data_and_raises_the_limit_and_a_lower_limit_shrinks_nothing() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    ensure(&image, &data, 16 << 20, UID, GID).expect("ensure");
    let payload: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(data.join("world.dat"), &payload).expect("write");
    let before = own_usage(&data).expect("usage");

    let grown = ensure(&image, &data, 64 << 20, UID, GID).expect("grow");
    // online with CAP_SYS_RESOURCE, else unmounted, checked and grown
    eprintln!("grown online: {}", grown.grown_online);
    assert_eq!(grown.grown_from.map(|b| b > 0), Some(true), "{grown:?}");
    assert_eq!(grown.image_bytes, 64 << 20);
    assert!(grown.grow_deferred.is_none(), "{grown:?}");
    let after = own_usage(&data).expect("usage");
    assert!(
        after.limit_bytes > 56 << 20 && after.limit_bytes > before.limit_bytes,
        "{before:?} → {after:?}"
    );
    assert_eq!(
        std::fs::read(data.join("world.dat")).expect("read"),
        payload,
        "the data survived the grow ({})",
        if grown.grown_online {
            "online"
        } else {
            "offline"
        }
    );
    let (written, err) = fill(&data.join("more"), 128);
    assert!(
        err.is_some() && written > 40 << 20,
        "the new room is usable: {written}"
    );
    std::fs::remove_file(data.join("more")).expect("rm");

    let lower = ensure(&image, &data, 32 << 20, UID, GID).expect("lower");
    assert!(lower.kept_larger(), "{lower:?}");
    assert_eq!(lower.image_bytes, 64 << 20);
    assert_eq!(
        std::fs::read(data.join("world.dat")).expect("read"),
        payload
    );
    assert_eq!(
        own_usage(&data).expect("usage").limit_bytes,
        after.limit_bytes
    );
    assert_eq!(loops_of(&image).len(), 1);
}

#[test]
fn an_unmounted_disk_is_grown_offline_when_mounted_again() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    ensure(&image, &data, 16 << 20, UID, GID).expect("ensure");
    std::fs::write(data.join("a"), b"kept").expect("write");
    unmount(&data).expect("unmount");
    let grown = ensure(&image, &data, 48 << 20, UID, GID).expect("grow");
    assert!(
        grown.grown_from.is_some() && !grown.grown_online,
        "{grown:?}"
    );
    assert!(own_usage(&data).expect("usage").limit_bytes > 40 << 20);
    assert_eq!(std::fs::read(data.join("a")).expect("read"), b"kept");
}

#[test]
fn unmount_and_remove_leave_no_loop_device_no_mount_and_no_image() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    ensure(&image, &data, 16 << 20, UID, GID).expect("ensure");
    assert!(!losetup_j(&image).is_empty());
    unmount(&data).expect("unmount");
    assert!(mount_at(&data).expect("mountinfo").is_none());
    assert_eq!(losetup_j(&image), "", "no loop device left");
    unmount(&data).expect("unmounting twice is fine");
    remove(&image).expect("remove");
    assert!(!image.exists());
    remove(&image).expect("removing twice is fine");
    assert!(
        std::fs::read_dir(image.parent().expect("disks"))
            .expect("disks")
            .next()
            .is_none(),
        "nothing left beside the image"
    );
}

#[test]
fn the_data_of_a_server_made_before_quotas_is_moved_into_its_disk() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    std::fs::create_dir_all(data.join("world/region")).expect("mkdir");
    std::fs::write(data.join("world/region/r.0.0.mca"), b"chunks").expect("write");
    std::fs::write(data.join("server.properties"), b"motd=hi").expect("write");
    std::fs::set_permissions(
        data.join("server.properties"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    std::os::unix::fs::lchown(data.join("server.properties"), Some(UID), Some(GID)).expect("chown");
    std::os::unix::fs::symlink("/etc/shadow", data.join("evil")).expect("symlink");

    let e = ensure(&image, &data, 32 << 20, UID, GID).expect("ensure");
    assert!(e.created && e.migrated, "{e:?}");
    assert!(own_usage(&data).is_some(), "now on its own filesystem");
    assert_eq!(
        std::fs::read(data.join("world/region/r.0.0.mca")).expect("read"),
        b"chunks"
    );
    let props = std::fs::metadata(data.join("server.properties")).expect("stat");
    assert_eq!((props.uid(), props.gid()), (UID, GID), "owner kept");
    assert_eq!(props.mode() & 0o7777, 0o640, "mode kept");
    let link = std::fs::symlink_metadata(data.join("evil")).expect("lstat");
    assert!(link.file_type().is_symlink(), "a link stays a link");
    assert_eq!(
        std::fs::read_link(data.join("evil")).expect("readlink"),
        Path::new("/etc/shadow")
    );
    // the node's directory underneath is empty: the old copies are gone
    unmount(&data).expect("unmount");
    assert!(!has_entries(&data).expect("read"), "old files removed");
    assert!(!marker(&image).exists());
    ensure(&image, &data, 32 << 20, UID, GID).expect("mount again");
    assert!(data.join("server.properties").exists());
}

#[test]
fn data_that_does_not_fit_its_new_disk_stays_where_it_was() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    std::fs::create_dir_all(&data).expect("mkdir");
    let big: Vec<u8> = vec![7u8; 24 << 20];
    std::fs::write(data.join("big"), &big).expect("write");
    let err = ensure(&image, &data, 16 << 20, UID, GID).expect_err("does not fit");
    assert!(matches!(err, DiskError::Migration { .. }), "{err}");
    assert!(err.to_string().contains("nothing was lost"), "{err}");
    assert_eq!(std::fs::read(data.join("big")).expect("still there"), big);
    assert!(mount_at(&data).expect("mountinfo").is_none());
    assert!(!image.exists() && !fresh_image(&image).exists());
    assert!(loops_of(&fresh_image(&image)).is_empty() && loops_of(&image).is_empty());
    assert!(mount_at(&migration_mount(&image))
        .expect("mountinfo")
        .is_none());
}

#[test]
fn files_written_while_the_disk_was_away_are_neither_hidden_nor_deleted() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    ensure(&image, &data, 16 << 20, UID, GID).expect("ensure");
    unmount(&data).expect("unmount");
    std::fs::write(data.join("stray"), b"?").expect("write");
    let err = ensure(&image, &data, 16 << 20, UID, GID).expect_err("refused");
    assert!(matches!(err, DiskError::NotEmpty(_)), "{err}");
    assert!(data.join("stray").exists());
    assert!(loops_of(&image).is_empty(), "nothing left attached");
}

#[test]
fn a_migration_that_stopped_after_its_copy_is_finished() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    ensure(&image, &data, 16 << 20, UID, GID).expect("ensure");
    std::fs::write(data.join("kept"), b"in the image").expect("write");
    unmount(&data).expect("unmount");
    // as a crash after the image took its name leaves it: old copies beside the marker
    std::fs::write(data.join("kept"), b"old copy").expect("write");
    std::fs::write(marker(&image), b"").expect("marker");
    ensure(&image, &data, 16 << 20, UID, GID).expect("ensure");
    assert_eq!(
        std::fs::read(data.join("kept")).expect("read"),
        b"in the image"
    );
    assert!(!marker(&image).exists());
}

#[test]
fn a_stale_loop_device_is_not_doubled() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    ensure(&image, &data, 16 << 20, UID, GID).expect("ensure");
    unmount(&data).expect("unmount");
    // a crash between attach and mount
    let (dev, _) = attach(&image).expect("attach");
    assert_eq!(loops_of(&image), vec![dev]);
    ensure(&image, &data, 16 << 20, UID, GID).expect("ensure");
    assert_eq!(loops_of(&image).len(), 1, "{}", losetup_j(&image));
}

#[test]
fn another_mount_on_the_data_directory_is_refused() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    std::fs::create_dir_all(&data).expect("mkdir");
    mount(
        Some("tmpfs"),
        &data,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .expect("tmpfs");
    let err = ensure(&image, &data, 16 << 20, UID, GID).expect_err("refused");
    assert!(matches!(err, DiskError::Foreign { .. }), "{err}");
}

#[test]
fn mountinfo_lines_are_parsed_with_their_escapes() {
    let text =
        "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                43 27 7:0 / /tmp/lt/mnt rw,nosuid,nodev,relatime - ext4 /dev/loop0 rw\n";
    let m = parse_mountinfo(text);
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].mountpoint, Path::new("/mnt/a b"));
    assert_eq!(m[0].fstype, "ext3");
    assert_eq!(m[1].source, "/dev/loop0");
}

#[test]
fn the_almost_full_warning_is_raised_once_and_armed_again_below_85_percent() {
    let at = |p: u64| Usage {
        used_bytes: p,
        limit_bytes: 100,
    };
    let mut a = FullAlarm::default();
    let seen: Vec<bool> = [50, 89, 90, 95, 99, 88, 86, 91, 84, 90, 100]
        .into_iter()
        .map(|p| a.observe(at(p)))
        .collect();
    assert_eq!(
        seen,
        [false, false, true, false, false, false, false, false, false, true, false]
    );
    assert!(
        !FullAlarm::default().observe(Usage::default()),
        "no limit, no warning"
    );
    let mut seeded = FullAlarm::seeded(Some(at(95)));
    assert!(!seeded.observe(at(96)), "already reported before a restart");
    assert!(FullAlarm::seeded(Some(at(10))).observe(at(92)));
}

#[test]
fn image_sizes_have_a_floor_and_whole_blocks() {
    assert_eq!(image_size(1), MIN_BYTES);
    assert_eq!(image_size((64 << 20) + 1), (64 << 20) + 4096);
    assert_eq!(image_size(10 << 30), 10 << 30);
}

#[test]
fn the_guard_leaves_nothing_behind_when_a_test_fails() {
    let image = std::sync::Mutex::new(PathBuf::new());
    let failed = std::panic::catch_unwind(|| {
        let s = Scratch::new();
        let (i, data) = (s.image(), s.data());
        *image.lock().expect("image") = i.clone();
        ensure(&i, &data, 16 << 20, UID, GID).expect("ensure");
        panic!("a test failing with its disk mounted");
    });
    assert!(failed.is_err());
    let image = image.into_inner().expect("image");
    assert_eq!(losetup_j(&image), "", "no loop device left");
    assert!(!mounts().expect("mounts").iter().any(|m| m
        .mountpoint
        .starts_with(image.parent().and_then(Path::parent).expect("dir"))));
}

#[test]
fn a_default_10_gib_disk_is_made_quickly_and_costs_the_node_a_few_mib() {
    let s = Scratch::new();
    let (image, data) = (s.image(), s.data());
    let started = std::time::Instant::now();
    let e = ensure(&image, &data, DEFAULT_BYTES as u64, UID, GID).expect("ensure");
    let took = started.elapsed();
    assert!(e.created);
    let on_node = std::fs::metadata(&image).expect("image").blocks() * 512;
    let u = own_usage(&data).expect("usage");
    // printed for docs/nodelet.md's costs
    eprintln!(
        "10 GiB disk: mkfs + attach + mount in {} ms, {} MiB on the node, {:.1} GiB usable",
        took.as_millis(),
        on_node >> 20,
        u.limit_bytes as f64 / f64::from(1 << 30)
    );
    assert!(on_node < 16 << 20, "{on_node}");
    assert!(u.limit_bytes > 9 << 30, "{u:?}");
    let started = std::time::Instant::now();
    unmount(&data).expect("unmount");
    remove(&image).expect("remove");
    eprintln!(
        "10 GiB disk: unmount + detach + remove in {} ms",
        started.elapsed().as_millis()
    );
}
