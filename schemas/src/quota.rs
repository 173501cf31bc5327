//! The Quota kind: per-namespace limits on servers, resources, host ports and templates, with
//! the pure arithmetic the API server's admission uses (`usage_of`, `check`, `admit_server`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gameserver::GameServerSpec;
use crate::quantity::Quantity;
use crate::resource::{resource, Validate};
use crate::validation::{self, Cause, Causes, FieldPath};

resource! {
    /// Limits on what the GameServers of one namespace may hold together.
    Quota {
        spec: QuotaSpec,
        status: QuotaStatus,
        plural: "quotas",
        singular: "quota",
        short: [],
        namespaced: true,
        name_rule: validation::dns_subdomain,
    }
}

/// The CPU a server without `resources.cpu` counts as: the nodelet's default limit, 1 core.
pub const DEFAULT_CPU: &str = "1";
/// The memory a server without `resources.memory` counts as: the nodelet's default, 1Gi.
pub const DEFAULT_MEMORY: &str = "1Gi";

/// The limits; every one absent means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaSpec {
    /// How many GameServers the namespace may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_game_servers: Option<i64>,
    /// The sum of the servers' `resources.cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// The sum of the servers' `resources.memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// The sum of the servers' `resources.disk`; when set, every new server must set its disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Quantity>,
    /// How many host ports the servers may hold together (one per entry of `spec.ports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<i64>,
    /// When set, servers may only be made from these Templates (and must name one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_templates: Vec<String>,
    /// How many Backups the namespace may hold (each is kept on a node's disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backups: Option<i64>,
}

/// What the namespace's servers hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaStatus {
    /// The current usage.
    #[serde(default)]
    pub used: QuotaUsage,
}

/// Amounts held (or asked for) by GameServers. Absent quantities are zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaUsage {
    /// GameServers.
    #[serde(default)]
    pub game_servers: i64,
    /// CPU cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Quantity>,
    /// Host ports.
    #[serde(default)]
    pub ports: i64,
}

fn non_negative_quantity(q: &Option<Quantity>, path: &FieldPath, causes: &mut Causes) {
    if let Some(q) = q {
        causes.check(!q.is_negative(), path, "must not be negative");
    }
}

impl Validate for QuotaSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        if let Some(n) = self.max_game_servers {
            causes.check(
                n >= 0,
                &path.child("maxGameServers"),
                "must not be negative",
            );
        }
        if let Some(n) = self.max_backups {
            causes.check(n >= 0, &path.child("maxBackups"), "must not be negative");
        }
        non_negative_quantity(&self.cpu, &path.child("cpu"), causes);
        non_negative_quantity(&self.memory, &path.child("memory"), causes);
        non_negative_quantity(&self.disk, &path.child("disk"), causes);
        if let Some(n) = self.ports {
            causes.check(n >= 0, &path.child("ports"), "must not be negative");
        }
        for (i, t) in self.allowed_templates.iter().enumerate() {
            let p = path.child("allowedTemplates").index(i);
            causes.rule(&p, validation::dns_subdomain(t));
            causes.check(
                !self.allowed_templates[..i].contains(t),
                &p,
                format!("{t:?} is listed twice"),
            );
        }
    }
}

impl Validate for QuotaStatus {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        let p = path.child("used");
        let u = &self.used;
        causes.check(
            u.game_servers >= 0,
            &p.child("gameServers"),
            "must not be negative",
        );
        non_negative_quantity(&u.cpu, &p.child("cpu"), causes);
        non_negative_quantity(&u.memory, &p.child("memory"), causes);
        non_negative_quantity(&u.disk, &p.child("disk"), causes);
        causes.check(u.ports >= 0, &p.child("ports"), "must not be negative");
    }
}

fn parse(text: &str) -> Quantity {
    text.parse().expect("a valid built-in quantity")
}

/// `a + b`, either absent meaning zero; absent when the sum is zero.
fn add(a: Option<&Quantity>, b: Option<&Quantity>) -> Option<Quantity> {
    let sum = match (a, b) {
        (None, None) => return None,
        (Some(a), None) | (None, Some(a)) => a.clone(),
        (Some(a), Some(b)) => a.add(b),
    };
    (!sum.is_zero()).then_some(sum)
}

impl QuotaUsage {
    /// The sum of two usages.
    pub fn plus(&self, other: &QuotaUsage) -> QuotaUsage {
        QuotaUsage {
            game_servers: self.game_servers.saturating_add(other.game_servers),
            cpu: add(self.cpu.as_ref(), other.cpu.as_ref()),
            memory: add(self.memory.as_ref(), other.memory.as_ref()),
            disk: add(self.disk.as_ref(), other.disk.as_ref()),
            ports: self.ports.saturating_add(other.ports),
        }
    }
}

/// What one server counts as: 1 server; its `resources.cpu` (absent: [`DEFAULT_CPU`]), its
/// `resources.memory` (absent: [`DEFAULT_MEMORY`]) — the nodelet's defaults, so leaving them
/// out does not escape the quota; its `resources.disk` (absent: nothing, as nothing limits its
/// disk; [`admit_server`] refuses such servers where the quota limits disk); one host port per
/// entry of `spec.ports`, whatever its policy or network mode (a TCPUDP port is one number).
pub fn usage_of_spec(spec: &GameServerSpec) -> QuotaUsage {
    let r = &spec.resources;
    QuotaUsage {
        game_servers: 1,
        cpu: Some(r.cpu.clone().unwrap_or_else(|| parse(DEFAULT_CPU))).filter(|q| !q.is_zero()),
        memory: Some(r.memory.clone().unwrap_or_else(|| parse(DEFAULT_MEMORY)))
            .filter(|q| !q.is_zero()),
        disk: r.disk.clone().filter(|q| !q.is_zero()),
        ports: i64::try_from(spec.ports.len()).unwrap_or(i64::MAX),
    }
}

/// The sum of what `servers` hold, each counted as [`usage_of_spec`] says. Stopped, suspended
/// and terminating servers count: they keep their reservation until they are gone.
pub fn usage_of(servers: &[crate::GameServer]) -> QuotaUsage {
    servers.iter().fold(QuotaUsage::default(), |acc, s| {
        acc.plus(&usage_of_spec(&s.spec))
    })
}

fn show(q: Option<&Quantity>) -> String {
    q.map_or_else(|| "0".to_owned(), ToString::to_string)
}

fn zero() -> Quantity {
    parse("0")
}

/// Whether `adding` fits beside `used` under `spec`. Only dimensions `adding` grows are
/// checked (a namespace already over a limit may still add what does not grow it). Every
/// exceeded limit is one cause, named by the GameServer field at fault: `metadata.namespace`
/// (the number of servers), `spec.resources.cpu|memory|disk`, `spec.ports`; the message reads
/// `quota memory 4Gi: 3Gi used, 2Gi asked`.
pub fn check(spec: &QuotaSpec, used: &QuotaUsage, adding: &QuotaUsage) -> Result<(), Vec<Cause>> {
    let mut causes = Vec::new();
    let mut counted = |field: &str, what: &str, limit: Option<i64>, used: i64, asked: i64| {
        if let Some(limit) = limit {
            if asked > 0 && used.saturating_add(asked) > limit {
                causes.push(Cause {
                    field: field.to_owned(),
                    message: format!("quota {what} {limit}: {used} used, {asked} asked"),
                });
            }
        }
    };
    counted(
        "metadata.namespace",
        "maxGameServers",
        spec.max_game_servers,
        used.game_servers,
        adding.game_servers,
    );
    counted("spec.ports", "ports", spec.ports, used.ports, adding.ports);
    let mut quantities = Vec::new();
    for (field, what, limit, used, asked) in [
        (
            "spec.resources.cpu",
            "cpu",
            &spec.cpu,
            &used.cpu,
            &adding.cpu,
        ),
        (
            "spec.resources.memory",
            "memory",
            &spec.memory,
            &used.memory,
            &adding.memory,
        ),
        (
            "spec.resources.disk",
            "disk",
            &spec.disk,
            &used.disk,
            &adding.disk,
        ),
    ] {
        let (Some(limit), Some(asked)) = (limit, asked) else {
            continue;
        };
        if asked <= &zero() {
            continue;
        }
        let total = add(used.as_ref(), Some(asked)).unwrap_or_else(zero);
        if &total > limit {
            quantities.push(Cause {
                field: field.to_owned(),
                message: format!(
                    "quota {what} {limit}: {} used, {asked} asked",
                    show(used.as_ref())
                ),
            });
        }
    }
    causes.extend(quantities);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

/// Whether `spec.allowedTemplates` lets a server be made from `template`.
pub fn template_allowed(spec: &QuotaSpec, template: Option<&str>) -> Result<(), Cause> {
    if spec.allowed_templates.is_empty()
        || template.is_some_and(|t| spec.allowed_templates.iter().any(|a| a == t))
    {
        return Ok(());
    }
    let allowed = spec.allowed_templates.join(", ");
    Err(Cause {
        field: "spec.template".to_owned(),
        message: match template {
            Some(t) => format!("template {t:?} is not allowed by the quota (allowed: {allowed})"),
            None => format!("the quota requires a template (allowed: {allowed})"),
        },
    })
}

/// Everything a quota asks of a new server: an allowed template, an explicit disk where the
/// quota limits disk, and room for it beside `used` ([`check`] of [`usage_of_spec`]).
pub fn admit_server(
    spec: &QuotaSpec,
    used: &QuotaUsage,
    server: &GameServerSpec,
) -> Result<(), Vec<Cause>> {
    let mut causes = Vec::new();
    if let Err(c) = template_allowed(spec, server.template.as_deref()) {
        causes.push(c);
    }
    if let (Some(limit), None) = (&spec.disk, &server.resources.disk) {
        causes.push(Cause {
            field: "spec.resources.disk".to_owned(),
            message: format!("is required: the quota limits disk to {limit}"),
        });
    }
    if let Err(more) = check(spec, used, &usage_of_spec(server)) {
        causes.extend(more);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;
    use crate::GameServer;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    fn server(resources: serde_json::Value, ports: usize) -> GameServer {
        let ports: Vec<serde_json::Value> = (0..ports)
            .map(|i| serde_json::json!({"containerPort": 25565 + i}))
            .collect();
        let spec = serde_json::json!({"image": "busybox", "resources": resources, "ports": ports});
        GameServer::new("s", serde_json::from_value(spec).unwrap())
    }

    #[test]
    fn usage_sums_resources_and_ports_with_defaults_for_missing_cpu_and_memory() {
        let servers = [
            server(
                serde_json::json!({"cpu": "1500m", "memory": "2Gi", "disk": "10Gi"}),
                2,
            ),
            server(serde_json::json!({"cpu": "2", "memory": "512Mi"}), 1),
            server(serde_json::json!({}), 0),
        ];
        let u = usage_of(&servers);
        assert_eq!(u.game_servers, 3);
        assert_eq!(u.cpu, Some(q("4500m")));
        assert_eq!(u.cpu.as_ref().unwrap().as_str(), "4500m");
        assert_eq!(u.memory, Some(q("3584Mi")));
        assert_eq!(u.memory.as_ref().unwrap().as_str(), "3584Mi");
        assert_eq!(u.disk.as_ref().map(Quantity::as_str), Some("10Gi"));
        assert_eq!(u.ports, 3);
        assert_eq!(usage_of(&[]), QuotaUsage::default());
    }

    #[test]
    fn check_names_each_exceeded_limit_and_lets_the_rest_through() {
        let spec = QuotaSpec {
            max_game_servers: Some(3),
            memory: Some(q("4Gi")),
            cpu: Some(q("4")),
            ports: Some(4),
            ..Default::default()
        };
        let used = QuotaUsage {
            game_servers: 3,
            memory: Some(q("3Gi")),
            cpu: Some(q("1")),
            ports: 4,
            ..Default::default()
        };
        let adding = QuotaUsage {
            game_servers: 1,
            memory: Some(q("2Gi")),
            cpu: Some(q("3")),
            disk: Some(q("100Gi")),
            ports: 1,
        };
        let causes = check(&spec, &used, &adding).unwrap_err();
        let got: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "metadata.namespace",
                    "quota maxGameServers 3: 3 used, 1 asked"
                ),
                ("spec.ports", "quota ports 4: 4 used, 1 asked"),
                (
                    "spec.resources.memory",
                    "quota memory 4Gi: 3Gi used, 2Gi asked"
                ),
            ]
        );
        let fits = QuotaUsage {
            memory: Some(q("1Gi")),
            cpu: Some(q("3")),
            ..Default::default()
        };
        assert_eq!(check(&spec, &used, &fits), Ok(()));
        assert_eq!(check(&QuotaSpec::default(), &used, &adding), Ok(()));
        let from_nothing = check(
            &QuotaSpec {
                cpu: Some(q("500m")),
                ..Default::default()
            },
            &QuotaUsage::default(),
            &QuotaUsage {
                cpu: Some(q("1")),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(from_nothing[0].message, "quota cpu 500m: 0 used, 1 asked");
    }

    #[test]
    fn admitting_a_server_checks_templates_disk_and_room() {
        let spec = QuotaSpec {
            memory: Some(q("2Gi")),
            disk: Some(q("20Gi")),
            allowed_templates: vec!["paper".into()],
            ..Default::default()
        };
        let mut gs = server(serde_json::json!({"memory": "1Gi", "disk": "10Gi"}), 1).spec;
        gs.template = Some("paper".into());
        assert_eq!(admit_server(&spec, &QuotaUsage::default(), &gs), Ok(()));
        let used = QuotaUsage {
            memory: Some(q("1536Mi")),
            ..Default::default()
        };
        let full = admit_server(&spec, &used, &gs).unwrap_err();
        assert_eq!(full[0].field, "spec.resources.memory");
        let mut bad = server(serde_json::json!({}), 0).spec;
        bad.template = Some("vanilla".into());
        let fields: Vec<String> = admit_server(&spec, &QuotaUsage::default(), &bad)
            .unwrap_err()
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["spec.template", "spec.resources.disk"]);
        bad.template = None;
        let no_template = template_allowed(&spec, None).unwrap_err();
        assert!(
            no_template.message.contains("requires a template"),
            "{}",
            no_template.message
        );
        assert!(template_allowed(&QuotaSpec::default(), None).is_ok());
    }

    #[test]
    fn quota_validation_names_the_field() {
        let mut quota = Quota::new(
            "limits",
            QuotaSpec {
                max_game_servers: Some(-1),
                memory: Some(q("-1Gi")),
                ports: Some(-2),
                allowed_templates: vec!["Paper".into(), "x".into(), "x".into()],
                ..Default::default()
            },
        );
        quota.metadata.namespace = Some("shop".into());
        let fields: Vec<String> = quota
            .validate()
            .unwrap_err()
            .causes
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.maxGameServers",
                "spec.memory",
                "spec.ports",
                "spec.allowedTemplates[0]",
                "spec.allowedTemplates[2]"
            ]
        );
        quota.spec = QuotaSpec {
            cpu: Some(q("8")),
            ..Default::default()
        };
        quota.status = Some(QuotaStatus {
            used: QuotaUsage {
                game_servers: -1,
                ..Default::default()
            },
        });
        let err = quota.validate().unwrap_err();
        assert_eq!(err.causes[0].field, "status.used.gameServers");
        quota.status = None;
        assert!(quota.validate().is_ok());
    }
}
