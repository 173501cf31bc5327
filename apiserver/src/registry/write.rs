//! Writes: create, replace, merge patch, the read-change-write loop they share, and delete
//! (with finalizers). Compare-and-swap conflicts are retried unless the caller pinned a revision.

use catalyst_schemas::KindInfo;
use serde_json::Value;

use super::admission::{admit, check_type, prepare_update};
use super::object::{
    from_kv, merge, meta_mut, meta_str, now, parse_revision, same_object, to_bytes,
};
use super::secrets::{is_secret, keys_of, split, SecretData};
use super::types::{Part, Registry, Scope, Written};
use crate::error::{ApiError, ApiResult};
use crate::store::{KeyValue, Revision, StoreError, Write};

impl Registry {
    /// Creates an object from what a user sent.
    pub async fn create(
        &self,
        scope: Scope<'_>,
        mut obj: Value,
        dry_run: bool,
    ) -> ApiResult<Written> {
        let kind = scope.kind;
        check_type(kind, &obj)?;
        let meta = meta_mut(&mut obj);
        match (kind.namespaced, scope.namespace, meta.get("namespace").and_then(Value::as_str)) {
            (true, Some(url_ns), Some(body_ns)) if url_ns != body_ns => {
                return Err(ApiError::BadRequest(format!(
                    "the namespace of the object ({body_ns}) does not match the namespace of the request ({url_ns})"
                )))
            }
            (true, Some(url_ns), _) => {
                meta.insert("namespace".into(), url_ns.into());
            }
            (true, None, _) => return Err(ApiError::BadRequest("a namespaced object is created in a namespace".into())),
            (false, _, _) => {
                meta.remove("namespace");
            }
        }
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(n) => n.to_owned(),
            None => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) => {
                    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..5];
                    let n = format!("{prefix}{suffix}");
                    meta.insert("name".into(), n.clone().into());
                    n
                }
                None => String::new(), // admission reports it
            },
        };
        meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
        meta.insert("creationTimestamp".into(), now().into());
        meta.insert("generation".into(), 1.into());
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
        let mut obj = admit(kind, obj)?;
        self.check_write(kind.plural, &obj)?;
        if kind.plural == "gameservers" {
            self.check_template_variables(None, &obj).await?;
            self.check_quota(scope.namespace, None, &obj).await?;
        }
        if kind.plural == "backups" {
            self.check_backup_quota(scope.namespace).await?;
        }
        let secret = if is_secret(kind.plural) {
            split(&mut obj, &[])?
        } else {
            None
        };
        if dry_run {
            return Ok(Written {
                object: obj,
                changed: true,
            });
        }
        let uid = meta_str(&obj, "uid").unwrap_or_default().to_owned();
        if let Some(data) = &secret {
            // the values first, under the new uid: no object ever names keys without values
            self.put_secret_record(&uid, data).await?;
        }
        let (key, value) = (scope.key(&name), to_bytes(&obj)?);
        let created = self
            .write(Write::Create {
                key: &key,
                value: &value,
            })
            .await;
        if created.is_err() && secret.is_some() {
            self.remove_secret_record(&uid).await;
        }
        let rev = created.map_err(|e| ApiError::from_store(e, kind.plural, &name))?;
        meta_mut(&mut obj).insert("resourceVersion".into(), rev.to_string().into());
        if matches!(kind.plural, "gameservers" | "quotas") {
            self.refresh_quota_usage(scope.namespace);
        }
        Ok(Written {
            object: obj,
            changed: true,
        })
    }

    /// Replaces an object (or its status) with what a user sent. A `resourceVersion` in the
    /// body must be current (409 otherwise); without one the write is unconditional.
    pub async fn replace(
        &self,
        scope: Scope<'_>,
        name: &str,
        obj: Value,
        part: Part,
        dry_run: bool,
    ) -> ApiResult<Written> {
        check_type(scope.kind, &obj)?;
        if meta_str(&obj, "name").is_some_and(|n| n != name) {
            return Err(ApiError::BadRequest(format!(
                "the name of the object does not match the request ({name})"
            )));
        }
        let pinned = meta_str(&obj, "resourceVersion")
            .map(parse_revision)
            .transpose()?;
        self.update_with(scope, name, pinned, part, dry_run, |_| Ok(obj.clone()))
            .await
    }

    /// Applies an RFC 7386 JSON merge patch.
    pub async fn merge_patch(
        &self,
        scope: Scope<'_>,
        name: &str,
        patch: Value,
        part: Part,
        dry_run: bool,
    ) -> ApiResult<Written> {
        if !patch.is_object() {
            return Err(ApiError::BadRequest(
                "a merge patch is a JSON object".into(),
            ));
        }
        let pinned = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(parse_revision)
            .transpose()?;
        self.update_with(scope, name, pinned, part, dry_run, |current| {
            let mut next = current.clone();
            merge(&mut next, &patch);
            Ok(next)
        })
        .await
    }

    /// Reads, changes with `change`, checks and writes back; retries on conflicts unless the
    /// caller pinned a revision.
    pub async fn update_with<F>(
        &self,
        scope: Scope<'_>,
        name: &str,
        pinned: Option<Revision>,
        part: Part,
        dry_run: bool,
        change: F,
    ) -> ApiResult<Written>
    where
        F: Fn(&Value) -> ApiResult<Value>,
    {
        let kind = scope.kind;
        for _ in 0..16 {
            let kv = self.get_kv(scope, name).await?;
            check_pinned(&kv, pinned, kind, name)?;
            let current = from_kv(&kv)?;
            let mut submitted = change(&current)?;
            // a Secret's values leave the object here; `spec.keys` says which there are
            let secret = if is_secret(kind.plural) && part == Part::Main {
                split(&mut submitted, &keys_of(&current))?
            } else {
                None
            };
            let next = prepare_update(kind, &current, submitted, part)?;
            self.check_write(kind.plural, &next)?;
            if kind.plural == "gameservers" && part == Part::Main {
                self.check_template_variables(Some(&current), &next).await?;
                self.check_quota(scope.namespace, Some(&current), &next)
                    .await?;
            }
            let uid = meta_str(&current, "uid").unwrap_or_default().to_owned();
            // Some(the values before) when the write changes the values
            let mut before: Option<SecretData> = None;
            if let Some(data) = &secret {
                let old = self.secret_record(&uid).await?.unwrap_or_default();
                if &old != data {
                    before = Some(old);
                }
            }
            let same = same_object(&current, &next);
            if same && before.is_none() {
                return Ok(Written {
                    object: current,
                    changed: false,
                });
            }
            if dry_run {
                return Ok(Written {
                    object: next,
                    changed: true,
                });
            }
            if let (Some(data), Some(_)) = (&secret, &before) {
                self.put_secret_record(&uid, data).await?;
                if same {
                    // only the values changed: the object stays as it is
                    return Ok(Written {
                        object: current,
                        changed: true,
                    });
                }
            }
            let finalized = next.pointer("/metadata/deletionTimestamp").is_some()
                && next
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_none_or(|f| f.is_empty());
            let result = if finalized {
                self.write(Write::Delete {
                    key: &kv.key,
                    expected: Some(kv.mod_revision),
                })
                .await
            } else {
                self.write(Write::Update {
                    key: &kv.key,
                    value: &to_bytes(&next)?,
                    expected: kv.mod_revision,
                })
                .await
            };
            if let (true, Some(old)) = (result.is_err(), &before) {
                // the object was not written: nor are its values
                self.put_secret_record(&uid, old).await?;
            }
            match result {
                Ok(rev) => {
                    if finalized && is_secret(kind.plural) {
                        self.remove_secret_record(&uid).await;
                    }
                    let mut object = next;
                    meta_mut(&mut object).insert("resourceVersion".into(), rev.to_string().into());
                    let counted =
                        part == Part::Main && matches!(kind.plural, "gameservers" | "quotas");
                    if counted || finalized {
                        self.refresh_quota_usage(scope.namespace);
                    }
                    return Ok(Written {
                        object,
                        changed: true,
                    });
                }
                Err(StoreError::Conflict { .. }) if pinned.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, kind.plural, name)),
            }
        }
        Err(keeps_changing(kind, name))
    }

    /// Deletes an object: with finalizers, sets `deletionTimestamp` and waits for them; else
    /// removes it. Returns the object as it was last stored.
    pub async fn delete(
        &self,
        scope: Scope<'_>,
        name: &str,
        pinned: Option<Revision>,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let kind = scope.kind;
        for _ in 0..16 {
            let kv = self.get_kv(scope, name).await?;
            check_pinned(&kv, pinned, kind, name)?;
            let mut obj = from_kv(&kv)?;
            if kind.plural == "backups" && obj.pointer("/spec/locked") == Some(&Value::Bool(true)) {
                return Err(ApiError::Conflict {
                    message: format!(
                        "backup {name:?} is locked: set spec.locked to false before deleting it"
                    ),
                    causes: vec![catalyst_schemas::Cause {
                        field: "spec.locked".into(),
                        message: "the backup is locked".into(),
                    }],
                });
            }
            let has_finalizers = obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if has_finalizers {
                if obj.pointer("/metadata/deletionTimestamp").is_some() {
                    return Ok(obj);
                }
                meta_mut(&mut obj).insert("deletionTimestamp".into(), now().into());
                if dry_run {
                    return Ok(obj);
                }
                let update = Write::Update {
                    key: &kv.key,
                    value: &to_bytes(&obj)?,
                    expected: kv.mod_revision,
                };
                match self.write(update).await {
                    Ok(rev) => {
                        meta_mut(&mut obj).insert("resourceVersion".into(), rev.to_string().into());
                        return Ok(obj);
                    }
                    Err(StoreError::Conflict { .. }) if pinned.is_none() => continue,
                    Err(e) => return Err(ApiError::from_store(e, kind.plural, name)),
                }
            }
            if dry_run {
                return Ok(obj);
            }
            let delete = Write::Delete {
                key: &kv.key,
                expected: Some(kv.mod_revision),
            };
            match self.write(delete).await {
                Ok(_) => {
                    if is_secret(kind.plural) {
                        self.remove_secret_record(meta_str(&obj, "uid").unwrap_or_default())
                            .await;
                    }
                    if kind.plural == "gameservers" {
                        self.refresh_quota_usage(scope.namespace);
                    }
                    return Ok(obj);
                }
                Err(StoreError::Conflict { .. }) if pinned.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, kind.plural, name)),
            }
        }
        Err(keeps_changing(kind, name))
    }
}

/// A 409 when the caller pinned a revision that is no longer current.
fn check_pinned(
    kv: &KeyValue,
    pinned: Option<Revision>,
    kind: &KindInfo,
    name: &str,
) -> ApiResult<()> {
    match pinned {
        Some(p) if p != kv.mod_revision => Err(ApiError::from_store(
            StoreError::Conflict {
                key: kv.key.clone(),
                expected: p,
                current: kv.mod_revision,
            },
            kind.plural,
            name,
        )),
        _ => Ok(()),
    }
}

/// The 409 after too many lost compare-and-swap races.
fn keeps_changing(kind: &KindInfo, name: &str) -> ApiError {
    ApiError::Conflict {
        message: format!("{} {name:?} keeps changing; try again", kind.plural),
        causes: vec![],
    }
}
