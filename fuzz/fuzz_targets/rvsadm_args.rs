//! rvsadm's command-line parser (ipvsadm's `process_options`, `crates/ipvsadm`) on arbitrary
//! argument vectors, as typed and as `-R` lines: never a panic (errors are `Exit` values with
//! ipvsadm's messages and statuses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_ipvsadm::args::parse_command;
use rvs_ipvsadm::names::NoNames;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // NUL separates arguments, so any byte string is an argument vector.
    let mut args: Vec<String> = vec!["ipvsadm".to_string()];
    args.extend(text.split('\0').map(str::to_string));
    let reading_stdin = data.first().is_some_and(|b| b & 1 == 1);
    let _ = parse_command(&args, reading_stdin, &NoNames);
});
