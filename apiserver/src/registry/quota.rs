//! Quota admission: a GameServer write in a namespace with Quotas must fit each of them
//! (servers, cpu, memory, disk, host ports, allowed templates) beside the other servers there,
//! so a billing key cannot oversell. After a GameServer write, the namespace's Quotas get their
//! `status.used` recomputed.
//!
//! Two concurrent creates may both fit a nearly full quota (the check reads, then the write
//! commits); the usage in the status shows the overshoot.

use catalyst_schemas::gameserver::GameServerSpec;
use catalyst_schemas::quota::{admit_server, usage_of_spec, QuotaSpec, QuotaUsage};
use catalyst_schemas::{lookup_kind, Cause};
use serde_json::Value;

use super::object::meta_str;
use super::types::{ListRequest, Part, Registry, Scope};
use crate::error::{ApiError, ApiResult};

fn spec_of<T: serde::de::DeserializeOwned>(obj: &Value) -> Option<T> {
    serde_json::from_value(obj.get("spec")?.clone()).ok()
}

/// Whether a change of a server moves what quotas count.
fn counted_change(previous: &Value, next: &Value) -> bool {
    ["/spec/resources", "/spec/ports", "/spec/template"]
        .iter()
        .any(|p| previous.pointer(p) != next.pointer(p))
}

impl Registry {
    /// Every object of kind `plural` in `ns`.
    async fn all_in(&self, plural: &str, ns: &str) -> ApiResult<Vec<Value>> {
        let kind = lookup_kind(plural).expect("a known kind");
        let scope = Scope {
            kind,
            namespace: Some(ns),
        };
        Ok(self.list_all(scope, &ListRequest::default()).await?.items)
    }

    async fn quotas(&self, ns: &str) -> ApiResult<Vec<(String, QuotaSpec)>> {
        Ok(self
            .all_in("quotas", ns)
            .await?
            .iter()
            .filter_map(|q| Some((meta_str(q, "name")?.to_owned(), spec_of(q)?)))
            .collect())
    }

    /// What the servers of `ns` other than `except` hold.
    async fn usage(&self, ns: &str, except: Option<&str>) -> ApiResult<QuotaUsage> {
        Ok(self
            .all_in("gameservers", ns)
            .await?
            .iter()
            .filter(|s| except.is_none() || meta_str(s, "name") != except)
            .filter_map(spec_of::<GameServerSpec>)
            .fold(QuotaUsage::default(), |acc, s| acc.plus(&usage_of_spec(&s))))
    }

    /// Refuses a GameServer write (`next`, replacing `previous`) that does not fit the Quotas
    /// of its namespace.
    ///
    /// # Errors
    /// 403 naming each limit and the field at fault.
    pub(in crate::registry) async fn check_quota(
        &self,
        ns: Option<&str>,
        previous: Option<&Value>,
        next: &Value,
    ) -> ApiResult<()> {
        let Some(ns) = ns else { return Ok(()) };
        if previous.is_some_and(|p| !counted_change(p, next)) {
            return Ok(());
        }
        let quotas = self.quotas(ns).await?;
        if quotas.is_empty() {
            return Ok(());
        }
        let Some(server) = spec_of::<GameServerSpec>(next) else {
            return Ok(()); // admission has refused it already
        };
        let used = self.usage(ns, meta_str(next, "name")).await?;
        let mut causes: Vec<(String, Cause)> = Vec::new();
        for (name, spec) in &quotas {
            if let Err(c) = admit_server(spec, &used, &server) {
                causes.extend(c.into_iter().map(|c| (name.clone(), c)));
            }
        }
        if causes.is_empty() {
            return Ok(());
        }
        let text: Vec<String> = causes
            .iter()
            .map(|(q, c)| format!("{}: {} (quota {q})", c.field, c.message))
            .collect();
        Err(ApiError::Forbidden(format!(
            "exceeded quota in namespace {ns}: {}",
            text.join("; ")
        )))
    }

    /// Refuses a new Backup when the namespace holds as many as a Quota's `maxBackups`.
    ///
    /// # Errors
    /// 403 naming the limit.
    pub(in crate::registry) async fn check_backup_quota(&self, ns: Option<&str>) -> ApiResult<()> {
        let Some(ns) = ns else { return Ok(()) };
        let limits: Vec<(String, i64)> = self
            .quotas(ns)
            .await?
            .into_iter()
            .filter_map(|(name, q)| Some((name, q.max_backups?)))
            .collect();
        if limits.is_empty() {
            return Ok(());
        }
        let held = self.all_in("backups", ns).await?.len() as i64;
        match limits.iter().find(|(_, max)| held >= *max) {
            Some((name, max)) => Err(ApiError::Forbidden(format!(
                "exceeded quota in namespace {ns}: spec.maxBackups: {held} backups held, at most {max} (quota {name}); delete old ones or set a retention"
            ))),
            None => Ok(()),
        }
    }

    /// Recomputes `status.used` of every Quota of `ns` (after a GameServer write), in the
    /// background.
    pub(in crate::registry) fn refresh_quota_usage(&self, ns: Option<&str>) {
        let Some(ns) = ns.map(str::to_owned) else {
            return;
        };
        let registry = self.clone();
        tokio::spawn(async move {
            let Ok(quotas) = registry.quotas(&ns).await else {
                return;
            };
            if quotas.is_empty() {
                return;
            }
            let Ok(used) = registry.usage(&ns, None).await else {
                return;
            };
            let kind = lookup_kind("quotas").expect("quotas kind");
            let used = serde_json::to_value(&used).expect("usage encodes");
            for (name, _) in quotas {
                let patch = serde_json::json!({"status": {"used": used}});
                if let Err(e) = registry
                    .merge_patch(
                        Scope {
                            kind,
                            namespace: Some(&ns),
                        },
                        &name,
                        patch,
                        Part::Status,
                        false,
                    )
                    .await
                {
                    tracing::warn!(namespace = ns, quota = name, error = %e, "cannot update quota usage");
                }
            }
        });
    }
}
