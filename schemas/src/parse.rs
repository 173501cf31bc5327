//! From user text to admitted objects: multi-document YAML, kind lookup, and dynamic admission.

use crate::meta::API_VERSION;
use crate::resource::KindInfo;
use crate::validation::{Cause, ValidationError};
use crate::{
    AlertRule, ApiKey, Backup, ClusterRoleBinding, Event, GameServer, Lease, Node, Quota, Restore,
    Role, RoleBinding, Schedule, Secret, Template, User,
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
    KindInfo::of::<Secret>(),
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
    /// Aliases expand the stream past its budget (see [`expansion_budget`]).
    #[error("document {document}: aliases expand the text past {limit} nodes and string bytes; write the values out or use fewer aliases")]
    TooLarge {
        /// 1-based index of the document in the stream.
        document: usize,
        /// The budget, in nodes and string bytes.
        limit: usize,
    },
    /// A document is not a mapping.
    #[error("document {document}: expected a mapping with apiVersion, kind and metadata")]
    NotAnObject {
        /// 1-based index of the document in the stream.
        document: usize,
    },
}

/// The most a stream may expand to, in units of one node or one byte of a string: at least a
/// quarter million, else twice the input's length. Without aliases a document needs at most 1.5 units
/// per byte of input (a two-byte escape decodes to three bytes), so only aliases replaying
/// content reach this: the "billion laughs" bound.
pub fn expansion_budget(input_len: usize) -> usize {
    input_len.saturating_mul(2).max(MIN_EXPANSION_BUDGET)
}

/// The floor of [`expansion_budget`].
pub const MIN_EXPANSION_BUDGET: usize = 250_000;

/// Reads a multi-document YAML stream (JSON is YAML too). Empty documents are skipped.
///
/// # Errors
/// [`ParseError::Syntax`] for text that is not YAML, [`ParseError::TooLarge`] when aliases
/// expand the stream past [`expansion_budget`] (refused while expanding, before the memory is
/// taken), [`ParseError::NotAnObject`] for a document that is not a mapping.
pub fn parse_documents(text: &str) -> Result<Vec<serde_json::Value>, ParseError> {
    use serde::de::DeserializeSeed;
    let mut out = Vec::new();
    let budget = budget::Budget::new(expansion_budget(text.len()));
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = budget::Node(&budget).deserialize(doc).map_err(|e| {
            // yaml_serde's own bound on alias jumps (100 per event) is the same refusal
            let aliases = e.to_string().contains("repetition limit exceeded");
            match budget.exceeded() || aliases {
                true => ParseError::TooLarge {
                    document,
                    limit: budget.limit(),
                },
                false => ParseError::Syntax {
                    document,
                    location: e.location().map(|l| (l.line(), l.column())),
                    message: e.to_string(),
                },
            }
        })?;
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::Object(_) => out.push(value),
            _ => return Err(ParseError::NotAnObject { document }),
        }
    }
    Ok(out)
}

/// A JSON value read from YAML with every node and string byte counted against a budget.
mod budget {
    use std::cell::Cell;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Number, Value};

    /// Units left for a stream; shared by its documents.
    pub(super) struct Budget {
        limit: usize,
        left: Cell<usize>,
        exceeded: Cell<bool>,
    }

    impl Budget {
        pub(super) fn new(limit: usize) -> Self {
            Self {
                limit,
                left: Cell::new(limit),
                exceeded: Cell::new(false),
            }
        }

        pub(super) fn limit(&self) -> usize {
            self.limit
        }

        pub(super) fn exceeded(&self) -> bool {
            self.exceeded.get()
        }

        fn spend<E: de::Error>(&self, units: usize) -> Result<(), E> {
            match self.left.get().checked_sub(units) {
                Some(left) => {
                    self.left.set(left);
                    Ok(())
                }
                None => {
                    self.exceeded.set(true);
                    Err(E::custom("aliases expand the document too far"))
                }
            }
        }
    }

    /// Reads one node (and what it holds) as a `serde_json::Value`.
    #[derive(Clone, Copy)]
    pub(super) struct Node<'b>(pub(super) &'b Budget);

    impl<'de> DeserializeSeed<'de> for Node<'_> {
        type Value = Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    /// A mapping key: a string, counted like one.
    struct Key<'b>(&'b Budget);

    impl<'de> DeserializeSeed<'de> for Key<'_> {
        type Value = String;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            let key = String::deserialize(d)?;
            self.0.spend(1 + key.len())?;
            Ok(key)
        }
    }

    use serde::Deserialize;

    impl<'de> Visitor<'de> for Node<'_> {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any YAML value")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
            self.0.spend(1)?;
            Ok(Value::Null)
        }

        fn visit_none<E: de::Error>(self) -> Result<Value, E> {
            self.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
            self.0.spend(1)?;
            Ok(Value::Bool(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
            self.0.spend(1)?;
            Ok(Value::Number(v.into()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
            self.0.spend(1)?;
            Ok(Value::Number(v.into()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            self.0.spend(1)?;
            Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
            self.0.spend(1 + v.len())?;
            Ok(Value::String(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
            self.0.spend(1 + v.len())?;
            Ok(Value::String(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            self.0.spend(1)?;
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(self)? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            self.0.spend(1)?;
            let mut out = Map::new();
            while let Some(key) = map.next_key_seed(Key(self.0))? {
                let value = map.next_value_seed(self)?;
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
    }
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
    fn alias_bombs_are_refused_before_they_expand() {
        // 10^4 aliases of an anchor of 10^4 scalars: 10^8 nodes from about 50 KB
        let bomb = format!(
            "a: &a [{}x]\nb: [{}*a]\n",
            "x,".repeat(10_000),
            "*a,".repeat(10_000)
        );
        let started = std::time::Instant::now();
        let err = parse_documents(&bomb).unwrap_err();
        assert!(
            matches!(err, ParseError::TooLarge { document: 1, limit } if limit == MIN_EXPANSION_BUDGET),
            "{err:?}"
        );
        assert!(err.to_string().contains("aliases"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // nested laughs: 9 levels of 9 aliases
        let mut laughs = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let p = i - 1;
            laughs.push_str(&format!(
                "l{i}: &l{i} [{}]\n",
                vec![format!("*l{p}"); 9].join(", ")
            ));
        }
        assert!(matches!(
            parse_documents(&laughs).unwrap_err(),
            ParseError::TooLarge { .. }
        ));
        // a long string replayed: bytes count, not only nodes
        let long = format!(
            "a: &a {}\nb: [{}*a]\n",
            "y".repeat(100_000),
            "*a,".repeat(20)
        );
        assert!(matches!(
            parse_documents(&long).unwrap_err(),
            ParseError::TooLarge { .. }
        ));
    }

    #[test]
    fn modest_aliases_and_large_plain_documents_still_parse() {
        let docs =
            parse_documents("base: &b {image: busybox, env: {A: x}}\none: *b\ntwo: *b\n").unwrap();
        assert_eq!(docs[0]["two"]["env"]["A"], "x");
        // 2 MB without aliases: within twice the input
        let big = format!("a: [{}1]\n", "1,".repeat(1_000_000));
        assert_eq!(
            parse_documents(&big).unwrap()[0]["a"]
                .as_array()
                .unwrap()
                .len(),
            1_000_001
        );
        // types are read as before
        let v = &parse_documents("{n: 1, f: 1.5, b: true, s: x, z: ~, neg: -3}").unwrap()[0];
        assert_eq!(
            v,
            &serde_json::json!({"n": 1, "f": 1.5, "b": true, "s": "x", "z": null, "neg": -3})
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
            serde_json::json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, "spec": {"data": {"accessKeyId": "a"}}}),
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
