//! keepalived's address, route and rule keywords over rtnetlink: `static_ipaddress`,
//! `static_routes` and `static_rules` (installed when rvsd starts, removed when it stops) and
//! each VRRP instance's `virtual_routes` and `virtual_rules` (installed while the instance is
//! MASTER, by the VRRP driver, next to its virtual addresses).
//!
//! What is supported, as keepalived writes it (`ip route` / `ip rule` syntax): route types
//! `unicast` (default), `blackhole`, `unreachable`, `prohibit`, `throw`; `src`, one `via`,
//! `dev`, `table` (a number or `main`, `local`, `default`, or a name from
//! `/etc/iproute2/rt_tables`), `scope`, `metric`; rules with `from`, `to`, `table`/`lookup`
//! and `preference`. A line using anything else (multipath `nexthop`s, route options such as
//! `mtu`, rule options such as `fwmark`) is **not installed** and named in a warning at start:
//! installing it without the option would put a different route in the kernel than the one
//! written. Routes and rules carry protocol `keepalived` (18), as keepalived's do, so `ip route
//! show proto keepalived` lists them.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rvs_config::model as kc;

use crate::vrrp::netlink::{parse_scope, AddrSpec, Rtnl};

/// `RTPROT_KEEPALIVED`: the routing protocol number keepalived marks its routes and rules with.
pub const PROTO_KEEPALIVED: u8 = 18;

/// A route ready to be sent, with how it is shown in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `ip route` style text.
    pub text: String,
    msg: RouteMessage,
}

/// A rule ready to be sent, with how it is shown in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// `ip rule` style text.
    pub text: String,
    msg: RuleMessage,
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// A table name or number (`ip route … table X`).
pub fn table_id(t: &str) -> Result<u32, String> {
    match t {
        "main" => return Ok(254),
        "local" => return Ok(255),
        "default" => return Ok(253),
        _ => {}
    }
    if let Ok(n) = t.parse::<u32>() {
        return Ok(n);
    }
    // iproute2's names, as `ip` reads them.
    let names = std::fs::read_to_string("/etc/iproute2/rt_tables").unwrap_or_default();
    names
        .lines()
        .filter_map(|l| {
            let l = l.split('#').next()?.trim();
            let mut w = l.split_whitespace();
            Some((w.next()?.parse::<u32>().ok()?, w.next()?.to_string()))
        })
        .find(|(_, n)| n == t)
        .map(|(id, _)| id)
        .ok_or_else(|| format!("unknown routing table {t:?}"))
}

fn scope_of(s: &str) -> Result<RouteScope, String> {
    Ok(match s {
        "global" | "universe" => RouteScope::Universe,
        "site" => RouteScope::Site,
        "link" => RouteScope::Link,
        "host" => RouteScope::Host,
        "nowhere" => RouteScope::NoWhere,
        n => RouteScope::Other(n.parse().map_err(|_| format!("unknown scope {n:?}"))?),
    })
}

/// Build a route from its configuration line; `default_dev` is the instance's interface for
/// `virtual_routes` (keepalived's default when neither `dev` nor `via` is given). Interfaces
/// are looked up now: a route to a missing interface is an error for this line.
pub fn route_spec(
    rtnl: &mut Rtnl,
    r: &kc::Route,
    default_dev: Option<&str>,
) -> Result<RouteSpec, String> {
    if let Some((o, _)) = r.options.first() {
        return Err(format!("the route option {o:?} is not supported by rvs"));
    }
    if r.via.len() > 1 {
        return Err("multipath routes (several nexthops) are not supported by rvs".into());
    }
    let kind = match r.route_type.as_str() {
        "unicast" => RouteType::Unicast,
        "blackhole" => RouteType::BlackHole,
        "unreachable" => RouteType::Unreachable,
        "prohibit" => RouteType::Prohibit,
        "throw" => RouteType::Throw,
        t => return Err(format!("the route type {t:?} is not supported by rvs")),
    };
    let dest = r.dest;
    let mut m = RouteMessage::default();
    m.header.address_family = family(dest.addr);
    m.header.destination_prefix_length = dest.len;
    m.header.protocol = RouteProtocol::Other(PROTO_KEEPALIVED);
    m.header.kind = kind;
    let mut text = match kind {
        RouteType::Unicast => String::new(),
        _ => format!("{} ", r.route_type),
    };
    text.push_str(&format!("{}/{}", dest.addr, dest.len));
    let table = match &r.table {
        Some(t) => table_id(t)?,
        None => 254,
    };
    m.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    m.attributes.push(RouteAttribute::Table(table));
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dest.addr)));
    if let Some(gw) = r.via.first() {
        if family(*gw) != family(dest.addr) {
            return Err(format!("gateway {gw} is not of the destination's family"));
        }
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(*gw)));
        text.push_str(&format!(" via {gw}"));
    }
    let dev = r
        .dev
        .as_deref()
        .or(if r.via.is_empty() && kind == RouteType::Unicast {
            default_dev
        } else {
            None
        });
    if let Some(d) = dev {
        let link = rtnl.link(d).map_err(|e| format!("interface {d}: {e}"))?;
        m.attributes.push(RouteAttribute::Oif(link.index));
        text.push_str(&format!(" dev {d}"));
    }
    if kind == RouteType::Unicast && r.via.is_empty() && dev.is_none() {
        return Err("a unicast route needs `via` or `dev`".into());
    }
    if let Some(s) = r.src {
        m.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(s)));
        text.push_str(&format!(" src {s}"));
    }
    // As `ip route`: a unicast route without a gateway is on-link (scope link) unless told.
    m.header.scope = match &r.scope {
        Some(s) => {
            text.push_str(&format!(" scope {s}"));
            scope_of(s)?
        }
        None if kind == RouteType::Unicast && r.via.is_empty() => RouteScope::Link,
        None => RouteScope::Universe,
    };
    if let Some(p) = r.metric {
        m.attributes.push(RouteAttribute::Priority(p));
        text.push_str(&format!(" metric {p}"));
    }
    if table != 254 {
        text.push_str(&format!(" table {table}"));
    }
    Ok(RouteSpec { text, msg: m })
}

/// Build a rule from its configuration line.
pub fn rule_spec(r: &kc::Rule) -> Result<RuleSpec, String> {
    if let Some((o, _)) = r.options.first() {
        return Err(format!("the rule option {o:?} is not supported by rvs"));
    }
    let fam_of = |p: &Option<kc::Prefix>| p.map(|p| family(p.addr));
    let fam = match (fam_of(&r.from), fam_of(&r.to)) {
        (Some(a), Some(b)) if a != b => return Err("`from` and `to` of different families".into()),
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => AddressFamily::Inet,
    };
    let Some(table) = r.table.as_deref() else {
        return Err("a rule without `table` is not supported by rvs".into());
    };
    let table = table_id(table)?;
    let mut m = RuleMessage::default();
    m.header.family = fam;
    m.header.action = RuleAction::ToTable;
    m.header.table = u8::try_from(table).unwrap_or(0);
    m.attributes.push(RuleAttribute::Table(table));
    m.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Other(
            PROTO_KEEPALIVED,
        )));
    let mut text = String::new();
    if r.preference != 0 {
        m.attributes.push(RuleAttribute::Priority(r.preference));
        text.push_str(&format!("pref {} ", r.preference));
    }
    text.push_str("from ");
    match r.from.filter(|p| p.len > 0) {
        Some(p) => {
            m.header.src_len = p.len;
            m.attributes.push(RuleAttribute::Source(p.addr));
            text.push_str(&format!("{}/{}", p.addr, p.len));
        }
        None => text.push_str("all"),
    }
    if let Some(p) = r.to.filter(|p| p.len > 0) {
        m.header.dst_len = p.len;
        m.attributes.push(RuleAttribute::Destination(p.addr));
        text.push_str(&format!(" to {}/{}", p.addr, p.len));
    }
    text.push_str(&format!(" lookup {table}"));
    Ok(RuleSpec { text, msg: m })
}

/// Add a route; one that exists already is success (a restarted daemon finds what a killed
/// one left).
pub fn add_route(rtnl: &mut Rtnl, r: &RouteSpec) -> std::io::Result<()> {
    match rtnl.request(
        RouteNetlinkMessage::NewRoute(r.msg.clone()),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        x => x.map(|_| ()),
    }
}

/// Remove a route: `Ok(false)` if it was not there.
pub fn del_route(rtnl: &mut Rtnl, r: &RouteSpec) -> std::io::Result<bool> {
    match rtnl.request(RouteNetlinkMessage::DelRoute(r.msg.clone()), NLM_F_ACK) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        x => x.map(|_| true),
    }
}

/// Add a rule; an identical one already there is success.
pub fn add_rule(rtnl: &mut Rtnl, r: &RuleSpec) -> std::io::Result<()> {
    match rtnl.request(
        RouteNetlinkMessage::NewRule(r.msg.clone()),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        x => x.map(|_| ()),
    }
}

/// Remove a rule: `Ok(false)` if it was not there.
pub fn del_rule(rtnl: &mut Rtnl, r: &RuleSpec) -> std::io::Result<bool> {
    match rtnl.request(RouteNetlinkMessage::DelRule(r.msg.clone()), NLM_F_ACK) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => Ok(false),
        x => x.map(|_| true),
    }
}

/// Routes and rules of a list of configuration lines; each line that cannot be installed is
/// left out with a warning naming its position and why (`what`: the keyword, for the text).
pub fn routes_and_rules(
    rtnl: &mut Rtnl,
    what: &str,
    routes: &[kc::Route],
    rules: &[kc::Rule],
    default_dev: Option<&str>,
    warnings: &mut Vec<String>,
) -> (Vec<RouteSpec>, Vec<RuleSpec>) {
    let mut out_routes = Vec::new();
    for r in routes {
        match route_spec(rtnl, r, default_dev) {
            Ok(s) => out_routes.push(s),
            Err(e) => warnings.push(format!(
                "{}: {what}_routes: {e}; this route is not installed",
                r.pos
            )),
        }
    }
    let mut out_rules = Vec::new();
    for r in rules {
        match rule_spec(r) {
            Ok(s) => out_rules.push(s),
            Err(e) => warnings.push(format!(
                "{}: {what}_rules: {e}; this rule is not installed",
                r.pos
            )),
        }
    }
    (out_routes, out_rules)
}

/// `static_ipaddress`, `static_routes` and `static_rules`: what rvsd installed at start, and
/// removes when it stops (keepalived removes its static addresses and routes at exit too).
#[derive(Debug, Default)]
pub struct StaticNet {
    addrs: Vec<AddrSpec>,
    routes: Vec<RouteSpec>,
    rules: Vec<RuleSpec>,
}

impl StaticNet {
    /// Resolve the static keywords of `cfg` (interfaces looked up now) and install them:
    /// addresses, then routes (which may use them as `src`), then rules. Lines that cannot be
    /// installed are logged and left out; the rest goes on.
    pub fn install(cfg: &kc::Config) -> StaticNet {
        if cfg.static_ipaddresses.is_empty()
            && cfg.static_routes.is_empty()
            && cfg.static_rules.is_empty()
        {
            return StaticNet::default();
        }
        let mut rtnl = match Rtnl::open() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("static addresses and routes: rtnetlink: {e}; none installed");
                return StaticNet::default();
            }
        };
        let mut warnings = Vec::new();
        let mut addrs = Vec::new();
        for a in &cfg.static_ipaddresses {
            match static_addr(&mut rtnl, a) {
                Ok(s) => addrs.push(s),
                Err(e) => warnings.push(format!(
                    "{}: static_ipaddress {}/{}: {e}; not installed",
                    a.pos, a.addr, a.prefix
                )),
            }
        }
        let (routes, rules) = routes_and_rules(
            &mut rtnl,
            "static",
            &cfg.static_routes,
            &cfg.static_rules,
            None,
            &mut warnings,
        );
        for w in warnings {
            tracing::warn!("{w}");
        }
        let s = StaticNet {
            addrs,
            routes,
            rules,
        };
        for a in &s.addrs {
            match rtnl.add_address(a) {
                Ok(()) => tracing::info!("static address {}/{} added", a.addr, a.prefix),
                Err(e) => tracing::error!("static address {}/{}: {e}", a.addr, a.prefix),
            }
        }
        for r in &s.routes {
            match add_route(&mut rtnl, r) {
                Ok(()) => tracing::info!("static route {} added", r.text),
                Err(e) => tracing::error!("static route {}: {e}", r.text),
            }
        }
        for r in &s.rules {
            match add_rule(&mut rtnl, r) {
                Ok(()) => tracing::info!("static rule {} added", r.text),
                Err(e) => tracing::error!("static rule {}: {e}", r.text),
            }
        }
        s
    }

    /// Remove what [`StaticNet::install`] installed, in the reverse order.
    pub fn remove(self) {
        if self.addrs.is_empty() && self.routes.is_empty() && self.rules.is_empty() {
            return;
        }
        let mut rtnl = match Rtnl::open() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("static addresses and routes: rtnetlink: {e}; none removed");
                return;
            }
        };
        for r in &self.rules {
            if let Err(e) = del_rule(&mut rtnl, r) {
                tracing::error!("static rule {}: {e}", r.text);
            }
        }
        for r in &self.routes {
            if let Err(e) = del_route(&mut rtnl, r) {
                tracing::error!("static route {}: {e}", r.text);
            }
        }
        for a in &self.addrs {
            if let Err(e) = rtnl.del_address(a) {
                tracing::error!("static address {}/{}: {e}", a.addr, a.prefix);
            }
        }
        tracing::info!(
            "static configuration removed: {} address(es), {} route(s), {} rule(s)",
            self.addrs.len(),
            self.routes.len(),
            self.rules.len()
        );
    }
}

/// A `static_ipaddress` line as an address to add (keepalived requires `dev` for them).
fn static_addr(rtnl: &mut Rtnl, a: &kc::IpAddress) -> Result<AddrSpec, String> {
    let Some(dev) = a.dev.as_deref() else {
        return Err("no `dev`".into());
    };
    if let Some(p) = a.peer {
        return Err(format!("`peer {p}` is not supported by rvs"));
    }
    let index = rtnl
        .link(dev)
        .map_err(|e| format!("interface {dev}: {e}"))?
        .index;
    let broadcast = match a.brd.as_deref() {
        None => None,
        Some(b) => Some(
            b.parse()
                .map_err(|_| format!("`brd {b}` is not supported by rvs (an IPv4 address is)"))?,
        ),
    };
    Ok(AddrSpec {
        index,
        addr: a.addr,
        prefix: a.prefix,
        label: a.label.clone(),
        broadcast,
        scope: parse_scope(a.scope.as_deref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(line: &str) -> kc::Rule {
        let text = format!("static_rules {{\n  {line}\n}}\n");
        let opts = rvs_config::CheckOptions::default();
        let r = rvs_config::check_str("t.conf", &text, &opts);
        r.config.static_rules.into_iter().next().expect("one rule")
    }

    #[test]
    fn rules_are_built_as_ip_rule_would() {
        let r = rule_spec(&rule("from 10.9.0.0/24 table 100 preference 1000")).unwrap();
        assert_eq!(r.text, "pref 1000 from 10.9.0.0/24 lookup 100");
        assert_eq!(r.msg.header.src_len, 24);
        assert!(r.msg.attributes.contains(&RuleAttribute::Table(100)));
        let r = rule_spec(&rule("to 10.8.0.0/16 lookup main")).unwrap();
        assert!(
            r.text.ends_with("from all to 10.8.0.0/16 lookup 254"),
            "{}",
            r.text
        );
        let e = rule_spec(&rule("from 10.9.0.0/24 fwmark 3 table 100")).unwrap_err();
        assert!(e.contains("fwmark"), "{e}");
    }

    #[test]
    fn table_names() {
        assert_eq!(table_id("main"), Ok(254));
        assert_eq!(table_id("100"), Ok(100));
        assert!(table_id("no-such-table-name").is_err());
    }
}
