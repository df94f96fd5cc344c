//! keepalived.conf text through the whole of rvs-config (lexer with `$NAME`, `~SEQ`, conditional
//! lines and braces; tree; parser; validation): it must never panic, every diagnostic with a
//! position must point into the input's lines, and the work stays within the budgets (a
//! hostile input ends with a diagnostic, not a hang — libFuzzer's -timeout catches a hang).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_config::{check_str, CheckOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // No includes from the fuzzer's working directory: `include` lines resolve relative to a
    // directory that does not exist.
    let r = check_str("/nonexistent/rvs-fuzz/keepalived.conf", &text, &CheckOptions::default());
    let lines = text.split('\n').count() as u32;
    for d in &r.diagnostics {
        if let Some(p) = &d.pos {
            if p.file.as_os_str() == "/nonexistent/rvs-fuzz/keepalived.conf" {
                assert!(p.line <= lines.max(1), "{d} beyond {lines} lines");
            }
        }
    }
    let _ = r.exit_status();
    let _ = r.render();
});
