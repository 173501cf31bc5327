//! RBAC over the mirrors: the grants a user, a group or an API key holds (from ClusterRoleBindings,
//! RoleBindings and a key's own roles), memoised until a Role or binding changes, and the
//! decision for a request. An API key acts for its owner and never beyond: a request must be
//! allowed both by the key's grants and by its owner's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use catalyst_schemas::access::RoleSpec;
use catalyst_schemas::access::{ApiKeySpec, RoleBindingSpec, RoleGrant, SubjectKind, UserSpec};
use catalyst_schemas::rbac::{allowed, Attributes, Grant};
use serde_json::Value;

use super::mirror::Mirror;

/// A User as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Its uid.
    pub uid: String,
    /// Its spec.
    pub spec: UserSpec,
}

/// An ApiKey as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Its uid.
    pub uid: String,
    /// Its spec.
    pub spec: ApiKeySpec,
}

/// A RoleBinding (namespace set) or ClusterRoleBinding (none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingEntry {
    /// The RoleBinding's namespace.
    pub namespace: Option<String>,
    /// Its spec.
    pub spec: RoleBindingSpec,
}

fn spec_of<T: serde::de::DeserializeOwned>(obj: &Value) -> Option<T> {
    obj.get("spec")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
}

fn uid(obj: &Value) -> String {
    catalyst_schemas::object::uid_of(obj)
        .unwrap_or_default()
        .to_owned()
}

/// Projection of a User.
pub fn user_entry(obj: &Value) -> Option<UserEntry> {
    Some(UserEntry {
        uid: uid(obj),
        spec: spec_of(obj)?,
    })
}

/// Projection of an ApiKey.
pub fn key_entry(obj: &Value) -> Option<KeyEntry> {
    Some(KeyEntry {
        uid: uid(obj),
        spec: spec_of(obj)?,
    })
}

/// Projection of a Role.
pub fn role_entry(obj: &Value) -> Option<RoleSpec> {
    spec_of(obj)
}

/// Projection of a RoleBinding or ClusterRoleBinding.
pub fn binding_entry(obj: &Value) -> Option<BindingEntry> {
    Some(BindingEntry {
        namespace: catalyst_schemas::object::namespace_of(obj).map(str::to_owned),
        spec: spec_of(obj)?,
    })
}

/// Grants as of one generation of roles, bindings and keys: by subject kind and name (with
/// the groups they were made for), and each key's own grants.
#[derive(Debug, Default)]
struct Memo {
    generation: u64,
    bound: HashMap<SubjectKind, HashMap<String, Bound>>,
    keys: HashMap<String, Arc<Vec<Grant>>>,
    entries: usize,
}

/// A subject's grants and the groups they were made for.
type Bound = (Vec<String>, Arc<Vec<Grant>>);

/// Memoised grants at most; past it the memo starts over.
const MEMO_KEPT: usize = 100_000;

impl Memo {
    /// The memo for `generation`, emptied when it is another.
    fn at(&mut self, generation: u64) -> &mut Self {
        if self.generation != generation || self.entries >= MEMO_KEPT {
            *self = Memo {
                generation,
                ..Memo::default()
            };
        }
        self
    }
}

/// The RBAC mirrors and the memo of grants.
#[derive(Debug)]
pub struct Rbac {
    /// Users by name.
    pub users: Arc<Mirror<UserEntry>>,
    /// API keys by name.
    pub keys: Arc<Mirror<KeyEntry>>,
    /// Roles by name.
    pub roles: Arc<Mirror<RoleSpec>>,
    /// RoleBindings by `ns/name`.
    pub bindings: Arc<Mirror<BindingEntry>>,
    /// ClusterRoleBindings by name.
    pub cluster_bindings: Arc<Mirror<BindingEntry>>,
    memo: Mutex<Memo>,
}

impl Rbac {
    /// Over these mirrors.
    pub fn new(
        users: Arc<Mirror<UserEntry>>,
        keys: Arc<Mirror<KeyEntry>>,
        roles: Arc<Mirror<RoleSpec>>,
        bindings: Arc<Mirror<BindingEntry>>,
        cluster_bindings: Arc<Mirror<BindingEntry>>,
    ) -> Self {
        Self {
            users,
            keys,
            roles,
            bindings,
            cluster_bindings,
            memo: Mutex::new(Memo {
                generation: u64::MAX,
                ..Memo::default()
            }),
        }
    }

    /// Changes so far of what grants are made of (roles, bindings, keys): the counters only
    /// grow, so any change moves their sum.
    fn generation(&self) -> u64 {
        self.roles
            .generation()
            .wrapping_add(self.bindings.generation())
            .wrapping_add(self.cluster_bindings.generation())
            .wrapping_add(self.keys.generation())
    }

    fn grant_of(&self, role: &str, namespace: Option<&str>, names: &[String]) -> Option<Grant> {
        self.roles
            .get(role)
            .map(|spec| Grant::new(&spec, namespace, names))
    }

    /// What bindings give `kind`/`name` (and, for users, their `groups`).
    pub fn bound_grants(
        &self,
        kind: SubjectKind,
        name: &str,
        groups: &[String],
    ) -> Arc<Vec<Grant>> {
        let generation = self.generation();
        {
            let mut memo = self.memo.lock().expect("memo lock");
            let known = memo
                .at(generation)
                .bound
                .get(&kind)
                .and_then(|m| m.get(name))
                .filter(|(g, _)| g.as_slice() == groups);
            if let Some((_, grants)) = known {
                return grants.clone();
            }
        }
        let names_me = |b: &BindingEntry| {
            b.spec.subjects.iter().any(|s| {
                (s.kind == kind && s.name == name)
                    || (s.kind == SubjectKind::Group && groups.contains(&s.name))
            })
        };
        let mut grants = Vec::new();
        for b in self
            .cluster_bindings
            .values()
            .into_iter()
            .chain(self.bindings.values())
        {
            if names_me(&b) {
                if let Some(g) = self.grant_of(
                    &b.spec.role_ref,
                    b.namespace.as_deref(),
                    &b.spec.resource_names,
                ) {
                    grants.push(g);
                }
            }
        }
        let grants = Arc::new(grants);
        let mut memo = self.memo.lock().expect("memo lock");
        if memo.generation == generation {
            memo.entries += 1;
            memo.bound
                .entry(kind)
                .or_default()
                .insert(name.to_owned(), (groups.to_vec(), grants.clone()));
        }
        grants
    }

    /// The grants a key's own roles carry.
    pub fn key_grants(&self, roles: &[RoleGrant]) -> Vec<Grant> {
        roles
            .iter()
            .filter_map(|r| self.grant_of(&r.role, r.namespace.as_deref(), &r.resource_names))
            .collect()
    }

    /// The grants of a user by name (with the groups of their User object).
    pub fn user_grants(&self, user: &str) -> Arc<Vec<Grant>> {
        match self.users.get(user) {
            Some(u) => self.bound_grants(SubjectKind::User, user, &u.spec.groups),
            None => self.bound_grants(SubjectKind::User, user, &[]),
        }
    }

    /// Every grant an API key holds by itself (its roles and bindings naming it), without the
    /// owner's limit.
    pub fn key_own_grants(&self, key: &str, spec: &ApiKeySpec) -> Vec<Grant> {
        let mut grants = self.key_grants(&spec.roles);
        grants.extend(
            self.bound_grants(SubjectKind::ApiKey, key, &[])
                .iter()
                .cloned(),
        );
        grants
    }

    /// [`Rbac::key_own_grants`] of the key in the mirror, memoised.
    fn key_memo(&self, key: &str) -> Option<Arc<Vec<Grant>>> {
        let generation = self.generation();
        if let Some(g) = self
            .memo
            .lock()
            .expect("memo lock")
            .at(generation)
            .keys
            .get(key)
        {
            return Some(g.clone());
        }
        let entry = self.keys.get(key)?;
        let grants = Arc::new(self.key_own_grants(key, &entry.spec));
        let mut memo = self.memo.lock().expect("memo lock");
        if memo.generation == generation {
            memo.entries += 1;
            memo.keys.insert(key.to_owned(), grants.clone());
        }
        Some(grants)
    }

    /// Whether user `name` with `groups` may do `a`.
    pub fn user_may(&self, name: &str, groups: &[String], a: &Attributes) -> bool {
        allowed(&self.bound_grants(SubjectKind::User, name, groups), a)
    }

    /// Whether API key `key` of `owner` may do `a`: its grants and its owner's both allow it.
    pub fn key_may(&self, key: &str, owner: &str, a: &Attributes) -> bool {
        self.key_memo(key).is_some_and(|grants| allowed(&grants, a))
            && allowed(&self.user_grants(owner), a)
    }
}
