//! Requests several commands share: following a watch, merge patches, who am I.

use catalyst_schemas::KindInfo;
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;

use super::error::{CtlError, Outcome};
use super::out::Out;
use crate::client::{object_path, Client};

/// Where the server says who the caller is (`create apikey`'s default owner, `auth whoami`).
pub const WHOAMI_PATH: &str = "/auth/v1/whoami";

/// The field manager `catalystctl` writes as.
pub const FIELD_MANAGER: &str = "catalystctl";

/// `metadata.resourceVersion` of an object or list, `0` when absent.
pub fn resource_version(obj: &Value) -> String {
    catalyst_schemas::object::resource_version(obj)
        .unwrap_or(0)
        .to_string()
}

/// Follows a watch, calling `each` with every event until it returns false or the stream ends.
///
/// # Errors
/// The request's, a broken or undecodable stream, an ERROR event, and whatever `each` returns.
pub async fn follow<F>(client: &Client, path: &str, mut each: F) -> Result<(), CtlError>
where
    F: FnMut(&str, &Value) -> Result<bool, CtlError>,
{
    let resp = client.stream(path).await?;
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|source| CtlError::Stream {
            what: "watch",
            source,
        })?;
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let ev: Value = serde_json::from_slice(&line).map_err(CtlError::WatchEvent)?;
            let type_ = ev.get("type").and_then(Value::as_str).unwrap_or("");
            let object = ev.get("object").cloned().unwrap_or(Value::Null);
            if type_ == "ERROR" {
                return Err(CtlError::WatchFailed(object));
            }
            if !each(type_, &object)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Merge-patches one object (`ns` ignored for cluster-scoped kinds) and prints
/// `kind/name done`.
///
/// # Errors
/// The request's, and writing.
pub async fn patch_object(
    client: &Client,
    kind: &KindInfo,
    ns: &str,
    name: &str,
    patch: Value,
    done: &str,
    out: &mut Out,
) -> Outcome {
    let path = object_path(kind, kind.namespaced.then_some(ns), name);
    client
        .send(
            client
                .request(
                    Method::PATCH,
                    &format!("{path}?fieldManager={FIELD_MANAGER}"),
                )
                .header("Content-Type", "application/merge-patch+json")
                .json(&patch),
        )
        .await?;
    out.line(format_args!("{}/{name} {done}", kind.singular))?;
    Ok(0)
}
