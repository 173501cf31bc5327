//! How `catalystctl get` prints objects: kubectl-like tables with columns per kind, or YAML,
//! JSON, names.

use catalyst_schemas::KindInfo;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// More columns.
    Wide,
    /// YAML documents.
    Yaml,
    /// JSON.
    Json,
    /// `kind/name` lines.
    Name,
}

fn s<'v>(obj: &'v Value, pointer: &str) -> &'v str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Age like kubectl: `45s`, `12m`, `3h`, `9d`.
pub fn age(timestamp: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86_400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Time until `timestamp`, as [`age`] writes it (`0s` once it is past).
fn until(timestamp: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let ahead = t.with_timezone(&Utc) - now;
    age(&(now - ahead).to_rfc3339(), now)
}

fn columns(kind: &KindInfo, wide: bool) -> Vec<&'static str> {
    let mut cols: Vec<&str> = match kind.kind {
        "GameServer" => vec!["NAME", "PHASE", "NODE", "ADDRESS", "AGE"],
        "Node" => vec!["NAME", "STATUS", "ADDRESS", "AGE"],
        "Template" => vec!["NAME", "IMAGE", "AGE"],
        "Backup" => vec!["NAME", "GAMESERVER", "PHASE", "SIZE", "AGE"],
        "Restore" => vec!["NAME", "BACKUP", "PHASE", "AGE"],
        "Schedule" => vec![
            "NAME",
            "GAMESERVER",
            "CRON",
            "SUSPEND",
            "LAST RUN",
            "RESULT",
            "NEXT RUN",
            "AGE",
        ],
        "AlertRule" => vec!["NAME", "FIRING", "AGE"],
        "Event" => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "Lease" => vec!["NAME", "HOLDER", "AGE"],
        _ => vec!["NAME", "AGE"],
    };
    if wide {
        match kind.kind {
            "GameServer" => cols.extend(["IMAGE", "PORTS", "RESTARTS", "STATE"]),
            "Node" => cols.extend(["VERSION", "CAPACITY"]),
            "Schedule" => cols.extend(["TIMEZONE", "TASKS"]),
            _ => {}
        }
    }
    cols
}

fn cell(obj: &Value, column: &str, now: DateTime<Utc>) -> String {
    let created = s(obj, "/metadata/creationTimestamp");
    match column {
        "NAME" => s(obj, "/metadata/name").to_owned(),
        "AGE" => age(created, now),
        "PHASE" => {
            let p = s(obj, "/status/phase");
            if p.is_empty() {
                "Pending".into()
            } else {
                p.into()
            }
        }
        "NODE" => {
            let n = s(obj, "/status/nodeName");
            if n.is_empty() {
                "<none>".into()
            } else {
                n.into()
            }
        }
        "ADDRESS" if obj.get("kind").and_then(Value::as_str) == Some("Node") => {
            let a = s(obj, "/spec/address");
            let a = if a.is_empty() {
                s(obj, "/status/addresses/0")
            } else {
                a
            };
            if a.is_empty() {
                "<none>".into()
            } else {
                a.into()
            }
        }
        "ADDRESS" => {
            let addr = s(obj, "/status/address");
            match obj
                .pointer("/status/ports/0/hostPort")
                .and_then(Value::as_i64)
            {
                Some(port) if !addr.is_empty() => format!("{addr}:{port}"),
                _ if !addr.is_empty() => addr.into(),
                _ => "<none>".into(),
            }
        }
        "STATUS" => {
            let state = s(obj, "/status/state");
            let mut out = if state.is_empty() {
                "Unknown".to_owned()
            } else {
                state.to_owned()
            };
            if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                out.push_str(",SchedulingDisabled");
            }
            out
        }
        "IMAGE" if obj.get("kind").and_then(Value::as_str) == Some("Template") => {
            s(obj, "/spec/images/0/image").into()
        }
        "IMAGE" => {
            let i = s(obj, "/spec/image");
            if i.is_empty() {
                format!("template:{}", s(obj, "/spec/template"))
            } else {
                i.into()
            }
        }
        "PORTS" => obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            p.get("containerPort").and_then(Value::as_i64).unwrap_or(0),
                            s(p, "/protocol")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        "RESTARTS" => obj
            .pointer("/status/restartCount")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        "STATE" => {
            let st = s(obj, "/spec/state");
            if obj.pointer("/spec/suspended").and_then(Value::as_bool) == Some(true) {
                format!("{st},Suspended")
            } else {
                st.into()
            }
        }
        "VERSION" => s(obj, "/status/versions/nodelet").into(),
        "CAPACITY" => format!(
            "cpu={} mem={}",
            s(obj, "/status/capacity/cpu"),
            s(obj, "/status/capacity/memory")
        ),
        "GAMESERVER" => s(obj, "/spec/gameServer").into(),
        "SIZE" => obj
            .pointer("/status/sizeBytes")
            .and_then(Value::as_i64)
            .map(human_bytes)
            .unwrap_or_default(),
        "BACKUP" => s(obj, "/spec/backup").into(),
        "CRON" => s(obj, "/spec/cron").into(),
        "LAST RUN" => {
            let t = s(obj, "/status/lastRunTime");
            if t.is_empty() {
                "<never>".into()
            } else {
                age(t, now)
            }
        }
        "SUSPEND" => obj
            .pointer("/spec/suspend")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        "RESULT" => {
            let r = s(obj, "/status/lastResult");
            if r.is_empty() {
                "<none>".into()
            } else {
                r.into()
            }
        }
        "NEXT RUN" => {
            let t = s(obj, "/status/nextRunTime");
            if t.is_empty() {
                "<none>".into()
            } else {
                format!("in {}", until(t, now))
            }
        }
        "TIMEZONE" => {
            let tz = s(obj, "/spec/timezone");
            if tz.is_empty() {
                "UTC".into()
            } else {
                tz.into()
            }
        }
        "TASKS" => obj
            .pointer("/spec/tasks")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .map(|t| s(t, "/action").to_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        "FIRING" => obj
            .pointer("/status/firing")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        "LAST SEEN" => {
            let t = s(obj, "/spec/lastTimestamp");
            age(if t.is_empty() { created } else { t }, now)
        }
        "TYPE" => s(obj, "/spec/type").into(),
        "REASON" => s(obj, "/spec/reason").into(),
        "OBJECT" => format!(
            "{}/{}",
            s(obj, "/spec/involvedObject/kind").to_lowercase(),
            s(obj, "/spec/involvedObject/name")
        ),
        "MESSAGE" => s(obj, "/spec/message").into(),
        "HOLDER" => s(obj, "/spec/holderIdentity").into(),
        _ => String::new(),
    }
}

fn human_bytes(b: i64) -> String {
    const UNITS: [&str; 5] = ["B", "Ki", "Mi", "Gi", "Ti"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// A table of objects of one kind; `all_namespaces` adds a NAMESPACE column.
pub fn table(
    kind: &KindInfo,
    items: &[Value],
    wide: bool,
    all_namespaces: bool,
    header: bool,
) -> String {
    let now = Utc::now();
    let mut cols = columns(kind, wide);
    if all_namespaces && kind.namespaced {
        cols.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|obj| {
            cols.iter()
                .map(|c| {
                    if *c == "NAMESPACE" {
                        s(obj, "/metadata/namespace").to_owned()
                    } else {
                        cell(obj, c, now)
                    }
                })
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = cols.iter().map(|c| c.len()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        out.push('\n');
    };
    if header {
        line(cols.clone());
    }
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// An object as YAML.
pub fn yaml(obj: &Value) -> String {
    yaml_serde::to_string(obj).unwrap_or_default()
}

/// `kind/name`.
pub fn name(obj: &Value) -> String {
    format!(
        "{}/{}",
        s(obj, "/kind").to_lowercase(),
        s(obj, "/metadata/name")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(age("2026-01-01T23:59:15Z", now), "45s");
        assert_eq!(age("2026-01-01T23:00:00Z", now), "60m");
        assert_eq!(age("2026-01-01T00:00:00Z", now), "24h");
        assert_eq!(age("2025-12-20T00:00:00Z", now), "13d");
    }

    #[test]
    fn schedule_tables_show_the_last_and_the_next_run() {
        let kind = catalyst_schemas::lookup_kind("sched").unwrap();
        let now = Utc::now();
        let next = (now + chrono::Duration::seconds(300)).to_rfc3339();
        let last = (now - chrono::Duration::seconds(30)).to_rfc3339();
        let sched = serde_json::json!({
            "kind": "Schedule",
            "metadata": {"name": "nightly", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"gameServer": "survival", "cron": "0 4 * * *", "timezone": "Europe/Berlin",
                     "tasks": [{"action": "Command", "payload": "say bye"}, {"action": "Restart"}]},
            "status": {"lastRunTime": last, "lastResult": "Succeeded", "nextRunTime": next}
        });
        let out = table(kind, &[sched], true, false, true);
        let lines: Vec<&str> = out.lines().collect();
        let header: Vec<&str> = lines[0]
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            header,
            [
                "NAME",
                "GAMESERVER",
                "CRON",
                "SUSPEND",
                "LAST RUN",
                "RESULT",
                "NEXT RUN",
                "AGE",
                "TIMEZONE",
                "TASKS"
            ],
            "{out}"
        );
        for want in [
            "0 4 * * *",
            "false",
            "Succeeded",
            "Europe/Berlin",
            "Command,Restart",
        ] {
            assert!(lines[1].contains(want), "{want}: {out}");
        }
        assert!(
            lines[1].contains("in 4m") || lines[1].contains("in 5m"),
            "{out}"
        );
    }

    #[test]
    fn gameserver_tables_show_phase_node_and_address() {
        let kind = catalyst_schemas::lookup_kind("gs").unwrap();
        let gs = serde_json::json!({
            "kind": "GameServer",
            "metadata": {"name": "survival", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"image": "busybox"},
            "status": {"phase": "Running", "nodeName": "node-a", "address": "10.0.0.5", "ports": [{"hostPort": 7012}]}
        });
        let out = table(kind, &[gs], false, true, true);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE   NAME"), "{out}");
        assert!(
            lines[1].contains("Running")
                && lines[1].contains("node-a")
                && lines[1].contains("10.0.0.5:7012"),
            "{out}"
        );
    }
}
