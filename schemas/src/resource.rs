//! The `Resource` trait every kind implements, the table of kinds, and admission of untyped
//! objects (decode → default → validate).

use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Serialize};

use crate::meta::{self, ObjectMeta, API_VERSION};
use crate::validation::{Cause, Causes, FieldPath, ValidationError};

/// Defaulting and validation of a spec or status.
pub trait Validate {
    /// Fills fields the user may leave out. Runs before `validate`.
    fn default_fields(&mut self) {}
    /// Records every problem, each with its field path under `path`.
    fn validate(&self, path: &FieldPath, causes: &mut Causes);
}

/// A kind of the `catalyst.dev` API.
pub trait Resource:
    Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static
{
    /// `GameServer`.
    const KIND: &'static str;
    /// `gameservers`, the path segment.
    const PLURAL: &'static str;
    /// `gameserver`.
    const SINGULAR: &'static str;
    /// `gs`.
    const SHORT_NAMES: &'static [&'static str];
    /// True for namespaced kinds, false for cluster-scoped ones.
    const NAMESPACED: bool;
    /// The syntax rule for names of this kind.
    const NAME_RULE: fn(&str) -> Result<(), String>;

    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;
    /// The object's metadata, mutable.
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    /// Fills defaults of spec and status.
    fn default_fields(&mut self);
    /// Checks apiVersion, kind, metadata, spec and status; every problem with its field path.
    fn validate(&self) -> Result<(), ValidationError>;
}

/// Declares a resource struct with the Kubernetes envelope and implements [`Resource`] for it.
macro_rules! resource {
    (
        $(#[$doc:meta])*
        $name:ident {
            spec: $spec:ty,
            status: $status:ty,
            plural: $plural:literal,
            singular: $singular:literal,
            short: [$($short:literal),*],
            namespaced: $ns:literal,
            name_rule: $rule:path $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// `catalyst.dev/v1alpha1`.
            pub api_version: String,
            #[doc = concat!("`", stringify!($name), "`.")]
            pub kind: String,
            /// Name, namespace, labels and the server-set fields.
            #[serde(default)]
            pub metadata: $crate::meta::ObjectMeta,
            /// What the user wants.
            #[serde(default)]
            pub spec: $spec,
            /// What controllers and nodelets observe.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub status: Option<$status>,
        }

        impl $name {
            /// A new object with the given name and spec.
            pub fn new(name: &str, spec: $spec) -> Self {
                Self {
                    api_version: $crate::meta::API_VERSION.to_owned(),
                    kind: stringify!($name).to_owned(),
                    metadata: $crate::meta::ObjectMeta { name: name.to_owned(), ..Default::default() },
                    spec,
                    status: None,
                }
            }
        }

        impl $crate::resource::Resource for $name {
            const KIND: &'static str = stringify!($name);
            const PLURAL: &'static str = $plural;
            const SINGULAR: &'static str = $singular;
            const SHORT_NAMES: &'static [&'static str] = &[$($short),*];
            const NAMESPACED: bool = $ns;
            const NAME_RULE: fn(&str) -> Result<(), String> = $rule;

            fn meta(&self) -> &$crate::meta::ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut $crate::meta::ObjectMeta {
                &mut self.metadata
            }

            fn default_fields(&mut self) {
                $crate::resource::Validate::default_fields(&mut self.spec);
                if let Some(status) = &mut self.status {
                    $crate::resource::Validate::default_fields(status);
                }
            }

            fn validate(&self) -> Result<(), $crate::validation::ValidationError> {
                let mut causes = $crate::validation::Causes::default();
                $crate::resource::validate_envelope::<Self>(&self.api_version, &self.kind, &self.metadata, &mut causes);
                $crate::resource::Validate::validate(&self.spec, &$crate::validation::FieldPath::root("spec"), &mut causes);
                if let Some(status) = &self.status {
                    $crate::resource::Validate::validate(status, &$crate::validation::FieldPath::root("status"), &mut causes);
                }
                causes.into_result()
            }
        }
    };
}
pub(crate) use resource;

#[doc(hidden)]
pub fn validate_envelope<R: Resource>(
    api_version: &str,
    kind: &str,
    meta: &ObjectMeta,
    causes: &mut Causes,
) {
    causes.check(
        api_version == API_VERSION,
        &FieldPath::root("apiVersion"),
        format!("must be {API_VERSION}, not {api_version:?}"),
    );
    causes.check(
        kind == R::KIND,
        &FieldPath::root("kind"),
        format!("must be {}, not {kind:?}", R::KIND),
    );
    meta::validate_meta(meta, R::NAMESPACED, R::NAME_RULE, causes);
}

/// A status type for kinds that have no status.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, JsonSchema)]
pub struct NoStatus {}

impl Validate for NoStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}

/// What the API server needs to know of a kind, without its Rust type.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// `GameServer`.
    pub kind: &'static str,
    /// `gameservers`.
    pub plural: &'static str,
    /// `gameserver`.
    pub singular: &'static str,
    /// `gs`.
    pub short_names: &'static [&'static str],
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// The syntax rule for names of this kind (a DNS label or subdomain).
    pub name_rule: fn(&str) -> Result<(), String>,
    /// Decodes, defaults and validates an untyped object; returns it re-encoded.
    pub admit: fn(serde_json::Value) -> Result<serde_json::Value, ValidationError>,
    /// The JSON Schema of the kind.
    pub schema: fn() -> schemars::Schema,
}

impl KindInfo {
    /// The entry for `R`.
    pub const fn of<R: Resource>() -> Self {
        Self {
            kind: R::KIND,
            plural: R::PLURAL,
            singular: R::SINGULAR,
            short_names: R::SHORT_NAMES,
            namespaced: R::NAMESPACED,
            name_rule: R::NAME_RULE,
            admit: admit::<R>,
            schema: schema::<R>,
        }
    }

    /// True when `name` is this kind's kind, plural, singular or a short name (case-insensitive).
    pub fn is_named(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.kind)
            || name.eq_ignore_ascii_case(self.plural)
            || name.eq_ignore_ascii_case(self.singular)
            || self
                .short_names
                .iter()
                .any(|s| name.eq_ignore_ascii_case(s))
    }
}

fn schema<R: Resource>() -> schemars::Schema {
    schemars::schema_for!(R)
}

/// Decodes `value` as an `R`, reporting a type error with the path of the field at fault.
pub fn decode<R: Resource>(value: serde_json::Value) -> Result<R, ValidationError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        ValidationError {
            causes: vec![Cause {
                field,
                message: e.into_inner().to_string(),
            }],
        }
    })
}

/// Decodes, defaults and validates `value` as an `R`; returns it re-encoded with defaults filled.
pub fn admit<R: Resource>(value: serde_json::Value) -> Result<serde_json::Value, ValidationError> {
    let mut obj: R = decode(value)?;
    obj.default_fields();
    obj.validate()?;
    serde_json::to_value(&obj)
        .map_err(|e| ValidationError::single("", format!("cannot encode object: {e}")))
}
