//! What a user asks of a GameServer: the spec and the types it is made of (resources, ports,
//! stop, ready, restart, network, install). Data only: the checks live in `rules`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;

/// What the user wants of a game server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GameServerSpec {
    /// The Template this server is made from; the fields below override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The container image: a registry reference, or `oci-archive:/path/to/image.tar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The command line, run as `/bin/sh -c` after `{{VAR}}` substitution (each placeholder
    /// becomes a quoted reference to the variable in the environment, so no value is parsed as
    /// shell syntax). Absent: the image's own command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<String>,
    /// Values of the template's variables, substituted into `startup` and set in the environment
    /// (one line each: no NUL, CR or LF).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Extra environment variables (one line each: no NUL, CR or LF).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Limits: cpu, memory, disk, pids.
    #[serde(default)]
    pub resources: Resources,
    /// Ports; the first is the primary (`SERVER_PORT`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<GameServerPort>,
    /// Whether the server should run.
    #[serde(default)]
    pub state: DesiredState,
    /// A suspended server is stopped and cannot be started (billing).
    #[serde(default)]
    pub suspended: bool,
    /// Pins the server to a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Labels a node must carry to run this server.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// How to stop the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSpec>,
    /// When the server counts as ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadySpec>,
    /// What to do when the server exits.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// A script that prepares the data directory, run once before the first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallSpec>,
    /// Bridge (default: own network namespace, host ports mapped) or Host networking (only on
    /// nodes whose `allowHostNetwork` is true).
    #[serde(default)]
    pub network: NetworkMode,
    /// How many of this server's Backups are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_retention: Option<crate::backup::BackupRetention>,
}

/// Resource limits. Absent means: no limit (cpu), the node's default (memory, disk, pids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores: `2`, `1500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory in bytes: `4Gi`, `512Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Disk for the data directory: `20Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Quantity>,
    /// Maximum number of processes and threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

/// A port the server listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GameServerPort {
    /// A DNS label naming the port, e.g. `game`, `query`, `rcon`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The port inside the container.
    pub container_port: i64,
    /// The host port asked for (policy Static): 1024-65535, inside the node's `portRange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i64>,
    /// TCP, UDP, or both.
    #[serde(default)]
    pub protocol: Protocol,
    /// How the host port is chosen.
    #[serde(default)]
    pub policy: PortPolicy,
}

/// The host ports a Static or Passthrough port may ask for: not the privileged ones below 1024.
pub const FIXED_HOST_PORTS: std::ops::RangeInclusive<i64> = 1024..=65535;

impl GameServerPort {
    /// The host port this port fixes: `hostPort` (Static), `containerPort` (Passthrough), or
    /// none (Dynamic: the scheduler picks one from the node's range).
    pub fn fixed_host_port(&self) -> Option<i64> {
        match self.policy {
            PortPolicy::Static => self.host_port,
            PortPolicy::Passthrough => Some(self.container_port),
            PortPolicy::Dynamic => None,
        }
    }
}

/// A transport protocol.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum Protocol {
    /// TCP only.
    #[default]
    TCP,
    /// UDP only.
    UDP,
    /// Both TCP and UDP on the same port number.
    TCPUDP,
}

impl Protocol {
    /// True when the two protocols share TCP or UDP.
    pub fn overlaps(self, other: Protocol) -> bool {
        self == other || self == Protocol::TCPUDP || other == Protocol::TCPUDP
    }
}

/// How a host port is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum PortPolicy {
    /// Any free port from the node's range.
    #[default]
    Dynamic,
    /// Exactly `hostPort` (1024-65535, inside the node's `portRange`), or the server stays
    /// Pending.
    Static,
    /// The host port equals the container port (1024-65535, inside the node's `portRange`).
    Passthrough,
}

/// Whether the server should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum DesiredState {
    /// Keep it running.
    #[default]
    Running,
    /// Keep it stopped.
    Stopped,
}

/// How a server is stopped: a console command or a signal, then SIGKILL after the timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopSpec {
    /// A line written to the console, e.g. `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A signal, e.g. `SIGINT`, `SIGTERM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Seconds to wait before SIGKILL.
    #[serde(default = "default_stop_timeout")]
    pub timeout_seconds: u32,
}

fn default_stop_timeout() -> u32 {
    30
}

/// Signals a stop may send.
pub const STOP_SIGNALS: &[&str] = &[
    "SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGABRT",
];

/// When a server counts as ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadySpec {
    /// A regular expression matched against each console line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_pattern: Option<String>,
    /// Texts of which any one found in a console line marks the server ready (Pterodactyl's
    /// `config.startup.done`); `regex:RE` is a regular expression instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// Remove ANSI escape sequences from console lines before matching.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strip_ansi: bool,
}

/// What to do when a server exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum RestartPolicy {
    /// Restart whenever it exits unasked.
    Always,
    /// Restart when it exits with a non-zero code or is OOM-killed.
    #[default]
    OnCrash,
    /// Never restart.
    Never,
}

/// The network a server's container joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum NetworkMode {
    /// Its own network namespace on the node's bridge; host ports mapped to it.
    #[default]
    Bridge,
    /// The node's network namespace; only on nodes with `spec.allowHostNetwork: true`.
    Host,
}

/// An install script, run once in its own container with the data directory mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallSpec {
    /// The image the script runs in; default: the server's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The interpreter, e.g. `bash` or `ash`; default `sh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// The script.
    pub script: String,
    /// Seconds the script may run before it is killed and the install fails; default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

impl InstallSpec {
    /// The default of `timeoutSeconds`.
    pub const DEFAULT_TIMEOUT_SECONDS: u32 = 3600;

    /// How long the script may run.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(
            self.timeout_seconds
                .unwrap_or(Self::DEFAULT_TIMEOUT_SECONDS),
        ))
    }
}
