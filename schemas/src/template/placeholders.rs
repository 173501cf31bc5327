//! Placeholders in config-file values: Pterodactyl's `{{server.build.default.port}}`,
//! `{{server.build.env.NAME}}`, `{{env.NAME}}`, `{{config.docker.interface}}` and the rest,
//! and Catalyst's own `{{NAME}}` for a variable.
//!
//! As in Pterodactyl's panel, `SERVER_MEMORY`, `SERVER_IP` and `SERVER_PORT` read through
//! `env.` are the build values; a key Catalyst has no value for becomes empty, and text that is
//! not a placeholder (`{{ not one }}`, `{{other.key}}`) stays as written.

use std::collections::BTreeMap;

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// The primary port as the game listens on it (its containerPort).
    Port,
    /// The address the game binds (`0.0.0.0`).
    Ip,
    /// The memory limit in MiB.
    Memory,
    /// A variable or environment value by name.
    Env(String),
    /// The node's bridge gateway: how the game reaches the host.
    DockerInterface,
    /// A Pterodactyl key Catalyst has no value for (it becomes empty).
    Unsupported(String),
}

/// Classifies the inside of `{{…}}`; None: not a placeholder (left as written).
pub fn classify(key: &str) -> Option<Placeholder> {
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return None;
    }
    let env = key
        .strip_prefix("server.build.env.")
        .or_else(|| key.strip_prefix("env."));
    if let Some(name) = env {
        return Some(match name {
            "SERVER_MEMORY" => Placeholder::Memory,
            "SERVER_IP" => Placeholder::Ip,
            "SERVER_PORT" => Placeholder::Port,
            n => Placeholder::Env(n.to_owned()),
        });
    }
    if let Some(rest) = key.strip_prefix("server.") {
        return Some(match rest {
            "build.default.port" => Placeholder::Port,
            "build.default.ip" => Placeholder::Ip,
            "build.memory" => Placeholder::Memory,
            _ => Placeholder::Unsupported(key.to_owned()),
        });
    }
    if let Some(rest) = key.strip_prefix("config.") {
        return Some(match rest {
            "docker.interface" | "docker.network.interface" => Placeholder::DockerInterface,
            _ => Placeholder::Unsupported(key.to_owned()),
        });
    }
    // Catalyst's {{NAME}} for a variable
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit())
    {
        return Some(match key {
            "SERVER_MEMORY" => Placeholder::Memory,
            "SERVER_IP" => Placeholder::Ip,
            "SERVER_PORT" => Placeholder::Port,
            n => Placeholder::Env(n.to_owned()),
        });
    }
    None
}

/// Every placeholder in `s`, with the text inside the braces.
pub fn find(s: &str) -> Vec<(String, Placeholder)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let inner = &after[..close];
        match classify(inner) {
            Some(p) => {
                out.push((inner.trim().to_owned(), p));
                rest = &after[close + 2..];
            }
            None => rest = &rest[open + 1..],
        }
    }
    out
}

/// The values placeholders stand for on one node for one server.
#[derive(Debug, Clone, Default)]
pub struct Values {
    /// The primary port (containerPort), if the server has one.
    pub port: Option<u16>,
    /// The bind address.
    pub ip: String,
    /// The memory limit in MiB, if any.
    pub memory_mib: Option<u64>,
    /// The bridge gateway (or `127.0.0.1` on the host network).
    pub interface: String,
    /// Variables (resolved) and then the server's environment.
    pub env: BTreeMap<String, String>,
}

impl Values {
    /// The value of one placeholder.
    pub fn get(&self, p: &Placeholder) -> String {
        match p {
            Placeholder::Port => self.port.map(|p| p.to_string()).unwrap_or_default(),
            Placeholder::Ip => self.ip.clone(),
            Placeholder::Memory => self.memory_mib.map(|m| m.to_string()).unwrap_or_default(),
            Placeholder::Env(n) => self.env.get(n).cloned().unwrap_or_default(),
            Placeholder::DockerInterface => self.interface.clone(),
            Placeholder::Unsupported(_) => String::new(),
        }
    }

    /// `s` with every placeholder replaced.
    pub fn substitute(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else { break };
            match classify(&after[..close]) {
                Some(p) => {
                    out.push_str(&rest[..open]);
                    out.push_str(&self.get(&p));
                    rest = &after[close + 2..];
                }
                None => {
                    out.push_str(&rest[..open + 1]);
                    rest = &rest[open + 1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            port: Some(25565),
            ip: "0.0.0.0".into(),
            memory_mib: Some(2048),
            interface: "10.89.0.1".into(),
            env: [("MOTD".to_string(), "hi".to_string())].into(),
        }
    }

    #[test]
    fn pterodactyl_keys_and_legacy_names() {
        let v = values();
        for (input, want) in [
            ("{{server.build.default.port}}", "25565"),
            ("0.0.0.0:{{server.build.default.port}}", "0.0.0.0:25565"),
            ("{{server.build.default.ip}}", "0.0.0.0"),
            ("{{server.build.memory}}M", "2048M"),
            ("{{server.build.env.MOTD}}", "hi"),
            ("{{env.MOTD}}", "hi"),
            ("{{env.SERVER_PORT}}", "25565"),
            ("{{server.build.env.SERVER_MEMORY}}", "2048"),
            ("{{config.docker.interface}}$2", "10.89.0.1$2"),
            ("{{ config.docker.network.interface }}", "10.89.0.1"),
            ("{{MOTD}}", "hi"),
            ("{{SERVER_PORT}}", "25565"),
            ("{{env.MISSING}}", ""),
            ("{{server.build.swap}}", ""),
            ("{{ not a key }}", "{{ not a key }}"),
            ("{{a}b}}", "{{a}b}}"),
            ("{{{{MOTD}}}}", "{{hi}}"),
            ("no braces", "no braces"),
            ("{{unclosed", "{{unclosed"),
        ] {
            assert_eq!(v.substitute(input), want, "{input}");
        }
    }

    #[test]
    fn unsupported_keys_are_found_for_reports() {
        let found = find("{{server.build.swap}} {{config.panel.url}} {{env.X}}");
        assert_eq!(
            found,
            vec![
                (
                    "server.build.swap".into(),
                    Placeholder::Unsupported("server.build.swap".into())
                ),
                (
                    "config.panel.url".into(),
                    Placeholder::Unsupported("config.panel.url".into())
                ),
                ("env.X".into(), Placeholder::Env("X".into())),
            ]
        );
    }
}
