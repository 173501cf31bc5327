//! Object operations over the store: admission, server-set metadata, generation, finalizers,
//! status subresource, lifecycle checks, selectors and paging. HTTP-free; the HTTP handlers and
//! the controllers call it.
//!
//! Laid out by concern: `types` (scopes, requests, results, the handle), `object` (metadata
//! and merge-patch helpers), `admission` (what a write must satisfy), `read` (get, list,
//! list every page) and `write` (create, replace, patch, delete). Dependents of deleted owners
//! are collected by the controllers (`catalyst_controllers::gc`).

mod admission;
mod object;
mod quota;
mod read;
mod secrets;
mod templates;
mod types;
mod write;

pub use object::{from_kv, merge, meta_mut, meta_str, parse_revision};
pub use secrets::{backup_object_key, SecretData, TargetError, SECRETS};
pub use templates::EditorCheck;
pub use types::{ListRequest, ListResult, Part, Registry, Scope, Term, TermReceiver, Written};
