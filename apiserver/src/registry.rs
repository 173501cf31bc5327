//! Object operations over the store: admission, server-set metadata, generation, finalizers,
//! status subresource, lifecycle checks, selectors and paging. HTTP-free; `http.rs` calls it.

use std::sync::Arc;

use base64::Engine;
use catalyst_schemas::{lifecycle, KindInfo, API_VERSION};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::codec;
use crate::error::{ApiError, ApiResult};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{KeyValue, ListOptions, Revision, Store, StoreError};

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Metadata and spec; status is kept.
    Main,
    /// Status only.
    Status,
}

/// Where an object lives.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Its kind.
    pub kind: &'static KindInfo,
    /// Its namespace (namespaced kinds), or `None` for every namespace / cluster scope.
    pub namespace: Option<&'a str>,
}

impl Scope<'_> {
    /// The store key of `name`.
    pub fn key(&self, name: &str) -> String {
        match (self.kind.namespaced, self.namespace) {
            (true, Some(ns)) => format!("/{}/{ns}/{name}", self.kind.plural),
            _ => format!("/{}/{name}", self.kind.plural),
        }
    }

    /// The store prefix of every object in the scope.
    pub fn prefix(&self) -> String {
        match (self.kind.namespaced, self.namespace) {
            (true, Some(ns)) => format!("/{}/{ns}/", self.kind.plural),
            _ => format!("/{}/", self.kind.plural),
        }
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::NotFound {
            kind: self.kind.plural.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Labels the objects must match.
    pub labels: LabelSelector,
    /// Fields the objects must match.
    pub fields: FieldSelector,
    /// At most this many items.
    pub limit: Option<usize>,
    /// The token of the previous page.
    pub continue_token: Option<String>,
    /// Read at this revision (for a first page).
    pub revision: Option<Revision>,
}

/// A page of objects.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// The objects, with their resourceVersions.
    pub items: Vec<Value>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// The token for the next page, if there is one.
    pub continue_token: Option<String>,
}

impl ListResult {
    /// The `<Kind>List` object.
    pub fn to_value(&self, kind: &KindInfo) -> Value {
        let mut meta = json!({"resourceVersion": self.revision.to_string()});
        if let Some(c) = &self.continue_token {
            meta["continue"] = c.clone().into();
        }
        json!({
            "apiVersion": API_VERSION,
            "kind": format!("{}List", kind.kind),
            "metadata": meta,
            "items": self.items,
        })
    }
}

/// How a write ended.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as stored (or as it would be, on a dry run).
    pub object: Value,
    /// False when nothing changed and nothing was written.
    pub changed: bool,
}

/// The object operations.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.store.backend())
            .finish()
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The metadata map of an object (created if absent).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of the metadata.
pub fn meta_str<'v>(obj: &'v Value, field: &str) -> Option<&'v str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Decodes stored bytes and sets `metadata.resourceVersion` from the revision.
pub fn from_kv(kv: &KeyValue) -> ApiResult<Value> {
    let mut obj = codec::decode(&kv.value).map_err(|e| ApiError::Internal(e.to_string()))?;
    meta_mut(&mut obj).insert("resourceVersion".into(), kv.mod_revision.to_string().into());
    Ok(obj)
}

fn to_bytes(obj: &Value) -> ApiResult<Vec<u8>> {
    let mut stored = obj.clone();
    meta_mut(&mut stored).remove("resourceVersion");
    codec::encode(&stored).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Parses a resourceVersion string.
pub fn parse_revision(rv: &str) -> ApiResult<Revision> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}")))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rev: Revision,
    after: String,
}

fn encode_continue(rev: Revision, after: &str) -> String {
    let json = serde_json::to_vec(&ContinueToken {
        rev,
        after: after.to_owned(),
    })
    .expect("token encodes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::BadRequest("invalid continue token".into()))
}

fn invalid(kind: &KindInfo, name: &str, e: catalyst_schemas::ValidationError) -> ApiError {
    ApiError::Invalid {
        kind: kind.kind.to_owned(),
        name: name.to_owned(),
        source: e,
    }
}

fn admit(kind: &KindInfo, obj: Value) -> ApiResult<Value> {
    let name = meta_str(&obj, "name").unwrap_or("").to_owned();
    (kind.admit)(obj).map_err(|e| invalid(kind, &name, e))
}

/// Checks a GameServer status write against the lifecycle table.
fn check_transition(kind: &KindInfo, old: &Value, new: &Value) -> ApiResult<()> {
    if kind.kind != "GameServer" {
        return Ok(());
    }
    let phase = |v: &Value| -> lifecycle::Phase {
        v.pointer("/status/phase")
            .cloned()
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default()
    };
    let (from, to) = (phase(old), phase(new));
    if lifecycle::can_move(from, to) {
        Ok(())
    } else {
        Err(ApiError::Conflict {
            message: format!("GameServer status.phase cannot move from {from} to {to}: the lifecycle has no such transition"),
            causes: vec![catalyst_schemas::Cause {
                field: "status.phase".into(),
                message: format!("{from} -> {to} is not a lifecycle transition"),
            }],
        })
    }
}

impl Registry {
    /// Object operations over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// One object.
    pub async fn get(&self, scope: Scope<'_>, name: &str) -> ApiResult<Value> {
        let kv = self.get_kv(scope, name).await?;
        from_kv(&kv)
    }

    async fn get_kv(&self, scope: Scope<'_>, name: &str) -> ApiResult<KeyValue> {
        self.store
            .get(&scope.key(name))
            .await
            .map_err(|e| ApiError::from_store(e, scope.kind.plural, name))?
            .ok_or_else(|| scope.not_found(name))
    }

    /// Objects of a scope, filtered and paged.
    pub async fn list(&self, scope: Scope<'_>, req: &ListRequest) -> ApiResult<ListResult> {
        let (mut revision, mut after) = match &req.continue_token {
            Some(token) => {
                let t = decode_continue(token)?;
                (Some(t.rev), Some(t.after))
            }
            None => (req.revision, None),
        };
        let prefix = scope.prefix();
        let mut items = Vec::new();
        // Filtering happens here, so a page may take several store pages; a continue token is
        // handed out only when another matching object exists.
        loop {
            let page = self
                .store
                .list(
                    &prefix,
                    &ListOptions {
                        revision,
                        limit: req.limit.map(|l| l.saturating_sub(items.len()).max(64)),
                        start_after: after.clone(),
                    },
                )
                .await
                .map_err(|e| ApiError::from_store(e, scope.kind.plural, ""))?;
            let rev = page.revision;
            revision = Some(rev);
            for kv in &page.items {
                let obj = from_kv(kv)?;
                let labels = obj
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if !(req.labels.matches(&labels) && req.fields.matches(&obj)) {
                    after = Some(kv.key.clone());
                    continue;
                }
                if req.limit.is_some_and(|l| items.len() >= l) {
                    // a match beyond the limit: the next page starts after the last item
                    let token = items
                        .last()
                        .and_then(|o| scope_key_of(scope, o))
                        .map(|k| encode_continue(rev, &k));
                    return Ok(ListResult {
                        items,
                        revision: rev,
                        continue_token: token,
                    });
                }
                after = Some(kv.key.clone());
                items.push(obj);
            }
            if !page.more {
                return Ok(ListResult {
                    items,
                    revision: rev,
                    continue_token: None,
                });
            }
        }
    }

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
        if dry_run {
            return Ok(Written {
                object: obj,
                changed: true,
            });
        }
        let rev = self
            .store
            .create(&scope.key(&name), &to_bytes(&obj)?)
            .await
            .map_err(|e| ApiError::from_store(e, kind.plural, &name))?;
        meta_mut(&mut obj).insert("resourceVersion".into(), rev.to_string().into());
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
            let submitted = change(&current)?;
            let next = prepare_update(kind, &current, submitted, part)?;
            if same_object(&current, &next) {
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
            let finalized = next.pointer("/metadata/deletionTimestamp").is_some()
                && next
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_none_or(|f| f.is_empty());
            let result = if finalized {
                self.store.delete(&kv.key, Some(kv.mod_revision)).await
            } else {
                self.store
                    .update(&kv.key, &to_bytes(&next)?, kv.mod_revision)
                    .await
            };
            match result {
                Ok(rev) => {
                    let mut object = next;
                    meta_mut(&mut object).insert("resourceVersion".into(), rev.to_string().into());
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
                match self
                    .store
                    .update(&kv.key, &to_bytes(&obj)?, kv.mod_revision)
                    .await
                {
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
            match self.store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) => return Ok(obj),
                Err(StoreError::Conflict { .. }) if pinned.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, kind.plural, name)),
            }
        }
        Err(keeps_changing(kind, name))
    }

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
                    let Ok(all) = registry.list(scope, &ListRequest::default()).await else {
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

/// The store key of an object of `scope`'s kind.
fn scope_key_of(scope: Scope<'_>, obj: &Value) -> Option<String> {
    let name = meta_str(obj, "name")?;
    let ns = meta_str(obj, "namespace");
    Some(
        Scope {
            kind: scope.kind,
            namespace: ns.or(scope.namespace),
        }
        .key(name),
    )
}

/// The object's apiVersion and kind must be those of the URL (when given).
fn check_type(kind: &KindInfo, obj: &Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest("the body must be an object".into()));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != kind.kind {
            return Err(ApiError::BadRequest(format!(
                "the body is a {k}, the request is for {}",
                kind.plural
            )));
        }
    }
    if let Some(v) = obj.get("apiVersion").and_then(Value::as_str) {
        if v != API_VERSION {
            return Err(ApiError::BadRequest(format!(
                "apiVersion {v:?} is not served; use {API_VERSION}"
            )));
        }
    }
    Ok(())
}

/// The object to store after a user's change: server-set metadata kept, the other part kept,
/// defaults and validation applied, generation bumped on spec changes.
fn prepare_update(
    kind: &KindInfo,
    current: &Value,
    submitted: Value,
    part: Part,
) -> ApiResult<Value> {
    let mut next = match part {
        Part::Main => {
            let mut next = submitted;
            if let Some(o) = next.as_object_mut() {
                match current.get("status") {
                    Some(s) => o.insert("status".into(), s.clone()),
                    None => o.remove("status"),
                };
            }
            next
        }
        Part::Status => {
            let mut next = current.clone();
            match submitted.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    if let Some(o) = next.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            next
        }
    };
    next["apiVersion"] = API_VERSION.into();
    next["kind"] = kind.kind.into();
    let cur_meta = current.get("metadata").cloned().unwrap_or_default();
    let meta = meta_mut(&mut next);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
    ] {
        match cur_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("resourceVersion");
    meta.remove("generateName");
    if cur_meta.get("deletionTimestamp").is_some() {
        // once deleting, finalizers may only go away
        let old: Vec<Value> = cur_meta
            .get("finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(new) = meta.get("finalizers").and_then(Value::as_array) {
            if let Some(added) = new.iter().find(|f| !old.contains(f)) {
                return Err(ApiError::Forbidden(format!(
                    "no new finalizers can be added while an object is being deleted ({added})"
                )));
            }
        }
    }
    let mut next = admit(kind, next)?;
    if next.get("spec") != current.get("spec") {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(&mut next).insert("generation".into(), (generation + 1).into());
    }
    if part == Part::Status {
        check_transition(kind, current, &next)?;
    }
    Ok(next)
}

/// True when two objects differ in nothing but their resourceVersion.
fn same_object(current: &Value, next: &Value) -> bool {
    let mut a = current.clone();
    meta_mut(&mut a).remove("resourceVersion");
    a == *next
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge(&mut t, &json!({"a": [3]}));
        assert_eq!(t, json!({"a": [3]}));
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = decode_continue(&encode_continue(42, "/gameservers/default/a")).unwrap();
        assert_eq!((t.rev, t.after.as_str()), (42, "/gameservers/default/a"));
        assert!(decode_continue("not a token").is_err());
    }

    #[test]
    fn gameserver_admission_refuses_privileged_host_ports_and_multi_line_values() {
        let kind = catalyst_schemas::lookup_kind("gameservers").expect("gameservers kind");
        let gs = json!({"apiVersion": API_VERSION, "kind": "GameServer",
            "metadata": {"name": "ssh", "namespace": "default"},
            "spec": {"image": "busybox", "variables": {"MOTD": "a\nb"}, "env": {"X": "c\rd"},
                "ports": [{"containerPort": 22, "policy": "Static", "hostPort": 22}]}});
        let Err(ApiError::Invalid { source, .. }) = admit(kind, gs) else {
            panic!("admitted");
        };
        let fields: Vec<&str> = source.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.variables[MOTD]",
                "spec.env[X]",
                "spec.ports[0].hostPort"
            ]
        );
        assert!(source.causes[2].message.contains("1024-65535"));
    }
}
