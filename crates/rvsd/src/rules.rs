//! Rules files in `ipvsadm-save` format (`rvsd --rules FILE`): parsed with rvsadm's own
//! reader and parser, simulated into a desired table, and applied as the difference from the
//! running table — at start and on every SIGHUP.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;

use rvs_control::model as m;
use rvs_control::proto::Request;
use rvs_ipvsadm::args::{parse_command, Command};
use rvs_ipvsadm::names::SystemNames;
use rvs_ipvsadm::restore::{read_line, ByteReader};

/// One table-changing command from a rules file, with its line number.
#[derive(Clone, Debug)]
pub struct Rule {
    /// 1-based line number.
    pub line: usize,
    /// The line's text (without the program name).
    pub text: String,
    /// The request.
    pub req: Request,
}

/// Read and parse a rules file. Errors name `file:line` and the offending text.
pub fn parse_file(path: &Path) -> Result<Vec<Rule>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = ByteReader::new(BufReader::new(f));
    let names = SystemNames::new();
    let mut out = Vec::new();
    let mut line = 0usize;
    loop {
        line += 1;
        let argv = match read_line(&mut r, "ipvsadm") {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return Err(format!("{}:{line}: {e}", path.display())),
        };
        if argv.len() <= 1 {
            continue;
        }
        let text = argv[1..].join(" ");
        let req = table_request(&argv, &names)
            .map_err(|e| format!("{}:{line}: {text}: {e}", path.display()))?;
        out.push(Rule { line, text, req });
    }
    Ok(out)
}

/// The request of one table-changing ipvsadm command line (`argv[0]` is the program name),
/// parsed as `ipvsadm -R` parses it.
pub fn table_request(
    argv: &[String],
    names: &dyn rvs_ipvsadm::names::Names,
) -> Result<Request, String> {
    let parsed = parse_command(argv, true, names).map_err(|e| e.stderr.trim_end().to_string())?;
    Ok(match parsed.command {
        Command::Flush => Request::Flush,
        Command::AddService(s) => Request::AddService(s),
        Command::EditService(s) => Request::EditService(s),
        Command::DelService(k) => Request::DelService(k),
        Command::AddDest(service, dest) => Request::AddDest { service, dest },
        Command::EditDest(service, dest) => Request::EditDest { service, dest },
        Command::DelDest(service, addr, port) => Request::DelDest {
            service,
            addr,
            port,
        },
        Command::SetTimeouts(t) => Request::SetTimeouts(t),
        Command::AddLaddr(service, addr) => Request::AddLocalAddr { service, addr },
        Command::DelLaddr(service, addr) => Request::DelLocalAddr { service, addr },
        other => {
            return Err(format!(
                "only table changes belong in a rules file (found {other:?})"
            ))
        }
    })
}

/// A service as a rules file wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantService {
    /// Its definition.
    pub spec: m::ServiceSpec,
    /// Its real servers in the order the file adds them.
    pub dests: Vec<m::DestSpec>,
    /// Full-NAT local addresses.
    pub laddrs: Vec<std::net::IpAddr>,
}

/// The table a rules file describes.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// Services in the order the file adds them.
    pub services: Vec<WantService>,
    /// `--set` values, if any.
    pub timeouts: Option<m::Timeouts>,
}

/// Play the rules on an empty table (as `ipvsadm -R` would) to get the desired table;
/// inconsistencies (a real server for a missing service…) are errors with the line.
pub fn desired(path: &Path, rules: &[Rule]) -> Result<Desired, String> {
    let mut d = Desired::default();
    let err = |r: &Rule, msg: &str| format!("{}:{}: {msg}", path.display(), r.line);
    let find = |d: &Desired, k: &m::ServiceKey| d.services.iter().position(|s| &s.spec.key == k);
    for r in rules {
        match &r.req {
            Request::Flush => d.services.clear(),
            Request::AddService(s) => {
                if find(&d, &s.key).is_some() {
                    return Err(err(r, "Service already exists"));
                }
                d.services.push(WantService {
                    spec: s.clone(),
                    dests: Vec::new(),
                    laddrs: Vec::new(),
                });
            }
            Request::EditService(s) => match find(&d, &s.key) {
                Some(i) => d.services[i].spec = s.clone(),
                None => return Err(err(r, "No such service")),
            },
            Request::DelService(k) => match find(&d, k) {
                Some(i) => {
                    d.services.remove(i);
                }
                None => return Err(err(r, "No such service")),
            },
            Request::AddDest { service, dest } | Request::EditDest { service, dest } => {
                let Some(i) = find(&d, service) else {
                    return Err(err(r, "Service not defined"));
                };
                let ds = &mut d.services[i].dests;
                let at = ds
                    .iter()
                    .position(|x| x.addr == dest.addr && x.port == dest.port);
                match (&r.req, at) {
                    (Request::AddDest { .. }, None) => ds.push(dest.clone()),
                    (Request::AddDest { .. }, Some(_)) => {
                        return Err(err(r, "Destination already exists"))
                    }
                    (_, Some(j)) => ds[j] = dest.clone(),
                    (_, None) => return Err(err(r, "No such destination")),
                }
            }
            Request::DelDest {
                service,
                addr,
                port,
            } => {
                let Some(i) = find(&d, service) else {
                    return Err(err(r, "Service not defined"));
                };
                let ds = &mut d.services[i].dests;
                match ds.iter().position(|x| x.addr == *addr && x.port == *port) {
                    Some(j) => {
                        ds.remove(j);
                    }
                    None => return Err(err(r, "No such destination")),
                }
            }
            Request::SetTimeouts(t) => d.timeouts = Some(*t),
            Request::AddLocalAddr { service, addr } => match find(&d, service) {
                Some(i) => d.services[i].laddrs.push(*addr),
                None => return Err(err(r, "Service not defined")),
            },
            Request::DelLocalAddr { service, addr } => match find(&d, service) {
                Some(i) => d.services[i].laddrs.retain(|a| a != addr),
                None => return Err(err(r, "Service not defined")),
            },
            other => return Err(err(r, &format!("unexpected request {other:?}"))),
        }
    }
    Ok(d)
}

/// The requests that turn the running table `current` into `want`, touching only what differs:
/// unchanged services and real servers keep their connections and counters.
pub fn diff(
    current: &[m::ServiceEntry],
    current_laddrs: &[m::ServiceLocalAddrs],
    want: &Desired,
) -> Vec<Request> {
    let mut out = Vec::new();
    let cur: BTreeMap<String, &m::ServiceEntry> = current
        .iter()
        .map(|s| (format!("{:?}", s.spec.key), s))
        .collect();
    let wanted: BTreeMap<String, &WantService> = want
        .services
        .iter()
        .map(|s| (format!("{:?}", s.spec.key), s))
        .collect();
    for (k, s) in &cur {
        if !wanted.contains_key(k) {
            out.push(Request::DelService(s.spec.key.clone()));
        }
    }
    for w in &want.services {
        let key = &w.spec.key;
        match cur.get(&format!("{key:?}")) {
            None => {
                out.push(Request::AddService(w.spec.clone()));
                for d in &w.dests {
                    out.push(Request::AddDest {
                        service: key.clone(),
                        dest: d.clone(),
                    });
                }
                for a in &w.laddrs {
                    out.push(Request::AddLocalAddr {
                        service: key.clone(),
                        addr: *a,
                    });
                }
            }
            Some(c) => {
                if c.spec != w.spec {
                    out.push(Request::EditService(w.spec.clone()));
                }
                for cd in &c.dests {
                    if !w
                        .dests
                        .iter()
                        .any(|d| d.addr == cd.spec.addr && d.port == cd.spec.port)
                    {
                        out.push(Request::DelDest {
                            service: key.clone(),
                            addr: cd.spec.addr,
                            port: cd.spec.port,
                        });
                    }
                }
                for d in &w.dests {
                    match c
                        .dests
                        .iter()
                        .find(|cd| cd.spec.addr == d.addr && cd.spec.port == d.port)
                    {
                        None => out.push(Request::AddDest {
                            service: key.clone(),
                            dest: d.clone(),
                        }),
                        Some(cd) if cd.spec != *d => out.push(Request::EditDest {
                            service: key.clone(),
                            dest: d.clone(),
                        }),
                        Some(_) => {}
                    }
                }
                let have: Vec<std::net::IpAddr> = current_laddrs
                    .iter()
                    .find(|l| &l.service == key)
                    .map(|l| l.laddrs.iter().map(|e| e.addr).collect())
                    .unwrap_or_default();
                for a in have.iter().filter(|a| !w.laddrs.contains(a)) {
                    out.push(Request::DelLocalAddr {
                        service: key.clone(),
                        addr: *a,
                    });
                }
                for a in w.laddrs.iter().filter(|a| !have.contains(a)) {
                    out.push(Request::AddLocalAddr {
                        service: key.clone(),
                        addr: *a,
                    });
                }
            }
        }
    }
    if let Some(t) = want.timeouts {
        out.push(Request::SetTimeouts(t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(content)
    }

    /// A file in the system temp directory, removed on drop.
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn with(content: &str) -> TempPath {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "rvsd-rules-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&p, content).expect("temp file");
                TempPath(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    const SAVE: &str = "-A -t 10.0.0.1:80 -s rr\n\
                        -a -t 10.0.0.1:80 -r 192.168.1.1:80 -m -w 1\n\
                        -a -t 10.0.0.1:80 -r 192.168.1.2:80 -m -w 1\n\
                        -A -u 10.0.0.1:53 -s wlc\n";

    #[test]
    fn parses_a_save_file() {
        let f = write(SAVE);
        let rules = parse_file(&f.0).unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[1].line, 2);
        let d = desired(&f.0, &rules).unwrap();
        assert_eq!(d.services.len(), 2);
        assert_eq!(d.services[0].dests.len(), 2);
    }

    #[test]
    fn errors_name_file_line_and_text() {
        let f = write("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.1.1:80 -w 99999999\n");
        let e = parse_file(&f.0).unwrap_err();
        assert!(e.contains(":2: "), "{e}");
        assert!(e.contains("-w 99999999"), "{e}");
        let f = write("-a -t 10.0.0.9:80 -r 192.168.1.1:80\n");
        let rules = parse_file(&f.0).unwrap();
        let e = desired(&f.0, &rules).unwrap_err();
        assert!(e.ends_with(":1: Service not defined"), "{e}");
    }

    #[test]
    fn diff_touches_only_what_changed() {
        let f = write(SAVE);
        let want = desired(&f.0, &parse_file(&f.0).unwrap()).unwrap();
        // Current: the same HTTP service with one real server changed and one missing, plus a
        // service the file no longer has.
        let key = want.services[0].spec.key.clone();
        let mut d1 = want.services[0].dests[0].clone();
        d1.weight = 5;
        let entry = |spec: m::ServiceSpec, dests: Vec<m::DestSpec>| m::ServiceEntry {
            spec,
            stats: m::Stats::default(),
            dests: dests
                .into_iter()
                .map(|spec| m::DestEntry {
                    spec,
                    active_conns: 0,
                    inactive_conns: 0,
                    persist_conns: 0,
                    stats: m::Stats::default(),
                })
                .collect(),
        };
        let gone = m::ServiceSpec::with_defaults(m::ServiceKey::Fwmark {
            mark: 7,
            family: m::Family::Inet,
        });
        let current = vec![
            entry(want.services[0].spec.clone(), vec![d1]),
            entry(gone.clone(), vec![]),
        ];
        let reqs = diff(&current, &[], &want);
        assert_eq!(
            reqs,
            vec![
                Request::DelService(gone.key),
                Request::EditDest {
                    service: key.clone(),
                    dest: want.services[0].dests[0].clone()
                },
                Request::AddDest {
                    service: key,
                    dest: want.services[0].dests[1].clone()
                },
                Request::AddService(want.services[1].spec.clone()),
            ]
        );
    }
}
