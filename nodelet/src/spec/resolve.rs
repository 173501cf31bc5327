//! What a server asks for, with its template's defaults filled in, and where and as whom its
//! container runs.

use std::collections::BTreeMap;
use std::path::Path;

use catalyst_schemas::gameserver::{
    GameServer, GameServerPort, InstallSpec, NetworkMode, ReadySpec, Resources, StopSpec,
};
use catalyst_schemas::template::Template;

use super::error::SpecError;
use super::limits::DefaultLimits;
use crate::userns::IdRange;

/// A server's wishes with the template's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Image reference.
    pub image: String,
    /// Startup line (`{{VAR}}` not yet substituted), if any.
    pub startup: Option<String>,
    /// Variables: template defaults overridden by the server's values.
    pub variables: BTreeMap<String, String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Limits.
    pub resources: Resources,
    /// Ports (the status's host ports are the controller's business).
    pub ports: Vec<GameServerPort>,
    /// How to stop.
    pub stop: Option<StopSpec>,
    /// When ready.
    pub ready: Option<ReadySpec>,
    /// Install script.
    pub install: Option<InstallSpec>,
    /// Network mode.
    pub network: NetworkMode,
}

/// Resolves a server against its template (which must be given when the server names one).
pub fn resolve(gs: &GameServer, template: Option<&Template>) -> Result<Resolved, SpecError> {
    let s = &gs.spec;
    let t = match (&s.template, template) {
        (Some(name), None) => return Err(SpecError::NoTemplate(name.clone())),
        (Some(_), Some(t)) => Some(&t.spec),
        (None, _) => None,
    };
    let image = s
        .image
        .clone()
        .or_else(|| t.and_then(|t| t.images.first().map(|i| i.image.clone())))
        .ok_or(SpecError::NoImage)?;
    let mut variables = BTreeMap::new();
    if let Some(t) = t {
        for v in &t.variables {
            if let Some(d) = &v.default {
                variables.insert(v.name.clone(), d.clone());
            }
        }
    }
    variables.extend(s.variables.clone());
    let pick_res = |a: &Option<_>, b: Option<&Option<_>>| a.clone().or(b.cloned().flatten());
    let resources = Resources {
        cpu: pick_res(&s.resources.cpu, t.map(|t| &t.resources.cpu)),
        memory: pick_res(&s.resources.memory, t.map(|t| &t.resources.memory)),
        disk: pick_res(&s.resources.disk, t.map(|t| &t.resources.disk)),
        pids: s.resources.pids.or(t.and_then(|t| t.resources.pids)),
    };
    Ok(Resolved {
        image,
        startup: s
            .startup
            .clone()
            .or_else(|| t.map(|t| t.startup.clone()).filter(|x| !x.is_empty())),
        variables,
        env: s.env.clone(),
        resources,
        ports: if s.ports.is_empty() {
            t.map(|t| t.ports.clone()).unwrap_or_default()
        } else {
            s.ports.clone()
        },
        stop: s.stop.clone().or_else(|| t.and_then(|t| t.stop.clone())),
        ready: s.ready.clone().or_else(|| t.and_then(|t| t.ready.clone())),
        install: s
            .install
            .clone()
            .or_else(|| t.and_then(|t| t.install.clone())),
        network: s.network,
    })
}

/// Where and as whom a server's container runs.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    /// Container ID (also the hostname's source).
    pub id: &'a str,
    /// Hostname inside the container.
    pub hostname: &'a str,
    /// The server's data directory on the node, mounted at `/home/container`.
    pub data_dir: &'a Path,
    /// The network namespace to join (Bridge; owned by `userns`), or None for Host.
    pub netns: Option<&'a Path>,
    /// The server's persistent user namespace, mapped to `range`.
    pub userns: &'a Path,
    /// The server's host id range: container uid 0 is `range.start`.
    pub range: IdRange,
    /// uid the process runs as, inside the container.
    pub uid: u32,
    /// gid, inside the container.
    pub gid: u32,
    /// Limits for what the server leaves unset.
    pub defaults: DefaultLimits,
    /// The server's UID, for `P_SERVER_UUID`.
    pub server_uid: &'a str,
}
