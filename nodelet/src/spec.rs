//! What a GameServer asks for, resolved against its Template, and the OCI runtime spec built
//! from it. Pure functions: no I/O.

use std::collections::BTreeMap;
use std::path::Path;

use catalyst_schemas::gameserver::{
    GameServer, GameServerPort, InstallSpec, NetworkMode, ReadySpec, Resources, StopSpec,
};
use catalyst_schemas::template::Template;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources, Mount,
    PosixRlimitBuilder, PosixRlimitType, Root, Spec, User,
};

use crate::image::ImageConfig;
use crate::userns::IdRange;

/// A spec that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The server names no image and its template has none.
    #[error("spec.image: no image (set spec.image or give the template an image)")]
    NoImage,
    /// The template named by the server is missing.
    #[error("spec.template: template {0:?} not found")]
    NoTemplate(String),
    /// Neither a startup command nor an image command.
    #[error("spec.startup: no startup command and the image has no command")]
    NoCommand,
    /// oci-spec refused a value.
    #[error("runtime spec: {0}")]
    Oci(String),
}

/// A server's wishes with the template's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Image reference.
    pub image: String,
    /// Startup line (`{{VAR}}` not yet substituted), if any.
    pub startup: Option<String>,
    /// Variables: template defaults overridden by the server's values.
    pub variables: BTreeMap<String, String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Limits.
    pub resources: Resources,
    /// Ports (the status's host ports are the controller's business).
    pub ports: Vec<GameServerPort>,
    /// How to stop.
    pub stop: Option<StopSpec>,
    /// When ready.
    pub ready: Option<ReadySpec>,
    /// Install script.
    pub install: Option<InstallSpec>,
    /// Network mode.
    pub network: NetworkMode,
}

/// Resolves a server against its template (which must be given when the server names one).
pub fn resolve(gs: &GameServer, template: Option<&Template>) -> Result<Resolved, SpecError> {
    let s = &gs.spec;
    let t = match (&s.template, template) {
        (Some(name), None) => return Err(SpecError::NoTemplate(name.clone())),
        (Some(_), Some(t)) => Some(&t.spec),
        (None, _) => None,
    };
    let image = s
        .image
        .clone()
        .or_else(|| t.and_then(|t| t.images.first().map(|i| i.image.clone())))
        .ok_or(SpecError::NoImage)?;
    let mut variables = BTreeMap::new();
    if let Some(t) = t {
        for v in &t.variables {
            if let Some(d) = &v.default {
                variables.insert(v.name.clone(), d.clone());
            }
        }
    }
    variables.extend(s.variables.clone());
    let pick_res = |a: &Option<_>, b: Option<&Option<_>>| a.clone().or(b.cloned().flatten());
    let resources = Resources {
        cpu: pick_res(&s.resources.cpu, t.map(|t| &t.resources.cpu)),
        memory: pick_res(&s.resources.memory, t.map(|t| &t.resources.memory)),
        disk: pick_res(&s.resources.disk, t.map(|t| &t.resources.disk)),
        pids: s.resources.pids.or(t.and_then(|t| t.resources.pids)),
    };
    Ok(Resolved {
        image,
        startup: s
            .startup
            .clone()
            .or_else(|| t.map(|t| t.startup.clone()).filter(|x| !x.is_empty())),
        variables,
        env: s.env.clone(),
        resources,
        ports: if s.ports.is_empty() {
            t.map(|t| t.ports.clone()).unwrap_or_default()
        } else {
            s.ports.clone()
        },
        stop: s.stop.clone().or_else(|| t.and_then(|t| t.stop.clone())),
        ready: s.ready.clone().or_else(|| t.and_then(|t| t.ready.clone())),
        install: s
            .install
            .clone()
            .or_else(|| t.and_then(|t| t.install.clone())),
        network: s.network,
    })
}

/// Limits a server gets when neither it nor its template sets them: never unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultLimits {
    /// Memory (and memory + swap) in bytes.
    pub memory: i64,
    /// CPU in thousandths of a core.
    pub cpu_millis: i64,
    /// Processes and threads.
    pub pids: i64,
}

impl Default for DefaultLimits {
    /// 1 GiB of memory, one core, 512 pids: enough for a small game server, documented in
    /// docs/nodelet.md; a Node's `spec.defaultResources` overrides them.
    fn default() -> Self {
        Self {
            memory: 1 << 30,
            cpu_millis: 1000,
            pids: 512,
        }
    }
}

/// Where and as whom a server's container runs.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    /// Container ID (also the hostname's source).
    pub id: &'a str,
    /// Hostname inside the container.
    pub hostname: &'a str,
    /// The server's data directory on the node, mounted at `/home/container`.
    pub data_dir: &'a Path,
    /// The network namespace to join (Bridge; owned by `userns`), or None for Host.
    pub netns: Option<&'a Path>,
    /// The server's persistent user namespace, mapped to `range`.
    pub userns: &'a Path,
    /// The server's host id range: container uid 0 is `range.start`.
    pub range: IdRange,
    /// uid the process runs as, inside the container.
    pub uid: u32,
    /// gid, inside the container.
    pub gid: u32,
    /// Limits for what the server leaves unset.
    pub defaults: DefaultLimits,
    /// The server's UID, for `P_SERVER_UUID`.
    pub server_uid: &'a str,
}

/// The environment of a server's process, in order: image env, Pterodactyl's conventional
/// variables, template/server variables, then `spec.env`.
pub fn environment(r: &Resolved, image: &ImageConfig, p: &Placement<'_>) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    fn set(env: &mut BTreeMap<String, String>, order: &mut Vec<String>, k: &str, v: String) {
        if env.insert(k.to_owned(), v).is_none() {
            order.push(k.to_owned());
        }
    }
    macro_rules! set {
        ($k:expr, $v:expr $(,)?) => {
            set(&mut env, &mut order, $k, $v)
        };
    }
    for line in image.config.env.clone().unwrap_or_default() {
        if let Some((k, v)) = line.split_once('=') {
            set!(k, v.to_owned());
        }
    }
    if !env.contains_key("PATH") {
        set!(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    set!("HOME", "/home/container".into());
    set!("TZ", "UTC".into());
    set!("SERVER_IP", "0.0.0.0".into());
    if let Some(port) = r.ports.first() {
        set!("SERVER_PORT", port.container_port.to_string());
    }
    if let Some(m) = &r.resources.memory {
        set!("SERVER_MEMORY", (m.value() / (1 << 20)).to_string());
    }
    set!("P_SERVER_UUID", p.server_uid.to_owned());
    if let Some(startup) = &r.startup {
        set!("STARTUP", startup.clone());
    }
    for (k, v) in &r.variables {
        set!(k, v.clone());
    }
    for (k, v) in &r.env {
        set!(k, v.clone());
    }
    order
        .into_iter()
        .map(|k| format!("{k}={}", env[&k]))
        .collect()
}

/// The argv of a server's process: the startup line run by `/bin/sh -c` with its placeholders
/// turned into references to the environment (every variable is in it, see [`environment`]),
/// so that no value is ever parsed as shell syntax; else the image's entrypoint + cmd.
pub fn argv(r: &Resolved, image: &ImageConfig) -> Result<Vec<String>, SpecError> {
    if let Some(startup) = &r.startup {
        let line = crate::startup::substitute(startup);
        return Ok(vec!["/bin/sh".into(), "-c".into(), line]);
    }
    let mut args = image.config.entrypoint.clone().unwrap_or_default();
    args.extend(image.config.cmd.clone().unwrap_or_default());
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(args)
}

fn oci<E: std::fmt::Display>(e: E) -> SpecError {
    SpecError::Oci(e.to_string())
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
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

fn capabilities(caps: &[Capability]) -> LinuxCapabilities {
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
fn devices() -> Vec<LinuxDeviceCgroup> {
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

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in mounts.iter_mut() {
        if m.destination() == Path::new("/proc") {
            m.set_options(Some(vec!["nosuid".into(), "noexec".into(), "nodev".into()]));
        }
    }
    if p.netns.is_none() {
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
        &p.data_dir.display().to_string(),
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
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().ok_or_else(|| oci("no linux"))?;
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|n| {
        !matches!(
            n.typ(),
            LinuxNamespaceType::Network | LinuxNamespaceType::User
        )
    });
    let mut userns = LinuxNamespace::default();
    userns.set_typ(LinuxNamespaceType::User);
    userns.set_path(Some(p.userns.to_owned()));
    namespaces.push(userns);
    if let Some(netns) = p.netns {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Network);
        ns.set_path(Some(netns.to_owned()));
        namespaces.push(ns);
    }
    linux.set_namespaces(Some(namespaces));
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
    let mut res = LinuxResources::default();
    res.set_devices(Some(devices()));
    let bytes = r
        .resources
        .memory
        .as_ref()
        .map_or(p.defaults.memory, |m| m.value());
    let mut m = LinuxMemory::default();
    m.set_limit(Some(bytes));
    m.set_swap(Some(bytes));
    res.set_memory(Some(m));
    let millis = r
        .resources
        .cpu
        .as_ref()
        .map_or(p.defaults.cpu_millis, |c| c.milli_value());
    let period: u64 = 100_000;
    let quota = millis * period as i64 / 1000;
    let mut c = LinuxCpu::default();
    c.set_period(Some(period));
    c.set_quota(Some(quota.max(1000)));
    res.set_cpu(Some(c));
    let mut pids = LinuxPids::default();
    pids.set_limit(r.resources.pids.unwrap_or(p.defaults.pids));
    res.set_pids(Some(pids));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn resolved(memory: Option<&str>) -> Resolved {
        let resources = Resources {
            memory: memory.map(|m| m.parse().expect("quantity")),
            ..Default::default()
        };
        Resolved {
            image: "img".into(),
            startup: Some("run {{X}}".into()),
            variables: BTreeMap::new(),
            env: BTreeMap::new(),
            resources,
            ports: Vec::new(),
            stop: None,
            ready: None,
            install: None,
            network: NetworkMode::Bridge,
        }
    }

    fn build(r: &Resolved, netns: Option<&Path>) -> Spec {
        let data = PathBuf::from("/data/servers/x");
        let userns = PathBuf::from("/run/catalyst/userns/catalyst-gs-x");
        let p = Placement {
            id: "gs-x",
            hostname: "x",
            data_dir: &data,
            netns,
            userns: &userns,
            range: IdRange {
                start: 1 << 30,
                size: 65536,
            },
            uid: 1000,
            gid: 1000,
            defaults: DefaultLimits::default(),
            server_uid: "x",
        };
        runtime_spec(r, vec!["sh".into()], Vec::new(), &p, true).expect("spec")
    }

    #[test]
    fn the_servers_process_holds_no_capability_and_runs_under_seccomp_in_its_user_namespace() {
        let netns = PathBuf::from("/run/netns/catalyst-gs-x");
        let spec = build(&resolved(Some("256Mi")), Some(&netns));
        let process = spec.process().as_ref().expect("process");
        let caps = process.capabilities().as_ref().expect("caps");
        for set in [
            caps.bounding(),
            caps.effective(),
            caps.permitted(),
            caps.inheritable(),
            caps.ambient(),
        ] {
            assert_eq!(set.as_ref().map(|s| s.len()), Some(0));
        }
        assert_eq!(process.no_new_privileges(), Some(true));
        assert_eq!(process.user().uid(), 1000);
        let linux = spec.linux().as_ref().expect("linux");
        assert!(linux.seccomp().is_some());
        let ns = linux.namespaces().as_ref().expect("namespaces");
        let user = ns
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::User)
            .expect("a user namespace");
        assert_eq!(
            user.path().as_deref(),
            Some(Path::new("/run/catalyst/userns/catalyst-gs-x"))
        );
        let map = &linux.uid_mappings().as_ref().expect("uid map")[0];
        assert_eq!(
            (map.container_id(), map.host_id(), map.size()),
            (0, 1 << 30, 65536)
        );
        let masked = linux.masked_paths().as_ref().expect("masked");
        for p in [
            "/proc/kcore",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
        ] {
            assert!(masked.iter().any(|m| m == p), "{p}");
        }
        let devices = linux
            .resources()
            .as_ref()
            .and_then(|r| r.devices().clone())
            .expect("devices");
        assert!(!devices[0].allow() && devices[0].typ() == Some(LinuxDeviceType::A));
        let mem = linux
            .resources()
            .as_ref()
            .and_then(|r| r.memory().as_ref().and_then(|m| m.limit()));
        assert_eq!(mem, Some(256 << 20));
    }

    #[test]
    fn a_server_without_limits_gets_the_defaults_never_unlimited() {
        let spec = build(&resolved(None), None);
        let res = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .expect("resources");
        assert_eq!(res.memory().as_ref().and_then(|m| m.limit()), Some(1 << 30));
        assert_eq!(res.pids().as_ref().map(|p| p.limit()), Some(512));
        assert_eq!(
            res.cpu().as_ref().and_then(|c| c.quota()),
            Some(100_000),
            "one CPU"
        );
    }

    #[test]
    fn host_networking_gets_the_hosts_sys_read_only_and_no_sysctls() {
        let spec = build(&resolved(None), None);
        let sys = spec
            .mounts()
            .as_ref()
            .expect("mounts")
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .expect("/sys");
        assert_eq!(sys.typ().as_deref(), Some("bind"));
        assert!(sys
            .options()
            .as_ref()
            .expect("options")
            .iter()
            .any(|o| o == "ro"));
        assert!(spec.linux().as_ref().expect("linux").sysctl().is_none());
    }

    #[test]
    fn the_install_container_holds_dockers_default_capabilities_and_their_seccomp_profile() {
        let mut spec = build(&resolved(None), None);
        install_layout(&mut spec, Path::new("/data"), Path::new("/scripts"));
        let process = spec.process().as_ref().expect("process");
        assert_eq!(process.user().uid(), 0);
        let caps = process.capabilities().as_ref().expect("caps");
        assert_eq!(
            caps.effective().as_ref().map(|s| s.len()),
            Some(INSTALL_CAPABILITIES.len())
        );
        assert_eq!(caps.ambient().as_ref().map(|s| s.len()), Some(0));
        assert!(!caps
            .bounding()
            .as_ref()
            .expect("bounding")
            .contains(&Capability::SysAdmin));
        let profile = spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().clone())
            .expect("seccomp");
        assert_eq!(profile, crate::seccomp::profile(INSTALL_CAPABILITIES));
    }
}
