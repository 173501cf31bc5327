//! Defaulting and validation of GameServer specs and statuses, and the checks Templates share
//! (ports, image references, ready patterns).

use std::collections::BTreeSet;

use super::spec::{
    GameServerPort, GameServerSpec, PortPolicy, ReadySpec, Resources, StopSpec, FIXED_HOST_PORTS,
    STOP_SIGNALS,
};
use super::status::GameServerStatus;
use crate::resource::Validate;
use crate::validation::{self, Causes, FieldPath};

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
        if let Some(disk) = self
            .disk
            .as_ref()
            .filter(|d| !d.is_negative() && !d.is_zero())
        {
            // the smallest ext4 filesystem a server's disk is made as
            causes.check(
                disk.value() >= 16 << 20,
                &path.child("disk"),
                format!("must be at least 16Mi, not {disk}"),
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
            ready.validate(&path.child("ready"), causes);
        }
        if let Some(r) = &self.backup_retention {
            crate::resource::Validate::validate(r, &path.child("backupRetention"), causes);
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

impl ReadySpec {
    /// One of `logPattern` or `lines`; patterns compile; texts are not empty.
    pub(crate) fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        match (&self.log_pattern, self.lines.is_empty()) {
            (Some(p), true) => causes.rule(&path.child("logPattern"), log_pattern(p)),
            (None, false) => {
                for (i, line) in self.lines.iter().enumerate() {
                    let p = path.child("lines").index(i);
                    match line.strip_prefix("regex:") {
                        Some(re) => causes.rule(&p, log_pattern(re)),
                        None => causes.check(!line.is_empty(), &p, "must not be empty"),
                    }
                }
            }
            (Some(_), false) => causes.push(
                &path.child("logPattern"),
                "set logPattern or lines, not both",
            ),
            (None, true) => causes.push(
                &path.child("logPattern"),
                "set logPattern (a regular expression) or lines (texts)",
            ),
        }
    }
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
