//! Prometheus metrics in the text exposition format, with labels that follow node_exporter's
//! IPVS collector (`local_address`, `local_port`, `local_mark`, `proto`, `remote_address`,
//! `remote_port`), so dashboards built for kernel LVS carry over.
//!
//! The exposition is written by hand: the label sets follow the table (services come and go
//! with every rvsadm command), which a static registry would only complicate; the format is a
//! few lines of text. It is served by [`crate::web`] at `/metrics`.

use std::fmt::Write as _;

use crate::state::State;
use rvs_core::ServiceKey;

/// Escape a label value (`\`, `"` and newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn svc_labels(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Addr { proto, addr, port } => format!(
            "local_address=\"{}\",local_port=\"{port}\",local_mark=\"\",proto=\"{}\"",
            esc(&addr.to_string()),
            proto.name()
        ),
        ServiceKey::Fwmark { mark, .. } => {
            format!("local_address=\"\",local_port=\"0\",local_mark=\"{mark}\",proto=\"\"")
        }
    }
}

use crate::exposition::{header, sample};

struct Out {
    text: String,
}

impl Out {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        header(&mut self.text, name, kind, help);
    }
    fn sample(&mut self, name: &str, labels: &str, v: u64) {
        sample(&mut self.text, name, labels, v);
    }
}

/// What the metrics need of a service (its scheduler, which may be large, is not copied).
struct Svc {
    key: ServiceKey,
    stats: rvs_core::stats::Stats,
    /// The service schedules with `pewma`: its real servers' latency estimates are exported.
    pewma: bool,
}

/// Render every metric for the current state.
pub fn render(st: &State) -> String {
    let mut o = Out {
        text: String::with_capacity(4096),
    };
    let crate::shard::Contribution {
        counters: total,
        entries,
        reschedules,
        ..
    } = st.totals();
    for (name, help, v) in [
        (
            "rvs_connections_total",
            "Connections scheduled.",
            total.conns,
        ),
        (
            "rvs_incoming_packets_total",
            "Packets client to server.",
            total.inpkts,
        ),
        (
            "rvs_outgoing_packets_total",
            "Packets server to client seen by the director.",
            total.outpkts,
        ),
        (
            "rvs_incoming_bytes_total",
            "Bytes client to server.",
            total.inbytes,
        ),
        (
            "rvs_outgoing_bytes_total",
            "Bytes server to client seen by the director.",
            total.outbytes,
        ),
    ] {
        o.header(name, "counter", help);
        o.sample(name, "", v);
    }
    o.header(
        "rvs_connection_table_entries",
        "gauge",
        "Connections and persistence templates in the table.",
    );
    o.sample("rvs_connection_table_entries", "", entries);
    o.header(
        "rvs_connection_table_full_total",
        "counter",
        "New connections refused because the table held rvs_conn_max entries.",
    );
    o.sample(
        "rvs_connection_table_full_total",
        "",
        st.conns_refused_full(),
    );
    o.header(
        "rvs_proxy_reschedules_total",
        "counter",
        "Proxy connections rescheduled to another real server after a failed connect.",
    );
    o.sample("rvs_proxy_reschedules_total", "", reschedules);
    o.header(
        "rvs_proxy_pe_rejected_total",
        "counter",
        "Proxy connections of content persistence engines (--pe cookie, header, sni...) closed \
         unserved, by reason.",
    );
    for (why, n) in rvs_proxy::ContentReject::ALL.iter().zip(st.pe_rejects()) {
        o.sample(
            "rvs_proxy_pe_rejected_total",
            &format!("reason=\"{}\"", why.label()),
            n,
        );
    }

    // Per service: a copy of each, taken under its shard's lock one at a time.
    let services: Vec<(Svc, Vec<rvs_core::Dest>)> = st
        .service_keys()
        .iter()
        .filter_map(|k| {
            st.with_service(k, |sh| {
                let t = &sh.director.table;
                let s = t.service(t.id_of(k)?)?;
                let dests = s.dests.iter().filter_map(|&d| t.dests.get(d)).cloned();
                let svc = Svc {
                    key: s.key,
                    stats: s.stats.clone(),
                    pewma: matches!(s.scheduler(), Some(rvs_core::sched::Scheduler::Pewma(_))),
                };
                Some((svc, dests.collect()))
            })
            .flatten()
        })
        .collect();
    type Get = fn(&rvs_core::stats::Counters, &rvs_core::estimator::Rates) -> u64;
    let series: [(&str, &str, &str, Get); 10] = [
        (
            "connections_total",
            "counter",
            "Connections scheduled.",
            |c, _| c.conns,
        ),
        (
            "incoming_packets_total",
            "counter",
            "Packets client to server.",
            |c, _| c.inpkts,
        ),
        (
            "outgoing_packets_total",
            "counter",
            "Packets server to client.",
            |c, _| c.outpkts,
        ),
        (
            "incoming_bytes_total",
            "counter",
            "Bytes client to server.",
            |c, _| c.inbytes,
        ),
        (
            "outgoing_bytes_total",
            "counter",
            "Bytes server to client.",
            |c, _| c.outbytes,
        ),
        (
            "connections_per_second",
            "gauge",
            "Connection rate (2 s estimator).",
            |_, r| r.cps,
        ),
        (
            "incoming_packets_per_second",
            "gauge",
            "Incoming packet rate.",
            |_, r| r.inpps,
        ),
        (
            "outgoing_packets_per_second",
            "gauge",
            "Outgoing packet rate.",
            |_, r| r.outpps,
        ),
        (
            "incoming_bytes_per_second",
            "gauge",
            "Incoming byte rate.",
            |_, r| r.inbps,
        ),
        (
            "outgoing_bytes_per_second",
            "gauge",
            "Outgoing byte rate.",
            |_, r| r.outbps,
        ),
    ];
    for (suffix, kind, help, get) in series {
        let name = format!("rvs_service_{suffix}");
        o.header(&name, kind, help);
        for (s, _) in &services {
            let v = get(&s.stats.shown(), &s.stats.est.rates());
            o.sample(&name, &svc_labels(&s.key), v);
        }
    }
    o.header(
        "rvs_service_unserved",
        "gauge",
        "1 if the service is in the table but no running data plane can serve it.",
    );
    for (s, _) in &services {
        let v = u64::from(st.service_unserved(&s.key).is_some());
        o.sample("rvs_service_unserved", &svc_labels(&s.key), v);
    }

    // Per real server.
    let backend_labels = |k: &ServiceKey, d: &rvs_core::Dest| {
        format!(
            "{},remote_address=\"{}\",remote_port=\"{}\"",
            svc_labels(k),
            esc(&d.cfg.addr.to_string()),
            d.cfg.port
        )
    };
    type GetD = fn(&rvs_core::Dest) -> u64;
    let gauges: [(&str, &str, GetD); 5] = [
        (
            "rvs_backend_connections_active",
            "Active connections.",
            |d| u64::from(d.active),
        ),
        (
            "rvs_backend_connections_inactive",
            "Inactive connections.",
            |d| u64::from(d.inactive),
        ),
        (
            "rvs_backend_connections_persistent",
            "Persistence templates.",
            |d| u64::from(d.persist),
        ),
        ("rvs_backend_weight", "Weight.", |d| u64::from(d.weight())),
        (
            "rvs_backend_overloaded",
            "1 while over its upper threshold.",
            |d| u64::from(d.overload),
        ),
    ];
    for (name, help, get) in gauges {
        o.header(name, "gauge", help);
        for (s, dests) in &services {
            for d in dests {
                o.sample(name, &backend_labels(&s.key, d), get(d));
            }
        }
    }
    for (suffix, kind, help, get) in series {
        let name = format!("rvs_backend_{suffix}");
        o.header(&name, kind, help);
        for (s, dests) in &services {
            for d in dests {
                let v = get(&d.stats.shown(), &d.stats.est.rates());
                o.sample(&name, &backend_labels(&s.key, d), v);
            }
        }
    }
    // pewma's estimates: the value right after the last sample (the data planes keep their own
    // clocks, so the relaxation since is not computed here), and the samples taken.
    o.header(
        "rvs_backend_latency_estimate_seconds",
        "gauge",
        "pewma services: the real server's peak-EWMA response time right after its last sample \
         (absent before the first sample).",
    );
    for (s, dests) in services.iter().filter(|(s, _)| s.pewma) {
        for d in dests {
            if let Some(us) = d.latency.last_estimate() {
                let _ = writeln!(
                    o.text,
                    "rvs_backend_latency_estimate_seconds{{{}}} {}",
                    backend_labels(&s.key, d),
                    us / 1e6
                );
            }
        }
    }
    o.header(
        "rvs_backend_latency_samples_total",
        "counter",
        "pewma services: response-time samples taken of the real server.",
    );
    for (s, dests) in services.iter().filter(|(s, _)| s.pewma) {
        for d in dests {
            o.sample(
                "rvs_backend_latency_samples_total",
                &backend_labels(&s.key, d),
                d.latency.samples(),
            );
        }
    }
    o.header(
        "rvs_backend_unserved",
        "gauge",
        "1 if the real server is in the table but no running data plane can reach it.",
    );
    for (s, dests) in &services {
        for d in dests {
            let v = u64::from(st.dest_unserved(&s.key, &d.cfg).is_some());
            o.sample("rvs_backend_unserved", &backend_labels(&s.key, d), v);
        }
    }
    sysctls(&mut o, st);
    if let Some((table, a)) = &st.announce {
        a.render_metrics(*table, &mut o.text);
    }
    if let Some(h) = &st.health {
        h.render_metrics(&mut o.text);
    }
    crate::sync::metrics::render(&st.sync, &st.shards(), &mut o.text);
    crate::discovery::status::render_metrics(&st.discovery, &mut o.text);
    if let Some(v) = &st.vrrp {
        v.render_metrics(&mut o.text);
    }
    xdp(&mut o, st);
    frag(&mut o, st);
    syn_proxy(&mut o, st);
    o.text
}

/// The packet plane's reassembly (docs/internals/forwarding.md#fragments), summed over the
/// workers (nothing when the packet plane does not run).
fn frag(o: &mut Out, st: &State) {
    let Some(feed) = st.packet_feed() else {
        return;
    };
    let t = feed.frag.totals();
    o.header(
        "rvs_packet_frag_fragments_total",
        "counter",
        "IP fragments the packet plane took for reassembly (to a VIP or local address, or from a NAT real server).",
    );
    o.sample("rvs_packet_frag_fragments_total", "", t.fragments);
    o.header(
        "rvs_packet_frag_reassembled_total",
        "counter",
        "Datagrams the packet plane reassembled.",
    );
    o.sample("rvs_packet_frag_reassembled_total", "", t.reassembled);
    o.header(
        "rvs_packet_frag_drops_total",
        "counter",
        "Fragments (overlap, duplicate, too_big, bad_length, malformed, no_room) or incomplete datagrams (timeout, evicted) the packet plane gave up, by reason.",
    );
    for (reason, n) in &t.drops {
        o.sample(
            "rvs_packet_frag_drops_total",
            &format!("reason=\"{}\"", reason.name()),
            *n,
        );
    }
    o.header(
        "rvs_packet_frag_sent_total",
        "counter",
        "Fragments the packet plane sent (reassembled datagrams sent on, packets too big for the link).",
    );
    o.sample("rvs_packet_frag_sent_total", "", t.sent);
    o.header(
        "rvs_packet_frag_held_bytes",
        "gauge",
        "Memory charged to incomplete datagrams (bounded per worker by the 4 MiB high threshold).",
    );
    o.sample("rvs_packet_frag_held_bytes", "", t.held_bytes);
    o.header(
        "rvs_packet_frag_held_datagrams",
        "gauge",
        "Incomplete datagrams being reassembled.",
    );
    o.sample("rvs_packet_frag_held_datagrams", "", t.held_datagrams);
}

/// The packet plane's XDP fast path: which mode on which interface, the program's verdicts,
/// the entries installed (nothing when the packet plane does not run).
fn xdp(o: &mut Out, st: &State) {
    let Some(feed) = st.packet_feed() else {
        return;
    };
    let r = crate::lock::lock(&feed.xdp).clone();
    o.header(
        "rvs_xdp_mode",
        "gauge",
        "1 for the XDP mode (native or generic) in use on each packet-plane interface.",
    );
    for (iface, mode) in &r.modes {
        o.sample(
            "rvs_xdp_mode",
            &format!("interface=\"{iface}\",mode=\"{mode}\""),
            1,
        );
    }
    if r.modes.is_empty() {
        return;
    }
    o.header(
        "rvs_xdp_slow_path",
        "gauge",
        "1 for the slow path in use on each packet-plane interface with XDP: path=\"xsk\" (AF_XDP, xsk_mode copy or zerocopy) or \"af_packet\".",
    );
    for (iface, path) in &r.slow_paths {
        let (path, mode) = path.split_once(' ').unwrap_or((path.as_str(), ""));
        o.sample(
            "rvs_xdp_slow_path",
            &format!("interface=\"{iface}\",path=\"{path}\",xsk_mode=\"{mode}\""),
            1,
        );
    }
    o.header(
        "rvs_xdp_packets_total",
        "counter",
        "Packets seen by the XDP program, by verdict: forwarded (tx, redirect) or passed to userspace (and why).",
    );
    let c = r.counters;
    for (verdict, v) in [
        ("tx", c.tx),
        ("redirect", c.redirect),
        ("pass_no_flow", c.pass_no_flow),
        ("pass_state", c.pass_state),
        ("pass_other", c.pass_other),
        ("pass_limit", c.pass_limit),
        ("xsk", c.xsk),
        ("pass_other_host", c.pass_other_host),
    ] {
        o.sample(
            "rvs_xdp_packets_total",
            &format!("verdict=\"{verdict}\""),
            v,
        );
    }
    o.header(
        "rvs_xdp_flow_entries",
        "gauge",
        "Flow directions the XDP program forwards in the kernel.",
    );
    o.sample("rvs_xdp_flow_entries", "", r.entries);
}

/// The SYN proxy (docs/internals/syn-flood.md#what-it-counts): SYN-ACKs with a cookie sent
/// by the packet workers and by the XDP program, the handshake ACKs checked, the proxied
/// connections whose real server answered (nothing when the packet plane does not run).
fn syn_proxy(o: &mut Out, st: &State) {
    let Some(feed) = st.packet_feed() else {
        return;
    };
    let t = feed.syn.totals();
    let x = crate::lock::lock(&feed.xdp).syn;
    o.header(
        "rvs_syn_proxy_cookies_sent_total",
        "counter",
        "Client SYNs answered with a SYN cookie, by where: the packet workers (userspace) or the XDP program (xdp).",
    );
    o.sample(
        "rvs_syn_proxy_cookies_sent_total",
        "where=\"userspace\"",
        t.cookies_sent,
    );
    o.sample(
        "rvs_syn_proxy_cookies_sent_total",
        "where=\"xdp\"",
        x.answered,
    );
    o.header(
        "rvs_syn_proxy_xdp_left_total",
        "counter",
        "SYNs to a SYN-proxied service the XDP program left to userspace (a shape it does not rewrite, no room, not a plane interface).",
    );
    o.sample("rvs_syn_proxy_xdp_left_total", "", x.left);
    o.header(
        "rvs_syn_proxy_acks_total",
        "counter",
        "Handshake ACKs with no connection checked by the SYN proxy: result valid (a connection is scheduled) or invalid (dropped as bad_cookie).",
    );
    o.sample(
        "rvs_syn_proxy_acks_total",
        "result=\"valid\"",
        t.cookies_valid,
    );
    o.sample(
        "rvs_syn_proxy_acks_total",
        "result=\"invalid\"",
        t.cookies_invalid,
    );
    o.header(
        "rvs_syn_proxy_connections_total",
        "counter",
        "SYN-proxied connections whose real server completed its handshake (sequence numbers shifted from then on).",
    );
    o.sample("rvs_syn_proxy_connections_total", "", t.servers_answered);
}

/// The IPVS sysctls: one gauge per integer value (`sync_threshold` as two, `part` =
/// `threshold`/`period`), the CPU list as an info series; `acts="0"` marks a sysctl rvs stores
/// but does not act on yet (or a read-only one).
fn sysctls(o: &mut Out, st: &State) {
    use rvs_core::sysctl::{Effect, Value};
    let name = "rvs_ipvs_sysctl";
    o.header(name, "gauge", "IPVS sysctl value (net.ipv4.vs.NAME).");
    let mut text = Vec::new();
    for (d, v) in st.sysctls.iter() {
        let acts = u8::from(d.effect == Effect::Acts);
        let l = format!("name=\"{}\",acts=\"{acts}\"", d.name);
        match v {
            Value::Int(x) => {
                let _ = writeln!(o.text, "{name}{{{l}}} {x}");
            }
            Value::Pair(a, b) => {
                let _ = writeln!(o.text, "{name}{{{l},part=\"threshold\"}} {a}");
                let _ = writeln!(o.text, "{name}{{{l},part=\"period\"}} {b}");
            }
            Value::Text(t) => text.push(format!("{l},value=\"{}\"", esc(t))),
        }
    }
    let info = "rvs_ipvs_sysctl_info";
    o.header(info, "gauge", "IPVS sysctl with a text value (always 1).");
    for l in text {
        o.sample(info, &l, 1);
    }
}
