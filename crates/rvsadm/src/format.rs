//! ipvsadm's listing, save and connection formats (docs/internals/ipvsadm.md), as pure functions from a
//! snapshot to text.

use crate::args::Format;
use crate::names::{inet_ntop, Names};
use rvs_control::*;
use std::net::{IpAddr, SocketAddr};

/// `addrport_to_anyname`: `a.b.c.d:port` / `[v6]:port`, names unless numeric; at most 59
/// characters (ipvsadm formats into a 60-byte buffer).
pub fn addrport(
    addr: &IpAddr,
    port: u16,
    proto: Option<Protocol>,
    numeric: bool,
    names: &dyn Names,
) -> String {
    let (open, close) = match addr {
        IpAddr::V4(_) => ("", ""),
        IpAddr::V6(_) => ("[", "]"),
    };
    let s = if numeric {
        format!("{open}{}{close}:{port}", inet_ntop(addr))
    } else {
        let host = names.addr_to_host(*addr).unwrap_or_else(|| inet_ntop(addr));
        let svc = proto
            .and_then(|p| names.port_to_service(port, p))
            .unwrap_or_else(|| port.to_string());
        format!("{open}{host}{close}:{svc}")
    };
    truncate(&s, 59)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// `print_largenum`.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        return format!("{i:>w$}");
    }
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

/// Address as the four host-order 32-bit words of `union nf_inet_addr` (IPv4 in word 0).
fn words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(*a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            let mut w = [0u32; 4];
            for (i, x) in w.iter_mut().enumerate() {
                *x = u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
            }
            w
        }
    }
}

/// Compares address words like libipvs: wrapping 32-bit subtraction read as signed `int`
/// (quirk kept: addresses ≥ 2^31 apart compare "backwards").
fn cmp_addr(af6: bool, a: &[u32; 4], b: &[u32; 4]) -> i32 {
    if af6 {
        for i in 0..4 {
            let r = a[i].wrapping_sub(b[i]) as i32;
            if r != 0 {
                return r;
            }
        }
        0
    } else {
        a[0].wrapping_sub(b[0]) as i32
    }
}

/// `ipvs_cmp_services`.
fn cmp_services(a: &ServiceEntry, b: &ServiceEntry) -> i32 {
    let k = |s: &ServiceEntry| -> (u32, u16, u16, [u32; 4], u16) {
        match &s.spec.key {
            ServiceKey::Fwmark { mark, family } => (*mark, family.af(), 6, [0; 4], 0),
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => (
                0,
                Family::of(addr).af(),
                u16::from(protocol.number()),
                words(addr),
                *port,
            ),
        }
    };
    let (fa, afa, pa, wa, porta) = k(a);
    let (fb, afb, pb, wb, portb) = k(b);
    let r = fa.wrapping_sub(fb) as i32;
    if r != 0 {
        return r;
    }
    let r = i32::from(afa) - i32::from(afb);
    if r != 0 {
        return r;
    }
    let r = i32::from(pa) - i32::from(pb);
    if r != 0 {
        return r;
    }
    let r = cmp_addr(afa == 10, &wa, &wb);
    if r != 0 {
        return r;
    }
    i32::from(porta) - i32::from(portb)
}

/// `ipvs_cmp_dests` (the first entry's family decides how many words are compared).
fn cmp_dests(a: &DestEntry, b: &DestEntry) -> i32 {
    let r = cmp_addr(
        a.spec.addr.is_ipv6(),
        &words(&a.spec.addr),
        &words(&b.spec.addr),
    );
    if r != 0 {
        return r;
    }
    i32::from(a.spec.port) - i32::from(b.spec.port)
}

/// glibc's `qsort` (its merge sort, `msort_with_tmp`): with a comparator that is not a total
/// order (the wrapping subtraction above) the result depends on the algorithm, so this
/// reproduces glibc's split and merge exactly rather than using `sort_by`.
pub fn glibc_msort<T: Clone>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    {
        let (b1, b2) = v.split_at_mut(n1);
        glibc_msort(b1, cmp);
        glibc_msort(b2, cmp);
    }
    let mut tmp: Vec<T> = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            tmp.push(v[i].clone());
            i += 1;
        } else {
            tmp.push(v[j].clone());
            j += 1;
        }
    }
    tmp.extend_from_slice(&v[i..n1]);
    let done = tmp.len();
    v[..done].clone_from_slice(&tmp);
}

/// Services in listing order (sorted like ipvsadm unless `--nosort`), each with its dests
/// in listing order.
pub fn ordered(services: &[ServiceEntry], fmt: &Format) -> Vec<ServiceEntry> {
    let mut v = services.to_vec();
    if !fmt.nosort {
        glibc_msort(&mut v, &cmp_services);
        for s in &mut v {
            glibc_msort(&mut s.dests, &cmp_dests);
        }
    }
    v
}

fn fwd_name(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Masq => "Masq",
        ForwardMethod::Local => "Local",
        ForwardMethod::Tunnel => "Tunnel",
        ForwardMethod::Route => "Route",
        ForwardMethod::FullNat => "FullNat",
        // ipvsadm has no name for bypass and glibc prints a NULL string as "(null)".
        ForwardMethod::Bypass => "(null)",
    }
}

fn fwd_switch(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Masq => "-m",
        ForwardMethod::Tunnel => "-i",
        ForwardMethod::Local | ForwardMethod::Route => "-g",
        ForwardMethod::FullNat => "--fullnat",
        ForwardMethod::Bypass => "(null)",
    }
}

fn tun_flag(c: TunnelCsum) -> &'static str {
    match c {
        TunnelCsum::NoCsum => "-c",
        TunnelCsum::Csum => "+c",
        TunnelCsum::RemCsum => "r+c",
    }
}

fn tun_flag_opt(c: TunnelCsum) -> &'static str {
    match c {
        TunnelCsum::NoCsum => "--tun-nocsum",
        TunnelCsum::Csum => "--tun-csum",
        TunnelCsum::RemCsum => "--tun-remcsum",
    }
}

fn tun_info(d: &DestSpec) -> Option<String> {
    if d.method != ForwardMethod::Tunnel {
        return None;
    }
    Some(match d.tun_type {
        TunnelType::Ipip => "ipip".to_string(),
        TunnelType::Gue => format!("gue:{}:{}", d.tun_port, tun_flag(d.tun_csum)),
        TunnelType::Gre => format!("gre:{}", tun_flag(d.tun_csum)),
    })
}

fn sched_flags(spec: &ServiceSpec) -> String {
    let f = &spec.flags;
    let mut v: Vec<&str> = Vec::new();
    match spec.scheduler.as_str() {
        "sh" => {
            if f.sched1 {
                v.push("sh-fallback");
            }
            if f.sched2 {
                v.push("sh-port");
            }
        }
        "mh" => {
            if f.sched1 {
                v.push("mh-fallback");
            }
            if f.sched2 {
                v.push("mh-port");
            }
        }
        _ => {
            if f.sched1 {
                v.push("flag-1");
            }
            if f.sched2 {
                v.push("flag-2");
            }
            if f.sched3 {
                v.push("flag-3");
            }
        }
    }
    v.join(",")
}

fn proto_opt(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
        Protocol::Sctp => "--sctp-service",
    }
}

/// The protocol used for port-name lookups of a service and its dests (fwmark = TCP).
fn lookup_proto(key: &ServiceKey) -> Protocol {
    match key {
        ServiceKey::Addr { protocol, .. } => *protocol,
        ServiceKey::Fwmark { .. } => Protocol::Tcp,
    }
}

fn service_name(spec: &ServiceSpec, fmt: &Format, names: &dyn Names) -> String {
    match &spec.key {
        ServiceKey::Fwmark { mark, family } => match (fmt.rule, family) {
            (true, Family::Inet6) => format!("-f {mark} -6"),
            (true, Family::Inet) => format!("-f {mark}"),
            (false, Family::Inet6) => format!("FWM  {mark} IPv6"),
            (false, Family::Inet) => format!("FWM  {mark}"),
        },
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let vname = addrport(addr, *port, Some(*protocol), fmt.numeric, names);
            if fmt.rule {
                format!("{} {vname}", proto_opt(*protocol))
            } else {
                let s = format!("{:<4} {vname}", protocol.name());
                if addr.is_ipv6() {
                    s
                } else {
                    truncate(&s, 33)
                }
            }
        }
    }
}

fn mask_text(spec: &ServiceSpec) -> Option<String> {
    match spec.key.family() {
        Family::Inet if spec.netmask != 0xFFFF_FFFF => {
            Some(std::net::Ipv4Addr::from(spec.netmask).to_string())
        }
        Family::Inet6 if spec.netmask != 128 => Some(spec.netmask.to_string()),
        _ => None,
    }
}

/// `print_title`.
pub fn title(fmt: &Format) -> String {
    let p = "Prot LocalAddress:Port";
    if fmt.stats {
        format!(
            "{p:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if fmt.rate {
        format!(
            "{p:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if fmt.thresholds {
        format!(
            "{p:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if fmt.persistent_conn {
        format!(
            "{p:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if fmt.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_string()
    } else if !fmt.rule {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string()
    } else {
        String::new()
    }
}

/// `print_service_entry`: one service and its dests (already in the order to print).
pub fn service_entry(se: &ServiceEntry, fmt: &Format, names: &dyn Names) -> String {
    let spec = &se.spec;
    let svc_name = service_name(spec, fmt, names);
    let mut out = String::new();
    let ex = fmt.exact;
    if fmt.rule {
        out.push_str(&format!("-A {svc_name} -s {}", spec.scheduler));
        if spec.flags.persistent {
            out.push_str(&format!(" -p {}", spec.timeout));
            if let Some(m) = mask_text(spec) {
                out.push_str(&format!(" -M {m}"));
            }
        }
        if let Some(pe) = &spec.pe_name {
            out.push_str(&format!(" --pe {pe}"));
        }
        if spec.flags.one_packet {
            out.push_str(" -o");
        }
        if spec.flags.any_sched() {
            out.push_str(&format!(" -b {}", sched_flags(spec)));
        }
        if let Some(pp) = spec.proxy_protocol.name() {
            out.push_str(&format!(" --proxy-protocol {pp}"));
        }
    } else if fmt.stats {
        let s = &se.stats;
        out.push_str(&format!("{svc_name:<33}"));
        for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
            out.push_str(&largenum(v, ex));
        }
    } else if fmt.rate {
        let s = &se.stats;
        out.push_str(&format!("{svc_name:<33}"));
        for v in [s.cps, s.inpps, s.outpps, s.inbps, s.outbps] {
            out.push_str(&largenum(v, ex));
        }
    } else {
        out.push_str(&format!("{svc_name} {}", spec.scheduler));
        if spec.flags.any_sched() {
            out.push_str(&format!(" ({})", sched_flags(spec)));
        }
        if spec.flags.persistent {
            out.push_str(&format!(" persistent {}", spec.timeout));
            if let Some(m) = mask_text(spec) {
                out.push_str(&format!(" mask {m}"));
            }
            if let Some(pe) = &spec.pe_name {
                out.push_str(&format!(" pe {pe}"));
            }
        }
        if spec.flags.one_packet {
            out.push_str(" ops");
        }
        if let Some(pp) = spec.proxy_protocol.name() {
            out.push_str(&format!(" proxy-protocol {pp}"));
        }
    }
    out.push('\n');

    let proto = lookup_proto(&spec.key);
    for e in &se.dests {
        let d = &e.spec;
        let mut dname = addrport(&d.addr, d.port, Some(proto), fmt.numeric, names);
        if !fmt.rule && d.addr.is_ipv4() {
            dname = truncate(&dname, 28);
        }
        let fwd = fwd_name(d.method);
        if fmt.rule {
            let sw = fwd_switch(d.method);
            let w = d.weight;
            if d.method == ForwardMethod::Tunnel {
                match d.tun_type {
                    TunnelType::Gre => out.push_str(&format!(
                        "-a {svc_name} -r {dname} {sw} -w {w} --tun-type gre {}\n",
                        tun_flag_opt(d.tun_csum)
                    )),
                    TunnelType::Gue => out.push_str(&format!(
                        "-a {svc_name} -r {dname} {sw} -w {w} --tun-type gue --tun-port {} {}\n",
                        d.tun_port,
                        tun_flag_opt(d.tun_csum)
                    )),
                    TunnelType::Ipip => out.push_str(&format!(
                        "-a {svc_name} -r {dname} {sw} -w {w} --tun-type ipip\n"
                    )),
                }
            } else {
                out.push_str(&format!("-a {svc_name} -r {dname} {sw} -w {w}\n"));
            }
        } else if fmt.stats {
            let s = &e.stats;
            out.push_str(&format!("  -> {dname:<28}"));
            for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                out.push_str(&largenum(v, ex));
            }
            out.push('\n');
        } else if fmt.rate {
            let s = &e.stats;
            out.push_str(&format!(
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                s.cps, s.inpps, s.outpps
            ));
            out.push_str(&largenum(s.inbps, ex));
            out.push_str(&largenum(s.outbps, ex));
            out.push('\n');
        } else if fmt.thresholds {
            out.push_str(&format!(
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}\n",
                d.u_threshold, d.l_threshold, e.active_conns, e.inactive_conns
            ));
        } else if fmt.persistent_conn {
            out.push_str(&format!(
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}\n",
                d.weight, e.persist_conns, e.active_conns, e.inactive_conns
            ));
        } else if fmt.tun_info {
            let ti = tun_info(d).unwrap_or_else(|| "n/a".to_string());
            out.push_str(&format!(
                "  -> {dname:<28} {fwd:<7} {ti:<13} {:<6} {:<10} {:<10}\n",
                d.weight, e.active_conns, e.inactive_conns
            ));
        } else {
            out.push_str(&format!(
                "  -> {dname:<28} {fwd:<7} {:<6} {:<10} {:<10}\n",
                d.weight, e.active_conns, e.inactive_conns
            ));
        }
    }
    out
}

/// `list_all` (`-L`) and, with `fmt.rule`, `-S`.
pub fn list_all(info: &Info, services: &[ServiceEntry], fmt: &Format, names: &dyn Names) -> String {
    let mut out = String::new();
    if !fmt.rule {
        out.push_str(&format!(
            "IP Virtual Server version {}.{}.{} (size={})\n",
            (info.version >> 16) & 0xff,
            (info.version >> 8) & 0xff,
            info.version & 0xff,
            info.conn_tab_size
        ));
    }
    out.push_str(&title(fmt));
    for s in ordered(services, fmt) {
        out.push_str(&service_entry(&s, fmt, names));
    }
    out
}

/// `list_service` (`-L -t ...`): title and one service, no version header.
pub fn list_service(entry: &ServiceEntry, fmt: &Format, names: &dyn Names) -> String {
    let mut e = entry.clone();
    if !fmt.nosort {
        glibc_msort(&mut e.dests, &cmp_dests);
    }
    let mut out = title(fmt);
    out.push_str(&service_entry(&e, fmt, names));
    out
}

/// `-S`: rules in `-R` format.
pub fn save(services: &[ServiceEntry], fmt: &Format, names: &dyn Names) -> String {
    let f = Format { rule: true, ..*fmt };
    let mut out = String::new();
    for s in ordered(services, &f) {
        out.push_str(&service_entry(&s, &f, names));
    }
    out
}

fn conn_proto(p: ConnProtocol) -> Option<Protocol> {
    match p {
        ConnProtocol::Proto(p) => Some(p),
        _ => None,
    }
}

fn sockname(sa: &SocketAddr, proto: Option<Protocol>, fmt: &Format, names: &dyn Names) -> String {
    addrport(&sa.ip(), sa.port(), proto, fmt.numeric, names)
}

/// `list_conn` (`-L -c`, with `--persistent-conn` the PE columns).
pub fn list_conns(conns: &[ConnEntry], fmt: &Format, names: &dyn Names) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if fmt.persistent_conn {
        out.push_str(&format!(
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} {}\n",
            "state", "source", "virtual", "destination", "pe name", "pe_data"
        ));
    } else {
        out.push_str(&format!(
            "pro expire {:<11} {:<18} {:<18} {}\n",
            "state", "source", "virtual", "destination"
        ));
    }
    for c in conns {
        let proto = conn_proto(c.protocol);
        let cname = sockname(&c.client, proto, fmt, names);
        let vname = sockname(&c.virtual_addr, proto, fmt, names);
        let dname = sockname(&c.dest, proto, fmt, names);
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        let pname = c.protocol.name();
        match (&c.pe, fmt.persistent_conn) {
            (Some((pe_name, pe_data)), true) => out.push_str(&format!(
                "{pname:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname:<16} {pe_name:<18} {pe_data}\n",
                c.state
            )),
            _ => out.push_str(&format!(
                "{pname:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname}\n",
                c.state
            )),
        }
    }
    out
}

/// `list_timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `list_daemon`: master first, then backup.
pub fn daemons(list: &[DaemonConfig]) -> String {
    let mut out = String::new();
    for role in [SyncRole::Master, SyncRole::Backup] {
        for d in list.iter().filter(|d| d.role == role) {
            let r = match role {
                SyncRole::Master => "master",
                SyncRole::Backup => "backup",
            };
            out.push_str(&format!(
                "{r} sync daemon (mcast={}, syncid={}",
                d.mcast_ifn, d.syncid
            ));
            if d.sync_maxlen != 0 {
                out.push_str(&format!(", maxlen={}", d.sync_maxlen));
            }
            if let Some(g) = &d.mcast_group {
                out.push_str(&format!(", group={}", inet_ntop(g)));
            }
            if d.mcast_port != 0 {
                out.push_str(&format!(", port={}", d.mcast_port));
            }
            if d.mcast_ttl != 0 {
                out.push_str(&format!(", ttl={}", d.mcast_ttl));
            }
            out.push_str(")\n");
        }
    }
    out
}

/// `--get-laddr`, in the style of DPVS's ipvsadm (rvs addition).
pub fn laddrs(list: &[ServiceLocalAddrs], fmt: &Format, names: &dyn Names) -> String {
    let mut out = format!(
        "{:<20} {:<8} {:<20} {:<10} {:<10}\n",
        "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
    );
    for s in list {
        let name = match &s.service {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => format!(
                "{} {}",
                protocol.name(),
                addrport(addr, *port, Some(*protocol), fmt.numeric, names)
            ),
            ServiceKey::Fwmark { mark, .. } => format!("FWM {mark}"),
        };
        out.push_str(&format!("{name:<20} {:<8}\n", s.laddrs.len()));
        for l in &s.laddrs {
            out.push_str(&format!(
                "{:<20} {:<8} {:<20} {:<10} {:<10}\n",
                "",
                "",
                inet_ntop(&l.addr),
                l.port_conflicts,
                l.conns
            ));
        }
    }
    out
}

/// What `-L --vrrp` prints when rvsd runs no VRRP instance (rvs addition).
pub const NO_VRRP: &str = "no VRRP instances (rvsd runs without vrrp_instance configuration)\n";

/// `-L --vrrp` (rvs addition): a header and one fixed-width line per VRRP instance, in
/// configuration order; an instance with rejected adverts gets a second line
/// `  -> rejected REASON=COUNT ...` (ipvsadm's `  -> ` marks lines that belong to the line
/// above). Counters are exact (no K/M rounding); a value that does not fit widens its column
/// instead of being cut. `-` stands for "none" / "unknown".
pub fn vrrp(list: &[VrrpInstanceEntry]) -> String {
    if list.is_empty() {
        return NO_VRRP.to_string();
    }
    let line = |c: [&str; 14]| {
        format!(
            "{:<16} {:>4} {:<10} {:>3} {:<6} {:>14} {:>7} {:>11} {:>10} {:>10} {:>10} {:>9} {:<12} {}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13]
        )
    };
    let mut out = line([
        "Name",
        "VRID",
        "Interface",
        "Ver",
        "State",
        "Prio(eff/base)",
        "Adv-int",
        "Transitions",
        "Sent",
        "Rcvd",
        "Rejected",
        "In-state",
        "Sync-group",
        "VIPs",
    ]);
    for e in list {
        let vips = if e.vips.is_empty() {
            "-".to_string()
        } else {
            e.vips.iter().map(inet_ntop).collect::<Vec<_>>().join(",")
        };
        let in_state = e
            .in_state_ms
            .map_or_else(|| "-".to_string(), |ms| format!("{}s", ms / 1000));
        let row = line([
            &e.name,
            &e.vrid.to_string(),
            &e.interface,
            &e.version.to_string(),
            e.state.name(),
            &format!("{}/{}", e.effective_priority, e.base_priority),
            &format!("{}.{:02}s", e.advert_int_cs / 100, e.advert_int_cs % 100),
            &e.transitions.to_string(),
            &e.adverts_sent.to_string(),
            &e.adverts_received.to_string(),
            &e.adverts_rejected.to_string(),
            &in_state,
            e.sync_group.as_deref().unwrap_or("-"),
            &vips,
        ]);
        out.push_str(&row);
        if !e.rejects.is_empty() {
            out.push_str("  -> rejected");
            for r in &e.rejects {
                out.push_str(&format!(" {}={}", r.reason, r.count));
            }
            out.push('\n');
        }
    }
    out
}

/// `--sysctl` (rvs addition): `sysctl -a` lines (`net.ipv4.vs.NAME = VALUE`), each sysctl that
/// rvs does not act on, or that is read-only, followed by a `#` note saying why.
pub fn sysctls(list: &[rvs_control::model::SysctlEntry]) -> String {
    let mut out = String::new();
    for e in list {
        out.push_str(&format!("net.ipv4.vs.{} = {}", e.name, e.value));
        match (&e.note, e.writable) {
            (Some(n), false) => out.push_str(&format!("\t# read-only: {n}")),
            (Some(n), true) => out.push_str(&format!("\t# no effect in rvs yet: {n}")),
            (None, _) => {}
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largenum_suffixes() {
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(999_999_999, false), "  999999K");
        assert_eq!(largenum(1_000_000_000, false), "    1000M");
        assert_eq!(largenum(123_456_789_012, false), "     123G");
        assert_eq!(largenum(100_000_000_000_000, false), "     100T");
        assert_eq!(largenum(1234, true), "     1234");
        assert_eq!(largenum(123_456_789_012, true), " 123456789012");
    }

    #[test]
    fn msort_matches_glibc_on_nontransitive_order() {
        // 207.175.44.110 vs 10.0.0.1: wrapping difference is negative, so 207.x sorts first.
        let a = u32::from(std::net::Ipv4Addr::new(207, 175, 44, 110));
        let b = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 1));
        let mut v = vec![b, a];
        glibc_msort(&mut v, &|x: &u32, y: &u32| x.wrapping_sub(*y) as i32);
        assert_eq!(v, vec![a, b]);
        let mut w = vec![5u32, 3, 9, 1, 1, 7];
        glibc_msort(&mut w, &|x: &u32, y: &u32| *x as i32 - *y as i32);
        assert_eq!(w, vec![1, 1, 3, 5, 7, 9]);
    }
}
