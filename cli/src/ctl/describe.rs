//! `describe`: an object with its metadata, spec, status, conditions and recent events, as
//! text. [`render`] is pure; [`DescribeArgs::run`] fetches and prints.

use std::fmt::Write as _;

use catalyst_schemas::{lookup_kind, KindInfo};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::error::Outcome;
use super::out::Out;
use super::target::kind_and_name;
use crate::client::{collection_path, object_path, Client};
use crate::output;

/// How many of an object's events `describe` shows: the latest.
const EVENTS_SHOWN: usize = 20;

/// Arguments of `describe`.
#[derive(Debug, Clone, clap::Args)]
pub struct DescribeArgs {
    /// KIND or KIND/NAME.
    pub kind: String,
    /// NAME.
    pub name: Option<String>,
}

impl DescribeArgs {
    /// Fetches the object and the events of its namespace (`ns` for cluster-scoped kinds) and
    /// prints [`render`]. Events that cannot be listed are left out.
    ///
    /// # Errors
    /// A bad `KIND NAME`, a failed fetch of the object, a closed stdout.
    pub async fn run(&self, client: &Client, ns: &str, out: &mut Out) -> Outcome {
        let (kind, name) = kind_and_name(&self.kind, self.name.as_deref())?;
        let obj = client.get(&object_path(kind, Some(ns), &name)).await?;
        let events_ns = if kind.namespaced {
            str_at(&obj, "/metadata/namespace").to_owned()
        } else {
            ns.to_owned()
        };
        let events = client
            .get(&collection_path(
                lookup_kind("events").expect("the Event kind"),
                Some(&events_ns),
            ))
            .await
            .ok()
            .and_then(|l| l.get("items").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        out.print(&render(kind, &obj, &events, Utc::now()))?;
        Ok(0)
    }
}

fn str_at<'v>(obj: &'v Value, pointer: &str) -> &'v str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `Title:` padded to the value column.
fn title(t: &str) -> String {
    format!("{t}:{}", " ".repeat(13usize.saturating_sub(t.len())))
}

/// The text of `describe` for `obj`, of kind `kind`: metadata, spec and status as YAML,
/// conditions as a table, and the latest of `events` that involve it (ages relative to `now`).
pub fn render(kind: &KindInfo, obj: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut text = String::new();
    let t = &mut text;
    let _ = writeln!(t, "Name:         {}", str_at(obj, "/metadata/name"));
    if kind.namespaced {
        let _ = writeln!(t, "Namespace:    {}", str_at(obj, "/metadata/namespace"));
    }
    let _ = writeln!(t, "Kind:         {}", kind.kind);
    for (name, field) in [("Labels", "labels"), ("Annotations", "annotations")] {
        let map = obj
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty());
        let Some(map) = map else {
            let _ = writeln!(t, "{}<none>", title(name));
            continue;
        };
        for (i, (k, v)) in map.iter().enumerate() {
            let head = if i == 0 { title(name) } else { " ".repeat(14) };
            let _ = writeln!(t, "{head}{k}={}", v.as_str().unwrap_or(""));
        }
    }
    let _ = writeln!(
        t,
        "Created:      {}",
        str_at(obj, "/metadata/creationTimestamp")
    );
    if let Some(dt) = obj
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
    {
        let _ = writeln!(t, "Deleting:     since {dt}");
    }
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let _ = writeln!(t, "Generation:   {generation}");
    for (part, heading) in [("spec", "Spec"), ("status", "Status")] {
        let Some(v) = obj.get(part) else { continue };
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("conditions");
        }
        let _ = writeln!(t, "{heading}:");
        for line in output::yaml(&v).lines() {
            let _ = writeln!(t, "  {line}");
        }
    }
    if let Some(conds) = obj.pointer("/status/conditions").and_then(Value::as_array) {
        t.push_str("Conditions:\n  TYPE            STATUS   REASON                 MESSAGE\n");
        for c in conds {
            let g = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
            let _ = writeln!(
                t,
                "  {:<15} {:<8} {:<22} {}",
                g("type"),
                g("status"),
                g("reason"),
                g("message")
            );
            if let Some(bar) = pull_bar(g("reason"), g("message")) {
                let _ = writeln!(t, "  {:<15} {bar}", "");
            }
        }
    }
    render_events(t, kind, str_at(obj, "/metadata/name"), events, now);
    text
}

/// A bar of 30 cells for a condition whose reason is `Pulling` and whose message ends with
/// `(NN%)` (the nodelet's pull progress), e.g. `[#########.....................] 31%`.
fn pull_bar(reason: &str, message: &str) -> Option<String> {
    if reason != "Pulling" {
        return None;
    }
    let percent: u64 = message
        .strip_suffix("%)")?
        .rsplit_once('(')?
        .1
        .parse()
        .ok()?;
    let full = (percent.min(100) * 30 / 100) as usize;
    Some(format!(
        "[{}{}] {percent}%",
        "#".repeat(full),
        ".".repeat(30 - full)
    ))
}

/// The `Events:` section: the latest events about `kind/name`, oldest first.
fn render_events(
    t: &mut String,
    kind: &KindInfo,
    name: &str,
    events: &[Value],
    now: DateTime<Utc>,
) {
    let mut mine: Vec<&Value> = events
        .iter()
        .filter(|e| {
            str_at(e, "/spec/involvedObject/kind") == kind.kind
                && str_at(e, "/spec/involvedObject/name") == name
        })
        .collect();
    mine.sort_by_key(|e| str_at(e, "/spec/lastTimestamp"));
    if mine.is_empty() {
        t.push_str("Events:       <none>\n");
        return;
    }
    t.push_str("Events:\n  TYPE      REASON               AGE    FROM                 MESSAGE\n");
    for e in &mine[mine.len().saturating_sub(EVENTS_SHOWN)..] {
        let when = match str_at(e, "/spec/lastTimestamp") {
            "" => str_at(e, "/metadata/creationTimestamp"),
            last => last,
        };
        let _ = writeln!(
            t,
            "  {:<9} {:<20} {:<6} {:<20} {}",
            str_at(e, "/spec/type"),
            str_at(e, "/spec/reason"),
            output::age(when, now),
            str_at(e, "/spec/source"),
            str_at(e, "/spec/message")
        );
    }
}

#[cfg(test)]
mod tests;
