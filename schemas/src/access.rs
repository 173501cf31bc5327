//! The access-control kinds: User, ApiKey, Role, RoleBinding and ClusterRoleBinding, with the
//! PolicyRule they are made of. What a rule allows is decided in `rbac`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resource::{resource, NoStatus, Validate};
use crate::validation::{self, Causes, FieldPath};

resource! {
    /// A person (or a script) who logs in. The password is stored apart by the server, never in
    /// the object.
    User {
        spec: UserSpec,
        status: UserStatus,
        plural: "users",
        singular: "user",
        short: ["user"],
        namespaced: false,
        name_rule: validation::dns_subdomain,
    }
}

resource! {
    /// A bearer token of a User with its own, usually narrower, roles (billing hooks, scripts).
    /// The token is shown once at creation and stored hashed by the server.
    ApiKey {
        spec: ApiKeySpec,
        status: ApiKeyStatus,
        plural: "apikeys",
        singular: "apikey",
        short: ["key"],
        namespaced: false,
        name_rule: validation::dns_subdomain,
    }
}

resource! {
    /// A named set of rules, bound to subjects by RoleBindings and ClusterRoleBindings.
    Role {
        spec: RoleSpec,
        status: NoStatus,
        plural: "roles",
        singular: "role",
        short: [],
        namespaced: false,
        name_rule: validation::dns_subdomain,
    }
}

resource! {
    /// Grants a Role to subjects inside the binding's namespace.
    RoleBinding {
        spec: RoleBindingSpec,
        status: NoStatus,
        plural: "rolebindings",
        singular: "rolebinding",
        short: ["rb"],
        namespaced: true,
        name_rule: validation::dns_subdomain,
    }
}

resource! {
    /// Grants a Role to subjects in every namespace and on cluster-scoped kinds.
    ClusterRoleBinding {
        spec: RoleBindingSpec,
        status: NoStatus,
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        short: ["crb"],
        namespaced: false,
        name_rule: validation::dns_subdomain,
    }
}

/// The verbs a rule may name.
pub const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "*",
];

/// The API groups a rule may name: ours, any, and the core group `""`.
pub const API_GROUPS: &[&str] = &["catalyst.dev", "*", ""];

/// Who a user is, apart from the password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSpec {
    /// The name shown in the panel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Contact address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Groups the user belongs to; bindings may name a Group subject.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// A disabled user cannot log in, and their API keys stop working.
    #[serde(default)]
    pub disabled: bool,
    /// SSH public keys for SFTP, one per item in OpenSSH's `authorized_keys` form
    /// (`ssh-ed25519 AAAA… comment`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
}

/// The SSH key types `spec.sshKeys` takes.
pub const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The type and base64 blob of an OpenSSH public key line (`TYPE BLOB [COMMENT]`), when it is
/// one of [`SSH_KEY_TYPES`] with a well-formed blob: what two lines must share to name the
/// same key.
pub fn ssh_key_id(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.split_whitespace();
    let (kind, blob) = (parts.next()?, parts.next()?);
    let base64 = blob.len() % 4 == 0
        && blob.len() >= 16
        && blob
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    (SSH_KEY_TYPES.contains(&kind) && base64).then_some((kind, blob))
}

/// What the server records about a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The last successful login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_time: Option<DateTime<Utc>>,
    /// The user has a TOTP second factor.
    #[serde(default)]
    pub totp_enabled: bool,
}

/// An API key's owner, roles and limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeySpec {
    /// The User the key belongs to.
    pub owner: String,
    /// What the key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The roles the key carries; empty: no rights at all.
    #[serde(default)]
    pub roles: Vec<RoleGrant>,
    /// After this time the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Requests per minute this key may make (1-100000); absent: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

/// A role carried by an API key, where it applies and on which objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleGrant {
    /// The Role's name.
    pub role: String,
    /// The namespace the role applies in; absent: cluster-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// When set, the role applies only to objects with these names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

/// What the server records about a key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyStatus {
    /// The last request made with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_time: Option<DateTime<Utc>>,
    /// The first characters of the token, to recognise it (the token itself is never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_prefix: Option<String>,
}

/// The rules of a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the role allows: a request is allowed when any rule allows it.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

/// Allows verbs on resources (and subresources) of API groups, optionally only on some names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// `catalyst.dev` (default), `*` or `""`.
    #[serde(default = "default_api_groups")]
    pub api_groups: Vec<String>,
    /// `*`, a plural (`gameservers`), `plural/sub` (`gameservers/console`), `plural/*` or
    /// `*/sub` (`*/status`).
    pub resources: Vec<String>,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection` or `*`.
    pub verbs: Vec<String>,
    /// When set, only objects with these names (requests that name no object are not allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

fn default_api_groups() -> Vec<String> {
    vec![crate::meta::GROUP.to_owned()]
}

impl PolicyRule {
    /// A rule over `catalyst.dev` with the given resources and verbs, any name.
    pub fn new(resources: &[&str], verbs: &[&str]) -> Self {
        Self {
            api_groups: default_api_groups(),
            resources: resources.iter().map(|&s| s.to_owned()).collect(),
            verbs: verbs.iter().map(|&s| s.to_owned()).collect(),
            resource_names: Vec::new(),
        }
    }

    /// Records every problem of the rule under `path`.
    pub fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.check(
            !self.api_groups.is_empty(),
            &path.child("apiGroups"),
            "must name at least one group",
        );
        for (i, g) in self.api_groups.iter().enumerate() {
            causes.check(
                API_GROUPS.contains(&g.as_str()),
                &path.child("apiGroups").index(i),
                format!("{g:?} is not an API group: use \"catalyst.dev\", \"*\" or \"\""),
            );
        }
        causes.check(
            !self.resources.is_empty(),
            &path.child("resources"),
            "must name at least one resource",
        );
        for (i, r) in self.resources.iter().enumerate() {
            causes.rule(&path.child("resources").index(i), resource_pattern(r));
        }
        causes.check(
            !self.verbs.is_empty(),
            &path.child("verbs"),
            "must name at least one verb",
        );
        for (i, v) in self.verbs.iter().enumerate() {
            causes.check(
                VERBS.contains(&v.as_str()),
                &path.child("verbs").index(i),
                format!("{v:?} is not a verb: use one of {}", VERBS.join(", ")),
            );
        }
        names(&self.resource_names, &path.child("resourceNames"), causes);
    }
}

fn plural_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_lowercase() || c == '.')
        && !s.starts_with('.')
        && !s.ends_with('.')
}

/// A rule's resource: `*`, `plural`, `plural/sub`, `plural/*` or `*/sub`; plurals and
/// subresources are lowercase letters and dots.
pub fn resource_pattern(s: &str) -> Result<(), String> {
    let ok = match s.split_once('/') {
        None => s == "*" || plural_word(s),
        Some((r, sub)) => {
            (r == "*" || plural_word(r)) && (sub == "*" || plural_word(sub)) && !sub.contains('/')
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a resource: use *, a plural (gameservers), plural/sub (gameservers/console), plural/* or */sub"
        ))
    }
}

fn names(list: &[String], path: &FieldPath, causes: &mut Causes) {
    for (i, n) in list.iter().enumerate() {
        causes.rule(&path.index(i), validation::dns_subdomain(n));
    }
}

fn one_line(s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        Err(format!("must be at most {max} characters (is {})", s.len()))
    } else if s.chars().any(char::is_control) {
        Err("must be one line without control characters".into())
    } else {
        Ok(())
    }
}

/// A group name: 1-253 characters, no whitespace or control characters.
pub fn group_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "{s:?} is not a group name: 1-253 characters without spaces"
        ))
    } else {
        Ok(())
    }
}

impl Validate for UserSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        if let Some(d) = &self.display_name {
            causes.rule(&path.child("displayName"), one_line(d, 256));
        }
        if let Some(e) = &self.email {
            let ok = one_line(e, 254).is_ok()
                && !e.contains(char::is_whitespace)
                && e.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
            causes.check(
                ok,
                &path.child("email"),
                format!("{e:?} is not an email address"),
            );
        }
        for (i, g) in self.groups.iter().enumerate() {
            let p = path.child("groups").index(i);
            causes.rule(&p, group_name(g));
            causes.check(
                !self.groups[..i].contains(g),
                &p,
                format!("{g:?} is listed twice"),
            );
        }
        causes.check(
            self.ssh_keys.len() <= 50,
            &path.child("sshKeys"),
            "at most 50 keys",
        );
        for (i, k) in self.ssh_keys.iter().enumerate() {
            let p = path.child("sshKeys").index(i);
            let ok = k.len() <= 16 * 1024 && !k.contains(['\n', '\r']) && ssh_key_id(k).is_some();
            causes.check(
                ok,
                &p,
                format!(
                    "not an OpenSSH public key line (TYPE BASE64 [COMMENT], TYPE one of {})",
                    SSH_KEY_TYPES.join(", ")
                ),
            );
        }
    }
}

impl Validate for UserStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}

impl Validate for ApiKeySpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.rule(&path.child("owner"), validation::dns_subdomain(&self.owner));
        if let Some(d) = &self.description {
            causes.rule(&path.child("description"), one_line(d, 1024));
        }
        for (i, g) in self.roles.iter().enumerate() {
            let p = path.child("roles").index(i);
            causes.rule(&p.child("role"), validation::dns_subdomain(&g.role));
            if let Some(ns) = &g.namespace {
                causes.rule(&p.child("namespace"), validation::dns_label(ns));
            }
            names(&g.resource_names, &p.child("resourceNames"), causes);
        }
        if let Some(rpm) = self.requests_per_minute {
            causes.check(
                (1..=100_000).contains(&rpm),
                &path.child("requestsPerMinute"),
                "must be between 1 and 100000",
            );
        }
    }
}

impl Validate for ApiKeyStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}

impl Validate for RoleSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        if let Some(d) = &self.description {
            causes.rule(&path.child("description"), one_line(d, 1024));
        }
        for (i, r) in self.rules.iter().enumerate() {
            r.validate(&path.child("rules").index(i), causes);
        }
    }
}

/// Who a binding grants its role to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleBindingSpec {
    /// The Role's name.
    pub role_ref: String,
    /// The users, keys, groups or nodes that get the role; at least one.
    pub subjects: Vec<Subject>,
    /// When set, the role applies only to objects with these names (e.g. one GameServer, to
    /// give a friend its console).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

/// One subject of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// User, ApiKey, Group or Node.
    pub kind: SubjectKind,
    /// The User's, ApiKey's, group's or Node's name.
    pub name: String,
}

/// What a subject names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum SubjectKind {
    /// A User.
    User,
    /// An ApiKey.
    ApiKey,
    /// Every user with the group in `spec.groups`.
    Group,
    /// A Node's nodelet.
    Node,
}

impl Validate for RoleBindingSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.rule(
            &path.child("roleRef"),
            validation::dns_subdomain(&self.role_ref),
        );
        causes.check(
            !self.subjects.is_empty(),
            &path.child("subjects"),
            "at least one subject is required",
        );
        for (i, s) in self.subjects.iter().enumerate() {
            let rule = match s.kind {
                SubjectKind::User | SubjectKind::ApiKey => validation::dns_subdomain,
                SubjectKind::Node => validation::dns_label,
                SubjectKind::Group => group_name,
            };
            causes.rule(
                &path.child("subjects").index(i).child("name"),
                rule(&s.name),
            );
        }
        names(&self.resource_names, &path.child("resourceNames"), causes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;
    use serde_json::json;

    fn fields<R: Resource>(value: serde_json::Value) -> Vec<String> {
        match crate::resource::admit::<R>(value) {
            Ok(_) => Vec::new(),
            Err(e) => e.causes.into_iter().map(|c| c.field).collect(),
        }
    }

    fn obj(kind: &str, meta: serde_json::Value, spec: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": crate::API_VERSION, "kind": kind, "metadata": meta, "spec": spec})
    }

    #[test]
    fn a_user_with_good_fields_is_admitted_and_bad_ones_are_named() {
        let good = obj(
            "User",
            json!({"name": "alice"}),
            json!({"displayName": "Alice", "email": "alice@example.org", "groups": ["staff"]}),
        );
        assert!(fields::<User>(good).is_empty());
        let bad = obj(
            "User",
            json!({"name": "Alice"}),
            json!({"displayName": "a\nb", "email": "nope", "groups": ["a b", "x", "x"]}),
        );
        assert_eq!(
            fields::<User>(bad),
            [
                "metadata.name",
                "spec.displayName",
                "spec.email",
                "spec.groups[0]",
                "spec.groups[2]"
            ]
        );
        let password = obj("User", json!({"name": "a"}), json!({"password": "x"}));
        assert_eq!(fields::<User>(password), ["spec.password"]);
    }

    #[test]
    fn an_api_key_needs_an_owner_and_a_sane_rate() {
        let good = obj(
            "ApiKey",
            json!({"name": "whmcs"}),
            json!({"owner": "alice", "roles": [{"role": "billing", "namespace": "shop"}],
                   "requestsPerMinute": 600}),
        );
        assert!(fields::<ApiKey>(good).is_empty());
        let no_roles = obj("ApiKey", json!({"name": "k"}), json!({"owner": "alice"}));
        assert!(fields::<ApiKey>(no_roles).is_empty());
        let bad = obj(
            "ApiKey",
            json!({"name": "k"}),
            json!({"owner": "Alice!", "requestsPerMinute": 0,
                   "roles": [{"role": "", "namespace": "a.b", "resourceNames": ["S1"]}]}),
        );
        assert_eq!(
            fields::<ApiKey>(bad),
            [
                "spec.owner",
                "spec.roles[0].role",
                "spec.roles[0].namespace",
                "spec.roles[0].resourceNames[0]",
                "spec.requestsPerMinute"
            ]
        );
        let too_fast = obj(
            "ApiKey",
            json!({"name": "k"}),
            json!({"owner": "a", "requestsPerMinute": 100_001}),
        );
        assert_eq!(fields::<ApiKey>(too_fast), ["spec.requestsPerMinute"]);
        let missing_owner = obj("ApiKey", json!({"name": "k"}), json!({}));
        assert_eq!(fields::<ApiKey>(missing_owner), ["spec"]);
    }

    #[test]
    fn rules_name_known_verbs_groups_and_resource_shapes() {
        let good = obj(
            "Role",
            json!({"name": "control.console"}),
            json!({"rules": [
                {"resources": ["gameservers", "gameservers/console", "gameservers/*", "*/status", "*"],
                 "verbs": ["get", "*"], "resourceNames": ["s1"]},
                {"apiGroups": ["*", ""], "resources": ["a.b"], "verbs": ["deletecollection"]}
            ]}),
        );
        assert!(fields::<Role>(good).is_empty());
        let bad = obj(
            "Role",
            json!({"name": "r"}),
            json!({"rules": [
                {"apiGroups": ["apps"], "resources": ["GameServers", "a/b/c", "/x", ""], "verbs": ["read"]},
                {"apiGroups": [], "resources": [], "verbs": []}
            ]}),
        );
        assert_eq!(
            fields::<Role>(bad),
            [
                "spec.rules[0].apiGroups[0]",
                "spec.rules[0].resources[0]",
                "spec.rules[0].resources[1]",
                "spec.rules[0].resources[2]",
                "spec.rules[0].resources[3]",
                "spec.rules[0].verbs[0]",
                "spec.rules[1].apiGroups",
                "spec.rules[1].resources",
                "spec.rules[1].verbs"
            ]
        );
    }

    #[test]
    fn api_groups_default_to_ours() {
        let admitted = crate::resource::admit::<Role>(obj(
            "Role",
            json!({"name": "r"}),
            json!({"rules": [{"resources": ["gameservers"], "verbs": ["get"]}]}),
        ))
        .unwrap();
        assert_eq!(
            admitted["spec"]["rules"][0]["apiGroups"],
            json!(["catalyst.dev"])
        );
    }

    #[test]
    fn bindings_need_a_role_and_well_named_subjects() {
        let good = json!({"roleRef": "control.console",
            "subjects": [{"kind": "User", "name": "bob"}, {"kind": "Group", "name": "system:staff"},
                         {"kind": "ApiKey", "name": "whmcs"}, {"kind": "Node", "name": "node-a"}],
            "resourceNames": ["s1"]});
        assert!(fields::<RoleBinding>(obj(
            "RoleBinding",
            json!({"name": "b", "namespace": "shop"}),
            good.clone()
        ))
        .is_empty());
        assert!(fields::<ClusterRoleBinding>(obj(
            "ClusterRoleBinding",
            json!({"name": "b"}),
            good
        ))
        .is_empty());
        let bad = json!({"roleRef": "Admin", "subjects": [], "resourceNames": ["-"]});
        assert_eq!(
            fields::<RoleBinding>(obj("RoleBinding", json!({"name": "b"}), bad)),
            ["spec.roleRef", "spec.subjects", "spec.resourceNames[0]"]
        );
        let bad_subjects = json!({"roleRef": "admin", "subjects": [
            {"kind": "Node", "name": "a.b"}, {"kind": "Group", "name": "a b"}, {"kind": "User", "name": "Bob"}]});
        assert_eq!(
            fields::<ClusterRoleBinding>(obj(
                "ClusterRoleBinding",
                json!({"name": "b"}),
                bad_subjects
            )),
            [
                "spec.subjects[0].name",
                "spec.subjects[1].name",
                "spec.subjects[2].name"
            ]
        );
        let bad_kind = json!({"roleRef": "admin", "subjects": [{"kind": "Team", "name": "x"}]});
        assert_eq!(
            fields::<RoleBinding>(obj("RoleBinding", json!({"name": "b"}), bad_kind)),
            ["spec.subjects[0].kind"]
        );
    }

    #[test]
    fn a_cluster_role_binding_has_no_namespace() {
        let spec = json!({"roleRef": "admin", "subjects": [{"kind": "User", "name": "a"}]});
        assert_eq!(
            fields::<ClusterRoleBinding>(obj(
                "ClusterRoleBinding",
                json!({"name": "b", "namespace": "x"}),
                spec
            )),
            ["metadata.namespace"]
        );
    }
}
