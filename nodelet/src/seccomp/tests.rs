//! Unit tests of the seccomp profile.

use std::collections::HashSet;

use oci_spec::runtime::{Arch, LinuxSeccompOperator};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::data::docker_profile;
use super::host::parse_release;
use super::*;

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
    // CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
    // CLONE_NEWPID | CLONE_NEWNET
    assert_eq!(args[0].value(), 0x7E02_0000);
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
    let groups = &docker_profile().syscalls;
    for group in groups {
        for name in &group.names {
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
    let allowed = &groups[0].names;
    let unique: HashSet<_> = allowed.iter().collect();
    assert_eq!(unique.len(), allowed.len());
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

/// The capability sets of the snapshots in `testdata/profiles.sha256`.
fn snapshot_cap_sets() -> Vec<(String, Vec<Capability>)> {
    let mut sets: Vec<(String, Vec<Capability>)> = vec![("none".into(), vec![])];
    sets.extend(ALL_CAPS.iter().map(|c| (c.to_string(), vec![*c])));
    sets.push(("all".into(), ALL_CAPS.to_vec()));
    sets.push(("install".into(), crate::spec::INSTALL_CAPABILITIES.to_vec()));
    sets
}

#[test]
fn the_profile_read_from_json_is_the_one_the_rust_tables_built() {
    // `testdata/profiles.sha256` holds the SHA-256 of the serialised profile for every host
    // architecture, kernel and capability set below, as the profile built from Rust tables
    // (before `default.json`) produced them; two are kept whole to show a difference
    let want = include_str!("testdata/profiles.sha256");
    let mut got = String::new();
    for arch in [
        "amd64", "arm64", "s390x", "ppc64le", "riscv64", "386", "arm", "s390", "mips64",
    ] {
        for kernel in [None, Some((4, 7)), Some((4, 8)), Some((6, 8))] {
            for (label, caps) in snapshot_cap_sets() {
                let json = serde_json::to_vec(&build(&caps, arch, kernel)).expect("json");
                let k = kernel.map_or("none".to_owned(), |(a, b)| format!("{a}.{b}"));
                let hash: String = Sha256::digest(&json)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                got.push_str(&format!("{arch} {k} {label} {hash}\n"));
            }
        }
    }
    let differ: Vec<(&str, &str)> = want
        .lines()
        .zip(got.lines())
        .filter(|(w, g)| w != g)
        .collect();
    assert!(differ.is_empty(), "profiles differ: {differ:#?}");
    assert_eq!(want.lines().count(), got.lines().count());

    let whole = |p: &LinuxSeccomp| serde_json::to_string_pretty(p).expect("json") + "\n";
    assert_eq!(
        whole(&build(&[], "amd64", Some((6, 8)))),
        include_str!("testdata/amd64-no-caps-kernel-6.8.json")
    );
    assert_eq!(
        whole(&build(&[Capability::SysAdmin], "s390x", None)),
        include_str!("testdata/s390x-sys-admin-no-kernel.json")
    );
}

#[test]
fn the_data_file_parses_and_every_group_is_well_formed() {
    let p = docker_profile();
    assert_eq!(p.default_action, LinuxSeccompAction::ScmpActErrno);
    assert_eq!(p.default_errno_ret, 1);
    assert!(!p.syscalls.is_empty());
    for g in &p.syscalls {
        assert!(!g.names.is_empty());
        match g.action {
            LinuxSeccompAction::ScmpActAllow => assert_eq!(g.errno_ret, None, "{:?}", g.names),
            LinuxSeccompAction::ScmpActErrno => assert!(g.errno_ret.is_some(), "{:?}", g.names),
            other => panic!("{:?}: unexpected action {other:?}", g.names),
        }
    }
}
