//! The shape of the code, checked.
//!
//! 1. **Layers.** Every module of `src/` has a layer (the `LAYERS` table,
//!    highest first); a module imports its own layer and those below it, never
//!    one above. A failure names the file, the line and the `use` that runs up.
//! 2. **No circles.** No import circle between the top-level modules of `src/`,
//!    nor between the connectors inside `src/sources/` and `src/sinks/` (a
//!    connector may use its parent module's shared types, and the parent
//!    registers its children; siblings never lean on each other both ways).
//! 3. **The module list.** Every `mod` in `lib.rs` has a layer, and every layer
//!    entry is a module that exists.
//!
//! A module's imports are the `crate::NAME` paths its files name outside their
//! `#[cfg(test)] mod tests`, plus `super::NAME` paths to a sibling connector.
//! Nodes are the top-level modules, and inside `sources/` and `sinks/` each
//! child (`sources::twitter`, `sinks::kafka`); `sources` and `sinks` alone are
//! their shared parts (`Source`, `SourceOutput`, `Sink`, the registry).
//!
//! The scan works on `(path, text)` pairs, so the tests at the bottom feed it
//! synthetic modules with a planted upward import and a planted circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Connector folders whose children are nodes of their own.
const COMPONENTS: [&str; 2] = ["sources", "sinks"];

/// The layers, highest first. `X::*` is every child of `X` (its connectors);
/// `X` alone is `X`'s own files. Keep in step with CONTRIBUTING.md ("Layers").
const LAYERS: &[(&str, &[&str])] = &[
    ("binary", &["main", "lib"]),
    ("commands", &["cmd"]),
    ("run", &["run"]),
    ("config", &["config"]),
    ("flags", &["cli"]),
    ("connectors", &["sources::*", "sinks::*", "mock", "media"]),
    (
        "engine",
        &[
            "sources", "sinks", "pipeline", "monitor", "kafka", "progress", "report", "top",
        ],
    ),
    (
        "foundation",
        &[
            "record",
            "state",
            "secret",
            "retry",
            "duration",
            "locate",
            "exit_codes",
        ],
    ),
];

/// One import of one module by another.
#[derive(Debug, Clone)]
struct Import {
    from: String,
    to: String,
    /// `src/…` path and 1-based line of the first mention.
    file: String,
    line: usize,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `src/` as (path relative to `src/`, text).
fn read_src(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(src).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(&f).unwrap())
        })
        .collect()
}

/// `sources/twitter/stream.rs` → `["sources", "twitter", "stream"]`; `mod.rs` names its folder.
fn module_path(rel: &str) -> Vec<String> {
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The identifiers that follow each occurrence of `prefix` (`crate::` → `config`, `sinks::kafka`),
/// with the byte offset of the occurrence.
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<(usize, Vec<&'a str>)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = text[at..].find(prefix) {
        let start = at + i;
        let before = text[..start].chars().next_back();
        at = start + prefix.len();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        found.push((
            start,
            rest[..end].split("::").filter(|s| !s.is_empty()).collect(),
        ));
    }
    found
}

/// Every import between nodes, the first mention of each (from, to) pair.
fn imports(files: &[(String, String)]) -> Vec<Import> {
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .flat_map(|(rel, _)| {
            let parts = module_path(rel);
            (1..=parts.len())
                .map(|n| parts[..n].to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    let is_module =
        |path: &[&str]| modules.contains(&path.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut found: BTreeMap<(String, String), Import> = BTreeMap::new();
    for (rel, text) in files {
        let parts = module_path(rel);
        // The crate root and the binary use everything; test-only files use what they test.
        let test_only = parts
            .last()
            .is_some_and(|p| p == "tests" || p == "proptests");
        if parts == ["lib"] || parts == ["main"] || parts.is_empty() || test_only {
            continue;
        }
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let top = parts[0].as_str();
        let component = COMPONENTS.contains(&top) && parts.len() > 1;
        let from = if component {
            format!("{top}::{}", parts[1])
        } else {
            top.to_owned()
        };
        let mut add = |to: String, offset: usize| {
            if to == from {
                return;
            }
            let line = text[..offset].matches('\n').count() + 1;
            let line_text = text.lines().nth(line - 1).unwrap_or("").trim().to_owned();
            found
                .entry((from.clone(), to.clone()))
                .or_insert_with(|| Import {
                    from: from.clone(),
                    to,
                    file: format!("src/{rel}"),
                    line,
                    text: line_text,
                });
        };
        for (offset, path) in paths_after(text, "crate::") {
            match path.as_slice() {
                [first, second, ..]
                    if COMPONENTS.contains(first) && is_module(&[first, second]) =>
                {
                    add(format!("{first}::{second}"), offset);
                }
                [first, ..] if is_module(&[first]) => add(first.to_string(), offset),
                // An item of the crate root (`crate::run`, a `#[macro_export]` macro).
                [_, ..] => add("lib".to_owned(), offset),
                [] => {}
            }
        }
        if component {
            // `super::x` from `sources/a.rs`, `super::super::x` from `sources/a/b.rs`.
            let prefix = "super::".repeat(parts.len() - 1);
            for (offset, path) in paths_after(text, &prefix) {
                if let Some(name) = path.first()
                    && *name != "super"
                    && is_module(&[top, name])
                {
                    add(format!("{top}::{name}"), offset);
                }
            }
        }
    }
    found.into_values().collect()
}

fn edges(imports: &[Import]) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for i in imports {
        edges
            .entry(i.from.clone())
            .or_default()
            .insert(i.to.clone());
    }
    edges
}

/// Every circle, each once, as `a -> b -> a`.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for start in edges.keys() {
        let mut stack = vec![vec![start.clone()]];
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            for next in edges.get(last).into_iter().flatten() {
                if next == start {
                    // Name each circle from its smallest member, so it is listed once.
                    let min = path.iter().min().unwrap();
                    if min == start {
                        found.insert(format!("{} -> {start}", path.join(" -> ")));
                    }
                } else if !path.contains(next) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
    found.into_iter().collect()
}

/// The layer of a node (0 is the highest), if the table gives it one.
fn layer(layers: &[(&str, &[&str])], node: &str) -> Option<usize> {
    let parent = node.split_once("::").map(|(p, _)| format!("{p}::*"));
    layers.iter().position(|(_, members)| {
        members
            .iter()
            .any(|m| *m == node || parent.as_deref() == Some(*m))
    })
}

/// `sinks` for `sinks::kafka`: the component folder of a connector.
fn connector_of(node: &str) -> Option<&str> {
    node.split_once("::")
        .map(|(p, _)| p)
        .filter(|p| COMPONENTS.contains(p))
}

/// Every import that runs up the layers, and every node without a layer.
fn layer_violations(layers: &[(&str, &[&str])], imports: &[Import]) -> Vec<String> {
    let mut found = Vec::new();
    for i in imports {
        match (layer(layers, &i.from), layer(layers, &i.to)) {
            (Some(from), Some(to)) if to < from => found.push(format!(
                "{}:{}: `{}` ({}) imports `{}` ({}), a layer above it: {}",
                i.file, i.line, i.from, layers[from].0, i.to, layers[to].0, i.text
            )),
            // A sink interpreting a source's data (or the reverse) couples two
            // connectors that the pipeline keeps apart: shared meaning goes below both.
            _ if connector_of(&i.from)
                .zip(connector_of(&i.to))
                .is_some_and(|(a, b)| a != b) =>
            {
                found.push(format!(
                    "{}:{}: the connector `{}` imports the connector `{}` of another folder: {}",
                    i.file, i.line, i.from, i.to, i.text
                ))
            }
            (None, _) => found.push(format!("`{}` ({}) has no layer in LAYERS", i.from, i.file)),
            (_, None) => found.push(format!(
                "`{}` (imported at {}:{}) has no layer in LAYERS",
                i.to, i.file, i.line
            )),
            _ => {}
        }
    }
    found
}

/// The `mod NAME;` lines of `lib.rs`, but those under `#[cfg(test)]`.
fn lib_modules(lib: &str) -> Vec<&str> {
    let mut previous = "";
    let mut found = Vec::new();
    for l in lib.lines().map(str::trim) {
        let declared = l.strip_prefix("pub ").unwrap_or(l);
        if let Some(name) = declared
            .strip_prefix("mod ")
            .and_then(|d| d.strip_suffix(';'))
            && previous != "#[cfg(test)]"
        {
            found.push(name);
        }
        previous = l;
    }
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let imports = imports(&read_src(&src()));
    let edges = edges(&imports);
    assert!(
        edges.contains_key("config") && edges.contains_key("sources::twitter"),
        "the scan found no edges: {edges:?}"
    );
    let circles = circles(&edges);
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let imports = imports(&read_src(&src()));
    assert!(
        imports.len() > 50,
        "the scan found too few imports: {imports:?}"
    );
    let violations = layer_violations(LAYERS, &imports);
    assert!(
        violations.is_empty(),
        "imports that run up the layers (LAYERS in tests/architecture.rs):\n{}",
        violations.join("\n")
    );
}

#[test]
fn lib_rs_only_lists_modules_each_with_a_layer() {
    let src = src();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared = lib_modules(&lib);
    assert!(declared.contains(&"config"), "no modules read from lib.rs");
    // The crate root only lists modules: the run lives in `run.rs`, commands in `cmd/`.
    for line in lib.lines().map(str::trim) {
        let listing = line.is_empty()
            || line.starts_with("//")
            || line.starts_with("#[")
            || lib_modules(line).len() == 1;
        assert!(listing, "lib.rs holds more than the module list: {line}");
    }
    for name in &declared {
        assert!(
            layer(LAYERS, name).is_some(),
            "`mod {name};` in lib.rs has no layer in LAYERS (tests/architecture.rs)"
        );
    }
    for (_, members) in LAYERS {
        for m in members.iter() {
            let top = m.split("::").next().unwrap();
            assert!(
                matches!(top, "main" | "lib") || declared.contains(&top),
                "LAYERS names `{m}`, which lib.rs does not declare"
            );
        }
    }
}

/// Synthetic sources: `a` above `b`, `b` above `c`.
const TOY: &[(&str, &[&str])] = &[
    ("top", &["lib", "a"]),
    ("middle", &["b", "sinks::*", "sources::*"]),
    ("bottom", &["c", "sinks"]),
];

fn toy(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_planted_upward_import_fails_and_names_its_line() {
    let clean = toy(&[
        ("a.rs", "use crate::b::B;\n"),
        ("b.rs", "use crate::c::C;\nuse crate::sinks::Sink;\n"),
        ("c.rs", "pub struct C;\n"),
        ("lib.rs", "pub mod a;\npub fn run() {}\n"),
        ("sinks/mod.rs", "pub trait Sink {}\n"),
        ("sinks/kafka.rs", "use super::Sink;\nuse crate::c::C;\n"),
        ("sources/x.rs", "pub fn deleted() {}\n"),
    ]);
    assert_eq!(
        layer_violations(TOY, &imports(&clean)),
        Vec::<String>::new()
    );

    let mut planted = clean.clone();
    planted[2].1 = "pub struct C;\n\nuse crate::a::A;\n".into();
    planted[4].1 = "pub trait Sink {}\nfn f() { crate::sinks::kafka::go() }\n".into();
    planted[5].1 = "use super::Sink;\ncrate::shout!();\nuse crate::sources::x::deleted;\n".into();
    assert_eq!(
        layer_violations(TOY, &imports(&planted)),
        vec![
            "src/c.rs:3: `c` (bottom) imports `a` (top), a layer above it: use crate::a::A;",
            "src/sinks/mod.rs:2: `sinks` (bottom) imports `sinks::kafka` (middle), a layer above it: \
             fn f() { crate::sinks::kafka::go() }",
            "src/sinks/kafka.rs:2: `sinks::kafka` (middle) imports `lib` (top), a layer above it: \
             crate::shout!();",
            "src/sinks/kafka.rs:3: the connector `sinks::kafka` imports the connector \
             `sources::x` of another folder: use crate::sources::x::deleted;",
        ]
    );
}

#[test]
fn a_planted_circle_fails() {
    let files = toy(&[
        ("a.rs", "use crate::b::B;\n"),
        ("b.rs", "use crate::c::C;\n"),
        ("c.rs", "pub struct C;\n"),
        ("sinks/mod.rs", "pub trait Sink {}\n"),
        ("sinks/kafka.rs", "use super::file::Open;\n"),
        ("sinks/file.rs", "pub struct Open;\n"),
    ]);
    assert!(circles(&edges(&imports(&files))).is_empty());

    let mut planted = files.clone();
    planted[2].1 = "use crate::a::A;\n".into();
    planted[5].1 = "use super::kafka::Produce;\n".into();
    assert_eq!(
        circles(&edges(&imports(&planted))),
        vec![
            "a -> b -> c -> a".to_owned(),
            "sinks::file -> sinks::kafka -> sinks::file".to_owned()
        ]
    );
}

#[test]
fn the_circle_finder_finds_circles() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges.entry(a.into()).or_default().insert(b.into());
    }
    assert_eq!(circles(&edges), vec!["a -> b -> c -> a".to_owned()]);
    let found: Vec<Vec<&str>> =
        paths_after("use crate::sinks::{kafka, s3}; x_crate::no", "crate::")
            .into_iter()
            .map(|(_, p)| p)
            .collect();
    assert_eq!(found, vec![vec!["sinks"]]);
    assert_eq!(
        lib_modules("pub mod a;\nmod b;\n#[cfg(test)]\nmod c;\nuse x;"),
        ["a", "b"]
    );
}
