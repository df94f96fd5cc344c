//! `rvstop`: a terminal live view of rvsd — services, real servers, rates and VRRP states,
//! redrawn every interval, sortable from the keyboard. Plain ANSI (no terminal library): the
//! screen is cleared and written again, which any terminal and tmux understand.
//!
//! Keys: `c` conn/s, `p` packets/s, `b` bytes/s, `a` active connections, `t` total
//! connections, `n` name (sort), `r` reverse, `q` or Ctrl-C quit.
//!
//! It reads the same records `rvsadm -L --json` prints, over the control socket.

#![forbid(unsafe_code)]

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use rvs_control::model as m;
use rvs_control::proto::{Payload, Request};
use rvsadm::app::{Backend, SocketBackend};

const USAGE: &str = "Usage: rvstop [--socket PATH] [--interval SECONDS] [--sort c|p|b|a|t|n]\n\
Keys: c conn/s, p packets/s, b bytes/s, a active, t total conns, n name, r reverse, q quit\n";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sort {
    Cps,
    Pps,
    Bps,
    Active,
    Total,
    Name,
}

impl Sort {
    fn from_key(k: u8) -> Option<Sort> {
        Some(match k {
            b'c' => Sort::Cps,
            b'p' => Sort::Pps,
            b'b' => Sort::Bps,
            b'a' => Sort::Active,
            b't' => Sort::Total,
            b'n' => Sort::Name,
            _ => return None,
        })
    }
    fn label(self) -> &'static str {
        match self {
            Sort::Cps => "conn/s",
            Sort::Pps => "packets/s",
            Sort::Bps => "bytes/s",
            Sort::Active => "active",
            Sort::Total => "conns",
            Sort::Name => "name",
        }
    }
}

/// One line of the table: a service or one of its real servers.
struct Row {
    name: String,
    what: String,
    weight: Option<u32>,
    active: u64,
    inactive: u64,
    stats: m::Stats,
}

impl Row {
    fn key(&self, s: Sort) -> u64 {
        match s {
            Sort::Cps => self.stats.cps,
            Sort::Pps => self.stats.inpps + self.stats.outpps,
            Sort::Bps => self.stats.inbps + self.stats.outbps,
            Sort::Active => self.active,
            Sort::Total => self.stats.conns,
            Sort::Name => 0,
        }
    }
}

fn sort_rows(v: &mut [(Row, Vec<Row>)], by: Sort, reverse: bool) {
    let cmp = |a: &Row, b: &Row| {
        let o = match by {
            Sort::Name => a.name.cmp(&b.name),
            // Largest first, ties by name.
            _ => b.key(by).cmp(&a.key(by)).then_with(|| a.name.cmp(&b.name)),
        };
        if reverse {
            o.reverse()
        } else {
            o
        }
    };
    v.sort_by(|a, b| cmp(&a.0, &b.0));
    for (_, dests) in v.iter_mut() {
        dests.sort_by(|a, b| cmp(a, b));
    }
}

fn si(v: u64) -> String {
    let units = ["", "K", "M", "G", "T", "P"];
    let mut f = v as f64;
    let mut i = 0;
    while f >= 1000.0 && i < units.len() - 1 {
        f /= 1000.0;
        i += 1;
    }
    if i == 0 {
        v.to_string()
    } else {
        format!("{f:.1}{}", units[i])
    }
}

fn method(m: m::ForwardMethod) -> &'static str {
    match m {
        m::ForwardMethod::Masq => "Masq",
        m::ForwardMethod::Local => "Local",
        m::ForwardMethod::Tunnel => "Tunnel",
        m::ForwardMethod::Route => "Route",
        m::ForwardMethod::FullNat => "FullNat",
        m::ForwardMethod::Bypass => "Bypass",
    }
}

fn rows(services: &[m::ServiceEntry]) -> Vec<(Row, Vec<Row>)> {
    services
        .iter()
        .map(|s| {
            let dests: Vec<Row> = s
                .dests
                .iter()
                .map(|d| Row {
                    name: std::net::SocketAddr::new(d.spec.addr, d.spec.port).to_string(),
                    what: method(d.spec.method).to_string(),
                    weight: Some(d.spec.weight),
                    active: u64::from(d.active_conns),
                    inactive: u64::from(d.inactive_conns),
                    stats: d.stats,
                })
                .collect();
            let svc = Row {
                name: s.spec.key.to_string(),
                what: s.spec.scheduler.clone(),
                weight: None,
                active: dests.iter().map(|d| d.active).sum(),
                inactive: dests.iter().map(|d| d.inactive).sum(),
                stats: s.stats,
            };
            (svc, dests)
        })
        .collect()
}

fn line(out: &mut String, r: &Row, indent: &str, bold: bool) {
    let name = format!("{indent}{}", r.name);
    let (b0, b1) = if bold {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    };
    out.push_str(&format!(
        "{b0}{name:<34} {:<8} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10}{b1}\r\n",
        r.what,
        r.weight.map(|w| w.to_string()).unwrap_or_default(),
        r.active,
        r.inactive,
        si(r.stats.cps),
        si(r.stats.inpps + r.stats.outpps),
        si(r.stats.inbps + r.stats.outbps),
        si(r.stats.conns),
    ));
}

/// One screen.
fn frame(
    socket: &str,
    services: &[m::ServiceEntry],
    vrrp: &[m::VrrpInstanceEntry],
    by: Sort,
    reverse: bool,
) -> String {
    let mut out = String::from("\x1b[H\x1b[2J");
    let mut v = rows(services);
    sort_rows(&mut v, by, reverse);
    out.push_str(&format!(
        "rvstop  rvsd {socket}  {} service(s)  sort: {}{}  [c p b a t n: sort, r: reverse, q: quit]\r\n\r\n",
        services.len(),
        by.label(),
        if reverse { " (reversed)" } else { "" }
    ));
    out.push_str(&format!(
        "\x1b[7m{:<34} {:<8} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10}\x1b[0m\r\n",
        "SERVICE / REAL SERVER",
        "SCHED",
        "WEIGHT",
        "ACTIVE",
        "INACT",
        "CONN/S",
        "PKTS/S",
        "BYTES/S",
        "CONNS"
    ));
    for (s, dests) in &v {
        line(&mut out, s, "", true);
        for d in dests {
            line(&mut out, d, "  -> ", false);
        }
    }
    if !vrrp.is_empty() {
        out.push_str("\r\nVRRP\r\n");
        for i in vrrp {
            out.push_str(&format!(
                "  {:<20} vrid {:<3} {:<10} {:<7} prio {:>3}  {}\r\n",
                i.name,
                i.vrid,
                i.interface,
                i.state.name(),
                i.effective_priority,
                i.vips
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    out
}

/// The terminal in non-canonical mode without echo (keys arrive one by one), restored on drop.
struct RawTerm(Option<rustix::termios::Termios>);

impl RawTerm {
    fn enter() -> RawTerm {
        let stdin = std::io::stdin();
        let Ok(orig) = rustix::termios::tcgetattr(&stdin) else {
            return RawTerm(None); // not a terminal: keys still read from the pipe
        };
        let mut raw = orig.clone();
        use rustix::termios::LocalModes;
        raw.local_modes
            .remove(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG);
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
        print!("\x1b[?1049h\x1b[?25l");
        RawTerm(Some(orig))
    }
}

impl Drop for RawTerm {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
            print!("\x1b[?25h\x1b[?1049l");
            let _ = std::io::stdout().flush();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut socket, mut interval, mut by) = (None, Duration::from_secs(1), Sort::Cps);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprint!("rvstop: {name} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(val("--socket"))),
            "--interval" => {
                let v = val("--interval");
                match v.parse::<f64>() {
                    Ok(s) if (0.1..=3600.0).contains(&s) => interval = Duration::from_secs_f64(s),
                    _ => {
                        eprintln!("rvstop: --interval {v:?}: seconds between 0.1 and 3600");
                        std::process::exit(2)
                    }
                }
            }
            "--sort" => {
                let v = val("--sort");
                by = match v.as_bytes() {
                    [k] => Sort::from_key(*k),
                    _ => None,
                }
                .unwrap_or_else(|| {
                    eprint!("rvstop: --sort {v:?}: one of c p b a t n\n{USAGE}");
                    std::process::exit(2)
                });
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return;
            }
            other => {
                eprint!("rvstop: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    let shown = rvs_control::socket::resolve_socket_path(socket.as_deref())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut backend = SocketBackend::new(socket);
    let (tx, rx) = mpsc::channel::<u8>();
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        let mut stdin = std::io::stdin();
        while let Ok(1) = stdin.read(&mut b) {
            if tx.send(b[0]).is_err() {
                break;
            }
        }
    });
    let term = RawTerm::enter();
    let mut reverse = false;
    let code = loop {
        let services = match backend.call(&Request::GetServices) {
            Ok(r) => match r.result {
                Ok(Payload::Services(s)) => s,
                Ok(_) => Vec::new(),
                Err(e) => {
                    drop(term);
                    eprintln!("rvstop: rvsd refused the listing: {e:?}");
                    break 1;
                }
            },
            Err(e) => {
                drop(term);
                eprintln!("rvstop: {e}");
                break 2;
            }
        };
        let vrrp = match backend.call(&Request::GetVrrp).map(|r| r.result) {
            Ok(Ok(Payload::Vrrp(v))) => v,
            _ => Vec::new(),
        };
        print!("{}", frame(&shown, &services, &vrrp, by, reverse));
        let _ = std::io::stdout().flush();
        // Keys change the view at once; otherwise the next refresh comes after `interval`.
        match rx.recv_timeout(interval) {
            Ok(b'q') | Ok(3) => break 0,
            Ok(b'r') => reverse = !reverse,
            Ok(k) => {
                if let Some(s) = Sort::from_key(k) {
                    by = s;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Standard input closed: keep showing until killed.
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(interval),
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(port: u16, cps: u64, conns: u64) -> m::ServiceEntry {
        let key = m::ServiceKey::Addr {
            protocol: m::Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port,
        };
        m::ServiceEntry {
            spec: m::ServiceSpec::with_defaults(key),
            stats: m::Stats {
                cps,
                conns,
                ..Default::default()
            },
            dests: Vec::new(),
        }
    }

    #[test]
    fn sorts_by_the_chosen_column() {
        let s = [svc(80, 5, 1), svc(81, 9, 0), svc(82, 1, 7)];
        let order = |by, rev| {
            let mut v = rows(&s);
            sort_rows(&mut v, by, rev);
            v.iter().map(|(r, _)| r.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            order(Sort::Cps, false),
            ["TCP 10.0.0.1:81", "TCP 10.0.0.1:80", "TCP 10.0.0.1:82"]
        );
        assert_eq!(
            order(Sort::Total, false),
            ["TCP 10.0.0.1:82", "TCP 10.0.0.1:80", "TCP 10.0.0.1:81"]
        );
        assert_eq!(
            order(Sort::Name, true),
            ["TCP 10.0.0.1:82", "TCP 10.0.0.1:81", "TCP 10.0.0.1:80"]
        );
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(si(999), "999");
        assert_eq!(si(1500), "1.5K");
        assert_eq!(si(2_000_000), "2.0M");
    }
}
