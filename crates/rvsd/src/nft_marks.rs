//! Firewall marks from the director's own nftables ruleset.
//!
//! An LVS operator marks traffic for a firewall-mark service (`ipvsadm -A -f 6666`) with a
//! netfilter rule on the director, e.g.
//! `nft add rule ip mangle pre ip daddr VIP tcp dport { 80, 443 } meta mark set 6666`.
//! The packet plane sees frames on an AF_PACKET tap, before netfilter, and `tpacket3_hdr`
//! carries no `skb->mark`, so the mark itself never reaches rvsd. Instead rvsd reads the
//! ruleset (`nft -j list ruleset`) and applies the rules it can express itself
//! ([`MarkRule`]: destination address, protocol, destination ports → mark) exactly where the
//! kernel's mark would be seen. Rules that set a mark in a form rvsd cannot express are
//! reported (once per change) instead of being half-applied.
//!
//! Which rules count: those in base chains hooked where IPVS would see the mark — `netdev`
//! ingress and the `prerouting` and `input` hooks of `ip`, `ip6` and `inet` tables — except in
//! rvsd's own guard table.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use rvs_packet::plane::MarkRule;
use serde_json::Value;

/// What was found in a ruleset.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// Rules the plane applies.
    pub rules: Vec<MarkRule>,
    /// One line per mark-setting rule that could not be expressed, naming it and why.
    pub unsupported: Vec<String>,
}

/// Reads the ruleset with `nft -j list ruleset` (bounded: killed after `timeout`).
pub fn read_ruleset(timeout: Duration) -> Result<Found, String> {
    let mut child = Command::new("nft")
        .args(["-j", "list", "ruleset"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft: {e}"))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("nft -j list ruleset did not finish in time".into());
            }
            Err(e) => return Err(format!("waiting for nft: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("reading nft's output: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft -j list ruleset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Extracts the mark rules of a `nft -j list ruleset` document (pure).
pub fn parse(json: &str) -> Result<Found, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| format!("nft JSON: {e}"))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft JSON: no \"nftables\" array")?;
    // Base chains where a mark is seen by IPVS: (family, table, chain).
    let mut hooked: Vec<(String, String, String)> = Vec::new();
    for it in items {
        let Some(c) = it.get("chain") else { continue };
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        let family = s("family");
        let seen = match family {
            "ip" | "ip6" | "inet" => matches!(s("hook"), "prerouting" | "input"),
            "netdev" => s("hook") == "ingress",
            _ => false,
        };
        if seen && !(family == "netdev" && s("table") == rvs_packet_io::nft::TABLE) {
            hooked.push((family.into(), s("table").into(), s("name").into()));
        }
    }
    let mut found = Found::default();
    for it in items {
        let Some(r) = it.get("rule") else { continue };
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let at = (s("family"), s("table"), s("chain"));
        if !hooked.contains(&at) {
            continue;
        }
        let exprs = r.get("expr").and_then(Value::as_array);
        let Some(exprs) = exprs.filter(|e| e.iter().any(sets_mark)) else {
            continue;
        };
        let handle = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
        let name = format!("{} {} chain {} rule handle {handle}", at.0, at.1, at.2);
        match rule(exprs) {
            Ok(v) => found.rules.extend(v),
            Err(why) => found.unsupported.push(format!("{name}: {why}")),
        }
    }
    Ok(found)
}

fn sets_mark(e: &Value) -> bool {
    e.get("mangle")
        .and_then(|m| m.get("key"))
        .and_then(|k| k.get("meta"))
        .and_then(|m| m.get("key"))
        .and_then(Value::as_str)
        == Some("mark")
}

/// The mark rules one nft rule amounts to.
fn rule(exprs: &[Value]) -> Result<Vec<MarkRule>, String> {
    let mut addr: Option<IpAddr> = None;
    let mut proto: u8 = 0;
    let mut ports: Option<Vec<(u16, u16)>> = None;
    let mut mark: Option<u32> = None;
    for e in exprs {
        if let Some(m) = e.get("match") {
            if m.get("op").and_then(Value::as_str) != Some("==") {
                return Err(format!("match operator {} is not ==", m["op"]));
            }
            let left = &m["left"];
            let right = &m["right"];
            if let Some(p) = left.get("payload") {
                let field = p.get("field").and_then(Value::as_str).unwrap_or("");
                let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("");
                match (protocol, field) {
                    ("ip" | "ip6", "daddr") => {
                        let a = right
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| format!("destination {right} is not one address"))?;
                        addr = Some(a);
                    }
                    ("tcp" | "udp" | "sctp" | "th", "dport") => {
                        if protocol != "th" {
                            proto = l4(protocol);
                        }
                        ports = Some(port_list(right)?);
                    }
                    _ => return Err(format!("match on {protocol} {field}")),
                }
            } else if let Some(k) = left.get("meta").and_then(|m| m.get("key")) {
                match k.as_str() {
                    Some("l4proto") => {
                        proto = match right.as_str() {
                            Some(p @ ("tcp" | "udp" | "sctp")) => l4(p),
                            _ => match right.as_u64() {
                                Some(n @ (6 | 17 | 132)) => n as u8,
                                _ => return Err(format!("l4proto {right}")),
                            },
                        };
                    }
                    // The plane sees only its own interfaces; an interface match narrows the
                    // rule to where it applies anyway.
                    Some("iifname" | "iif") => {}
                    Some(other) => return Err(format!("match on meta {other}")),
                    None => return Err("unreadable meta match".into()),
                }
            } else {
                return Err(format!("match on {left}"));
            }
        } else if let Some(mg) = e.get("mangle") {
            if !sets_mark(e) {
                return Err("mangles something other than the mark".into());
            }
            mark = Some(
                mg.get("value")
                    .and_then(Value::as_u64)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| format!("mark value {} is not a constant", mg["value"]))?,
            );
        } else if e.get("counter").is_some() || e.get("accept").is_some() {
            // Counting and accepting do not change which packets get the mark.
        } else {
            return Err(format!("statement {e}"));
        }
    }
    let mark = mark.ok_or("no constant mark")?;
    let addr = addr.ok_or("no single destination address (ip daddr / ip6 daddr)")?;
    if mark == 0 {
        return Err("sets mark 0".into());
    }
    let ports = ports.unwrap_or_else(|| vec![(0, u16::MAX)]);
    Ok(ports
        .into_iter()
        .map(|ports| MarkRule {
            proto,
            addr,
            ports,
            mark,
        })
        .collect())
}

fn l4(p: &str) -> u8 {
    match p {
        "tcp" => 6,
        "udp" => 17,
        _ => 132,
    }
}

/// A port, a range, or a set of those.
fn port_list(v: &Value) -> Result<Vec<(u16, u16)>, String> {
    let port = |v: &Value| {
        v.as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("port {v}"))
    };
    let range = |v: &Value| -> Result<(u16, u16), String> {
        if let Some(r) = v.get("range").and_then(Value::as_array) {
            match r.as_slice() {
                [a, b] => Ok((port(a)?, port(b)?)),
                _ => Err(format!("port range {v}")),
            }
        } else {
            let p = port(v)?;
            Ok((p, p))
        }
    };
    match v.get("set").and_then(Value::as_array) {
        Some(set) => set.iter().map(range).collect(),
        None => Ok(vec![range(v)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft -j list ruleset` of nftables 1.0.6 for:
    /// ```text
    /// table ip mangle { chain pre { type filter hook prerouting priority mangle;
    ///   ip daddr 10.0.0.1 tcp dport { 80, 443 } meta mark set 6666
    ///   ip daddr 10.0.0.2 udp dport 1000-2000 meta mark set 0x10
    ///   ip daddr 10.0.0.3 tcp dport 25 meta mark set 7 } }
    /// table inet x { chain pre { type filter hook prerouting priority mangle;
    ///   ip6 daddr fd00::1 tcp dport 80 meta mark set 8 } }
    /// ```
    const RULESET: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "mangle", "handle": 1}}, {"chain": {"family": "ip", "table": "mangle", "name": "pre", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}}, {"rule": {"family": "ip", "table": "mangle", "chain": "pre", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, 443]}}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 6666}}]}}, {"rule": {"family": "ip", "table": "mangle", "chain": "pre", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.2"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"range": [1000, 2000]}}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 16}}]}}, {"rule": {"family": "ip", "table": "mangle", "chain": "pre", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.3"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 25}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 7}}]}}, {"table": {"family": "inet", "name": "x", "handle": 2}}, {"chain": {"family": "inet", "table": "x", "name": "pre", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}}, {"rule": {"family": "inet", "table": "x", "chain": "pre", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "fd00::1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 8}}]}}]}"#;

    fn mr(proto: u8, addr: &str, ports: (u16, u16), mark: u32) -> MarkRule {
        MarkRule {
            proto,
            addr: addr.parse().unwrap(),
            ports,
            mark,
        }
    }

    #[test]
    fn reads_sets_ranges_single_ports_and_ipv6() {
        let f = parse(RULESET).unwrap();
        assert_eq!(
            f.rules,
            vec![
                mr(6, "10.0.0.1", (80, 80), 6666),
                mr(6, "10.0.0.1", (443, 443), 6666),
                mr(17, "10.0.0.2", (1000, 2000), 16),
                mr(6, "10.0.0.3", (25, 25), 7),
                mr(6, "fd00::1", (80, 80), 8),
            ]
        );
        assert!(f.unsupported.is_empty(), "{:?}", f.unsupported);
    }

    fn one_rule(chain_hook: &str, exprs: &str) -> String {
        format!(
            r#"{{"nftables": [{{"chain": {{"family": "ip", "table": "t", "name": "c", "handle": 1, "type": "filter", "hook": "{chain_hook}", "prio": 0, "policy": "accept"}}}}, {{"rule": {{"family": "ip", "table": "t", "chain": "c", "handle": 9, "expr": [{exprs}]}}}}]}}"#
        )
    }

    const DADDR: &str = r#"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.9"}}"#;
    const MARK5: &str = r#"{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 5}}"#;

    #[test]
    fn counters_and_interface_matches_do_not_hide_a_rule() {
        let iif =
            r#"{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}"#;
        let j = one_rule(
            "prerouting",
            &format!(r#"{iif}, {DADDR}, {{"counter": {{"packets": 0, "bytes": 0}}}}, {MARK5}"#),
        );
        let f = parse(&j).unwrap();
        assert_eq!(f.rules, vec![mr(0, "10.0.0.9", (0, u16::MAX), 5)]);
    }

    #[test]
    fn rules_it_cannot_express_are_reported_not_applied() {
        let prefix = r#"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 24}}}}"#;
        let f = parse(&one_rule("prerouting", &format!("{prefix}, {MARK5}"))).unwrap();
        assert!(f.rules.is_empty());
        assert_eq!(f.unsupported.len(), 1);
        assert!(
            f.unsupported[0].contains("ip t chain c rule handle 9"),
            "{f:?}"
        );
        let saddr = r#"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "1.2.3.4"}}"#;
        let f = parse(&one_rule(
            "prerouting",
            &format!("{DADDR}, {saddr}, {MARK5}"),
        ))
        .unwrap();
        assert!(
            f.rules.is_empty() && f.unsupported[0].contains("saddr"),
            "{f:?}"
        );
        let ne = r#"{"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}"#;
        let f = parse(&one_rule("prerouting", &format!("{DADDR}, {ne}, {MARK5}"))).unwrap();
        assert!(f.rules.is_empty() && !f.unsupported.is_empty());
    }

    #[test]
    fn only_chains_where_ipvs_sees_the_mark_count() {
        let rule = format!("{DADDR}, {MARK5}");
        assert_eq!(parse(&one_rule("input", &rule)).unwrap().rules.len(), 1);
        assert!(parse(&one_rule("output", &rule)).unwrap().rules.is_empty());
        assert!(parse(&one_rule("postrouting", &rule))
            .unwrap()
            .rules
            .is_empty());
        // A rule without a mark statement is not ours to read.
        let f = parse(&one_rule("prerouting", DADDR)).unwrap();
        assert_eq!(f, Found::default());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("").is_err());
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"nftables": 3}"#).is_err());
        let weird = one_rule(
            "prerouting",
            r#"{"mangle": {"key": {"meta": {"key": "mark"}}, "value": "x"}}, 7, null"#,
        );
        let f = parse(&weird).unwrap();
        assert!(f.rules.is_empty() && f.unsupported.len() == 1);
    }
}
