//! Garbage collection: when an owner is gone, its dependents (objects whose ownerReferences
//! name its uid) are deleted in the background, and theirs in turn.

use serde_json::Value;

use super::object::meta_str;
use super::types::{ListRequest, Registry, Scope};
use crate::error::ApiError;

impl Registry {
    /// Deletes, in the background, every object whose ownerReferences name `owner_uid`, and
    /// their dependents in turn.
    pub fn collect_dependents(&self, owner_uid: String) {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut owners = vec![owner_uid];
            while let Some(uid) = owners.pop() {
                for kind in catalyst_schemas::KINDS {
                    let scope = Scope {
                        kind,
                        namespace: None,
                    };
                    let Ok(all) = registry.list_all(scope, &ListRequest::default()).await else {
                        continue;
                    };
                    for obj in all.items {
                        let owned = obj
                            .pointer("/metadata/ownerReferences")
                            .and_then(Value::as_array)
                            .is_some_and(|refs| {
                                refs.iter()
                                    .any(|r| r.get("uid").and_then(Value::as_str) == Some(&uid))
                            });
                        if !owned {
                            continue;
                        }
                        let name = meta_str(&obj, "name").unwrap_or_default().to_owned();
                        let ns = meta_str(&obj, "namespace").map(str::to_owned);
                        let scope = Scope {
                            kind,
                            namespace: ns.as_deref(),
                        };
                        match registry.delete(scope, &name, None, false).await {
                            Ok(gone) => {
                                tracing::info!(
                                    kind = kind.kind,
                                    name,
                                    "deleted dependent of a deleted owner"
                                );
                                if let Some(u) = meta_str(&gone, "uid") {
                                    owners.push(u.to_owned());
                                }
                            }
                            Err(ApiError::NotFound { .. }) => {}
                            Err(e) => {
                                tracing::warn!(kind = kind.kind, name, error = %e, "cannot delete dependent")
                            }
                        }
                    }
                }
            }
        });
    }
}
