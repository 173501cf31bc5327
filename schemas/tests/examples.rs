//! Every example in `manifests/examples/` is admitted as written, and every kind has one.

use std::collections::BTreeSet;

#[test]
fn every_example_manifest_is_valid_and_every_kind_has_one() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples");
    let mut kinds = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/"),
            "{} lacks the schema line",
            path.display()
        );
        for doc in catalyst_schemas::parse_documents(&text).unwrap() {
            let kind = doc["kind"].as_str().unwrap().to_owned();
            if let Err(e) = catalyst_schemas::admit(doc) {
                panic!("{}: {e}", path.display());
            }
            kinds.insert(kind);
        }
    }
    let all: BTreeSet<String> = catalyst_schemas::KINDS
        .iter()
        .map(|k| k.kind.to_owned())
        .collect();
    assert_eq!(kinds, all);
}

#[test]
fn the_demo_manifests_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/demo");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in catalyst_schemas::parse_documents(&text).unwrap() {
            if let Err(e) = catalyst_schemas::admit(doc) {
                panic!("{}: {e}", path.display());
            }
        }
    }
}
