//! The submodules of each of the nodelet's directory modules import each other without a cycle,
//! and none imports from its parent `mod.rs` (which imports them all): shared types live in a
//! submodule of their own. A cheap check over the sources: no containerd, no network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The directory modules whose parts are checked.
const DIRECTORIES: &[&str] = &["ctd", "image", "registry", "seccomp", "sftp", "spec"];

/// A file's code before its first `#[cfg(test)]` (tests may import whatever they test).
fn production_code(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// Sibling → the siblings it imports (through `super::x` or `crate::<dir>::x`).
fn import_graph(dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&root).expect("module directory") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if path.extension().is_some_and(|e| e == "rs") && name != "mod" && name != "tests" {
            let text = std::fs::read_to_string(&path).expect("source");
            files.insert(name.to_owned(), text);
        }
    }
    let path_re = regex::Regex::new(&format!(r"\b(?:super|crate::{dir})::(\w+)")).expect("regex");
    let group_re =
        regex::Regex::new(&format!(r"\b(?:super|crate::{dir})::\{{([^}}]*)\}}")).expect("regex");
    let mut graph = BTreeMap::new();
    for (name, text) in &files {
        let code = production_code(text);
        let mut used: Vec<String> = path_re
            .captures_iter(code)
            .map(|c| c[1].to_owned())
            .collect();
        for c in group_re.captures_iter(code) {
            used.extend(
                c[1].split(',')
                    .filter_map(|p| p.split("::").next()?.split_whitespace().next())
                    .map(str::to_owned),
            );
        }
        let mut edges = BTreeSet::new();
        for u in used.into_iter().filter(|u| !u.is_empty()) {
            assert!(
                files.contains_key(&u),
                "{dir}/{name}.rs imports `{u}` from its parent module: move it into a submodule \
                 of its own (the parent imports {dir}/{name}.rs, so this would be a cycle)"
            );
            if u != *name {
                edges.insert(u);
            }
        }
        graph.insert(name.clone(), edges);
    }
    graph
}

/// A cycle of the graph, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_parts_of_each_directory_module_import_each_other_without_a_cycle() {
    for dir in DIRECTORIES {
        let graph = import_graph(dir);
        assert!(graph.len() > 1, "{dir}: no parts found");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{dir}: import cycle {}", cycle.join(" → "));
        }
    }
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph).expect("cycle"),
        ["a", "b", "c", "a"].map(str::to_owned)
    );
    let mut acyclic = graph.clone();
    acyclic.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&acyclic), None);
}
