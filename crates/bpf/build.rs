//! Compiles every `bpf/*.c` into a BPF object with clang and writes `objects.rs` into
//! `OUT_DIR`: a table of `(program name, object bytes)` embedded with `include_bytes!`.
//!
//! Without clang the crate still builds: the table is empty and [`UNAVAILABLE`] names the
//! reason, which the loader reports at run time ("XDP unavailable: built without clang").
//! With clang present, a program that does not compile fails the build: a broken program must
//! not pass unnoticed as "unavailable".
//!
//! `CLANG` overrides the compiler (`CLANG=/usr/bin/clang-16`); `RVS_BPF_NO_CLANG=1` builds as if
//! clang were absent (to check that path). Headers: `bpf/include/` (ours), the kernel UAPI
//! headers (`linux-libc-dev`), libbpf's `bpf_helpers.h` (`libbpf-dev`).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let src_dir = manifest.join("bpf");
    println!("cargo:rerun-if-changed={}", src_dir.display());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=RVS_BPF_NO_CLANG");

    let mut sources: Vec<PathBuf> = Vec::new();
    for dir in [src_dir.clone(), src_dir.join("include")] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            println!("cargo:rerun-if-changed={}", path.display());
            if dir == src_dir && path.extension().is_some_and(|e| e == "c") {
                sources.push(path);
            }
        }
    }
    sources.sort();

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let unavailable = if env::var_os("RVS_BPF_NO_CLANG").is_some_and(|v| v == "1") {
        Some("built with RVS_BPF_NO_CLANG=1".to_string())
    } else if Command::new(&clang).arg("--version").output().is_err() {
        println!("cargo:warning=rvs-bpf: {clang} not found; BPF programs (XDP) unavailable");
        Some("built without clang".to_string())
    } else if !headers_present(&clang, &out) {
        println!(
            "cargo:warning=rvs-bpf: <linux/bpf.h> or <bpf/bpf_helpers.h> missing (linux-libc-dev, \
             libbpf-dev); BPF programs (XDP) unavailable"
        );
        Some("built without the BPF headers (linux-libc-dev, libbpf-dev)".to_string())
    } else {
        None
    };

    let mut table = String::new();
    if unavailable.is_none() {
        for source in &sources {
            let name = source
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 file name");
            let object = out.join(format!("{name}.o"));
            compile(&clang, &src_dir, source, &object);
            writeln!(
                table,
                "    ({name:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}.o\"))),"
            )
            .expect("write to string");
        }
    }
    let generated = format!(
        "/// Every compiled program: `(name of its bpf/NAME.c, object file)`.\n\
         pub(crate) const OBJECTS: &[(&str, &[u8])] = &[\n{table}];\n\
         /// Why no program was compiled, when none was.\n\
         pub(crate) const UNAVAILABLE: Option<&str> = {unavailable:?};\n"
    );
    fs::write(out.join("objects.rs"), generated).expect("write objects.rs");
}

/// Whether clang finds the headers every program includes (preprocessing a probe file).
fn headers_present(clang: &str, out: &Path) -> bool {
    let probe = out.join("probe.c");
    let text = "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n";
    if fs::write(&probe, text).is_err() {
        return false;
    }
    let mut cmd = Command::new(clang);
    cmd.args(["-target", "bpf", "-E"]);
    if let Some(multiarch) = multiarch() {
        cmd.arg("-idirafter")
            .arg(format!("/usr/include/{multiarch}"));
    }
    cmd.arg(&probe).arg("-o").arg(out.join("probe.i"));
    cmd.output().is_ok_and(|o| o.status.success())
}

/// `clang -target bpf -O2 -g`: `-g` keeps the BTF the loader needs for the maps' layouts.
fn compile(clang: &str, src_dir: &Path, source: &Path, object: &Path) {
    let mut cmd = Command::new(clang);
    cmd.args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .arg("-I")
        .arg(src_dir.join("include"));
    // The UAPI headers include <asm/types.h>, which Debian keeps under the host's multiarch dir.
    if let Some(multiarch) = multiarch() {
        cmd.arg("-idirafter")
            .arg(format!("/usr/include/{multiarch}"));
    }
    cmd.arg("-c").arg(source).arg("-o").arg(object);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {clang}: {e}"));
    if !output.status.success() {
        panic!(
            "clang failed on {}:\n{}{}",
            source.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Debian's multiarch triple of the host (`x86_64-linux-gnu`), from cargo's `HOST` triple.
fn multiarch() -> Option<String> {
    let host = env::var("HOST").ok()?;
    let mut parts = host.split('-');
    let arch = parts.next()?;
    let os_env: Vec<&str> = parts.skip(1).collect();
    Some(format!("{arch}-{}", os_env.join("-")))
}
