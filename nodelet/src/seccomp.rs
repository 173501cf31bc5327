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
//! The tables below are grouped as Docker groups them; [`profile`] evaluates Docker's
//! `includes`/`excludes` conditions (capabilities, host architecture, minimum kernel) against
//! the container's capabilities and the host, then removes rules made redundant by a broader one.

use std::collections::HashSet;
use std::sync::OnceLock;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use LinuxSeccompOperator::{ScmpCmpEq as EQ, ScmpCmpMaskedEq as MASKED_EQ, ScmpCmpNe as NE};

/// What the profile answers to anything no rule allows: "operation not permitted".
const EPERM: u32 = nix::errno::Errno::EPERM as u32;

/// What `clone3` answers without `CAP_SYS_ADMIN`: "function not implemented", so that glibc
/// and musl fall back to `clone`, whose flags the filter can inspect.
const ENOSYS: u32 = nix::errno::Errno::ENOSYS as u32;

/// `AF_VSOCK` (linux/socket.h): sockets to the hypervisor, which Docker refuses to containers.
const AF_VSOCK: u64 = 40;

/// The `clone` flags that create namespaces (linux/sched.h): `CLONE_NEWNS | CLONE_NEWCGROUP |
/// CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET` = `0x7E020000`.
const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// The `personality` values Docker allows: `PER_LINUX` (0x0), `PER_LINUX32` (0x8),
/// `UNAME26` (0x20000), `UNAME26 | PER_LINUX32` (0x20008) and the query value 0xffffffff.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// The syscalls every container may make, whatever its capabilities (Docker's first group,
/// without `io_uring_enter`, `io_uring_register` and `io_uring_setup`, which recent Docker and
/// containerd removed).
static ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Tracing another process of the container: allowed to everyone on kernels from 4.8 on, where
/// a tracer can no longer rewrite a syscall after seccomp has checked it (Docker's `minKernel`).
static TRACE: &[&str] = &["process_vm_readv", "process_vm_writev", "ptrace"];

/// Syscalls that only exist on some architectures, by Go's name of the host architecture (the
/// names Docker's `includes.arches` uses).
static PPC64LE_ONLY: &[&str] = &["sync_file_range2", "swapcontext"];
static ARM_ONLY: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];
static S390_ONLY: &[&str] = &[
    "s390_pci_mmio_read",
    "s390_pci_mmio_write",
    "s390_runtime_instr",
];
static RISCV64_ONLY: &[&str] = &["riscv_flush_icache"];

/// What `CAP_SYS_ADMIN` unlocks: mounts, namespaces (`unshare`, `setns`, `clone`/`clone3`
/// with any flags), host and domain names, BPF, perf, quotas, the kernel log.
static SYS_ADMIN: &[&str] = &[
    "bpf",
    "clone",
    "clone3",
    "fanotify_init",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "perf_event_open",
    "quotactl",
    "quotactl_fd",
    "setdomainname",
    "sethostname",
    "setns",
    "syslog",
    "umount",
    "umount2",
    "unshare",
];

/// The other capability-gated groups, one capability each.
static DAC_READ_SEARCH: &[&str] = &["open_by_handle_at"];
static SYS_BOOT: &[&str] = &["reboot"];
static SYS_CHROOT: &[&str] = &["chroot"];
static SYS_MODULE: &[&str] = &["delete_module", "init_module", "finit_module"];
static SYS_PACCT: &[&str] = &["acct"];
static SYS_PTRACE: &[&str] = &[
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];
static SYS_RAWIO: &[&str] = &["iopl", "ioperm"];
static SYS_TIME: &[&str] = &["settimeofday", "stime", "clock_settime", "clock_settime64"];
static SYS_TTY_CONFIG: &[&str] = &["vhangup"];
static SYS_NICE: &[&str] = &[
    "get_mempolicy",
    "mbind",
    "set_mempolicy",
    "set_mempolicy_home_node",
];
static SYSLOG: &[&str] = &["syslog"];
static BPF: &[&str] = &["bpf"];
static PERFMON: &[&str] = &["perf_event_open"];

/// The seccomp architectures a host gets, by Go's name of the host architecture: the native one
/// and the compatibility ABIs its kernel also runs (Docker's `archMap`). A host not listed gets
/// no list, which runc reads as "the native architecture only".
static ARCH_MAP: &[(&str, &[Arch])] = &[
    (
        "amd64",
        &[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
    ),
    ("arm64", &[Arch::ScmpArchAarch64, Arch::ScmpArchArm]),
    ("s390x", &[Arch::ScmpArchS390x, Arch::ScmpArchS390]),
    ("riscv64", &[Arch::ScmpArchRiscv64]),
];

/// What a rule answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Let the syscall run.
    Allow,
    /// Refuse it with this errno.
    Errno(u32),
}

/// One argument comparison, as OCI writes it (for `SCMP_CMP_MASKED_EQ`, `value` is the mask and
/// `value_two` what the masked argument must equal).
#[derive(Clone, Copy, Debug)]
struct ArgCmp {
    index: usize,
    value: u64,
    value_two: u64,
    op: LinuxSeccompOperator,
}

/// Docker's `includes` / `excludes`: a group is included when its `includes` hold and its
/// `excludes` do not. An empty list or `None` constrains nothing.
#[derive(Clone, Copy, Debug)]
struct Cond {
    /// Capabilities the container holds (all of them for `includes`, any for `excludes`).
    caps: &'static [Capability],
    /// Go names of the host architecture.
    arches: &'static [&'static str],
    /// The running kernel is at least this `(major, minor)`.
    min_kernel: Option<(u32, u32)>,
}

/// The condition that constrains nothing.
const ANY: Cond = Cond {
    caps: &[],
    arches: &[],
    min_kernel: None,
};

/// One group of the profile: these names, this verdict, under these argument comparisons (all
/// must hold), when these conditions hold.
#[derive(Clone, Copy, Debug)]
struct Group {
    names: &'static [&'static str],
    verdict: Verdict,
    args: &'static [ArgCmp],
    includes: Cond,
    excludes: Cond,
}

impl Group {
    /// Allows `names` unconditionally.
    const fn allow(names: &'static [&'static str]) -> Self {
        Group {
            names,
            verdict: Verdict::Allow,
            args: &[],
            includes: ANY,
            excludes: ANY,
        }
    }

    /// Refuses `names` with `errno` (instead of the default `EPERM`).
    const fn refuse(names: &'static [&'static str], errno: u32) -> Self {
        Group {
            verdict: Verdict::Errno(errno),
            ..Group::allow(names)
        }
    }

    /// Only when every argument comparison holds.
    const fn args(self, args: &'static [ArgCmp]) -> Self {
        Group { args, ..self }
    }

    /// Only when the container holds all of `caps`.
    const fn with_caps(self, caps: &'static [Capability]) -> Self {
        Group {
            includes: Cond {
                caps,
                ..self.includes
            },
            ..self
        }
    }

    /// Only when the container holds none of `caps`.
    const fn without_caps(self, caps: &'static [Capability]) -> Self {
        Group {
            excludes: Cond {
                caps,
                ..self.excludes
            },
            ..self
        }
    }

    /// Only on these host architectures.
    const fn on(self, arches: &'static [&'static str]) -> Self {
        Group {
            includes: Cond {
                arches,
                ..self.includes
            },
            ..self
        }
    }

    /// Not on these host architectures.
    const fn not_on(self, arches: &'static [&'static str]) -> Self {
        Group {
            excludes: Cond {
                arches,
                ..self.excludes
            },
            ..self
        }
    }

    /// Only on kernels from `major.minor` on.
    const fn since_kernel(self, major: u32, minor: u32) -> Self {
        Group {
            includes: Cond {
                min_kernel: Some((major, minor)),
                ..self.includes
            },
            ..self
        }
    }

    /// Whether Docker would include this group for a container holding `caps` on `arch` running
    /// `kernel` (unknown kernel: groups that need a minimum kernel are left out).
    fn applies(&self, caps: &[Capability], arch: &str, kernel: Option<(u32, u32)>) -> bool {
        let at_least = |min: (u32, u32)| kernel.is_some_and(|k| k >= min);
        let inc = &self.includes;
        let exc = &self.excludes;
        inc.caps.iter().all(|c| caps.contains(c))
            && (inc.arches.is_empty() || inc.arches.contains(&arch))
            && inc.min_kernel.is_none_or(at_least)
            && !exc.caps.iter().any(|c| caps.contains(c))
            && !exc.arches.contains(&arch)
            && exc.min_kernel.is_none_or(|min| !at_least(min))
    }
}

/// Shorthand for an argument comparison.
const fn cmp(index: usize, op: LinuxSeccompOperator, value: u64, value_two: u64) -> ArgCmp {
    ArgCmp {
        index,
        value,
        value_two,
        op,
    }
}

/// Docker's profile, group by group and in Docker's order.
static GROUPS: &[Group] = &[
    Group::allow(ALLOWED),
    Group::allow(TRACE).since_kernel(4, 8),
    Group::allow(&["socket"]).args(&[cmp(0, NE, AF_VSOCK, 0)]),
    Group::allow(&["personality"]).args(&[cmp(0, EQ, PERSONALITIES[0], 0)]),
    Group::allow(&["personality"]).args(&[cmp(0, EQ, PERSONALITIES[1], 0)]),
    Group::allow(&["personality"]).args(&[cmp(0, EQ, PERSONALITIES[2], 0)]),
    Group::allow(&["personality"]).args(&[cmp(0, EQ, PERSONALITIES[3], 0)]),
    Group::allow(&["personality"]).args(&[cmp(0, EQ, PERSONALITIES[4], 0)]),
    Group::allow(PPC64LE_ONLY).on(&["ppc64le"]),
    Group::allow(ARM_ONLY).on(&["arm", "arm64"]),
    Group::allow(&["arch_prctl"]).on(&["amd64"]),
    Group::allow(&["modify_ldt"]).on(&["amd64", "386"]),
    Group::allow(S390_ONLY).on(&["s390", "s390x"]),
    Group::allow(RISCV64_ONLY).on(&["riscv64"]),
    Group::allow(DAC_READ_SEARCH).with_caps(&[Capability::DacReadSearch]),
    Group::allow(SYS_ADMIN).with_caps(&[Capability::SysAdmin]),
    // clone without CAP_SYS_ADMIN: only when the flags create no namespace; the flags are the
    // first argument, except on s390 where they are the second
    Group::allow(&["clone"])
        .args(&[cmp(0, MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0)])
        .without_caps(&[Capability::SysAdmin])
        .not_on(&["s390", "s390x"]),
    Group::allow(&["clone"])
        .args(&[cmp(1, MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0)])
        .without_caps(&[Capability::SysAdmin])
        .on(&["s390", "s390x"]),
    Group::refuse(&["clone3"], ENOSYS).without_caps(&[Capability::SysAdmin]),
    Group::allow(SYS_BOOT).with_caps(&[Capability::SysBoot]),
    Group::allow(SYS_CHROOT).with_caps(&[Capability::SysChroot]),
    Group::allow(SYS_MODULE).with_caps(&[Capability::SysModule]),
    Group::allow(SYS_PACCT).with_caps(&[Capability::SysPacct]),
    Group::allow(SYS_PTRACE).with_caps(&[Capability::SysPtrace]),
    Group::allow(SYS_RAWIO).with_caps(&[Capability::SysRawio]),
    Group::allow(SYS_TIME).with_caps(&[Capability::SysTime]),
    Group::allow(SYS_TTY_CONFIG).with_caps(&[Capability::SysTtyConfig]),
    Group::allow(SYS_NICE).with_caps(&[Capability::SysNice]),
    Group::allow(SYSLOG).with_caps(&[Capability::Syslog]),
    Group::allow(BPF).with_caps(&[Capability::Bpf]),
    Group::allow(PERFMON).with_caps(&[Capability::Perfmon]),
];

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
    let chosen: Vec<&Group> = GROUPS
        .iter()
        .filter(|g| g.applies(caps, arch, kernel))
        .collect();
    let unconditional = |g: &Group| g.verdict == Verdict::Allow && g.args.is_empty();
    let always: HashSet<&str> = chosen
        .iter()
        .filter(|g| unconditional(g))
        .flat_map(|g| g.names.iter().copied())
        .collect();

    let mut seen: HashSet<&str> = HashSet::new();
    let mut syscalls = Vec::new();
    for group in chosen {
        let names: Vec<String> = group
            .names
            .iter()
            .copied()
            .filter(|name| {
                if unconditional(group) {
                    // the first group that allows a name outright keeps it
                    seen.insert(name)
                } else {
                    // a filtered rule for a name already allowed outright is dead
                    group.verdict != Verdict::Allow || !always.contains(name)
                }
            })
            .map(String::from)
            .collect();
        if !names.is_empty() {
            syscalls.push(rule(names, group));
        }
    }

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(EPERM));
    let arches = ARCH_MAP
        .iter()
        .find(|(host, _)| *host == arch)
        .map(|(_, arches)| arches.to_vec());
    profile.set_architectures(arches);
    profile.set_syscalls(Some(syscalls));
    profile
}

/// The OCI rule for `names` under `group`'s verdict and arguments.
fn rule(names: Vec<String>, group: &Group) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    match group.verdict {
        Verdict::Allow => {
            rule.set_action(LinuxSeccompAction::ScmpActAllow);
        }
        Verdict::Errno(errno) => {
            rule.set_action(LinuxSeccompAction::ScmpActErrno);
            rule.set_errno_ret(Some(errno));
        }
    }
    if !group.args.is_empty() {
        let args = group
            .args
            .iter()
            .map(|a| {
                // `LinuxSeccompArg` has no setters, only this builder; its `build` fails only
                // for a field that is neither set nor defaulted, and the struct defaults every
                // field (`#[builder(default)]`) and all four are set here, so it cannot fail
                LinuxSeccompArgBuilder::default()
                    .index(a.index)
                    .value(a.value)
                    .value_two(a.value_two)
                    .op(a.op)
                    .build()
                    .expect("a LinuxSeccompArg with every field set always builds")
            })
            .collect();
        rule.set_args(Some(args));
    }
    rule
}

/// Go's name for the architecture this nodelet was built for, which is the host's (the names
/// Docker matches `includes.arches` and `archMap` against).
fn host_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else if cfg!(target_arch = "x86") {
        "386"
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        "ppc64le"
    } else {
        // arm, s390x, riscv64: Rust and Go spell them alike
        std::env::consts::ARCH
    }
}

/// The running kernel's `(major, minor)`, read once; `None` if it cannot be read.
fn running_kernel() -> Option<(u32, u32)> {
    static KERNEL: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|release| parse_release(&release))
    })
}

/// `(major, minor)` of a kernel release such as `6.8.0-45-generic`.
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut numbers = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const NEW_KERNEL: Option<(u32, u32)> = Some((6, 8));

    fn amd64(caps: &[Capability]) -> LinuxSeccomp {
        build(caps, "amd64", NEW_KERNEL)
    }

    fn rules(p: &LinuxSeccomp) -> &[LinuxSyscall] {
        p.syscalls().as_deref().unwrap_or_default()
    }

    fn names(rule: &LinuxSyscall) -> impl Iterator<Item = &str> {
        rule.names().iter().map(String::as_str)
    }

    /// The rules that name `syscall`.
    fn rules_for<'a>(p: &'a LinuxSeccomp, syscall: &str) -> Vec<&'a LinuxSyscall> {
        rules(p)
            .iter()
            .filter(|r| names(r).any(|n| n == syscall))
            .collect()
    }

    fn allowed_at_all(p: &LinuxSeccomp, syscall: &str) -> bool {
        rules_for(p, syscall)
            .iter()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow)
    }

    fn allowed_outright(p: &LinuxSeccomp, syscall: &str) -> bool {
        rules_for(p, syscall).iter().any(|r| {
            r.action() == LinuxSeccompAction::ScmpActAllow
                && r.args().as_ref().is_none_or(|a| a.is_empty())
        })
    }

    /// Capabilities that unlock something in Docker's profile, and a few that do not.
    const ALL_CAPS: &[Capability] = &[
        Capability::SysAdmin,
        Capability::SysPtrace,
        Capability::SysModule,
        Capability::SysBoot,
        Capability::SysChroot,
        Capability::SysNice,
        Capability::SysPacct,
        Capability::SysRawio,
        Capability::SysTime,
        Capability::SysTtyConfig,
        Capability::Syslog,
        Capability::SysResource,
        Capability::Bpf,
        Capability::Perfmon,
        Capability::DacReadSearch,
        Capability::Chown,
        Capability::NetAdmin,
        Capability::NetRaw,
    ];

    #[test]
    fn the_profile_refuses_by_default_with_eperm() {
        let p = amd64(&[]);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        assert!(p.flags().is_none());
        assert!(p.listener_path().is_none());
    }

    #[test]
    fn the_profile_without_caps_refuses_keyctl_unshare_mount_bpf_and_other_escapes() {
        let p = amd64(&[]);
        for syscall in [
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "setns",
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "open_by_handle_at",
            "userfaultfd",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "chroot",
            "reboot",
            "syslog",
            "sethostname",
            "fsopen",
            "move_mount",
            "open_tree",
            "kcmp",
            "pidfd_getfd",
            "iopl",
            "settimeofday",
            "clock_settime",
            "acct",
            "swapon",
            "vhangup",
            "mbind",
            "clone3",
        ] {
            assert!(!allowed_at_all(&p, syscall), "{syscall} is allowed");
        }
    }

    #[test]
    fn the_profile_without_caps_allows_read_write_futex_outright_and_clone_with_a_filter() {
        let p = amd64(&[]);
        for syscall in [
            "read",
            "write",
            "futex",
            "openat",
            "mmap",
            "execve",
            "exit_group",
            "epoll_wait",
            "getrandom",
            "sendto",
            "recvfrom",
            "bind",
            "listen",
            "accept4",
            "fork",
            "vfork",
            "wait4",
            "rseq",
        ] {
            assert!(allowed_outright(&p, syscall), "{syscall} is not allowed");
        }
        assert!(allowed_at_all(&p, "clone"));
        assert!(!allowed_outright(&p, "clone"));
    }

    #[test]
    fn clone_without_sys_admin_is_allowed_only_without_namespace_flags() {
        let p = amd64(&[]);
        let clones = rules_for(&p, "clone");
        assert_eq!(clones.len(), 1);
        let rule = clones[0];
        assert_eq!(rule.action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(rule.names(), &["clone".to_string()]);
        let args = rule.args().as_deref().unwrap_or_default();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].value(), 0x7E02_0000);
        assert_eq!(args[0].value_two(), Some(0));
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    }

    #[test]
    fn clone_filters_the_second_argument_on_s390x() {
        let p = build(&[], "s390x", NEW_KERNEL);
        let clones = rules_for(&p, "clone");
        assert_eq!(clones.len(), 1);
        let args = clones[0].args().as_deref().unwrap_or_default();
        assert_eq!(args[0].index(), 1);
        assert_eq!(args[0].value(), CLONE_NAMESPACE_FLAGS);
    }

    #[test]
    fn clone3_without_sys_admin_answers_enosys() {
        let p = amd64(&[]);
        let clone3 = rules_for(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38));
        assert!(clone3[0].args().is_none());
    }

    #[test]
    fn with_sys_admin_unshare_mount_setns_and_any_clone_are_allowed() {
        let p = amd64(&[Capability::SysAdmin]);
        for syscall in [
            "unshare", "mount", "umount2", "setns", "clone", "clone3", "bpf", "syslog",
        ] {
            assert!(allowed_outright(&p, syscall), "{syscall} is not allowed");
        }
        // no leftover filter or ENOSYS rule next to the outright ones
        assert_eq!(rules_for(&p, "clone").len(), 1);
        assert_eq!(rules_for(&p, "clone3").len(), 1);
        // CAP_SYS_ADMIN is not every capability
        for syscall in [
            "chroot",
            "init_module",
            "reboot",
            "keyctl",
            "io_uring_setup",
        ] {
            assert!(!allowed_at_all(&p, syscall), "{syscall} is allowed");
        }
    }

    #[test]
    fn each_capability_group_is_allowed_only_with_its_capability() {
        let cases = [
            (Capability::DacReadSearch, "open_by_handle_at"),
            (Capability::SysBoot, "reboot"),
            (Capability::SysChroot, "chroot"),
            (Capability::SysModule, "init_module"),
            (Capability::SysModule, "finit_module"),
            (Capability::SysPacct, "acct"),
            (Capability::SysPtrace, "kcmp"),
            (Capability::SysPtrace, "pidfd_getfd"),
            (Capability::SysRawio, "ioperm"),
            (Capability::SysTime, "clock_settime"),
            (Capability::SysTtyConfig, "vhangup"),
            (Capability::SysNice, "set_mempolicy"),
            (Capability::Syslog, "syslog"),
            (Capability::Bpf, "bpf"),
            (Capability::Perfmon, "perf_event_open"),
        ];
        let none = amd64(&[]);
        for (cap, syscall) in cases {
            assert!(!allowed_at_all(&none, syscall), "{syscall} without {cap}");
            assert!(
                allowed_outright(&amd64(&[cap]), syscall),
                "{syscall} with {cap}"
            );
        }
    }

    #[test]
    fn ptrace_is_allowed_from_kernel_4_8_on_as_docker_does() {
        for (kernel, allowed) in [
            (None, false),
            (Some((4, 7)), false),
            (Some((3, 10)), false),
            (Some((4, 8)), true),
            (Some((6, 1)), true),
        ] {
            let p = build(&[], "amd64", kernel);
            for syscall in ["ptrace", "process_vm_readv", "process_vm_writev"] {
                assert_eq!(
                    allowed_outright(&p, syscall),
                    allowed,
                    "{syscall} on {kernel:?}"
                );
            }
            // CAP_SYS_PTRACE allows them on any kernel
            let p = build(&[Capability::SysPtrace], "amd64", kernel);
            assert!(allowed_outright(&p, "ptrace"));
        }
    }

    #[test]
    fn personality_is_allowed_only_for_dockers_five_values() {
        let p = amd64(&[]);
        let rules = rules_for(&p, "personality");
        let mut values: Vec<u64> = rules
            .iter()
            .map(|r| {
                let args = r.args().as_deref().unwrap_or_default();
                assert_eq!(args.len(), 1);
                assert_eq!(args[0].index(), 0);
                assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpEq);
                args[0].value()
            })
            .collect();
        values.sort_unstable();
        assert_eq!(values, [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff]);
    }

    #[test]
    fn socket_is_allowed_for_every_family_but_af_vsock() {
        let p = amd64(ALL_CAPS);
        let rules = rules_for(&p, "socket");
        assert_eq!(rules.len(), 1);
        let args = rules[0].args().as_deref().unwrap_or_default();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].value(), 40);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpNe);
    }

    #[test]
    fn amd64_hosts_filter_x86_64_x86_and_x32_and_allow_the_x86_only_syscalls() {
        let p = amd64(&[]);
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        assert!(allowed_outright(&p, "arch_prctl"));
        assert!(allowed_outright(&p, "modify_ldt"));
        assert!(!allowed_at_all(&p, "set_tls"));
        assert!(!allowed_at_all(&p, "s390_runtime_instr"));
    }

    #[test]
    fn arm64_hosts_filter_aarch64_and_arm_and_allow_the_arm_only_syscalls() {
        let p = build(&[], "arm64", NEW_KERNEL);
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        assert!(allowed_outright(&p, "set_tls"));
        assert!(allowed_outright(&p, "cacheflush"));
        assert!(!allowed_at_all(&p, "arch_prctl"));
        assert!(!allowed_at_all(&p, "modify_ldt"));
        assert_eq!(
            rules_for(&p, "clone")[0]
                .args()
                .as_deref()
                .unwrap_or_default()[0]
                .index(),
            0
        );
    }

    #[test]
    fn the_profile_for_this_host_covers_its_native_architecture() {
        let p = profile(&[]);
        let native = if cfg!(target_arch = "x86_64") {
            Some(Arch::ScmpArchX86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::ScmpArchAarch64)
        } else {
            None
        };
        if let Some(native) = native {
            assert!(p
                .architectures()
                .as_deref()
                .unwrap_or_default()
                .contains(&native));
        }
        assert!(allowed_outright(&p, "read"));
        assert!(!allowed_at_all(&p, "unshare"));
    }

    #[test]
    fn no_syscall_name_appears_in_two_allow_rules_of_the_same_profile() {
        let mut cap_sets: Vec<Vec<Capability>> = vec![vec![], ALL_CAPS.to_vec()];
        cap_sets.extend(ALL_CAPS.iter().map(|c| vec![*c]));
        cap_sets.push(vec![
            Capability::SysAdmin,
            Capability::Syslog,
            Capability::Bpf,
            Capability::Perfmon,
        ]);
        for arch in ["amd64", "arm64", "s390x", "ppc64le", "riscv64"] {
            for kernel in [None, NEW_KERNEL] {
                for caps in &cap_sets {
                    let p = build(caps, arch, kernel);
                    let ctx = format!("{arch} {kernel:?} {caps:?}");
                    let mut outright = HashSet::new();
                    let mut filtered = HashSet::new();
                    for r in rules(&p) {
                        assert!(!r.names().is_empty(), "{ctx}: empty rule");
                        for name in names(r) {
                            let args = r.args().as_deref().unwrap_or_default();
                            match r.action() {
                                LinuxSeccompAction::ScmpActAllow if args.is_empty() => {
                                    assert!(outright.insert(name), "{ctx}: {name} twice");
                                }
                                LinuxSeccompAction::ScmpActAllow => {
                                    // alternatives (personality) are fine, repeats are not
                                    let key = format!("{name} {args:?}");
                                    assert!(filtered.insert(key), "{ctx}: {name} {args:?} twice");
                                }
                                _ => {}
                            }
                        }
                    }
                    for r in rules(&p) {
                        let conditional = r.action() != LinuxSeccompAction::ScmpActAllow
                            || r.args().as_ref().is_some_and(|a| !a.is_empty());
                        if conditional {
                            for name in names(r) {
                                assert!(
                                    !outright.contains(name),
                                    "{ctx}: {name} allowed outright and under a condition"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_syscall_name_is_a_plain_lowercase_identifier() {
        for group in GROUPS {
            for name in group.names {
                assert!(
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "{name:?}"
                );
            }
        }
        // the big list carries no name twice
        let unique: HashSet<_> = ALLOWED.iter().collect();
        assert_eq!(unique.len(), ALLOWED.len());
    }

    #[test]
    fn the_profile_serialises_to_the_oci_json_shape() {
        let p = amd64(&[]);
        let json = serde_json::to_value(&p).expect("serialise");
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["defaultErrnoRet"], 1);
        assert_eq!(
            json["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let syscalls = json["syscalls"].as_array().expect("syscalls array");
        assert!(!syscalls.is_empty());
        for rule in syscalls {
            let names = rule["names"].as_array().expect("names array");
            assert!(names.iter().all(Value::is_string));
            assert!(rule["action"]
                .as_str()
                .expect("action")
                .starts_with("SCMP_ACT_"));
            if let Some(args) = rule.get("args") {
                for arg in args.as_array().expect("args array") {
                    assert!(arg["index"].is_u64(), "{arg}");
                    assert!(arg["value"].is_u64(), "{arg}");
                    assert!(arg["valueTwo"].is_u64(), "{arg}");
                    assert!(arg["op"].as_str().expect("op").starts_with("SCMP_CMP_"));
                }
            }
        }
        let clone = syscalls
            .iter()
            .find(|r| r["names"] == serde_json::json!(["clone"]))
            .expect("clone rule");
        assert_eq!(clone["action"], "SCMP_ACT_ALLOW");
        assert_eq!(
            clone["args"],
            serde_json::json!([
                {"index": 0, "value": 2114060288_u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
            ])
        );
        let clone3 = syscalls
            .iter()
            .find(|r| r["names"] == serde_json::json!(["clone3"]))
            .expect("clone3 rule");
        assert_eq!(clone3["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3["errnoRet"], 38);

        // and it reads back as the same profile
        let back: LinuxSeccomp = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, p);
    }

    #[test]
    fn kernel_releases_are_read_as_major_and_minor() {
        assert_eq!(parse_release("6.8.0-45-generic\n"), Some((6, 8)));
        assert_eq!(parse_release("4.8"), Some((4, 8)));
        assert_eq!(
            parse_release("5.15.167.4-microsoft-standard-WSL2"),
            Some((5, 15))
        );
        assert_eq!(parse_release("6"), None);
        assert_eq!(parse_release(""), None);
        assert_eq!(parse_release("garbage"), None);
    }
}
