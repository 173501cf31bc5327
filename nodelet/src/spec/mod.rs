//! What a GameServer asks for, resolved against its Template, and the OCI runtime spec built
//! from it. Pure functions: no I/O.
//!
//! The parts, each importing only those listed before it: `error`, `limits` (default and
//! applied resource limits), `resolve` (a server against its template; its placement),
//! `process` (environment and argv), `isolation` (capabilities, masked paths, devices, mounts,
//! namespaces); this module builds the spec from them.

mod error;
mod isolation;
mod limits;
mod process;
mod ready;
mod resolve;

#[cfg(test)]
mod tests;

use std::path::Path;

use oci_spec::runtime::{LinuxResources, PosixRlimitBuilder, PosixRlimitType, Root, Spec, User};

pub use error::SpecError;
pub use isolation::{INSTALL_CAPABILITIES, MASKED_PATHS, READONLY_PATHS};
pub use limits::{disk_bytes, DefaultLimits};
pub use process::{argv, environment};
pub use ready::{strip_ansi, ReadyMatcher};
pub use resolve::{resolve, Placement, Resolved};

use error::oci;
use isolation::{capabilities, devices, mount, namespaces, server_mounts};
use limits::limits;

/// The OCI runtime spec of a server's container: the server's process as `p.uid` in the
/// server's user namespace with no capabilities, under the seccomp profile, with masked and
/// read-only paths, a deny-all device cgroup, and memory, CPU and pids limits always set.
pub fn runtime_spec(
    r: &Resolved,
    args: Vec<String>,
    env: Vec<String>,
    p: &Placement<'_>,
    readonly_root: bool,
) -> Result<Spec, SpecError> {
    let mut spec = Spec::default();
    spec.set_hostname(Some(p.hostname.to_owned()));
    let mut root = Root::default();
    root.set_path("rootfs".into());
    root.set_readonly(Some(readonly_root));
    spec.set_root(Some(root));

    let mut process = spec.process().clone().ok_or_else(|| oci("no process"))?;
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd("/home/container".into());
    let mut user = User::default();
    user.set_uid(p.uid);
    user.set_gid(p.gid);
    user.set_additional_gids(Some(Vec::new()));
    process.set_user(user);
    process.set_no_new_privileges(Some(true));
    process.set_capabilities(Some(capabilities(&[])));
    // the OOM killer takes a game server before the node's own daemons (the shim's score,
    // which runc would otherwise pass on, is containerd's: nearly unkillable)
    process.set_oom_score_adj(Some(0));
    // as many open files as the nodelet may have, up to 65536
    let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(_, hard)| hard.min(65536));
    process.set_rlimits(Some(vec![PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(nofile)
        .soft(nofile)
        .build()
        .map_err(oci)?]));
    spec.set_process(Some(process));

    let mounts = spec.mounts().clone().unwrap_or_default();
    spec.set_mounts(Some(server_mounts(mounts, p.data_dir, p.netns.is_none())));

    let mut linux = spec.linux().clone().ok_or_else(|| oci("no linux"))?;
    let defaults = linux.namespaces().clone().unwrap_or_default();
    linux.set_namespaces(Some(namespaces(defaults, p.userns, p.netns)));
    linux.set_uid_mappings(Some(vec![p.range.oci_mapping()]));
    linux.set_gid_mappings(Some(vec![p.range.oci_mapping()]));
    linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|s| s.to_string()).collect()));
    linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|s| s.to_string()).collect()));
    if p.netns.is_some() {
        // the server's own network namespace: low ports and ping without capabilities, as
        // Docker does
        linux.set_sysctl(Some(
            [
                (
                    "net.ipv4.ip_unprivileged_port_start".to_owned(),
                    "0".to_owned(),
                ),
                ("net.ipv4.ping_group_range".to_owned(), "0 65535".to_owned()),
            ]
            .into(),
        ));
    }
    linux.set_seccomp(Some(crate::seccomp::profile(&[])));
    linux.set_cgroups_path(Some(format!("/catalyst/{}", p.id).into()));
    let mut res: LinuxResources = limits(&r.resources, &p.defaults);
    res.set_devices(Some(devices()));
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// Turns a server's spec into the install container's: runs as root in `/mnt/server` (the data
/// dir, Pterodactyl's convention) with the script directory at `/mnt/install`, read-only.
pub fn install_layout(spec: &mut Spec, data_dir: &Path, script_dir: &Path) {
    if let Some(process) = spec.process().clone() {
        let mut process = process;
        process.set_user(User::default());
        process.set_cwd("/mnt/server".into());
        // root that can install packages and write files it does not own, as in Docker's
        // default set, but only inside the server's user namespace (root there is an
        // unprivileged host uid) and under the seccomp profile for those capabilities
        process.set_capabilities(Some(capabilities(INSTALL_CAPABILITIES)));
        spec.set_process(Some(process));
    }
    if let Some(mut linux) = spec.linux().clone() {
        linux.set_seccomp(Some(crate::seccomp::profile(INSTALL_CAPABILITIES)));
        spec.set_linux(Some(linux));
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount(
        "/mnt/server",
        "bind",
        &data_dir.display().to_string(),
        &["rbind", "rw", "nosuid", "nodev"],
    ));
    mounts.push(mount(
        "/mnt/install",
        "bind",
        &script_dir.display().to_string(),
        &["rbind", "ro", "nosuid", "nodev"],
    ));
    spec.set_mounts(Some(mounts));
}
