//! Pterodactyl eggs (`PTDL_v1`, `PTDL_v2`) read as they are exported, for [`convert`] into
//! Catalyst Templates. Pure: bytes in, values out, no I/O.
//!
//! Eggs carry `config.files`, `config.startup` and `config.logs` as JSON *text* inside the
//! JSON; [`Egg::config_json`] parses them a second time. Objects whose order means something
//! (`docker_images`: the first is the default; `config.files` and their `find` keys) are read
//! into [`Json`], a JSON value that keeps the order of object keys.

mod convert;
mod shell;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

pub use convert::{convert, is_egg, slug, Conversion, Options, Report};

/// Why an egg cannot be converted at all (what can be left out is a [`Report`] instead).
#[derive(Debug, thiserror::Error)]
pub enum EggError {
    /// The input is not JSON, or not an egg's shape.
    #[error("not a Pterodactyl egg: {0}")]
    Json(#[from] serde_json::Error),
    /// `meta.version` is not one this converter reads.
    #[error("unsupported egg format {0:?} (meta.version): PTDL_v1 and PTDL_v2 are read")]
    Version(String),
    /// More than an egg ever holds ([`MAX_VARIABLES`] variables).
    #[error("an egg with {0} variables: at most {MAX_VARIABLES} are read")]
    TooLarge(usize),
    /// What is left after the reported omissions is still not a valid Template.
    #[error("the converted template is not valid: {0}")]
    Invalid(#[from] crate::ValidationError),
}

/// The most variables an egg may have (the Panel's own eggs have a handful; the largest
/// known, around forty).
pub const MAX_VARIABLES: usize = 256;

/// The egg formats.
pub const FORMATS: &[&str] = &["PTDL_v1", "PTDL_v2"];

/// An egg as exported by the Panel; fields Catalyst does not read are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Egg {
    /// The format and where updates come from.
    pub meta: Meta,
    /// When it was exported.
    pub exported_at: Option<String>,
    /// The egg's name.
    pub name: Option<String>,
    /// Who made it.
    pub author: Option<String>,
    /// What it is.
    pub description: Option<String>,
    /// Panel feature flags (`eula`, `java_version`, …).
    pub features: Option<Vec<String>>,
    /// v1: image references (newest first is the convention).
    pub images: Option<Vec<String>>,
    /// v1 (old exports): one image reference.
    pub image: Option<String>,
    /// v2: label → image reference, the first being the default.
    pub docker_images: Option<Json>,
    /// gitignore patterns the file manager refuses.
    pub file_denylist: Option<Vec<String>>,
    /// The command line with `{{VAR}}` placeholders.
    pub startup: Option<String>,
    /// Config-file edits, ready lines, log settings, the stop.
    pub config: EggConfig,
    /// The install script.
    pub scripts: Scripts,
    /// The variables.
    pub variables: Vec<EggVariable>,
}

/// `meta`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// `PTDL_v1` or `PTDL_v2`.
    pub version: String,
    /// Where the egg is published.
    pub update_url: Option<String>,
}

/// `config`: each of `files`, `startup` and `logs` is JSON text (or, in hand-written eggs,
/// the object itself).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EggConfig {
    /// `{path: {parser, find: {key: value}}}`.
    pub files: Option<Json>,
    /// `{done: text | [text], strip_ansi: bool}`.
    pub startup: Option<Json>,
    /// `{custom, location}` (deprecated; Wings ignores it).
    pub logs: Option<Json>,
    /// A console command, or `^C`, `^SIGTERM`, … for a signal.
    pub stop: Option<String>,
    /// Another egg whose config this one inherits.
    pub extends: Option<Json>,
}

/// `scripts`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Scripts {
    /// `scripts.installation`.
    pub installation: Option<Installation>,
}

/// `scripts.installation`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Installation {
    /// The script (CRLF in every exported egg).
    pub script: Option<String>,
    /// The image it runs in.
    pub container: Option<String>,
    /// The interpreter: `bash`, `ash`.
    pub entrypoint: Option<String>,
}

/// One variable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EggVariable {
    /// A label for people.
    pub name: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// The environment variable.
    pub env_variable: String,
    /// The default (text; numbers and null are tolerated).
    pub default_value: Option<Json>,
    /// Users may see it (a boolean, or 0/1 in old exports).
    pub user_viewable: Option<Json>,
    /// Users may change it.
    pub user_editable: Option<Json>,
    /// `required|string|max:20`, or (newer eggs) a list of rules.
    pub rules: Option<Json>,
}

impl Egg {
    /// Reads an egg.
    ///
    /// # Errors
    /// [`EggError::Json`] for text that is not JSON or not an egg's shape,
    /// [`EggError::Version`] for a `meta.version` other than [`FORMATS`].
    pub fn parse(bytes: &[u8]) -> Result<Egg, EggError> {
        let egg: Egg = serde_json::from_slice(bytes)?;
        if !FORMATS.contains(&egg.meta.version.as_str()) {
            return Err(EggError::Version(egg.meta.version));
        }
        Ok(egg)
    }

    /// A `config.*` field as JSON: its text parsed again (an object given directly is taken
    /// as is). `None` for absent, `null`, empty text, `{}` and `[]`.
    ///
    /// # Errors
    /// The text is not JSON.
    pub fn config_json(field: &Option<Json>) -> Result<Option<Json>, serde_json::Error> {
        let value = match field {
            None | Some(Json::Null) => return Ok(None),
            Some(Json::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Json::String(s)) => serde_json::from_str::<Json>(s)?,
            Some(other) => other.clone(),
        };
        Ok(match value {
            Json::Null => None,
            Json::Object(ref o) if o.is_empty() => None,
            Json::Array(ref a) if a.is_empty() => None,
            v => Some(v),
        })
    }
}

/// A JSON value whose objects keep their keys in the order written.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true`, `false`.
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(serde_json::Number),
    /// Text.
    String(String),
    /// A list.
    Array(Vec<Json>),
    /// An object, keys in order (a repeated key: the last value, at the first place).
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// A member of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(o) => o.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// What kind of value this is, for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "text",
            Json::Array(_) => "a list",
            Json::Object(_) => "an object",
        }
    }
}

impl fmt::Display for Json {
    /// Compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Number(n) => write!(f, "{n}"),
            Json::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Json::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Json::Object(o) => {
                f.write_str("{")?;
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{v}", serde_json::Value::String(k.clone()))?;
                }
                f.write_str("}")
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out: Vec<(String, Json)> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            match at.get(&k) {
                Some(&i) => out[i].1 = v,
                None => {
                    at.insert(k.clone(), out.len());
                    out.push((k, v));
                }
            }
        }
        Ok(Json::Object(out))
    }
}
