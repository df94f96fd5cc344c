//! From the parsed keepalived.conf model (`rvs_config::Config`) to what the driver runs: one
//! [`rvs_vrrp::InstanceConfig`] per `vrrp_instance` plus what the protocol crate does not need
//! (interface, VIP specs with labels, scripts, notify commands). Defaults and the
//! instance-over-global precedence follow docs/internals/vrrp.md#configuration, docs/internals/keepalived.md#keywords-and-blocks.

use std::collections::HashMap;
use std::net::IpAddr;

use rvs_config::model::{AuthType, Config, IpAddress, Notify, VrrpInstance, VrrpState};
use rvs_vrrp::{
    Auth, GarpConfig, InitialState, InstanceConfig, TrackerConfig, UnicastPeer, Version,
};

use super::netlink::{parse_scope, AddrSpec, Rtnl};

/// Where an instance's tracker (by index into [`InstanceConfig::trackers`]) gets its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackSource {
    /// `track_interface NAME`: up = `IFF_UP` and `IFF_RUNNING`.
    Interface(String),
    /// `track_script NAME`: index into [`Plan::scripts`].
    Script(usize),
}

/// Everything about one instance the driver needs besides the protocol configuration.
#[derive(Debug, Clone)]
pub struct InstancePlan {
    /// Protocol configuration.
    pub cfg: InstanceConfig,
    /// `interface`.
    pub ifname: String,
    /// Its index.
    pub ifindex: u32,
    /// Whether the interface's own state puts the instance in FAULT (not `dont_track_primary`).
    pub track_primary: bool,
    /// `virtual_ipaddress` then `virtual_ipaddress_excluded`, as rtnetlink requests.
    pub addrs: Vec<AddrSpec>,
    /// `virtual_routes` and `virtual_rules`: installed after the addresses when the instance
    /// becomes MASTER, removed before them when it leaves (lines rvs cannot install were
    /// left out with a warning when the plan was made).
    pub routes: Vec<crate::keepalived::netconf::RouteSpec>,
    /// See `routes`.
    pub rules: Vec<crate::keepalived::netconf::RuleSpec>,
    /// Tracker sources, parallel to `cfg.trackers`.
    pub track: Vec<TrackSource>,
    /// Notify commands.
    pub notify: Notify,
}

/// One `vrrp_sync_group`.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// Name.
    pub name: String,
    /// Member indexes into [`Plan::instances`].
    pub members: Vec<usize>,
    /// `sync_group_tracking_weight`.
    pub tracking_weight: bool,
    /// Notify commands of the group.
    pub notify: Notify,
}

/// One `vrrp_script` that some instance tracks.
#[derive(Debug, Clone)]
pub struct ScriptPlan {
    /// Name.
    pub name: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// `interval`.
    pub interval: std::time::Duration,
    /// `timeout` (default: the interval, as keepalived).
    pub timeout: std::time::Duration,
    /// The user (and group) it runs as; `None` is root (`GlobalDefs::script_identity`).
    pub user: Option<(String, Option<String>)>,
    /// `rise`, `fall`, `init_fail`.
    pub rise: u32,
    /// `fall`.
    pub fall: u32,
    /// `init_fail`.
    pub init_fail: bool,
}

/// What the driver runs.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Instances in file order.
    pub instances: Vec<InstancePlan>,
    /// Sync groups.
    pub groups: Vec<GroupPlan>,
    /// Tracked scripts.
    pub scripts: Vec<ScriptPlan>,
    /// `notify_fifo` and `vrrp_notify_fifo` paths.
    pub fifos: Vec<std::path::PathBuf>,
    /// `vrrp_garp_interval`: spacing of gratuitous ARPs.
    pub garp_interval: std::time::Duration,
    /// `global_defs`, for the user notify scripts run as (`script_user`).
    pub global: Option<rvs_config::model::GlobalDefs>,
}

fn addr_spec(rtnl: &mut Rtnl, a: &IpAddress, default_if: &str) -> Result<AddrSpec, String> {
    let dev = a.dev.as_deref().unwrap_or(default_if);
    let link = rtnl
        .link(dev)
        .map_err(|e| format!("virtual_ipaddress {} dev {dev}: {e}", a.addr))?;
    let broadcast = match (a.addr, a.brd.as_deref()) {
        (IpAddr::V4(_), Some(b)) => Some(
            b.parse()
                .map_err(|_| format!("virtual_ipaddress {}: brd {b} is not supported", a.addr))?,
        ),
        _ => None,
    };
    Ok(AddrSpec {
        index: link.index,
        addr: a.addr,
        prefix: a.prefix,
        label: a.label.clone(),
        broadcast,
        scope: parse_scope(a.scope.as_deref()),
    })
}

fn instance(
    cfg: &Config,
    vi: &VrrpInstance,
    rtnl: &mut Rtnl,
    scripts: &mut Vec<ScriptPlan>,
    group_extra: Option<&rvs_config::model::VrrpSyncGroup>,
) -> Result<InstancePlan, String> {
    let g = &cfg.global;
    let err = |m: String| format!("vrrp_instance {}: {m}", vi.name);
    let ifname = vi
        .interface
        .clone()
        .ok_or_else(|| err("no interface (required by rvsd)".into()))?;
    let link = rtnl
        .link(&ifname)
        .map_err(|e| err(format!("interface {ifname}: {e}")))?;
    let version = if vi.version == 3 {
        Version::V3
    } else {
        Version::V2
    };
    let vips: Vec<IpAddr> = vi.virtual_ipaddresses.iter().map(|a| a.addr).collect();
    let v6 = vips
        .first()
        .map(IpAddr::is_ipv6)
        .or(vi.unicast_src_ip.map(|a| a.is_ipv6()))
        .unwrap_or(false);
    // The source: unicast_src_ip / mcast_src_ip, else the interface's primary address (not one
    // of our VIPs, which a killed predecessor may have left behind); IPv6 uses the link-local
    // address (RFC 5798 §5.1.2.1).
    let src = match vi.unicast_src_ip.or(vi.mcast_src_ip) {
        Some(a) => a,
        None => rtnl
            .addresses(link.index, v6)
            .map_err(|e| err(format!("addresses of {ifname}: {e}")))?
            .into_iter()
            .map(|(a, _)| a)
            .find(|a| match a {
                IpAddr::V4(_) => !vips.contains(a),
                IpAddr::V6(a6) => a6.is_unicast_link_local(),
            })
            .ok_or_else(|| {
                err(format!(
                    "interface {ifname} has no {} address",
                    if v6 { "IPv6 link-local" } else { "IPv4" }
                ))
            })?,
    };
    let mut c = InstanceConfig::new(&vi.name, vi.vrid, version, src, vips);
    c.priority = vi.priority;
    c.initial_state = match vi.state {
        Some(VrrpState::Master) => InitialState::Master,
        _ => InitialState::Backup,
    };
    c.advert_int_cs = InstanceConfig::advert_int_cs_from_secs(version, vi.advert_int.as_secs_f64());
    c.auth = match &vi.authentication {
        None => Auth::None,
        Some(a) if a.auth_type == AuthType::Ah => Auth::Ah,
        Some(a) => {
            let mut p = [0u8; 8];
            for (d, s) in p.iter_mut().zip(&a.password) {
                *d = *s;
            }
            Auth::Pass(p)
        }
    };
    c.preempt = !vi.nopreempt;
    c.preempt_delay = vi.preempt_delay;
    c.unicast_peers = vi
        .unicast_peers
        .iter()
        .map(|p| UnicastPeer {
            addr: p.addr,
            min_ttl: p.min_ttl.unwrap_or(0),
            max_ttl: p.max_ttl.unwrap_or(255),
        })
        .collect();
    c.check_unicast_src = vi.check_unicast_src
        || g.vrrp_check_unicast_src
        || vi
            .unicast_peers
            .iter()
            .any(|p| p.min_ttl.is_some() || p.max_ttl.is_some());
    c.mcast_group = vi.mcast_dst_ip.unwrap_or(if v6 {
        IpAddr::V6(g.vrrp_mcast_group6)
    } else {
        IpAddr::V4(g.vrrp_mcast_group4)
    });
    if let Some(t) = vi.unicast_ttl {
        c.unicast_ttl = t;
    }
    c.down_timer_adverts = vi.down_timer_adverts.unwrap_or(g.vrrp_down_timer_adverts);
    let master_delay = vi.garp_master_delay.unwrap_or(g.vrrp_garp_master_delay);
    let master_repeat = vi.garp_master_repeat.unwrap_or(g.vrrp_garp_master_repeat);
    c.garp = GarpConfig {
        master_delay,
        master_repeat,
        lower_prio_delay: vi
            .garp_lower_prio_delay
            .or(g.vrrp_garp_lower_prio_delay)
            .unwrap_or(master_delay),
        lower_prio_repeat: vi
            .garp_lower_prio_repeat
            .or(g.vrrp_garp_lower_prio_repeat)
            .unwrap_or(master_repeat),
        master_refresh: vi.garp_master_refresh.unwrap_or(g.vrrp_garp_master_refresh),
        master_refresh_repeat: vi
            .garp_master_refresh_repeat
            .unwrap_or(g.vrrp_garp_master_refresh_repeat),
        min_garp: g.vrrp_min_garp,
    };
    let strict = vi.strict_mode.unwrap_or(g.vrrp_strict);
    c.lower_prio_no_advert = vi
        .lower_prio_no_advert
        .or(g.vrrp_lower_prio_no_advert)
        .unwrap_or(strict);
    c.higher_prio_send_advert = vi
        .higher_prio_send_advert
        .unwrap_or(g.vrrp_higher_prio_send_advert);
    c.skip_check_adv_addr = vi.skip_check_adv_addr.unwrap_or(g.vrrp_skip_check_adv_addr);
    c.notify_priority_changes = vi.notify_priority_changes.unwrap_or(false);

    // Trackers: the instance's, then its sync group's (keepalived adds a group's tracked objects
    // to every member, docs/internals/vrrp.md#configuration).
    let mut track = Vec::new();
    let mut ifs: Vec<&rvs_config::model::TrackInterface> = vi.track_interfaces.iter().collect();
    let mut tss: Vec<&rvs_config::model::TrackScript> = vi.track_scripts.iter().collect();
    if let Some(gr) = group_extra {
        // An object tracked by both the instance and its group counts once: keepalived keeps one
        // tracking entry per (object, instance) pair.
        for t in &gr.track_interfaces {
            if !ifs.iter().any(|x| x.name == t.name) {
                ifs.push(t);
            }
        }
        for t in &gr.track_scripts {
            if !tss.iter().any(|x| x.name == t.name) {
                tss.push(t);
            }
        }
    }
    for ti in ifs {
        c.trackers.push(TrackerConfig {
            weight: ti.weight,
            reverse: ti.reverse,
        });
        track.push(TrackSource::Interface(ti.name.clone()));
    }
    for ts in tss {
        let s = cfg
            .vrrp_scripts
            .iter()
            .find(|s| s.name == ts.name)
            .ok_or_else(|| err(format!("track_script {}: no such vrrp_script", ts.name)))?;
        let idx = match scripts.iter().position(|p| p.name == s.name) {
            Some(i) => i,
            None => {
                scripts.push(ScriptPlan {
                    name: s.name.clone(),
                    argv: s.script.argv.clone(),
                    user: cfg.global.script_identity(&s.script),
                    interval: s.interval,
                    timeout: s.timeout.unwrap_or(s.interval),
                    rise: s.rise,
                    fall: s.fall,
                    init_fail: s.init_fail,
                });
                scripts.len() - 1
            }
        };
        c.trackers.push(TrackerConfig {
            weight: ts.weight.unwrap_or(s.weight),
            reverse: ts.reverse.unwrap_or(s.reverse),
        });
        track.push(TrackSource::Script(idx));
    }
    let mut addrs = Vec::new();
    for a in vi
        .virtual_ipaddresses
        .iter()
        .chain(&vi.virtual_ipaddresses_excluded)
    {
        addrs.push(addr_spec(rtnl, a, &ifname).map_err(err)?);
    }
    let mut warnings = Vec::new();
    let (routes, rules) = crate::keepalived::netconf::routes_and_rules(
        rtnl,
        "virtual",
        &vi.virtual_routes,
        &vi.virtual_rules,
        Some(&ifname),
        &mut warnings,
    );
    for w in warnings {
        tracing::warn!("({}) {w}", vi.name);
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(InstancePlan {
        cfg: c,
        ifname,
        ifindex: link.index,
        track_primary: !vi.dont_track_primary,
        addrs,
        routes,
        rules,
        track,
        notify: vi.notify.clone(),
    })
}

/// Build the plan for every `vrrp_instance` of `cfg` (looking up interfaces and addresses in
/// the current network namespace).
pub fn plan(cfg: &Config) -> Result<Plan, String> {
    let mut rtnl = Rtnl::open().map_err(|e| format!("rtnetlink: {e}"))?;
    let mut p = Plan {
        garp_interval: cfg.global.vrrp_garp_interval,
        global: Some(cfg.global.clone()),
        ..Plan::default()
    };
    let group_of: HashMap<&str, &rvs_config::model::VrrpSyncGroup> = cfg
        .vrrp_sync_groups
        .iter()
        .flat_map(|g| g.members.iter().map(move |m| (m.as_str(), g)))
        .collect();
    for vi in &cfg.vrrp_instances {
        let g = group_of.get(vi.name.as_str()).copied();
        let ip = instance(cfg, vi, &mut rtnl, &mut p.scripts, g)?;
        p.instances.push(ip);
    }
    for g in &cfg.vrrp_sync_groups {
        let members = g
            .members
            .iter()
            .map(|m| {
                p.instances
                    .iter()
                    .position(|i| &i.cfg.name == m)
                    .ok_or_else(|| format!("vrrp_sync_group {}: no vrrp_instance {m}", g.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        p.groups.push(GroupPlan {
            name: g.name.clone(),
            members,
            tracking_weight: g.sync_group_tracking_weight,
            notify: g.notify.clone(),
        });
    }
    for f in [&cfg.global.notify_fifo, &cfg.global.vrrp_notify_fifo]
        .into_iter()
        .flatten()
    {
        if let Some(path) = f.argv.first() {
            p.fifos.push(path.into());
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load(text: &str) -> Config {
        rvs_config::check_str("/tmp/rvs-vrrp-test.conf", text, &Default::default())
            .into_result("test")
            .expect("config")
    }

    /// The loopback interface exists in every namespace, so the lookups work anywhere.
    #[test]
    fn plan_converts_instance_fields_and_trackers() {
        let cfg = load(
            r#"
global_defs {
    vrrp_garp_master_delay 2
    vrrp_garp_interval 0.01
}
vrrp_script chk {
    script "/bin/true"
    interval 2
    weight -20
    rise 2
    fall 3
}
vrrp_instance VI_1 {
    interface lo
    virtual_router_id 7
    version 3
    priority 120
    advert_int 0.5
    nopreempt
    virtual_ipaddress {
        192.0.2.1/24 dev lo label lo:vip
    }
    virtual_ipaddress_excluded {
        192.0.2.2
    }
    track_interface {
        lo weight 5
    }
    track_script {
        chk
    }
}
"#,
        );
        let p = plan(&cfg).unwrap();
        assert_eq!(p.instances.len(), 1);
        let i = &p.instances[0];
        assert_eq!(i.ifname, "lo");
        assert_eq!(i.cfg.vrid, 7);
        assert_eq!(i.cfg.version, Version::V3);
        assert_eq!(i.cfg.advert_int_cs, 50);
        assert!(!i.cfg.preempt);
        assert_eq!(i.cfg.src_addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(i.cfg.vips, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(i.cfg.garp.master_delay, Duration::from_secs(2));
        assert_eq!(i.cfg.garp.lower_prio_delay, Duration::from_secs(2));
        assert_eq!(p.garp_interval, Duration::from_millis(10));
        // Interfaces first, then scripts; the script's weight applies.
        assert_eq!(
            i.cfg.trackers.iter().map(|t| t.weight).collect::<Vec<_>>(),
            vec![5, -20]
        );
        assert_eq!(
            i.track,
            vec![TrackSource::Interface("lo".into()), TrackSource::Script(0)]
        );
        // VIP with its label, then the excluded one (installed, not advertised).
        assert_eq!(i.addrs.len(), 2);
        assert_eq!(i.addrs[0].label.as_deref(), Some("lo:vip"));
        assert_eq!(i.addrs[0].prefix, 24);
        assert_eq!(i.addrs[1].prefix, 32);
        let s = &p.scripts[0];
        assert_eq!((s.rise, s.fall), (2, 3));
        assert_eq!(s.timeout, s.interval, "timeout defaults to the interval");
        assert_eq!(s.argv, vec!["/bin/true".to_string()]);
    }

    #[test]
    fn plan_v2_pass_unicast_and_sync_group() {
        let cfg = load(
            r#"
vrrp_sync_group G {
    group {
        A
        B
    }
}
vrrp_instance A {
    interface lo
    virtual_router_id 1
    authentication {
        auth_type PASS
        auth_pass 0123456789
    }
    unicast_src_ip 127.0.0.1
    unicast_peer {
        127.0.0.2
    }
    virtual_ipaddress {
        192.0.2.10
    }
}
vrrp_instance B {
    interface lo
    virtual_router_id 2
    virtual_ipaddress {
        192.0.2.11
    }
}
"#,
        );
        let p = plan(&cfg).unwrap();
        let a = &p.instances[0];
        assert_eq!(a.cfg.auth, rvs_vrrp::Auth::Pass(*b"01234567"));
        assert!(a.cfg.is_unicast());
        assert_eq!(a.cfg.advert_int_cs, 100);
        assert_eq!(p.groups.len(), 1);
        assert_eq!(p.groups[0].members, vec![0, 1]);
    }

    #[test]
    fn group_trackers_apply_once_to_every_member() {
        let cfg = load(
            r#"
vrrp_script chk {
    script /bin/true
    weight -60
}
vrrp_sync_group G {
    group {
        A
        B
    }
    track_script {
        chk
    }
    track_interface {
        lo weight 0
    }
}
vrrp_instance A {
    interface lo
    virtual_router_id 1
    virtual_ipaddress {
        192.0.2.1
    }
    track_script {
        chk weight -10
    }
}
vrrp_instance B {
    interface lo
    virtual_router_id 2
    virtual_ipaddress {
        192.0.2.2
    }
}
"#,
        );
        let p = plan(&cfg).unwrap();
        let w = |i: usize| -> Vec<i32> {
            p.instances[i]
                .cfg
                .trackers
                .iter()
                .map(|t| t.weight)
                .collect()
        };
        // A: its own chk (-10), the group's interface; B: the group's interface and chk.
        assert_eq!(w(0), vec![0, -10]);
        assert_eq!(w(1), vec![0, -60]);
        assert_eq!(p.scripts.len(), 1);
    }

    #[test]
    fn ipv6_instances_are_version_3_with_the_ipv6_group() {
        let cfg = load(
            r#"
vrrp_instance V6 {
    interface lo
    virtual_router_id 3
    unicast_src_ip ::1
    virtual_ipaddress {
        2001:db8::1
    }
}
"#,
        );
        let p = plan(&cfg).unwrap();
        let c = &p.instances[0].cfg;
        assert_eq!(c.version, Version::V3);
        assert_eq!(c.mcast_group, "ff02::12".parse::<IpAddr>().unwrap());
        assert_eq!(p.instances[0].addrs[0].prefix, 128);
    }
}
