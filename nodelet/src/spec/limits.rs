//! Resource limits: the node's defaults for what a server leaves unset (never unlimited), and
//! the memory, CPU and pids limits of the runtime spec.

use catalyst_schemas::gameserver::Resources;
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

/// Limits a server gets when neither it nor its template sets them: never unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultLimits {
    /// Memory (and memory + swap) in bytes.
    pub memory: i64,
    /// CPU in thousandths of a core.
    pub cpu_millis: i64,
    /// Processes and threads.
    pub pids: i64,
    /// The data directory's disk in bytes.
    pub disk: i64,
}

impl Default for DefaultLimits {
    /// 1 GiB of memory, one core, 512 pids, a 10 GiB disk: enough for a small game server,
    /// documented in docs/nodelet.md; a Node's `spec.defaultResources` overrides them.
    fn default() -> Self {
        Self {
            memory: 1 << 30,
            cpu_millis: 1000,
            pids: 512,
            disk: crate::disk::DEFAULT_BYTES,
        }
    }
}

/// The bytes of a server's disk: its `resources.disk`, else the default (never unlimited).
pub fn disk_bytes(resources: &Resources, defaults: &DefaultLimits) -> u64 {
    let bytes = resources
        .disk
        .as_ref()
        .filter(|q| !q.is_zero())
        .map_or(defaults.disk, |q| q.value());
    u64::try_from(bytes).unwrap_or(0)
}

/// The memory (with swap equal to it, so no swap), CPU (a CFS quota, at least 1% of a core)
/// and pids limits for `resources`, `defaults` filling what it leaves unset.
pub(super) fn limits(resources: &Resources, defaults: &DefaultLimits) -> LinuxResources {
    let mut res = LinuxResources::default();
    let bytes = resources
        .memory
        .as_ref()
        .map_or(defaults.memory, |m| m.value());
    let mut m = LinuxMemory::default();
    m.set_limit(Some(bytes));
    m.set_swap(Some(bytes));
    res.set_memory(Some(m));
    let millis = resources
        .cpu
        .as_ref()
        .map_or(defaults.cpu_millis, |c| c.milli_value());
    let period: u64 = 100_000;
    let quota = millis * period as i64 / 1000;
    let mut c = LinuxCpu::default();
    c.set_period(Some(period));
    c.set_quota(Some(quota.max(1000)));
    res.set_cpu(Some(c));
    let mut pids = LinuxPids::default();
    pids.set_limit(resources.pids.unwrap_or(defaults.pids));
    res.set_pids(Some(pids));
    res
}
