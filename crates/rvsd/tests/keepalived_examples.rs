//! Every keepalived configuration in `examples/` passes `rvsd -t -f` with exit status 0
//! (issue 5 item 5), so the examples operators start from stay valid.

use std::process::Command;

#[test]
fn examples_pass_the_configuration_test() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("keepalived") && n.ends_with(".conf"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the five scenarios of issue 5: {files:?}");
    for f in files {
        let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .args(["-t", "-f"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
