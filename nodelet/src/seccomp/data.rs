//! The profile's data: `default.json` (Docker's format: groups of syscall names with an action,
//! argument comparisons and `includes`/`excludes` conditions), parsed once, and the conditions
//! evaluated for a container and a host.

use std::sync::OnceLock;

use oci_spec::runtime::{Arch, Capability, LinuxSeccompAction, LinuxSeccompArg};
use serde::{Deserialize, Deserializer};

use super::host::parse_release;

/// The profile as written in `default.json`.
static DEFAULT_JSON: &str = include_str!("default.json");

/// Docker's profile: the default answer, the architectures by host, the groups in order.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DockerProfile {
    /// What the file is.
    #[serde(default)]
    #[allow(dead_code)]
    comment: String,
    /// What anything no rule allows gets (`SCMP_ACT_ERRNO`).
    pub(super) default_action: LinuxSeccompAction,
    /// With this errno (`EPERM`).
    pub(super) default_errno_ret: u32,
    /// The seccomp architectures a host gets, by Go's name of the host architecture: the native
    /// one and the compatibility ABIs its kernel also runs (Docker's `archMap`). A host not
    /// listed gets no list, which runc reads as "the native architecture only".
    pub(super) arch_map: Vec<ArchEntry>,
    /// The groups, in Docker's order.
    pub(super) syscalls: Vec<Group>,
}

/// One entry of the architecture map.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ArchEntry {
    /// Go's name of the host architecture.
    pub(super) arch: String,
    /// The seccomp architectures a filter for that host covers.
    pub(super) seccomp: Vec<Arch>,
}

/// One group of the profile: these names, this action, under these argument comparisons (all
/// must hold), when these conditions hold.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Group {
    /// Why the group is there.
    #[serde(default)]
    #[allow(dead_code)]
    comment: String,
    /// Syscall names: plain strings, which runc skips when the kernel or libseccomp does not
    /// know them.
    pub(super) names: Vec<String>,
    /// `SCMP_ACT_ALLOW`, or `SCMP_ACT_ERRNO` with [`Group::errno_ret`].
    pub(super) action: LinuxSeccompAction,
    /// The errno of an `SCMP_ACT_ERRNO` group.
    #[serde(default)]
    pub(super) errno_ret: Option<u32>,
    /// Argument comparisons, as OCI writes them (for `SCMP_CMP_MASKED_EQ`, `value` is the mask
    /// and `valueTwo` what the masked argument must equal).
    #[serde(default)]
    pub(super) args: Vec<LinuxSeccompArg>,
    /// The group is included when these hold…
    #[serde(default)]
    includes: Cond,
    /// …and these do not.
    #[serde(default)]
    excludes: Cond,
}

/// Docker's `includes` / `excludes`. An empty list or no `minKernel` constrains nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Cond {
    /// Capabilities the container holds (all of them for `includes`, any for `excludes`).
    #[serde(default)]
    caps: Vec<Capability>,
    /// Go names of the host architecture.
    #[serde(default)]
    arches: Vec<String>,
    /// The running kernel is at least this `major.minor`.
    #[serde(default, deserialize_with = "kernel_version")]
    min_kernel: Option<(u32, u32)>,
}

/// Reads `"major.minor"`.
fn kernel_version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(u32, u32)>, D::Error> {
    let s = String::deserialize(d)?;
    parse_release(&s)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("bad kernel version {s:?}")))
}

impl Group {
    /// Allows its names whatever their arguments.
    pub(super) fn unconditional(&self) -> bool {
        self.action == LinuxSeccompAction::ScmpActAllow && self.args.is_empty()
    }

    /// Whether Docker would include this group for a container holding `caps` on `arch` running
    /// `kernel` (unknown kernel: groups that need a minimum kernel are left out).
    pub(super) fn applies(
        &self,
        caps: &[Capability],
        arch: &str,
        kernel: Option<(u32, u32)>,
    ) -> bool {
        let at_least = |min: (u32, u32)| kernel.is_some_and(|k| k >= min);
        let inc = &self.includes;
        let exc = &self.excludes;
        inc.caps.iter().all(|c| caps.contains(c))
            && (inc.arches.is_empty() || inc.arches.iter().any(|a| a == arch))
            && inc.min_kernel.is_none_or(at_least)
            && !exc.caps.iter().any(|c| caps.contains(c))
            && !exc.arches.iter().any(|a| a == arch)
            && exc.min_kernel.is_none_or(|min| !at_least(min))
    }
}

/// `default.json`, parsed on first use.
pub(super) fn docker_profile() -> &'static DockerProfile {
    static PROFILE: OnceLock<DockerProfile> = OnceLock::new();
    PROFILE.get_or_init(|| {
        // the file is part of the binary and a unit test parses it: this cannot fail at run time
        serde_json::from_str(DEFAULT_JSON).expect("seccomp/default.json is a valid profile")
    })
}
