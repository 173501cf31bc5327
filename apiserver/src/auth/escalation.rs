//! Nobody grants what they do not hold. Writes of Roles, RoleBindings, ClusterRoleBindings and
//! ApiKeys are checked against the caller's own grants on the object as it will be stored
//! (after defaulting, merge patches and server-side apply), so every write path is covered.
//! A Schedule is a delegation too (the controller runs its tasks): who writes one must hold
//! what each task does on its GameServer.
//! The caller of the request in flight travels in a task-local set by the authentication
//! middleware; writes made in-process without one (controllers, bootstrap) are the system's.

use std::sync::Arc;

use catalyst_schemas::access::{ApiKeySpec, RoleBindingSpec, RoleSpec};
use catalyst_schemas::rbac::{covers, Attributes, Grant};
use catalyst_schemas::schedule::{ScheduleSpec, TaskAction};
use serde_json::Value;

use super::{Access, Caller};
use crate::error::ApiError;

tokio::task_local! {
    /// The caller of the request being served.
    pub static CALLER: Caller;
}

/// The caller of the request in flight, if any.
pub fn current() -> Option<Caller> {
    CALLER.try_with(Clone::clone).ok()
}

fn spec<T: serde::de::DeserializeOwned>(obj: &Value) -> Result<T, ApiError> {
    serde_json::from_value(obj.get("spec").cloned().unwrap_or(Value::Null))
        .map_err(|e| ApiError::BadRequest(format!("spec: {e}")))
}

fn refused(caller: &Caller, what: &str, why: String) -> ApiError {
    ApiError::Forbidden(format!(
        "{} {} may not {what}: {why} (nobody grants what they do not hold)",
        caller.kind(),
        caller.name()
    ))
}

/// The grants `caller` holds (an administrator: everything).
fn held(access: &Access, caller: &Caller) -> Option<Vec<Grant>> {
    let rbac = &access.rbac;
    match caller {
        Caller::Admin(_) => None,
        Caller::User { name, groups } => Some(
            rbac.bound_grants(catalyst_schemas::access::SubjectKind::User, name, groups)
                .to_vec(),
        ),
        Caller::ApiKey { name, owner } => {
            // a key holds what both it and its owner hold; covering needs both
            let own = rbac
                .keys
                .get(name)
                .map(|k| rbac.key_own_grants(name, &k.spec))
                .unwrap_or_default();
            let owner = rbac.user_grants(owner).to_vec();
            Some(
                own.into_iter()
                    .filter(|g| covers(&owner, g).is_ok())
                    .collect(),
            )
        }
        Caller::Node(_) | Caller::Join => Some(Vec::new()),
    }
}

fn check_covered(
    access: &Access,
    caller: &Caller,
    what: &str,
    wanted: &Grant,
) -> Result<(), ApiError> {
    match held(access, caller) {
        None => Ok(()),
        Some(grants) => covers(&grants, wanted).map_err(|why| refused(caller, what, why)),
    }
}

fn role(access: &Access, name: &str, field: &str) -> Result<Arc<RoleSpec>, ApiError> {
    access
        .rbac
        .roles
        .get(name)
        .ok_or_else(|| ApiError::Invalid {
            kind: "roles".into(),
            name: name.to_owned(),
            source: catalyst_schemas::ValidationError {
                causes: vec![catalyst_schemas::Cause {
                    field: field.into(),
                    message: format!("no Role named {name:?}"),
                }],
            },
        })
}

/// Checks a write of `obj` (of kind `plural`) by the caller in flight.
///
/// # Errors
/// 403 when it would grant more than the caller holds; 422 for a binding to a missing Role.
pub fn check_write(access: &Access, plural: &str, obj: &Value) -> Result<(), ApiError> {
    let caller = match current() {
        // the system and the bootstrap administrator hold everything
        None | Some(Caller::Admin(_)) => return Ok(()),
        Some(c) => c,
    };
    match plural {
        "roles" => {
            let spec: RoleSpec = spec(obj)?;
            check_covered(
                access,
                &caller,
                "write this Role",
                &Grant::new(&spec, None, &[]),
            )
        }
        "rolebindings" | "clusterrolebindings" => {
            let spec: RoleBindingSpec = spec(obj)?;
            let r = role(access, &spec.role_ref, "spec.roleRef")?;
            let ns = catalyst_schemas::object::namespace_of(obj);
            let wanted = Grant::new(&r, ns, &spec.resource_names);
            check_covered(access, &caller, "bind this Role", &wanted)
        }
        "apikeys" => {
            let spec: ApiKeySpec = spec(obj)?;
            let me = caller.user().unwrap_or_default().to_owned();
            if spec.owner != me && !matches!(caller, Caller::Admin(_)) {
                let others = Attributes::new("create", "apikeys");
                if !access.may(&caller, &others) {
                    return Err(refused(
                        &caller,
                        "make keys for others",
                        format!("spec.owner is {:?}, not {me:?}", spec.owner),
                    ));
                }
            }
            let owner_grants = match access.rbac.users.get(&spec.owner) {
                Some(_) => access.rbac.user_grants(&spec.owner).to_vec(),
                None if spec.owner == "admin" && matches!(caller, Caller::Admin(_)) => vec![],
                None => {
                    return Err(ApiError::Invalid {
                        kind: "apikeys".into(),
                        name: catalyst_schemas::object::name_of(obj).to_owned(),
                        source: catalyst_schemas::ValidationError {
                            causes: vec![catalyst_schemas::Cause {
                                field: "spec.owner".into(),
                                message: format!("no User named {:?}", spec.owner),
                            }],
                        },
                    })
                }
            };
            for (i, g) in spec.roles.iter().enumerate() {
                let field = format!("spec.roles[{i}].role");
                let r = role(access, &g.role, &field)?;
                let wanted = Grant::new(&r, g.namespace.as_deref(), &g.resource_names);
                // never more than its owner holds, nor than its maker holds
                if access.rbac.users.get(&spec.owner).is_some() {
                    covers(&owner_grants, &wanted).map_err(|why| {
                        refused(
                            &caller,
                            "make this key",
                            format!("its owner {} does not hold it: {why}", spec.owner),
                        )
                    })?;
                }
                check_covered(access, &caller, "make this key", &wanted)?;
            }
            Ok(())
        }
        "schedules" => {
            let spec: ScheduleSpec = spec(obj)?;
            let ns = catalyst_schemas::object::namespace_of(obj).unwrap_or_default();
            for (i, task) in spec.tasks.iter().enumerate() {
                let wanted = task_attributes(task.action, ns, &spec.game_server);
                if !access.may(&caller, &wanted) {
                    let res = match &wanted.subresource {
                        Some(sub) => format!("{}/{sub}", wanted.resource),
                        None => wanted.resource.clone(),
                    };
                    return Err(refused(
                        &caller,
                        "write this Schedule",
                        format!(
                            "spec.tasks[{i}] ({:?}) needs create on {res:?} in namespace {ns:?}, which you do not hold",
                            task.action
                        ),
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What a schedule task does, as the request a user would make for it.
fn task_attributes(action: TaskAction, ns: &str, game_server: &str) -> Attributes {
    let sub = match action {
        TaskAction::Backup => return Attributes::new("create", "backups").in_namespace(ns),
        TaskAction::Command => "gameservers/command",
        TaskAction::Start => "gameservers/start",
        TaskAction::Stop => "gameservers/stop",
        TaskAction::Restart => "gameservers/restart",
    };
    Attributes::new("create", sub)
        .in_namespace(ns)
        .named(game_server)
}
