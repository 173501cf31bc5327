//! Admission of GameServer specs: references, variables, ports.

use super::*;
use crate::validation::Cause;
use serde_json::json;

#[test]
fn archive_references_must_be_absolute_without_dot_dot_or_control_characters() {
    assert!(image_reference("oci-archive:/var/lib/catalyst/images/a.tar").is_ok());
    for bad in [
        "oci-archive:images/a.tar",
        "oci-archive:./a.tar",
        "oci-archive:/var/lib/catalyst/images/../../../etc/shadow",
        "oci-archive:/var/lib/catalyst/images/..",
        "oci-archive:/a\u{0}b",
        "oci-archive:/a\nb",
        "oci-archive:",
    ] {
        assert!(image_reference(bad).is_err(), "{bad:?}");
    }
}

/// The causes admission reports for a GameServer with `spec`.
fn causes(spec: serde_json::Value) -> Vec<Cause> {
    let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
        "metadata": {"name": "gs", "namespace": "default"}, "spec": spec});
    crate::admit(obj)
        .err()
        .map(|e| e.causes)
        .unwrap_or_default()
}

fn fields(causes: &[Cause]) -> Vec<&str> {
    causes.iter().map(|c| c.field.as_str()).collect()
}

#[test]
fn variable_and_env_values_with_nul_cr_or_lf_are_refused_by_field() {
    let got = causes(json!({"image": "busybox",
        "variables": {"MOTD": "hi\nthere", "OK": "a b $(x) 'q' \"d\"", "CR": "a\rb"},
        "env": {"TZ": "Europe/Berlin", "BAD": "x\u{0}y"}}));
    assert_eq!(
        fields(&got),
        [
            "spec.variables[CR]",
            "spec.variables[MOTD]",
            "spec.env[BAD]"
        ]
    );
    assert!(got.iter().all(|c| c.message.contains("no NUL, CR or LF")));
}

#[test]
fn variable_and_env_names_must_be_environment_names() {
    let got = causes(json!({"image": "busybox",
        "variables": {"1X": "v", "A-B": "v", "_ok": "v"}, "env": {"has space": "v"}}));
    assert_eq!(
        fields(&got),
        [
            "spec.variables[1X]",
            "spec.variables[A-B]",
            "spec.env[has space]"
        ]
    );
}

#[test]
fn static_host_ports_below_1024_are_refused_naming_the_rule() {
    let got = causes(json!({"image": "busybox", "ports": [
        {"containerPort": 22, "policy": "Static", "hostPort": 22},
        {"containerPort": 25565, "policy": "Static", "hostPort": 1024},
        {"containerPort": 25566, "policy": "Static", "hostPort": 65535}]}));
    assert_eq!(fields(&got), ["spec.ports[0].hostPort"]);
    assert_eq!(
        got[0].message,
        "a Static host port must be 1024-65535 (ports below 1024 are privileged), not 22"
    );
    let got = causes(json!({"image": "busybox", "ports": [
        {"containerPort": 1, "policy": "Static", "hostPort": 65536}]}));
    assert_eq!(fields(&got), ["spec.ports[0].hostPort"]);
}

#[test]
fn passthrough_ports_below_1024_are_refused_on_the_container_port() {
    let got = causes(json!({"image": "busybox", "ports": [
        {"containerPort": 80, "policy": "Passthrough"},
        {"containerPort": 27015, "policy": "Passthrough"},
        {"containerPort": 22, "policy": "Dynamic"}]}));
    assert_eq!(fields(&got), ["spec.ports[0].containerPort"]);
    assert!(got[0].message.contains("Passthrough"), "{}", got[0].message);
    assert!(got[0].message.contains("1024-65535"), "{}", got[0].message);
}

#[test]
fn fixed_host_ports_follow_the_policy() {
    let port = |policy, host_port| GameServerPort {
        name: String::new(),
        container_port: 25565,
        host_port,
        protocol: Protocol::TCP,
        policy,
    };
    assert_eq!(port(PortPolicy::Dynamic, None).fixed_host_port(), None);
    assert_eq!(
        port(PortPolicy::Static, Some(7001)).fixed_host_port(),
        Some(7001)
    );
    assert_eq!(
        port(PortPolicy::Passthrough, None).fixed_host_port(),
        Some(25565)
    );
}

#[test]
fn a_disk_is_at_least_16mi_the_smallest_filesystem_a_node_makes() {
    let small = causes(json!({"image": "busybox", "resources": {"disk": "8Mi"}}));
    assert_eq!(fields(&small), ["spec.resources.disk"]);
    assert!(small[0].message.contains("at least 16Mi"), "{small:?}");
    let zero = causes(json!({"image": "busybox", "resources": {"disk": "0"}}));
    assert_eq!(fields(&zero), ["spec.resources.disk"], "one cause, not two");
    assert!(causes(json!({"image": "busybox", "resources": {"disk": "16Mi"}})).is_empty());
}
