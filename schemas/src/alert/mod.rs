//! The AlertRule kind: a condition over metrics or events, held for a while, that notifies.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Condition;
use crate::resource::{resource, Validate};
use crate::validation::{self, Causes, FieldPath};

resource! {
    /// Fires notifications when a condition holds for long enough.
    AlertRule {
        spec: AlertRuleSpec,
        status: AlertRuleStatus,
        plural: "alertrules",
        singular: "alertrule",
        short: ["alert"],
        namespaced: true,
        name_rule: validation::dns_subdomain,
    }
}

/// What to watch and whom to tell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertRuleSpec {
    /// One GameServer by name; else every GameServer matching `selector` in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game_server: Option<String>,
    /// Labels the GameServers must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// The condition.
    #[serde(default)]
    pub condition: AlertCondition,
    /// How long the condition must hold, e.g. `5m`.
    #[serde(default = "zero", rename = "for")]
    pub for_: String,
    /// While an alert fires, a reminder is sent this often, e.g. `30m`; `0s`: no reminders.
    /// One notification is sent when an alert starts firing and one when it resolves,
    /// whatever this says. Formerly `dedupWindow`, which is still read as this field.
    #[serde(default = "thirty_minutes", alias = "dedupWindow")]
    pub repeat_interval: String,
    /// No notification is sent before this time (alerts are still evaluated and shown in
    /// status); an alert that started firing during the silence is notified once it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced_until: Option<DateTime<Utc>>,
    /// Where to send notifications.
    #[serde(default)]
    pub notifications: Vec<Notification>,
}

impl AlertRuleSpec {
    /// `for` in seconds (0 when it does not parse; validation refuses that).
    pub fn for_seconds(&self) -> u64 {
        validation::duration(&self.for_).unwrap_or(0)
    }

    /// `repeatInterval` in seconds; 0: no reminders.
    pub fn repeat_seconds(&self) -> u64 {
        validation::duration(&self.repeat_interval).unwrap_or(0)
    }

    /// True while `silencedUntil` lies after `now`.
    pub fn silenced(&self, now: DateTime<Utc>) -> bool {
        self.silenced_until.is_some_and(|t| t > now)
    }
}

fn zero() -> String {
    "0s".to_owned()
}

fn thirty_minutes() -> String {
    "30m".to_owned()
}

/// A metric threshold or an event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertCondition {
    /// A metric compared with `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<AlertMetric>,
    /// `>` or `<`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Percent of the limit for cpu, memory and disk (0 to 100); bytes per second, received
    /// plus sent, for network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// An event instead of a metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<AlertEvent>,
}

/// A metric an alert can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AlertMetric {
    /// CPU use, percent of the limit.
    Cpu,
    /// Memory use, percent of the limit.
    Memory,
    /// Disk use, percent of the disk's size.
    Disk,
    /// Network traffic, bytes per second received plus sent (a rate over two samples).
    Network,
}

impl AlertMetric {
    /// True when the threshold is a percentage.
    pub fn is_percent(self) -> bool {
        !matches!(self, AlertMetric::Network)
    }
}

/// An event an alert can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AlertEvent {
    /// The server crashed: its phase is Crashed, or a run ended with a non-zero code or an
    /// OOM kill since the rule last looked (a restart in between does not hide it).
    Crash,
    /// The server crash-loops: restarted after crashes at least five times, the last crash
    /// less than ten minutes ago.
    CrashLoop,
    /// The server's node is NotReady (its heartbeat stopped).
    NodeDown,
    /// The server's newest Backup failed.
    BackupFailed,
}

/// One notification target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notification {
    /// A webhook.
    pub webhook: Webhook,
}

/// A webhook and its payload format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    /// The URL.
    pub url: String,
    /// Generic JSON, Discord or Slack.
    #[serde(default)]
    pub format: WebhookFormat,
}

/// Payload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum WebhookFormat {
    /// `{"alert": …}` JSON.
    #[default]
    Generic,
    /// Discord's webhook body.
    Discord,
    /// Slack's webhook body.
    Slack,
}

impl Validate for AlertRuleSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        if let Some(gs) = &self.game_server {
            causes.rule(&path.child("gameServer"), validation::dns_label(gs));
        }
        for (k, v) in &self.selector {
            let p = path.child("selector").key(k);
            causes.rule(&p, validation::qualified_name(k));
            causes.rule(&p, validation::label_value(v));
        }
        let c = &self.condition;
        let p = path.child("condition");
        match (&c.metric, &c.event) {
            (Some(_), Some(_)) => causes.push(&p, "set metric or event, not both"),
            (None, None) => causes.push(&p, "set metric or event"),
            (Some(_), None) => {
                causes.check(
                    matches!(c.operator.as_deref(), Some(">" | "<")),
                    &p.child("operator"),
                    "must be \">\" or \"<\"",
                );
                if c.metric.is_some_and(AlertMetric::is_percent) {
                    causes.check(
                        c.threshold.is_some_and(|t| (0.0..=100.0).contains(&t)),
                        &p.child("threshold"),
                        "must be a percentage from 0 to 100",
                    );
                } else {
                    causes.check(
                        c.threshold.is_some_and(|t| t.is_finite() && t >= 0.0),
                        &p.child("threshold"),
                        "must be a rate in bytes per second, 0 or more",
                    );
                }
            }
            (None, Some(_)) => {
                causes.check(
                    c.operator.is_none(),
                    &p.child("operator"),
                    "only a metric has an operator",
                );
                causes.check(
                    c.threshold.is_none(),
                    &p.child("threshold"),
                    "only a metric has a threshold",
                );
            }
        }
        causes.rule(
            &path.child("for"),
            validation::duration(&self.for_).map(|_| ()),
        );
        causes.rule(
            &path.child("repeatInterval"),
            validation::duration(&self.repeat_interval).map(|_| ()),
        );
        causes.check(
            !self.notifications.is_empty(),
            &path.child("notifications"),
            "at least one notification is required",
        );
        causes.check(
            self.notifications.len() <= MAX_NOTIFICATIONS,
            &path.child("notifications"),
            format!("at most {MAX_NOTIFICATIONS} notifications"),
        );
        for (i, n) in self.notifications.iter().enumerate() {
            let url = &n.webhook.url;
            let p = path
                .child("notifications")
                .index(i)
                .child("webhook")
                .child("url");
            causes.check(
                url.starts_with("http://") || url.starts_with("https://"),
                &p,
                "must be an http:// or https:// URL",
            );
            causes.check(url.len() <= 2048, &p, "must be at most 2048 characters");
        }
    }
}

/// The most notifications a rule may have.
pub const MAX_NOTIFICATIONS: usize = 8;

/// The most alerts a rule's status keeps (targets beyond it are counted in
/// `status.untracked`, not followed).
pub const MAX_ALERTS: usize = 100;

/// What the alert controller observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRuleStatus {
    /// Some alert of this rule fires now.
    #[serde(default)]
    pub firing: bool,
    /// How many of its alerts fire now.
    #[serde(default)]
    pub firing_count: u32,
    /// How many hold but not yet for `for`.
    #[serde(default)]
    pub pending_count: u32,
    /// Targets the rule covers beyond the [`MAX_ALERTS`] it follows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub untracked: u32,
    /// When an alert of this rule last started firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired_at: Option<DateTime<Utc>>,
    /// When an alert of this rule last resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resolved_at: Option<DateTime<Utc>>,
    /// One alert per target (a GameServer), at most [`MAX_ALERTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<TargetAlert>,
    /// The generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where one target's alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AlertState {
    /// The condition holds, not yet for `for`.
    Pending,
    /// The condition has held for `for`.
    Firing,
    /// It fired and holds no longer.
    Resolved,
}

/// One target's alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetAlert {
    /// What the alert is about, e.g. `gameserver/survival`.
    pub target: String,
    /// Pending, Firing or Resolved.
    pub state: AlertState,
    /// When the condition started holding (Pending, Firing) or stopped (Resolved).
    pub since: DateTime<Utc>,
    /// When it started firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<DateTime<Utc>>,
    /// When it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// When the last notification of this firing was sent (None: not yet, e.g. silenced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notified_at: Option<DateTime<Utc>>,
    /// The last value seen (metric conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What was seen, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Event conditions: the newest occurrence already counted (e.g. a crash's time), so one
    /// occurrence fires once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<DateTime<Utc>>,
}

impl Validate for AlertRuleStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}

mod export;
pub use export::{cpu_cores, prometheus_rules, Export};

/// True when the rule covers `gameserver` (a GameServer object of the rule's namespace):
/// named by `gameServer`, else carrying every label of `selector` (an empty selector covers
/// every server of the namespace).
pub fn covers(spec: &AlertRuleSpec, gameserver: &serde_json::Value) -> bool {
    let name = gameserver
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str);
    if let Some(want) = &spec.game_server {
        return name == Some(want.as_str());
    }
    let labels = gameserver.pointer("/metadata/labels");
    spec.selector.iter().all(|(k, v)| {
        labels
            .and_then(|l| l.get(k))
            .and_then(serde_json::Value::as_str)
            == Some(v.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admit(spec: serde_json::Value) -> Result<AlertRule, Vec<String>> {
        let obj = json!({"apiVersion": crate::API_VERSION, "kind": "AlertRule",
                         "metadata": {"name": "r", "namespace": "default"}, "spec": spec});
        crate::resource::admit::<AlertRule>(obj)
            .map(|v| serde_json::from_value(v).expect("an admitted rule"))
            .map_err(|e| e.causes.into_iter().map(|c| c.field).collect())
    }

    fn hook() -> serde_json::Value {
        json!([{"webhook": {"url": "https://example.com/h"}}])
    }

    #[test]
    fn network_thresholds_are_rates_and_percentages_stay_percentages() {
        let net = |t: f64| {
            admit(
                json!({"condition": {"metric": "Network", "operator": ">", "threshold": t}, "notifications": hook()}),
            )
        };
        assert!(net(5e6).is_ok(), "5 MB/s is a rate, not a percentage");
        assert_eq!(
            net(-1.0).err().unwrap_or_default(),
            ["spec.condition.threshold"]
        );
        let mem = admit(
            json!({"condition": {"metric": "Memory", "operator": ">", "threshold": 150.0}, "notifications": hook()}),
        );
        assert_eq!(mem.err().unwrap_or_default(), ["spec.condition.threshold"]);
        let ev = admit(
            json!({"condition": {"event": "BackupFailed", "threshold": 3.0}, "notifications": hook()}),
        );
        assert_eq!(ev.err().unwrap_or_default(), ["spec.condition.threshold"]);
    }

    #[test]
    fn dedup_window_is_read_as_repeat_interval_and_silences_are_times() {
        let r = admit(
            json!({"condition": {"event": "CrashLoop"}, "dedupWindow": "2h",
                             "silencedUntil": "2026-01-01T00:00:00Z", "notifications": hook()}),
        )
        .expect("admitted");
        assert_eq!(r.spec.repeat_seconds(), 7200);
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        assert!(r.spec.silenced(t("2025-12-31T23:59:59Z")));
        assert!(!r.spec.silenced(t("2026-01-01T00:00:00Z")));
        let bad = admit(
            json!({"condition": {"event": "Crash"}, "repeatInterval": "soon", "notifications": hook()}),
        );
        assert_eq!(bad.err().unwrap_or_default(), ["spec.repeatInterval"]);
        let v = serde_json::to_value(&r.spec).expect("json");
        assert!(v.get("repeatInterval").is_some() && v.get("dedupWindow").is_none());
    }
}
