//! An egg → a Template, with a report of everything the Template cannot say as the egg does.
//!
//! The mapping follows what Pterodactyl's Panel and Wings do with an egg (docs/eggs.md has the
//! table); where Catalyst differs (`^C` stops with SIGINT, the startup runs under `/bin/sh`,
//! eggs declare no ports) the conversion says so in a [`Report`].

use std::collections::BTreeMap;
use std::fmt;

use crate::gameserver::{image_reference, log_pattern, InstallSpec, ReadySpec, StopSpec};
use crate::template::placeholders::{self, Placeholder};
use crate::template::rules::RuleSet;
use crate::template::{
    map_image, ConfigFile, ConfigParser, ConfigReplace, ConfigValue, TemplateImage, TemplateSource,
    TemplateSpec, TemplateVariable,
};
use crate::validation::{dns_subdomain, env_name, env_value};
use crate::Template;
use serde_json::Value;

use super::{shell, Egg, EggError, EggVariable, Json, FORMATS};

/// How to convert.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Image rewrites (`--image-map FROM=TO`): an exact reference, or a prefix ending in `/`
    /// or `:`, to its replacement.
    pub image_map: BTreeMap<String, String>,
    /// Put `image_map` into the Template's `imageMap` (applied where the server runs, and
    /// changeable later) instead of rewriting the references now.
    pub keep_image_map: bool,
}

/// One thing the Template does not say as the egg did: left out, changed, or to be supplied
/// by whoever creates a GameServer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Where in the egg: `config.stop`, `variables[STEAM_ACC].default_value`, ….
    pub field: String,
    /// What happened and why.
    pub message: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A converted egg.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The Template object (apiVersion, kind, metadata, spec); it passes admission.
    pub template: Value,
    /// What the Template does not carry over, in the egg's field order.
    pub reports: Vec<Report>,
    typed: Template,
}

impl Conversion {
    /// The Template's name.
    pub fn name(&self) -> &str {
        &self.typed.metadata.name
    }

    /// The Template as YAML, fields in the schema's order; the same egg and options always
    /// give the same bytes.
    pub fn to_yaml(&self) -> String {
        // a Template of strings, numbers and booleans always serializes
        yaml_serde::to_string(&self.typed).unwrap_or_default()
    }
}

/// Whether a parsed document is an egg: an object without `kind` whose `meta.version` is
/// `PTDL_v1` or `PTDL_v2`.
pub fn is_egg(doc: &Value) -> bool {
    doc.get("kind").is_none()
        && doc
            .pointer("/meta/version")
            .and_then(Value::as_str)
            .is_some_and(|v| FORMATS.contains(&v))
}

/// Converts an egg (its JSON bytes) into a Template.
///
/// # Errors
/// [`EggError::Json`] and [`EggError::Version`] for input that is not an egg;
/// [`EggError::Invalid`] when even without the reported parts no valid Template remains (an egg
/// without a usable image).
pub fn convert(egg_json: &[u8], opts: &Options) -> Result<Conversion, EggError> {
    let egg = Egg::parse(egg_json)?;
    if egg.variables.len() > super::MAX_VARIABLES {
        return Err(EggError::TooLarge(egg.variables.len()));
    }
    let mut c = Converter {
        opts,
        reports: Vec::new(),
    };
    let spec = c.spec(&egg);
    let name = slug(egg.name.as_deref().unwrap_or(""));
    let typed = Template::new(&name, spec);
    let template = serde_json::to_value(&typed)?;
    crate::admit(template.clone())?;
    Ok(Conversion {
        template,
        reports: c.reports,
        typed,
    })
}

/// A Template name from an egg's name: lower-case, every run of characters other than
/// `a-z0-9` one `-`, no `-` at either end, at most 63 characters; `egg` when nothing is left.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(63);
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() || dns_subdomain(&out).is_err() {
        "egg".to_owned()
    } else {
        out
    }
}

/// CRLF (and a lone CR) → LF.
fn unix_lines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

struct Converter<'a> {
    opts: &'a Options,
    reports: Vec<Report>,
}

impl Converter<'_> {
    fn report(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.reports.push(Report {
            field: field.into(),
            message: message.into(),
        });
    }

    fn spec(&mut self, egg: &Egg) -> TemplateSpec {
        let startup = unix_lines(egg.startup.as_deref().unwrap_or(""));
        let images = self.images(egg);
        self.startup(&startup);
        let variables = egg
            .variables
            .iter()
            .enumerate()
            .fold(Vec::new(), |mut out, (i, v)| {
                if let Some(v) = self.variable(i, v, &out) {
                    out.push(v);
                }
                out
            });
        let install = self.install(egg);
        let stop = self.stop(egg.config.stop.as_deref(), &startup);
        let ready = self.ready(&egg.config.startup);
        let config_files = self.config_files(&egg.config.files);
        self.config_rest(egg);
        self.report(
            "ports",
            "the egg declares no ports: every GameServer of this template must declare its own (the first is {{SERVER_PORT}})",
        );
        let features = egg.features.clone().unwrap_or_default();
        if !features.is_empty() {
            self.report(
                "features",
                format!(
                    "{} kept in source.features only: Catalyst does not act on Panel features",
                    features.join(", ")
                ),
            );
        }
        let file_denylist = self.denylist(egg);
        TemplateSpec {
            description: unix_lines(egg.description.as_deref().unwrap_or("")),
            images,
            startup,
            variables,
            install,
            stop,
            ready,
            ports: Vec::new(),
            resources: Default::default(),
            config_files,
            file_denylist,
            image_map: if self.opts.keep_image_map {
                self.opts.image_map.clone()
            } else {
                BTreeMap::new()
            },
            source: Some(TemplateSource {
                format: egg.meta.version.clone(),
                name: egg.name.clone().unwrap_or_default(),
                author: egg.author.clone().unwrap_or_default(),
                update_url: egg.meta.update_url.clone().filter(|u| !u.is_empty()),
                features,
                exported_at: egg.exported_at.clone().filter(|e| !e.is_empty()),
            }),
        }
    }

    /// An image reference as the Template holds it: checked, then rewritten by the map
    /// (unless the map is kept in the Template).
    fn image(&mut self, field: &str, reference: &str) -> Option<String> {
        let reference = reference.trim();
        if let Err(e) = image_reference(reference) {
            self.report(field, format!("left out: {e}"));
            return None;
        }
        if self.opts.image_map.is_empty() || self.opts.keep_image_map {
            return Some(reference.to_owned());
        }
        let mapped = map_image(&self.opts.image_map, reference);
        if mapped == reference {
            self.report(
                field,
                format!("{reference} matches no --image-map entry: kept as it is"),
            );
        } else if let Err(e) = image_reference(&mapped) {
            self.report(
                field,
                format!("--image-map rewrote {reference} to an invalid reference, left out: {e}"),
            );
            return None;
        }
        Some(mapped)
    }

    fn images(&mut self, egg: &Egg) -> Vec<TemplateImage> {
        let mut labelled: Vec<(String, String, String)> = Vec::new();
        match &egg.docker_images {
            Some(Json::Object(entries)) if !entries.is_empty() => {
                for (label, reference) in entries {
                    let field = format!("docker_images[{label}]");
                    match reference.as_str() {
                        Some(r) => labelled.push((field, label.clone(), r.to_owned())),
                        None => self.report(
                            field,
                            format!("left out: {} is not an image reference", reference.kind()),
                        ),
                    }
                }
            }
            Some(Json::Null | Json::Object(_)) | None => {
                let list = egg.images.clone().unwrap_or_default();
                for (i, r) in list.into_iter().enumerate() {
                    labelled.push((format!("images[{i}]"), r.clone(), r));
                }
                if labelled.is_empty() {
                    if let Some(r) = &egg.image {
                        labelled.push(("image".into(), r.clone(), r.clone()));
                    }
                }
            }
            Some(other) => self.report(
                "docker_images",
                format!("left out: {} instead of an object", other.kind()),
            ),
        }
        let mut out = Vec::new();
        for (field, label, reference) in labelled {
            if let Some(image) = self.image(&field, &reference) {
                let name = match label.trim() {
                    "" => reference.trim().to_owned(),
                    l => l.to_owned(),
                };
                out.push(TemplateImage { name, image });
            }
        }
        if out.is_empty() {
            self.report("docker_images", "the egg names no usable image");
        }
        out
    }

    fn startup(&mut self, startup: &str) {
        for bashism in shell::bashisms(startup) {
            self.report(
                "startup",
                format!("{bashism}; Catalyst runs the startup with /bin/sh -c"),
            );
        }
        for (key, _) in placeholders::find(startup) {
            let plain = key
                .strip_prefix("env.")
                .map_or(env_name(&key).is_ok(), |n| env_name(n).is_ok());
            if !plain {
                self.report(
                    "startup",
                    format!("{{{{{key}}}}} stays as written: the startup line fills only {{{{NAME}}}} and {{{{env.NAME}}}}"),
                );
            }
        }
    }

    fn variable(
        &mut self,
        i: usize,
        v: &EggVariable,
        taken: &[TemplateVariable],
    ) -> Option<TemplateVariable> {
        let name = v.env_variable.clone();
        let field = if name.is_empty() {
            format!("variables[{i}]")
        } else {
            format!("variables[{name}]")
        };
        if let Err(e) = env_name(&name) {
            self.report(&field, format!("left out: {e}"));
            return None;
        }
        if taken.iter().any(|t| t.name == name) {
            self.report(&field, "left out: a second variable of the same name");
            return None;
        }
        let default = match &v.default_value {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Number(n)) => Some(n.to_string()),
            Some(Json::Bool(b)) => Some(if *b { "1" } else { "0" }.to_owned()),
            Some(other) => {
                self.report(
                    format!("{field}.default_value"),
                    format!("left out: {} is not a value", other.kind()),
                );
                None
            }
        };
        let default = default.map(|d| {
            if env_value(&d).is_ok() {
                return d;
            }
            let one_line: String = d
                .chars()
                .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
                .collect();
            self.report(
                format!("{field}.default_value"),
                "CR, LF and NUL removed: a variable's value is one line",
            );
            one_line
        });
        let rules = self.rules(&field, v.rules.as_ref());
        let checked = RuleSet::parse(&rules);
        let rules = match checked {
            Ok(set) => {
                if let Err(e) = set.check(default.as_deref().unwrap_or("")) {
                    self.report(
                        format!("{field}.default_value"),
                        format!(
                            "the default {:?} fails its own rules ({e}): a GameServer must set {name}",
                            default.as_deref().unwrap_or("")
                        ),
                    );
                }
                rules
            }
            Err(e) => {
                self.report(format!("{field}.rules"), format!("left out: {e}"));
                String::new()
            }
        };
        Some(TemplateVariable {
            name,
            display_name: v.name.clone().unwrap_or_default(),
            description: unix_lines(v.description.as_deref().unwrap_or("")),
            default: default.filter(|d| !d.is_empty()),
            user_viewable: self.flag(&format!("{field}.user_viewable"), v.user_viewable.as_ref()),
            user_editable: self.flag(&format!("{field}.user_editable"), v.user_editable.as_ref()),
            rules,
        })
    }

    /// A Panel boolean: true/false, 1/0, "1"/"0"; absent is false.
    fn flag(&mut self, field: &str, value: Option<&Json>) -> bool {
        match value {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(Json::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
            Some(Json::String(s)) if matches!(s.trim(), "1" | "true") => true,
            Some(Json::String(s)) if matches!(s.trim(), "" | "0" | "false") => false,
            Some(other) => {
                self.report(field, format!("{other} is not a boolean: taken as false"));
                false
            }
        }
    }

    /// The variable's rules as one `|` string, each rule checked on its own: unknown or broken
    /// ones are left out and reported.
    fn rules(&mut self, field: &str, rules: Option<&Json>) -> String {
        let parts: Vec<String> = match rules {
            None | Some(Json::Null) => return String::new(),
            Some(Json::String(s)) => split_rules(s).into_iter().map(str::to_owned).collect(),
            Some(Json::Array(list)) => list
                .iter()
                .filter_map(|r| match r {
                    Json::String(s) => Some(s.clone()),
                    other => {
                        self.report(
                            format!("{field}.rules"),
                            format!("rule {other} left out: not text"),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.report(
                    format!("{field}.rules"),
                    format!("left out: {} instead of text or a list", other.kind()),
                );
                return String::new();
            }
        };
        let mut kept = Vec::new();
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match RuleSet::parse(part) {
                Ok(set) if set.rules().len() == 1 => kept.push(part.to_owned()),
                Ok(_) => self.report(
                    format!("{field}.rules"),
                    format!("rule {part:?} left out: not one rule"),
                ),
                Err(e) => self.report(
                    format!("{field}.rules"),
                    format!("rule {part:?} left out: {}", e.message),
                ),
            }
        }
        kept.join("|")
    }

    fn install(&mut self, egg: &Egg) -> Option<InstallSpec> {
        let inst = egg.scripts.installation.as_ref()?;
        let script = unix_lines(inst.script.as_deref().unwrap_or(""));
        let container = inst.container.as_deref().map(str::trim).unwrap_or("");
        if script.trim().is_empty() {
            if !container.is_empty() {
                self.report(
                    "scripts.installation",
                    "no install script: the install container is not used",
                );
            }
            return None;
        }
        let image = match container {
            "" => None,
            c => self.image("scripts.installation.container", c),
        };
        let entrypoint = inst
            .entrypoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned);
        Some(InstallSpec {
            image,
            entrypoint,
            script,
            timeout_seconds: None,
        })
    }

    fn stop(&mut self, stop: Option<&str>, startup: &str) -> Option<StopSpec> {
        let field = "config.stop";
        let raw = stop.unwrap_or("").trim_end_matches(['\r', '\n']);
        let signal = |s: &str| StopSpec {
            command: None,
            signal: Some(s.to_owned()),
            timeout_seconds: 30,
        };
        if raw.trim().is_empty() {
            self.report(
                field,
                "no stop in the egg: the GameServer's stop (or Catalyst's default) applies",
            );
            return None;
        }
        let Some(rest) = raw.strip_prefix('^') else {
            if raw.contains(['\r', '\n']) {
                self.report(field, "left out: a console command is one line");
                return None;
            }
            return Some(StopSpec {
                command: Some(raw.to_owned()),
                signal: None,
                timeout_seconds: 30,
            });
        };
        if rest == "C" || rest == "c" {
            let trapped = shell::trapped_signals(startup);
            if shell::traps(&trapped, "TERM", 15) && !shell::traps(&trapped, "INT", 2) {
                self.report(
                    field,
                    "^C stops with SIGTERM here, not SIGINT: the startup traps only SIGTERM (`trap … 15`), as Wings' docker stop sends it",
                );
                return Some(signal("SIGTERM"));
            }
            return Some(signal("SIGINT"));
        }
        let upper = rest.to_ascii_uppercase();
        if matches!(upper.as_str(), "SIGTERM" | "SIGINT" | "SIGABRT") {
            return Some(signal(&upper));
        }
        self.report(
            field,
            format!(
                "{raw:?} names no signal Wings sends (^C, ^SIGINT, ^SIGTERM, ^SIGABRT): SIGKILL, as Wings does, so the game cannot save"
            ),
        );
        Some(signal("SIGKILL"))
    }

    fn ready(&mut self, startup: &Option<Json>) -> Option<ReadySpec> {
        let field = "config.startup";
        let value = match Egg::config_json(startup) {
            Ok(v) => v,
            Err(e) => {
                self.report(field, format!("left out: not JSON ({e})"));
                return None;
            }
        };
        let Some(value) = value else {
            self.report(
                format!("{field}.done"),
                "no ready lines: the server counts as running once its process starts",
            );
            return None;
        };
        let Json::Object(entries) = &value else {
            self.report(
                field,
                format!("left out: {} instead of an object", value.kind()),
            );
            return None;
        };
        let mut lines = Vec::new();
        let mut strip_ansi = false;
        for (key, v) in entries {
            match (key.as_str(), v) {
                ("done", Json::String(s)) => lines.push(s.clone()),
                ("done", Json::Array(list)) => {
                    for item in list {
                        match item {
                            Json::String(s) => lines.push(s.clone()),
                            other => self.report(
                                format!("{field}.done"),
                                format!("{other} left out: not text"),
                            ),
                        }
                    }
                }
                ("done", Json::Null) => {}
                ("done", other) => self.report(
                    format!("{field}.done"),
                    format!("left out: {} instead of text or a list", other.kind()),
                ),
                ("strip_ansi", Json::Bool(b)) => strip_ansi = *b,
                ("strip_ansi", Json::Null) => {}
                ("strip_ansi", other) => self.report(
                    format!("{field}.strip_ansi"),
                    format!("{other} is not a boolean: ANSI codes are kept"),
                ),
                (other, _) => self.report(
                    format!("{field}.{other}"),
                    "left out: Catalyst reads only done and strip_ansi",
                ),
            }
        }
        let mut kept = Vec::new();
        for line in lines {
            let bad = match line.strip_prefix("regex:") {
                Some(re) => log_pattern(re).err(),
                None if line.is_empty() => Some("an empty text would match every line".into()),
                None => None,
            };
            match bad {
                Some(e) => self.report(format!("{field}.done"), format!("{line:?} left out: {e}")),
                None => kept.push(line),
            }
        }
        if kept.is_empty() {
            return None;
        }
        Some(ReadySpec {
            log_pattern: None,
            lines: kept,
            strip_ansi,
        })
    }

    fn config_files(&mut self, files: &Option<Json>) -> Vec<ConfigFile> {
        let value = match Egg::config_json(files) {
            Ok(Some(v)) => v,
            Ok(None) => return Vec::new(),
            Err(e) => {
                self.report("config.files", format!("left out: not JSON ({e})"));
                return Vec::new();
            }
        };
        let Json::Object(entries) = value else {
            self.report(
                "config.files",
                format!("left out: {} instead of an object", value.kind()),
            );
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|(path, spec)| self.config_file(path, spec))
            .collect()
    }

    fn config_file(&mut self, path: &str, spec: &Json) -> Option<ConfigFile> {
        let field = format!("config.files[{path}]");
        if path.is_empty()
            || path.starts_with('/')
            || path.contains('\0')
            || path.split('/').any(|s| s == "..")
        {
            self.report(
                &field,
                "left out: the path must be relative and stay inside the data directory",
            );
            return None;
        }
        let parser_name = spec.get("parser").and_then(Json::as_str).unwrap_or("");
        let parser = match parser_name {
            "properties" => ConfigParser::Properties,
            "ini" => ConfigParser::Ini,
            "json" => ConfigParser::Json,
            "yaml" | "yml" => ConfigParser::Yaml,
            "xml" => ConfigParser::Xml,
            "file" => ConfigParser::File,
            other => {
                self.report(
                    &field,
                    format!("left out: unknown parser {other:?} (known: properties, ini, json, yaml, xml, file)"),
                );
                return None;
            }
        };
        let entries = match spec.get("find") {
            Some(Json::Object(e)) if !e.is_empty() => e,
            _ => {
                self.report(&field, "left out: no find entries, nothing to edit");
                return None;
            }
        };
        let mut replace = Vec::new();
        for (key, value) in entries {
            let kf = format!("{field}.find[{key}]");
            if key.is_empty() {
                self.report(&kf, "left out: an empty key");
                continue;
            }
            match value {
                Json::Object(pairs) if pairs.is_empty() => {
                    self.report(&kf, "left out: an empty object");
                }
                Json::Object(pairs) => {
                    for (if_value, v) in pairs {
                        if let Some(r) = self.replace(&kf, parser, key, Some(if_value), v) {
                            replace.push(r);
                        }
                    }
                }
                v => {
                    if let Some(r) = self.replace(&kf, parser, key, None, v) {
                        replace.push(r);
                    }
                }
            }
        }
        if replace.is_empty() {
            self.report(&field, "left out: none of its edits could be converted");
            return None;
        }
        Some(ConfigFile {
            path: path.to_owned(),
            parser,
            replace,
        })
    }

    fn replace(
        &mut self,
        field: &str,
        parser: ConfigParser,
        key: &str,
        if_value: Option<&str>,
        value: &Json,
    ) -> Option<ConfigReplace> {
        let value = match value {
            Json::Bool(b) => ConfigValue::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => ConfigValue::Int(i),
                None => ConfigValue::String(n.to_string()),
            },
            Json::String(s) => {
                for (k, p) in placeholders::find(s) {
                    if let Placeholder::Unsupported(_) = p {
                        self.report(
                            field,
                            format!("{{{{{k}}}}} has no value in Catalyst: it becomes empty"),
                        );
                    }
                }
                ConfigValue::String(s.clone())
            }
            other => {
                self.report(field, format!("left out: {} is not a value", other.kind()));
                return None;
            }
        };
        if let Some(iv) = if_value {
            if let Some(re) = iv.strip_prefix("regex:") {
                if let Err(e) = log_pattern(re) {
                    self.report(field, format!("left out: ifValue {iv:?}: {e}"));
                    return None;
                }
            }
            match parser {
                ConfigParser::Ini | ConfigParser::Xml | ConfigParser::File => {
                    self.report(
                        field,
                        format!("the condition {iv:?} left out: Wings ignores it for the {} parser, so the value is always set, as there", parser_name(parser)),
                    );
                    return Some(ConfigReplace {
                        match_: key.to_owned(),
                        if_value: None,
                        value,
                    });
                }
                ConfigParser::Properties if iv.starts_with("regex:") => self.report(
                    field,
                    format!("the condition {iv:?} is a regular expression in Catalyst; Wings compares it as plain text (so it never matches there)"),
                ),
                _ => {}
            }
        }
        Some(ConfigReplace {
            match_: key.to_owned(),
            if_value: if_value.map(str::to_owned),
            value,
        })
    }

    fn config_rest(&mut self, egg: &Egg) {
        match Egg::config_json(&egg.config.logs) {
            Ok(None) => {}
            Ok(Some(v)) => self.report(
                "config.logs",
                format!("{v} left out: deprecated in Pterodactyl and ignored by Wings; Catalyst keeps the console output itself"),
            ),
            Err(e) => self.report("config.logs", format!("left out: not JSON ({e})")),
        }
        match &egg.config.extends {
            None | Some(Json::Null) => {}
            Some(Json::String(s)) if s.trim().is_empty() => {}
            Some(v) => self.report(
                "config.extends",
                format!("{v} left out: Catalyst has no egg inheritance; copy the parent egg's config.files, startup and stop into this one"),
            ),
        }
    }

    fn denylist(&mut self, egg: &Egg) -> Vec<String> {
        let mut kept = Vec::new();
        for (i, line) in egg.file_denylist.iter().flatten().enumerate() {
            if line.trim().is_empty() || line.len() > 1024 || line.contains(['\0', '\n', '\r']) {
                self.report(
                    format!("file_denylist[{i}]"),
                    "left out: one gitignore pattern per entry (not empty, one line, at most 1024 bytes)",
                );
            } else {
                kept.push(line.clone());
            }
        }
        if !kept.is_empty() {
            self.report(
                "file_denylist",
                "kept as fileDenylist: the file manager and SFTP refuse these files",
            );
        }
        kept
    }
}

fn parser_name(p: ConfigParser) -> &'static str {
    match p {
        ConfigParser::Properties => "properties",
        ConfigParser::Ini => "ini",
        ConfigParser::Json => "json",
        ConfigParser::Yaml => "yaml",
        ConfigParser::Xml => "xml",
        ConfigParser::File => "file",
    }
}

/// Splits a rules string at `|` as the Template's rule parser does: a `|` inside a `regex:` (or
/// `not_regex:`) pattern's delimiters does not split it. Linear in the length of `s`.
pub(crate) fn split_rules(s: &str) -> Vec<&str> {
    crate::template::rules::split(s)
}
