//! The Template kind: a reusable game definition (Pterodactyl's "egg").

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gameserver::{
    image_reference, log_pattern, validate_ports, GameServerPort, InstallSpec, ReadySpec,
    Resources, StopSpec,
};
use crate::resource::{resource, NoStatus, Validate};
use crate::validation::{self, Causes, FieldPath};

resource! {
    /// A reusable game definition.
    Template {
        spec: TemplateSpec,
        status: NoStatus,
        plural: "templates",
        singular: "template",
        short: ["tpl"],
        namespaced: false,
        name_rule: validation::dns_subdomain,
    }
}

/// A game definition that GameServers refer to by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSpec {
    /// What the game is, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Images the game can run on; the first is the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<TemplateImage>,
    /// The command line, with `{{VAR}}` placeholders.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub startup: String,
    /// Typed variables with rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<TemplateVariable>,
    /// The install script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallSpec>,
    /// How to stop the game.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSpec>,
    /// When the game counts as ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadySpec>,
    /// Default ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<GameServerPort>,
    /// Default limits.
    #[serde(default)]
    pub resources: Resources,
    /// Edits to the game's configuration files before each start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<ConfigFile>,
}

/// One image a template can run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateImage {
    /// A label for people, e.g. `Java 21`.
    pub name: String,
    /// The image reference.
    pub image: String,
}

/// A variable users fill in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateVariable {
    /// The environment variable and `{{NAME}}` placeholder.
    pub name: String,
    /// A label for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The value when the GameServer sets none (one line: no NUL, CR or LF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Users may see it.
    #[serde(default = "yes")]
    pub user_viewable: bool,
    /// Users may change it.
    #[serde(default = "yes")]
    pub user_editable: bool,
    /// Validation rules in Pterodactyl's syntax: `required|string|max:20`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rules: String,
}

fn yes() -> bool {
    true
}

/// How a configuration file is parsed for editing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfigParser {
    /// Java `.properties`.
    Properties,
    /// INI sections.
    Ini,
    /// JSON, keys as dotted paths.
    Json,
    /// YAML, keys as dotted paths.
    Yaml,
    /// XML, keys as element paths.
    Xml,
    /// Plain lines starting with the key.
    File,
}

/// Edits to one configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The file, relative to the data directory.
    pub path: String,
    /// Its format.
    pub parser: ConfigParser,
    /// Keys and their new values (values may hold `{{VAR}}` placeholders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace: Vec<ConfigReplace>,
}

/// One key to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigReplace {
    /// The key (or line prefix, for `file`).
    #[serde(rename = "match")]
    pub match_: String,
    /// The value.
    pub value: String,
}

impl Validate for TemplateSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.check(
            !self.images.is_empty(),
            &path.child("images"),
            "at least one image is required",
        );
        for (i, img) in self.images.iter().enumerate() {
            causes.rule(
                &path.child("images").index(i).child("image"),
                image_reference(&img.image),
            );
        }
        let mut names = BTreeSet::new();
        for (i, v) in self.variables.iter().enumerate() {
            let p = path.child("variables").index(i).child("name");
            causes.rule(&p, validation::env_name(&v.name));
            causes.check(
                names.insert(v.name.as_str()),
                &p,
                format!("duplicate variable {:?}", v.name),
            );
            if let Some(d) = &v.default {
                causes.rule(
                    &path.child("variables").index(i).child("default"),
                    validation::env_value(d),
                );
            }
        }
        validate_ports(&self.ports, &path.child("ports"), causes);
        self.resources.validate(&path.child("resources"), causes);
        if let Some(stop) = &self.stop {
            stop.validate(&path.child("stop"), causes);
        }
        if let Some(ready) = &self.ready {
            causes.rule(
                &path.child("ready").child("logPattern"),
                log_pattern(&ready.log_pattern),
            );
        }
        for (i, f) in self.config_files.iter().enumerate() {
            let p = path.child("configFiles").index(i).child("path");
            let bad = f.path.is_empty()
                || f.path.starts_with('/')
                || f.path.split('/').any(|s| s == "..");
            causes.check(
                !bad,
                &p,
                "must be a relative path inside the data directory",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn variable_defaults_with_nul_cr_or_lf_are_refused_by_field() {
        let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Template",
            "metadata": {"name": "paper"},
            "spec": {"images": [{"name": "Java", "image": "busybox"}], "variables": [
                {"name": "MOTD", "default": "a\nb"},
                {"name": "JAR", "default": "server.jar"},
                {"name": "EMPTY"},
                {"name": "CR", "default": "x\r"}]}});
        let err = crate::admit(obj).unwrap_err();
        let fields: Vec<&str> = err.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.variables[0].default", "spec.variables[3].default"]
        );
        assert!(err.causes[0].message.contains("no NUL, CR or LF"));
    }

    #[test]
    fn template_ports_follow_the_gameserver_port_rules() {
        let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Template",
            "metadata": {"name": "paper"},
            "spec": {"images": [{"name": "Java", "image": "busybox"}],
                "ports": [{"containerPort": 25565, "policy": "Static", "hostPort": 80}]}});
        let err = crate::admit(obj).unwrap_err();
        assert_eq!(err.causes[0].field, "spec.ports[0].hostPort");
    }
}
