//! Sends a gratuitous ARP (IPv4) or an unsolicited neighbour advertisement (IPv6) for each
//! address out of an interface, like `arping -U` / `ndsend`: `announce IFACE ADDR...`.

use std::net::IpAddr;
use std::process::ExitCode;

use rvs_packet_io::announce::{gratuitous_arp, unsolicited_na};
use rvs_packet_io::Sender;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((ifname, addrs)) = args.split_first().filter(|(_, a)| !a.is_empty()) else {
        eprintln!("usage: announce IFACE ADDR...");
        return ExitCode::from(2);
    };
    let mut sender = match Sender::open(ifname) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("announce: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mac = sender.mac();
    for a in addrs {
        let sent = match a.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => sender.send(&gratuitous_arp(mac, v4)),
            Ok(IpAddr::V6(v6)) => sender.send(&unsolicited_na(mac, v6)),
            Err(e) => {
                eprintln!("announce: {a:?}: {e}");
                return ExitCode::from(2);
            }
        };
        if let Err(e) = sent {
            eprintln!("announce: {a} on {ifname}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
