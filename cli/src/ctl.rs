//! `catalystctl` verbs: each a short function over the shared client and arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use catalyst_schemas::{lookup_kind, parse::kind_of, KindInfo, API_VERSION};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{collection_path, object_path, Client, ClientError};
use crate::output::{self, Format};

/// The field manager `catalystctl apply` uses.
pub const FIELD_MANAGER: &str = "catalystctl";

/// Outcome of a verb for the exit status: 0 success, 1 a failure the user can fix.
pub type Outcome = anyhow::Result<i32>;

/// Finds a kind by any of its names.
pub fn kind(name: &str) -> anyhow::Result<&'static KindInfo> {
    lookup_kind(name).with_context(|| {
        let known: Vec<&str> = catalyst_schemas::KINDS.iter().map(|k| k.plural).collect();
        format!(
            "unknown resource type {name:?}; known: {}",
            known.join(", ")
        )
    })
}

/// `KIND/NAME` or `KIND NAME`.
pub fn kind_and_name(
    first: &str,
    second: Option<&str>,
) -> anyhow::Result<(&'static KindInfo, String)> {
    match (first.split_once('/'), second) {
        (Some((k, n)), None) => Ok((kind(k)?, n.to_owned())),
        (None, Some(n)) => Ok((kind(first)?, n.to_owned())),
        _ => bail!("expected KIND NAME or KIND/NAME"),
    }
}

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

    /// The namespace to use: the object's, else the default.
    pub fn namespace<'a>(&'a self, default: &'a str) -> Option<&'a str> {
        self.kind.namespaced.then(|| {
            self.object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(default)
        })
    }
}

fn manifest_files(path: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
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
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

/// Reads manifests from files, directories (`-R` descends) or `-` (stdin).
pub fn read_manifests(paths: &[String], recursive: bool) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for p in paths {
        let sources: Vec<(String, String)> = if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            vec![("-".into(), text)]
        } else {
            let mut files = Vec::new();
            manifest_files(Path::new(p), recursive, &mut files)?;
            files
                .into_iter()
                .map(|f| {
                    let text = std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?;
                    Ok((f.display().to_string(), text))
                })
                .collect::<anyhow::Result<_>>()?
        };
        for (source, text) in sources {
            let docs = catalyst_schemas::parse_documents(&text).with_context(|| source.clone())?;
            for object in docs {
                let kind = kind_of(&object).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
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

fn query(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn apply_one(
    client: &Client,
    m: &Manifest,
    ns: &str,
    dry_run: bool,
    force: bool,
) -> Result<(Value, &'static str), ClientError> {
    let path = object_path(m.kind, m.namespace(ns), m.name());
    let mut object = m.object.clone();
    if let (Some(ns), Some(meta)) = (
        m.namespace(ns),
        object.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        meta.insert("namespace".into(), ns.into());
    }
    let q = query(&[
        ("fieldManager", FIELD_MANAGER.into()),
        ("force", if force { "true".into() } else { String::new() }),
        ("dryRun", if dry_run { "All".into() } else { String::new() }),
    ]);
    let body = serde_json::to_vec(&object).expect("object encodes");
    let (code, headers, after) = client
        .send_full(
            client
                .request(Method::PATCH, &format!("{path}{q}"))
                .header("Content-Type", "application/apply-patch+yaml")
                .body(body),
        )
        .await?;
    // the server says whether this apply changed anything (other writers may have, meanwhile)
    let changed = headers
        .get("catalyst-changed")
        .and_then(|v| v.to_str().ok())
        != Some("false");
    let verdict = match (code, changed) {
        (201, _) => "created",
        (_, true) => "configured",
        (_, false) => "unchanged",
    };
    Ok((after, verdict))
}

/// `apply -f`.
pub async fn apply(
    client: &Client,
    ns: &str,
    files: &[String],
    recursive: bool,
    prune: Option<&str>,
    dry_run: bool,
    force: bool,
) -> Outcome {
    if prune.is_some_and(str::is_empty) {
        bail!("--prune needs a label selector: -l KEY=VALUE");
    }
    let manifests = read_manifests(files, recursive)?;
    let suffix = if dry_run { " (server dry run)" } else { "" };
    let mut failed = false;
    let mut applied: BTreeSet<(String, Option<String>, String)> = BTreeSet::new();
    for m in &manifests {
        match apply_one(client, m, ns, dry_run, force).await {
            Ok((obj, verdict)) => {
                println!("{}/{} {verdict}{suffix}", m.kind.singular, m.name());
                applied.insert((
                    m.kind.kind.to_owned(),
                    m.namespace(ns).map(str::to_owned),
                    m.name().to_owned(),
                ));
                let _ = obj;
            }
            Err(e) => {
                eprintln!("{}: {}/{}: {e}", m.source, m.kind.singular, m.name());
                failed = true;
            }
        }
    }
    if let Some(selector) = prune {
        if failed {
            eprintln!("not pruning: some objects failed to apply");
        } else {
            failed |= prune_absent(client, ns, selector, &manifests, &applied, dry_run).await?;
        }
    }
    Ok(i32::from(failed))
}

/// Deletes objects with the selector's labels that catalystctl applied and that are no longer
/// in the input. Looks at the kinds of the input, in the namespaces of the input.
async fn prune_absent(
    client: &Client,
    ns: &str,
    selector: &str,
    manifests: &[Manifest],
    applied: &BTreeSet<(String, Option<String>, String)>,
    dry_run: bool,
) -> anyhow::Result<bool> {
    let mut scopes: BTreeSet<(&'static str, Option<String>)> = BTreeSet::new();
    for m in manifests {
        scopes.insert((m.kind.kind, m.namespace(ns).map(str::to_owned)));
    }
    if manifests.is_empty() {
        bail!("--prune with no objects in the input would delete everything with those labels; refusing");
    }
    let mut failed = false;
    for (kind_name, namespace) in scopes {
        let kind = kind(kind_name)?;
        let path = format!(
            "{}{}",
            collection_path(kind, namespace.as_deref()),
            query(&[("labelSelector", selector.into())])
        );
        let list = client.get(&path).await?;
        for obj in list
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if applied.contains(&(kind.kind.to_owned(), namespace.clone(), name.clone())) {
                continue;
            }
            let ours = obj
                .pointer("/metadata/managedFields")
                .and_then(Value::as_array)
                .is_some_and(|mf| {
                    mf.iter().any(|e| {
                        e.get("manager").and_then(Value::as_str) == Some(FIELD_MANAGER)
                            && e.get("operation").and_then(Value::as_str) == Some("Apply")
                    })
                });
            if !ours {
                continue;
            }
            let q = if dry_run { "?dryRun=All" } else { "" };
            let target = format!("{}{q}", object_path(kind, namespace.as_deref(), &name));
            match client.send(client.request(Method::DELETE, &target)).await {
                Ok(_) => println!(
                    "{}/{name} pruned{}",
                    kind.singular,
                    if dry_run { " (server dry run)" } else { "" }
                ),
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    eprintln!("{}/{name}: {e}", kind.singular);
                    failed = true;
                }
            }
        }
    }
    Ok(failed)
}

/// Arguments of `get`.
#[derive(Debug, Clone)]
pub struct GetArgs {
    /// The kind.
    pub kind: String,
    /// One object.
    pub name: Option<String>,
    /// Every namespace.
    pub all_namespaces: bool,
    /// Label selector.
    pub selector: Option<String>,
    /// Output format.
    pub output: Option<Format>,
    /// Keep watching.
    pub watch: bool,
}

/// `get`.
pub async fn get(client: &Client, ns: &str, args: &GetArgs) -> Outcome {
    let kind = kind(&args.kind)?;
    let namespace = if args.all_namespaces { None } else { Some(ns) };
    let all = args.all_namespaces && kind.namespaced;
    let (items, rv) = match &args.name {
        Some(name) => {
            let obj = client.get(&object_path(kind, namespace, name)).await?;
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("0")
                .to_owned();
            (vec![obj], rv)
        }
        None => {
            let q = query(&[("labelSelector", args.selector.clone().unwrap_or_default())]);
            let list = client
                .get(&format!("{}{q}", collection_path(kind, namespace)))
                .await?;
            let rv = list
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("0")
                .to_owned();
            (
                list.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                rv,
            )
        }
    };
    match args.output {
        Some(Format::Json) => {
            let out = if args.name.is_some() {
                items[0].clone()
            } else {
                json!({"apiVersion": API_VERSION, "kind": format!("{}List", kind.kind), "items": items})
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Some(Format::Yaml) => {
            for (i, obj) in items.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!("{}", output::yaml(obj));
            }
        }
        Some(Format::Name) => items.iter().for_each(|o| println!("{}", output::name(o))),
        Some(Format::Wide) | None => {
            if items.is_empty() && !args.watch {
                match namespace.filter(|_| kind.namespaced) {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found."),
                }
            } else {
                print!(
                    "{}",
                    output::table(kind, &items, args.output == Some(Format::Wide), all, true)
                );
            }
        }
    }
    if args.watch {
        let mut q = vec![("watch", "true".to_owned()), ("resourceVersion", rv)];
        if let Some(sel) = &args.selector {
            q.push(("labelSelector", sel.clone()));
        }
        if let Some(name) = &args.name {
            q.push(("fieldSelector", format!("metadata.name={name}")));
        }
        let path = format!("{}{}", collection_path(kind, namespace), query(&q));
        return watch_print(client, kind, &path, args.output, all).await;
    }
    Ok(0)
}

/// Follows a watch, calling `each` with every event until it returns false or the stream ends.
pub async fn follow<F>(client: &Client, path: &str, mut each: F) -> anyhow::Result<()>
where
    F: FnMut(&str, &Value) -> anyhow::Result<bool>,
{
    let resp = client.stream(path).await?;
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk.context("reading the watch stream")?);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let ev: Value = serde_json::from_slice(&line).context("a watch event is not JSON")?;
            let type_ = ev.get("type").and_then(Value::as_str).unwrap_or("");
            let object = ev.get("object").cloned().unwrap_or(Value::Null);
            if type_ == "ERROR" {
                bail!("{}", crate::client::format_status(&object));
            }
            if !each(type_, &object)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

async fn watch_print(
    client: &Client,
    kind: &KindInfo,
    path: &str,
    format: Option<Format>,
    all: bool,
) -> Outcome {
    follow(client, path, |type_, obj| {
        if type_ == "BOOKMARK" {
            return Ok(true);
        }
        match format {
            Some(Format::Json) => println!(
                "{}",
                serde_json::to_string(&json!({"type": type_, "object": obj}))?
            ),
            Some(Format::Yaml) => print!("---\n{}", output::yaml(obj)),
            Some(Format::Name) => println!("{}", output::name(obj)),
            _ => print!(
                "{}",
                output::table(
                    kind,
                    std::slice::from_ref(obj),
                    format == Some(Format::Wide),
                    all,
                    false
                )
            ),
        }
        Ok(true)
    })
    .await?;
    Ok(0)
}

/// `describe`.
pub async fn describe(client: &Client, ns: &str, kind_name: &str, name: Option<&str>) -> Outcome {
    let (kind, name) = kind_and_name(kind_name, name)?;
    let obj = client.get(&object_path(kind, Some(ns), &name)).await?;
    let mut shown = obj.clone();
    if let Some(meta) = shown.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    println!("Name:         {}", s("/metadata/name"));
    if kind.namespaced {
        println!("Namespace:    {}", s("/metadata/namespace"));
    }
    println!("Kind:         {}", kind.kind);
    for (title, field) in [("Labels", "labels"), ("Annotations", "annotations")] {
        let map = obj
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object);
        match map.filter(|m| !m.is_empty()) {
            None => println!("{title}:{}<none>", " ".repeat(13 - title.len())),
            Some(m) => {
                for (i, (k, v)) in m.iter().enumerate() {
                    let head = if i == 0 {
                        format!("{title}:{}", " ".repeat(13 - title.len()))
                    } else {
                        " ".repeat(14)
                    };
                    println!("{head}{k}={}", v.as_str().unwrap_or(""));
                }
            }
        }
    }
    println!("Created:      {}", s("/metadata/creationTimestamp"));
    if let Some(dt) = obj
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
    {
        println!("Deleting:     since {dt}");
    }
    println!(
        "Generation:   {}",
        obj.pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    );
    for part in ["spec", "status"] {
        if let Some(v) = shown.get(part) {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("conditions");
            }
            println!("{}:", if part == "spec" { "Spec" } else { "Status" });
            for line in output::yaml(&v).lines() {
                println!("  {line}");
            }
        }
    }
    if let Some(conds) = obj.pointer("/status/conditions").and_then(Value::as_array) {
        println!("Conditions:\n  TYPE            STATUS   REASON                 MESSAGE");
        for c in conds {
            let g = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            println!(
                "  {:<15} {:<8} {:<22} {}",
                g("type"),
                g("status"),
                g("reason"),
                g("message")
            );
        }
    }
    let events_ns = if kind.namespaced {
        s("/metadata/namespace")
    } else {
        ns.to_owned()
    };
    let events = client
        .get(&collection_path(
            lookup_kind("events").expect("events kind"),
            Some(&events_ns),
        ))
        .await
        .ok()
        .and_then(|l| l.get("items").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let mut mine: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e.pointer("/spec/involvedObject/kind")
                .and_then(Value::as_str)
                == Some(kind.kind)
                && e.pointer("/spec/involvedObject/name")
                    .and_then(Value::as_str)
                    == Some(name.as_str())
        })
        .collect();
    mine.sort_by_key(|e| {
        e.pointer("/spec/lastTimestamp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    });
    if mine.is_empty() {
        println!("Events:       <none>");
    } else {
        println!("Events:\n  TYPE      REASON               AGE    FROM                 MESSAGE");
        let now = chrono::Utc::now();
        for e in mine.iter().rev().take(20).rev() {
            let g = |p: &str| {
                e.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let t = g("/spec/lastTimestamp");
            let t = if t.is_empty() {
                g("/metadata/creationTimestamp")
            } else {
                t
            };
            println!(
                "  {:<9} {:<20} {:<6} {:<20} {}",
                g("/spec/type"),
                g("/spec/reason"),
                output::age(&t, now),
                g("/spec/source"),
                g("/spec/message")
            );
        }
    }
    Ok(0)
}

/// `delete`.
pub async fn delete(
    client: &Client,
    ns: &str,
    files: &[String],
    target: &[String],
    wait: bool,
) -> Outcome {
    let mut targets: Vec<(&'static KindInfo, Option<String>, String)> = Vec::new();
    if !files.is_empty() {
        for m in read_manifests(files, true)? {
            targets.push((
                m.kind,
                m.namespace(ns).map(str::to_owned),
                m.name().to_owned(),
            ));
        }
    } else {
        let (kind, name) = kind_and_name(
            target.first().map(String::as_str).unwrap_or(""),
            target.get(1).map(String::as_str),
        )?;
        targets.push((kind, kind.namespaced.then(|| ns.to_owned()), name));
    }
    let mut failed = false;
    for (kind, namespace, name) in targets {
        let path = object_path(kind, namespace.as_deref(), &name);
        match client.send(client.request(Method::DELETE, &path)).await {
            Ok(_) => {
                println!("{}/{name} deleted", kind.singular);
                if wait {
                    wait_gone(client, &path).await?;
                }
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

async fn wait_gone(client: &Client, path: &str) -> anyhow::Result<()> {
    loop {
        match client.get(path).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn strip_volatile(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            meta.remove(f);
        }
    }
    v
}

/// `diff -f`: exit 0 when the server would change nothing, 1 when it would.
pub async fn diff(client: &Client, ns: &str, files: &[String], recursive: bool) -> Outcome {
    let manifests = read_manifests(files, recursive)?;
    let mut differs = false;
    for m in &manifests {
        let path = object_path(m.kind, m.namespace(ns), m.name());
        let live = match client.get(&path).await {
            Ok(v) => strip_volatile(&v),
            Err(e) if e.is_not_found() => Value::Null,
            Err(e) => return Err(e.into()),
        };
        let (merged, _) = apply_one(client, m, ns, true, false).await?;
        let merged = strip_volatile(&merged);
        if live == merged {
            continue;
        }
        differs = true;
        let (a, b) = (
            if live.is_null() {
                String::new()
            } else {
                output::yaml(&live)
            },
            output::yaml(&merged),
        );
        let label = format!("{}/{}", m.kind.singular, m.name());
        let text = similar::TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(3)
            .header(&format!("live/{label}"), &format!("merged/{label}"))
            .to_string();
        print!("{text}");
    }
    Ok(i32::from(differs))
}

/// `edit`: opens the object in `$EDITOR`, replaces it, re-opens on errors.
pub async fn edit(client: &Client, ns: &str, kind_name: &str, name: Option<&str>) -> Outcome {
    let (kind, name) = kind_and_name(kind_name, name)?;
    let path = object_path(kind, Some(ns), &name);
    let original = client.get(&path).await?;
    let mut shown = original.clone();
    if let Some(meta) = shown.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let editor = std::env::var("EDITOR")
        .or_else(|_| std::env::var("VISUAL"))
        .unwrap_or_else(|_| "vi".into());
    let mut text = output::yaml(&shown);
    let mut header = String::from("# Edit the object below. Lines starting with '#' are ignored; an unchanged file cancels.\n");
    loop {
        let file = tempfile::Builder::new()
            .prefix("catalystctl-edit-")
            .suffix(".yaml")
            .tempfile()?;
        std::fs::write(file.path(), format!("{header}{text}"))?;
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(file.path())
            .status()
            .with_context(|| format!("starting the editor {editor:?}"))?;
        if !status.success() {
            bail!("the editor exited with {status}");
        }
        let edited: String = std::fs::read_to_string(file.path())?
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        if edited.trim().is_empty() || edited == text {
            println!("Edit cancelled, no changes made.");
            return Ok(0);
        }
        let parsed = catalyst_schemas::parse_documents(&edited)
            .map_err(anyhow::Error::from)
            .and_then(|mut d| {
                if d.len() == 1 {
                    Ok(d.remove(0))
                } else {
                    bail!("expected one document")
                }
            });
        let result = match parsed {
            Ok(obj) => client
                .send(
                    client
                        .request(
                            Method::PUT,
                            &format!("{path}?fieldManager=catalystctl-edit"),
                        )
                        .json(&obj),
                )
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => {
                println!("{}/{name} edited", kind.singular);
                return Ok(0);
            }
            Err(e) => {
                header = format!(
                    "# Edit the object below. Lines starting with '#' are ignored; an unchanged file cancels.\n#\n# The edit failed:\n{}#\n",
                    e.to_string().lines().map(|l| format!("# {l}\n")).collect::<String>()
                );
                text = edited;
            }
        }
    }
}

/// What `wait --for` waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    /// `phase=Running`.
    Phase(String),
    /// `condition=Ready` (status True).
    Condition(String),
    /// `delete`.
    Delete,
}

impl std::str::FromStr for WaitFor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "delete" {
            return Ok(WaitFor::Delete);
        }
        match s.split_once('=') {
            Some(("phase", p)) if !p.is_empty() => Ok(WaitFor::Phase(p.to_owned())),
            Some(("condition", c)) if !c.is_empty() => Ok(WaitFor::Condition(c.to_owned())),
            _ => Err(format!(
                "--for must be phase=PHASE, condition=TYPE or delete, not {s:?}"
            )),
        }
    }
}

impl WaitFor {
    fn met(&self, obj: &Value) -> bool {
        match self {
            WaitFor::Phase(p) => {
                obj.pointer("/status/phase").and_then(Value::as_str) == Some(p.as_str())
            }
            WaitFor::Condition(c) => obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|x| {
                        x.get("type").and_then(Value::as_str) == Some(c.as_str())
                            && x.get("status").and_then(Value::as_str) == Some("True")
                    })
                }),
            WaitFor::Delete => false,
        }
    }
}

/// Parses `60s`, `5m`, `1h`, or plain seconds.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    catalyst_schemas::validation::duration(s).map(Duration::from_secs)
}

/// `wait KIND/NAME --for=…`.
pub async fn wait(
    client: &Client,
    ns: &str,
    target: &str,
    what: &WaitFor,
    timeout: Duration,
) -> Outcome {
    let (kind, name) = kind_and_name(target, None)?;
    let namespace = kind.namespaced.then_some(ns);
    let path = object_path(kind, namespace, &name);
    let watched = async {
        let rv = match client.get(&path).await {
            Ok(obj) if what.met(&obj) => return Ok::<bool, anyhow::Error>(true),
            Ok(obj) => obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("0")
                .to_owned(),
            Err(e) if e.is_not_found() && *what == WaitFor::Delete => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        let q = query(&[
            ("watch", "true".into()),
            ("resourceVersion", rv),
            ("fieldSelector", format!("metadata.name={name}")),
        ]);
        let mut met = false;
        follow(
            client,
            &format!("{}{q}", collection_path(kind, namespace)),
            |type_, obj| {
                met = match (type_, what) {
                    ("DELETED", WaitFor::Delete) => true,
                    ("ADDED" | "MODIFIED", w) => w.met(obj),
                    _ => false,
                };
                Ok(!met)
            },
        )
        .await?;
        Ok(met)
    };
    match tokio::time::timeout(timeout, watched).await {
        Ok(Ok(true)) => {
            println!("{}/{name} condition met", kind.singular);
            Ok(0)
        }
        Ok(Ok(false)) => bail!(
            "the watch ended before {}/{name} met the condition",
            kind.singular
        ),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            eprintln!(
                "error: timed out waiting for the condition on {}/{name}",
                kind.singular
            );
            Ok(1)
        }
    }
}

/// `explain KIND[.field]`: from the JSON Schema built into this binary.
pub fn explain(path: &str) -> Outcome {
    let mut parts = path.split('.');
    let kind = kind(parts.next().unwrap_or(""))?;
    let root = serde_json::to_value((kind.schema)())?;
    let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
    let resolve = |v: &Value| -> Value {
        let mut v = v.clone();
        for _ in 0..8 {
            let next = v
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .and_then(|n| defs.get(n))
                .or_else(|| v.get("allOf").and_then(|a| a.get(0)))
                .or_else(|| {
                    v.get("anyOf")
                        .and_then(Value::as_array)
                        .and_then(|a| a.iter().find(|x| x.get("type") != Some(&json!("null"))))
                })
                .cloned();
            match next {
                Some(n) if v.get("properties").is_none() => {
                    let desc = v.get("description").cloned();
                    v = n;
                    if let (Some(d), Some(o)) = (desc, v.as_object_mut()) {
                        o.entry("description").or_insert(d);
                    }
                }
                _ => break,
            }
        }
        if let Some(items) = v
            .get("items")
            .filter(|_| v.get("properties").is_none())
            .cloned()
        {
            let desc = v.get("description").cloned();
            let mut inner = items;
            for _ in 0..4 {
                match inner
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .and_then(|n| defs.get(n))
                {
                    Some(d) => inner = d.clone(),
                    None => break,
                }
            }
            if let (Some(d), Some(o)) = (desc, inner.as_object_mut()) {
                o.insert("description".into(), d);
            }
            return inner;
        }
        v
    };
    let mut node = resolve(&root);
    let mut walked = vec![kind.kind.to_owned()];
    for field in parts {
        let child = node
            .pointer(&format!("/properties/{field}"))
            .with_context(|| format!("field {field:?} does not exist in {}", walked.join(".")))?;
        node = resolve(child);
        walked.push(field.to_owned());
    }
    println!("KIND:     {}\nVERSION:  {API_VERSION}\n", kind.kind);
    if walked.len() > 1 {
        println!("FIELD:    {}\n", walked[1..].join("."));
    }
    if let Some(d) = node.get("description").and_then(Value::as_str) {
        println!("DESCRIPTION:\n    {}\n", d.replace('\n', "\n    "));
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        let required: BTreeSet<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!("FIELDS:");
        let fields: BTreeMap<&String, &Value> = props.iter().collect();
        for (name, schema) in fields {
            let s = resolve(schema);
            let ty = s
                .get("type")
                .map(|t| match t {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|x| *x != "null")
                        .unwrap_or("")
                        .to_owned(),
                    other => other.as_str().unwrap_or("").to_owned(),
                })
                .or_else(|| s.get("enum").map(|_| "string".to_owned()))
                .unwrap_or_else(|| {
                    if s.get("oneOf").is_some() {
                        "string".into()
                    } else {
                        "object".into()
                    }
                });
            let req = if required.contains(name.as_str()) {
                " -required-"
            } else {
                ""
            };
            println!("    {name}\t<{ty}>{req}");
            if let Some(d) = s.get("description").and_then(Value::as_str) {
                println!("      {}", d.lines().next().unwrap_or(""));
            }
        }
    }
    Ok(0)
}

/// Merge-patches one object and says what was done.
async fn patch_object(
    client: &Client,
    kind: &KindInfo,
    ns: &str,
    name: &str,
    patch: Value,
    done: &str,
) -> Outcome {
    let path = object_path(kind, kind.namespaced.then_some(ns), name);
    client
        .send(
            client
                .request(
                    Method::PATCH,
                    &format!("{path}?fieldManager={FIELD_MANAGER}"),
                )
                .header("Content-Type", "application/merge-patch+json")
                .json(&patch),
        )
        .await?;
    println!("{}/{name} {done}", kind.singular);
    Ok(0)
}

/// `start`, `stop`, `restart` of a GameServer: desired state and the restart annotation.
pub async fn lifecycle(client: &Client, ns: &str, verb: &str, name: &str) -> Outcome {
    let gs = kind("gameservers")?;
    let (patch, done) = match verb {
        "start" => (json!({"spec": {"state": "Running"}}), "started"),
        "stop" => (json!({"spec": {"state": "Stopped"}}), "stopped"),
        "restart" => (
            json!({"metadata": {"annotations": {RESTARTED_AT: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}}}),
            "restarted",
        ),
        other => bail!("unknown lifecycle verb {other}"),
    };
    patch_object(client, gs, ns, name, patch, done).await
}

/// `logs NAME [-f] [--tail N]`: console lines from the server's node, through the API server.
pub async fn logs(
    client: &Client,
    ns: &str,
    name: &str,
    follow: bool,
    tail: Option<usize>,
) -> Outcome {
    use std::io::Write;
    let mut path = format!(
        "/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}/logs?follow={follow}"
    );
    if let Some(n) = tail {
        path.push_str(&format!("&tailLines={n}"));
    }
    let resp = match client.stream(&path).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let mut body = resp.bytes_stream();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("reading the log stream")?;
        if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
            return Ok(0); // stdout closed (e.g. piped into head)
        }
    }
    Ok(0)
}

/// `command NAME -- TEXT`: one line to the server's console.
pub async fn command(client: &Client, ns: &str, name: &str, text: &str) -> Outcome {
    let path = format!("/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}/command");
    match client
        .send(
            client
                .request(reqwest::Method::POST, &path)
                .json(&json!({ "command": text })),
        )
        .await
    {
        Ok(_) => {
            println!("gameserver/{name} command sent");
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}

/// The annotation `restart` sets, as `kubectl rollout restart` does.
pub const RESTARTED_AT: &str = "catalyst.dev/restartedAt";

/// `cordon` / `uncordon` a Node.
pub async fn cordon(client: &Client, name: &str, unschedulable: bool) -> Outcome {
    let node = kind("nodes")?;
    let done = if unschedulable {
        "cordoned"
    } else {
        "uncordoned"
    };
    patch_object(
        client,
        node,
        "",
        name,
        json!({"spec": {"unschedulable": unschedulable}}),
        done,
    )
    .await
}

/// `version`.
pub async fn version(client: Option<&Client>) -> Outcome {
    println!("Client Version: {}", env!("CARGO_PKG_VERSION"));
    if let Some(c) = client {
        match c.get("/version").await {
            Ok(v) => println!(
                "Server Version: {}",
                v.get("catalyst")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
            ),
            Err(e) => {
                eprintln!("{e}");
                return Ok(1);
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_conditions_parse() {
        assert_eq!(
            "phase=Running".parse::<WaitFor>(),
            Ok(WaitFor::Phase("Running".into()))
        );
        assert_eq!("delete".parse::<WaitFor>(), Ok(WaitFor::Delete));
        assert!("phase".parse::<WaitFor>().is_err());
        assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn explain_walks_into_nested_fields() {
        assert_eq!(explain("gs.spec.ports").unwrap(), 0);
        assert_eq!(explain("node.spec.portRange").unwrap(), 0);
        assert!(explain("gs.spec.nope").is_err());
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(
            query(&[("labelSelector", "a in (b,c)".into()), ("x", String::new())]),
            "?labelSelector=a%20in%20%28b%2Cc%29"
        );
    }
}
