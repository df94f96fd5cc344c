//! A SIGHUP with a hostile keepalived.conf cannot wedge rvsd: the file is read off the runtime
//! that serves the control socket, so rvsadm keeps answering (each `-Ln` within 1 s, the table
//! unchanged) while the file is read; the read ends at rvs-config's budget, the log says why
//! and the running table stays; SIGTERM during such a reload still stops rvsd promptly.
//!
//! Addresses: 127.77.71.0/24.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

const CONF: &str =
    "virtual_server 127.77.71.1 8080 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  \
                    real_server 127.77.71.11 8080 {\n    weight 1\n  }\n  \
                    real_server 127.77.71.12 8080 {\n    weight 2\n  }\n}\n";

/// 201 000 `~SEQ` values of seven lines each: legal values, but the expansion runs into the
/// 1 000 000-line limit after seconds of work (a debug build), which is the window in which
/// rvsadm must keep being answered.
const HEAVY: &str = "~SEQ(A, 1, 1000) ~SEQ(B, 1, 200) a { b { c } }\n";

#[test]
fn sighup_with_a_hostile_file_keeps_rvsadm_answering_and_sigterm_works() {
    let dir = tempdir("hostile");
    let mut d = start_keepalived(dir.path(), CONF, &[]);
    assert!(wait_for(Duration::from_secs(10), || d.dests().len() == 2).is_some());
    let before = d.listing();

    d.reload(&format!("{CONF}{HEAVY}"));
    let start = Instant::now();
    let mut probes = 0;
    let mut slowest = Duration::ZERO;
    while !d.log_text().contains("keeping the running configuration") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no reload verdict after 60 s; log:\n{}",
            d.log_text()
        );
        let t = Instant::now();
        let a = d.adm(&["-Ln"]);
        let took = t.elapsed();
        slowest = slowest.max(took);
        assert_eq!(a.code, 0, "{a:?}");
        assert_eq!(a.out, before, "the table changed during the reload");
        assert!(
            took < Duration::from_secs(1),
            "rvsadm -Ln took {took:?} during the reload"
        );
        probes += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.log_text();
    assert!(
        log.contains("configuration expands to more than 1000000 lines - stopping"),
        "{log}"
    );
    assert!(probes >= 3, "only {probes} probes during the reload");
    eprintln!(
        "{probes} rvsadm -Ln answered during a {:?} reload, slowest {slowest:?}",
        start.elapsed()
    );
    assert_eq!(d.listing(), before, "the running table is unchanged");

    // The include bomb (each file includes the next one twice, 30 deep): refused at the
    // included-files budget; the table stays.
    for i in 1..30 {
        let line = format!("include f{}.conf\n", i + 1);
        std::fs::write(dir.path().join(format!("f{i}.conf")), line.repeat(2)).unwrap();
    }
    std::fs::write(dir.path().join("f30.conf"), "").unwrap();
    d.reload(&format!("{CONF}include f1.conf\ninclude f1.conf\n"));
    let t = Instant::now();
    assert!(
        d.wait_log(
            "more than 10000 files read by include lines",
            Duration::from_secs(60)
        ),
        "{}",
        d.log_text()
    );
    eprintln!("include bomb refused {:?} after SIGHUP", t.elapsed());
    assert_eq!(d.listing(), before, "the running table is unchanged");

    // SIGTERM while the next such reload is being read: rvsd stops promptly.
    d.reload(&format!("{CONF}{HEAVY}"));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some(),
        "rvsd still running 10 s after SIGTERM; log:\n{}",
        d.log_text()
    );
    assert!(
        d.log_text()
            .contains("SIGTERM during a reload: the reload is abandoned"),
        "{}",
        d.log_text()
    );
    eprintln!("stopped {:?} after SIGTERM", t.elapsed());
}
