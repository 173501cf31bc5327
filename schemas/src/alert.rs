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
    /// No repeat notification within this window, e.g. `30m`.
    #[serde(default = "thirty_minutes")]
    pub dedup_window: String,
    /// Where to send notifications.
    #[serde(default)]
    pub notifications: Vec<Notification>,
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
    /// Percent of the limit for cpu, memory and disk.
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
    /// Disk use, percent of the limit.
    Disk,
}

/// An event an alert can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AlertEvent {
    /// The server crashed.
    Crash,
    /// The server's node stopped heartbeating.
    NodeDown,
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
                causes.check(
                    c.threshold.is_some_and(|t| (0.0..=100.0).contains(&t)),
                    &p.child("threshold"),
                    "must be a percentage from 0 to 100",
                );
            }
            (None, Some(_)) => {}
        }
        causes.rule(
            &path.child("for"),
            validation::duration(&self.for_).map(|_| ()),
        );
        causes.rule(
            &path.child("dedupWindow"),
            validation::duration(&self.dedup_window).map(|_| ()),
        );
        causes.check(
            !self.notifications.is_empty(),
            &path.child("notifications"),
            "at least one notification is required",
        );
        for (i, n) in self.notifications.iter().enumerate() {
            let url = &n.webhook.url;
            causes.check(
                url.starts_with("http://") || url.starts_with("https://"),
                &path
                    .child("notifications")
                    .index(i)
                    .child("webhook")
                    .child("url"),
                "must be an http:// or https:// URL",
            );
        }
    }
}

/// What the alert controller observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRuleStatus {
    /// The condition holds now.
    #[serde(default)]
    pub firing: bool,
    /// When it last notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired_at: Option<DateTime<Utc>>,
    /// Observations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Validate for AlertRuleStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}
