//! The Template's config files, edited in the server's data directory before every start (as
//! Wings does): placeholders resolved for this server on this node, then each file edited by
//! [`crate::configfile`]. A file that cannot be edited is left as it was, reported by a
//! Warning Event `ConfigFileFailed` naming it and why, and the server starts anyway.

use std::collections::BTreeMap;

use catalyst_schemas::gameserver::NetworkMode;
use catalyst_schemas::template::placeholders::Values;
use catalyst_schemas::template::{ConfigParser, ConfigValue};

use super::Worker;
use crate::configfile::{Replacement, Value};
use crate::spec::Resolved;

/// What the placeholders stand for: the primary port as the game listens on it (its
/// containerPort), `0.0.0.0`, the memory limit in MiB, the variables and environment, and how
/// the game reaches the host (the bridge's gateway, or 127.0.0.1 on the host's network).
pub(super) fn values(resolved: &Resolved, gateway: &str) -> Values {
    let mut env: BTreeMap<String, String> = resolved.env.clone();
    // variables win over plain environment, as in the process's environment
    env.extend(resolved.variables.clone());
    Values {
        port: resolved
            .ports
            .first()
            .and_then(|p| u16::try_from(p.container_port).ok()),
        ip: "0.0.0.0".into(),
        memory_mib: resolved
            .resources
            .memory
            .as_ref()
            .and_then(|m| u64::try_from(m.value() / (1 << 20)).ok()),
        interface: match resolved.network {
            NetworkMode::Bridge => gateway.to_owned(),
            NetworkMode::Host => "127.0.0.1".into(),
        },
        env,
    }
}

/// The edits of `resolved`'s config files with their placeholders filled. In json and yaml a
/// text that is an integer becomes a number (as Wings writes it).
pub(super) fn edits(
    resolved: &Resolved,
    values: &Values,
) -> Vec<(String, ConfigParser, Vec<Replacement>)> {
    resolved
        .config_files
        .iter()
        .map(|f| {
            let typed = matches!(f.parser, ConfigParser::Json | ConfigParser::Yaml);
            let reps = f
                .replace
                .iter()
                .map(|r| Replacement {
                    key: r.match_.clone(),
                    if_value: r.if_value.clone(),
                    value: match &r.value {
                        ConfigValue::Bool(b) => Value::Bool(*b),
                        ConfigValue::Int(i) => Value::Int(*i),
                        ConfigValue::String(s) => {
                            let s = values.substitute(s);
                            match s.parse::<i64>() {
                                Ok(n) if typed && n.to_string() == s => Value::Int(n),
                                _ => Value::Str(s),
                            }
                        }
                    },
                })
                .collect();
            (f.path.clone(), f.parser, reps)
        })
        .collect()
}

impl Worker {
    /// Edits the config files; failures are Events, never a failed start.
    pub(super) async fn apply_config_files(&mut self, resolved: &Resolved) {
        if resolved.config_files.is_empty() {
            return;
        }
        let values = values(resolved, &self.env.runtime.gateway());
        let files = edits(resolved, &values);
        let results = match self.env.runtime.edit_config_files(files).await {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("the server's files: {e}");
                self.console_line(&format!("config files not edited: {msg}"));
                self.event("Warning", "ConfigFileFailed", &msg).await;
                return;
            }
        };
        for (path, result) in results {
            match result {
                Ok(true) => self.console_line(&format!("config file {path} updated")),
                Ok(false) => {}
                Err(why) => {
                    let msg = format!("{path}: {why}; left as it was");
                    self.console_line(&format!("config file {msg}"));
                    self.event("Warning", "ConfigFileFailed", &msg).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_json_numbers_typed() {
        let mut r: Resolved = serde_json::from_value(serde_json::json!({
            "image": "x", "startup": null, "variables": {"MOTD": "hi", "N": "7"},
            "env": {"MOTD": "env loses"}, "resources": {"memory": "2Gi"},
            "ports": [{"containerPort": 25565}], "stop": null, "ready": null, "install": null,
            "network": "Bridge",
            "configFiles": [
                {"path": "a.json", "parser": "json", "replace": [
                    {"match": "port", "value": "{{server.build.default.port}}"},
                    {"match": "motd", "value": "{{env.MOTD}}"},
                    {"match": "zero", "value": "007"},
                    {"match": "flag", "value": true},
                    {"match": "servers.*.address", "ifValue": "regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$",
                     "value": "{{config.docker.interface}}$2"}]},
                {"path": "server.properties", "parser": "properties", "replace": [
                    {"match": "server-port", "value": "{{server.build.default.port}}"},
                    {"match": "memory", "value": "{{server.build.memory}}"}]}]}))
        .expect("resolved");
        let v = values(&r, "10.89.0.1");
        let e = edits(&r, &v);
        assert_eq!(e[0].2[0].value, Value::Int(25565));
        assert_eq!(e[0].2[1].value, Value::Str("hi".into()));
        assert_eq!(e[0].2[2].value, Value::Str("007".into()));
        assert_eq!(e[0].2[3].value, Value::Bool(true));
        assert_eq!(e[0].2[4].value, Value::Str("10.89.0.1$2".into()));
        assert!(e[0].2[4]
            .if_value
            .as_deref()
            .is_some_and(|i| i.starts_with("regex:")));
        assert_eq!(e[1].2[0].value, Value::Str("25565".into()));
        assert_eq!(e[1].2[1].value, Value::Str("2048".into()));
        r.network = NetworkMode::Host;
        assert_eq!(values(&r, "10.89.0.1").interface, "127.0.0.1");
    }
}
