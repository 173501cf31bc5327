//! The JSON Schemas in `manifests/schemas/` are generated from the types; this test fails when
//! they are stale. `CATALYST_UPDATE_SCHEMAS=1 cargo test -p catalyst-schemas --test json_schemas`
//! rewrites them.

use std::path::PathBuf;

use catalyst_schemas::KINDS;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/schemas")
}

#[test]
fn generated_schemas_match_the_committed_files() {
    let update = std::env::var_os("CATALYST_UPDATE_SCHEMAS").is_some();
    let dir = schema_dir();
    let mut stale = Vec::new();
    for kind in KINDS {
        let schema = (kind.schema)();
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(format!("{}.json", kind.kind.to_lowercase()));
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != text {
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale JSON Schemas (run CATALYST_UPDATE_SCHEMAS=1 cargo test -p catalyst-schemas --test json_schemas): {stale:?}"
    );
}

#[test]
fn schemas_describe_the_contract_field_names() {
    let gs = KINDS.iter().find(|k| k.kind == "GameServer").unwrap();
    let text = serde_json::to_string(&(gs.schema)()).unwrap();
    for field in [
        "containerPort",
        "restartPolicy",
        "nodeSelector",
        "logPattern",
        "timeoutSeconds",
        "apiVersion",
    ] {
        assert!(
            text.contains(field),
            "{field} missing from the GameServer schema"
        );
    }
}
