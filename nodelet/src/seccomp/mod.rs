//! The seccomp profile every game-server container gets: Docker's default profile, kept as data.
//!
//! The profile follows moby's `profiles/seccomp/default.json` (and containerd's
//! `contrib/seccomp/seccomp_default.go`, which mirrors it): every syscall is refused with `EPERM`
//! unless a rule allows it; a large unconditional allow-list covers what ordinary programs need;
//! a few syscalls are allowed only for some argument values (`personality`, `clone` without
//! namespace flags, `socket` without `AF_VSOCK`); groups of privileged syscalls are allowed only
//! when the container holds the capability that the kernel would check anyway (`CAP_SYS_ADMIN`
//! for `mount`/`unshare`/`setns`/…, `CAP_SYS_PTRACE`, `CAP_SYS_MODULE`, …); and `clone3` answers
//! `ENOSYS` without `CAP_SYS_ADMIN`, because its flags live in memory a filter cannot read, so
//! the C library falls back to the filtered `clone`.
//!
//! Like recent Docker, the `io_uring_*` syscalls are refused (their submissions bypass seccomp).
//! Syscall names are plain strings: runc skips names that the running kernel or libseccomp does
//! not know, so one list serves every kernel.
//!
//! The profile is data: `default.json`, in Docker's format and group order, is read once;
//! [`profile`] evaluates Docker's `includes`/`excludes` conditions (capabilities, host
//! architecture, minimum kernel) against the container's capabilities and the host, then
//! removes rules made redundant by a broader one.
//!
//! The parts: `host` (the host's architecture and kernel), `data` (the profile's data and its
//! conditions; imports `host`); this module builds the OCI profile from them.

mod data;
mod host;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use oci_spec::runtime::{Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSyscall};

use data::{docker_profile, Group};
use host::{host_arch, running_kernel};

/// The default seccomp profile for a container whose bounding set is `caps`, for this host.
///
/// Guarantees, whatever `caps` holds:
/// - anything not allowed by a rule fails with `EPERM` (`SCMP_ACT_ERRNO`, `defaultErrnoRet` 1);
/// - the filter covers the host's native architecture and its compatibility ABIs (x86_64, x86
///   and x32 on an x86_64 host; aarch64 and arm on an arm64 host), so 32-bit syscalls cannot
///   go around it;
/// - `io_uring_*`, `keyctl`, `add_key`, `request_key`, `kexec_load`, `userfaultfd`,
///   `pivot_root` and `personality` with other values than Docker's five are refused;
/// - `socket` for `AF_VSOCK` is refused.
///
/// And without the matching capability in `caps`:
/// - `CAP_SYS_ADMIN`: `mount`, `umount2`, `unshare`, `setns`, `bpf`, `perf_event_open`, … are
///   refused; `clone` is allowed only when its flags create no namespace; `clone3` fails with
///   `ENOSYS`, so that the C library falls back to `clone`;
/// - `CAP_SYS_PTRACE`: `kcmp`, `pidfd_getfd`, `process_madvise` are refused, and so are
///   `ptrace`, `process_vm_readv`, `process_vm_writev` on kernels older than 4.8 (Docker allows
///   those three to everyone from 4.8 on; the kernel release is read once from
///   `/proc/sys/kernel/osrelease`, and if it cannot be read they stay refused);
/// - `CAP_SYS_MODULE`, `CAP_SYS_BOOT`, `CAP_SYS_CHROOT`, `CAP_SYS_PACCT`, `CAP_SYS_RAWIO`,
///   `CAP_SYS_TIME`, `CAP_SYS_TTY_CONFIG`, `CAP_SYS_NICE`, `CAP_SYSLOG`, `CAP_BPF`,
///   `CAP_PERFMON`, `CAP_DAC_READ_SEARCH`: their syscalls (`init_module`, `reboot`, `chroot`,
///   `acct`, `iopl`, `settimeofday`, `vhangup`, `mbind`, `syslog`, `bpf`, `perf_event_open`,
///   `open_by_handle_at`, …) are refused.
///
/// No syscall name is allowed by two unconditional rules, and no name allowed unconditionally
/// also has a rule with argument filters (which would be dead).
pub fn profile(caps: &[Capability]) -> LinuxSeccomp {
    build(caps, host_arch(), running_kernel())
}

/// The profile for a container holding `caps` on a host of Go architecture `arch` running
/// `kernel` (`(major, minor)`, `None` if unknown).
fn build(caps: &[Capability], arch: &str, kernel: Option<(u32, u32)>) -> LinuxSeccomp {
    let docker = docker_profile();
    let chosen: Vec<&Group> = docker
        .syscalls
        .iter()
        .filter(|g| g.applies(caps, arch, kernel))
        .collect();
    let always: HashSet<&str> = chosen
        .iter()
        .filter(|g| g.unconditional())
        .flat_map(|g| g.names.iter().map(String::as_str))
        .collect();

    let mut seen: HashSet<&str> = HashSet::new();
    let mut syscalls = Vec::new();
    for group in chosen {
        let names: Vec<String> = group
            .names
            .iter()
            .map(String::as_str)
            .filter(|name| {
                if group.unconditional() {
                    // the first group that allows a name outright keeps it
                    seen.insert(name)
                } else {
                    // a filtered rule for a name already allowed outright is dead
                    group.action != LinuxSeccompAction::ScmpActAllow || !always.contains(name)
                }
            })
            .map(String::from)
            .collect();
        if !names.is_empty() {
            syscalls.push(rule(names, group));
        }
    }

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(docker.default_action);
    profile.set_default_errno_ret(Some(docker.default_errno_ret));
    let arches = docker
        .arch_map
        .iter()
        .find(|a| a.arch == arch)
        .map(|a| a.seccomp.clone());
    profile.set_architectures(arches);
    profile.set_syscalls(Some(syscalls));
    profile
}

/// The OCI rule for `names` under `group`'s action, errno and arguments.
fn rule(names: Vec<String>, group: &Group) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    rule.set_action(group.action);
    rule.set_errno_ret(group.errno_ret);
    if !group.args.is_empty() {
        rule.set_args(Some(group.args.clone()));
    }
    rule
}
