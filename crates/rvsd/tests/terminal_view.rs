//! `rvstop`, the terminal live view, under a real tmux (its own server socket): it shows the
//! services and real servers of a running rvsd, its numbers follow traffic (curl → socket
//! proxy → nginx on loopback) without a key pressed, a key re-sorts it, `q` quits it.
//!
//! Addresses: 127.77.65.0/24.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

/// A tmux server of this test only (`-L`), killed on drop.
struct Tmux {
    sock: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Adm {
        let mut c = Command::new(which("tmux").unwrap());
        c.args(["-L", &self.sock]).args(args);
        run_bounded("tmux", c, "", Duration::from_secs(20))
    }
    fn capture(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "view"]).out
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The total connections (last column) of the line naming `what`.
fn conns_of(screen: &str, what: &str) -> Option<u64> {
    screen
        .lines()
        .find(|l| l.contains(what))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

#[test]
fn rvstop_under_tmux_shows_services_follows_traffic_and_sorts() {
    require!("tmux", "nginx", "curl");
    let rvstop = PathBuf::from(RVSD).with_file_name("rvstop");
    if !rvstop.is_file() {
        // Fails under CI (RVS_REQUIRE_ALL=1 / CI=true); elsewhere a logged skip.
        rvs_require::unmet("rvstop is not built next to rvsd (cargo build --workspace)");
        return;
    }
    let dir = tempdir("rvstop");
    let _nginx = start_nginx(
        dir.path(),
        &[
            Site::named("127.77.65.11:8080", "rs1"),
            Site::named("127.77.65.12:8080", "rs2"),
        ],
        None,
    );
    let d = start_rvsd(dir.path(), &[]);
    d.table(&[
        "-A -t 127.77.65.1:8080 -s rr",
        "-a -t 127.77.65.1:8080 -r 127.77.65.11:8080 -m",
        "-a -t 127.77.65.1:8080 -r 127.77.65.12:8080 -m",
        "-A -t 127.77.65.2:8080 -s wlc",
        "-a -t 127.77.65.2:8080 -r 127.77.65.12:8080 -m",
    ]);
    let tmux = Tmux {
        sock: format!("rvs-test-{}", std::process::id()),
    };
    let run = format!(
        "{} --socket {} --interval 0.5",
        rvstop.display(),
        d.socket.display()
    );
    let a = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "view",
        "-x",
        "140",
        "-y",
        "30",
        &run,
    ]);
    assert_eq!(a.code, 0, "{a:?}");

    let mut screen = String::new();
    let shown = wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        screen = tmux.capture();
        screen.contains("TCP 127.77.65.1:8080") && screen.contains("-> 127.77.65.11:8080")
    });
    assert!(shown, "services not shown:\n{screen}");
    assert!(screen.contains("TCP 127.77.65.2:8080"), "{screen}");
    assert!(screen.contains("sort: conn/s"), "{screen}");
    assert_eq!(
        conns_of(&screen, "TCP 127.77.65.1:8080"),
        Some(0),
        "{screen}"
    );

    // Traffic: the view follows by itself.
    for _ in 0..12 {
        curl_ok(&["http://127.77.65.1:8080/"]);
    }
    let updated = wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        screen = tmux.capture();
        conns_of(&screen, "TCP 127.77.65.1:8080") == Some(12)
    });
    assert!(updated, "the view did not follow the traffic:\n{screen}");
    assert_eq!(
        conns_of(&screen, "-> 127.77.65.11:8080"),
        Some(6),
        "{screen}"
    );

    // Sorting: by name the .1 service comes first, reversed it comes last.
    let order = |s: &str| {
        let a = s.find("TCP 127.77.65.1:8080");
        let b = s.find("TCP 127.77.65.2:8080");
        (a, b)
    };
    tmux.cmd(&["send-keys", "-t", "view", "n"]);
    let by_name = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        screen = tmux.capture();
        matches!(order(&screen), (Some(a), Some(b)) if a < b) && screen.contains("sort: name")
    });
    assert!(by_name, "{screen}");
    tmux.cmd(&["send-keys", "-t", "view", "r"]);
    let reversed = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        screen = tmux.capture();
        matches!(order(&screen), (Some(a), Some(b)) if a > b) && screen.contains("(reversed)")
    });
    assert!(reversed, "{screen}");

    // q quits: the session (its only pane) goes away.
    tmux.cmd(&["send-keys", "-t", "view", "q"]);
    let gone = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        tmux.cmd(&["has-session", "-t", "view"]).code != 0
    });
    assert!(gone, "rvstop did not quit on q:\n{}", tmux.capture());
}
