//! `rvsd --docker [SOCKET]`: labelled containers as real servers.
//!
//! A container with the label `rvs.service=tcp:VIP:PORT` (or `udp:`, `sctp:`; an IPv6 VIP in
//! brackets) is a real server of that service at its IP address on its Docker network, while
//! it runs and — if its image or `docker run` defines a healthcheck — while Docker reports it
//! healthy. Further labels: `rvs.port` (the container's port; default the service's),
//! `rvs.weight` (default 1), `rvs.method` (default masq), `rvs.scheduler` (the service's
//! scheduler; default wlc) and `rvs.network` (which network's address to use when it is on
//! several).
//!
//! rvsd follows dockerd's event stream (`/events`, only containers with the label). `docker
//! stop` first sends SIGTERM (a `kill` event) and waits before SIGKILL: rvsd drains the real
//! server on that first signal, so a container whose process finishes its requests after
//! SIGTERM loses none. `die`, `stop`, `pause`, `destroy` and `health_status: unhealthy` drain
//! it too; `start`, `unpause` and `health_status: healthy` bring it back (the container is
//! inspected again). Events arriving together are coalesced into one diff. When the stream
//! is lost (dockerd restarted), the table stays as it is and rvsd reconnects and rebuilds its
//! view from a full list of the labelled containers, applying only the difference.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_control::model as m;
use serde_json::Value;

use super::http::{Client, Endpoint};
use super::reconcile::{want_service, Desired, Reconciler};
use super::status::SourceStatus;
use crate::daemon::Daemon;

/// dockerd's default API socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The label that makes a container a real server.
pub const SERVICE_LABEL: &str = "rvs.service";

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Events arriving within this window after a first one are applied together.
const COALESCE: Duration = Duration::from_millis(20);

/// What a container's labels ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// The service (`rvs.service`, `rvs.scheduler`).
    pub service: m::ServiceSpec,
    /// Real-server port, weight and method (`rvs.port`, `rvs.weight`, `rvs.method`).
    pub port: u16,
    /// Weight.
    pub weight: u32,
    /// Forwarding method.
    pub method: m::ForwardMethod,
    /// `rvs.network`: the network whose address to use.
    pub network: Option<String>,
}

/// Decode `rvs.service`: `PROTO:VIP:PORT`.
pub fn parse_service_label(s: &str) -> Result<m::ServiceKey, String> {
    let (proto, rest) = s
        .split_once(':')
        .ok_or_else(|| format!("{SERVICE_LABEL}=`{s}': PROTO:VIP:PORT expected"))?;
    let protocol = super::etcd::protocol(proto)?;
    let sa: SocketAddr = rest
        .parse()
        .map_err(|_| format!("{SERVICE_LABEL}=`{s}': VIP:PORT expected after the protocol"))?;
    if sa.port() == 0 {
        return Err(format!("{SERVICE_LABEL}=`{s}': port 0"));
    }
    Ok(m::ServiceKey::Addr {
        protocol,
        addr: sa.ip(),
        port: sa.port(),
    })
}

/// Decode the `rvs.*` labels; `Ok(None)` for a container without `rvs.service`.
pub fn parse_labels(labels: &BTreeMap<String, String>) -> Result<Option<Labelled>, String> {
    let Some(svc) = labels.get(SERVICE_LABEL) else {
        return Ok(None);
    };
    let key = parse_service_label(svc)?;
    let svc_port = match key {
        m::ServiceKey::Addr { port, .. } => port,
        m::ServiceKey::Fwmark { .. } => 0,
    };
    let mut service = m::ServiceSpec::with_defaults(key);
    for (k, v) in labels {
        let Some(name) = k.strip_prefix("rvs.") else {
            continue;
        };
        if !matches!(
            name,
            "service" | "port" | "weight" | "method" | "scheduler" | "network"
        ) {
            return Err(format!(
                "label {k}: unknown (rvs.service, rvs.port, rvs.weight, rvs.method, \
                 rvs.scheduler, rvs.network)"
            ));
        }
        if name == "scheduler" {
            if v.is_empty() || v.len() > 16 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("label rvs.scheduler=`{v}'"));
            }
            service.scheduler = v.clone();
        }
    }
    let port = match labels.get("rvs.port") {
        None => svc_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("label rvs.port=`{p}': 1-65535 expected"))?,
    };
    let weight = match labels.get("rvs.weight") {
        None => 1,
        Some(w) => w
            .parse::<u32>()
            .ok()
            .filter(|w| *w <= 65535)
            .ok_or_else(|| format!("label rvs.weight=`{w}': 0-65535 expected"))?,
    };
    let method = match labels.get("rvs.method") {
        None => m::ForwardMethod::Masq,
        Some(s) => super::etcd::method(s).map_err(|e| format!("label rvs.method: {e}"))?,
    };
    Ok(Some(Labelled {
        service,
        port,
        weight,
        method,
        network: labels.get("rvs.network").cloned(),
    }))
}

/// A container as `GET /containers/{id}/json` describes it (the parts we use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Running and not paused.
    pub running: bool,
    /// Docker's health status (`starting`, `healthy`, `unhealthy`), if it has a healthcheck.
    pub health: Option<String>,
    /// Address on each network.
    pub addrs: BTreeMap<String, IpAddr>,
}

/// Decode an inspect answer.
pub fn parse_inspect(body: &[u8]) -> Result<Container, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("inspect answer: {e}"))?;
    let id = v
        .get("Id")
        .and_then(Value::as_str)
        .ok_or("inspect answer without Id")?
        .to_string();
    let name = v
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    let mut labels = BTreeMap::new();
    if let Some(Value::Object(l)) = v.get("Config").and_then(|c| c.get("Labels")) {
        for (k, val) in l {
            if let Some(s) = val.as_str() {
                labels.insert(k.clone(), s.to_string());
            }
        }
    }
    let state = v.get("State");
    let flag = |f: &str| state.and_then(|s| s.get(f)).and_then(Value::as_bool) == Some(true);
    let running = flag("Running") && !flag("Paused") && !flag("Restarting");
    let health = state
        .and_then(|s| s.get("Health"))
        .and_then(|h| h.get("Status"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut addrs = BTreeMap::new();
    if let Some(Value::Object(nets)) = v.get("NetworkSettings").and_then(|n| n.get("Networks")) {
        for (net, n) in nets {
            for f in ["IPAddress", "GlobalIPv6Address"] {
                let ip = n
                    .get(f)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<IpAddr>().ok());
                if let Some(ip) = ip {
                    addrs.entry(net.clone()).or_insert(ip);
                }
            }
        }
    }
    Ok(Container {
        id,
        name,
        labels,
        running,
        health,
        addrs,
    })
}

/// Decode a `GET /containers/json` answer: the ids.
pub fn parse_list(body: &[u8]) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("list answer: {e}"))?;
    let arr = v.as_array().ok_or("list answer is not a list")?;
    arr.iter()
        .map(|c| {
            c.get("Id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| "list entry without Id".to_string())
        })
        .collect()
}

/// One container event: what happened to which container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The container id.
    pub id: String,
    /// `start`, `kill`, `die`, `health_status: healthy`, ...
    pub action: String,
    /// For `kill`: the signal number.
    pub signal: Option<i32>,
}

/// Decode one line of the event stream; `Ok(None)` for events not about containers.
pub fn parse_event(line: &[u8]) -> Result<Option<Event>, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("event: {e}"))?;
    let ty = v.get("Type").and_then(Value::as_str).unwrap_or("container");
    if ty != "container" {
        return Ok(None);
    }
    let actor = v.get("Actor");
    let id = actor
        .and_then(|a| a.get("ID"))
        .or_else(|| v.get("id"))
        .and_then(Value::as_str)
        .ok_or("event without an id")?
        .to_string();
    let action = v
        .get("Action")
        .or_else(|| v.get("status"))
        .and_then(Value::as_str)
        .ok_or("event without an action")?
        .to_string();
    let signal = actor
        .and_then(|a| a.get("Attributes"))
        .and_then(|a| a.get("signal"))
        .and_then(Value::as_str)
        .and_then(|s| match s {
            "SIGTERM" | "TERM" => Some(15),
            "SIGKILL" | "KILL" => Some(9),
            n => n.parse().ok(),
        });
    Ok(Some(Event { id, action, signal }))
}

/// What rvsd knows of one labelled container.
#[derive(Debug, Clone)]
struct Known {
    c: Container,
    /// Sent SIGTERM/SIGKILL (`docker stop`): drained at once, even while it still runs.
    stopping: bool,
}

/// The table the containers describe, and the reasons for what was skipped. A container
/// serves while it runs, is not being stopped, and is healthy if it has a healthcheck.
fn desired(known: &BTreeMap<String, Known>) -> (Desired, Vec<String>) {
    let mut want = Desired::new();
    let mut skipped = Vec::new();
    // Sorted by name, so that the service's settings come from the same container every time.
    let mut list: Vec<&Known> = known.values().collect();
    list.sort_by(|a, b| (&a.c.name, &a.c.id).cmp(&(&b.c.name, &b.c.id)));
    for k in list {
        let c = &k.c;
        let l = match parse_labels(&c.labels) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                skipped.push(format!("container {}: {e}", c.name));
                continue;
            }
        };
        let ready = c.running
            && !k.stopping
            && matches!(c.health.as_deref(), None | Some("healthy") | Some("none"));
        let ip = match &l.network {
            Some(n) => c.addrs.get(n).copied(),
            None => c.addrs.values().next().copied(),
        };
        let entry = want_service(&mut want, l.service.clone());
        if entry.spec != l.service {
            skipped.push(format!(
                "container {}: its rvs.scheduler differs from the service's other containers \
                 ({} is kept)",
                c.name, entry.spec.scheduler
            ));
        }
        if !ready {
            continue;
        }
        let Some(ip) = ip else {
            skipped.push(format!(
                "container {}: no IP address{}",
                c.name,
                match &l.network {
                    Some(n) => format!(" on network {n}"),
                    None => " (network mode host or none?)".to_string(),
                }
            ));
            continue;
        };
        let mut d = m::DestSpec::with_defaults(ip, l.port);
        d.weight = l.weight;
        d.method = l.method;
        entry.dests.insert((ip, l.port), d);
    }
    // A service none of whose containers is ready is still wanted while they exist (its
    // settings stay); it goes with the last of them.
    (want, skipped)
}

/// Follow dockerd until the task is dropped.
pub async fn run(
    daemon: Arc<Daemon>,
    socket: PathBuf,
    drain_time: Duration,
    status: Arc<SourceStatus>,
) {
    let owner = format!("docker {}", socket.display());
    let client = Client {
        endpoint: Endpoint::Unix(socket),
        timeout: REQUEST_TIMEOUT,
    };
    let mut rec = Reconciler::new(daemon, owner.clone(), drain_time, status.clone());
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let mut backoff = Duration::from_millis(100);
    let mut last_err = String::new();
    loop {
        let started = Instant::now();
        let e = follow(&client, &mut known, &mut rec, &status).await;
        let was = status.connected.load(std::sync::atomic::Ordering::Relaxed) == 1;
        status.set_connected(false);
        if was || e != last_err {
            tracing::warn!("{owner}: {e}; keeping the table as it is and retrying");
        }
        last_err = e;
        if started.elapsed() > Duration::from_secs(5) {
            backoff = Duration::from_millis(100);
        }
        let until = tokio::time::Instant::now() + backoff;
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250).min(backoff)).await;
            rec.tick().await;
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// `filters` query value: only containers with the service label.
fn filters(events: bool) -> String {
    let f = if events {
        r#"{"type":["container"],"label":["rvs.service"]}"#
    } else {
        r#"{"label":["rvs.service"]}"#
    };
    let mut out = String::new();
    for b in f.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn inspect(client: &Client, id: &str) -> Result<Option<Container>, String> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("container id `{id}'"));
    }
    let (st, body) = client
        .request("GET", &format!("/containers/{id}/json"), &[], None)
        .await
        .map_err(|e| format!("inspect {id}: {e}"))?;
    match st {
        200 => parse_inspect(&body).map(Some),
        404 => Ok(None),
        _ => Err(format!("inspect {id}: HTTP {st}")),
    }
}

async fn apply(known: &BTreeMap<String, Known>, rec: &mut Reconciler) {
    let (want, skipped) = desired(known);
    for s in skipped {
        rec.skip(s);
    }
    rec.apply(&want).await;
}

/// One connection: open the event stream, read the full list, then apply events until the
/// stream is lost. Returns why it was lost.
async fn follow(
    client: &Client,
    known: &mut BTreeMap<String, Known>,
    rec: &mut Reconciler,
    status: &SourceStatus,
) -> String {
    // The stream first, then the list: nothing that happens in between is missed.
    let (head, stream) = match client
        .open(
            "GET",
            &format!("/events?filters={}", filters(true)),
            &[],
            None,
        )
        .await
    {
        Ok(x) => x,
        Err(e) => return format!("events: {e}"),
    };
    if head.status != 200 {
        return format!("events: HTTP {}", head.status);
    }
    let (st, body) = match client
        .request(
            "GET",
            &format!("/containers/json?filters={}", filters(false)),
            &[],
            None,
        )
        .await
    {
        Ok(x) => x,
        Err(e) => return format!("list: {e}"),
    };
    if st != 200 {
        return format!("list: HTTP {st}");
    }
    let ids = match parse_list(&body) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let mut fresh = BTreeMap::new();
    for id in ids {
        match inspect(client, &id).await {
            Ok(Some(c)) => {
                // A container being stopped stays stopping across a resync.
                let stopping = known.get(&c.id).is_some_and(|k| k.stopping);
                fresh.insert(c.id.clone(), Known { c, stopping });
            }
            Ok(None) => {}
            Err(e) => return e,
        }
    }
    *known = fresh;
    SourceStatus::count(&status.resyncs, 1);
    status.set_connected(true);
    tracing::info!(
        "{}: following dockerd: {} labelled container(s) running",
        rec.owner(),
        known.len()
    );
    apply(known, rec).await;

    let (mut rx, _reader) = stream.spawn_lines("event stream");
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else { return "the event stream ended".into() };
                let mut lines = vec![line];
                let until = tokio::time::Instant::now() + COALESCE;
                while let Ok(Some(l)) = tokio::time::timeout_at(until, rx.recv()).await {
                    lines.push(l);
                }
                // Coalesce: each container is inspected once per batch, whatever the number
                // of its events.
                let mut look: BTreeSet<String> = BTreeSet::new();
                let mut lost = None;
                for l in lines {
                    let l = match l {
                        Ok(l) => l,
                        Err(e) => { lost = Some(e); break; }
                    };
                    let ev = match parse_event(&l) {
                        Ok(Some(ev)) => ev,
                        Ok(None) => continue,
                        Err(e) => {
                            rec.skip(format!("unreadable event: {e}"));
                            continue;
                        }
                    };
                    SourceStatus::count(&status.events, 1);
                    note_event(&ev, known, &mut look);
                }
                for id in look {
                    match inspect(client, &id).await {
                        Ok(Some(c)) => {
                            let stopping = known.get(&c.id).is_some_and(|k| k.stopping);
                            known.insert(c.id.clone(), Known { c, stopping });
                        }
                        Ok(None) => {
                            known.remove(&id);
                        }
                        Err(e) => {
                            apply(known, rec).await;
                            return e;
                        }
                    }
                }
                apply(known, rec).await;
                if let Some(e) = lost {
                    return e;
                }
            }
            _ = tick.tick() => rec.tick().await,
        }
    }
}

/// Update what is known from one event; containers to inspect again go into `look`.
fn note_event(ev: &Event, known: &mut BTreeMap<String, Known>, look: &mut BTreeSet<String>) {
    let action = ev.action.as_str();
    match action {
        // `docker stop` sends SIGTERM first and SIGKILL later: drain on the first.
        "kill" if matches!(ev.signal, Some(15) | Some(9) | Some(2) | Some(3)) => {
            if let Some(k) = known.get_mut(&ev.id) {
                k.stopping = true;
            }
        }
        "die" | "stop" | "destroy" | "oom" => {
            known.remove(&ev.id);
            look.remove(&ev.id);
        }
        "start" | "restart" | "unpause" | "pause" | "rename" | "update" => {
            if let Some(k) = known.get_mut(&ev.id) {
                k.stopping = false;
            }
            if action == "start" || action == "restart" {
                known.remove(&ev.id);
            }
            look.insert(ev.id.clone());
        }
        a if a.starts_with("health_status") => {
            look.insert(ev.id.clone());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_decode() {
        let l = parse_labels(&labels(&[
            ("rvs.service", "tcp:127.0.0.1:8080"),
            ("rvs.port", "80"),
            ("rvs.weight", "3"),
            ("other", "x"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (l.port, l.weight, l.method),
            (80, 3, m::ForwardMethod::Masq)
        );
        assert_eq!(parse_labels(&labels(&[("a", "b")])), Ok(None));
        let v6 = parse_service_label("udp:[::1]:53").unwrap();
        assert_eq!(v6.to_string(), "UDP [::1]:53");
        for bad in [
            &[("rvs.service", "tcp:1.2.3.4")][..],
            &[("rvs.service", "icmp:1.2.3.4:80")],
            &[("rvs.service", "tcp:1.2.3.4:80"), ("rvs.weight", "-1")],
            &[("rvs.service", "tcp:1.2.3.4:80"), ("rvs.method", "x")],
            &[("rvs.service", "tcp:1.2.3.4:80"), ("rvs.wieght", "1")],
        ] {
            assert!(parse_labels(&labels(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn readiness_follows_state_health_and_stop() {
        let c = |name: &str, ip: &str, health: Option<&str>| Known {
            c: Container {
                id: format!("id{name}"),
                name: name.into(),
                labels: labels(&[("rvs.service", "tcp:127.0.0.1:80"), ("rvs.port", "8080")]),
                running: true,
                health: health.map(str::to_string),
                addrs: [("bridge".to_string(), ip.parse().unwrap())].into(),
            },
            stopping: false,
        };
        let mut known = BTreeMap::new();
        known.insert("a".into(), c("a", "10.0.0.2", None));
        known.insert("b".into(), c("b", "10.0.0.3", Some("healthy")));
        known.insert("c".into(), c("c", "10.0.0.4", Some("starting")));
        let mut d = c("d", "10.0.0.5", None);
        d.stopping = true;
        known.insert("d".into(), d);
        let (want, skipped) = desired(&known);
        assert!(skipped.is_empty());
        let dests: Vec<_> = want.values().next().unwrap().dests.keys().collect();
        assert_eq!(dests.len(), 2, "{dests:?}");
    }

    #[test]
    fn events_decode() {
        let l = br#"{"status":"kill","id":"abc","Type":"container","Action":"kill","Actor":{"ID":"abc","Attributes":{"signal":"15"}}}"#;
        assert_eq!(
            parse_event(l),
            Ok(Some(Event {
                id: "abc".into(),
                action: "kill".into(),
                signal: Some(15)
            }))
        );
        assert_eq!(
            parse_event(br#"{"Type":"network","Action":"connect","Actor":{"ID":"n"}}"#),
            Ok(None)
        );
        assert!(parse_event(b"[").is_err());
    }
}
