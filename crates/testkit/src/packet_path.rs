//! Which path the packet plane of the tests' rvsd takes: AF_PACKET (rvsd's default) or the XDP
//! fast path with its AF_XDP slow path (`--xdp generic`).
//!
//! The packet-plane end-to-end tests are written once and run in both modes: `scripts/test`
//! runs them as they are, then again with `RVS_TEST_XDP=generic`. This module is the one place
//! that reads the switch: [`Rvsd`](crate::Rvsd) adds [`PacketPath::args`] to every rvsd it
//! starts with `--interface` unless the test chose `--xdp` itself (see [`rvsd_args`]), the lab
//! walkthrough test hands the same arguments to the printed rvsd command lines, and the tests
//! ask [`PacketPath::of`] (or [`Rvsd::xdp`](crate::Rvsd::xdp)) which mode an rvsd runs in, so
//! that what differs by mode is asserted in each mode (e.g. the XDP program's counters, the
//! nft guard's drops), never left out of both.
//!
//! Generic XDP: the labs' interfaces are veths, whose native XDP needs NAPI on the peers.

/// The environment variable: `generic` (the XDP fast path in generic mode), `off` or unset
/// (AF_PACKET).
pub const ENV: &str = "RVS_TEST_XDP";

/// The two modes of the packet plane the tests cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketPath {
    /// The AF_PACKET tap and the nft ingress guard (`--xdp off`, rvsd's default).
    AfPacket,
    /// The XDP program on every interface, the AF_XDP sockets for what it does not forward
    /// (`--xdp generic`).
    Xdp,
}

impl PacketPath {
    /// The mode [`ENV`] asks for.
    ///
    /// # Panics
    /// If it holds anything but `generic` or `off` (a typo must not silently run the
    /// AF_PACKET tests a second time).
    pub fn requested() -> PacketPath {
        match std::env::var(ENV) {
            Err(std::env::VarError::NotPresent) => PacketPath::AfPacket,
            Ok(v) if v == "off" => PacketPath::AfPacket,
            Ok(v) if v == "generic" => PacketPath::Xdp,
            Ok(v) => panic!("{ENV}={v:?}: want `generic` or `off`"),
            Err(e) => panic!("{ENV}: {e}"),
        }
    }

    /// The rvsd arguments that select this mode.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            PacketPath::AfPacket => &[],
            PacketPath::Xdp => &["--xdp", "generic"],
        }
    }

    /// True for [`PacketPath::Xdp`].
    pub fn is_xdp(self) -> bool {
        self == PacketPath::Xdp
    }

    /// The mode of an rvsd started with `args` after [`rvsd_args`] was added: `None` without
    /// a packet plane (no `--interface`), XDP when `--xdp` names anything but `off`.
    pub fn of(args: &[&str]) -> Option<PacketPath> {
        if !has_interface(args) {
            return None;
        }
        Some(match xdp_value(args) {
            Some("off") | None => PacketPath::AfPacket,
            Some(_) => PacketPath::Xdp,
        })
    }
}

/// What the XDP program must have forwarded of a test's flows (XDP mode; see [`check_log`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwards {
    /// Some frames: a long transfer ran after its flow was installed.
    Some,
    /// None: the flows are not the program's to forward (e.g. TUN from a client whose
    /// packets carry partial checksums, or SYN-proxied connections).
    None,
    /// Either: only short exchanges, which may end before the flow is installed.
    Maybe,
}

/// Checks the log of an rvsd whose packet plane ran on `ifaces` in mode `path`.
///
/// AF_PACKET: no XDP line at all. XDP: the program was attached to each of `ifaces` in
/// generic mode and each has its AF_XDP slow path; when `stopped` (the counters rvsd logs when
/// it stops are in the log), the program forwarded frames as `forwards` says, it redirected
/// frames to AF_XDP, and every interface's XSK received some (the handshakes at least went
/// through the AF_XDP sockets, not the host stack and the AF_PACKET tap).
///
/// # Panics
/// If the log says otherwise.
pub fn check_log(path: PacketPath, ifaces: &[&str], log: &str, stopped: Option<Forwards>) {
    if path == PacketPath::AfPacket {
        assert!(!log.contains("XDP fast path"), "{log}");
        return;
    }
    for i in ifaces {
        assert!(
            log.contains(&format!("XDP fast path on {i} (generic mode)")),
            "no XDP program on {i}:\n{log}"
        );
        assert!(
            log.contains(&format!("XDP slow path on {i} queue 0: AF_XDP (copy mode)")),
            "no AF_XDP slow path on {i}:\n{log}"
        );
    }
    let Some(forwards) = stopped else {
        return;
    };
    eprintln!(
        "{}",
        log.lines()
            .filter(|l| l.contains("XDP"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let c =
        XdpCounters::from_log(log).unwrap_or_else(|| panic!("no XDP counters in the log:\n{log}"));
    match forwards {
        Forwards::Some => assert!(c.forwarded > 0, "the XDP program forwarded nothing:\n{log}"),
        Forwards::None => assert_eq!(c.forwarded, 0, "the XDP program forwarded frames:\n{log}"),
        Forwards::Maybe => {}
    }
    assert!(
        c.to_xsk > 0,
        "the program redirected nothing to AF_XDP:\n{log}"
    );
    for i in ifaces {
        let received = log
            .split(format!("XDP slow path on {i} queue 0 (AF_XDP, copy): ").as_str())
            .nth(1)
            .and_then(leading_count)
            .unwrap_or_else(|| panic!("no AF_XDP counters for {i} in the log:\n{log}"));
        assert!(received > 0, "no frame went through the XSK of {i}:\n{log}");
    }
}

/// The XDP program's verdict counters, as rvsd logs them when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpCounters {
    /// Frames it forwarded itself (`XDP_TX` and `XDP_REDIRECT` to another interface).
    pub forwarded: u64,
    /// Frames it redirected to the AF_XDP slow path.
    pub to_xsk: u64,
    /// Frames passed to the host stack: of a flow without an entry,
    pub pass_no_flow: u64,
    /// TCP SYN, FIN or RST (a state change is rvs-core's),
    pub pass_state: u64,
    /// anything else it does not handle (ARP, ICMP, fragments, IP options, …),
    pub pass_other: u64,
    /// over a limit (MTU, …).
    pub pass_limit: u64,
}

impl XdpCounters {
    /// From the line `XDP fast path: N frames forwarded (tx T, redirect R), X to the AF_XDP
    /// slow path, passed to the host stack: A without an entry, B SYN/FIN/RST, C other, D over
    /// a limit` of `log`; `None` when it is not there (rvsd did not stop, or ran without XDP).
    pub fn from_log(log: &str) -> Option<XdpCounters> {
        let line = log.lines().find(|l| l.contains("frames forwarded (tx "))?;
        let counts: Vec<u64> = line
            .split("XDP fast path: ")
            .nth(1)?
            .split_whitespace()
            .filter_map(|w| w.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
            .collect();
        let [forwarded, _tx, _redirect, to_xsk, pass_no_flow, pass_state, pass_other, pass_limit] =
            counts[..]
        else {
            return None;
        };
        Some(XdpCounters {
            forwarded,
            to_xsk,
            pass_no_flow,
            pass_state,
            pass_other,
            pass_limit,
        })
    }
}

/// The number `text` starts with (up to the first blank).
pub fn leading_count(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// What [`Rvsd`](crate::Rvsd) adds to `args` for the mode [`ENV`] asks for: its arguments
/// when `args` start a packet plane (`--interface`) and do not choose `--xdp` themselves,
/// nothing otherwise.
///
/// # Panics
/// As [`PacketPath::requested`].
pub fn rvsd_args(args: &[&str]) -> &'static [&'static str] {
    if has_interface(args) && xdp_value(args).is_none() {
        PacketPath::requested().args()
    } else {
        &[]
    }
}

fn has_interface(args: &[&str]) -> bool {
    args.iter()
        .any(|a| *a == "--interface" || a.starts_with("--interface="))
}

/// The value of `--xdp V` / `--xdp=V` in `args`, if given.
fn xdp_value<'a>(args: &[&'a str]) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if *a == "--xdp" {
            Some(args.get(i + 1).copied().unwrap_or(""))
        } else {
            a.strip_prefix("--xdp=")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_of_an_rvsd_command_line() {
        assert_eq!(PacketPath::of(&["--workers", "1"]), None);
        assert_eq!(
            PacketPath::of(&["--interface", "eth0"]),
            Some(PacketPath::AfPacket)
        );
        assert_eq!(
            PacketPath::of(&["--interface", "eth0", "--xdp", "off"]),
            Some(PacketPath::AfPacket)
        );
        assert_eq!(
            PacketPath::of(&["--interface=eth0", "--xdp", "generic"]),
            Some(PacketPath::Xdp)
        );
        assert_eq!(
            PacketPath::of(&["--interface", "eth0", "--xdp=auto"]),
            Some(PacketPath::Xdp)
        );
        // `--xdp-slow-path` is not `--xdp`.
        assert_eq!(xdp_value(&["--xdp-slow-path", "auto"]), None);
    }

    #[test]
    fn xdp_counters_from_rvsd_log() {
        let log = "2026-12-05T18:49:12.671962Z  INFO rvsd::packet_plane::xdp: XDP fast path: 16 \
                   frames forwarded (tx 12, redirect 4), 17 to the AF_XDP slow path, passed to \
                   the host stack: 1 without an entry, 2 SYN/FIN/RST, 6 other, 3 over a limit\n\
                   2026-12-05T18:49:12.672063Z  INFO rvsd::packet_plane::xdp: XDP fast path: \
                   8 flow entries written, 8 installed at the end\n";
        assert_eq!(
            XdpCounters::from_log(log),
            Some(XdpCounters {
                forwarded: 16,
                to_xsk: 17,
                pass_no_flow: 1,
                pass_state: 2,
                pass_other: 6,
                pass_limit: 3,
            })
        );
        assert_eq!(
            XdpCounters::from_log("XDP fast path on eth0 (generic mode)"),
            None
        );
    }

    #[test]
    fn a_test_that_chose_xdp_keeps_its_choice() {
        // Whatever the environment asks for (not read when nothing is to be added).
        assert!(rvsd_args(&["--interface", "eth0", "--xdp", "off"]).is_empty());
        assert!(rvsd_args(&["--interface", "eth0", "--xdp=generic"]).is_empty());
        assert!(rvsd_args(&["--metrics-listen", "off"]).is_empty());
        assert_eq!(PacketPath::Xdp.args(), ["--xdp", "generic"]);
        assert!(PacketPath::AfPacket.args().is_empty());
    }
}
