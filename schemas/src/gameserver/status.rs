//! What controllers and the nodelet report of a GameServer: its status, host ports and last exit.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::Protocol;
use crate::lifecycle::Phase;
use crate::meta::Condition;

/// What controllers and the nodelet observe of a game server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerStatus {
    /// Where the server is in its lifecycle.
    #[serde(default)]
    pub phase: Phase,
    /// The node it is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The address players connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Ports with their allocated host ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortStatus>,
    /// Restarts after crashes since the last start asked by a user.
    #[serde(default)]
    pub restart_count: i64,
    /// How the last run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ExitStatus>,
    /// A CamelCase reason for the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A message for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations: Scheduled, Installed, Ready, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The use of the server's disk (its data directory), as its node last read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskStatus>,
    /// A move to another node under way (`spec.nodeName` changed); gone when it ends, with a
    /// `Transferred` condition telling how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferStatus>,
    /// The `metadata.generation` of the Template the server's current (or last) start used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_generation: Option<i64>,
    /// The `catalyst.dev/reinstallRequestedAt` value the install that last ran acted on (so a
    /// request is acted on once, on whichever node the server is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinstalled_at: Option<String>,
}

/// A move of a server's data to another node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferStatus {
    /// The node the server leaves.
    pub from: String,
    /// The node it goes to.
    pub to: String,
    /// Stopping, Packing, Copying, Restoring, Switching or Starting.
    pub step: String,
    /// Archive bytes packed or copied so far.
    #[serde(default)]
    pub bytes_done: u64,
    /// The archive's size, once packed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// The archive's SHA-256, once packed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Whether the server ran (or was to run) before the move: it is started again after.
    #[serde(default)]
    pub was_running: bool,
    /// When the move began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
}

/// The use of a server's disk: an ext4 filesystem of `resources.disk` (or its node's default)
/// mounted on its data directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskStatus {
    /// Bytes in use.
    pub used_bytes: u64,
    /// Bytes the disk holds: its size less the filesystem's own (journal, inode tables).
    pub limit_bytes: u64,
}

/// A port with its host port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortStatus {
    /// The port's name.
    pub name: String,
    /// The port inside the container.
    pub container_port: i64,
    /// The port on the node.
    pub host_port: i64,
    /// TCP, UDP or both.
    pub protocol: Protocol,
}

/// How a run of the server ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExitStatus {
    /// The process exit code.
    pub exit_code: i64,
    /// True when the kernel's OOM killer ended it.
    #[serde(default)]
    pub oom_killed: bool,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}
