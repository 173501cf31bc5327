use catalyst_schemas::lookup_kind;
use serde_json::{json, Value};

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn survival() -> Value {
    json!({
        "apiVersion": "catalyst.dev/v1alpha1",
        "kind": "GameServer",
        "metadata": {
            "name": "survival",
            "namespace": "default",
            "uid": "0b7c",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2026-03-01T11:00:00Z",
            "labels": {"game": "minecraft", "tier": "paid"},
            "managedFields": [{"manager": "catalystctl", "operation": "Apply"}]
        },
        "spec": {
            "image": "itzg/minecraft-server",
            "ports": [{"name": "game", "containerPort": 25565, "protocol": "TCP"}],
            "state": "Running"
        },
        "status": {
            "phase": "Running",
            "nodeName": "node-a",
            "address": "10.0.0.5",
            "conditions": [
                {"type": "Scheduled", "status": "True", "reason": "Bound", "message": "bound to node-a"},
                {"type": "Ready", "status": "False", "reason": "Starting"}
            ]
        }
    })
}

fn event(name: &str, reason: &str, last: &str, message: &str) -> Value {
    json!({
        "kind": "Event",
        "metadata": {"name": format!("{name}.{reason}"), "namespace": "default", "creationTimestamp": last},
        "spec": {
            "involvedObject": {"kind": "GameServer", "name": name, "namespace": "default"},
            "reason": reason,
            "message": message,
            "type": "Normal",
            "lastTimestamp": last,
            "source": "scheduler"
        }
    })
}

#[test]
fn a_gameserver_shows_metadata_spec_status_conditions_and_its_own_events() {
    let gs = lookup_kind("gs").unwrap();
    let events = [
        event(
            "survival",
            "Started",
            "2026-03-01T11:59:00Z",
            "the server started",
        ),
        event(
            "creative",
            "Scheduled",
            "2026-03-01T11:00:00Z",
            "not about survival",
        ),
        event(
            "survival",
            "Scheduled",
            "2026-03-01T11:00:30Z",
            "bound to node-a",
        ),
    ];
    let text = render(gs, &survival(), &events, now());
    assert_eq!(
        text,
        "\
Name:         survival
Namespace:    default
Kind:         GameServer
Labels:       game=minecraft
              tier=paid
Annotations:  <none>
Created:      2026-03-01T11:00:00Z
Generation:   3
Spec:
  image: itzg/minecraft-server
  ports:
  - containerPort: 25565
    name: game
    protocol: TCP
  state: Running
Status:
  address: 10.0.0.5
  nodeName: node-a
  phase: Running
Conditions:
  TYPE            STATUS   REASON                 MESSAGE
  Scheduled       True     Bound                  bound to node-a
  Ready           False    Starting               
Events:
  TYPE      REASON               AGE    FROM                 MESSAGE
  Normal    Scheduled            59m    scheduler            bound to node-a
  Normal    Started              60s    scheduler            the server started
"
    );
}

#[test]
fn a_deleting_object_without_events_says_so() {
    let gs = lookup_kind("gs").unwrap();
    let mut obj = survival();
    obj["metadata"]["deletionTimestamp"] = json!("2026-03-01T11:58:00Z");
    obj["metadata"]["annotations"] = json!({"catalyst.dev/restartedAt": "2026-03-01T11:30:00Z"});
    let text = render(gs, &obj, &[], now());
    assert!(
        text.contains("\nDeleting:     since 2026-03-01T11:58:00Z\n"),
        "{text}"
    );
    assert!(
        text.contains("\nAnnotations:  catalyst.dev/restartedAt=2026-03-01T11:30:00Z\n"),
        "{text}"
    );
    assert!(text.ends_with("\nEvents:       <none>\n"), "{text}");
    assert!(!text.contains("managedFields"), "{text}");
}

#[test]
fn a_node_has_no_namespace_line_and_shows_only_the_latest_events() {
    let node = lookup_kind("node").unwrap();
    let obj = json!({
        "kind": "Node",
        "metadata": {"name": "node-a", "creationTimestamp": "2026-02-01T00:00:00Z"},
        "spec": {"portRange": {"min": 7000, "max": 7999}, "unschedulable": true}
    });
    let events: Vec<Value> = (0..25)
        .map(|i| {
            let mut e = event(
                "node-a",
                &format!("Heartbeat{i:02}"),
                &format!("2026-03-01T11:{i:02}:00Z"),
                "late",
            );
            e["spec"]["involvedObject"]["kind"] = json!("Node");
            e
        })
        .collect();
    let text = render(node, &obj, &events, now());
    assert!(
        text.starts_with("Name:         node-a\nKind:         Node\nLabels:       <none>\n"),
        "{text}"
    );
    assert!(text.contains("Generation:   0\nSpec:\n  portRange:\n    max: 7999\n    min: 7000\n  unschedulable: true\nEvents:\n"), "{text}");
    assert!(!text.contains("Status:"), "{text}");
    assert!(!text.contains("Heartbeat04"), "only the latest 20: {text}");
    assert!(
        text.contains("Heartbeat05") && text.trim_end().ends_with("late"),
        "{text}"
    );
}

#[test]
fn a_pull_in_progress_shows_a_bar_under_its_condition() {
    let gs = lookup_kind("gs").unwrap();
    let mut obj = survival();
    obj["status"]["conditions"] = json!([
        {"type": "ImagePulled", "status": "False", "reason": "Pulling",
         "message": "123.4 MiB of 456.7 MiB (27%)"},
        {"type": "Ready", "status": "False", "reason": "Starting", "message": "(50%)"},
    ]);
    let text = render(gs, &obj, &[], now());
    assert!(
        text.contains(
            "  ImagePulled     False    Pulling                123.4 MiB of 456.7 MiB (27%)\n                  [########......................] 27%\n  Ready"
        ),
        "{text}"
    );
    assert_eq!(
        text.matches('[').count(),
        1,
        "only the Pulling condition: {text}"
    );
    assert_eq!(pull_bar("Pulling", "no percent"), None);
    assert_eq!(
        pull_bar("Pulling", "1.0 MiB of 1.0 MiB (100%)").as_deref(),
        Some("[##############################] 100%")
    );
}
