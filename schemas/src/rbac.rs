//! The RBAC evaluator: whether rules and grants allow a request, whether one set of grants
//! covers another (escalation), and the built-in roles. Pure: the API server gathers the grants.

use std::collections::BTreeMap;

use crate::access::{PolicyRule, Role, RoleSpec};

/// The API group of every Catalyst resource.
pub const GROUP: &str = crate::meta::GROUP;

/// The label the server puts on the roles it creates on first start.
pub const BUILTIN_LABEL: &str = "catalyst.dev/builtin";

/// What a request does, as the API server derives it from method + path + query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// `catalyst.dev`.
    pub api_group: String,
    /// The plural, e.g. `gameservers`.
    pub resource: String,
    /// E.g. `console`, `status`.
    pub subresource: Option<String>,
    /// The namespace of the request; `None` for cluster-scoped kinds and lists across namespaces.
    pub namespace: Option<String>,
    /// The object's name, when the request names one object.
    pub name: Option<String>,
}

impl Attributes {
    /// A request of `verb` on `resource` (`gameservers` or `gameservers/console`) of our group,
    /// without namespace or name.
    pub fn new(verb: &str, resource: &str) -> Self {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_owned())),
            None => (resource, None),
        };
        Self {
            verb: verb.to_owned(),
            api_group: GROUP.to_owned(),
            resource: resource.to_owned(),
            subresource,
            namespace: None,
            name: None,
        }
    }

    /// The same request in namespace `ns`.
    pub fn in_namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_owned());
        self
    }

    /// The same request on the object `name`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
}

fn resource_matches(pattern: &str, resource: &str, subresource: Option<&str>) -> bool {
    match (pattern.split_once('/'), subresource) {
        (None, _) if pattern == "*" => true,
        (None, None) => pattern == resource,
        (None, Some(_)) | (Some(_), None) => false,
        (Some((r, s)), Some(sub)) => (r == "*" || r == resource) && (s == "*" || s == sub),
    }
}

/// Whether a name restriction (`names`, empty = any) lets `a` through. A restricted rule never
/// matches a request without a name, nor `create` of a main resource (its name is not in the
/// path, so it cannot be checked before the body is); `create` of a subresource names the
/// object in the path and is matched.
fn names_allow(names: &[String], a: &Attributes) -> bool {
    if names.is_empty() {
        return true;
    }
    if a.verb == "create" && a.subresource.is_none() {
        return false;
    }
    a.name.as_ref().is_some_and(|n| names.contains(n))
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

impl PolicyRule {
    /// Whether this rule allows `a`. "*" matches any verb/group/resource; resource "gameservers"
    /// matches only the main resource, "gameservers/console" that subresource, "gameservers/*"
    /// any subresource of gameservers, "*" everything incl. subresources, "*/status" the status
    /// of everything. resourceNames (when non-empty) must contain a.name — a request without a
    /// name (list, create, watch) is NOT matched by a rule with resourceNames, except `create` on
    /// a subresource (the name is in the path then).
    pub fn allows(&self, a: &Attributes) -> bool {
        listed(&self.verbs, &a.verb)
            && listed(&self.api_groups, &a.api_group)
            && self
                .resources
                .iter()
                .any(|r| resource_matches(r, &a.resource, a.subresource.as_deref()))
            && names_allow(&self.resource_names, a)
    }
}

/// A role as bound: its rules, restricted to a namespace (None = everywhere) and to names
/// (empty = all).
#[derive(Debug, Clone)]
pub struct Grant {
    /// The role's rules.
    pub rules: Vec<PolicyRule>,
    /// The namespace of a RoleBinding (or a key's namespaced role); `None` for cluster-wide.
    pub namespace: Option<String>,
    /// The binding's resourceNames; empty: all names.
    pub resource_names: Vec<String>,
}

impl Grant {
    /// The grant of `role` in `namespace` (None: cluster-wide) on `resource_names` (empty: all).
    pub fn new(role: &RoleSpec, namespace: Option<&str>, resource_names: &[String]) -> Self {
        Self {
            rules: role.rules.clone(),
            namespace: namespace.map(str::to_owned),
            resource_names: resource_names.to_vec(),
        }
    }

    /// Whether the grant allows `a`: a namespaced grant matches only requests in its namespace
    /// (never cluster-scoped resources nor lists across namespaces); its resource names narrow
    /// the rules' own as [`PolicyRule::allows`] describes.
    pub fn allows(&self, a: &Attributes) -> bool {
        if self.namespace.is_some() && a.namespace != self.namespace {
            return false;
        }
        names_allow(&self.resource_names, a) && self.rules.iter().any(|r| r.allows(a))
    }
}

/// Whether any grant allows `a`.
pub fn allowed(grants: &[Grant], a: &Attributes) -> bool {
    grants.iter().any(|g| g.allows(a))
}

/// Whether the held resource pattern covers the wanted one. A wildcard part of `wanted` is
/// covered only by a wildcard part of `held`.
fn pattern_covers(held: &str, wanted: &str) -> bool {
    if held == "*" {
        return true;
    }
    match (held.split_once('/'), wanted.split_once('/')) {
        (None, None) => held == wanted && wanted != "*",
        (Some((hr, hs)), Some((wr, ws))) => (hr == "*" || hr == wr) && (hs == "*" || hs == ws),
        _ => false,
    }
}

/// The names two restrictions leave: `None` for all names.
fn intersect(a: &[String], b: &[String]) -> Option<Vec<String>> {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => None,
        (true, false) => Some(b.to_vec()),
        (false, true) => Some(a.to_vec()),
        (false, false) => Some(a.iter().filter(|n| b.contains(n)).cloned().collect()),
    }
}

/// One (group, resource, verb, name) a wanted rule allows.
struct Want<'a> {
    group: &'a str,
    resource: &'a str,
    verb: &'a str,
    /// `None`: every name.
    name: Option<&'a str>,
}

fn held_covers(held: &[Grant], namespace: Option<&String>, w: &Want<'_>) -> bool {
    held.iter()
        .filter(|h| h.namespace.is_none() || h.namespace.as_ref() == namespace)
        .any(|h| {
            h.rules.iter().any(|r| {
                listed(&r.api_groups, w.group)
                    && listed(&r.verbs, w.verb)
                    && r.resources.iter().any(|p| pattern_covers(p, w.resource))
                    && match (intersect(&h.resource_names, &r.resource_names), w.name) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(names), Some(n)) => names.iter().any(|m| m == n),
                    }
            })
        })
}

/// Escalation check: whether `held` covers everything `wanted` would allow (so someone holding
/// `held` may create a binding/key carrying `wanted`). Conservative: for every (apiGroup,
/// resource, verb, name-set, namespace) combination `wanted` allows, some held grant must allow
/// it; a wildcard in `wanted` is covered only by a wildcard in `held`. Returns the first rule
/// not covered (for the error message) as Err.
pub fn covers(held: &[Grant], wanted: &Grant) -> Result<(), String> {
    for (i, rule) in wanted.rules.iter().enumerate() {
        let names = intersect(&wanted.resource_names, &rule.resource_names);
        let name_list: Vec<Option<&str>> = match &names {
            None => vec![None],
            Some(list) => list.iter().map(|n| Some(n.as_str())).collect(),
        };
        for group in &rule.api_groups {
            for resource in &rule.resources {
                for verb in &rule.verbs {
                    for name in &name_list {
                        let w = Want {
                            group,
                            resource,
                            verb,
                            name: *name,
                        };
                        if !held_covers(held, wanted.namespace.as_ref(), &w) {
                            let place = match &wanted.namespace {
                                Some(ns) => format!("in namespace {ns:?}"),
                                None => "cluster-wide".to_owned(),
                            };
                            let named = name.map(|n| format!(" named {n:?}")).unwrap_or_default();
                            return Err(format!(
                                "rule {i} ({} on {}) asks {verb:?} on {resource:?} of group {group:?}{named} {place}, which you do not hold",
                                rule.verbs.join(","),
                                rule.resources.join(","),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every plural of the API; the built-in roles enumerate them where they cannot use `*`.
const ALL_PLURALS: &[&str] = &[
    "gameservers",
    "templates",
    "nodes",
    "backups",
    "restores",
    "schedules",
    "alertrules",
    "events",
    "leases",
    "users",
    "apikeys",
    "roles",
    "rolebindings",
    "clusterrolebindings",
    "quotas",
    "secrets",
];

/// What `operator` may only read.
const READ_ONLY_FOR_OPERATOR: &[&str] = &["roles", "rolebindings", "quotas"];
/// What `operator` may not touch at all.
const HIDDEN_FROM_OPERATOR: &[&str] = &["users", "apikeys", "clusterrolebindings"];
/// What `viewer` may not see.
const HIDDEN_FROM_VIEWER: &[&str] = &["users", "apikeys"];

const READ: &[&str] = &["get", "list", "watch"];

/// One ready-made subuser role: Pterodactyl's permission name, what it is for, and its rules
/// as (resources, verbs) besides the `get`, `list` and `watch` of gameservers every subuser role
/// has (bound with `resourceNames`, the lists and watches must pin one of those names).
type Subuser = (
    &'static str,
    &'static str,
    &'static [(&'static [&'static str], &'static [&'static str])],
);

/// Pterodactyl's subuser permissions mapped onto our resources. `database.*` has no
/// counterpart (Catalyst has no databases) and is left out.
pub const SUBUSER_ROLES: &[Subuser] = &[
    (
        "websocket.connect",
        "Connect to the live console and stats.",
        &[(
            &[
                "gameservers/console",
                "gameservers/logs",
                "gameservers/metrics",
            ],
            &["get"],
        )],
    ),
    (
        "control.console",
        "Read the console and send commands.",
        &[
            (&["gameservers/logs", "gameservers/console"], &["get"]),
            (&["gameservers/command"], &["create"]),
        ],
    ),
    (
        "control.start",
        "Start the server.",
        &[(&["gameservers/start"], &["create"])],
    ),
    (
        "control.stop",
        "Stop the server.",
        &[(&["gameservers/stop"], &["create"])],
    ),
    (
        "control.restart",
        "Restart the server.",
        &[(&["gameservers/restart"], &["create"])],
    ),
    (
        "user.create",
        "Add subusers (bindings; the API server checks they grant no more than the creator holds).",
        &[(&["rolebindings"], &["create"])],
    ),
    ("user.read", "See subusers.", &[(&["rolebindings"], READ)]),
    (
        "user.update",
        "Change subusers' permissions.",
        &[(&["rolebindings"], &["update", "patch"])],
    ),
    (
        "user.delete",
        "Remove subusers.",
        &[(&["rolebindings"], &["delete"])],
    ),
    (
        "file.create",
        "Create files.",
        &[(&["gameservers/files"], &["create"])],
    ),
    (
        "file.read",
        "List files.",
        &[(&["gameservers/files"], &["get"])],
    ),
    (
        "file.read-content",
        "Read files.",
        &[(&["gameservers/files", "gameservers/filecontents"], &["get"])],
    ),
    (
        "file.update",
        "Change files: write, rename, chmod.",
        &[(&["gameservers/files"], &["update", "patch"])],
    ),
    (
        "file.delete",
        "Delete files.",
        &[(&["gameservers/files"], &["delete"])],
    ),
    (
        "file.archive",
        "Make and unpack archives.",
        &[(&["gameservers/files"], &["create"])],
    ),
    (
        "file.sftp",
        "Use SFTP.",
        &[(&["gameservers/sftp"], &["get", "create"])],
    ),
    (
        "backup.create",
        "Take backups.",
        &[(&["backups"], &["create"])],
    ),
    (
        "backup.read",
        "See backups.",
        &[(&["backups"], &["get", "list"])],
    ),
    (
        "backup.delete",
        "Delete backups.",
        &[(&["backups"], &["delete"])],
    ),
    (
        "backup.download",
        "Download backups.",
        &[(&["backups/download"], &["get"])],
    ),
    (
        "backup.restore",
        "Restore backups.",
        &[(&["restores"], &["create"])],
    ),
    ("allocation.read", "See the server's ports.", &[]),
    (
        "allocation.create",
        "Add ports (field limits are the API server's job).",
        &[(&["gameservers"], &["patch"])],
    ),
    (
        "allocation.update",
        "Change ports (field limits are the API server's job).",
        &[(&["gameservers"], &["patch"])],
    ),
    (
        "allocation.delete",
        "Remove ports (field limits are the API server's job).",
        &[(&["gameservers"], &["patch"])],
    ),
    (
        "startup.read",
        "See the startup command and variables.",
        &[],
    ),
    (
        "startup.update",
        "Change startup variables (field limits are the API server's job).",
        &[(&["gameservers"], &["patch"])],
    ),
    (
        "startup.docker-image",
        "Change the image (field limits are the API server's job).",
        &[(&["gameservers"], &["patch"])],
    ),
    (
        "schedule.create",
        "Create schedules.",
        &[(&["schedules"], &["create"])],
    ),
    ("schedule.read", "See schedules.", &[(&["schedules"], READ)]),
    (
        "schedule.update",
        "Change schedules and run them now (as Pterodactyl's run-now needs schedule.update).",
        &[
            (&["schedules"], &["update", "patch"]),
            (&["schedules/run"], &["create"]),
        ],
    ),
    (
        "schedule.delete",
        "Delete schedules.",
        &[(&["schedules"], &["delete"])],
    ),
    (
        "settings.rename",
        "Rename the server: its labels and annotations (field limits are the API server's job).",
        &[(&["gameservers"], &["patch"])],
    ),
    (
        "settings.reinstall",
        "Reinstall the server.",
        &[(&["gameservers/reinstall"], &["create"])],
    ),
    (
        "activity.read",
        "See the server's events.",
        &[(&["events"], &["get", "list"])],
    ),
];

fn role(name: &str, description: &str, rules: Vec<PolicyRule>) -> Role {
    let mut r = Role::new(
        name,
        RoleSpec {
            description: Some(description.to_owned()),
            rules,
        },
    );
    r.metadata.labels = BTreeMap::from([(BUILTIN_LABEL.to_owned(), "true".to_owned())]);
    r
}

fn with_subresources(plurals: &[&str]) -> Vec<String> {
    plurals
        .iter()
        .flat_map(|p| [p.to_string(), format!("{p}/*")])
        .collect()
}

fn rule_of(resources: Vec<String>, verbs: &[&str]) -> PolicyRule {
    let mut r = PolicyRule::new(&[], verbs);
    r.resources = resources;
    r
}

/// The built-in roles, created by the server on first start (label `catalyst.dev/builtin:
/// "true"`): `admin`, `operator`, `viewer`, `billing` and one per [`SUBUSER_ROLES`] entry.
/// Subuser roles that patch gameservers allow any field; limiting which fields (startup
/// variables, ports, image) is the API server's job.
pub fn builtin_roles() -> Vec<Role> {
    let operated: Vec<&str> = ALL_PLURALS
        .iter()
        .copied()
        .filter(|p| !READ_ONLY_FOR_OPERATOR.contains(p) && !HIDDEN_FROM_OPERATOR.contains(p))
        .collect();
    let viewed: Vec<&str> = ALL_PLURALS
        .iter()
        .copied()
        .filter(|p| !HIDDEN_FROM_VIEWER.contains(p))
        .collect();
    let mut roles = vec![
        role(
            "admin",
            "Everything.",
            vec![PolicyRule {
                api_groups: vec!["*".into()],
                ..PolicyRule::new(&["*"], &["*"])
            }],
        ),
        role(
            "operator",
            "Everything in a namespace but access control: all verbs on servers, backups, schedules and the rest; roles, bindings and quotas read-only; users and API keys hidden.",
            vec![
                rule_of(with_subresources(&operated), &["*"]),
                PolicyRule::new(READ_ONLY_FOR_OPERATOR, READ),
            ],
        ),
        role(
            "viewer",
            "Reads everything but users and API keys, and server logs and metrics.",
            vec![
                rule_of(
                    viewed
                        .iter()
                        .flat_map(|p| [p.to_string(), format!("{p}/status")])
                        .collect(),
                    READ,
                ),
                PolicyRule::new(&["gameservers/logs", "gameservers/metrics"], &["get"]),
            ],
        ),
        role(
            "billing",
            "For billing hooks: create, suspend, resume and delete servers.",
            vec![
                PolicyRule::new(&["gameservers"], &["create", "delete", "get", "list", "watch"]),
                PolicyRule::new(&["gameservers/suspend", "gameservers/unsuspend"], &["create"]),
                PolicyRule::new(&["templates", "quotas"], &["get", "list"]),
            ],
        ),
    ];
    for (name, description, rules) in SUBUSER_ROLES {
        let mut all = vec![PolicyRule::new(&["gameservers"], READ)];
        all.extend(rules.iter().map(|(res, verbs)| PolicyRule::new(res, verbs)));
        roles.push(role(name, description, all));
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;

    fn builtin(name: &str) -> RoleSpec {
        builtin_roles()
            .into_iter()
            .find(|r| r.metadata.name == name)
            .unwrap_or_else(|| panic!("no built-in role {name}"))
            .spec
    }

    fn grant(name: &str, ns: Option<&str>, names: &[&str]) -> Grant {
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        Grant::new(&builtin(name), ns, &names)
    }

    fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule::new(resources, verbs)
    }

    fn a(verb: &str, resource: &str) -> Attributes {
        Attributes::new(verb, resource)
    }

    #[test]
    fn a_plain_resource_matches_only_the_main_resource() {
        let r = rule(&["gameservers"], &["get"]);
        assert!(r.allows(&a("get", "gameservers")));
        assert!(!r.allows(&a("get", "gameservers/console")));
        assert!(!r.allows(&a("get", "templates")));
        assert!(!r.allows(&a("list", "gameservers")));
    }

    #[test]
    fn a_subresource_matches_only_itself() {
        let r = rule(&["gameservers/console"], &["get"]);
        assert!(r.allows(&a("get", "gameservers/console")));
        assert!(!r.allows(&a("get", "gameservers")));
        assert!(!r.allows(&a("get", "gameservers/logs")));
        assert!(!r.allows(&a("get", "backups/console")));
    }

    #[test]
    fn plural_star_matches_every_subresource_but_not_the_main_resource() {
        let r = rule(&["gameservers/*"], &["create"]);
        assert!(r.allows(&a("create", "gameservers/restart")));
        assert!(r.allows(&a("create", "gameservers/command")));
        assert!(!r.allows(&a("create", "gameservers")));
        assert!(!r.allows(&a("create", "backups/download")));
    }

    #[test]
    fn star_matches_everything_and_star_sub_one_subresource_of_everything() {
        let all = rule(&["*"], &["*"]);
        for (v, res) in [
            ("get", "gameservers"),
            ("delete", "users"),
            ("create", "users/password"),
        ] {
            assert!(all.allows(&a(v, res)), "{v} {res}");
        }
        let status = rule(&["*/status"], &["update"]);
        assert!(status.allows(&a("update", "gameservers/status")));
        assert!(status.allows(&a("update", "nodes/status")));
        assert!(!status.allows(&a("update", "nodes")));
        assert!(!status.allows(&a("update", "nodes/logs")));
    }

    #[test]
    fn groups_must_match_unless_the_rule_says_star() {
        let mut req = a("get", "gameservers");
        req.api_group = "apps".into();
        assert!(!rule(&["*"], &["*"]).allows(&req));
        let mut any = rule(&["*"], &["*"]);
        any.api_groups = vec!["*".into()];
        assert!(any.allows(&req));
        let mut core = rule(&["*"], &["*"]);
        core.api_groups = vec![String::new()];
        req.api_group = String::new();
        assert!(core.allows(&req));
        assert!(!core.allows(&a("get", "gameservers")));
    }

    #[test]
    fn resource_names_need_a_named_request_except_subresource_creates() {
        let mut r = rule(&["gameservers", "gameservers/command"], &["*"]);
        r.resource_names = vec!["s1".into()];
        assert!(r.allows(&a("get", "gameservers").named("s1")));
        assert!(!r.allows(&a("get", "gameservers").named("s2")));
        assert!(!r.allows(&a("list", "gameservers")));
        assert!(!r.allows(&a("watch", "gameservers")));
        assert!(!r.allows(&a("create", "gameservers")));
        assert!(!r.allows(&a("create", "gameservers").named("s1")));
        assert!(r.allows(&a("create", "gameservers/command").named("s1")));
        assert!(!r.allows(&a("create", "gameservers/command").named("s2")));
    }

    #[test]
    fn a_namespaced_grant_matches_only_its_namespace() {
        let g = grant("operator", Some("shop"), &[]);
        assert!(g.allows(&a("delete", "gameservers").in_namespace("shop").named("x")));
        assert!(!g.allows(&a("delete", "gameservers").in_namespace("other").named("x")));
        assert!(
            !g.allows(&a("list", "gameservers")),
            "list across namespaces"
        );
        assert!(
            !g.allows(&a("get", "nodes").named("node-a")),
            "cluster-scoped"
        );
        let cluster = grant("operator", None, &[]);
        assert!(cluster.allows(&a("get", "nodes").named("node-a")));
        assert!(cluster.allows(&a("list", "gameservers")));
    }

    #[test]
    fn grant_names_intersect_with_the_rules_names() {
        let g = grant("control.console", Some("shop"), &["s1"]);
        let req = |v: &str, r: &str, n: &str| a(v, r).in_namespace("shop").named(n);
        assert!(g.allows(&req("get", "gameservers", "s1")));
        assert!(g.allows(&req("create", "gameservers/command", "s1")));
        assert!(!g.allows(&req("create", "gameservers/command", "s2")));
        assert!(!g.allows(&a("list", "gameservers").in_namespace("shop")));
        assert!(!g.allows(&req("create", "gameservers/stop", "s1")));
        let mut spec = builtin("control.console");
        spec.rules[0].resource_names = vec!["s2".into()];
        let disjoint = Grant::new(&spec, Some("shop"), &["s1".into()]);
        assert!(!disjoint.allows(&req("get", "gameservers", "s1")));
        assert!(!disjoint.allows(&req("get", "gameservers", "s2")));
        assert!(allowed(&[disjoint, g], &req("get", "gameservers", "s1")));
        assert!(!allowed(&[], &req("get", "gameservers", "s1")));
    }

    #[test]
    fn viewer_does_not_cover_admin() {
        let err = covers(&[grant("viewer", None, &[])], &grant("admin", None, &[])).unwrap_err();
        assert!(err.contains("\"*\""), "{err}");
        assert!(covers(&[grant("admin", None, &[])], &grant("viewer", None, &[])).is_ok());
        assert!(covers(&[grant("admin", None, &[])], &grant("admin", None, &[])).is_ok());
    }

    #[test]
    fn operator_in_one_namespace_does_not_cover_operator_in_another_or_cluster_wide() {
        let held = [grant("operator", Some("a"), &[])];
        assert!(covers(&held, &grant("operator", Some("a"), &[])).is_ok());
        let err = covers(&held, &grant("operator", Some("b"), &[])).unwrap_err();
        assert!(err.contains("in namespace \"b\""), "{err}");
        assert!(covers(&held, &grant("operator", None, &[])).is_err());
        assert!(covers(
            &[grant("operator", None, &[])],
            &grant("operator", Some("b"), &[])
        )
        .is_ok());
    }

    #[test]
    fn operator_covers_a_friends_console_on_one_server() {
        let held = [grant("operator", Some("shop"), &[])];
        assert!(covers(&held, &grant("control.console", Some("shop"), &["s1"])).is_ok());
        assert!(covers(&held, &grant("control.console", Some("other"), &["s1"])).is_err());
    }

    #[test]
    fn named_grants_cover_only_their_names() {
        let held = [grant("control.console", Some("shop"), &["s1"])];
        assert!(covers(&held, &grant("control.console", Some("shop"), &["s1"])).is_ok());
        let err = covers(
            &held,
            &grant("control.console", Some("shop"), &["s1", "s2"]),
        )
        .unwrap_err();
        assert!(err.contains("named \"s2\""), "{err}");
        assert!(covers(&held, &grant("control.console", Some("shop"), &[])).is_err());
        let two = [
            grant("control.console", Some("shop"), &["s1"]),
            grant("control.console", Some("shop"), &["s2"]),
        ];
        assert!(covers(&two, &grant("control.console", Some("shop"), &["s1", "s2"])).is_ok());
    }

    #[test]
    fn a_wildcard_is_not_covered_by_an_enumeration() {
        let enumerated = Grant {
            rules: vec![rule(
                &[
                    "gameservers/console",
                    "gameservers/logs",
                    "gameservers/start",
                ],
                &[
                    "get",
                    "list",
                    "watch",
                    "create",
                    "update",
                    "patch",
                    "delete",
                    "deletecollection",
                ],
            )],
            namespace: None,
            resource_names: vec![],
        };
        let wanted = |res: &[&str], verbs: &[&str]| Grant {
            rules: vec![rule(res, verbs)],
            namespace: None,
            resource_names: vec![],
        };
        assert!(covers(
            std::slice::from_ref(&enumerated),
            &wanted(&["gameservers/console"], &["get"])
        )
        .is_ok());
        assert!(covers(
            std::slice::from_ref(&enumerated),
            &wanted(&["gameservers/*"], &["get"])
        )
        .is_err());
        assert!(covers(
            std::slice::from_ref(&enumerated),
            &wanted(&["gameservers/console"], &["*"])
        )
        .is_err());
        assert!(covers(&[enumerated], &wanted(&["*/console"], &["get"])).is_err());
        let star_sub = wanted(&["gameservers/*"], &["*"]);
        assert!(covers(
            std::slice::from_ref(&star_sub),
            &wanted(&["gameservers/console"], &["get"])
        )
        .is_ok());
        assert!(covers(&[star_sub], &wanted(&["gameservers"], &["get"])).is_err());
        let status = wanted(&["*/status"], &["get"]);
        assert!(covers(
            std::slice::from_ref(&status),
            &wanted(&["nodes/status"], &["get"])
        )
        .is_ok());
        assert!(covers(&[status], &wanted(&["*/*"], &["get"])).is_err());
        let mut other_group = wanted(&["gameservers"], &["get"]);
        other_group.rules[0].api_groups = vec!["*".into()];
        assert!(covers(&[wanted(&["gameservers"], &["get"])], &other_group).is_err());
    }

    #[test]
    fn every_builtin_role_validates_and_is_labelled() {
        let roles = builtin_roles();
        for r in &roles {
            if let Err(e) = r.validate() {
                panic!("{}: {e}", r.metadata.name);
            }
            assert_eq!(r.metadata.labels[BUILTIN_LABEL], "true");
            assert!(
                r.spec
                    .rules
                    .iter()
                    .any(|rule| rule.allows(&a("get", "gameservers").named("s"))),
                "{}",
                r.metadata.name
            );
        }
        let mut names: Vec<&str> = roles.iter().map(|r| r.metadata.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), roles.len(), "duplicate role names");
        for n in [
            "admin",
            "operator",
            "viewer",
            "billing",
            "control.console",
            "file.sftp",
            "backup.restore",
            "activity.read",
        ] {
            assert!(names.contains(&n), "{n}");
        }
    }

    /// Every (verb, resource) pair the API knows, to check a role against exhaustively.
    fn every_request() -> Vec<(String, String)> {
        let subs = [
            "status",
            "logs",
            "command",
            "metrics",
            "files",
            "sftp",
            "console",
            "start",
            "stop",
            "restart",
            "suspend",
            "unsuspend",
            "reinstall",
            "password",
            "download",
        ];
        let verbs = [
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
        ];
        let mut out = Vec::new();
        for p in ALL_PLURALS {
            for v in verbs {
                out.push((v.to_owned(), p.to_string()));
                for s in subs {
                    out.push((v.to_owned(), format!("{p}/{s}")));
                }
            }
        }
        out
    }

    fn allowed_pairs(role: &str) -> Vec<(String, String)> {
        let g = grant(role, Some("shop"), &[]);
        every_request()
            .into_iter()
            .filter(|(v, r)| g.allows(&a(v, r).in_namespace("shop").named("x")))
            .collect()
    }

    #[test]
    fn billing_allows_exactly_what_it_lists() {
        let mut want: Vec<(String, String)> = [
            ("create", "gameservers"),
            ("delete", "gameservers"),
            ("get", "gameservers"),
            ("list", "gameservers"),
            ("watch", "gameservers"),
            ("create", "gameservers/suspend"),
            ("create", "gameservers/unsuspend"),
            ("get", "templates"),
            ("list", "templates"),
            ("get", "quotas"),
            ("list", "quotas"),
        ]
        .iter()
        .map(|(v, r)| (v.to_string(), r.to_string()))
        .collect();
        let mut got = allowed_pairs("billing");
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn operator_cannot_touch_access_control_and_reads_quotas() {
        let got = allowed_pairs("operator");
        let has = |v: &str, r: &str| got.contains(&(v.to_owned(), r.to_owned()));
        assert!(has("delete", "gameservers"));
        assert!(has("create", "gameservers/console"));
        assert!(has("update", "schedules"));
        assert!(has("get", "roles") && has("list", "rolebindings") && has("watch", "quotas"));
        for r in ["roles", "rolebindings", "quotas"] {
            assert!(
                !has("create", r) && !has("update", r) && !has("delete", r),
                "{r}"
            );
        }
        assert!(!got.iter().any(|(_, r)| r.starts_with("users")
            || r.starts_with("apikeys")
            || r.starts_with("clusterrolebindings")));
    }

    #[test]
    fn viewer_reads_but_never_writes_and_never_sees_users_or_keys() {
        let got = allowed_pairs("viewer");
        assert!(got
            .iter()
            .all(|(v, _)| ["get", "list", "watch"].contains(&v.as_str())));
        assert!(!got
            .iter()
            .any(|(_, r)| r.starts_with("users") || r.starts_with("apikeys")));
        for (v, r) in [
            ("get", "gameservers"),
            ("list", "backups"),
            ("get", "gameservers/logs"),
            ("get", "gameservers/metrics"),
            ("watch", "quotas"),
        ] {
            assert!(got.contains(&(v.to_owned(), r.to_owned())), "{v} {r}");
        }
        assert!(!got.contains(&("get".to_owned(), "gameservers/console".to_owned())));
        assert!(!got.contains(&("get".to_owned(), "gameservers/files".to_owned())));
    }

    #[test]
    fn subuser_roles_map_pterodactyl_permissions() {
        let table: &[(&str, &[(&str, &str)])] = &[
            (
                "control.console",
                &[
                    ("get", "gameservers"),
                    ("get", "gameservers/logs"),
                    ("create", "gameservers/command"),
                    ("get", "gameservers/console"),
                ],
            ),
            (
                "control.start",
                &[("get", "gameservers"), ("create", "gameservers/start")],
            ),
            (
                "control.stop",
                &[("get", "gameservers"), ("create", "gameservers/stop")],
            ),
            (
                "file.sftp",
                &[
                    ("get", "gameservers"),
                    ("get", "gameservers/sftp"),
                    ("create", "gameservers/sftp"),
                ],
            ),
            (
                "backup.read",
                &[
                    ("get", "gameservers"),
                    ("get", "backups"),
                    ("list", "backups"),
                ],
            ),
            (
                "backup.download",
                &[("get", "gameservers"), ("get", "backups/download")],
            ),
            (
                "startup.update",
                &[("get", "gameservers"), ("patch", "gameservers")],
            ),
            (
                "settings.reinstall",
                &[("get", "gameservers"), ("create", "gameservers/reinstall")],
            ),
            (
                "activity.read",
                &[
                    ("get", "gameservers"),
                    ("get", "events"),
                    ("list", "events"),
                ],
            ),
        ];
        for (role, want) in table {
            let mut want: Vec<(String, String)> = want
                .iter()
                .map(|(v, r)| (v.to_string(), r.to_string()))
                .collect();
            // every subuser role follows its servers: get, list and watch (names pinned)
            for verb in ["list", "watch"] {
                want.push((verb.to_string(), "gameservers".to_string()));
            }
            want.dedup();
            let mut got = allowed_pairs(role);
            want.sort();
            want.dedup();
            got.sort();
            assert_eq!(got, want, "{role}");
        }
    }
}
