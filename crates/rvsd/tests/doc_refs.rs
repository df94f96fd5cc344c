//! Every reference to `docs/internals/PAGE.md` (optionally `#anchor`) in the repository's code and
//! documentation names a page that exists and, with an anchor, a heading of that page (GitHub's
//! heading slugs). The code cites these pages for the kernel and keepalived behaviour it
//! reproduces (docs/internals/README.md); a renamed page or heading must not leave dangling
//! references behind. Relative Markdown links between the docs are checked the same way.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(page: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut in_code = false;
    for line in fs::read_to_string(page).unwrap_or_default().lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| x == "rs" || x == "md" || x == "toml" || x == "conf")
        {
            out.push(p);
        }
    }
}

/// `(page, anchor)` of every `docs/internals/PAGE.md[#anchor]` in `text`.
fn internal_refs(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let key = "docs/internals/";
    let mut rest = text;
    while let Some(i) = rest.find(key) {
        rest = &rest[i + key.len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || "_-.#".contains(c)))
            .unwrap_or(rest.len());
        let r = rest[..end].trim_end_matches('.');
        let (page, anchor) = match r.split_once('#') {
            Some((p, a)) => (p, Some(a.to_string())),
            None => (r, None),
        };
        // Placeholders such as `FILE.md` in prose are not references.
        let placeholder = page != "README.md" && page.chars().any(|c| c.is_ascii_uppercase());
        if page.ends_with(".md") && !placeholder {
            out.push((page.to_string(), anchor));
        }
    }
    out
}

/// Relative links `](x.md#a)` of a Markdown file, resolved against its directory.
fn md_links(file: &Path, text: &str) -> Vec<(PathBuf, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = &rest[..end];
        if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a.to_string())),
            None => (target, None),
        };
        if path.ends_with(".md") {
            out.push((file.parent().unwrap().join(path), anchor));
        }
    }
    out
}

#[test]
fn internal_doc_references_resolve() {
    let root = root();
    let internals = root.join("docs/internals");
    assert!(
        internals.join("README.md").is_file(),
        "docs/internals/README.md is missing"
    );
    let mut cache: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    let mut files = Vec::new();
    for top in ["crates", "docs", "examples", "bench", "scripts"] {
        walk(&root.join(top), &mut files);
    }
    files.push(root.join("README.md"));
    let mut broken = Vec::new();
    let mut seen = 0;
    for f in &files {
        if f.ends_with("crates/rvsd/tests/doc_refs.rs") {
            continue; // its own examples
        }
        let Ok(text) = fs::read_to_string(f) else {
            continue;
        };
        let shown = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        let mut check = |page: PathBuf, anchor: Option<String>, what: String| {
            seen += 1;
            let page = page.canonicalize().unwrap_or(page);
            if !page.is_file() {
                broken.push(format!("{shown}: {what}: no such page"));
                return;
            }
            if let Some(a) = anchor {
                let heads = cache.entry(page.clone()).or_insert_with(|| anchors(&page));
                if !heads.contains(&a) {
                    broken.push(format!("{shown}: {what}: no heading with anchor #{a}"));
                }
            }
        };
        for (page, anchor) in internal_refs(&text) {
            let what = format!(
                "docs/internals/{page}{}",
                anchor.as_ref().map(|a| format!("#{a}")).unwrap_or_default()
            );
            check(internals.join(&page), anchor, what);
        }
        if f.extension().is_some_and(|x| x == "md") {
            for (page, anchor) in md_links(f, &text) {
                let what = format!("link to {}", page.display());
                check(page, anchor, what);
            }
        }
    }
    assert!(
        seen > 20,
        "only {seen} references found: is the walk broken?"
    );
    assert!(
        broken.is_empty(),
        "{} dangling reference(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn slug_follows_github() {
    assert_eq!(slug(" rr — round robin"), "rr--round-robin");
    assert_eq!(slug("Timeouts and `--set`"), "timeouts-and---set");
    assert_eq!(
        slug("The kernel's IPVS selftest"),
        "the-kernels-ipvs-selftest"
    );
    assert_eq!(slug("global_defs"), "global_defs");
}
