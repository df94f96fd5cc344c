//! `rvsd --etcd URL --etcd-prefix P`: etcd as the table's source of truth.
//!
//! Key layout under the prefix `P` (documented in docs/containers.md):
//!
//! * `P/services/NAME` → a service, JSON with the fields of `rvsadm -A`
//!   (`{"protocol":"tcp","addr":"10.0.0.1","port":80,"scheduler":"rr"}`);
//! * `P/servers/NAME/ID` → a real server of service `NAME`, JSON with the fields of
//!   `rvsadm -a` (`{"addr":"10.0.1.1","port":8080,"weight":1,"method":"masq"}`). Put it
//!   with a lease and it disappears — drained — when the lease expires: a dead host removes
//!   itself.
//!
//! rvsd reads the whole prefix (`/v3/kv/range`), applies it as a diff ([`Reconciler`]), then
//! watches the prefix from the next revision (`/v3/watch`, a chunked stream of JSON lines).
//! Every change updates its copy of the prefix and the whole wanted table is recomputed and
//! applied as a diff; changes that arrive together are coalesced into one diff. When etcd is
//! lost, the table stays as it is (`rvs_discovery_connected{source="etcd"} 0`) and rvsd
//! reconnects with backoff, resuming the watch from the last revision it applied — etcd
//! sends exactly the changes after it, so none is missed or applied twice; if that revision
//! was compacted away, rvsd reads the prefix again and applies the difference.
//!
//! A key or value that cannot be decoded is skipped with its reason logged (once) and
//! counted; the rest is applied. The decoders here are pure and fuzzed
//! (`fuzz/fuzz_targets/discovery_decode.rs`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_control::model as m;
use serde::Deserialize;
use serde_json::Value;

use super::http::{Client, Endpoint, HttpError};
use super::reconcile::{want_service, Desired, Reconciler};
use super::status::SourceStatus;
use crate::daemon::Daemon;

/// How to reach etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// `http://HOST:PORT` or `https://HOST:PORT`, comma-separated for several members.
    pub urls: String,
    /// The key prefix (`/rvs`).
    pub prefix: String,
    /// CA certificate(s) (PEM) that sign etcd's server certificate (`https://`).
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's client-certificate authentication.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// `NAME[:PASSWORD]` for etcd's user authentication (the password may come from
    /// `$RVS_ETCD_PASSWORD` instead).
    pub user: Option<String>,
}

/// Checked options: endpoints, normalised prefix, credentials.
pub struct Etcd {
    clients: Vec<Client>,
    /// The prefix without a trailing `/`; keys are `prefix/services/...`.
    prefix: String,
    user: Option<(String, String)>,
    /// Text naming this source in logs and rvsadm refusals.
    pub owner: String,
}

/// How long one request to etcd may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the connection is probed while the watch is quiet (a silent network loss does
/// not end the stream).
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// Events arriving within this window after a first one are applied together.
const COALESCE: Duration = Duration::from_millis(20);

fn tls_config(o: &EtcdOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ca = o
        .cacert
        .as_ref()
        .ok_or("an https:// etcd URL needs --etcd-cacert (the CA that signs etcd's certificate)")?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("--etcd-cacert {}: {e}", ca.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("--etcd-cacert {}: {e}", ca.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("--etcd-cacert {}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let cfg = match (&o.cert, &o.key) {
        (Some(cert), Some(key)) => {
            let chain: Result<Vec<_>, _> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("--etcd-cert {}: {e}", cert.display()))?
                .collect();
            let chain = chain.map_err(|e| format!("--etcd-cert {}: {e}", cert.display()))?;
            let k = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("--etcd-key {}: {e}", key.display()))?;
            b.with_client_auth_cert(chain, k)
                .map_err(|e| format!("--etcd-cert/--etcd-key: {e}"))?
        }
        (None, None) => b.with_no_client_auth(),
        _ => return Err("--etcd-cert and --etcd-key go together".into()),
    };
    Ok(Arc::new(cfg))
}

/// Parse `http[s]://HOST:PORT` (an IPv6 host in brackets).
fn parse_url(u: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = u.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = u.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!(
            "etcd URL `{u}': http://HOST:PORT or https://HOST:PORT expected"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r
            .split_once("]:")
            .ok_or_else(|| format!("etcd URL `{u}': [IPv6]:PORT expected"))?;
        (h.to_string(), p)
    } else {
        let (h, p) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("etcd URL `{u}': no port"))?;
        (h.to_string(), p)
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("etcd URL `{u}': bad port `{port}'"))?;
    if host.is_empty() || host.contains('/') {
        return Err(format!("etcd URL `{u}': bad host"));
    }
    Ok((tls, host, port))
}

impl Etcd {
    /// Check the options (URLs, prefix, TLS files, credentials) without contacting etcd.
    pub fn new(o: &EtcdOptions) -> Result<Etcd, String> {
        let prefix = o.prefix.trim_end_matches('/').to_string();
        if prefix.is_empty() {
            return Err(
                "--etcd-prefix must not be empty or `/' (rvsd would read every key)".into(),
            );
        }
        let mut clients = Vec::new();
        let mut tls = None;
        for u in o.urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let (is_tls, host, port) = parse_url(u)?;
            let tls = if is_tls {
                if tls.is_none() {
                    tls = Some(tls_config(o)?);
                }
                tls.clone()
            } else {
                None
            };
            clients.push(Client {
                endpoint: Endpoint::Tcp { host, port, tls },
                timeout: REQUEST_TIMEOUT,
            });
        }
        if clients.is_empty() {
            return Err("--etcd: no URL".into());
        }
        if o.cacert.is_some() && !o.urls.contains("https://") {
            return Err("--etcd-cacert/--etcd-cert/--etcd-key need an https:// etcd URL".into());
        }
        let user = match &o.user {
            None => None,
            Some(u) => {
                let (name, pw) = match u.split_once(':') {
                    Some((n, p)) => (n.to_string(), p.to_string()),
                    None => (
                        u.clone(),
                        std::env::var("RVS_ETCD_PASSWORD").map_err(|_| {
                            format!(
                                "--etcd-user {u}: no password (NAME:PASSWORD, or \
                                 $RVS_ETCD_PASSWORD)"
                            )
                        })?,
                    ),
                };
                if name.is_empty() {
                    return Err("--etcd-user: empty user name".into());
                }
                Some((name, pw))
            }
        };
        Ok(Etcd {
            owner: format!("etcd {} (prefix {prefix})", o.urls),
            clients,
            prefix,
            user,
        })
    }
}

// ---- base64 (etcd's JSON gateway carries keys and values as base64 bytes) ----

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(char::from(B64[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (padding optional); `None` if it is not base64.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(out)
}

/// The first key after every key that starts with `p` (etcd's `range_end` of a prefix).
pub fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut e = p.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return e;
        }
    }
    vec![0]
}

// ---- the key layout and the values ----

/// What a key under the prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// `P/services/NAME`.
    Service(String),
    /// `P/servers/NAME/ID`.
    Server {
        /// The service's NAME.
        service: String,
        /// The real server's ID (any text; one real server per key).
        id: String,
    },
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
}

/// Decode a key of the layout (`prefix` without its trailing `/`).
pub fn parse_key(prefix: &str, key: &[u8]) -> Result<KeyKind, String> {
    let k = std::str::from_utf8(key).map_err(|_| "the key is not UTF-8".to_string())?;
    let rest = k
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| format!("not under {prefix}/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["services", name] if valid_name(name) => Ok(KeyKind::Service(name.to_string())),
        ["servers", svc, id] if valid_name(svc) && valid_name(id) => Ok(KeyKind::Server {
            service: svc.to_string(),
            id: id.to_string(),
        }),
        _ => Err(format!(
            "not a key of the layout ({prefix}/services/NAME or {prefix}/servers/NAME/ID; \
             names of letters, digits and -_.:@)"
        )),
    }
}

/// A service value: the fields of `rvsadm -A`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceValue {
    protocol: Option<String>,
    addr: Option<IpAddr>,
    port: Option<u16>,
    fwmark: Option<u32>,
    family: Option<String>,
    scheduler: Option<String>,
    persistent: Option<u32>,
    netmask: Option<String>,
    #[serde(default)]
    one_packet: bool,
    #[serde(default)]
    sched_flags: Vec<String>,
    pe: Option<String>,
    proxy_protocol: Option<String>,
}

/// A real-server value: the fields of `rvsadm -a`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerValue {
    addr: IpAddr,
    port: Option<u16>,
    weight: Option<u32>,
    method: Option<String>,
    #[serde(default)]
    u_threshold: u32,
    #[serde(default)]
    l_threshold: u32,
    tun_type: Option<String>,
    #[serde(default)]
    tun_port: u16,
    tun_csum: Option<String>,
}

fn json<'a, T: Deserialize<'a>>(value: &'a [u8]) -> Result<T, String> {
    let text = std::str::from_utf8(value).map_err(|_| "the value is not UTF-8".to_string())?;
    serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))
}

/// The protocol name of a `tcp`/`udp`/`sctp` field.
pub fn protocol(s: &str) -> Result<m::Protocol, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(m::Protocol::Tcp),
        "udp" => Ok(m::Protocol::Udp),
        "sctp" => Ok(m::Protocol::Sctp),
        _ => Err(format!("protocol `{s}': tcp, udp or sctp expected")),
    }
}

/// A forwarding method as `rvsadm -a` names it (`-m`/`masq`/`nat`, `-g`/`route`/`dr`,
/// `-i`/`tunnel`/`ipip`, `fullnat`).
pub fn method(s: &str) -> Result<m::ForwardMethod, String> {
    match s.to_ascii_lowercase().as_str() {
        "masq" | "masquerading" | "nat" | "m" => Ok(m::ForwardMethod::Masq),
        "route" | "dr" | "gatewaying" | "direct" | "g" => Ok(m::ForwardMethod::Route),
        "tunnel" | "tun" | "ipip" | "i" => Ok(m::ForwardMethod::Tunnel),
        "fullnat" => Ok(m::ForwardMethod::FullNat),
        _ => Err(format!(
            "method `{s}': masq, route, tunnel or fullnat expected"
        )),
    }
}

/// Decode a service value (`name` is its key's NAME, for messages only).
pub fn parse_service(value: &[u8]) -> Result<m::ServiceSpec, String> {
    let v: ServiceValue = json(value)?;
    let key = match (v.fwmark, v.protocol.as_deref(), v.addr) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err("fwmark goes without protocol and addr".into())
        }
        (Some(0), ..) => return Err("fwmark must be 1 or more".into()),
        (Some(mark), None, None) => m::ServiceKey::Fwmark {
            mark,
            family: match v.family.as_deref() {
                None | Some("inet") | Some("ipv4") => m::Family::Inet,
                Some("inet6") | Some("ipv6") => m::Family::Inet6,
                Some(f) => return Err(format!("family `{f}': inet or inet6 expected")),
            },
        },
        (None, Some(p), Some(addr)) => {
            if v.family.is_some() {
                return Err("family goes only with fwmark (addr gives the family)".into());
            }
            let port = v.port.ok_or("port missing")?;
            if port == 0 && v.persistent.is_none() {
                return Err("port 0 (all ports) needs persistent".into());
            }
            m::ServiceKey::Addr {
                protocol: protocol(p)?,
                addr,
                port,
            }
        }
        (None, None, _) => return Err("protocol missing (or fwmark)".into()),
        (None, _, None) => return Err("addr missing".into()),
    };
    let mut spec = m::ServiceSpec::with_defaults(key);
    if let Some(s) = v.scheduler {
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("scheduler `{s}'"));
        }
        spec.scheduler = s;
    }
    if let Some(t) = v.persistent {
        if t == 0 {
            return Err("persistent must be 1 second or more".into());
        }
        spec.flags.persistent = true;
        spec.timeout = t;
    }
    if let Some(nm) = v.netmask {
        if !spec.flags.persistent {
            return Err("netmask goes with persistent".into());
        }
        spec.netmask = match spec.key.family() {
            m::Family::Inet => {
                let a: std::net::Ipv4Addr = nm
                    .parse()
                    .map_err(|_| format!("netmask `{nm}': an IPv4 mask expected"))?;
                u32::from(a)
            }
            m::Family::Inet6 => nm
                .trim_start_matches('/')
                .parse::<u32>()
                .ok()
                .filter(|p| (1..=128).contains(p))
                .ok_or_else(|| format!("netmask `{nm}': an IPv6 prefix length 1-128 expected"))?,
        };
    }
    spec.flags.one_packet = v.one_packet;
    for f in &v.sched_flags {
        match f.as_str() {
            "flag-1" | "sh-fallback" | "mh-fallback" => spec.flags.sched1 = true,
            "flag-2" | "sh-port" | "mh-port" => spec.flags.sched2 = true,
            "flag-3" => spec.flags.sched3 = true,
            _ => {
                return Err(format!(
                    "sched_flags `{f}': flag-1..3, sh-/mh-fallback, sh-/mh-port expected"
                ))
            }
        }
    }
    if let Some(pe) = v.pe {
        if pe != "sip" {
            return Err(format!("pe `{pe}': only sip"));
        }
        spec.pe_name = Some(pe);
    }
    spec.proxy_protocol = match v.proxy_protocol.as_deref() {
        None | Some("none") => m::ProxyProtocol::None,
        Some("v1") => m::ProxyProtocol::V1,
        Some("v2") => m::ProxyProtocol::V2,
        Some(p) => return Err(format!("proxy_protocol `{p}': v1 or v2 expected")),
    };
    Ok(spec)
}

/// Decode a real-server value for service `svc`. As with `rvsadm -a`, the port defaults to
/// the service's and is the service's for direct routing and tunnelling; the method defaults
/// to masq (the one both data planes serve) and the weight to 1.
pub fn parse_server(svc: &m::ServiceSpec, value: &[u8]) -> Result<m::DestSpec, String> {
    let v: ServerValue = json(value)?;
    let svc_port = match svc.key {
        m::ServiceKey::Addr { port, .. } => Some(port),
        m::ServiceKey::Fwmark { .. } => None,
    };
    let method = match v.method.as_deref() {
        Some(s) => method(s)?,
        None => m::ForwardMethod::Masq,
    };
    let mut port = v.port.or(svc_port).unwrap_or(0);
    if matches!(method, m::ForwardMethod::Route | m::ForwardMethod::Tunnel) {
        if let Some(p) = svc_port {
            port = p;
        }
    }
    if port == 0 && !matches!(method, m::ForwardMethod::Route | m::ForwardMethod::Tunnel) {
        return Err("port missing (the service has none to default to)".into());
    }
    let weight = v.weight.unwrap_or(1);
    if weight > 65535 {
        return Err(format!("weight {weight}: 0-65535 expected"));
    }
    if v.l_threshold > v.u_threshold && v.u_threshold != 0 {
        return Err("l_threshold above u_threshold".into());
    }
    let mut d = m::DestSpec::with_defaults(v.addr, port);
    d.weight = weight;
    d.method = method;
    d.u_threshold = v.u_threshold;
    d.l_threshold = v.l_threshold;
    if let Some(t) = v.tun_type {
        d.tun_type = match t.as_str() {
            "ipip" => m::TunnelType::Ipip,
            "gue" => m::TunnelType::Gue,
            "gre" => m::TunnelType::Gre,
            _ => return Err(format!("tun_type `{t}': ipip, gue or gre expected")),
        };
    }
    d.tun_port = v.tun_port;
    if d.tun_type == m::TunnelType::Gue && d.tun_port == 0 {
        return Err("tun_type gue needs tun_port".into());
    }
    if let Some(c) = v.tun_csum {
        d.tun_csum = match c.as_str() {
            "nocsum" => m::TunnelCsum::NoCsum,
            "csum" => m::TunnelCsum::Csum,
            "remcsum" => m::TunnelCsum::RemCsum,
            _ => return Err(format!("tun_csum `{c}': nocsum, csum or remcsum expected")),
        };
    }
    Ok(d)
}

/// The table the keys under `prefix` describe, and the reasons for what was skipped.
/// A service appears only once: a second NAME with the same VIP is skipped, as is a second
/// ID with the same real server.
pub fn desired(prefix: &str, kvs: &BTreeMap<Vec<u8>, Vec<u8>>) -> (Desired, Vec<String>) {
    let mut skipped = Vec::new();
    let shown = |k: &[u8]| {
        String::from_utf8_lossy(k)
            .chars()
            .take(200)
            .collect::<String>()
    };
    let mut services: BTreeMap<String, m::ServiceSpec> = BTreeMap::new();
    let mut servers: Vec<(String, String, &Vec<u8>, &Vec<u8>)> = Vec::new();
    for (k, v) in kvs {
        match parse_key(prefix, k) {
            Err(e) => skipped.push(format!("key {}: {e}", shown(k))),
            Ok(KeyKind::Service(name)) => match parse_service(v) {
                Ok(s) => {
                    services.insert(name, s);
                }
                Err(e) => skipped.push(format!("key {}: {e}", shown(k))),
            },
            Ok(KeyKind::Server { service, id }) => servers.push((service, id, k, v)),
        }
    }
    let mut want = Desired::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (name, spec) in &services {
        let text = spec.key.to_string();
        if let Some(first) = names.get(&text) {
            skipped.push(format!(
                "key {prefix}/services/{name}: {text} is already service {first}"
            ));
            continue;
        }
        names.insert(text, name.clone());
        want_service(&mut want, spec.clone());
    }
    for (service, id, k, v) in servers {
        let Some(spec) = services.get(&service) else {
            skipped.push(format!("key {}: no service {service}", shown(k)));
            continue;
        };
        let text = spec.key.to_string();
        if names.get(&text) != Some(&service) {
            // Its service was skipped as a duplicate; said above.
            continue;
        }
        match parse_server(spec, v) {
            Err(e) => skipped.push(format!("key {}: {e}", shown(k))),
            Ok(d) => {
                let Some(ds) = want.get_mut(&text) else {
                    continue;
                };
                let idk = (d.addr, d.port);
                if ds.dests.contains_key(&idk) {
                    skipped.push(format!(
                        "key {}: real server {} of {service} is also under another ID ({id} \
                         is ignored)",
                        shown(k),
                        std::net::SocketAddr::new(d.addr, d.port)
                    ));
                    continue;
                }
                ds.dests.insert(idk, d);
            }
        }
    }
    (want, skipped)
}

// ---- the gateway's JSON ----

/// etcd's int64s are JSON strings in the gateway (`"revision":"12"`); numbers are accepted
/// too.
fn int(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// One key-value pair as etcd sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for a deletion).
    pub value: Vec<u8>,
    /// The revision of its last change (of the deletion, for a DELETE event).
    pub mod_revision: u64,
}

fn kv_of(v: &Value) -> Result<Kv, String> {
    let b = |f: &str| -> Result<Vec<u8>, String> {
        match v.get(f) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => b64_decode(s).ok_or_else(|| format!("{f} is not base64")),
            Some(_) => Err(format!("{f} is not a string")),
        }
    };
    let key = b("key")?;
    if key.is_empty() {
        return Err("kv without key".into());
    }
    Ok(Kv {
        key,
        value: b("value")?,
        mod_revision: int(v.get("mod_revision")).unwrap_or(0),
    })
}

/// A `/v3/kv/range` answer: the revision and the pairs.
pub fn parse_range(body: &[u8]) -> Result<(u64, Vec<Kv>), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("range answer: {e}"))?;
    if let Some(e) = v.get("error").or_else(|| v.get("message")) {
        return Err(format!("etcd: {e}"));
    }
    let rev = int(v.get("header").and_then(|h| h.get("revision")))
        .ok_or("range answer without header.revision")?;
    let mut out = Vec::new();
    if let Some(kvs) = v.get("kvs") {
        let arr = kvs.as_array().ok_or("kvs is not a list")?;
        for kv in arr {
            out.push(kv_of(kv)?);
        }
    }
    if v.get("more").and_then(Value::as_bool) == Some(true) {
        return Err("range answer is partial (more: true)".into());
    }
    Ok((rev, out))
}

/// One event of a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key was created or changed.
    Put(Kv),
    /// A key was deleted (or its lease expired).
    Delete(Kv),
}

/// One line of a `/v3/watch` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMsg {
    /// The watch is set up (or a progress notification): the store's revision.
    Progress(u64),
    /// Changes, in revision order.
    Events(u64, Vec<Event>),
    /// The watch was cancelled; `compacted` is set when the revision asked for was compacted.
    Canceled {
        /// The compaction revision, if that is the reason.
        compacted: Option<u64>,
        /// etcd's reason text.
        reason: String,
    },
}

/// Decode one line of a watch stream.
pub fn parse_watch_line(line: &[u8]) -> Result<WatchMsg, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("watch line: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("etcd: {e}"));
    }
    let r = v.get("result").ok_or("watch line without result")?;
    let rev = int(r.get("header").and_then(|h| h.get("revision"))).unwrap_or(0);
    if r.get("canceled").and_then(Value::as_bool) == Some(true) {
        let compacted = int(r.get("compact_revision")).filter(|c| *c > 0);
        let reason = r
            .get("cancel_reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        return Ok(WatchMsg::Canceled { compacted, reason });
    }
    let Some(evs) = r.get("events") else {
        return Ok(WatchMsg::Progress(rev));
    };
    let arr = evs.as_array().ok_or("events is not a list")?;
    let mut out = Vec::with_capacity(arr.len());
    for e in arr {
        let kv = kv_of(e.get("kv").ok_or("event without kv")?)?;
        match e.get("type").and_then(Value::as_str) {
            None | Some("PUT") => out.push(Event::Put(kv)),
            Some("DELETE") => out.push(Event::Delete(kv)),
            Some(t) => return Err(format!("event type `{t}'")),
        }
    }
    Ok(WatchMsg::Events(rev, out))
}

// ---- following etcd ----

/// What rvsd knows of the prefix.
struct Store {
    kvs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The revision `kvs` is at (0: never read).
    rev: u64,
}

enum Lost {
    /// etcd is unreachable or answered an error: reconnect later.
    Down(String),
    /// The revision to resume from was compacted: read the prefix again.
    Compacted(u64),
}

impl From<HttpError> for Lost {
    fn from(e: HttpError) -> Self {
        Lost::Down(e.to_string())
    }
}

/// Follow etcd until the task is dropped.
pub async fn run(daemon: Arc<Daemon>, etcd: Etcd, drain_time: Duration, status: Arc<SourceStatus>) {
    let mut rec = Reconciler::new(daemon, etcd.owner.clone(), drain_time, status.clone());
    let mut store = Store {
        kvs: BTreeMap::new(),
        rev: 0,
    };
    let mut backoff = Duration::from_millis(100);
    let mut member = 0usize;
    let mut last_err = String::new();
    loop {
        let client = &etcd.clients[member % etcd.clients.len()];
        let started = Instant::now();
        let r = follow(&etcd, client, &mut store, &mut rec, &status).await;
        let was = status.connected.load(std::sync::atomic::Ordering::Relaxed) == 1;
        status.set_connected(false);
        match r {
            Lost::Compacted(c) => {
                tracing::warn!(
                    "{}: revision {} was compacted (to {c}): reading the prefix again",
                    etcd.owner,
                    store.rev + 1
                );
                store.rev = 0;
                continue;
            }
            Lost::Down(e) => {
                if was || e != last_err {
                    tracing::warn!(
                        "{}: {e}; keeping the table as it is (revision {}) and retrying",
                        etcd.owner,
                        store.rev
                    );
                }
                last_err = e;
            }
        }
        if started.elapsed() > Duration::from_secs(5) {
            backoff = Duration::from_millis(100);
        }
        member += 1;
        // Drains go on while etcd is away.
        let until = tokio::time::Instant::now() + backoff;
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250).min(backoff)).await;
            rec.tick().await;
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn authenticate(etcd: &Etcd, client: &Client) -> Result<Option<String>, Lost> {
    let Some((name, pw)) = &etcd.user else {
        return Ok(None);
    };
    let body = serde_json::json!({"name": name, "password": pw}).to_string();
    let (st, b) = client
        .request("POST", "/v3/auth/authenticate", &[], Some(body.as_bytes()))
        .await?;
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    match v.get("token").and_then(Value::as_str) {
        Some(t) if st == 200 => Ok(Some(t.to_string())),
        _ => Err(Lost::Down(format!(
            "authentication as {name} failed (HTTP {st}): {}",
            String::from_utf8_lossy(&b)
                .chars()
                .take(200)
                .collect::<String>()
        ))),
    }
}

/// Recompute the wanted table from the store and apply it.
async fn apply_store(etcd: &Etcd, store: &Store, rec: &mut Reconciler, status: &SourceStatus) {
    let (want, skipped) = desired(&etcd.prefix, &store.kvs);
    for s in skipped {
        rec.skip(s);
    }
    rec.apply(&want).await;
    status
        .revision
        .store(store.rev, std::sync::atomic::Ordering::Relaxed);
}

/// One connection: read the prefix if needed, watch from the next revision, apply changes,
/// until etcd is lost.
async fn follow(
    etcd: &Etcd,
    client: &Client,
    store: &mut Store,
    rec: &mut Reconciler,
    status: &SourceStatus,
) -> Lost {
    match follow_inner(etcd, client, store, rec, status).await {
        Ok(never) => match never {},
        Err(l) => l,
    }
}

async fn follow_inner(
    etcd: &Etcd,
    client: &Client,
    store: &mut Store,
    rec: &mut Reconciler,
    status: &SourceStatus,
) -> Result<std::convert::Infallible, Lost> {
    let token = authenticate(etcd, client).await?;
    let auth: Vec<(&str, &str)> = match &token {
        Some(t) => vec![("Authorization", t.as_str())],
        None => Vec::new(),
    };
    let pfx = format!("{}/", etcd.prefix);
    let key = b64_encode(pfx.as_bytes());
    let end = b64_encode(&prefix_end(pfx.as_bytes()));
    if store.rev == 0 {
        let body = serde_json::json!({"key": key, "range_end": end}).to_string();
        let (st, b) = client
            .request("POST", "/v3/kv/range", &auth, Some(body.as_bytes()))
            .await?;
        if st != 200 {
            return Err(Lost::Down(format!(
                "range: HTTP {st}: {}",
                String::from_utf8_lossy(&b)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        let (rev, kvs) = parse_range(&b).map_err(Lost::Down)?;
        SourceStatus::count(&status.resyncs, 1);
        store.kvs = kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        store.rev = rev;
        tracing::info!(
            "{}: read {} key(s) at revision {rev}",
            etcd.owner,
            store.kvs.len()
        );
        apply_store(etcd, store, rec, status).await;
    }
    let body = serde_json::json!({"create_request": {
        "key": key, "range_end": end, "start_revision": store.rev + 1, "progress_notify": true}})
    .to_string();
    // The watch stream stays open: no overall timeout, only on its head.
    let (head, mut stream) = client
        .open("POST", "/v3/watch", &auth, Some(body.as_bytes()))
        .await?;
    if head.status != 200 {
        let b = stream.read_all().await.unwrap_or_default();
        return Err(Lost::Down(format!(
            "watch: HTTP {}: {}",
            head.status,
            String::from_utf8_lossy(&b)
                .chars()
                .take(200)
                .collect::<String>()
        )));
    }
    // Lines are read by a task of their own, so that waiting for one is cancel-safe and
    // coalescing can look at what is already there.
    let (mut rx, _reader) = stream.spawn_lines("watch stream");
    let mut created = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.reset();
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else {
                    return Err(Lost::Down("the watch stream ended".into()));
                };
                let mut changed = handle_line(etcd, line.map_err(Lost::Down)?, store, status, &mut created)?;
                // Coalesce: whatever arrives within the window goes into the same diff.
                let until = tokio::time::Instant::now() + COALESCE;
                while let Ok(Some(l)) = tokio::time::timeout_at(until, rx.recv()).await {
                    changed |= handle_line(etcd, l.map_err(Lost::Down)?, store, status, &mut created)?;
                }
                if changed {
                    apply_store(etcd, store, rec, status).await;
                }
            }
            _ = tick.tick() => rec.tick().await,
            _ = probe.tick() => {
                // A silent network loss does not end the stream: ask etcd something small.
                let b = serde_json::json!({"key": key, "range_end": end, "count_only": true, "limit": 1}).to_string();
                match client.request("POST", "/v3/kv/range", &auth, Some(b.as_bytes())).await {
                    Ok((200, _)) => {}
                    Ok((st, _)) => return Err(Lost::Down(format!("probe: HTTP {st}"))),
                    Err(e) => return Err(Lost::Down(format!("probe: {e}"))),
                }
            }
        }
    }
}

/// Apply one watch line to the store; whether the prefix changed.
fn handle_line(
    etcd: &Etcd,
    line: Vec<u8>,
    store: &mut Store,
    status: &SourceStatus,
    created: &mut bool,
) -> Result<bool, Lost> {
    let msg = match parse_watch_line(&line) {
        Ok(m) => m,
        Err(e) => {
            // A line we cannot read may have held changes: start over from the revision.
            return Err(Lost::Down(format!("unreadable watch line: {e}")));
        }
    };
    match msg {
        WatchMsg::Canceled { compacted, reason } => match compacted {
            Some(c) => Err(Lost::Compacted(c)),
            None => Err(Lost::Down(format!("etcd cancelled the watch: {reason}"))),
        },
        WatchMsg::Progress(_) => {
            if !*created {
                *created = true;
                status.set_connected(true);
                tracing::info!("{}: watching from revision {}", etcd.owner, store.rev + 1);
            }
            Ok(false)
        }
        WatchMsg::Events(_, evs) => {
            let mut changed = false;
            let mut top = store.rev;
            for e in evs {
                let kv = match &e {
                    Event::Put(kv) | Event::Delete(kv) => kv,
                };
                if kv.mod_revision != 0 && kv.mod_revision <= store.rev {
                    // Already applied (cannot happen when resuming at rev+1; guarded anyway).
                    continue;
                }
                top = top.max(kv.mod_revision);
                SourceStatus::count(&status.events, 1);
                changed = true;
                match e {
                    Event::Put(kv) => {
                        store.kvs.insert(kv.key, kv.value);
                    }
                    Event::Delete(kv) => {
                        store.kvs.remove(&kv.key);
                    }
                }
            }
            store.rev = top;
            Ok(changed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "/rvs/"] {
            let e = b64_encode(s.as_bytes());
            assert_eq!(b64_decode(&e).unwrap(), s.as_bytes(), "{s}");
        }
        assert_eq!(b64_encode(b"/rvs/"), "L3J2cy8=");
        assert_eq!(b64_decode("a*b"), None);
        assert_eq!(b64_decode("a"), None);
        assert_eq!(prefix_end(b"/rvs/"), b"/rvs0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
    }

    #[test]
    fn keys_of_the_layout() {
        assert_eq!(
            parse_key("/rvs", b"/rvs/services/web"),
            Ok(KeyKind::Service("web".into()))
        );
        assert_eq!(
            parse_key("/rvs", b"/rvs/servers/web/host-1"),
            Ok(KeyKind::Server {
                service: "web".into(),
                id: "host-1".into()
            })
        );
        for bad in [
            &b"/rvs/services/"[..],
            b"/rvs/servers/web",
            b"/rvs/x/y",
            b"/other/services/a",
            b"/rvs/services/a b",
        ] {
            assert!(parse_key("/rvs", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_carry_the_fields_of_add_service_and_add_server() {
        let s = parse_service(br#"{"protocol":"tcp","addr":"10.0.0.1","port":80,"scheduler":"rr","persistent":300,"netmask":"255.255.255.0"}"#).unwrap();
        assert_eq!(s.scheduler, "rr");
        assert!(s.flags.persistent);
        assert_eq!(s.netmask, 0xffff_ff00);
        let f = parse_service(br#"{"fwmark":7,"family":"inet6"}"#).unwrap();
        assert_eq!(
            f.key,
            m::ServiceKey::Fwmark {
                mark: 7,
                family: m::Family::Inet6
            }
        );
        for bad in [
            &br#"{"protocol":"tcp","addr":"10.0.0.1"}"#[..],
            br#"{"protocol":"tcp","addr":"10.0.0.1","port":80,"wieght":1}"#,
            br#"{"protocol":"icmp","addr":"10.0.0.1","port":80}"#,
            br#"{"fwmark":1,"protocol":"tcp"}"#,
            br#"not json"#,
            br#"{"protocol":"tcp","addr":"10.0.0.1","port":0}"#,
        ] {
            assert!(
                parse_service(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let d = parse_server(&s, br#"{"addr":"10.0.1.1","weight":3}"#).unwrap();
        assert_eq!(
            (d.port, d.weight, d.method),
            (80, 3, m::ForwardMethod::Masq)
        );
        let dr = parse_server(&s, br#"{"addr":"10.0.1.1","port":8080,"method":"route"}"#).unwrap();
        assert_eq!(
            dr.port, 80,
            "direct routing uses the service port, as ipvsadm forces"
        );
        assert!(parse_server(&s, br#"{"addr":"10.0.1.1","weight":70000}"#).is_err());
        assert!(parse_server(&s, br#"{"addr":"nope"}"#).is_err());
    }

    #[test]
    fn desired_skips_what_is_malformed_and_keeps_the_rest() {
        let mut kvs = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            kvs.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        };
        put(
            "/rvs/services/web",
            r#"{"protocol":"tcp","addr":"127.0.0.1","port":80}"#,
        );
        put(
            "/rvs/services/zdup",
            r#"{"protocol":"tcp","addr":"127.0.0.1","port":80}"#,
        );
        put("/rvs/services/bad", r#"{"protocol":"tcp""#);
        put("/rvs/servers/web/a", r#"{"addr":"127.0.0.11","port":8080}"#);
        put(
            "/rvs/servers/web/b",
            r#"{"addr":"127.0.0.12","port":8080,"weight":"x"}"#,
        );
        put("/rvs/servers/web/c", r#"{"addr":"127.0.0.11","port":8080}"#);
        put(
            "/rvs/servers/none/a",
            r#"{"addr":"127.0.0.11","port":8080}"#,
        );
        put("/rvs/junk", "x");
        let (want, skipped) = desired("/rvs", &kvs);
        assert_eq!(want.len(), 1);
        let web = want.values().next().unwrap();
        assert_eq!(web.dests.len(), 1, "{skipped:#?}");
        assert_eq!(skipped.len(), 6, "{skipped:#?}");
    }

    #[test]
    fn watch_lines_decode() {
        let created = br#"{"result":{"header":{"revision":"5"},"created":true}}"#;
        assert_eq!(parse_watch_line(created), Ok(WatchMsg::Progress(5)));
        let ev = br#"{"result":{"header":{"revision":"7"},"events":[{"kv":{"key":"L3J2cy9h","value":"eA==","mod_revision":"6"}},{"type":"DELETE","kv":{"key":"L3J2cy9h","mod_revision":"7"}}]}}"#;
        match parse_watch_line(ev).unwrap() {
            WatchMsg::Events(7, evs) => {
                assert_eq!(evs.len(), 2);
                assert!(
                    matches!(&evs[0], Event::Put(kv) if kv.key == b"/rvs/a" && kv.value == b"x")
                );
                assert!(matches!(&evs[1], Event::Delete(kv) if kv.mod_revision == 7));
            }
            o => panic!("{o:?}"),
        }
        let comp =
            br#"{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"8"}}"#;
        assert!(matches!(
            parse_watch_line(comp),
            Ok(WatchMsg::Canceled {
                compacted: Some(8),
                ..
            })
        ));
        assert!(parse_watch_line(b"{").is_err());
        assert!(parse_watch_line(br#"{"result":{"events":[{"kv":{"key":"***"}}]}}"#).is_err());
    }
}
