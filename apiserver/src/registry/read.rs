//! Reads: one object, a filtered page of a scope, and every page of it ([`Registry::list_all`]).
//! Continue tokens carry the revision of the first page and the last key handed out.

use base64::Engine;
use serde_json::Value;

use super::object::{from_kv, meta_str};
use super::types::{ListRequest, ListResult, Registry, Scope};
use crate::error::{ApiError, ApiResult};
use crate::store::{KeyValue, ListOptions, Revision};

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

impl Registry {
    /// One object.
    pub async fn get(&self, scope: Scope<'_>, name: &str) -> ApiResult<Value> {
        let kv = self.get_kv(scope, name).await?;
        from_kv(&kv)
    }

    pub(in crate::registry) async fn get_kv(
        &self,
        scope: Scope<'_>,
        name: &str,
    ) -> ApiResult<KeyValue> {
        self.store
            .get(&scope.key(name))
            .await
            .map_err(|e| ApiError::from_store(e, scope.kind.plural, name))?
            .ok_or_else(|| scope.not_found(name))
    }

    /// Objects of a scope, filtered and paged: `req.limit` objects at most (all without a
    /// limit), read from the store [`STORE_PAGE`] keys at a time.
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
                        limit: Some(store_page(req.limit, items.len())),
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

    /// Every object of a scope that `req` selects, following continue tokens page after page
    /// (pages of `req.limit`, or one page without a limit), all read at the revision of the
    /// first page. The result has no continue token. Every in-process caller that needs a full
    /// list (watch without a resourceVersion, informers, garbage collection) uses this.
    pub async fn list_all(&self, scope: Scope<'_>, req: &ListRequest) -> ApiResult<ListResult> {
        let mut req = req.clone();
        let mut items = Vec::new();
        loop {
            let page = self.list(scope, &req).await?;
            items.extend(page.items);
            match page.continue_token {
                Some(c) => req.continue_token = Some(c),
                None => {
                    return Ok(ListResult {
                        items,
                        revision: page.revision,
                        continue_token: None,
                    })
                }
            }
        }
    }
}

/// The most one store read of a list returns; a list without a limit is read in pages of this.
pub const STORE_PAGE: usize = 500;

/// How many keys the next store read of a list asks for: what the caller's page still needs
/// (at least 64, as filters may drop some), never more than [`STORE_PAGE`].
fn store_page(limit: Option<usize>, have: usize) -> usize {
    limit
        .map_or(STORE_PAGE, |l| l.saturating_sub(have).max(64))
        .min(STORE_PAGE)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = decode_continue(&encode_continue(42, "/gameservers/default/a")).unwrap();
        assert_eq!((t.rev, t.after.as_str()), (42, "/gameservers/default/a"));
        assert!(decode_continue("not a token").is_err());
    }

    #[test]
    fn store_reads_are_bounded_pages() {
        assert_eq!(store_page(None, 0), STORE_PAGE);
        assert_eq!(store_page(None, 10_000), STORE_PAGE);
        assert_eq!(store_page(Some(10), 0), 64);
        assert_eq!(store_page(Some(300), 100), 200);
        assert_eq!(store_page(Some(100_000), 0), STORE_PAGE);
    }
}
