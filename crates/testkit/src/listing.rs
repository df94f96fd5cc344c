//! Parsers of rvsadm's listings (`-Ln`, `-Lnc`, `--stats --exact`).

/// One `-Lnc` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnLine {
    /// `TCP` / `UDP`.
    pub proto: String,
    /// Seconds until expiry.
    pub expires: u32,
    /// IPVS state name.
    pub state: String,
    /// Client.
    pub source: String,
    /// Virtual service.
    pub virt: String,
    /// Real server.
    pub dest: String,
}

/// Parse `rvsadm -Lnc` output (header lines skipped; `mm:ss` expiry to seconds).
pub fn parse_conns(out: &str) -> Vec<ConnLine> {
    out.lines()
        .filter(|l| !l.starts_with("IPVS connection entries") && !l.starts_with("pro "))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let (m, s) = f[1].split_once(':')?;
            Some(ConnLine {
                proto: f[0].to_string(),
                expires: m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?,
                state: f[2].to_string(),
                source: f[3].to_string(),
                virt: f[4].to_string(),
                dest: f[5].to_string(),
            })
        })
        .collect()
}

/// One line of `--stats --exact -n`: address and the five counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatLine {
    /// `TCP  vip:port` lines have `is_service`; `  -> rip:port` lines not.
    pub is_service: bool,
    /// Address:port.
    pub addr: String,
    /// Conns, InPkts, OutPkts, InBytes, OutBytes.
    pub n: [u64; 5],
}

/// Parse `rvsadm -Ln --stats --exact` output.
pub fn parse_stats(out: &str) -> Vec<StatLine> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (is_service, addr, rest) = match f.as_slice() {
                ["->", addr, rest @ ..] if rest.len() == 5 => (false, *addr, rest),
                [proto, addr, rest @ ..]
                    if rest.len() == 5 && ["TCP", "UDP", "FWM"].contains(proto) =>
                {
                    (true, *addr, rest)
                }
                _ => return None,
            };
            let mut n = [0u64; 5];
            for (i, v) in rest.iter().enumerate() {
                n[i] = v.parse().ok()?;
            }
            Some(StatLine {
                is_service,
                addr: addr.to_string(),
                n,
            })
        })
        .collect()
}

/// The stats line for `addr` (service or real server).
///
/// # Panics
/// If absent (with the listing in the message).
pub fn stat<'a>(lines: &'a [StatLine], addr: &str, service: bool) -> &'a StatLine {
    lines
        .iter()
        .find(|l| l.addr == addr && l.is_service == service)
        .unwrap_or_else(|| panic!("no stats line for {addr} in {lines:?}"))
}

/// `  -> ADDR:PORT  Fwd  Weight  Active  Inactive` lines of `rvsadm -Ln`: (address, weight,
/// active connections).
pub fn parse_dests(listing: &str) -> Vec<(String, u32, u32)> {
    listing
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() >= 6 && w[0] == "->" && w[1] != "RemoteAddress:Port" {
                Some((w[1].to_string(), w[3].parse().ok()?, w[4].parse().ok()?))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse() {
        let l = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  127.0.0.1:80 rr\n  -> 127.0.0.2:80                 Masq    3      1          0\n";
        assert_eq!(parse_dests(l), vec![("127.0.0.2:80".into(), 3, 1)]);
        let s = "TCP  10.0.0.1:80  4 10 8 600 900\n  -> 10.0.0.2:80  4 10 8 600 900\n";
        let v = parse_stats(s);
        assert_eq!(stat(&v, "10.0.0.1:80", true).n, [4, 10, 8, 600, 900]);
        assert!(!stat(&v, "10.0.0.2:80", false).is_service);
        let c = parse_conns("pro expire state source virtual destination\nTCP 01:05 ESTABLISHED 1.1.1.1:5 2.2.2.2:80 3.3.3.3:80\n");
        assert_eq!(c[0].expires, 65);
        assert_eq!(c[0].dest, "3.3.3.3:80");
    }
}
