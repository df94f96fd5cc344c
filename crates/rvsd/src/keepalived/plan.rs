//! The plan: a parsed keepalived configuration mapped onto IPVS services, real-server
//! templates and the health engine's checker configuration.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use rvs_config as kc;
use rvs_control::model as m;
use rvs_health as hc;

use super::is_local;

/// What a configuration asks of the director: services, real-server templates, checkers.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// IPVS services in file order (one per group member for `virtual_server group`).
    pub services: Vec<m::ServiceSpec>,
    /// Per health-engine virtual server: its services and destination templates.
    pub vs: HashMap<hc::VsKey, VsPlan>,
    /// The health engine's configuration.
    pub checks: Vec<hc::VirtualServerCheck>,
    /// `global_defs { lvs_timeouts }`: tcp, tcpfin, udp (unset ones keep the running value).
    pub timeouts: [Option<Duration>; 3],
    /// `global_defs { lvs_flush }`: flush the table at start-up (docs/internals/keepalived.md#the-retry-machine).
    pub flush: bool,
    /// `ha_suspend` virtual servers and their addresses: their checkers run only while one
    /// of the addresses is configured locally (docs/internals/keepalived.md#the-retry-machine).
    pub suspend_vips: Vec<(hc::VsKey, Vec<IpAddr>)>,
    /// `notify_fifo` / `lvs_notify_fifo` paths.
    pub fifos: Vec<PathBuf>,
}

/// The IPVS side of one `virtual_server` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VsPlan {
    /// The services it stands for (several for a group, docs/internals/keepalived.md#virtual-servers).
    pub services: Vec<m::ServiceKey>,
    /// Real servers: how to install each (the weight is the engine's to set).
    pub dests: HashMap<SocketAddr, m::DestSpec>,
    /// The sorry server, installed with its own method (`sorry_server_lvs_method`).
    pub sorry: Option<(SocketAddr, m::DestSpec)>,
}

impl VsPlan {
    pub(super) fn template(&self, dest: SocketAddr, sorry: bool) -> Option<&m::DestSpec> {
        if sorry {
            return self.sorry.as_ref().filter(|s| s.0 == dest).map(|s| &s.1);
        }
        self.dests.get(&dest)
    }
}

/// The control-protocol key of one service of a virtual server.
pub fn service_key(k: &kc::ServiceKey) -> m::ServiceKey {
    match *k {
        kc::ServiceKey::Addr {
            protocol: p,
            addr,
            port,
        } => m::ServiceKey::Addr {
            protocol: p,
            addr,
            port,
        },
        kc::ServiceKey::Fwmark { family: f, mark } => m::ServiceKey::Fwmark { mark, family: f },
    }
}

/// The health engine's identity of a virtual server (docs/internals/keepalived.md#reload-sighup reload identity).
pub fn vs_key(vs: &kc::VirtualServer) -> hc::VsKey {
    match &vs.key {
        kc::VsKey::Addr { addr, port } => hc::VsKey::Addr {
            protocol: vs.protocol.unwrap_or(kc::Protocol::Udp),
            addr: SocketAddr::new(*addr, port.unwrap_or(0)),
        },
        kc::VsKey::Fwmark(mark) => hc::VsKey::Fwmark {
            mark: *mark,
            ipv6: vs.family == Some(kc::Family::Inet6),
        },
        kc::VsKey::Group(name) => hc::VsKey::Group { name: name.clone() },
    }
}

/// The IPVS service attributes of a virtual server (docs/internals/keepalived.md#virtual-servers `ipvs_set_srule`).
///
/// keepalived quirk copied: for the address entries of a `virtual_server_group` the
/// persistence netmask is reset to /32 (/128), so `persistence_granularity` only applies to
/// plain address and fwmark services.
pub fn service_spec(vs: &kc::VirtualServer, key: m::ServiceKey) -> m::ServiceSpec {
    let mut s = m::ServiceSpec::with_defaults(key);
    s.scheduler = vs.scheduler.name().to_string();
    let f = &vs.sched_flags;
    s.flags.one_packet = vs.ops;
    // IP_VS_SVC_F_SCHED1/2 are also sh-fallback/sh-port and mh-fallback/mh-port.
    s.flags.sched1 = f.flag_1 || f.sh_fallback || f.mh_fallback;
    s.flags.sched2 = f.flag_2 || f.sh_port || f.mh_port;
    s.flags.sched3 = f.flag_3;
    if vs.persistence_timeout > 0 {
        s.flags.persistent = true;
        s.timeout = vs.persistence_timeout;
        s.pe_name = vs.persistence_engine.clone();
        let group_addr =
            matches!(vs.key, kc::VsKey::Group(_)) && matches!(s.key, m::ServiceKey::Addr { .. });
        if !group_addr {
            match vs.persistence_granularity {
                Some(kc::Granularity::V4(mask)) if s.key.family() == m::Family::Inet => {
                    s.netmask = u32::from(mask)
                }
                Some(kc::Granularity::V6(len)) if s.key.family() == m::Family::Inet6 => {
                    s.netmask = u32::from(len)
                }
                _ => {}
            }
        }
    }
    s
}

/// A destination template for a forwarding method (docs/internals/keepalived.md#virtual-servers `ipvs_set_drule`).
pub fn dest_spec(addr: IpAddr, port: u16, method: kc::ForwardMethod) -> m::DestSpec {
    let mut d = m::DestSpec::with_defaults(addr, port);
    match method {
        kc::ForwardMethod::Nat => d.method = m::ForwardMethod::Masq,
        kc::ForwardMethod::Dr => d.method = m::ForwardMethod::Route,
        kc::ForwardMethod::Tun { tunnel, csum } => {
            d.method = m::ForwardMethod::Tunnel;
            match tunnel {
                kc::TunnelType::Ipip => d.tun_type = m::TunnelType::Ipip,
                kc::TunnelType::Gre => d.tun_type = m::TunnelType::Gre,
                kc::TunnelType::Gue { port } => {
                    d.tun_type = m::TunnelType::Gue;
                    d.tun_port = port;
                }
            }
            d.tun_csum = match csum {
                kc::TunnelCsum::NoCsum => m::TunnelCsum::NoCsum,
                kc::TunnelCsum::Csum => m::TunnelCsum::Csum,
                kc::TunnelCsum::RemCsum => m::TunnelCsum::RemCsum,
            };
        }
    }
    d
}

fn command(s: &kc::Script, g: &kc::GlobalDefs) -> hc::Command {
    // `script_user` from global_defs (else keepalived_script) is the default user of every
    // script (docs/internals/keepalived.md#global_defs).
    let (user, group) = match g.script_identity(s) {
        Some((u, grp)) => (Some(u), grp),
        None => (None, None),
    };
    hc::Command {
        argv: s.argv.clone(),
        user,
        group,
    }
}

fn connect(c: &kc::CheckerCommon, rs: SocketAddr) -> hc::ConnectOpts {
    hc::ConnectOpts {
        connect: SocketAddr::new(
            c.connect_ip.unwrap_or(rs.ip()),
            c.connect_port.unwrap_or(rs.port()),
        ),
        bindto: c.bindto,
        bind_port: c.bind_port,
        bind_if: c.bind_if.clone(),
        fwmark: c.fwmark,
    }
}

fn http(
    h: &kc::HttpCheck,
    c: &kc::CheckerCommon,
    rs: &kc::RealServer,
    vs: &kc::VirtualServer,
    addr: SocketAddr,
    tls: bool,
    at: &kc::Pos,
) -> Result<hc::HttpCheck, String> {
    let mut urls = Vec::new();
    for u in &h.urls {
        if u.regex.is_some() {
            // No regex engine in rvs-health; silently passing would be a lie (issue 5: no stubs).
            return Err(format!(
                "{}: url regex is not supported by rvsd (remove `regex` from the url block)",
                u.pos
            ));
        }
        urls.push(hc::HttpUrl {
            path: u.path.clone(),
            digest: u.digest,
            status_codes: u.status_codes.iter().map(|r| (r.lo, r.hi)).collect(),
            virtualhost: u.virtualhost.clone(),
        });
    }
    if urls.is_empty() {
        return Err(format!("{at}: HTTP/SSL_GET checker has no urls specified"));
    }
    Ok(hc::HttpCheck {
        connect: connect(c, addr),
        protocol: match h.http_protocol {
            kc::HttpProtocol::Http10 => hc::HttpProtocol::Http10,
            kc::HttpProtocol::Http10C => hc::HttpProtocol::Http10Close,
            kc::HttpProtocol::Http11 => hc::HttpProtocol::Http11,
        },
        // virtualhost inheritance: url (kept on the url) → checker → RS → VS (docs/internals/keepalived.md#checkers-and-their-timers).
        virtualhost: h
            .virtualhost
            .clone()
            .or_else(|| rs.virtualhost.clone())
            .or_else(|| vs.virtualhost.clone()),
        tls: tls.then_some(hc::TlsOpts {
            enable_sni: h.enable_sni,
        }),
        urls,
        fast_recovery: h.fast_recovery,
    })
}

/// The health checkers of one real server (one checker per SMTP `host {}` block).
fn checkers(
    cfg: &kc::Config,
    vs: &kc::VirtualServer,
    rs: &kc::RealServer,
    addr: SocketAddr,
) -> Result<Vec<hc::CheckerConfig>, String> {
    let mut out = Vec::new();
    for ch in &rs.checkers {
        let t = ch.timing(rs, vs);
        let timing = hc::CheckerTiming {
            delay_loop: t.delay_loop,
            connect_timeout: t.connect_timeout,
            retry: t.retry,
            delay_before_retry: t.delay_before_retry,
            warmup: t.warmup,
        };
        let c = &ch.common;
        let kinds = match &ch.kind {
            kc::CheckerKind::Tcp => vec![hc::CheckKind::Tcp(connect(c, addr))],
            kc::CheckerKind::Http(h) => vec![hc::CheckKind::Http(http(
                h, c, rs, vs, addr, false, &ch.pos,
            )?)],
            kc::CheckerKind::Ssl(h) => vec![hc::CheckKind::Http(http(
                h, c, rs, vs, addr, true, &ch.pos,
            )?)],
            kc::CheckerKind::Misc(mc) => vec![hc::CheckKind::Misc(hc::MiscCheck {
                command: command(&mc.path, &cfg.global),
                // misc_timeout defaults to the VS delay_loop (docs/internals/keepalived.md#checkers-and-their-timers).
                timeout: mc.timeout.unwrap_or(vs.delay_loop),
                dynamic: mc.dynamic,
            })],
            kc::CheckerKind::Smtp(s) => {
                let hosts: Vec<hc::ConnectOpts> = if s.hosts.is_empty() {
                    vec![connect(c, addr)]
                } else {
                    // Legacy `host {}` blocks: keepalived checks each; one checker each here.
                    s.hosts
                        .iter()
                        .map(|h| {
                            let mut merged = h.clone();
                            merged.bindto = h.bindto.or(c.bindto);
                            merged.bind_if = h.bind_if.clone().or_else(|| c.bind_if.clone());
                            merged.fwmark = h.fwmark.or(c.fwmark);
                            connect(&merged, addr)
                        })
                        .collect()
                };
                hosts
                    .into_iter()
                    .map(|connect| {
                        hc::CheckKind::Smtp(hc::SmtpCheck {
                            connect,
                            helo_name: s.helo_name.clone(),
                        })
                    })
                    .collect()
            }
            kc::CheckerKind::Dns(d) => vec![hc::CheckKind::Dns(hc::DnsCheck {
                connect: connect(c, addr),
                qtype: match d.qtype {
                    kc::DnsType::A => hc::DnsType::A,
                    kc::DnsType::Ns => hc::DnsType::Ns,
                    kc::DnsType::Cname => hc::DnsType::Cname,
                    kc::DnsType::Soa => hc::DnsType::Soa,
                    kc::DnsType::Mx => hc::DnsType::Mx,
                    kc::DnsType::Txt => hc::DnsType::Txt,
                    kc::DnsType::Aaaa => hc::DnsType::Aaaa,
                },
                name: d.name.clone(),
            })],
            kc::CheckerKind::Udp(u) => vec![hc::CheckKind::Udp(hc::UdpCheck {
                connect: connect(c, addr),
                payload: u.payload.clone(),
                require_reply: u.require_reply.clone(),
                min_reply_length: u.min_reply_length.unwrap_or(0) as usize,
                max_reply_length: u.max_reply_length.map(|n| n as usize),
            })],
            kc::CheckerKind::Ping => vec![hc::CheckKind::Ping(hc::PingCheck {
                connect: connect(c, addr),
            })],
            kc::CheckerKind::Agent(a) => {
                let min_weight = a.min_weight.unwrap_or(0);
                // Unset: the configured weight, so percentages above 100% change nothing.
                let max_weight = a.max_weight.unwrap_or(rs.weight).max(min_weight);
                vec![hc::CheckKind::Agent(hc::AgentCheck {
                    connect: connect(c, addr),
                    send: a.send.clone(),
                    min_weight,
                    max_weight,
                })]
            }
        };
        for kind in kinds {
            out.push(hc::CheckerConfig {
                kind,
                timing,
                alpha: c.alpha.unwrap_or(rs.alpha),
                log_all_failures: c
                    .log_all_failures
                    .unwrap_or(cfg.global.checker_log_all_failures),
            });
        }
    }
    Ok(out)
}

/// Map a configuration onto IPVS services, destination templates and health checks.
///
/// One warning line per keyword rvs parses but rvsd does not act on (`rvs_config`'s
/// `NOT_ACTED_ON`: static/virtual routes and rules, SMTP alerts, `vrrp_startup_delay`, …), with
/// its position; printed by `rvsd -t` and logged at start and on reload.
pub fn parsed_not_acted_on(cfg: &kc::Config) -> Vec<String> {
    cfg.not_acted_on
        .iter()
        .map(|u| {
            let ctx = if u.context.is_empty() {
                String::new()
            } else {
                format!(" (in {})", u.context)
            };
            let kw = u.words.first().map(String::as_str).unwrap_or("");
            format!(
                "{}: warning: `{kw}`{ctx} is parsed but not acted on by rvsd",
                u.pos
            )
        })
        .collect()
}

/// VRRP instances are run by `rvsd::vrrp` from the same file. `notes` receives one line per
/// configured feature rvsd accepts but does not act on (notify FIFOs, `ha_suspend`, …) so the operator is told, never left guessing.
/// Errors name what cannot run.
pub fn plan(cfg: &kc::Config, notes: &mut Vec<String>) -> Result<Plan, String> {
    let mut p = Plan {
        flush: cfg.global.lvs_flush,
        timeouts: [
            cfg.global.lvs_timeouts.tcp,
            cfg.global.lvs_timeouts.tcpfin,
            cfg.global.lvs_timeouts.udp,
        ],
        ..Plan::default()
    };
    // keepalived writes the LVS lines to both the general and the LVS FIFO (docs/internals/keepalived.md#notifications).
    for s in [&cfg.global.notify_fifo, &cfg.global.lvs_notify_fifo]
        .into_iter()
        .flatten()
    {
        if let Some(path) = s.argv.first() {
            p.fifos.push(PathBuf::from(path));
        }
    }
    if cfg.ssl.is_some() {
        notes.push(
            "the SSL { } block (client certificate for SSL_GET) is not used by rvsd: SSL_GET \
             connects without a client certificate"
                .to_string(),
        );
    }
    for u in &cfg.unmodelled {
        notes.push(format!(
            "{}: `{}` ({}) is recognised but not acted on by rvsd",
            u.pos,
            u.words.join(" "),
            u.context
        ));
    }
    notes.extend(parsed_not_acted_on(cfg));
    let mut seen: HashMap<m::ServiceKey, String> = HashMap::new();
    for vs in &cfg.virtual_servers {
        let name = kc::vs_name(&vs.key, vs.protocol);
        let key = vs_key(vs);
        let mut vp = VsPlan::default();
        for sk in vs.services(&cfg.virtual_server_groups) {
            let k = service_key(&sk);
            if let Some(other) = seen.insert(k.clone(), name.clone()) {
                return Err(format!(
                    "{}: virtual server {name} and {other} both describe the IPVS service {k}",
                    vs.pos
                ));
            }
            p.services.push(service_spec(vs, k.clone()));
            vp.services.push(k);
        }
        let mut rss = Vec::new();
        for rs in &vs.real_servers {
            let addr = SocketAddr::new(rs.addr, rs.port.unwrap_or(0));
            let mut d = dest_spec(rs.addr, addr.port(), rs.method);
            d.weight = rs.weight;
            d.u_threshold = rs.uthreshold;
            d.l_threshold = rs.lthreshold;
            vp.dests.insert(addr, d);
            rss.push(hc::RealServerCheck {
                addr,
                weight: rs.weight,
                inhibit_on_failure: rs.inhibit_on_failure,
                notify_up: rs.notify_up.as_ref().map(|s| command(s, &cfg.global)),
                notify_down: rs.notify_down.as_ref().map(|s| command(s, &cfg.global)),
                checkers: checkers(cfg, vs, rs, addr)
                    .map_err(|e| format!("{e} (real server {addr} of {name})"))?,
            });
        }
        let sorry = vs.sorry_server.as_ref().map(|ss| {
            let addr = SocketAddr::new(ss.addr, ss.port.unwrap_or(0));
            // The sorry server has its own method (sorry_server_lvs_method, default the VS
            // method) and weight 1 (docs/internals/keepalived.md#quorum-and-the-sorry-server).
            let d = dest_spec(ss.addr, addr.port(), ss.method.unwrap_or(vs.method));
            vp.sorry = Some((addr, d));
            hc::SorryServer {
                addr,
                inhibit: ss.inhibit,
            }
        });
        let mut suspended = false;
        if vs.ha_suspend {
            // fwmark services have no address (the parser clears ha_suspend there, docs/internals/keepalived.md#virtual-servers).
            let ips: Vec<IpAddr> = vp
                .services
                .iter()
                .filter_map(|k| match k {
                    m::ServiceKey::Addr { addr, .. } => Some(*addr),
                    m::ServiceKey::Fwmark { .. } => None,
                })
                .collect();
            if !ips.is_empty() {
                suspended = !ips.iter().any(|ip| is_local(*ip));
                p.suspend_vips.push((key.clone(), ips));
            }
        }
        p.checks.push(hc::VirtualServerCheck {
            key: key.clone(),
            quorum: vs.quorum,
            hysteresis: vs.hysteresis,
            quorum_up: vs.quorum_up.as_ref().map(|s| command(s, &cfg.global)),
            quorum_down: vs.quorum_down.as_ref().map(|s| command(s, &cfg.global)),
            sorry_server: sorry,
            omega: vs.omega,
            suspended,
            real_servers: rss,
        });
        p.vs.insert(key, vp);
    }
    hc::validate(&p.checks).map_err(|e| e.to_string())?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(text: &str) -> Plan {
        let r = kc::check_str("k.conf", text, &kc::CheckOptions::default());
        assert!(r.can_run(), "{}", r.render());
        let mut notes = Vec::new();
        plan(&r.config, &mut notes).unwrap()
    }

    /// docs/keepalived-differences.md: a keyword rvs parses but does not act on is named, with
    /// its position, in a note (a warning at start), never dropped silently.
    #[test]
    fn recognised_keywords_not_acted_on_are_named() {
        let text = "global_defs {\n vrrp_priority -5\n enable_snmp_keepalived\n}\n\
             virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
             snmp_name web\n real_server 192.168.1.1 80 {\n }\n}\n";
        let r = kc::check_str("k.conf", text, &kc::CheckOptions::default());
        assert!(r.can_run(), "{}", r.render());
        let mut notes = Vec::new();
        plan(&r.config, &mut notes).unwrap();
        for (kw, line) in [
            ("vrrp_priority", "k.conf:2"),
            ("enable_snmp_keepalived", "k.conf:3"),
            ("snmp_name", "k.conf:9"),
        ] {
            assert!(
                notes.iter().any(|n| n.starts_with(line)
                    && n.contains(&format!("`{kw}"))
                    && n.ends_with("is recognised but not acted on by rvsd")),
                "no note for {kw} at {line}: {notes:#?}"
            );
        }
    }

    #[test]
    fn nat_service_and_dests() {
        let p = plan_of(
            "virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
             persistence_timeout 600\n persistence_granularity 255.255.255.0\n \
             real_server 192.168.1.1 8080 {\n  weight 3\n  uthreshold 10\n  TCP_CHECK {\n  }\n }\n}\n",
        );
        let s = &p.services[0];
        assert_eq!(s.scheduler, "rr");
        assert!(s.flags.persistent);
        assert_eq!(s.timeout, 600);
        assert_eq!(s.netmask, 0xFFFF_FF00);
        let vp = p.vs.values().next().unwrap();
        let d = &vp.dests[&"192.168.1.1:8080".parse().unwrap()];
        assert_eq!(d.method, m::ForwardMethod::Masq);
        assert_eq!(d.port, 8080);
        assert_eq!(d.weight, 3);
        assert_eq!(d.u_threshold, 10);
        assert_eq!(p.checks[0].real_servers[0].checkers.len(), 1);
    }

    #[test]
    fn dr_port_forced_and_sorry_method() {
        let p = plan_of(
            "virtual_server 10.0.0.1 80 {\n lb_algo wlc\n lb_kind DR\n protocol TCP\n \
             sorry_server 192.168.9.9 8080\n sorry_server_lvs_method NAT\n \
             real_server 192.168.1.1 80 {\n }\n}\n",
        );
        let vp = p.vs.values().next().unwrap();
        let d = vp.dests.values().next().unwrap();
        assert_eq!(d.method, m::ForwardMethod::Route);
        let (sa, sd) = vp.sorry.as_ref().unwrap();
        assert_eq!(*sa, "192.168.9.9:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(sd.method, m::ForwardMethod::Masq);
    }

    #[test]
    fn group_expands_and_ignores_granularity() {
        let p = plan_of(
            "virtual_server_group G {\n 10.0.0.1-3 80\n fwmark 7\n}\n\
             virtual_server group G {\n lb_algo sh\n sh-port\n lb_kind TUN type gue port 6080\n \
             protocol TCP\n persistence_timeout 60\n persistence_granularity 255.255.0.0\n \
             real_server 192.168.1.1 80 {\n }\n}\n",
        );
        assert_eq!(p.services.len(), 4);
        assert!(p.services[0].flags.sched2);
        // keepalived quirk: group address entries keep /32.
        assert_eq!(p.services[0].netmask, 0xFFFF_FFFF);
        assert_eq!(p.services[3].netmask, 0xFFFF_0000);
        let vp = &p.vs[&hc::VsKey::Group { name: "G".into() }];
        let d = vp.dests.values().next().unwrap();
        assert_eq!(d.method, m::ForwardMethod::Tunnel);
        assert_eq!(d.tun_type, m::TunnelType::Gue);
        assert_eq!(d.tun_port, 6080);
    }

    #[test]
    fn checker_inheritance() {
        let p = plan_of(
            "global_defs {\n script_user nobody\n}\n\
             virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
             delay_loop 7\n virtualhost vs.example\n alpha\n \
             real_server 192.168.1.1 8080 {\n  connect_timeout 2\n  \
             HTTP_GET {\n   url {\n    path /a\n    status_code 200-204\n   }\n  }\n  \
             SSL_GET {\n   enable_sni\n   virtualhost ssl.example\n   url {\n    path /b\n   }\n  }\n  \
             MISC_CHECK {\n   misc_path \"/bin/true x\"\n  }\n  \
             TCP_CHECK {\n   connect_ip 192.168.1.9\n   connect_port 9000\n   retry 0\n  }\n }\n}\n",
        );
        let cs = &p.checks[0].real_servers[0].checkers;
        assert_eq!(cs.len(), 4);
        let rs: SocketAddr = "192.168.1.1:8080".parse().unwrap();
        match &cs[0].kind {
            hc::CheckKind::Http(h) => {
                assert!(h.tls.is_none());
                assert_eq!(h.connect.connect, rs);
                assert_eq!(h.virtualhost.as_deref(), Some("vs.example"));
                assert_eq!(h.urls[0].status_codes, vec![(200, 204)]);
            }
            k => panic!("{k:?}"),
        }
        // HTTP defaults: delay_before_retry 3 s; connect_timeout from the real server.
        assert_eq!(cs[0].timing.delay_loop, Duration::from_secs(7));
        assert_eq!(cs[0].timing.connect_timeout, Duration::from_secs(2));
        assert_eq!(cs[0].timing.delay_before_retry, Duration::from_secs(3));
        assert!(cs[0].alpha, "alpha inherited from the virtual server");
        match &cs[1].kind {
            hc::CheckKind::Http(h) => {
                assert_eq!(h.tls, Some(hc::TlsOpts { enable_sni: true }));
                assert_eq!(h.virtualhost.as_deref(), Some("ssl.example"));
            }
            k => panic!("{k:?}"),
        }
        match &cs[2].kind {
            hc::CheckKind::Misc(m) => {
                assert_eq!(m.command.argv, vec!["/bin/true", "x"]);
                assert_eq!(m.command.user.as_deref(), Some("nobody"));
                // misc_timeout defaults to the VS delay_loop; MISC retry defaults to 0.
                assert_eq!(m.timeout, Duration::from_secs(7));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(cs[2].timing.retry, 0);
        match &cs[3].kind {
            hc::CheckKind::Tcp(c) => {
                assert_eq!(c.connect, "192.168.1.9:9000".parse().unwrap())
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(cs[3].timing.retry, 0);
    }

    #[test]
    fn ha_suspend_starts_suspended_without_the_vip() {
        let conf = |vip: &str| {
            format!(
                "virtual_server {vip} 80 {{\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
                 ha_suspend\n real_server 127.0.0.1 80 {{\n }}\n}}\n"
            )
        };
        // 192.0.2.0/24 is TEST-NET-1: never configured here.
        let p = plan_of(&conf("192.0.2.1"));
        assert!(p.checks[0].suspended);
        assert_eq!(p.suspend_vips.len(), 1);
        let p = plan_of(&conf("127.0.0.1"));
        assert!(!p.checks[0].suspended);
    }

    #[test]
    fn regex_url_is_refused() {
        let r = kc::check_str(
            "k.conf",
            "virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
             real_server 192.168.1.1 80 {\n  HTTP_GET {\n   url {\n    path /\n    regex \"ok\"\n   }\n  }\n }\n}\n",
            &kc::CheckOptions::default(),
        );
        let mut notes = Vec::new();
        let e = plan(&r.config, &mut notes).unwrap_err();
        assert!(e.contains("regex"), "{e}");
    }
}
