//! Every illegal command line of docs/internals/ipvsadm.md#which-options-go-with-which-command and every error text of docs/internals/ipvsadm.md#exit-status-and-error-texts, with exit status.
//!
//! The legality tables are embedded here exactly as they appear in ipvsadm.c (and the rvs
//! rows/columns appended), parsed independently of rvsadm's own copy, and every cell that can
//! fail is exercised.

mod common;
use common::*;
use rvs_control::*;

/// ipvsadm.c `commands_v_options`, verbatim, plus rvs columns (proxy-protocol, laddr, vrrp)
/// appended to each row and four rvs rows (add-laddr, del-laddr, get-laddr, sysctl).
const C_TABLE: &str = r"
/*ADD*/     {'x', 'x', '+', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x'},
/*EDIT*/    {'x', 'x', '+', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x'},
/*DEL*/     {'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*FLUSH*/   {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*LIST*/    {' ', '1', '1', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', '1', '1', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', '1'},
/*ADDSRV*/  {'x', 'x', '+', 'x', 'x', 'x', '+', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', ' ', 'x', 'x', 'x'},
/*DELSRV*/  {'x', 'x', '+', 'x', 'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*EDITSRV*/ {'x', 'x', '+', 'x', 'x', 'x', '+', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', ' ', 'x', 'x', 'x'},
/*TIMEOUT*/ {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*STARTD*/  {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*STOPD*/   {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*RESTORE*/ {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*SAVE*/    {' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*ZERO*/    {'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*ADDLADDR*/{'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', '+', 'x'},
/*DELLADDR*/{'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', '+', 'x'},
/*GETLADDR*/{' ', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*SYSCTL*/  {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
";

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

const OPT_NAMES: [&str; 37] = [
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
];

/// A command-line snippet that sets each option with a valid value.
fn snippet(opt: usize) -> Vec<&'static str> {
    match opt {
        0 => vec!["-n"],
        1 => vec!["-c"],
        2 => vec!["-t", "10.0.0.1:80"],
        3 => vec!["-s", "rr"],
        4 => vec!["-p", "60"],
        5 => vec!["-M", "255.255.255.0"],
        6 => vec!["-r", "10.1.1.1:80"],
        7 => vec!["-m"],
        8 => vec!["-w", "2"],
        9 => vec!["-x", "10"],
        10 => vec!["-y", "5"],
        11 => vec!["--mcast-interface", "eth1"],
        12 => vec!["--timeout"],
        13 => vec!["--daemon"],
        14 => vec!["--stats"],
        15 => vec!["--rate"],
        16 => vec!["--thresholds"],
        17 => vec!["--persistent-conn"],
        18 => vec!["--nosort"],
        19 => vec!["--syncid", "3"],
        20 => vec!["--exact"],
        21 => vec!["-o"],
        22 => vec!["--pe", "sip"],
        23 => vec!["-b", "flag-1"],
        24 => vec!["--mcast-group", "224.0.0.81"],
        25 => vec!["--mcast-port", "8848"],
        26 => vec!["--mcast-ttl", "1"],
        27 => vec!["--sync-maxlen", "1472"],
        28 => vec!["--tun-info"],
        29 => vec!["--tun-type", "ipip"],
        30 => vec!["--tun-port", "6080"],
        31 => vec!["--tun-nocsum"],
        32 => vec!["--tun-csum"],
        33 => vec!["--tun-remcsum"],
        34 => vec!["--proxy-protocol", "v2"],
        35 => vec!["-z", "10.9.9.9"],
        36 => vec!["--vrrp"],
        _ => unreachable!(),
    }
}

/// The command word(s) of each command row.
fn command_word(cmd: usize) -> Vec<&'static str> {
    match cmd {
        0 => vec!["-A"],
        1 => vec!["-E"],
        2 => vec!["-D"],
        3 => vec!["-C"],
        4 => vec!["-L"],
        5 => vec!["-a"],
        6 => vec!["-d"],
        7 => vec!["-e"],
        8 => vec!["--set", "1", "2", "3"],
        9 => vec!["--start-daemon", "master"],
        10 => vec!["--stop-daemon", "master"],
        11 => vec!["-R"],
        12 => vec!["-S"],
        13 => vec!["-Z"],
        14 => vec!["--add-laddr"],
        15 => vec!["--del-laddr"],
        16 => vec!["--get-laddr"],
        17 => vec!["--sysctl"],
        _ => unreachable!(),
    }
}

fn table() -> Vec<Vec<char>> {
    C_TABLE
        .lines()
        .filter(|l| l.contains('{'))
        .map(|l| {
            let body = &l[l.find('{').unwrap()..];
            let cells: Vec<char> = body
                .split('\'')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s.chars().next().unwrap())
                .collect();
            assert_eq!(cells.len(), 37, "{l}");
            cells
        })
        .collect()
}

/// Command word + every compulsory option except `skip`.
fn base(cmd: usize, row: &[char], skip: Option<usize>) -> Vec<&'static str> {
    let mut v = command_word(cmd);
    for (j, &c) in row.iter().enumerate() {
        if c == '+' && Some(j) != skip {
            v.extend(snippet(j));
        }
    }
    v
}

fn expect(args: &[&str], code: i32, stderr: &str) {
    let mut t = MemTable::with(vec![]);
    let r = run(&mut t, args);
    assert_eq!(
        (r.code, r.err.as_str()),
        (code, stderr),
        "ipvsadm {}",
        args.join(" ")
    );
    // A refused command line never reaches rvsd.
    assert!(
        t.requests.is_empty(),
        "ipvsadm {} sent {:?}",
        args.join(" "),
        t.requests
    );
}

#[test]
fn every_illegal_option_of_every_command() {
    let t = table();
    assert_eq!(t.len(), 18);
    let mut checked = 0;
    for (i, row) in t.iter().enumerate() {
        for (j, &cell) in row.iter().enumerate() {
            if cell != 'x' {
                continue;
            }
            let mut args = base(i, row, None);
            args.extend(snippet(j));
            expect(
                &args,
                2,
                &format!(
                    "Illegal '{}' option with the '{}' command\n",
                    OPT_NAMES[j], CMD_NAMES[i]
                ),
            );
            checked += 1;
        }
    }
    assert!(checked > 450, "only {checked} cells checked");
}

#[test]
fn every_missing_compulsory_option() {
    let t = table();
    let mut checked = 0;
    for (i, row) in t.iter().enumerate() {
        for (j, &cell) in row.iter().enumerate() {
            if cell != '+' {
                continue;
            }
            let args = base(i, row, Some(j));
            expect(
                &args,
                2,
                &format!(
                    "You need to supply the '{}' option for the '{}' command\n",
                    OPT_NAMES[j], CMD_NAMES[i]
                ),
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 13);
}

#[test]
fn every_exclusive_pair_of_list() {
    let t = table();
    let row = &t[4];
    let ones: Vec<usize> = (0..37).filter(|&j| row[j] == '1').collect();
    assert_eq!(ones, vec![1, 2, 12, 13, 36]);
    for (ai, &a) in ones.iter().enumerate() {
        for &b in &ones[ai + 1..] {
            // The message names the later table column first, whatever the command-line order.
            for order in [[a, b], [b, a]] {
                let mut args = vec!["-L"];
                args.extend(snippet(order[0]));
                args.extend(snippet(order[1]));
                expect(
                    &args,
                    2,
                    &format!(
                        "The option '{}' conflicts with the '{}' option in the 'list' command\n",
                        OPT_NAMES[b], OPT_NAMES[a]
                    ),
                );
            }
        }
    }
}

#[test]
fn list_format_conflicts() {
    for what in ["-c", "--timeout", "--daemon"] {
        for fmt in ["--stats", "--rate", "--thresholds"] {
            expect(
                &["-L", what, fmt],
                2,
                "options conflicts in the list command\n",
            );
        }
    }
    for what in ["--timeout", "--daemon"] {
        expect(
            &["-L", what, "--persistent-conn"],
            2,
            "options conflicts in the list command\n",
        );
    }
    // rvs: --vrrp prints no service table, so the table's format options make no sense with it.
    for list in ["-L", "-l"] {
        for fmt in [
            "--stats",
            "--rate",
            "--thresholds",
            "--persistent-conn",
            "--tun-info",
        ] {
            expect(
                &[list, "--vrrp", fmt],
                2,
                "options conflicts in the list command\n",
            );
        }
    }
}

#[test]
fn vrrp_is_a_list_option_only() {
    // Spelled out (the table test covers every cell): the ipvsadm-style messages a user sees.
    expect(
        &["-S", "--vrrp"],
        2,
        "Illegal 'vrrp' option with the 'save' command\n",
    );
    expect(
        &["-Z", "--vrrp"],
        2,
        "Illegal 'vrrp' option with the 'zero' command\n",
    );
    expect(
        &["-l", "--vrrp", "--daemon"],
        2,
        "The option 'vrrp' conflicts with the 'daemon' option in the 'list' command\n",
    );
    expect(
        &["-L", "--vrrp", "--vrrp"],
        2,
        "multiple 'vrrp' options specified\n",
    );
    expect(&["-L", "--vrrp", "extra"], 2, "unexpected argument extra\n");
}

/// ipvsadm.c `tunnel_types_v_options` (columns tun-port, tun-nocsum, tun-csum, tun-remcsum).
const TUN_TABLE: [(&str, [char; 4]); 3] = [
    ("ipip", ['x', 'x', 'x', 'x']),
    ("gue", ['+', '1', '1', '1']),
    ("gre", ['x', '1', '1', 'x']),
];
const TUN_OPTS: [usize; 4] = [30, 31, 32, 33];

#[test]
fn every_tunnel_rule() {
    for (ty, row) in TUN_TABLE {
        for cmd in ["-a", "-e"] {
            let base = |with_port: bool| {
                let mut v = vec![
                    cmd,
                    "-t",
                    "10.0.0.1:80",
                    "-r",
                    "10.1.1.1",
                    "-i",
                    "--tun-type",
                    ty,
                ];
                if with_port {
                    v.extend(["--tun-port", "6080"]);
                }
                v
            };
            let needs_port = row[0] == '+';
            for (k, &cell) in row.iter().enumerate() {
                let opt = TUN_OPTS[k];
                match cell {
                    'x' => {
                        let mut a = base(needs_port);
                        a.extend(snippet(opt));
                        expect(
                            &a,
                            2,
                            &format!(
                                "Illegal '{}' option with the '{ty}' tunnel type\n",
                                OPT_NAMES[opt]
                            ),
                        );
                    }
                    '+' => expect(
                        &base(false),
                        2,
                        &format!(
                            "You need to supply the '{}' option for the '{ty}' tunnel type\n",
                            OPT_NAMES[opt]
                        ),
                    ),
                    _ => {}
                }
            }
            // Exclusive checksum options: every pair conflicts.
            let ones: Vec<usize> = (0..4).filter(|&k| row[k] == '1').collect();
            for (ai, &a) in ones.iter().enumerate() {
                for &b in &ones[ai + 1..] {
                    let mut args = base(needs_port);
                    args.extend(snippet(TUN_OPTS[b]));
                    args.extend(snippet(TUN_OPTS[a]));
                    expect(
                        &args,
                        2,
                        &format!(
                            "The option '{}' conflicts with the '{}' option in the '{ty}' tunnel type\n",
                            OPT_NAMES[TUN_OPTS[b]], OPT_NAMES[TUN_OPTS[a]]
                        ),
                    );
                }
            }
        }
    }
    // Tunnel options with any other forwarding method.
    for method in [&["-m"][..], &["-g"], &["--fullnat"], &[]] {
        for opt in 29..=33 {
            let mut args = vec!["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1"];
            args.extend_from_slice(method);
            args.extend(snippet(opt));
            expect(&args, 2, "Tunnel options conflict with forward method\n");
        }
    }
}

#[test]
fn value_and_semantic_errors() {
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["-A", "-t", "80"],
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-A", "-t", "[::1]"],
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-A", "-t", "no.such.host:80"],
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:nosuchport"],
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:65536"],
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-A", "-u", ""],
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-A", "-f", "0"],
            2,
            "invalid fwmark value `0' specified\n",
        ),
        (
            &["-A", "-f", "4294967296"],
            2,
            "invalid fwmark value `4294967296' specified\n",
        ),
        (
            &["-A", "-f", "-1"],
            2,
            "invalid fwmark value `-1' specified\n",
        ),
        (
            &["-A", "-f", "1x"],
            2,
            "invalid fwmark value `1x' specified\n",
        ),
        (&["-A", "-6", "-f", "1"], 2, "-6 used before -f\n\n"),
        (
            &["-A", "-t", "10.0.0.1:80", "-p", "0"],
            2,
            "invalid timeout value `0' specified\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-p", "2678401"],
            2,
            "invalid timeout value `2678401' specified\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-pfoo"],
            2,
            "invalid timeout value `foo' specified\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-M", "bogus"],
            2,
            "illegal virtual server persistent mask specified\n",
        ),
        (
            &["-A", "-t", "[2001:db8::1]:80", "-M", "129"],
            2,
            "illegal ipv6 netmask specified\n",
        ),
        (
            &["-A", "-t", "[2001:db8::1]:80", "-M", "x"],
            2,
            "illegal ipv6 netmask specified\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-s", "rr", "-b", "sh-port"],
            2,
            "incompatible scheduler flag `sh-port'\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-b", "mh-fallback"],
            2,
            "incompatible scheduler flag `mh-fallback'\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-s", "sh", "-b", "sh-port,bogus"],
            2,
            "invalid scheduler flag `bogus'\n",
        ),
        (
            &["-a", "-t", "10.0.0.1:80", "-r", "300"],
            2,
            "illegal real server address[:port] specified\n",
        ),
        (
            &[
                "-a",
                "-t",
                "10.0.0.1:80",
                "-r",
                "10.1.1.1",
                "-i",
                "--tun-type",
                "vxlan",
            ],
            2,
            "illegal tunnel type specified\n",
        ),
        (
            &[
                "-a",
                "-t",
                "10.0.0.1:80",
                "-r",
                "10.1.1.1",
                "-i",
                "--tun-port",
                "0",
            ],
            2,
            "illegal tunnel port specified\n",
        ),
        (
            &["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", "65536"],
            2,
            "illegal weight specified\n",
        ),
        (
            &["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", "-1"],
            2,
            "illegal weight specified\n",
        ),
        (
            &[
                "-a",
                "-t",
                "10.0.0.1:80",
                "-r",
                "10.1.1.1",
                "-x",
                "2147483648",
            ],
            2,
            "illegal u_threshold specified\n",
        ),
        (
            &["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-y", "abc"],
            2,
            "illegal l_threshold specified\n",
        ),
        (
            &["--start-daemon", "master", "--mcast-group", "1.2.3.4"],
            2,
            "invalid IPv4 mcast-group `1.2.3.4'\n",
        ),
        (
            &["--start-daemon", "master", "--mcast-group", "::1"],
            2,
            "invalid IPv6 mcast-group `::1'\n",
        ),
        (
            &["--start-daemon", "master", "--mcast-port", "0"],
            2,
            "illegal mcast-port specified\n",
        ),
        (
            &["--start-daemon", "master", "--mcast-ttl", "256"],
            2,
            "illegal mcast-ttl specified\n",
        ),
        (
            &["--start-daemon", "master", "--sync-maxlen", "65508"],
            2,
            "illegal sync-maxlen specified\n",
        ),
        (
            &["--start-daemon", "master", "--syncid", "256"],
            2,
            "illegal syncid specified\n",
        ),
        (
            &["--start-daemon", "both"],
            2,
            "illegal start-daemon parameter specified\n",
        ),
        (
            &["--stop-daemon", "both"],
            2,
            "illegal start_daemon specified\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-u", "10.0.0.1:53"],
            2,
            "multiple 'service-address' options specified\n",
        ),
        (
            &["-A", "-f", "1", "-t", "10.0.0.1:53"],
            2,
            "multiple 'service-address' options specified\n",
        ),
        (
            &["-L", "-n", "-n"],
            2,
            "multiple 'numeric' options specified\n",
        ),
        (
            &["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-m", "-g"],
            2,
            "multiple 'forwarding-method' options specified\n",
        ),
        (&["-L", "--bogus"], 255, "--bogus: unknown option\n"),
        (&["-Lq"], 255, "-Lq: unknown option\n"),
        (&["-A", "-t"], 255, "-t: missing argument\n"),
        (
            &["-L", "--numeric=1"],
            255,
            "--numeric=1: option does not take an argument\n",
        ),
        (&["-L", "foo"], 2, "unexpected argument foo\n"),
        (
            &["--set", "1", "2"],
            2,
            "--set option requires 3 timeout values\n",
        ),
        (
            &["--set", "1", "2", "x"],
            2,
            "invalid timeout value `x' specified\n",
        ),
        (
            &["--set", "1", "2", "2678401"],
            2,
            "invalid timeout value `2678401' specified\n",
        ),
        (&["--set", "1", "2", "3", "4"], 2, "unexpected argument 4\n"),
        (
            &["-A", "-t", "10.0.0.1:0"],
            2,
            "Zero port specified for non-persistent service\n",
        ),
        (
            &["-E", "-t", "10.0.0.1"],
            2,
            "Zero port specified for non-persistent service\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-o"],
            2,
            "One-Packet Scheduling is only for UDP virtual services\n",
        ),
        (
            &["-a", "-t", "10.0.0.1:80", "-r", "[2001:db8::1]:80", "-m"],
            2,
            "Different address family is allowed only for tunneling servers\n",
        ),
        (
            &["-a", "-f", "1", "-6", "-r", "10.1.1.1:80", "-m"],
            2,
            "Different address family is allowed only for tunneling servers\n",
        ),
        (
            &["-n"],
            255,
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
        ),
        (
            &["foo"],
            255,
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
        ),
        (
            &["--bogus"],
            255,
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
        ),
        (&["-L", "-A"], 2, "invalid option `-A'\n"),
        (&["-L", "-h"], 2, "invalid option `-h'\n"),
        (
            &["-Ln", "--start-daemon", "master"],
            2,
            "invalid option `master'\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "--proxy-protocol", "v3"],
            2,
            "illegal proxy-protocol `v3' specified (use v1 or v2)\n",
        ),
        (
            &["--add-laddr", "-t", "10.0.0.1:80", "-z", "nope"],
            2,
            "illegal local address specified\n",
        ),
    ];
    for (args, code, msg) in cases {
        expect(args, *code, msg);
    }
}

#[test]
fn help_and_version() {
    let mut t = MemTable::with(vec![]);
    let r = run(&mut t, &["-v"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n",
            ""
        )
    );
    let r = run(&mut t, &["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.out.starts_with(
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  ipvsadm -A|E virtual-service [-s scheduler]"
    ));
    assert!(r.out.contains("  --sched-flags  -b flags             scheduler flags (comma-separated)\nDaemon Options:\n"));
    assert!(r.out.contains("--fullnat"));
    assert!(t.requests.is_empty());
}

/// docs/internals/ipvsadm.md#exit-status-and-error-texts: errors reported by rvsd print ipvsadm's texts; changes exit 255, listings exit 1.
#[test]
fn kernel_error_texts() {
    use ErrorKind::*;
    let svc = ["-t", "10.0.0.1:80"];
    let add_svc: Vec<&str> = [&["-A"][..], &svc].concat();
    let edit_svc: Vec<&str> = [&["-E"][..], &svc].concat();
    let del_svc: Vec<&str> = [&["-D"][..], &svc].concat();
    let zero_svc: Vec<&str> = [&["-Z"][..], &svc].concat();
    let add_d: Vec<&str> = [&["-a"][..], &svc, &["-r", "10.1.1.1"]].concat();
    let edit_d: Vec<&str> = [&["-e"][..], &svc, &["-r", "10.1.1.1"]].concat();
    let del_d: Vec<&str> = [&["-d"][..], &svc, &["-r", "10.1.1.1"]].concat();
    let start: Vec<&str> = vec!["--start-daemon", "master"];
    let stop: Vec<&str> = vec!["--stop-daemon", "backup"];
    let cases: Vec<(&Vec<&str>, ErrorKind, &str)> = vec![
        (&add_svc, Eexist, "Service already exists"),
        (
            &add_svc,
            Enoent,
            "Scheduler or persistence engine not found",
        ),
        (&edit_svc, Esrch, "No such service"),
        (
            &edit_svc,
            Enoent,
            "Scheduler or persistence engine not found",
        ),
        (&del_svc, Esrch, "No such service"),
        (&zero_svc, Esrch, "No such service"),
        (&add_d, Esrch, "Service not defined"),
        (&add_d, Eexist, "Destination already exists"),
        (&edit_d, Esrch, "Service not defined"),
        (&edit_d, Enoent, "No such destination"),
        (&del_d, Esrch, "Service not defined"),
        (&del_d, Enoent, "No such destination"),
        (&start, Eexist, "Daemon has already run"),
        (&stop, Esrch, "No daemon is running"),
        (&add_svc, Eperm, "Permission denied (you must be root)"),
        (
            &add_d,
            Einval,
            "Invalid operation.  Possibly wrong module version, address not unicast, ...",
        ),
        (&del_svc, Enoprotoopt, "Protocol not available"),
        (&add_svc, Enomem, "Memory allocation problem"),
        (&add_svc, Eopnotsupp, "Operation not supported with IPv6"),
        (
            &add_svc,
            Eafnosupport,
            "Operation not supported with specified address family",
        ),
        (&add_svc, Emsgsize, "Module is wrong version"),
        (&add_d, Erange, "Numerical result out of range"),
        (&start, Enodev, "No such device"),
        (&add_svc, Ebusy, "Device or resource busy"),
        // Not one of ipvsadm's specific pairs: falls through to strerror.
        (&del_svc, Eexist, "File exists"),
    ];
    for (args, kind, text) in cases {
        let mut t = MemTable::with(vec![]);
        t.fail_with = Some(RemoteError::new(kind));
        let r = run(&mut t, args);
        assert_eq!(
            (r.code, r.err.clone()),
            (255, format!("{text}\n")),
            "{args:?} {kind:?}"
        );
    }
    // rvs-only kinds print the daemon's explanation.
    let mut t = MemTable::with(vec![]);
    let r = run(&mut t, &["--start-daemon", "master"]);
    assert_eq!(
        (r.code, r.err.as_str()),
        (
            255,
            "--start-daemon: connection synchronisation is not supported yet\n"
        )
    );
    // Listing errors exit 1.
    let r = run(&mut t, &["-L", "-t", "10.0.0.1:80"]);
    assert_eq!((r.code, r.err.as_str()), (1, "No such service\n"));
    t.fail_with = Some(RemoteError::new(Eperm));
    let r = run(&mut t, &["-Ln"]);
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, "Permission denied (you must be root)\n")
    );
}

/// Real table semantics: the second identical add fails, warnings are printed.
#[test]
fn duplicate_add_and_warnings() {
    let mut t = MemTable::with(vec![]);
    assert_eq!(run(&mut t, &["-A", "-t", "10.0.0.1:80"]).code, 0);
    let r = run(&mut t, &["-A", "-t", "10.0.0.1:80"]);
    assert_eq!((r.code, r.err.as_str()), (255, "Service already exists\n"));
    t.warnings = vec!["rvsd: real server 10.1.1.1:80 uses direct routing; it is in the table but not served without the packet data plane".into()];
    let r = run(&mut t, &["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.err,
        "rvsd: real server 10.1.1.1:80 uses direct routing; it is in the table but not served without the packet data plane\n"
    );
}

/// `--sysctl` (rvs addition): usage errors exit 2 before anything is sent; rvsd's refusal of a
/// value is printed as rvsd words it and exits 255 like any refused change.
#[test]
fn sysctl_usage_and_refusals() {
    expect(&["--sysctl", "=1"], 2, "illegal sysctl name `' specified\n");
    expect(
        &["--sysctl", "Sloppy_TCP=1"],
        2,
        "illegal sysctl name `Sloppy_TCP' specified\n",
    );
    expect(
        &["--sysctl", "sloppy_tcp="],
        2,
        "--sysctl sloppy_tcp= needs a value\n",
    );
    expect(&["--sysctl", "a=1", "b=2"], 2, "unexpected argument b=2\n");
    expect(&["-L", "--sysctl"], 2, "invalid option `--sysctl'\n");
    let mut t = MemTable::with(vec![]);
    let r = run(&mut t, &["--sysctl", "net.ipv4.vs.nope=1"]);
    assert_eq!(
        (r.code, r.err.as_str()),
        (255, "net.ipv4.vs.nope: no such sysctl\n")
    );
    assert_eq!(
        t.requests.last(),
        Some(&Request::SetSysctl {
            name: "nope".into(),
            value: "1".into()
        })
    );
    let r = run(&mut t, &["--sysctl", "nope"]);
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, "net.ipv4.vs.nope: no such sysctl\n")
    );
}
