//! The shape of the code, checked: no import circle between the top-level
//! modules of `src/`, nor between the connectors inside `src/sources/` and
//! `src/sinks/` (a connector may use its parent module's shared types, and the
//! parent registers its children; siblings never lean on each other both ways).
//!
//! A module's edges are the `crate::NAME` paths its files name outside their
//! `#[cfg(test)] mod tests`, plus `super::NAME` paths to a sibling connector.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Connector folders whose children are checked against each other.
const COMPONENTS: [&str; 2] = ["sources", "sinks"];

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

/// `src/sources/twitter/stream.rs` → `["sources", "twitter", "stream"]`; `mod.rs` names its folder.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The identifiers that follow each occurrence of `prefix` (`crate::` → `config`, `sinks::kafka`).
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        found.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
    }
    found
}

fn is_module(dir: &Path, name: &str) -> bool {
    dir.join(format!("{name}.rs")).exists() || dir.join(name).is_dir()
}

fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let parts = module_path(src, &file);
        if parts == ["lib"] || parts == ["main"] || parts.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let top = &parts[0];
        let component = COMPONENTS.contains(&top.as_str()) && parts.len() > 1;
        let from = if component {
            format!("{top}::{}", parts[1])
        } else {
            top.clone()
        };
        let mut add = |to: String| {
            if to != from {
                edges.entry(from.clone()).or_default().insert(to);
            }
        };
        for path in paths_after(text, "crate::") {
            match path.as_slice() {
                [first, second, ..]
                    if first == top && component && is_module(&src.join(top), second) =>
                {
                    add(format!("{top}::{second}"))
                }
                [first, ..] if first != top && is_module(src, first) => add(first.to_string()),
                _ => {}
            }
        }
        if component {
            // `super::x` from `sources/a.rs`, `super::super::x` from `sources/a/b.rs`.
            let prefix = "super::".repeat(parts.len() - 1);
            for path in paths_after(text, &prefix) {
                if let Some(name) = path.first()
                    && *name != "super"
                    && is_module(&src.join(top), name)
                {
                    add(format!("{top}::{name}"));
                }
            }
        }
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

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src);
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
fn the_circle_finder_finds_circles() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges.entry(a.into()).or_default().insert(b.into());
    }
    assert_eq!(circles(&edges), vec!["a -> b -> c -> a".to_owned()]);
    assert_eq!(
        paths_after("use crate::sinks::{kafka, s3}; x_crate::no", "crate::"),
        vec![vec!["sinks"]]
    );
}
