//! The host the profile is for: Go's name of its architecture (the names Docker's profile
//! uses) and the running kernel's version.

use std::sync::OnceLock;

/// Go's name for the architecture this nodelet was built for, which is the host's (the names
/// Docker matches `includes.arches` and `archMap` against).
pub(super) fn host_arch() -> &'static str {
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
pub(super) fn running_kernel() -> Option<(u32, u32)> {
    static KERNEL: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|release| parse_release(&release))
    })
}

/// `(major, minor)` of a kernel release such as `6.8.0-45-generic`.
pub(super) fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut numbers = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    Some((major, minor))
}
