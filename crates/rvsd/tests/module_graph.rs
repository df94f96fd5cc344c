//! rvsd's modules depend on each other without a cycle: every non-test `crate::` (and
//! `super::`) path in a source file is an edge from that file's module to the module the
//! path names, and the graph of those edges must be acyclic. Lower modules (the shard and
//! the types it holds, published snapshots, the lock helper) are then readable and testable
//! without the ones above them.
//!
//! A module is a source file (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`); the crate roots
//! (`lib.rs`, `main.rs`) only declare modules and are left out. Code after the first
//! `#[cfg(test)]` line of a file (its test module, by the house layout) is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` → `["a", "b"]`, `src/a/mod.rs` → `["a"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" //").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every path that follows `prefix` (`crate::` or `super::`), as segments; a braced group
/// (`crate::{a::b, c}`) gives one path per member.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        collect(rest, Vec::new(), &mut out);
    }
    out
}

fn collect(s: &str, base: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut segs = base;
    let mut s = s;
    loop {
        if let Some(inner) = s.strip_prefix('{') {
            // Members up to the matching brace, split at top-level commas.
            let mut depth = 1;
            let mut start = 0;
            for (k, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        collect(inner[start..k].trim_start(), segs.clone(), out);
                        start = k + 1;
                        if c == '}' {
                            return;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            return;
        }
        let id = ident_at(s);
        if id.is_empty() {
            break;
        }
        segs.push(id.to_string());
        s = &s[id.len()..];
        match s.strip_prefix("::") {
            Some(r) => s = r,
            None => break,
        }
    }
    if !segs.is_empty() {
        out.push(segs);
    }
}

/// The module a path names: its longest prefix that is a module of the crate.
fn target(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .map(|f| module_of(&src, f))
        .filter(|m| !m.is_empty() && m != &["lib"] && m != &["main"])
        .collect();
    let mut g: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        let me = module_of(&src, f);
        if !modules.contains(&me) {
            continue;
        }
        let text = code(&std::fs::read_to_string(f).expect("read source"));
        let mut edges = BTreeSet::new();
        for p in paths_after(&text, "crate::") {
            edges.extend(target(&modules, &p));
        }
        // `super::x` from module a::b::c names a::b::x (a file's parent module).
        let parent = &me[..me.len() - 1];
        for p in paths_after(&text, "super::") {
            let full: Vec<String> = parent.iter().cloned().chain(p).collect();
            edges.extend(target(&modules, &full));
        }
        edges.remove(&me);
        g.entry(me).or_default().extend(edges);
    }
    g
}

/// A cycle through the graph, if there is one (depth-first search).
fn find_cycle(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        n: &Vec<String>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let at = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cyc: Vec<String> = stack[at..].iter().map(|m| m.join("::")).collect();
                cyc.push(n.join("::"));
                return Some(cyc);
            }
            None => {}
        }
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, m, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        if let Some(c) = visit(g, n, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn module_graph_has_no_cycle() {
    let g = graph();
    assert!(g.len() > 10, "the source tree was not found: {g:?}");
    if let Some(c) = find_cycle(&g) {
        panic!("import cycle between rvsd modules: {}", c.join(" -> "));
    }
}

#[test]
fn the_checker_sees_edges_and_cycles() {
    let g = graph();
    let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    // Known edges, in every form the checker parses (`use crate::a::{b, c}`, paths in code).
    assert!(g[&m("state")].contains(&m("shard")), "{:?}", g[&m("state")]);
    assert!(g[&m("balancer")].contains(&m("shard")));
    assert!(g[&m("packet_plane::keeper")].contains(&m("packet_plane::config")));
    let mut cyclic = g.clone();
    cyclic.entry(m("shard")).or_default().insert(m("state"));
    assert!(find_cycle(&cyclic).is_some(), "a cycle must be found");
    let grouped = paths_after("use crate::{a::{b, c}, d};", "crate::");
    assert_eq!(
        grouped,
        vec![
            vec!["a".to_string(), "b".to_string()],
            vec!["a".to_string(), "c".to_string()],
            vec!["d".to_string()]
        ]
    );
}
