//! Unit tests of the runtime spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use catalyst_schemas::gameserver::{NetworkMode, Resources};
use oci_spec::runtime::{Capability, LinuxDeviceType, LinuxNamespaceType, Spec};

use super::*;
use crate::userns::IdRange;

fn resolved(memory: Option<&str>) -> Resolved {
    let resources = Resources {
        memory: memory.map(|m| m.parse().expect("quantity")),
        ..Default::default()
    };
    Resolved {
        image: "img".into(),
        startup: Some("run {{X}}".into()),
        variables: BTreeMap::new(),
        env: BTreeMap::new(),
        resources,
        ports: Vec::new(),
        stop: None,
        ready: None,
        install: None,
        network: NetworkMode::Bridge,
        config_files: Vec::new(),
        file_denylist: Vec::new(),
        template_generation: None,
    }
}

fn build(r: &Resolved, netns: Option<&Path>) -> Spec {
    let data = PathBuf::from("/data/servers/x");
    let userns = PathBuf::from("/run/catalyst/userns/catalyst-gs-x");
    let p = Placement {
        id: "gs-x",
        hostname: "x",
        data_dir: &data,
        netns,
        userns: &userns,
        range: IdRange {
            start: 1 << 30,
            size: 65536,
        },
        uid: 1000,
        gid: 1000,
        defaults: DefaultLimits::default(),
        server_uid: "x",
    };
    runtime_spec(r, vec!["sh".into()], Vec::new(), &p, true).expect("spec")
}

#[test]
fn the_servers_process_holds_no_capability_and_runs_under_seccomp_in_its_user_namespace() {
    let netns = PathBuf::from("/run/netns/catalyst-gs-x");
    let spec = build(&resolved(Some("256Mi")), Some(&netns));
    let process = spec.process().as_ref().expect("process");
    let caps = process.capabilities().as_ref().expect("caps");
    for set in [
        caps.bounding(),
        caps.effective(),
        caps.permitted(),
        caps.inheritable(),
        caps.ambient(),
    ] {
        assert_eq!(set.as_ref().map(|s| s.len()), Some(0));
    }
    assert_eq!(process.no_new_privileges(), Some(true));
    assert_eq!(process.user().uid(), 1000);
    let linux = spec.linux().as_ref().expect("linux");
    assert!(linux.seccomp().is_some());
    let ns = linux.namespaces().as_ref().expect("namespaces");
    let user = ns
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .expect("a user namespace");
    assert_eq!(
        user.path().as_deref(),
        Some(Path::new("/run/catalyst/userns/catalyst-gs-x"))
    );
    let map = &linux.uid_mappings().as_ref().expect("uid map")[0];
    assert_eq!(
        (map.container_id(), map.host_id(), map.size()),
        (0, 1 << 30, 65536)
    );
    let masked = linux.masked_paths().as_ref().expect("masked");
    for p in [
        "/proc/kcore",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ] {
        assert!(masked.iter().any(|m| m == p), "{p}");
    }
    let devices = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .expect("devices");
    assert!(!devices[0].allow() && devices[0].typ() == Some(LinuxDeviceType::A));
    let mem = linux
        .resources()
        .as_ref()
        .and_then(|r| r.memory().as_ref().and_then(|m| m.limit()));
    assert_eq!(mem, Some(256 << 20));
}

#[test]
fn a_server_without_limits_gets_the_defaults_never_unlimited() {
    let spec = build(&resolved(None), None);
    let res = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .expect("resources");
    assert_eq!(res.memory().as_ref().and_then(|m| m.limit()), Some(1 << 30));
    assert_eq!(res.pids().as_ref().map(|p| p.limit()), Some(512));
    assert_eq!(
        res.cpu().as_ref().and_then(|c| c.quota()),
        Some(100_000),
        "one CPU"
    );
}

#[test]
fn host_networking_gets_the_hosts_sys_read_only_and_no_sysctls() {
    let spec = build(&resolved(None), None);
    let sys = spec
        .mounts()
        .as_ref()
        .expect("mounts")
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .expect("/sys");
    assert_eq!(sys.typ().as_deref(), Some("bind"));
    assert!(sys
        .options()
        .as_ref()
        .expect("options")
        .iter()
        .any(|o| o == "ro"));
    assert!(spec.linux().as_ref().expect("linux").sysctl().is_none());
}

#[test]
fn the_install_container_holds_dockers_default_capabilities_and_their_seccomp_profile() {
    let mut spec = build(&resolved(None), None);
    install_layout(&mut spec, Path::new("/data"), Path::new("/scripts"));
    let process = spec.process().as_ref().expect("process");
    assert_eq!(process.user().uid(), 0);
    let caps = process.capabilities().as_ref().expect("caps");
    assert_eq!(
        caps.effective().as_ref().map(|s| s.len()),
        Some(INSTALL_CAPABILITIES.len())
    );
    assert_eq!(caps.ambient().as_ref().map(|s| s.len()), Some(0));
    assert!(!caps
        .bounding()
        .as_ref()
        .expect("bounding")
        .contains(&Capability::SysAdmin));
    let profile = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().clone())
        .expect("seccomp");
    assert_eq!(profile, crate::seccomp::profile(INSTALL_CAPABILITIES));
}

#[test]
fn a_template_maps_images_normalises_install_scripts_and_names_its_generation() {
    let template: catalyst_schemas::template::Template = serde_json::from_value(serde_json::json!({
        "apiVersion": "catalyst.dev/v1alpha1", "kind": "Template",
        "metadata": {"name": "paper", "generation": 4},
        "spec": {
            "images": [{"name": "Java 21", "image": "ghcr.io/pterodactyl/yolks:java_21"}],
            "imageMap": {"ghcr.io/pterodactyl/": "mirror.local/ptero/",
                         "ghcr.io/pterodactyl/installers:alpine": "oci-archive:/srv/alpine.tar"},
            "install": {"image": "ghcr.io/pterodactyl/installers:alpine", "entrypoint": "ash",
                        "script": "#!/bin/ash\r\ncd /mnt/server\r\necho ok\r\n"},
            "configFiles": [{"path": "server.properties", "parser": "properties",
                             "replace": [{"match": "server-port", "value": "{{server.build.default.port}}"}]}],
            "fileDenylist": ["*.jar"]}}))
    .expect("template");
    let gs: catalyst_schemas::gameserver::GameServer = serde_json::from_value(serde_json::json!({
        "apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
        "metadata": {"name": "x", "namespace": "default"},
        "spec": {"template": "paper"}}))
    .expect("server");
    let r = resolve(&gs, Some(&template)).expect("resolved");
    assert_eq!(r.image, "mirror.local/ptero/yolks:java_21");
    let install = r.install.expect("install");
    assert_eq!(
        install.image.as_deref(),
        Some("oci-archive:/srv/alpine.tar")
    );
    assert_eq!(install.script, "#!/bin/ash\ncd /mnt/server\necho ok\n");
    assert_eq!(r.template_generation, Some(4));
    assert_eq!(r.config_files.len(), 1);
    assert_eq!(r.file_denylist, ["*.jar"]);
    // a server naming its own image gets it mapped too
    let mut own = gs.clone();
    own.spec.image = Some("ghcr.io/pterodactyl/yolks:java_17".into());
    assert_eq!(
        resolve(&own, Some(&template)).expect("resolved").image,
        "mirror.local/ptero/yolks:java_17"
    );
}
