//! The built-in status page in a real headless Chromium: it loads without console errors,
//! shows the services of a running rvsd, and its charts change while traffic flows through a
//! socket-proxy service (curl → rvsd → nginx, all on loopback). The screenshot is kept as
//! `target/artifacts/status-page.png`. Also the JSON the page reads.
//!
//! Addresses: 127.77.62.0/24 and 127.77.63.0/24.

#[path = "status_page/cdp.rs"]
mod cdp;
mod common;

use std::time::Duration;

use common::{curl, curl_ok, start_nginx, start_rvsd, tempdir, wait_until, Nginx, Rvsd, Site};
use serde_json::Value;

/// A service `127.77.N.1:8080` (round robin, weights 1 and 2) over two nginx real servers,
/// rvsd's HTTP listener on `127.77.N.1:9760`.
fn start(dir: &std::path::Path, n: u8) -> (Nginx, Rvsd) {
    let nginx = start_nginx(
        dir,
        &[
            Site::named(&format!("127.77.{n}.11:8080"), "rs1"),
            Site::named(&format!("127.77.{n}.12:8080"), "rs2"),
        ],
        None,
    );
    let vip = format!("127.77.{n}.1:8080");
    let d = start_rvsd(dir, &["--metrics-listen", &format!("127.77.{n}.1:9760")]);
    d.table(&[
        &format!("-A -t {vip} -s rr"),
        &format!("-a -t {vip} -r 127.77.{n}.11:8080 -m"),
        &format!("-a -t {vip} -r 127.77.{n}.12:8080 -m -w 2"),
    ]);
    (nginx, d)
}

/// Where test artifacts go: `target/artifacts/` next to the binaries' profile directory.
fn artifacts() -> std::path::PathBuf {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_rvsd"));
    let target = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target directory");
    let d = target.join("artifacts");
    std::fs::create_dir_all(&d).expect("artifacts dir");
    d
}

/// What the test reads off the page: the rows and, per chart, its drawn sum and its pixels.
const PROBE: &str = r##"JSON.stringify({
  updates: window.rvsStatus ? window.rvsStatus.updates : 0,
  lastError: window.rvsStatus ? window.rvsStatus.lastError : null,
  services: Array.from(document.querySelectorAll("tr.svc")).map(r => r.dataset.service),
  realServers: Array.from(document.querySelectorAll("tr.rs")).map(r => r.dataset.realServer),
  sync: Array.from(document.querySelectorAll("#sync tbody tr")).map(r => r.textContent),
  charts: Array.from(document.querySelectorAll("#charts canvas")).map(c => ({
    service: c.closest(".card").dataset.service, kind: c.dataset.kind,
    sum: Number(c.dataset.sum || 0), pixels: c.toDataURL() })),
})"##;

fn probe(b: &mut cdp::Browser) -> Value {
    let s = b.eval(PROBE);
    serde_json::from_str(s.as_str().expect("probe string")).expect("probe JSON")
}

fn chart<'a>(p: &'a Value, kind: &str) -> &'a Value {
    p["charts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} chart: {p}"))
}

#[test]
fn status_page_in_chromium_shows_services_and_live_charts() {
    require!("chromium", "nginx", "curl");
    const VIP: &str = "127.77.62.1:8080";
    const METRICS: &str = "127.77.62.1:9760";
    let dir = tempdir("status-page");
    let (_nginx, d) = start(dir.path(), 62);
    // A backup sync daemon on lo (an unusual port, so that no other test's sync meets it).
    d.table(&["--start-daemon backup --mcast-interface lo --syncid 7 --mcast-port 28467"]);
    let mut b = cdp::Browser::start(dir.path());
    b.navigate(&format!("http://{METRICS}/"));

    // The page polls once a second; two updates mean the first redraw was not a fluke.
    let mut p = Value::Null;
    let ok = wait_until(Duration::from_secs(20), Duration::from_millis(250), || {
        p = probe(&mut b);
        p["updates"].as_u64().unwrap_or(0) >= 2
    });
    assert!(ok, "the page did not update: {p}\n{}", b.log_text());
    assert_eq!(
        p["services"],
        serde_json::json!([format!("TCP {VIP}")]),
        "{p}"
    );
    let mut rs: Vec<String> = serde_json::from_value(p["realServers"].clone()).unwrap();
    rs.sort();
    assert_eq!(rs, ["127.77.62.11:8080", "127.77.62.12:8080"], "{p}");
    assert_eq!(p["charts"].as_array().unwrap().len(), 3, "{p}");
    let sync = p["sync"].as_array().unwrap();
    assert!(
        sync.len() == 1 && sync[0].as_str().unwrap().starts_with("backuplo7"),
        "{p}"
    );
    let before = p.clone();
    assert_eq!(chart(&before, "cps")["sum"], 0, "no traffic yet: {p}");

    // Traffic through the proxy plane: a bounded curl loop on a thread while the page runs.
    let traffic = std::thread::spawn(|| {
        let mut ok = 0;
        for _ in 0..60 {
            if curl(&[&format!("http://{VIP}/")]).status.success() {
                ok += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        ok
    });
    let changed = wait_until(Duration::from_secs(30), Duration::from_millis(500), || {
        p = probe(&mut b);
        ["cps", "pps", "bps"].iter().all(|k| {
            chart(&p, k)["sum"].as_f64().unwrap_or(0.0) > 0.0
                && chart(&p, k)["pixels"] != chart(&before, k)["pixels"]
        })
    });
    let served = traffic.join().expect("traffic thread");
    assert!(served >= 50, "only {served}/60 requests answered");
    assert!(changed, "charts did not change while traffic flowed: {p}");
    // And they keep moving: the next samples redraw them.
    let snap = p.clone();
    let moved = wait_until(Duration::from_secs(10), Duration::from_millis(500), || {
        p = probe(&mut b);
        chart(&p, "cps")["pixels"] != chart(&snap, "cps")["pixels"]
    });
    assert!(moved, "charts froze: {p}");

    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let shot = artifacts().join("status-page.png");
    std::fs::write(&shot, &png).expect("write the screenshot");
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());

    // Collect events that arrived since the last call, then: no error of any kind.
    let _ = b.eval("1");
    assert!(
        b.errors.is_empty(),
        "console errors: {:#?}\nrvsd log:\n{}",
        b.errors,
        d.log_text()
    );
    assert_eq!(p["lastError"], Value::Null, "{p}");
}

#[test]
fn status_json_and_history() {
    require!("nginx", "curl");
    const VIP: &str = "127.77.63.1:8080";
    const METRICS: &str = "127.77.63.1:9760";
    let dir = tempdir("status-json");
    let (_nginx, d) = start(dir.path(), 63);
    for _ in 0..5 {
        curl_ok(&[&format!("http://{VIP}/")]);
    }
    let doc: Value =
        serde_json::from_str(&curl_ok(&[&format!("http://{METRICS}/api/status")])).unwrap();
    let s = &doc["services"][0];
    assert_eq!(s["name"], format!("TCP {VIP}"), "{doc}");
    assert_eq!(s["spec"]["scheduler"], "rr");
    assert_eq!(s["stats"]["conns"], 5, "{doc}");
    assert_eq!(s["unserved"], Value::Null);
    let dests = s["dests"].as_array().unwrap();
    assert_eq!(dests.len(), 2);
    let w: u64 = dests
        .iter()
        .map(|d| d["spec"]["weight"].as_u64().unwrap())
        .sum();
    assert_eq!(w, 3, "{doc}");
    let conns: u64 = dests
        .iter()
        .map(|d| d["stats"]["conns"].as_u64().unwrap())
        .sum();
    assert_eq!(conns, 5, "{doc}");
    assert_eq!(doc["vrrp"], serde_json::json!([]));

    // `rvsadm -L --json`: the same records (the page adds names and flags to them).
    let adm: Value = serde_json::from_str(&d.ok(&["-Ln", "--json"])).unwrap();
    let a = &adm["services"][0];
    assert_eq!(a["spec"], s["spec"], "{adm}");
    assert_eq!(a["stats"]["conns"], 5, "{adm}");
    let mut from_adm: Vec<(String, u64)> = a["dests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["spec"]["addr"].to_string(),
                d["stats"]["conns"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut from_api: Vec<(String, u64)> = dests
        .iter()
        .map(|d| {
            (
                d["spec"]["addr"].to_string(),
                d["stats"]["conns"].as_u64().unwrap(),
            )
        })
        .collect();
    from_adm.sort();
    from_api.sort();
    assert_eq!(from_adm, from_api);
    let one: Value = serde_json::from_str(&d.ok(&["-Ln", "-t", VIP, "--json"])).unwrap();
    assert_eq!(one["services"][0]["spec"], s["spec"]);
    let conns: Value = serde_json::from_str(&d.ok(&["-Lnc", "--json"])).unwrap();
    assert!(conns["connections"].is_array(), "{conns}");
    assert_eq!(d.adm(&["-C", "--json"]).code, 2, "--json is for -L only");

    // The history is sampled once a second: after two samples the 5 connections show up as
    // a per-second rate in the service's series and its real servers'.
    let mut h = Value::Null;
    let ok = wait_until(Duration::from_secs(10), Duration::from_millis(300), || {
        h = serde_json::from_str(&curl_ok(&[&format!("http://{METRICS}/api/history")])).unwrap();
        h["t"].as_array().is_some_and(|t| t.len() >= 2)
    });
    assert!(ok, "{h}");
    let key = format!("TCP {VIP}");
    for _ in 0..3 {
        curl_ok(&[&format!("http://{VIP}/")]);
    }
    let ok = wait_until(Duration::from_secs(10), Duration::from_millis(300), || {
        h = serde_json::from_str(&curl_ok(&[&format!("http://{METRICS}/api/history")])).unwrap();
        let sum: u64 = h["series"][&key]["cps"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        sum == 3
    });
    assert!(ok, "3 new connections not in the history: {h}");
    let rs_key = format!("{key} -> 127.77.63.11:8080");
    assert!(h["series"][&rs_key]["cps"].is_array(), "{h}");

    // The page itself: self-contained, with a policy that forbids loading anything else.
    let page = curl(&["-i", &format!("http://{METRICS}/")]);
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("Content-Security-Policy: default-src 'none'"),
        "{page}"
    );
    assert!(!page.contains("src=\"http"), "external asset in the page");
    let missing = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{METRICS}/nope"),
    ]);
    assert_eq!(String::from_utf8_lossy(&missing.stdout), "404");
}
