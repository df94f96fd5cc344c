//! keepalived's `static_ipaddress`, `static_routes`, `static_rules`, `virtual_routes` and
//! `virtual_rules` installed by rvsd over rtnetlink (issue 16), checked with `ip addr`,
//! `ip route` and `ip rule` in the namespaces of rvs-lab's HA pair (director1 10.1.0.11 and
//! director2 10.1.0.12 on the client segment with the client 10.1.0.2).
//!
//! Both directors run `rvsd --vrrp` with the same static configuration and one VRRP instance
//! (director1 priority 150, director2 100): the static addresses, routes and rules appear on
//! both at start; the virtual routes and rules only on the MASTER; when director1 stops
//! (SIGTERM) its static and virtual ones are gone and director2, now MASTER, has the virtual
//! ones. A route with an option rvs does not support (`mtu`) is not installed and named in a
//! warning.

mod common;

use std::time::{Duration, Instant};

use common::{Rvsd, RVSD};
use rvs_lab::Netns;

fn conf(priority: u8) -> String {
    format!(
        "static_ipaddress {{\n  192.0.2.1/32 dev lo\n}}\n\
         static_routes {{\n  198.51.100.0/24 via 10.1.0.2 dev eth0 table 100\n  \
         blackhole 203.0.113.0/24\n}}\n\
         static_rules {{\n  from 192.0.2.0/24 table 100 priority 100\n}}\n\
         vrrp_instance VI_ROUTES {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 63\n  \
         priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    10.1.0.100/24 dev eth0\n  }}\n  \
         virtual_routes {{\n    198.51.101.0/24 via 10.1.0.2 dev eth0 table 101\n    \
         unreachable 203.0.114.0/24\n    198.51.102.0/24 dev eth0 mtu 1400\n  }}\n  \
         virtual_rules {{\n    from 10.1.0.100/32 table 101 priority 200\n  }}\n}}\n"
    )
}

/// What `ip` shows of the keywords' effects in `ns`.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    static_addr: bool,
    static_route: bool,
    static_blackhole: bool,
    static_rule: bool,
    virtual_route: bool,
    virtual_unreachable: bool,
    virtual_rule: bool,
    mtu_route: bool,
}

fn seen(ns: &Netns) -> Seen {
    let ip = |args: &[&str]| ns.ip(args).unwrap_or_default();
    let addrs = ip(&["-4", "-o", "addr", "show", "dev", "lo"]);
    let t100 = ip(&["-4", "route", "show", "table", "100"]);
    let t101 = ip(&["-4", "route", "show", "table", "101"]);
    let main = ip(&["-4", "route", "show"]);
    let rules = ip(&["-4", "rule", "show"]);
    Seen {
        static_addr: addrs.contains("192.0.2.1/32"),
        static_route: t100
            .lines()
            .any(|l| l.starts_with("198.51.100.0/24 via 10.1.0.2 dev eth0 proto keepalived")),
        static_blackhole: main
            .lines()
            .any(|l| l.starts_with("blackhole 203.0.113.0/24 proto keepalived")),
        static_rule: rules
            .lines()
            .any(|l| l.starts_with("100:") && l.contains("from 192.0.2.0/24 lookup 100")),
        virtual_route: t101
            .lines()
            .any(|l| l.starts_with("198.51.101.0/24 via 10.1.0.2 dev eth0 proto keepalived")),
        virtual_unreachable: main
            .lines()
            .any(|l| l.starts_with("unreachable 203.0.114.0/24 proto keepalived")),
        virtual_rule: rules
            .lines()
            .any(|l| l.starts_with("200:") && l.contains("from 10.1.0.100 lookup 101")),
        mtu_route: main.contains("198.51.102.0/24"),
    }
}

fn statics(on: bool) -> impl Fn(&Seen) -> bool {
    move |s| {
        s.static_addr == on
            && s.static_route == on
            && s.static_blackhole == on
            && s.static_rule == on
    }
}

fn virtuals(on: bool) -> impl Fn(&Seen) -> bool {
    move |s| s.virtual_route == on && s.virtual_unreachable == on && s.virtual_rule == on
}

/// Poll (every 100 ms, at most `limit`) until `f` holds for `ns`; the last view otherwise.
fn wait_seen(ns: &Netns, limit: Duration, f: impl Fn(&Seen) -> bool) -> Result<(), Seen> {
    let end = Instant::now() + limit;
    loop {
        let s = seen(ns);
        if f(&s) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn static_and_virtual_routes_follow_start_stop_and_mastership() {
    rvs_require::require_root!();
    require!("ip");
    let topo = rvs_lab::ha("karoutes").expect("HA topology");
    let ns1 = topo.node("director1").expect("director1").ns.clone();
    let ns2 = topo.node("director2").expect("director2").ns.clone();
    for ns in [&ns1, &ns2] {
        let s = seen(ns);
        assert!(
            statics(false)(&s) && virtuals(false)(&s),
            "clean start: {s:?}"
        );
    }
    let start = |ns: &Netns, name: &str, prio: u8| {
        let dir = topo.lab().workdir().join(name);
        std::fs::create_dir_all(&dir).expect("workdir");
        let conf_path = dir.join("keepalived.conf");
        std::fs::write(&conf_path, conf(prio)).expect("write conf");
        let c = conf_path.display().to_string();
        Rvsd::start_in(RVSD, Some(ns), &dir, &["--drain-time", "0", "--vrrp", &c])
    };
    let mut d1 = start(&ns1, "director1", 150);
    let mut d2 = start(&ns2, "director2", 100);

    // Static configuration on both, at start.
    for (ns, d) in [(&ns1, &d1), (&ns2, &d2)] {
        if let Err(s) = wait_seen(ns, Duration::from_secs(10), statics(true)) {
            panic!("static configuration installed: {s:?}\n{}", d.log_text());
        }
    }
    // director1 becomes MASTER: its virtual routes and rule appear; director2 has none.
    if let Err(s) = wait_seen(&ns1, Duration::from_secs(15), virtuals(true)) {
        panic!("virtual routes on the MASTER: {s:?}\n{}", d1.log_text());
    }
    let s2 = seen(&ns2);
    assert!(virtuals(false)(&s2), "none on the BACKUP: {s2:?}");
    // The route with an unsupported option is left out, with a warning naming it.
    assert!(!seen(&ns1).mtu_route);
    let log1 = d1.log_text();
    assert!(
        log1.contains("virtual_routes: the route option \"mtu\" is not supported by rvs"),
        "{log1}"
    );
    assert!(
        !log1.contains("`virtual_routes`"),
        "no longer 'not acted on':\n{log1}"
    );

    // director1 stops: what it installed is gone; director2 takes over with the virtual ones.
    let log1 = d1.stop();
    let s1 = seen(&ns1);
    assert!(
        statics(false)(&s1) && virtuals(false)(&s1),
        "director1 removed everything at stop: {s1:?}\n{log1}"
    );
    if let Err(s) = wait_seen(&ns2, Duration::from_secs(15), virtuals(true)) {
        panic!("virtual routes on the new MASTER: {s:?}\n{}", d2.log_text());
    }
    let s2 = seen(&ns2);
    assert!(
        statics(true)(&s2),
        "director2 keeps its static ones: {s2:?}"
    );

    // director1 back with its higher priority: it preempts, director2 drops the virtual ones.
    let mut d1 = start(&ns1, "director1-again", 150);
    if let Err(s) = wait_seen(&ns1, Duration::from_secs(15), virtuals(true)) {
        panic!(
            "virtual routes on the returning MASTER: {s:?}\n{}",
            d1.log_text()
        );
    }
    if let Err(s) = wait_seen(&ns2, Duration::from_secs(10), virtuals(false)) {
        panic!(
            "the BACKUP removed its virtual routes: {s:?}\n{}",
            d2.log_text()
        );
    }
    let log2 = d2.stop();
    let s2 = seen(&ns2);
    assert!(
        statics(false)(&s2),
        "director2 removed its static ones at stop: {s2:?}\n{log2}"
    );
    d1.stop();
}
