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

/// XML's attribute form of a value, `[name='value']`.
fn xml_attribute_form(s: &str) -> bool {
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix("']"))
        .and_then(|r| r.split_once("='"))
        .is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        })
}

/// The edits of `resolved`'s config files with their placeholders filled, per file, or why the
/// file is not edited. In json and yaml a text that is an integer becomes a number (as Wings
/// writes it). A value that only becomes XML's attribute form through a variable is refused:
/// what a user types is text, never an attribute of their choosing.
pub(super) fn edits(
    resolved: &Resolved,
    values: &Values,
) -> Vec<(String, ConfigParser, Result<Vec<Replacement>, String>)> {
    resolved
        .config_files
        .iter()
        .map(|f| {
            let typed = matches!(f.parser, ConfigParser::Json | ConfigParser::Yaml);
            let reps = f
                .replace
                .iter()
                .map(|r| {
                    let value = match &r.value {
                        ConfigValue::Bool(b) => Value::Bool(*b),
                        ConfigValue::Int(i) => Value::Int(*i),
                        ConfigValue::String(raw) => {
                            let s = values.substitute(raw);
                            if f.parser == ConfigParser::Xml
                                && xml_attribute_form(&s)
                                && !xml_attribute_form(raw)
                            {
                                return Err(format!(
                                    "key {}: the value takes the attribute form [name='value'] from a variable",
                                    r.match_
                                ));
                            }
                            match s.parse::<i64>() {
                                Ok(n) if typed && n.to_string() == s => Value::Int(n),
                                _ => Value::Str(s),
                            }
                        }
                    };
                    Ok(Replacement {
                        key: r.match_.clone(),
                        if_value: r.if_value.clone(),
                        value,
                    })
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
        let mut files = Vec::new();
        let mut refused = Vec::new();
        for (path, parser, reps) in edits(resolved, &values) {
            match reps {
                Ok(reps) => files.push((path, parser, reps)),
                Err(why) => refused.push((path, Err(why))),
            }
        }
        let results = match self.env.runtime.edit_config_files(files).await {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("the server's files: {e}");
                self.console_line(&format!("config files not edited: {msg}"));
                self.event("Warning", "ConfigFileFailed", &msg).await;
                return;
            }
        };
        for (path, result) in results.into_iter().chain(refused) {
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
        let e: Vec<_> = edits(&r, &v)
            .into_iter()
            .map(|(p, parser, reps)| (p, parser, reps.expect("edits")))
            .collect();
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

    #[test]
    fn a_variable_cannot_turn_an_xml_text_into_an_attribute() {
        let r: Resolved = serde_json::from_value(serde_json::json!({
            "image": "x", "startup": null, "variables": {"NAME": "[Password='x']", "OK": "plain"},
            "env": {}, "resources": {}, "ports": [], "stop": null, "ready": null, "install": null,
            "network": "Bridge",
            "configFiles": [
                {"path": "a.xml", "parser": "xml", "replace": [{"match": "server.name", "value": "{{NAME}}"}]},
                {"path": "b.xml", "parser": "xml", "replace": [
                    {"match": "server.name", "value": "{{OK}}"},
                    {"match": "server", "value": "[port='{{OK}}']"}]},
                {"path": "c.properties", "parser": "properties", "replace": [{"match": "name", "value": "{{NAME}}"}]}]}))
        .expect("resolved");
        let e = edits(&r, &values(&r, "10.89.0.1"));
        assert!(e[0]
            .2
            .as_ref()
            .is_err_and(|why| why.contains("attribute form")));
        assert!(e[1].2.is_ok(), "the Template's own attribute form stays");
        assert!(e[2].2.is_ok(), "only XML has the form");
    }
}
