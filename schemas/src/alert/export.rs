//! AlertRules as Prometheus alerting rules, over the `catalyst_gameserver_*` and
//! `catalyst_node_*` families the API server's `/metrics` exposes (labels `namespace`, `name`,
//! `node`).

use serde_json::{json, Value};

use super::{covers, AlertEvent, AlertMetric, AlertRule};

/// Prometheus rules made of AlertRules, and the rules (or targets) that have no Prometheus
/// form, each with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// `{"groups": [{"name", "rules": [{"alert", "expr", "for", "labels", "annotations"}]}]}`.
    pub document: Value,
    /// `namespace/name: why` of what was left out.
    pub skipped: Vec<String>,
}

/// The CPU cores a server may use: its `resources.cpu`, else its node's capacity, else 1.
pub fn cpu_cores(gameserver: &Value, node: Option<&Value>) -> f64 {
    let quantity = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| s.parse::<crate::Quantity>().ok())
            .filter(|q| !q.is_zero() && !q.is_negative())
            .map(|q| q.milli_value() as f64 / 1000.0)
    };
    quantity(gameserver.pointer("/spec/resources/cpu"))
        .or_else(|| quantity(node.and_then(|n| n.pointer("/status/capacity/cpu"))))
        .unwrap_or(1.0)
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// One group per AlertRule (named `namespace/name`), one rule per GameServer it covers now (a
/// selector cannot be written over the metrics, whose labels are namespace, name and node, so
/// it is expanded to today's servers: export again when servers come and go). `rules`,
/// `gameservers` and `nodes` are API objects; AlertRules that do not parse are skipped.
///
/// Event conditions other than NodeDown have no metric: they are skipped. NodeDown becomes
/// `absent(catalyst_node_gameservers_running{node=…})` for the node each server is bound to.
pub fn prometheus_rules(rules: &[Value], gameservers: &[Value], nodes: &[Value]) -> Export {
    let mut groups = Vec::new();
    let mut skipped = Vec::new();
    for obj in rules {
        let Ok(rule) = serde_json::from_value::<AlertRule>(obj.clone()) else {
            continue;
        };
        let ns = rule.metadata.namespace.clone().unwrap_or_default();
        let rule_name = rule.metadata.name.clone();
        let id = format!("{ns}/{rule_name}");
        let spec = &rule.spec;
        let c = &spec.condition;
        let targets: Vec<&Value> = gameservers
            .iter()
            .filter(|gs| str_at(gs, "/metadata/namespace") == ns && covers(spec, gs))
            .collect();
        if let Some(event) = c.event {
            if event != AlertEvent::NodeDown {
                skipped.push(format!(
                    "{id}: {event:?} has no Prometheus metric (Catalyst evaluates it itself)"
                ));
                continue;
            }
        }
        let mut out = Vec::new();
        for gs in targets {
            let name = str_at(gs, "/metadata/name");
            let sel = format!("namespace=\"{ns}\",name=\"{name}\"");
            let node_name = str_at(gs, "/status/nodeName");
            let (expr, summary) = match (c.metric, c.event) {
                (_, Some(_)) => {
                    if node_name.is_empty() {
                        skipped.push(format!("{id}: {name} is bound to no node yet"));
                        continue;
                    }
                    (
                        format!(
                            "absent(catalyst_node_gameservers_running{{node=\"{node_name}\"}})"
                        ),
                        format!("node {node_name} of {ns}/{name} reports no metrics"),
                    )
                }
                (Some(metric), None) => {
                    let op = c.operator.as_deref().unwrap_or(">");
                    let t = c.threshold.unwrap_or_default();
                    let expr = match metric {
                        AlertMetric::Memory => format!(
                            "100 * catalyst_gameserver_memory_bytes{{{sel}}} / (catalyst_gameserver_memory_limit_bytes{{{sel}}} > 0) {op} {t}"
                        ),
                        AlertMetric::Disk => format!(
                            "100 * catalyst_gameserver_disk_used_bytes{{{sel}}} / (catalyst_gameserver_disk_limit_bytes{{{sel}}} > 0) {op} {t}"
                        ),
                        AlertMetric::Cpu => {
                            let node = nodes
                                .iter()
                                .find(|n| str_at(n, "/metadata/name") == node_name);
                            let cores = cpu_cores(gs, node);
                            format!(
                                "100 * rate(catalyst_gameserver_cpu_seconds_total{{{sel}}}[2m]) / {cores} {op} {t}"
                            )
                        }
                        AlertMetric::Network => format!(
                            "rate(catalyst_gameserver_network_receive_bytes_total{{{sel}}}[2m]) + rate(catalyst_gameserver_network_transmit_bytes_total{{{sel}}}[2m]) {op} {t}"
                        ),
                    };
                    let unit = if metric.is_percent() { "%" } else { " B/s" };
                    (expr, format!("{metric:?} of {ns}/{name} {op} {t}{unit}"))
                }
                (None, None) => continue,
            };
            out.push(json!({
                "alert": alert_name(&rule_name),
                "expr": expr,
                "for": spec.for_,
                "labels": {
                    "catalyst_alertrule": rule_name,
                    "namespace": ns,
                    "name": name,
                },
                "annotations": {"summary": summary},
            }));
        }
        if out.is_empty() {
            skipped.push(format!("{id}: covers no GameServer now"));
            continue;
        }
        groups.push(json!({"name": id, "rules": out}));
    }
    Export {
        document: json!({ "groups": groups }),
        skipped,
    }
}

/// A Prometheus alert name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) of an object name: `high-mem` →
/// `CatalystHighMem`.
fn alert_name(rule: &str) -> String {
    let mut out = String::from("Catalyst");
    for part in rule.split(['-', '.']) {
        let mut cs = part.chars();
        if let Some(first) = cs.next() {
            out.extend(first.to_uppercase());
            out.push_str(cs.as_str());
        }
    }
    out.retain(|c| c.is_ascii_alphanumeric() || c == '_');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "AlertRule",
               "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    fn server(name: &str, labels: Value, cpu: Option<&str>) -> Value {
        let mut gs = json!({"metadata": {"name": name, "namespace": "default", "labels": labels},
                            "spec": {}, "status": {"nodeName": "n1"}});
        if let Some(c) = cpu {
            gs["spec"]["resources"] = json!({ "cpu": c });
        }
        gs
    }

    #[test]
    fn metric_rules_become_one_prometheus_rule_per_covered_server() {
        let hook = json!([{"webhook": {"url": "https://example.com/h"}}]);
        let rules = [
            rule(
                "high-mem",
                json!({"selector": {"game": "mc"}, "for": "5m",
                "condition": {"metric": "Memory", "operator": ">", "threshold": 90.0},
                "notifications": hook}),
            ),
            rule(
                "busy",
                json!({"gameServer": "b", "for": "1m",
                "condition": {"metric": "Cpu", "operator": ">", "threshold": 50.0},
                "notifications": hook}),
            ),
            rule(
                "crash",
                json!({"condition": {"event": "Crash"}, "notifications": hook}),
            ),
            rule(
                "down",
                json!({"gameServer": "a", "condition": {"event": "NodeDown"}, "notifications": hook}),
            ),
        ];
        let servers = [
            server("a", json!({"game": "mc"}), None),
            server("b", json!({"game": "other"}), Some("500m")),
        ];
        let nodes = [json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "4"}}})];
        let e = prometheus_rules(&rules, &servers, &nodes);
        let groups = e.document["groups"].as_array().expect("groups");
        assert_eq!(groups.len(), 3, "{:#}", e.document);
        let mem = &groups[0]["rules"];
        assert_eq!(
            mem.as_array().map(Vec::len),
            Some(1),
            "only a carries game=mc"
        );
        assert_eq!(mem[0]["alert"], "CatalystHighMem");
        assert_eq!(mem[0]["for"], "5m");
        assert_eq!(
            mem[0]["expr"],
            "100 * catalyst_gameserver_memory_bytes{namespace=\"default\",name=\"a\"} / (catalyst_gameserver_memory_limit_bytes{namespace=\"default\",name=\"a\"} > 0) > 90"
        );
        assert_eq!(mem[0]["labels"]["catalyst_alertrule"], "high-mem");
        let cpu = &groups[1]["rules"][0]["expr"];
        assert!(
            cpu.as_str().is_some_and(|s| s.contains("[2m]) / 0.5 > 50")),
            "{cpu}"
        );
        assert_eq!(
            groups[2]["rules"][0]["expr"],
            "absent(catalyst_node_gameservers_running{node=\"n1\"})"
        );
        assert_eq!(e.skipped.len(), 1);
        assert!(e.skipped[0].starts_with("default/crash: Crash has no Prometheus metric"));
    }

    #[test]
    fn cpu_cores_come_from_the_limit_else_the_node() {
        let node = json!({"status": {"capacity": {"cpu": "8"}}});
        assert_eq!(
            cpu_cores(&server("a", json!({}), Some("1500m")), Some(&node)),
            1.5
        );
        assert_eq!(cpu_cores(&server("a", json!({}), None), Some(&node)), 8.0);
        assert_eq!(cpu_cores(&server("a", json!({}), None), None), 1.0);
    }
}
