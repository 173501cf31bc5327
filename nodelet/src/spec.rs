//! What a GameServer asks for, resolved against its Template, and the OCI runtime spec built
//! from it. Pure functions: no I/O.

use std::collections::BTreeMap;
use std::path::Path;

use catalyst_schemas::gameserver::{
    GameServer, GameServerPort, InstallSpec, NetworkMode, ReadySpec, Resources, StopSpec,
};
use catalyst_schemas::template::Template;
use oci_spec::runtime::{
    LinuxCpu, LinuxMemory, LinuxNamespaceType, LinuxPids, LinuxResources, Mount,
    PosixRlimitBuilder, PosixRlimitType, Root, Spec, User,
};

use crate::image::ImageConfig;

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

/// Quotes a value for POSIX `sh` so that it is one word and nothing in it is interpreted.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Replaces `{{NAME}}` (and Pterodactyl's `{{env.NAME}}`) with the shell-quoted value; unknown
/// names become empty strings, quoted.
pub fn substitute(startup: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(startup.len());
    let mut rest = startup;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                let name = name.strip_prefix("env.").unwrap_or(name);
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if valid {
                    let v = vars.get(name).map(String::as_str).unwrap_or("");
                    out.push_str(&shell_quote(v));
                } else {
                    out.push_str(&rest[start..start + 2 + end + 2]);
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
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
    /// The network namespace to join (Bridge), or None for Host.
    pub netns: Option<&'a Path>,
    /// uid and gid the process runs as.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Pids limit when the server sets none.
    pub default_pids: i64,
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

/// The variables `{{…}}` placeholders may name: the environment, so `{{SERVER_PORT}}` works.
fn substitution_vars(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The argv of a server's process.
pub fn argv(r: &Resolved, image: &ImageConfig, env: &[String]) -> Result<Vec<String>, SpecError> {
    if let Some(startup) = &r.startup {
        let line = substitute(startup, &substitution_vars(env));
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

/// The OCI runtime spec of a server's (or install) container.
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
    process.set_user(user);
    process.set_no_new_privileges(Some(true));
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
    mounts.push(mount(
        "/home/container",
        "bind",
        &p.data_dir.display().to_string(),
        &["rbind", "rw", "nosuid", "nodev"],
    ));
    mounts.push(mount(
        "/tmp",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "mode=1777", "size=268435456"],
    ));
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().ok_or_else(|| oci("no linux"))?;
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
    if let Some(netns) = p.netns {
        let mut ns = oci_spec::runtime::LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Network);
        ns.set_path(Some(netns.to_owned()));
        namespaces.push(ns);
    }
    linux.set_namespaces(Some(namespaces));
    linux.set_cgroups_path(Some(format!("/catalyst/{}", p.id).into()));
    let mut res = LinuxResources::default();
    if let Some(mem) = &r.resources.memory {
        let bytes = mem.value();
        let mut m = LinuxMemory::default();
        m.set_limit(Some(bytes));
        m.set_swap(Some(bytes));
        res.set_memory(Some(m));
    }
    if let Some(cpu) = &r.resources.cpu {
        let period: u64 = 100_000;
        let quota = cpu.milli_value() * period as i64 / 1000;
        let mut c = LinuxCpu::default();
        c.set_period(Some(period));
        c.set_quota(Some(quota.max(1000)));
        res.set_cpu(Some(c));
    }
    let mut pids = LinuxPids::default();
    pids.set_limit(r.resources.pids.unwrap_or(p.default_pids));
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
        // default set; still no new privileges, no SYS_ADMIN, no NET_ADMIN
        use oci_spec::runtime::Capability as C;
        let caps: oci_spec::runtime::Capabilities = [
            C::Chown,
            C::DacOverride,
            C::Fsetid,
            C::Fowner,
            C::Mknod,
            C::NetRaw,
            C::Setgid,
            C::Setuid,
            C::Setfcap,
            C::Setpcap,
            C::NetBindService,
            C::SysChroot,
            C::Kill,
            C::AuditWrite,
        ]
        .into_iter()
        .collect();
        let mut linux_caps = oci_spec::runtime::LinuxCapabilities::default();
        linux_caps.set_bounding(Some(caps.clone()));
        linux_caps.set_effective(Some(caps.clone()));
        linux_caps.set_permitted(Some(caps));
        linux_caps.set_inheritable(None);
        linux_caps.set_ambient(None);
        process.set_capabilities(Some(linux_caps));
        spec.set_process(Some(process));
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

    #[test]
    fn substitution_quotes_values_so_they_cannot_inject() {
        let vars = BTreeMap::from([
            ("JAR".to_owned(), "server.jar; rm -rf /".to_owned()),
            ("Q".to_owned(), "it's $(id)`id`".to_owned()),
        ]);
        let line = substitute(
            "java -jar {{JAR}} --motd {{ Q }} {{env.JAR}} {{MISSING}}",
            &vars,
        );
        assert_eq!(
            line,
            "java -jar 'server.jar; rm -rf /' --motd 'it'\\''s $(id)`id`' \
             'server.jar; rm -rf /' ''"
        );
    }

    #[test]
    fn unterminated_and_invalid_placeholders_stay_literal() {
        let vars = BTreeMap::new();
        assert_eq!(substitute("a {{b c}} {{x", &vars), "a {{b c}} {{x");
    }

    #[test]
    fn quoted_values_survive_a_real_shell() {
        let vars = BTreeMap::from([("V".to_owned(), "a'b\"c $HOME;`x`".to_owned())]);
        let line = substitute("printf %s {{V}}", &vars);
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &line])
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a'b\"c $HOME;`x`");
    }
}
