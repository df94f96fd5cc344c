//! ipvsadm 1.31 command-line processing (`parse_options` + the checks of `process_options`),
//! as a pure function from an argument vector to a [`Parsed`] command or an [`Exit`].
//!
//! The code deliberately mirrors ipvsadm's structure: a mutable command entry filled option by
//! option in command-line order (so order-dependent quirks such as `-M` before `-t` for an IPv6
//! service behave the same), then the checks in ipvsadm's order, so that the first error
//! reported for a bad command line is the one ipvsadm reports.

use crate::names::{atoi, inet_aton, strtol_full, Names};
use crate::popt::{ArgKind, OptDef, Popt};
use rvs_control::*;
use std::net::IpAddr;

/// How the process must end instead of running a command: text for stdout/stderr and the
/// exit status (ipvsadm's `-1` is 255).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Exit status.
    pub code: i32,
    /// Text for standard output.
    pub stdout: String,
    /// Text for standard error.
    pub stderr: String,
    /// True when ipvsadm merely *returns* this status from `process_options` (popt errors)
    /// instead of exiting: inside `-R` the next line is then still processed.
    pub soft: bool,
}

impl Exit {
    /// ipvsadm's `fail(err, msg)`: message + newline on stderr.
    pub fn fail(code: i32, msg: impl AsRef<str>) -> Exit {
        Exit {
            code,
            stdout: String::new(),
            stderr: format!("{}\n", msg.as_ref()),
            soft: false,
        }
    }
}

/// Output format flags (`FMT_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Format {
    /// `-n`.
    pub numeric: bool,
    /// `-S` (rule format).
    pub rule: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`.
    pub nosort: bool,
    /// `-X` / `--exact`.
    pub exact: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `--json` (rvs addition): the listing as JSON, the control protocol's own records.
    pub json: bool,
}

/// A command ready to be executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-L` (or no arguments): the whole table.
    ListAll,
    /// `-L -t ...`: one service.
    ListService(ServiceKey),
    /// `-L -c`.
    ListConns,
    /// `-L --timeout`.
    ListTimeout,
    /// `-L --daemon`.
    ListDaemon,
    /// `-L --vrrp` (rvs addition): VRRP instance status.
    ListVrrp,
    /// `-S`.
    Save,
    /// `-R`.
    Restore,
    /// `-C`.
    Flush,
    /// `-A`.
    AddService(ServiceSpec),
    /// `-E` (full replacement).
    EditService(ServiceSpec),
    /// `-D`.
    DelService(ServiceKey),
    /// `-Z` (None = everything).
    Zero(Option<ServiceKey>),
    /// `-a`.
    AddDest(ServiceKey, DestSpec),
    /// `-e` (full replacement).
    EditDest(ServiceKey, DestSpec),
    /// `-d`.
    DelDest(ServiceKey, IpAddr, u16),
    /// `--set`.
    SetTimeouts(Timeouts),
    /// `--start-daemon`.
    StartDaemon(DaemonConfig),
    /// `--stop-daemon`.
    StopDaemon(SyncRole, u8),
    /// `--add-laddr`.
    AddLaddr(ServiceKey, IpAddr),
    /// `--del-laddr`.
    DelLaddr(ServiceKey, IpAddr),
    /// `--get-laddr`.
    GetLaddr(Option<ServiceKey>),
    /// `--sysctl [NAME]` (rvs addition): list every IPVS sysctl, or one.
    GetSysctl(Option<String>),
    /// `--sysctl NAME=VALUE` (rvs addition): set one IPVS sysctl.
    SetSysctl(String, String),
}

/// Result of parsing one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// What to do.
    pub command: Command,
    /// How to print it.
    pub format: Format,
}

/// `MAX_TIMEOUT`: 31 days.
const MAX_TIMEOUT: i64 = 86400 * 31;
/// `IPVS_SVC_PERSISTENT_TIMEOUT`: ipvsadm's default for `-p` without a value.
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
const DEF_SCHED: &str = "wlc";
const DEF_MCAST_IFN: &str = "eth0";

/// Commands, in ipvsadm's `CMD_*` order (row index of the legality table), plus ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    AddLaddr,
    DelLaddr,
    GetLaddr,
    Sysctl,
}

const CMD_NAMES: [&str; 18] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
    "add-laddr",
    "del-laddr",
    "get-laddr",
    "sysctl",
];

// Option bit indexes (`OPTC_*`), plus ours at the end.
const OPTC_NUMERIC: usize = 0;
const OPTC_CONNECTION: usize = 1;
const OPTC_SERVICE: usize = 2;
const OPTC_SCHEDULER: usize = 3;
const OPTC_PERSISTENT: usize = 4;
const OPTC_NETMASK: usize = 5;
const OPTC_SERVER: usize = 6;
const OPTC_FORWARD: usize = 7;
const OPTC_WEIGHT: usize = 8;
const OPTC_UTHRESHOLD: usize = 9;
const OPTC_LTHRESHOLD: usize = 10;
const OPTC_MCAST: usize = 11;
const OPTC_TIMEOUT: usize = 12;
const OPTC_DAEMON: usize = 13;
const OPTC_STATS: usize = 14;
const OPTC_RATE: usize = 15;
const OPTC_THRESHOLDS: usize = 16;
const OPTC_PERSISTENTCONN: usize = 17;
const OPTC_NOSORT: usize = 18;
const OPTC_SYNCID: usize = 19;
const OPTC_EXACT: usize = 20;
const OPTC_ONEPACKET: usize = 21;
const OPTC_PERSISTENCE_ENGINE: usize = 22;
const OPTC_SCHED_FLAGS: usize = 23;
const OPTC_MCAST_GROUP: usize = 24;
const OPTC_MCAST_PORT: usize = 25;
const OPTC_MCAST_TTL: usize = 26;
const OPTC_SYNC_MAXLEN: usize = 27;
const OPTC_TUN_INFO: usize = 28;
const OPTC_TUN_TYPE: usize = 29;
const OPTC_TUN_PORT: usize = 30;
const OPTC_TUN_NOCSUM: usize = 31;
const OPTC_TUN_CSUM: usize = 32;
const OPTC_TUN_REMCSUM: usize = 33;
const OPTC_PROXY_PROTOCOL: usize = 34;
const OPTC_LADDR: usize = 35;
const OPTC_VRRP: usize = 36;
const OPTC_JSON: usize = 37;
const NUMBER_OF_OPT: usize = 38;

const OPT_NAMES: [&str; NUMBER_OF_OPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
    "proxy-protocol",
    "laddr",
    "vrrp",
    "json",
];

/// ipvsadm's `commands_v_options` ('+' compulsory, 'x' illegal, '1' exclusive, ' ' optional),
/// copied column for column, with four rvs columns appended (proxy-protocol, laddr, vrrp, json) and
/// three rvs rows (add-laddr, del-laddr, get-laddr). `--vrrp` is a list-only output selector
/// like `--daemon`: exclusive ('1') with the other selectors of `-L`, illegal elsewhere.
/// `--json` is an output format of `-L` only.
const COMMANDS_V_OPTIONS: [&[u8; NUMBER_OF_OPT]; 18] = [
    /* ADD      */ b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx xxx",
    /* EDIT     */ b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx xxx",
    /* DEL      */ b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /* FLUSH    */ b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /* LIST     */ b" 11xxxxxxxxx11       xxxxxxx xxxxxxx1 ",
    /* ADDSRV   */ b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xxxx",
    /* DELSRV   */ b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /* EDITSRV  */ b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xxxx",
    /* TIMEOUT  */ b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /* STARTD   */ b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxxxx",
    /* STOPD    */ b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxxxx",
    /* RESTORE  */ b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /* SAVE     */ b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /* ZERO     */ b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /* ADDLADDR */ b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xx",
    /* DELLADDR */ b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xx",
    /* GETLADDR */ b" x xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /* SYSCTL   */ b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

const TUN_NAMES: [&str; 3] = ["ipip", "gue", "gre"];
/// Columns of `tunnel_types_v_options`: tun-port, tun-nocsum, tun-csum, tun-remcsum.
const TUN_OPTS: [usize; 4] = [
    OPTC_TUN_PORT,
    OPTC_TUN_NOCSUM,
    OPTC_TUN_CSUM,
    OPTC_TUN_REMCSUM,
];
const TUNNEL_TYPES_V_OPTIONS: [&[u8; 4]; 3] = [
    /* ipip */ b"xxxx", /* gue  */ b"+111", /* gre  */ b"x11x",
];

/// Values returned by the option table (ipvsadm's `val`/TAG_* codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    AddService,
    EditService,
    DelService,
    Clear,
    ListUpper,
    ListLower,
    Zero,
    AddServer,
    EditServer,
    DelServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masq,
    Ipip,
    Gatewaying,
    FullNat,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    ProxyProtocol,
    AddLaddr,
    DelLaddr,
    GetLaddr,
    Laddr,
    Vrrp,
    Json,
    Sysctl,
}

const fn o(long: &'static str, short: Option<char>, arg: ArgKind, val: Tag) -> OptDef<Tag> {
    OptDef {
        long,
        short,
        arg,
        val,
    }
}

use ArgKind::{None as N, Optional as Opt, Required as Req};

/// ipvsadm's popt option table (same order; `list` appears twice, for `-L` and `-l`), plus
/// rvs additions at the end.
const OPTIONS: &[OptDef<Tag>] = &[
    o("add-service", Some('A'), N, Tag::AddService),
    o("edit-service", Some('E'), N, Tag::EditService),
    o("delete-service", Some('D'), N, Tag::DelService),
    o("clear", Some('C'), N, Tag::Clear),
    o("list", Some('L'), N, Tag::ListUpper),
    o("list", Some('l'), N, Tag::ListLower),
    o("zero", Some('Z'), N, Tag::Zero),
    o("add-server", Some('a'), N, Tag::AddServer),
    o("edit-server", Some('e'), N, Tag::EditServer),
    o("delete-server", Some('d'), N, Tag::DelServer),
    o("set", None, N, Tag::Set),
    o("help", Some('h'), N, Tag::Help),
    o("version", Some('v'), N, Tag::Version),
    o("restore", Some('R'), N, Tag::Restore),
    o("save", Some('S'), N, Tag::Save),
    o("start-daemon", None, Req, Tag::StartDaemon),
    o("stop-daemon", None, Req, Tag::StopDaemon),
    o("tcp-service", Some('t'), Req, Tag::Tcp),
    o("udp-service", Some('u'), Req, Tag::Udp),
    o("sctp-service", None, Req, Tag::Sctp),
    o("fwmark-service", Some('f'), Req, Tag::Fwmark),
    o("scheduler", Some('s'), Req, Tag::Scheduler),
    o("persistent", Some('p'), Opt, Tag::Persistent),
    o("netmask", Some('M'), Req, Tag::Netmask),
    o("real-server", Some('r'), Req, Tag::RealServer),
    o("masquerading", Some('m'), N, Tag::Masq),
    o("ipip", Some('i'), N, Tag::Ipip),
    o("gatewaying", Some('g'), N, Tag::Gatewaying),
    o("weight", Some('w'), Req, Tag::Weight),
    o("u-threshold", Some('x'), Req, Tag::UThreshold),
    o("l-threshold", Some('y'), Req, Tag::LThreshold),
    o("numeric", Some('n'), N, Tag::Numeric),
    o("connection", Some('c'), N, Tag::Connection),
    o("mcast-interface", None, Req, Tag::McastInterface),
    o("syncid", None, Req, Tag::SyncId),
    o("timeout", None, N, Tag::Timeout),
    o("daemon", None, N, Tag::Daemon),
    o("stats", None, N, Tag::Stats),
    o("rate", None, N, Tag::Rate),
    o("thresholds", None, N, Tag::Thresholds),
    o("persistent-conn", None, N, Tag::PersistentConn),
    o("nosort", None, N, Tag::NoSort),
    o("sort", None, N, Tag::Sort),
    o("exact", Some('X'), N, Tag::Exact),
    o("ipv6", Some('6'), N, Tag::Ipv6),
    o("ops", Some('o'), N, Tag::Ops),
    o("pe", None, Req, Tag::Pe),
    o("sched-flags", Some('b'), Req, Tag::SchedFlags),
    o("mcast-group", None, Req, Tag::McastGroup),
    o("mcast-port", None, Req, Tag::McastPort),
    o("mcast-ttl", None, Req, Tag::McastTtl),
    o("sync-maxlen", None, Req, Tag::SyncMaxlen),
    o("tun-info", None, N, Tag::TunInfo),
    o("tun-type", None, Req, Tag::TunType),
    o("tun-port", None, Req, Tag::TunPort),
    o("tun-nocsum", None, N, Tag::TunNocsum),
    o("tun-csum", None, N, Tag::TunCsum),
    o("tun-remcsum", None, N, Tag::TunRemcsum),
    // rvs additions.
    o("fullnat", None, N, Tag::FullNat),
    o("proxy-protocol", None, Req, Tag::ProxyProtocol),
    o("add-laddr", None, N, Tag::AddLaddr),
    o("del-laddr", None, N, Tag::DelLaddr),
    o("get-laddr", None, N, Tag::GetLaddr),
    o("laddr", Some('z'), Req, Tag::Laddr),
    o("vrrp", None, N, Tag::Vrrp),
    o("json", None, N, Tag::Json),
    o("sysctl", None, N, Tag::Sysctl),
];

/// `ipvs_service_t` as ipvsadm fills it.
#[derive(Debug, Clone)]
struct Svc {
    af: u16,
    protocol: u8,
    addr: Option<IpAddr>,
    port: u16,
    fwmark: u32,
    sched_name: String,
    flags: ServiceFlags,
    timeout: u32,
    netmask: u32,
    pe_name: String,
    proxy: ProxyProtocol,
}

/// Forwarding method bits as ipvsadm stores them in `conn_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fwd {
    Masq,
    Tunnel,
    Route,
    FullNat,
}

#[derive(Debug, Clone)]
struct Dest {
    af: u16,
    addr: Option<IpAddr>,
    port: u16,
    fwd: Fwd,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: usize,
    tun_port: u16,
    tun_flags: u8,
}

#[derive(Debug, Clone)]
struct Daemon {
    role: SyncRole,
    mcast_ifn: String,
    syncid: u8,
    sync_maxlen: u16,
    mcast_group: Option<IpAddr>,
    mcast_port: u16,
    mcast_ttl: u8,
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SERVICE_ADDR: u8 = 1;
const SERVICE_PORT: u8 = 2;

fn proto_of(n: u8) -> Option<Protocol> {
    match n {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        132 => Some(Protocol::Sctp),
        _ => None,
    }
}

/// ipvsadm's `string_to_number`.
fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    strtol_full(s).filter(|n| (min..=max).contains(n))
}

/// ipvsadm's `parse_service`: fills addr/af/port of `svc`, returns SERVICE_ADDR|SERVICE_PORT
/// bits (0 on error).
fn parse_service(buf: &str, svc: &mut Svc, names: &dyn Names) -> u8 {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let mut host: &str = buf;
    let mut port: Option<&str> = None;
    if let Some(inner) = buf.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return 0;
        };
        let after = &inner[close + 1..];
        match after.strip_prefix(':') {
            Some(p) => port = Some(p),
            None => return 0,
        }
        host = &inner[..close];
    }
    if let Ok(v6) = host.parse::<std::net::Ipv6Addr>() {
        svc.addr = Some(IpAddr::V6(v6));
        svc.af = AF_INET6;
        svc.netmask = 128;
    } else {
        // Quirk kept: the port split is redone inside the host part, so a bracketed IPv4
        // address loses its port (`[1.2.3.4]:80` means port 0).
        port = None;
        if let Some(p) = host.rfind(':') {
            port = Some(&host[p + 1..]);
            host = &host[..p];
        }
        if let Some(a) = inet_aton(host).or_else(|| names.host_to_ipv4(host)) {
            svc.addr = Some(IpAddr::V4(a));
            svc.af = AF_INET;
        } else {
            return 0;
        }
    }
    let mut result = SERVICE_ADDR;
    if let Some(p) = port {
        result |= SERVICE_PORT;
        if let Some(n) = string_to_number(p, 0, 65535) {
            svc.port = n as u16;
        } else if let Some(n) = proto_of(svc.protocol).and_then(|pr| names.service_to_port(p, pr)) {
            svc.port = n;
        } else {
            return 0;
        }
    }
    result
}

/// ipvsadm's `parse_sched_flags`.
fn parse_sched_flags(sched: &str, arg: &str) -> Result<ServiceFlags, Exit> {
    let sched = if sched.is_empty() { DEF_SCHED } else { sched };
    let mut f = ServiceFlags::default();
    let mut any = false;
    for flag in arg.split(',').filter(|s| !s.is_empty()) {
        any = true;
        let (bit, need) = match flag {
            "flag-1" => (1, None),
            "flag-2" => (2, None),
            "flag-3" => (3, None),
            "sh-fallback" => (1, Some("sh")),
            "sh-port" => (2, Some("sh")),
            "mh-fallback" => (1, Some("mh")),
            "mh-port" => (2, Some("mh")),
            _ => return Err(Exit::fail(2, format!("invalid scheduler flag `{flag}'"))),
        };
        match bit {
            1 => f.sched1 = true,
            2 => f.sched2 = true,
            _ => f.sched3 = true,
        }
        if let Some(n) = need {
            if sched != n {
                return Err(Exit::fail(
                    2,
                    format!("incompatible scheduler flag `{flag}'"),
                ));
            }
        }
    }
    if !any {
        // ipvsadm dereferences a NULL token here and crashes; report the argument instead.
        return Err(Exit::fail(2, format!("invalid scheduler flag `{arg}'")));
    }
    Ok(f)
}

fn tryhelp(program: &str) -> Exit {
    Exit {
        code: 255,
        stdout: String::new(),
        stderr: format!("Try `{program} -h' or '{program} --help' for more information.\n"),
        soft: false,
    }
}

/// Every option of the parser's table as (long name, short letter), in table order (`list`
/// twice, for `-L` and `-l`): the manual page and the shell completions are checked
/// against it.
pub fn options() -> impl Iterator<Item = (&'static str, Option<char>)> {
    OPTIONS.iter().map(|o| (o.long, o.short))
}

/// `ipvsadm -v` text.
pub fn version_text() -> String {
    "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n".to_string()
}

/// `ipvsadm -h` text (`PROGRAM` stands for `argv[0]`), rvs additions appended at the end.
const USAGE: &str = r#"Usage:
  PROGRAM -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  PROGRAM -D virtual-service
  PROGRAM -C
  PROGRAM -R
  PROGRAM -S [-n]
  PROGRAM -a|e virtual-service -r server-address [options]
  PROGRAM -d virtual-service -r server-address
  PROGRAM -L|l [virtual-service] [options]
  PROGRAM -Z [virtual-service]
  PROGRAM --set tcp tcpfin udp
  PROGRAM --start-daemon {master|backup} [daemon-options]
  PROGRAM --stop-daemon {master|backup}
  PROGRAM -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be sip,
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)

rvs additions:
  PROGRAM --add-laddr virtual-service -z local-address
  PROGRAM --del-laddr virtual-service -z local-address
  PROGRAM --get-laddr [virtual-service] [-n]
  PROGRAM -L|l --vrrp
  PROGRAM --sysctl [name[=value]]
  --fullnat                           full NAT (SNAT to a local address + DNAT) for -a/-e
  --proxy-protocol v1|v2              PROXY protocol header to real servers, for -A/-E
  --laddr        -z local-address     FULLNAT local address
  --vrrp                              output of VRRP instance status (with -L|-l)
  --json                              -L|-l output as JSON
  --sysctl [name[=value]]             list the IPVS sysctls (net.ipv4.vs.*), or set one
  --socket PATH                       rvsd control socket (default /run/rvs/rvsd.sock as root,
                                      else $XDG_RUNTIME_DIR/rvs/rvsd.sock; env RVS_SOCKET)
"#;

/// `--sysctl`, `--sysctl NAME`, `--sysctl NAME=VALUE`; a name may carry the `net.ipv4.vs.`
/// prefix that `sysctl(8)` shows.
fn sysctl_command(arg: Option<String>) -> Result<Command, Exit> {
    let Some(a) = arg else {
        return Ok(Command::GetSysctl(None));
    };
    let (name, value) = match a.split_once('=') {
        Some((n, v)) => (n.trim(), Some(v.trim())),
        None => (a.trim(), None),
    };
    let name = name.strip_prefix("net.ipv4.vs.").unwrap_or(name);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(Exit::fail(
            2,
            format!("illegal sysctl name `{name}' specified"),
        ));
    }
    Ok(match value {
        None => Command::GetSysctl(Some(name.to_string())),
        Some("") => return Err(Exit::fail(2, format!("--sysctl {name}= needs a value"))),
        Some(v) => Command::SetSysctl(name.to_string(), v.to_string()),
    })
}

/// `ipvsadm -h` text for program name `program`, with rvs additions appended.
pub fn usage_text(program: &str) -> String {
    let mut s = version_text();
    s.push_str(&USAGE.replace("PROGRAM", program));
    s
}

struct State {
    cmd: Option<Cmd>,
    options: u64,
    format: Format,
    svc: Svc,
    dest: Dest,
    timeouts: Timeouts,
    daemon: Daemon,
    laddr: Option<IpAddr>,
}

fn set_option(options: &mut u64, optc: usize) -> Result<(), Exit> {
    let bit = 1u64 << optc;
    if *options & bit != 0 {
        return Err(Exit::fail(
            2,
            format!("multiple '{}' options specified", OPT_NAMES[optc]),
        ));
    }
    *options |= bit;
    Ok(())
}

fn parse_timeout(buf: Option<&str>, min: i64, max: i64) -> Result<u32, Exit> {
    match buf {
        None => Ok(DEFAULT_PERSISTENT_TIMEOUT),
        Some(b) => string_to_number(b, min, max)
            .map(|n| n as u32)
            .ok_or_else(|| Exit::fail(2, format!("invalid timeout value `{b}' specified"))),
    }
}

fn parse_fwmark(buf: &str) -> Result<u32, Exit> {
    match strtol_full(buf) {
        Some(l) if l > 0 && l <= i64::from(u32::MAX) => Ok(l as u32),
        _ => Err(Exit::fail(
            2,
            format!("invalid fwmark value `{buf}' specified"),
        )),
    }
}

fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), Exit> {
    let i = cmd as usize;
    let row = COMMANDS_V_OPTIONS[i];
    let mut last = 0usize;
    let mut count = 0;
    for (j, &rule) in row.iter().enumerate() {
        if options & (1u64 << j) == 0 {
            if rule == b'+' {
                return Err(Exit::fail(
                    2,
                    format!(
                        "You need to supply the '{}' option for the '{}' command",
                        OPT_NAMES[j], CMD_NAMES[i]
                    ),
                ));
            }
        } else {
            if rule == b'x' {
                return Err(Exit::fail(
                    2,
                    format!(
                        "Illegal '{}' option with the '{}' command",
                        OPT_NAMES[j], CMD_NAMES[i]
                    ),
                ));
            }
            if rule == b'1' {
                count += 1;
                if count == 1 {
                    last = j;
                    continue;
                }
                return Err(Exit::fail(
                    2,
                    format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        OPT_NAMES[j], OPT_NAMES[last], CMD_NAMES[i]
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn tunnel_opt_check(tun_type: usize, options: u64) -> Result<(), Exit> {
    let row = TUNNEL_TYPES_V_OPTIONS[tun_type];
    let mut last = 0usize;
    let mut count = 0;
    for (j, &k) in TUN_OPTS.iter().enumerate() {
        if options & (1u64 << k) == 0 {
            if row[j] == b'+' {
                return Err(Exit::fail(
                    2,
                    format!(
                        "You need to supply the '{}' option for the '{}' tunnel type",
                        OPT_NAMES[k], TUN_NAMES[tun_type]
                    ),
                ));
            }
        } else {
            if row[j] == b'x' {
                return Err(Exit::fail(
                    2,
                    format!(
                        "Illegal '{}' option with the '{}' tunnel type",
                        OPT_NAMES[k], TUN_NAMES[tun_type]
                    ),
                ));
            }
            if row[j] == b'1' {
                count += 1;
                if count == 1 {
                    last = k;
                    continue;
                }
                return Err(Exit::fail(
                    2,
                    format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                        OPT_NAMES[k], OPT_NAMES[last], TUN_NAMES[tun_type]
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl State {
    fn new() -> State {
        State {
            cmd: None,
            options: 0,
            format: Format::default(),
            svc: Svc {
                af: 0,
                protocol: 0,
                addr: None,
                port: 0,
                fwmark: 0,
                sched_name: String::new(),
                flags: ServiceFlags::default(),
                timeout: 0,
                netmask: 0xFFFF_FFFF,
                pe_name: String::new(),
                proxy: ProxyProtocol::None,
            },
            dest: Dest {
                af: 0,
                addr: None,
                port: 0,
                fwd: Fwd::Route,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
                tun_type: 0,
                tun_port: 0,
                tun_flags: 0,
            },
            timeouts: Timeouts {
                tcp: 0,
                tcp_fin: 0,
                udp: 0,
            },
            daemon: Daemon {
                role: SyncRole::Master,
                mcast_ifn: String::new(),
                syncid: 0,
                sync_maxlen: 0,
                mcast_group: None,
                mcast_port: 0,
                mcast_ttl: 0,
            },
            laddr: None,
        }
    }

    fn set(&mut self, optc: usize) -> Result<(), Exit> {
        set_option(&mut self.options, optc)
    }

    fn has(&self, optc: usize) -> bool {
        self.options & (1u64 << optc) != 0
    }

    /// The service key as the kernel would identify it; `None` if no service was given.
    fn service_key(&self) -> Option<ServiceKey> {
        let s = &self.svc;
        if s.fwmark != 0 {
            return Some(ServiceKey::Fwmark {
                mark: s.fwmark,
                family: if s.af == AF_INET6 {
                    Family::Inet6
                } else {
                    Family::Inet
                },
            });
        }
        let protocol = proto_of(s.protocol)?;
        let addr = s.addr.unwrap_or(if s.af == AF_INET6 {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        });
        Some(ServiceKey::Addr {
            protocol,
            addr,
            port: s.port,
        })
    }

    fn service_spec(&self, key: ServiceKey) -> ServiceSpec {
        ServiceSpec {
            key,
            scheduler: self.svc.sched_name.clone(),
            flags: self.svc.flags,
            timeout: self.svc.timeout,
            netmask: self.svc.netmask,
            pe_name: (!self.svc.pe_name.is_empty()).then(|| self.svc.pe_name.clone()),
            proxy_protocol: self.svc.proxy,
        }
    }

    fn dest_addr(&self) -> IpAddr {
        self.dest
            .addr
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn dest_spec(&self) -> DestSpec {
        let d = &self.dest;
        DestSpec {
            addr: self.dest_addr(),
            port: d.port,
            weight: d.weight,
            method: match d.fwd {
                Fwd::Masq => ForwardMethod::Masq,
                Fwd::Tunnel => ForwardMethod::Tunnel,
                Fwd::Route => ForwardMethod::Route,
                Fwd::FullNat => ForwardMethod::FullNat,
            },
            u_threshold: d.u_threshold,
            l_threshold: d.l_threshold,
            tun_type: match d.tun_type {
                1 => TunnelType::Gue,
                2 => TunnelType::Gre,
                _ => TunnelType::Ipip,
            },
            tun_port: d.tun_port,
            tun_csum: match d.tun_flags {
                1 => TunnelCsum::Csum,
                2 => TunnelCsum::RemCsum,
                _ => TunnelCsum::NoCsum,
            },
        }
    }
}

/// Processes one command line like ipvsadm's `process_options` up to (not including) talking
/// to the kernel. `args[0]` is the program name; `reading_stdin` is true for lines of `-R`.
///
/// A command line of only the program name lists the table, as ipvsadm does.
pub fn parse_command(
    args: &[String],
    reading_stdin: bool,
    names: &dyn Names,
) -> Result<Parsed, Exit> {
    let program = args.first().map(String::as_str).unwrap_or("ipvsadm");
    if args.len() <= 1 {
        return Ok(Parsed {
            command: Command::ListAll,
            format: Format::default(),
        });
    }
    let mut st = State::new();
    let mut popt = Popt::new(OPTIONS, args);

    // The first option must be the command.
    let (tag, arg) = match popt.next_opt() {
        Ok(Some(x)) => x,
        _ => return Err(tryhelp(program)),
    };
    st.cmd = Some(match tag {
        Tag::AddService => Cmd::Add,
        Tag::EditService => Cmd::Edit,
        Tag::DelService => Cmd::Del,
        Tag::AddServer => Cmd::AddDest,
        Tag::EditServer => Cmd::EditDest,
        Tag::DelServer => Cmd::DelDest,
        Tag::Clear => Cmd::Flush,
        Tag::ListUpper | Tag::ListLower => Cmd::List,
        Tag::Zero => Cmd::Zero,
        Tag::Set => Cmd::Timeout,
        Tag::Restore => Cmd::Restore,
        Tag::Save => Cmd::Save,
        Tag::AddLaddr => Cmd::AddLaddr,
        Tag::DelLaddr => Cmd::DelLaddr,
        Tag::GetLaddr => Cmd::GetLaddr,
        Tag::Sysctl => Cmd::Sysctl,
        Tag::StartDaemon | Tag::StopDaemon => {
            let a = arg.unwrap_or_default();
            st.daemon.role = match a.as_str() {
                "master" => SyncRole::Master,
                "backup" => SyncRole::Backup,
                _ if tag == Tag::StartDaemon => {
                    return Err(Exit::fail(2, "illegal start-daemon parameter specified"))
                }
                _ => return Err(Exit::fail(2, "illegal start_daemon specified")),
            };
            if tag == Tag::StartDaemon {
                Cmd::StartDaemon
            } else {
                Cmd::StopDaemon
            }
        }
        Tag::Help => {
            return Err(Exit {
                code: 0,
                stdout: usage_text(program),
                stderr: String::new(),
                soft: false,
            })
        }
        Tag::Version => {
            return Err(Exit {
                code: 0,
                stdout: version_text(),
                stderr: String::new(),
                soft: false,
            })
        }
        _ => return Err(tryhelp(program)),
    });

    let mut sched_flags_arg = String::new();
    loop {
        let (tag, arg) = match popt.next_opt() {
            Ok(Some(x)) => x,
            Ok(None) => break,
            Err(e) => {
                return Err(Exit {
                    code: 255,
                    stdout: String::new(),
                    stderr: format!("{}: {}\n", popt.bad_option(), e.message()),
                    soft: true,
                })
            }
        };
        let a = arg.clone().unwrap_or_default();
        match tag {
            Tag::Tcp | Tag::Udp | Tag::Sctp => {
                st.set(OPTC_SERVICE)?;
                st.svc.protocol = match tag {
                    Tag::Tcp => 6,
                    Tag::Udp => 17,
                    _ => 132,
                };
                let parse = parse_service(&a, &mut st.svc, names);
                if parse & SERVICE_ADDR == 0 {
                    return Err(Exit::fail(
                        2,
                        "illegal virtual server address[:port] specified",
                    ));
                }
            }
            Tag::Fwmark => {
                st.set(OPTC_SERVICE)?;
                st.svc.af = AF_INET;
                st.svc.protocol = 6;
                st.svc.fwmark = parse_fwmark(&a)?;
            }
            Tag::Scheduler => {
                st.set(OPTC_SCHEDULER)?;
                // strncpy(sched_name, optarg, IP_VS_SCHEDNAME_MAXLEN - 1)
                st.svc.sched_name = truncate(&a, 15);
            }
            Tag::Persistent => {
                st.set(OPTC_PERSISTENT)?;
                st.svc.flags.persistent = true;
                st.svc.timeout = parse_timeout(arg.as_deref(), 1, MAX_TIMEOUT)?;
            }
            Tag::Netmask => {
                st.set(OPTC_NETMASK)?;
                if st.svc.af != AF_INET6 {
                    match inet_aton(&a).or_else(|| names.host_to_ipv4(&a)) {
                        Some(m) => st.svc.netmask = u32::from(m),
                        None => {
                            return Err(Exit::fail(
                                2,
                                "illegal virtual server persistent mask specified",
                            ))
                        }
                    }
                } else {
                    let n = atoi(&a);
                    if !(1..=128).contains(&n) {
                        return Err(Exit::fail(2, "illegal ipv6 netmask specified"));
                    }
                    st.svc.netmask = n as u32;
                }
            }
            Tag::RealServer => {
                st.set(OPTC_SERVER)?;
                let mut t = st.svc.clone();
                let parse = parse_service(&a, &mut t, names);
                st.dest.af = t.af;
                st.dest.addr = t.addr;
                st.dest.port = t.port;
                if parse & SERVICE_ADDR == 0 {
                    return Err(Exit::fail(
                        2,
                        "illegal real server address[:port] specified",
                    ));
                }
                if parse == SERVICE_ADDR {
                    st.dest.port = st.svc.port;
                }
            }
            Tag::Ipip => {
                st.set(OPTC_FORWARD)?;
                st.dest.fwd = Fwd::Tunnel;
            }
            Tag::Gatewaying => {
                st.set(OPTC_FORWARD)?;
                st.dest.fwd = Fwd::Route;
            }
            Tag::Masq => {
                st.set(OPTC_FORWARD)?;
                st.dest.fwd = Fwd::Masq;
            }
            Tag::FullNat => {
                st.set(OPTC_FORWARD)?;
                st.dest.fwd = Fwd::FullNat;
            }
            Tag::Weight => {
                st.set(OPTC_WEIGHT)?;
                st.dest.weight = string_to_number(&a, 0, 65535)
                    .ok_or_else(|| Exit::fail(2, "illegal weight specified"))?
                    as u32;
            }
            Tag::UThreshold => {
                st.set(OPTC_UTHRESHOLD)?;
                st.dest.u_threshold = string_to_number(&a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| Exit::fail(2, "illegal u_threshold specified"))?
                    as u32;
            }
            Tag::LThreshold => {
                st.set(OPTC_LTHRESHOLD)?;
                st.dest.l_threshold = string_to_number(&a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| Exit::fail(2, "illegal l_threshold specified"))?
                    as u32;
            }
            Tag::Connection => st.set(OPTC_CONNECTION)?,
            Tag::Numeric => {
                st.set(OPTC_NUMERIC)?;
                st.format.numeric = true;
            }
            Tag::McastInterface => {
                st.set(OPTC_MCAST)?;
                st.daemon.mcast_ifn = truncate(&a, 15);
            }
            Tag::SyncId => {
                st.set(OPTC_SYNCID)?;
                st.daemon.syncid = string_to_number(&a, 0, 255)
                    .ok_or_else(|| Exit::fail(2, "illegal syncid specified"))?
                    as u8;
            }
            Tag::Timeout => st.set(OPTC_TIMEOUT)?,
            Tag::Daemon => st.set(OPTC_DAEMON)?,
            Tag::Vrrp => st.set(OPTC_VRRP)?,
            Tag::Json => {
                st.set(OPTC_JSON)?;
                st.format.json = true;
            }
            Tag::Stats => {
                st.set(OPTC_STATS)?;
                st.format.stats = true;
            }
            Tag::Rate => {
                st.set(OPTC_RATE)?;
                st.format.rate = true;
            }
            Tag::Thresholds => {
                st.set(OPTC_THRESHOLDS)?;
                st.format.thresholds = true;
            }
            Tag::PersistentConn => {
                st.set(OPTC_PERSISTENTCONN)?;
                st.format.persistent_conn = true;
            }
            Tag::NoSort => {
                st.set(OPTC_NOSORT)?;
                st.format.nosort = true;
            }
            Tag::Sort => {
                // Sorting is the default; a no-op kept for compatibility.
            }
            Tag::Exact => {
                st.set(OPTC_EXACT)?;
                st.format.exact = true;
            }
            Tag::Ipv6 => {
                if st.svc.fwmark != 0 {
                    st.svc.af = AF_INET6;
                    st.svc.netmask = 128;
                } else {
                    // ipvsadm's message carries its own newline, then fail() adds one.
                    return Err(Exit::fail(2, "-6 used before -f\n"));
                }
            }
            Tag::Ops => {
                st.set(OPTC_ONEPACKET)?;
                st.svc.flags.one_packet = true;
            }
            Tag::Pe => {
                st.set(OPTC_PERSISTENCE_ENGINE)?;
                // ipvsadm cuts names at the kernel's 15 bytes; rvs's engines with an
                // argument (`cookie-learn:JSESSIONID`) are longer and are kept whole.
                st.svc.pe_name = if a.contains(':') {
                    truncate(&a, 127)
                } else {
                    truncate(&a, 15)
                };
            }
            Tag::SchedFlags => {
                st.set(OPTC_SCHED_FLAGS)?;
                sched_flags_arg = truncate(&a, 127);
            }
            Tag::McastGroup => {
                st.set(OPTC_MCAST_GROUP)?;
                if a.contains(':') {
                    match a.parse::<std::net::Ipv6Addr>() {
                        Ok(g) if g.is_multicast() => st.daemon.mcast_group = Some(IpAddr::V6(g)),
                        _ => return Err(Exit::fail(2, format!("invalid IPv6 mcast-group `{a}'"))),
                    }
                } else {
                    match a.parse::<std::net::Ipv4Addr>() {
                        Ok(g) if g.is_multicast() => st.daemon.mcast_group = Some(IpAddr::V4(g)),
                        _ => return Err(Exit::fail(2, format!("invalid IPv4 mcast-group `{a}'"))),
                    }
                }
            }
            Tag::McastPort => {
                st.set(OPTC_MCAST_PORT)?;
                st.daemon.mcast_port = string_to_number(&a, 1, 65535)
                    .ok_or_else(|| Exit::fail(2, "illegal mcast-port specified"))?
                    as u16;
            }
            Tag::McastTtl => {
                st.set(OPTC_MCAST_TTL)?;
                st.daemon.mcast_ttl = string_to_number(&a, 1, 255)
                    .ok_or_else(|| Exit::fail(2, "illegal mcast-ttl specified"))?
                    as u8;
            }
            Tag::SyncMaxlen => {
                st.set(OPTC_SYNC_MAXLEN)?;
                st.daemon.sync_maxlen = string_to_number(&a, 1, 65535 - 20 - 8)
                    .ok_or_else(|| Exit::fail(2, "illegal sync-maxlen specified"))?
                    as u16;
            }
            Tag::TunInfo => {
                st.set(OPTC_TUN_INFO)?;
                st.format.tun_info = true;
            }
            Tag::TunType => {
                st.set(OPTC_TUN_TYPE)?;
                st.dest.tun_type = match a.as_str() {
                    "ipip" => 0,
                    "gue" => 1,
                    "gre" => 2,
                    _ => return Err(Exit::fail(2, "illegal tunnel type specified")),
                };
            }
            Tag::TunPort => {
                st.set(OPTC_TUN_PORT)?;
                st.dest.tun_port = string_to_number(&a, 1, 65535)
                    .ok_or_else(|| Exit::fail(2, "illegal tunnel port specified"))?
                    as u16;
            }
            Tag::TunNocsum => st.set(OPTC_TUN_NOCSUM)?,
            Tag::TunCsum => {
                st.set(OPTC_TUN_CSUM)?;
                st.dest.tun_flags |= 1;
            }
            Tag::TunRemcsum => {
                st.set(OPTC_TUN_REMCSUM)?;
                st.dest.tun_flags |= 2;
            }
            Tag::ProxyProtocol => {
                st.set(OPTC_PROXY_PROTOCOL)?;
                st.svc.proxy = match a.as_str() {
                    "v1" => ProxyProtocol::V1,
                    "v2" => ProxyProtocol::V2,
                    _ => {
                        return Err(Exit::fail(
                            2,
                            format!("illegal proxy-protocol `{a}' specified (use v1 or v2)"),
                        ))
                    }
                };
            }
            Tag::Laddr => {
                st.set(OPTC_LADDR)?;
                st.laddr = match a.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => return Err(Exit::fail(2, "illegal local address specified")),
                };
            }
            // Commands after the first option, -h and -v included, are rejected like ipvsadm
            // does (popt hands them back and ipvsadm's switch has no case for them).
            Tag::AddService
            | Tag::EditService
            | Tag::DelService
            | Tag::Clear
            | Tag::ListUpper
            | Tag::ListLower
            | Tag::Zero
            | Tag::AddServer
            | Tag::EditServer
            | Tag::DelServer
            | Tag::Set
            | Tag::Help
            | Tag::Version
            | Tag::Restore
            | Tag::Save
            | Tag::StartDaemon
            | Tag::StopDaemon
            | Tag::AddLaddr
            | Tag::DelLaddr
            | Tag::GetLaddr
            | Tag::Sysctl => {
                return Err(Exit::fail(
                    2,
                    format!("invalid option `{}'", popt.bad_option()),
                ))
            }
        }
    }

    let cmd = st.cmd.expect("command set above");

    if cmd == Cmd::Timeout {
        match (popt.get_arg(), popt.get_arg(), popt.get_arg()) {
            (Some(a), Some(b), Some(c)) => {
                st.timeouts.tcp = parse_timeout(Some(&a), 0, MAX_TIMEOUT)?;
                st.timeouts.tcp_fin = parse_timeout(Some(&b), 0, MAX_TIMEOUT)?;
                st.timeouts.udp = parse_timeout(Some(&c), 0, MAX_TIMEOUT)?;
            }
            _ => return Err(Exit::fail(2, "--set option requires 3 timeout values")),
        }
    }
    let sysctl = if cmd == Cmd::Sysctl {
        popt.get_arg()
    } else {
        None
    };
    if let Some(extra) = popt.get_arg() {
        return Err(Exit::fail(2, format!("unexpected argument {extra}")));
    }
    if !sched_flags_arg.is_empty() {
        let f = parse_sched_flags(&st.svc.sched_name, &sched_flags_arg)?;
        st.svc.flags.sched1 = f.sched1;
        st.svc.flags.sched2 = f.sched2;
        st.svc.flags.sched3 = f.sched3;
    }

    generic_opt_check(cmd, st.options)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if st.svc.fwmark == 0 && st.svc.port == 0 && !st.svc.flags.persistent {
            return Err(Exit::fail(
                2,
                "Zero port specified for non-persistent service",
            ));
        }
        if st.svc.flags.one_packet && st.svc.fwmark == 0 && st.svc.protocol != 17 {
            return Err(Exit::fail(
                2,
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if st.svc.sched_name.is_empty() {
            st.svc.sched_name = DEF_SCHED.to_string();
        }
    }
    if cmd == Cmd::StartDaemon && st.daemon.mcast_ifn.is_empty() {
        st.daemon.mcast_ifn = DEF_MCAST_IFN.to_string();
    }
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        // The destination port must equal the service port for DR and TUN, unless fwmark.
        if st.svc.fwmark == 0 && matches!(st.dest.fwd, Fwd::Tunnel | Fwd::Route) {
            st.dest.port = st.svc.port;
        }
        if st.dest.af != st.svc.af && st.dest.fwd != Fwd::Tunnel {
            return Err(Exit::fail(
                2,
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tun_opts = [
            OPTC_TUN_TYPE,
            OPTC_TUN_PORT,
            OPTC_TUN_NOCSUM,
            OPTC_TUN_CSUM,
            OPTC_TUN_REMCSUM,
        ];
        if tun_opts.iter().any(|&t| st.has(t)) && st.dest.fwd != Fwd::Tunnel {
            return Err(Exit::fail(2, "Tunnel options conflict with forward method"));
        }
        tunnel_opt_check(st.dest.tun_type, st.options)?;
    }

    let key = st.service_key();
    let need_key = || {
        key.clone()
            .expect("service presence checked by the legality table")
    };
    let command = match cmd {
        Cmd::List => {
            if (st.has(OPTC_CONNECTION) || st.has(OPTC_TIMEOUT) || st.has(OPTC_DAEMON))
                && (st.has(OPTC_STATS) || st.has(OPTC_RATE) || st.has(OPTC_THRESHOLDS))
                || (st.has(OPTC_TIMEOUT) || st.has(OPTC_DAEMON)) && st.has(OPTC_PERSISTENTCONN)
                || st.has(OPTC_VRRP)
                    && [
                        OPTC_STATS,
                        OPTC_RATE,
                        OPTC_THRESHOLDS,
                        OPTC_PERSISTENTCONN,
                        OPTC_TUN_INFO,
                    ]
                    .iter()
                    .any(|&o| st.has(o))
            {
                return Err(Exit::fail(2, "options conflicts in the list command"));
            }
            if st.has(OPTC_CONNECTION) {
                Command::ListConns
            } else if st.has(OPTC_SERVICE) {
                Command::ListService(need_key())
            } else if st.has(OPTC_TIMEOUT) {
                Command::ListTimeout
            } else if st.has(OPTC_DAEMON) {
                Command::ListDaemon
            } else if st.has(OPTC_VRRP) {
                Command::ListVrrp
            } else {
                Command::ListAll
            }
        }
        Cmd::Restore => {
            // Avoid an infinite loop: `-R` inside a restore stream is refused.
            if reading_stdin {
                return Err(tryhelp(program));
            }
            Command::Restore
        }
        Cmd::Save => {
            st.format.rule = true;
            Command::Save
        }
        Cmd::Flush => Command::Flush,
        Cmd::Add => Command::AddService(st.service_spec(need_key())),
        Cmd::Edit => Command::EditService(st.service_spec(need_key())),
        Cmd::Del => Command::DelService(need_key()),
        Cmd::Zero => {
            // libipvs sends no service (zero everything) unless fwmark, address or port is set.
            let all = match &key {
                None => true,
                Some(ServiceKey::Addr { addr, port, .. }) => addr.is_unspecified() && *port == 0,
                Some(ServiceKey::Fwmark { .. }) => false,
            };
            Command::Zero(if all { None } else { key.clone() })
        }
        Cmd::AddDest => Command::AddDest(need_key(), st.dest_spec()),
        Cmd::EditDest => Command::EditDest(need_key(), st.dest_spec()),
        Cmd::DelDest => Command::DelDest(need_key(), st.dest_addr(), st.dest.port),
        Cmd::Timeout => Command::SetTimeouts(st.timeouts),
        Cmd::StartDaemon => Command::StartDaemon(DaemonConfig {
            role: st.daemon.role,
            mcast_ifn: st.daemon.mcast_ifn.clone(),
            syncid: st.daemon.syncid,
            sync_maxlen: st.daemon.sync_maxlen,
            mcast_group: st.daemon.mcast_group,
            mcast_port: st.daemon.mcast_port,
            mcast_ttl: st.daemon.mcast_ttl,
        }),
        Cmd::StopDaemon => Command::StopDaemon(st.daemon.role, st.daemon.syncid),
        Cmd::AddLaddr => Command::AddLaddr(need_key(), st.laddr.expect("checked")),
        Cmd::DelLaddr => Command::DelLaddr(need_key(), st.laddr.expect("checked")),
        Cmd::GetLaddr => Command::GetLaddr(key.clone()),
        Cmd::Sysctl => sysctl_command(sysctl)?,
    };
    Ok(Parsed {
        command,
        format: st.format,
    })
}
