//! The Template kind: a reusable game definition (Pterodactyl's "egg").
//!
//! [`rules`] parses and checks variables' rules, [`placeholders`] the `{{…}}` keys of
//! config-file values; [`check_server_variables`] is the admission of a GameServer's
//! variables against its Template.

pub mod placeholders;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gameserver::{
    image_reference, validate_ports, GameServerPort, GameServerSpec, InstallSpec, ReadySpec,
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
    /// Files the file manager and SFTP refuse to read or write: gitignore patterns matched
    /// against the path from the data directory's root (`/` + path), e.g. `*.jar`, `/eula.txt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_denylist: Vec<String>,
    /// Image rewrites applied to `images` and `install.image` where the server runs: an exact
    /// reference, or a prefix ending in `/` or `:`, to its replacement (a mirror, or an
    /// `oci-archive:` file).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub image_map: BTreeMap<String, String>,
    /// Where the Template came from (a converted Pterodactyl egg); for people only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TemplateSource>,
}

/// The egg a Template was converted from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSource {
    /// `PTDL_v1` or `PTDL_v2`.
    pub format: String,
    /// The egg's name.
    pub name: String,
    /// The egg's author.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// Where the egg is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_url: Option<String>,
    /// The egg's feature flags (`eula`, `java_version`, …), which Catalyst does not act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// When the egg was exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<String>,
}

impl TemplateSpec {
    /// `image` rewritten by the image map: an exact entry first, else the longest prefix
    /// entry (ending in `/` or `:`).
    pub fn map_image(&self, image: &str) -> String {
        map_image(&self.image_map, image)
    }
}

/// `image` rewritten by `map`: an exact entry first, else the longest prefix entry (a key
/// ending in `/` or `:`).
pub fn map_image(map: &BTreeMap<String, String>, image: &str) -> String {
    if let Some(to) = map.get(image) {
        return to.clone();
    }
    map.iter()
        .filter(|(from, _)| {
            (from.ends_with('/') || from.ends_with(':')) && image.starts_with(from.as_str())
        })
        .max_by_key(|(from, _)| from.len())
        .map(|(from, to)| format!("{to}{}", &image[from.len()..]))
        .unwrap_or_else(|| image.to_owned())
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
    #[serde(alias = "yml")]
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigReplace {
    /// The key (or line prefix, for `file`).
    #[serde(rename = "match")]
    pub match_: String,
    /// Only when the current value is this (json, yaml, properties); `regex:RE`: only when it
    /// matches RE, and then `value` is the replacement with `$1`… of the match (json, yaml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_value: Option<String>,
    /// The value, with placeholders; in json and yaml a text that is an integer is written as
    /// a number.
    pub value: ConfigValue,
}

/// A config value: text with placeholders, or a literal boolean or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ConfigValue {
    /// true or false.
    Bool(bool),
    /// A number.
    Int(i64),
    /// Text.
    String(String),
}

impl From<&str> for ConfigValue {
    fn from(s: &str) -> Self {
        ConfigValue::String(s.to_owned())
    }
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
            if let Err(e) = rules::RuleSet::parse(&v.rules) {
                causes.push(
                    &path.child("variables").index(i).child("rules"),
                    e.to_string(),
                );
            }
        }
        validate_ports(&self.ports, &path.child("ports"), causes);
        self.resources.validate(&path.child("resources"), causes);
        if let Some(stop) = &self.stop {
            stop.validate(&path.child("stop"), causes);
        }
        if let Some(ready) = &self.ready {
            ready.validate(&path.child("ready"), causes);
        }
        if let Some(install) = &self.install {
            if let Some(image) = &install.image {
                causes.rule(
                    &path.child("install").child("image"),
                    image_reference(image),
                );
            }
        }
        for (i, f) in self.config_files.iter().enumerate() {
            let fp = path.child("configFiles").index(i);
            let bad = f.path.is_empty()
                || f.path.starts_with('/')
                || f.path.contains('\0')
                || f.path.split('/').any(|s| s == "..");
            causes.check(
                !bad,
                &fp.child("path"),
                "must be a relative path inside the data directory",
            );
            for (j, r) in f.replace.iter().enumerate() {
                let rp = fp.child("replace").index(j);
                causes.check(
                    !r.match_.is_empty(),
                    &rp.child("match"),
                    "must not be empty",
                );
                if let Some(re) = r.if_value.as_deref().and_then(|v| v.strip_prefix("regex:")) {
                    causes.rule(&rp.child("ifValue"), compile_regex(re));
                }
            }
        }
        for (i, line) in self.file_denylist.iter().enumerate() {
            causes.check(
                !line.trim().is_empty() && line.len() <= 1024 && !line.contains(['\0', '\n', '\r']),
                &path.child("fileDenylist").index(i),
                "must be one gitignore pattern (not empty, one line, at most 1024 bytes)",
            );
        }
        for (from, to) in &self.image_map {
            let p = path.child("imageMap").key(from);
            causes.check(
                !from.is_empty(),
                &p,
                "the image to rewrite must not be empty",
            );
            if from.ends_with('/') || from.ends_with(':') {
                // a prefix: what it becomes must still make references
                causes.rule(&p, image_reference(&format!("{to}x")));
            } else {
                causes.rule(&p, image_reference(to));
            }
        }
    }
}

fn compile_regex(re: &str) -> Result<(), String> {
    regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| format!("does not compile: {e}"))
}

/// Who writes a GameServer: users may only set variables their Template marks
/// `userEditable`; whoever may change the Template itself may set any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Editor {
    /// Bound by `userEditable`.
    User,
    /// May set every variable (still by its rules).
    Operator,
}

/// Admission of a GameServer's variables against its Template (`previous`: the stored spec on
/// an update). On create every variable's value (the server's, else the default) must pass its
/// rules; on update, every value that changes. A name the Template does not declare is
/// refused, and a [`Editor::User`] may not set a variable that is not `userEditable` to
/// anything but its default (create) or change it (update).
pub fn check_server_variables(
    template_name: &str,
    t: &TemplateSpec,
    next: &GameServerSpec,
    previous: Option<&GameServerSpec>,
    editor: Editor,
    causes: &mut Causes,
) {
    let path = FieldPath::root("spec").child("variables");
    for (name, value) in &next.variables {
        // one the server already had stays (a Template may drop a variable later)
        if previous.is_some_and(|p| p.variables.get(name) == Some(value)) {
            continue;
        }
        causes.check(
            t.variables.iter().any(|v| &v.name == name),
            &path.key(name),
            format!("not a variable of template {template_name}"),
        );
    }
    for v in &t.variables {
        let default = v.default.as_deref().unwrap_or("");
        let value = next.variables.get(&v.name).map_or(default, String::as_str);
        let before = previous.map(|p| p.variables.get(&v.name).map_or(default, String::as_str));
        if before == Some(value) {
            continue;
        }
        let p = path.key(&v.name);
        if editor == Editor::User && !v.user_editable {
            let allowed = match before {
                None => value == default,
                Some(_) => false,
            };
            if !allowed {
                causes.push(
                    &p,
                    "may not be changed: the template does not make it user-editable",
                );
                continue;
            }
        }
        // a rules string the Template admission let through parses
        if let Ok(set) = rules::RuleSet::parse(&v.rules) {
            causes.rule(&p, set.check(value));
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

    fn spec_of(v: serde_json::Value) -> crate::gameserver::GameServerSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn server_variables_follow_the_template_rules_and_editability() {
        use super::{check_server_variables, Editor, TemplateSpec};
        use crate::validation::Causes;
        let t: TemplateSpec = serde_json::from_value(json!({
            "images": [{"name": "x", "image": "busybox"}],
            "variables": [
                {"name": "MAX_PLAYERS", "default": "32", "rules": "required|integer|max:128"},
                {"name": "APPID", "default": "", "rules": "required|numeric", "userEditable": false},
                {"name": "MAP", "default": "gm_construct", "rules": "required|alpha_dash"}]}))
        .unwrap();
        let check = |next: serde_json::Value, prev: Option<serde_json::Value>, editor| {
            let mut causes = Causes::default();
            let prev = prev.map(spec_of);
            check_server_variables(
                "gmod",
                &t,
                &spec_of(next),
                prev.as_ref(),
                editor,
                &mut causes,
            );
            causes
                .as_slice()
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect::<Vec<_>>()
        };
        // a user cannot create it: APPID is required and only an operator may set it
        assert_eq!(
            check(json!({"template": "gmod"}), None, Editor::User),
            ["spec.variables[APPID]: is required"]
        );
        assert_eq!(
            check(json!({"template": "gmod", "variables": {"APPID": "4000"}}), None, Editor::User),
            ["spec.variables[APPID]: may not be changed: the template does not make it user-editable"]
        );
        let ok = json!({"template": "gmod", "variables": {"APPID": "4000"}});
        assert!(check(ok.clone(), None, Editor::Operator).is_empty());
        assert_eq!(
            check(
                json!({"template": "gmod", "variables": {"APPID": "4000", "MAX_PLAYERS": "500", "MAP": "de dust", "NOPE": "1"}}),
                None,
                Editor::Operator
            ),
            [
                "spec.variables[NOPE]: not a variable of template gmod",
                "spec.variables[MAX_PLAYERS]: must be at most 128",
                "spec.variables[MAP]: may only contain letters, numbers, dashes and underscores"
            ]
        );
        // updates: unchanged values are not checked again; a user may not change APPID
        let changed =
            json!({"template": "gmod", "variables": {"APPID": "4001", "MAX_PLAYERS": "64"}});
        assert_eq!(
            check(changed.clone(), Some(ok.clone()), Editor::User),
            ["spec.variables[APPID]: may not be changed: the template does not make it user-editable"]
        );
        assert!(check(changed, Some(ok.clone()), Editor::Operator).is_empty());
        let players =
            json!({"template": "gmod", "variables": {"APPID": "4000", "MAX_PLAYERS": "64"}});
        assert!(check(players, Some(ok), Editor::User).is_empty());
    }

    #[test]
    fn bad_rules_ready_and_regexes_are_refused_by_field() {
        let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Template",
            "metadata": {"name": "paper"},
            "spec": {"images": [{"name": "Java", "image": "busybox"}],
                "variables": [{"name": "A", "rules": "required|strnig"}],
                "ready": {"lines": ["ok", "regex:("]},
                "configFiles": [{"path": "c.yml", "parser": "yml", "replace": [
                    {"match": "a", "ifValue": "regex:(", "value": 1},
                    {"match": "b", "value": true},
                    {"match": "", "value": "x"}]}],
                "imageMap": {"ghcr.io/": "not an image!/", "ghcr.io/pterodactyl/": "mirror.local/ptero/"}}});
        let err = crate::admit(obj).unwrap_err();
        let fields: Vec<&str> = err.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.variables[0].rules",
                "spec.ready.lines[1]",
                "spec.configFiles[0].replace[0].ifValue",
                "spec.configFiles[0].replace[2].match",
                "spec.imageMap[ghcr.io/]"
            ]
        );
    }

    #[test]
    fn image_maps_take_exact_references_then_the_longest_prefix() {
        let map: std::collections::BTreeMap<String, String> = [
            (
                "ghcr.io/pterodactyl/yolks:java_21",
                "oci-archive:/srv/java21.tar",
            ),
            ("ghcr.io/", "mirror.local/ghcr/"),
            ("ghcr.io/pterodactyl/", "mirror.local/ptero/"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        for (from, to) in [
            (
                "ghcr.io/pterodactyl/yolks:java_21",
                "oci-archive:/srv/java21.tar",
            ),
            (
                "ghcr.io/pterodactyl/yolks:java_17",
                "mirror.local/ptero/yolks:java_17",
            ),
            (
                "ghcr.io/parkervcp/installers:debian",
                "mirror.local/ghcr/parkervcp/installers:debian",
            ),
            ("quay.io/x/y", "quay.io/x/y"),
        ] {
            assert_eq!(super::map_image(&map, from), to);
        }
    }
}
