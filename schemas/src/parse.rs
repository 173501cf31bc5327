//! From user text to admitted objects: multi-document YAML, kind lookup, and dynamic admission.

use crate::meta::API_VERSION;
use crate::resource::KindInfo;
use crate::validation::{Cause, ValidationError};
use crate::{
    AlertRule, ApiKey, Backup, ClusterRoleBinding, Event, GameServer, Lease, Node, Quota, Restore,
    Role, RoleBinding, Schedule, Template, User,
};

/// Every kind of the API.
pub static KINDS: &[KindInfo] = &[
    KindInfo::of::<GameServer>(),
    KindInfo::of::<Template>(),
    KindInfo::of::<Node>(),
    KindInfo::of::<Backup>(),
    KindInfo::of::<Restore>(),
    KindInfo::of::<Schedule>(),
    KindInfo::of::<AlertRule>(),
    KindInfo::of::<Event>(),
    KindInfo::of::<Lease>(),
    KindInfo::of::<User>(),
    KindInfo::of::<ApiKey>(),
    KindInfo::of::<Role>(),
    KindInfo::of::<RoleBinding>(),
    KindInfo::of::<ClusterRoleBinding>(),
    KindInfo::of::<Quota>(),
];

/// The kind named `name` (kind, plural, singular or short name, any case).
pub fn lookup_kind(name: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.is_named(name))
}

/// Why user text could not be read as objects.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The text is not YAML (or JSON).
    #[error("document {document}: invalid YAML{}: {message}", location.map(|(l, c)| format!(" at line {l} column {c}")).unwrap_or_default())]
    Syntax {
        /// 1-based index of the document in the stream.
        document: usize,
        /// Line and column, when known.
        location: Option<(usize, usize)>,
        /// The parser's message.
        message: String,
    },
    /// A document is not a mapping.
    #[error("document {document}: expected a mapping with apiVersion, kind and metadata")]
    NotAnObject {
        /// 1-based index of the document in the stream.
        document: usize,
    },
}

/// Reads a multi-document YAML stream (JSON is YAML too). Empty documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<serde_json::Value>, ParseError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = serde_json::Value::deserialize(doc).map_err(|e| ParseError::Syntax {
            document,
            location: e.location().map(|l| (l.line(), l.column())),
            message: e.to_string(),
        })?;
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::Object(_) => out.push(value),
            _ => return Err(ParseError::NotAnObject { document }),
        }
    }
    Ok(out)
}

/// Finds the kind of an untyped object from its `apiVersion` and `kind`.
pub fn kind_of(value: &serde_json::Value) -> Result<&'static KindInfo, ValidationError> {
    let mut causes = Vec::new();
    let api_version = value.get("apiVersion").and_then(|v| v.as_str());
    match api_version {
        Some(API_VERSION) => {}
        Some(other) => causes.push(Cause {
            field: "apiVersion".into(),
            message: format!("unknown apiVersion {other:?}: this server serves {API_VERSION}"),
        }),
        None => causes.push(Cause {
            field: "apiVersion".into(),
            message: "is required".into(),
        }),
    }
    let kind = match value.get("kind").and_then(|v| v.as_str()) {
        Some(k) => match KINDS.iter().find(|info| info.kind == k) {
            Some(info) => Some(info),
            None => {
                let known: Vec<&str> = KINDS.iter().map(|k| k.kind).collect();
                causes.push(Cause {
                    field: "kind".into(),
                    message: format!("unknown kind {k:?}; known kinds: {}", known.join(", ")),
                });
                None
            }
        },
        None => {
            causes.push(Cause {
                field: "kind".into(),
                message: "is required".into(),
            });
            None
        }
    };
    match kind {
        Some(info) if causes.is_empty() => Ok(info),
        _ => Err(ValidationError { causes }),
    }
}

/// Decodes, defaults and validates an untyped object of any kind.
pub fn admit(value: serde_json::Value) -> Result<serde_json::Value, ValidationError> {
    let info = kind_of(&value)?;
    (info.admit)(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SURVIVAL: &str = r#"
apiVersion: catalyst.dev/v1alpha1
kind: GameServer
metadata: {name: survival, namespace: default, labels: {game: minecraft}}
spec:
  image: ghcr.io/pterodactyl/yolks:java_21
  startup: "java -Xmx{{SERVER_MEMORY}}M -jar {{SERVER_JARFILE}}"
  variables: {SERVER_JARFILE: server.jar}
  env: {TZ: Europe/Berlin}
  resources: {cpu: "2", memory: 4Gi, disk: 20Gi, pids: 512}
  ports:
    - {name: game, containerPort: 25565, protocol: TCPUDP, policy: Dynamic}
  state: Running
  suspended: false
  nodeSelector: {region: eu}
  stop: {command: stop, timeoutSeconds: 30}
  ready: {logPattern: 'Done \(.*\)!'}
  restartPolicy: OnCrash
  install: {image: debian:bookworm-slim, script: "echo hi"}
"#;

    fn fields(err: &ValidationError) -> Vec<&str> {
        err.causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn the_design_example_is_admitted_unchanged_but_for_defaults() {
        let docs = parse_documents(SURVIVAL).unwrap();
        let admitted = admit(docs[0].clone()).unwrap();
        assert_eq!(admitted["spec"]["resources"]["memory"], "4Gi");
        assert_eq!(admitted["spec"]["ports"][0]["containerPort"], 25565);
        assert_eq!(admitted["spec"]["network"], "Bridge");
        let gs: GameServer = serde_json::from_value(admitted).unwrap();
        assert_eq!(gs.spec.resources.cpu.unwrap().milli_value(), 2000);
    }

    #[test]
    fn every_problem_is_reported_with_its_field_path() {
        let yaml = r#"
apiVersion: catalyst.dev/v1alpha1
kind: GameServer
metadata: {name: Bad_Name, labels: {"-x": "y"}}
spec:
  ports:
    - {containerPort: 25565}
    - {containerPort: 70000, policy: Static}
  stop: {command: stop, signal: SIGINT}
  ready: {logPattern: '(unclosed'}
  resources: {memory: 1Ki}
"#;
        let doc = parse_documents(yaml).unwrap().remove(0);
        let err = admit(doc).unwrap_err();
        let got = fields(&err);
        for want in [
            "metadata.name",
            "metadata.labels[-x]",
            "spec.image",
            "spec.ports[1].containerPort",
            "spec.ports[1].hostPort",
            "spec.stop",
            "spec.ready.logPattern",
            "spec.resources.memory",
        ] {
            assert!(got.contains(&want), "missing {want} in {got:?}");
        }
        let port = err
            .causes
            .iter()
            .find(|c| c.field == "spec.ports[1].containerPort")
            .unwrap();
        assert_eq!(port.message, "must be 1-65535");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let doc = serde_json::json!({
            "apiVersion": API_VERSION, "kind": "GameServer", "metadata": {"name": "x"},
            "spec": {"image": "busybox", "ports": [{"containerPort": 1}, {"containerPort": "many"}]}
        });
        let err = admit(doc).unwrap_err();
        assert_eq!(fields(&err), ["spec.ports[1].containerPort"]);
        let doc = serde_json::json!({
            "apiVersion": API_VERSION, "kind": "GameServer", "metadata": {"name": "x"},
            "spec": {"image": "busybox", "resources": {"memory": "lots"}}
        });
        assert_eq!(fields(&admit(doc).unwrap_err()), ["spec.resources.memory"]);
    }

    #[test]
    fn unknown_fields_in_a_spec_are_rejected() {
        let doc = serde_json::json!({
            "apiVersion": API_VERSION, "kind": "GameServer", "metadata": {"name": "x"},
            "spec": {"imagee": "busybox"}
        });
        let err = admit(doc).unwrap_err();
        assert_eq!(fields(&err), ["spec.imagee"]);
        assert!(err.causes[0].message.contains("imagee"), "{}", err);
    }

    #[test]
    fn unknown_kinds_and_versions_are_named() {
        let err = admit(serde_json::json!({"apiVersion": "v1", "kind": "Pod"})).unwrap_err();
        assert_eq!(fields(&err), ["apiVersion", "kind"]);
        assert!(err.causes[1].message.contains("GameServer"));
    }

    #[test]
    fn malformed_yaml_says_where() {
        let err = parse_documents("a: b\n---\nkind: [unclosed\n").unwrap_err();
        match err {
            ParseError::Syntax {
                document, location, ..
            } => {
                assert_eq!(document, 2);
                assert!(location.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_documents("- 1\n").unwrap_err(),
            ParseError::NotAnObject { document: 1 }
        );
    }

    #[test]
    fn multi_document_streams_skip_empty_documents() {
        let docs = parse_documents("---\n---\na: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn kinds_are_found_by_any_of_their_names() {
        for name in ["gs", "GameServer", "gameservers", "GAMESERVER"] {
            assert_eq!(lookup_kind(name).unwrap().kind, "GameServer");
        }
        assert_eq!(lookup_kind("no").unwrap().kind, "Node");
        assert!(lookup_kind("pods").is_none());
    }

    #[test]
    fn every_kind_has_an_admissible_minimal_example() {
        let examples = [
            serde_json::json!({"kind": "GameServer", "metadata": {"name": "a", "namespace": "default"}, "spec": {"image": "busybox"}}),
            serde_json::json!({"kind": "Template", "metadata": {"name": "paper"}, "spec": {"images": [{"name": "j", "image": "busybox"}]}}),
            serde_json::json!({"kind": "Node", "metadata": {"name": "node-a"}}),
            serde_json::json!({"kind": "Backup", "metadata": {"name": "b1"}, "spec": {"gameServer": "a"}}),
            serde_json::json!({"kind": "Restore", "metadata": {"name": "r1"}, "spec": {"backup": "b1"}}),
            serde_json::json!({"kind": "Schedule", "metadata": {"name": "s"}, "spec": {"gameServer": "a", "cron": "0 4 * * *", "tasks": [{"action": "Restart"}]}}),
            serde_json::json!({"kind": "AlertRule", "metadata": {"name": "al"}, "spec": {"condition": {"event": "Crash"}, "notifications": [{"webhook": {"url": "https://example.invalid/x"}}]}}),
            serde_json::json!({"kind": "Event", "metadata": {"name": "e.1"}, "spec": {"involvedObject": {"kind": "GameServer", "name": "a"}, "reason": "Scheduled"}}),
            serde_json::json!({"kind": "Lease", "metadata": {"name": "controller-leader"}, "spec": {}}),
            serde_json::json!({"kind": "User", "metadata": {"name": "alice"}}),
            serde_json::json!({"kind": "ApiKey", "metadata": {"name": "k"}, "spec": {"owner": "alice"}}),
            serde_json::json!({"kind": "Role", "metadata": {"name": "r"}, "spec": {"rules": [{"resources": ["*"], "verbs": ["get"]}]}}),
            serde_json::json!({"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "default"}, "spec": {"roleRef": "r", "subjects": [{"kind": "User", "name": "alice"}]}}),
            serde_json::json!({"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "spec": {"roleRef": "r", "subjects": [{"kind": "Group", "name": "staff"}]}}),
            serde_json::json!({"kind": "Quota", "metadata": {"name": "q", "namespace": "default"}}),
        ];
        assert_eq!(examples.len(), KINDS.len());
        for mut ex in examples {
            ex["apiVersion"] = API_VERSION.into();
            let kind = ex["kind"].clone();
            if let Err(e) = admit(ex) {
                panic!("{kind}: {e}");
            }
        }
    }
}
