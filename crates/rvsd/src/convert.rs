//! Mapping between the control protocol's types (what rvsadm sends) and rvs-core's model.

use rvs_control::model as m;
use rvs_control::proto::{ErrorKind, RemoteError};
use rvs_core::dest::{TunCsum, TunType, TunnelConfig};
use rvs_core::service::PeKind;
use rvs_core::{DestConfig, Error, FwdMethod, SchedKind, ServiceConfig, ServiceFlags};

/// A core error as the kernel's errno, so rvsadm prints ipvsadm's text.
pub fn remote_error(e: &Error) -> RemoteError {
    let kind = match e {
        Error::Exists => ErrorKind::Eexist,
        Error::NoService => ErrorKind::Esrch,
        Error::NotFound | Error::UnknownScheduler(_) | Error::UnknownPe(_) => ErrorKind::Enoent,
        Error::Invalid(_) => ErrorKind::Einval,
        Error::Range(_) => ErrorKind::Erange,
    };
    RemoteError {
        kind,
        detail: Some(e.to_string()),
    }
}

/// An error of a given kind with a text.
pub fn error(kind: ErrorKind, detail: impl Into<String>) -> RemoteError {
    RemoteError {
        kind,
        detail: Some(detail.into()),
    }
}

/// Service key.
pub fn key_to_core(k: &m::ServiceKey) -> rvs_core::ServiceKey {
    match k {
        m::ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => rvs_core::ServiceKey::Addr {
            proto: *protocol,
            addr: *addr,
            port: *port,
        },
        m::ServiceKey::Fwmark { mark, family } => rvs_core::ServiceKey::Fwmark {
            family: *family,
            mark: *mark,
        },
    }
}

/// Service key.
pub fn key_from_core(k: &rvs_core::ServiceKey) -> m::ServiceKey {
    match k {
        rvs_core::ServiceKey::Addr { proto, addr, port } => m::ServiceKey::Addr {
            protocol: *proto,
            addr: *addr,
            port: *port,
        },
        rvs_core::ServiceKey::Fwmark { family, mark } => m::ServiceKey::Fwmark {
            mark: *mark,
            family: *family,
        },
    }
}

/// Service configuration; unknown scheduler or persistence engine → ENOENT as the kernel.
pub fn service_to_core(s: &m::ServiceSpec) -> Result<ServiceConfig, Error> {
    let scheduler = SchedKind::from_name(&s.scheduler)?;
    let mut flags = 0;
    if s.flags.persistent {
        flags |= ServiceFlags::PERSISTENT;
    }
    if s.flags.one_packet {
        flags |= ServiceFlags::ONEPACKET;
    }
    if s.flags.sched1 {
        flags |= ServiceFlags::SCHED1;
    }
    if s.flags.sched2 {
        flags |= ServiceFlags::SCHED2;
    }
    if s.flags.sched3 {
        flags |= ServiceFlags::SCHED3;
    }
    let pe = match &s.pe_name {
        None => None,
        Some(n) if n.is_empty() => None,
        Some(n) => Some(PeKind::from_name(n).ok_or_else(|| Error::UnknownPe(n.clone()))?),
    };
    Ok(ServiceConfig {
        scheduler,
        flags: ServiceFlags(flags),
        timeout: s.timeout,
        netmask: s.netmask,
        pe,
    })
}

/// Service configuration as listed.
pub fn service_from_core(
    key: &rvs_core::ServiceKey,
    c: &ServiceConfig,
    proxy_protocol: m::ProxyProtocol,
) -> m::ServiceSpec {
    m::ServiceSpec {
        key: key_from_core(key),
        scheduler: c
            .scheduler
            .map(SchedKind::name)
            .unwrap_or("none")
            .to_string(),
        flags: m::ServiceFlags {
            persistent: c.flags.has(ServiceFlags::PERSISTENT),
            one_packet: c.flags.has(ServiceFlags::ONEPACKET),
            sched1: c.flags.has(ServiceFlags::SCHED1),
            sched2: c.flags.has(ServiceFlags::SCHED2),
            sched3: c.flags.has(ServiceFlags::SCHED3),
        },
        timeout: c.timeout,
        netmask: c.netmask,
        pe_name: c.pe.as_ref().map(PeKind::name),
        proxy_protocol,
    }
}

/// Destination configuration.
pub fn dest_to_core(d: &m::DestSpec) -> DestConfig {
    DestConfig {
        addr: d.addr,
        port: d.port,
        weight: d.weight,
        fwd: match d.method {
            m::ForwardMethod::Masq => FwdMethod::Masq,
            m::ForwardMethod::Local => FwdMethod::Local,
            m::ForwardMethod::Tunnel => FwdMethod::Tunnel,
            m::ForwardMethod::Route => FwdMethod::Route,
            m::ForwardMethod::Bypass => FwdMethod::Bypass,
            m::ForwardMethod::FullNat => FwdMethod::FullNat,
        },
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
        tunnel: TunnelConfig {
            tun_type: match d.tun_type {
                m::TunnelType::Ipip => TunType::Ipip,
                m::TunnelType::Gue => TunType::Gue,
                m::TunnelType::Gre => TunType::Gre,
            },
            port: d.tun_port,
            csum: match d.tun_csum {
                m::TunnelCsum::NoCsum => TunCsum::NoCsum,
                m::TunnelCsum::Csum => TunCsum::Csum,
                m::TunnelCsum::RemCsum => TunCsum::RemCsum,
            },
        },
    }
}

/// Destination configuration as listed.
pub fn dest_from_core(d: &DestConfig) -> m::DestSpec {
    m::DestSpec {
        addr: d.addr,
        port: d.port,
        weight: d.weight,
        method: fwd_from_core(d.fwd),
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
        tun_type: match d.tunnel.tun_type {
            TunType::Ipip => m::TunnelType::Ipip,
            TunType::Gue => m::TunnelType::Gue,
            TunType::Gre => m::TunnelType::Gre,
        },
        tun_port: d.tunnel.port,
        tun_csum: match d.tunnel.csum {
            TunCsum::NoCsum => m::TunnelCsum::NoCsum,
            TunCsum::Csum => m::TunnelCsum::Csum,
            TunCsum::RemCsum => m::TunnelCsum::RemCsum,
        },
    }
}

/// Forwarding method as listed.
pub fn fwd_from_core(f: FwdMethod) -> m::ForwardMethod {
    match f {
        FwdMethod::Masq => m::ForwardMethod::Masq,
        FwdMethod::Local => m::ForwardMethod::Local,
        FwdMethod::Tunnel => m::ForwardMethod::Tunnel,
        FwdMethod::Route => m::ForwardMethod::Route,
        FwdMethod::Bypass => m::ForwardMethod::Bypass,
        FwdMethod::FullNat => m::ForwardMethod::FullNat,
    }
}

/// Counters and rates.
pub fn stats_from_core(s: &rvs_core::stats::Stats) -> m::Stats {
    stats_of(s.shown(), s.est.rates())
}

/// Counters and rates given apart (the status page samples them on its own clock).
pub fn stats_of(c: rvs_core::stats::Counters, r: rvs_core::estimator::Rates) -> m::Stats {
    m::Stats {
        conns: c.conns,
        inpkts: c.inpkts,
        outpkts: c.outpkts,
        inbytes: c.inbytes,
        outbytes: c.outbytes,
        cps: r.cps,
        inpps: r.inpps,
        outpps: r.outpps,
        inbps: r.inbps,
        outbps: r.outbps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_round_trip() {
        let key = m::ServiceKey::Addr {
            protocol: m::Protocol::Udp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 53,
        };
        let mut spec = m::ServiceSpec::with_defaults(key.clone());
        spec.scheduler = "sh".into();
        spec.flags.sched1 = true;
        spec.flags.persistent = true;
        spec.timeout = 300;
        spec.netmask = 0xffff_ff00;
        let core = service_to_core(&spec).unwrap();
        let back = service_from_core(&key_to_core(&key), &core, m::ProxyProtocol::None);
        assert_eq!(back, spec);
    }

    #[test]
    fn unknown_scheduler_is_enoent() {
        let key = m::ServiceKey::Fwmark {
            mark: 1,
            family: m::Family::Inet,
        };
        let mut spec = m::ServiceSpec::with_defaults(key);
        spec.scheduler = "nope".into();
        let e = service_to_core(&spec).unwrap_err();
        assert_eq!(remote_error(&e).kind, ErrorKind::Enoent);
    }

    #[test]
    fn dest_round_trip() {
        let mut d = m::DestSpec::with_defaults("2001:db8::5".parse().unwrap(), 80);
        d.method = m::ForwardMethod::Tunnel;
        d.tun_type = m::TunnelType::Gue;
        d.tun_port = 6080;
        d.tun_csum = m::TunnelCsum::RemCsum;
        d.u_threshold = 10;
        d.l_threshold = 5;
        assert_eq!(dest_from_core(&dest_to_core(&d)), d);
    }
}
