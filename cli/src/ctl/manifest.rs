//! Objects read from files, directories or stdin: the input of `apply`, `diff` and
//! `delete -f`. A Pterodactyl egg (a JSON object with `meta.version` `PTDL_v1`/`PTDL_v2` and no
//! `kind`) is converted into its Template on the way, its reports passed to a warning sink.

use std::io::Read;
use std::path::{Path, PathBuf};

use catalyst_schemas::{parse::kind_of, KindInfo};
use serde_json::Value;

use super::error::CtlError;
use crate::egg;

/// One object read from a file, with where it came from.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file (or `-`).
    pub source: String,
    /// The object.
    pub object: Value,
    /// Its kind.
    pub kind: &'static KindInfo,
}

impl Manifest {
    /// The object's name.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The namespace to use: the object's, else the default; `None` for cluster-scoped kinds.
    pub fn namespace<'a>(&'a self, default: &'a str) -> Option<&'a str> {
        self.kind.namespaced.then(|| {
            self.object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(default)
        })
    }
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> CtlError + '_ {
    move |source| CtlError::Read {
        what: path.display().to_string(),
        source,
    }
}

/// The manifest files at `path`: itself, or the `.yaml`, `.yml` and `.json` files of a
/// directory in name order (descending into subdirectories when `recursive`).
fn manifest_files(path: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), CtlError> {
    if !path.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error(path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                manifest_files(&p, recursive, out)?;
            }
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads manifests from files, directories (`recursive` descends) or `-` (stdin); eggs are
/// converted with `eggs`, each report passed to `warn` as `FILE: FIELD: MESSAGE`.
///
/// # Errors
/// [`CtlError::Read`], [`CtlError::Parse`] for text that is not YAML or JSON,
/// [`CtlError::Egg`] for an egg that does not convert, [`CtlError::Kind`] for an object of no
/// known kind.
pub fn read_manifests(
    paths: &[String],
    recursive: bool,
    eggs: &egg::Options,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<Manifest>, CtlError> {
    let mut out = Vec::new();
    for p in paths {
        let sources: Vec<(String, String)> = if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| CtlError::Read {
                    what: "stdin".into(),
                    source,
                })?;
            vec![("-".into(), text)]
        } else {
            let mut files = Vec::new();
            manifest_files(Path::new(p), recursive, &mut files)?;
            files
                .into_iter()
                .map(|f| {
                    let text = std::fs::read_to_string(&f).map_err(read_error(&f))?;
                    Ok((f.display().to_string(), text))
                })
                .collect::<Result<_, CtlError>>()?
        };
        for (source, text) in sources {
            let docs = match egg_template(&source, &text, eggs, warn)? {
                Some(template) => vec![template],
                None => {
                    catalyst_schemas::parse_documents(&text).map_err(|error| CtlError::Parse {
                        file: source.clone(),
                        error,
                    })?
                }
            };
            for object in docs {
                let kind = kind_of(&object).map_err(|error| CtlError::Kind {
                    file: source.clone(),
                    error,
                })?;
                out.push(Manifest {
                    source: source.clone(),
                    object,
                    kind,
                });
            }
        }
    }
    Ok(out)
}

/// The Template of `text` if it is one egg (one JSON object with `meta.version` PTDL_v1 or
/// PTDL_v2 and no `kind`).
fn egg_template(
    source: &str,
    text: &str,
    eggs: &egg::Options,
    warn: &mut dyn FnMut(String),
) -> Result<Option<Value>, CtlError> {
    if !text.trim_start().starts_with('{') {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(doc) if egg::is_egg(&doc) => {}
        _ => return Ok(None),
    }
    let conversion = egg::convert(text.as_bytes(), eggs).map_err(|error| CtlError::Egg {
        file: source.to_owned(),
        error,
    })?;
    for r in &conversion.reports {
        warn(format!("{source}: {r}"));
    }
    Ok(Some(conversion.template))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_yields_its_manifests_in_name_order_and_recursion_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let gs = |name: &str| {
            format!(
                "apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata: {{name: {name}}}\n"
            )
        };
        std::fs::write(dir.path().join("b.yaml"), gs("b")).unwrap();
        std::fs::write(dir.path().join("a.yml"), gs("a")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/c.json"), gs("c")).unwrap();
        let root = dir.path().display().to_string();
        let names = |recursive| -> Vec<String> {
            read_manifests(
                std::slice::from_ref(&root),
                recursive,
                &Default::default(),
                &mut |_| {},
            )
            .unwrap()
            .iter()
            .map(|m| m.name().to_owned())
            .collect()
        };
        assert_eq!(names(false), ["a", "b"]);
        assert_eq!(names(true), ["a", "b", "c"]);
        let m = &read_manifests(
            std::slice::from_ref(&root),
            false,
            &Default::default(),
            &mut |_| {},
        )
        .unwrap()[0];
        assert_eq!(m.namespace("default"), Some("default"));
        assert!(m.source.ends_with("a.yml"));
    }

    #[test]
    fn unreadable_and_unknown_input_names_the_file() {
        let read =
            |paths: &[String]| read_manifests(paths, false, &Default::default(), &mut |_| {});
        let err = read(&["/nonexistent/x.yaml".into()]).unwrap_err();
        assert_eq!(err.to_string(), "reading /nonexistent/x.yaml");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pod.yaml");
        std::fs::write(&f, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n").unwrap();
        let err = read(&[f.display().to_string()]).unwrap_err();
        assert!(matches!(err, CtlError::Kind { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&f.display().to_string()));
    }

    #[test]
    fn an_egg_is_read_as_its_template_with_warnings_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("egg-x.json");
        std::fs::write(
            &f,
            r#"{"meta": {"version": "PTDL_v2"}, "name": "My Game",
                "docker_images": {"Debian": "ghcr.io/pterodactyl/yolks:debian"},
                "startup": "./x", "config": {"stop": "^X"}}"#,
        )
        .unwrap();
        let file = f.display().to_string();
        let opts = egg::Options {
            image_map: [("ghcr.io/".to_owned(), "mirror.local/".to_owned())].into(),
            keep_image_map: false,
        };
        let mut warnings = Vec::new();
        let ms = read_manifests(std::slice::from_ref(&file), false, &opts, &mut |w| {
            warnings.push(w)
        })
        .unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].kind.kind, "Template");
        assert_eq!(ms[0].name(), "my-game");
        assert_eq!(
            ms[0].object.pointer("/spec/images/0/image").unwrap(),
            "mirror.local/pterodactyl/yolks:debian"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with(&format!("{file}: config.stop: \"^X\""))),
            "{warnings:#?}"
        );
        // a broken egg names its file; a JSON manifest that is not an egg is read as before
        std::fs::write(&f, r#"{"meta": {"version": "PTDL_v2"}, "name": "x"}"#).unwrap();
        let err =
            read_manifests(std::slice::from_ref(&file), false, &opts, &mut |_| {}).unwrap_err();
        assert!(matches!(err, CtlError::Egg { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{file}: converting the Pterodactyl egg")
        );
        std::fs::write(
            &f,
            r#"{"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer", "metadata": {"name": "g"}, "meta": {"version": "PTDL_v2"}}"#,
        )
        .unwrap();
        let ms = read_manifests(std::slice::from_ref(&file), false, &opts, &mut |_| {}).unwrap();
        assert_eq!(ms[0].kind.kind, "GameServer");
    }
}
