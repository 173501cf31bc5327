//! Catalyst's resource model: the `catalyst.dev/v1alpha1` kinds, their defaulting and
//! validation, JSON Schemas, and the GameServer lifecycle. Pure data and functions: no I/O.

pub mod access;
pub mod alert;
pub mod backup;
pub mod egg;
pub mod event;
pub mod explain;
pub mod gameserver;
pub mod lifecycle;
pub mod meta;
pub mod net;
pub mod node;
pub mod object;
pub mod parse;
pub mod power;
pub mod quantity;
pub mod quota;
pub mod rbac;
pub mod resource;
pub mod schedule;
pub mod secret;
pub mod template;
pub mod tunnel;
pub mod validation;
pub mod watch;

pub use access::{
    ApiKey, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleBindingSpec, RoleGrant, Subject,
    SubjectKind, User,
};
pub use alert::AlertRule;
pub use backup::{Backup, Restore};
pub use event::{Event, Lease};
pub use gameserver::GameServer;
pub use meta::{Condition, ObjectMeta, API_VERSION};
pub use node::Node;
pub use parse::{admit, lookup_kind, parse_documents, ParseError, KINDS};
pub use quantity::Quantity;
pub use quota::{Quota, QuotaSpec, QuotaUsage};
pub use rbac::{Attributes, Grant};
pub use resource::{KindInfo, Resource};
pub use schedule::Schedule;
pub use secret::Secret;
pub use template::Template;
pub use tunnel::{Answer, TunnelAnswer, TunnelOp, TunnelRequest};
pub use validation::{Cause, ValidationError};
pub use watch::{Status, WatchEvent};
