//! What a rule's condition says of one GameServer now, from the cached objects and the last
//! samples of its node. Pure: the objects, the samples and `now` come in.

use std::collections::HashMap;

use catalyst_schemas::alert::{cpu_cores, AlertCondition, AlertEvent, AlertMetric, TargetAlert};
use catalyst_schemas::lifecycle::Phase;
use catalyst_schemas::object::phase_of;
use catalyst_schemas::Quantity;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::state::Observation;

/// Restarts after crashes from which a server crash-loops (the nodelet's own count).
pub const CRASH_LOOP_RESTARTS: i64 = 5;
/// How recent the last crash of a crash loop must be.
const CRASH_LOOP_WINDOW_SECS: i64 = 600;

/// One server's samples as its node last sent them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Memory in use and the limit (0: none), bytes.
    pub memory: Option<(f64, f64)>,
    /// Disk in use and its size (0: no disk of its own), bytes.
    pub disk: Option<(f64, f64)>,
    /// CPU use in percent of the server's cores, over the last two scrapes.
    pub cpu_percent: Option<f64>,
    /// Bytes per second received plus sent, over the last two scrapes.
    pub network_rate: Option<f64>,
}

/// The counters of one scrape, to make rates of with the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counters {
    /// When they were read.
    pub at: DateTime<Utc>,
    /// CPU seconds.
    pub cpu_seconds: Option<f64>,
    /// Bytes received plus sent.
    pub network_bytes: Option<f64>,
}

/// Turns nodes' metrics answers into per-server usage (keys `namespace/name`). A sample counts
/// only when it comes from the node the server is bound to (`bound`: server key → node): a
/// node speaks for its own servers, never for another's. Rates come from `previous`
/// counters, which are replaced by this scrape's; `cores` gives each server's CPU cores.
pub fn usage_of(
    answers: &[(String, Value)],
    bound: &HashMap<String, String>,
    cores: &HashMap<String, f64>,
    previous: &mut HashMap<String, Counters>,
    now: DateTime<Utc>,
) -> HashMap<String, Usage> {
    #[derive(Default)]
    struct Raw {
        memory: Option<f64>,
        memory_limit: Option<f64>,
        disk: Option<f64>,
        disk_limit: Option<f64>,
        cpu: Option<f64>,
        rx: Option<f64>,
        tx: Option<f64>,
    }
    let mut raw: HashMap<String, Raw> = HashMap::new();
    for (node, answer) in answers {
        for s in answer["samples"].as_array().into_iter().flatten() {
            let (Some(metric), Some(value)) = (s["metric"].as_str(), s["value"].as_f64()) else {
                continue;
            };
            if !value.is_finite() || value < 0.0 {
                continue;
            }
            let label = |k: &str| s["labels"][k].as_str().unwrap_or_default();
            let key = format!("{}/{}", label("namespace"), label("name"));
            if bound.get(&key) != Some(node) {
                continue;
            }
            let r = raw.entry(key).or_default();
            let slot = match metric {
                "catalyst_gameserver_memory_bytes" => &mut r.memory,
                "catalyst_gameserver_memory_limit_bytes" => &mut r.memory_limit,
                "catalyst_gameserver_disk_used_bytes" => &mut r.disk,
                "catalyst_gameserver_disk_limit_bytes" => &mut r.disk_limit,
                "catalyst_gameserver_cpu_seconds_total" => &mut r.cpu,
                "catalyst_gameserver_network_receive_bytes_total" => &mut r.rx,
                "catalyst_gameserver_network_transmit_bytes_total" => &mut r.tx,
                _ => continue,
            };
            *slot = Some(value);
        }
    }
    let mut out = HashMap::new();
    let mut next_counters = HashMap::new();
    for (key, r) in raw {
        let now_counters = Counters {
            at: now,
            cpu_seconds: r.cpu,
            network_bytes: r.rx.zip(r.tx).map(|(a, b)| a + b),
        };
        let before = previous.get(&key);
        let rate = |cur: Option<f64>, prev: Option<f64>| {
            let before = before?;
            let dt = (now - before.at).num_milliseconds() as f64 / 1000.0;
            let (cur, prev) = (cur?, prev?);
            // a restarted container starts its counters again: no rate this time
            (dt > 0.0 && cur >= prev).then(|| (cur - prev) / dt)
        };
        let cpu_rate = rate(now_counters.cpu_seconds, before.and_then(|b| b.cpu_seconds));
        let net_rate = rate(
            now_counters.network_bytes,
            before.and_then(|b| b.network_bytes),
        );
        let cores = cores.get(&key).copied().unwrap_or(1.0).max(0.001);
        out.insert(
            key.clone(),
            Usage {
                memory: r.memory.map(|m| (m, r.memory_limit.unwrap_or(0.0))),
                disk: r.disk.map(|d| (d, r.disk_limit.unwrap_or(0.0))),
                cpu_percent: cpu_rate.map(|c| 100.0 * c / cores),
                network_rate: net_rate,
            },
        );
        next_counters.insert(key, now_counters);
    }
    *previous = next_counters;
    out
}

/// What the rule's `condition` says of `gs` now. `usage`: its samples, if its node sent any;
/// `node`: the Node it is bound to; `backups`: the Backups of its namespace; `before`: its
/// alert so far; `lookback`: how far back an event not seen before still counts (so that a
/// new rule does not fire for a crash of last week).
#[allow(clippy::too_many_arguments)]
pub fn observe(
    condition: &AlertCondition,
    gs: &Value,
    usage: Option<&Usage>,
    node: Option<&Value>,
    backups: &[Value],
    before: Option<&TargetAlert>,
    lookback: Duration,
    now: DateTime<Utc>,
) -> Observation {
    match (condition.metric, condition.event) {
        (Some(metric), _) => metric_observation(condition, metric, gs, usage, node),
        (None, Some(event)) => event_observation(event, gs, node, backups, before, lookback, now),
        (None, None) => Observation::NoData,
    }
}

fn quantity_at(v: &Value, p: &str) -> Option<f64> {
    v.pointer(p)
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Quantity>().ok())
        .map(|q| q.value() as f64)
        .filter(|q| *q > 0.0)
}

fn metric_observation(
    condition: &AlertCondition,
    metric: AlertMetric,
    gs: &Value,
    usage: Option<&Usage>,
    node: Option<&Value>,
) -> Observation {
    let running = matches!(phase_of(gs), Phase::Starting | Phase::Running);
    let percent = |used: f64, limit: f64| (limit > 0.0).then(|| 100.0 * used / limit);
    let value = match metric {
        AlertMetric::Disk => {
            // the node's last reading in status, else its samples
            let from_status = gs
                .pointer("/status/disk")
                .and_then(|d| percent(d["usedBytes"].as_f64()?, d["limitBytes"].as_f64()?));
            let from_samples = || {
                let (used, limit) = usage?.disk?;
                let limit = if limit > 0.0 {
                    limit
                } else {
                    quantity_at(gs, "/spec/resources/disk")?
                };
                percent(used, limit)
            };
            match from_status.or_else(from_samples) {
                Some(v) => v,
                None => return Observation::NoData,
            }
        }
        _ if !running => return Observation::Clear,
        AlertMetric::Memory => {
            let Some((used, limit)) = usage.and_then(|u| u.memory) else {
                return Observation::NoData;
            };
            let limit = if limit > 0.0 {
                Some(limit)
            } else {
                quantity_at(gs, "/spec/resources/memory")
            };
            match limit.and_then(|l| percent(used, l)) {
                Some(v) => v,
                None => return Observation::NoData,
            }
        }
        AlertMetric::Cpu => match usage.and_then(|u| u.cpu_percent) {
            Some(v) => v,
            None => return Observation::NoData,
        },
        AlertMetric::Network => match usage.and_then(|u| u.network_rate) {
            Some(v) => v,
            None => return Observation::NoData,
        },
    };
    let threshold = condition.threshold.unwrap_or_default();
    let op = condition.operator.as_deref().unwrap_or(">");
    let holds = if op == "<" {
        value < threshold
    } else {
        value > threshold
    };
    if !holds {
        return Observation::Clear;
    }
    let unit = if metric.is_percent() { "%" } else { " B/s" };
    let cores = if metric == AlertMetric::Cpu {
        format!(" of {} cores", cpu_cores(gs, node))
    } else {
        String::new()
    };
    Observation::Holds {
        value: Some((value * 100.0).round() / 100.0),
        message: format!(
            "{} {value:.1}{unit}{cores} {op} {threshold}{unit}",
            format!("{metric:?}").to_lowercase()
        ),
        seen: None,
    }
}

fn time_at(v: &Value, p: &str) -> Option<DateTime<Utc>> {
    v.pointer(p)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn event_observation(
    event: AlertEvent,
    gs: &Value,
    node: Option<&Value>,
    backups: &[Value],
    before: Option<&TargetAlert>,
    lookback: Duration,
    now: DateTime<Utc>,
) -> Observation {
    let holds = |message: String, seen: Option<DateTime<Utc>>| Observation::Holds {
        value: None,
        message,
        seen,
    };
    let last_exit = gs.pointer("/status/lastExit");
    let crashed = last_exit.is_some_and(|e| {
        e["exitCode"].as_i64().unwrap_or(0) != 0 || e["oomKilled"].as_bool().unwrap_or(false)
    });
    let finished = time_at(gs, "/status/lastExit/finishedAt");
    let how = || match last_exit {
        Some(e) if e["oomKilled"].as_bool() == Some(true) => {
            "killed for running out of memory".to_owned()
        }
        Some(e) => format!("exited with code {}", e["exitCode"].as_i64().unwrap_or(0)),
        None => "crashed".to_owned(),
    };
    match event {
        AlertEvent::Crash => {
            if phase_of(gs) == Phase::Crashed {
                return holds(format!("crashed: {}", how()), finished);
            }
            // a crash since the last look that the nodelet's restart already hid still counts,
            // once (a restart after a crash raises restartCount; a user's stop does not, and a
            // user's restart sets it to 0)
            let counted = before.and_then(|a| a.seen).unwrap_or(now - lookback);
            let restarted = gs
                .pointer("/status/restartCount")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                > 0;
            let stopped = matches!(phase_of(gs), Phase::Stopped | Phase::Stopping);
            match finished {
                Some(t) if crashed && restarted && !stopped && t > counted => {
                    holds(format!("crashed ({}) and was restarted", how()), Some(t))
                }
                _ => Observation::Clear,
            }
        }
        AlertEvent::CrashLoop => {
            let restarts = gs
                .pointer("/status/restartCount")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let recent =
                finished.is_some_and(|t| now - t < Duration::seconds(CRASH_LOOP_WINDOW_SECS));
            if restarts >= CRASH_LOOP_RESTARTS
                && crashed
                && (recent || phase_of(gs) == Phase::Crashed)
            {
                holds(
                    format!(
                        "crash loop: restarted {restarts} times after crashes, last {}",
                        how()
                    ),
                    finished,
                )
            } else {
                Observation::Clear
            }
        }
        AlertEvent::NodeDown => {
            let Some(name) = gs.pointer("/status/nodeName").and_then(Value::as_str) else {
                return Observation::Clear;
            };
            let Some(node) = node else {
                return Observation::Clear;
            };
            // the state, not the Ready condition: a nodelet that is back writes `state: Ready`
            // and leaves the conditions the Node controller set
            let state = node.pointer("/status/state").and_then(Value::as_str);
            if state == Some("NotReady") {
                let heartbeat = node
                    .pointer("/status/lastHeartbeatTime")
                    .and_then(Value::as_str)
                    .unwrap_or("never");
                holds(
                    format!("node {name} is NotReady (last heartbeat {heartbeat})"),
                    None,
                )
            } else {
                Observation::Clear
            }
        }
        AlertEvent::BackupFailed => {
            let name = gs
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let newest = backups
                .iter()
                .filter(|b| b.pointer("/spec/gameServer").and_then(Value::as_str) == Some(name))
                .max_by_key(|b| {
                    (
                        time_at(b, "/metadata/creationTimestamp"),
                        catalyst_schemas::object::resource_version(b).unwrap_or(0),
                    )
                });
            match newest {
                Some(b) if b.pointer("/status/phase").and_then(Value::as_str) == Some("Failed") => {
                    let backup = b
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let why = b
                        .pointer("/status/message")
                        .and_then(Value::as_str)
                        .unwrap_or("no message");
                    let why: String = why.chars().take(200).collect();
                    holds(
                        format!("backup {backup} failed: {why}"),
                        time_at(b, "/metadata/creationTimestamp"),
                    )
                }
                _ => Observation::Clear,
            }
        }
    }
}
