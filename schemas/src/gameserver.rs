//! The GameServer kind: one persistent game server.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lifecycle::Phase;
use crate::meta::Condition;
use crate::quantity::Quantity;
use crate::resource::{resource, Validate};
use crate::validation::{self, Causes, FieldPath};

resource! {
    /// One persistent game server.
    GameServer {
        spec: GameServerSpec,
        status: GameServerStatus,
        plural: "gameservers",
        singular: "gameserver",
        short: ["gs"],
        namespaced: true,
        name_rule: validation::dns_label,
    }
}

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

impl Resources {
    pub(crate) fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        for (name, q) in [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("disk", &self.disk),
        ] {
            if let Some(q) = q {
                causes.check(
                    !q.is_negative() && !q.is_zero(),
                    &path.child(name),
                    format!("must be greater than zero, not {q}"),
                );
            }
        }
        if let Some(mem) = &self.memory {
            causes.check(
                mem.value() >= 4 << 20,
                &path.child("memory"),
                format!("must be at least 4Mi, not {mem}"),
            );
        }
        if let Some(pids) = self.pids {
            causes.check(
                pids > 0,
                &path.child("pids"),
                format!("must be greater than zero, not {pids}"),
            );
        }
    }
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
    "SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2",
];

impl StopSpec {
    pub(crate) fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        match (&self.command, &self.signal) {
            (Some(_), Some(_)) => causes.push(path, "set command or signal, not both"),
            (None, None) => causes.push(path, "set command or signal"),
            (Some(c), None) => causes.check(
                !c.trim().is_empty() && !c.contains('\n'),
                &path.child("command"),
                "must be one non-empty line",
            ),
            (None, Some(s)) => causes.check(
                STOP_SIGNALS.contains(&s.as_str()),
                &path.child("signal"),
                format!("{s:?} is not one of {}", STOP_SIGNALS.join(", ")),
            ),
        }
        causes.check(
            (1..=3600).contains(&self.timeout_seconds),
            &path.child("timeoutSeconds"),
            "must be between 1 and 3600",
        );
    }
}

/// When a server counts as ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadySpec {
    /// A regular expression matched against each console line.
    pub log_pattern: String,
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

impl Validate for GameServerSpec {
    fn default_fields(&mut self) {
        if let Some(first) = self.ports.first_mut() {
            if first.name.is_empty() {
                first.name = "game".to_owned();
            }
        }
    }

    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.check(
            self.image.is_some() || self.template.is_some(),
            &path.child("image"),
            "image or template is required",
        );
        if let Some(image) = &self.image {
            causes.rule(&path.child("image"), image_reference(image));
        }
        if let Some(t) = &self.template {
            causes.rule(&path.child("template"), validation::dns_subdomain(t));
        }
        for (field, map) in [("variables", &self.variables), ("env", &self.env)] {
            for (k, v) in map {
                let p = path.child(field).key(k);
                causes.rule(&p, validation::env_name(k));
                causes.rule(&p, validation::env_value(v));
            }
        }
        if let Some(startup) = &self.startup {
            causes.check(
                !startup.trim().is_empty(),
                &path.child("startup"),
                "must not be empty",
            );
        }
        self.resources.validate(&path.child("resources"), causes);
        validate_ports(&self.ports, &path.child("ports"), causes);
        if let Some(n) = &self.node_name {
            causes.rule(&path.child("nodeName"), validation::dns_label(n));
        }
        for (k, v) in &self.node_selector {
            let p = path.child("nodeSelector").key(k);
            causes.rule(&p, validation::qualified_name(k));
            causes.rule(&p, validation::label_value(v));
        }
        if let Some(stop) = &self.stop {
            stop.validate(&path.child("stop"), causes);
        }
        if let Some(ready) = &self.ready {
            causes.rule(
                &path.child("ready").child("logPattern"),
                log_pattern(&ready.log_pattern),
            );
        }
        if let Some(install) = &self.install {
            let p = path.child("install");
            causes.check(
                !install.script.trim().is_empty(),
                &p.child("script"),
                "must not be empty",
            );
            if let Some(image) = &install.image {
                causes.rule(&p.child("image"), image_reference(image));
            }
            if let Some(t) = install.timeout_seconds {
                causes.check(
                    (1..=86_400).contains(&t),
                    &p.child("timeoutSeconds"),
                    "must be between 1 and 86400",
                );
            }
        }
    }
}

/// Checks a list of ports: numbers in range, names unique DNS labels, no two ports sharing a
/// container port and protocol, policy fields consistent.
pub(crate) fn validate_ports(ports: &[GameServerPort], path: &FieldPath, causes: &mut Causes) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        if !port.name.is_empty() {
            causes.rule(&p.child("name"), validation::dns_label(&port.name));
            causes.check(
                names.insert(port.name.as_str()),
                &p.child("name"),
                format!("duplicate port name {:?}", port.name),
            );
        }
        causes.check(
            (1..=65535).contains(&port.container_port),
            &p.child("containerPort"),
            "must be 1-65535",
        );
        match (port.policy, port.host_port) {
            (PortPolicy::Static, None) => {
                causes.push(&p.child("hostPort"), "is required when policy is Static")
            }
            (PortPolicy::Static, Some(h)) => causes.check(
                FIXED_HOST_PORTS.contains(&h),
                &p.child("hostPort"),
                format!(
                    "a Static host port must be {}-{} (ports below 1024 are privileged), not {h}",
                    FIXED_HOST_PORTS.start(),
                    FIXED_HOST_PORTS.end()
                ),
            ),
            (PortPolicy::Dynamic | PortPolicy::Passthrough, Some(_)) => causes.push(
                &p.child("hostPort"),
                "may only be set when policy is Static",
            ),
            (PortPolicy::Passthrough, None) => causes.check(
                !(1..*FIXED_HOST_PORTS.start()).contains(&port.container_port),
                &p.child("containerPort"),
                format!(
                    "a Passthrough port's host port is its containerPort, which must be {}-{} \
                     (ports below 1024 are privileged), not {}",
                    FIXED_HOST_PORTS.start(),
                    FIXED_HOST_PORTS.end(),
                    port.container_port
                ),
            ),
            (PortPolicy::Dynamic, None) => {}
        }
        let clash = ports[..i].iter().position(|o| {
            o.container_port == port.container_port && o.protocol.overlaps(port.protocol)
        });
        if let Some(j) = clash {
            causes.push(
                &p.child("containerPort"),
                format!(
                    "port {} is already used by ports[{j}] with an overlapping protocol",
                    port.container_port
                ),
            );
        }
    }
}

/// A registry reference (`[host[:port]/]path[:tag][@digest]`) or `oci-archive:/abs/path`.
pub fn image_reference(image: &str) -> Result<(), String> {
    if let Some(path) = image.strip_prefix("oci-archive:") {
        return if !path.starts_with('/') {
            Err(format!("oci-archive path must be absolute, not {path:?}"))
        } else if path.split('/').any(|c| c == "..") {
            Err(format!("oci-archive path must not contain '..': {path:?}"))
        } else if path.chars().any(char::is_control) || path.len() > 4096 {
            Err("oci-archive path must not contain control characters".into())
        } else {
            Ok(())
        };
    }
    let ok = !image.is_empty()
        && image.len() <= 512
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@+".contains(c))
        && !image.starts_with(['/', ':', '@', '.', '-'])
        && !image.ends_with(['/', ':', '@']);
    if ok {
        Ok(())
    } else {
        Err(format!("{image:?} is not an image reference"))
    }
}

/// A ready pattern must be a valid regular expression.
pub fn log_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("must not be empty".into());
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| format!("not a valid regular expression: {e}"))
}

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
}

impl Validate for GameServerStatus {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        for (i, p) in self.ports.iter().enumerate() {
            causes.check(
                (1..=65535).contains(&p.host_port),
                &path.child("ports").index(i).child("hostPort"),
                "must be 1-65535",
            );
        }
        causes.check(
            self.restart_count >= 0,
            &path.child("restartCount"),
            "must not be negative",
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_references_must_be_absolute_without_dot_dot_or_control_characters() {
        assert!(image_reference("oci-archive:/var/lib/catalyst/images/a.tar").is_ok());
        for bad in [
            "oci-archive:images/a.tar",
            "oci-archive:./a.tar",
            "oci-archive:/var/lib/catalyst/images/../../../etc/shadow",
            "oci-archive:/var/lib/catalyst/images/..",
            "oci-archive:/a\u{0}b",
            "oci-archive:/a\nb",
            "oci-archive:",
        ] {
            assert!(image_reference(bad).is_err(), "{bad:?}");
        }
    }
    use crate::validation::Cause;
    use serde_json::json;

    /// The causes admission reports for a GameServer with `spec`.
    fn causes(spec: serde_json::Value) -> Vec<Cause> {
        let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
            "metadata": {"name": "gs", "namespace": "default"}, "spec": spec});
        crate::admit(obj)
            .err()
            .map(|e| e.causes)
            .unwrap_or_default()
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn variable_and_env_values_with_nul_cr_or_lf_are_refused_by_field() {
        let got = causes(json!({"image": "busybox",
            "variables": {"MOTD": "hi\nthere", "OK": "a b $(x) 'q' \"d\"", "CR": "a\rb"},
            "env": {"TZ": "Europe/Berlin", "BAD": "x\u{0}y"}}));
        assert_eq!(
            fields(&got),
            [
                "spec.variables[CR]",
                "spec.variables[MOTD]",
                "spec.env[BAD]"
            ]
        );
        assert!(got.iter().all(|c| c.message.contains("no NUL, CR or LF")));
    }

    #[test]
    fn variable_and_env_names_must_be_environment_names() {
        let got = causes(json!({"image": "busybox",
            "variables": {"1X": "v", "A-B": "v", "_ok": "v"}, "env": {"has space": "v"}}));
        assert_eq!(
            fields(&got),
            [
                "spec.variables[1X]",
                "spec.variables[A-B]",
                "spec.env[has space]"
            ]
        );
    }

    #[test]
    fn static_host_ports_below_1024_are_refused_naming_the_rule() {
        let got = causes(json!({"image": "busybox", "ports": [
            {"containerPort": 22, "policy": "Static", "hostPort": 22},
            {"containerPort": 25565, "policy": "Static", "hostPort": 1024},
            {"containerPort": 25566, "policy": "Static", "hostPort": 65535}]}));
        assert_eq!(fields(&got), ["spec.ports[0].hostPort"]);
        assert_eq!(
            got[0].message,
            "a Static host port must be 1024-65535 (ports below 1024 are privileged), not 22"
        );
        let got = causes(json!({"image": "busybox", "ports": [
            {"containerPort": 1, "policy": "Static", "hostPort": 65536}]}));
        assert_eq!(fields(&got), ["spec.ports[0].hostPort"]);
    }

    #[test]
    fn passthrough_ports_below_1024_are_refused_on_the_container_port() {
        let got = causes(json!({"image": "busybox", "ports": [
            {"containerPort": 80, "policy": "Passthrough"},
            {"containerPort": 27015, "policy": "Passthrough"},
            {"containerPort": 22, "policy": "Dynamic"}]}));
        assert_eq!(fields(&got), ["spec.ports[0].containerPort"]);
        assert!(got[0].message.contains("Passthrough"), "{}", got[0].message);
        assert!(got[0].message.contains("1024-65535"), "{}", got[0].message);
    }

    #[test]
    fn fixed_host_ports_follow_the_policy() {
        let port = |policy, host_port| GameServerPort {
            name: String::new(),
            container_port: 25565,
            host_port,
            protocol: Protocol::TCP,
            policy,
        };
        assert_eq!(port(PortPolicy::Dynamic, None).fixed_host_port(), None);
        assert_eq!(
            port(PortPolicy::Static, Some(7001)).fixed_host_port(),
            Some(7001)
        );
        assert_eq!(
            port(PortPolicy::Passthrough, None).fixed_host_port(),
            Some(25565)
        );
    }
}
