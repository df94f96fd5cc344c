//! The daemon's status as one document, read by the status page (`/`), its JSON
//! (`/api/status`), the charts' history (`/api/history`) and the service manager's `STATUS=`
//! line.
//!
//! Services and real servers are the control protocol's own listing records (the ones
//! `rvsadm -L --json` prints), each with a display name and what the metrics add: whether a
//! running data plane can serve it, whether a real server is overloaded. VRRP instances are
//! the records `rvsadm -L --vrrp` lists.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use rvs_control::model as m;
use serde::Serialize;

use crate::state::State;

/// A real server: the listing record plus its name and flags.
#[derive(Debug, Clone, Serialize)]
pub struct DestStatus {
    /// `addr:port` (`[v6]:port`).
    pub name: String,
    /// Over its upper connection threshold (no new connections).
    pub overloaded: bool,
    /// Why no running data plane can reach it, if none can.
    pub unserved: Option<String>,
    /// Configuration, connection counts, counters and rates.
    #[serde(flatten)]
    pub entry: m::DestEntry,
}

/// A virtual service: its configuration, counters, rates and real servers.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// `TCP 10.0.0.1:80`, `FWM 1`.
    pub name: String,
    /// Why no running data plane can serve it, if none can.
    pub unserved: Option<String>,
    /// Configuration.
    pub spec: m::ServiceSpec,
    /// Counters and rates.
    pub stats: m::Stats,
    /// Real servers in list order.
    pub dests: Vec<DestStatus>,
}

/// Totals over the whole table.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Counters and rates.
    pub stats: m::Stats,
    /// Connections and persistence templates in the table.
    pub connection_entries: u64,
    /// Proxy connections rescheduled after a failed connect.
    pub proxy_reschedules: u64,
    /// Virtual services.
    pub services: u64,
    /// Real servers of those services.
    pub real_servers: u64,
}

/// Everything the status page shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusDoc {
    /// rvsd's version.
    pub version: &'static str,
    /// Wall-clock time of the snapshot, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Whether the packet plane runs (the socket proxy always does).
    pub packet_plane: bool,
    /// The packet plane's XDP fast path: `INTERFACE MODE` per interface (empty: not in use).
    pub xdp: Vec<String>,
    /// Why the XDP fast path is not in use although `--xdp auto` asked for it.
    pub xdp_unavailable: Option<String>,
    /// Totals.
    pub totals: Totals,
    /// Virtual services.
    pub services: Vec<ServiceStatus>,
    /// VRRP instances (empty without VRRP).
    pub vrrp: Vec<m::VrrpInstanceEntry>,
    /// Connection synchronisation daemons running (`rvsadm -L --daemon`; empty: none).
    pub sync: Vec<m::DaemonConfig>,
    /// Services were left out ([`snapshot_limited`]).
    #[serde(skip)]
    pub partial: bool,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The document for the current state (each service copied under its shard's lock, one at a
/// time, as the metrics are).
pub fn snapshot(st: &State) -> StatusDoc {
    document(st, usize::MAX, st.totals())
}

/// The same, with services (in creation order) only until they and their real servers make
/// `max_series` entries; `partial` says whether some were left out. The history sampler
/// takes no more than it keeps ([`HISTORY_SERIES`]): copying and naming every service of a
/// 10 000-service table once a second would be an idle rvsd's main cost.
///
/// For the samplers that run every second whatever the table's size: the totals are the
/// ticker's (as of its last step, [`State::totals_cached`]), not a visit of every shard, and
/// only the services taken are read, so an idle table of 10 000 services costs a sample
/// next to nothing.
pub fn snapshot_limited(st: &State, max_series: usize) -> StatusDoc {
    document(st, max_series, st.totals_cached())
}

fn document(st: &State, max_series: usize, totals: crate::shard::Contribution) -> StatusDoc {
    let crate::shard::Contribution {
        counters: c,
        rates: r,
        entries,
        reschedules: resched,
    } = totals;
    let (n_services, n_dests) = st.size();
    let mut services = Vec::new();
    let mut series = 0usize;
    let mut partial = false;
    // `max_series` 0 (the service manager's status line) lists nothing, not even the keys.
    for &k in st.service_keys_iter() {
        if series >= max_series {
            partial = true;
            break;
        }
        let Some(entry) = st.list_service(&k) else {
            continue;
        };
        series += 1 + entry.dests.len();
        // Flags per real server, keyed by address and port (the listing record has no id).
        let flags: HashMap<SocketAddr, (bool, Option<String>)> = st
            .with_service(&k, |sh| {
                let t = &sh.director.table;
                let Some(s) = t.id_of(&k).and_then(|id| t.service(id)) else {
                    return HashMap::new();
                };
                s.dests
                    .iter()
                    .filter_map(|&d| t.dests.get(d))
                    .map(|d| {
                        (
                            SocketAddr::new(d.cfg.addr, d.cfg.port),
                            (d.overload, st.dest_unserved(&k, &d.cfg)),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let dests = entry
            .dests
            .into_iter()
            .map(|d| {
                let sa = SocketAddr::new(d.spec.addr, d.spec.port);
                let (overloaded, unserved) = flags.get(&sa).cloned().unwrap_or((false, None));
                DestStatus {
                    name: sa.to_string(),
                    overloaded,
                    unserved,
                    entry: d,
                }
            })
            .collect();
        services.push(ServiceStatus {
            name: entry.spec.key.to_string(),
            unserved: st.service_unserved(&k),
            spec: entry.spec,
            stats: entry.stats,
            dests,
        });
    }
    let xdp_report = st
        .packet_feed()
        .map(|f| crate::lock::lock(&f.xdp).clone())
        .unwrap_or_default();
    let vrrp = match crate::vrrp::status::answer(st.vrrp.as_deref()).result {
        Ok(rvs_control::proto::Payload::Vrrp(v)) => v,
        _ => Vec::new(),
    };
    StatusDoc {
        version: env!("CARGO_PKG_VERSION"),
        time_ms: now_ms(),
        packet_plane: st.planes.packet,
        xdp: xdp_report
            .modes
            .iter()
            .map(
                |(i, m)| match xdp_report.slow_paths.iter().find(|(s, _)| s == i) {
                    Some((_, path)) => format!("{i} {m} slow path {path}"),
                    None => format!("{i} {m}"),
                },
            )
            .collect(),
        xdp_unavailable: xdp_report.unavailable,
        totals: Totals {
            stats: crate::convert::stats_of(c, r),
            connection_entries: entries,
            proxy_reschedules: resched,
            services: n_services,
            real_servers: n_dests,
        },
        services,
        vrrp,
        sync: st.sync.list(),
        partial,
    }
}

/// One line for the service manager (`systemctl status rvsd`): what is served, how busy, and
/// the VRRP states.
pub fn summary(doc: &StatusDoc) -> String {
    let mut s = format!(
        "{} service(s), {} real server(s), {} connection(s), {} conn/s",
        doc.totals.services,
        doc.totals.real_servers,
        doc.totals.connection_entries,
        doc.totals.stats.cps
    );
    if !doc.vrrp.is_empty() {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for v in &doc.vrrp {
            *by.entry(v.state.name().to_string()).or_default() += 1;
        }
        let states: Vec<String> = by.iter().map(|(k, n)| format!("{n} {k}")).collect();
        s.push_str("; VRRP ");
        s.push_str(&states.join(", "));
    }
    if !doc.xdp.is_empty() {
        s.push_str("; XDP ");
        s.push_str(&doc.xdp.join(", "));
    }
    for d in &doc.sync {
        let role = match d.role {
            m::SyncRole::Master => "master",
            m::SyncRole::Backup => "backup",
        };
        s.push_str(&format!("; sync {role} on {}", d.mcast_ifn));
    }
    s
}

/// Samples kept per series: one per second for five minutes.
pub const HISTORY_LEN: usize = 300;
/// Most series (services plus real servers) with a history; beyond it, the page shows the
/// current numbers only (memory stays bounded whatever the table's size).
pub const HISTORY_SERIES: usize = 2048;

/// Per-second rates of one service or real server over the last [`HISTORY_LEN`] samples.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// Connections per second.
    pub cps: VecDeque<u64>,
    /// Packets per second, both directions.
    pub pps: VecDeque<u64>,
    /// Bytes per second, both directions.
    pub bps: VecDeque<u64>,
    #[serde(skip)]
    last: Option<(u64, u64, u64)>,
    #[serde(skip)]
    seen: u64,
}

/// The charts' data: per-second differences of the counters, sampled by the metrics listener.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    /// Sample times, milliseconds since the Unix epoch.
    pub t: VecDeque<u64>,
    /// Series by name: a service's name, or `service -> real server`.
    pub series: BTreeMap<String, Series>,
    /// True when some series were left out ([`HISTORY_SERIES`]).
    pub truncated: bool,
    #[serde(skip)]
    round: u64,
}

fn push(q: &mut VecDeque<u64>, v: u64) {
    if q.len() == HISTORY_LEN {
        q.pop_front();
    }
    q.push_back(v);
}

impl History {
    /// Add one sample of every service and real server in `doc`. A series that is new gets
    /// zeros for the samples before it appeared; one that went away is removed.
    pub fn sample(&mut self, doc: &StatusDoc) {
        self.round += 1;
        let round = self.round;
        if self.t.len() == HISTORY_LEN {
            self.t.pop_front();
        }
        self.t.push_back(doc.time_ms);
        let n = self.t.len();
        let mut truncated = false;
        let mut add = |name: String, s: &m::Stats| {
            let len = self.series.len();
            let e = match self.series.get_mut(&name) {
                Some(e) => e,
                None if len < HISTORY_SERIES => self.series.entry(name).or_default(),
                None => {
                    truncated = true;
                    return;
                }
            };
            let cur = (
                s.conns,
                s.inpkts.wrapping_add(s.outpkts),
                s.inbytes.wrapping_add(s.outbytes),
            );
            // The first sample (and one after `-Z` made a counter go back) has no rate yet.
            let (c, p, b) = match e.last {
                Some(l) if cur.0 >= l.0 && cur.1 >= l.1 && cur.2 >= l.2 => {
                    (cur.0 - l.0, cur.1 - l.1, cur.2 - l.2)
                }
                _ => (0, 0, 0),
            };
            e.last = Some(cur);
            e.seen = round;
            for q in [&mut e.cps, &mut e.pps, &mut e.bps] {
                while q.len() + 1 < n {
                    q.push_front(0);
                }
            }
            push(&mut e.cps, c);
            push(&mut e.pps, p);
            push(&mut e.bps, b);
        };
        for s in &doc.services {
            add(s.name.clone(), &s.stats);
            for d in &s.dests {
                add(format!("{} -> {}", s.name, d.name), &d.entry.stats);
            }
        }
        self.truncated = truncated || doc.partial;
        self.series.retain(|_, e| e.seen == round);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sampler's snapshot stops once it has the series the history keeps, and says so.
    #[test]
    fn limited_snapshot_takes_services_until_the_series_are_enough() {
        let mut st = State::new(rvs_core::Time(0), crate::state::Planes { packet: false });
        for c in [
            "-A -t 127.0.0.1:80",
            "-a -t 127.0.0.1:80 -r 127.0.0.11:80 -m",
            "-a -t 127.0.0.1:80 -r 127.0.0.12:80 -m",
            "-A -t 127.0.0.1:81",
            "-a -t 127.0.0.1:81 -r 127.0.0.11:80 -m",
            "-A -t 127.0.0.1:82",
        ] {
            let r = st.handle(&crate::test_support::parse_cmd(c), rvs_core::Time(0));
            assert!(r.result.is_ok(), "{c}");
        }
        let names = |d: &StatusDoc| {
            d.services
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        };
        let all = snapshot(&st);
        assert_eq!(names(&all).len(), 3);
        assert!(!all.partial);
        let part = snapshot_limited(&st, 4);
        assert_eq!(names(&part), ["TCP 127.0.0.1:80", "TCP 127.0.0.1:81"]);
        assert!(part.partial);
        let mut h = History::default();
        h.sample(&part);
        assert!(h.truncated);
        assert_eq!(h.series.len(), 5);
    }

    fn doc(conns: u64, pkts: u64) -> StatusDoc {
        let spec = m::ServiceSpec::with_defaults(m::ServiceKey::Addr {
            protocol: m::Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        });
        StatusDoc {
            version: "t",
            time_ms: 1000 + conns,
            packet_plane: false,
            xdp: Vec::new(),
            xdp_unavailable: None,
            totals: Totals {
                stats: m::Stats::default(),
                connection_entries: 0,
                proxy_reschedules: 0,
                services: 1,
                real_servers: 0,
            },
            services: vec![ServiceStatus {
                name: "TCP 10.0.0.1:80".into(),
                unserved: None,
                spec,
                stats: m::Stats {
                    conns,
                    inpkts: pkts,
                    ..Default::default()
                },
                dests: Vec::new(),
            }],
            partial: false,
            vrrp: Vec::new(),
            sync: Vec::new(),
        }
    }

    #[test]
    fn history_is_per_second_differences_bounded() {
        let mut h = History::default();
        h.sample(&doc(10, 100));
        h.sample(&doc(15, 130));
        let s = &h.series["TCP 10.0.0.1:80"];
        assert_eq!(Vec::from(s.cps.clone()), [0, 5]);
        assert_eq!(Vec::from(s.pps.clone()), [0, 30]);
        for i in 0..2 * HISTORY_LEN as u64 {
            h.sample(&doc(20 + i, 200 + i));
        }
        let s = &h.series["TCP 10.0.0.1:80"];
        assert_eq!(s.cps.len(), HISTORY_LEN);
        assert_eq!(h.t.len(), HISTORY_LEN);
        assert!(s.cps.iter().all(|&c| c == 1));
        // A zeroed counter gives 0, not a huge difference.
        h.sample(&doc(0, 0));
        assert_eq!(h.series["TCP 10.0.0.1:80"].cps.back(), Some(&0));
        // A service that went away loses its series.
        let mut empty = doc(0, 0);
        empty.services.clear();
        h.sample(&empty);
        assert!(h.series.is_empty());
    }

    #[test]
    fn summary_line() {
        let d = doc(1, 1);
        assert_eq!(
            summary(&d),
            "1 service(s), 0 real server(s), 0 connection(s), 0 conn/s"
        );
    }
}
