//! One test (at least) per block type: the model that comes out, its defaults, and
//! the diagnostics for bad values.

use std::net::IpAddr;
use std::time::Duration;

use rvs_config::*;

fn chk(text: &str) -> Report {
    check_str(
        "t.conf",
        text,
        &CheckOptions {
            config_id: Some("main".into()),
            ..Default::default()
        },
    )
}

fn msgs(r: &Report) -> Vec<String> {
    r.diagnostics.iter().map(|d| d.message.clone()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A clean virtual server wrapped around `body` (which holds real servers).
fn vs(body: &str) -> String {
    format!("virtual_server 10.0.0.1 80 {{\n protocol TCP\n lb_algo rr\n lb_kind NAT\n{body}\n}}\n")
}

#[test]
fn global_defs_keys_and_defaults() {
    let r = chk(r#"
global_defs {
   notification_email {
     acassen@firewall.loc
     failover@firewall.loc sysadmin@firewall.loc
   }
   notification_email_from Alexandre.Cassen@firewall.loc
   smtp_server 192.168.200.1
   smtp_connect_timeout 30
   router_id LVS_DEVEL
   vrrp_mcast_group4 224.0.0.19
   vrrp_version 3
   vrrp_garp_interval 0.001
   vrrp_strict
   lvs_timeouts tcp 900 tcpfin 120 udp 300
   lvs_flush
   lvs_flush_on_stop VS
   script_user nobody nogroup
   enable_script_security
   smtp_alert
   checker_log_all_failures on
   max_auto_priority 10
}
"#);
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let g = &r.config.global;
    assert_eq!(g.notification_email.len(), 3);
    assert_eq!(g.router_id.as_deref(), Some("LVS_DEVEL"));
    assert_eq!(g.smtp_server, Some((ip("192.168.200.1"), 25)));
    assert_eq!(g.smtp_connect_timeout, Some(Duration::from_secs(30)));
    assert_eq!(g.vrrp_mcast_group4.to_string(), "224.0.0.19");
    assert_eq!(g.vrrp_version, 3);
    assert_eq!(g.vrrp_garp_interval, Duration::from_micros(1000));
    assert!(g.vrrp_strict && g.lvs_flush && g.enable_script_security);
    assert_eq!(g.lvs_timeouts.tcp, Some(Duration::from_secs(900)));
    assert_eq!(g.lvs_timeouts.udp, Some(Duration::from_secs(300)));
    assert_eq!(g.lvs_flush_on_stop, Some(FlushOnStop::VirtualServers));
    assert_eq!(
        g.script_user,
        Some(("nobody".into(), Some("nogroup".into())))
    );
    assert_eq!(g.smtp_alert, Some(true));
    assert!(g.checker_log_all_failures);
    assert_eq!(
        r.config.unmodelled.len(),
        1,
        "max_auto_priority is recorded"
    );
    // defaults
    let d = GlobalDefs::default();
    assert_eq!(d.vrrp_garp_master_delay, Duration::from_secs(5));
    assert_eq!(d.vrrp_garp_master_repeat, 5);
    assert_eq!(d.vrrp_down_timer_adverts, 3);
    assert_eq!(d.vrrp_mcast_group6.to_string(), "ff02::12");
    assert_eq!(d.default_interface, "eth0");
}

#[test]
fn global_defs_bad_values_and_unknown_keys() {
    let r = chk("global_defs {\n vrrp_version 4\n smtp_server nothost\n frobnicate 1\n vrrp_garp_interval 0\n}\n");
    let m = msgs(&r);
    assert!(
        m.contains(&"number '4' outside range [2, 3]".to_string()),
        "{m:?}"
    );
    assert!(m
        .iter()
        .any(|x| x.contains("Invalid smtp_server address 'nothost'")));
    assert!(m.contains(&"Unknown keyword 'frobnicate'".to_string()));
    // rvs accepts the documented default 0 that keepalived 2.2.7 rejects.
    assert!(!m.iter().any(|x| x.contains("vrrp_garp_interval")), "{m:?}");
    assert_eq!(r.exit_status(), 5);
}

#[test]
fn lvs_sync_daemon_forms() {
    let r = chk("global_defs {\n lvs_sync_daemon eth1 VI_1 id 7 maxlen 1400 port 9000 ttl 2 group 224.0.0.99\n}\n");
    let d = r
        .config
        .global
        .lvs_sync_daemon
        .clone()
        .expect("sync daemon");
    assert_eq!(d.interface, "eth1");
    assert_eq!(d.instance.as_deref(), Some("VI_1"));
    assert_eq!(
        (d.sync_id, d.maxlen, d.port, d.ttl),
        (Some(7), Some(1400), 9000, Some(2))
    );
    assert_eq!(d.group, ip("224.0.0.99"));
    // VI_1 does not exist: reported.
    assert!(msgs(&r)
        .iter()
        .any(|m| m.contains("lvs_sync_daemon vrrp instance VI_1 not found")));
    let r = chk("global_defs {\n lvs_sync_daemon eth1\n}\n");
    let d = r
        .config
        .global
        .lvs_sync_daemon
        .clone()
        .expect("sync daemon");
    assert_eq!((d.port, d.group), (8848, ip("224.0.0.81")));
    assert!(r.diagnostics.is_empty());
    let r = chk("global_defs {\n lvs_sync_daemon eth1 inst VI_9 port 0 bogus\n}\n");
    let m = msgs(&r);
    assert!(
        m.iter().any(|x| x == "number '0' outside range [1, 65535]"),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|x| x == "Unknown option bogus specified for lvs_sync_daemon"),
        "{m:?}"
    );
}

#[test]
fn virtual_server_group_entries() {
    let r = chk(r#"
virtual_server_group G {
  192.168.201.17 80
  192.168.200.3-10 80
  10.0.0.0/30 443
  10.1.0.1-10.1.0.20 0
  ae00::2-9 80
  fwmark 5
  fwmark 6 inet6
  10.0.0.1/30 80
  10.0.0.9-3 80
  fwmark x
}
"#);
    let g = &r.config.virtual_server_groups[0];
    assert_eq!(g.name, "G");
    assert_eq!(g.entries.len(), 7);
    assert_eq!(
        g.entries[1],
        VsgEntry::Range {
            first: ip("192.168.200.3"),
            last: ip("192.168.200.10"),
            port: Some(80)
        }
    );
    assert_eq!(
        g.entries[2],
        VsgEntry::Range {
            first: ip("10.0.0.0"),
            last: ip("10.0.0.3"),
            port: Some(443)
        }
    );
    assert_eq!(
        g.entries[3],
        VsgEntry::Range {
            first: ip("10.1.0.1"),
            last: ip("10.1.0.20"),
            port: None
        }
    );
    assert_eq!(
        g.entries[4],
        VsgEntry::Range {
            first: ip("ae00::2"),
            last: ip("ae00::9"),
            port: Some(80)
        }
    );
    assert_eq!(
        g.entries[6],
        VsgEntry::Fwmark {
            mark: 6,
            family: Some(Family::Inet6)
        }
    );
    let m = msgs(&r);
    assert!(
        m.contains(&"Address mask bits not empty - 10.0.0.1/30 - skipping".to_string()),
        "{m:?}"
    );
    assert!(
        m.contains(&"Invalid virtual server group IP address 10.0.0.9-3 - skipping".to_string())
    );
    assert!(m.contains(&"(G): fwmark 'x' must be in [0, 4294967295] - ignoring".to_string()));
}

#[test]
fn empty_group_and_missing_group_reference() {
    let r = chk("virtual_server_group E {\n}\nvirtual_server group NOPE {\n protocol TCP\n real_server 1.1.1.1 80 {\n }\n}\n");
    let m = msgs(&r);
    assert!(m.contains(&"virtual server group E has no entries - removing".to_string()));
    assert!(m
        .iter()
        .any(|x| x.starts_with("Virtual server group NOPE specified but not configured")));
    assert!(r.config.virtual_servers.is_empty());
}

#[test]
fn virtual_server_full() {
    let r = chk(r#"
virtual_server 10.10.10.2 1358 {
    delay_loop 6
    lb_algo sh
    sh-port
    lb_kind TUN type gue port 6080 csum
    persistence_timeout 50
    persistence_granularity 255.255.255.0
    protocol tcp
    sorry_server 192.168.200.200 1358
    sorry_server_inhibit
    quorum 2
    hysteresis 1
    quorum_up "/bin/up.sh 1 2" nobody
    alpha
    omega
    inhibit_on_failure
    connect_timeout 2.5
    retry 4
    delay_before_retry 0.5
    warmup 0
    virtualhost www.example.com
    weight 3
    real_server 192.168.200.2 1358 {
        weight 1
        uthreshold 100
        lthreshold 10
        notify_up "/bin/rs-up.sh a"
    }
    real_server 192.168.200.3 1358 {
        inhibit_on_failure off
    }
}
"#);
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let v = &r.config.virtual_servers[0];
    assert_eq!(
        v.key,
        VsKey::Addr {
            addr: ip("10.10.10.2"),
            port: Some(1358)
        }
    );
    assert_eq!(
        v.protocol,
        Some(Protocol::Tcp),
        "protocol is case-insensitive"
    );
    assert_eq!(v.scheduler, Scheduler::Sh);
    assert!(v.sched_flags.sh_port);
    assert_eq!(
        v.method,
        ForwardMethod::Tun {
            tunnel: TunnelType::Gue { port: 6080 },
            csum: TunnelCsum::Csum
        }
    );
    assert_eq!(v.persistence_timeout, 50);
    assert_eq!(
        v.persistence_granularity,
        Some(Granularity::V4("255.255.255.0".parse().expect("mask")))
    );
    assert_eq!(v.delay_loop, Duration::from_secs(6));
    assert_eq!(v.connect_timeout, Some(Duration::from_millis(2500)));
    assert_eq!(v.retry, Some(4));
    assert_eq!(v.warmup, Some(Duration::ZERO));
    assert_eq!((v.quorum, v.hysteresis), (2, 1));
    let up = v.quorum_up.as_ref().expect("quorum_up");
    assert_eq!(up.argv, vec!["/bin/up.sh", "1", "2"]);
    assert_eq!(up.user.as_deref(), Some("nobody"));
    assert!(v.alpha && v.omega && v.inhibit_on_failure);
    let ss = v.sorry_server.as_ref().expect("sorry");
    assert!(ss.inhibit);
    assert_eq!(ss.port, Some(1358));
    assert_eq!(v.real_servers.len(), 2);
    let a = &v.real_servers[0];
    assert_eq!((a.weight, a.uthreshold, a.lthreshold), (1, 100, 10));
    assert!(a.inhibit_on_failure && a.alpha, "inherited from the VS");
    assert_eq!(a.method, v.method);
    let b = &v.real_servers[1];
    assert_eq!(b.weight, 3, "VS weight is the RS default");
    assert!(!b.inhibit_on_failure, "RS setting wins");
}

#[test]
fn virtual_server_fwmark_and_group_headers() {
    let r = chk("virtual_server_group G {\n 10.0.0.1 80\n}\nvirtual_server fwmark 7 {\n lb_algo rr\n lb_kind DR\n real_server 10.0.0.2 80 {\n }\n}\nvirtual_server group G {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 10.0.0.3 8080 {\n }\n}\n");
    let m = msgs(&r);
    assert!(m.iter().any(|x| x == "WARNING - fwmark virtual server FWM 7, real server [10.0.0.2]:none:80 has port specified - clearing"), "{m:?}");
    let v = &r.config.virtual_servers;
    assert_eq!(v[0].key, VsKey::Fwmark(7));
    assert_eq!(v[0].protocol, None);
    assert_eq!(v[0].real_servers[0].port, None);
    assert_eq!(
        v[0].family,
        Some(Family::Inet),
        "family from the real servers"
    );
    assert_eq!(v[1].key, VsKey::Group("G".into()));
    assert_eq!(v[1].real_servers[0].port, Some(8080));
}

#[test]
fn virtual_server_bad_header_skips_block() {
    let r =
        chk("virtual_server 10.0.0.300 80 {\n protocol TCP\n}\nvirtual_server fwmark -1 {\n}\n");
    let m = msgs(&r);
    assert!(
        m.contains(&"Invalid virtual server IP address/port 10.0.0.300/80 - skipping".to_string()),
        "{m:?}"
    );
    assert!(
        m.contains(&"virtual server fwmark '-1' must be in [0, 4294967295] - ignoring".to_string())
    );
    assert!(r.config.virtual_servers.is_empty());
}

#[test]
fn virtual_server_value_errors() {
    let r = chk(&vs(" lb_kind TUN type ipip csum\n persistence_timeout 0\n quorum 0\n sorry_server_inhibit\n mh-port\n delay_loop 0\n protocol ICMP\n real_server 10.0.0.2 80 {\n }"));
    let m = msgs(&r);
    for want in [
        "ipip tunnels do not support checksum options",
        "number '0' outside range [1, 2678400]",
        "persistence_timeout invalid",
        "Quorum 0 must be in [1, 4294967295]. Setting to 1.",
        "Ignoring sorry_server inhibit used before or without sorry_server",
        "mh-port only applies to mh scheduler - ignoring",
        "number '0' outside range [0.000001, 18446744073709.551614]",
        "virtual server delay loop '0' invalid - ignoring",
        "Unknown protocol ICMP - ignoring",
    ] {
        assert!(m.iter().any(|x| x == want), "missing {want:?} in {m:?}");
    }
    assert_eq!(r.config.virtual_servers[0].persistence_timeout, 0);
    assert_eq!(r.config.virtual_servers[0].quorum, 1);
}

#[test]
fn persistence_timeout_without_value_is_360() {
    let r = chk(&vs(" persistence_timeout\n real_server 10.0.0.2 80 {\n }"));
    assert_eq!(r.config.virtual_servers[0].persistence_timeout, 360);
    assert!(r.diagnostics.is_empty());
}

#[test]
fn real_server_port_rules_and_family() {
    let r = chk("virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.0.0.2 {\n }\n real_server 10.0.0.3 81 {\n }\n real_server fe80::1 80 {\n }\n real_server 10.0.0.4 80 {\n  lb_kind NAT\n }\n}\n");
    let v = &r.config.virtual_servers[0];
    assert_eq!(v.real_servers.len(), 3);
    assert_eq!(
        v.real_servers[0].port,
        Some(80),
        "missing RS port = VS port"
    );
    assert_eq!(
        v.real_servers[1].port,
        Some(80),
        "DR port forced to the VS port"
    );
    assert_eq!(v.real_servers[2].method, ForwardMethod::Nat);
    let m = msgs(&r);
    assert!(m.contains(&"Address family of virtual server and real server fe80::1 don't match - skipping real server.".to_string()));
    assert!(m.contains(&"WARNING - virtual server [10.0.0.1]:tcp:80 and real server [10.0.0.3]:tcp:81 ports don't match - resetting".to_string()));
}

#[test]
fn real_server_bad_values() {
    let r = chk(&vs(" real_server 10.0.0.2 80 {\n  weight 5x\n  uthreshold -3\n  frob\n }\n real_server 10.0.0.999 80 {\n }"));
    let m = msgs(&r);
    assert!(m.contains(&"invalid number '5x'".to_string()), "{m:?}");
    assert!(m.contains(&"Real server weight 5x is outside range 0-2147483647".to_string()));
    assert!(m.contains(&"negative number '-3'".to_string()));
    assert!(m.contains(&"Unknown keyword 'frob'".to_string()));
    assert!(m.contains(&"Invalid real server ip address/port 10.0.0.999/80 - skipping".to_string()));
}

#[test]
fn tcp_check_common_keys_and_timing_inheritance() {
    let r = chk(&vs(" delay_loop 10\n retry 2\n real_server 10.0.0.2 80 {\n  connect_timeout 4\n  TCP_CHECK {\n   connect_ip 10.0.0.9\n   connect_port 8080\n   bindto 10.0.0.1\n   bind_port 2000\n   bind_if eth0\n   fwmark 3\n   warmup 1\n   alpha\n   log_all_failures\n  }\n  PING_CHECK {\n   retry 0\n   delay_loop 2\n  }\n }"));
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let v = &r.config.virtual_servers[0];
    let rs = &v.real_servers[0];
    let c = &rs.checkers[0];
    assert_eq!(c.kind, CheckerKind::Tcp);
    assert_eq!(c.common.connect_ip, Some(ip("10.0.0.9")));
    assert_eq!(c.common.connect_port, Some(8080));
    assert_eq!(c.common.bind_if.as_deref(), Some("eth0"));
    assert_eq!(c.common.fwmark, Some(3));
    assert_eq!(c.common.alpha, Some(true));
    let t = c.timing(rs, v);
    assert_eq!(t.delay_loop, Duration::from_secs(10));
    assert_eq!(t.connect_timeout, Duration::from_secs(4), "RS value");
    assert_eq!(t.retry, 2, "VS value");
    assert_eq!(t.delay_before_retry, Duration::from_secs(1), "TCP default");
    assert_eq!(t.warmup, Duration::from_secs(1));
    let p = &rs.checkers[1];
    assert_eq!(p.kind, CheckerKind::Ping);
    let t = p.timing(rs, v);
    assert_eq!(
        (t.retry, t.delay_loop, t.warmup),
        (0, Duration::from_secs(2), Duration::from_secs(2))
    );
}

#[test]
fn http_and_ssl_get() {
    let r = chk(&vs(r#" real_server 10.0.0.2 80 {
  HTTP_GET {
   url {
     path /testurl/test.jsp
     digest 640205b7b0fc66c1ea91c463fac6334d
   }
   url {
     path /two
     status_code 200-299 400-499 503
     virtualhost two.example
   }
   http_protocol 1.1
   nb_get_retry 3
   virtualhost www.example
  }
  SSL_GET {
   url {
     path /
   }
   enable_sni
  }
 }"#));
    let m = msgs(&r);
    assert_eq!(
        m,
        vec!["nb_get_retry is deprecated - please use 'retry'".to_string()]
    );
    let cs = &r.config.virtual_servers[0].real_servers[0].checkers;
    let CheckerKind::Http(h) = &cs[0].kind else {
        panic!("not HTTP")
    };
    assert_eq!(h.urls.len(), 2);
    assert_eq!(h.urls[0].digest.map(|d| d[0]), Some(0x64));
    assert_eq!(
        h.urls[0].status_codes,
        vec![StatusRange { lo: 200, hi: 299 }],
        "default 200-299"
    );
    assert!(h.urls[1].status_ok(404) && h.urls[1].status_ok(503) && !h.urls[1].status_ok(502));
    assert_eq!(h.urls[1].virtualhost.as_deref(), Some("two.example"));
    assert_eq!(h.http_protocol, HttpProtocol::Http11);
    assert_eq!(cs[0].common.retry, Some(3));
    let CheckerKind::Ssl(s) = &cs[1].kind else {
        panic!("not SSL")
    };
    assert!(s.enable_sni);
    let t = cs[0].timing(
        &r.config.virtual_servers[0].real_servers[0],
        &r.config.virtual_servers[0],
    );
    assert_eq!(t.delay_before_retry, Duration::from_secs(3), "HTTP default");
}

#[test]
fn http_get_url_errors() {
    let r = chk(&vs(" real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    digest abc\n    status_code 99 200-100 x\n   }\n   url {\n    path /ok\n    digest zz0205b7b0fc66c1ea91c463fac6334d\n   }\n  }\n  HTTP_GET {\n  }\n }"));
    let m = msgs(&r);
    for want in [
        "digest 'abc' character length should be 32 rather than 3",
        "Invalid HTTP_GET status code '99'",
        "Invalid HTTP_GET status code '200-100'",
        "Invalid HTTP_GET status code 'x'",
        "HTTP/SSL_GET checker url has no path - ignoring",
        "digest 'zz0205b7b0fc66c1ea91c463fac6334d' is not a hex string - ignoring",
        "HTTP/SSL_GET checker has no urls specified - ignoring",
    ] {
        assert!(m.iter().any(|x| x == want), "missing {want:?} in {m:?}");
    }
    // The first HTTP_GET keeps its one valid URL; the empty one is dropped.
    assert_eq!(
        r.config.virtual_servers[0].real_servers[0].checkers.len(),
        1
    );
}

#[test]
fn misc_check() {
    let r = chk(&vs(" real_server 10.0.0.2 80 {\n  MISC_CHECK {\n   misc_path \"/usr/local/bin/script.sh arg1 'a b'\"\n   misc_timeout 5\n   misc_dynamic\n   user nobody nogroup\n  }\n  MISC_CHECK {\n   misc_path /nonexistent/true\n  }\n  MISC_CHECK {\n   misc_timeout 3\n  }\n }"));
    let m = msgs(&r);
    assert_eq!(
        m,
        vec!["No script path has been specified for MISC_CHECKER - skipping".to_string()]
    );
    let cs = &r.config.virtual_servers[0].real_servers[0].checkers;
    let CheckerKind::Misc(mc) = &cs[0].kind else {
        panic!("not MISC")
    };
    assert_eq!(
        mc.path.argv,
        vec!["/usr/local/bin/script.sh", "arg1", "a b"]
    );
    assert_eq!(mc.path.user.as_deref(), Some("nobody"));
    assert_eq!(mc.timeout, Some(Duration::from_secs(5)));
    assert!(mc.dynamic);
    let CheckerKind::Misc(mc) = &cs[1].kind else {
        panic!("not MISC")
    };
    assert_eq!(mc.path.argv, vec!["/nonexistent/true"]);
    let t = cs[1].timing(
        &r.config.virtual_servers[0].real_servers[0],
        &r.config.virtual_servers[0],
    );
    assert_eq!(t.retry, 0, "MISC default retry");
}

#[test]
fn misc_check_refuses_connection_keys() {
    let r = chk(&vs(" real_server 10.0.0.2 80 {\n  MISC_CHECK {\n   misc_path /nonexistent/true\n   connect_port 80\n  }\n }"));
    assert_eq!(msgs(&r), vec!["Unknown keyword 'connect_port'".to_string()]);
}

#[test]
fn smtp_check_with_hosts() {
    let r = chk(&vs(" real_server 10.0.0.2 25 {\n  SMTP_CHECK {\n   helo_name \"foo bar\"\n   host {\n    connect_ip 10.0.0.5\n    connect_port 2525\n   }\n   host {\n    connect_ip 10.0.0.6\n   }\n  }\n  SMTP_CHECK {\n  }\n }"));
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let cs = &r.config.virtual_servers[0].real_servers[0].checkers;
    let CheckerKind::Smtp(s) = &cs[0].kind else {
        panic!("not SMTP")
    };
    assert_eq!(s.helo_name, "foo bar");
    assert_eq!(s.hosts.len(), 2);
    assert_eq!(s.hosts[0].connect_port, Some(2525));
    let CheckerKind::Smtp(s) = &cs[1].kind else {
        panic!("not SMTP")
    };
    assert_eq!(s.helo_name, "smtpchecker.keepalived.org");
}

#[test]
fn dns_check() {
    let r = chk(&vs(" real_server 10.0.0.2 53 {\n  DNS_CHECK {\n   type AAAA\n   name example.com\n  }\n  DNS_CHECK {\n   type PTR\n  }\n }"));
    assert_eq!(
        msgs(&r),
        vec!["DNS_CHECK: unknown type PTR - ignoring".to_string()]
    );
    let cs = &r.config.virtual_servers[0].real_servers[0].checkers;
    assert_eq!(
        cs[0].kind,
        CheckerKind::Dns(DnsCheck {
            qtype: DnsType::Aaaa,
            name: "example.com".into()
        })
    );
    assert_eq!(
        cs[1].kind,
        CheckerKind::Dns(DnsCheck {
            qtype: DnsType::Soa,
            name: ".".into()
        })
    );
    let t = cs[1].timing(
        &r.config.virtual_servers[0].real_servers[0],
        &r.config.virtual_servers[0],
    );
    assert_eq!(
        (t.retry, t.delay_before_retry),
        (3, Duration::from_secs(60)),
        "DNS defaults"
    );
}

#[test]
fn udp_check() {
    let r = chk("virtual_server 10.0.0.1 53 {\n protocol UDP\n lb_algo rr\n lb_kind NAT\n real_server 10.0.0.2 53 {\n  UDP_CHECK {\n   payload 0a0b\n   require_reply\n   min_reply_length 2\n  }\n  UDP_CHECK {\n   payload xyz\n   require_reply ff\n  }\n }\n}\n");
    assert_eq!(
        msgs(&r),
        vec!["Invalid hex string xyz for payload".to_string()]
    );
    let cs = &r.config.virtual_servers[0].real_servers[0].checkers;
    let CheckerKind::Udp(u) = &cs[0].kind else {
        panic!("not UDP")
    };
    assert_eq!(u.payload, vec![0x0a, 0x0b]);
    assert_eq!(u.require_reply, Some(vec![]));
    assert_eq!(u.min_reply_length, Some(2));
    let CheckerKind::Udp(u) = &cs[1].kind else {
        panic!("not UDP")
    };
    assert_eq!(u.require_reply, Some(vec![0xff]));
}

#[test]
fn bfd_and_file_check_are_refused() {
    let r = chk(&vs(" real_server 10.0.0.2 80 {\n  BFD_CHECK {\n   name b1\n  }\n  FILE_CHECK {\n   track_file f\n  }\n }"));
    let m = msgs(&r);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].starts_with("BFD_CHECK is not supported by rvs"));
    assert!(m[1].starts_with("FILE_CHECK is not supported by rvs"));
    assert!(r.diagnostics.iter().all(|d| d.class == ErrorClass::Fatal));
    assert_eq!(r.exit_status(), 4);
}

#[test]
fn ssl_block() {
    let r =
        chk("SSL {\n password p\n ca /etc/ca.pem\n certificate /etc/c.pem\n key /etc/k.pem\n}\n");
    let s = r.config.ssl.expect("ssl");
    assert_eq!(s.ca.as_deref(), Some("/etc/ca.pem"));
    assert_eq!(s.key.as_deref(), Some("/etc/k.pem"));
}

const VRRP_FULL: &str = r#"
vrrp_script chk {
    script "/bin/sh -c 'exit 0'"
    interval 2
    timeout 3
    weight -20 reverse
    rise 2
    fall 3
    user nobody
    init_fail
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 2
    nopreempt
    preempt_delay 10
    authentication {
        auth_type PASS
        auth_pass 1234567890
    }
    virtual_ipaddress {
        192.168.200.16/24 dev eth1 brd + scope link label eth1:1
        192.168.200.17 no_track
    }
    virtual_ipaddress_excluded {
        2001:db8::1/64
    }
    unicast_src_ip 10.0.0.1
    unicast_peer {
        10.0.0.2 min_ttl 250 max_ttl 255
        10.0.0.3
    }
    track_interface {
        eth1 weight 10
        eth2 weight -5 reverse
        eth3
    }
    track_script {
        chk weight 5 noreverse
    }
    notify_master "/bin/n.sh MASTER x" root root
    notify "/bin/all.sh"
    smtp_alert
    garp_master_delay 3
    down_timer_adverts 4
    no_accept
    use_vmac
}
"#;

#[test]
fn vrrp_instance_full() {
    let r = chk(VRRP_FULL);
    let m = msgs(&r);
    let expected = vec![
        "Truncating auth_pass to 8 characters".to_string(),
        "(VI_1) Warning - nopreempt will not work with initial state MASTER - clearing".to_string(),
        "(VI_1) Warning - preempt delay will not work with initial state MASTER - clearing"
            .to_string(),
    ];
    assert_eq!(m, expected);
    let s = &r.config.vrrp_scripts[0];
    assert_eq!(s.script.argv, vec!["/bin/sh", "-c", "exit 0"]);
    assert_eq!(s.script.user.as_deref(), Some("nobody"));
    assert_eq!(
        (s.interval, s.timeout),
        (Duration::from_secs(2), Some(Duration::from_secs(3)))
    );
    assert_eq!(
        (s.weight, s.reverse, s.rise, s.fall, s.init_fail),
        (-20, true, 2, 3, true)
    );
    let i = &r.config.vrrp_instances[0];
    assert_eq!((i.vrid, i.priority, i.version), (51, 150, 2));
    assert_eq!(i.state, Some(VrrpState::Master));
    assert_eq!(i.advert_int, Duration::from_secs(2));
    assert!(!i.nopreempt);
    assert_eq!(i.preempt_delay, Duration::ZERO, "cleared for state MASTER");
    let a = i.authentication.as_ref().expect("auth");
    assert_eq!(
        (a.auth_type, a.password.as_slice()),
        (AuthType::Pass, &b"12345678"[..])
    );
    let v = &i.virtual_ipaddresses[0];
    assert_eq!((v.addr, v.prefix), (ip("192.168.200.16"), 24));
    assert_eq!(v.dev.as_deref(), Some("eth1"));
    assert_eq!(v.brd.as_deref(), Some("+"));
    assert_eq!(v.label.as_deref(), Some("eth1:1"));
    assert!(i.virtual_ipaddresses[1].no_track);
    assert_eq!(i.virtual_ipaddresses[1].prefix, 32);
    assert_eq!(i.virtual_ipaddresses_excluded[0].prefix, 64);
    assert_eq!(i.unicast_peers.len(), 2);
    assert_eq!(
        (i.unicast_peers[0].min_ttl, i.unicast_peers[0].max_ttl),
        (Some(250), Some(255))
    );
    assert_eq!(
        i.track_interfaces[1],
        TrackInterface {
            name: "eth2".into(),
            weight: -5,
            reverse: true
        }
    );
    assert_eq!(i.track_interfaces[2].weight, 0);
    assert_eq!(
        (i.track_scripts[0].weight, i.track_scripts[0].reverse),
        (Some(5), Some(false))
    );
    let nm = i.notify.master.as_ref().expect("notify_master");
    assert_eq!(nm.argv, vec!["/bin/n.sh", "MASTER", "x"]);
    assert_eq!(
        (nm.user.as_deref(), nm.group.as_deref()),
        (Some("root"), Some("root"))
    );
    assert!(i.notify.notify.is_some());
    assert_eq!(i.garp_master_delay, Some(Duration::from_secs(3)));
    assert_eq!(i.down_timer_adverts, Some(4));
    assert_eq!(i.accept, Some(false));
    assert_eq!(r.config.unmodelled.len(), 1, "use_vmac recorded");
}

#[test]
fn vrrp_instance_defaults_and_owner() {
    let r = chk("vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n}\nvrrp_instance B {\n state MASTER\n interface eth0\n virtual_router_id 2\n virtual_ipaddress {\n  10.0.0.2\n }\n}\nvrrp_instance C {\n interface eth0\n virtual_router_id 3\n virtual_ipaddress {\n  fe80::1\n }\n advert_int 0.333\n}\n");
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let i = &r.config.vrrp_instances;
    assert_eq!(
        (i[0].priority, i[0].version, i[0].advert_int),
        (100, 2, Duration::from_secs(1))
    );
    assert_eq!(
        i[1].priority, 255,
        "state MASTER without priority = address owner"
    );
    assert_eq!(i[2].version, 3, "IPv6 means VRRPv3");
    assert_eq!(
        i[2].advert_int,
        Duration::from_millis(330),
        "v3 rounds to 10 ms"
    );
}

#[test]
fn vrrp_instance_errors() {
    let r = chk("vrrp_instance V {\n state FOO\n interface eth0\n virtual_router_id 0\n priority 0\n advert_int 1.5\n virtual_ipaddress {\n  10.0.0.1/33 foo\n  10.0.0.256\n  fe80::1\n  10.0.0.3 label abcdefghijklmnopq\n  10.0.0.4 dev\n }\n}\n");
    let m = msgs(&r);
    for want in [
        "(V) unknown state 'FOO', defaulting to BACKUP",
        "number '0' outside range [1, 255]",
        "(V): VRID '0' not valid - must be between 1 & 255",
        "(V) Priority not valid! must be between 1 & 255. Using default 100",
        "Invalid address prefix len 33 for address 10.0.0.1 - using 32",
        "Unknown configuration entry 'foo' for ip address - ignoring",
        "VRRP parsed invalid IP 10.0.0.256. skipping IP...",
        "Label abcdefghijklmnopq is too long for address 10.0.0.3 - skipping",
        "No dev parameter specified for 10.0.0.4",
        "(V) the virtual router id must be set",
    ] {
        assert!(m.iter().any(|x| x == want), "missing {want:?} in {m:?}");
    }
    assert_eq!(r.exit_status(), 5, "keepalived -t: 5");
    assert!(!r.can_run(), "no VRID: rvsd will not start");
}

#[test]
fn vrrp_v2_advert_int_rounding_and_family_mismatch() {
    let r = chk("vrrp_instance V {\n interface eth0\n virtual_router_id 9\n advert_int 1.5\n virtual_ipaddress {\n  10.0.0.1\n  fe80::1\n }\n}\n");
    let m = msgs(&r);
    assert!(
        m.contains(
            &"(V) VRRPv2 advertisement interval 1.500000s must be an integer. rounding".to_string()
        ),
        "{m:?}"
    );
    assert!(m.contains(
        &"(V): address family must match VRRP instance [fe80::1] - ignoring".to_string()
    ));
    assert_eq!(
        r.config.vrrp_instances[0].advert_int,
        Duration::from_secs(2)
    );
    assert_eq!(r.config.vrrp_instances[0].virtual_ipaddresses.len(), 1);
}

#[test]
fn vrrp_fatal_configurations() {
    let dup = chk("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n 10.0.0.1\n }\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n 10.0.0.2\n }\n}\n");
    assert!(msgs(&dup).contains(&"A and B both use VRID 5 with IPv4 on interface eth0".to_string()));
    // keepalived 2.2.7 -t exits 5 for each of these, and its VRRP process stops on them.
    assert_eq!(dup.exit_status(), 5);
    assert!(!dup.can_run());
    let v3 = chk("vrrp_instance A {\n interface eth0\n version 3\n virtual_router_id 5\n}\n");
    assert!(msgs(&v3).contains(&"(A) No VIP specified; at least one is required".to_string()));
    assert_eq!(v3.exit_status(), 5);
    assert!(!v3.can_run());
    let v2 = chk("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n}\n");
    assert_eq!(
        msgs(&v2),
        vec!["(A) No VIP specified; at least one is sensible".to_string()]
    );
    assert_eq!(v2.exit_status(), 5);
    let noif =
        chk("vrrp_instance A {\n virtual_router_id 5\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n");
    assert_eq!(noif.exit_status(), 5);
    assert!(!noif.can_run());
    let uni = chk("vrrp_instance A {\n virtual_router_id 5\n unicast_src_ip 10.0.0.1\n unicast_peer {\n 10.0.0.2\n }\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n");
    assert_eq!(uni.exit_status(), 0, "{:?}", msgs(&uni));
}

#[test]
fn vrrp_authentication_rules() {
    let ah = chk("vrrp_instance V {\n state MASTER\n priority 100\n interface eth0\n virtual_router_id 9\n authentication {\n  auth_type AH\n  auth_pass x\n }\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n");
    assert_eq!(
        msgs(&ah),
        vec![
            "(V) Initial state master is incompatible with AH authentication - clearing"
                .to_string()
        ]
    );
    assert_eq!(ah.config.vrrp_instances[0].state, Some(VrrpState::Backup));
    let v3 = chk("vrrp_instance V {\n version 3\n interface eth0\n virtual_router_id 9\n authentication {\n  auth_type PASS\n  auth_pass x\n }\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n");
    assert_eq!(
        msgs(&v3),
        vec!["(V) VRRPv3 does not support authentication. Ignoring.".to_string()]
    );
    let bad = chk("vrrp_instance V {\n interface eth0\n virtual_router_id 9\n authentication {\n  auth_type MD5\n }\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n");
    assert!(msgs(&bad).contains(&"(V) unknown authentication type 'MD5'".to_string()));
}

#[test]
fn vrrp_sync_group_members() {
    let mk = |n: &str, id: u8| {
        format!("vrrp_instance {n} {{\n interface eth0\n virtual_router_id {id}\n virtual_ipaddress {{\n 10.0.0.{id}\n }}\n}}\n")
    };
    let text = format!(
        "vrrp_sync_group G {{\n group {{\n  A B\n  X\n }}\n notify_master \"/bin/m.sh g\"\n smtp_alert\n}}\nvrrp_sync_group H {{\n group {{\n  A\n }}\n}}\n{}{}",
        mk("A", 1),
        mk("B", 2)
    );
    let r = chk(&text);
    let m = msgs(&r);
    assert!(
        m.contains(
            &"Virtual router X specified in sync group G doesn't exist - ignoring".to_string()
        ),
        "{m:?}"
    );
    assert!(
        m.contains(
            &"Virtual router A cannot exist in more than one sync group; ignoring H (already in G)"
                .to_string()
        ),
        "{m:?}"
    );
    assert!(
        m.contains(&"Sync group H has no virtual router(s). removing".to_string()),
        "{m:?}"
    );
    let g = &r.config.vrrp_sync_groups[0];
    assert_eq!(g.members, vec!["A", "B"]);
    assert!(g.notify.master.is_some());
    assert_eq!(g.smtp_alert, Some(true));
    let one = chk(&format!(
        "vrrp_sync_group G {{\n group {{\n  A\n }}\n}}\n{}",
        mk("A", 1)
    ));
    assert_eq!(
        msgs(&one),
        vec![
            "Sync group G has only 1 virtual router(s) - this probably isn't what you want"
                .to_string()
        ]
    );
    assert_eq!(
        one.config.vrrp_sync_groups.len(),
        1,
        "kept, as keepalived 2.2.7 does"
    );
}

#[test]
fn vrrp_script_rules() {
    let r = chk("vrrp_script s {\n interval 0\n weight 300\n}\nvrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  10.0.0.1\n }\n track_script {\n  s\n  t weight 2\n }\n}\n");
    let m = msgs(&r);
    for want in [
        "number '0' outside range [1, 4294]",
        "number '300' outside range [-253, 253]",
        "No script set for vrrp_script s - removing",
        "(V) track script s not found, ignoring...",
        "(V) track script t not found, ignoring...",
    ] {
        assert!(m.iter().any(|x| x == want), "missing {want:?} in {m:?}");
    }
}

#[test]
fn routes_and_rules() {
    let r = chk("static_routes {\n 10.9.0.0/16 via 10.0.0.254 dev eth0 table 100 metric 5\n default via 10.0.0.1\n 10.8.0.0/33 dev eth0\n}\nstatic_rules {\n from 10.0.0.0/8 table 100 priority 10\n to 10.1.0.0/16 table 2\n}\nstatic_ipaddress {\n 10.0.0.5/24 dev eth0 scope link\n}\n");
    let m = msgs(&r);
    assert!(
        m.contains(&"Invalid route destination 10.8.0.0/33 - skipping".to_string()),
        "{m:?}"
    );
    assert!(m.contains(
        &"Rule has no preference specified - setting to 16384. This is probably not what you want."
            .to_string()
    ));
    let c = &r.config;
    assert_eq!(c.static_routes.len(), 2);
    assert_eq!(c.static_routes[0].via, vec![ip("10.0.0.254")]);
    assert_eq!(c.static_routes[0].table.as_deref(), Some("100"));
    assert_eq!(c.static_routes[0].metric, Some(5));
    assert_eq!(c.static_routes[1].dest.len, 0);
    assert_eq!(c.static_rules[0].preference, 10);
    assert_eq!(c.static_rules[1].preference, 16384);
    assert_eq!(c.static_ipaddresses[0].scope.as_deref(), Some("link"));
}

#[test]
fn unknown_keywords_everywhere_are_reported_with_position() {
    let r = chk("foo 1\nglobal_defs {\n bar\n}\nvrrp_instance V {\n baz {\n  deep 1\n }\n interface eth0\n virtual_router_id 3\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n");
    let unk: Vec<(String, u32, u32)> = r
        .diagnostics
        .iter()
        .filter(|d| d.class == ErrorClass::UnknownKeyword)
        .map(|d| {
            let p = d.pos.clone().expect("pos");
            (d.message.clone(), p.line, p.col)
        })
        .collect();
    assert_eq!(
        unk,
        vec![
            ("Unknown keyword 'foo'".to_string(), 1, 1),
            ("Unknown keyword 'bar'".to_string(), 3, 2),
            (
                "Unknown keyword 'baz' (its block is skipped)".to_string(),
                6,
                2
            ),
        ]
    );
    // The instance after the unknown block is intact (keepalived would corrupt it).
    assert_eq!(r.config.vrrp_instances[0].vrid, 3);
}

#[test]
fn keyword_case_matters() {
    let r = chk(&vs(
        " real_server 10.0.0.2 80 {\n  tcp_check {\n  }\n }\n LB_ALGO rr",
    ));
    let m = msgs(&r);
    assert!(m.contains(&"Unknown keyword 'tcp_check' (its block is skipped)".to_string()));
    assert!(m.contains(&"Unknown keyword 'LB_ALGO'".to_string()));
}

#[test]
fn render_names_file_line_col_and_text() {
    let r = chk("global_defs {\n  vrrp_version\n}\n");
    let out = r.render();
    assert!(out.contains("t.conf:2:3: error: *** Configuration line starting `vrrp_version` is missing a parameter after keyword `vrrp_version` at word position 2\n    | vrrp_version\n"), "{out}");
    assert!(out.ends_with("1 error(s), 0 warning(s): configuration has a missing parameter: rvsd will not start (exit status 2)\n"), "{out}");
    assert_eq!(r.exit_status(), 2);
    let ok = chk("global_defs {\n router_id a\n}\n");
    assert_eq!(
        ok.render(),
        "0 error(s), 0 warning(s): configuration OK (exit status 0)\n"
    );
}

#[test]
fn load_refuses_what_cannot_run() {
    let d = std::env::temp_dir().join(format!("rvs-config-load-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("mkdir");
    let good = d.join("good.conf");
    std::fs::write(&good, vs(" real_server 10.0.0.2 80 {\n }")).expect("write");
    let (cfg, diags) = load(&good, &CheckOptions::default()).expect("loads");
    assert_eq!(cfg.virtual_servers.len(), 1);
    assert!(diags.is_empty());
    let bad = d.join("bad.conf");
    std::fs::write(&bad, "vrrp_instance V {\n interface eth0\n}\n").expect("write");
    let e = load(&bad, &CheckOptions::default()).expect_err("no VRID");
    assert!(
        e.to_string().contains("the virtual router id must be set"),
        "{e}"
    );
}

#[test]
fn script_security_violation_needs_an_existing_program_run_as_root() {
    let body = |extra: &str, user: &str| {
        format!(
            "global_defs {{\n{extra}\n}}\n{}",
            vs(&format!(" real_server 10.0.0.2 80 {{\n  MISC_CHECK {{\n   misc_path /bin/sh\n{user}\n  }}\n }}"))
        )
    };
    let r = chk(&body("", ""));
    assert_eq!(
        msgs(&r),
        vec!["SECURITY VIOLATION - check scripts are being executed but script_security not enabled.".to_string()]
    );
    assert_eq!(r.exit_status(), 6);
    assert_eq!(chk(&body(" enable_script_security", "")).exit_status(), 0);
    assert_eq!(chk(&body(" script_user nobody", "")).exit_status(), 0);
    assert_eq!(chk(&body("", "   user nobody")).exit_status(), 0);
    // VRRP scripts have their own message; a vrrp_script nobody tracks is not checked.
    let inst = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n TRACK\n}\n";
    let untracked = chk(&format!(
        "vrrp_script s {{\n script /bin/sh\n}}\n{}",
        inst.replace("TRACK", "")
    ));
    assert_eq!(untracked.exit_status(), 0, "{:?}", msgs(&untracked));
    let tracked = chk(&format!(
        "vrrp_script s {{\n script /bin/sh\n}}\n{}",
        inst.replace("TRACK", "track_script {\n s\n }")
    ));
    assert_eq!(
        msgs(&tracked),
        vec![
            "SECURITY VIOLATION - scripts are being executed but script_security not enabled."
                .to_string()
        ]
    );
    // A program that does not exist is not checked (keepalived: rc 0).
    let missing = chk("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n notify_master /nonexistent/x.sh\n}\n");
    assert_eq!(missing.exit_status(), 0, "{:?}", msgs(&missing));
}

#[test]
fn interfaces_are_checked_when_asked() {
    let text = "vrrp_instance V {\n interface lo\n virtual_router_id 5\n track_interface {\n  rvs-nosuch0\n }\n virtual_ipaddress {\n  10.0.0.1/24 dev rvs-nosuch1\n }\n}\n";
    let off = chk(text);
    assert_eq!(
        off.exit_status(),
        0,
        "not checked by default: {:?}",
        msgs(&off)
    );
    let opts = CheckOptions {
        config_id: Some("main".into()),
        check_interfaces: true,
    };
    let on = check_str("t.conf", text, &opts);
    assert_eq!(
        msgs(&on),
        vec![
            "WARNING - interface rvs-nosuch0 for track_interface of vrrp_instance V doesn't exist"
                .to_string(),
            "WARNING - interface rvs-nosuch1 for ip address 10.0.0.1/24 doesn't exist".to_string(),
            "Non-existent interface specified in configuration".to_string(),
        ]
    );
    // keepalived 2.2.7 -t: 5 (the "doesn't exist" lines are ordinary errors, the least severe
    // class decides); rvsd still will not start.
    assert_eq!(on.exit_status(), 5);
    assert!(!on.can_run());
    let dynamic = check_str(
        "t.conf",
        &format!("global_defs {{\n dynamic_interfaces\n}}\n{text}"),
        &opts,
    );
    assert_eq!(dynamic.exit_status(), 0, "{:?}", msgs(&dynamic));
    assert!(interface_exists("lo"));
    assert!(!interface_exists("../lo"));
}

#[test]
fn services_expand_groups_like_keepalived() {
    let r = chk("virtual_server_group G {\n 10.0.0.1-3 80\n ae00::fe-ff 443\n fwmark 9\n}\nvirtual_server group G {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 10.1.0.1 80 {\n }\n}\nvirtual_server fwmark 4 {\n lb_algo rr\n lb_kind NAT\n real_server 10.1.0.1 80 {\n }\n}\n");
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let groups = &r.config.virtual_server_groups;
    let s: Vec<ServiceKey> = r.config.virtual_servers[0].services(groups).collect();
    let a = |addr: &str, port| ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip(addr),
        port,
    };
    assert_eq!(
        s,
        vec![
            a("10.0.0.1", 80),
            a("10.0.0.2", 80),
            a("10.0.0.3", 80),
            a("ae00::fe", 443),
            a("ae00::ff", 443),
            ServiceKey::Fwmark {
                family: Family::Inet,
                mark: 9
            },
        ]
    );
    let f: Vec<ServiceKey> = r.config.virtual_servers[1].services(groups).collect();
    assert_eq!(
        f,
        vec![ServiceKey::Fwmark {
            family: Family::Inet,
            mark: 4
        }]
    );
    // A /8 is 16M services: the iterator is lazy and the size is known up front.
    let big = VsgEntry::Range {
        first: ip("10.0.0.0"),
        last: ip("10.255.255.255"),
        port: None,
    };
    assert_eq!(big.len(), 1 << 24);
    assert_eq!(big.addresses().nth(256), Some(ip("10.0.1.0")));
}

#[test]
fn unknown_route_and_rule_options_are_reported() {
    // Texts as keepalived 2.2.7 prints them for the same lines.
    let r = chk("static_routes {\n 10.9.0.0/16 dev eth0 mtu 1400\n 10.8.0.0/16 dev eth0 frob 1\n 10.7.0.0/16 10.0.0.1 dev eth0\n}\nstatic_rules {\n from 10.0.0.0/8 table 1 priority 5 fwmark 3\n from 10.1.0.0/16 table 1 priority 6 bogus 1\n from 10.2.0.0/16 2 2\n}\n");
    assert_eq!(
        msgs(&r),
        vec![
            "VRRP parsed invalid IP frob. skipping IP...".to_string(),
            "unknown route keyword frob".to_string(),
            "Unknown rule option bogus".to_string(),
            "Invalid rule action 2".to_string(),
        ]
    );
    assert_eq!(r.config.static_routes.len(), 2);
    assert_eq!(
        r.config.static_routes[0].options,
        vec![("mtu".to_string(), "1400".to_string())]
    );
    assert_eq!(
        r.config.static_routes[1].via,
        vec![ip("10.0.0.1")],
        "bare gateway"
    );
    assert_eq!(
        r.config.static_rules[0].options,
        vec![("fwmark".to_string(), "3".to_string())]
    );
}

#[test]
fn same_vrid_with_different_unicast_sources_is_fine() {
    let inst = |n: &str, src: &str| {
        format!("vrrp_instance {n} {{\n virtual_router_id 7\n unicast_src_ip {src}\n unicast_peer {{\n  10.9.9.9\n }}\n virtual_ipaddress {{\n  10.0.0.1\n }}\n}}\n")
    };
    let r = chk(&format!(
        "{}{}",
        inst("A", "10.0.0.2"),
        inst("B", "10.0.0.3")
    ));
    assert_eq!(r.exit_status(), 0, "{:?}", msgs(&r));
}

#[test]
fn missing_values_that_keepalived_does_not_treat_as_fatal() {
    // keepalived's handlers for these check the value themselves (exit 5, not 2).
    let r = chk("global_defs {\n router_id\n notification_email_from\n default_interface\n script_user\n lvs_sync_daemon\n notification_email {\n }\n}\nvrrp_sync_group\nvrrp_instance\n");
    assert_eq!(
        msgs(&r),
        vec![
            "routerid name missing - ignoring".to_string(),
            "emailfrom missing - ignoring".to_string(),
            "default_interface requires interface name".to_string(),
            "No script username specified".to_string(),
            "lvs_sync_daemon requires interface".to_string(),
            "Warning - empty notification_email block".to_string(),
            "vrrp_sync_group must have a name - skipping".to_string(),
            "vrrp_instance must have a name".to_string(),
        ]
    );
    assert_eq!(r.exit_status(), 5);
    let r = chk("static_routes {\n blackhole\n via 10.0.0.1 dev eth0\n 10.0.0.0/8 via\n}\n");
    assert_eq!(
        msgs(&r),
        vec![
            "*** Configuration line starting `blackhole` is missing a parameter after keyword `blackhole` at word position 2".to_string(),
            "Route must have a destination".to_string(),
            "*** Configuration line starting `10.0.0.0/8` is missing a parameter after keyword `via` at word position 3".to_string(),
        ]
    );
    assert_eq!(r.exit_status(), 2);
}

#[test]
fn tracked_scripts_that_cannot_be_found_are_disabled() {
    let inst = "vrrp_instance V {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n  10.0.0.1\n }\n track_script {\n  s\n }\n}\n";
    let r = chk(&format!(
        "vrrp_script s {{\n script /nonexistent/x.sh\n}}\n{inst}"
    ));
    assert_eq!(
        msgs(&r),
        vec!["Disabling track script s since not found/accessible".to_string()]
    );
    // `</path` only tests that a file opens: not a program to look up.
    let r = chk(&format!(
        "vrrp_script s {{\n script \"</dev/tcp/127.0.0.1/80\"\n}}\n{inst}"
    ));
    assert_eq!(r.exit_status(), 0, "{:?}", msgs(&r));
    // With enable_script_security and no user to run as, the script is removed.
    let r = chk(&format!(
        "global_defs {{\n enable_script_security\n}}\nvrrp_script s {{\n script /bin/sh\n}}\n{inst}"
    ));
    assert_eq!(
        msgs(&r),
        vec![
            "Unable to set default user keepalived_script for script".to_string(),
            "Unable to set default user for vrrp script s - removing".to_string(),
            "(V) track script s not found, ignoring...".to_string(),
        ]
    );
}

#[test]
fn timer_ranges_and_empty_values_follow_keepalived() {
    // delay_loop/delay_before_retry/warmup take keepalived's TIMER_MAXIMUM; an
    // empty quoted value reads as 0 (strtod/strtoul of "" in keepalived).
    let r = chk(&vs(" real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   delay_before_retry 999999\n   warmup \"\"\n   retry \"\"\n  }\n }"));
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let c = &r.config.virtual_servers[0].real_servers[0].checkers[0].common;
    assert_eq!(c.delay_before_retry, Some(Duration::from_secs(999_999)));
    assert_eq!((c.warmup, c.retry), (Some(Duration::ZERO), Some(0)));
    let r = chk(&vs(
        " real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   connect_timeout 4295\n  }\n }",
    ));
    assert_eq!(
        msgs(&r),
        vec![
            "number '4295' outside range [0.000001, 4294.967295]".to_string(),
            "connect_timeout 4295 invalid - ignoring".to_string(),
        ]
    );
}

/// rvs addition: `rvs_announce_table TABLE [protocol P] [delay SECS]`.
#[test]
fn rvs_announce_table_forms() {
    let r = chk("global_defs {\n rvs_announce_table 100\n}\n");
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let a = r.config.global.rvs_announce.clone().expect("announce");
    assert_eq!(
        (a.table, a.protocol, a.delay),
        (100, 252, Duration::from_secs(3))
    );
    let r = chk("global_defs {\n rvs_announce_table 70000 protocol 99 delay 0.5\n}\n");
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let a = r.config.global.rvs_announce.clone().expect("announce");
    assert_eq!(
        (a.table, a.protocol, a.delay),
        (70000, 99, Duration::from_millis(500))
    );
    for (text, want) in [
        ("rvs_announce_table 254", "use a table of its own"),
        ("rvs_announce_table 0", ""),
        (
            "rvs_announce_table 100 protocol 12",
            "protocol 12 is not ours",
        ),
        (
            "rvs_announce_table 100 protocol",
            "no value after 'protocol'",
        ),
        ("rvs_announce_table 100 bogus 1", "Unknown option bogus"),
        ("rvs_announce_table", ""),
    ] {
        let r = chk(&format!("global_defs {{\n {text}\n}}\n"));
        assert!(r.config.global.rvs_announce.is_none(), "{text}");
        assert!(r.exit_status() != 0, "{text}: {:?}", msgs(&r));
        assert!(
            msgs(&r).iter().any(|m| m.contains(want)),
            "{text}: {:?}",
            msgs(&r)
        );
    }
}

/// rvs addition: `rvs_docker [SOCKET]`.
#[test]
fn rvs_docker_forms() {
    let r = chk("global_defs {\n rvs_docker\n}\n");
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    assert_eq!(
        r.config.global.rvs_docker.as_deref(),
        Some(std::path::Path::new("/var/run/docker.sock"))
    );
    let r = chk("global_defs {\n rvs_docker unix:///run/d.sock\n}\n");
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    assert_eq!(
        r.config.global.rvs_docker.as_deref(),
        Some(std::path::Path::new("/run/d.sock"))
    );
    for (text, want) in [
        ("rvs_docker run/d.sock", "must be an absolute path"),
        ("rvs_docker /a /b", "takes one argument"),
    ] {
        let r = chk(&format!("global_defs {{\n {text}\n}}\n"));
        assert!(r.config.global.rvs_docker.is_none(), "{text}");
        assert!(r.exit_status() != 0, "{text}: {:?}", msgs(&r));
        assert!(
            msgs(&r).iter().any(|m| m.contains(want)),
            "{text}: {:?}",
            msgs(&r)
        );
    }
}

#[test]
fn agent_check_block() {
    let r = chk(&vs(" real_server 10.0.0.2 80 {\n  weight 10\n  AGENT_CHECK {\n   connect_port 9999\n   connect_timeout 2\n   retry 0\n   send \"web\"\n   min_weight 1\n   max_weight 20\n  }\n }"));
    assert!(r.diagnostics.is_empty(), "{:?}", msgs(&r));
    let c = &r.config.virtual_servers[0].real_servers[0].checkers[0];
    assert_eq!(
        c.kind,
        CheckerKind::Agent(AgentCheck {
            send: Some("web".into()),
            min_weight: Some(1),
            max_weight: Some(20),
        })
    );
    assert_eq!(c.common.connect_port, Some(9999));
    assert_eq!(c.common.retry, Some(0));
    // min above max is an error naming both; unknown keywords are reported.
    let r = chk(&vs(" real_server 10.0.0.2 80 {\n  AGENT_CHECK {\n   min_weight 5\n   max_weight 2\n   frob 1\n  }\n }"));
    let m = msgs(&r);
    assert!(
        m.contains(&"AGENT_CHECK min_weight 5 is above max_weight 2".to_string()),
        "{m:?}"
    );
    assert!(m.contains(&"Unknown keyword 'frob'".to_string()), "{m:?}");
    assert!(r.config.virtual_servers[0].real_servers[0]
        .checkers
        .is_empty());
}
