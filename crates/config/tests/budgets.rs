//! Hostile configurations whose lexical expansion multiplies (include chains, nested `~SEQ`,
//! self-doubling `$NAME`s): each ends promptly with one fatal diagnostic naming the budget and
//! the place (`file:line:col`), and the configuration cannot run.
//!
//! The runs are bounded by a generous deadline only to turn a regression (hours of work) into
//! a failure instead of a hang; how fast they end is measured with `rvsd -t` (see
//! docs/keepalived.md), not here.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rvs_config::budget::{MAX_INCLUDED_FILES, MAX_SEQ_VALUES, MAX_SUBSTITUTIONS};
use rvs_config::{check, check_str, CheckOptions, ErrorClass, Report};

/// Run `f` on a thread; panic if it has not finished after 60 s (the unbounded versions
/// ran for hours).
fn bounded(f: impl FnOnce() -> Report + Send + 'static) -> Report {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the configuration was still being read after 60 s")
}

/// The one fatal diagnostic: its rendered text (position, message, offending line).
fn fatal(r: &Report) -> String {
    let fatal: Vec<String> = r
        .diagnostics
        .iter()
        .filter(|d| d.class == ErrorClass::Fatal)
        .map(|d| d.to_string())
        .collect();
    assert_eq!(fatal.len(), 1, "{}", r.render());
    assert_eq!(r.exit_status(), 4, "{}", r.render());
    assert!(!r.can_run());
    fatal[0].clone()
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rvs-budget-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `dir/f0.conf` … `dir/f{depth}.conf`, each including the next one `fanout` times.
fn include_bomb(dir: &Path, depth: usize, fanout: usize) {
    for i in 0..depth {
        let line = format!("include f{}.conf\n", i + 1);
        std::fs::write(dir.join(format!("f{i}.conf")), line.repeat(fanout)).unwrap();
    }
    std::fs::write(
        dir.join(format!("f{depth}.conf")),
        "global_defs {\n router_id bomb\n}\n",
    )
    .unwrap();
}

#[test]
fn include_bomb_stops_at_the_included_files_budget() {
    let dir = TempDir::new("bomb");
    include_bomb(dir.path(), 30, 2);
    let top = dir.path().join("f0.conf");
    let r = bounded(move || check(top, &CheckOptions::default()));
    let msg = fatal(&r);
    assert!(
        msg.contains(&format!(
            "more than {MAX_INCLUDED_FILES} files read by include lines"
        )),
        "{msg}"
    );
    // Reported at an include line of a file deep in the chain, with the line shown.
    assert!(
        msg.contains(".conf:1:1: error: configuration exceeds its budget")
            || msg.contains(".conf:2:1: error: configuration exceeds its budget"),
        "{msg}"
    );
    assert!(msg.contains("| include f"), "{msg}");
}

#[test]
fn a_chain_within_the_budget_is_read_whole() {
    // 2^10 - 1 = 1023 reads: allowed, and every line arrives.
    let dir = TempDir::new("chain");
    include_bomb(dir.path(), 10, 2);
    let r = check(dir.path().join("f0.conf"), &CheckOptions::default());
    assert!(r.can_run(), "{}", r.render());
    assert_eq!(r.config.global.router_id.as_deref(), Some("bomb"));
}

#[test]
fn nested_seq_bomb_stops_at_the_seq_budget() {
    // 10^15 iterations that produce no line at all (the conditional never matches), so
    // only the total-values budget can stop it.
    let text =
        "global_defs {\n}\n~SEQ(A, 1, 100000) ~SEQ(B, 1, 100000) ~SEQ(C, 1, 100000) @nomatch x\n";
    let r = bounded(move || check_str("seq.conf", text, &CheckOptions::default()));
    let msg = fatal(&r);
    assert!(msg.starts_with("seq.conf:3:1: error: "), "{msg}");
    assert!(
        msg.contains(&format!("more than {MAX_SEQ_VALUES} ~SEQ/~LST values")),
        "{msg}"
    );
}

#[test]
fn multi_line_parameter_bomb_stops_at_the_substitution_budget() {
    // Each `$Pn` expands to two lines of `$Pn+1`: 2^40 lines that end in nothing.
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!("$P{i}=${{P{}}} \\\n${{P{}}}\n", i + 1, i + 1));
    }
    text.push_str("$P40=@nomatch x\n$P0\n");
    let r = bounded(move || check_str("subst.conf", &text, &CheckOptions::default()));
    let msg = fatal(&r);
    assert!(msg.starts_with("subst.conf:82:1: error: "), "{msg}");
    assert!(
        msg.contains(&format!(
            "more than {MAX_SUBSTITUTIONS} $NAME substitutions"
        )),
        "{msg}"
    );
}
