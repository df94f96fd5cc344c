//! # rvs-require: what a test needs, and what happens when it is missing
//!
//! Many rvs tests need root (network namespaces, AF_PACKET, nft), an installed program (nginx,
//! curl, socat, keepalived) or a host feature (an IPv6 loopback). A test that cannot run its
//! check must not pass as if it had checked something:
//!
//! * Under CI — [`STRICT_VAR`]` = 1` (exported by `.ci/run`) or `CI=true` (set by the usual CI
//!   services) — an unmet need **panics** with the reason, so the run fails. CI runs as root
//!   with every package of `scripts/install-test-deps` installed; a skip there is a broken
//!   setup.
//! * Otherwise the test prints `SKIP <test>: <reason>` on stderr, appends the same line to the
//!   file named by [`LOG_VAR`] (so `scripts/test` can list every skip at the end of the run,
//!   where nextest's summary would otherwise hide them) and returns early.
//!
//! ```no_run
//! #[test]
//! fn nat_through_a_namespace() {
//!     rvs_require::require_root!();
//!     rvs_require::require_tools!("ip", "nft");
//!     // … the check …
//! }
//! ```
//!
//! Tests that return something else than `()` use the functions ([`root`], [`tools`],
//! [`that`]), which return `false` when the test should stop.

use std::fmt::Display;
use std::io::Write as _;
use std::path::PathBuf;

/// `RVS_REQUIRE_ALL=1` turns every unmet need into a failure (`.ci/run` exports it).
pub const STRICT_VAR: &str = "RVS_REQUIRE_ALL";

/// When set, every skip is also appended (one line) to the file this variable names.
pub const LOG_VAR: &str = "RVS_SKIP_LOG";

/// Whether unmet needs fail the test: [`STRICT_VAR`] is `1`, or `CI` is `true`/`1`.
pub fn strict() -> bool {
    let on = |var: &str, yes: &[&str]| {
        std::env::var(var)
            .map(|v| yes.contains(&v.trim().to_ascii_lowercase().as_str()))
            .unwrap_or(false)
    };
    on(STRICT_VAR, &["1", "true", "yes"]) || on("CI", &["1", "true"])
}

/// The running test's name (libtest and nextest name the test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("this test")
        .to_string()
}

/// Report that the running test cannot do its check because of `why`.
///
/// Under CI ([`strict`]) this panics with the reason. Otherwise it prints `SKIP <test>: <why>`,
/// logs it (see [`LOG_VAR`]) and returns, and the caller stops the test (or the part of it
/// that needed the missing thing).
#[track_caller]
pub fn unmet(why: impl Display) {
    let test = test_name();
    if strict() {
        panic!(
            "{test} cannot run its check: {why} ({STRICT_VAR}=1 or CI=true: a skip is a failure; \
             scripts/install-test-deps installs what the tests need, and CI runs as root)"
        );
    }
    let line = format!("SKIP {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(LOG_VAR) {
        // One short `write` per line with O_APPEND: lines of parallel test processes do not mix.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// `ok`, or report [`unmet`]`(why)` and return `false`.
#[track_caller]
pub fn that(ok: bool, why: impl Display) -> bool {
    if !ok {
        unmet(why);
    }
    ok
}

/// Whether the process runs with effective uid 0 (from `/proc/self/status`, no `unsafe`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// True when root; otherwise [`unmet`] and `false`.
#[track_caller]
pub fn root() -> bool {
    that(
        is_root(),
        "needs root (network namespaces, veth, AF_PACKET, nft, other users)",
    )
}

/// Directories searched for programs: `PATH`, then the sbin directories (nginx lives in
/// /usr/sbin, which is not on an unprivileged user's `PATH`).
fn search_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"] {
        v.push(PathBuf::from(d));
    }
    v
}

/// Full path of an installed program.
pub fn which(prog: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// True when every program is installed; otherwise [`unmet`] naming the missing ones.
#[track_caller]
pub fn tools(progs: &[&str]) -> bool {
    let missing: Vec<&str> = progs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    that(
        missing.is_empty(),
        format_args!(
            "{} not installed (scripts/install-test-deps installs the Debian packages)",
            missing.join(", ")
        ),
    )
}

/// True when the host has an IPv6 loopback (`[::1]` can be bound); otherwise [`unmet`].
#[track_caller]
pub fn ipv6_loopback() -> bool {
    that(
        std::net::UdpSocket::bind("[::1]:0").is_ok(),
        "no IPv6 loopback on this host",
    )
}

/// Stop the test (`return`) unless running as root; see [`root`].
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::root() {
            return;
        }
    };
}

/// Stop the test (`return`) unless every program is installed; see [`tools`].
#[macro_export]
macro_rules! require_tools {
    ($($prog:expr),+ $(,)?) => {
        if !$crate::tools(&[$($prog),+]) {
            return;
        }
    };
}

/// Stop the test (`return`) unless `cond` holds; `why` (format arguments) says what is missing.
#[macro_export]
macro_rules! require_that {
    ($cond:expr, $($why:tt)+) => {
        if !$crate::that($cond, format_args!($($why)+)) {
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    // The environment is process-wide: one test sets and checks it in sequence.
    #[test]
    fn unmet_panics_only_when_strict_and_logs_otherwise() {
        let log = std::env::temp_dir().join(format!("rvs-require-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        std::env::remove_var("CI");
        std::env::set_var(LOG_VAR, &log);
        std::env::set_var(STRICT_VAR, "0");
        assert!(!that(false, "a reason"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with("SKIP "), "{text}");
        assert!(text.trim_end().ends_with(": a reason"), "{text}");
        assert!(that(true, "unused"));

        std::env::set_var(STRICT_VAR, "1");
        let e = std::panic::catch_unwind(|| unmet("nft missing")).unwrap_err();
        let msg = e.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("nft missing") && msg.contains(STRICT_VAR),
            "{msg}"
        );

        std::env::set_var(STRICT_VAR, "0");
        std::env::set_var("CI", "true");
        assert!(std::panic::catch_unwind(|| unmet("x")).is_err());
        std::env::remove_var("CI");
        std::env::remove_var(STRICT_VAR);
        std::env::remove_var(LOG_VAR);
        let _ = std::fs::remove_file(&log);
    }

    #[test]
    fn which_finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("rvs-no-such-program").is_none());
    }
}
