//! The Debian package (`scripts/build-deb`): built from the binaries of this build, installed
//! with dpkg into an empty root, and used from there — `rvsd --version` in a chroot holding
//! only the package and the C libraries it links, the manuals rendered with `man -l`, the
//! completions loaded by bash, the unit checked by `systemd-analyze verify`, and the
//! rvsadm-save / rvsadm-restore wrappers run against a live rvsd.
//!
//! Also, without the package: every manual renders without groff warnings.
//!
//! Addresses: 127.77.64.0/24.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{run_bounded, rvsadm_bin, tempdir, which, Adm};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn run(name: &str, cmd: Command) -> Adm {
    run_bounded(name, cmd, "", Duration::from_secs(300))
}

fn ok(name: &str, cmd: Command) -> String {
    let a = run(name, cmd);
    assert_eq!(a.code, 0, "{name}: {a:?}");
    a.out
}

/// Fail under CI, skip otherwise (rvs-require decides and logs the skip).
fn cannot(why: &str) {
    rvs_require::unmet(why);
}

/// `man -l` output of a page (plain text, fixed width).
fn man(page: &Path) -> String {
    let mut c = Command::new(which("man").unwrap());
    c.arg("-l")
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0");
    c.env("GROFF_NO_SGR", "1").env("PAGER", "cat");
    let out = ok("man", c);
    // Drop overstrike bold/underline, if any.
    let mut s = String::new();
    let mut it = out.chars().peekable();
    while let Some(ch) = it.next() {
        if it.peek() == Some(&'\u{8}') {
            it.next();
            continue;
        }
        s.push(ch);
    }
    s
}

/// groff's warnings for a page (empty when clean).
fn groff_warnings(page: &Path) -> String {
    let text = if page.extension().is_some_and(|e| e == "gz") {
        let mut c = Command::new("gzip");
        c.arg("-dc").arg(page);
        ok("gzip", c)
    } else {
        std::fs::read_to_string(page).unwrap()
    };
    let mut c = Command::new(which("groff").unwrap());
    c.args(["-man", "-Tutf8", "-ww", "-z"]);
    run_bounded("groff", c, &text, Duration::from_secs(60)).err
}

#[test]
fn manuals_render_cleanly() {
    require!("man", "groff");
    let ws = workspace();
    let dir = tempdir("man");
    let rvsd8 = dir.path().join("rvsd.8");
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvsd"));
    c.arg("--generate-man");
    std::fs::write(&rvsd8, ok("rvsd --generate-man", c)).unwrap();
    for (page, must) in [
        (
            rvsd8.clone(),
            &[
                "--rules",
                "--drain-time",
                "SIGHUP",
                "READY=1",
                "/api/status",
            ][..],
        ),
        (
            ws.join("crates/rvsadm/man/rvsadm.8"),
            &["--add-service", "--vrrp", "EXIT STATUS"][..],
        ),
        (
            ws.join("crates/config/man/rvs-keepalived.conf.5"),
            &["virtual_server", "HTTP_GET", "vrrp_instance"][..],
        ),
        (ws.join("dist/man/rvsadm-save.8"), &["rvsadm -S"][..]),
        (ws.join("dist/man/rvsadm-restore.8"), &["rvsadm -R"][..]),
    ] {
        let text = man(&page);
        for m in must {
            assert!(text.contains(m), "{}: no {m:?} in\n{text}", page.display());
        }
        let w = groff_warnings(&page);
        assert!(w.is_empty(), "{}: groff warnings:\n{w}", page.display());
    }
}

#[test]
fn debian_package_installs_into_an_empty_root_and_runs() {
    require!(
        "dpkg",
        "dpkg-deb",
        "strip",
        "man",
        "bash",
        "chroot",
        "ldd",
        "systemd-analyze"
    );
    if !common::is_root() {
        return cannot("dpkg --root and chroot need root");
    }
    let Some(adm_bin) = rvsadm_bin() else {
        return cannot("the rvsadm binary is not built next to rvsd (cargo build --workspace)");
    };
    let ws = workspace();
    let dir = tempdir("deb");
    let out = dir.path().join("out");
    let mut c = Command::new(ws.join("scripts/build-deb"));
    c.arg("--bin-dir")
        .arg(adm_bin.parent().unwrap())
        .arg("--out")
        .arg(&out)
        .args(["--compress", "gzip"])
        .current_dir(&ws);
    let deb = PathBuf::from(ok("build-deb", c).trim());
    assert!(deb.is_file(), "{}", deb.display());
    let mut c = Command::new("dpkg-deb");
    c.arg("--field").arg(&deb).arg("Package");
    assert_eq!(ok("dpkg-deb", c).trim(), "rvs");

    // An empty root with nothing but dpkg's database.
    let root = dir.path().join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let mut c = Command::new("dpkg");
    c.arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-depends", "-i"])
        .arg(&deb);
    ok("dpkg -i", c);
    let mut c = Command::new("dpkg");
    c.arg(format!("--root={}", root.display()))
        .args(["-L", "rvs"]);
    let files = ok("dpkg -L", c);
    for f in [
        "/usr/sbin/rvsd",
        "/usr/sbin/rvsadm",
        "/usr/sbin/rvstop",
        "/usr/sbin/rvsadm-save",
        "/usr/sbin/rvsadm-restore",
        "/usr/lib/systemd/system/rvsd.service",
        "/etc/default/rvsd",
        "/etc/rvs/rules",
        "/etc/rvs/keepalived.conf.example",
        "/usr/share/man/man8/rvsd.8.gz",
        "/usr/share/man/man8/rvsadm.8.gz",
        "/usr/share/man/man5/rvs-keepalived.conf.5.gz",
        "/usr/share/bash-completion/completions/rvsadm",
        "/usr/share/bash-completion/completions/rvsd",
        "/usr/share/zsh/vendor-completions/_rvsadm",
        "/usr/share/fish/vendor_completions.d/rvsd.fish",
    ] {
        assert!(
            files.lines().any(|l| l == f),
            "{f} not in the package:\n{files}"
        );
        assert!(root.join(&f[1..]).exists(), "{f} not installed");
    }
    let mut c = Command::new("dpkg");
    c.arg(format!("--root={}", root.display()))
        .args(["-s", "rvs"]);
    assert!(ok("dpkg -s", c).contains("Status: install ok installed"));

    // The C libraries rvsd links, copied in, so that the chroot holds nothing else.
    let rvsd = root.join("usr/sbin/rvsd");
    let mut c = Command::new(which("ldd").unwrap());
    c.arg(&rvsd);
    for l in ok("ldd", c).lines() {
        let lib = l
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        if let Some(lib) = lib {
            let dst = root.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &dst).unwrap();
        }
    }
    let mut c = Command::new(which("chroot").unwrap());
    c.arg(&root).args(["/usr/sbin/rvsd", "--version"]);
    let v = ok("chroot rvsd --version", c);
    assert_eq!(v.trim(), format!("rvsd {}", env!("CARGO_PKG_VERSION")));

    // The manuals as installed.
    for (p, m) in [
        ("usr/share/man/man8/rvsd.8.gz", "--metrics-listen"),
        ("usr/share/man/man8/rvsadm.8.gz", "--real-server"),
        ("usr/share/man/man8/rvsadm-save.8.gz", "rvsadm -S"),
        ("usr/share/man/man5/rvs-keepalived.conf.5.gz", "keepalived"),
    ] {
        let text = man(&root.join(p));
        assert!(text.contains(m), "{p}: {text}");
    }

    // Completions load in bash, and rvsadm's completes its options and schedulers.
    let comp = root.join("usr/share/bash-completion/completions");
    let script = format!(
        "source {r}/rvsadm; source {r}/rvsd; complete -p rvsadm; complete -p rvsd; \
         COMP_WORDS=(rvsadm --sched); COMP_CWORD=1; _rvsadm; echo \"A:${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(rvsadm -s w); COMP_CWORD=2; _rvsadm; echo \"B:${{COMPREPLY[*]}}\"",
        r = comp.display()
    );
    let mut c = Command::new("bash");
    c.args(["--norc", "-c", &script]);
    let out = ok("bash completions", c);
    assert!(out.contains("complete -F _rvsadm rvsadm"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("complete ") && l.ends_with(" -F _rvsd rvsd")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("A:") && l.contains("--sched-flags")),
        "{out}"
    );
    assert!(out.contains("B:wrr wlc"), "{out}");

    // systemd's own check of the installed unit, on this host's systemd (the empty root has
    // no sysinit.target or /bin/kill): ExecStart= pointed at the installed binary, the
    // Documentation= manuals found through MANPATH.
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/rvsd.service")).unwrap();
    let units = dir.path().join("units");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("rvsd.service"),
        unit.replace("/usr/sbin/rvsd", &rvsd.display().to_string()),
    )
    .unwrap();
    let mut c = Command::new(which("systemd-analyze").unwrap());
    c.arg("verify")
        .arg(units.join("rvsd.service"))
        .env("MANPATH", root.join("usr/share/man"));
    let a = run("systemd-analyze verify", c);
    assert!(a.code == 0 && a.err.trim().is_empty(), "{a:?}");

    // rvsadm-save / rvsadm-restore from the root against a running rvsd.
    let d = common::start_rvsd(dir.path(), &[]);
    d.table(&[
        "-A -t 127.77.64.1:8080 -s wrr",
        "-a -t 127.77.64.1:8080 -r 127.77.64.11:8080 -m -w 3",
    ]);
    let mut c = Command::new(root.join("usr/sbin/rvsadm-save"));
    c.arg("-n").arg("--socket").arg(&d.socket);
    let saved = ok("rvsadm-save", c);
    assert_eq!(
        saved,
        "-A -t 127.77.64.1:8080 -s wrr\n-a -t 127.77.64.1:8080 -r 127.77.64.11:8080 -m -w 3\n"
    );
    d.ok(&["-C"]);
    let mut c = Command::new(root.join("usr/sbin/rvsadm-restore"));
    c.arg("--socket").arg(&d.socket);
    let a = run_bounded("rvsadm-restore", c, &saved, Duration::from_secs(30));
    assert_eq!(a.code, 0, "{a:?}");
    assert_eq!(d.ok(&["-S", "-n"]), saved);
}
