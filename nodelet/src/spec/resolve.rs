//! What a server asks for, with its template's defaults filled in, and where and as whom its
//! container runs.

use std::collections::BTreeMap;
use std::path::Path;

use catalyst_schemas::gameserver::{
    GameServer, GameServerPort, InstallSpec, NetworkMode, ReadySpec, Resources, StopSpec,
};
use catalyst_schemas::template::{ConfigFile, Template};

use super::error::SpecError;
use super::limits::DefaultLimits;
use crate::userns::IdRange;

/// A server's wishes with the template's defaults filled in. A start keeps the one it used
/// (the worker persists it), so a Template edited later reaches the server at its next start.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
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
    /// Edits to configuration files before each start.
    #[serde(default)]
    pub config_files: Vec<ConfigFile>,
    /// Files the file manager refuses (gitignore patterns).
    #[serde(default)]
    pub file_denylist: Vec<String>,
    /// The `metadata.generation` of the template used.
    #[serde(default)]
    pub template_generation: Option<i64>,
}

/// Resolves a server against its template (which must be given when the server names one).
pub fn resolve(gs: &GameServer, template: Option<&Template>) -> Result<Resolved, SpecError> {
    let s = &gs.spec;
    let t = match (&s.template, template) {
        (Some(name), None) => return Err(SpecError::NoTemplate(name.clone())),
        (Some(_), Some(t)) => Some(&t.spec),
        (None, _) => None,
    };
    let template_generation = match (&s.template, template) {
        (Some(_), Some(t)) => Some(t.metadata.generation.unwrap_or(1)),
        _ => None,
    };
    // the template's image map applies to every image a server of it runs
    let map = |image: String| match t {
        Some(t) => t.map_image(&image),
        None => image,
    };
    let image = s
        .image
        .clone()
        .or_else(|| t.and_then(|t| t.images.first().map(|i| i.image.clone())))
        .map(map)
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
            .or_else(|| t.and_then(|t| t.install.clone()))
            .map(|mut i| {
                i.image = i.image.map(map);
                // eggs carry Windows line ends; a shell reads `\r` as part of each command
                i.script = i.script.replace("\r\n", "\n");
                i
            }),
        network: s.network,
        config_files: t.map(|t| t.config_files.clone()).unwrap_or_default(),
        file_denylist: t.map(|t| t.file_denylist.clone()).unwrap_or_default(),
        template_generation,
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
