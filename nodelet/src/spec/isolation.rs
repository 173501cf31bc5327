//! What confines a container besides its user namespace: capabilities, masked and read-only
//! paths, the device cgroup, the mounts and the namespaces.

use std::path::Path;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxNamespace, LinuxNamespaceType, Mount,
};

/// A mount of `source` (of type `typ`) at `dest` with `options`.
pub(super) fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into());
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// Paths of `/proc` and `/sys` that say too much about the host or reach its hardware: hidden
/// (Docker's list and more).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths of `/proc` that stay visible but read-only (Docker's list).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default capability set, which the install container holds (inside its user
/// namespace only); the server's own process holds none.
pub const INSTALL_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// The capability sets of a process holding `caps`: bounding, effective and permitted; none
/// inheritable or ambient.
pub(super) fn capabilities(caps: &[Capability]) -> LinuxCapabilities {
    let set: Capabilities = caps.iter().copied().collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set));
    c.set_inheritable(Some(Capabilities::new()));
    c.set_ambient(Some(Capabilities::new()));
    c
}

/// The device cgroup: everything denied, then the standard character devices a process needs.
pub(super) fn devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(allow);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some("rwm".into()));
        d
    };
    let c = LinuxDeviceType::C;
    vec![
        rule(false, LinuxDeviceType::A, None, None),
        rule(true, c, Some(1), Some(3)), // null
        rule(true, c, Some(1), Some(5)), // zero
        rule(true, c, Some(1), Some(7)), // full
        rule(true, c, Some(1), Some(8)), // random
        rule(true, c, Some(1), Some(9)), // urandom
        rule(true, c, Some(5), Some(0)), // tty
        rule(true, c, Some(5), Some(2)), // ptmx
        rule(true, c, Some(136), None),  // pts
    ]
}

/// The server container's mounts: the runtime's defaults with `/proc` `nosuid,noexec,nodev`
/// and, with host networking, the host's `/sys` read-only instead of one of its own; then the
/// data directory at `/home/container` and a tmpfs on each writable directory of the root.
pub(super) fn server_mounts(
    mut mounts: Vec<Mount>,
    data_dir: &Path,
    host_network: bool,
) -> Vec<Mount> {
    for m in mounts.iter_mut() {
        if m.destination() == Path::new("/proc") {
            m.set_options(Some(vec!["nosuid".into(), "noexec".into(), "nodev".into()]));
        }
    }
    if host_network {
        // host networking: the host's network namespace is not the server's user namespace's,
        // so no sysfs of its own can be mounted; the host's, read-only
        for m in mounts.iter_mut() {
            if m.destination() == Path::new("/sys") {
                *m = mount(
                    "/sys",
                    "bind",
                    "/sys",
                    &["rbind", "ro", "nosuid", "noexec", "nodev"],
                );
            }
        }
    }
    mounts.push(mount(
        "/home/container",
        "bind",
        &data_dir.display().to_string(),
        &["rbind", "rw", "nosuid", "nodev"],
    ));
    for dir in crate::rootfs::WRITABLE_DIRS {
        mounts.push(mount(
            dir,
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "mode=1777", "size=268435456"],
        ));
    }
    mounts
}

/// The container's namespaces: the runtime's defaults without their network and user ones,
/// then the server's persistent user namespace and, when given, its network namespace.
pub(super) fn namespaces(
    mut namespaces: Vec<LinuxNamespace>,
    userns: &Path,
    netns: Option<&Path>,
) -> Vec<LinuxNamespace> {
    namespaces.retain(|n| {
        !matches!(
            n.typ(),
            LinuxNamespaceType::Network | LinuxNamespaceType::User
        )
    });
    let mut ns = LinuxNamespace::default();
    ns.set_typ(LinuxNamespaceType::User);
    ns.set_path(Some(userns.to_owned()));
    namespaces.push(ns);
    if let Some(netns) = netns {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Network);
        ns.set_path(Some(netns.to_owned()));
        namespaces.push(ns);
    }
    namespaces
}
