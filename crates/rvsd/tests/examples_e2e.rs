//! Every keepalived.conf in `examples/` runs end to end (issue 18 item 2): the file itself,
//! unchanged, given to `rvsd -f FILE --interface …` in the rvs-lab topology its addresses are
//! written for, with nginx real servers and curl through the VIP from the lab's client —
//! checking what the file's comments promise:
//!
//! - `keepalived-nat-http.conf` (NAT lab): both servers serve, they see the client's address
//!   (classic LVS-NAT), HTTP_GET takes a server whose nginx stopped out of the table and
//!   brings it back when it restarts; and the same on the socket proxy alone (no
//!   `--interface`), where the servers see the director's address;
//! - `keepalived-dr-tcp.conf` (DR lab): wrr 3:1 exactly, replies bypass the director,
//!   TCP_CHECK takes a stopped server out and back;
//! - `keepalived-tun.conf` (TUN lab): rr over two tunnelled servers on other networks,
//!   replies bypass the director, HTTP_GET takes a stopped server out;
//! - `keepalived-fwmark-persistence.conf` (DR lab): the nft commands of its comment mark
//!   80 and 443; one client stays on one server for both ports, a second client of the same
//!   /24 joins it (granularity), and when that server's 443 stops they move to the other;
//! - `keepalived-sorry-quorum.conf` (NAT lab, four real servers): losing one of three keeps
//!   quorum, losing two brings in the sorry server for every request, and it leaves when
//!   quorum returns; on the packet plane and on the socket proxy alone.
//!
//! Root only (skipped with a reason otherwise, failing under CI). Every wait is bounded; the
//! lab, nginx and rvsd are torn down on drop, also on panic. Health-check times are printed.

mod common;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    curl_in, curl_in_ok, download_in, pattern, report, start_nginx_in, tempdir, wait_for,
    wait_plane_ready, Forwards, Nginx, Rvsd, Site, RVSD,
};
use rvs_lab::{BuildOptions, Lab, LabKind, Netns, Topology};

/// `examples/NAME`.
fn example(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    assert!(p.is_file(), "{} exists", p.display());
    p
}

/// The size of `/big.bin` on every real server: a download long enough that its flow goes on
/// after the XDP program's entry for it was installed (see [`Running::long_download`]).
const BIG: usize = 300_000;

/// A lab running one example: rvsd on the director, an nginx per real server (stoppable).
/// Fields drop in order: rvsd, the servers, then the lab.
struct Running {
    rvsd: Rvsd,
    servers: Vec<Nginx>,
    t: Topology,
    /// The director's interfaces of the packet plane (none: the socket proxy).
    ifaces: Vec<String>,
    dir: tempfile::TempDir,
}

impl Running {
    /// Builds lab `kind` with `n` real servers, starts nginx on each (ports 80 and 443,
    /// answering its role name, with a `/big.bin` of [`BIG`] bytes), then `rvsd -f examples/FILE` with the packet plane on
    /// `ifaces` of the director; waits until the table lists `dests` real servers.
    fn start(
        tag: &str,
        kind: LabKind,
        n: u8,
        file: &str,
        ifaces: &[&str],
        dests: usize,
    ) -> Running {
        Running::start_after(tag, kind, n, file, ifaces, dests, |_| {})
    }

    /// [`Running::start`], running `before` on the lab just before rvsd starts.
    fn start_after(
        tag: &str,
        kind: LabKind,
        n: u8,
        file: &str,
        ifaces: &[&str],
        dests: usize,
        before: impl FnOnce(&Topology),
    ) -> Running {
        let dir = tempdir(tag);
        let opts = BuildOptions {
            real_servers: n,
            ..BuildOptions::default()
        };
        let t = Topology::build(Lab::new(tag).expect("lab"), kind, opts).expect("topology");
        let servers = t
            .real_servers()
            .iter()
            .map(|rs| {
                start_nginx_in(
                    Some(&rs.ns),
                    &dir.path().join(&rs.role),
                    &[Site::port(80, &rs.role), Site::port(443, &rs.role)],
                    Some(BIG),
                )
            })
            .collect();
        before(&t);
        let conf = example(file).display().to_string();
        let mut args = vec!["-f", conf.as_str()];
        for i in ifaces {
            args.extend(["--interface", i]);
        }
        let work = dir.path().join("rvsd");
        std::fs::create_dir_all(&work).expect("rvsd dir");
        let rvsd = Rvsd::start_in(RVSD, Some(&t.director().ns), &work, &args);
        let r = Running {
            rvsd,
            servers,
            t,
            ifaces: ifaces.iter().map(|i| i.to_string()).collect(),
            dir,
        };
        assert!(
            wait_for(Duration::from_secs(10), || r.rvsd.dests().len() == dests).is_some(),
            "{dests} real servers in the table:\n{}",
            r.rvsd.listing()
        );
        r
    }

    /// Downloads `/big.bin` through `base` (the VIP's URL) from the client; it must arrive
    /// intact. The page fetches of the examples are short exchanges, which may be over before
    /// the XDP program has their flows; this one goes on long after, so that in XDP mode the
    /// program must have forwarded some of its packets ([`Running::stop_and_check_mode`]).
    fn long_download(&self, base: &str) {
        let got = download_in(
            &self.client(),
            &format!("{base}big.bin"),
            &self.dir.path().join("big.bin"),
        );
        assert!(
            got == pattern(BIG),
            "{base}big.bin: {} bytes, want the server's {BIG}",
            got.len()
        );
    }

    /// Stops rvsd and, with the packet plane, checks its log for the mode it ran in
    /// (`RVS_TEST_XDP`: the XDP program on every interface, which forwarded some of the
    /// [`Running::long_download`]'s packets; or no XDP line at all).
    fn stop_and_check_mode(&mut self) {
        if self.ifaces.is_empty() {
            return;
        }
        let ifaces: Vec<&str> = self.ifaces.iter().map(String::as_str).collect();
        self.rvsd.stop_and_check_mode(&ifaces, Forwards::Some);
    }

    fn client(&self) -> Netns {
        self.t.client().ns.clone()
    }

    /// The real servers listed now (addresses as `rvsadm -Ln` prints them).
    fn listed(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rvsd.dests().into_iter().map(|d| d.0).collect();
        v.sort();
        v
    }

    /// Waits (≤ `limit`) until the listed real servers are `want`; returns the time it took.
    fn wait_listed(&self, want: &[&str], limit: Duration, what: &str) -> Duration {
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        wait_for(limit, || self.listed() == want).unwrap_or_else(|| {
            panic!(
                "{what}: want {want:?} listed within {limit:?}, have {:?}\n{}",
                self.listed(),
                self.rvsd.log_text()
            )
        })
    }

    /// Stops (SIGKILL) the nginx of real server `i` (0-based), like a crashed server.
    fn stop(&mut self, i: usize) {
        self.servers[i].stop();
    }

    /// Starts it again.
    fn restart(&mut self, i: usize) {
        self.servers[i].restart().expect("nginx restart");
    }
}

/// `n` single curls (no retry: each is one scheduled connection) through `url` from `ns`.
fn pages(ns: &Netns, extra: &[&str], url: &str, n: usize) -> Vec<String> {
    (0..n).map(|_| curl_in_ok(ns, extra, url)).collect()
}

fn count(pages: &[String], name: &str) -> usize {
    pages
        .iter()
        .filter(|p| p.as_str() == format!("{name}\n"))
        .count()
}

#[test]
fn example_nat_http_get_takes_a_stopped_server_out_and_back() {
    nat_http(
        "example_nat_http_get_takes_a_stopped_server_out_and_back",
        "exnat",
        &["eth0", "eth1"],
    );
}

/// The same file without `--interface`: the socket proxy alone serves it, as its comment says
/// (the real servers then see the director's address).
#[test]
fn example_nat_http_on_the_socket_proxy() {
    nat_http("example_nat_http_on_the_socket_proxy", "exnatpx", &[]);
}

/// `keepalived-nat-http.conf` with the packet plane on `ifaces`, or on the socket proxy
/// (none).
fn nat_http(test: &str, tag: &str, ifaces: &[&str]) {
    if !common::require(test, &["nginx", "curl", "nft"]) {
        return;
    }
    let packet_plane = !ifaces.is_empty();
    let mut r = Running::start(tag, LabKind::Nat, 2, "keepalived-nat-http.conf", ifaces, 2);
    // Health checking started before rvsd answered; see the wait before `r.stop(0)`.
    let checks_started = Instant::now();
    let client = r.client();
    let rips: Vec<String> = r.t.rips().iter().map(|a| a.to_string()).collect();
    if packet_plane {
        wait_plane_ready(&r.t.director().ns, "10.100.0.1", &rips);
    }
    let url = "http://10.100.0.1/";
    let p = pages(&client, &[], url, 6);
    assert!(
        count(&p, "rs1") >= 1 && count(&p, "rs2") >= 1,
        "both serve: {p:?}"
    );
    // Classic LVS-NAT keeps the client's address; the proxy connects from the director.
    let seen = if packet_plane { "10.1.0.2" } else { "10.2.0.1" };
    assert_eq!(
        curl_in_ok(&client, &[], &format!("{url}whoami")).trim(),
        seen
    );

    // Until a checker's first check has passed, keepalived's pre-loaded retry counter makes
    // ONE failure enough to take a server out (docs/internals/keepalived.md#the-retry-machine).
    // The first check runs within the start-up delay (1 s) plus a random warm-up of up to
    // delay_loop (5 s): wait that out, so the stop below meets a checker that has passed.
    thread::sleep(Duration::from_millis(6500).saturating_sub(checks_started.elapsed()));
    r.stop(0);
    let gone = r.wait_listed(&["10.2.0.12:80"], Duration::from_secs(30), "HTTP_GET fails");
    report(test, &format!("rs1 left the table {:.1} s after its nginx stopped (delay_loop 5, retry 2, delay_before_retry 1)", gone.as_secs_f64()));
    // Three failed checks: the first within delay_loop, then two retries 1 s apart (the
    // clock starts once nginx is reaped, so a check failing at the kill is up to a few
    // hundred ms earlier).
    assert!(
        gone >= Duration::from_millis(1500),
        "down only after the retries: {gone:?}"
    );
    assert!(
        r.rvsd
            .log_text()
            .contains("HTTP_GET on service 10.2.0.11:80 failed after 2 retries"),
        "three failed checks (retry 2):\n{}",
        r.rvsd.log_text()
    );
    assert!(gone <= Duration::from_secs(15), "{gone:?}");
    let p = pages(&client, &[], url, 4);
    assert_eq!(count(&p, "rs2"), 4, "only rs2 serves: {p:?}");

    r.restart(0);
    let back = r.wait_listed(
        &["10.2.0.11:80", "10.2.0.12:80"],
        Duration::from_secs(20),
        "HTTP_GET succeeds again",
    );
    report(
        test,
        &format!("rs1 back {:.1} s after nginx restarted", back.as_secs_f64()),
    );
    // Back after two good checks delay_loop apart: the url that failed, then a full pass.
    assert!(back <= Duration::from_secs(13), "{back:?}");
    if packet_plane {
        wait_plane_ready(&r.t.director().ns, "10.100.0.1", &rips);
    }
    // wlc: rs2 holds the (inactive) connections of the last requests, rs1 none, so new
    // connections go to the server that came back.
    let p = pages(&client, &[], url, 3);
    assert!(
        p[0] == "rs1\n" && count(&p, "rs1") >= 2,
        "rs1 serves again: {p:?}"
    );
    r.long_download(url);
    r.stop_and_check_mode();
}

#[test]
fn example_dr_tcp_check_wrr_three_to_one_and_replies_bypass() {
    const T: &str = "example_dr_tcp_check_wrr_three_to_one_and_replies_bypass";
    if !common::require(T, &["nginx", "curl", "nft"]) {
        return;
    }
    let mut r = Running::start(
        "exdr",
        LabKind::Dr,
        2,
        "keepalived-dr-tcp.conf",
        &["eth0"],
        2,
    );
    assert_eq!(r.rvsd.weight("10.3.0.11:443".parse().unwrap()), Some(3));
    assert_eq!(r.rvsd.weight("10.3.0.12:443".parse().unwrap()), Some(1));
    let client = r.client();
    let rips: Vec<String> = r.t.rips().iter().map(|a| a.to_string()).collect();
    wait_plane_ready(&r.t.director().ns, "10.100.0.1", &rips);
    let url = "http://10.100.0.1:443/";
    let p = pages(&client, &[], url, 8);
    assert_eq!(
        (count(&p, "rs1"), count(&p, "rs2")),
        (6, 2),
        "wrr 3:1 over two cycles: {p:?}"
    );
    assert_eq!(
        curl_in_ok(&client, &[], &format!("{url}whoami")).trim(),
        "192.168.1.2"
    );
    let (conns, inpkts, outpkts) = r.rvsd.service_stats("TCP  10.100.0.1:443");
    assert!(conns >= 9 && inpkts >= 9 * 3, "{conns} {inpkts}");
    assert_eq!(outpkts, 0, "DR: the replies bypass the director");

    r.stop(1);
    let gone = r.wait_listed(
        &["10.3.0.11:443"],
        Duration::from_secs(20),
        "TCP_CHECK fails",
    );
    report(T, &format!("rs2 left the table {:.1} s after its nginx stopped (delay_loop 3, retry 1, delay_before_retry 1)", gone.as_secs_f64()));
    assert!(gone <= Duration::from_secs(10), "{gone:?}");
    let p = pages(&client, &[], url, 4);
    assert_eq!(count(&p, "rs1"), 4, "only rs1 serves: {p:?}");
    r.restart(1);
    r.wait_listed(
        &["10.3.0.11:443", "10.3.0.12:443"],
        Duration::from_secs(15),
        "TCP_CHECK succeeds again",
    );
    assert_eq!(r.rvsd.weight("10.3.0.12:443".parse().unwrap()), Some(1));
    r.long_download(url);
    r.stop_and_check_mode();
}

#[test]
fn example_tun_round_robin_through_tunnels_and_health_check() {
    const T: &str = "example_tun_round_robin_through_tunnels_and_health_check";
    if !common::require(T, &["nginx", "curl", "nft", "ethtool"]) {
        return;
    }
    let mut r = Running::start(
        "extun",
        LabKind::Tun,
        2,
        "keepalived-tun.conf",
        &["eth0"],
        2,
    );
    let client = r.client();
    // The real servers are on other networks: no neighbour to resolve.
    wait_plane_ready(&r.t.director().ns, "10.100.0.1", &[]);
    let url = "http://10.100.0.1/";
    let p = pages(&client, &[], url, 4);
    for w in p.windows(2) {
        assert_ne!(w[0], w[1], "rr alternates: {p:?}");
    }
    assert!(count(&p, "rs1") == 2 && count(&p, "rs2") == 2, "{p:?}");
    assert_eq!(
        curl_in_ok(&client, &[], &format!("{url}whoami")).trim(),
        "192.168.1.2"
    );
    let (conns, inpkts, outpkts) = r.rvsd.service_stats("TCP  10.100.0.1:80");
    assert!(conns >= 5 && inpkts >= 5 * 3, "{conns} {inpkts}");
    assert_eq!(outpkts, 0, "TUN: the replies bypass the director");

    r.stop(0);
    let gone = r.wait_listed(&["10.5.2.12:80"], Duration::from_secs(30), "HTTP_GET fails");
    report(
        T,
        &format!(
            "rs1 left the table {:.1} s after its nginx stopped (delay_loop 5)",
            gone.as_secs_f64()
        ),
    );
    let p = pages(&client, &[], url, 3);
    assert_eq!(count(&p, "rs2"), 3, "only rs2 serves: {p:?}");
    r.restart(0);
    r.wait_listed(
        &["10.5.1.11:80", "10.5.2.12:80"],
        Duration::from_secs(20),
        "HTTP_GET succeeds again",
    );
    // The client's checksum offload off for the download, as from a NIC: a local sender's
    // segments on a veth carry partial checksums, which the XDP program leaves to the
    // userspace plane in TUN (docs/internals/packet-plane.md); with complete ones it
    // encapsulates them itself. The same in both modes.
    client
        .cmd("ethtool")
        .args(["-K", "eth0", "tx", "off"])
        .run()
        .expect("ethtool -K eth0 tx off");
    r.long_download(url);
    r.stop_and_check_mode();
}

/// The `nft` commands of the example's comment (`#   nft …`), as written.
fn nft_commands(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(example(file)).expect("example");
    text.lines()
        .filter_map(|l| l.strip_prefix("#   nft "))
        .map(|l| format!("nft {l}"))
        .collect()
}

#[test]
fn example_fwmark_persistence_keeps_a_client_and_its_24_on_one_server() {
    const T: &str = "example_fwmark_persistence_keeps_a_client_and_its_24_on_one_server";
    if !common::require(T, &["nginx", "curl", "nft"]) {
        return;
    }
    const FILE: &str = "keepalived-fwmark-persistence.conf";
    // The firewall mark comes first, as the file says (rvsd reads the ruleset at start).
    let nft = nft_commands(FILE);
    assert_eq!(nft.len(), 3, "the comment's nft commands: {nft:?}");
    // The mark rules go in before rvsd starts (it reads the ruleset when it starts).
    let mut r = Running::start_after("exfwm", LabKind::Dr, 2, FILE, &["eth0"], 2, |t| {
        for c in &nft {
            t.director()
                .ns
                .cmd("sh")
                .args(["-c", c])
                .run()
                .unwrap_or_else(|e| panic!("{c}: {e}"));
        }
    });
    let client = r.client();
    client
        .ip(["addr", "add", "192.168.1.3/24", "dev", "eth0"])
        .expect("second client address");
    let rips: Vec<String> = r.t.rips().iter().map(|a| a.to_string()).collect();
    wait_plane_ready(&r.t.director().ns, "10.100.0.1", &rips);
    let mut p = Vec::new();
    for _ in 0..3 {
        p.push(curl_in_ok(&client, &[], "http://10.100.0.1:80/"));
        p.push(curl_in_ok(&client, &[], "http://10.100.0.1:443/"));
    }
    assert!(
        p.iter().all(|x| x == &p[0]),
        "one server for both ports: {p:?}"
    );
    // Another client of the same /24 (persistence_granularity 255.255.255.0) joins it,
    // although wlc would pick the idle server for a new client.
    for port in [80, 443] {
        let q = curl_in_ok(
            &client,
            &["--interface", "192.168.1.3"],
            &format!("http://10.100.0.1:{port}/"),
        );
        assert_eq!(q, p[0], "192.168.1.3 sticks with 192.168.1.2's server");
    }
    let sticky = p[0].trim().to_owned();
    let (i, other) = if sticky == "rs1" {
        (0, "rs2")
    } else {
        (1, "rs1")
    };
    let other_addr = if other == "rs1" {
        "10.3.0.11:0"
    } else {
        "10.3.0.12:0"
    };
    let (conns, _, outpkts) = r.rvsd.service_stats("FWM  80");
    assert!(conns >= 8, "{conns}");
    assert_eq!(outpkts, 0, "DR: replies bypass the director");

    // Its 443 stops: TCP_CHECK (connect_port 443) takes it out; the clients move on.
    r.stop(i);
    let gone = r.wait_listed(
        &[other_addr],
        Duration::from_secs(30),
        "TCP_CHECK on 443 fails",
    );
    report(
        T,
        &format!(
            "{sticky} left the table {:.1} s after its nginx stopped (delay_loop 5)",
            gone.as_secs_f64()
        ),
    );
    for url in ["http://10.100.0.1:80/", "http://10.100.0.1:443/"] {
        assert_eq!(
            curl_in_ok(&client, &[], url).trim(),
            other,
            "moved to {other}"
        );
    }
    r.long_download("http://10.100.0.1:443/");
    r.stop_and_check_mode();
}

#[test]
fn example_sorry_server_replaces_the_pool_when_quorum_is_lost() {
    sorry_quorum(
        "example_sorry_server_replaces_the_pool_when_quorum_is_lost",
        "exsorry",
        &["eth0", "eth1"],
    );
}

/// The same file on the socket proxy alone (no `--interface`), as its comment says it runs.
#[test]
fn example_sorry_server_on_the_socket_proxy() {
    sorry_quorum("example_sorry_server_on_the_socket_proxy", "exsorrypx", &[]);
}

/// `keepalived-sorry-quorum.conf` with the packet plane on `ifaces`, or on the socket proxy
/// (none).
fn sorry_quorum(test: &str, tag: &str, ifaces: &[&str]) {
    if !common::require(test, &["nginx", "curl", "nft"]) {
        return;
    }
    let mut r = Running::start(
        tag,
        LabKind::Nat,
        4,
        "keepalived-sorry-quorum.conf",
        ifaces,
        3,
    );
    let pool = ["10.2.0.11:80", "10.2.0.12:80", "10.2.0.13:80"];
    assert_eq!(r.listed(), pool, "the pool, not the sorry server");
    let client = r.client();
    // The pool's neighbours (the sorry server is not in the table yet).
    let rips: Vec<String> = r.t.rips()[..3].iter().map(|a| a.to_string()).collect();
    if !ifaces.is_empty() {
        wait_plane_ready(&r.t.director().ns, "10.100.0.1", &rips);
    }
    let url = "http://10.100.0.1/";
    let p = pages(&client, &[], url, 3);
    for rs in ["rs1", "rs2", "rs3"] {
        assert_eq!(count(&p, rs), 1, "rr over the pool: {p:?}");
    }

    // One of three down: weights 2 ≥ quorum 2, the pool stays.
    r.stop(0);
    r.wait_listed(&pool[1..], Duration::from_secs(20), "rs1 fails its check");
    let p = pages(&client, &[], url, 4);
    assert!(
        count(&p, "rs2") == 2 && count(&p, "rs3") == 2,
        "quorum holds, rs2 and rs3 serve: {p:?}"
    );

    // Two of three down: quorum lost, the sorry server takes every request.
    r.stop(1);
    let lost = r.wait_listed(&["10.2.0.14:80"], Duration::from_secs(20), "quorum lost");
    report(
        test,
        &format!(
            "sorry server in {:.1} s after the second server stopped",
            lost.as_secs_f64()
        ),
    );
    for _ in 0..3 {
        // The sorry server's MAC may still be unresolved for the very first packet, which the
        // plane drops while the kernel resolves it; TCP retransmits the SYN within curl's 5 s.
        let page = curl_in(&client, &[], url).expect("the sorry server answers");
        assert_eq!(page, "rs4\n", "every request goes to the sorry server");
    }

    // Quorum back: the sorry server leaves.
    r.restart(1);
    let back = r.wait_listed(&pool[1..], Duration::from_secs(20), "quorum regained");
    report(
        test,
        &format!(
            "pool back, sorry server gone {:.1} s after rs2 restarted",
            back.as_secs_f64()
        ),
    );
    let p = pages(&client, &[], url, 4);
    assert!(
        p.iter().all(|x| x == "rs2\n" || x == "rs3\n"),
        "the pool serves again: {p:?}"
    );
    r.long_download(url);
    r.stop_and_check_mode();
}
