//! The server's process: its environment (image, Pterodactyl's conventions, variables) and its
//! argv (the startup line, placeholders turned into environment references).

use std::collections::BTreeMap;

use super::error::SpecError;
use super::resolve::{Placement, Resolved};
use crate::image::ImageConfig;

/// The environment of a server's process, in order: image env, Pterodactyl's conventional
/// variables, template/server variables, then `spec.env`.
pub fn environment(r: &Resolved, image: &ImageConfig, p: &Placement<'_>) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    fn set(env: &mut BTreeMap<String, String>, order: &mut Vec<String>, k: &str, v: String) {
        if env.insert(k.to_owned(), v).is_none() {
            order.push(k.to_owned());
        }
    }
    macro_rules! set {
        ($k:expr, $v:expr $(,)?) => {
            set(&mut env, &mut order, $k, $v)
        };
    }
    for line in image.config.env.clone().unwrap_or_default() {
        if let Some((k, v)) = line.split_once('=') {
            set!(k, v.to_owned());
        }
    }
    if !env.contains_key("PATH") {
        set!(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    set!("HOME", "/home/container".into());
    set!("TZ", "UTC".into());
    set!("SERVER_IP", "0.0.0.0".into());
    if let Some(port) = r.ports.first() {
        set!("SERVER_PORT", port.container_port.to_string());
    }
    if let Some(m) = &r.resources.memory {
        set!("SERVER_MEMORY", (m.value() / (1 << 20)).to_string());
    }
    set!("P_SERVER_UUID", p.server_uid.to_owned());
    if let Some(startup) = &r.startup {
        set!("STARTUP", startup.clone());
    }
    for (k, v) in &r.variables {
        set!(k, v.clone());
    }
    for (k, v) in &r.env {
        set!(k, v.clone());
    }
    order
        .into_iter()
        .map(|k| format!("{k}={}", env[&k]))
        .collect()
}

/// The argv of a server's process: the startup line run by `/bin/sh -c` with its placeholders
/// turned into references to the environment (every variable is in it, see [`environment`]),
/// so that no value is ever parsed as shell syntax; else the image's entrypoint + cmd.
pub fn argv(r: &Resolved, image: &ImageConfig) -> Result<Vec<String>, SpecError> {
    if let Some(startup) = &r.startup {
        let line = crate::startup::substitute(startup);
        return Ok(vec!["/bin/sh".into(), "-c".into(), line]);
    }
    let mut args = image.config.entrypoint.clone().unwrap_or_default();
    args.extend(image.config.cmd.clone().unwrap_or_default());
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(args)
}
