//! The AlertRule evaluator: every `interval` while this process leads, it takes each node's
//! samples through its tunnel to this API server (the same answers `/metrics` renders), judges
//! every rule for every GameServer it covers, keeps each target's alert (Pending, Firing,
//! Resolved) in the rule's status, and sends the notifications due by webhook.
//!
//! A status write comes first, pinned to the revision the decision was made from; only a
//! write that succeeded sends its notifications. So a notification goes out once per firing,
//! even across a change of leader (the next leader reads what was sent from the status).
//!
//! `state` is the pure per-target step, `observe` turns objects and samples into
//! observations, `notify` builds the webhook bodies and delivers them.

pub mod notify;
pub mod observe;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{Part, Registry, Scope};
use catalyst_apiserver::tunnel::Tunnels;
use catalyst_schemas::alert::{
    covers, cpu_cores, AlertRule, AlertRuleStatus, AlertState, TargetAlert, MAX_ALERTS,
};
use catalyst_schemas::lookup_kind;
use catalyst_schemas::object::{generation_of, namespace_of, resource_version};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::informer::Cache;
use crate::leader::{is_leading, Leading};
use notify::{body, Message, Sender};
use observe::{observe, usage_of, Counters};
use state::{step, Notice, Observation, Timing};

/// How long a resolved alert stays in status.
const RESOLVED_TTL_SECS: i64 = 24 * 3600;

/// Nodes' metrics answers, on their way: `(node, {"families": …, "samples": […]})`.
pub type Answers<'a> = Pin<Box<dyn Future<Output = Vec<(String, Value)>> + Send + 'a>>;

/// Where samples come from: every node's metrics answer, with the node it came from.
pub trait MetricSource: Send + Sync + std::fmt::Debug {
    /// `(node, {"families": …, "samples": […]})` of every node that answered.
    fn samples(&self) -> Answers<'_>;
}

impl MetricSource for Tunnels {
    fn samples(&self) -> Answers<'_> {
        Box::pin(Tunnels::samples(self))
    }
}

/// How the evaluator runs.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// How often rules are evaluated (and nodes scraped).
    pub interval: Duration,
    /// How webhooks are delivered.
    pub sender: Sender,
    /// The nodes' samples.
    pub metrics: Arc<dyn MetricSource>,
}

/// What the evaluator reads: caches the manager's informers keep.
#[derive(Debug, Clone)]
pub struct Caches {
    /// AlertRules.
    pub rules: Arc<Cache>,
    /// GameServers.
    pub gameservers: Arc<Cache>,
    /// Nodes.
    pub nodes: Arc<Cache>,
    /// Backups.
    pub backups: Arc<Cache>,
}

/// Evaluates AlertRules.
#[derive(Debug)]
pub struct Evaluator {
    registry: Registry,
    caches: Caches,
    config: AlertConfig,
    counters: Mutex<HashMap<String, Counters>>,
}

/// A notification decided by an evaluation: where to, in which format, what.
#[derive(Debug, Clone)]
struct Outgoing {
    rule: Value,
    message: Message,
}

impl Evaluator {
    /// An evaluator over `caches`, writing statuses through `registry`.
    pub fn new(registry: Registry, caches: Caches, config: AlertConfig) -> Self {
        Self {
            registry,
            caches,
            config,
            counters: Mutex::default(),
        }
    }

    /// Evaluates every rule while `leading` says so, every interval.
    pub async fn run(self: Arc<Self>, leading: Leading) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !is_leading(&leading) {
                // rates start afresh when this process leads again
                self.counters.lock().expect("counters").clear();
                continue;
            }
            let _ = self.evaluate(Utc::now()).await;
        }
    }

    /// One evaluation of every rule at `now`: statuses written, notifications started. The
    /// deliveries run on their own tasks (returned, so tests can wait for them).
    pub async fn evaluate(&self, now: DateTime<Utc>) -> Vec<JoinHandle<()>> {
        let rules: Vec<Value> = owned(&self.caches.rules);
        if rules.is_empty() {
            return Vec::new();
        }
        let metric_rules = rules
            .iter()
            .any(|r| r.pointer("/spec/condition/metric").is_some());
        let servers: Vec<Value> = owned(&self.caches.gameservers);
        let nodes: HashMap<String, Value> = self
            .caches
            .nodes
            .all()
            .into_iter()
            .filter_map(|n| {
                let name = n.pointer("/metadata/name")?.as_str()?.to_owned();
                Some((name, Arc::unwrap_or_clone(n)))
            })
            .collect();
        let usage = if metric_rules {
            let mut bound = HashMap::new();
            let mut cores = HashMap::new();
            for gs in &servers {
                let key = catalyst_schemas::object::key_of(gs);
                if let Some(n) = gs.pointer("/status/nodeName").and_then(Value::as_str) {
                    cores.insert(key.clone(), cpu_cores(gs, nodes.get(n)));
                    bound.insert(key, n.to_owned());
                }
            }
            let answers = self.config.metrics.samples().await;
            let mut counters = self.counters.lock().expect("counters");
            usage_of(&answers, &bound, &cores, &mut counters, now)
        } else {
            HashMap::new()
        };
        let backups: Vec<Value> = owned(&self.caches.backups);
        let mut tasks = Vec::new();
        for rule in rules {
            match self
                .evaluate_rule(&rule, &servers, &nodes, &backups, &usage, now)
                .await
            {
                Ok(out) => tasks.extend(out.into_iter().map(|o| self.deliver(o))),
                Err(ApiError::Conflict { .. } | ApiError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "alert evaluation failed"),
            }
        }
        tasks
    }

    async fn evaluate_rule(
        &self,
        obj: &Value,
        servers: &[Value],
        nodes: &HashMap<String, Value>,
        backups: &[Value],
        usage: &HashMap<String, observe::Usage>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Outgoing>, ApiError> {
        let Ok(rule) = serde_json::from_value::<AlertRule>(obj.clone()) else {
            return Ok(Vec::new());
        };
        let ns = namespace_of(obj).unwrap_or_default().to_owned();
        let spec = &rule.spec;
        let timing = Timing {
            for_secs: spec.for_seconds(),
            repeat_secs: spec.repeat_seconds(),
            silenced: spec.silenced(now),
        };
        let before = rule.status.clone().unwrap_or_default();
        let lookback =
            chrono::Duration::from_std(self.config.interval * 3).unwrap_or(chrono::Duration::MAX);
        let mut targets: Vec<&Value> = servers
            .iter()
            .filter(|gs| namespace_of(gs) == Some(ns.as_str()) && covers(spec, gs))
            .collect();
        targets.sort_by_key(|gs| {
            gs.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let untracked = targets.len().saturating_sub(MAX_ALERTS);
        targets.truncate(MAX_ALERTS);
        let ns_backups: Vec<Value> = backups
            .iter()
            .filter(|b| namespace_of(b) == Some(ns.as_str()))
            .cloned()
            .collect();
        let condition = describe(spec);
        let mut alerts: Vec<TargetAlert> = Vec::new();
        let mut outgoing = Vec::new();
        let mut seen_targets = Vec::new();
        for gs in targets {
            let name = gs
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let target = format!("gameserver/{name}");
            let prev = before.alerts.iter().find(|a| a.target == target);
            let node = gs
                .pointer("/status/nodeName")
                .and_then(Value::as_str)
                .and_then(|n| nodes.get(n));
            let obs = observe(
                &spec.condition,
                gs,
                usage.get(&format!("{ns}/{name}")),
                node,
                &ns_backups,
                prev,
                lookback,
                now,
            );
            let (next, notice) = step(&target, prev, &obs, timing, now);
            seen_targets.push(target.clone());
            if let Some(a) = next {
                if let Some(n) = notice {
                    outgoing.push(message(&ns, &rule.metadata.name, &condition, &a, n));
                }
                alerts.push(a);
            }
        }
        // alerts of targets that left (deleted, relabelled): a firing one resolves
        for prev in before
            .alerts
            .iter()
            .filter(|a| !seen_targets.contains(&a.target))
        {
            let (next, notice) = step(&prev.target, Some(prev), &Observation::Clear, timing, now);
            if let Some(mut a) = next {
                if notice.is_some() || a.state == AlertState::Resolved {
                    if notice.is_some() {
                        a.message = format!("{} (target gone)", a.message);
                    }
                    if let Some(n) = notice {
                        outgoing.push(message(&ns, &rule.metadata.name, &condition, &a, n));
                    }
                    alerts.push(a);
                }
            }
        }
        let ttl = chrono::Duration::seconds(RESOLVED_TTL_SECS);
        alerts.retain(|a| a.state != AlertState::Resolved || now - a.since < ttl);
        alerts.sort_by(|a, b| a.target.cmp(&b.target));
        if alerts.len() > MAX_ALERTS {
            // resolved ones go first, oldest first
            let mut resolved: Vec<usize> = (0..alerts.len())
                .filter(|i| alerts[*i].state == AlertState::Resolved)
                .collect();
            resolved.sort_by_key(|i| alerts[*i].since);
            let drop: Vec<usize> = resolved
                .into_iter()
                .take(alerts.len() - MAX_ALERTS)
                .collect();
            let mut i = 0;
            alerts.retain(|_| {
                i += 1;
                !drop.contains(&(i - 1))
            });
            alerts.truncate(MAX_ALERTS);
        }
        let count = |s: AlertState| alerts.iter().filter(|a| a.state == s).count() as u32;
        let fired = alerts.iter().filter_map(|a| a.fired_at).max();
        let resolved = alerts.iter().filter_map(|a| a.resolved_at).max();
        let next = AlertRuleStatus {
            firing: count(AlertState::Firing) > 0,
            firing_count: count(AlertState::Firing),
            pending_count: count(AlertState::Pending),
            untracked: untracked as u32,
            last_fired_at: fired.max(before.last_fired_at),
            last_resolved_at: resolved.max(before.last_resolved_at),
            alerts,
            observed_generation: generation_of(obj),
            conditions: before.conditions.clone(),
        };
        if next == before {
            return Ok(Vec::new());
        }
        let status = serde_json::to_value(&next).expect("a status serializes");
        let scope = Scope {
            kind: lookup_kind("alertrules").expect("kind"),
            namespace: Some(&ns),
        };
        let written = self
            .registry
            .update_with(
                scope,
                &rule.metadata.name,
                resource_version(obj),
                Part::Status,
                false,
                |cur| {
                    let mut v = cur.clone();
                    v["status"] = status.clone();
                    Ok(v)
                },
            )
            .await?;
        self.caches.rules.write_through(&written.object);
        Ok(outgoing
            .into_iter()
            .map(|message| Outgoing {
                rule: written.object.clone(),
                message,
            })
            .collect())
    }

    /// Sends one notification to each webhook of its rule, on a task of its own; a delivery
    /// that fails for good is recorded as a Warning Event on the rule.
    fn deliver(&self, out: Outgoing) -> JoinHandle<()> {
        let sender = self.config.sender.clone();
        let registry = self.registry.clone();
        tokio::spawn(async move {
            let Ok(rule) = serde_json::from_value::<AlertRule>(out.rule.clone()) else {
                return;
            };
            for n in &rule.spec.notifications {
                let payload = body(n.webhook.format, &out.message);
                match sender.send(&n.webhook.url, &payload).await {
                    Ok(()) => tracing::info!(
                        rule = out.message.rule,
                        target = out.message.target,
                        notice = ?out.message.notice,
                        "alert notification sent"
                    ),
                    Err(e) => {
                        tracing::warn!(rule = out.message.rule, error = %e, "alert notification failed");
                        crate::reconcilers::record_event(
                            &registry,
                            &out.rule,
                            "Warning",
                            "NotificationFailed",
                            &format!("{:?} of {}: {e}", out.message.notice, out.message.target),
                        )
                        .await;
                    }
                }
            }
        })
    }
}

/// The condition for people: `Memory > 90`, `Crash`.
fn describe(spec: &catalyst_schemas::alert::AlertRuleSpec) -> String {
    let c = &spec.condition;
    match (c.metric, c.event) {
        (Some(m), _) => format!(
            "{m:?} {} {}",
            c.operator.as_deref().unwrap_or(">"),
            c.threshold.unwrap_or_default()
        ),
        (None, Some(e)) => format!("{e:?}"),
        (None, None) => String::new(),
    }
}

fn message(ns: &str, rule: &str, condition: &str, a: &TargetAlert, notice: Notice) -> Message {
    Message {
        notice,
        namespace: ns.to_owned(),
        rule: rule.to_owned(),
        target: a.target.clone(),
        condition: condition.to_owned(),
        message: a.message.clone(),
        value: a.value,
        fired_at: a.fired_at,
        resolved_at: a.resolved_at,
    }
}

/// A copy of every object of `cache`, for the evaluation's plain-`Value` views.
fn owned(cache: &Cache) -> Vec<Value> {
    cache.all().into_iter().map(Arc::unwrap_or_clone).collect()
}
